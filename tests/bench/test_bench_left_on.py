"""A board a killed run left switched on: the lock keeps the dead holder's record, the next run switches
the board off before it starts (``BoardLock.previous``, ``BoardLock.note``, ``_switch_off_if_left_on``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

from harness.locks import BoardLock
from harness.scenario import LeftOnWarning, _switch_off_if_left_on

ROOT = Path(__file__).resolve().parents[2]

# takes the lock, notes argv[1] as JSON fields, says so, then releases it (argv[2] == "release") or waits
HOLDER = """\
import json, sys, time
from harness.locks import BoardLock
lock = BoardLock("bench1", "esp32-0").acquire(timeout=10)
lock.note(**json.loads(sys.argv[1]))
print("noted", flush=True)
if sys.argv[2] == "release":
    lock.release()
else:
    time.sleep(60)
"""


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch) -> Path:
    """A private XDG_RUNTIME_DIR, for this process and the ones it starts."""
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    (tmp_path / "hold_board.py").write_text(HOLDER)
    return directory


@pytest.fixture
def holder(tmp_path, runtime_dir):
    procs: list[subprocess.Popen] = []

    def start(fields: dict, then: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, str(tmp_path / "hold_board.py"), json.dumps(fields), then],
                                cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline() == "noted\n", proc.stderr.read()
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def previous_record() -> dict | None:
    """What a new holder of the board finds, released again at once."""
    lock = BoardLock("bench1", "esp32-0").acquire(timeout=5)
    lock.release()
    return lock.previous


def killed(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL


# -- the record a holder leaves -------------------------------------------------------------------
def test_a_fresh_lock_has_no_previous_holder(runtime_dir):
    lock = BoardLock("bench1", "esp32-0")
    assert lock.previous is None
    lock.acquire(timeout=0)
    try:
        assert lock.previous is None
    finally:
        lock.release()


def test_after_a_clean_release_there_is_no_previous_record(runtime_dir):
    first = BoardLock("bench1", "esp32-0").acquire(timeout=0)
    first.note(powered=True)
    first.release()
    assert first.path.read_bytes() == b""
    second = BoardLock("bench1", "esp32-0").acquire(timeout=0)
    try:
        assert second.previous is None
    finally:
        second.release()


def test_after_a_clean_release_in_another_process_there_is_no_previous_record(holder):
    proc = holder({"powered": True}, "release")
    assert proc.wait(10) == 0
    assert previous_record() is None


def test_a_killed_holder_that_had_the_board_on_leaves_that_in_its_record(holder):
    proc = holder({"powered": True}, "wait")
    killed(proc)
    lock = BoardLock("bench1", "esp32-0").acquire(timeout=5)
    try:
        previous = lock.previous
        assert previous is not None and previous["powered"] is True
        assert previous["pid"] == proc.pid and "hold_board.py" in previous["command"]
        assert isinstance(previous["since"], float) and previous["host"]
        # the new holder's record replaces the dead one's
        assert lock.holder()["pid"] == os.getpid() and "powered" not in lock.holder()
    finally:
        lock.release()
    assert previous_record() is None  # released cleanly this time


def test_a_killed_holder_that_had_switched_the_board_off_says_so(holder):
    proc = holder({"powered": False}, "wait")
    killed(proc)
    previous = previous_record()
    assert previous["powered"] is False and previous["pid"] == proc.pid


def test_a_record_that_is_not_json_is_no_previous_record(runtime_dir):
    lock = BoardLock("bench1", "esp32-0")
    lock.directory.mkdir(parents=True)
    lock.path.write_bytes(b'{"pid": 1, "powe')  # a holder killed between its truncate and its write
    lock.acquire(timeout=0)
    try:
        assert lock.previous is None
    finally:
        lock.release()
    lock.path.write_bytes(b'[1, 2]\n')
    assert previous_record() is None


# -- note() -----------------------------------------------------------------------------------------
def test_note_adds_fields_and_a_shorter_record_leaves_valid_json(runtime_dir):
    lock = BoardLock("bench1", "esp32-0").acquire(timeout=0)
    try:
        lock.note(powered=True, detail="x" * 2000)
        long = lock.path.read_bytes()
        assert json.loads(long)["detail"] == "x" * 2000
        lock.note(detail="y")
        short = lock.path.read_bytes()
        assert len(short) < len(long) and short.endswith(b"}\n") and short.count(b"\n") == 1
        record = json.loads(short)
        assert record["detail"] == "y" and record["powered"] is True and record["pid"] == os.getpid()
        lock.note(powered=False)
        assert json.loads(lock.path.read_bytes())["powered"] is False
        assert lock.holder() == json.loads(lock.path.read_bytes())
    finally:
        lock.release()


def test_note_on_a_lock_not_held_writes_nothing(runtime_dir):
    lock = BoardLock("bench1", "esp32-0")
    lock.note(powered=True)
    assert not lock.path.exists()
    lock.acquire(timeout=0)
    lock.release()
    lock.note(powered=True)
    assert lock.path.read_bytes() == b""


# -- switching off what a dead run left on -----------------------------------------------------------
class FakePower:
    def __init__(self):
        self.calls: list[str] = []

    def off(self) -> None:
        self.calls.append("off")

    def on(self) -> None:
        self.calls.append("on")


def fake_board(name: str = "devkit") -> types.SimpleNamespace:
    return types.SimpleNamespace(name=name, power=FakePower())


def fake_lock(previous: dict | None, rig: str = "bench1") -> types.SimpleNamespace:
    return types.SimpleNamespace(previous=previous, rig_name=rig)


def test_a_board_left_on_is_switched_off_with_a_warning_naming_it_and_the_dead_holder():
    board = fake_board()
    lock = fake_lock({"pid": 4242, "command": "pytest scenarios/ --rig bench1", "powered": True})
    with pytest.warns(LeftOnWarning) as caught:
        _switch_off_if_left_on(board, lock)
    assert board.power.calls == ["off"]
    assert len(caught) == 1
    assert str(caught[0].message) == ("board devkit of rig bench1 was left switched on by pid 4242 "
                                      "(pytest scenarios/ --rig bench1), which ended without switching it off; "
                                      "switched it off before this run")


def test_a_record_without_pid_or_command_still_switches_the_board_off():
    board = fake_board("nodemcu")
    with pytest.warns(LeftOnWarning, match=r"^board nodemcu of rig shelf was left switched on by pid \?, which"):
        _switch_off_if_left_on(board, fake_lock({"powered": True}, rig="shelf"))
    assert board.power.calls == ["off"]


@pytest.mark.parametrize("previous", [None, {}, {"pid": 4242, "command": "pytest"},
                                      {"pid": 4242, "powered": False}])
def test_nothing_is_done_when_the_board_was_not_left_on(previous, recwarn):
    board = fake_board()
    _switch_off_if_left_on(board, fake_lock(previous))
    assert board.power.calls == []
    assert [w for w in recwarn if issubclass(w.category, LeftOnWarning)] == []


def test_a_board_a_killed_run_left_on_is_switched_off_by_the_next_holder(holder):
    """The record of a real killed holder, read by a real lock, drives the switch-off."""
    proc = holder({"powered": True}, "wait")
    killed(proc)
    board = fake_board("esp32-0")
    lock = BoardLock("bench1", "esp32-0").acquire(timeout=5)
    try:
        with pytest.warns(LeftOnWarning, match=rf"^board esp32-0 of rig bench1 was left switched on by pid "
                                               rf"{proc.pid} \(hold_board\.py "):
            _switch_off_if_left_on(board, lock)
    finally:
        lock.release()
    assert board.power.calls == ["off"]
