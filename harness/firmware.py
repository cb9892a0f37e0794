"""Firmware for the boards under test: MicroPython baselines and the images a scenario serves.

A virtual board cannot execute Xtensa code, so what runs is decided by what an image
says about itself (ESP-IDF app descriptor, MicroPython banner): a baseline built here
boots the real MicroPython interpreter on a virtual board, exactly as a MicroPython
release binary would. On a bench the rig names real release binaries instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from .esp import build_app, build_bootloader, micropython_esp32_ota
from .esp.app_image import build_esp8266_app

MICROPYTHON_VERSION = "v1.24.1"
ESP32_APP_OFFSET = 0x10000


@dataclass(frozen=True)
class FlashPart:
    """One file of a baseline and where it goes."""

    offset: int
    data: bytes
    name: str


def micropython_baseline(chip: str, version: str = MICROPYTHON_VERSION, flash_size: str = "4MB",
                         app_size: int = 0x180000) -> list[FlashPart]:
    """What ``esptool write-flash`` puts on a board to run MicroPython ``version``.

    ESP32: bootloader at 0x1000, MicroPython's OTA partition table at 0x8000 (two 1.5 MB
    slots and a ``vfs`` data partition), the app in ota_0. ESP8266: one image at 0.
    """
    if chip == "esp32":
        app = build_app("esp32", project="micropython", version=version, size=app_size, micropython_banner=True,
                        flash_size=flash_size)
        return [
            FlashPart(0x1000, build_bootloader("esp32", flash_size=flash_size).to_bytes(), "bootloader.bin"),
            FlashPart(0x8000, micropython_esp32_ota(flash_size).to_bytes(), "partition-table.bin"),
            FlashPart(ESP32_APP_OFFSET, app.to_bytes(), "micropython.bin"),
        ]
    if chip == "esp8266":
        image = build_esp8266_app(project="micropython", version=version.lstrip("v"), micropython=True,
                                  flash_size=flash_size)
        return [FlashPart(0, image.to_bytes(), "micropython.bin")]
    raise ValueError(f"no MicroPython baseline for chip {chip!r} (known: esp32, esp8266)")
