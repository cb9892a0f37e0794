"""Shared fixtures of the harness's own tests."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from harness.emu.launcher import VirtualBoard  # noqa: E402

# Scenario runs started by these tests write their Allure results and case logs here, not into
# the checkout's reports/ (HIL_REPORTS_DIR is inherited by every pytest they start).
if "HIL_REPORTS_DIR" not in os.environ or not os.environ["HIL_REPORTS_DIR"].startswith(tempfile.gettempdir()):
    os.environ["HIL_REPORTS_DIR"] = tempfile.mkdtemp(prefix="hil-test-reports-")
    # removed by the process that made it, when it ends
    atexit.register(shutil.rmtree, os.environ["HIL_REPORTS_DIR"], True)
# ... and keep their CA in a temporary directory, not in the user's data directory
if "HIL_CA_DIR" not in os.environ or not os.environ["HIL_CA_DIR"].startswith(tempfile.gettempdir()):
    os.environ["HIL_CA_DIR"] = tempfile.mkdtemp(prefix="hil-test-ca-")
    atexit.register(shutil.rmtree, os.environ["HIL_CA_DIR"], True)


@pytest.fixture
def start_board(tmp_path):
    """Factory: start a virtual board on a fresh flash file; every board is stopped after the test."""
    boards: list[VirtualBoard] = []

    def start(chip: str = "esp32", flash_size: str = "4MB", name: str | None = None, **kwargs) -> VirtualBoard:
        name = name or f"{chip}-{len(boards)}"
        flash = kwargs.pop("flash_file", None) or str(tmp_path / f"{name}.bin")
        board = VirtualBoard.start(chip, flash, flash_size, name=name,
                                   console_log=str(tmp_path / f"{name}.console"), **kwargs)
        boards.append(board)
        return board

    yield start
    for b in boards:
        b.stop()
