"""The bootloader-level power-cut sweep: every recorded operation, every tear policy, no process.

For operation k of a :class:`~harness.sweep.record.Recording` and a tear policy, the flash after a
cut there is ``before`` with operations 1..k-1 applied in full and operation k torn as the virtual
board's flash tears it (:func:`harness.emu.flash.tear`). On that flash the ESP-IDF bootloader model
(:func:`harness.esp.boot.select_boot`, images checked with :func:`harness.esp.app_image.verify_image`
as the virtual board's second stage does) must start a valid image: the old one (what ``before``
boots) or the new one (what ``after`` boots). Anything else, including nothing bootable, is a
failure, reported with the operation, the policy, what the model chose and why.

The sweep keeps one flash and applies the operations as it goes; a torn state is made in place and
undone. Image checks are cached per partition and content generation (a partition's generation
changes only when an operation touches it), so a 1.5 MB image written page by page is checked only
when the boot model actually asks for it.

On an ESP8266 in the SDK's layout (a boot_v1.x at 0x0) the model is boot_v1.x's as the boot-state oracle
decodes it (:func:`harness.bootstate.read_sdk_state`: the flag sector, the current parameter copy, the
user1/user2 choice, the loader's magic and RAM checksum checks and its fallback): it must start the old or
the new bin, and that bin must be whole (its SDK CRC good: the loader does not check the irom part, so a
torn one would start and crash). Other ESP8266 boards have no bootloader choice: the sweep says "not
applicable" there (what runs is decided by the files the device keeps).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from ..emu.flash import TEAR_POLICIES, tear
from ..esp import boot as rules
from ..esp.app_image import bootloader_config
from ..esp.chips import chip_info
from ..esp.otadata import OTADATA_SECTOR_SIZE
from .record import Recording

BOOTLOADER_OFFSET = 0x1000
CHIP_REV = 300  # what the virtual board's second stage checks images against (harness.emu.boot_idf.CHIP_REV)


@dataclass(frozen=True)
class BootFailure:
    """A cut after which the boot model does not start the old or the new image."""

    n: int  # the operation's absolute number
    index: int  # its position in the recording (1-based)
    kind: str
    addr: int
    phase: str
    policy: str
    chose: str | None  # the partition the model starts (None: nothing bootable)
    version: str
    why: str

    def line(self) -> str:
        chose = "nothing" if self.chose is None else f"{self.chose} ({self.version or 'no version'})"
        return (f"op {self.index} (#{self.n}, {self.kind} {self.addr:#x}, {self.phase}) torn '{self.policy}': "
                f"boots {chose}: {self.why}")


@dataclass
class BootSweepResult:
    device: str
    kind: str
    variant: str
    applicable: bool
    reason: str = ""  # why not applicable
    operations: int = 0
    policies: tuple[str, ...] = ()
    states: int = 0  # flash states checked (operations x policies)
    failures: list[BootFailure] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)  # "old" / "new" / "failed": states
    by_phase: dict[str, dict[str, int]] = field(default_factory=dict)  # the same per phase of the cut operation
    old: str = ""  # "ota_0 (v1.23.0)": what the flash before the update boots
    new: str = ""  # what the flash after it boots
    image_checks: int = 0  # images actually verified (the rest came from the cache)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        head = f"{self.device} {self.kind} ({self.variant})"
        if not self.applicable:
            return f"{head}: bootloader-level sweep not applicable: {self.reason}"
        lines = [f"{head}: bootloader-level sweep: {self.operations} operations x {len(self.policies)} policies "
                 f"= {self.states} states checked, {len(self.failures)} failures, {self.seconds:.1f} s "
                 f"(old {self.old}: {self.outcomes.get('old', 0)}, new {self.new}: {self.outcomes.get('new', 0)}; "
                 f"{self.image_checks} image checks)"]
        lines += [f"  FAIL {f.line()}" for f in self.failures]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"device": self.device, "kind": self.kind, "variant": self.variant, "applicable": self.applicable,
                "reason": self.reason, "operations": self.operations, "policies": list(self.policies),
                "states": self.states, "failures": [f.__dict__ | {"line": f.line()} for f in self.failures],
                "outcomes": self.outcomes, "by_phase": self.by_phase, "old": self.old, "new": self.new,
                "image_checks": self.image_checks, "seconds": self.seconds}


class _BootModel:
    """The bootloader model over one mutable flash, with image checks cached by (partition, generation)."""

    def __init__(self, rec: Recording, flash: bytearray):
        self.rec = rec
        self.flash = flash
        self.table = rec.table
        self.otadata = self.table.otadata
        self.apps = [p for p in self.table if p.is_app]
        boot_cfg = bootloader_config(bytes(flash[BOOTLOADER_OFFSET:BOOTLOADER_OFFSET + 0x600]))
        self.anti_rollback = boot_cfg.get("BOOTLOADER_APP_ANTI_ROLLBACK") == "y"
        self.efuse = rec.efuse_secure_version if self.anti_rollback else 0
        self.generation = {p.label: 0 for p in self.apps}
        self.override: dict[str, object] = {}  # label -> generation key while a torn state is in place
        self.cache: dict[tuple[str, object], rules.SlotCheck] = {}
        self.checks = 0
        self._verify = rules.image_slot_check(lambda off, n: bytes(self.flash[off:off + n]), chip=rec.chip,
                                              chip_rev=CHIP_REV)

    def app_of(self, addr: int):
        for p in self.apps:
            if p.offset <= addr < p.offset + p.size:
                return p
        return None

    def check(self, p) -> rules.SlotCheck:
        key = (p.label, self.override.get(p.label, self.generation[p.label]))
        c = self.cache.get(key)
        if c is None:
            c = self.cache[key] = self._verify(p)
            self.checks += 1
        return c

    def decide(self) -> rules.BootDecision:
        region = None
        if self.otadata is not None:
            region = bytes(self.flash[self.otadata.offset:self.otadata.offset + 2 * OTADATA_SECTOR_SIZE])
        return rules.select_boot(self.table, region, self.check, anti_rollback=self.anti_rollback,
                                 efuse_secure_version=self.efuse)


def _describe(d: rules.BootDecision) -> tuple[str | None, str]:
    if d.partition is None:
        return None, ""
    return d.partition.label, d.check.version if d.check is not None else ""


def _why(d: rules.BootDecision) -> str:
    tried = "; ".join(f"{p.label}: {c.reason or 'valid'}" for p, c in d.tried)
    selected = d.selected.label if d.selected is not None else "none"
    if d.active_sector is not None:
        text = f"otadata entry {d.active_sector} selects {selected}"
    else:
        text = f"no valid otadata entry: the default is {selected}"
    if tried:
        text += f"; images tried: {tried}"
    if d.partition is not None:
        text += "; started image is neither the one before the update nor the one after it"
    return text


def sweep_boot(rec: Recording, policies: tuple[str, ...] | list[str] = TEAR_POLICIES, seed: int = 0) -> BootSweepResult:
    """Cut ``rec`` at every operation under every policy and check what the boot model starts."""
    policies = tuple(policies)
    for p in policies:
        if p not in TEAR_POLICIES:
            raise ValueError(f"unknown tear policy {p!r} (known: {', '.join(TEAR_POLICIES)})")
    result = BootSweepResult(rec.device, rec.kind, rec.variant, applicable=True, operations=len(rec.ops),
                             policies=policies)
    if rec.table is None or not chip_info(rec.chip).extended_header:
        if _sdk_decide(bytearray(rec.before))[0] is not None:
            return _sweep_boot_v1(rec, policies, seed, result)
        result.applicable = False
        result.reason = (f"{rec.chip} has no bootloader choice (no partition table or otadata): "
                         f"what runs is decided by the files the device keeps")
        return result
    t0 = time.monotonic()
    after_model = _BootModel(rec, bytearray(rec.after))
    new_label, new_version = _describe(after_model.decide())
    flash = bytearray(rec.before)
    model = _BootModel(rec, flash)
    old_label, old_version = _describe(model.decide())
    result.old = f"{old_label} ({old_version})"
    result.new = f"{new_label} ({new_version})"
    valid = {(old_label, old_version): "old", (new_label, new_version): "new"}
    if old_label is None:
        valid = {(new_label, new_version): "new"}
    outcomes = {"old": 0, "new": 0, "failed": 0}
    apps = {op.n: model.app_of(op.addr) for op in rec.ops}

    for index, op in enumerate(rec.ops, 1):
        start, end = op.addr, op.addr + op.size
        old = bytes(flash[start:end])
        target = rec.target(op, old)
        app = apps[op.n]
        for policy in policies:
            torn = tear(policy, seed, index, old, target)  # as the system-level cut ``index`` tears it
            if app is not None:
                model.override[app.label] = (model.generation[app.label], op.n, policy) if torn != old else \
                    model.generation[app.label]
            flash[start:end] = torn
            decision = model.decide()
            flash[start:end] = old
            model.override.clear()
            result.states += 1
            label, version = _describe(decision)
            which = valid.get((label, version)) if label is not None else None
            phase = result.by_phase.setdefault(op.phase, {"old": 0, "new": 0, "failed": 0})
            phase[which or "failed"] += 1
            if which is None:
                outcomes["failed"] += 1
                result.failures.append(BootFailure(op.n, index, op.kind, op.addr, op.phase, policy, label, version,
                                                   _why(decision)))
            else:
                outcomes[which] += 1
        flash[start:end] = target
        if app is not None and target != old:
            model.generation[app.label] += 1
    result.outcomes = outcomes
    result.image_checks = model.checks + after_model.checks
    result.seconds = round(time.monotonic() - t0, 3)
    return result



class _FlashBytes:
    """A flash image in memory as the boot-state oracle reads flash."""

    def __init__(self, flash: bytearray):
        self.flash = flash

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.flash[address:address + size])

    def md5(self, address: int, size: int) -> str:
        return hashlib.md5(self.flash[address:address + size]).hexdigest()


def _sdk_decide(flash: bytearray) -> tuple[str | None, str, str]:
    """(the slot boot_v1.x starts, its version, why) on ``flash``; (None, "", why) when it starts nothing whole."""
    from ..bootstate import read_sdk_state

    if len(flash) < 0x1000:
        return None, "", "no boot_v1.x at 0x0"
    state = read_sdk_state(_FlashBytes(flash))
    if state is None:
        return None, "", "no boot_v1.x at 0x0"
    params = state.params if state.copies else None
    why = (f"flag {state.flag} -> copy {state.current_copy}"
           + (f" (usr_bin={params.usr_bin} boot_status={params.boot_status})" if params else "")
           + f", tries user{state.chosen_slot}")
    if state.error or state.next_slot is None:
        return None, "", f"{why}: {state.error or 'backup boot failed'}"
    slot = state.slots[state.next_slot]
    if not slot.crc_ok:
        return None, "", f"{why}, starts user{state.next_slot}, whose CRC fails (a torn irom would crash)"
    return f"user{state.next_slot}", slot.version, why


def _sweep_boot_v1(rec: Recording, policies: tuple[str, ...], seed: int, result: BootSweepResult) -> BootSweepResult:
    t0 = time.monotonic()
    new_label, new_version, _ = _sdk_decide(bytearray(rec.after))
    flash = bytearray(rec.before)
    old_label, old_version, _ = _sdk_decide(flash)
    result.old = f"{old_label} ({old_version})"
    result.new = f"{new_label} ({new_version})"
    valid = {(old_label, old_version): "old", (new_label, new_version): "new"}
    outcomes = {"old": 0, "new": 0, "failed": 0}
    for index, op in enumerate(rec.ops, 1):
        start, end = op.addr, op.addr + op.size
        old = bytes(flash[start:end])
        target = rec.target(op, old)
        for policy in policies:
            flash[start:end] = tear(policy, seed, index, old, target)  # as the system-level cut ``index`` tears it
            label, version, why = _sdk_decide(flash)
            flash[start:end] = old
            result.states += 1
            result.image_checks += 2
            which = valid.get((label, version)) if label is not None else None
            result.by_phase.setdefault(op.phase, {"old": 0, "new": 0, "failed": 0})[which or "failed"] += 1
            if which is None:
                outcomes["failed"] += 1
                result.failures.append(BootFailure(op.n, index, op.kind, op.addr, op.phase, policy, label, version,
                                                   why))
            else:
                outcomes[which] += 1
        flash[start:end] = target
    result.outcomes = outcomes
    result.seconds = round(time.monotonic() - t0, 3)
    return result
