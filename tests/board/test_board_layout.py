"""The flash layout a board is checked against comes from its baseline's partition table, not from constants."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.board import Board, BoardError
from harness.esp.partition_table import idf_two_ota
from harness.firmware import FlashPart, micropython_baseline


def board_with(parts: list[FlashPart], chip: str = "esp32") -> Board:
    board = Board.__new__(Board)  # the layout needs no port, power or console
    board.spec = SimpleNamespace(name="b", chip=chip)
    board.name, board.chip, board._table = "b", chip, None
    board.baseline_parts = lambda: parts
    return board


def combined(parts: list[FlashPart], start: int = 0x1000) -> FlashPart:
    end = max(p.offset + len(p.data) for p in parts)
    blob = bytearray(b"\xff" * (end - start))
    for p in parts:
        blob[p.offset - start:p.offset - start + len(p.data)] = p.data
    return FlashPart(start, bytes(blob), "combined.bin")


def test_micropython_s_layout_from_separate_images_and_from_one_combined_file():
    parts = micropython_baseline("esp32", flash_size="4MB")
    for board in (board_with(parts), board_with([combined(parts)])):
        table = board.partition_table()
        assert (table.otadata.offset, table.otadata.size) == (0xD000, 0x2000)
        slot = board.update_slot()
        assert (slot.label, slot.offset, slot.size) == ("ota_1", 0x190000, 0x180000)


def test_a_table_with_a_factory_app_updates_ota_0_and_erases_its_own_otadata():
    table = idf_two_ota("4MB")
    board = board_with([FlashPart(0x8000, table.to_bytes(), "partition-table.bin")])
    assert board.update_slot() == table.find("ota_0")
    assert board.partition_table().otadata == table.otadata


def test_no_table_or_a_broken_one_is_one_line_naming_the_board():
    with pytest.raises(BoardError, match=r"^board b: no baseline image holds a partition table at 0x8000$"):
        board_with([FlashPart(0x10000, b"\xe9" + bytes(4095), "app.bin")]).partition_table()
    with pytest.raises(BoardError, match=r"^board b: the baseline's partition table at 0x8000 \(junk.bin\) does not"):
        board_with([FlashPart(0x8000, b"\x00" * 0xC00, "junk.bin")]).partition_table()
