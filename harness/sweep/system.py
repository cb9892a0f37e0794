"""The system-level power-cut sweep: cut a whole virtual board's power at chosen flash operations of an update.

A :class:`~harness.sweep.record.Recording` says which flash operations an update makes, in order.
The sweep chooses cut points among them (:func:`choose_cuts`: every operation that is not bulk image
data, the first and the last image operation and a seeded sample of the others). For each cut point it

1. restores the prepared board (its snapshot) and waits until the device is ready;
2. arms the cut at the absolute operation number (the board's counter goes on across runs, so the
   number is the counter read now plus the cut's place in the recording), with the board tracing its
   flash operations;
3. triggers the same update and waits until the board loses power by itself, with nothing of the cut
   operation landed (tear policy none);
4. for each tear policy (``harness.emu.flash``: none, prefix, random), takes the flash that cut left with
   the cut operation, as the trace shows this run made it, torn by the flash model's own rule
   (:func:`torn_flash`: byte for byte what a cut armed with that policy leaves), and hashes it: a state
   the sweep has checked before is not checked again (the outcome of the first cut that left it stands
   for both);
5. writes that flash, powers the board on and checks that the device gets ready, that it runs the old or
   the new version, that the boot state agrees (the slot the bootloader starts next holds that version;
   for file updates the slot record names the slot of that version and has nothing on trial), and, when
   the old version runs, that a retried update gets to the new version. A retry is a function of where it
   starts (the flash, the eFuse, what the device printed since it was powered on), so one that starts
   where an earlier one started, or reaches the switch to the new version with the flash, eFuse and
   printed lines an earlier one had there, takes that one's outcome (``retry_as``) instead of waiting for
   the same reset, boot and confirmation again (:meth:`_Sweep._state_key`).

If the trace lacks the cut operation, each tear policy is cut for real instead (steps 1-3 with that policy).

A cut is numbered by its place in the recording (cut N: the N-th flash operation after the trigger), so
``--cut N`` on another run cuts at the same place, and tears as it did: the tear is drawn from the cut's
place and the seed. The run's own operation N may still differ from the recording's (an HTTP read that
came in other pieces); each result keeps the hash of the flash it left, which tells whether a rerun reached
the same state.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..emu.flash import TEAR_POLICIES, tear
from .record import RecordingError, read_trace

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
    #: an earlier cut (its index in the results) whose retried update stood for this one's: the same flash, boot and
    #: eFuse when the update was retried
    retry_as: int | None = None
    #: where the cut's time went: seconds per step (prepare, update, recover, state, retry)
    timings: dict[str, float] = field(default_factory=dict)

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
    seconds: float = 0.0  # the wall time of the cuts
    setup_seconds: float = 0.0  # before them, once: the prepared board's first boot-state read

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
                "seconds": round(self.seconds, 2), "setup_seconds": round(self.setup_seconds, 2),
                "cuts_per_minute": round(self.cuts_per_minute, 1),
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
    sweep = _Sweep(case, rec, result.results, seed, ready_timeout, update_timeout)
    t_start = time.monotonic()
    _first_read(case)
    result.setup_seconds = time.monotonic() - t_start
    t_start = time.monotonic()
    for n in points:
        op = rec.ops[n - 1]
        live: _LiveCut | None = None
        for policy in policies:
            t0 = time.monotonic()
            r = CutResult(cut=n, policy=policy, op_kind=op.kind, addr=op.addr, phase=op.phase, outcome="")
            if live is None:
                live = sweep.cut(r, "none")
            source = live
            if policy != live.policy and live.flash is not None and live.op is None:
                source = sweep.cut(r, policy)  # the cut operation's bytes are unknown: cut this tear for real
            sweep.check(source, r)
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


@dataclass
class _LiveCut:
    """What one real cut of the update left: the flash (None: the update never reached the operation), the cut
    operation as the board made it (kind, address, the bytes of a program; None if the trace lacks it), and the
    tear policy it was cut with."""

    flash: bytes | None
    op: tuple[str, int, int, bytes | None] | None
    policy: str
    detail: str = ""


def torn_flash(flash: bytes, op: tuple[str, int, int, bytes | None], policy: str, seed: int, cut: int) -> bytes:
    """The flash a cut at ``op`` with ``policy`` leaves, from ``flash``, the flash that cut left with nothing of the
    operation landed (policy none): the flash model's own tear (``harness.emu.flash.tear``) of cut number ``cut``
    (the operation's place after the trigger, as a sweep arms it)."""
    kind, addr, size, data = op
    old = flash[addr:addr + size]
    if kind == "erase":
        target = b"\xff" * size
    else:
        assert data is not None and len(data) == size
        target = (int.from_bytes(old, "little") & int.from_bytes(data, "little")).to_bytes(size, "little")
    return flash[:addr] + tear(policy, seed, cut, old, target) + flash[addr + size:]


_LOG_STAMP = re.compile(r"^([IWEDV]) \(\d+\) ", re.MULTILINE)


class Checker:
    """Checks a board after a power cut: powered on, the device must get ready on the old or the new version, the
    boot state must agree, and on the old version a retried update must get to the new one (:meth:`after_power_on`).
    Keeps the retries made, so a retry that starts, or reaches the switch, where an earlier one did takes its
    outcome (on a virtual board, whose flash it can read; a bench board's retries are all made)."""

    def __init__(self, case: OtaCase, variant: str, old_version: str, new_version: str, results: list[CutResult], *,
                 ready_timeout: float = 20.0, update_timeout: float = 60.0):
        self.case = case
        self.variant = variant
        self.old_version = old_version
        self.new_version = new_version
        self.results = results
        self.ready_timeout = ready_timeout
        self.update_timeout = update_timeout
        virtual = case.board.virtual
        self.control = virtual.control if virtual is not None else None
        self.flash_path = case.board.flash_file().path if virtual is not None else None
        #: where a retry started, and where it reached the switch (:meth:`_state_key`) -> (why the retry failed or "",
        #: the index of the result that made it)
        self.retries: dict[str, tuple[str, int]] = {}
        self.switches: dict[str, tuple[str, int]] = {}

    def after_power_on(self, r: CutResult, mark: int, lap: _Laps | None = None) -> None:
        """Check the board powered on at console ``mark`` after a cut; fills in ``r.outcome``, ``r.version`` and adds
        to ``r.detail``."""
        from ..scenario import DeviceSilent

        case, board = self.case, self.case.board
        lap = lap or _Laps(r.timings)
        try:
            ready = case.ready(since=mark, timeout=self.ready_timeout)
        except DeviceSilent:
            r.outcome = "bricked"
            r.detail += f"no ready within {self.ready_timeout:.0f} s of power on"
            return
        old, new = self.old_version, self.new_version
        r.version = case.running_version(ready)
        lap("recover")
        if r.version not in (old, new):
            r.outcome = "inconsistent"
            r.detail += f"the device runs version {r.version}, neither the old {old} nor the new {new}"
            return
        disagree = _disagreement(case, _read_state(case, self.ready_timeout), r.version)
        if disagree and r.version == new and case.device.confirms_updates:
            # a device may say ready before it confirms the new version (the ESP-IDF client does): the boot state
            # agrees once it has confirmed it, or the device rolls back and runs the old one
            try:
                done = case.expect(("confirmed", "rollback"), since=ready.at,
                                   timeout=board.spec.confirm_timeout + self.ready_timeout)
            except DeviceSilent:
                done = None
            if done is not None:
                if done.name == "rollback":
                    try:
                        ready = case.ready(since=done.at, timeout=self.ready_timeout)
                    except DeviceSilent:
                        r.outcome = "bricked"
                        r.detail += f"rolled back, then no ready within {self.ready_timeout:.0f} s"
                        return
                    r.version = case.running_version(ready)
                disagree = _disagreement(case, _read_state(case, self.ready_timeout), r.version)
        lap("state")
        if disagree:
            r.outcome = "inconsistent"
            r.detail += disagree
            return
        if r.version == new:
            r.outcome = "recovered-new"
            return
        failed = self.retry(r, mark)
        lap("retry")
        if failed:
            r.outcome = "retry-failed"
            r.detail += failed
            return
        r.outcome = "recovered-old"

    def retry(self, r: CutResult, mark: int) -> str:
        """Offer the update again; "" once the new version runs and is confirmed, else why not.

        A retry's outcome is a function of where it starts: the flash, the eFuse and the device's path since power
        on (:meth:`_state_key`). One that starts where an earlier cut's retry started has that outcome (``r.retry_as``
        names that cut). So has one that reaches the switch where an earlier retry reached it (the same flash once
        the new image and its boot selection are written, the same path there): what follows is the reset into the
        new version, its boot and its confirmation, which only that flash and path decide.
        """
        from ..scenario import DeviceSilent

        case, timeout = self.case, self.update_timeout
        start = self._state_key(mark)
        if start is not None and start in self.retries:
            failed, r.retry_as = self.retries[start]
            return failed
        pub = case.publish(self.variant)
        since = case.trigger(pub)
        at_switch = None
        try:
            end = case.expect(("switch", "refused"), since=since, timeout=timeout)
            if end.name == "refused":
                failed = f"the retried update was refused: {end.get('reason')} {end.get('detail') or ''}".rstrip()
            else:
                at_switch = self._state_key(mark, upto=end.at)
                if at_switch is not None and at_switch in self.switches:
                    failed, r.retry_as = self.switches[at_switch]
                    return failed
                failed = self._after_switch(end)
        except DeviceSilent as e:
            failed = f"the retried update: {' '.join(str(e).split())[:200]}"
        for key, cache in ((start, self.retries), (at_switch, self.switches)):
            if key is not None:
                cache[key] = (failed, len(self.results))
        return failed

    def _after_switch(self, end) -> str:
        case, timeout = self.case, self.update_timeout
        ready = case.ready(since=end.at, timeout=timeout)
        running = case.running_version(ready)
        if running != self.new_version:
            return f"after the retried update the device runs {running}, not {self.new_version}"
        if not case.device.confirms_updates:  # the loader took the new bin for good once it booted
            return ""
        done = case.expect(("confirmed", "rollback"), since=end.at, timeout=timeout)
        if done.name != "confirmed":
            return "the retried update was rolled back"
        return ""

    def _state_key(self, mark: int, upto: int | None = None) -> str | None:
        """The flash now, what the device printed from ``mark`` (its power on) to the line at ``upto`` and the chip's
        anti-rollback eFuse, as one digest; None unless the flash stayed the same while it was read.

        At a switch the device may already have reset: from any moment between the switch and the new version's
        first write, the same flash leads on the same way (the bootloader and the new version start from it); a
        moment after a write has another flash, so it can only miss an earlier retry, never match the wrong one."""
        control = self.control
        if control is None or self.flash_path is None:
            return None  # a bench board: its flash cannot be read without stopping it
        ops = control.stats()["ops"]
        flash = hashlib.sha256(self.flash_path.read_bytes()).hexdigest()
        stats = control.stats()
        if stats["ops"] != ops:
            return None
        text = self.case.board.console.text
        if upto is not None:
            end = text.find("\n", upto)
            text = text[:len(text) if end < 0 else end + 1]
        # log lines' times left out, and the number each publication of the update has in its URL, and the
        # progress lines (how many bytes had arrived when: the network's pieces, not the device's state)
        case = self.case
        lines = text[mark:].split("\n")
        counting = {i for i, event, fields in case.board.console.parser.parse_lines(lines)
                    if event == "progress" or (event == "writing" and "bytes" in fields)}
        lines = _LOG_STAMP.sub(r"\1 ", "\n".join(line for i, line in enumerate(lines) if i not in counting))
        lines = re.sub(re.escape(f"/{case.board.name}/{case.device.kind}/{case.kind}/") + r"\d+/",
                       "/<update>/", lines)
        efuse = stats.get("efuse", {}).get("secure_version")
        return hashlib.sha256(f"{flash}\n{efuse}\n{lines}".encode()).hexdigest()


class _Sweep(Checker):
    """The state a system-level sweep keeps between cuts: the flash states checked, the retries made."""

    def __init__(self, case: OtaCase, rec: Recording, results: list[CutResult], seed: int, ready_timeout: float,
                 update_timeout: float):
        super().__init__(case, rec.variant, rec.old_version, rec.new_version, results, ready_timeout=ready_timeout,
                         update_timeout=update_timeout)
        self.rec = rec
        self.seed = seed
        self.before = hashlib.sha256(rec.before).hexdigest()
        self.seen: dict[str, int] = {}  # flash state -> index of the result that checked it

    def cut(self, r: CutResult, policy: str) -> _LiveCut:
        """Restore the prepared board, arm the cut at ``r.cut`` with ``policy``, trigger the update, wait until the
        board loses power; the flash it left and the operation it was cut at (traced)."""
        case, control = self.case, self.control
        lap = _Laps(r.timings)
        case.prepare()
        lap("prepare")
        ops_now = control.stats()["ops"]
        detail = ""
        if hashlib.sha256(self.flash_path.read_bytes()).hexdigest() != self.before:
            detail = "the restored board's flash differs from the recording's (before the trigger); "
        pub = case.publish(self.rec.variant)
        seq = control.status()["event_seq"]
        reply = control.trace(True)
        control.wait_event("trace", since=seq, timeout=10, on=True)
        at = ops_now + r.cut
        control.arm_cut(at_op=at, policy=policy, seed=self.seed, base=ops_now)  # tears as cut r.cut does
        case.trigger(pub)
        try:
            control.wait_event("power", since=seq, timeout=self.update_timeout, on=False, reason="cut")
        except TimeoutError:
            control.clear_cut()
            control.trace(False)
            ops_done = control.stats()["ops"] - ops_now
            lap("update")
            return _LiveCut(None, None, policy, detail + (
                f"the update made {ops_done} flash operations in {self.update_timeout:.0f} s and never reached "
                f"operation {r.cut} (the recording has {len(self.rec.ops)})"))
        case.board.power_off()  # already off: the board's own bookkeeping follows
        control.trace(False)
        flash = self.flash_path.read_bytes()
        op = None
        try:
            ops, data = read_trace(reply["ops"], reply["data"], None)
        except RecordingError:
            ops, data = [], {}
        made = next((o for o in ops if o.n == at), None)
        if made is not None:
            op = (made.kind, made.addr, made.size, data.get(made.n))
            want = self.rec.ops[r.cut - 1]
            if (made.kind, made.addr, made.size) != (want.kind, want.addr, want.size):
                detail += (f"this run's operation {r.cut} was a {made.kind} of {made.size} bytes at 0x{made.addr:x} "
                           f"(the recording's: a {want.kind} of {want.size} at 0x{want.addr:x}); ")
        lap("update")
        return _LiveCut(flash, op, policy, detail)

    def check(self, live: _LiveCut, r: CutResult) -> None:
        """Power the board on from the flash ``live`` left, torn with ``r.policy``, and check it (or take the outcome
        of an earlier cut that left the same flash); fills in ``r``."""
        board = self.case.board
        lap = _Laps(r.timings)
        r.detail = live.detail
        if live.flash is None:
            r.outcome = "not-reached"
            return
        flash = live.flash
        if r.policy != live.policy:
            assert live.op is not None and live.policy == "none"
            flash = torn_flash(flash, live.op, r.policy, self.seed, r.cut)
        r.state = hashlib.sha256(flash).hexdigest()
        if r.state in self.seen:
            r.same_as = self.seen[r.state]
            first = self.results[r.same_as]
            r.outcome, r.version, r.detail = first.outcome, first.version, first.detail
            return
        self.seen[r.state] = len(self.results)
        board.power_off()
        if self.flash_path.read_bytes() != flash:
            with open(self.flash_path, "r+b") as f:
                f.write(flash)
        mark = board.console.mark()
        board.power_on()
        self.after_power_on(r, mark, lap)

class _Laps:
    """Adds the seconds since the last call to ``timings[step]``."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings
        self.t = time.monotonic()

    def __call__(self, step: str) -> None:
        now = time.monotonic()
        self.timings[step] = round(self.timings.get(step, 0.0) + now - self.t, 3)
        self.t = now


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
