"""KMTronic USB relay boards: an FTDI USB-UART at 9600 baud taking 3-byte frames.

``FF n 01`` switches relay n on and ``FF n 00`` off; neither is acknowledged.
Reading back differs by board (KMTronic's own command table): the one- and
two-relay boards answer ``FF n 03`` with ``FF n <state>``, the four- and
eight-relay boards answer ``FF 09 00`` with one state byte per relay. Both
are supported (``status: single`` / ``status: all``).
"""

from __future__ import annotations

from collections.abc import Callable

from ._options import as_choice, as_int, as_seconds, as_text
from ._serial import BadReply, SerialLink
from .base import PowerSwitch

STATUS_MODES = ("single", "all", "none")


def parse_single(relay: int) -> Callable[[bytes], bool | None]:
    """Reply to ``FF n 03``: ``FF n 00|01``."""

    def parse(received: bytes) -> bool | None:
        if len(received) < 3:
            return None
        head, number, state = received[:3]
        if head != 0xFF or number != relay or state not in (0, 1) or len(received) > 3:
            raise BadReply(f"not FF {relay:02X} 00/01")
        return state == 1

    return parse


def parse_all(relay: int, relays: int) -> Callable[[bytes], bool | None]:
    """Reply to ``FF 09 00``: one 00/01 byte per relay, relay 1 first."""

    def parse(received: bytes) -> bool | None:
        if any(b not in (0, 1) for b in received) or len(received) > relays:
            raise BadReply(f"not {relays} bytes of 00/01")
        if len(received) < relays:
            return None
        return received[relay - 1] == 1

    return parse


class KmtronicSwitch(PowerSwitch):
    """One relay of a KMTronic USB relay board.

    ``port`` is a pyserial URL; ``channel`` the relay, 1 to ``relays`` (the
    board size); ``status`` how the board is read: ``single`` (``FF n 03``,
    the default), ``all`` (``FF 09 00``) or ``none`` (:meth:`state` is None);
    ``timeout`` bounds the wait for that answer.
    """

    label = "KMTronic relay"

    def __init__(self, port: str, channel: int = 1, status: str = "single", relays: int = 8,
                 baudrate: int = 9600, timeout: float = 1.0, name: str = ""):
        self.port = as_text(port, "port")
        self.relays = as_int(relays, "relays", 1, 8)
        self.channel = as_int(channel, "channel", 1, self.relays)
        self.status = as_choice(status, "status", STATUS_MODES)
        super().__init__(name or f"{self.port}#{self.channel}")
        self._link = SerialLink(self.port, where=f"{self.label} {self.port} relay {self.channel}",
                                baudrate=as_int(baudrate, "baudrate", 50, 4_000_000),
                                timeout=as_seconds(timeout, "timeout"))

    def on(self) -> None:
        self._link.send(bytes([0xFF, self.channel, 0x01]))

    def off(self) -> None:
        self._link.send(bytes([0xFF, self.channel, 0x00]))

    def state(self) -> bool | None:
        if self.status == "single":
            return self._link.query(bytes([0xFF, self.channel, 0x03]),
                                    f"FF {self.channel:02X} 00 or FF {self.channel:02X} 01",
                                    parse_single(self.channel))
        if self.status == "all":
            return self._link.query(bytes([0xFF, 0x09, 0x00]), f"{self.relays} status bytes of 00/01",
                                    parse_all(self.channel, self.relays))
        return None

    def close(self) -> None:
        self._link.close()
