"""Board locks: one board, one test process; a holder that dies, however it dies, lets go."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.locks import BoardBusyError, BoardLock, LockError, lock_dir
from harness.rig import load_rig
from harness.scenario import OtaBench

ROOT = Path(__file__).resolve().parents[2]

# a process that takes the lock, says so, and keeps it for argv[2] seconds
HOLDER = """\
import sys, time
from harness.locks import BoardLock
lock = BoardLock("bench1", "esp32-0").acquire(timeout=float(sys.argv[1]))
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""

# a process that tries to take the lock: exit 0 with the time it waited, or 3 with the message
CONTENDER = """\
import sys, time
from harness.locks import BoardBusyError, BoardLock
start = time.monotonic()
try:
    BoardLock(sys.argv[2], sys.argv[3]).acquire(timeout=float(sys.argv[1]))
except BoardBusyError as e:
    print(e)
    sys.exit(3)
print(f"{time.monotonic() - start:.2f}")
"""


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch) -> Path:
    """A private XDG_RUNTIME_DIR, for this process and the ones it starts."""
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    for name, code in (("hold_board.py", HOLDER), ("take_board.py", CONTENDER)):
        (tmp_path / name).write_text(code)
    return directory


@pytest.fixture
def run(tmp_path, runtime_dir):
    procs: list[subprocess.Popen] = []

    def start(script: str, *args: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, str(tmp_path / script), *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def holding(run, seconds: float) -> subprocess.Popen:
    holder = run("hold_board.py", "0", str(seconds))
    assert holder.stdout.readline() == "held\n", holder.stderr.read()
    return holder


def contend(run, timeout: float, rig: str = "bench1", board: str = "esp32-0") -> tuple[int, str, str]:
    proc = run("take_board.py", str(timeout), rig, board)
    out, err = proc.communicate(timeout=timeout + 20)
    return proc.returncode, out, err


def test_a_second_process_is_told_who_holds_the_board(run):
    holder = holding(run, 60)
    code, out, err = contend(run, 0.5)
    assert code == 3, err
    assert len(out.splitlines()) == 1
    assert re.fullmatch(rf"board esp32-0 of rig bench1 is in use by pid {holder.pid} \(hold_board\.py 0 60\) "
                        rf"since \d\d:\d\d:\d\d\n", out), out


def test_the_wait_is_reported_when_it_was_long(run):
    holding(run, 60)
    code, out, _ = contend(run, 1.2)
    assert code == 3 and out.rstrip().endswith("(waited 1 s)"), out


def test_a_waiting_process_gets_the_board_once_it_is_released(run):
    holding(run, 1.5)
    code, out, err = contend(run, 15)
    assert code == 0, out + err
    assert 0.5 < float(out) < 10


def test_other_boards_and_rigs_are_not_blocked(run):
    holding(run, 60)
    assert contend(run, 0, board="esp8266-0")[0] == 0
    assert contend(run, 0, rig="bench2")[0] == 0


def test_a_killed_holder_lets_go_at_once(run):
    holder = holding(run, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    code, out, err = contend(run, 0)
    assert code == 0, out + err


def test_within_one_process_the_board_is_busy_too_and_released_cleanly(runtime_dir):
    first = BoardLock("bench1", "esp32-0").acquire(timeout=0)
    assert first.holder()["pid"] == os.getpid()
    with pytest.raises(BoardBusyError, match=rf"^board esp32-0 of rig bench1 is in use by pid {os.getpid()} "):
        BoardLock("bench1", "esp32-0").acquire(timeout=0)
    first.release()
    assert first.holder() is None  # nobody is named as the holder of a free board
    with BoardLock("bench1", "esp32-0") as second:
        assert second.held and second.holder()["pid"] == os.getpid()
    assert not second.held


def test_lock_files_live_in_the_runtime_dir_or_a_per_user_tmp_dir(runtime_dir, monkeypatch):
    assert BoardLock("bench 1", "esp32-0").path == runtime_dir / "esp-ota-hil" / "locks" / "bench_1.esp32-0.lock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert lock_dir() == Path(f"/tmp/esp-ota-hil-{os.getuid()}/locks")


def test_a_lock_directory_others_can_write_is_refused(runtime_dir):
    shared = runtime_dir / "esp-ota-hil"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(LockError) as caught:
        BoardLock("bench1", "esp32-0").acquire(timeout=0)
    assert str(caught.value) == (f"lock of board esp32-0 of rig bench1: cannot open "
                                 f"{shared}/locks/bench1.esp32-0.lock: {shared} is not a directory of uid "
                                 f"{os.getuid()} that only it can write; remove it or set XDG_RUNTIME_DIR")


def test_a_run_holds_its_bench_boards_until_it_closes_them(run, tmp_path, start_board):
    """OtaBench takes the lock of a bench board (here a virtual board started by hand, as a shared one is)."""
    vb = start_board("esp8266", power_off=True)
    (tmp_path / "fw.bin").write_bytes(b"\xe9" * 0x1000)
    (tmp_path / "shelf.yaml").write_text(textwrap.dedent(f"""\
        host: 127.0.0.1
        wifi: {{ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}}
        boards:
          - name: shelf-0
            chip: esp8266
            port: {{url: "{vb.serial_url}"}}
            power: {{kind: virtual, control: "{vb.control_url}"}}
            baseline: [{{offset: 0x0, file: fw.bin}}]
        """))
    bench = OtaBench(load_rig(str(tmp_path / "shelf.yaml")), tmp_path / "work")
    try:
        bench.board("shelf-0")
        code, out, _ = contend(run, 0, rig="shelf", board="shelf-0")
        assert code == 3 and out.startswith(f"board shelf-0 of rig shelf is in use by pid {os.getpid()} ("), out
    finally:
        bench.close()
    assert contend(run, 0, rig="shelf", board="shelf-0")[0] == 0
