"""dcttech "USBRelayN" HID relay boards (USB 16c0:05df, V-USB firmware).

Commands are 8-byte feature reports without a report id: ``FF n`` switches
relay n on, ``FD n`` off. Reading the feature report gives 8 bytes: bytes 0-4
are the board's own ASCII id ("serial") and byte 7 holds one bit per relay
(bit n-1 = relay n). Every board reports the same USB serial number, so a
board is chosen by that 5-character feature-report id or by its HID path,
never by the USB serial. After a switch the driver reads the bitmask back,
which is what makes a silently ignored command visible.
"""

from __future__ import annotations

from typing import Any

from ._hid import HID_ERRORS, close_quietly, describe, enumerate_devices, load_hid, open_path
from ._options import as_int, as_text, one_of
from ._serial import hex_bytes
from .base import PowerSwitch, PowerSwitchConfigError, PowerSwitchError

VENDOR_ID = 0x16C0
PRODUCT_ID = 0x05DF
PRODUCT_PREFIX = "USBRelay"
_ON, _OFF = 0xFF, 0xFD
_REPORT_LEN = 8


def feature_data(report: list[int]) -> bytes:
    """The 8 data bytes of a GET_FEATURE answer.

    hidapi puts the report number (0 here) in front of the data, so a
    9-byte answer carries it; some backends return the 8 bytes alone.
    """
    data = bytes(report)
    if len(data) == _REPORT_LEN + 1:
        return data[1:]
    if len(data) == _REPORT_LEN:
        return data
    raise ValueError(f"a feature report of {len(data)} bytes")


def board_id(data: bytes) -> str:
    """Bytes 0-4: the id the board was given with ``FA``; NUL-padded when shorter."""
    return data[:5].rstrip(b"\0").decode("ascii", errors="replace")


class UsbRelayHidSwitch(PowerSwitch):
    """One relay of a dcttech USBRelay1/2/4/8 HID board.

    ``serial`` is the board's 5-character id from its feature report (what
    ``usbrelay`` prints), ``path`` its HID path (``/dev/hidraw2``, libusb's
    ``1-1.3:1.0``); without either, exactly one such board must be present.
    ``channel`` is checked against the N in the "USBRelayN" product name.
    """

    label = "USBRelay HID"

    def __init__(self, channel: int = 1, serial: str | None = None, path: str | None = None, name: str = ""):
        one_of("path", path, "serial", serial)
        self.channel = as_int(channel, "channel", 1, 8)
        self.serial = None if serial is None else as_text(serial, "serial")
        self.path = None if path is None else as_text(path, "path")
        board = f"serial {self.serial}" if self.serial is not None else (self.path or "(the only board)")
        super().__init__(name or f"{self.serial or self.path or 'usbrelay'}#{self.channel}")
        self._where = f"{self.label} {board} relay {self.channel}"
        self._bit = 1 << (self.channel - 1)
        self._hid = load_hid(self.label)
        self._device: Any = None

    # -- finding the board -----------------------------------------------------------------------------------

    def _open(self) -> Any:
        if self._device is None:
            boards = [d for d in enumerate_devices(self._hid, VENDOR_ID, PRODUCT_ID, self._where)
                      if str(d.get("product_string") or "").startswith(PRODUCT_PREFIX)]
            if self.path is not None:
                device = open_path(self._hid, self.path, self._where)
                entry = next((d for d in boards if describe(d["path"]) == self.path), None)
            else:
                device, entry = self._find(boards)
            if entry is not None:
                self._check_relay_count(entry, device)
            self._device = device
        return self._device

    def _find(self, boards: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
        if self.serial is None and len(boards) == 1:
            return open_path(self._hid, boards[0]["path"], self._where), boards[0]
        seen = []
        for entry in boards:
            device = open_path(self._hid, entry["path"], self._where)
            try:
                found = board_id(feature_data(device.get_feature_report(0, _REPORT_LEN + 1)))
            except HID_ERRORS:
                found = f"? at {describe(entry['path'])}"
            if self.serial is not None and found == self.serial:
                return device, entry
            seen.append(found)
            close_quietly(device)
        if self.serial is None:
            raise PowerSwitchError(f"{self._where}: expected one board, found {len(boards)} "
                                   f"(ids: {', '.join(seen) or 'none'}); choose one with power.serial")
        raise PowerSwitchError(f"{self._where}: expected a board with id {self.serial!r}, "
                               f"found ids: {', '.join(seen) or 'none'}")

    def _check_relay_count(self, entry: dict[str, Any], device: Any) -> None:
        """A board named USBRelay2 has no relay 4: say so rather than let the command vanish."""
        product = str(entry.get("product_string") or "")
        digits = product[len(PRODUCT_PREFIX):]
        if digits.isdigit() and self.channel > int(digits):
            close_quietly(device)
            raise PowerSwitchConfigError(f"power.channel: expected an integer 1..{digits} "
                                         f"({self._where} is a {product}), got {self.channel}")

    # -- switching ---------------------------------------------------------------------------------------------

    def _read_mask(self, sent: str) -> int:
        device = self._open()
        try:
            return feature_data(device.get_feature_report(0, _REPORT_LEN + 1))[7]
        except HID_ERRORS as e:
            self.close()
            raise PowerSwitchError(f"{self._where}: {sent}, expected an 8-byte feature report: {e}") from None

    def _switch(self, on: bool) -> None:
        command = bytes([_ON if on else _OFF, self.channel, 0, 0, 0, 0, 0, 0])
        sent = f"sent feature report {hex_bytes(command)}"
        device = self._open()
        try:
            device.send_feature_report([0x00, *command])
        except HID_ERRORS as e:
            self.close()
            raise PowerSwitchError(f"{self._where}: {sent}, expected it accepted: {e}") from None
        # the board never refuses a command; reading the relays back is the only check that it took effect
        mask = self._read_mask(sent)
        if bool(mask & self._bit) != on:
            raise PowerSwitchError(f"{self._where}: {sent}, expected relay {self.channel} "
                                   f"{'on' if on else 'off'}, the board reports state byte {mask:02X}")

    def on(self) -> None:
        self._switch(True)

    def off(self) -> None:
        self._switch(False)

    def state(self) -> bool | None:
        return bool(self._read_mask("read the feature report") & self._bit)

    def close(self) -> None:
        device, self._device = self._device, None
        close_quietly(device)
