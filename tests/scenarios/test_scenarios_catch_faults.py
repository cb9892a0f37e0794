"""Each scenario catches the fault it targets: with the agent's corresponding check switched off
(``--agent-mutation``, see ``harness/mutations.py``) the scenario must fail, and fail in its
assertions (not in set-up, which would prove nothing).

The unmutated scenarios pass in ``./run.sh suite``; here each one runs once against the
broken agent on the cheapest board that shows it.
"""

from __future__ import annotations

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
           "--basetemp", str(tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"expected the scenario to fail (exit 1), got {proc.returncode}:\n{out[-4000:]}"
    assert "1 failed" in out and "error" not in out.splitlines()[-1], out[-4000:]
