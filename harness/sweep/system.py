"""The system-level power-cut sweep: cut a whole virtual board's power at chosen flash operations of an update.

A :class:`~harness.sweep.record.Recording` says which flash operations an update makes, in order.
The sweep chooses cut points among them (:func:`choose_cuts`: every operation that is not bulk image
data, the first and the last image operation and a seeded sample of the others) and, for each cut point
and tear policy (``harness.emu.flash``: none, prefix, random):

1. restores the prepared board (its snapshot) and waits until the device is ready;
2. arms the cut at the absolute operation number: the board's counter goes on across runs, so the
   number is the counter read now plus the cut's place in the recording;
3. triggers the same update and waits until the board loses power by itself;
4. hashes the flash file: a state the sweep has checked before is not checked again (the outcome of
   the first cut that left it stands for both);
5. powers the board on and checks that the device gets ready, that it runs the old or the new version,
   that the boot state agrees (the slot the bootloader starts next holds that version; for file updates
   the slot record names the slot of that version and has nothing on trial), and, when the old version
   runs, that a retried update gets to the new version.

A cut is numbered by its place in the recording (cut N: the N-th flash operation after the trigger), so
``--cut N`` on another run cuts at the same place. A prefix or random tear draws its bytes from the
board's absolute operation number (``harness.emu.flash``), so on another run the same cut may tear
differently; each result keeps the hash of the flash it left, which tells whether a rerun reached the
same state.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..emu.flash import TEAR_POLICIES

if TYPE_CHECKING:
    from ..scenario import OtaCase
    from .record import Recording

#: every outcome of a cut, the first two are recoveries
OUTCOMES = ("recovered-old", "recovered-new", "bricked", "inconsistent", "retry-failed", "not-reached")
RECOVERED = ("recovered-old", "recovered-new")


class SweepError(RuntimeError):
    """The sweep cannot run (no virtual board, a recording that does not fit the case, a bad cut number)."""


@dataclass
class CutResult:
    cut: int  # the cut's place in the recording: the N-th flash operation after the trigger (1-based)
    policy: str
    op_kind: str  # "erase" | "program"
    addr: int
    phase: str
    outcome: str
    version: str | None = None  # what the device reported after the cut
    detail: str = ""
    state: str = ""  # SHA-256 of the flash file after the cut
    same_as: int | None = None  # an earlier cut (its index in the results) that left the same flash: not rechecked
    seconds: float = 0.0

    @property
    def recovered(self) -> bool:
        return self.outcome in RECOVERED

    def describe(self) -> str:
        return f"cut {self.cut} ({self.policy}, {self.phase} {self.op_kind} at 0x{self.addr:x})"


@dataclass
class SystemSweepResult:
    device: str
    kind: str
    variant: str
    board: str
    operations: int  # how many the recording has
    policies: tuple[str, ...]
    seed: int
    results: list[CutResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def cuts(self) -> int:
        return len(self.results)

    @property
    def recovered(self) -> int:
        return sum(r.recovered for r in self.results)

    @property
    def failures(self) -> list[CutResult]:
        return [r for r in self.results if not r.recovered]

    @property
    def distinct_states(self) -> int:
        return len({r.state for r in self.results if r.state})

    @property
    def cuts_per_minute(self) -> float:
        return 60.0 * self.cuts / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for r in self.results:
            counts[r.outcome] += 1
        return {k: v for k, v in counts.items() if v}

    def to_dict(self) -> dict:
        return {"device": self.device, "kind": self.kind, "variant": self.variant, "board": self.board,
                "operations": self.operations, "policies": list(self.policies), "seed": self.seed,
                "cuts": self.cuts, "recovered": self.recovered, "distinct_states": self.distinct_states,
                "seconds": round(self.seconds, 2), "cuts_per_minute": round(self.cuts_per_minute, 1),
                "outcomes": self.counts(), "results": [asdict(r) for r in self.results]}


def choose_cuts(rec: Recording, sample: int, seed: int = 0) -> list[int]:
    """The cut points (places in the recording, 1-based): every operation that is not bulk image data, the first
    and the last image operation and ``sample`` more image operations drawn with ``seed``."""
    image = [i for i, op in enumerate(rec.ops, 1) if op.phase == "image"]
    chosen = {i for i, op in enumerate(rec.ops, 1) if op.phase != "image"}
    if image:
        chosen |= {image[0], image[-1]}
        rest = image[1:-1]
        chosen |= set(random.Random(seed).sample(rest, min(max(sample, 0), len(rest))))
    return sorted(chosen)


def sweep_system(case: OtaCase, rec: Recording, *, policies: Sequence[str] = TEAR_POLICIES, sample: int = 8,
                 seed: int = 0, cuts: Iterable[int] | None = None, progress: Callable[[CutResult], None] | None = None,
                 ready_timeout: float = 20.0, update_timeout: float | None = None) -> SystemSweepResult:
    """Cut ``case``'s board at each chosen point of ``rec`` with each of ``policies`` (see the module's text).

    ``cuts``: these places in the recording instead of :func:`choose_cuts` (e.g. one, to reproduce it).
    ``seed`` draws the image sample and seeds the tears. ``progress`` is called with each cut's result.
    """
    board = case.board
    if board.virtual is None:
        raise SweepError(f"board {board.name} is not virtual: only a virtual board's power can be cut at a flash "
                         "operation")
    if (rec.device, rec.kind) != (case.device.kind, case.kind):
        raise SweepError(f"the recording is of {rec.device} {rec.kind}, the case is {case.device.kind} {case.kind}")
    for policy in policies:
        if policy not in TEAR_POLICIES:
            raise SweepError(f"unknown tear policy {policy!r} (known: {', '.join(TEAR_POLICIES)})")
    points = choose_cuts(rec, sample, seed) if cuts is None else sorted(set(cuts))
    for n in points:
        if not 1 <= n <= len(rec.ops):
            raise SweepError(f"cut {n} is not an operation of the update (it has {len(rec.ops)}: 1..{len(rec.ops)})")
    if update_timeout is None:
        update_timeout = max(15.0, 4 * rec.seconds + 10)
    result = SystemSweepResult(device=rec.device, kind=rec.kind, variant=rec.variant, board=board.name,
                               operations=len(rec.ops), policies=tuple(policies), seed=seed)
    control = board.virtual.control
    flash_path = board.flash_file().path
    seen: dict[str, int] = {}
    before = hashlib.sha256(rec.before).hexdigest()
    t_start = time.monotonic()
    _first_read(case)
    for n in points:
        op = rec.ops[n - 1]
        for policy in policies:
            t0 = time.monotonic()
            r = CutResult(cut=n, policy=policy, op_kind=op.kind, addr=op.addr, phase=op.phase, outcome="")
            _one_cut(case, rec, r, control, flash_path, seen, before, result.results, seed, ready_timeout,
                     update_timeout)
            r.seconds = round(time.monotonic() - t0, 3)
            result.results.append(r)
            if progress is not None:
                progress(r)
    result.seconds = time.monotonic() - t_start
    return result


def _first_read(case: OtaCase) -> None:
    """A board's first boot-state read goes through esptool too (a check that resets it): do it before the cuts."""
    case.prepare()
    case.boot_state("before the power-cut sweep")


def _one_cut(case: OtaCase, rec: Recording, r: CutResult, control, flash_path, seen: dict[str, int], before: str,
             results: list[CutResult], seed: int, ready_timeout: float, update_timeout: float) -> None:
    """Restore, arm, trigger, wait for the cut, then check (or take the outcome of an earlier cut that left the same
    flash); fills in ``r``."""
    from ..scenario import DeviceSilent

    board = case.board
    case.prepare()
    ops_now = control.stats()["ops"]
    if hashlib.sha256(flash_path.read_bytes()).hexdigest() != before:
        r.detail = "the restored board's flash differs from the recording's (before the trigger); "
    pub = case.publish(rec.variant)
    seq = control.status()["event_seq"]
    control.arm_cut(at_op=ops_now + r.cut, policy=r.policy, seed=seed, base=ops_now)  # tears as cut r.cut does
    case.trigger(pub)
    try:
        control.wait_event("power", since=seq, timeout=update_timeout, on=False, reason="cut")
    except TimeoutError:
        control.clear_cut()
        ops_done = control.stats()["ops"] - ops_now
        r.outcome = "not-reached"
        r.detail += (f"the update made {ops_done} flash operations in {update_timeout:.0f} s and never reached "
                     f"operation {r.cut} (the recording has {len(rec.ops)})")
        return
    board.power_off()  # already off: the board's own bookkeeping follows
    r.state = hashlib.sha256(flash_path.read_bytes()).hexdigest()
    if r.state in seen:
        r.same_as = seen[r.state]
        first = results[r.same_as]
        r.outcome, r.version, r.detail = first.outcome, first.version, first.detail
        return
    seen[r.state] = len(results)
    mark = board.console.mark()
    board.power_on()
    try:
        ready = case.ready(since=mark, timeout=ready_timeout)
    except DeviceSilent:
        r.outcome = "bricked"
        r.detail += f"no ready within {ready_timeout:.0f} s of power on"
        return
    old, new = rec.old_version, rec.new_version
    r.version = case.running_version(ready)
    if r.version not in (old, new):
        r.outcome = "inconsistent"
        r.detail += f"the device runs version {r.version}, neither the old {old} nor the new {new}"
        return
    disagree = _disagreement(case, _read_state(case, ready_timeout), r.version)
    if disagree and r.version == new:
        # a device may say ready before it confirms the new version (the ESP-IDF client does): the boot state
        # agrees once it has confirmed it, or the device rolls back and runs the old one
        try:
            done = case.expect(("confirmed", "rollback"), since=ready.at,
                               timeout=board.spec.confirm_timeout + ready_timeout)
        except DeviceSilent:
            done = None
        if done is not None:
            if done.name == "rollback":
                try:
                    ready = case.ready(since=done.at, timeout=ready_timeout)
                except DeviceSilent:
                    r.outcome = "bricked"
                    r.detail += f"rolled back, then no ready within {ready_timeout:.0f} s"
                    return
                r.version = case.running_version(ready)
            disagree = _disagreement(case, _read_state(case, ready_timeout), r.version)
    if disagree:
        r.outcome = "inconsistent"
        r.detail += disagree
        return
    if r.version == new:
        r.outcome = "recovered-new"
        return
    failed = _retry(case, rec, update_timeout)
    if failed:
        r.outcome = "retry-failed"
        r.detail += failed
        return
    r.outcome = "recovered-old"


def _read_state(case: OtaCase, ready_timeout: float):
    board = case.board
    mark = board.console.mark()
    state = board.boot_state()
    if board.last_read_reset:  # read with esptool after all: the board was reset
        case.ready(since=mark, timeout=ready_timeout)
    return state


def _disagreement(case: OtaCase, state, version: str) -> str:
    """Why the boot state does not agree with the device running ``version`` ("" if it does)."""
    if case.kind == "files":
        files = state.files
        if files is None:
            return "the boot state has no file-slot record"
        if files.error:
            return f"the file-slot record: {files.error}"
        if files.versions.get(files.active or "") != version:
            return (f"the file-slot record names slot {files.active} (version "
                    f"{files.versions.get(files.active or '')}), the device runs {version}")
        if files.pending:
            return f"the file-slot record still has slot {files.active} on trial after ready"
        return ""
    if state.table_error:
        return f"partition table: {state.table_error}"
    if state.boot_version != version:
        return f"the bootloader starts {state.boot_slot} next (version {state.boot_version}), the device runs {version}"
    return ""


def _retry(case: OtaCase, rec: Recording, timeout: float) -> str:
    """Offer the update again; "" once the new version runs and is confirmed, else why not."""
    from ..scenario import DeviceSilent

    pub = case.publish(rec.variant)
    mark = case.trigger(pub)
    try:
        end = case.expect(("switch", "refused"), since=mark, timeout=timeout)
        if end.name == "refused":
            return f"the retried update was refused: {end.get('reason')} {end.get('detail') or ''}".rstrip()
        ready = case.ready(since=end.at, timeout=timeout)
        running = case.running_version(ready)
        if running != rec.new_version:
            return f"after the retried update the device runs {running}, not {rec.new_version}"
        done = case.expect(("confirmed", "rollback"), since=end.at, timeout=timeout)
        if done.name != "confirmed":
            return "the retried update was rolled back"
    except DeviceSilent as e:
        return f"the retried update: {' '.join(str(e).split())[:200]}"
    return ""
