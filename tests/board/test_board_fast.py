"""A virtual board prepared once and restored from its snapshot after that; boot states read from its flash file.

One virtual ESP32 of the ``emu`` rig is prepared for the whole module (esptool and mpremote, the
expensive part); every test starts with a prepare of its own, which restores the saved state.
What must hold: a repeat prepare needs neither esptool nor mpremote and gives the same board; a
config that differs only in a value writes only ``ota_config.json``; the flash file and esptool
agree on the boot state and on MD5s; only a read that went through esptool resets the board.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import harness.board
import harness.deploy
import harness.devices.micropython
from harness.board import Board, BoardError
from harness.bootstate import BootState, FlashFile, SlotState
from harness.devices import MicroPythonDevice
from harness.flashing import Flasher
from harness.rig import load_rig
from harness.scenario import OtaBench, OtaCase

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BOARD = "esp32-0"


class Prepared:
    """The module's bench and target, and what the first prepare and the first reads did."""

    def __init__(self, bench: OtaBench, target: OtaCase):
        self.bench = bench
        self.target = target
        self.board: Board = target.board
        self.first_calls: dict[str, int] = {}
        self.first_state: BootState | None = None
        self.first_read_reset: bool | None = None
        self.second_read_reset: bool | None = None


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Prepared:
    bench = OtaBench(load_rig("emu"), Path(tmp_path_factory.mktemp("board-fast")))
    try:
        target = OtaCase(bench, bench.board(BOARD), "firmware")
        p = Prepared(bench, target)
        calls = {"deploy": 0, "mpremote": 0, "flasher": 0}
        deploy, mpremote, flasher = harness.devices.micropython.deploy, harness.deploy.mpremote, Board.flasher

        def counting(name, real):
            def call(*args, **kwargs):
                calls[name] += 1
                return real(*args, **kwargs)
            return call

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(harness.devices.micropython, "deploy", counting("deploy", deploy))
            mp.setattr(harness.deploy, "mpremote", counting("mpremote", mpremote))
            mp.setattr(Board, "flasher", counting("flasher", flasher))
            target.prepare()
        p.first_calls = dict(calls)
        # the board's first boot-state read: from the flash file and, once, through esptool (which resets)
        p.first_state = target.boot_state("first")
        p.first_read_reset = p.board.last_read_reset
        target.boot_state("second")
        p.second_read_reset = p.board.last_read_reset
        yield p
    finally:
        bench.close()


@pytest.fixture
def target(prepared) -> OtaCase:
    """The module's target, back in its baseline state (restored from the snapshot)."""
    prepared.target.prepare()
    return prepared.target


def forbid_esptool_and_mpremote(monkeypatch) -> None:
    def refused(what):
        def call(*args, **kwargs):
            raise AssertionError(f"{what} was used")
        return call

    monkeypatch.setattr(harness.devices.micropython, "deploy", refused("mpremote (deploy)"))
    monkeypatch.setattr(harness.deploy, "mpremote", refused("mpremote"))
    monkeypatch.setattr(Board, "flasher", refused("esptool (Board.flasher)"))


def board_config(board: Board) -> dict:
    return json.loads(board.device.exec("print(open('ota_config.json').read())"))


# -- prepare from a snapshot ----------------------------------------------------------------------------------------
def test_the_first_prepare_goes_through_esptool_and_mpremote(prepared):
    assert prepared.first_calls["flasher"] >= 1
    assert prepared.first_calls["deploy"] == 1 and prepared.first_calls["mpremote"] >= 1
    assert prepared.board.snapshots and prepared.board.direct_reads
    assert len(prepared.board._saved) >= 1


def test_a_repeat_prepare_uses_neither_and_gives_the_same_ready_board(prepared, monkeypatch):
    board = prepared.board
    forbid_esptool_and_mpremote(monkeypatch)
    saved = dict(board._saved)
    mark = board.console.mark()
    prepared.target.prepare()
    assert board.console.events(since=mark, name="ready"), board.console.tail(mark)
    ready = board.console.events(since=mark, name="ready")[-1]
    assert ready.get("app") == "1" and ready.get("firmware") == prepared.target.baseline_version
    assert board._saved == saved  # nothing new was saved
    state = board.boot_state()
    assert not board.last_read_reset
    assert state.to_dict() == prepared.first_state.to_dict()
    assert state.boot_slot == "ota_0" and state.files.active == "a"


def test_a_config_that_differs_in_a_value_writes_only_ota_config(prepared, target, monkeypatch):
    board = prepared.board
    forbid_esptool_and_mpremote(monkeypatch)
    written: list[list[str]] = []
    write_files = MicroPythonDevice.write_files

    def spy(self, files):
        written.append(sorted(files))
        return write_files(self, files)

    monkeypatch.setattr(MicroPythonDevice, "write_files", spy)
    mark = board.console.mark()
    target.prepare(config_extra={"x": 1})
    assert written == [["ota_config.json"]]
    assert board.console.events(since=mark, name="ready")
    config = board_config(board)
    assert config["x"] == 1 and config["device"] == BOARD
    assert config["confirm_timeout"] == board.spec.confirm_timeout
    # the new state is saved: the same config again writes nothing
    target.prepare(config_extra={"x": 1})
    assert written == [["ota_config.json"]]
    assert board_config(board)["x"] == 1
    # and the baseline config comes back from its own snapshot
    target.prepare()
    assert written == [["ota_config.json"]]
    assert "x" not in board_config(board)
    assert board.boot_state().to_dict() == prepared.first_state.to_dict()


# -- the boot state: flash file and esptool agree ---------------------------------------------------------------------
def test_after_a_firmware_update_the_flash_file_and_esptool_read_the_same_boot_state(prepared, target):
    board = prepared.board
    pub = target.publish("next")
    mark = target.trigger(pub)
    switch = target.expect("switch", since=mark, timeout=120)
    ready = target.ready(since=switch.at, timeout=90)
    assert target.running_version(ready) == pub.version
    target.expect("confirmed", since=switch.at, timeout=10)

    direct = board.boot_state()
    assert not board.last_read_reset
    board.direct_reads = False
    try:
        mark = board.console.mark()
        via_esptool = board.boot_state()
        assert board.last_read_reset
    finally:
        board.direct_reads = True
    board.wait_ready(since=mark)

    assert direct.boot_slot == via_esptool.boot_slot == "ota_1"
    assert direct.otadata == via_esptool.otadata and direct.otadata
    assert direct.slots == via_esptool.slots
    assert direct.slots["ota_1"].version == pub.version and direct.slots["ota_1"].ota_state == "VALID"
    assert direct.slots["ota_0"].version == target.baseline_version
    assert direct.to_dict() == via_esptool.to_dict()
    assert direct.to_dict() != prepared.first_state.to_dict()


def test_only_the_first_read_of_a_board_resets_it(prepared, target, monkeypatch):
    assert prepared.first_read_reset is True
    assert prepared.second_read_reset is False
    board = prepared.board
    monkeypatch.setattr(Board, "flasher", lambda *a, **k: pytest.fail("a later read used esptool"))
    monkeypatch.setattr(target.device, "wait_ready",
                        lambda *a, **k: pytest.fail("a read without reset waited for ready"))
    for _ in range(3):
        state = target.boot_state("again")  # OtaCase waits for ready only after a read that reset the board
        assert board.last_read_reset is False
        assert state.to_dict() == prepared.first_state.to_dict()


def test_without_direct_reads_every_read_goes_through_esptool_and_resets(prepared, tmp_path):
    bench = OtaBench(load_rig("emu"), tmp_path, direct_reads=False)
    try:
        board = bench.board(BOARD)
        assert board.direct_reads is False and board.snapshots is True
        # the module's prepared flash, copied into this bench's own board while it is off
        image = next(iter(prepared.board._saved.values()))
        board.power_off()
        with open(board.flash_file().path, "r+b") as f:
            f.write(image)
        target = OtaCase(bench, board, "firmware")
        target.device.take_board()  # the agent is what runs on it, without a prepare
        mark = board.console.mark()
        board.power_on()
        board.wait_ready(since=mark)
        flasher = Board.flasher
        sessions = []

        def counting(self, *args, **kwargs):
            sessions.append(self.name)
            return flasher(self, *args, **kwargs)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Board, "flasher", counting)
            for n in range(1, 4):
                mark = board.console.mark()
                state = target.boot_state(f"read {n}")  # returns once the board is ready again
                assert board.last_read_reset is True
                assert len(sessions) == n
                assert board.console.events(since=mark, name="ready")
                assert state.to_dict() == prepared.first_state.to_dict()
    finally:
        bench.close()


def test_a_cross_check_mismatch_is_a_board_error_naming_the_board(prepared, target, monkeypatch):
    board = prepared.board

    def read_boot_state(source, chip, **kwargs):
        """Two different answers: the flash file's boots ota_0, esptool's ota_1."""
        slot, version = ("ota_0", "from-file") if isinstance(source, FlashFile) else ("ota_1", "from-esptool")
        return BootState(chip=chip, boot_slot=slot,
                         slots={slot: SlotState(slot, 0x10000, 0x180000, "micropython", version, True)})

    monkeypatch.setattr(harness.board, "read_boot_state", read_boot_state)
    monkeypatch.setattr(board, "_cross_checked", False)
    mark = board.console.mark()
    with pytest.raises(BoardError) as caught:
        board.boot_state()
    message = str(caught.value)
    assert message.startswith(f"board {BOARD}: the boot state read from its flash file differs from what esptool "
                              "reads")
    # both summaries, the flash file's first
    assert message.index("next boot: ota_0 (from-file)") < message.index("-- esptool --") \
        < message.index("next boot: ota_1 (from-esptool)")
    assert board.last_read_reset  # the esptool session reset the board
    board.wait_ready(since=mark)


def test_power_off_keeps_a_virtual_board_s_console_attached(prepared, target):
    board = prepared.board
    board.power_off()
    try:
        assert board.console.attached
        mark = board.console.mark()
    finally:
        board.power_on()
    board.wait_ready(since=mark)
    # the console saw the boot from its first byte: the ROM's power-on line
    assert "rst:0x1 (POWERON_RESET)" in board.console.text[mark:]


# -- MD5 of flash regions ----------------------------------------------------------------------------------------------
REGIONS = [(0x8000, 0xC00), (0xD000, 0x2000), (0x10000, 0x1000), (0x190000, 0x180000)]


def test_flash_md5_is_the_md5_of_the_flash_file_and_what_esptool_computes(prepared, target, monkeypatch):
    board = prepared.board
    flash = board.flash_file().path.read_bytes()
    direct = {}
    with monkeypatch.context() as mp:
        mp.setattr(Board, "flasher", lambda *a, **k: pytest.fail("a direct MD5 used esptool"))
        for address, size in REGIONS:
            direct[address] = board.flash_md5(address, size)
            assert direct[address] == hashlib.md5(flash[address:address + size]).hexdigest()
        ota_1 = prepared.first_state.slots["ota_1"]
        assert (ota_1.offset, ota_1.size) == (0x190000, 0x180000)  # the slot an update writes
        assert target.other_slot_md5() == direct[0x190000]
    mark = board.console.mark()
    with board.flasher() as f:  # esptool's MD5, computed by its flasher stub on the board
        assert isinstance(f, Flasher)
        via_esptool = {address: f.md5(address, size) for address, size in REGIONS}
    board.wait_ready(since=mark)
    assert via_esptool == direct
    # without direct reads flash_md5 itself asks esptool, and returns once the board is ready again
    board.direct_reads = False
    try:
        mark = board.console.mark()
        assert board.flash_md5(0x8000, 0xC00) == direct[0x8000]
        assert board.console.events(since=mark, name="ready")
    finally:
        board.direct_reads = True
