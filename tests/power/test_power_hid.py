"""LCUS HID and dcttech USBRelay boards at the hidapi boundary: a stand-in ``hid`` module in ``sys.modules``."""

from __future__ import annotations

import sys

import pytest
from power_fakes import DcttechBoard, FakeHidModule, HidBoard

from harness.power import PowerSwitchConfigError, PowerSwitchError, make_switch
from harness.power.lcus_hid import LcusHidSwitch
from harness.power.usbrelay_hid import UsbRelayHidSwitch


@pytest.fixture
def hid_bus(monkeypatch):
    """Factory: install a fake ``hid`` module with these boards where the drivers import it."""

    def install(*boards: HidBoard) -> FakeHidModule:
        module = FakeHidModule(*boards)
        monkeypatch.setitem(sys.modules, "hid", module)
        return module

    return install


def lcus_hid_board(path: bytes = b"/dev/hidraw3", serial: str = "") -> HidBoard:
    return HidBoard(path, 0x5131, 0x2007, product="USB Relay", serial=serial)


# -- LCUS HID ------------------------------------------------------------------------------------------------------


def test_lcus_hid_writes_the_lcus_frame_behind_report_number_0(hid_bus):
    board = lcus_hid_board()
    hid_bus(board)
    with make_switch("lcus_hid", {"channel": 2}, "dut") as switch:
        switch.on()
        switch.cycle(off_time=0.05)
        assert switch.state() is None
    assert board.writes == [bytes.fromhex(frame) for frame in
                            ("00 A0 02 01 A3", "00 A0 02 00 A2", "00 A0 02 01 A3")]
    assert board.open_handles == 0


def test_lcus_hid_by_path_and_by_serial(hid_bus):
    first, second = lcus_hid_board(b"/dev/hidraw3", "A1"), lcus_hid_board(b"/dev/hidraw4", "B2")
    bus = hid_bus(first, second)
    LcusHidSwitch(channel=1, path="/dev/hidraw4").off()
    LcusHidSwitch(channel=1, serial="A1").on()
    assert second.writes == [bytes.fromhex("00 A0 01 00 A1")]
    assert first.writes == [bytes.fromhex("00 A0 01 01 A2")]
    assert ("open_path", b"/dev/hidraw4") in bus.calls and ("open_path", b"/dev/hidraw3") in bus.calls


def test_lcus_hid_refuses_to_guess_between_two_boards(hid_bus):
    hid_bus(lcus_hid_board(b"/dev/hidraw3"), lcus_hid_board(b"/dev/hidraw4"))
    with pytest.raises(PowerSwitchError) as e:
        LcusHidSwitch(channel=1).on()
    assert str(e.value) == ("LCUS HID relay (the only board) channel 1: expected one board, found 2 "
                            "(/dev/hidraw3, /dev/hidraw4); choose one with power.path")


def test_lcus_hid_unplugged_board(hid_bus):
    board = lcus_hid_board()
    hid_bus(board)
    switch = LcusHidSwitch(channel=1, path="/dev/hidraw3")
    switch.on()
    board.fail_io = True
    with pytest.raises(PowerSwitchError, match=r"^LCUS HID relay /dev/hidraw3 channel 1: sent output report "
                                               r"A0 01 00 A1, expected 5 bytes written: write error"):
        switch.off()
    with pytest.raises(PowerSwitchError, match=r"^LCUS HID relay /dev/hidraw9 channel 1: cannot open HID device "
                                               r"/dev/hidraw9: open failed$"):
        LcusHidSwitch(channel=1, path="/dev/hidraw9").on()


# -- dcttech USBRelay ------------------------------------------------------------------------------------------------


def test_usbrelay_feature_reports_and_state_bitmask(hid_bus):
    board = DcttechBoard(b"/dev/hidraw2", "QAAMZ", relays=2)
    hid_bus(board)
    with make_switch("usbrelay_hid", {"serial": "QAAMZ", "channel": 2}, "dut") as switch:
        switch.on()
        assert board.mask == 0b10
        assert switch.state() is True
        switch.off()
        assert switch.state() is False
    assert board.feature_reports == [bytes.fromhex("00 FF 02 00 00 00 00 00 00"),
                                     bytes.fromhex("00 FD 02 00 00 00 00 00 00")]


def test_usbrelay_finds_the_board_by_its_feature_report_id(hid_bus):
    # all dcttech boards share one USB serial; the id in the feature report tells them apart
    boards = [DcttechBoard(b"1-1.2:1.0", "AAAAA", relays=4), DcttechBoard(b"1-1.3:1.0", "BBBBB", relays=4)]
    hid_bus(*boards)
    switch = UsbRelayHidSwitch(channel=4, serial="BBBBB")
    switch.cycle(off_time=0.05)
    assert boards[0].feature_reports == [] and boards[0].open_handles == 0
    assert boards[1].feature_reports == [bytes.fromhex("00 FD 04 00 00 00 00 00 00"),
                                         bytes.fromhex("00 FF 04 00 00 00 00 00 00")]
    assert boards[1].mask == 0b1000
    with pytest.raises(PowerSwitchError, match=r"expected a board with id 'CCCCC', found ids: AAAAA, BBBBB$"):
        UsbRelayHidSwitch(channel=1, serial="CCCCC").on()
    by_path = UsbRelayHidSwitch(channel=1, path="1-1.2:1.0")
    by_path.on()
    assert boards[0].mask == 0b0001
    switch.close()
    by_path.close()


def test_usbrelay_a_command_the_board_ignored_is_caught_by_the_read_back(hid_bus):
    hid_bus(DcttechBoard(b"/dev/hidraw2", "QAAMZ", ignores_commands=True))
    with pytest.raises(PowerSwitchError) as e:
        UsbRelayHidSwitch(channel=1).on()
    assert str(e.value) == ("USBRelay HID (the only board) relay 1: sent feature report FF 01 00 00 00 00 00 00, "
                            "expected relay 1 on, the board reports state byte 00")


def test_usbrelay_channel_beyond_the_board(hid_bus):
    hid_bus(DcttechBoard(b"/dev/hidraw2", "QAAMZ", relays=2))
    with pytest.raises(PowerSwitchConfigError, match=r"^power.channel: expected an integer 1..2 \(.*is a USBRelay2\), "
                                                     r"got 4$"):
        UsbRelayHidSwitch(channel=4).on()


def test_usbrelay_unplugged_during_read(hid_bus):
    board = DcttechBoard(b"/dev/hidraw2", "QAAMZ")
    hid_bus(board)
    switch = UsbRelayHidSwitch(channel=1, serial="QAAMZ")
    switch.on()
    board.fail_io = True
    with pytest.raises(PowerSwitchError, match=r"^USBRelay HID serial QAAMZ relay 1: read the feature report, "
                                               r"expected an 8-byte feature report: write error"):
        switch.state()


# -- the library itself --------------------------------------------------------------------------------------------


def test_missing_hidapi_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", None)  # import hid -> ImportError
    for kind in ("lcus_hid", "usbrelay_hid"):
        with pytest.raises(PowerSwitchError, match=r"needs the hidapi package: pip install 'esp-ota-hil\[hw\]'"):
            make_switch(kind, {"channel": 1}, "dut")


def test_bad_options_fail_before_the_library_is_even_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", None)
    with pytest.raises(PowerSwitchConfigError, match=r"^power.channel: expected an integer 1..8, got 9$"):
        make_switch("usbrelay_hid", {"channel": 9}, "dut")
    with pytest.raises(PowerSwitchConfigError, match=r"^power.path, power.serial: expected one of them, got both$"):
        make_switch("lcus_hid", {"path": "/dev/hidraw1", "serial": "X"}, "dut")


def test_creating_a_switch_touches_no_device(hid_bus):
    bus = hid_bus(DcttechBoard(b"/dev/hidraw2", "QAAMZ"), lcus_hid_board())
    make_switch("usbrelay_hid", {"channel": 1}, "a")
    make_switch("lcus_hid", {"channel": 1}, "b")
    assert bus.calls == []
