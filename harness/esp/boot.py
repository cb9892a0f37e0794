"""ESP-IDF's boot-partition rules as pure functions: what the second-stage bootloader
boots, and what the app-side OTA API writes to otadata.

Mirrored from ESP-IDF sources (``bootloader_utility.c``:
``bootloader_utility_get_selected_boot_partition``, ``bootloader_utility_load_boot_image``,
``set_actual_ota_seq``; ``bootloader_common.c``: ``bootloader_common_ota_select_valid``/``_invalid``,
``bootloader_common_select_otadata``; ``esp_ota_ops.c``: ``esp_rewrite_ota_data``,
``esp_ota_set_boot_partition``, ``esp_ota_current_ota_is_workable``,
``esp_ota_check_rollback_is_possible``, ``esp_ota_get_next_update_partition``,
``esp_ota_get_state_partition``, ``esp_ota_begin``). Defaults match MicroPython's ESP32
builds: ``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` on, anti-rollback off.

Nothing here touches flash. The bootloader model asks the caller to validate images
through ``check_slot(partition) -> SlotCheck`` and calls it only for the partitions
the real bootloader would read, in the same order; otadata changes come back as a
list of :class:`OtadataWrite` ("erase this sector, write this entry") so a flash
model can apply them one by one and cut power in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from .app_image import ImageCheck, verify_image
from .otadata import (
    OTADATA_SECTOR_SIZE,
    OTADATA_SIZE,
    SEQ_BLANK,
    OtaSelectEntry,
    OtaState,
    as_entries,
    sector_image,
    state_name,
)
from .partition_table import APP_FACTORY, APP_OTA_MIN, APP_TEST, Partition, PartitionTable

FACTORY_INDEX = -1
TEST_APP_INDEX = -2

Otadata = bytes | tuple[OtaSelectEntry, OtaSelectEntry] | None


# ---------------------------------------------------------------------------
# data passed in and out
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SlotCheck:
    """What validating one app partition's image gave (the caller reads flash, not us).

    ``has_app_desc`` False means the app descriptor could not be read, which the
    anti-rollback check treats as a failure. ``log`` lines (e.g. the
    ``segment N: paddr=...`` lines) are copied into the boot log.
    """

    ok: bool
    reason: str | None = None
    version: str = ""
    project: str = ""
    secure_version: int = 0
    has_app_desc: bool = True
    log: tuple[str, ...] = ()

    @classmethod
    def from_image_check(cls, check: ImageCheck) -> SlotCheck:
        desc = check.app_desc
        return cls(ok=check.ok, reason=check.reason, version=desc.version if desc else "",
                   project=desc.project_name if desc else "", secure_version=desc.secure_version if desc else 0,
                   has_app_desc=desc is not None, log=check.log)


CheckSlot = Callable[[Partition], SlotCheck]


def image_slot_check(read: Callable[[int, int], bytes], *, chip: str = "esp32",
                     chip_rev: int | None = None) -> CheckSlot:
    """A ``check_slot`` that validates the image in a partition with :func:`verify_image`.

    ``read(offset, length)`` returns flash contents (a real dump, a virtual board's
    flash); the whole partition is read so a truncated image is judged on what
    follows it in flash, as the bootloader would.
    """

    def check(partition: Partition) -> SlotCheck:
        data = read(partition.offset, partition.size)
        return SlotCheck.from_image_check(verify_image(data, chip=chip, partition_size=partition.size,
                                                       chip_rev=chip_rev, address=partition.offset))

    return check


@dataclass(frozen=True)
class OtadataWrite:
    """Erase otadata sector ``sector`` (0 or 1) and, if ``entry`` is given, write it at the sector start."""

    sector: int
    entry: OtaSelectEntry | None

    def address(self, otadata: Partition) -> int:
        """Flash address of the sector this write touches."""
        return otadata.offset + self.sector * OTADATA_SECTOR_SIZE


@dataclass
class BootDecision:
    """What the second-stage bootloader did.

    ``partition`` is the app it started (None: nothing bootable, the chip resets).
    ``otadata_writes`` are in the order the bootloader makes them. ``active_sector``
    is the otadata entry the choice came from (None when otadata was not used).
    ``fallback`` is True when the started app is not the one otadata (or the
    default rule) selected. ``selected`` is that first choice; ``tried`` every
    partition validated, in order; ``efuse_secure_version`` the new eFuse value when
    anti-rollback burned one (None: unchanged).
    """

    partition: Partition | None
    otadata_writes: list[OtadataWrite]
    active_sector: int | None
    fallback: bool
    check: SlotCheck | None
    log: list[str]
    selected: Partition | None = None
    tried: list[tuple[Partition, SlotCheck]] = field(default_factory=list)
    efuse_secure_version: int | None = None


@dataclass(frozen=True)
class IdfOtaProfile:
    """Which ESP-IDF ``app_update`` behaviour the app-side functions mirror.

    ``set_boot_same_slot_in_place``: when the target is already the active slot,
    rewrite the active sector's state instead of writing the same seq to the other
    sector. ``begin_invalidates_inactive``: ``esp_ota_begin`` erases the inactive
    otadata sector (``esp_ota_invalidate_inactive_ota_data_slot``).
    """

    name: str
    set_boot_same_slot_in_place: bool
    begin_invalidates_inactive: bool


IDF_LEGACY = IdfOtaProfile("ESP-IDF up to v5.4", False, False)
"""What MicroPython's ESP32 builds (IDF v5.0-v5.4) do."""
IDF_V5_5 = IdfOtaProfile("ESP-IDF v5.5 and later", True, True)
"""The 2025 ``esp_ota_ops.c`` (``compute_ota_seq_for_target_slot``, invalidate-on-begin)."""


class OtaError(RuntimeError):
    """An app-side OTA call failed the way ESP-IDF's would; ``code`` is the esp_err_t name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


# ---------------------------------------------------------------------------
# helpers shared by both sides
# ---------------------------------------------------------------------------
def _select_otadata(entries: Sequence[OtaSelectEntry], valid: Sequence[bool], use_max: bool = True) -> int:
    """``bootloader_common_select_otadata``: both valid -> larger (or smaller) seq, sector 0 on a tie."""
    if valid[0] and valid[1]:
        pick = max(entries[0].seq, entries[1].seq) if use_max else min(entries[0].seq, entries[1].seq)
        return 0 if pick == entries[0].seq else 1
    for i in (0, 1):
        if valid[i]:
            return i
    return -1


def get_active_otadata(otadata: Otadata) -> int:
    """``bootloader_common_get_active_otadata``: index of the valid entry with the larger seq, or -1."""
    e = as_entries(otadata)
    return _select_otadata(e, [e[0].is_valid, e[1].is_valid])


def _slot_of(seq: int, count: int) -> int:
    return ((seq - 1) & 0xFFFFFFFF) % count


def app_partition_count(table: PartitionTable) -> int:
    """``esp_ota_get_app_partition_count``: ota_0, ota_1, ... counted until the first missing one."""
    n = 0
    while n < 16 and table.find_type(0, APP_OTA_MIN + n) is not None:
        n += 1
    return n


def _find_ota(table: PartitionTable, slot: int) -> Partition | None:
    return table.find_type(0, APP_OTA_MIN + slot)


@dataclass
class _BootloaderState:
    """``bootloader_state_t`` as ``bootloader_utility_load_partition_table`` fills it (later entries win)."""

    factory: Partition | None = None
    test: Partition | None = None
    otadata: Partition | None = None
    ota: dict[int, Partition] = field(default_factory=dict)
    app_count: int = 0

    @classmethod
    def from_table(cls, table: PartitionTable) -> _BootloaderState:
        bs = cls()
        for p in table:
            if p.is_app:
                if p.subtype == APP_FACTORY:
                    bs.factory = p
                elif p.subtype == APP_TEST:
                    bs.test = p
                elif p.is_ota_app:
                    bs.ota[p.subtype & 0xF] = p
                    bs.app_count += 1
            elif p.is_otadata:
                bs.otadata = p
        return bs

    def index_to_partition(self, index: int) -> Partition | None:
        if index == FACTORY_INDEX:
            return self.factory
        if index == TEST_APP_INDEX:
            return self.test
        if 0 <= index < 16 and index < self.app_count:
            return self.ota.get(index)
        return None


def _not_bootable(index: int) -> str:
    if index == FACTORY_INDEX:
        return "Factory app partition is not bootable"
    if index == TEST_APP_INDEX:
        return "Factory test app partition is not bootable"
    return f"OTA app partition slot {index} is not bootable"


# ---------------------------------------------------------------------------
# the second-stage bootloader
# ---------------------------------------------------------------------------
def select_boot(table: PartitionTable, otadata: Otadata, check_slot: CheckSlot, *, efuse_secure_version: int = 0,
                anti_rollback: bool | None = None, rollback: bool = True) -> BootDecision:
    """Decide which app the ESP-IDF bootloader starts, and what it writes to otadata first.

    ``otadata`` is the raw 0x2000-byte region or a pair of entries (ignored when
    the table has no otadata partition). ``rollback`` models
    ``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` (on in MicroPython): PENDING_VERIFY
    entries become ABORTED before anything else, and a NEW entry that gets
    selected becomes PENDING_VERIFY before its image is even checked.
    ``anti_rollback`` models ``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``; by default it
    is on exactly when ``efuse_secure_version`` > 0. With it, apps whose
    ``secure_version`` is below the eFuse value are skipped, and booting a VALID
    app raises the eFuse value to its secure_version.

    Selection, then validation in the bootloader's order: the selected slot, then
    lower slots down to factory, then higher slots, then the test app. The first
    image that validates boots, with otadata left as it was (except that, when
    there is no factory app and both entries were blank/corrupt, the bootloader
    records the slot it booted as ``seq = slot + 1``, VALID, in sector 0).
    """
    bs = _BootloaderState.from_table(table)
    ar = (efuse_secure_version > 0) if anti_rollback is None else anti_rollback
    efuse = efuse_secure_version
    burned: int | None = None
    log: list[str] = []
    writes: list[OtadataWrite] = []
    cache: dict[Partition, SlotCheck] = {}
    tried: list[tuple[Partition, SlotCheck]] = []

    def check(p: Partition) -> SlotCheck:
        if p not in cache:
            cache[p] = check_slot(p)
        return cache[p]

    def secure_version_ok(p: Partition | None) -> bool:
        """``check_anti_rollback``: always true unless anti-rollback is configured."""
        if not ar:
            return True
        if p is None:
            log.append("Failed to get partition description 258")  # ESP_ERR_INVALID_ARG
            return False
        c = check(p)
        if not c.has_app_desc:
            log.append("Failed to get partition description 261")  # ESP_ERR_NOT_FOUND
            return False
        return c.secure_version >= efuse

    def update_anti_rollback(p: Partition | None) -> None:
        nonlocal efuse, burned
        if p is None:
            return
        c = check(p)
        if c.has_app_desc and c.secure_version > efuse:
            log.append(f"eFuse secure version {efuse} -> {c.secure_version} (anti-rollback)")
            efuse = burned = c.secure_version

    def decision(partition: Partition | None, active: int | None, selected: Partition | None) -> BootDecision:
        return BootDecision(partition=partition, otadata_writes=writes, active_sector=active,
                            fallback=partition is not None and partition != selected,
                            check=cache.get(partition) if partition is not None else None, log=log,
                            selected=selected, tried=tried, efuse_secure_version=burned)

    # -- bootloader_utility_get_selected_boot_partition ----------------------------
    initial_contents = False
    active: int | None = None
    if bs.otadata is None:
        log.append("no otadata partition in the partition table: starting with the factory app")
        start = FACTORY_INDEX
    elif bs.otadata.size < OTADATA_SIZE:
        log.append(f"ota_info partition size {bs.otadata.size} is too small (minimum {OTADATA_SIZE} bytes)")
        return decision(None, None, None)
    else:
        e = list(as_entries(otadata))
        for i in (0, 1):
            log.append(f"otadata[{i}]: sequence values 0x{e[i].seq:08x} ({e[i].describe()})")
        if rollback:
            for i in (0, 1):
                if e[i].state == OtaState.PENDING_VERIFY:
                    e[i] = e[i].with_state(OtaState.ABORTED)
                    writes.append(OtadataWrite(i, e[i]))
                    log.append(f"otadata[{i}] is marking as ABORTED (state PENDING_VERIFY -> ABORTED: rollback, "
                               "the app never confirmed itself)")
        start = FACTORY_INDEX
        active_index = -1
        use_active = False
        if not ar:
            if (e[0].is_invalid and e[1].is_invalid) or bs.app_count == 0:
                log.append("OTA sequence numbers both empty (all-0xFF) or partition table does not have bootable "
                           f"ota_apps (app_count={bs.app_count})")
                if bs.factory is not None:
                    log.append("Defaulting to factory image")
                    start = FACTORY_INDEX
                else:
                    log.append("No factory image, trying OTA 0")
                    start = 0
                    initial_contents = e[0].is_initial and e[1].is_initial
            else:
                active_index = _select_otadata(e, [e[0].is_valid, e[1].is_valid])
                use_active = True
        else:
            log.append("Enabled a check secure version of app for anti rollback")
            log.append(f"Secure version (from eFuse) = {efuse}")
            if e[0].is_initial and e[1].is_initial:
                log.append("otadata[0..1] in initial state")
                initial_contents = True
            else:
                ok = [False, False]
                for i in (0, 1):
                    if e[i].is_valid and bs.app_count:
                        slot = _slot_of(e[i].seq, bs.app_count)
                        if secure_version_ok(bs.ota.get(slot)):
                            ok[i] = True
                        else:
                            log.append(f"OTA slot {slot} has an app with secure_version, this version is smaller "
                                       "than in the device. This OTA slot will not be selected.")
                active_index = _select_otadata(e, ok)
                use_active = True
        if use_active:
            if active_index != -1:
                active = active_index
                seq = e[active].seq
                start = _slot_of(seq, bs.app_count)
                log.append(f"Active otadata[{active}]")
                log.append(f"Mapping seq {(seq - 1) & 0xFFFFFFFF} -> OTA slot {start}")
                if rollback and e[active].state == OtaState.NEW:
                    e[active] = e[active].with_state(OtaState.PENDING_VERIFY)
                    writes.append(OtadataWrite(active, e[active]))
                    log.append(f"otadata[{active}] is selected as new and marked PENDING_VERIFY state")
                if ar and e[active].state == OtaState.VALID:
                    update_anti_rollback(bs.ota.get(start))
            elif bs.factory is not None:
                log.append("ota data partition invalid, falling back to factory")
                start = FACTORY_INDEX
            else:
                log.append("ota data partition invalid and no factory, will try all partitions")
                start = FACTORY_INDEX

    selected = bs.index_to_partition(start)

    # -- bootloader_utility_load_boot_image -------------------------------------
    def try_index(index: int) -> Partition | None:
        part = bs.index_to_partition(index)
        if part is None:
            return None
        log.append(f"Trying partition index {index} offs 0x{part.offset:x} size 0x{part.size:x}")
        if not secure_version_ok(part):
            c = check(part)
            log.append(f"app secure_version {c.secure_version} is below the eFuse secure version {efuse}")
            tried.append((part, c))
            log.append(_not_bootable(index))
            return None
        c = check(part)
        tried.append((part, c))
        log.extend(c.log)
        if not c.ok:
            if c.reason:
                log.append(c.reason)
            log.append(_not_bootable(index))
            return None
        log.append(f"Loaded app from partition at offset 0x{part.offset:x}")
        if index > FACTORY_INDEX and initial_contents:
            entry = OtaSelectEntry.make(index + 1, OtaState.VALID)
            writes.append(OtadataWrite(0, entry))
            log.append(f"Set actual ota_seq={index + 1} in otadata[0]")
            if ar:
                update_anti_rollback(part)
        return part

    for index in range(start, FACTORY_INDEX - 1, -1):
        booted = try_index(index)
        if booted is not None:
            return decision(booted, active, selected)
    for index in range(start + 1, bs.app_count):
        booted = try_index(index)
        if booted is not None:
            return decision(booted, active, selected)
    if bs.test is not None and secure_version_ok(bs.test):
        c = check(bs.test)
        tried.append((bs.test, c))
        log.extend(c.log)
        if c.ok:
            log.append(f"Loaded app from partition at offset 0x{bs.test.offset:x}")
            log.append("Falling back to test app as only bootable partition")
            return decision(bs.test, active, selected)
        if c.reason:
            log.append(c.reason)
    log.append("No bootable app partitions in the partition table")
    return decision(None, active, selected)


# ---------------------------------------------------------------------------
# the app side (esp_ota_ops.c)
# ---------------------------------------------------------------------------
def _require_otadata(table: PartitionTable) -> Partition:
    part = table.otadata
    if part is None:
        raise OtaError("ESP_ERR_NOT_FOUND", "not found otadata")
    return part


def _rewrite(entries: Sequence[OtaSelectEntry], sector: int, seq: int, state: int) -> OtadataWrite:
    """``rewrite_ota_seq``: the entry read from that sector, with new seq/state and a fresh CRC."""
    return OtadataWrite(sector, replace(entries[sector].with_seq(seq), state=state))


def get_next_update(table: PartitionTable, running: Partition | None) -> Partition | None:
    """``esp_ota_get_next_update_partition``: the ota_N after ``running``, wrapping to the first one.

    A non-OTA ``running`` (factory) gives the first OTA partition; no OTA partitions gives None.
    """
    default = None
    next_is_result = False
    for slot in range(16):
        p = _find_ota(table, slot)
        if p is None:
            continue
        if default is None:
            default = p
        if p == running:
            next_is_result = True
        elif next_is_result:
            return p
    return default


def get_boot_partition(table: PartitionTable, otadata: Otadata) -> Partition | None:
    """``esp_ota_get_boot_partition``: what the app believes will boot next (no image checks)."""
    if table.otadata is None:
        return None
    e = as_entries(otadata)
    count = app_partition_count(table)

    def default() -> Partition | None:
        if table.factory is not None:
            return table.factory
        for slot in range(16):
            p = _find_ota(table, slot)
            if p is not None:
                return p
        return table.test

    if (e[0].is_invalid and e[1].is_invalid) or count == 0:
        return default()
    active = get_active_otadata(e)
    if active == -1:
        return default()
    return _find_ota(table, _slot_of(e[active].seq, count))


def compute_ota_seq_for_target_slot(current_seq: int, slot: int, count: int) -> int:
    """Smallest ``seq >= current_seq`` with ``(seq - 1) % count == slot``."""
    if count == 0:
        return 0
    base = (slot + 1) % count
    i = 0
    while current_seq > base + i * count:
        i += 1
    return base + i * count


def set_boot_partition(table: PartitionTable, otadata: Otadata, target: Partition, *, rollback: bool = True,
                       idf: IdfOtaProfile = IDF_LEGACY, target_check: SlotCheck | None = None,
                       anti_rollback: bool = False, efuse_secure_version: int = 0) -> list[OtadataWrite]:
    """``esp_ota_set_boot_partition(target)``: the otadata writes it makes.

    IDF validates the image first; pass ``target_check`` to model that (a failed
    check raises ``ESP_ERR_OTA_VALIDATE_FAILED``). Factory: both sectors are erased.
    OTA slot k: with an active entry, the new entry goes to the *other* sector with
    the smallest seq >= the active seq that maps to k (on IDF >= 5.5 an already
    active k only has its state rewritten in place); with no valid entry at all,
    sector 0 gets seq k+1. The new state is NEW with rollback, else UNDEFINED. The
    entry keeps the label bytes that sector already held, as IDF rewrites in place.
    (IDF also accepts the test app here and then selects ota_0: subtype 0x20 & 0xF.)
    """
    if target_check is not None and not target_check.ok:
        raise OtaError("ESP_ERR_OTA_VALIDATE_FAILED", f"image in '{target.label}' failed validation: "
                                                      f"{target_check.reason}")
    if not target.is_app:
        raise OtaError("ESP_ERR_INVALID_ARG", f"'{target.label}' is not an app partition")
    otadata_part = _require_otadata(table)
    if target.subtype == APP_FACTORY:
        return [OtadataWrite(i, None) for i in range(max(1, otadata_part.size // OTADATA_SECTOR_SIZE))]
    if anti_rollback and target_check is not None and target_check.secure_version < efuse_secure_version:
        raise OtaError("ESP_ERR_OTA_SMALL_SEC_VER",
                       "This a new partition can not be booted due to a secure version is lower than stored in "
                       "efuse. Partition will be erased.")
    e = as_entries(otadata)
    count = app_partition_count(table)
    slot = target.subtype & 0x0F
    if slot >= count:
        raise OtaError("ESP_ERR_INVALID_ARG", f"slot {slot} is not below the number of OTA partitions ({count})")
    active = get_active_otadata(e)
    if active != -1:
        current = _slot_of(e[active].seq, count)
        if idf.set_boot_same_slot_in_place and current == slot:
            sector, seq = active, e[active].seq
        else:
            sector, seq = 1 - active, compute_ota_seq_for_target_slot(e[active].seq, slot, count)
    else:
        sector, seq = 0, slot + 1
    state = OtaState.NEW if rollback else OtaState.UNDEFINED
    return [_rewrite(e, sector, seq, state)]


def _current_is_workable(table: PartitionTable, otadata: Otadata, valid: bool, check_slot: CheckSlot | None,
                         anti_rollback: bool, efuse_secure_version: int) -> list[OtadataWrite]:
    _require_otadata(table)
    e = as_entries(otadata)
    active = get_active_otadata(e)
    if active == -1 or app_partition_count(table) == 0:
        raise OtaError("ESP_FAIL", "Running firmware is factory")
    if valid:
        if e[active].state == OtaState.VALID:
            return []
        return [_rewrite(e, active, e[active].seq, OtaState.VALID)]
    if not check_rollback_is_possible(table, e, check_slot, anti_rollback=anti_rollback,
                                      efuse_secure_version=efuse_secure_version):
        raise OtaError("ESP_ERR_OTA_ROLLBACK_FAILED",
                       "Rollback is not possible, do not have any suitable apps in slots")
    return [_rewrite(e, active, e[active].seq, OtaState.INVALID)]


def mark_app_valid(table: PartitionTable, otadata: Otadata, running: Partition | None = None) -> list[OtadataWrite]:
    """``esp_ota_mark_app_valid_cancel_rollback``: set the *active otadata entry* VALID.

    Note, as in IDF, ``running`` is not consulted: after a bootloader fallback the
    active entry names a slot that is not running, and this marks that one
    (nothing is written if it is VALID already). Raises ``ESP_FAIL`` when no valid
    entry exists ("Running firmware is factory").
    """
    return _current_is_workable(table, otadata, True, None, False, 0)


def mark_app_invalid_rollback(table: PartitionTable, otadata: Otadata, running: Partition | None = None, *,
                              check_slot: CheckSlot | None = None, anti_rollback: bool = False,
                              efuse_secure_version: int = 0) -> list[OtadataWrite]:
    """``esp_ota_mark_app_invalid_rollback_and_reboot`` (before the reboot): set the active entry INVALID.

    Refuses with ``ESP_ERR_OTA_ROLLBACK_FAILED`` unless :func:`check_rollback_is_possible`;
    ``check_slot`` validates candidate images (None: assume they are fine).
    """
    return _current_is_workable(table, otadata, False, check_slot, anti_rollback, efuse_secure_version)


def check_rollback_is_possible(table: PartitionTable, otadata: Otadata, check_slot: CheckSlot | None = None, *,
                               anti_rollback: bool = False, efuse_secure_version: int = 0) -> bool:
    """``esp_ota_check_rollback_is_possible``: is there a bootable app other than the active one?

    The previous entry (the other sector) must be valid and its slot's image must
    validate; without anti-rollback a valid factory app also counts when the other
    entry is not valid.
    """
    if table.otadata is None:
        return False
    count = app_partition_count(table)
    if count == 0:
        return False
    e = as_entries(otadata)
    valid = [e[0].is_valid, e[1].is_valid]
    active = _select_otadata(e, valid)
    if active == -1:
        return False
    last = 1 - active

    def image_ok(p: Partition) -> SlotCheck:
        return check_slot(p) if check_slot is not None else SlotCheck(True)

    if not anti_rollback and not valid[last]:
        factory = table.factory
        if factory is not None and image_ok(factory).ok:
            return True
    if valid[last]:
        p = _find_ota(table, _slot_of(e[last].seq, count))
        if p is not None:
            c = image_ok(p)
            if c.ok and (not anti_rollback or (c.has_app_desc and c.secure_version >= efuse_secure_version)):
                return True
    return False


def app_state(table: PartitionTable, otadata: Otadata, partition: Partition) -> OtaState | int | None:
    """``esp_ota_get_state_partition``: the state of the otadata entry naming ``partition``'s slot.

    Only the CRC is checked (an ABORTED or INVALID entry still reports its state);
    None when the partition is not an OTA app, there is no otadata, or no entry names it.
    """
    if not partition.is_ota_app or table.otadata is None:
        return None
    count = app_partition_count(table)
    if count == 0:
        return None
    want = partition.subtype - APP_OTA_MIN
    for entry in as_entries(otadata):
        if _slot_of(entry.seq, count) == want and entry.crc_ok:
            return entry.state
    return None


def last_invalid_partition(table: PartitionTable, otadata: Otadata,
                           check_slot: CheckSlot | None = None) -> Partition | None:
    """``esp_ota_get_last_invalid_partition``: the slot of the INVALID/ABORTED entry with the smaller seq.

    Returns None if its image no longer validates (when ``check_slot`` is given).
    """
    e = as_entries(otadata)
    flags = [x.seq != SEQ_BLANK and x.crc_ok and x.state in (OtaState.INVALID, OtaState.ABORTED) for x in e]
    index = _select_otadata(e, flags, use_max=False)
    count = app_partition_count(table)
    if index == -1 or count == 0:
        return None
    p = _find_ota(table, _slot_of(e[index].seq, count))
    if p is not None and check_slot is not None and not check_slot(p).ok:
        return None
    return p


def ota_begin_refusal(table: PartitionTable, otadata: Otadata, running: Partition | None,
                      target: Partition | None, *, rollback: bool = True) -> str | None:
    """Why ``esp_ota_begin(target)`` would fail, as "ESP_ERR_...: explanation"; None if it would start."""
    if target is None:
        return "ESP_ERR_INVALID_ARG: no partition given"
    if target not in table.entries:
        return f"ESP_ERR_NOT_FOUND: partition '{target.label}' is not in the partition table"
    if target.is_app:
        if not target.is_ota_app:
            return (f"ESP_ERR_INVALID_ARG: '{target.label}' is a {target.subtype_name} app partition; "
                    "esp_ota_begin only writes ota_N partitions")
        if running is not None and target == running:
            return f"ESP_ERR_OTA_PARTITION_CONFLICT: '{target.label}' is the running partition"
        if rollback and running is not None and app_state(table, otadata, running) == OtaState.PENDING_VERIFY:
            return ("ESP_ERR_OTA_ROLLBACK_INVALID_STATE: Running app has not confirmed state "
                    "(ESP_OTA_IMG_PENDING_VERIFY)")
    return None


def ota_begin_writes(table: PartitionTable, otadata: Otadata, running: Partition | None, target: Partition, *,
                     idf: IdfOtaProfile = IDF_LEGACY, rollback: bool = True) -> list[OtadataWrite]:
    """Otadata writes ``esp_ota_begin`` itself makes (IDF >= 5.5 with rollback: it erases the
    inactive sector when that names a slot other than the running one, so a half-written
    slot can never be booted from a stale entry)."""
    if not (idf.begin_invalidates_inactive and rollback and target.is_ota_app):
        return []
    if table.otadata is None:
        return []
    e = as_entries(otadata)
    active = get_active_otadata(e)
    count = app_partition_count(table)
    if active == -1 or count == 0:
        return []
    inactive = 1 - active
    if e[inactive].seq == SEQ_BLANK or not e[inactive].crc_ok:
        return []
    p = _find_ota(table, _slot_of(e[inactive].seq, count))
    if p is None or running is None or p == running:
        return []
    return [OtadataWrite(inactive, None)]


def apply_writes(otadata_region: bytes, writes: Sequence[OtadataWrite]) -> bytes:
    """Apply otadata writes to a 0x2000-byte region (erase sector, write entry), in order."""
    region = bytearray(otadata_region)
    if len(region) < OTADATA_SIZE:
        raise ValueError(f"otadata region is 0x{len(region):x} bytes, expected 0x{OTADATA_SIZE:x}")
    for w in writes:
        start = w.sector * OTADATA_SECTOR_SIZE
        if not 0 <= start < len(region):
            raise ValueError(f"otadata write to sector {w.sector} is outside the 0x{len(region):x}-byte region")
        region[start:start + OTADATA_SECTOR_SIZE] = sector_image(w.entry)
    return bytes(region)


def describe_otadata(otadata: Otadata, table: PartitionTable | None = None) -> list[str]:
    """Human-readable lines for both entries (for reports)."""
    e = as_entries(otadata)
    count = app_partition_count(table) if table is not None else 0
    lines = []
    for i, entry in enumerate(e):
        slot = f" -> ota_{entry.slot(count)}" if count and entry.seq != SEQ_BLANK else ""
        lines.append(f"otadata[{i}]: seq={entry.seq if entry.seq != SEQ_BLANK else 'blank'}{slot} "
                     f"state={state_name(entry.state)} crc={'ok' if entry.crc_ok else 'bad'}")
    return lines


__all__ = [
    "BootDecision", "CheckSlot", "FACTORY_INDEX", "IDF_LEGACY", "IDF_V5_5", "IdfOtaProfile", "OtaError",
    "OtadataWrite", "SlotCheck", "TEST_APP_INDEX", "app_partition_count", "app_state", "apply_writes",
    "check_rollback_is_possible", "compute_ota_seq_for_target_slot", "describe_otadata", "get_active_otadata",
    "get_boot_partition", "get_next_update", "image_slot_check", "last_invalid_partition", "mark_app_invalid_rollback",
    "mark_app_valid", "ota_begin_refusal", "ota_begin_writes", "select_boot", "set_boot_partition",
]
