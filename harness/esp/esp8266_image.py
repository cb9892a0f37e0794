"""ESP8266 formats: SDK "new" user images (0xEA), the SDK CRC, MicroPython banners and
the boot_v1.x boot parameters used by Non-OS/RTOS SDK FOTA.

v1 (0xE9) images are the same format as ESP32 images minus the extended header
and hash; build/parse/verify them with :mod:`harness.esp.app_image`
(``chip="esp8266"``).

**0xEA user image** (written by the SDK's ``gen_appbin.py`` with boot mode 2,
read by esptool's ``ESP8266V2FirmwareImage``)::

    EA 04 <spi mode> <size<<4|freq> <entry u32>       outer header
    00000000 <len>  <irom0 code, len % 16 == 0>       flash-mapped code, load address 0 in the file
    E9 <n> <mode> <size/freq> <entry>                 a normal v1 image (RAM segments)
    ... segments, zero padding, checksum byte (aligned as in any E9 image, from file offset 0)
    <CRC u32 little-endian>                           SDK CRC of every byte before it

SDK CRC: ``c = zlib.crc32(data)``; stored value is ``c ^ 0xFFFFFFFF`` when bit 31 of ``c``
is set, else ``c + 1``. ``gen_appbin.py`` computes ``abs(signed crc) -/+ 1`` with
Python 2's signed ``binascii.crc32``; the SDK's ``upgrade_crc_check`` runs a table
CRC-32 from 0xFFFFFFFF without the final inversion (i.e. ``~c``) and takes ``abs()`` of
it as a signed int. All three agree.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, replace
from typing import NamedTuple

from .app_image import (
    CHECKSUM_SEED,
    ESP8266_IRAM,
    AppImage,
    ImageCheck,
    ParsedImage,
    build_esp8266_app,
    filler,
    micropython_banner,
    parse_image,
    verify_image,
    xor_checksum,
)
from .chips import ESP8266, KIB, parse_size
from .errors import ImageFormatError

EA_MAGIC = 0xEA
EA_HEADER_COUNT = 4
"""Byte 1 of an 0xEA header: not a segment count, gen_appbin always writes 4."""

CRC_LEN = 4


# ---------------------------------------------------------------------------
# SDK CRC
# ---------------------------------------------------------------------------
def sdk_crc(data: bytes) -> int:
    """The 32-bit value the SDK appends to user images (see module docstring)."""
    c = zlib.crc32(data) & 0xFFFFFFFF
    return (c ^ 0xFFFFFFFF) if c & 0x80000000 else (c + 1)


def check_sdk_crc(data: bytes) -> bool:
    """True if the last 4 bytes of ``data`` are the SDK CRC of everything before them.

    This is what ``upgrade_crc_check(start_sector, total_length)`` decides after a FOTA
    download of ``total_length`` bytes.
    """
    if len(data) < CRC_LEN:
        return False
    return sdk_crc(data[:-CRC_LEN]) == struct.unpack_from("<I", data, len(data) - CRC_LEN)[0]


# ---------------------------------------------------------------------------
# 0xEA user images
# ---------------------------------------------------------------------------
_LINK_RE = re.compile(rb"linked for user([12])\0")


@dataclass(frozen=True)
class EaImage:
    """An SDK FOTA user image: irom0 code plus a v1 image of the RAM segments.

    The outer header repeats the inner image's SPI mode, size/freq and entry.
    """

    irom: bytes
    app: AppImage

    def to_bytes(self) -> bytes:
        if self.app.info.extended_header:
            raise ImageFormatError("the inner image of an 0xEA image must be an ESP8266 v1 image", 0)
        inner = self.app.to_bytes()
        irom = self.irom + bytes(-len(self.irom) % 16)
        size_freq = inner[3]
        out = struct.pack("<BBBBI", EA_MAGIC, EA_HEADER_COUNT, self.app.spi_mode, size_freq, self.app.entry)
        out += struct.pack("<II", 0, len(irom)) + irom + inner
        return out + struct.pack("<I", sdk_crc(out))


def build_ea_image(project: str = "app", version: str = "1.0.0", irom_size: int | str = 0x20000, seed: int = 0, *,
                   slot: int = 1, micropython: bool = False, build_date: str = "2024-06-02",
                   board: str = "ESP module", flash_size: int | str = "1MB", flash_size_c1: bool = False,
                   flash_freq: str = "40m", spi_mode: str = "qio", ram_size: int | str = 0x6000) -> EaImage:
    """A user image for SDK FOTA (what ``gen_appbin.py`` makes as user1.bin/user2.bin).

    ``slot`` (1 or 2) says which slot it was linked for; real user1 and user2 builds
    differ in their irom code addresses, which a synthetic image cannot show, so the
    harness's images carry a ``linked for userN`` string that
    :attr:`ParsedEaImage.linked_slot` reads back (None for real SDK images).
    """
    if slot not in (1, 2):
        raise ValueError(f"slot must be 1 or 2, not {slot}")
    app = build_esp8266_app(project=project, version=version, size=ram_size, seed=seed, flash_size=flash_size,
                            flash_size_c1=flash_size_c1, flash_freq=flash_freq, spi_mode=spi_mode,
                            entry=ESP8266_IRAM + 0x4)
    ident = f"{project} {version}\0linked for user{slot}\0".encode()
    if micropython:
        ident += micropython_banner(version, build_date, board).encode() + b"\0"
    size = parse_size(irom_size)
    size = max(size, len(ident) + 16)
    size += -size % 16
    irom = (ident + filler(seed, f"irom{slot}", size))[:size]
    return EaImage(irom=irom, app=app)


@dataclass(frozen=True)
class ParsedEaImage:
    """Decoded 0xEA image; ``inner`` offsets are relative to ``inner_offset``."""

    spi_mode: int
    size_freq: int
    entry: int
    header_count: int
    irom_offset: int
    irom: bytes
    inner_offset: int
    inner: ParsedImage
    crc_offset: int
    stored_crc: int
    calculated_crc: int
    length: int
    linked_slot: int | None

    @property
    def crc_ok(self) -> bool:
        return self.stored_crc == self.calculated_crc

    @property
    def checksum_ok(self) -> bool:
        return self.inner.checksum_ok


def parse_ea_image(data: bytes) -> ParsedEaImage:
    """Decode an 0xEA user image; :class:`ImageFormatError` on structural problems."""
    data = bytes(data)
    if len(data) < 16:
        raise ImageFormatError(f"0xEA image needs at least 16 bytes, only {len(data)} present", 0)
    magic, count, mode, size_freq, entry = struct.unpack_from("<BBBBI", data, 0)
    if magic != EA_MAGIC:
        raise ImageFormatError(f"image has magic byte 0x{magic:02x} at 0x0, expected 0xea", 0)
    _addr, irom_len = struct.unpack_from("<II", data, 8)
    irom_offset = 16
    inner_offset = irom_offset + irom_len
    if len(data) < inner_offset + 8:
        raise ImageFormatError(f"image is truncated: irom0 segment of 0x{irom_len:x} bytes at 0x{irom_offset:x} "
                               f"and the inner header need 0x{inner_offset + 8:x} bytes, only 0x{len(data):x} present",
                               irom_offset)
    if inner_offset % 16:
        raise ImageFormatError(f"irom0 segment length 0x{irom_len:x} is not a multiple of 16", 12)
    try:
        inner = parse_image(data[inner_offset:], ESP8266)
    except ImageFormatError as exc:
        raise ImageFormatError(f"inner v1 image at 0x{inner_offset:x}: {exc}",
                               None if exc.offset is None else inner_offset + exc.offset) from exc
    crc_offset = inner_offset + inner.length
    if len(data) < crc_offset + CRC_LEN:
        raise ImageFormatError(f"image is truncated: SDK CRC at 0x{crc_offset:x} is missing", crc_offset)
    stored = struct.unpack_from("<I", data, crc_offset)[0]
    irom = data[irom_offset:inner_offset]
    m = _LINK_RE.search(irom[:256])
    return ParsedEaImage(spi_mode=mode, size_freq=size_freq, entry=entry, header_count=count,
                         irom_offset=irom_offset, irom=irom, inner_offset=inner_offset, inner=inner,
                         crc_offset=crc_offset, stored_crc=stored, calculated_crc=sdk_crc(data[:crc_offset]),
                         length=crc_offset + CRC_LEN, linked_slot=int(m.group(1)) if m else None)


def verify_ea_image(data: bytes, *, partition_size: int | None = None, address: int = 0) -> ImageCheck:
    """Check an 0xEA image: outer magic, inner v1 image (segments, checksum), SDK CRC, size.

    The CRC failure reads like the SDK's output from ``upgrade_crc_check``.
    """
    data = bytes(data)
    if not data or data[0] != EA_MAGIC:
        got = f"0x{data[0]:02x}" if data else "nothing"
        return ImageCheck(False, f"image at 0x{address:x} has invalid magic byte {got} (expected 0xea)", 0)
    try:
        parsed = parse_ea_image(data)
    except ImageFormatError as exc:
        # Let the v1 verifier word inner problems the way it always does.
        if len(data) >= 16:
            inner_offset = 16 + struct.unpack_from("<I", data, 12)[0]
            if len(data) > inner_offset:
                inner_check = verify_image(data[inner_offset:], chip=ESP8266, address=address + inner_offset)
                if not inner_check.ok:
                    off = None if inner_check.offset is None else inner_offset + inner_check.offset
                    return ImageCheck(False, inner_check.reason, off)
        return ImageCheck(False, str(exc), exc.offset)
    inner_check = verify_image(data[parsed.inner_offset:], chip=ESP8266, address=address + parsed.inner_offset)
    if not inner_check.ok:
        off = None if inner_check.offset is None else parsed.inner_offset + inner_check.offset
        return ImageCheck(False, inner_check.reason, off, None, None, inner_check.log)
    if partition_size is not None and parsed.length > partition_size:
        return ImageCheck(False, f"Image length {parsed.length} doesn't fit in partition length {partition_size}",
                          partition_size, parsed.length)
    if not parsed.crc_ok:
        return ImageCheck(False, f"upgrade crc check failed: img_crc = {parsed.calculated_crc}, "
                                 f"flash_crc = {parsed.stored_crc}", parsed.crc_offset, parsed.length)
    return ImageCheck(True, None, None, parsed.length, None, inner_check.log)


def rehash_ea(data: bytes) -> bytes:
    """Recompute the inner checksum and the SDK CRC of an 0xEA image after editing it."""
    parsed = parse_ea_image(data)
    out = bytearray(data)
    out[parsed.inner_offset + parsed.inner.checksum_offset] = parsed.inner.calculated_checksum
    struct.pack_into("<I", out, parsed.crc_offset, sdk_crc(bytes(out[:parsed.crc_offset])))
    return bytes(out)


def v1_checksum(data: bytes) -> int:
    """Checksum over the segments of a v1 image (convenience for tests and tools)."""
    parsed = parse_image(data, ESP8266)
    value = CHECKSUM_SEED
    for seg in parsed.segments:
        value = xor_checksum(seg.data, value)
    return value


# ---------------------------------------------------------------------------
# MicroPython banner
# ---------------------------------------------------------------------------
class Banner(NamedTuple):
    """What :func:`find_micropython_banner` found: ``version`` without the "v", and the
    machine string (``"ESP module with ESP8266"``) or None if it was not found."""

    version: str
    board: str | None


_BANNER_RE = re.compile(rb"MicroPython v([0-9][0-9A-Za-z.+\-]*) on (\d{4}-\d{2}-\d{2})")
_MACHINE_RE = re.compile(rb"; ([\x20-\x7e]{1,64}? with [\x20-\x7e]{1,32}?)[\0\r\n]")


def find_micropython_banner(data: bytes) -> Banner | None:
    """Find MicroPython's REPL banner in a firmware image or flash dump.

    Older MicroPython stores the whole banner as one string ("MicroPython v1.19.1
    on 2022-06-18; ESP module with ESP8266"); newer versions print the machine part
    ("; ESP module with ESP8266") from a separate string. Both are recognised.
    """
    m = _BANNER_RE.search(data)
    if not m:
        return None
    version = m.group(1).decode("ascii")
    tail = _MACHINE_RE.match(data, m.end())
    if tail is None:
        tail = _MACHINE_RE.search(data)
    board = tail.group(1).decode("ascii") if tail else None
    return Banner(version, board)


# ---------------------------------------------------------------------------
# boot_v1.x FOTA: flash map and boot parameters
# ---------------------------------------------------------------------------
SECTOR = 0x1000


@dataclass(frozen=True)
class FotaLayout:
    """Where the SDK's boot_v1.x FOTA keeps things on a given flash map.

    ``user2`` and ``slot_size`` come from the SDK documentation (user2 starts at
    sector 65/129/257 for the 256+256/512+512/1024+1024 maps; 59/123/251 sectors
    are writable per slot). The last four sectors of the flash hold
    esp_init_data_default, two copies of the boot parameters and the flag sector.
    """

    flash_size: int
    app_size: int
    user1: int
    user2: int
    slot_size: int
    init_data: int
    params: tuple[int, int]
    flag: int

    @classmethod
    def for_map(cls, flash_size: int | str = "1MB", app_size: int | str = "512KB") -> FotaLayout:
        flash = parse_size(flash_size)
        app = parse_size(app_size)
        slots = {256 * KIB: (65, 59), 512 * KIB: (129, 123), 1024 * KIB: (257, 251)}
        if app not in slots:
            raise ValueError(f"no boot_v1.x map with {app // KIB} KB app slots (known: 256KB, 512KB, 1024KB)")
        if flash < 2 * app:
            raise ValueError(f"a {app // KIB}+{app // KIB} KB map needs at least {2 * app // KIB} KB of flash")
        start2, sectors = slots[app]
        end = flash
        return cls(flash_size=flash, app_size=app, user1=SECTOR, user2=start2 * SECTOR, slot_size=sectors * SECTOR,
                   init_data=end - 4 * SECTOR, params=(end - 3 * SECTOR, end - 2 * SECTOR), flag=end - SECTOR)

    def slot_address(self, slot: int) -> int:
        if slot == 1:
            return self.user1
        if slot == 2:
            return self.user2
        raise ValueError(f"slot must be 1 or 2, not {slot}")


LAYOUT_1MB_512 = FotaLayout.for_map("1MB", "512KB")
"""The seed-003 map: user1 0x1000, user2 0x81000, params 0xFD000/0xFE000, flag 0xFF000."""
USER1_ADDR = LAYOUT_1MB_512.user1  # 0x1000
USER2_ADDR = LAYOUT_1MB_512.user2  # 0x81000
PARAMS_ADDRS = LAYOUT_1MB_512.params  # (0xFD000, 0xFE000)
FLAG_ADDR = LAYOUT_1MB_512.flag  # 0xFF000
INIT_DATA_ADDR = LAYOUT_1MB_512.init_data  # 0xFC000


@dataclass(frozen=True)
class BootParams:
    """boot_v1.x boot parameters (first bytes of a parameter sector).

    Bit layout, as Espressif's own ESP8266_RTOS_SDK v3 migration code reads it
    (``boot_param_t.boot_base`` in its ``CONFIG_ESP8266_OTA_FROM_OLD`` bootloader
    support): byte 0 bits 1:0 ``usr_bin`` (0 = user1, 1 = user2), bit 2
    ``boot_status``, bit 3 ``to_qio``; byte 1 bits 4:0 ``version``, bit 7
    ``enhance_boot_flag``. ``raw`` keeps every other byte as found, so decoding
    and re-encoding a real sector changes only the fields that were set.
    """

    usr_bin: int = 0
    boot_status: int = 1
    raw: bytes = b"\xff" * 32

    def __post_init__(self) -> None:
        if self.usr_bin not in range(4) or self.boot_status not in (0, 1):
            raise ValueError(f"usr_bin must be 0..3 and boot_status 0/1, got {self.usr_bin}/{self.boot_status}")
        raw = bytearray(self.raw or b"\xff")
        raw[0] = (raw[0] & 0xF8) | self.usr_bin | (self.boot_status << 2)
        object.__setattr__(self, "raw", bytes(raw))

    @property
    def version(self) -> int:
        return self.raw[1] & 0x1F if len(self.raw) > 1 else 0x1F

    def encode(self) -> bytes:
        """The parameter bytes as written to a sector (``raw`` with the fields folded in)."""
        return self.raw

    @classmethod
    def decode(cls, data: bytes, length: int = 32) -> BootParams:
        if not data:
            raise ImageFormatError("boot parameter sector is empty", 0)
        raw = bytes(data[:length])
        return cls(usr_bin=raw[0] & 0x03, boot_status=(raw[0] >> 2) & 1, raw=raw)

    @property
    def booted_slot(self) -> int:
        """Which user image (1 or 2) boot_v1.x starts with these parameters.

        The rule is the one Espressif's SDK v3 migration code uses to decide which
        slot the old bootloader ran (the only public statement of the semantics;
        boot_v1.x itself is closed source): usr_bin 1 boots user2 once
        ``boot_status`` is set and user1 otherwise; any other usr_bin boots user1
        when ``boot_status`` is set, else user2 (user1 for parameter version 4).
        Erased parameters (all 0xFF) therefore boot user1, as a fresh board does.
        """
        if self.usr_bin == 1:
            return 2 if self.boot_status == 1 else 1
        if self.boot_status == 1:
            return 1
        return 1 if self.version == 4 else 2


@dataclass(frozen=True)
class SectorWrite:
    """Erase the 4 KiB sector at ``address`` and write ``data`` at its start."""

    address: int
    data: bytes


@dataclass(frozen=True)
class FotaState:
    """Decoded boot_v1.x state: which parameter copy is current and what it selects."""

    flag: int
    active_copy: int
    params: BootParams

    @property
    def booted_slot(self) -> int:
        return self.params.booted_slot


def active_param_copy(flag_byte: int) -> int:
    """Index (0 or 1) of the current parameter copy: flag byte 0 -> first copy, else second.

    (An erased flag sector reads 0xFF and so selects the second copy.)
    """
    return 0 if flag_byte == 0 else 1


def decode_fota_state(flag_sector: bytes, params0: bytes, params1: bytes) -> FotaState:
    """Decode the flag sector and both parameter sectors (only their first bytes matter)."""
    if not flag_sector:
        raise ImageFormatError("flag sector is empty", 0)
    flag = flag_sector[0]
    copy = active_param_copy(flag)
    return FotaState(flag=flag, active_copy=copy, params=BootParams.decode(params1 if copy else params0))


def booted_slot(flag_sector: bytes, params0: bytes, params1: bytes) -> int:
    """Which user image (1 or 2) boot_v1.x starts, from the flag sector and both parameter sectors."""
    return decode_fota_state(flag_sector, params0, params1).booted_slot


def switch_slot_writes(state: FotaState, target_slot: int, layout: FotaLayout = LAYOUT_1MB_512) -> list[SectorWrite]:
    """The writes that make boot_v1.x start ``target_slot`` (1 or 2) next time.

    Modelled as an atomic two-copy switch (documented model, not a reading of the
    closed-source SDK): first the updated parameters go to the *inactive* copy,
    then the flag sector is rewritten to point at it. Power lost after the first
    write leaves the flag, and therefore the old slot, in force; lost during the
    second, the flag sector may be erased (0xFF -> second copy), so callers that
    simulate tearing should apply the writes through their flash model.
    """
    if target_slot not in (1, 2):
        raise ValueError(f"slot must be 1 or 2, not {target_slot}")
    new_params = replace(state.params, usr_bin=target_slot - 1, boot_status=1)
    inactive = 1 - state.active_copy
    new_flag = 1 if inactive == 1 else 0
    return [
        SectorWrite(layout.params[inactive], new_params.encode()),
        SectorWrite(layout.flag, bytes([new_flag]) + b"\xff" * 31),
    ]


def initial_fota_sectors(slot: int = 1, layout: FotaLayout = LAYOUT_1MB_512) -> dict[int, bytes]:
    """Parameter and flag sector contents that select ``slot`` (for building flash images)."""
    params = BootParams(usr_bin=slot - 1, boot_status=1).encode()
    return {layout.params[0]: params, layout.params[1]: b"\xff" * 32, layout.flag: b"\x00" + b"\xff" * 31}


__all__ = [
    "FLAG_ADDR", "INIT_DATA_ADDR", "PARAMS_ADDRS", "USER1_ADDR", "USER2_ADDR", "booted_slot",
    "Banner", "BootParams", "EA_MAGIC", "EaImage", "FotaLayout", "FotaState", "LAYOUT_1MB_512", "ParsedEaImage",
    "SectorWrite", "active_param_copy", "build_ea_image", "check_sdk_crc", "decode_fota_state",
    "find_micropython_banner", "initial_fota_sectors", "parse_ea_image", "rehash_ea", "sdk_crc",
    "switch_slot_writes", "verify_ea_image", "v1_checksum",
]
