"""Opening and closing an ``rfc2217://`` port sleeps no fixed time (harness.transport).

pyserial's RFC 2217 client sleeps 0.05 s before each check while it opens and 0.3 s after it
closes. :class:`harness.transport.FastRfc2217Serial` waits for the server's answers instead;
pyserial's own client, used in the same process, keeps sleeping as it always did. ``time.sleep``
is replaced by a recorder that notes each call made by the test's thread (and still sleeps).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time

import pytest
import serial
import serial.rfc2217

from harness.bootstate import FlashFile
from harness.flashing import Flasher
from harness.transport import FastRfc2217Serial, open_port

pytestmark = pytest.mark.timeout(180)

CYCLES = 5
BANNER = rb"rst:0x1 \(POWERON_RESET\)"


class SleepRecorder:
    """Replaces ``time.sleep``: while recording, every call from ``thread`` is noted, then it sleeps."""

    def __init__(self, real):
        self.real = real
        self.thread = threading.current_thread()
        self.active = False
        self.calls: list[float] = []
        self.other_threads: list[float] = []

    def __call__(self, seconds: float) -> None:
        if self.active:
            (self.calls if threading.current_thread() is self.thread else self.other_threads).append(seconds)
        self.real(seconds)

    @contextlib.contextmanager
    def recording(self):
        self.calls.clear()
        self.active = True
        try:
            yield self.calls
        finally:
            self.active = False


@pytest.fixture
def sleeps(monkeypatch) -> SleepRecorder:
    recorder = SleepRecorder(time.sleep)
    monkeypatch.setattr(time, "sleep", recorder)
    return recorder


@pytest.fixture
def board(start_board):
    return start_board("esp32")


def power_on_banner(port: serial.SerialBase, wait: float = 10.0) -> bytes:
    """Pulse EN through RTS (IO0 released) as a DevKit does and read until the ROM's power-on line."""
    port.dtr = False
    port.rts = True
    time.sleep(0.1)
    port.rts = False
    seen = b""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not re.search(BANNER, seen):
        seen += port.read(4096)
    return seen


def test_open_and_close_sleep_no_fixed_time(board, sleeps):
    for n in range(CYCLES):
        with sleeps.recording() as calls:
            port = open_port(board.serial_url, 115200, timeout=0.2, release_lines=n % 2 == 0)
        assert isinstance(port, FastRfc2217Serial) and port.is_open
        assert [s for s in calls if s >= 0.05] == [], f"open #{n + 1} slept {calls}"
        with sleeps.recording() as calls:
            port.close()
        assert not port.is_open
        assert [s for s in calls if s >= 0.05] == [], f"close #{n + 1} slept {calls}"
        assert port._thread is None and port._socket is None


def test_the_port_still_works_after_fast_opens_and_closes(board, sleeps):
    for _ in range(CYCLES):
        open_port(board.serial_url, 115200, timeout=0.2).close()
    with sleeps.recording() as calls:
        port = open_port(board.serial_url, 115200, timeout=0.2, release_lines=True)
    try:
        assert [s for s in calls if s >= 0.05] == []
        out = power_on_banner(port)
        assert re.search(BANNER, out), out[-500:]
        assert b"ets " in out
    finally:
        port.close()
    # the next session (esptool, through the same client) finds the server free and answering
    with Flasher(board.serial_url, chip="esp32") as f:
        assert f.md5(0x0, 0x4000) == FlashFile(board.info["flash_file"]).md5(0x0, 0x4000)


def test_pyserial_s_own_client_still_sleeps_as_before_and_works(board, sleeps):
    with sleeps.recording() as calls:
        port = open_port(board.serial_url, 115200, timeout=0.2)
        port.close()
    assert [s for s in calls if s >= 0.05] == []
    with sleeps.recording() as calls:
        stock = serial.rfc2217.Serial(board.serial_url, baudrate=115200, timeout=0.2)
    try:
        assert type(stock) is serial.rfc2217.Serial and stock.is_open
        # pyserial polls for the option negotiation with its 0.05 s sleeps, which reach time.sleep
        assert 0.05 in calls, calls
        out = power_on_banner(stock)
        assert re.search(BANNER, out), out[-500:]
    finally:
        with sleeps.recording() as calls:
            stock.close()
    assert 0.3 in calls, calls  # and its fixed sleep after closing
    # ours is unaffected by the stock client having run in this thread
    with sleeps.recording() as calls:
        port = open_port(board.serial_url, 115200, timeout=0.2, release_lines=True)
    try:
        assert [s for s in calls if s >= 0.05] == []
        assert re.search(BANNER, power_on_banner(port))
    finally:
        port.close()


def test_a_sleep_in_another_thread_is_a_plain_sleep_while_our_port_waits(board, sleeps):
    """pyserial looks ``time`` up in serial.rfc2217: only the thread of the opening port gets the answer clock."""
    port = open_port(board.serial_url, 115200, timeout=0.2)
    try:
        sleeps.active = True
        with port._waiting():
            done = threading.Event()

            def other():
                serial.rfc2217.time.sleep(0.06)
                done.set()

            t = threading.Thread(target=other)
            t.start()
            t.join(10)
            assert done.is_set()
    finally:
        sleeps.active = False
        port.close()
    assert sleeps.other_threads == [0.06]
    assert sleeps.calls == []  # the port's own thread did not sleep


def test_close_without_open_and_twice_is_quiet(board, sleeps):
    port = open_port(board.serial_url, 115200, timeout=0.2)
    with sleeps.recording() as calls:
        port.close()
        port.close()
    assert calls == [] or max(calls) < 0.05
    unopened = FastRfc2217Serial(None, baudrate=115200)
    unopened.close()
    assert not unopened.is_open
