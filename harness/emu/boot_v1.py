"""boot_v1.x on the virtual ESP8266: the SDK's second-stage loader choosing user1 or user2.

The ROM hands over here when the image at 0x0 is a boot_v1.x (the project's stand-in boot image,
``harness.esp.esp8266_image.build_boot_image``, or an SDK ``boot_v1.x.bin``). What it does, as
``docs``-level sources describe boot_v1.7 (see ``specs/esp8266-sdk-fota.md``):

1. print the version and the SPI speed, mode and flash map from the header at 0x0, at the ROM's
   74880 baud;
2. read the parameters: the flag sector (N-1) names the current copy (N-3 or N-2); parameters
   whose loader version is not its own, or whose ``usr_bin`` is 3, are replaced by fresh ones
   (all 0xFF, user1, the loader's version) with the protected two-copy save;
3. choose user1 or user2 from ``usr_bin`` and ``boot_status`` and print ``jump to run userN @ addr``;
4. check the bin: magic 0xE9, or 0xEA with byte 1 = 4 followed (after the irom0 part) by 0xE9, and
   the checksum of the RAM segments. It does not check the appended CRC and cannot see irom0;
5. on failure: ``error magic!`` for a bad magic; then, if the chosen bin was not already the
   fallback (``boot_status`` 1), clear ``boot_status`` with the protected save, print
   ``first boot failed, reboot to try backup bin`` and let the watchdog reset the chip; if it was,
   print ``backup boot failed.`` and run nothing until the next reset.

Every parameter write goes through the NOR flash model, so an armed power cut tears it as it would
tear any other write. Where the sources are silent the model takes the simplest behaviour:

* a bad RAM-segment checksum (or segments that do not parse) takes the fallback path without
  ``error magic!`` (no line for it is documented);
* test/enhanced boot modes (byte 1 bits 5..7, bytes 2..7) are not modelled;
* a flash map the SDK has no user1/user2 layout for, or one larger than the flash, stops the
  loader with a line saying so;
* a save keeps the current copy's bytes up to its last programmed one (at least 32), so what an SDK
  stored after the boot parameters survives a fallback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..esp.esp8266_image import (
    BOOT_PARAMS_LEN,
    SECTOR,
    BootParams,
    BootV1Info,
    FlashSettings,
    FotaLayout,
    active_param_copy,
    apply_protected_save,
    boot_params_valid,
    check_boot_bin,
    fresh_boot_params,
    protected_save_writes,
    read_user_bin_desc,
)
from .apps import AppContext, run_app
from .chip import EXIT_HALT, EXIT_WATCHDOG, ChipConfig, ChipRun
from .flash import NorFlash
from .uart import ChipUart

APP_BAUD = 115200


@dataclass(frozen=True)
class SdkBoot:
    """What boot_v1.x hands the app (``AppContext.sdk``): the flash layout and the slot it runs."""

    layout: FotaLayout
    slot: int


def _current(flash: NorFlash, layout: FotaLayout) -> tuple[int, bytes]:
    flag = flash.read(layout.flag, 1)[0]
    return flag, flash.read(layout.params[active_param_copy(flag)], SECTOR)


def save_params(flash: NorFlash, layout: FotaLayout, flag: int, data: bytes) -> bool:
    """The protected save through the flash model (shared with the harness, ``harness.esp``)."""
    return apply_protected_save(flash, protected_save_writes(flag, data, layout))


def _kept(sector: bytes, params: bytes) -> bytes:
    """The bytes a save writes: the new parameters over the current copy's used part."""
    used = len(sector.rstrip(b"\xff"))
    used = max(BOOT_PARAMS_LEN, len(params), used + (-used % 16))
    return params + sector[len(params):used]


def second_stage(cfg: ChipConfig, run: ChipRun, uart: ChipUart, flash: NorFlash, info: BootV1Info,
                 rom_baud: int) -> int:
    """Run boot_v1.x; returns the chip's exit code (or never returns while the app runs)."""

    def say(text: str) -> None:
        uart.write_at(rom_baud, text.encode())

    settings = FlashSettings.from_header(flash.read(0, 4))
    say(f"\r\n2nd boot version : {info.version_text}\r\n"
        f"SPI Speed : {settings.speed_name}\r\nSPI Mode : {settings.mode_name}\r\n")
    try:
        layout = FotaLayout.for_map_code(settings.map_code)
    except ValueError:
        say(f"SPI Flash Size & Map: unsupported map {settings.map_code}\r\n")
        uart.event("boot", mode="flash", cause=run.cause, result="no-app", loader="boot_v1",
                   detail=f"flash map code {settings.map_code} has no user1/user2 layout")
        return _halt()
    say(f"SPI Flash Size & Map: {layout.map_name}\r\n")
    if layout.flash_size > flash.size:
        say(f"flash map needs {layout.flash_size // 1024} KB, chip has {flash.size // 1024} KB\r\n")
        uart.event("boot", mode="flash", cause=run.cause, result="no-app", loader="boot_v1",
                   detail=f"map {layout.map_name} is larger than the {flash.size}-byte flash")
        return _halt()

    flag, sector = _current(flash, layout)
    params = BootParams.decode(sector)
    if not boot_params_valid(params, info.version):
        fresh = fresh_boot_params(info.version)
        save_params(flash, layout, flag, fresh)
        flag, sector = _current(flash, layout)
        params = BootParams.decode(sector)
        if not boot_params_valid(params, info.version):  # the save did not take: boot from what it meant to write
            params = BootParams.decode(fresh)

    slot = params.booted_slot
    address = layout.slot_address(slot)
    say(f"jump to run user{slot} @ {address:x}\r\n\r\n")
    check = check_boot_bin(flash.read, address, flash.size)
    if not check.ok:
        if check.failure == "magic":
            say("error magic!\r\n")
        if params.boot_status == 1:
            marked = BootParams(usr_bin=params.usr_bin, boot_status=0, raw=params.raw)
            save_params(flash, layout, flag, _kept(sector, marked.encode()))
            say("first boot failed, reboot to try backup bin\r\n")
            uart.event("boot", mode="flash", cause=run.cause, result="fallback", loader="boot_v1", slot=slot,
                       offset=address, detail=check.detail)
            time.sleep(0.05)
            return EXIT_WATCHDOG
        say("backup boot failed.\r\n")
        uart.event("boot", mode="flash", cause=run.cause, result="no-app", loader="boot_v1", slot=slot,
                   offset=address, detail=check.detail)
        return _halt()

    desc = read_user_bin_desc(flash.read(address, 96))
    project = (desc.project if desc else "") or "unknown"
    version = (desc.version if desc else "") or ""
    uart.set_baud(APP_BAUD)
    uart.event("boot", mode="flash", cause=run.cause, result="app", partition=None, offset=address,
               project=project, version=version, loader="boot_v1", slot=slot)
    return run_app(AppContext(cfg=cfg, run=run, uart=uart, flash=flash, offset=address, project=project,
                              version=version, image=check.image, partition=None,
                              sdk=SdkBoot(layout=layout, slot=slot)))


def _halt() -> int:
    time.sleep(0.05)
    return EXIT_HALT
