import hashlib
import struct

import pytest

from harness.esp.errors import FormatError, PartitionTableError
from harness.esp.partition_table import (
    MICROPYTHON_ESP32_OTA_CSV,
    Partition,
    PartitionTable,
    PartitionType,
    idf_two_ota,
    micropython_esp32_ota,
)


def _entry(t, st, off, size, label, flags=0):
    """Reference encoder written straight from the format description (independent of the codec)."""
    return b"\xaa\x50" + bytes([t, st]) + struct.pack("<II", off, size) + label.ljust(16, b"\0") + \
        struct.pack("<I", flags)


MICROPYTHON_ENTRIES = [
    _entry(1, 0x02, 0x9000, 0x4000, b"nvs"),
    _entry(1, 0x00, 0xD000, 0x2000, b"otadata"),
    _entry(1, 0x01, 0xF000, 0x1000, b"phy_init"),
    _entry(0, 0x10, 0x10000, 0x180000, b"ota_0"),
    _entry(0, 0x11, 0x190000, 0x180000, b"ota_1"),
    _entry(1, 0x81, 0x310000, 0xF0000, b"vfs"),
]


def _expected_micropython_bin() -> bytes:
    body = b"".join(MICROPYTHON_ENTRIES)
    body += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(body).digest()
    return body + b"\xff" * (0xC00 - len(body))


def test_micropython_table_matches_bytes_derived_from_the_format():
    table = micropython_esp32_ota()
    data = table.to_bytes()
    assert len(data) == 0xC00
    assert data == _expected_micropython_bin()
    # first entry spelled out by hand: AA 50, data(1), nvs(2), 0x9000, 0x4000, "nvs"
    assert data[:32].hex() == "aa50010200900000004000006e7673" + "00" * 13 + "00000000"


def test_micropython_table_binary_round_trip_is_identical():
    data = _expected_micropython_bin()
    table = PartitionTable.from_bytes(data, require_md5=True)
    assert [p.label for p in table] == ["nvs", "otadata", "phy_init", "ota_0", "ota_1", "vfs"]
    assert table.to_bytes() == data
    assert table == micropython_esp32_ota()


def test_micropython_table_csv_round_trip():
    table = micropython_esp32_ota()
    assert PartitionTable.from_csv(MICROPYTHON_ESP32_OTA_CSV) == table
    csv = table.to_csv()
    assert "ota_0,app,ota_0,0x10000,1536K," in csv
    assert "vfs,data,fat,0x310000,960K," in csv
    assert PartitionTable.from_csv(csv) == table
    assert PartitionTable.from_csv(table.to_csv(simple=True)) == table
    assert PartitionTable.from_csv(csv).to_bytes() == _expected_micropython_bin()


def test_micropython_preset_lookups():
    table = micropython_esp32_ota()
    assert table.factory is None
    assert table.otadata == Partition("otadata", 1, 0, 0xD000, 0x2000)
    assert [p.label for p in table.ota_slots] == ["ota_0", "ota_1"]
    assert [p.ota_index for p in table.ota_slots] == [0, 1]
    assert table.find("vfs").subtype_name == "fat" and table.find("vfs").type_name == "data"
    assert table.find("nope") is None
    assert table.find_type("app", "ota_1").offset == 0x190000
    assert table.find_type(PartitionType.DATA, 0x01).label == "phy_init"
    assert table.find_at(0x200000).label == "ota_1"
    assert micropython_esp32_ota("8MB").find("vfs").size == 0x800000 - 0x310000


def test_partition_properties():
    ota = Partition("ota_3", 0, 0x13, 0x10000, 0x10000)
    assert ota.is_app and ota.is_ota_app and ota.ota_index == 3 and ota.subtype_name == "ota_3"
    factory = Partition("factory", 0, 0, 0x10000, 0x10000)
    assert factory.is_factory and factory.ota_index is None
    test = Partition("test", 0, 0x20, 0x10000, 0x10000)
    assert test.is_test and test.ota_index is None
    nvs = Partition("nvs", 1, 2, 0x9000, 0x6000, flags=3)
    assert not nvs.is_app and nvs.encrypted and nvs.readonly and nvs.flag_names() == ["encrypted", "readonly"]
    assert Partition("x", 0x40, 0x99, 0, 0).type_name == "0x40"


def test_idf_two_ota_blank_offsets_like_gen_esp32part():
    table = idf_two_ota()
    assert [(p.label, p.offset, p.size) for p in table] == [
        ("nvs", 0x9000, 0x4000), ("otadata", 0xD000, 0x2000), ("phy_init", 0xF000, 0x1000),
        ("factory", 0x10000, 0x100000), ("ota_0", 0x110000, 0x100000), ("ota_1", 0x210000, 0x100000)]
    assert table.factory.label == "factory"
    small = idf_two_ota("2MB")
    assert small.validate("2MB") is small and small.find("ota_1").end <= 0x200000


def test_csv_parsing_rules():
    csv = """
# comment
nvs, data, nvs, , 24K,
fs, data, , , 0x1000, encrypted:readonly
app, app, factory, , 1M,
cfg, data, 0x40, , 4k,
"""
    table = PartitionTable.from_csv(csv)
    assert [(p.label, p.offset, p.size) for p in table] == [
        ("nvs", 0x9000, 0x6000), ("fs", 0xF000, 0x1000), ("app", 0x10000, 0x100000), ("cfg", 0x110000, 0x1000)]
    assert table.find("fs").subtype == 0x06 and table.find("fs").flags == 3
    assert table.find("cfg").subtype == 0x40
    assert PartitionTable.from_csv(table.to_csv()) == table


@pytest.mark.parametrize("csv,message", [
    ("a, app, , 0x10000, 1M", "CSV line 1 ('a'): an app partition cannot have an empty subtype"),
    ("a, blob, nvs, , 4K", "unknown partition type 'blob'"),
    ("a, data, nvs, , ", "size field can't be empty"),
    ("a, data, nvs, , 4K, shiny", "unknown flag 'shiny'"),
    ("a, data, nvs, 0x9000, 0x2000\nb, data, nvs, 0xA000, 0x1000", "CSV line 2 ('b'): offset 0xa000 overlaps"),
    ("a, app, ota_x, , 1M", "unknown subtype 'ota_x' for type app"),
])
def test_csv_errors(csv, message):
    with pytest.raises(PartitionTableError) as exc:
        PartitionTable.from_csv(csv)
    assert message in str(exc.value)


def test_from_bytes_stops_at_end_marker_and_ignores_the_rest():
    data = b"".join(MICROPYTHON_ENTRIES[:2]) + b"\xff" * 32 + MICROPYTHON_ENTRIES[3]
    table = PartitionTable.from_bytes(data)
    assert [p.label for p in table] == ["nvs", "otadata"]
    assert PartitionTable.from_bytes(table.to_bytes(md5=False)) == table
    assert b"\xeb\xeb" not in table.to_bytes(md5=False)


def test_from_bytes_bad_magic_names_entry_and_offset():
    data = bytearray(_expected_micropython_bin())
    data[3 * 32] = 0x12
    with pytest.raises(PartitionTableError) as exc:
        PartitionTable.from_bytes(bytes(data))
    assert str(exc.value).startswith("partition table entry 3 at 0x60: bad magic 12 50")
    assert exc.value.offset == 0x60
    assert isinstance(exc.value, FormatError)


def test_from_bytes_md5_mismatch():
    data = bytearray(_expected_micropython_bin())
    data[4 * 32 + 8] ^= 0x01  # ota_1 size
    with pytest.raises(PartitionTableError, match="entry 6 at 0xc0: MD5 mismatch") as exc:
        PartitionTable.from_bytes(bytes(data))
    assert exc.value.offset == 6 * 32 + 16


def test_from_bytes_missing_end_marker_and_md5():
    with pytest.raises(PartitionTableError, match="no end-of-table marker"):
        PartitionTable.from_bytes(b"".join(MICROPYTHON_ENTRIES))
    with pytest.raises(PartitionTableError, match="without an MD5 entry"):
        PartitionTable.from_bytes(micropython_esp32_ota().to_bytes(md5=False), require_md5=True)


def test_too_many_entries():
    table = PartitionTable(tuple(Partition(f"p{i}", 1, 0x81, 0x10000 + i * 0x1000, 0x1000) for i in range(95)))
    with pytest.raises(PartitionTableError, match="binary partition table is"):
        table.to_bytes()
    assert len(PartitionTable(table.entries[:94]).to_bytes()) == 0xC00


def _with(table: PartitionTable, index: int, **changes) -> PartitionTable:
    entries = list(table.entries)
    p = entries[index]
    entries[index] = Partition(**{**p.__dict__, **changes})
    return PartitionTable(tuple(entries))


@pytest.mark.parametrize("index,changes,flash,message,offset", [
    (3, dict(offset=0x11000), "4MB",
     "partition table entry 3 at 0x60: app partition 'ota_0' offset 0x11000 is not 64 KiB aligned", 0x64),
    (0, dict(offset=0x9800), "4MB", "partition table entry 0 at 0x0: data partition 'nvs' offset 0x9800 is not "
                                    "4 KiB aligned", 0x4),
    (4, dict(size=0x180800), "4MB", "app partition 'ota_1' size 0x180800 is not a multiple of 4 KiB", 0x88),
    (1, dict(size=0x3000), "4MB", "otadata partition 'otadata' is 0x3000 bytes; it must be 0x2000", 0x28),
    (5, dict(size=0x100000), "4MB", "data partition 'vfs' ends at 0x410000, beyond the 0x400000-byte flash", 0xA8),
    (4, dict(offset=0x180000), "4MB", "app partition 'ota_1' at 0x180000 overlaps app partition 'ota_0'", 0x84),
    (2, dict(label="nvs"), "4MB", "label 'nvs' is already used by entry 0", 0x4C),
    (0, dict(offset=0x8000), None, "offset 0x8000 is below 0x9000", 0x4),
    (4, dict(subtype=0x10), None, "repeats subtype ota_0 (entry 3)", 0x83),
])
def test_validate_errors(index, changes, flash, message, offset):
    table = _with(micropython_esp32_ota(), index, **changes)
    with pytest.raises(PartitionTableError) as exc:
        table.validate(flash)
    assert message in str(exc.value)
    assert exc.value.offset == offset


def test_validate_passes_presets():
    assert micropython_esp32_ota().validate("4MB")
    assert idf_two_ota().validate("4MB")
