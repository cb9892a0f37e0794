"""LCUS relay boards of the HID kind (USB VID 0x5131): the LCUS serial frame sent as a HID output report.

These look like the CH340 LCUS boards but enumerate as HID devices. They take
the same 4-byte ``A0 <channel> <state> <sum>`` frame, written as an output
report behind hidapi's report-number byte 0 (the board uses no numbered
reports). They cannot report their relays, so :meth:`LcusHidSwitch.state` is
None. Many carry no USB serial number at all, so the reliable way to pick one
among several is its HID path (stable per physical USB port).
"""

from __future__ import annotations

from typing import Any

from ._hid import HID_ERRORS, close_quietly, describe, enumerate_devices, load_hid, open_path
from ._options import as_int, as_text, one_of
from ._serial import hex_bytes
from .base import PowerSwitch, PowerSwitchError
from .lcus import lcus_frame

VENDOR_ID = 0x5131


class LcusHidSwitch(PowerSwitch):
    """One channel of an LCUS HID relay board.

    ``path`` (``/dev/hidraw3`` with the hidraw backend, ``1-1.4:1.0`` with
    libusb) or ``serial`` (the USB serial number, for boards that have one)
    picks the board; without either, exactly one 0x5131 board must be present.
    ``product_id`` narrows the search to one product.
    """

    label = "LCUS HID relay"

    def __init__(self, channel: int = 1, path: str | None = None, serial: str | None = None,
                 product_id: int | None = None, name: str = ""):
        one_of("path", path, "serial", serial)
        self.channel = as_int(channel, "channel", 1, 8)
        self.path = None if path is None else as_text(path, "path")
        self.serial = None if serial is None else as_text(serial, "serial")
        self.product_id = None if product_id is None else as_int(product_id, "product_id", 0, 0xFFFF)
        board = self.path or (f"serial {self.serial}" if self.serial else "(the only board)")
        super().__init__(name or f"{self.path or self.serial or 'lcus-hid'}#{self.channel}")
        self._where = f"{self.label} {board} channel {self.channel}"
        self._hid = load_hid(self.label)
        self._device: Any = None

    def _open(self) -> Any:
        if self._device is None:
            path = self.path if self.path is not None else self._find()
            self._device = open_path(self._hid, path, self._where)
        return self._device

    def _find(self) -> bytes:
        found = enumerate_devices(self._hid, VENDOR_ID, self.product_id or 0, self._where)
        if self.serial is not None:
            found = [d for d in found if (d.get("serial_number") or "") == self.serial]
        if len(found) == 1:
            return found[0]["path"]
        if not found:
            raise PowerSwitchError(f"{self._where}: expected a {VENDOR_ID:04x}:* HID device, found none")
        paths = ", ".join(describe(d["path"]) for d in found)
        raise PowerSwitchError(f"{self._where}: expected one board, found {len(found)} ({paths}); "
                               f"choose one with power.path")

    def _switch(self, on: bool) -> None:
        frame = lcus_frame(self.channel, on)
        device = self._open()
        try:
            written = device.write([0x00, *frame])
        except HID_ERRORS as e:
            written, problem = -1, str(e)
        else:
            problem = f"{written} bytes written"
        # hidapi counts the report-number byte; -1 is its own failure code
        if written < len(frame) + 1:
            self.close()
            raise PowerSwitchError(f"{self._where}: sent output report {hex_bytes(frame)}, "
                                   f"expected {len(frame) + 1} bytes written: {problem}")

    def on(self) -> None:
        self._switch(True)

    def off(self) -> None:
        self._switch(False)

    def close(self) -> None:
        device, self._device = self._device, None
        close_quietly(device)
