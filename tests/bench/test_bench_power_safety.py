"""A run stopped with SIGTERM mid-scenario leaves nothing behind: no virtual board, no MicroPython interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` now, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            # the parent pid follows the command name, which is in parentheses and may hold spaces
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = cmdline(child)
            todo.append(child)
    return found


def alive(procs: dict[int, str]) -> dict[int, str]:
    """Those of ``procs`` still running (the same pid with the same command line; zombies do not count)."""
    left = {}
    for pid, cmd in procs.items():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and cmdline(pid) == cmd:
            left[pid] = cmd
    return left


def run_processes(flash_path: str) -> dict[int, str]:
    """Virtual board processes of the run, found by their flash file."""
    return {pid: cmd for pid, cmd in ((int(e), cmdline(int(e))) for e in os.listdir("/proc") if e.isdigit())
            if "harness.emu" in cmd and flash_path in cmd}


def test_sigterm_mid_scenario_leaves_no_board_and_no_interpreter(tmp_path):
    basetemp = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "pytest", "scenarios/test_power_loss.py", "--rig", "emu",
                            "--board", "esp32-0", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # mid-run: the board is up and MicroPython runs on it
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and run.poll() is None:
            tree = descendants(run.pid)
            if any("micropython" in cmd for cmd in tree.values()):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no MicroPython interpreter came up in the run:\n{run.communicate()[0][-3000:]}")
        flash = str(basetemp / "bench0" / "esp32-0" / "esp32-0.flash")
        assert run_processes(flash), tree

        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()

    assert run.returncode != 0, output[-3000:]
    deadline = time.monotonic() + 10
    while (alive(tree) or run_processes(flash)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(tree) == {}, output[-3000:]
    assert run_processes(flash) == {}
