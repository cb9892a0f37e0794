"""ESP app/bootloader images ("E9" images): build, parse, verify, re-version, re-hash.

Layout (esptool ``bin_image.py``, ESP-IDF ``esp_app_format.h``)::

    0   E9 | segment count | SPI mode | size<<4 | freq | entry (u32)          8 bytes
    8   extended header (ESP32 only): wp_pin, 3 drive bytes, chip_id (u16),
        min_chip_rev (u8), min_rev_full (u16), max_rev_full (u16),
        4 reserved, hash_appended (u8)                                      16 bytes
    24  segments: load address (u32), length (u32), data  (length % 4 == 0)
        zero padding so that (offset + 1) % 16 == 0, then one checksum byte
        = 0xEF ^ every segment data byte
        if hash_appended: SHA-256 of every byte up to and including the checksum

ESP8266 "v1" images are the same without the extended header and the hash.
An ESP-IDF app's first segment (DROM) starts with ``esp_app_desc_t`` (256 bytes,
image offset 0x20), which is where version, project and secure_version live.

Everything here works on ``bytes``; nothing reads files or flash. The
verification mirrors the order of ESP-IDF's ``esp_image_verify()`` so the reason
a virtual board gives for rejecting an image is the one a real one would log.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .chips import ESP32, ESP8266, MIB, SPI_MODES, ChipInfo, chip_info, parse_size
from .errors import ImageFormatError

IMAGE_MAGIC = 0xE9
COMMON_HEADER_LEN = 8
EXTENDED_HEADER_LEN = 16
SEGMENT_HEADER_LEN = 8
MAX_SEGMENTS = 16
CHECKSUM_SEED = 0xEF
SHA256_LEN = 32
SIXTEEN_MB = 0x1000000

APP_DESC_MAGIC = 0xABCD5432
APP_DESC_LEN = 256
APP_DESC_OFFSET = COMMON_HEADER_LEN + EXTENDED_HEADER_LEN + SEGMENT_HEADER_LEN  # 0x20
APP_DESC_SECURE_VERSION_OFFSET = APP_DESC_OFFSET + 4  # 0x24
APP_DESC_VERSION_OFFSET = APP_DESC_OFFSET + 16  # 0x30

BOOTLOADER_DESC_MAGIC = 0x50
BOOTLOADER_DESC_LEN = 80
#: the start of the build-options record a host-built bootloader carries after its descriptor
BOOTLOADER_CONFIG_MAGIC = b"hil-bootloader-config\n"

_EXT_FMT = "<B3sHBHH4sB"  # 16 bytes
_APP_DESC_FMT = "<II8s32s32s16s16s32s32sHHB3s72s"  # 256 bytes


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def xor_checksum(data: bytes | memoryview, seed: int = CHECKSUM_SEED) -> int:
    """ESP ROM checksum: ``seed`` XOR every byte of ``data``.

    Done by folding one big integer in halves, so a 1.5 MB image costs a few
    milliseconds instead of a million-iteration Python loop.
    """
    n = len(data)
    if n == 0:
        return seed & 0xFF
    value = int.from_bytes(data, "little")
    width = 1 << (n - 1).bit_length()  # bytes, power of two >= n
    while width > 1:
        width //= 2
        value = (value & ((1 << (8 * width)) - 1)) ^ (value >> (8 * width))
    return (value ^ seed) & 0xFF


def checksum_position(unpadded_end: int) -> int:
    """Offset of the checksum byte after segments ending at ``unpadded_end``."""
    return ((unpadded_end + 1 + 15) & ~15) - 1


def _text_field(value: str, size: int, what: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > size:
        raise ValueError(f"{what} {value!r} is {len(raw)} bytes; the field holds {size}")
    return raw.ljust(size, b"\0")


def _text_value(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def filler(seed: int, tag: str, length: int) -> bytes:
    """Deterministic stand-in for code/data: half random, half repeated blocks.

    Real firmware compresses to roughly half its size; esptool compresses what it
    flashes, so filler that does not compress at all would make flashing
    benchmarks pessimistic. Same (seed, tag, length) -> same bytes.
    """
    if length <= 0:
        return b""
    rng = random.Random(f"esp-filler:{seed}:{tag}")
    pool = [rng.randbytes(64) for _ in range(16)]
    blocks = []
    for _ in range((length + 63) // 64):
        blocks.append(rng.randbytes(64) if rng.random() < 0.5 else pool[rng.randrange(16)])
    return b"".join(blocks)[:length]


def _align4(n: int) -> int:
    return (n + 3) & ~3


# ---------------------------------------------------------------------------
# esp_app_desc_t
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AppDesc:
    """``esp_app_desc_t``: the 256-byte application description at image offset 0x20.

    The OTA code on a device compares ``version`` with the running app's, and the
    bootloader compares ``secure_version`` with eFuses when anti-rollback is on.
    """

    version: str = ""
    project_name: str = ""
    secure_version: int = 0
    time: str = ""
    date: str = ""
    idf_ver: str = ""
    app_elf_sha256: bytes = bytes(32)
    min_efuse_blk_rev_full: int = 0
    max_efuse_blk_rev_full: int = 0
    mmu_page_size: int = 0
    magic: int = APP_DESC_MAGIC

    def pack(self) -> bytes:
        if len(self.app_elf_sha256) != 32:
            raise ValueError("app_elf_sha256 must be 32 bytes")
        return struct.pack(
            _APP_DESC_FMT,
            self.magic,
            self.secure_version,
            bytes(8),
            _text_field(self.version, 32, "version"),
            _text_field(self.project_name, 32, "project_name"),
            _text_field(self.time, 16, "time"),
            _text_field(self.date, 16, "date"),
            _text_field(self.idf_ver, 32, "idf_ver"),
            self.app_elf_sha256,
            self.min_efuse_blk_rev_full,
            self.max_efuse_blk_rev_full,
            self.mmu_page_size,
            bytes(3),
            bytes(72),
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0, *, check_magic: bool = True) -> AppDesc:
        """Decode the 256 bytes at ``offset``; FormatError if short or (optionally) bad magic."""
        if len(data) - offset < APP_DESC_LEN:
            raise ImageFormatError(
                f"app descriptor at 0x{offset:x} needs {APP_DESC_LEN} bytes, only {max(0, len(data) - offset)} present",
                offset)
        (magic, secure_version, _r1, version, project, time_, date, idf_ver, elf_sha,
         min_blk, max_blk, mmu, _r3, _r2) = struct.unpack_from(_APP_DESC_FMT, data, offset)
        if check_magic and magic != APP_DESC_MAGIC:
            raise ImageFormatError(
                f"app descriptor at 0x{offset:x} has magic 0x{magic:08x}, expected 0x{APP_DESC_MAGIC:08x}", offset)
        return cls(version=_text_value(version), project_name=_text_value(project), secure_version=secure_version,
                   time=_text_value(time_), date=_text_value(date), idf_ver=_text_value(idf_ver),
                   app_elf_sha256=elf_sha, min_efuse_blk_rev_full=min_blk, max_efuse_blk_rev_full=max_blk,
                   mmu_page_size=mmu, magic=magic)


def bootloader_desc(version: int = 1, idf_ver: str = "v5.2.2", date_time: str = "Jan  1 2025 00:00:00") -> bytes:
    """``esp_bootloader_desc_t`` (80 bytes) that IDF >= 5.2 puts at the start of the bootloader's DRAM segment."""
    return struct.pack("<B3sI32s24s16s", BOOTLOADER_DESC_MAGIC, bytes(3), version,
                       _text_field(idf_ver, 32, "idf_ver"), _text_field(date_time, 24, "date_time"), bytes(16))


# ---------------------------------------------------------------------------
# building images
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """One loadable segment: CPU load address and its bytes (length must be a multiple of 4)."""

    addr: int
    data: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", bytes(self.data))


@dataclass(frozen=True)
class AppImage:
    """An image as a list of segments plus header fields; ``to_bytes()`` lays it out.

    ``flash_size`` is in bytes and ``flash_freq`` is the header code (0 = 40 MHz).
    ``chip_id``, ``max_rev_full`` and ``hash_appended`` default to the chip's usual
    values when left as ``None``.
    """

    chip: str = "esp32"
    segments: tuple[Segment, ...] = ()
    entry: int = 0
    spi_mode: int = SPI_MODES["dio"]
    flash_size: int = 4 * MIB
    flash_freq: int = 0
    chip_id: int | None = None
    min_chip_rev: int = 0
    min_rev_full: int = 0
    max_rev_full: int | None = None
    wp_pin: int = 0xEE
    spi_pin_drv: bytes = bytes(3)
    hash_appended: bool | None = None
    flash_size_c1: bool = False

    def __post_init__(self) -> None:
        info = chip_info(self.chip)
        object.__setattr__(self, "chip", info.name)
        object.__setattr__(self, "segments", tuple(self.segments))
        if self.chip_id is None:
            object.__setattr__(self, "chip_id", info.image_chip_id if info.image_chip_id is not None else 0)
        if self.max_rev_full is None:
            object.__setattr__(self, "max_rev_full", info.default_max_rev_full)
        if self.hash_appended is None:
            object.__setattr__(self, "hash_appended", info.hash_appended_default)

    @property
    def info(self) -> ChipInfo:
        return chip_info(self.chip)

    def header_bytes(self, segment_count: int | None = None) -> bytes:
        info = self.info
        count = len(self.segments) if segment_count is None else segment_count
        size_freq = (info.flash_size_code(self.flash_size, c1=self.flash_size_c1) << 4) | (self.flash_freq & 0xF)
        out = struct.pack("<BBBBI", IMAGE_MAGIC, count, self.spi_mode, size_freq, self.entry)
        if info.extended_header:
            out += struct.pack(_EXT_FMT, self.wp_pin, bytes(self.spi_pin_drv), self.chip_id or 0, self.min_chip_rev,
                               self.min_rev_full, self.max_rev_full or 0, bytes(4), 1 if self.hash_appended else 0)
        return out

    def to_bytes(self) -> bytes:
        """Lay the image out: header, segments, padding, checksum, optional SHA-256."""
        info = self.info
        parts = [self.header_bytes()]
        pos = len(parts[0])
        checksum = CHECKSUM_SEED
        for index, seg in enumerate(self.segments):
            if len(seg.data) % 4:
                raise ImageFormatError(
                    f"segment {index} at 0x{seg.addr:08x} has length {len(seg.data)}, not a multiple of 4", pos + 4)
            if len(seg.data) >= SIXTEEN_MB:
                raise ImageFormatError(f"segment {index} is {len(seg.data)} bytes; segments must be below 16 MB",
                                       pos + 4)
            parts.append(struct.pack("<II", seg.addr, len(seg.data)))
            parts.append(seg.data)
            checksum = xor_checksum(seg.data, checksum)
            pos += SEGMENT_HEADER_LEN + len(seg.data)
        cpos = checksum_position(pos)
        parts.append(bytes(cpos - pos))
        parts.append(bytes([checksum]))
        image = b"".join(parts)
        if info.extended_header and self.hash_appended:
            image += hashlib.sha256(image).digest()
        return image

    @property
    def app_desc(self) -> AppDesc | None:
        """The ``esp_app_desc_t`` at the start of segment 0, or None (bootloaders, ESP8266)."""
        if not self.info.has_app_desc or not self.segments:
            return None
        data = self.segments[0].data
        if len(data) < APP_DESC_LEN or struct.unpack_from("<I", data)[0] != APP_DESC_MAGIC:
            return None
        return AppDesc.unpack(data)

    def with_app_desc(self, desc: AppDesc) -> AppImage:
        if self.app_desc is None:
            raise ImageFormatError("image has no app descriptor in segment 0 to replace", APP_DESC_OFFSET)
        first = self.segments[0]
        new_first = Segment(first.addr, desc.pack() + first.data[APP_DESC_LEN:])
        return replace(self, segments=(new_first,) + self.segments[1:])

    def with_version(self, version: str, secure_version: int | None = None) -> AppImage:
        """Same image, different ``version`` (and optionally ``secure_version``) in the app descriptor."""
        desc = self.app_desc
        if desc is None:
            raise ImageFormatError("image has no app descriptor (magic 0xABCD5432 at 0x20)", APP_DESC_OFFSET)
        new = replace(desc, version=version)
        if secure_version is not None:
            new = replace(new, secure_version=secure_version)
        return self.with_app_desc(new)

    @classmethod
    def from_bytes(cls, data: bytes, chip: str | ChipInfo = "esp32") -> AppImage:
        """Decode an image back into segments (checksum/hash are recomputed by ``to_bytes``)."""
        return parse_image(data, chip).to_app_image()


# ---- ESP32 -----------------------------------------------------------------
_ESP32_DROM = 0x3F400020
_ESP32_DRAM = 0x3FFB0000
_ESP32_IRAM = 0x40080000
_ESP32_IROM = 0x400D0020


def build_app(chip: str = "esp32", project: str = "app", version: str = "1.0.0", size: int | str = 0x40000,
              secure_version: int = 0, seed: int = 0, idf_ver: str = "v5.2.2", *, date: str = "Jan  1 2025",
              time: str = "00:00:00", spi_mode: str = "dio", flash_size: int | str = "4MB", flash_freq: str = "40m",
              min_rev_full: int = 0, max_rev_full: int | None = None, hash_appended: bool = True,
              micropython_banner: bool = False) -> AppImage:
    """An image that looks like an ESP-IDF app of about ``size`` bytes.

    Segment order and addresses follow what esptool's elf2image produces for a
    real IDF app: DROM (starting with ``esp_app_desc_t``), DRAM, a first IRAM
    segment sized so the IROM segment lands on a 64 KiB MMU page boundary
    (+0x20), IROM, then the rest of IRAM. Contents are deterministic filler
    derived from ``seed``. ``chip="esp8266"`` builds a v1 image instead.
    """
    info = chip_info(chip)
    if not info.has_app_desc:
        return build_esp8266_app(project=project, version=version, seed=seed, micropython=micropython_banner,
                                 flash_size=flash_size, flash_freq=flash_freq, spi_mode=spi_mode,
                                 size=min(parse_size(size), 0x8000))
    target = parse_size(size)
    big = target >= 0x80000
    dram_len = 0x3A40 if big else 0x800
    iram_total = 0x17FF0 if big else 0xC00
    iram1_len = 0x1FF8 if big else 0x400
    desc = AppDesc(version=version, project_name=project, secure_version=secure_version, time=time, date=date,
                   idf_ver=idf_ver, app_elf_sha256=hashlib.sha256(f"{project}:{version}:{seed}".encode()).digest(),
                   max_efuse_blk_rev_full=99)
    head = COMMON_HEADER_LEN + EXTENDED_HEADER_LEN

    # Choose the DROM length so that the IROM segment's data starts at a flash
    # offset equal to its load address modulo the 64 KiB MMU page (0x20).
    def irom_data_offset(drom_len: int) -> int:
        return head + 3 * SEGMENT_HEADER_LEN + drom_len + dram_len + iram1_len + SEGMENT_HEADER_LEN

    page = info.mmu_page_size
    drom_target = _align4(max(APP_DESC_LEN + 0x100, target * 22 // 100))
    shift = (irom_data_offset(drom_target) - (_ESP32_IROM % page)) % page
    drom_len = drom_target - shift
    if drom_len < APP_DESC_LEN + 0x100:
        drom_len += page
    irom_at = irom_data_offset(drom_len)
    iram2_len = max(0x400, iram_total - iram1_len)
    tail = SEGMENT_HEADER_LEN + iram2_len + 16 + SHA256_LEN
    irom_len = (target - irom_at - tail) & ~3
    if irom_len < 0x100:
        raise ValueError(f"size {target} is too small for an ESP32 app image; minimum is about "
                         f"{irom_at + tail + 0x100} bytes")

    text = b""
    if micropython_banner:
        text = f"MicroPython v{version} on 2025-01-01; Generic ESP32 module with ESP32\0".encode()
    drom = desc.pack() + (text + filler(seed, "drom", drom_len - APP_DESC_LEN))[: drom_len - APP_DESC_LEN]
    segments = (
        Segment(_ESP32_DROM, drom),
        Segment(_ESP32_DRAM, filler(seed, "dram", dram_len)),
        Segment(_ESP32_IRAM, filler(seed, "iram1", iram1_len)),
        Segment(_ESP32_IROM, filler(seed, "irom", irom_len)),
        Segment(_ESP32_IRAM + iram1_len, filler(seed, "iram2", iram2_len)),
    )
    return AppImage(chip=info.name, segments=segments, entry=_ESP32_IRAM + iram1_len + 0xC0,
                    spi_mode=SPI_MODES[spi_mode.lower()], flash_size=parse_size(flash_size),
                    flash_freq=info.flash_freq_code(flash_freq), min_rev_full=min_rev_full,
                    max_rev_full=max_rev_full, hash_appended=hash_appended)


def build_bootloader(chip: str = "esp32", seed: int = 0, idf_ver: str = "v5.2.2", *, spi_mode: str = "dio",
                     flash_size: int | str = "4MB", flash_freq: str = "40m",
                     config: Mapping[str, bool | int | str] | None = None) -> AppImage:
    """A second-stage bootloader image laid out like ESP-IDF v5's for the ESP32.

    Three RAM segments (DRAM 0x3fff0030 starting with ``esp_bootloader_desc_t``,
    the "loader" IRAM at 0x40078000, IRAM at 0x40080400) and the entry point
    inside the last one, which is what the ROM prints as ``load:``/``entry``.

    ``config``: the bootloader's own build options (sdkconfig names without ``CONFIG_``) that the
    virtual ESP32's bootloader model follows, as a real bootloader has them compiled in; they are
    recorded after the descriptor (:func:`bootloader_config` reads them back). Without it the image
    is the same as before, and the model uses its defaults (no anti-rollback).
    """
    info = chip_info(chip)
    if not info.extended_header:
        raise ValueError(f"{info.name} has no ESP-IDF second-stage bootloader image in this model")
    rest = filler(seed, "bl-dram", 0x4A0 - BOOTLOADER_DESC_LEN)
    if config:
        record = BOOTLOADER_CONFIG_MAGIC + "".join(
            f"{k}={'y' if v is True else 'n' if v is False else v}\n" for k, v in sorted(config.items())
        ).encode() + b"\0"
        if len(record) > len(rest):
            raise ValueError(f"bootloader config record of {len(record)} bytes does not fit the DRAM segment")
        rest = record + rest[len(record):]
    dram = bootloader_desc(idf_ver=idf_ver) + rest
    segments = (
        Segment(0x3FFF0030, dram),
        Segment(0x40078000, filler(seed, "bl-loader", 0x33B0)),
        Segment(0x40080400, filler(seed, "bl-iram", 0xBD4)),
    )
    return AppImage(chip=info.name, segments=segments, entry=0x400805E4, spi_mode=SPI_MODES[spi_mode.lower()],
                    flash_size=parse_size(flash_size), flash_freq=info.flash_freq_code(flash_freq),
                    hash_appended=True)


def bootloader_config(image: bytes) -> dict[str, str]:
    """The build options :func:`build_bootloader` recorded in a bootloader image (``{}``: none recorded, as in
    MicroPython's or any real bootloader binary)."""
    if len(image) < 24 + 8 + BOOTLOADER_DESC_LEN or image[0] != 0xE9 or image[1] == 0:
        return {}
    length = struct.unpack_from("<I", image, 24 + 4)[0]
    dram = image[32:32 + min(length, 0x1000)]
    start = BOOTLOADER_DESC_LEN
    if dram[start:start + len(BOOTLOADER_CONFIG_MAGIC)] != BOOTLOADER_CONFIG_MAGIC:
        return {}
    text = dram[start + len(BOOTLOADER_CONFIG_MAGIC):].split(b"\0", 1)[0].decode("ascii", "replace")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# ---- ESP8266 ---------------------------------------------------------------
ESP8266_IRAM = 0x40100000
ESP8266_DRAM = 0x3FFE8000
ESP8266_IROM = 0x40200000


def micropython_banner(version: str, date: str = "2024-06-02", board: str = "ESP module",
                       mcu: str = "ESP8266") -> str:
    """The REPL banner MicroPython prints: ``MicroPython vX.Y.Z on DATE; BOARD with MCU``."""
    return f"MicroPython v{version} on {date}; {board} with {mcu}"


def build_esp8266_app(project: str = "app", version: str = "1.0.0", size: int | str = 0x6000, seed: int = 0, *,
                      micropython: bool = False, build_date: str = "2024-06-02", board: str = "ESP module",
                      flash_size: int | str = "1MB", flash_size_c1: bool = False, flash_freq: str = "40m",
                      spi_mode: str = "dio", entry: int = 0x40100004) -> AppImage:
    """An ESP8266 "v1" image (RAM segments only, loaded by the ROM).

    Segments: ``.text`` in IRAM, ``.data`` and ``.rodata`` in DRAM, each kept
    under 64 KiB so esptool does not flag them as suspicious. ``micropython``
    puts the REPL banner string into ``.rodata`` (that is how a harness can tell
    which MicroPython a flash dump holds). The project name and version are
    embedded as a plain string too, since v1 images have no app descriptor.
    """
    info = ESP8266
    target = parse_size(size)
    text_len = _align4(min(0x7F00, max(0x400, target * 5 // 8)))
    data_len = _align4(min(0x4000, max(0x100, target // 16)))
    ident = f"{project} {version}\0".encode()
    if micropython:
        ident += micropython_banner(version, build_date, board).encode() + b"\0"
    rodata_len = _align4(max(len(ident) + 0x40, target - text_len - data_len - 3 * SEGMENT_HEADER_LEN - 24))
    if rodata_len >= 0x10000:
        raise ValueError(f"size {target} is too large for an ESP8266 v1 image; its RAM segments hold about 0x17000 "
                         "bytes (put the rest in an irom0 blob)")
    rodata = (ident + filler(seed, "rodata", rodata_len))[:rodata_len]
    segments = (
        Segment(ESP8266_IRAM, filler(seed, "text", text_len)),
        Segment(ESP8266_DRAM, filler(seed, "data", data_len)),
        Segment(ESP8266_DRAM + data_len, rodata),
    )
    return AppImage(chip=info.name, segments=segments, entry=entry, spi_mode=SPI_MODES[spi_mode.lower()],
                    flash_size=parse_size(flash_size), flash_size_c1=flash_size_c1,
                    flash_freq=info.flash_freq_code(flash_freq))


# ---------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedSegment:
    index: int
    addr: int
    length: int
    header_offset: int
    data_offset: int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class ParsedImage:
    """Every field of an image header plus where things are and what they hash to.

    ``length`` counts header, segments, padding, checksum and (if present) the
    SHA-256, i.e. how many bytes of a partition the image occupies.
    """

    chip: str
    segment_count: int
    spi_mode: int
    flash_size_code: int
    flash_freq: int
    entry: int
    wp_pin: int | None
    spi_pin_drv: bytes | None
    chip_id: int | None
    min_chip_rev: int | None
    min_rev_full: int | None
    max_rev_full: int | None
    hash_appended: int
    segments: tuple[ParsedSegment, ...]
    checksum_offset: int
    stored_checksum: int
    calculated_checksum: int
    digest_offset: int | None
    stored_sha256: bytes | None
    calculated_sha256: bytes | None
    length: int
    app_desc: AppDesc | None

    @property
    def checksum_ok(self) -> bool:
        return self.stored_checksum == self.calculated_checksum

    @property
    def sha256_ok(self) -> bool:
        """True when the appended SHA-256 matches (or the image has none)."""
        return self.digest_offset is None or self.stored_sha256 == self.calculated_sha256

    @property
    def flash_size(self) -> int | None:
        try:
            return chip_info(self.chip).flash_size_bytes(self.flash_size_code)
        except ValueError:
            return None

    def to_app_image(self) -> AppImage:
        info = chip_info(self.chip)
        size = self.flash_size
        if size is None:
            raise ImageFormatError(f"flash size code 0x{self.flash_size_code:x} is not defined for {self.chip}", 3)
        c1 = info.flash_size_name(self.flash_size_code).endswith("-c1")
        image = AppImage(chip=self.chip, segments=tuple(Segment(s.addr, s.data) for s in self.segments),
                         entry=self.entry, spi_mode=self.spi_mode, flash_size=size, flash_freq=self.flash_freq,
                         flash_size_c1=c1)
        if info.extended_header:
            image = replace(image, chip_id=self.chip_id, min_chip_rev=self.min_chip_rev or 0,
                            min_rev_full=self.min_rev_full or 0, max_rev_full=self.max_rev_full,
                            wp_pin=self.wp_pin if self.wp_pin is not None else 0xEE,
                            spi_pin_drv=self.spi_pin_drv or bytes(3), hash_appended=bool(self.hash_appended))
        return image


def _need(data: bytes, end: int, what: str, offset: int) -> None:
    if len(data) < end:
        raise ImageFormatError(f"image is truncated: {what} at 0x{offset:x} needs data up to 0x{end:x} "
                               f"but only 0x{len(data):x} bytes are present", offset)


def parse_image(data: bytes, chip: str | ChipInfo = "esp32") -> ParsedImage:
    """Decode an E9 image. Raises :class:`ImageFormatError` for structural problems
    (no magic, truncated); checksum/hash mismatches are reported, not raised.
    """
    info = chip_info(chip)
    data = bytes(data)
    if not data:
        raise ImageFormatError("image is empty", 0)
    if data[0] != IMAGE_MAGIC:
        hint = " (an ESP8266 0xEA 'new' image: use esp8266_image.parse_ea_image)" if data[0] == 0xEA else ""
        raise ImageFormatError(f"image has invalid magic byte 0x{data[0]:02x} at 0x0, expected 0xe9{hint}", 0)
    head = COMMON_HEADER_LEN + (EXTENDED_HEADER_LEN if info.extended_header else 0)
    _need(data, head, "image header", 0)
    _magic, count, spi_mode, size_freq, entry = struct.unpack_from("<BBBBI", data, 0)
    ext: tuple = (None,) * 8
    hash_flag = 0
    if info.extended_header:
        wp, drv, chip_id, min_rev, min_full, max_full, _res, hash_flag = struct.unpack_from(_EXT_FMT, data, 8)
        ext = (wp, drv, chip_id, min_rev, min_full, max_full)
    segments = []
    pos = head
    checksum = CHECKSUM_SEED
    for index in range(count):
        _need(data, pos + SEGMENT_HEADER_LEN, f"segment {index} header", pos)
        addr, length = struct.unpack_from("<II", data, pos)
        start = pos + SEGMENT_HEADER_LEN
        _need(data, start + length, f"segment {index} data (0x{length:x} bytes)", start)
        seg_data = data[start:start + length]
        checksum = xor_checksum(seg_data, checksum)
        segments.append(ParsedSegment(index, addr, length, pos, start, seg_data))
        pos = start + length
    cpos = checksum_position(pos)
    _need(data, cpos + 1, "checksum byte", cpos)
    length = cpos + 1
    digest_offset = stored = calculated = None
    if info.extended_header and hash_flag:
        _need(data, length + SHA256_LEN, "appended SHA-256", length)
        digest_offset = length
        stored = data[length:length + SHA256_LEN]
        calculated = hashlib.sha256(data[:length]).digest()
        length += SHA256_LEN
    desc = None
    if info.has_app_desc and segments and segments[0].length >= APP_DESC_LEN:
        if struct.unpack_from("<I", segments[0].data)[0] == APP_DESC_MAGIC:
            desc = AppDesc.unpack(segments[0].data)
    return ParsedImage(
        chip=info.name, segment_count=count, spi_mode=spi_mode, flash_size_code=size_freq >> 4,
        flash_freq=size_freq & 0xF, entry=entry, wp_pin=ext[0], spi_pin_drv=ext[1], chip_id=ext[2],
        min_chip_rev=ext[3], min_rev_full=ext[4], max_rev_full=ext[5], hash_appended=hash_flag,
        segments=tuple(segments), checksum_offset=cpos, stored_checksum=data[cpos], calculated_checksum=checksum,
        digest_offset=digest_offset, stored_sha256=stored, calculated_sha256=calculated, length=length,
        app_desc=desc)


def image_length(data: bytes, chip: str | ChipInfo = "esp32") -> int:
    """Bytes the image occupies (header through checksum, plus the SHA-256 if appended)."""
    return parse_image(data, chip).length


def segment_log_lines(parsed: ParsedImage, address: int = 0) -> list[str]:
    """The ``esp_image: segment N: paddr=... vaddr=... size=...h (...) load|map`` lines for an image at ``address``."""
    info = chip_info(parsed.chip)
    lines = []
    for seg in parsed.segments:
        kind = "map" if info.is_mapped(seg.addr) else ("load" if seg.addr >= 0x10000000 else "")
        lines.append(f"segment {seg.index}: paddr={address + seg.data_offset:08x} vaddr={seg.addr:08x} "
                     f"size={seg.length:05x}h ({seg.length:6d}) {kind}".rstrip())
    return lines


# ---------------------------------------------------------------------------
# verification (the bootloader's checks, in its order)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageCheck:
    """Outcome of :func:`verify_image`.

    ``reason`` is an ESP-IDF-style log line explaining the first failed check and
    ``offset`` the image offset it is about; ``length`` is the image length when
    the structure could be walked that far; ``log`` holds the segment lines the
    bootloader prints while verifying.
    """

    ok: bool
    reason: str | None = None
    offset: int | None = None
    length: int | None = None
    app_desc: AppDesc | None = None
    log: tuple[str, ...] = ()


def _rev(value: int) -> str:
    return f"v{value // 100}.{value % 100}"


def verify_image(data: bytes, *, chip: str | ChipInfo = "esp32", partition_size: int | None = None,
                 chip_rev: int | None = None, address: int = 0, require_app_desc: bool = False) -> ImageCheck:
    """Run the checks ESP-IDF's ``esp_image_verify()`` makes, in the same order.

    magic -> chip id -> chip revision range -> segment count -> per segment
    (header present, length, MMU page alignment of mapped segments, data present)
    -> checksum -> image fits the partition -> SHA-256. (IDF checks the length
    against the partition before it finishes the hash, so an oversized *and*
    corrupt image reports the length.) ``data`` may be just the image or the
    whole partition's contents; ``address`` is the image's flash address, used in
    messages and for the MMU alignment check; ``chip_rev`` defaults to the chip's
    ``default_chip_rev`` (v3.0 for ESP32). ``require_app_desc`` adds the check an
    OTA client makes ("Incorrect app descriptor magic").

    ESP8266 images: E9 (v1) images get magic, segment and checksum checks; 0xEA
    images are checked by :func:`harness.esp.esp8266_image.verify_ea_image`.
    """
    info = chip_info(chip)
    data = bytes(data)
    rev = info.default_chip_rev if chip_rev is None else chip_rev

    def fail(reason: str, offset: int | None, length: int | None = None, desc: AppDesc | None = None,
             log: Iterable[str] = ()) -> ImageCheck:
        return ImageCheck(False, reason, offset, length, desc, tuple(log))

    if partition_size is not None and partition_size > SIXTEEN_MB:
        return fail(f"partition size 0x{partition_size:x} invalid, larger than 16MB", None)
    if not info.extended_header and data[:1] == b"\xea":
        from .esp8266_image import verify_ea_image

        return verify_ea_image(data, partition_size=partition_size)
    if not data or data[0] != IMAGE_MAGIC:
        return fail(f"image at 0x{address:x} has invalid magic byte (nothing flashed here?)", 0)
    head = COMMON_HEADER_LEN + (EXTENDED_HEADER_LEN if info.extended_header else 0)
    if len(data) < head:
        return fail(f"image at 0x{address:x} is truncated: header needs {head} bytes, only {len(data)} present", 0)
    count = data[1]
    hash_flag = 0
    if info.extended_header:
        _wp, _drv, chip_id, _min_rev, min_full, max_full, _res, hash_flag = struct.unpack_from(_EXT_FMT, data, 8)
        if chip_id != info.image_chip_id:
            return fail(f"mismatch chip ID, expected {info.image_chip_id}, found {chip_id}", 12)
        if rev is not None:
            if not min_full <= rev:
                return fail(f"Image requires chip rev >= {_rev(min_full)}, but chip is {_rev(rev)}", 15)
            if max_full not in (0, 0xFFFF) and rev > max_full:
                return fail(f"Image requires chip rev <= {_rev(max_full)}, but chip is {_rev(rev)}", 17)
    if count > MAX_SEGMENTS:
        return fail(f"image at 0x{address:x} segment count {count} exceeds max {MAX_SEGMENTS}", 1)

    log: list[str] = []
    pos = head
    checksum = CHECKSUM_SEED
    first_segment = b""
    for index in range(count):
        if len(data) < pos + SEGMENT_HEADER_LEN:
            return fail(f"image at 0x{address:x} is truncated: segment {index} header at 0x{pos:x} is missing",
                        pos, log=log)
        addr, length = struct.unpack_from("<II", data, pos)
        start = pos + SEGMENT_HEADER_LEN
        if length % 4 or length >= SIXTEEN_MB:
            return fail(f"invalid segment length 0x{length:x}", pos + 4, log=log)
        page = info.mmu_page_size
        if info.is_mapped(addr) and (address + start) % page != addr % page:
            return fail(f"Segment {index} load address 0x{addr:08x}, doesn't match data 0x{address + start:08x}",
                        pos, log=log)
        kind = "map" if info.is_mapped(addr) else ("load" if addr >= 0x10000000 else "")
        log.append(f"segment {index}: paddr={address + start:08x} vaddr={addr:08x} size={length:05x}h "
                   f"({length:6d}) {kind}".rstrip())
        if len(data) < start + length:
            return fail(f"image at 0x{address:x} is truncated: segment {index} data needs bytes up to "
                        f"0x{start + length:x} but only 0x{len(data):x} are present", start, log=log)
        seg = data[start:start + length]
        if index == 0:
            first_segment = seg
        checksum = xor_checksum(seg, checksum)
        pos = start + length

    desc = None
    if info.has_app_desc and len(first_segment) >= APP_DESC_LEN and \
            struct.unpack_from("<I", first_segment)[0] == APP_DESC_MAGIC:
        desc = AppDesc.unpack(first_segment)
    cpos = checksum_position(pos)
    if len(data) <= cpos:
        return fail(f"image at 0x{address:x} is truncated: checksum byte at 0x{cpos:x} is missing", pos,
                    desc=desc, log=log)
    if data[cpos] != checksum:
        return fail(f"Checksum failed. Calculated 0x{checksum:x} read 0x{data[cpos]:x}", cpos, cpos + 1, desc, log)
    length = cpos + 1
    digest_offset = None
    if info.extended_header and hash_flag:
        digest_offset = length
        length += SHA256_LEN
        if len(data) < length:
            return fail(f"image at 0x{address:x} is truncated: SHA-256 at 0x{digest_offset:x} is missing",
                        digest_offset, length, desc, log)
    if partition_size is not None and length > partition_size:
        return fail(f"Image length {length} doesn't fit in partition length {partition_size}", partition_size,
                    length, desc, log)
    if digest_offset is not None:
        if hashlib.sha256(data[:digest_offset]).digest() != data[digest_offset:length]:
            return fail("Image hash failed - image is corrupt", digest_offset, length, desc, log)
    if require_app_desc and desc is None:
        return fail("Incorrect app descriptor magic", APP_DESC_OFFSET, length, None, log)
    return ImageCheck(True, None, None, length, desc, tuple(log))


# ---------------------------------------------------------------------------
# editing existing images
# ---------------------------------------------------------------------------
def rehash(data: bytes, chip: str | ChipInfo = "esp32") -> bytes:
    """Recompute the checksum byte and (if appended) the SHA-256 after editing an image.

    Bytes after the image (e.g. 0xFF padding of a partition dump) are kept.
    ESP8266 0xEA images also get their SDK CRC tail recomputed.
    """
    info = chip_info(chip)
    data = bytes(data)
    if not info.extended_header and data[:1] == b"\xea":
        from .esp8266_image import rehash_ea

        return rehash_ea(data)
    parsed = parse_image(data, info)
    out = bytearray(data)
    out[parsed.checksum_offset] = parsed.calculated_checksum
    if parsed.digest_offset is not None:
        out[parsed.digest_offset:parsed.digest_offset + SHA256_LEN] = \
            hashlib.sha256(bytes(out[:parsed.digest_offset])).digest()
    return bytes(out)


def set_version(data: bytes, version: str, secure_version: int | None = None,
                chip: str | ChipInfo = "esp32") -> bytes:
    """Rewrite ``esp_app_desc_t.version`` (and optionally ``secure_version``) and re-hash.

    This is how a test derives "the next version" from a real baseline image
    without rebuilding it (valid as long as secure boot is off).
    """
    info = chip_info(chip)
    if not info.has_app_desc:
        raise ImageFormatError(f"{info.name} images have no app descriptor to hold a version", 0)
    data = bytes(data)
    if len(data) < APP_DESC_OFFSET + APP_DESC_LEN or \
            struct.unpack_from("<I", data, APP_DESC_OFFSET)[0] != APP_DESC_MAGIC:
        raise ImageFormatError("image has no app descriptor (magic 0xABCD5432) at 0x20", APP_DESC_OFFSET)
    out = bytearray(data)
    out[APP_DESC_VERSION_OFFSET:APP_DESC_VERSION_OFFSET + 32] = _text_field(version, 32, "version")
    if secure_version is not None:
        struct.pack_into("<I", out, APP_DESC_SECURE_VERSION_OFFSET, secure_version)
    return rehash(bytes(out), info)


__all__ = [
    "APP_DESC_MAGIC", "APP_DESC_OFFSET", "AppDesc", "AppImage", "ImageCheck", "ParsedImage", "ParsedSegment",
    "Segment", "bootloader_config", "build_app", "build_bootloader", "build_esp8266_app", "bootloader_desc",
    "checksum_position",
    "filler", "image_length", "micropython_banner", "parse_image", "rehash", "segment_log_lines", "set_version",
    "verify_image", "xor_checksum", "ESP32", "ESP8266",
]
