"""Per-chip constants for the image and flash formats.

Chip differences live here, as data, so the codecs never branch on a chip name:
they ask the :class:`ChipInfo` (does this chip have the 16-byte extended image
header? where does the bootloader go? how is "4MB" encoded in the header?).
Values come from esptool's target classes and ESP-IDF's ``esp_app_format.h``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class AddressRange:
    """A half-open CPU address range ``[start, end)`` with a memory-type name."""

    start: int
    end: int
    name: str

    def __contains__(self, addr: object) -> bool:
        return isinstance(addr, int) and self.start <= addr < self.end


@dataclass(frozen=True)
class FlashSize:
    """One value of the header's flash-size nibble (byte 3, high 4 bits)."""

    code: int
    size: int
    name: str


@dataclass(frozen=True)
class ChipInfo:
    """What the image codecs need to know about one chip family.

    ``image_chip_id`` is the value of header bytes 12-13 (``None``: the chip's
    images have no extended header at all). ``default_chip_rev`` is the
    revision (major*100 + minor) a virtual board reports unless told otherwise.
    ``mapped`` lists the address ranges the bootloader maps through the flash
    cache instead of copying into RAM; segments loaded there must keep their
    offset within a 64 KiB MMU page equal to their flash offset within a page.
    """

    name: str
    image_chip_id: int | None
    bootloader_offset: int
    partition_table_offset: int | None
    has_app_desc: bool
    hash_appended_default: bool
    extended_header: bool
    flash_sizes: tuple[FlashSize, ...]
    flash_freqs: tuple[tuple[str, int], ...]
    default_chip_rev: int | None
    default_max_rev_full: int
    mapped: tuple[AddressRange, ...]
    memory: tuple[AddressRange, ...]
    mmu_page_size: int = 0x10000

    # -- flash size nibble -------------------------------------------------
    def flash_size_code(self, size: int | str, *, c1: bool = False) -> int:
        """Header nibble for a flash size (bytes or "4MB").

        ESP8266 has two codes for 2 MB and 4 MB: the plain ones (512+512 KiB
        FOTA map) and the "-c1" ones (1024+1024 KiB map); ``c1`` picks the latter.
        """
        size_bytes = parse_size(size)
        for fs in self.flash_sizes:
            if fs.size == size_bytes and fs.name.endswith("-c1") == c1:
                return fs.code
        known = ", ".join(fs.name for fs in self.flash_sizes)
        raise ValueError(f"{self.name} images cannot encode a flash size of {format_size(size_bytes)} "
                         f"(known: {known})")

    def flash_size_bytes(self, code: int) -> int:
        """Flash size in bytes for a header nibble; ValueError if the nibble is not defined."""
        for fs in self.flash_sizes:
            if fs.code == code:
                return fs.size
        raise ValueError(f"{self.name} flash size code 0x{code:x} is not defined")

    def flash_size_name(self, code: int) -> str:
        for fs in self.flash_sizes:
            if fs.code == code:
                return fs.name
        raise ValueError(f"{self.name} flash size code 0x{code:x} is not defined")

    # -- flash frequency nibble --------------------------------------------
    def flash_freq_code(self, freq: str | int) -> int:
        """Header low nibble for a frequency name ("40m") or a code passed through."""
        if isinstance(freq, int):
            if freq in dict(self.flash_freqs).values():
                return freq
            raise ValueError(f"{self.name} flash frequency code 0x{freq:x} is not defined")
        table = dict(self.flash_freqs)
        key = freq.lower()
        if key not in table:
            raise ValueError(f"unknown flash frequency '{freq}' (known: {', '.join(table)})")
        return table[key]

    def flash_freq_name(self, code: int) -> str:
        for name, value in self.flash_freqs:
            if value == code:
                return name
        raise ValueError(f"{self.name} flash frequency code 0x{code:x} is not defined")

    # -- address classification --------------------------------------------
    def is_mapped(self, addr: int) -> bool:
        """True if the bootloader maps (not copies) a segment loaded at ``addr``."""
        return any(addr in r for r in self.mapped)

    def memory_type(self, addr: int) -> str | None:
        for r in self.mapped + self.memory:
            if addr in r:
                return r.name
        return None


SPI_MODES = {"qio": 0, "qout": 1, "dio": 2, "dout": 3}
"""Header byte 2 values (both chip families)."""

ESP32 = ChipInfo(
    name="esp32",
    image_chip_id=0,
    bootloader_offset=0x1000,
    partition_table_offset=0x8000,
    has_app_desc=True,
    hash_appended_default=True,
    extended_header=True,
    flash_sizes=(
        FlashSize(0x0, 1 * MIB, "1MB"),
        FlashSize(0x1, 2 * MIB, "2MB"),
        FlashSize(0x2, 4 * MIB, "4MB"),
        FlashSize(0x3, 8 * MIB, "8MB"),
        FlashSize(0x4, 16 * MIB, "16MB"),
        FlashSize(0x5, 32 * MIB, "32MB"),
        FlashSize(0x6, 64 * MIB, "64MB"),
        FlashSize(0x7, 128 * MIB, "128MB"),
    ),
    flash_freqs=(("40m", 0x0), ("26m", 0x1), ("20m", 0x2), ("80m", 0xF)),
    # v3.0 is what current ESP32 modules (ECO3) report; IDF v5 apps accept up to v3.99.
    default_chip_rev=300,
    default_max_rev_full=399,
    mapped=(
        AddressRange(0x3F400000, 0x3F800000, "DROM"),
        AddressRange(0x400D0000, 0x40400000, "IROM"),
    ),
    memory=(
        AddressRange(0x3FF80000, 0x3FF82000, "RTC_DRAM"),
        AddressRange(0x3FFAE000, 0x40000000, "DRAM"),
        AddressRange(0x40070000, 0x40080000, "CACHE"),
        AddressRange(0x40080000, 0x400A0000, "IRAM"),
        AddressRange(0x400A0000, 0x400C0000, "DIRAM_IRAM"),
        AddressRange(0x400C0000, 0x400C2000, "RTC_IRAM"),
        AddressRange(0x50000000, 0x50002000, "RTC_DATA"),
    ),
)

ESP8266 = ChipInfo(
    name="esp8266",
    image_chip_id=None,
    bootloader_offset=0x0,
    partition_table_offset=None,
    has_app_desc=False,
    hash_appended_default=False,
    extended_header=False,
    flash_sizes=(
        FlashSize(0x0, 512 * KIB, "512KB"),
        FlashSize(0x1, 256 * KIB, "256KB"),
        FlashSize(0x2, 1 * MIB, "1MB"),
        FlashSize(0x3, 2 * MIB, "2MB"),
        FlashSize(0x4, 4 * MIB, "4MB"),
        FlashSize(0x5, 2 * MIB, "2MB-c1"),
        FlashSize(0x6, 4 * MIB, "4MB-c1"),
        FlashSize(0x8, 8 * MIB, "8MB"),
        FlashSize(0x9, 16 * MIB, "16MB"),
    ),
    flash_freqs=(("40m", 0x0), ("26m", 0x1), ("20m", 0x2), ("80m", 0xF)),
    default_chip_rev=None,
    default_max_rev_full=0,
    mapped=(AddressRange(0x40200000, 0x40300000, "IROM"),),
    memory=(
        AddressRange(0x3FFE8000, 0x40000000, "DRAM"),
        AddressRange(0x40100000, 0x40108000, "IRAM"),
    ),
)

CHIPS: dict[str, ChipInfo] = {c.name: c for c in (ESP32, ESP8266)}


def chip_info(name: str | ChipInfo) -> ChipInfo:
    """Look a chip up by name ("esp32", "ESP-32" and "ESP32" all work)."""
    if isinstance(name, ChipInfo):
        return name
    key = re.sub(r"[-_ ]", "", str(name).lower())
    if key not in CHIPS:
        raise ValueError(f"unknown chip '{name}' (known: {', '.join(CHIPS)})")
    return CHIPS[key]


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(k|kb|kib|m|mb|mib|g|gb|gib|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB,
          "g": 1024 * MIB, "gb": 1024 * MIB, "gib": 1024 * MIB}


def parse_size(value: int | str) -> int:
    """Parse a flash/partition size: 4194304, "0x400000", "4MB", "4M", "4MiB", "512KB", "512K".

    Sizes in this domain are always binary (esptool's "4MB" is 4 MiB).
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: expected e.g. 4MB, 512KB or a byte count")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value}: sizes cannot be negative")
        return value
    text = str(value).strip()
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
        return int(text, 16)
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"invalid size '{value}': expected e.g. 4MB, 512KB, 0x400000 or a byte count")
    number, unit = m.group(1), (m.group(2) or "").lower()
    result = float(number) * _UNITS[unit]
    if result != int(result):
        raise ValueError(f"invalid size '{value}': not a whole number of bytes")
    return int(result)


def format_size(size: int) -> str:
    """Inverse of :func:`parse_size` for display: 4194304 -> "4MB", 16384 -> "16KB"."""
    if size and size % MIB == 0:
        return f"{size // MIB}MB"
    if size and size % KIB == 0:
        return f"{size // KIB}KB"
    return f"{size}B"
