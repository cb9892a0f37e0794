"""One fault-plan model shared by every OTA server (HTTP(S), MQTT publisher, ESP8266 SDK TCP FOTA).

A scenario describes *what goes wrong* once, as a :class:`FaultPlan`, and hands it to
whichever server delivers the update. Every server pushes its payload through a
:class:`FaultyStream`, so "truncate at 4096" or "cut power after 65536 bytes" means
the same thing whether the image travels as an HTTP body, as MQTT chunks or as the
1280-byte packets of the ESP8266 SDK FOTA protocol.

Offsets are **payload offsets**: positions in the blob being delivered (the firmware
image, the file bundle), not in one response. An HTTP response for ``Range: bytes=a-``
starts at payload offset ``a``, so it only meets faults placed at offsets >= ``a``.
Headers, length words and protocol framing are never counted.

Semantics, identical for every server:

* ``truncate_at=N``: bytes at offsets >= N are never sent; the server then ends the
  transfer cleanly (HTTP/TCP: FIN; MQTT: the chunk holding N is cut there and a request
  for anything beyond it is answered with ``end``).
* ``drop_at=N``: as truncate, but the connection is dropped abortively (TCP RST; MQTT:
  the publisher's connection to the broker breaks without a DISCONNECT and the transfer
  is no longer served).
* ``corrupt=[(offset, mask)]``: the byte at ``offset`` is XORed with ``mask`` on the wire,
  the *first* time it goes out in a transfer (a resend of the same bytes is clean, as with
  a transient link error). Integrity data that the server computes itself (the MQTT chunk
  CRC) covers the clean bytes, so a receiver can detect it.
* ``corrupt_image=[(offset, mask)]``: the blob itself is damaged *before* the server
  derives anything from it (sha256 in an MQTT offer, chunk CRCs): every transport
  check passes and only an end-to-end check of the image (its SHA-256/checksum against a
  trusted reference) can catch it.
* ``stall_at=N, stall_s=T``: pause T seconds before byte N goes out (once per transfer).
* ``rate_bps``: average payload throughput limit, in bytes per second.
* ``lie_length=L``: announce L instead of the real length (HTTP Content-Length, the FOTA
  length word, the MQTT offer's ``size``); the real bytes are still sent.
* ``on_bytes=[(n, fn)]``: ``fn()`` is called once per affected transfer, as soon as the
  transfer has handed the first ``n`` payload bytes to the transport and before any byte
  at offset >= n goes out. Streaming servers split their writes at ``n`` so this is exact;
  the MQTT publisher can only act on whole chunks and calls it after the chunk carrying
  byte ``n - 1``. This is how a scenario cuts a board's power mid-write.
* ``apply_times``: how many transfers the plan affects (counted per plan, across every
  server that uses it); later transfers are delivered clean. ``None`` = all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Callback = Callable[[], object]
StopKind = Literal["truncate", "drop"]
Outcome = Literal["complete", "truncated", "dropped", "cancelled", "send-failed"]

_PLAN_KEYS = ("truncate_at", "corrupt", "corrupt_image", "stall_at", "stall_s", "drop_at", "rate_bps",
              "lie_length", "on_bytes", "apply_times")


def _noop() -> None:
    """Stand-in for a callback that could not be re-bound after a plan was read back from JSON."""


@dataclass(frozen=True)
class ByteTrigger:
    """``fn`` is to be called once a transfer has sent ``at`` payload bytes.

    ``name`` survives JSON round trips (functions do not), so a report still says which
    action was planned at which byte.
    """

    at: int
    fn: Callback = _noop
    name: str = ""

    def __post_init__(self) -> None:
        if self.at < 0:
            raise ValueError(f"on_bytes offset must be >= 0, not {self.at}")
        if not callable(self.fn):
            raise TypeError(f"on_bytes callback for byte {self.at} is not callable: {self.fn!r}")
        if not self.name:
            object.__setattr__(self, "name", getattr(self.fn, "__qualname__", None) or repr(self.fn))


def _xor_list(value: Iterable[Sequence[int]] | None, what: str) -> list[tuple[int, int]]:
    out = []
    for item in value or ():
        offset, mask = (int(x) for x in item)
        if offset < 0:
            raise ValueError(f"{what} offset must be >= 0, not {offset}")
        if not 1 <= mask <= 0xFF:
            raise ValueError(f"{what} mask must be 1..255 (0 would change nothing), not {mask}")
        out.append((offset, mask))
    return sorted(out)


@dataclass
class FaultPlan:
    """What goes wrong while a server delivers a payload (see the module docstring).

    The plan is configuration plus a little shared state: how many transfers claimed it
    (for ``apply_times``), totals of bytes sent, and the ``on_bytes`` events that fired
    (:meth:`stats`). ``to_dict()`` holds only the configuration, so a report can carry
    it and ``from_dict()`` can rebuild it.
    """

    truncate_at: int | None = None
    corrupt: list[tuple[int, int]] = field(default_factory=list)
    corrupt_image: list[tuple[int, int]] = field(default_factory=list)
    stall_at: int | None = None
    stall_s: float = 0.0
    drop_at: int | None = None
    rate_bps: float | None = None
    lie_length: int | None = None
    on_bytes: list[ByteTrigger] = field(default_factory=list)
    apply_times: int | None = None

    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _claimed: int = field(default=0, init=False, repr=False, compare=False)
    _bytes_sent: int = field(default=0, init=False, repr=False, compare=False)
    _events: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("truncate_at", "stall_at", "drop_at", "lie_length", "apply_times"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int or None, not {value!r}")
        self.corrupt = _xor_list(self.corrupt, "corrupt")
        self.corrupt_image = _xor_list(self.corrupt_image, "corrupt_image")
        if self.stall_s < 0:
            raise ValueError(f"stall_s must be >= 0, not {self.stall_s}")
        if self.stall_at is not None and self.stall_s == 0:
            raise ValueError("stall_at needs a stall_s > 0")
        if self.rate_bps is not None and self.rate_bps <= 0:
            raise ValueError(f"rate_bps must be > 0, not {self.rate_bps}")
        triggers = []
        for item in self.on_bytes:
            if isinstance(item, ByteTrigger):
                triggers.append(item)
            else:
                at, fn = item  # type: ignore[misc]
                triggers.append(ByteTrigger(int(at), fn))
        self.on_bytes = sorted(triggers, key=lambda t: t.at)

    # -- serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON types (callbacks by name)."""
        return {
            "truncate_at": self.truncate_at,
            "corrupt": [[o, m] for o, m in self.corrupt],
            "corrupt_image": [[o, m] for o, m in self.corrupt_image],
            "stall_at": self.stall_at,
            "stall_s": self.stall_s,
            "drop_at": self.drop_at,
            "rate_bps": self.rate_bps,
            "lie_length": self.lie_length,
            "on_bytes": [{"at": t.at, "callback": t.name} for t in self.on_bytes],
            "apply_times": self.apply_times,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], callbacks: Mapping[str, Callback] | None = None) -> FaultPlan:
        """Rebuild a plan from :meth:`to_dict` output.

        Callbacks are re-bound by name from ``callbacks``; a name that is not there
        becomes a no-op (the event is still recorded when it fires).
        """
        unknown = set(data) - set(_PLAN_KEYS)
        if unknown:
            raise ValueError(f"unknown fault plan keys: {', '.join(sorted(unknown))}")
        callbacks = callbacks or {}
        triggers = [ByteTrigger(int(t["at"]), callbacks.get(t.get("callback", ""), _noop), t.get("callback", ""))
                    for t in data.get("on_bytes") or ()]
        return cls(truncate_at=data.get("truncate_at"), corrupt=data.get("corrupt") or [],
                   corrupt_image=data.get("corrupt_image") or [], stall_at=data.get("stall_at"),
                   stall_s=float(data.get("stall_s") or 0.0), drop_at=data.get("drop_at"),
                   rate_bps=data.get("rate_bps"), lie_length=data.get("lie_length"), on_bytes=triggers,
                   apply_times=data.get("apply_times"))

    # -- description -------------------------------------------------------
    @property
    def is_empty(self) -> bool:
        return self.to_dict() == FaultPlan().to_dict()

    def describe(self) -> str:
        """One line for logs and report titles, e.g. ``truncate@4096, rate 10000 B/s, first 1 transfer``."""
        parts = []
        if self.truncate_at is not None:
            parts.append(f"truncate@{self.truncate_at}")
        if self.drop_at is not None:
            parts.append(f"drop@{self.drop_at}")
        if self.corrupt:
            parts.append("corrupt " + " ".join(f"{o}^0x{m:02x}" for o, m in self.corrupt))
        if self.corrupt_image:
            parts.append("corrupt-image " + " ".join(f"{o}^0x{m:02x}" for o, m in self.corrupt_image))
        if self.stall_at is not None:
            parts.append(f"stall@{self.stall_at} {self.stall_s:g}s")
        if self.rate_bps is not None:
            parts.append(f"rate {self.rate_bps:g} B/s")
        if self.lie_length is not None:
            parts.append(f"lie length {self.lie_length}")
        for t in self.on_bytes:
            parts.append(f"on_bytes@{t.at} {t.name}")
        if not parts:
            return "no faults"
        if self.apply_times is not None:
            parts.append(f"first {self.apply_times} transfer{'s' if self.apply_times != 1 else ''}")
        return ", ".join(parts)

    # -- shared state ------------------------------------------------------
    def would_apply(self) -> bool:
        """Would the next transfer be affected? (HEAD answers use this without claiming one.)"""
        with self._lock:
            return self.apply_times is None or self._claimed < self.apply_times

    def claim(self) -> tuple[int, bool]:
        """Register a new transfer: its index (0-based, per plan) and whether the plan affects it."""
        with self._lock:
            index = self._claimed
            self._claimed += 1
            return index, self.apply_times is None or index < self.apply_times

    def reset(self) -> None:
        """Forget transfers, totals and events (the configuration stays)."""
        with self._lock:
            self._claimed = 0
            self._bytes_sent = 0
            self._events = []

    def _account(self, n: int) -> None:
        with self._lock:
            self._bytes_sent += n

    def _record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[dict[str, Any]]:
        """``on_bytes`` firings: ``{"at", "callback", "transfer", "t", "error"}``."""
        with self._lock:
            return [dict(e) for e in self._events]

    def stats(self) -> dict[str, Any]:
        """What the plan did so far, for a report: transfers claimed, bytes sent, events."""
        with self._lock:
            return {"transfers": self._claimed, "bytes_sent": self._bytes_sent,
                    "events": [dict(e) for e in self._events]}

    def prepare_image(self, data: bytes) -> bytes:
        """``data`` with ``corrupt_image`` applied (offsets beyond the end are ignored)."""
        if not self.corrupt_image:
            return bytes(data)
        out = bytearray(data)
        for offset, mask in self.corrupt_image:
            if offset < len(out):
                out[offset] ^= mask
        return bytes(out)


@dataclass(frozen=True)
class Piece:
    """A run of payload bytes a transport is about to send as one unit.

    ``clean`` is what the payload holds there, ``data`` what goes on the wire (corrupted
    where the plan says). ``stop`` tells the transport to send ``data`` (possibly empty)
    and then end the transfer the given way.
    """

    offset: int
    clean: bytes
    data: bytes
    stop: StopKind | None = None


@dataclass(frozen=True)
class StreamResult:
    """How a :meth:`FaultyStream.pump` ended; ``start``/``end`` are payload offsets sent."""

    outcome: Outcome
    bytes_sent: int
    start: int
    end: int
    error: str | None = None


class FaultyStream:
    """Sends one transfer's payload through a :class:`FaultPlan`.

    Create one per transfer (it claims a transfer from the plan, which is what
    ``apply_times`` counts). Streaming servers call :meth:`pump`; transports with atomic
    units (MQTT chunks) call :meth:`piece` / :meth:`commit` per unit. Counters are safe to
    read from other threads while the transfer runs.

    ``cancel`` aborts stalls and rate-limit waits when a server is stopping.
    """

    def __init__(self, plan: FaultPlan | None, *, cancel: threading.Event | None = None,
                 sleep: Callable[[float], object] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self.cancel = cancel or threading.Event()
        self._clock = clock
        self._sleep = sleep
        self.transfer, self.active = plan.claim() if plan is not None else (0, False)
        self._lock = threading.Lock()
        self._bytes_sent = 0
        self._start: int | None = None
        self._hwm: int | None = None
        self._stalled = False
        self._corrupted: set[int] = set()
        self._fired: set[int] = set()
        self._rate_t0: float | None = None
        self._rate_bytes = 0
        self.stopped: StopKind | None = None

    # -- what the plan says ------------------------------------------------
    @property
    def fault(self) -> str | None:
        """The plan's description when it affects this transfer, else None (for log records)."""
        return self.plan.describe() if self.active and self.plan is not None else None

    def announced_length(self, real: int) -> int:
        """The length to announce: the plan's lie, if any and active, else ``real``."""
        if self.active and self.plan is not None and self.plan.lie_length is not None:
            return self.plan.lie_length
        return real

    def prepare_image(self, data: bytes) -> bytes:
        """The blob as this transfer delivers it (``corrupt_image`` applied when active)."""
        return self.plan.prepare_image(data) if self.active and self.plan is not None else bytes(data)

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return self._bytes_sent

    # -- timing ------------------------------------------------------------
    def _wait(self, seconds: float) -> bool:
        """Sleep, unless cancelled; False when cancelled."""
        if seconds <= 0:
            return not self.cancel.is_set()
        if self._sleep is not None:
            self._sleep(seconds)
            return not self.cancel.is_set()
        return not self.cancel.wait(seconds)

    def boundaries(self, offset: int, end: int) -> list[int]:
        """Offsets strictly inside (offset, end) where a streaming sender must split its writes."""
        plan = self.plan
        if not self.active or plan is None:
            return []
        points = {t.at for t in plan.on_bytes}
        points.update(p for p in (plan.truncate_at, plan.drop_at, plan.stall_at) if p is not None)
        return sorted(p for p in points if offset < p < end)

    # -- unit API ----------------------------------------------------------
    def piece(self, offset: int, data: bytes) -> Piece:
        """Decide how the payload bytes ``data`` at ``offset`` go out.

        Runs the plan's stall and rate limit (sleeping here, before the bytes are sent),
        fires callbacks already due, cuts the run at a truncate/drop point and corrupts
        bytes going out for the first time. Call :meth:`commit` after sending.
        """
        data = bytes(data)
        with self._lock:
            if self._start is None:
                self._start = offset
        self._fire_due(offset)
        plan = self.plan
        if not self.active or plan is None:
            return Piece(offset, data, data)
        end = offset + len(data)
        stop: StopKind | None = None
        cuts = [(p, k) for p, k in ((plan.truncate_at, "truncate"), (plan.drop_at, "drop"))
                if p is not None and p < end]
        if cuts:
            point, stop = min(cuts)  # type: ignore[assignment]
            end = max(offset, point)
        clean = data[:end - offset]
        if not clean:
            return Piece(offset, b"", b"", stop)
        if plan.stall_at is not None and not self._stalled and offset <= plan.stall_at < end:
            self._stalled = True
            if not self._wait(plan.stall_s):
                return Piece(offset, b"", b"", None)
            if self._rate_t0 is not None and plan.rate_bps:
                # A stall is not throughput: restart the rate clock so it does not "catch up".
                self._rate_t0 = self._clock() - self._rate_bytes / plan.rate_bps
        if plan.rate_bps:
            now = self._clock()
            if self._rate_t0 is None:
                self._rate_t0 = now
            due = self._rate_t0 + (self._rate_bytes + len(clean)) / plan.rate_bps
            if not self._wait(due - now):
                return Piece(offset, b"", b"", None)
            self._rate_bytes += len(clean)
        wire = bytearray(clean)
        for o, mask in plan.corrupt:
            if offset <= o < end and o not in self._corrupted:
                self._corrupted.add(o)
                wire[o - offset] ^= mask
        return Piece(offset, clean, bytes(wire), stop)

    def commit(self, piece: Piece) -> None:
        """``piece`` went out: count it and fire the callbacks it made due."""
        n = len(piece.data)
        with self._lock:
            self._bytes_sent += n
            end = piece.offset + n
            if n and (self._hwm is None or end > self._hwm):
                self._hwm = end
            if piece.stop is not None:
                self.stopped = piece.stop
        if self.plan is not None and n:
            self.plan._account(n)
        self._fire_due(piece.offset + n)

    def _fire_due(self, position: int) -> None:
        plan = self.plan
        if not self.active or plan is None or not plan.on_bytes:
            return
        due = []
        with self._lock:
            start = self._start if self._start is not None else position
            reached = max(position, self._hwm or 0) if self._hwm is not None else position
            for index, trig in enumerate(plan.on_bytes):
                if index not in self._fired and start <= trig.at <= reached:
                    self._fired.add(index)
                    due.append(trig)
        for trig in due:
            event: dict[str, Any] = {"at": trig.at, "callback": trig.name, "transfer": self.transfer,
                                     "t": time.time(), "error": None}
            try:
                trig.fn()
            except Exception as exc:  # a failing power switch must not kill the server thread
                event["error"] = f"{type(exc).__name__}: {exc}"
            plan._record(event)

    # -- streaming API -----------------------------------------------------
    def pump(self, data: bytes | memoryview, send: Callable[[bytes], object], *, offset: int = 0,
             chunk_size: int = 16384, pace_s: float = 0.0) -> StreamResult:
        """Send ``data`` (payload bytes starting at payload ``offset``) with ``send``.

        Writes are at most ``chunk_size`` bytes and are split at every fault point, so
        truncation, stalls and callbacks happen at the exact byte. ``pace_s`` waits after
        each full ``chunk_size`` packet (the FOTA server's pause between packets). A rate limit makes
        writes small enough (~20 per second) that the rate is smooth.
        """
        view = memoryview(bytes(data))
        total = len(view)
        unit = max(1, chunk_size)
        if self.active and self.plan is not None and self.plan.rate_bps:
            unit = max(1, min(unit, int(self.plan.rate_bps // 20) or 1))
        pos = 0
        outcome: Outcome = "complete"
        error = None
        while pos < total:
            packet_end = min(total, (pos // chunk_size + 1) * chunk_size) if chunk_size > 0 else total
            end = min(packet_end, pos + unit)
            cuts = self.boundaries(offset + pos, offset + end)
            if cuts:
                end = cuts[0] - offset
            piece = self.piece(offset + pos, bytes(view[pos:end]))
            if self.cancel.is_set():
                outcome = "cancelled"
                break
            try:
                if piece.data:
                    send(piece.data)
            except OSError as exc:
                outcome, error = "send-failed", f"{type(exc).__name__}: {exc}"
                break
            self.commit(piece)
            if piece.stop is not None:
                outcome = "truncated" if piece.stop == "truncate" else "dropped"
                pos += len(piece.data)
                break
            pos = end
            if pace_s > 0 and pos == packet_end and pos < total and not self._wait(pace_s):
                outcome = "cancelled"
                break
        if outcome == "complete":
            self._fire_due(offset + total)
        return StreamResult(outcome, self.bytes_sent, offset, offset + pos, error)


__all__ = ["ByteTrigger", "Callback", "FaultPlan", "FaultyStream", "Outcome", "Piece", "StopKind", "StreamResult"]
