"""Relay boards driven by an FTDI FT245R in bit-bang mode (0403:6001, "FT245R USB FIFO").

The eight data pins D0-D7 drive the relays directly: relay n is bit n-1 of the
port byte. A bit-bang write sets all eight pins at once, so a switch reads the
pins first and changes only its own bit; the other relays (other boards under
test) keep their state. Reading the pins back also gives
:meth:`Ft245rSwitch.state`.

Opening the chip in bit-bang mode resets it, which drops every relay on the
board for a moment (the same glitch as while the host enumerates it). The
switches of one board therefore share one open handle per process: the board
is opened once, on first use, not again each time another relay is used.

The FT245R shares its USB id with the FT232R USB-UART found on some ESP boards
and adapters; putting the wrong one into bit-bang mode would take a board's
console away. That is why a device must be named by ``url`` or ``serial``:
there is deliberately no "first FTDI device" default.
"""

from __future__ import annotations

import threading
from typing import Any

from ._options import as_bool, as_int, as_text, one_of
from .base import PowerSwitch, PowerSwitchConfigError, PowerSwitchError, missing_library


def _load_pyftdi(label: str) -> tuple[Any, tuple[type[BaseException], ...]]:
    """``pyftdi.ftdi.Ftdi`` and what pyftdi raises: FtdiError/USBError (OSError), ValueError (bad URL,
    no libusb backend), UsbToolsError (no such device)."""
    try:
        from pyftdi.ftdi import Ftdi
        from pyftdi.usbtools import UsbToolsError
    except ImportError as e:
        raise missing_library(label, "pyftdi", e) from None
    return Ftdi, (OSError, ValueError, UsbToolsError)


class _Board:
    """One FT245R in bit-bang mode, shared by the switches of its relays within this process."""

    def __init__(self, url: str):
        self.url = url
        self.lock = threading.Lock()  # a read-modify-write of the port byte must not interleave
        self.users = 0
        self.ftdi: Any = None


_boards: dict[str, _Board] = {}
_boards_lock = threading.Lock()


class Ft245rSwitch(PowerSwitch):
    """One relay of an FT245R bit-bang relay board.

    ``url`` is a pyftdi URL (``ftdi://ftdi:232r:A50285BI/1``) or ``serial`` the
    chip's USB serial number; ``channel`` the relay, 1-8 = pin D0-D7;
    ``invert`` is for boards whose relays close on a low pin.
    """

    label = "FT245R relay"

    def __init__(self, channel: int = 1, url: str | None = None, serial: str | None = None, invert: bool = False,
                 name: str = ""):
        one_of("url", url, "serial", serial)
        if url is not None:
            self.url = as_text(url, "url")
        elif serial is not None:
            self.url = f"ftdi://ftdi:232r:{as_text(serial, 'serial')}/1"
        else:
            # an FT245R shares its USB id with FT232R UARTs: the first FTDI device found is never assumed
            raise PowerSwitchConfigError("power.url: missing, kind 'ft245r' needs it (or power.serial)")
        self.channel = as_int(channel, "channel", 1, 8)
        self.invert = as_bool(invert, "invert")
        super().__init__(name or f"{self.url}#{self.channel}")
        self._bit = 1 << (self.channel - 1)
        self._where = f"{self.label} {self.url} relay {self.channel}"
        self._ftdi_class, self._errors = _load_pyftdi(self.label)
        self._board: _Board | None = None

    def _attach(self) -> _Board:
        with _boards_lock:
            board = self._board or _boards.setdefault(self.url, _Board(self.url))
            if board.ftdi is None:
                ftdi = self._ftdi_class()
                try:
                    ftdi.open_bitbang_from_url(self.url, direction=0xFF)
                except self._errors as e:
                    if board.users == 0:
                        _boards.pop(self.url, None)
                    raise PowerSwitchError(f"{self._where}: cannot open in bit-bang mode: {e}") from None
                board.ftdi = ftdi
            if self._board is None:
                board.users += 1
                self._board = board
        return board

    def _fail(self, doing: str, error: BaseException) -> PowerSwitchError:
        # a failed handle is useless to every relay of the board: drop it so the next use reopens
        board = self._board
        if board is not None:
            with _boards_lock:
                ftdi, board.ftdi = board.ftdi, None
                _close_quietly(ftdi, self._errors)
        return PowerSwitchError(f"{self._where}: {doing}: {error}")

    def _pins(self, board: _Board) -> int:
        try:
            return board.ftdi.read_pins() & 0xFF
        except self._errors as e:
            raise self._fail("read the pins, expected the port byte", e) from None

    def _switch(self, on: bool) -> None:
        board = self._attach()
        high = on != self.invert
        with board.lock:
            pins = self._pins(board)
            value = (pins | self._bit) if high else (pins & ~self._bit)
            try:
                board.ftdi.write_data(bytes([value]))
            except self._errors as e:
                raise self._fail(f"sent port byte {value:02X}, expected it written", e) from None
            readback = self._pins(board)
        if bool(readback & self._bit) != high:
            raise PowerSwitchError(f"{self._where}: sent port byte {value:02X}, expected pin D{self.channel - 1} "
                                   f"{'high' if high else 'low'}, read back {readback:02X}")

    def on(self) -> None:
        self._switch(True)

    def off(self) -> None:
        self._switch(False)

    def state(self) -> bool | None:
        board = self._attach()
        with board.lock:
            return bool(self._pins(board) & self._bit) != self.invert

    def close(self) -> None:
        board, self._board = self._board, None
        if board is None:
            return
        with _boards_lock:
            board.users -= 1
            if board.users == 0:
                _boards.pop(board.url, None)
                ftdi, board.ftdi = board.ftdi, None
                _close_quietly(ftdi, self._errors)


def _close_quietly(ftdi: Any, errors: tuple[type[BaseException], ...]) -> None:
    if ftdi is None:
        return
    try:
        # freeze: a plain close resets the chip out of bit-bang mode, which
        # floats the pins and drops every relay on the board
        ftdi.close(freeze=True)
    except errors:
        pass  # unplugged already
