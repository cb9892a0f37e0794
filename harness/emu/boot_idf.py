"""ESP-IDF second-stage bootloader model (ESP32).

Reads the partition table at 0x8000 and the otadata partition from the
emulated flash, lets :func:`harness.esp.boot.select_boot` decide (the same
rules the harness uses as its oracle on real boards), applies the otadata
writes it asks for as real flash operations (so a power cut can land in the
middle of them) and prints the lines the real bootloader prints. Then the
chosen app starts.

Anti-rollback (``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``) is on when the bootloader image
in flash was built with it (:func:`bootloader_anti_rollback`): then apps whose
``secure_version`` is below the chip's eFuse (:mod:`harness.emu.efuse`) are never
selected, and booting a VALID app burns its secure_version into the eFuse.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from ..esp import boot as rules
from ..esp.app_image import bootloader_config, parse_image
from ..esp.errors import FormatError
from ..esp.otadata import OTADATA_SECTOR_SIZE
from ..esp.partition_table import PartitionTable
from .apps import AppContext, run_app
from .chip import EXIT_REBOOT, ChipConfig, ChipRun
from .efuse import Efuse
from .flash import NorFlash
from .uart import ChipUart

PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_MAX = 0xC00
IDF_VERSION = "v5.2.2"
CHIP_REV = 300  # v3.0, as the ROM profile reports

# A failed boot makes the bootloader reset the chip; real chips loop like this forever.
RETRY_DELAY = 1.0

_USAGE = {
    (0, 0x00): "factory app",
    (0, 0x20): "test app",
    (1, 0x00): "OTA data",
    (1, 0x01): "RF data",
    (1, 0x02): "WiFi data",
    (1, 0x03): "coredump",
    (1, 0x04): "NVS keys",
    (1, 0x05): "efuse",
    (1, 0x81): "FAT",
    (1, 0x82): "SPIFFS",
    (1, 0x83): "littlefs",
}


@dataclass
class ImageHeader:
    spi_mode: int
    entry: int
    segments: list[tuple[int, int]]


def read_image_header(flash: NorFlash, offset: int) -> ImageHeader | None:
    """Header and segment list of the image at ``offset`` (what the ROM reads), or None."""
    head = flash.read(offset, 24)
    if head[0] != 0xE9 or head[1] > 16:
        return None
    entry = struct.unpack_from("<I", head, 4)[0]
    segments = []
    pos = offset + 24
    for _ in range(head[1]):
        if pos + 8 > flash.size:
            return None
        addr, length = struct.unpack("<II", flash.read(pos, 8))
        if length > 0x100000:
            return None
        segments.append((addr, length))
        pos += 8 + length
    return ImageHeader(head[2], entry, segments)


class IdfLog:
    """ESP-IDF log lines: ``I (123) boot: text`` with milliseconds since reset, ANSI colours off."""

    def __init__(self, uart: ChipUart, started: float):
        self.uart = uart
        self.started = started

    def __call__(self, level: str, tag: str, text: str) -> None:
        ms = int((time.monotonic() - self.started) * 1000)
        self.uart.write(f"{level} ({ms}) {tag}: {text}\r\n".encode())


def _classify(line: str) -> tuple[str, str]:
    """(level, tag) of a decision log line, as the IDF bootloader would print it."""
    if line.startswith("segment ") or line.startswith("Segment "):
        return ("E" if "doesn't match" in line else "I"), "esp_image"
    lower = line.lower()
    esp_image_errors = ("image at", "checksum failed", "image hash failed", "mismatch chip", "image requires chip",
                        "image length", "invalid segment length", "partition size")
    if any(lower.startswith(p) for p in esp_image_errors):
        return "E", "esp_image"
    if "not bootable" in lower or "no bootable" in lower or "invalid" in lower or "failed" in lower:
        return "E", "boot"
    if "aborted" in lower or "falling back" in lower:
        return "W", "boot"
    return "I", "boot"


def bootloader_anti_rollback(flash: NorFlash, offset: int = 0x1000) -> bool:
    """Whether the bootloader in flash was built with ``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK`` (the option the host
    build records in it; MicroPython's bootloader, like any that records nothing, has it off)."""
    return bootloader_config(flash.read(offset, 0x600)).get("BOOTLOADER_APP_ANTI_ROLLBACK") == "y"


def second_stage(cfg: ChipConfig, run: ChipRun, uart: ChipUart, flash: NorFlash) -> int:
    started = time.monotonic() - 0.025  # the ROM stage took about this long
    log = IdfLog(uart, started)
    log("I", "boot", f"ESP-IDF {IDF_VERSION} 2nd stage bootloader")
    log("I", "boot", "compile time Jun  1 2024 12:00:00")
    log("I", "boot", "Multicore bootloader")
    log("I", "boot", f"chip revision: v{CHIP_REV // 100}.{CHIP_REV % 100}")
    log("I", "boot.esp32", "SPI Speed      : 40MHz")
    log("I", "boot.esp32", "SPI Mode       : DIO")
    log("I", "boot.esp32", f"SPI Flash Size : {cfg.flash_size // 0x100000}MB")
    log("I", "boot", "Enabling RNG early entropy source...")

    raw_table = flash.read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_MAX)
    try:
        table = PartitionTable.from_bytes(raw_table)
        table.validate(cfg.flash_size)
    except FormatError as e:
        where = PARTITION_TABLE_OFFSET + (e.offset or 0)
        log("E", "flash_parts", f"partition table at 0x{PARTITION_TABLE_OFFSET:x} is invalid: {e} (flash 0x{where:x})")
        log("E", "boot", "Failed to verify partition table")
        log("E", "boot", "load partition table error!")
        uart.event("boot", mode="flash", cause=run.cause, result="bad-partition-table", detail=str(e))
        time.sleep(RETRY_DELAY)
        return EXIT_REBOOT
    _print_table(log, table)

    otadata_part = table.otadata
    region = flash.read(otadata_part.offset, 2 * OTADATA_SECTOR_SIZE) if otadata_part is not None else None

    check_slot = rules.image_slot_check(flash.read, chip=cfg.chip, chip_rev=CHIP_REV)
    # CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK is the bootloader's own build option: the one on the board says.
    anti_rollback = bootloader_anti_rollback(flash)
    efuse = Efuse(cfg.flash_file)
    decision = rules.select_boot(table, region, check_slot, anti_rollback=anti_rollback,
                                 efuse_secure_version=efuse.read_secure_version() if anti_rollback else 0)
    # Apply otadata writes as the bootloader does: erase the sector, program the entry.
    for w in decision.otadata_writes:
        assert otadata_part is not None
        addr = w.address(otadata_part)
        flash.erase_sector(addr)
        if w.entry is not None:
            flash.program(addr, w.entry.pack())
    for line in decision.log:
        if line.startswith("otadata[") and "sequence values" in line:
            continue  # debug-level in the real bootloader
        if line.startswith("eFuse secure version ") and decision.efuse_secure_version is not None:
            # update_anti_rollback(): esp_efuse_update_secure_version burns the booted app's secure_version
            burn = efuse.update_secure_version(decision.efuse_secure_version)
            if burn.message:
                log(burn.level or "I", "efuse", burn.message)
            continue
        level, tag = _classify(line)
        log(level, tag, line)

    part = decision.partition
    if part is None:
        uart.event("boot", mode="flash", cause=run.cause, result="no-app",
                   tried=[{"label": p.label, "reason": c.reason} for p, c in decision.tried])
        time.sleep(RETRY_DELAY)
        return EXIT_REBOOT

    data = flash.read(part.offset, part.size)
    image = parse_image(data, cfg.chip)
    desc = image.app_desc
    project = desc.project_name if desc else ""
    version = desc.version if desc else ""
    extra = {"anti_rollback": True, "efuse_secure_version": efuse.read_secure_version()} if anti_rollback else {}
    uart.event("boot", mode="flash", cause=run.cause, result="app", partition=part.label, offset=part.offset,
               project=project, version=version, fallback=decision.fallback,
               selected=None if decision.selected is None else decision.selected.label, **extra)
    _print_app_start(log, image, desc)
    return run_app(AppContext(cfg=cfg, run=run, uart=uart, flash=flash, offset=part.offset, project=project,
                              version=version, image=image, partition=part, started=started,
                              log=lambda text: log("I", "app", text)))


def _print_table(log: IdfLog, table: PartitionTable) -> None:
    log("I", "boot", "Partition Table:")
    log("I", "boot", "## Label            Usage          Type ST Offset   Length")
    for i, p in enumerate(table):
        if p.is_ota_app:
            usage = "OTA app"
        else:
            usage = _USAGE.get((p.type, p.subtype), "Unknown data" if p.type else "Unknown app")
        log("I", "boot", f"{i:2d} {p.label:<16} {usage:<14} {p.type:02x} {p.subtype:02x} {p.offset:08x} {p.size:08x}")
    log("I", "boot", "End of partition table")


def _print_app_start(log: IdfLog, image, desc) -> None:
    log("I", "cpu_start", "Multicore app")
    log("I", "cpu_start", "Pro cpu start user code")
    if desc is None:
        return
    log("I", "app_init", "Application information:")
    log("I", "app_init", f"Project name:     {desc.project_name}")
    log("I", "app_init", f"App version:      {desc.version}")
    log("I", "app_init", f"Compile time:     {desc.date} {desc.time}")
    log("I", "app_init", f"ELF file SHA256:  {desc.app_elf_sha256[:8].hex()}...")
    log("I", "app_init", f"ESP-IDF:          {desc.idf_ver}")
