"""The power-cut sweep on a bench: cut the board's power through its power switch, by bytes sent and by console.

A bench board's flash operations cannot be counted, so a cut is placed by what the harness sees:

* ``bytes:N``: the server has sent the first N bytes of the update's image (a :class:`FaultPlan` whose
  ``on_bytes`` switches the power off before byte N goes out, and which sends nothing past it), for N spread
  evenly over the image, a few of its last bytes and all of it (:func:`plan_bench_cuts`);
* ``EVENT+S``: S seconds after the device printed ``EVENT`` (``switch``: it has written the new image and its
  boot selection and is about to reset; ``ready``: the new version's first boot, before its health check's
  verdict; ``confirmed``: after it), watching the console.

Each cut restores the prepared board (a bench reflashes it: minutes per cut), publishes the update with the
cut armed, triggers it, cuts the power through the board's power switch (the harness's own driver: the same
path a scenario's power cut takes), waits the switch's off time, powers on and checks as the system-level
sweep does (``Checker``: old or new version ready, boot state agreeing, a retried update succeeding).

The sweep is opt-in and bounded: ``max_cuts`` cuts per run, and a state file that keeps every finished cut,
so a rerun goes on where the last one stopped (a cut already in the file is not made again).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..servers.faults import ByteTrigger, FaultPlan
from .system import RECOVERED, Checker, CutResult, SweepError

if TYPE_CHECKING:
    from ..scenario import OtaCase

#: console events a cut can follow, in the order an update prints them
EVENTS = ("switch", "ready", "confirmed")
#: the default console cuts: at and after the switch, in the new version's confirm window, after its confirmation
DEFAULT_EVENT_CUTS = (("switch", 0.0), ("switch", 0.3), ("switch", 1.0), ("ready", 0.0), ("confirmed", 0.0))
#: how far before the image's end the default "last bytes" cuts fall
DEFAULT_TAIL = (4096, 256, 1)

_NAME = re.compile(r"^(?:bytes:(?P<bytes>\d+)|(?P<event>[a-z]+)\+(?P<delay>\d+(?:\.\d+)?))$")


@dataclass(frozen=True)
class BenchCut:
    """One cut: after ``at_bytes`` bytes of the image, or ``delay`` seconds after the console event ``event``."""

    at_bytes: int | None = None
    event: str | None = None
    delay: float = 0.0

    @property
    def name(self) -> str:
        if self.at_bytes is not None:
            return f"bytes:{self.at_bytes}"
        return f"{self.event}+{self.delay:g}"

    @classmethod
    def parse(cls, text: str) -> BenchCut:
        """``bytes:N`` or ``EVENT+SECONDS`` (EVENT one of :data:`EVENTS`)."""
        m = _NAME.match(text.strip())
        if m is None:
            raise ValueError(f"bench cut {text!r}: expected bytes:N or EVENT+SECONDS (EVENT: {', '.join(EVENTS)})")
        if m["bytes"] is not None:
            if int(m["bytes"]) < 1:
                raise ValueError(f"bench cut {text!r}: the byte count must be at least 1")
            return cls(at_bytes=int(m["bytes"]))
        if m["event"] not in EVENTS:
            raise ValueError(f"bench cut {text!r}: unknown console event {m['event']!r} (known: {', '.join(EVENTS)})")
        return cls(event=m["event"], delay=float(m["delay"]))


def plan_bench_cuts(size: int, spread: int = 8, tail: Sequence[int] = DEFAULT_TAIL,
                    events: Sequence[tuple[str, float]] = DEFAULT_EVENT_CUTS) -> list[BenchCut]:
    """The cuts for an image of ``size`` bytes: ``spread`` byte counts evenly spread over it, its last bytes (``size``
    minus each of ``tail``), all of it, then the console cuts ``events`` ((event, seconds after it))."""
    if size < 1:
        raise SweepError(f"an image of {size} bytes has no byte to cut at")
    counts = {size * i // (spread + 1) for i in range(1, max(spread, 0) + 1)}
    counts |= {size - k for k in tail if 0 < k < size}
    counts.add(size)
    cuts = [BenchCut(at_bytes=n) for n in sorted(c for c in counts if c >= 1)]
    return cuts + [BenchCut(event=e, delay=d) for e, d in events]


@dataclass
class BenchCutResult:
    name: str
    outcome: str
    version: str | None = None
    detail: str = ""
    seconds: float = 0.0
    at: str = ""  # when it was made (UTC, ISO 8601)

    @property
    def recovered(self) -> bool:
        return self.outcome in RECOVERED


@dataclass
class BenchSweepResult:
    board: str
    device: str
    kind: str
    variant: str
    image_size: int
    planned: list[str]
    results: list[BenchCutResult] = field(default_factory=list)  # every finished cut, from the state file too
    made: int = 0  # cuts made by this run
    seconds: float = 0.0

    @property
    def remaining(self) -> list[str]:
        done = {r.name for r in self.results}
        return [name for name in self.planned if name not in done]

    @property
    def recovered(self) -> int:
        return sum(r.recovered for r in self.results)

    @property
    def failures(self) -> list[BenchCutResult]:
        return [r for r in self.results if not r.recovered]

    def to_dict(self) -> dict:
        return {"board": self.board, "device": self.device, "kind": self.kind, "variant": self.variant,
                "image_size": self.image_size, "planned": self.planned, "made": self.made,
                "remaining": self.remaining, "cuts": len(self.results), "recovered": self.recovered,
                "seconds": round(self.seconds, 1), "results": [asdict(r) for r in self.results]}


class BenchState:
    """The state file: every finished cut by board, device, kind and variant (JSON, rewritten whole after each cut,
    through a temporary file, so an interrupted run never leaves half of it)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.data: dict = {"cuts": {}}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as e:
                raise SweepError(f"bench sweep state {self.path}: cannot be read ({e}); move it away to start "
                                 "over") from None
            if not isinstance(data, dict) or not isinstance(data.get("cuts"), dict):
                raise SweepError(f"bench sweep state {self.path}: not a state file of the bench sweep")
            self.data = data

    @staticmethod
    def key(case: OtaCase, variant: str) -> str:
        """Board, device, kind and variant; and the run's mutation of that device, if any (a mutated device's cuts
        are not the real one's)."""
        key = f"{case.board.name}/{case.device.kind}/{case.kind}/{variant}"
        mutation = case.bench.mutation_for(case.device.kind)
        return key + (f"/mutation:{mutation.name}" if mutation is not None else "")

    def done(self, key: str) -> dict[str, dict]:
        return self.data["cuts"].get(key, {})

    def add(self, key: str, result: BenchCutResult) -> None:
        self.data["cuts"].setdefault(key, {})[result.name] = asdict(result)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


def sweep_bench(case: OtaCase, state_path: str | Path, *, variant: str = "next", spread: int = 8,
                cuts: Sequence[BenchCut] | None = None, max_cuts: int = 10, redo: bool = False,
                progress: Callable[[BenchCutResult], None] | None = None, ready_timeout: float = 60.0,
                update_timeout: float = 600.0) -> BenchSweepResult:
    """Make up to ``max_cuts`` of the planned cuts (``cuts``, or :func:`plan_bench_cuts` with ``spread``) that the
    state file does not hold yet (``redo``: make them all again), each through the board's power switch, and check
    the board after each."""
    board = case.board
    if max_cuts < 0:
        raise SweepError(f"max_cuts must be 0 or more, not {max_cuts}")
    state = BenchState(state_path)
    key = BenchState.key(case, variant)
    case.prepare()
    probe = case.publish(variant)
    image = probe.paths[-1]
    size = probe.path_sizes.get(image) or probe.size
    plan = list(cuts) if cuts is not None else plan_bench_cuts(size, spread)
    for c in plan:
        if c.at_bytes is not None and c.at_bytes > size:
            raise SweepError(f"bench cut {c.name}: the image has {size} bytes")
    done = {} if redo else state.done(key)
    result = BenchSweepResult(board=board.name, device=case.device.kind, kind=case.kind, variant=variant,
                              image_size=size, planned=[c.name for c in plan])
    fields = BenchCutResult.__dataclass_fields__
    result.results = [BenchCutResult(**{k: v for k, v in done[name].items() if k in fields})
                      for name in result.planned if name in done]
    scratch: list[CutResult] = []
    checker = Checker(case, variant, case.baseline_version, probe.version, scratch, ready_timeout=ready_timeout,
                      update_timeout=update_timeout)
    t_start = time.monotonic()
    for c in plan:
        if result.made >= max_cuts:
            break
        if c.name in done:
            continue
        t0 = time.monotonic()
        r = _one_bench_cut(case, checker, c, variant, update_timeout)
        r.seconds = round(time.monotonic() - t0, 1)
        r.at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        state.add(key, r)
        result.results.append(r)
        result.made += 1
        if progress is not None:
            progress(r)
    result.seconds = time.monotonic() - t_start
    return result


def _one_bench_cut(case: OtaCase, checker: Checker, c: BenchCut, variant: str, update_timeout: float) -> BenchCutResult:
    board = case.board
    case.prepare()
    cut_done = threading.Event()
    stop = threading.Event()

    def cut() -> None:
        board.power.off()  # the board's power switch, from the server's thread: before the next byte goes out
        cut_done.set()

    pub = case.publish(variant)
    image = pub.paths[-1]
    if c.at_bytes is not None:
        size = pub.path_sizes.get(image) or pub.size
        plan = FaultPlan(on_bytes=[ByteTrigger(c.at_bytes, cut, "power-cut")],
                         truncate_at=c.at_bytes if c.at_bytes < size else None, apply_times=1)
        case.http.set_fault(plan, image)
        pub.fault = plan
    mark = case.trigger(pub)
    watcher = None
    if c.event is not None:
        watcher = threading.Thread(target=_watch, args=(case, c, mark, cut, stop, update_timeout),
                                   name=f"bench-cut-{c.name}", daemon=True)
        watcher.start()
    r = CutResult(cut=0, policy="switch", op_kind="", addr=0, phase="", outcome="")
    try:
        if not _wait_cut_or_end(case, cut_done, mark, update_timeout):
            return BenchCutResult(c.name, "not-reached", detail=f"the update ended without reaching the cut "
                                  f"({_ending(case, mark)})")
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=5)
        case.http.set_fault(None, image)
    board.power_off()  # already off: the board's own bookkeeping follows (a bench board's port goes away)
    time.sleep(board.power.default_off_time)
    mark = board.console.mark()
    board.power_on()
    checker.after_power_on(r, mark)
    return BenchCutResult(c.name, r.outcome, r.version, r.detail)


def _watch(case: OtaCase, c: BenchCut, mark: int, cut: Callable[[], None], stop: threading.Event,
           timeout: float) -> None:
    """Cut ``c.delay`` seconds after the console shows ``c.event`` (``ready`` and ``confirmed``: after the switch)."""
    console = case.board.console
    deadline = time.monotonic() + timeout
    since = mark
    chain = ["switch"] if c.event == "switch" else ["switch", c.event]
    for name in chain:
        while not stop.is_set():
            try:
                ev = console.expect_event((name, "refused"), timeout=min(1.0, max(deadline - time.monotonic(), 0.01)),
                                          since=since)
            except TimeoutError:
                if time.monotonic() > deadline:
                    return
                continue
            if ev.name == "refused":
                return
            since = ev.at + 1
            break
        else:
            return
    if not stop.wait(c.delay):
        cut()


def _wait_cut_or_end(case: OtaCase, cut_done: threading.Event, mark: int, timeout: float) -> bool:
    """True once the cut happened; False if the update ended first (refused, or confirmed/rolled back)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cut_done.wait(0.2):
            return True
        if _ending(case, mark):
            # the update is over: give a console cut that follows the ending a moment to land
            return cut_done.wait(2.0)
    return cut_done.is_set()


def _ending(case: OtaCase, mark: int) -> str:
    for ev in case.board.console.events(mark):
        if ev.name == "refused":
            return f"refused: {ev.get('reason')}"
        if ev.name in ("confirmed", "rollback"):
            return ev.name
    return ""
