"""Numato Lab USB relay modules: a CDC-ACM serial console that speaks short text commands.

Commands end with ``\\r``: ``relay on N``, ``relay off N``, ``relay read N``.
The module echoes what it receives, then prints the answer (``on``/``off`` for
a read) and a ``>`` prompt. Relays are numbered from 0 as on the board; relays
10 and up are addressed by letters (10 = ``A``, 11 = ``B``, ...). The echo is
what tells the driver a command reached the module, so every command, not just
reads, waits for it and for the prompt.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from ._options import as_int, as_seconds, as_text
from ._serial import BadReply, SerialLink, text_bytes
from .base import PowerSwitch

_MAX_RELAY = 31  # the 32-relay modules go up to 'V'


def numato_relay_id(relay: int) -> str:
    """The relay's name in commands: digits below 10, then letters."""
    return str(relay) if relay < 10 else string.ascii_uppercase[relay - 10]


def _answer(received: bytes, command: str) -> list[str] | None:
    """The lines between the echoed command and the prompt; None until the prompt has arrived.

    Waiting for the prompt consumes the whole answer, so no part of it is left
    over to be mistaken for the start of the next one.
    """
    text = received.decode("ascii", errors="replace")
    at = text.find(command)
    if at < 0:
        if ">" in text:
            raise BadReply("the module did not echo the command")
        return None
    rest = text[at + len(command):]
    if ">" not in rest:
        return None
    return [line.strip() for line in re.split(r"[\r\n]+", rest.partition(">")[0]) if line.strip()]


def parse_ack(command: str) -> Callable[[bytes], bool | None]:
    """Complete once the echo and the prompt have arrived."""

    def parse(received: bytes) -> bool | None:
        lines = _answer(received, command)
        if lines is None:
            return None
        if lines:
            raise BadReply(f"the module answered {lines[0]!r}")
        return True

    return parse


def parse_read(command: str) -> Callable[[bytes], bool | None]:
    """``on``/``off`` between the echo and the prompt."""

    def parse(received: bytes) -> bool | None:
        lines = _answer(received, command)
        if lines is None:
            return None
        if lines and lines[0].lower() in ("on", "off"):
            return lines[0].lower() == "on"
        raise BadReply(f"{lines[0]!r} is not on/off" if lines else "nothing between the echo and the prompt")

    return parse


class NumatoSwitch(PowerSwitch):
    """One relay of a Numato Lab USB relay module (1 to 32 relays).

    ``port`` is the module's CDC-ACM port as a pyserial URL; ``channel`` the
    relay number as printed on the board, from 0; ``timeout`` bounds the wait
    for the echo and the answer. The module ignores the baud rate, which only
    matters for ``rfc2217://`` bridges.
    """

    label = "Numato relay"

    def __init__(self, port: str, channel: int = 0, baudrate: int = 19200, timeout: float = 1.0, name: str = ""):
        self.port = as_text(port, "port")
        self.channel = as_int(channel, "channel", 0, _MAX_RELAY)
        self.relay_id = numato_relay_id(self.channel)
        super().__init__(name or f"{self.port}#{self.relay_id}")
        self._link = SerialLink(self.port, where=f"{self.label} {self.port} relay {self.relay_id}",
                                baudrate=as_int(baudrate, "baudrate", 50, 4_000_000),
                                timeout=as_seconds(timeout, "timeout"), show_sent=text_bytes, show_reply=text_bytes)

    def _command(self, verb: str, parse: Callable[[str], Callable[[bytes], bool | None]], expected: str) -> bool:
        command = f"relay {verb} {self.relay_id}"
        return self._link.query(f"{command}\r".encode("ascii"), expected, parse(command))

    def on(self) -> None:
        self._command("on", parse_ack, "the command echoed, then the prompt")

    def off(self) -> None:
        self._command("off", parse_ack, "the command echoed, then the prompt")

    def state(self) -> bool | None:
        return self._command("read", parse_read, "the echo, 'on' or 'off', then the prompt")

    def close(self) -> None:
        self._link.close()
