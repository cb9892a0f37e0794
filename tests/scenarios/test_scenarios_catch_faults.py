"""Each scenario catches the fault it targets: with the agent's corresponding check switched off
(``--agent-mutation``, see ``harness/mutations.py``) the scenario must fail, and fail in its
assertions (not in set-up, which would prove nothing).

The unmutated scenarios pass in ``./run.sh suite``; here each one runs once against the
broken agent on the cheapest board that shows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.mutations import MUTATIONS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CASES = [
    ("fw-write-over-running", "test_power_loss.py", "esp32-0-firmware"),
    ("files-write-in-place", "test_power_loss.py", "esp8266-0-files"),
    ("fw-no-digest-check", "test_bad_hash.py", "esp32-0-firmware"),
    ("files-no-digest-check", "test_bad_hash.py", "esp8266-0-files"),
    ("no-version-check", "test_same_version.py", "esp32-0-firmware"),
    ("fw-confirm-without-health", "test_rollback.py", "esp32-0-firmware"),
    ("fw-rollback-without-reset", "test_rollback.py", "esp32-0-firmware"),
    ("files-confirm-without-health", "test_rollback.py", "esp8266-0-files"),
]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_every_mutation_has_a_case():
    assert sorted(MUTATIONS) == sorted(m for m, _, _ in CASES)


@pytest.mark.parametrize("mutation, scenario, target", CASES, ids=[c[0] for c in CASES])
def test_scenario_fails_against_the_broken_agent(mutation, scenario, target, tmp_path):
    board, kind = target.rsplit("-", 1)
    cmd = [sys.executable, "-m", "pytest", f"scenarios/{scenario}", "--rig", "emu", "--board", board, "-k", kind,
           "--agent-mutation", mutation, "-p", "no:cacheprovider", "-q", "-o", "addopts=",
           "--basetemp", str(tmp_path / "run"), "--alluredir", str(tmp_path / "allure"),
           "--hil-logs", str(tmp_path / "logs")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"expected the scenario to fail (exit 1), got {proc.returncode}:\n{out[-4000:]}"
    assert "1 failed" in out and "error" not in out.splitlines()[-1], out[-4000:]
    _shows_its_evidence(out, board, tmp_path)


def _shows_its_evidence(out: str, board: str, tmp_path) -> None:
    """The failure text ends with the board's console and the logs' paths; Allure has them on the test itself."""
    failure = out[out.index("= FAILURES ="):]
    console = failure[failure.index(f"console {board}: last 30 lines since the case began"):]
    assert "OTA " in console.split("logs of this case")[0], failure[-3000:]
    logs = console[console.index("logs of this case"):]
    case_dir = tmp_path / "logs"
    (directory,) = case_dir.iterdir()
    transcript = directory / f"console-{board}.log"
    assert str(transcript) in logs and transcript.read_text().count("===== test body of ") == 1
    assert "boot state after the failure" in logs
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
    assert result["status"] == "failed"
    attached = {a["name"]: tmp_path / "allure" / a["source"] for a in result.get("attachments", [])}
    assert {f"console {board}", "http server log", "boot state after the failure"} <= set(attached), attached
    assert "OTA " in attached[f"console {board}"].read_text()
    assert attached["boot state after the failure"].read_text().startswith("chip ")
    assert {p["name"] for p in result["parameters"]} == {"board", "device", "update kind"}
