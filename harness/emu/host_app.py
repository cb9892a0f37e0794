"""Running a host-built app as a virtual chip's application: what the ESP-IDF and ESP8266 SDK runtimes share.

An app built for the host (``harness.emu.idf.build``, ``harness.emu.sdk8266.build``) travels inside the image it
was packed into; :func:`extract_executable` writes it out (cached by digest) and :func:`run_host_app` runs it with an
empty environment in an empty directory, wired to the chip:

* fd 0 gets what UART0 receives, fd 1 and 2 go to UART0 as they come;
* ``argv`` is ``exe req_fd rep_fd parent_pid <runtime's own arguments>``; the app makes calls to the board on the
  request pipe and reads the replies on the other (framing: ``harness/emu/hostcall/hil_call.h``), which
  :func:`run_host_app` hands to the runtime's ``dispatch`` one at a time, after forwarding what the app printed
  before the call, so the UART shows output and the effects of calls in the app's order;
* it returns the app's exit status (the runtime turns it into a reset).
"""

from __future__ import annotations

import os
import select
import struct
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable

from .idf.build import find_host_payload

OK = 0


class Reply:
    """A reply to a board call: status, then items (ints or bytes) and log lines ``(level, tag, text)``."""

    def __init__(self, status: int = OK, *items: int | bytes):
        self.status = status
        self.items = list(items)
        self.logs: list[tuple[str, str, str]] = []

    def log(self, level: str, tag: str, text: str) -> Reply:
        self.logs.append((level, tag, text))
        return self

    def encode(self) -> bytes:
        out = [struct.pack("<i", self.status)]
        for level, tag, text in self.logs:
            payload = level.encode() + tag.encode() + b"\0" + text.encode()
            out.append(b"L" + struct.pack("<I", len(payload)) + payload)
        for item in self.items:
            if isinstance(item, (bytes, bytearray)):
                out.append(b"b" + struct.pack("<I", len(item)) + bytes(item))
            else:
                out.append(b"i" + struct.pack("<q", int(item)))
        body = b"".join(out)
        return struct.pack("<I", len(body)) + body


class Fail(Exception):
    """Raised by a board call's handler: reply with ``status`` (and log lines)."""

    def __init__(self, status: int, *logs: tuple[str, str, str]):
        super().__init__(status)
        self.status = status
        self.logs = list(logs)


def decode(body: bytes) -> tuple[str, list]:
    """A call's name and arguments (ints and bytes) from its frame body."""
    name, _, rest = body.partition(b"\0")
    args: list = []
    pos = 0
    while pos < len(rest):
        kind = rest[pos:pos + 1]
        pos += 1
        if kind == b"i":
            args.append(struct.unpack_from("<q", rest, pos)[0])
            pos += 8
        else:
            (n,) = struct.unpack_from("<I", rest, pos)
            pos += 4
            args.append(rest[pos:pos + n])
            pos += n
    return name.decode(), args


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[n:]


def cache_dirs() -> list[Path]:
    """Where extracted executables go: the temporary directory, or (where that is mounted noexec) the cache."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [Path(tempfile.gettempdir()) / f"esp-ota-hil-idf-{os.getuid()}", Path(base) / "esp-ota-hil" / "idf-run"]


def extract_executable(image, image_bytes_digest: str, where: int = 0) -> Path:
    """The executable an image carries (``image.segments``) as a file, cached by the image's digest."""
    exe = find_host_payload(image.segments)
    if exe is None:
        raise ValueError("the image carries no host executable")
    path = cache_dirs()[where] / f"{image_bytes_digest}.elf"
    if path.is_file() and path.stat().st_size == len(exe):
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(exe)
    tmp.chmod(0o700)
    os.replace(tmp, path)
    return path


def run_host_app(uart, image, digest: str, args: list[str], dispatch: Callable[[bytes], Reply], *,
                 prefix: str = "hil-app-") -> int:
    """Run the executable ``image`` carries until it ends, serving its board calls; its exit status.

    Raises OSError when it cannot be started.
    """
    exe = extract_executable(image, digest)
    cwd = tempfile.TemporaryDirectory(prefix=prefix)
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe()
    argv = [str(exe), str(req_w), str(rep_r), str(os.getpid()), *args]
    try:
        try:
            proc = subprocess.Popen(argv, stdin=in_r, stdout=out_w, stderr=out_w, pass_fds=(req_w, rep_r),
                                    env={}, cwd=cwd.name, close_fds=True)
        except PermissionError:  # a temporary directory mounted noexec
            argv[0] = str(extract_executable(image, digest, where=1))
            proc = subprocess.Popen(argv, stdin=in_r, stdout=out_w, stderr=out_w, pass_fds=(req_w, rep_r),
                                    env={}, cwd=cwd.name, close_fds=True)
    except OSError:
        for fd in (req_r, req_w, rep_r, rep_w, out_r, out_w, in_r, in_w):
            os.close(fd)
        cwd.cleanup()
        raise
    for fd in (req_w, rep_r, out_w, in_r):
        os.close(fd)
    threading.Thread(target=_uart_to_app, args=(uart, in_w), name="uart-to-app", daemon=True).start()
    try:
        _serve(uart, req_r, rep_w, out_r, dispatch)
    finally:
        for fd in (req_r, rep_w):
            os.close(fd)
    code = proc.wait()
    _drain(uart, out_r)
    os.close(out_r)
    cwd.cleanup()
    return code


def _uart_to_app(uart, fd: int) -> None:
    try:
        while True:
            data = uart.read(None)
            if data:
                os.write(fd, data)
    except OSError:
        pass


def _drain(uart, out_r: int) -> None:
    while True:
        try:
            data = os.read(out_r, 65536)
        except OSError:
            return
        if not data:
            return
        uart.write(data)


def _forward_pending(uart, out_r: int) -> None:
    while select.select([out_r], [], [], 0)[0]:
        data = os.read(out_r, 65536)
        if not data:
            return
        uart.write(data)


def _serve(uart, req_r: int, rep_w: int, out_r: int, dispatch: Callable[[bytes], Reply]) -> None:
    buf = bytearray()
    out_open = True
    while True:
        fds = [req_r] + ([out_r] if out_open else [])
        ready, _, _ = select.select(fds, [], [])
        # output first: what the app printed before a call reaches the UART before what the call causes
        if out_open and out_r in ready:
            data = os.read(out_r, 65536)
            if data:
                uart.write(data)
            else:
                out_open = False
        if req_r in ready:
            chunk = os.read(req_r, 1 << 20)
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 4:
                (n,) = struct.unpack_from("<I", buf)
                if len(buf) < 4 + n:
                    break
                body = bytes(buf[4:4 + n])
                del buf[:4 + n]
                if out_open:
                    _forward_pending(uart, out_r)
                write_all(rep_w, dispatch(body).encode())
