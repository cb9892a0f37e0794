"""Each scenario catches the fault it targets: with the device implementation's corresponding check
switched off (``--mutation``, see ``harness/mutations.py``) the scenario must fail, and fail in its
assertions (not in set-up, which would prove nothing).

The unmutated scenarios pass in ``./run.sh suite``; here each one runs once against the broken
device on the cheapest board that shows it: the MicroPython agent's mutations on ``emu``, the
ESP-IDF client's on a rig whose ESP32 runs it (as soon as its host build exists).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from harness.mutations import MUTATIONS, mutation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: (mutation, scenario, case id: board-device-kind)
CASES = [
    ("fw-write-over-running", "test_power_loss.py", "esp32-0-micropython-firmware"),
    ("files-write-in-place", "test_power_loss.py", "esp8266-0-micropython-files"),
    ("fw-no-digest-check", "test_bad_hash.py", "esp32-0-micropython-firmware"),
    ("files-no-digest-check", "test_bad_hash.py", "esp8266-0-micropython-files"),
    ("no-version-check", "test_same_version.py", "esp32-0-micropython-firmware"),
    ("fw-confirm-without-health", "test_rollback.py", "esp32-0-micropython-firmware"),
    ("fw-rollback-without-reset", "test_rollback.py", "esp32-0-micropython-firmware"),
    ("files-confirm-without-health", "test_rollback.py", "esp8266-0-micropython-files"),
    ("write-running-slot", "test_power_loss.py", "esp32-0-esp-idf-firmware"),
    ("skip-sha256-check", "test_bad_hash.py", "esp32-0-esp-idf-firmware"),
    ("skip-version-check", "test_same_version.py", "esp32-0-esp-idf-firmware"),
    ("skip-diagnostics", "test_rollback.py", "esp32-0-esp-idf-firmware"),
]

#: the ESP-IDF client's mutations whose scenarios (issue 12, item 4: redirect, chunked transfer, anti-rollback,
#: wrong certificate) are not written yet
WITHOUT_A_SCENARIO = {"no-redirects", "require-content-length", "skip-secure-version-check", "skip-cert-verify"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_every_mutation_has_a_case():
    assert sorted(MUTATIONS) == sorted({m for m, _, _ in CASES} | WITHOUT_A_SCENARIO)
    for name, _scenario, target in CASES:
        assert f"-{mutation(name).device}-" in target  # each runs on the device it belongs to


def _rig_for(device: str, tmp_path) -> str:
    """emu, or for the ESP-IDF client emu's ESP32 running it (emu lists it once its host build is in place)."""
    from harness.rig import load_rig

    if any(d.kind == device for b in load_rig("emu").boards for d in b.devices):
        return "emu"
    try:
        import harness.emu.idf.build  # noqa: F401
    except ImportError:
        pytest.skip("the host build of the ESP-IDF client (harness/emu/idf/build.py) is not there yet")
    rig = tmp_path / "emu-idf.yaml"
    rig.write_text("host: 127.0.0.1\nboards:\n  - {name: esp32-0, chip: esp32, virtual: true, "
                   "devices: [{kind: esp-idf}]}\n")
    return str(rig)


@pytest.mark.parametrize("mutation, scenario, target", CASES, ids=[c[0] for c in CASES])
def test_scenario_fails_against_the_broken_device(mutation, scenario, target, tmp_path):
    board, _, device_kind = target.partition("-0-")
    board += "-0"
    device, kind = device_kind.rsplit("-", 1)
    rig = _rig_for(device, tmp_path)
    cmd = [sys.executable, "-m", "pytest", f"scenarios/{scenario}", "--rig", rig, "--board", board,
           "-k", f"{device}-{kind}", "--mutation", mutation, "-p", "no:cacheprovider", "-q", "-o", "addopts=",
           "--basetemp", str(tmp_path / "run"), "--alluredir", str(tmp_path / "allure"),
           "--hil-logs", str(tmp_path / "logs")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"expected the scenario to fail (exit 1), got {proc.returncode}:\n{out[-4000:]}"
    assert "1 failed" in out and "error" not in out.splitlines()[-1], out[-4000:]
    # the device's lines, or the bootloader's (of a board that was resetting, or that a client bricked)
    _shows_its_evidence(out, board, r"^(OTA |[EWI] \(\d+\) )" if device == "micropython" else r"^[EWI] \(\d+\) ",
                        tmp_path)


def _shows_its_evidence(out: str, board: str, device_line: str, tmp_path) -> None:
    """The failure text ends with the board's console and the logs' paths; Allure has them on the test itself."""
    failure = out[out.index("= FAILURES ="):]
    console = failure[failure.index(f"console {board}: last 30 lines since the case began"):]
    assert re.search(device_line, console.split("logs of this case")[0], re.MULTILINE), failure[-3000:]
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
    assert re.search(device_line.replace("^", r"^\S+ "), attached[f"console {board}"].read_text(), re.MULTILINE)
    assert attached["boot state after the failure"].read_text().startswith("chip ")
    assert {p["name"] for p in result["parameters"]} == {"board", "device", "update kind"}
