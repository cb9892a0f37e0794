"""The virtual LCUS relay end to end: its process, driven through its pty by the real LcusSwitch,
switching fake virtual-board control endpoints."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from power_fakes import closed_port

from harness.power import PowerSwitchError, make_switch

ROOT = Path(__file__).resolve().parents[2]


class SimProcess:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.power.lcus_sim", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        assert ready, "the simulator printed nothing within 10 s"
        self.info = json.loads(self.proc.stdout.readline())

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, stderr = self.proc.communicate()
        return self.proc.returncode, stderr


@pytest.fixture
def start_sim() -> Iterator:
    sims: list[SimProcess] = []

    def start(*args: str) -> SimProcess:
        sim = SimProcess(*args)
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.stop()


def test_relays_switch_the_right_virtual_boards(start_sim, control_endpoint):
    board1, board2 = control_endpoint(), control_endpoint()
    sim = start_sim("--channels", "4", "--board", f"1={board1.url}", "--board", f"2={board2.url}")
    assert sim.info["pid"] == sim.proc.pid
    assert os.path.exists(sim.info["port"])

    relay2 = make_switch("lcus", {"port": sim.info["port"], "channel": 2, "channels": 4, "timeout": 1}, "esp32-b")
    relay3 = make_switch("lcus", {"port": sim.info["port"], "channel": 3, "channels": 4, "timeout": 1}, "spare")
    assert relay2.state() is False
    relay2.on()
    assert board2.wait_requests(1) == [{"cmd": "power", "on": True}]
    assert relay2.state() is True

    relay2.cycle(off_time=0.05)
    assert board2.wait_requests(3) == [{"cmd": "power", "on": True}, {"cmd": "power", "on": False},
                                       {"cmd": "power", "on": True}]
    relay3.on()  # nothing is wired to relay 3
    assert relay3.state() is True and relay2.state() is True
    relay2.off()
    assert board2.wait_requests(4)[-1] == {"cmd": "power", "on": False}
    assert board1.requests == []
    relay2.close()
    relay3.close()

    returncode, stderr = sim.stop()
    assert returncode == 0
    assert "channel 2 on -> " + board2.url in stderr and "channel 3 on\n" in stderr


def test_frames_with_a_bad_checksum_are_ignored_like_on_the_board(start_sim, control_endpoint):
    board = control_endpoint()
    sim = start_sim("--channels", "2", "--board", f"1={board.url}")
    with open(sim.info["port"], "r+b", buffering=0) as port:
        port.write(bytes.fromhex("A0 01 01 A3"))  # checksum off by one
        port.write(bytes.fromhex("55 A0 01 01 A2"))  # noise, then a good frame
    assert board.wait_requests(1) == [{"cmd": "power", "on": True}]
    time.sleep(0.1)
    assert len(board.requests) == 1


def test_the_lcus1_does_not_answer_the_status_query(start_sim):
    sim = start_sim("--channels", "1")
    relay = make_switch("lcus", {"port": sim.info["port"], "channels": 2, "timeout": 0.3}, "b")
    with pytest.raises(PowerSwitchError, match="sent FF, .*: no answer within 0.3 s"):
        relay.state()
    relay.close()


def test_an_unreachable_board_is_reported_and_the_relay_still_clicks(start_sim):
    url = f"tcp://127.0.0.1:{closed_port()}"
    sim = start_sim("--channels", "2", "--board", f"2={url}")
    relay = make_switch("lcus", {"port": sim.info["port"], "channel": 2, "channels": 2, "timeout": 1}, "b")
    relay.on()
    assert relay.state() is True
    relay.close()
    returncode, stderr = sim.stop()
    assert returncode == 0
    assert f"channel 2: virtual board {url} did not take power on" in stderr


def test_bad_arguments():
    proc = subprocess.run([sys.executable, "-m", "harness.power.lcus_sim", "--channels", "2", "--board",
                           "3=tcp://127.0.0.1:1"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2
    assert "--board 3=...: the board has channels 1..2" in proc.stderr
