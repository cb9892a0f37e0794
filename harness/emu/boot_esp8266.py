"""ESP8266 boot from flash: the ROM loads the image at offset 0 and jumps to it.

The ROM prints, at 74880 baud, one ``load``/``tail``/``chksum`` group per RAM
segment it copies and a final ``csum`` line; a bad checksum stops the chip with
``csum err``. What runs next is decided by the image: a boot_v1.x (the SDK's
second-stage loader, or the project's stand-in for it) hands over to the boot_v1.x
model, which chooses user1 or user2; a MicroPython build is recognised by its banner
string (the interpreter is attached by the MicroPython runtime); any other app is
reported and left idling.
"""

from __future__ import annotations

import time

from ..esp.app_image import parse_image
from ..esp.errors import FormatError
from ..esp.esp8266_image import find_boot_v1, find_micropython_banner
from .apps import AppContext, run_app
from .chip import EXIT_HALT, ChipConfig, ChipRun
from .flash import NorFlash
from .uart import ChipUart

IROM_START = 0x40200000
APP_BAUD = 115200
MAX_IMAGE = 0x100000  # the ROM maps at most 1 MB at 0x40200000


def rom_load(cfg: ChipConfig, run: ChipRun, uart: ChipUart, flash: NorFlash, rom_baud: int) -> int:
    head = flash.read(0, min(MAX_IMAGE, flash.size))
    if head[0] != 0xE9:
        # Nothing the ROM can load: it stops here until the next reset.
        uart.write_at(rom_baud, b"ets_main.c \r\n")
        uart.event("boot", mode="flash", cause=run.cause, result="no-image",
                   detail=f"byte 0x{head[0]:02x} at 0x0 is not an image magic")
        return _halt(uart)
    try:
        image = parse_image(head, "esp8266")
    except FormatError as e:
        uart.write_at(rom_baud, b"ets_main.c \r\n")
        uart.event("boot", mode="flash", cause=run.cause, result="bad-image", detail=str(e))
        return _halt(uart)
    out = []
    ram_segments = [s for s in image.segments if not (IROM_START <= s.addr < IROM_START + MAX_IMAGE)]
    room = 16
    for seg in ram_segments:
        tail = seg.length % 16
        out.append(f"load 0x{seg.addr:08x}, len {seg.length}, room {room} \r\ntail {tail}\r\n"
                   f"chksum 0x{image.stored_checksum:02x}\r\n")
        room = max(0, room - 8)
    if not image.checksum_ok:
        out.append(f"csum 0x{image.calculated_checksum:02x} csum err\r\nets_main.c \r\n")
        uart.write_at(rom_baud, "".join(out).encode())
        uart.event("boot", mode="flash", cause=run.cause, result="checksum",
                   detail=f"stored 0x{image.stored_checksum:02x} calculated 0x{image.calculated_checksum:02x}")
        return _halt(uart)
    out.append(f"csum 0x{image.calculated_checksum:02x}\r\n")
    uart.write_at(rom_baud, "".join(out).encode())
    loader = find_boot_v1(head[: image.length])
    if loader is not None:
        # The SDK's second-stage loader: it chooses user1 or user2 (harness.emu.boot_v1).
        from . import boot_v1

        return boot_v1.second_stage(cfg, run, uart, flash, loader, rom_baud)
    uart.set_baud(APP_BAUD)
    banner = find_micropython_banner(head[: image.length])
    if banner is not None:
        project, version = "micropython", "v" + banner.version.lstrip("v")
    else:
        project, version = "unknown", ""
    uart.event("boot", mode="flash", cause=run.cause, result="app", partition=None, offset=0,
               project=project, version=version)
    return run_app(AppContext(cfg=cfg, run=run, uart=uart, flash=flash, offset=0,
                              project=project, version=version, image=image, partition=None))


def _halt(uart: ChipUart) -> int:
    # Give the host a moment to read the text before the chip process is gone.
    time.sleep(0.05)
    return EXIT_HALT
