"""Host side of the MicroPython port layer: raw flash, partitions and OTA.

Everything here operates on the board's NOR flash model, so every erase and page
program the device code causes is counted, can be torn by an armed power cut, and
is what esptool later reads back. The otadata rules are ``harness.esp.boot``: the
same functions the harness uses as its oracle.
"""

from __future__ import annotations

import base64
import errno
from typing import TYPE_CHECKING

from ..chips import chip as chip_class
from ..esp import boot as rules
from ..esp.app_image import verify_image
from ..esp.errors import FormatError
from ..esp.otadata import OTADATA_SECTOR_SIZE, OtaState
from ..esp.partition_table import Partition, PartitionTable
from .flash import SECTOR_SIZE, FlashError, NorFlash

if TYPE_CHECKING:
    from .apps import AppContext

PARTITION_TABLE_OFFSET = 0x8000

# esp_err_t values ESP-IDF returns; MicroPython raises OSError(-code).
ESP_ERR = {
    "ESP_FAIL": -1,
    "ESP_ERR_NO_MEM": 0x101,
    "ESP_ERR_INVALID_ARG": 0x102,
    "ESP_ERR_INVALID_STATE": 0x103,
    "ESP_ERR_INVALID_SIZE": 0x104,
    "ESP_ERR_NOT_FOUND": 0x105,
    "ESP_ERR_OTA_PARTITION_CONFLICT": 0x1501,
    "ESP_ERR_OTA_SELECT_INFO_INVALID": 0x1502,
    "ESP_ERR_OTA_VALIDATE_FAILED": 0x1503,
    "ESP_ERR_OTA_SMALL_SEC_VER": 0x1504,
    "ESP_ERR_OTA_ROLLBACK_FAILED": 0x1505,
    "ESP_ERR_OTA_ROLLBACK_INVALID_STATE": 0x1506,
}


def esp_error(name: str) -> OSError:
    return OSError(-ESP_ERR[name], name)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def read_partition_table(flash: NorFlash) -> PartitionTable | None:
    try:
        return PartitionTable.from_bytes(flash.read(PARTITION_TABLE_OFFSET, 0xC00))
    except FormatError:
        return None


def esp8266_flash_user_start(flash: NorFlash, image_length: int) -> int:
    """Where the ESP8266 port's user area starts.

    Model: boards with 2 MB or more keep the firmware in the first megabyte and give
    the rest to the filesystem; 1 MB boards start right after the firmware image.
    """
    if flash.size >= 2 * 1024 * 1024:
        return 0x100000
    return (image_length + SECTOR_SIZE - 1) // SECTOR_SIZE * SECTOR_SIZE


def fs_region(ctx: "AppContext") -> tuple[int, int]:
    """(offset, size) of the littlefs the MicroPython port mounts at "/"."""
    flash = ctx.flash
    if not chip_class(ctx.cfg.chip).has_partition_table:  # the ESP8266 port's layout
        start_sec = esp8266_flash_user_start(flash, getattr(ctx.image, "length", 0)) // SECTOR_SIZE
        if start_sec < 256:
            start_sec += 1  # the port reserves one sector for native code
        blocks = (flash.size - 20480) // SECTOR_SIZE - start_sec
        return start_sec * SECTOR_SIZE, max(0, blocks) * SECTOR_SIZE
    table = read_partition_table(flash)
    if table is not None:
        vfs = table.find("vfs") or table.find("ffat")
        if vfs is not None:
            return vfs.offset, vfs.size
        # MicroPython 1.26 and later: from the end of the last partition to the end of flash.
        end = max(p.end for p in table)
        end = (end + SECTOR_SIZE - 1) // SECTOR_SIZE * SECTOR_SIZE
        return end, max(0, flash.size - end)
    return flash.size - 0x100000, 0x100000


class FlashHost:
    """esp.flash_* and esp32.Partition."""

    def __init__(self, ctx: "AppContext"):
        self.ctx = ctx
        self.flash = ctx.flash

    def ops(self) -> dict:
        return {
            "flash_size": lambda: self.flash.size,
            "flash_user_start": self._user_start,
            "flash_read": self._flash_read,
            "flash_read_into": self._flash_read_into,
            "flash_write": self._flash_write,
            "flash_erase": self._flash_erase,
            "part_get": self._part_get,
            "part_find": self._part_find,
            "part_read": self._part_read,
            "part_write": self._part_write,
            "part_erase": self._part_erase,
            "ota_set_boot": self._set_boot,
            "ota_next_update": self._next_update,
            "ota_mark_valid": self._mark_valid,
            "ota_mark_invalid_reboot": self._mark_invalid_reboot,
            "ota_rollback_possible": self._rollback_possible,
            "ota_app_state": self._app_state,
        }

    def raw_op(self, op: int, a: int, b: int, c: int, d: int, e: int, data: bytes) -> bytes | None:
        """The binary flash calls (runtime_mpy RAW frames): 1 flash_write(addr=a), 2 flash_erase(sector=a),
        3 part_write(base=a, size=b, off=c, erase=d, block_size=e), 4 part_erase(base=a, size=b, off=c, length=d),
        5 flash_read(addr=a, length=b), whose bytes go back as they are."""
        if op == 1:
            self._check(a, len(data))
            self.flash.program(a, data)
        elif op == 2:
            self._flash_erase(a)
        elif op == 3:
            self._part_write_bytes(a, b, c, data, bool(d), e)
        elif op == 4:
            self._part_erase(a, b, c, d)
        elif op == 5:
            return self._flash_read_into(a, b)
        else:
            raise OSError(errno.EINVAL, f"unknown flash operation {op}")

    # raw flash
    def _user_start(self) -> int:
        if not chip_class(self.ctx.cfg.chip).has_partition_table:
            return esp8266_flash_user_start(self.flash, getattr(self.ctx.image, "length", 0))
        region = fs_region(self.ctx)
        return region[0]

    def _check(self, addr: int, length: int) -> None:
        if addr < 0 or length < 0 or addr + length > self.flash.size:
            raise OSError(errno.EINVAL, "flash range out of bounds")

    def _flash_read(self, addr: int, length: int) -> str:
        self._check(addr, length)
        return _b64(self.flash.read(addr, length))

    def _flash_read_into(self, addr: int, length: int) -> bytes:
        self._check(addr, length)
        return self.flash.read(addr, length)

    def _flash_write(self, addr: int, data: str) -> None:
        blob = base64.b64decode(data)
        self._check(addr, len(blob))
        self.flash.program(addr, blob)

    def _flash_erase(self, sector: int) -> None:
        self._check(sector * SECTOR_SIZE, SECTOR_SIZE)
        self.flash.erase_sector(sector * SECTOR_SIZE)

    # partitions
    def _table(self) -> PartitionTable:
        table = read_partition_table(self.flash)
        if table is None:
            raise esp_error("ESP_ERR_NOT_FOUND")
        return table

    @staticmethod
    def _info(p: Partition) -> list:
        return [p.type, p.subtype, p.offset, p.size, p.label, bool(p.encrypted)]

    def _running(self, table: PartitionTable) -> Partition | None:
        return table.find_at(self.ctx.offset)

    def _otadata(self, table: PartitionTable) -> bytes | None:
        part = table.otadata
        return None if part is None else self.flash.read(part.offset, 2 * OTADATA_SECTOR_SIZE)

    def _part_get(self, which) -> list:
        table = self._table()
        if which == 1:  # RUNNING
            p = self._running(table)
        elif which == 0:  # BOOT
            p = rules.get_boot_partition(table, self._otadata(table)) or self._running(table)
        else:
            p = table.find(str(which))
        if p is None:
            raise esp_error("ESP_ERR_NOT_FOUND")
        return self._info(p)

    def _part_find(self, ptype: int, subtype: int, label) -> list:
        table = read_partition_table(self.flash)
        if table is None:
            return []
        return [self._info(p) for p in table
                if p.type == ptype and subtype in (0xFF, p.subtype) and label in (None, p.label)]

    def _part_range(self, base: int, size: int, off: int, length: int) -> int:
        if off < 0 or length < 0 or off + length > size:
            raise esp_error("ESP_ERR_INVALID_SIZE")
        return base + off

    def _part_read(self, base: int, size: int, off: int, length: int) -> str:
        return _b64(self.flash.read(self._part_range(base, size, off, length), length))

    def _part_write(self, base: int, size: int, off: int, data: str, erase: bool, block_size: int) -> None:
        self._part_write_bytes(base, size, off, base64.b64decode(data), erase, block_size)

    def _part_write_bytes(self, base: int, size: int, off: int, blob: bytes, erase: bool, block_size: int) -> None:
        addr = self._part_range(base, size, off, len(blob))
        if erase:
            start = addr - (addr - base) % block_size
            end = addr + len(blob)
            end += (-(end - base)) % block_size
            self.flash.erase_range(start, end - start)
        self.flash.program(addr, blob)

    def _part_erase(self, base: int, size: int, off: int, length: int) -> None:
        self.flash.erase_range(self._part_range(base, size, off, length), length)

    def _apply(self, table: PartitionTable, writes: list) -> None:
        part = table.otadata
        for w in writes:
            addr = w.address(part)
            self.flash.erase_sector(addr)
            if w.entry is not None:
                self.flash.program(addr, w.entry.pack())

    def _ota(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except rules.OtaError as e:
            raise esp_error(e.code) from None

    def _set_boot(self, addr: int) -> None:
        table = self._table()
        target = table.find_at(addr)
        if target is None:
            raise esp_error("ESP_ERR_NOT_FOUND")
        check = rules.SlotCheck.from_image_check(
            verify_image(self.flash.read(target.offset, target.size), chip=self.ctx.cfg.chip,
                         partition_size=target.size, address=target.offset))
        writes = self._ota(rules.set_boot_partition, table, self._otadata(table), target, target_check=check)
        self._apply(table, writes)

    def _next_update(self, addr: int) -> list:
        table = self._table()
        p = rules.get_next_update(table, table.find_at(addr))
        if p is None:
            raise esp_error("ESP_ERR_NOT_FOUND")
        return self._info(p)

    def _mark_valid(self) -> None:
        table = self._table()
        if table.otadata is None:
            raise esp_error("ESP_ERR_NOT_FOUND")
        writes = self._ota(rules.mark_app_valid, table, self._otadata(table), self._running(table))
        self._apply(table, writes)

    def _check_slot(self):
        return rules.image_slot_check(self.flash.read, chip=self.ctx.cfg.chip)

    def _mark_invalid_reboot(self) -> None:
        from .chip import EXIT_REBOOT
        from .runtime_mpy import _Exit

        table = self._table()
        writes = self._ota(rules.mark_app_invalid_rollback, table, self._otadata(table), self._running(table),
                           check_slot=self._check_slot())
        self._apply(table, writes)
        raise _Exit(code=EXIT_REBOOT)

    def _rollback_possible(self) -> bool:
        table = self._table()
        return rules.check_rollback_is_possible(table, self._otadata(table), self._check_slot())

    def _app_state(self, addr: int) -> str | None:
        table = self._table()
        p = table.find_at(addr)
        if p is None:
            raise esp_error("ESP_ERR_NOT_FOUND")
        state = rules.app_state(table, self._otadata(table), p)
        if state is None:
            return None
        try:
            return OtaState(state).name.lower()
        except ValueError:
            return "undefined"


__all__ = ["FlashHost", "fs_region", "FlashError"]
