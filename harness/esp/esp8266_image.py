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

**User bins for SDK FOTA** (:func:`build_user_bin`): what ``gen_appbin.py`` writes with boot
mode 2. Its outer header differs from esptool's in bytes 2 and 3::

    EA 04 00 <app: 1|2> <entry u32>     byte 3 = the slot the bin is linked for (user1/user2)

The inner E9 header carries the SPI mode in byte 2 and ``map << 4 | speed`` in byte 3 (esptool
reads bytes 2/3 of both headers, warns that they disagree and uses the inner ones).

**Version record** (defined by this project; real SDK bins have none): the first 80 bytes of
the irom0 segment (file offset 16)::

    offset  size
    0       8    magic b"SDKAPP\x00\x01"
    8       32   version, NUL padded (e.g. "1.2.0")
    40      32   project name, NUL padded
    72      1    linked slot (1 or 2): the same as header byte 3 when the bin is sound
    73      7    zero

An app can therefore read its own version from flash-mapped memory, a FOTA client can read the
version and slot of an incoming bin from its first packet, and the boot-state oracle can name
what each slot holds. A host-built app (``payload``) follows the record, 16-byte aligned.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol

from .app_image import (
    CHECKSUM_SEED,
    ESP8266_DRAM,
    ESP8266_IRAM,
    IMAGE_MAGIC,
    AppImage,
    ImageCheck,
    ParsedImage,
    Segment,
    build_esp8266_app,
    checksum_position,
    filler,
    micropython_banner,
    parse_image,
    verify_image,
    xor_checksum,
)
from .chips import ESP8266, KIB, SPI_MODES, parse_size
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
    record = _decode_record(irom)
    m = _LINK_RE.search(irom[:256])
    linked = record[2] if record is not None and record[2] in (1, 2) else (int(m.group(1)) if m else None)
    return ParsedEaImage(spi_mode=mode, size_freq=size_freq, entry=entry, header_count=count,
                         irom_offset=irom_offset, irom=irom, inner_offset=inner_offset, inner=inner,
                         crc_offset=crc_offset, stored_crc=stored, calculated_crc=sdk_crc(data[:crc_offset]),
                         length=crc_offset + CRC_LEN, linked_slot=linked)


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

    @classmethod
    def for_map_code(cls, code: int) -> FotaLayout:
        """The layout of flash map ``code`` (the high nibble of the boot image's header byte 3)."""
        if code not in MAP_CODES:
            known = ", ".join(str(c) for c in MAP_CODES)
            raise ValueError(f"flash map code {code} has no boot_v1.x user1/user2 layout (known: {known})")
        flash, app = MAP_CODES[code]
        return cls.for_map(flash, app)

    @property
    def map_code(self) -> int | None:
        """The boot image header's map code for this layout (None if it is not one of the SDK's maps)."""
        for code, (flash, app) in MAP_CODES.items():
            if (flash, app) == (self.flash_size, self.app_size):
                return code
        return None

    @property
    def map_name(self) -> str:
        """How boot_v1.x names the map: ``32Mbit(512KB+512KB)``."""
        return f"{self.flash_size * 8 // (1024 * KIB)}Mbit({self.app_size // KIB}KB+{self.app_size // KIB}KB)"

    @property
    def fota_size(self) -> int:
        """Bytes a FOTA client may write to a slot: the FOTA demo's limit of 58/122/250 sectors
        for the 256+256/512+512/1024+1024 maps (:attr:`slot_size` is the SDK documentation's
        figure, one sector more)."""
        return self.slot_size - SECTOR

    def slot_address(self, slot: int) -> int:
        if slot == 1:
            return self.user1
        if slot == 2:
            return self.user2
        raise ValueError(f"slot must be 1 or 2, not {slot}")


MAP_CODES: dict[int, tuple[int, int]] = {
    0: (512 * KIB, 256 * KIB),
    2: (1024 * KIB, 512 * KIB),
    3: (2048 * KIB, 512 * KIB),
    4: (4096 * KIB, 512 * KIB),
    5: (2048 * KIB, 1024 * KIB),
    6: (4096 * KIB, 1024 * KIB),
    8: (8192 * KIB, 1024 * KIB),
    9: (16384 * KIB, 1024 * KIB),
}
"""Flash map code (header byte 3, high nibble) -> (flash size, slot size): the SDK's
``enum flash_size_map`` entries that have a user1/user2 layout (1 = 2 Mbit has none, 7 =
2048+2048 is not supported by boot_v1.x; 8 and 9 are the SDK 2.x additions)."""

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
    return protected_save_writes(state.flag, new_params.encode(), layout)


def protected_save_writes(flag_byte: int, data: bytes, layout: FotaLayout = LAYOUT_1MB_512) -> list[SectorWrite]:
    """The SDK's protected parameter save as writes: ``data`` to the copy that is *not* current,
    then the flag sector rewritten to name that copy.

    This is the one description of the save in the project: the harness's slot switch, the
    boot_v1.x model (first-boot initialisation, fallback marking) and, in C, the host SDK's
    ``system_param_save_with_protect`` all do these two writes in this order. Apply them with
    :func:`apply_protected_save` so each one is erase, program, read back.
    """
    if len(data) > SECTOR:
        raise ValueError(f"parameters of {len(data)} bytes do not fit a {SECTOR}-byte sector")
    target = 1 - active_param_copy(flag_byte)
    return [
        SectorWrite(layout.params[target], bytes(data)),
        SectorWrite(layout.flag, bytes([target]) + b"\xff" * 31),
    ]


class SectorFlash(Protocol):
    """What :func:`apply_protected_save` needs of a flash: the NOR model or anything like it."""

    def read(self, addr: int, length: int) -> bytes: ...

    def erase_sector(self, addr: int) -> None: ...

    def program(self, addr: int, data: bytes) -> None: ...


def apply_protected_save(flash: SectorFlash, writes: list[SectorWrite]) -> bool:
    """Perform :func:`protected_save_writes` (or :func:`switch_slot_writes`) on ``flash``.

    Each write is an erase, a program and a read-back; a read-back that differs stops the save
    before the flag is touched and returns False (the old copy stays current). Given the NOR
    model, every erase and page program is a flash operation a power cut can tear.
    """
    for w in writes:
        flash.erase_sector(w.address)
        if w.data:
            flash.program(w.address, w.data)
        if flash.read(w.address, len(w.data)) != w.data:
            return False
    return True


def initial_fota_sectors(slot: int = 1, layout: FotaLayout = LAYOUT_1MB_512) -> dict[int, bytes]:
    """Parameter and flag sector contents that select ``slot`` (for building flash images)."""
    raw = bytes([0xFF, 0xE0 | BOOT_V1_PARAM_VERSION]) + b"\xff" * 30
    params = BootParams(usr_bin=slot - 1, boot_status=1, raw=raw).encode()
    return {layout.params[0]: params, layout.params[1]: b"\xff" * 32, layout.flag: b"\x00" + b"\xff" * 31}


# ---------------------------------------------------------------------------
# SDK user bins (gen_appbin boot mode 2) with the project's version record
# ---------------------------------------------------------------------------
VERSION_RECORD_MAGIC = b"SDKAPP\x00\x01"
VERSION_RECORD = struct.Struct("<8s32s32sB7s")  # 80 bytes, see the module docstring
VERSION_RECORD_OFFSET = 16  # file offset: the start of the irom0 segment's data
SDK_ENTRY = ESP8266_IRAM + 0x4
SPI_SPEEDS = {0x0: "40MHz", 0x1: "26.7MHz", 0x2: "20MHz", 0xF: "80MHz"}
SPI_MODE_NAMES = {0: "QIO", 1: "QOUT", 2: "DIO", 3: "DOUT"}


@dataclass(frozen=True)
class UserBinDesc:
    """What a user bin says about itself: its version record (empty strings and None when it
    has none, as a real SDK bin) and header byte 3 (the slot gen_appbin linked it for)."""

    project: str
    version: str
    linked_slot: int | None
    header_slot: int


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _decode_record(irom: bytes) -> tuple[str, str, int] | None:
    if len(irom) < VERSION_RECORD.size or irom[:8] != VERSION_RECORD_MAGIC:
        return None
    _magic, version, project, slot, _pad = VERSION_RECORD.unpack_from(irom)
    return _text(project), _text(version), slot


def version_record(slot: int, version: str, project: str = "app") -> bytes:
    """The 80-byte version record for a bin linked for ``slot``."""
    if slot not in (1, 2):
        raise ValueError(f"slot must be 1 or 2, not {slot}")
    fields = []
    for what, value in (("version", version), ("project", project)):
        raw = value.encode("utf-8")
        if len(raw) > 31:
            raise ValueError(f"{what} {value!r} is {len(raw)} bytes; the version record holds 31")
        fields.append(raw)
    return VERSION_RECORD.pack(VERSION_RECORD_MAGIC, fields[0], fields[1], slot, bytes(7))


def _flash_byte3(map_code: int, flash_freq: str | int) -> int:
    if map_code not in MAP_CODES:
        FotaLayout.for_map_code(map_code)  # raises with the known codes
    return (map_code << 4) | ESP8266.flash_freq_code(flash_freq)


def build_user_bin(slot: int, version: str, *, project: str = "app", payload: bytes = b"", irom_size: int = 0,
                   seed: int = 0, map_code: int = 4, spi_mode: str = "qio", flash_freq: str = "40m",
                   ram_size: int = 0x2000) -> bytes:
    """A user1/user2 bin as ``gen_appbin.py`` lays it out (boot mode 2), with the version record.

    ``payload`` is placed verbatim after the record (irom0 offset 80, 16-byte aligned); a host
    build puts its framed executable there. ``irom_size`` is the minimum irom0 length (the rest
    is deterministic filler). user1 and user2 are different builds, as they are for the 512+512
    maps: their RAM segments differ. The inner header carries ``spi_mode`` and
    ``map_code << 4 | flash_freq`` as gen_appbin writes them.
    """
    record = version_record(slot, version, project)
    irom = record + bytes(payload)
    irom += bytes(-len(irom) % 16)
    if irom_size > len(irom):
        irom += filler(seed, f"irom{slot}", irom_size - len(irom))
    irom += bytes(-len(irom) % 16)
    app = build_esp8266_app(project=project, version=version, size=ram_size, seed=(seed << 2) | slot,
                            spi_mode=spi_mode, flash_freq=flash_freq, entry=SDK_ENTRY)
    inner = bytearray(app.to_bytes())
    inner[3] = _flash_byte3(map_code, flash_freq)
    out = struct.pack("<BBBBI", EA_MAGIC, EA_HEADER_COUNT, 0, slot, SDK_ENTRY)
    out += struct.pack("<II", 0, len(irom)) + irom + bytes(inner)
    return out + struct.pack("<I", sdk_crc(out))


def read_user_bin_desc(data: bytes) -> UserBinDesc | None:
    """The version record and header slot of a user bin, from its first 96 bytes or more.

    None when ``data`` does not start with a gen_appbin boot-mode-2 header.
    """
    data = bytes(data[:VERSION_RECORD_OFFSET + VERSION_RECORD.size])
    if len(data) < 8 or data[0] != EA_MAGIC or data[1] != EA_HEADER_COUNT:
        return None
    record = _decode_record(data[VERSION_RECORD_OFFSET:])
    if record is None:
        return UserBinDesc("", "", None, data[3])
    project, version, slot = record
    return UserBinDesc(project, version, slot if slot in (1, 2) else None, data[3])


def _whole_bin(data: bytes) -> ParsedEaImage:
    parsed = parse_ea_image(data)
    if parsed.length != len(data):
        raise ImageFormatError(f"user bin is {len(data)} bytes but its segments and CRC end at {parsed.length}",
                               parsed.length)
    return parsed


def _recrc(data: bytes | bytearray) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, len(out) - CRC_LEN, sdk_crc(bytes(out[:-CRC_LEN])))
    return bytes(out)


def bad_crc(data: bytes) -> bytes:
    """The bin with a wrong SDK CRC (everything else intact: it boots if it got switched to)."""
    _whole_bin(data)
    out = bytearray(data)
    out[-CRC_LEN:] = bytes(b ^ 0x5A for b in out[-CRC_LEN:])
    return bytes(out)


def truncated(data: bytes, keep: int | None = None) -> bytes:
    """The first ``keep`` bytes of the bin (default: half of it)."""
    keep = len(data) // 2 if keep is None else keep
    if not 0 <= keep < len(data):
        raise ValueError(f"keep must be 0..{len(data) - 1} bytes of a {len(data)}-byte bin, not {keep}")
    return bytes(data[:keep])


def other_slot(data: bytes) -> bytes:
    """The bin relabelled as linked for the other slot: header byte 3 and the record, CRC recomputed."""
    parsed = _whole_bin(data)
    slot = data[3]
    if slot not in (1, 2):
        raise ImageFormatError(f"header byte 3 is {slot}, not a slot (1 or 2)", 3)
    out = bytearray(data)
    out[3] = 3 - slot
    if _decode_record(parsed.irom) is not None:
        out[VERSION_RECORD_OFFSET + 72] = 3 - slot
    return _recrc(out)


def bad_magic(data: bytes) -> bytes:
    """The bin with its inner E9 magic broken and the CRC recomputed: it passes the app's CRC check
    and fails boot_v1.x's magic check."""
    parsed = _whole_bin(data)
    out = bytearray(data)
    out[parsed.inner_offset] = 0x9E
    return _recrc(out)


def too_large(data: bytes, slot_size: int) -> bytes:
    """The bin with its irom0 segment grown so the whole bin is longer than ``slot_size``."""
    parsed = _whole_bin(data)
    grow = max(16, slot_size - len(data) + 16)
    grow += -grow % 16
    irom = parsed.irom + bytes(grow)
    out = data[:8] + struct.pack("<II", 0, len(irom)) + irom + data[parsed.inner_offset:parsed.crc_offset]
    return out + struct.pack("<I", sdk_crc(out))


def with_version(data: bytes, version: str) -> bytes:
    """The bin restamped with ``version`` in its record, checksum and CRC recomputed."""
    parsed = _whole_bin(data)
    record = _decode_record(parsed.irom)
    if record is None:
        raise ImageFormatError("user bin has no version record at 0x10 (magic SDKAPP)", VERSION_RECORD_OFFSET)
    project, _old, slot = record
    out = bytearray(data)
    out[VERSION_RECORD_OFFSET:VERSION_RECORD_OFFSET + VERSION_RECORD.size] = version_record(slot, version, project)
    return rehash_ea(bytes(out))


# ---------------------------------------------------------------------------
# the boot image at 0x0 (the project's stand-in for boot_v1.x) and the SDK baseline
# ---------------------------------------------------------------------------
BOOT_V1_MARKER = b"esp-ota-hil boot_v1.x model\0"
"""The string that makes the virtual ESP8266 run its boot_v1.x model for an image at 0x0."""
BOOT_V1_VERSION_TEXT = "1.7(5d6f877)"
"""What boot_v1.7 prints after ``2nd boot version : ``; the project's boot image prints the same."""
BOOT_V1_PARAM_VERSION = 7
"""The loader version boot_v1.7 writes into byte 1 of the parameters (inferred: the minor version)."""
_BOOT_VERSION_RE = re.compile(rb"2nd boot version : ([0-9]+)\.([0-9]+)(\([0-9A-Za-z]+\))?")
INIT_DATA_PLACEHOLDER = b"esp-ota-hil: placeholder for esp_init_data_default.bin".ljust(128, b"\0")
"""128 bytes at sector N-4. The SDK's RF defaults are Espressif's; the virtual board reads nothing
from this sector, and a bench is flashed with the SDK's own file."""


@dataclass(frozen=True)
class BootV1Info:
    """A boot_v1.x image recognised at 0x0: the version text it prints, the version it writes into
    the parameters, and whether it is the project's own boot image."""

    version_text: str
    version: int
    ours: bool


def build_boot_image(map_code: int = 4, *, spi_mode: str = "qio", flash_freq: str = "40m",
                     version_text: str = BOOT_V1_VERSION_TEXT) -> bytes:
    """The project's boot image for 0x0: an E9 image (under one sector) whose header carries the
    SPI mode (byte 2) and ``map_code << 4 | flash_freq`` (byte 3), and whose data segment holds
    :data:`BOOT_V1_MARKER` and the version line, by which the virtual ESP8266 recognises it.
    No Espressif code: it only makes the virtual board behave like one running boot_v1.x."""
    rodata = BOOT_V1_MARKER + f"2nd boot version : {version_text}\0".encode()
    rodata += bytes(-len(rodata) % 4)
    app = AppImage(chip=ESP8266.name, segments=(Segment(ESP8266_IRAM, filler(0, "boot_v1", 0x400)),
                                                Segment(ESP8266_DRAM, rodata)),
                   entry=ESP8266_IRAM + 0x4, spi_mode=SPI_MODES[spi_mode.lower()])
    out = bytearray(app.to_bytes())
    out[3] = _flash_byte3(map_code, flash_freq)
    return bytes(out)


def find_boot_v1(image: bytes) -> BootV1Info | None:
    """Recognise a boot_v1.x at 0x0: the project's boot image (its marker) or an SDK
    ``boot_v1.x.bin`` (it contains "2nd boot version"). ``image`` is the image's bytes."""
    ours = BOOT_V1_MARKER in image
    if not ours and b"2nd boot version" not in image:
        return None
    m = _BOOT_VERSION_RE.search(image)
    if m is None:
        return BootV1Info(BOOT_V1_VERSION_TEXT, BOOT_V1_PARAM_VERSION, ours)
    text = m.group(0)[len(b"2nd boot version : "):].decode("ascii")
    return BootV1Info(text, int(m.group(2)) & 0x1F, ours)


@dataclass(frozen=True)
class FlashSettings:
    """Header bytes 2 and 3 of the image at 0x0, as boot_v1.x prints them."""

    spi_mode: int
    map_code: int
    speed: int

    @classmethod
    def from_header(cls, header: bytes) -> FlashSettings:
        if len(header) < 4:
            raise ImageFormatError(f"image header needs 4 bytes, only {len(header)} present", 0)
        return cls(header[2], header[3] >> 4, header[3] & 0xF)

    @property
    def mode_name(self) -> str:
        return SPI_MODE_NAMES.get(self.spi_mode, f"unknown({self.spi_mode})")

    @property
    def speed_name(self) -> str:
        return SPI_SPEEDS.get(self.speed, f"unknown({self.speed})")


def sdk_baseline(flash_size: int | str, map_code: int, user1: bytes, *, boot: bytes | None = None) -> list:
    """What a board in SDK FOTA layout is flashed with (a list of ``harness.firmware.FlashPart``).

    The boot image at 0 (the project's, or ``boot``: on a bench the SDK's boot_v1.7.bin), user1
    at 0x1000, :data:`INIT_DATA_PLACEHOLDER` at sector N-4 and blank.bin (one 0xFF sector) at N-2,
    so the loader's first boot writes fresh parameters. N comes from the map code, which must fit
    ``flash_size``.
    """
    from ..firmware import FlashPart

    layout = FotaLayout.for_map_code(map_code)
    size = parse_size(flash_size)
    if layout.flash_size > size:
        raise ValueError(f"flash map code {map_code} ({layout.map_name}) needs {layout.flash_size // KIB} KB "
                         f"of flash, the board has {size // KIB} KB")
    if len(user1) > layout.fota_size:
        raise ValueError(f"user1 is {len(user1)} bytes; the slot holds {layout.fota_size}")
    if boot is None:
        boot = build_boot_image(map_code)
    info = find_boot_v1(boot)
    if len(boot) > layout.user1:
        raise ValueError(f"boot image is {len(boot)} bytes; it must fit below user1 at 0x{layout.user1:x}")
    return [
        FlashPart(0, bytes(boot), "boot.bin" if info is None or info.ours else "boot_v1.7.bin"),
        FlashPart(layout.user1, bytes(user1), "user1.bin"),
        FlashPart(layout.init_data, INIT_DATA_PLACEHOLDER, "esp_init_data_default.bin"),
        FlashPart(layout.params[1], b"\xff" * SECTOR, "blank.bin"),
    ]


# ---------------------------------------------------------------------------
# what boot_v1.x checks and decides (shared by the virtual board's model and the boot-state oracle)
# ---------------------------------------------------------------------------
MAX_RAM_IMAGE = 0x20000
"""Bytes read for a bin's RAM image (header + segments): the ESP8266 has 80 KiB of DRAM and 32 KiB of IRAM."""
BOOT_PARAMS_LEN = 32
"""The boot parameter bytes the loader writes (the rest of a copy is what an SDK keeps after them)."""


@dataclass(frozen=True)
class BootBinCheck:
    """The loader's verdict on the bin at a slot: ``ok``, or ``magic`` / ``checksum`` failures."""

    ok: bool
    failure: str | None = None  # "magic" | "checksum"
    detail: str = ""
    image: object | None = None  # ParsedEaImage (0xEA bin) or ParsedImage (plain 0xE9) when ok
    length: int = 0


def _ram_image_span(read, inner: int, limit: int) -> int:
    """Bytes of the RAM image at ``inner``, from its segment headers (read one by one, as the loader does)."""
    count = read(inner, 8)[1]
    pos = 8
    for index in range(count):
        if inner + pos + 8 > limit:
            raise ImageFormatError(f"segment {index} header at 0x{inner + pos:x} is beyond the flash", pos)
        length = struct.unpack("<II", read(inner + pos, 8))[1]
        if length > MAX_RAM_IMAGE:
            raise ImageFormatError(f"segment {index} claims 0x{length:x} bytes, more than RAM holds", pos + 4)
        pos += 8 + length
    end = checksum_position(pos) + 1
    if inner + end > limit:
        raise ImageFormatError(f"image of 0x{end:x} bytes at 0x{inner:x} runs past the flash", end)
    return end


def ea_bin_length(read, address: int, limit: int) -> int:
    """Length of the user bin at ``address`` (header, irom0, RAM image, CRC) from its headers alone, whatever its
    inner magic says, so a bin the loader refuses can still have its CRC checked. ImageFormatError if the
    headers run past ``limit``."""
    head = read(address, 16)
    if head[0] != EA_MAGIC:
        raise ImageFormatError(f"byte 0x{head[0]:02x} at 0x{address:x} is not 0xea", 0)
    inner = address + 16 + struct.unpack_from("<I", head, 12)[0]
    if inner + 8 > limit:
        raise ImageFormatError(f"irom0 segment at 0x{address + 16:x} runs past 0x{limit:x}", 12)
    end = inner + _ram_image_span(read, inner, limit) + CRC_LEN
    if end > limit:
        raise ImageFormatError(f"user bin at 0x{address:x} runs past 0x{limit:x}", end - address)
    return end - address


def check_boot_bin(read, address: int, limit: int) -> BootBinCheck:
    """boot_v1.x's checks of the bin at ``address``: magic (0xE9, or 0xEA/4 then 0xE9 after irom0) and the
    RAM segments' checksum. ``read(addr, n)`` reads flash; ``limit`` is the end of readable flash."""
    head = read(address, 16)
    if head[0] == EA_MAGIC and head[1] == EA_HEADER_COUNT:
        irom_len = struct.unpack_from("<I", head, 12)[0]
        inner = address + 16 + irom_len
        if irom_len % 16 or inner + 8 > limit:
            return BootBinCheck(False, "magic", f"irom0 length 0x{irom_len:x} at 0x{address + 12:x} is not plausible")
    elif head[0] == IMAGE_MAGIC:
        inner = address
    else:
        return BootBinCheck(False, "magic", f"byte 0x{head[0]:02x} at 0x{address:x} is not an image magic")
    first = read(inner, 1)[0]
    if first != IMAGE_MAGIC:
        return BootBinCheck(False, "magic", f"byte 0x{first:02x} at 0x{inner:x} is not the 0xe9 of the RAM image")
    try:
        ram = parse_image(read(inner, _ram_image_span(read, inner, limit)), ESP8266)
    except ImageFormatError as e:
        return BootBinCheck(False, "checksum", f"RAM image at 0x{inner:x}: {e}")
    if not ram.checksum_ok:
        detail = f"RAM segments' checksum 0x{ram.calculated_checksum:02x}, stored 0x{ram.stored_checksum:02x}"
        return BootBinCheck(False, "checksum", detail)
    if inner == address:
        return BootBinCheck(True, image=ram, length=ram.length)
    end = inner + ram.length + 4
    if end > limit:
        return BootBinCheck(True, image=ram, length=limit - address)
    try:
        parsed = parse_ea_image(read(address, end - address))
    except ImageFormatError:
        return BootBinCheck(True, image=ram, length=end - address)
    return BootBinCheck(True, image=parsed, length=parsed.length)


def fresh_boot_params(version: int) -> bytes:
    """What the loader writes on first boot: all 0xFF, usr_bin 0 (boot_status stays 1), its version."""
    raw = bytearray(b"\xff" * BOOT_PARAMS_LEN)
    raw[0] &= 0xFC
    raw[1] = (raw[1] & 0xE0) | (version & 0x1F)
    return bytes(raw)


def boot_params_valid(params: BootParams, version: int) -> bool:
    return params.version == (version & 0x1F) and params.usr_bin != 3


def boot_v1_outcome(params: BootParams, loader_version: int, bin_ok) -> tuple[int, int | None]:
    """What boot_v1.x does with these parameters: (the slot it tries first, the slot that ends up
    running or None for ``backup boot failed.``). ``bin_ok(slot)`` says whether a slot passes the
    loader's checks (:func:`check_boot_bin`). Invalid parameters are first replaced by fresh ones."""
    if not boot_params_valid(params, loader_version):
        params = BootParams.decode(fresh_boot_params(loader_version))
    chosen = params.booted_slot
    if bin_ok(chosen):
        return chosen, chosen
    if params.boot_status != 1:
        return chosen, None
    backup = replace(params, boot_status=0).booted_slot
    return chosen, backup if backup != chosen and bin_ok(backup) else None


__all__ = [
    "FLAG_ADDR", "INIT_DATA_ADDR", "PARAMS_ADDRS", "USER1_ADDR", "USER2_ADDR", "booted_slot",
    "Banner", "BootParams", "EA_MAGIC", "EaImage", "FotaLayout", "FotaState", "LAYOUT_1MB_512", "ParsedEaImage",
    "SectorWrite", "active_param_copy", "build_ea_image", "check_sdk_crc", "decode_fota_state",
    "find_micropython_banner", "initial_fota_sectors", "parse_ea_image", "rehash_ea", "sdk_crc",
    "switch_slot_writes", "verify_ea_image", "v1_checksum",
    "BOOT_V1_MARKER", "BOOT_V1_PARAM_VERSION", "BOOT_V1_VERSION_TEXT", "BootV1Info", "FlashSettings",
    "INIT_DATA_PLACEHOLDER", "MAP_CODES", "SectorFlash", "UserBinDesc", "VERSION_RECORD", "VERSION_RECORD_MAGIC",
    "apply_protected_save", "bad_crc", "bad_magic", "build_boot_image", "build_user_bin", "find_boot_v1",
    "other_slot", "protected_save_writes", "read_user_bin_desc", "sdk_baseline", "too_large", "truncated",
    "version_record", "with_version", "BOOT_PARAMS_LEN", "BootBinCheck", "boot_params_valid", "boot_v1_outcome",
    "check_boot_bin", "ea_bin_length", "fresh_boot_params",
]
