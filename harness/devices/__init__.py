"""Device implementations: the OTA clients the harness tests, one module each behind :class:`Device`.

``DEVICES`` maps the name a rig gives (``devices: [{kind: ...}]``) to the class:

* ``micropython``: the MicroPython OTA agent (``device_fw/micropython``), firmware (ESP32) and files;
* ``esp-idf``: the project's ESP-IDF OTA client in C (``device_fw/esp_idf``), firmware;
* ``esp-idf-anti-rollback``: the same client built with ESP-IDF's anti-rollback (secure_version 2), firmware;
* ``idf-app``: your own ESP-IDF firmware, from its build directory, firmware;
* ``esp8266-sdk``: the project's ESP8266 SDK FOTA client (``device_fw/esp8266_sdk``) on boot_v1.x, firmware.
"""

from __future__ import annotations

from .base import Capability, Device, DeviceError, Published
from .idf import (
    EspIdfAntiRollbackDevice,
    EspIdfDevice,
    FlasherArgs,
    FlasherArgsError,
    IdfAppDevice,
    IdfEvents,
    read_flasher_args,
)
from .micropython import AgentEvents, MicroPythonDevice, parse_ota_line
from .sdk import EspSdkDevice, SdkEvents

DEVICES: dict[str, type[Device]] = {cls.kind: cls for cls in (MicroPythonDevice, EspIdfDevice,
                                                                 EspIdfAntiRollbackDevice, IdfAppDevice,
                                                                 EspSdkDevice)}


def device_class(kind: str) -> type[Device]:
    try:
        return DEVICES[kind]
    except KeyError:
        raise DeviceError(f"unknown device implementation {kind!r} (known: {', '.join(DEVICES)})") from None


def make_device(spec, board, bench) -> Device:
    """The device implementation ``spec`` (a :class:`harness.rig.DeviceSpec`) on ``board``."""
    return device_class(spec.kind)(spec, board, bench)


__all__ = ["AgentEvents", "Capability", "DEVICES", "Device", "DeviceError", "EspIdfAntiRollbackDevice", "EspIdfDevice",
           "EspSdkDevice", "FlasherArgs", "FlasherArgsError", "IdfAppDevice", "IdfEvents", "MicroPythonDevice",
           "Published", "SdkEvents", "device_class", "make_device", "parse_ota_line", "read_flasher_args"]
