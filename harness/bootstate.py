"""The boot-state oracle: what a board's flash says will happen at the next boot.

Read with esptool (``harness.flashing``) on real boards, and on an idle or switched-off
virtual board straight from its flash file (:class:`FlashFile`: the flash model writes
every completed operation through to it, so the file is the flash), and decoded the same
way from either with ``harness.esp``: the partition table, both otadata entries, every app
slot's image (version, validity), which slot the bootloader will start next, and, for the
MicroPython agent's file OTA, the slot record and slot manifests read out of littlefs in
the filesystem region (``littlefs-python``, blocks fetched as needed).

An ESP8266 whose flash holds the SDK's FOTA layout (a boot_v1.x at 0x0) is decoded as
boot_v1.x sees it (:class:`SdkState`): the flag sector and both parameter copies, both user
bins' headers, version records, magic, RAM checksum and CRC, and which bin runs next, decided
by the same rules the virtual board's boot_v1.x model uses (``harness.esp.esp8266_image``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from .chips import chip as chip_class
from .esp import boot as rules
from .esp import esp8266_image as sdk
from .esp.app_image import image_length, verify_image
from .esp.errors import FormatError, ImageFormatError
from .esp.otadata import OTADATA_SECTOR_SIZE, parse_otadata, state_name
from .esp.partition_table import PartitionTable

PARTITION_TABLE_OFFSET = 0x8000
BLOCK = 0x1000
READ_CHUNK = 0x10000


@dataclass
class SlotState:
    label: str
    offset: int
    size: int
    project: str = ""
    version: str = ""
    valid: bool = False
    reason: str | None = None
    ota_state: str | None = None  # the otadata entry naming this slot: NEW, PENDING_VERIFY, VALID, ...


@dataclass
class FileSlots:
    active: str | None = None
    previous: str | None = None
    pending: bool = False
    tries: int = 0
    versions: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None


@dataclass
class SdkParams:
    """One copy of boot_v1.x's parameters."""

    copy: int
    address: int
    usr_bin: int
    boot_status: int
    version: int
    valid: bool  # the loader accepts it as it is (its own version, usr_bin not 3)
    head: str  # the first 8 bytes, hex


@dataclass
class SdkSlot:
    """A user bin slot as boot_v1.x and an SDK app see it."""

    slot: int
    address: int
    header_slot: int | None = None  # EA header byte 3: the slot gen_appbin linked the bin for
    project: str = ""
    version: str = ""
    linked_slot: int | None = None  # the version record's slot
    magic_ok: bool = False  # 0xEA/4 then 0xE9 (or a plain 0xE9)
    inner_magic: int | None = None
    checksum_ok: bool = False  # RAM segments: what the loader checks
    crc_ok: bool = False  # the SDK CRC over the bin's own length: what upgrade_crc_check checks
    length: int = 0
    bootable: bool = False  # passes the loader's checks
    reason: str | None = None


@dataclass
class SdkState:
    """An ESP8266 in SDK FOTA layout, decoded as boot_v1.x reads it."""

    map_code: int
    map_name: str
    loader: str  # "2nd boot version" text
    loader_version: int
    flag: int
    current_copy: int
    copies: list[SdkParams]
    slots: dict[int, SdkSlot]
    chosen_slot: int  # what the loader tries first
    next_slot: int | None  # what runs after the next boot (after a fallback); None: "backup boot failed."
    error: str | None = None

    @property
    def params(self) -> SdkParams:
        """The current parameter copy."""
        return self.copies[self.current_copy]

    @property
    def running_slot(self) -> int | None:
        """The bin boot_v1.x runs (on an idle board: the one running now, or the next boot's)."""
        return self.next_slot

    @property
    def slot_versions(self) -> dict[int, str | None]:
        """The version record of each slot's bin (None: no record, e.g. an empty slot)."""
        return {n: s.version or None for n, s in self.slots.items()}


@dataclass
class BootState:
    chip: str
    boot_slot: str | None = None  # what the bootloader starts next (ESP32), after its own checks
    otadata: list[dict] = field(default_factory=list)
    slots: dict[str, SlotState] = field(default_factory=dict)
    files: FileSlots | None = None
    table_error: str | None = None
    sdk: SdkState | None = None  # an ESP8266 in the SDK's FOTA layout

    @property
    def boot_version(self) -> str | None:
        slot = self.slots.get(self.boot_slot or "")
        return slot.version if slot else None

    @property
    def boot_selection(self) -> list[dict]:
        """What tells the loader which slot to boot, to compare before and after: both otadata entries (ESP32), or
        boot_v1.x's flag and both parameter copies (an ESP8266 in SDK layout)."""
        if self.sdk is None:
            return self.otadata
        k = self.sdk
        return [{"flag": k.flag, "current_copy": k.current_copy},
                *({"copy": c.copy, "usr_bin": c.usr_bin, "boot_status": c.boot_status, "version": c.version,
                   "head": c.head} for c in k.copies)]

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"chip {self.chip}"]
        if self.table_error:
            lines.append(f"partition table: {self.table_error}")
        if self.slots:
            lines.append(f"next boot: {self.boot_slot} ({self.boot_version})")
            for e in self.otadata:
                lines.append(f"otadata[{e['sector']}]: seq={e['seq']} state={e['state']} crc_ok={e['crc_ok']}")
            for s in self.slots.values():
                ok = "valid" if s.valid else f"INVALID ({s.reason})"
                lines.append(f"{s.label:6} 0x{s.offset:06x} {s.project} {s.version} {ok} otadata={s.ota_state}")
        if self.sdk is not None:
            k = self.sdk
            lines.append(f"sdk: boot_v1 {k.loader}, map {k.map_code} {k.map_name}, flag {k.flag} -> copy "
                         f"{k.current_copy}, next boot: user{k.chosen_slot} -> "
                         f"{'user' + str(k.next_slot) if k.next_slot else 'backup boot failed'}")
            for c in k.copies:
                lines.append(f"params[{c.copy}] 0x{c.address:06x}: usr_bin={c.usr_bin} boot_status={c.boot_status} "
                             f"version={c.version} valid={c.valid}")
        if self.files is not None:
            f = self.files
            if f.error:
                lines.append(f"files: {f.error}")
            else:
                lines.append(f"files: active={f.active} pending={f.pending} tries={f.tries} previous={f.previous} "
                             f"versions={f.versions}")
        return "\n".join(lines)


class FlashSource(Protocol):
    """Where the oracle reads flash from: an esptool session (:class:`~harness.flashing.Flasher`) or a file."""

    def read(self, address: int, size: int) -> bytes: ...

    def md5(self, address: int, size: int) -> str: ...


class FlashFile:
    """A virtual board's flash, read from its flash file (no esptool session, no reset)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def read(self, address: int, size: int) -> bytes:
        with open(self.path, "rb") as f:
            data = os.pread(f.fileno(), size, address)
        if len(data) != size:
            raise FlashReadError(f"{self.path}: 0x{address:x}+0x{size:x} is beyond the flash "
                                 f"({self.path.stat().st_size} bytes)")
        return data

    def md5(self, address: int, size: int) -> str:
        return hashlib.md5(self.read(address, size)).hexdigest()


class FlashReadError(RuntimeError):
    pass


class _Reader:
    """Flash reads from a :class:`FlashSource`, cached in 4 KiB blocks, fetched in runs."""

    def __init__(self, flasher: FlashSource):
        self.flasher = flasher
        self.blocks: dict[int, bytes] = {}

    def read(self, offset: int, length: int) -> bytes:
        first, last = offset // BLOCK, (offset + length - 1) // BLOCK
        b = first
        while b <= last:
            if b in self.blocks:
                b += 1
                continue
            run = b
            while run <= last and run not in self.blocks and (run - b) * BLOCK < READ_CHUNK:
                run += 1
            data = self.flasher.read(b * BLOCK, (run - b) * BLOCK)
            for i in range(run - b):
                self.blocks[b + i] = data[i * BLOCK:(i + 1) * BLOCK]
            b = run
        blob = b"".join(self.blocks[i] for i in range(first, last + 1))
        start = offset - first * BLOCK
        return blob[start:start + length]


def _image_span(reader: _Reader, offset: int, size: int, chip: str) -> int:
    """How many bytes of the slot the image claims (header + segments + checksum + hash), within the slot."""
    probe = min(size, BLOCK)
    while True:
        try:
            return min(size, image_length(reader.read(offset, probe), chip))
        except FormatError as e:
            if probe >= size or "magic" in str(e).lower():
                return min(size, probe)
            probe = min(size, probe * 4)


def read_boot_state(flasher: FlashSource, chip: str, *, files_region: tuple[int, int] | None = None,
                    known: Sequence[bytes] = ()) -> BootState:
    """Read and decode the board's boot state; ``files_region`` (offset, size) also decodes the file slots.

    ``known`` are images the caller wrote or served: a slot whose first block and MD5 match
    one of them is judged from that image, so the slot itself is not read back (a 1.5 MB
    read takes seconds here and half a minute at 460800 baud on a bench).
    """
    reader = _Reader(flasher)
    state = BootState(chip=chip)
    if not chip_class(chip).has_partition_table:
        state.sdk = _read_sdk_state(reader, known)
        if state.sdk is not None:
            _sdk_slots(state)
    if chip_class(chip).has_partition_table:
        _read_app_slots(reader, state, known)
        if files_region is None and state.table_error is None:
            table = PartitionTable.from_bytes(reader.read(PARTITION_TABLE_OFFSET, 0xC00))
            vfs = table.find("vfs")
            if vfs is not None:
                files_region = (vfs.offset, vfs.size)
    if files_region is not None:
        state.files = read_file_slots(reader, *files_region)
    return state


def _known_image(reader: _Reader, offset: int, known: Sequence[bytes], chip: str = "esp32") -> bytes | None:
    """A known image the slot holds, whole. Only complete images count: a truncated one (the first 64000 bytes
    of an image, served as a fault) also matches a slot that holds the image it was cut from."""
    head = reader.read(offset, BLOCK)
    for image in sorted(known, key=len, reverse=True):
        if len(image) >= BLOCK and image[:BLOCK] == head and _whole(image, chip) and \
                reader.flasher.md5(offset, len(image)) == hashlib.md5(image).hexdigest():
            return image
    return None


def _whole(image: bytes, chip: str) -> bool:
    try:
        return image_length(image, chip) == len(image)
    except FormatError:
        return False


def _read_app_slots(reader: _Reader, state: BootState, known: Sequence[bytes] = ()) -> None:
    try:
        table = PartitionTable.from_bytes(reader.read(PARTITION_TABLE_OFFSET, 0xC00))
    except FormatError as e:
        state.table_error = str(e)
        return
    otadata = reader.read(table.otadata.offset, 2 * OTADATA_SECTOR_SIZE) if table.otadata else None
    if otadata is not None:
        for i, e in enumerate(parse_otadata(otadata)):
            state.otadata.append({"sector": i, "seq": e.seq, "state": state_name(e.state), "crc_ok": e.crc_ok})

    checks: dict[str, rules.SlotCheck] = {}

    def check(p) -> rules.SlotCheck:
        if p.label not in checks:
            data = _known_image(reader, p.offset, known, state.chip)
            if data is None:
                data = reader.read(p.offset, _image_span(reader, p.offset, p.size, state.chip))
            checks[p.label] = rules.SlotCheck.from_image_check(
                verify_image(data, chip=state.chip, partition_size=p.size, address=p.offset))
        return checks[p.label]

    for p in table.apps:
        c = check(p)
        ota = rules.app_state(table, otadata, p) if otadata is not None else None
        state.slots[p.label] = SlotState(p.label, p.offset, p.size, c.project, c.version, c.ok, c.reason,
                                         None if ota is None else state_name(ota))
    decision = rules.select_boot(table, otadata, check)
    state.boot_slot = decision.partition.label if decision.partition is not None else None


def read_sdk_state(flasher: FlashSource, known: Sequence[bytes] = ()) -> SdkState | None:
    """The SDK FOTA state of an ESP8266's flash, or None when 0x0 holds no boot_v1.x.

    ``known`` are bins the caller wrote or served (as for :func:`read_boot_state`)."""
    return _read_sdk_state(_Reader(flasher), known)


def _read_sdk_state(reader: _Reader, known: Sequence[bytes] = ()) -> SdkState | None:
    head = reader.read(0, BLOCK)
    if head[0] != 0xE9:
        return None
    info = sdk.find_boot_v1(head)
    if info is None:
        return None
    settings = sdk.FlashSettings.from_header(head)
    try:
        layout = sdk.FotaLayout.for_map_code(settings.map_code)
    except ValueError as e:
        return SdkState(settings.map_code, "", info.version_text, info.version, 0, 0, [], {}, 0, None, error=str(e))
    try:
        flag = reader.read(layout.flag, 1)[0]
        raw = [reader.read(a, sdk.BOOT_PARAMS_LEN) for a in layout.params]
    except FlashReadError as e:
        return SdkState(settings.map_code, layout.map_name, info.version_text, info.version, 0, 0, [], {}, 0, None,
                        error=str(e))
    copies = []
    for i, (address, data) in enumerate(zip(layout.params, raw, strict=True)):
        p = sdk.BootParams.decode(data)
        copies.append(SdkParams(i, address, p.usr_bin, p.boot_status, p.version,
                                sdk.boot_params_valid(p, info.version), data[:8].hex()))
    current = sdk.active_param_copy(flag)
    slots = {n: _sdk_slot(reader, n, layout, known) for n in (1, 2)}
    chosen, running = sdk.boot_v1_outcome(sdk.BootParams.decode(raw[current]), info.version,
                                          lambda n: slots[n].bootable)
    return SdkState(settings.map_code, layout.map_name, info.version_text, info.version, flag, current, copies, slots,
                    chosen, running)


def _sdk_slot(reader: _Reader, slot: int, layout, known: Sequence[bytes]) -> SdkSlot:
    address = layout.slot_address(slot)
    end = address + layout.app_size - sdk.SECTOR  # the slot's half of the map (user2's ends before the data)
    state = SdkSlot(slot, address)
    head = reader.read(address, 96)
    desc = sdk.read_user_bin_desc(head)
    if desc is not None:
        state.header_slot, state.project, state.version, state.linked_slot = (desc.header_slot, desc.project,
                                                                              desc.version, desc.linked_slot)
    if head[0] == sdk.EA_MAGIC:
        inner = address + 16 + int.from_bytes(head[12:16], "little")
        if inner < end:
            state.inner_magic = reader.read(inner, 1)[0]
    image = _known_bin(reader, address, known)
    if image is not None:  # judged from the bytes the caller wrote or served: no read-back of the slot
        limit = address + len(image)

        def read(addr: int, n: int) -> bytes:
            return image[addr - address:addr - address + n]
    else:
        limit = end

        def read(addr: int, n: int) -> bytes:
            if addr < address or addr + n > end:
                raise ImageFormatError(f"0x{addr:x}+0x{n:x} is outside user{slot}'s slot", None)
            return reader.read(addr, n)
    try:
        check = sdk.check_boot_bin(read, address, limit)
    except ImageFormatError as e:
        check = sdk.BootBinCheck(False, "magic", str(e))
    state.magic_ok = check.failure != "magic"
    state.checksum_ok = state.bootable = check.ok
    state.reason = None if check.ok else check.detail
    state.length = check.length
    if head[0] == sdk.EA_MAGIC:
        try:
            state.length = sdk.ea_bin_length(read, address, limit)
            state.crc_ok = sdk.check_sdk_crc(read(address, state.length))
        except ImageFormatError as e:
            state.reason = state.reason or str(e)
        if check.ok and not state.crc_ok:
            state.reason = f"SDK CRC over the bin's {state.length} bytes does not match"
    return state


def _known_bin(reader: _Reader, offset: int, known: Sequence[bytes]) -> bytes | None:
    """A whole known user bin the slot holds (first block and MD5 match), or None."""
    head = reader.read(offset, BLOCK)
    for image in sorted(known, key=len, reverse=True):
        if len(image) < 16 or image[0] != sdk.EA_MAGIC or image[:BLOCK] != head[:min(len(image), BLOCK)]:
            continue
        try:
            whole = sdk.parse_ea_image(image).length == len(image)
        except FormatError:
            whole = False
        if whole and reader.flasher.md5(offset, len(image)) == hashlib.md5(image).hexdigest():
            return image
    return None


def _sdk_slots(state: BootState) -> None:
    """The SDK slots also as generic slots: ``boot_slot`` "user1"/"user2", ``boot_version``."""
    k = state.sdk
    assert k is not None
    for n, s in k.slots.items():
        state.slots[f"user{n}"] = SlotState(f"user{n}", s.address, 0, s.project, s.version, s.bootable and s.crc_ok,
                                            s.reason)
    state.boot_slot = f"user{k.next_slot}" if k.next_slot else None


def read_file_slots(reader: _Reader, offset: int, size: int) -> FileSlots:
    """The agent's slot record and slot manifests, from the littlefs in [offset, offset+size)."""
    from littlefs import LittleFS, LittleFSError

    class Device:
        def read(self, cfg, block, off, n):
            return bytearray(reader.read(offset + block * BLOCK + off, n))

        def prog(self, cfg, block, off, data):
            raise OSError("read-only")

        def erase(self, cfg, block):
            raise OSError("read-only")

        def sync(self, cfg):
            return 0

    # MicroPython's VfsLfs2 defaults: 4 KiB blocks, 32-byte read/prog/lookahead.
    try:
        fs = LittleFS(context=Device(), block_size=BLOCK, block_count=size // BLOCK, read_size=32, prog_size=32,
                      lookahead_size=32, mount=True)
    except (LittleFSError, OSError) as e:
        return FileSlots(error=f"littlefs at 0x{offset:x} does not mount: {e}")

    def load(path: str):
        try:
            with fs.open(path, "r") as fh:
                return json.loads(fh.read())
        except (LittleFSError, OSError, ValueError, FileNotFoundError):
            return None

    st = load("/ota_state.json") or {}
    versions = {}
    for slot in ("a", "b"):
        m = load(f"/slots/{slot}/.manifest.json")
        versions[slot] = m.get("version") if isinstance(m, dict) else None
    return FileSlots(active=st.get("active"), previous=st.get("previous"), pending=bool(st.get("pending")),
                     tries=int(st.get("tries", 0) or 0), versions=versions,
                     error=None if st else "no /ota_state.json")
