"""Children end with their starter (``harness.lifeline``): the lifeline pipe and the parent-death signal.

A starter that is SIGKILLed runs no clean-up code, so each case that needs one uses an
intermediate Python process as the starter and kills that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_bench_power_safety import alive, descendants

from harness.lifeline import Lifeline, parent_fd

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# the child: watches its lifeline (``--parent-fd N``), says so, and waits; on SIGTERM it writes
# the signal's name to argv[1] and ends
WATCHER = """\
import os, signal, sys, time
from harness.lifeline import parent_fd, watch_parent

def stopped(signum, frame):
    with open(sys.argv[1], "w") as f:
        f.write(signal.Signals(signum).name)
    os._exit(0)

if sys.argv[1] != "-":
    signal.signal(signal.SIGTERM, stopped)
assert sys.argv[2] == "--parent-fd"
watch_parent(parent_fd(sys.argv[3]))
print("ready", flush=True)
time.sleep(60)
"""

# the child asking for the parent-death signal
ORPHAN = """\
import os, signal, sys, time
from harness.lifeline import die_with_parent

def stopped(signum, frame):
    with open(sys.argv[1], "w") as f:
        f.write(signal.Signals(signum).name)
    os._exit(0)

signal.signal(signal.SIGTERM, stopped)
print("ready" if die_with_parent() else "unavailable", flush=True)
time.sleep(60)
"""

# the starter: starts argv[1] (a child script) with a lifeline, or plainly with argv[3] == "plain";
# prints "<child pid> <child's first line>" and waits to be killed
STARTER = """\
import subprocess, sys, time
from harness.lifeline import Lifeline

script, marker, how = sys.argv[1:4]
if how == "lifeline":
    line = Lifeline()
    child = subprocess.Popen([sys.executable, script, marker, *line.args()], stdout=subprocess.PIPE, text=True,
                             pass_fds=(line.child_fd,))
    line.started()
else:
    child = subprocess.Popen([sys.executable, script, marker], stdout=subprocess.PIPE, text=True)
print(child.pid, child.stdout.readline().strip(), flush=True)
time.sleep(60)
"""

# the starter of a virtual board: prints the board process's pid and waits to be killed
BOARD_STARTER = """\
import sys, time
from harness.emu.launcher import VirtualBoard

board = VirtualBoard.start("esp32", sys.argv[1], "4MB", name="lifeline-0", console_log=sys.argv[2])
print(board.proc.pid, flush=True)
time.sleep(120)
"""


@pytest.fixture
def scripts(tmp_path) -> Path:
    for name, code in (("watcher.py", WATCHER), ("orphan.py", ORPHAN), ("starter.py", STARTER),
                       ("board_starter.py", BOARD_STARTER)):
        (tmp_path / name).write_text(code)
    return tmp_path


@pytest.fixture
def spawn():
    """Start processes for a test; whatever of them (and what they started) is left is killed by pid."""
    started: list[subprocess.Popen] = []
    trees: list[dict[int, str]] = []

    def start(argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, text=True, **kwargs)
        started.append(proc)
        return proc

    start.trees = trees  # the test adds the process trees it saw, so nothing outlives a failure
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    for tree in trees:
        for pid in alive(tree):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_gone(procs: dict[int, str], within: float) -> dict[int, str]:
    deadline = time.monotonic() + within
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(procs)


def wait_file(path: Path, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    return ""


# -- the lifeline pipe ------------------------------------------------------------------------------
def test_the_child_gets_sigterm_when_the_lifeline_is_closed(scripts, spawn):
    line = Lifeline()
    assert line.args() == ["--parent-fd", str(line.child_fd)]
    child = spawn([sys.executable, str(scripts / "watcher.py"), "-", *line.args()], stdout=subprocess.PIPE,
                  pass_fds=(line.child_fd,))
    line.started()
    assert line.child_fd == -1
    assert child.stdout.readline() == "ready\n"
    time.sleep(0.3)
    assert child.poll() is None  # the line holds while the starter keeps its end
    line.close()
    assert child.wait(5) == -signal.SIGTERM
    line.close()  # closing twice is harmless


def test_the_child_gets_sigterm_when_its_starter_is_sigkilled(scripts, spawn):
    marker = scripts / "stopped"
    starter = spawn([sys.executable, str(scripts / "starter.py"), str(scripts / "watcher.py"), str(marker),
                     "lifeline"], stdout=subprocess.PIPE)
    pid, state = starter.stdout.readline().split()
    assert state == "ready"
    tree = descendants(starter.pid)
    spawn.trees.append(tree)
    assert int(pid) in tree
    time.sleep(0.3)
    assert alive(tree) and not marker.exists()

    starter.kill()
    assert starter.wait(5) == -signal.SIGKILL
    assert wait_file(marker, 5) == "SIGTERM"
    assert wait_gone(tree, 5) == {}


def test_the_write_end_is_not_inherited_by_other_programs_the_starter_runs(scripts, spawn):
    """A program started without the lifeline must not keep the line open: the watcher still ends."""
    line = Lifeline()
    child = spawn([sys.executable, str(scripts / "watcher.py"), "-", *line.args()], stdout=subprocess.PIPE,
                  pass_fds=(line.child_fd,))
    line.started()
    assert child.stdout.readline() == "ready\n"
    bystander = spawn([sys.executable, "-c", "import time; time.sleep(60)"], close_fds=False)
    line.close()
    assert child.wait(5) == -signal.SIGTERM
    assert bystander.poll() is None


@pytest.mark.parametrize("text", ["x", "", "3.0", "-1"])
def test_parent_fd_rejects_what_is_not_a_number_or_not_open(text):
    with pytest.raises(ValueError) as caught:
        parent_fd(text)
    assert str(caught.value) == f"{text!r} is not an open file descriptor"


def test_parent_fd_rejects_a_closed_fd_and_accepts_an_open_one():
    r, w = os.pipe()
    try:
        assert parent_fd(str(r)) == r
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(ValueError, match=rf"^'{r}' is not an open file descriptor$"):
        parent_fd(str(r))


# -- the parent-death signal ------------------------------------------------------------------------
def test_die_with_parent_signals_the_child_when_its_parent_is_sigkilled(scripts, spawn):
    marker = scripts / "stopped"
    starter = spawn([sys.executable, str(scripts / "starter.py"), str(scripts / "orphan.py"), str(marker), "plain"],
                    stdout=subprocess.PIPE)
    pid, state = starter.stdout.readline().split()
    assert state == "ready"  # die_with_parent() returned True: prctl is there
    tree = descendants(starter.pid)
    spawn.trees.append(tree)
    assert int(pid) in tree
    time.sleep(0.3)
    assert not marker.exists()

    starter.kill()
    starter.wait(5)
    assert wait_file(marker, 5) == "SIGTERM"
    assert wait_gone(tree, 5) == {}


def test_die_with_parent_sends_nothing_while_the_parent_lives():
    # SIGUSR1 would end the child: it runs to its end because its parent (this process) lives on
    code = ("import signal, time\n"
            "from harness.lifeline import die_with_parent\n"
            "print(die_with_parent(signal.SIGUSR1), flush=True)\n"
            "time.sleep(0.3)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=30)
    assert (done.returncode, done.stdout) == (0, "True\n"), done.stderr


# -- the command lines ------------------------------------------------------------------------------
@pytest.mark.parametrize("module, value", [("harness.emu", "99"), ("harness.power.lcus_sim", "x")])
def test_a_bad_parent_fd_stops_the_program_with_one_error_line(module, value):
    # fd 99 is closed in the child (subprocess closes every fd it is not told to pass)
    done = subprocess.run([sys.executable, "-m", module, "--parent-fd", value], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    errors = [x for x in lines if "error:" in x]
    assert errors == [lines[-1]], done.stderr  # one error line, after argparse's usage
    assert errors[0].endswith(f"error: argument --parent-fd: {value!r} is not an open file descriptor")
    assert all(x.startswith(("usage:", " ")) for x in lines[:-1]), done.stderr


@pytest.mark.parametrize("module, value", [("harness.emu", "99"), ("harness.power.lcus_sim", "x")])
def test_a_bad_parent_fd_is_named_in_the_error(module, value):
    done = subprocess.run([sys.executable, "-m", module, "--parent-fd", value], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=30)
    assert repr(value) in done.stderr.strip().splitlines()[-1], done.stderr


# -- a virtual board --------------------------------------------------------------------------------
def test_a_virtual_board_and_its_chip_end_when_their_starter_is_sigkilled(scripts, spawn):
    starter = spawn([sys.executable, str(scripts / "board_starter.py"), str(scripts / "board.flash"),
                     str(scripts / "board.console")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = starter.stdout.readline()
    assert first.strip().isdigit(), starter.stderr.read() if starter.poll() is not None else first
    board = int(first)
    # the board process and the chip process it forks once powered on
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tree = descendants(starter.pid)
        if board in tree and descendants(board):
            break
        time.sleep(0.1)
    spawn.trees.append(tree)
    assert board in tree and "harness.emu" in tree[board], tree
    chip = descendants(board)
    assert chip, tree  # the chip runs in a process of its own
    time.sleep(0.3)
    assert alive(tree) == tree  # nothing ends while the starter lives

    starter.kill()
    assert starter.wait(5) == -signal.SIGKILL
    assert wait_gone(tree, 5) == {}, tree
