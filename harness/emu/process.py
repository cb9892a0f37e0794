"""The board supervisor: power domain, USB-UART bridge and control endpoint of one virtual board.

One supervisor process per virtual board. It outlives power cycles: it owns the
serial ports a host connects to (RFC 2217 and raw TCP) and the control
endpoint, while the chip itself runs in a forked child that exists only while
the board is powered and out of reset. Cutting power kills the child with
SIGKILL, so nothing the chip would have done afterwards reaches the flash.

The supervisor is single-threaded (a selector loop), which keeps fork safe.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from ..lifeline import die_with_parent
from . import uart as wire
from .chip import (
    CAUSE_DEEPSLEEP,
    CAUSE_EN,
    CAUSE_POWER_ON,
    CAUSE_SOFTWARE,
    CAUSE_WATCHDOG,
    EXIT_CUT,
    EXIT_DEEPSLEEP,
    EXIT_HALT,
    EXIT_NAMES,
    EXIT_REBOOT,
    EXIT_WATCHDOG,
    ChipConfig,
    ChipRun,
    run_chip,
)
from .flash import CutPlan, FlashMeta, meta_path
from .rfc2217 import ResetLines, Rfc2217Session, VirtualSerialSettings, bind_listener

# Stop reading from the chip while a slow client has this much unsent data queued.
CLIENT_BACKLOG_LIMIT = 512 * 1024


@dataclass
class BoardOptions:
    chip: ChipConfig
    host: str = "127.0.0.1"
    serial_port: int = 0  # RFC 2217
    raw_port: int = 0  # plain TCP (socket://)
    control_port: int = 0
    en_delay: float = 0.12
    power_on: bool = True
    console_log: str | None = None


class _Conn:
    """A non-blocking TCP connection with an output queue."""

    def __init__(self, sock: socket.socket, kind: str):
        self.sock = sock
        self.kind = kind
        self.out = bytearray()
        self.inbuf = bytearray()
        self.closed = False
        self.session: Rfc2217Session | None = None

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.out += data


@dataclass
class _ChipProc:
    pid: int
    sock: socket.socket
    run: ChipRun
    frames: wire.FrameReader = field(default_factory=wire.FrameReader)
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, opts: BoardOptions):
        self.opts = opts
        self.sel = selectors.DefaultSelector()
        self.listen_serial = bind_listener(opts.host, opts.serial_port, "serial (RFC 2217)")
        self.listen_raw = bind_listener(opts.host, opts.raw_port, "serial (raw TCP)")
        self.listen_control = bind_listener(opts.host, opts.control_port, "control")
        for s, kind in ((self.listen_serial, "rfc2217"), (self.listen_raw, "raw"), (self.listen_control, "control")):
            self.sel.register(s, selectors.EVENT_READ, ("listen", kind))
        self.serial_client: _Conn | None = None
        self.control_clients: set[_Conn] = set()
        self.settings = VirtualSerialSettings(self._lines_changed, self._host_baud_changed)
        self.lines = ResetLines()
        self.powered = False
        self.chip: _ChipProc | None = None
        self.chip_paused = False
        self.chip_state = "off"  # off | reset | running | halted | crashed
        self.pending_start: float | None = None
        self.pending_download = False
        self.pending_cause = CAUSE_POWER_ON
        self.forced_download: bool | None = None
        self.cut: CutPlan | None = None
        self.wifi_up = True
        self.trace = False  # chip processes append their flash operations to the trace files (control "trace")
        self.events: deque[dict] = deque(maxlen=2000)
        # MicroPython heap use: the boot in progress and the finished ones (most recent last).
        self.heap_current: dict | None = None
        self.heap_boots: deque[dict] = deque(maxlen=100)
        self.event_seq = 0
        self.exit_requested = False
        self.console = open(opts.console_log, "ab", buffering=0) if opts.console_log else None
        self.meta = FlashMeta(meta_path(opts.chip.flash_file), opts.chip.flash_size)
        # Signals wake the selector through this pair (see install_signal_handlers).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._shut = False
        if opts.power_on:
            self.power(True)

    # -- addresses -----------------------------------------------------------------------------
    def endpoints(self) -> dict:
        host = self.opts.host
        return {
            "name": self.opts.chip.name,
            "chip": self.opts.chip.chip,
            "serial": f"rfc2217://{host}:{self.listen_serial.getsockname()[1]}",
            "socket": f"socket://{host}:{self.listen_raw.getsockname()[1]}",
            "control": f"tcp://{host}:{self.listen_control.getsockname()[1]}",
            "flash_file": self.opts.chip.flash_file,
            "flash_size": self.opts.chip.flash_size,
            "mac": ":".join(f"{b:02x}" for b in self.opts.chip.mac),
            "pid": os.getpid(),
        }

    # -- power and reset -----------------------------------------------------------------------
    def power(self, on: bool) -> None:
        if on == self.powered:
            return
        self.powered = on
        if on:
            self._record("power", on=True)
            self._release_reset(CAUSE_POWER_ON)
        else:
            self._kill_chip()
            self.pending_start = None
            self.chip_state = "off"
            self._record("power", on=False)

    def press_reset(self, download: bool = False) -> None:
        """Pulse EN as the board's reset button would (holding BOOT when ``download``)."""
        if not self.powered:
            raise RuntimeError("the board is powered off")
        self._kill_chip()
        self.chip_state = "reset"
        self.forced_download = download
        self._release_reset(CAUSE_EN)

    def _release_reset(self, cause: str) -> None:
        """EN has gone high: the chip starts after the RC delay, sampling IO0 meanwhile."""
        if not self.powered:
            return
        if self.lines.en_low and self.forced_download is None:
            self.chip_state = "reset"
            return
        self.pending_start = time.monotonic() + self.opts.en_delay
        self.pending_download = self.lines.io0_low
        self.pending_cause = cause

    def _lines_changed(self, lines: ResetLines) -> None:
        was_en_low = self.lines.en_low
        self.lines = lines
        if not self.powered:
            return
        if lines.en_low and not was_en_low:
            self._kill_chip()
            self.pending_start = None
            self.chip_state = "reset"
            self.forced_download = None
        elif was_en_low and not lines.en_low:
            self._release_reset(CAUSE_EN)
        if self.pending_start is not None and lines.io0_low:
            self.pending_download = True

    def _host_baud_changed(self, baud: int) -> None:
        pass  # read from self.settings when forwarding

    def _start_due_chip(self) -> None:
        download = self.pending_download if self.forced_download is None else self.forced_download
        self.pending_start = None
        self.forced_download = None
        self._start_chip(ChipRun(download=download, cause=self.pending_cause, cut=self.cut, wifi_up=self.wifi_up,
                                    trace=self.trace))

    def _start_chip(self, run: ChipRun) -> None:
        parent, child = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the chip process
            try:
                # it ends with the supervisor, even one that was killed (forked by its main thread)
                die_with_parent(signal.SIGKILL)
                parent.close()
                self._close_for_child()
                run_chip(self.opts.chip, child, run)
            finally:
                os._exit(70)
        child.close()
        parent.setblocking(False)
        self.chip = _ChipProc(pid, parent, run)
        self.chip_paused = False
        self.chip_state = "running"
        self.sel.register(parent, selectors.EVENT_READ, ("chip", None))
        self._record("chip-start", pid=pid, download=run.download, cause=run.cause)

    def _close_for_child(self) -> None:
        self.sel.close()
        for s in (self.listen_serial, self.listen_raw, self.listen_control):
            s.close()
        for c in list(self.control_clients) + ([self.serial_client] if self.serial_client else []):
            c.sock.close()
        if self.chip is not None:
            self.chip.sock.close()
        if self.console is not None:
            self.console.close()
        self.meta.close()
        self._wake_r.close()
        self._wake_w.close()
        signal.set_wakeup_fd(-1)

    def _kill_chip(self) -> None:
        chip = self.chip
        if chip is None:
            return
        self.chip = None
        try:
            os.kill(chip.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(chip.pid, 0)
        self._drop_chip_socket(chip)
        self._record("chip-stop", pid=chip.pid, reason="killed")

    def _drop_chip_socket(self, chip: _ChipProc) -> None:
        if not self.chip_paused:
            try:
                self.sel.unregister(chip.sock)
            except (KeyError, ValueError):
                pass
        self.chip_paused = False
        chip.sock.close()

    def _chip_exited(self, chip: _ChipProc) -> None:
        """The chip process ended by itself: decide what the hardware does next."""
        self._drop_chip_socket(chip)
        _, status = os.waitpid(chip.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self.chip = None
        reason = EXIT_NAMES.get(code, f"exit {code}")
        self._record("chip-stop", pid=chip.pid, reason=reason)
        if code == EXIT_REBOOT:
            self._start_chip(ChipRun(download=False, cause=CAUSE_SOFTWARE, cut=self.cut, wifi_up=self.wifi_up,
                                    trace=self.trace))
        elif code == EXIT_WATCHDOG:
            self._start_chip(ChipRun(download=False, cause=CAUSE_WATCHDOG, cut=self.cut, wifi_up=self.wifi_up,
                                    trace=self.trace))
        elif code == EXIT_DEEPSLEEP:
            self._start_chip(ChipRun(download=False, cause=CAUSE_DEEPSLEEP, cut=self.cut, wifi_up=self.wifi_up,
                                    trace=self.trace))
        elif code == EXIT_CUT:
            self.cut = None
            self.powered = False
            self.chip_state = "off"
            self._record("power", on=False, reason="cut")
        elif code == EXIT_HALT:
            self.chip_state = "halted"
        else:
            self.chip_state = "crashed"
            print(f"virtual board {self.opts.chip.name}: chip process failed ({reason})", file=sys.stderr)

    def _note_heap(self, event: dict) -> None:
        self.heap_current = {k: event[k] for k in ("baseline", "peak", "peak_above_baseline", "budget",
                                                   "over_budget", "peak_at") if k in event}
        if event.get("final"):
            self.heap_boots.append(self.heap_current)
            self.heap_current = None

    # -- events ---------------------------------------------------------------------------------
    def _record(self, name: str, **fields) -> None:
        self.event_seq += 1
        self.events.append({"seq": self.event_seq, "t": round(time.time(), 3), "event": name, **fields})

    # -- serial data path -------------------------------------------------------------------------
    def _from_chip(self, data: bytes) -> None:
        chip = self.chip
        if chip is None:
            return
        if not data:
            self._chip_exited(chip)
            return
        for kind, payload in chip.frames.feed(data):
            if kind == wire.CHIP_DATA:
                (baud,) = struct.unpack_from("<I", payload)
                out = payload[4:]
                if self.console is not None:
                    self.console.write(out)
                client = self.serial_client
                if client is None:
                    continue
                if client.session is not None:
                    if baud != self.settings.baudrate:
                        out = wire.garble(out)
                    out = client.session.outgoing(out)
                client.send(out)
                self._want_write(client)
            elif kind == wire.EVENT:
                event = json.loads(payload)
                name = event.pop("event")
                if name == "heap":
                    self._note_heap(event)
                self._record(name, **event)

    def _to_chip(self, data: bytes, baud: int) -> None:
        chip = self.chip
        if chip is None or not data:
            return  # a chip in reset or without power hears nothing
        try:
            chip.sock.setblocking(True)
            chip.sock.sendall(wire.pack(wire.HOST_DATA, struct.pack("<I", baud) + data))
        except OSError:
            pass
        finally:
            chip.sock.setblocking(False)

    def send_control_to_chip(self, message: dict) -> None:
        if self.chip is not None:
            self.chip.sock.setblocking(True)
            try:
                self.chip.sock.sendall(wire.pack(wire.CONTROL, json.dumps(message).encode()))
            finally:
                self.chip.sock.setblocking(False)

    # -- connections ---------------------------------------------------------------------------------
    def _accept(self, listener: socket.socket, kind: str) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if kind == "control":
            conn = _Conn(sock, "control")
            self.control_clients.add(conn)
            self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))
            return
        if self.serial_client is not None:
            # One host at a time, like a tty opened exclusively.
            sock.close()
            self._record("serial-refused", kind=kind)
            return
        conn = _Conn(sock, kind)
        self.serial_client = conn
        self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))
        if kind == "rfc2217":
            self.settings._baudrate = 115200
            conn.session = Rfc2217Session(conn.send, self.settings)
            self._want_write(conn)
        self._record("serial-open", kind=kind)

    def _close_conn(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        if conn is self.serial_client:
            self.serial_client = None
            self._throttle_chip(False)
            self._record("serial-close", kind=conn.kind)
            # Closing the port releases DTR and RTS (both high): the chip keeps running.
            if conn.session is not None:
                self._lines_changed(ResetLines(False, False))
        self.control_clients.discard(conn)

    def _want_write(self, conn: _Conn) -> None:
        if conn.closed:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        try:
            self.sel.modify(conn.sock, events, ("conn", conn))
        except (KeyError, ValueError):
            pass
        if conn is self.serial_client:
            self._throttle_chip(len(conn.out) > CLIENT_BACKLOG_LIMIT)

    def _throttle_chip(self, paused: bool) -> None:
        """Stop reading the chip while the host lags behind: the UART's flow control."""
        if self.chip is None or paused == self.chip_paused:
            return
        self.chip_paused = paused
        if paused:
            self.sel.unregister(self.chip.sock)
        else:
            self.sel.register(self.chip.sock, selectors.EVENT_READ, ("chip", None))

    def _flush(self, conn: _Conn) -> None:
        try:
            n = conn.sock.send(conn.out)
        except BlockingIOError:
            return
        except OSError:
            self._close_conn(conn)
            return
        del conn.out[:n]
        self._want_write(conn)

    def _readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_conn(conn)
            return
        if conn.kind == "control":
            conn.inbuf += data
            while b"\n" in conn.inbuf:
                line, _, rest = bytes(conn.inbuf).partition(b"\n")
                conn.inbuf = bytearray(rest)
                if line.strip():
                    from .control import handle_request

                    reply = handle_request(self, line)
                    conn.send(json.dumps(reply).encode() + b"\n")
            self._want_write(conn)
            return
        if conn.session is not None:
            payload = conn.session.incoming(data)
            self._want_write(conn)  # negotiation replies
            baud = self.settings.baudrate
        else:
            payload = data
            baud = 0  # raw TCP has no baud rate: always "matches"
        self._to_chip(payload, baud)

    # -- main loop ------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        while not self.exit_requested:
            timeout = None
            if self.pending_start is not None:
                timeout = max(0.0, self.pending_start - time.monotonic())
            for key, mask in self.sel.select(timeout):
                what, obj = key.data
                if what == "wake":
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                elif what == "listen":
                    self._accept(key.fileobj, obj)
                elif what == "chip":
                    chip = self.chip
                    if chip is None or key.fileobj is not chip.sock:
                        continue
                    try:
                        data = chip.sock.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    self._from_chip(data)
                elif what == "conn":
                    if mask & selectors.EVENT_READ and not obj.closed:
                        self._readable(obj)
                    if mask & selectors.EVENT_WRITE and not obj.closed:
                        self._flush(obj)
            if self.pending_start is not None and time.monotonic() >= self.pending_start:
                self._start_due_chip()
        self.shutdown()

    def install_signal_handlers(self) -> None:
        """SIGTERM, SIGINT and SIGHUP power the board off and stop the process."""
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.request_exit)

    def shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        self._kill_chip()
        for c in list(self.control_clients):
            try:
                c.sock.setblocking(True)
                c.sock.sendall(bytes(c.out))
            except OSError:
                pass
            self._close_conn(c)
        if self.serial_client is not None:
            self._close_conn(self.serial_client)
        for s in (self.listen_serial, self.listen_raw, self.listen_control):
            s.close()
        if self.console is not None:
            self.console.close()
        self.meta.close()

    def request_exit(self, *_args) -> None:
        self.exit_requested = True
