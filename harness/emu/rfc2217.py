"""The virtual board's USB-UART bridge, exported as an RFC 2217 server (and raw TCP).

pyserial's :class:`serial.rfc2217.PortManager` does the Telnet/RFC 2217
negotiation; this module gives it a serial-port object whose DTR/RTS/baud
settings drive the virtual board instead of a tty, and a fast path around its
byte-at-a-time filter (firmware images are megabytes).

DTR and RTS reach the chip through the two-transistor auto-reset circuit every
ESP DevKit carries: EN (reset) is pulled low only while RTS is asserted and DTR
is not, IO0 (boot strap) only while DTR is asserted and RTS is not. Both
asserted, what every terminal does on open, leaves the chip alone. EN has an
RC delay: the chip comes out of reset ``en_delay`` seconds after EN is
released and boots into the UART download mode if IO0 was pulled low during
that window. The window absorbs the tens of milliseconds between the two
SET_CONTROL messages of esptool's ClassicReset over RFC 2217, which a real
DevKit behind ``esp_rfc2217_server`` gets by replaying the sequence locally.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Callable

from serial import rfc2217
from serial.rfc2217 import IAC, M_NORMAL

IAC_BYTE = IAC[0]


@dataclass
class ResetLines:
    """Logical DTR/RTS (True = asserted = pin low), as the host sets them."""

    dtr: bool = False
    rts: bool = False

    @property
    def en_low(self) -> bool:
        return self.rts and not self.dtr

    @property
    def io0_low(self) -> bool:
        return self.dtr and not self.rts


class VirtualSerialSettings:
    """The serial-port object PortManager configures; changes are reported upward."""

    def __init__(self, on_lines: Callable[[ResetLines], None], on_baud: Callable[[int], None]):
        self._on_lines = on_lines
        self._on_baud = on_baud
        self.lines = ResetLines()
        self._baudrate = 115200
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False
        # Inputs a USB-UART bridge reports; nothing drives them on a DevKit.
        self.cts = self.dsr = self.ri = self.cd = False

    @property
    def baudrate(self) -> int:
        return self._baudrate

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        if value <= 0:
            raise ValueError(f"invalid baud rate {value}")
        self._baudrate = value
        self._on_baud(value)

    @property
    def dtr(self) -> bool:
        return self.lines.dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self.lines = ResetLines(bool(value), self.lines.rts)
        self._on_lines(self.lines)

    @property
    def rts(self) -> bool:
        return self.lines.rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self.lines = ResetLines(self.lines.dtr, bool(value))
        self._on_lines(self.lines)

    def reset_input_buffer(self) -> None:
        # Nothing is buffered between the chip and the network here.
        pass

    def reset_output_buffer(self) -> None:
        pass


class Rfc2217Session:
    """One client's Telnet/RFC 2217 session on top of pyserial's PortManager."""

    def __init__(self, send: Callable[[bytes], None], settings: VirtualSerialSettings):
        self._send = send
        self.settings = settings
        self.manager = rfc2217.PortManager(settings, self)

    # PortManager calls this to send negotiation replies.
    def write(self, data: bytes) -> None:
        self._send(bytes(data))

    def incoming(self, data: bytes) -> bytes:
        """Strip Telnet/RFC 2217 commands from ``data`` and return the serial payload."""
        m = self.manager
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            if m.mode == M_NORMAL and m.suboption is None:
                j = data.find(IAC, i)
                if j < 0:
                    out += data[i:]
                    break
                out += data[i:j]
                i = j
            for b in m.filter(data[i : i + 1]):
                out += b
            i += 1
        return bytes(out)

    @staticmethod
    def outgoing(data: bytes) -> bytes:
        """Escape serial payload for the Telnet stream."""
        return data.replace(IAC, IAC + IAC)


def bind_listener(host: str, port: int, what: str) -> socket.socket:
    """Listen on host:port, or raise ValueError with a one-line reason."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        s.close()
        if e.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            raise ValueError(f"{what} port {host}:{port} is busy (another board or program is using it)") from None
        raise ValueError(f"cannot listen on {host}:{port} for the {what} port: {e.strerror}") from None
    s.listen(4)
    s.setblocking(False)
    return s
