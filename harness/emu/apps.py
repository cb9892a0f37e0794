"""What runs after the bootloader: the application the chosen image contains.

The virtual chip cannot execute Xtensa code, so an app is recognised by what
its image says about itself (ESP-IDF app descriptor, MicroPython banner) and a
runtime that behaves like it is attached; an ESP-IDF app built for the virtual
ESP32 by ``harness.emu.idf.build`` carries a host executable, which runs. An app nothing recognises prints the
ESP-IDF start-up lines naming itself and idles, which is all a bootloader test
needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..chips import chip as chip_class
from .chip import ChipConfig, ChipRun
from .flash import NorFlash
from .uart import ChipUart


@dataclass
class AppContext:
    cfg: ChipConfig
    run: ChipRun
    uart: ChipUart
    flash: NorFlash
    offset: int  # flash offset of the running image
    project: str
    version: str
    image: object  # harness.esp.app_image.ParsedImage
    partition: object | None  # harness.esp.partition_table.Partition (ESP32) or None
    started: float = 0.0
    log: Callable[[str], None] | None = None
    sdk: object | None = None  # harness.emu.boot_v1.SdkBoot when boot_v1.x chose an SDK user bin, else None


# Runtimes by project name; the MicroPython runtime registers itself here.
RUNTIMES: dict[str, Callable[[AppContext], int]] = {}


def run_app(ctx: AppContext) -> int:
    if ctx.project == "micropython":
        from . import runtime_mpy  # noqa: F401  (registers the interpreter)
    elif ctx.sdk is not None:
        # A NONOS SDK app built for the virtual ESP8266 (harness.emu.sdk8266.build) carries its host executable.
        from . import runtime_sdk

        if runtime_sdk.carries_sdk_app(ctx.image):
            return runtime_sdk.run_sdk_app(ctx)
    elif chip_class(ctx.cfg.chip).idf_target:
        # An ESP-IDF app built for the virtual ESP32 (harness.emu.idf.build) carries its host executable.
        from . import runtime_idf

        if runtime_idf.carries_host_app(ctx.image):
            return runtime_idf.run_idf_app(ctx)
    runtime = RUNTIMES.get(ctx.project, idle_app)
    return runtime(ctx)


def idle_app(ctx: AppContext) -> int:
    """An app that has started and does nothing observable: input is read and dropped."""
    while True:
        if not ctx.uart.read(None):
            time.sleep(0.01)
