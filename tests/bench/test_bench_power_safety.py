"""A run stopped mid-scenario leaves nothing behind: no virtual board, interpreter or relay simulator.

SIGTERM (a CI cancel) to ``./run.sh suite``, to the xdist controller or to a run without
xdist stops the run through its teardown; SIGKILL (a runner's timeout) runs no teardown at
all, and the children end by their lifelines (``harness.lifeline``). Afterwards no process
of the run exists, and the next run passes.
"""

from __future__ import annotations

import os
import shutil
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


def _start(argv: list[str], tmp_path: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, **kwargs.pop("env", {})}
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, **kwargs)


def _mid_scenario(run: subprocess.Popen, want: int) -> dict[int, str]:
    """The run's process tree once ``want`` MicroPython interpreters run in it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        tree = descendants(run.pid)
        if sum("micropython_unix" in cmd for cmd in tree.values()) >= want:
            time.sleep(1.0)  # into the scenario's body
            return descendants(run.pid)
        time.sleep(0.2)
    run.kill()
    raise AssertionError(f"the run never had {want} interpreters running:\n{run.communicate()[0][-3000:]}")


def _gone(tree: dict[int, str], output: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while alive(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(tree) == {}, output[-3000:]


def _finish(run: subprocess.Popen, timeout: float = 60) -> str:
    try:
        return run.communicate(timeout=timeout)[0]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()


def _scenario_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["-p", "no:cacheprovider", f"--basetemp={tmp_path / 'run'}", "--alluredir", str(tmp_path / "allure"),
            *extra]


def _next_run_passes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "scenarios/test_same_version.py", "--rig", "emu-lcus",
                           "--board", "esp8266-0", "-q", *_scenario_args(tmp_path / "next")],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_sigterm_to_run_sh_suite_stops_everything_it_started(tmp_path):
    # the test's own venv stands in for the one run.sh makes (its set-up then has nothing to do)
    venv = Path(sys.executable).parent.parent
    if not (venv / "bin" / "python").exists() or shutil.which("bash") is None:
        raise AssertionError(f"no venv around {sys.executable}")
    run = _start(["bash", "run.sh", "suite", "-k", "power_loss", *_scenario_args(tmp_path)], tmp_path,
                 env={"HIL_RIG": "emu-lcus", "HIL_VENV": str(venv)})
    tree = _mid_scenario(run, want=2)
    assert any("lcus_sim" in cmd for cmd in tree.values()), tree
    os.kill(run.pid, signal.SIGTERM)  # the script only, as a CI cancel signals the job's shell
    output = _finish(run)
    assert run.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "stopped by SIGTERM" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    _gone(tree, output)
    _next_run_passes(tmp_path)


def test_sigterm_to_the_xdist_controller_stops_its_workers_and_their_boards(tmp_path):
    run = _start([sys.executable, "-m", "pytest", "scenarios/test_power_loss.py", "--rig", "emu-lcus", "-n", "2",
                  "--dist", "loadgroup", "-q", *_scenario_args(tmp_path)], tmp_path)
    tree = _mid_scenario(run, want=2)
    run.send_signal(signal.SIGTERM)
    output = _finish(run)
    assert run.returncode == 2, output[-3000:]  # pytest's "interrupted"
    assert "hil: stopped by SIGTERM" in output and "crashed" not in output, output[-3000:]
    _gone(tree, output, within=5)  # the workers switched their boards off themselves, no kill after a timeout


def test_sigkill_of_a_run_leaves_no_process_behind(tmp_path):
    # no teardown runs: the workers get SIGTERM from the kernel, the boards and the relay end by their lifelines
    run = _start([sys.executable, "-m", "pytest", "scenarios/test_power_loss.py", "--rig", "emu-lcus", "-n", "2",
                  "--dist", "loadgroup", "-q", *_scenario_args(tmp_path)], tmp_path)
    tree = _mid_scenario(run, want=2)
    run.kill()
    output = _finish(run)
    _gone(tree, output)
    without_xdist = _start([sys.executable, "-m", "pytest", "scenarios/test_power_loss.py", "--rig", "emu-lcus",
                            "--board", "esp32-0", "-q", *_scenario_args(tmp_path / "plain")], tmp_path)
    tree = _mid_scenario(without_xdist, want=1)
    without_xdist.kill()
    output = _finish(without_xdist)
    _gone(tree, output)
