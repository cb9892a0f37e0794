"""First-stage (ROM) boot of each chip profile: boot text, download banner, loading the next stage.

What the ROM prints is what users' scripts and esptool look for: esptool reads
``boot:0x..`` and ``waiting for download`` after a reset; people recognise an
ESP8266 by ``ets Jan  8 2013,rst cause:2, boot mode:(3,6)`` at 74880 baud.
"""

from __future__ import annotations

import struct
import time

from ..chips import chip as chip_class
from .chip import (
    CAUSE_DEEPSLEEP,
    CAUSE_EN,
    CAUSE_POWER_ON,
    CAUSE_SOFTWARE,
    CAUSE_WATCHDOG,
    EXIT_WATCHDOG,
    ChipConfig,
    ChipRun,
)
from .flash import NorFlash
from .uart import ChipUart

SPI_MODES = {0: "QIO", 1: "QOUT", 2: "DIO", 3: "DOUT"}


class RomBoot:
    """The parts of a chip's ROM that run before any code from flash."""

    chip = ""
    boot_text_baud = 115200

    def download_banner(self, uart: ChipUart, cause: str) -> None:
        raise NotImplementedError

    def boot(self, cfg: ChipConfig, run: ChipRun, uart: ChipUart, flash: NorFlash) -> int:
        raise NotImplementedError


class Esp32RomBoot(RomBoot):
    chip = "esp32"
    BANNER = b"ets Jul 29 2019 12:21:46\r\n\r\n"
    RESET_REASONS = {
        CAUSE_POWER_ON: "rst:0x1 (POWERON_RESET)",
        CAUSE_EN: "rst:0x1 (POWERON_RESET)",
        CAUSE_SOFTWARE: "rst:0xc (SW_CPU_RESET)",
        CAUSE_WATCHDOG: "rst:0x10 (RTCWDT_RTC_RESET)",
        CAUSE_DEEPSLEEP: "rst:0x5 (DEEPSLEEP_RESET)",
    }
    BOOTLOADER_OFFSET = 0x1000

    def _reset_line(self, cause: str, boot: str) -> bytes:
        return f"{self.RESET_REASONS.get(cause, self.RESET_REASONS[CAUSE_POWER_ON])},{boot}\r\n".encode()

    def download_banner(self, uart: ChipUart, cause: str) -> None:
        uart.write(self.BANNER + self._reset_line(cause, "boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))")
                   + b"waiting for download\r\n")

    def boot(self, cfg: ChipConfig, run: ChipRun, uart: ChipUart, flash: NorFlash) -> int:
        from . import boot_idf

        uart.write(self.BANNER + self._reset_line(run.cause, "boot:0x13 (SPI_FAST_FLASH_BOOT)"))
        image = boot_idf.read_image_header(flash, self.BOOTLOADER_OFFSET)
        if image is None:
            word = struct.unpack("<I", flash.read(self.BOOTLOADER_OFFSET, 4))[0]
            # The ROM keeps retrying until the RTC watchdog resets the chip.
            for _ in range(4):
                uart.write(f"invalid header: 0x{word:08x}\r\n".encode())
            uart.event("boot", mode="flash", cause=run.cause, result="no-bootloader",
                       detail=f"invalid header 0x{word:08x} at 0x{self.BOOTLOADER_OFFSET:x}")
            time.sleep(1.0)
            return EXIT_WATCHDOG
        mode = SPI_MODES.get(image.spi_mode, "DIO")
        lines = [
            "configsip: 0, SPIWP:0xee",
            "clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00",
            f"mode:{mode}, clock div:2",
        ]
        lines += [f"load:0x{addr:08x},len:{length}" for addr, length in image.segments]
        lines.append(f"entry 0x{image.entry:08x}")
        uart.write(("\r\n".join(lines) + "\r\n").encode())
        return boot_idf.second_stage(cfg, run, uart, flash)


class Esp8266RomBoot(RomBoot):
    chip = "esp8266"
    boot_text_baud = 74880
    CAUSES = {CAUSE_POWER_ON: 1, CAUSE_EN: 2, CAUSE_SOFTWARE: 2, CAUSE_WATCHDOG: 4, CAUSE_DEEPSLEEP: 5}

    def _banner(self, cause: str, mode: str) -> bytes:
        return f"\r\n ets Jan  8 2013,rst cause:{self.CAUSES.get(cause, 2)}, boot mode:{mode}\r\n\r\n".encode()

    def download_banner(self, uart: ChipUart, cause: str) -> None:
        uart.write_at(self.boot_text_baud, self._banner(cause, "(1,7)"))

    def boot(self, cfg: ChipConfig, run: ChipRun, uart: ChipUart, flash: NorFlash) -> int:
        from . import boot_esp8266

        uart.write_at(self.boot_text_baud, self._banner(run.cause, "(3,6)"))
        return boot_esp8266.rom_load(cfg, run, uart, flash, self.boot_text_baud)


def print_rom_download_banner(chip: str, uart: ChipUart, cause: str) -> None:
    chip_class(chip).rom_boot().download_banner(uart, cause)


def boot_from_flash(cfg: ChipConfig, run: ChipRun, uart: ChipUart, flash: NorFlash) -> int:
    return chip_class(cfg.chip).rom_boot().boot(cfg, run, uart, flash)
