import struct

import pytest

from harness.esp.errors import OtadataError
from harness.esp.otadata import (
    OTADATA_SECTOR_SIZE,
    OtaSelectEntry,
    OtaState,
    ota_seq_crc,
    otadata_region,
    parse_otadata,
    sector_image,
)


def test_crc_known_values():
    # values seen in ESP-IDF otadata dumps / computed by otatool.py
    assert ota_seq_crc(1) == 0x4743989A
    assert ota_seq_crc(2) == 0x55F63774
    assert ota_seq_crc(3) == 0xED4A5011


def test_pack_layout_and_round_trip():
    entry = OtaSelectEntry.make(2, OtaState.NEW)
    raw = entry.pack()
    assert len(raw) == 32
    assert struct.unpack("<I", raw[:4])[0] == 2
    assert raw[4:24] == b"\xff" * 20
    assert struct.unpack("<I", raw[24:28])[0] == 0
    assert struct.unpack("<I", raw[28:32])[0] == 0x55F63774
    assert OtaSelectEntry.unpack(raw) == entry
    assert OtaSelectEntry(2, OtaState.NEW) == entry  # crc=None means "correct CRC"


def test_states_and_unknown_state_values():
    assert [s.value for s in OtaState] == [0, 1, 2, 3, 4, 0xFFFFFFFF]
    odd = OtaSelectEntry.unpack(struct.pack("<I20sII", 1, b"\xff" * 20, 7, ota_seq_crc(1)))
    assert odd.state == 7 and not isinstance(odd.state, OtaState)
    assert odd.is_valid


@pytest.mark.parametrize("entry,crc_ok,invalid,valid,initial", [
    (OtaSelectEntry.blank(), False, True, False, True),
    (OtaSelectEntry.make(1, OtaState.VALID), True, False, True, False),
    (OtaSelectEntry.make(1, OtaState.NEW), True, False, True, False),
    (OtaSelectEntry.make(1, OtaState.PENDING_VERIFY), True, False, True, False),
    (OtaSelectEntry.make(1, OtaState.UNDEFINED), True, False, True, False),
    (OtaSelectEntry.make(1, OtaState.INVALID), True, True, False, False),
    (OtaSelectEntry.make(1, OtaState.ABORTED), True, True, False, False),
    (OtaSelectEntry(1, OtaState.VALID, crc=0x12345678), False, False, False, True),
])
def test_boot_predicates(entry, crc_ok, invalid, valid, initial):
    assert (entry.crc_ok, entry.is_invalid, entry.is_valid, entry.is_initial) == (crc_ok, invalid, valid, initial)


def test_slot_mapping_uses_uint32_arithmetic():
    assert OtaSelectEntry.make(1).slot(2) == 0
    assert OtaSelectEntry.make(4).slot(2) == 1
    assert OtaSelectEntry.make(5).slot(3) == 1
    assert OtaSelectEntry.make(0).slot(2) == 0xFFFFFFFF % 2
    assert OtaSelectEntry.make(1).slot(0) is None


def test_sector_image_and_region_parse():
    e0, e1 = OtaSelectEntry.make(3, OtaState.VALID), OtaSelectEntry.make(4, OtaState.NEW)
    sector = sector_image(e0)
    assert len(sector) == OTADATA_SECTOR_SIZE and sector[:32] == e0.pack() and sector[32:] == b"\xff" * 4064
    assert sector_image(None) == b"\xff" * OTADATA_SECTOR_SIZE
    region = otadata_region(e0, e1)
    assert len(region) == 0x2000
    assert parse_otadata(region) == (e0, e1)
    blank = parse_otadata(b"\xff" * 0x2000)
    assert blank[0].is_blank and blank[1].seq == 0xFFFFFFFF


def test_with_seq_keeps_label_and_fixes_crc():
    e = OtaSelectEntry(1, OtaState.VALID, b"L" * 20, crc=0)
    moved = e.with_seq(9)
    assert moved.label == b"L" * 20 and moved.crc == ota_seq_crc(9) and moved.state == OtaState.VALID
    assert e.with_state(OtaState.ABORTED).crc == 0  # the CRC covers only seq; a state change keeps it


def test_short_region_is_an_error():
    with pytest.raises(OtadataError, match="otadata region is 0x1000 bytes") as exc:
        parse_otadata(b"\xff" * 0x1000)
    assert exc.value.offset == 0x1000
    with pytest.raises(ValueError, match="seq_label must be 20 bytes"):
        OtaSelectEntry(1, 0, b"x")
