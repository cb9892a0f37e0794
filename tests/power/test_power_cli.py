"""uhubctl, ykushcmd and user commands at the process level: fake executables that record their argv."""

from __future__ import annotations

import sys

import pytest
from power_fakes import COMMAND_BODY, UHUBCTL_BODY, YKUSHCMD_BODY, FakeTool

from harness.power import PowerSwitchConfigError, PowerSwitchError, make_switch
from harness.power.command import CommandSwitch
from harness.power.uhubctl import UhubctlSwitch
from harness.power.ykush import YkushSwitch

# -- uhubctl -------------------------------------------------------------------------------------------------------


@pytest.fixture
def uhubctl(tool_dir):
    return FakeTool(tool_dir, "uhubctl", UHUBCTL_BODY, {"ports": {"2": True}})


def test_uhubctl_arguments_and_port_status(uhubctl):
    with make_switch("uhubctl", {"location": "1-1.4", "port": "2", "repeat_off": 5}, "dut") as switch:
        assert switch.state() is True
        switch.off()
        assert switch.state() is False
        switch.cycle(off_time=0.05)
    assert uhubctl.calls == [
        ["-l", "1-1.4", "-p", "2"],
        ["-l", "1-1.4", "-p", "2", "-a", "off", "-r", "5"],
        ["-l", "1-1.4", "-p", "2"],
        ["-l", "1-1.4", "-p", "2", "-a", "off", "-r", "5"],
        ["-l", "1-1.4", "-p", "2", "-a", "on"],
    ]
    assert uhubctl.load()["ports"] == {"2": True}


def test_uhubctl_a_gang_switched_hub_that_ignores_the_request(uhubctl):
    uhubctl.set(gang=True)
    switch = UhubctlSwitch("1-1.4", 2)
    with pytest.raises(PowerSwitchError) as e:
        switch.off()
    assert str(e.value) == "uhubctl hub 1-1.4 port 2: ran uhubctl -a off, expected port 2 off, the hub reports it on"


def test_uhubctl_exit_status_and_last_words(uhubctl):
    uhubctl.set(fail=True)
    switch = UhubctlSwitch("3-9", 1, uhubctl=str(uhubctl.path))
    with pytest.raises(PowerSwitchError) as e:
        switch.on()
    assert str(e.value) == (f"uhubctl hub 3-9 port 1: ran {uhubctl.path} -l 3-9 -p 1 -a on, expected port 1 "
                            f"switched on: exit status 1: No compatible devices detected at location 3-9!")


def test_uhubctl_not_installed(tool_dir):
    switch = UhubctlSwitch("1-1", 1)
    with pytest.raises(PowerSwitchError, match=r"^uhubctl hub 1-1 port 1: ran uhubctl -l 1-1 -p 1, expected the "
                                               r"status of port 1: command not found: uhubctl$"):
        switch.state()


# -- ykushcmd ------------------------------------------------------------------------------------------------------


@pytest.fixture
def ykushcmd(tool_dir):
    return FakeTool(tool_dir, "ykushcmd", YKUSHCMD_BODY, {"ports": {"1": False, "2": False, "3": False}})


def test_ykush_up_down_and_get_by_serial(ykushcmd):
    with make_switch("ykush", {"serial": "YK21364", "port": 2}, "dut") as switch:
        switch.on()
        switch.off()
        assert switch.state() is False
    assert ykushcmd.calls == [
        ["-s", "YK21364", "-u", "2"], ["-s", "YK21364", "-g", "2"],
        ["-s", "YK21364", "-d", "2"], ["-s", "YK21364", "-g", "2"],
        ["-s", "YK21364", "-g", "2"],
    ]


def test_ykush3_and_ykush_xs_command_lines(ykushcmd):
    YkushSwitch(port=3, board="ykush3", serial="Y3N10214").cycle(off_time=0.05)
    YkushSwitch(board="ykushxs").on()
    assert ykushcmd.calls == [
        ["ykush3", "-s", "Y3N10214", "-d", "3"], ["ykush3", "-s", "Y3N10214", "-g", "3"],
        ["ykush3", "-s", "Y3N10214", "-u", "3"], ["ykush3", "-s", "Y3N10214", "-g", "3"],
        ["ykushxs", "-u"], ["ykushxs", "-g"],
    ]


def test_ykush_exits_0_without_a_board_and_the_check_catches_it(ykushcmd):
    ykushcmd.set(present=False)
    switch = YkushSwitch(port=1, serial="YK00000")
    with pytest.raises(PowerSwitchError) as e:
        switch.on()
    assert str(e.value) == ("YKUSH YK00000 port 1: ran ykushcmd -s YK00000 -g 1, expected 'Downstream port 1 is "
                            "ON|OFF', got: No YKUSH boards found.")


def test_ykush_port_out_of_range_is_a_config_error():
    with pytest.raises(PowerSwitchConfigError, match=r"^power.port: expected an integer 1..3, got 4$"):
        make_switch("ykush", {"port": 4}, "dut")


# -- user commands -------------------------------------------------------------------------------------------------


def test_command_switch_runs_the_given_command_lines(tool_dir):
    relay = FakeTool(tool_dir, "relayctl", COMMAND_BODY, {"stdout": "ON\n"})
    options = {"cmd_on": "relayctl --board 'lab 3' on", "cmd_off": ["relayctl", "--board", "lab 3", "off"],
               "cmd_state": "relayctl --board 'lab 3' get"}
    with make_switch("command", options, "dut") as switch:
        switch.on()
        switch.cycle(off_time=0.05)
        assert switch.state() is True
    assert relay.calls == [
        ["--board", "lab 3", "on"], ["--board", "lab 3", "off"], ["--board", "lab 3", "on"],
        ["--board", "lab 3", "get"],
    ]


def test_command_switch_cycle_command_replaces_off_wait_on(tool_dir):
    pdu = FakeTool(tool_dir, "pdu", COMMAND_BODY)
    switch = CommandSwitch("pdu on 4", "pdu off 4", cmd_cycle="pdu reboot 4")
    switch.cycle()
    assert switch.state() is None
    assert pdu.calls == [["reboot", "4"]]


def test_command_switch_non_zero_exit(tool_dir):
    FakeTool(tool_dir, "pdu", COMMAND_BODY, {"exit": 3, "stderr": "pdu: outlet 9 does not exist\n"})
    switch = CommandSwitch("pdu on 9", "pdu off 9", name="bench-pdu")
    with pytest.raises(PowerSwitchError) as e:
        switch.off()
    assert str(e.value) == ("power command bench-pdu: ran pdu off 9, expected exit status 0: exit status 3: "
                            "pdu: outlet 9 does not exist")


def test_command_switch_state_must_print_on_or_off(tool_dir):
    FakeTool(tool_dir, "pdu", COMMAND_BODY, {"stdout": "outlet 4 is probably fine\n"})
    switch = CommandSwitch("pdu on 4", "pdu off 4", cmd_state="pdu status 4", name="bench-pdu")
    with pytest.raises(PowerSwitchError, match=r"ran pdu status 4, expected 'on' or 'off' on standard output, got: "
                                               r"'outlet 4 is probably fine'$"):
        switch.state()


def test_command_switch_timeout_kills_the_command(tool_dir):
    FakeTool(tool_dir, "pdu", COMMAND_BODY, {"sleep": 30})
    switch = CommandSwitch([sys.executable, "-c", "pass"], "pdu off 1", timeout=0.5)
    with pytest.raises(PowerSwitchError, match=r"ran pdu off 1, expected exit status 0: still running after "
                                               r"0.5 s, killed$"):
        switch.off()
