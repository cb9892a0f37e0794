"""Numato USB relay modules at the byte level: a fake module console on a real pty."""

from __future__ import annotations

import re

import pytest

from harness.power import PowerSwitchError, make_switch
from harness.power.numato import NumatoSwitch


class FakeNumato:
    """The module's console: echoes each command, answers ``relay read`` with on/off, then the prompt."""

    def __init__(self, relays: int = 16, echo: bool = True):
        self.relays = {self.name(i): False for i in range(relays)}
        self.echo = echo
        self.pending = b""

    @staticmethod
    def name(i: int) -> str:
        return str(i) if i < 10 else chr(ord("A") + i - 10)

    def __call__(self, data: bytes) -> bytes:
        self.pending += data
        answer = b""
        while b"\r" in self.pending:
            line, _, self.pending = self.pending.partition(b"\r")
            answer += (line if self.echo else b"") + b"\n\r"
            match = re.fullmatch(rb"relay (on|off|read) (\w)", line)
            if match and match.group(2).decode() in self.relays:
                verb, relay = match.group(1), match.group(2).decode()
                if verb == b"read":
                    answer += (b"on" if self.relays[relay] else b"off") + b"\n\r"
                else:
                    self.relays[relay] = verb == b"on"
            answer += b">"
        return answer


def test_commands_are_text_with_cr_and_wait_for_the_echo(pty_device):
    module = FakeNumato()
    device = pty_device(module)
    with make_switch("numato", {"port": device.port, "channel": 2, "timeout": "0.5"}, "dut") as switch:
        switch.on()
        assert module.relays["2"] is True
        assert switch.state() is True
        switch.off()
        assert switch.state() is False
    assert device.received == b"relay on 2\rrelay read 2\rrelay off 2\rrelay read 2\r"


def test_relays_from_10_are_letters(pty_device):
    module = FakeNumato()
    device = pty_device(module)
    switch = NumatoSwitch(device.port, channel=11, timeout=0.5)
    switch.cycle(off_time=0.05)
    assert device.received == b"relay off B\rrelay on B\r"
    assert module.relays["B"] is True
    switch.close()


def test_a_module_that_does_not_answer_times_out(pty_device):
    device = pty_device(lambda data: b"")
    switch = NumatoSwitch(device.port, channel=0, timeout=0.3)
    with pytest.raises(PowerSwitchError) as e:
        switch.on()
    assert str(e.value) == (f"Numato relay {device.port} relay 0: sent 'relay on 0\\r', "
                            f"expected the command echoed, then the prompt: no answer within 0.3 s")
    switch.close()


def test_a_module_that_does_not_echo_is_reported(pty_device):
    device = pty_device(FakeNumato(echo=False))
    switch = NumatoSwitch(device.port, channel=1, timeout=0.3)
    with pytest.raises(PowerSwitchError, match=r"relay 1: sent 'relay read 1\\r', expected the echo, 'on' or "
                                               r"'off', then the prompt, got '.*' \(the module did not echo"):
        switch.state()
    switch.close()


def test_garbage_instead_of_on_or_off_is_reported(pty_device):
    device = pty_device(lambda data: data.replace(b"\r", b"\n\r") + b"relay busy\n\r>")
    switch = NumatoSwitch(device.port, channel=1, timeout=0.3)
    with pytest.raises(PowerSwitchError, match=r"then the prompt, got .*relay busy.*"
                                               r"\('relay busy' is not on/off\)"):
        switch.state()
    switch.close()


def test_a_missing_port_names_the_port(tmp_path):
    switch = NumatoSwitch(str(tmp_path / "ttyACM7"), channel=0)
    with pytest.raises(PowerSwitchError, match=r"^Numato relay .*ttyACM7 relay 0: cannot open serial port"):
        switch.off()
