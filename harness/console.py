"""A board's serial console: a reader thread, a timestamped log, ``expect`` and the raw REPL.

The console owns the serial port while it is open. esptool and mpremote need the port
too, so :meth:`Console.release` closes it (the log keeps what was read) and
:meth:`Console.attach` opens it again; :class:`harness.board.Board` does this around
every flashing and deploy step.

Which lines are OTA events is the device implementation's business (``harness.devices``): the
device on the board sets :attr:`Console.parser`, and :meth:`Console.events` hands it the lines.
This module knows the line formats devices share: ESP-IDF's log lines ``X (ms) tag: message``
(:func:`parse_idf_log_line`, colours stripped).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import serial

from .errors import SerialPortFailure
from .transport import open_port

#: ANSI colour and cursor sequences (ESP-IDF's CONFIG_LOG_COLORS)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: ESP-IDF's log line: level letter, milliseconds since boot (or a wall-clock time), tag, message
_IDF_LOG = re.compile(r"^(?P<level>[EWIDV]) \((?P<time>[0-9:.]+)\) (?P<tag>[^:\s][^:]*?): ?(?P<message>.*)$")


class ConsoleError(SerialPortFailure, RuntimeError):
    """The console could not do what was asked; the message names the port."""


@dataclass(frozen=True)
class OtaEvent:
    name: str
    fields: dict[str, str]
    at: int  # position in the console text

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)


class EventParser(Protocol):
    """How a device implementation's console lines become OTA events (one per device, ``harness.devices``)."""

    def parse_lines(self, lines: Iterable[str]) -> Iterator[tuple[int, str, dict[str, str]]]:
        """``(index of the line, event name, fields)`` for each line of ``lines`` that is an event."""
        ...


class NoEvents:
    """The parser of a console no device implementation has claimed yet: nothing is an event."""

    def parse_lines(self, lines: Iterable[str]) -> Iterator[tuple[int, str, dict[str, str]]]:
        return iter(())


@dataclass(frozen=True)
class IdfLogLine:
    level: str  # E, W, I, D, V
    time: str  # milliseconds since boot, as printed
    tag: str
    message: str


def strip_colours(line: str) -> str:
    return _ANSI.sub("", line)


def parse_idf_log_line(line: str) -> IdfLogLine | None:
    """An ESP-IDF log line ``I (1234) tag: message`` (colours stripped), or None for any other line."""
    m = _IDF_LOG.match(strip_colours(line).strip())
    if not m:
        return None
    return IdfLogLine(m["level"], m["time"], m["tag"], m["message"])


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


class Console:
    """Reads ``url`` in a thread; everything read is kept as text and logged with timestamps."""

    def __init__(self, url: str, name: str, log_path: str | Path | None = None, baud: int = 115200,
                 parser: EventParser | None = None):
        self.url = url
        #: which lines are OTA events: set by the device implementation on the board
        self.parser: EventParser = parser or NoEvents()
        self.name = name
        self.baud = baud
        self.log_path = Path(log_path) if log_path else None
        self._text = ""
        self._cond = threading.Condition()
        self._port: serial.SerialBase | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._line_start = True
        # (position in the text, wall time) of every line start, and the harness's notes
        # (position, wall time, text): what a transcript is made of
        self._stamps: list[tuple[int, float]] = []
        self._notes: list[tuple[int, float, str]] = []
        self._log = open(self.log_path, "a", encoding="utf-8") if self.log_path else None

    # -- port ownership ---------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self._port is not None

    def attach(self, timeout: float = 10.0) -> None:
        """Open the port (retrying while it is missing, e.g. re-enumerating after power-on)."""
        if self._port is not None and self._thread is not None and not self._thread.is_alive():
            self.release()  # the port went away under the reader (board power cut through USB)
        if self._port is not None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._port = open_port(self.url, self.baud, timeout=0.05, release_lines=True)
                break
            except (serial.SerialException, OSError, ValueError) as e:
                if time.monotonic() > deadline:
                    raise ConsoleError(f"console of {self.name}: serial port {self.url} cannot be opened: "
                                       f"{e}") from None
                time.sleep(0.2)
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name=f"console-{self.name}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Close the port so another tool can use it; what was read stays in the log."""
        if self._port is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        try:
            self._port.close()
        except Exception:
            pass
        self._port = None
        self._thread = None

    def close(self) -> None:
        self.release()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _reader(self) -> None:
        port = self._port
        while not self._stop.is_set() and port is not None:
            try:
                data = port.read(4096)
            except Exception:
                # The port vanished (board powered through it, cable pulled): stop reading;
                # attach() opens it again when the board is back.
                self._append(f"\n[console: {self.url} went away]\n")
                return
            if data:
                self._append(data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n"))

    def _append(self, text: str) -> None:
        now = time.time()
        out = []
        with self._cond:
            pos = len(self._text)
            for i, ch in enumerate(text):
                if self._line_start:
                    self._stamps.append((pos + i, now))
                    out.append(_clock(now) + " ")
                out.append(ch)
                self._line_start = ch == "\n"
            self._text += text
            self._cond.notify_all()
            if self._log is not None:
                self._log.write("".join(out))
                self._log.flush()

    def note(self, text: str) -> None:
        """A line of the harness's own in the log and in transcripts (``===== text =====``), not in :attr:`text`:
        where a test's body starts, what the harness did to the board."""
        now = time.time()
        with self._cond:
            self._notes.append((len(self._text), now, text))
            if self._log is not None:
                self._log.write(("" if self._line_start else "\n") + f"{_clock(now)} ===== {text} =====\n")
                self._log.flush()
            self._line_start = True  # the rest of an interrupted line starts a stamped line of its own

    # -- reading ------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        with self._cond:
            return self._text

    def mark(self) -> int:
        """A position to search from: ``expect(..., since=console.mark())`` sees only newer output."""
        with self._cond:
            return len(self._text)

    def transcript(self, since: int = 0, until: int | None = None, after: float | None = None) -> str:
        """The output between two marks as timestamped lines (``HH:MM:SS.mmm text``), with the notes in place
        (only those made at ``after`` or later, when given: a mark does not tell notes at its position apart)."""
        with self._cond:
            text = self._text
            stamps = list(self._stamps)
            notes = [n for n in self._notes if since <= n[0] <= (len(text) if until is None else until)
                     and (after is None or n[1] >= after)]
        end = len(text) if until is None else until
        starts = [(p, t) for p, t in stamps if since <= p < end]
        if not starts or starts[0][0] > since:
            # the first line began before ``since``: it gets the time of its own start
            before = [t for p, t in stamps if p <= since]
            starts.insert(0, (since, before[-1] if before else (notes[0][1] if notes else time.time())))
        bounds = [p for p, _ in starts] + [end]
        pieces = []
        for (pos, at), nxt in zip(starts, bounds[1:]):
            if pos < nxt:  # (nothing at all after ``since``: no line)
                pieces.append((pos, 1, f"{_clock(at)} {text[pos:nxt].rstrip(chr(10))}"))
        for pos, at, note in notes:
            pieces.append((pos, 0, f"{_clock(at)} ===== {note} ====="))
        lines = [line for _pos, _order, line in sorted(pieces, key=lambda p: (p[0], p[1]))]
        return "\n".join(lines) + ("\n" if lines else "")

    def tail(self, since: int = 0, lines: int = 30) -> str:
        """The last ``lines`` lines of output after ``since`` (what a failure message shows)."""
        text = self.text[since:].rstrip("\n")
        return "\n".join(text.split("\n")[-lines:]) if text else ""

    def expect(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match:
        """Wait for ``pattern`` (a regex, multiline) in the output after ``since``."""
        rx = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._text, since)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = self._text[max(since, len(self._text) - 1500):]
                    raise TimeoutError(f"console of {self.name}: {pattern!r} not seen within {timeout:.0f} s; "
                                       f"last output:\n{tail}")
                self._cond.wait(min(left, 0.2))

    def events(self, since: int = 0, name: str | None = None) -> list[OtaEvent]:
        """The OTA events printed after ``since``, as the device's :attr:`parser` reads its lines.

        Only complete lines count: the start of a line still arriving could pass for another event
        (``Running firmware version: 1`` of ``...: 12``)."""
        lines = self.text[since:].split("\n")[:-1]
        starts = [since]
        for line in lines[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        return [OtaEvent(event, fields, starts[index]) for index, event, fields in self.parser.parse_lines(lines)
                if name is None or event == name]

    def expect_event(self, name: str | tuple[str, ...], timeout: float = 30.0, since: int = 0,
                     **fields: str) -> OtaEvent:
        """Wait for an OTA event ``name`` whose fields include ``fields``; ``name`` may list several (first wins)."""
        names = (name,) if isinstance(name, str) else tuple(name)
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events(since):
                if ev.name in names and all(ev.fields.get(k) == str(v) for k, v in fields.items()):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [f"{e.name} {e.fields}" for e in self.events(since)]
                raise TimeoutError(f"console of {self.name}: no OTA event {name!r} with {fields} within "
                                   f"{timeout:.0f} s; OTA events seen: {seen[-8:]}")
            with self._cond:
                self._cond.wait(min(left, 0.1))

    # -- writing ------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._port is None:
            raise ConsoleError(f"console of {self.name}: serial port {self.url} is not open")
        self._port.write(data)

    def write_line(self, text: str) -> None:
        """``text`` and a line end on the serial line, as someone typing it would send it (``\\n``)."""
        self.write(text.encode() + b"\n")

    def hard_reset(self) -> None:
        """Pulse EN through RTS with IO0 (DTR) released, as a DevKit's auto-reset circuit does: boot from flash."""
        if self._port is None:
            raise ConsoleError(f"console of {self.name}: serial port {self.url} is not open")
        self._port.dtr = False
        self._port.rts = True
        time.sleep(0.1)
        self._port.rts = False

    def interrupt(self, timeout: float = 5.0) -> None:
        """Stop whatever runs (Ctrl-C) and wait for the friendly REPL prompt."""
        since = self.mark()
        self.write(b"\r\x03\x03")
        self.expect(r">>> $", timeout, since)

    def _enter_raw(self, timeout: float) -> None:
        # Bytes sent while the board is still resetting or booting are lost, as on a real
        # UART: ask again until the raw REPL answers.
        deadline = time.monotonic() + timeout
        while True:
            since = self.mark()
            self.write(b"\r\x03\x03\x01")
            try:
                self.expect(r"raw REPL; CTRL-B to exit\n>", min(1.5, max(0.1, deadline - time.monotonic())), since)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"console of {self.name}: the raw REPL did not answer within "
                                       f"{timeout:.0f} s; last output:\n{self.text[-1500:]}") from None

    def exec_raw(self, code: str, timeout: float = 30.0, wait: bool = True) -> str:
        """Run ``code`` through the raw REPL (what mpremote does) and return its output.

        With ``wait=False`` the call returns as soon as the board has accepted the code:
        for a command that ends in a reset (an update) there is no result to wait for.
        """
        self._enter_raw(timeout)
        since = self.mark()
        self.write(code.encode() + b"\x04")
        self.expect(r"OK", timeout, since)
        if not wait:
            return ""
        m = self.expect(r"(?s)OK(.*?)\x04(.*?)\x04>", timeout, since)
        out, err = m.group(1), m.group(2)
        self.write(b"\x02")  # back to the friendly REPL
        if err.strip():
            raise ConsoleError(f"console of {self.name}: the board raised:\n{err.strip()}")
        return out
