"""The wire between the board's USB-UART bridge (supervisor) and the chip process.

One stream socket carries framed messages both ways: UART bytes tagged with the
baud rate they were sent at, and small JSON control/event messages. Tagging
each chunk with its baud rate lets both ends model a baud mismatch the way a
real UART shows it, as garbage, without racing a separate "baud changed"
message against the data.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time

HEADER = struct.Struct("<cI")
HOST_DATA = b"D"  # supervisor -> chip: bytes the host sent (payload: u32 baud + data)
CHIP_DATA = b"T"  # chip -> supervisor: bytes the chip sent (payload: u32 baud + data)
EVENT = b"E"  # chip -> supervisor: JSON event
CONTROL = b"C"  # supervisor -> chip: JSON control message

# A fixed byte permutation standing in for what a UART decodes at the wrong rate.
_GARBLE = bytes(((b * 167) + 91) & 0xFF for b in range(256))


def garble(data: bytes) -> bytes:
    """What a receiver at the wrong baud rate makes of ``data``: same length, wrong bytes."""
    return data.translate(_GARBLE)


def pack(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Incremental parser for the framed stream."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buf)
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            out.append((kind, bytes(self._buf[HEADER.size : end])))
            del self._buf[:end]
        return out


class ChipUart:
    """UART0 as the chip process sees it.

    ``baud`` is the rate the chip transmits and receives at. In ``autobaud``
    mode (the ROM loader before its first SYNC) the receiver locks onto the
    host's rate, as the ESP ROMs do.
    """

    def __init__(self, sock: socket.socket, baud: int, *, on_control=None, on_host_gone=None):
        self._sock = sock
        self.baud = baud
        self.autobaud = False
        self._rx = bytearray()
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._on_control = on_control
        self._on_host_gone = on_host_gone or (lambda: os._exit(0))
        self._interrupt_hooks: list = []
        # What runs on the chip (e.g. the MicroPython runtime) hears control messages here.
        self.control_listeners: list = []
        self._thread = threading.Thread(target=self._reader, name="uart-rx", daemon=True)
        self._thread.start()

    # -- receive ------------------------------------------------------------------------------
    def _reader(self) -> None:
        frames = FrameReader()
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._on_host_gone()
                return
            for kind, payload in frames.feed(data):
                if kind == HOST_DATA:
                    (baud,) = struct.unpack_from("<I", payload)
                    self._received(baud, payload[4:])
                elif kind == CONTROL and self._on_control is not None:
                    self._on_control(json.loads(payload))

    def _received(self, host_baud: int, data: bytes) -> None:
        if self.autobaud and host_baud:
            self.baud = host_baud
            self.autobaud = False
        if host_baud and host_baud != self.baud:
            data = garble(data)
        for hook in self._interrupt_hooks:
            data = hook(data)
            if not data:
                return
        with self._cond:
            self._rx += data
            self._cond.notify_all()

    def add_rx_hook(self, hook) -> None:
        """``hook(data) -> data`` sees received bytes first (e.g. to catch Ctrl-C)."""
        self._interrupt_hooks.append(hook)

    def read(self, timeout: float | None = None, max_bytes: int = 1 << 20) -> bytes:
        """Return whatever has arrived, waiting up to ``timeout`` (None: forever) for something."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._rx:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return b""
                self._cond.wait(remaining)
            data = bytes(self._rx[:max_bytes])
            del self._rx[: len(data)]
            return data

    def wait_input(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for received bytes without consuming them."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._rx:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def in_waiting(self) -> int:
        with self._cond:
            return len(self._rx)

    def clear_input(self) -> None:
        with self._cond:
            self._rx.clear()

    # -- transmit -----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not data:
            return
        payload = struct.pack("<I", self.baud) + data
        with self._send_lock:
            self._sock.sendall(pack(CHIP_DATA, payload))

    def write_at(self, baud: int, data: bytes) -> None:
        """Send ``data`` at a specific rate (e.g. the ESP8266 ROM's 74880 boot text)."""
        payload = struct.pack("<I", baud) + data
        with self._send_lock:
            self._sock.sendall(pack(CHIP_DATA, payload))

    def set_baud(self, baud: int) -> None:
        self.baud = baud

    def event(self, name: str, **fields) -> None:
        payload = json.dumps({"event": name, **fields}).encode()
        with self._send_lock:
            self._sock.sendall(pack(EVENT, payload))
