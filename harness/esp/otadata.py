"""The otadata partition: two 4 KiB sectors, each starting with an ``esp_ota_select_entry_t``.

Entry, 32 bytes little endian::

    0   ota_seq   u32   which OTA slot: (seq - 1) % number_of_ota_slots
    4   seq_label 20 bytes (unused by IDF, normally 0xFF)
    24  ota_state u32   NEW 0, PENDING_VERIFY 1, VALID 2, INVALID 3, ABORTED 4, UNDEFINED 0xFFFFFFFF
    28  crc       u32   CRC-32 of the 4 ota_seq bytes, started from 0xFFFFFFFF
                        (ROM ``crc32_le(UINT32_MAX, ...)`` == ``zlib.crc32(seq_bytes, 0xFFFFFFFF)``,
                        which is also what ESP-IDF's otatool.py computes)

Two copies exist so that an update can write the new selection into the sector
that is *not* in use; a power cut mid-write then leaves the old one intact.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from enum import IntEnum

from .errors import OtadataError

OTADATA_SECTOR_SIZE = 0x1000
OTADATA_SIZE = 2 * OTADATA_SECTOR_SIZE
ENTRY_LEN = 32
SEQ_BLANK = 0xFFFFFFFF
_ENTRY_FMT = "<I20sII"


class OtaState(IntEnum):
    """``esp_ota_img_states_t``."""

    NEW = 0
    PENDING_VERIFY = 1
    VALID = 2
    INVALID = 3
    ABORTED = 4
    UNDEFINED = 0xFFFFFFFF


def state_name(state: int) -> str:
    try:
        return OtaState(state).name
    except ValueError:
        return f"0x{state:08x}"


def ota_seq_crc(seq: int) -> int:
    """CRC the bootloader expects in an entry carrying ``seq``."""
    return zlib.crc32(struct.pack("<I", seq & 0xFFFFFFFF), 0xFFFFFFFF) & 0xFFFFFFFF


@dataclass(frozen=True)
class OtaSelectEntry:
    """One ``esp_ota_select_entry_t``.

    ``crc=None`` means "the correct CRC for ``seq``"; pass a number to represent
    what is actually on flash (e.g. a torn or tampered entry). ``state`` may hold
    values outside :class:`OtaState`, as raw flash can.
    """

    seq: int
    state: int = OtaState.UNDEFINED
    label: bytes = b"\xff" * 20
    crc: int | None = None

    def __post_init__(self) -> None:
        if len(self.label) != 20:
            raise ValueError(f"seq_label must be 20 bytes, not {len(self.label)}")
        if self.crc is None:
            object.__setattr__(self, "crc", ota_seq_crc(self.seq))
        if isinstance(self.state, int) and not isinstance(self.state, OtaState):
            try:
                object.__setattr__(self, "state", OtaState(self.state))
            except ValueError:
                pass

    @classmethod
    def make(cls, seq: int, state: int = OtaState.UNDEFINED) -> OtaSelectEntry:
        """An entry with the correct CRC and a blank label, as ``esp_ota_set_boot_partition`` writes one."""
        return cls(seq, state, b"\xff" * 20, ota_seq_crc(seq))

    @classmethod
    def blank(cls) -> OtaSelectEntry:
        """What an erased sector decodes to."""
        return cls(SEQ_BLANK, OtaState.UNDEFINED, b"\xff" * 20, 0xFFFFFFFF)

    def pack(self) -> bytes:
        return struct.pack(_ENTRY_FMT, self.seq & 0xFFFFFFFF, self.label, int(self.state) & 0xFFFFFFFF,
                           (self.crc or 0) & 0xFFFFFFFF)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> OtaSelectEntry:
        if len(data) - offset < ENTRY_LEN:
            raise OtadataError(f"otadata entry at 0x{offset:x} needs {ENTRY_LEN} bytes, "
                               f"only {max(0, len(data) - offset)} present", offset)
        seq, label, state, crc = struct.unpack_from(_ENTRY_FMT, data, offset)
        return cls(seq, state, label, crc)

    def with_state(self, state: int) -> OtaSelectEntry:
        """Same entry with another state; the CRC (which covers only seq) is kept as stored."""
        return replace(self, state=state)

    def with_seq(self, seq: int) -> OtaSelectEntry:
        """Same entry (label, state) with a new seq and the matching CRC, like IDF's ``rewrite_ota_seq``."""
        return replace(self, seq=seq, crc=ota_seq_crc(seq))

    # -- the bootloader's predicates (bootloader_common.c) -----------------------
    @property
    def crc_ok(self) -> bool:
        return self.crc == ota_seq_crc(self.seq)

    @property
    def is_invalid(self) -> bool:
        """``bootloader_common_ota_select_invalid``: seq blank, or state INVALID/ABORTED (CRC not looked at)."""
        return self.seq == SEQ_BLANK or self.state in (OtaState.INVALID, OtaState.ABORTED)

    @property
    def is_valid(self) -> bool:
        """``bootloader_common_ota_select_valid``: not invalid and the CRC matches."""
        return not self.is_invalid and self.crc_ok

    @property
    def is_initial(self) -> bool:
        """seq blank or CRC wrong: what the bootloader treats as "never written"."""
        return self.seq == SEQ_BLANK or not self.crc_ok

    @property
    def is_blank(self) -> bool:
        return self.pack() == b"\xff" * ENTRY_LEN

    def slot(self, app_count: int) -> int | None:
        """OTA slot this entry selects with ``app_count`` OTA partitions (uint32 arithmetic, as in C)."""
        if app_count <= 0:
            return None
        return ((self.seq - 1) & 0xFFFFFFFF) % app_count

    def describe(self) -> str:
        if self.is_blank:
            return "erased"
        crc = "crc ok" if self.crc_ok else f"crc 0x{self.crc:08x} wrong"
        return f"seq=0x{self.seq:08x} state={state_name(self.state)} {crc}"


def parse_otadata(region: bytes) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    """Both entries of an otadata partition (its full 0x2000 bytes, or at least 0x1000 + 32)."""
    region = bytes(region)
    if len(region) < OTADATA_SECTOR_SIZE + ENTRY_LEN:
        raise OtadataError(f"otadata region is 0x{len(region):x} bytes; need 0x{OTADATA_SIZE:x} "
                           "(two 4 KiB sectors)", len(region))
    return OtaSelectEntry.unpack(region, 0), OtaSelectEntry.unpack(region, OTADATA_SECTOR_SIZE)


def sector_image(entry: OtaSelectEntry | None) -> bytes:
    """One 4 KiB otadata sector as written: the entry, then 0xFF (None: an erased sector)."""
    head = entry.pack() if entry is not None else b""
    return head + b"\xff" * (OTADATA_SECTOR_SIZE - len(head))


def otadata_region(entry0: OtaSelectEntry | None = None, entry1: OtaSelectEntry | None = None) -> bytes:
    """A whole 0x2000-byte otadata partition holding the given entries (None = erased sector)."""
    return sector_image(entry0) + sector_image(entry1)


def as_entries(otadata: bytes | tuple[OtaSelectEntry, OtaSelectEntry] | None) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    """Accept either the raw region or a pair of entries (None: both sectors erased)."""
    if otadata is None:
        return OtaSelectEntry.blank(), OtaSelectEntry.blank()
    if isinstance(otadata, (bytes, bytearray, memoryview)):
        return parse_otadata(bytes(otadata))
    first, second = otadata
    return first, second


__all__ = [
    "ENTRY_LEN", "OTADATA_SECTOR_SIZE", "OTADATA_SIZE", "OtaSelectEntry", "OtaState", "as_entries",
    "ota_seq_crc", "otadata_region", "parse_otadata", "sector_image", "state_name",
]
