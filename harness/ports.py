"""Finding a bench board's serial port from the rig's selector.

Selectors (rig ``port:``): ``path`` (as is), ``url`` (rfc2217:// or socket://, as is),
``by_id`` (a /dev/serial/by-id name: stable across reboots and re-plugging), ``location``
(the USB path, for identical adapters), ``serial`` (the adapter's USB serial number), and
``mac`` (the chip's own MAC, read with esptool from each candidate port: the last resort
when adapters cannot be told apart). A board powered through its USB cable loses its port
while off; :func:`resolve_port` waits for it to come back.
"""

from __future__ import annotations

import os
import time

from serial.tools import list_ports

from .errors import SerialPortFailure

BY_ID = "/dev/serial/by-id"


class PortError(SerialPortFailure, RuntimeError):
    """No port matches a board's selector; the message names the selector and what was found."""


def _candidates() -> list:
    return sorted(list_ports.comports(), key=lambda p: p.device)


def _describe(ports: list) -> str:
    if not ports:
        return "no serial ports are present"
    return "present: " + ", ".join(f"{p.device} (location {p.location}, serial {p.serial_number})" for p in ports)


def _find_once(kind: str, value: str, chip: str | None) -> str | None:
    if kind in ("path", "url"):
        if kind == "path" and not os.path.exists(value):
            return None
        return value
    if kind == "by_id":
        path = value if value.startswith("/") else os.path.join(BY_ID, value)
        return path if os.path.exists(path) else None
    ports = _candidates()
    if kind == "location":
        hits = [p.device for p in ports if p.location == value]
    elif kind == "serial":
        hits = [p.device for p in ports if p.serial_number == value]
    elif kind == "mac":
        hits = [p.device for p in ports if _mac_of(p.device, chip) == value.lower()]
    else:
        raise PortError(f"unknown port selector {kind!r}")
    if len(hits) > 1:
        raise PortError(f"port selector {kind}={value!r} matches several ports: {', '.join(hits)}")
    return hits[0] if hits else None


def _mac_of(device: str, chip: str | None) -> str | None:
    from .flashing import Flasher, FlashingError

    try:
        with Flasher(device, chip=chip, stub=False, baud=115200, after="hard-reset", connect_attempts=1) as f:
            return ":".join(f"{b:02x}" for b in f.esp.read_mac())
    except (FlashingError, Exception):
        return None


def resolve_port(port_spec, board_spec=None, timeout: float = 10.0) -> str:
    """The device path or URL for ``port_spec`` (kind, value), waiting up to ``timeout`` for it to appear."""
    kind, value = port_spec.kind, str(port_spec.value)
    chip = getattr(board_spec, "chip", None)
    name = getattr(board_spec, "name", "board")
    deadline = time.monotonic() + timeout
    while True:
        found = _find_once(kind, value, chip)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise PortError(f"serial port of {name}: nothing matches {kind}={value!r} after {timeout:.0f} s; "
                            f"{_describe(_candidates())}")
        time.sleep(0.25)
