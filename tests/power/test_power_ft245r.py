"""FT245R bit-bang relay boards at the pyftdi boundary: stand-in ``pyftdi`` modules in ``sys.modules``."""

from __future__ import annotations

import sys

import pytest
from power_fakes import Ft245rChip, fake_pyftdi

from harness.power import PowerSwitchConfigError, PowerSwitchError, ft245r, make_switch
from harness.power.ft245r import Ft245rSwitch

URL = "ftdi://ftdi:232r:A50285BI/1"


@pytest.fixture
def ftdi_bus(monkeypatch):
    """Factory: install fake pyftdi modules that see these chips (by URL) where the driver imports pyftdi."""

    def install(chips: dict[str, Ft245rChip]) -> None:
        for name, module in fake_pyftdi(chips).items():
            monkeypatch.setitem(sys.modules, name, module)

    yield install
    assert ft245r._boards == {}, "every closed switch releases its board"


def writes(chip: Ft245rChip) -> list[bytes]:
    return [entry[1] for entry in chip.log if entry[0] == "write_data"]


def test_relay_n_is_bit_n_minus_1_and_other_relays_are_kept(ftdi_bus):
    chip = Ft245rChip(pins=0b1000_0001)  # relays 1 and 8 power other boards
    ftdi_bus({URL: chip})
    with make_switch("ft245r", {"serial": "A50285BI", "channel": 3}, "dut") as switch:
        switch.on()
        assert chip.pins == 0b1000_0101
        assert switch.state() is True
        switch.off()
        assert switch.state() is False
    assert chip.log[0] == ("open", URL, 0xFF)
    assert writes(chip) == [bytes([0b1000_0101]), bytes([0b1000_0001])]
    assert chip.log[-1] == ("close", True), "closing must not reset the pins (that drops every relay)"


def test_cycle_and_inverted_boards(ftdi_bus):
    chip = Ft245rChip(pins=0xFF)  # active-low board, all relays open
    ftdi_bus({URL: chip})
    switch = Ft245rSwitch(channel=8, url=URL, invert=True)
    switch.cycle(off_time=0.05)
    assert writes(chip) == [bytes([0xFF]), bytes([0x7F])]
    assert switch.state() is True
    switch.close()


def test_the_relays_of_one_board_share_one_open_handle(ftdi_bus):
    chip = Ft245rChip()
    ftdi_bus({URL: chip})
    one, two = Ft245rSwitch(channel=1, url=URL), Ft245rSwitch(channel=2, url=URL)
    one.on()
    two.on()
    one.close()
    two.off()
    assert [e for e in chip.log if e[0] in ("open", "close")] == [("open", URL, 0xFF)]
    assert writes(chip) == [b"\x01", b"\x03", b"\x01"]
    two.close()
    assert chip.log[-1] == ("close", True)


def test_a_pin_that_does_not_follow_is_reported(ftdi_bus):
    ftdi_bus({URL: Ft245rChip(stuck_low=0b0000_0010)})
    switch = Ft245rSwitch(channel=2, url=URL)
    with pytest.raises(PowerSwitchError) as e:
        switch.on()
    assert str(e.value) == (f"FT245R relay {URL} relay 2: sent port byte 02, expected pin D1 high, read back 00")
    switch.close()


def test_a_failed_write_drops_the_handle_and_the_next_use_reopens(ftdi_bus):
    chip = Ft245rChip()
    ftdi_bus({URL: chip})
    switch = Ft245rSwitch(channel=1, url=URL)
    chip.fail_writes = True
    with pytest.raises(PowerSwitchError, match=rf"^FT245R relay {URL} relay 1: sent port byte 01, expected it "
                                               rf"written: UsbError: \[Errno 19\] No such device"):
        switch.on()
    chip.fail_writes = False
    switch.on()
    assert [e[0] for e in chip.log if e[0] in ("open", "close")] == ["open", "close", "open"]
    switch.close()


def test_no_such_device(ftdi_bus):
    ftdi_bus({})
    with pytest.raises(PowerSwitchError, match=rf"^FT245R relay {URL} relay 1: cannot open in bit-bang mode: "
                                               rf"No USB device matches URL {URL}$"):
        Ft245rSwitch(channel=1, url=URL).state()


def test_a_device_must_be_named():
    with pytest.raises(PowerSwitchConfigError, match=r"^power.url: missing, kind 'ft245r' needs it"):
        make_switch("ft245r", {"channel": 1}, "dut")


def test_missing_pyftdi_says_how_to_install_it(monkeypatch):
    for name in ("pyftdi", "pyftdi.ftdi", "pyftdi.usbtools"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(PowerSwitchError, match=r"needs the pyftdi package: pip install 'esp-ota-hil\[hw\]'"):
        make_switch("ft245r", {"url": URL}, "dut")
