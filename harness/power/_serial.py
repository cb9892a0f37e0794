"""A lazily opened serial port for relay boards, whose errors name the port and the exchange.

Relay boards hang off the same USB hubs as the boards they power, so their port
can vanish and re-enumerate at any time. The port is therefore opened on first
use, closed after any error and reopened by the next command, rather than kept
in a dead state. Every failure becomes one :class:`PowerSwitchError` line that
says which device, what was sent and what answer was expected; pyserial's own
exceptions never escape.

The port is opened with :func:`serial.serial_for_url`, so a plain device path,
a ``/dev/serial/by-id/...`` link and a remote ``rfc2217://host:port`` all work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import serial

from .base import PowerSwitchError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: one read waits this long before the deadline is checked again: short, so an
#: answer is seen promptly without changing the port's timeout for every call
_POLL_S = 0.02


class BadReply(Exception):
    """Raised by a reply parser when the bytes so far can never become a valid answer."""


def hex_bytes(data: bytes) -> str:
    """``A0 01 01 A2``: how relay datasheets write frames, so errors can be compared with them."""
    return data.hex(" ").upper() if data else "nothing"


def text_bytes(data: bytes) -> str:
    """Text as a Python literal, so ``\\r`` and stray bytes stay visible."""
    return repr(data.decode("ascii", errors="backslashreplace")) if data else "nothing"


class SerialLink:
    """One relay board's serial port: open on demand, send a command, optionally collect the answer.

    ``where`` starts every message (``"LCUS relay /dev/ttyUSB0 channel 2"``);
    ``show_sent``/``show_reply`` render bytes for messages (hex for binary
    frames, text for the boards that talk text).
    """

    def __init__(self, url: str, *, where: str, baudrate: int, timeout: float,
                 show_sent: Callable[[bytes], str] = hex_bytes, show_reply: Callable[[bytes], str] = hex_bytes):
        self.url = url
        self.where = where
        self.baudrate = baudrate
        self.timeout = timeout
        self.show_sent = show_sent
        self.show_reply = show_reply
        self._port: serial.SerialBase | None = None

    def _open(self) -> serial.SerialBase:
        if self._port is None:
            try:
                self._port = serial.serial_for_url(
                    self.url, baudrate=self.baudrate, bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                    stopbits=serial.STOPBITS_ONE, timeout=_POLL_S, write_timeout=self.timeout)
            except (serial.SerialException, OSError, ValueError) as e:
                raise PowerSwitchError(f"{self.where}: cannot open serial port {self.url}: {one_line(e)}") from None
        return self._port

    def send(self, command: bytes) -> None:
        """Send a command the board does not answer."""
        self._write(command, "it sent")

    def query(self, command: bytes, expected: str, parse: Callable[[bytes], T | None]) -> T:
        """Send ``command``, then read until ``parse`` returns a value or the timeout passes.

        ``parse`` gets everything received so far and returns None while more is
        needed, a value once the answer is complete, or raises :class:`BadReply`.
        """
        port = self._write(command, expected)
        try:
            return self._collect(port, parse, self.show_sent(command), expected)
        except (serial.SerialException, OSError) as e:
            raise self._failed(command, expected, e) from None

    def _write(self, command: bytes, expected: str) -> serial.SerialBase:
        port = self._open()
        try:
            # an answer nobody read (a late reply, boot noise) must not pass for this one
            port.reset_input_buffer()
            port.write(command)
            port.flush()  # the bytes are on the wire before any hold-off starts
        except (serial.SerialException, OSError) as e:
            raise self._failed(command, expected, e) from None
        log.debug("%s: sent %s", self.where, self.show_sent(command))
        return port

    def _failed(self, command: bytes, expected: str, error: BaseException) -> PowerSwitchError:
        self.close()
        return PowerSwitchError(f"{self.where}: sent {self.show_sent(command)}, expected {expected}: "
                                f"{one_line(error)}")

    def _collect(self, port: serial.SerialBase, parse: Callable[[bytes], T | None], sent: str, expected: str) -> T:
        received = bytearray()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            chunk = port.read(max(1, port.in_waiting))
            if not chunk:
                continue
            received += chunk
            try:
                value = parse(bytes(received))
            except BadReply as e:
                raise PowerSwitchError(f"{self.where}: sent {sent}, expected {expected}, "
                                       f"got {self.show_reply(bytes(received))} ({e})") from None
            if value is not None:
                log.debug("%s: got %s", self.where, self.show_reply(bytes(received)))
                return value
        if received:
            problem = f"got only {self.show_reply(bytes(received))} within {self.timeout:g} s"
        else:
            problem = f"no answer within {self.timeout:g} s"
        raise PowerSwitchError(f"{self.where}: sent {sent}, expected {expected}: {problem}")

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass  # the device is already gone; nothing left to release


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
