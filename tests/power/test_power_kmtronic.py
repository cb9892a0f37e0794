"""KMTronic USB relays at the byte level: a fake board on a real pty."""

from __future__ import annotations

import pytest

from harness.power import PowerSwitchError, make_switch
from harness.power.kmtronic import KmtronicSwitch


class FakeKmtronic:
    """``FF n 01``/``FF n 00`` switch; ``FF n 03`` -> ``FF n state``; ``FF 09 00`` -> one byte per relay."""

    def __init__(self, relays: int = 8):
        self.relays = [0] * relays
        self.pending = b""

    def __call__(self, data: bytes) -> bytes:
        self.pending += data
        answer = b""
        while len(self.pending) >= 3:
            head, n, op = self.pending[:3]
            self.pending = self.pending[3:]
            if head != 0xFF:
                continue
            if n == 0x09 and op == 0x00:
                answer += bytes(self.relays)
            elif op == 0x03:
                answer += bytes([0xFF, n, self.relays[n - 1]])
            elif op in (0, 1):
                self.relays[n - 1] = op
        return answer


def test_frames_for_on_off_and_read_one(pty_device):
    board = FakeKmtronic(relays=2)
    device = pty_device(board)
    with make_switch("kmtronic", {"port": device.port, "channel": 2, "relays": 2, "timeout": 0.5}, "dut") as switch:
        switch.on()
        assert switch.state() is True
        switch.off()
        assert switch.state() is False
    assert device.received == bytes.fromhex("FF 02 01  FF 02 03  FF 02 00  FF 02 03")


def test_read_all_on_the_eight_relay_board(pty_device):
    board = FakeKmtronic(relays=8)
    device = pty_device(board)
    switch = KmtronicSwitch(device.port, channel=7, status="all", timeout=0.5)
    switch.cycle(off_time=0.05)
    assert switch.state() is True
    assert board.relays == [0, 0, 0, 0, 0, 0, 1, 0]
    assert device.received == bytes.fromhex("FF 07 00  FF 07 01  FF 09 00")
    switch.close()


def test_status_none_never_reads(pty_device):
    device = pty_device(FakeKmtronic())
    switch = KmtronicSwitch(device.port, channel=1, status="none")
    assert switch.state() is None
    switch.close()
    assert device.received == b""


def test_no_answer_to_the_read_times_out(pty_device):
    device = pty_device(lambda data: b"")
    switch = KmtronicSwitch(device.port, channel=1, timeout=0.3)
    with pytest.raises(PowerSwitchError) as e:
        switch.state()
    assert str(e.value) == (f"KMTronic relay {device.port} relay 1: sent FF 01 03, expected FF 01 00 or FF 01 01: "
                            f"no answer within 0.3 s")
    switch.close()


def test_an_answer_for_another_relay_is_garbage(pty_device):
    device = pty_device(lambda data: bytes.fromhex("FF 05 01"))
    switch = KmtronicSwitch(device.port, channel=1, timeout=0.3)
    with pytest.raises(PowerSwitchError, match=r"sent FF 01 03, expected FF 01 00 or FF 01 01, got FF 05 01"):
        switch.state()
    switch.close()
