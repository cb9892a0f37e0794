"""LCUS-1/2/4/8 USB relay boards: a CH340 USB-UART (1a86:7523) in front of a small MCU.

The boards take a 4-byte frame at 9600 8N1: ``A0 <channel> <state> <sum>`` with
``sum = (0xA0 + channel + state) & 0xFF`` (channel 1 on is ``A0 01 01 A2``).
They never acknowledge a frame, so on/off can only fail on the port itself.
The multi-channel boards answer a single ``FF`` byte with one text line per
channel (``CH1:OFF \\r\\n`` ...); the single-channel LCUS-1 answers nothing,
so :meth:`LcusSwitch.state` asks only when the rig says how many channels the
board has.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._options import as_int, as_seconds, as_text, config_error
from ._serial import BadReply, SerialLink, text_bytes
from .base import PowerSwitch

START = 0xA0
STATUS_QUERY = b"\xff"
BOARD_SIZES = (1, 2, 4, 8)
_STATUS_LINE = re.compile(rb"^CH(\d):\s*(ON|OFF)$", re.IGNORECASE)


def lcus_frame(channel: int, on: bool) -> bytes:
    """The 4-byte switching frame; a wrong checksum makes the board ignore it silently."""
    state = 1 if on else 0
    return bytes([START, channel, state, (START + channel + state) & 0xFF])


def parse_status(channel: int) -> Callable[[bytes], bool | None]:
    """A parser for the answer to ``FF`` that returns the state of ``channel``."""

    def parse(received: bytes) -> bool | None:
        *complete, _partial = received.split(b"\n")
        for raw in complete:
            line = raw.strip(b"\r \t\0")
            if not line:
                continue
            match = _STATUS_LINE.match(line)
            if match is None:
                raise BadReply(f"{line.decode(errors='backslashreplace')!r} is not a CHn:ON/OFF line")
            if int(match.group(1)) == channel:
                return match.group(2).upper() == b"ON"
        return None

    return parse


class LcusSwitch(PowerSwitch):
    """One channel of an LCUS-1/2/4/8 serial relay board.

    ``port`` is a pyserial URL (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``,
    ``rfc2217://host:port``); ``channel`` the relay as printed on the board;
    ``channels`` the board size (the N of LCUS-N), which enables :meth:`state`
    on the multi-channel boards; ``timeout`` bounds the wait for that answer.
    """

    label = "LCUS relay"

    def __init__(self, port: str, channel: int = 1, channels: int | None = None, baudrate: int = 9600,
                 timeout: float = 1.0, name: str = ""):
        self.port = as_text(port, "port")
        self.channel = as_int(channel, "channel", 1, 8)
        self.channels = None if channels is None else as_int(channels, "channels", 1, 8)
        if self.channels is not None:
            if self.channels not in BOARD_SIZES:
                raise config_error("channels", "1, 2, 4 or 8 (the N of LCUS-N)", channels)
            if self.channel > self.channels:
                raise config_error("channel", f"an integer 1..{self.channels} (power.channels)", channel)
        super().__init__(name or f"{self.port}#{self.channel}")
        self._link = SerialLink(self.port, where=f"{self.label} {self.port} channel {self.channel}",
                                baudrate=as_int(baudrate, "baudrate", 50, 4_000_000),
                                timeout=as_seconds(timeout, "timeout"), show_reply=text_bytes)

    def on(self) -> None:
        self._link.send(lcus_frame(self.channel, True))

    def off(self) -> None:
        self._link.send(lcus_frame(self.channel, False))

    def state(self) -> bool | None:
        if self.channels is None or self.channels == 1:
            return None
        return self._link.query(STATUS_QUERY, f"a 'CH{self.channel}:ON' or 'CH{self.channel}:OFF' line",
                                parse_status(self.channel))

    def close(self) -> None:
        self._link.close()

