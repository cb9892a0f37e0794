"""LCUS serial relays at the byte level: a fake board on a real pty, opened by the driver with pyserial."""

from __future__ import annotations

import pytest

from harness.power import PowerSwitchError, make_switch
from harness.power.lcus import LcusSwitch

CH1_ON = bytes.fromhex("A0 01 01 A2")
CH1_OFF = bytes.fromhex("A0 01 00 A1")
CH3_ON = bytes.fromhex("A0 03 01 A4")
CH3_OFF = bytes.fromhex("A0 03 00 A3")


class FakeLcus4:
    """An LCUS-4: applies valid frames, answers FF with its four status lines."""

    def __init__(self) -> None:
        self.relays = [False] * 4
        self.pending = b""

    def __call__(self, data: bytes) -> bytes:
        self.pending += data
        answer = b""
        while self.pending:
            if self.pending[0] == 0xFF:
                answer += b"".join(b"CH%d:%s \r\n" % (n, b"ON" if on else b"OFF")
                                   for n, on in enumerate(self.relays, 1))
                self.pending = self.pending[1:]
            elif self.pending[0] != 0xA0:
                self.pending = self.pending[1:]
            elif len(self.pending) < 4:
                break
            else:
                start, ch, state, total = self.pending[:4]
                if total == (start + ch + state) & 0xFF:
                    self.relays[ch - 1] = bool(state)
                self.pending = self.pending[4:]
        return answer


def test_on_off_send_the_frames_of_the_datasheet(pty_device):
    board = FakeLcus4()
    device = pty_device(board)
    with make_switch("lcus", {"port": device.port, "channel": "3"}, "dut") as switch:
        switch.on()
        assert device.wait_received(4) == CH3_ON
        switch.off()
        assert device.wait_received(8) == CH3_ON + CH3_OFF
    assert board.relays == [False, False, False, False]


def test_cycle_holds_the_supply_off_for_the_off_time(pty_device):
    device = pty_device(lambda data: b"")
    switch = LcusSwitch(device.port, channel=1)
    switch.cycle(off_time=0.4)
    assert device.wait_received(8) == CH1_OFF + CH1_ON
    # measured where the device sees the bytes, so a little scheduling delay is allowed for
    assert device.arrival(4) - device.arrival(3) >= 0.3
    switch.close()


def test_state_asks_a_multi_channel_board_with_ff(pty_device):
    board = FakeLcus4()
    device = pty_device(board)
    switch = LcusSwitch(device.port, channel=3, channels=4, timeout=0.5)
    assert switch.state() is False
    switch.on()
    assert switch.state() is True
    assert board.relays == [False, False, True, False]
    assert device.wait_received(6) == b"\xff" + CH3_ON + b"\xff"
    switch.close()


def test_lcus1_has_no_status_query_so_state_is_unknown(pty_device):
    device = pty_device(lambda data: b"")
    switch = LcusSwitch(device.port, channel=1, channels=1)
    assert switch.state() is None
    switch.close()
    assert device.received == b""


def test_the_port_is_reopened_after_the_driver_closed_it(pty_device):
    device = pty_device(lambda data: b"")
    switch = LcusSwitch(device.port, channel=1)
    switch.on()
    switch.close()
    switch.off()
    assert device.wait_received(8) == CH1_ON + CH1_OFF
    switch.close()


def test_a_board_that_does_not_answer_the_status_query_times_out(pty_device):
    device = pty_device(lambda data: b"")
    switch = LcusSwitch(device.port, channel=2, channels=2, timeout=0.3)
    with pytest.raises(PowerSwitchError) as e:
        switch.state()
    message = str(e.value)
    assert "\n" not in message
    assert device.port in message and "channel 2" in message
    assert "expected a 'CH2:ON' or 'CH2:OFF' line" in message and "no answer within 0.3 s" in message
    switch.close()


def test_a_garbage_answer_names_what_came_back(pty_device):
    device = pty_device(lambda data: b"\x13\x37 RELAY OK\r\n")
    switch = LcusSwitch(device.port, channel=1, channels=4, timeout=0.3)
    with pytest.raises(PowerSwitchError, match=r"sent FF, expected a 'CH1:ON' or 'CH1:OFF' line, got .*RELAY OK"):
        switch.state()
    switch.close()


def test_a_port_that_does_not_exist_is_one_error_line(tmp_path):
    port = str(tmp_path / "ttyUSB9")
    switch = LcusSwitch(port, channel=1)
    with pytest.raises(PowerSwitchError) as e:
        switch.on()
    message = str(e.value)
    assert message.startswith(f"LCUS relay {port} channel 1: cannot open serial port {port}:")
    assert "\n" not in message
    assert e.value.__cause__ is None and e.value.__suppress_context__
