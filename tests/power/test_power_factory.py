"""make_switch: every kind from rig-file options, and option errors that name the option before any device is used."""

from __future__ import annotations

import pytest

from harness.power import (
    KINDS,
    CommandSwitch,
    KmtronicSwitch,
    LcusSwitch,
    NumatoSwitch,
    PowerSwitchConfigError,
    PowerSwitchError,
    ShellyGen1Switch,
    ShellyGen2Switch,
    TasmotaSwitch,
    UhubctlSwitch,
    VirtualPowerSwitch,
    YkushSwitch,
    make_switch,
)


def test_kinds():
    assert KINDS == ("lcus", "lcus_hid", "usbrelay_hid", "ft245r", "numato", "kmtronic", "tasmota", "shelly",
                     "uhubctl", "ykush", "command", "virtual")


@pytest.mark.parametrize(("kind", "options", "cls"), [
    ("lcus", {"port": "/dev/ttyUSB0", "channel": "2", "channels": "4", "timeout": "0.5"}, LcusSwitch),
    ("numato", {"port": "rfc2217://relayhost:4000", "channel": 12}, NumatoSwitch),
    ("kmtronic", {"port": "/dev/ttyUSB1", "status": "all", "relays": 4, "channel": 4}, KmtronicSwitch),
    ("tasmota", {"host": "plug-3.lan", "password": 1234}, TasmotaSwitch),
    ("shelly", {"host": "10.0.0.9", "generation": "1", "password": "x"}, ShellyGen1Switch),
    ("shelly", {"host": "10.0.0.9", "auto_off": 120}, ShellyGen2Switch),
    ("uhubctl", {"location": "1-1", "port": 3, "uhubctl": "sudo -n uhubctl"}, UhubctlSwitch),
    ("ykush", {"port": "1", "board": "ykush3"}, YkushSwitch),
    ("command", {"cmd_on": "pdu on 1", "cmd_off": "pdu off 1"}, CommandSwitch),
    ("virtual", {"control": "tcp://127.0.0.1:4000"}, VirtualPowerSwitch),
])
def test_every_kind_is_built_from_rig_options(kind, options, cls):
    switch = make_switch(kind, options, "board-7")
    assert type(switch) is cls
    assert switch.name == "board-7"
    assert switch.default_off_time > 0


def test_off_time_applies_to_every_kind():
    assert make_switch("lcus", {"port": "/dev/ttyUSB0", "off_time": "2.5"}, "b").default_off_time == 2.5
    assert make_switch("virtual", {"control": "tcp://127.0.0.1:1", "off_time": 0.2}, "b").default_off_time == 0.2


@pytest.mark.parametrize(("kind", "options", "message"), [
    ("relay", {}, "power.kind: expected one of lcus, lcus_hid, usbrelay_hid, ft245r, numato, kmtronic, tasmota, "
                  "shelly, uhubctl, ykush, command, virtual, got 'relay'"),
    ("lcus", {"port": "/dev/ttyUSB0", "channel": "x"}, "power.channel: expected an integer 1..8, got 'x'"),
    ("lcus", {"port": "/dev/ttyUSB0", "channel": 0}, "power.channel: expected an integer 1..8, got 0"),
    ("lcus", {"port": "/dev/ttyUSB0", "channel": True}, "power.channel: expected an integer 1..8, got True"),
    ("lcus", {"port": "/dev/ttyUSB0", "channels": 3}, "power.channels: expected 1, 2, 4 or 8 (the N of LCUS-N), "
                                                      "got 3"),
    ("lcus", {"port": "/dev/ttyUSB0", "channel": 3, "channels": 2},
     "power.channel: expected an integer 1..2 (power.channels), got 3"),
    ("lcus", {"channel": 1}, "power.port: missing, kind 'lcus' needs it"),
    ("lcus", {"port": ""}, "power.port: expected a non-empty string, got ''"),
    ("lcus", {"port": "/dev/ttyUSB0", "chanel": 2},
     "power.chanel: not an option of kind 'lcus' (known: port, channel, channels, baudrate, timeout, off_time)"),
    ("lcus", {"port": "/dev/ttyUSB0", "timeout": "soon"}, "power.timeout: expected a number of seconds > 0, "
                                                          "got 'soon'"),
    ("lcus", {"port": "/dev/ttyUSB0", "off_time": 0}, "power.off_time: expected a number of seconds > 0, got 0"),
    ("numato", {"port": "/dev/ttyACM0", "channel": 32}, "power.channel: expected an integer 0..31, got 32"),
    ("kmtronic", {"port": "/dev/ttyUSB1", "status": "some"},
     "power.status: expected one of single, all, none, got 'some'"),
    ("kmtronic", {"port": "/dev/ttyUSB1", "relays": 2, "channel": 3},
     "power.channel: expected an integer 1..2, got 3"),
    ("tasmota", {"host": None}, "power.host: expected a non-empty string, got None"),
    ("shelly", {"host": "h", "generation": "two"}, "power.generation: expected an integer 1..9, got 'two'"),
    ("shelly", {"host": "h", "username": "bob"}, "power.username: expected 'admin' (fixed on Shelly Gen2+), "
                                                 "got 'bob'"),
    ("shelly", {"host": "h", "auto_off": -5}, "power.auto_off: expected a number of seconds > 0, got -5"),
    ("uhubctl", {"location": "1-1"}, "power.port: missing, kind 'uhubctl' needs it"),
    ("uhubctl", {"location": "1-1", "port": 1, "uhubctl": "'unclosed"},
     "power.uhubctl: expected a command line (No closing quotation), got \"'unclosed\""),
    ("ykush", {"board": "ykush9", "port": 1}, "power.board: expected one of ykush, ykush3, ykushxs, got 'ykush9'"),
    ("ykush", {"board": "ykushxs", "port": 2}, "power.port: expected no port on a YKUSH XS (it has one), got 2"),
    ("command", {"cmd_on": "x"}, "power.cmd_off: missing, kind 'command' needs it"),
    ("command", {"cmd_on": [], "cmd_off": "x"},
     "power.cmd_on: expected a command line (a string or a list of arguments), got []"),
    ("virtual", {"control": "127.0.0.1:4000"}, "power.control: expected a tcp://host:port URL, got '127.0.0.1:4000'"),
    ("ft245r", {"url": "ftdi://ftdi:232r:X/1", "serial": "X"}, "power.url, power.serial: expected one of them, "
                                                                "got both"),
])
def test_option_errors_name_the_option(kind, options, message):
    with pytest.raises(PowerSwitchConfigError) as e:
        make_switch(kind, options, "b")
    assert str(e.value) == message
    assert isinstance(e.value, PowerSwitchError) and isinstance(e.value, ValueError)


def test_options_are_checked_before_the_port_is_opened(tmp_path):
    # the port does not exist: a driver that opened it first would fail with a port error instead
    with pytest.raises(PowerSwitchConfigError, match="power.baudrate"):
        make_switch("lcus", {"port": str(tmp_path / "ttyUSB0"), "baudrate": "fast"}, "b")


def test_virtual_switch_drives_the_board_control_endpoint(control_endpoint):
    board = control_endpoint()
    with make_switch("virtual", {"control": board.url}, "esp32-0") as switch:
        switch.cycle(off_time=0.01)
        assert switch.state() is True
    assert board.requests == [{"cmd": "power", "on": False}, {"cmd": "power", "on": True}, {"cmd": "status"}]
