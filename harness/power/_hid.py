"""The boundary to the ``hid`` module of the ``hidapi`` package, shared by the HID relay drivers.

Only a few calls are used: ``hid.enumerate(vid, pid)`` returning dicts with
``path``/``serial_number``/``product_string``, and ``hid.device()`` objects
with ``open_path``, ``write``, ``send_feature_report``, ``get_feature_report``
and ``close``. ``hid`` is imported when a HID switch is created, not when the
harness starts, so benches without HID relays (and CI) do not need it.
"""

from __future__ import annotations

from typing import Any

from .base import PowerSwitchError, missing_library

#: what hidapi raises: OSError for I/O failures, ValueError for a closed or unopened handle
HID_ERRORS = (OSError, ValueError)


def load_hid(label: str) -> Any:
    try:
        import hid  # type: ignore[import-not-found]
    except ImportError as e:
        raise missing_library(label, "hidapi", e) from None
    return hid


def describe(path: str | bytes) -> str:
    return path.decode(errors="replace") if isinstance(path, bytes) else path


def open_path(hid: Any, path: str | bytes, where: str) -> Any:
    device = hid.device()
    try:
        # hidapi wants bytes paths; rig files give strings
        device.open_path(path if isinstance(path, bytes) else path.encode())
    except HID_ERRORS as e:
        raise PowerSwitchError(f"{where}: cannot open HID device {describe(path)}: {e}") from None
    return device


def close_quietly(device: Any) -> None:
    if device is None:
        return
    try:
        device.close()
    except HID_ERRORS:
        pass  # already unplugged


def enumerate_devices(hid: Any, vendor_id: int, product_id: int, where: str) -> list[dict[str, Any]]:
    try:
        return list(hid.enumerate(vendor_id, product_id))
    except HID_ERRORS as e:
        raise PowerSwitchError(f"{where}: cannot list HID devices {vendor_id:04x}:{product_id:04x}: {e}") from None
