"""The bench path on virtual boards: every case prepared with esptool and mpremote and every boot
state read through esptool (``--no-snapshots --no-direct-reads``), as on a real bench, where a
virtual board's run takes the shortcuts. The scenario must pass the same way, and its boot-state
reads must each be an esptool session that resets the board.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_power_loss_passes_with_esptool_for_everything(tmp_path):
    cmd = [sys.executable, "-m", "pytest", "scenarios/test_power_loss.py", "--rig", "emu", "--board", "esp32-0",
           "-k", "micropython-firmware", "--no-snapshots", "--no-direct-reads", "-p", "no:cacheprovider", "-q",
           "--basetemp", str(tmp_path / "run"), "--alluredir", str(tmp_path / "allure"),
           "--hil-logs", str(tmp_path / "logs")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # three boot-state reads, each an esptool session (the console log notes how each read was made)
    (console,) = (tmp_path / "logs").glob("*/console-esp32-0.log")
    text = console.read_text()
    body = text[text.index("===== test body of "):]
    assert body.count("===== boot state read with esptool (the board is reset afterwards) =====") == 3, body[-3000:]
    assert "read from the flash file" not in text
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
    reads = [s for s in result["steps"] if s["name"].startswith("read boot state")]
    assert len(reads) == 3 and all(s["status"] == "passed" for s in reads)
