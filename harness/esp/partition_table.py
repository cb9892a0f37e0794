"""ESP-IDF partition tables: binary (as flashed at 0x8000) and CSV (as gen_esp32part.py reads it).

Binary entry, 32 bytes little endian (``<2sBBII16sI``)::

    AA 50 | type | subtype | offset | size | label (16, NUL padded) | flags (bit0 encrypted, bit1 readonly)

The table ends at an all-0xFF entry and is at most 0xC00 bytes. ESP-IDF's
generator inserts an MD5 entry (``EB EB`` + 14 x FF + MD5 of all earlier
entries) before the end marker; the bootloader checks it when present.

CSV rules follow ``gen_esp32part.py``: K/M suffixes, names or numbers for type and
subtype, and a blank offset meaning "the next offset after the previous partition,
aligned to 64 KiB for apps and 4 KiB for data", starting right after the table's
own 4 KiB sector.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from .chips import KIB, MIB, parse_size
from .errors import PartitionTableError

ENTRY_LEN = 32
ENTRY_MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
MAX_TABLE_LEN = 0xC00
TABLE_SECTOR_LEN = 0x1000
DEFAULT_TABLE_OFFSET = 0x8000
OTADATA_SIZE = 0x2000
_ENTRY_FMT = "<2sBBII16sI"

FLAG_ENCRYPTED = 1 << 0
FLAG_READONLY = 1 << 1
_FLAG_NAMES = {"encrypted": FLAG_ENCRYPTED, "readonly": FLAG_READONLY}


class PartitionType(IntEnum):
    APP = 0x00
    DATA = 0x01
    BOOTLOADER = 0x02
    PARTITION_TABLE = 0x03


APP_FACTORY = 0x00
APP_OTA_MIN = 0x10
APP_OTA_MAX = 0x1F
APP_TEST = 0x20
DATA_OTA = 0x00
DATA_PHY = 0x01
DATA_NVS = 0x02
DATA_UNDEFINED = 0x06

SUBTYPES: dict[int, dict[str, int]] = {
    PartitionType.APP: {"factory": APP_FACTORY, **{f"ota_{i}": APP_OTA_MIN + i for i in range(16)}, "test": APP_TEST},
    PartitionType.DATA: {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04, "efuse": 0x05,
                         "undefined": 0x06, "esphttpd": 0x80, "fat": 0x81, "spiffs": 0x82, "littlefs": 0x83},
    PartitionType.BOOTLOADER: {"primary": 0x00, "ota": 0x01},
    PartitionType.PARTITION_TABLE: {"primary": 0x00, "ota": 0x01},
}
TYPE_NAMES = {t.value: t.name.lower() for t in PartitionType}
ALIGNMENT: dict[int, int] = {PartitionType.APP: 0x10000, PartitionType.DATA: 0x1000}
"""Offset alignment per type (gen_esp32part: 64 KiB for apps, 4 KiB for everything else)."""


def _alignment(ptype: int) -> int:
    return ALIGNMENT.get(ptype, 0x1000)


@dataclass(frozen=True)
class Partition:
    """One partition table entry. ``type``/``subtype`` are the raw numbers."""

    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def is_app(self) -> bool:
        return self.type == PartitionType.APP

    @property
    def is_ota_app(self) -> bool:
        return self.is_app and APP_OTA_MIN <= self.subtype <= APP_OTA_MAX

    @property
    def ota_index(self) -> int | None:
        """N for an ``ota_N`` app partition, else None."""
        return self.subtype - APP_OTA_MIN if self.is_ota_app else None

    @property
    def is_factory(self) -> bool:
        return self.is_app and self.subtype == APP_FACTORY

    @property
    def is_test(self) -> bool:
        return self.is_app and self.subtype == APP_TEST

    @property
    def is_otadata(self) -> bool:
        return self.type == PartitionType.DATA and self.subtype == DATA_OTA

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & FLAG_ENCRYPTED)

    @property
    def readonly(self) -> bool:
        return bool(self.flags & FLAG_READONLY)

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"0x{self.type:02x}")

    @property
    def subtype_name(self) -> str:
        for name, value in SUBTYPES.get(self.type, {}).items():
            if value == self.subtype:
                return name
        return f"0x{self.subtype:02x}"

    def describe(self) -> str:
        return f"{self.type_name} partition '{self.label}'"

    def to_bytes(self) -> bytes:
        label = self.label.encode("utf-8")
        if len(label) > 16:
            raise PartitionTableError(f"partition label '{self.label}' is {len(label)} bytes; at most 16 fit")
        return struct.pack(_ENTRY_FMT, ENTRY_MAGIC, self.type, self.subtype, self.offset, self.size, label,
                           self.flags)

    def flag_names(self) -> list[str]:
        return [name for name, bit in _FLAG_NAMES.items() if self.flags & bit]


def _entry_where(index: int) -> str:
    return f"partition table entry {index} at 0x{index * ENTRY_LEN:x}"


@dataclass(frozen=True)
class PartitionTable:
    """An ordered partition table (order matters: lookups return the first match, like IDF)."""

    entries: tuple[Partition, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))

    def __iter__(self) -> Iterator[Partition]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Partition:
        return self.entries[index]

    # -- lookups -------------------------------------------------------------
    def find(self, label: str) -> Partition | None:
        return next((p for p in self.entries if p.label == label), None)

    def find_type(self, type: int | str, subtype: int | str | None = None) -> Partition | None:
        """First partition of a type (and subtype); names ("app", "ota_1") or numbers."""
        t = _parse_type(type) if isinstance(type, str) else type
        s = None if subtype is None else (_parse_subtype(t, subtype) if isinstance(subtype, str) else subtype)
        return next((p for p in self.entries if p.type == t and (s is None or p.subtype == s)), None)

    def find_at(self, offset: int) -> Partition | None:
        """The partition containing flash address ``offset``."""
        return next((p for p in self.entries if p.offset <= offset < p.end), None)

    @property
    def ota_slots(self) -> list[Partition]:
        """ota_N app partitions sorted by N (first entry wins for duplicated subtypes)."""
        seen: dict[int, Partition] = {}
        for p in self.entries:
            if p.is_ota_app and p.subtype not in seen:
                seen[p.subtype] = p
        return [seen[k] for k in sorted(seen)]

    @property
    def factory(self) -> Partition | None:
        return self.find_type(PartitionType.APP, APP_FACTORY)

    @property
    def test(self) -> Partition | None:
        return self.find_type(PartitionType.APP, APP_TEST)

    @property
    def otadata(self) -> Partition | None:
        return self.find_type(PartitionType.DATA, DATA_OTA)

    @property
    def apps(self) -> list[Partition]:
        return [p for p in self.entries if p.is_app]

    # -- binary ----------------------------------------------------------------
    def to_bytes(self, md5: bool = True) -> bytes:
        """The 0xC00-byte binary table, 0xFF padded, with the MD5 entry unless ``md5=False``."""
        body = b"".join(p.to_bytes() for p in self.entries)
        if md5:
            body += MD5_MAGIC + b"\xff" * 14 + hashlib.md5(body).digest()
        if len(body) >= MAX_TABLE_LEN:
            raise PartitionTableError(
                f"binary partition table is {len(body)} bytes; the limit is {MAX_TABLE_LEN - 1} "
                f"(at most {MAX_TABLE_LEN // ENTRY_LEN - 2} entries with MD5)")
        return body + b"\xff" * (MAX_TABLE_LEN - len(body))

    @classmethod
    def from_bytes(cls, data: bytes, *, require_md5: bool = False) -> PartitionTable:
        """Decode a binary table; stops at the all-0xFF entry and checks the MD5 entry if present."""
        data = bytes(data)
        entries: list[Partition] = []
        md5 = hashlib.md5()
        saw_md5 = False
        limit = min(len(data), MAX_TABLE_LEN)
        for index in range(limit // ENTRY_LEN):
            off = index * ENTRY_LEN
            raw = data[off:off + ENTRY_LEN]
            if raw == b"\xff" * ENTRY_LEN:
                if require_md5 and not saw_md5:
                    raise PartitionTableError(f"{_entry_where(index)}: end of table reached without an MD5 entry",
                                              off)
                return cls(tuple(entries))
            if raw[:2] == MD5_MAGIC:
                if saw_md5:
                    raise PartitionTableError(f"{_entry_where(index)}: second MD5 entry", off)
                if raw[16:] != md5.digest():
                    raise PartitionTableError(
                        f"{_entry_where(index)}: MD5 mismatch: table says {raw[16:].hex()}, entries 0-{index - 1} "
                        f"hash to {md5.hexdigest()}", off + 16)
                saw_md5 = True
                continue
            if raw[:2] != ENTRY_MAGIC:
                raise PartitionTableError(
                    f"{_entry_where(index)}: bad magic {raw[0]:02x} {raw[1]:02x} (expected aa 50, "
                    f"ff ff for the end marker or eb eb for the MD5 entry)", off)
            if saw_md5:
                raise PartitionTableError(f"{_entry_where(index)}: partition entry after the MD5 entry", off)
            _magic, ptype, subtype, offset, size, label, flags = struct.unpack(_ENTRY_FMT, raw)
            name = label.split(b"\0", 1)[0]
            try:
                text = name.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PartitionTableError(f"{_entry_where(index)}: label {name!r} is not UTF-8", off + 12) from exc
            entries.append(Partition(text, ptype, subtype, offset, size, flags))
            md5.update(raw)
        raise PartitionTableError(f"partition table has no end-of-table marker in its first 0x{limit:x} bytes",
                                  limit)

    # -- CSV -------------------------------------------------------------------
    def to_csv(self, simple: bool = False) -> str:
        """gen_esp32part-style CSV; sizes use K/M suffixes unless ``simple``."""
        rows = ["# ESP-IDF Partition Table", "# Name, Type, SubType, Offset, Size, Flags"]
        for p in self.entries:
            size = f"0x{p.size:x}"
            if not simple:
                if p.size and p.size % MIB == 0:
                    size = f"{p.size // MIB}M"
                elif p.size and p.size % KIB == 0:
                    size = f"{p.size // KIB}K"
            type_ = str(p.type) if simple else p.type_name
            subtype = str(p.subtype) if simple else p.subtype_name
            if type_.startswith("0x"):
                type_ = str(p.type)
            if subtype.startswith("0x"):
                subtype = str(p.subtype)
            rows.append(",".join([p.label, type_, subtype, f"0x{p.offset:x}", size, ":".join(p.flag_names())]))
        return "\n".join(rows) + "\n"

    @classmethod
    def from_csv(cls, text: str, *, table_offset: int = DEFAULT_TABLE_OFFSET) -> PartitionTable:
        """Parse gen_esp32part CSV; blank offsets are filled in the way gen_esp32part does."""
        entries: list[Partition] = []
        last_end = table_offset + TABLE_SECTOR_LEN
        for line_no, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [f.strip() for f in (line + ",,,,,").split(",")]
            label = fields[0]
            where = f"CSV line {line_no} ('{label}')"
            try:
                ptype = _parse_type(fields[1])
                if fields[2] == "":
                    if ptype == PartitionType.APP:
                        raise PartitionTableError("an app partition cannot have an empty subtype")
                    subtype = DATA_UNDEFINED
                else:
                    subtype = _parse_subtype(ptype, fields[2])
                offset = None if fields[3] == "" else _parse_int(fields[3])
                if fields[4] == "":
                    raise PartitionTableError("size field can't be empty")
                size = _parse_int(fields[4])
                flags = 0
                for flag in filter(None, fields[5].split(":")):
                    if flag not in _FLAG_NAMES:
                        raise PartitionTableError(f"unknown flag '{flag}' (known: {', '.join(_FLAG_NAMES)})")
                    flags |= _FLAG_NAMES[flag]
            except PartitionTableError as exc:
                raise PartitionTableError(f"{where}: {exc}") from exc
            if offset is None:
                align = _alignment(ptype)
                offset = last_end + (-last_end % align)
            elif offset < last_end:
                raise PartitionTableError(
                    f"{where}: offset 0x{offset:x} overlaps the previous partition, which ends at 0x{last_end:x}")
            if size < 0:  # gen_esp32part: a negative size means "up to this address"
                size = -size - offset
            entries.append(Partition(label, ptype, subtype, offset, size, flags))
            last_end = offset + size
        return cls(tuple(entries))

    # -- validation ------------------------------------------------------------
    def validate(self, flash_size: int | str | None = None, *,
                 table_offset: int = DEFAULT_TABLE_OFFSET) -> PartitionTable:
        """Check the table the way gen_esp32part and the bootloader would; returns self.

        Alignment (apps 64 KiB, data 4 KiB), app sizes in whole 4 KiB sectors, no
        partition below the table's sector, no overlaps, unique labels, at most one
        otadata of exactly 0x2000 bytes, no duplicated ota_N, and (with
        ``flash_size``) everything inside the flash.
        """
        flash = None if flash_size is None else parse_size(flash_size)
        first_free = table_offset + TABLE_SECTOR_LEN
        labels: dict[str, int] = {}
        ota_seen: dict[int, int] = {}
        for index, p in enumerate(self.entries):
            where = _entry_where(index)
            if len(p.label.encode("utf-8")) > 16:
                raise PartitionTableError(f"{where}: label '{p.label}' is longer than 16 bytes", index * ENTRY_LEN + 12)
            if p.label in labels:
                raise PartitionTableError(f"{where}: label '{p.label}' is already used by entry {labels[p.label]}",
                                          index * ENTRY_LEN + 12)
            labels[p.label] = index
            align = _alignment(p.type)
            if p.offset % align:
                unit = "64 KiB" if align == 0x10000 else "4 KiB"
                raise PartitionTableError(f"{where}: {p.describe()} offset 0x{p.offset:x} is not {unit} aligned",
                                          index * ENTRY_LEN + 4)
            if p.is_app and p.size % 0x1000:
                raise PartitionTableError(f"{where}: {p.describe()} size 0x{p.size:x} is not a multiple of 4 KiB",
                                          index * ENTRY_LEN + 8)
            if p.size == 0:
                raise PartitionTableError(f"{where}: {p.describe()} has size 0", index * ENTRY_LEN + 8)
            primary = p.type in (PartitionType.BOOTLOADER, PartitionType.PARTITION_TABLE) and p.subtype == 0
            if p.offset < first_free and not primary:
                raise PartitionTableError(f"{where}: {p.describe()} offset 0x{p.offset:x} is below 0x{first_free:x}, "
                                          f"inside the partition table's sector", index * ENTRY_LEN + 4)
            if flash is not None and p.end > flash:
                raise PartitionTableError(f"{where}: {p.describe()} ends at 0x{p.end:x}, beyond the "
                                          f"0x{flash:x}-byte flash", index * ENTRY_LEN + 8)
            if p.is_ota_app:
                if p.subtype in ota_seen:
                    raise PartitionTableError(f"{where}: {p.describe()} repeats subtype {p.subtype_name} "
                                              f"(entry {ota_seen[p.subtype]})", index * ENTRY_LEN + 3)
                ota_seen[p.subtype] = index
            if p.is_otadata:
                if p.size != OTADATA_SIZE:
                    raise PartitionTableError(f"{where}: otadata partition '{p.label}' is 0x{p.size:x} bytes; "
                                              f"it must be 0x{OTADATA_SIZE:x}", index * ENTRY_LEN + 8)
        otadatas = [i for i, p in enumerate(self.entries) if p.is_otadata]
        if len(otadatas) > 1:
            i = otadatas[1]
            raise PartitionTableError(f"{_entry_where(i)}: second otadata partition (first is entry {otadatas[0]})",
                                      i * ENTRY_LEN)
        ordered = sorted(enumerate(self.entries), key=lambda item: item[1].offset)
        for (ia, a), (ib, b) in zip(ordered, ordered[1:], strict=False):
            if b.offset < a.end:
                raise PartitionTableError(f"{_entry_where(ib)}: {b.describe()} at 0x{b.offset:x} overlaps "
                                          f"{a.describe()} 0x{a.offset:x}-0x{a.end - 1:x} (entry {ia})",
                                          ib * ENTRY_LEN + 4)
        return self


def _parse_int(text: str) -> int:
    value = text.strip()
    for suffix, mult in (("k", KIB), ("m", MIB)):
        if value.lower().endswith(suffix):
            return _parse_int(value[:-1]) * mult
    try:
        return int(value, 0)
    except ValueError:
        raise PartitionTableError(f"invalid number '{text}'") from None


def _parse_type(text: str | int) -> int:
    if isinstance(text, int):
        return text
    key = text.strip().lower()
    if key == "":
        raise PartitionTableError("type field can't be empty")
    names = {v: k for k, v in TYPE_NAMES.items()}
    if key in names:
        return names[key]
    try:
        return int(key, 0)
    except ValueError:
        raise PartitionTableError(f"unknown partition type '{text}' (known: {', '.join(names)})") from None


def _parse_subtype(ptype: int, text: str | int) -> int:
    if isinstance(text, int):
        return text
    key = text.strip().lower()
    known = SUBTYPES.get(ptype, {})
    if key in known:
        return known[key]
    try:
        return _parse_int(key)
    except PartitionTableError:
        raise PartitionTableError(f"unknown subtype '{text}' for type {TYPE_NAMES.get(ptype, ptype)} "
                                  f"(known: {', '.join(known)})") from None


# ---------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------
MICROPYTHON_ESP32_OTA_CSV = """\
# Partition table for MicroPython with OTA support using 4MB flash
# Name,   Type, SubType, Offset,   Size,     Flags
nvs,      data, nvs,     0x9000,   0x4000,
otadata,  data, ota,     0xd000,   0x2000,
phy_init, data, phy,     0xf000,   0x1000,
ota_0,    app,  ota_0,   0x10000,  0x180000,
ota_1,    app,  ota_1,   0x190000, 0x180000,
vfs,      data, fat,     0x310000, 0x0f0000,
"""
"""MicroPython's ``ports/esp32/partitions-ota.csv`` (later ``partitions-4MiB-ota.csv``).

Newer MicroPython trees drop the ``vfs`` row from this CSV; the layout of the
first five partitions is unchanged.
"""


def micropython_esp32_ota(flash_size: int | str = "4MB") -> PartitionTable:
    """MicroPython's ESP32_GENERIC-OTA table: two 1.5 MiB app slots, then the ``vfs`` filesystem.

    The ``vfs`` partition has subtype ``fat`` (0x81) in MicroPython's CSV even
    though it holds LittleFS. For flash larger than 4 MB the same layout is kept
    and ``vfs`` grows to the end of the flash.
    """
    flash = parse_size(flash_size)
    table = PartitionTable.from_csv(MICROPYTHON_ESP32_OTA_CSV)
    if flash < 0x310000 + 0x1000:
        raise ValueError(f"the MicroPython OTA layout needs at least 4MB of flash, not 0x{flash:x} bytes")
    entries = list(table.entries)
    vfs = entries[-1]
    entries[-1] = Partition(vfs.label, vfs.type, vfs.subtype, vfs.offset, flash - vfs.offset, vfs.flags)
    return PartitionTable(tuple(entries)).validate(flash)


IDF_TWO_OTA_CSV = """\
# Name,   Type, SubType, Offset,   Size, Flags
nvs,      data, nvs,     ,        0x4000,
otadata,  data, ota,     ,        0x2000,
phy_init, data, phy,     ,        0x1000,
factory,  app,  factory, ,        {app},
ota_0,    app,  ota_0,   ,        {app},
ota_1,    app,  ota_1,   ,        {app},
"""
"""ESP-IDF's ``partitions_two_ota.csv`` with the app size left as a parameter (1M there)."""


def idf_two_ota(flash_size: int | str = "4MB") -> PartitionTable:
    """ESP-IDF's "factory app, two OTA definitions" table (factory + ota_0 + ota_1, 1 MiB each).

    On flash too small for three 1 MiB apps the app size shrinks to the largest
    multiple of 64 KiB that fits.
    """
    flash = parse_size(flash_size)
    app = 1 * MIB
    if 0x10000 + 3 * app > flash:
        app = ((flash - 0x10000) // 3) & ~0xFFFF
    if app < 0x10000:
        raise ValueError(f"flash of 0x{flash:x} bytes is too small for three app partitions")
    return PartitionTable.from_csv(IDF_TWO_OTA_CSV.format(app=f"0x{app:x}")).validate(flash)


def table_from_entries(entries: Iterable[Partition]) -> PartitionTable:
    return PartitionTable(tuple(entries))


__all__ = [
    "APP_FACTORY", "APP_OTA_MIN", "APP_TEST", "DATA_OTA", "FLAG_ENCRYPTED", "FLAG_READONLY", "MAX_TABLE_LEN",
    "MICROPYTHON_ESP32_OTA_CSV", "OTADATA_SIZE", "Partition", "PartitionTable", "PartitionType", "SUBTYPES",
    "idf_two_ota", "micropython_esp32_ota",
]
