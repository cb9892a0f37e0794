"""ESP-IDF apps on the virtual ESP32: the host executable an image carries, run as the chip's application.

``harness.emu.idf.build`` compiles an ESP-IDF project for the host against this emulator's implementation of
the ESP-IDF API and packs the executable into a segment of a valid ESP32 app image. When the bootloader
model boots such an image, :func:`run_idf_app` extracts the executable from the booted image's bytes
(cached by the image's SHA-256), starts it with an empty environment in an empty directory (it dies with the
chip process: a parent-death signal it asks for first thing) and serves it:

* UART0: what the app writes on fd 1 goes to the board's UART as it comes (the app converts line endings
  itself, as ESP-IDF's VFS does); what the UART receives is written to the app's fd 0.
* board calls: flash reads/writes/erases through the board's flash model (counted, cut by power cuts, NOR
  rules), ``esp_ota_*`` with the otadata rules of :mod:`harness.esp.boot` and the image checks of
  :mod:`harness.esp.app_image` (log lines of ``app_update`` and ``esp_image`` go back with the reply and the
  app prints them), NVS in the nvs partition (:mod:`harness.emu.idf.nvs`), Wi-Fi and sockets on the board's
  emulated network (:class:`harness.emu.port_net.NetHost`: the bench's AP, TLS with Python's ssl against the
  CA the app passes).
* the eFuse secure version (:mod:`harness.emu.efuse`, kept next to the flash file): ``esp_efuse_read_secure_version``
  reads it as it is now; with ``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK`` in the app's build,
  ``esp_ota_mark_app_valid_cancel_rollback`` burns the running app's ``secure_version`` when it makes the entry VALID
  and ``esp_ota_set_boot_partition`` refuses an image below it (ESP_ERR_OTA_SMALL_SEC_VER, erasing the partition).
* resets: the app's exit status says what happened (``esp_restart``: software reset; a panic, printed by the
  app: software reset); anything else that ends it is reported as a crash and resets the chip too.

The figures of the model (``src/board.c``): the app's heap is 200 KiB when app_main starts (an ESP32 running
ESP-IDF with Wi-Fi started), each block costing its size rounded to 4 plus 8 bytes, a TLS session 38 KiB of
it and the UART driver its buffers; app_main runs on CONFIG_ESP_MAIN_TASK_STACK_SIZE plus 8 KiB for the
host's ABI, with a guard page below it (an overflow is reported as FreeRTOS's stack overflow and resets).

Known differences from a chip: time is the host's (flash writes and the network take no modelled time);
TLS is OpenSSL (Python's ssl) with mbedTLS's error codes and log lines, not mbedTLS itself; panic reports
carry made-up addresses; HTTP client events are not posted to the default event loop; partial
HTTP downloads (``partial_http_download``) are refused with ESP_ERR_NOT_SUPPORTED as when
CONFIG_ESP_HTTPS_OTA_ENABLE_PARTIAL_DOWNLOAD is off; NVS as :mod:`harness.emu.idf.nvs` says.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import socket
import ssl
import time

from ..esp import boot as rules
from ..esp.app_image import verify_image
from ..esp.otadata import OTADATA_SECTOR_SIZE
from ..esp.partition_table import Partition, PartitionTable
from .apps import AppContext
from .chip import CAUSE_DEEPSLEEP, CAUSE_EN, CAUSE_POWER_ON, CAUSE_SOFTWARE, CAUSE_WATCHDOG, EXIT_REBOOT
from .efuse import Efuse
from .flash import SECTOR_SIZE
from .host_app import Fail as _Fail
from .host_app import Reply as _Reply
from .host_app import decode as _decode
from .host_app import (
    extract_executable,  # noqa: F401  (its home was here)
    run_host_app,
)
from .idf.build import find_host_payload
from .idf.nvs import ERR as NVS_ERR
from .idf.nvs import Flash as NvsFlash
from .idf.nvs import NvsError, NvsPartition
from .port_fs import ESP_ERR, read_partition_table
from .port_net import NetHost

# exit codes of the app process (src/hil_board.h)
APP_EXIT_RESTART = 40
APP_EXIT_PANIC = 41
APP_EXIT_FATAL = 42

# esp_reset_reason_t by the cause of this run of the chip
RESET_REASON = {CAUSE_POWER_ON: 1, CAUSE_EN: 1, CAUSE_SOFTWARE: 3, CAUSE_WATCHDOG: 7, CAUSE_DEEPSLEEP: 8}

ESP_OK = 0
ESP_FAIL = -1
ERR = dict(ESP_ERR, ESP_ERR_NOT_SUPPORTED=0x106, ESP_ERR_FLASH_OP_FAIL=0x6001, ESP_ERR_INVALID_VERSION=0x10A)
OTA_SIZE_UNKNOWN = 0xFFFFFFFF
OTA_WITH_SEQUENTIAL_WRITES = 0xFFFFFFFE
WIFI_REASON = {"NO_AP_FOUND": 201, "WRONG_PASSWORD": 15, "CONNECT_FAIL": 202}
WIFI_SCAN_TIME = 1.5  # seconds a failed attempt takes (a full scan that finds no AP)

# net_connect results (src/transport.c)
NET_OK, NET_DNS, NET_CONNECT, NET_TLS, NET_TIMEOUT, NET_NO_ROUTE, NET_CA_PARSE = 0, 1, 2, 3, 4, 5, 6
MBEDTLS_ERR_X509_CERT_VERIFY_FAILED = -0x2700
MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE = -0x7780


def carries_host_app(image) -> bool:
    """Whether a parsed image carries an executable built by harness.emu.idf.build."""
    return find_host_payload(getattr(image, "segments", ())) is not None


def _err(name: str) -> int:
    return ERR[name]


class _OtaHandle:
    def __init__(self, part: Partition, erase_on_write: bool):
        self.part = part
        self.need_erase = erase_on_write
        self.wrote_size = 0


class IdfRuntime:
    """One run of an ESP-IDF host app on the chip."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.uart = ctx.uart
        self.flash = ctx.flash
        self.chip = ctx.cfg.chip
        self.net = NetHost(self)
        self.wifi_wanted: tuple[str, str] | None = None
        self.rollback = True
        self.anti_rollback = False
        self.efuse = Efuse(ctx.cfg.flash_file)
        self.ota: dict[int, _OtaHandle] = {}
        self.ota_next = 0
        self.nvs: dict[str, NvsPartition] = {}
        self.nvs_handles: dict[int, tuple[str, int, bool]] = {}
        self.nvs_next = 1
        self.ops = {name[3:]: getattr(self, name) for name in dir(self) if name.startswith("op_")}
        self.uart.control_listeners.append(self._on_control)

    # NetHost asks these of its runtime
    def check_interrupt(self) -> None:
        pass

    def _on_control(self, message: dict) -> None:
        if "wifi" in message:
            up = bool(message["wifi"])
            self.net.set_link(up)
            if up and self.wifi_wanted is not None:
                # the station reconnects by itself when the AP is back (the example's disconnect handler)
                self.net._connect(0, *self.wifi_wanted)

    # -- running ------------------------------------------------------------------------------------------
    def run(self) -> int:
        image = self.ctx.image
        digest = (image.calculated_sha256 or hashlib.sha256(repr(image.segments).encode()).digest()).hex()
        boot_ms = int((time.monotonic() - self.ctx.started) * 1000) if self.ctx.started else 0
        mac = self.ctx.cfg.mac.hex()
        args = [str(boot_ms), hex(self.ctx.offset), hex(self.flash.size), str(RESET_REASON.get(self.ctx.run.cause, 1)),
                mac, str(self._efuse_secure_version())]
        try:
            code = run_host_app(self.uart, image, digest, args, self._dispatch, prefix="hil-idf-")
        except OSError as e:
            self.uart.event("log", msg=f"cannot start the app: {e}")
            self.uart.write(f"\r\nE (0) cpu_start: app could not start: {e}\r\n".encode())
            time.sleep(1.0)
            return EXIT_REBOOT
        self.net.reset()
        return self._exit(code)

    def _exit(self, code: int) -> int:
        if code in (APP_EXIT_RESTART, APP_EXIT_PANIC):
            self.uart.event("app-exit", reason="restart" if code == APP_EXIT_RESTART else "panic")
            return EXIT_REBOOT
        # Something the app's panic handler did not catch (or the runtime's own failure).
        why = f"signal {-code}" if code < 0 else f"exit status {code}"
        self.uart.event("app-exit", reason="crash", detail=why)
        self.uart.write(f"\r\nGuru Meditation Error: Core  0 panic'ed (Unhandled debug exception). "
                        f"Exception was unhandled.\r\n(the app process ended: {why})\r\n\r\nRebooting...\r\n".encode())
        return EXIT_REBOOT

    def _dispatch(self, body: bytes) -> _Reply:
        name, args = _decode(body)
        op = self.ops.get(name)
        if op is None:
            return _Reply(ERR["ESP_ERR_NOT_SUPPORTED"]).log("E", "hil", f"unknown board call {name}")
        try:
            return op(*args)
        except _Fail as f:
            reply = _Reply(f.status)
            reply.logs = f.logs
            return reply
        except rules.OtaError as e:
            return _Reply(ERR.get(e.code, ESP_FAIL))
        except NvsError as e:
            return _Reply(e.code)
        except Exception as e:
            if type(e).__name__ == "PowerCut":
                raise
            import traceback

            self.uart.event("log", msg=f"board call {name} failed: {traceback.format_exc()}")
            return _Reply(ESP_FAIL)

    def _efuse_secure_version(self) -> int:
        return self.efuse.read_secure_version()

    # -- esp_efuse ------------------------------------------------------------------------------------------
    def op_efuse_secure_version(self, _a: int = 0, _b: int = 0) -> _Reply:
        """``esp_efuse_read_secure_version``: the chip's eFuse as it is now (the app may have burnt it)."""
        return _Reply(ESP_OK, self._efuse_secure_version())

    def op_efuse_update_secure_version(self, secure_version: int, _b: int = 0) -> _Reply:
        """``esp_efuse_update_secure_version``."""
        done = self.efuse.update_secure_version(secure_version)
        reply = _Reply(ERR.get(done.code, ESP_FAIL) if done.code != "ESP_OK" else ESP_OK)
        if done.message:
            reply.log(done.level or "I", "efuse", done.message)
        return reply

    # -- flash ---------------------------------------------------------------------------------------------
    def _check(self, addr: int, length: int) -> None:
        if addr < 0 or length < 0 or addr + length > self.flash.size:
            raise _Fail(ERR["ESP_ERR_INVALID_ARG"])

    def op_app_config(self, rollback: int, anti_rollback: int) -> _Reply:
        self.rollback = bool(rollback)
        self.anti_rollback = bool(anti_rollback)
        return _Reply()

    def op_flash_read(self, addr: int, length: int) -> _Reply:
        self._check(addr, length)
        return _Reply(ESP_OK, self.flash.read(addr, length))

    def op_flash_write(self, addr: int, data: bytes) -> _Reply:
        self._check(addr, len(data))
        self.flash.program(addr, data)
        return _Reply()

    def op_flash_erase(self, addr: int, length: int) -> _Reply:
        self._check(addr, length)
        if addr % SECTOR_SIZE or length % SECTOR_SIZE:
            raise _Fail(ERR["ESP_ERR_INVALID_ARG"])
        self.flash.erase_range(addr, length)
        return _Reply()

    # -- esp_ota_ops -----------------------------------------------------------------------------------------
    def _table(self) -> PartitionTable:
        table = read_partition_table(self.flash)
        if table is None:
            raise _Fail(ERR["ESP_ERR_NOT_FOUND"])
        return table

    def _otadata(self, table: PartitionTable) -> bytes | None:
        part = table.otadata
        return None if part is None else self.flash.read(part.offset, 2 * OTADATA_SECTOR_SIZE)

    def _running(self, table: PartitionTable) -> Partition | None:
        return table.find_at(self.ctx.offset)

    def _apply(self, table: PartitionTable, writes: list) -> None:
        part = table.otadata
        for w in writes:
            addr = w.address(part)
            self.flash.erase_sector(addr)
            if w.entry is not None:
                self.flash.program(addr, w.entry.pack())

    def _verify(self, part: Partition, reply_logs: list) -> rules.SlotCheck:
        check = verify_image(self.flash.read(part.offset, part.size), chip=self.chip, partition_size=part.size,
                             address=part.offset)
        for line in check.log:
            reply_logs.append(("I", "esp_image", line))
        if not check.ok and check.reason:
            reply_logs.append(("E", "esp_image", check.reason))
        return rules.SlotCheck.from_image_check(check)

    def op_ota_begin(self, addr: int, image_size: int) -> _Reply:
        table = self._table()
        target = table.find_at(addr)
        running = self._running(table)
        otadata = self._otadata(table)
        refusal = rules.ota_begin_refusal(table, otadata, running, target, rollback=self.rollback)
        if refusal is not None:
            code = refusal.split(":", 1)[0]
            logs = []
            if code == "ESP_ERR_OTA_ROLLBACK_INVALID_STATE":
                logs.append(("E", "esp_ota_ops", "Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)"))
            raise _Fail(ERR[code], *logs)
        assert target is not None
        image_size &= 0xFFFFFFFF
        if image_size not in (OTA_SIZE_UNKNOWN, OTA_WITH_SEQUENTIAL_WRITES) and image_size > target.size:
            raise _Fail(ERR["ESP_ERR_INVALID_SIZE"])
        self._apply(table, rules.ota_begin_writes(table, otadata, running, target, idf=rules.IDF_V5_5,
                                                  rollback=self.rollback))
        if image_size in (0, OTA_SIZE_UNKNOWN):
            self.flash.erase_range(target.offset, target.size)
        elif image_size != OTA_WITH_SEQUENTIAL_WRITES:
            length = (image_size + SECTOR_SIZE - 1) // SECTOR_SIZE * SECTOR_SIZE
            self.flash.erase_range(target.offset, min(length, target.size))
        self.ota_next += 1
        self.ota[self.ota_next] = _OtaHandle(target, image_size == OTA_WITH_SEQUENTIAL_WRITES)
        return _Reply(ESP_OK, self.ota_next)

    def op_ota_write(self, handle: int, offset: int, data: bytes) -> _Reply:
        it = self.ota.get(handle)
        if it is None:
            raise _Fail(ERR["ESP_ERR_INVALID_ARG"], ("E", "esp_ota_ops", "not found the handle"))
        if offset < 0 and it.wrote_size == 0 and data and data[0] != 0xE9:
            raise _Fail(ERR["ESP_ERR_OTA_VALIDATE_FAILED"],
                        ("E", "esp_ota_ops", f"OTA image has invalid magic byte (expected 0xE9, saw 0x{data[0]:02x})"))
        part = it.part
        at = it.wrote_size if offset < 0 else offset
        if at > part.size:
            raise _Fail(ERR["ESP_ERR_INVALID_ARG"])
        if at + len(data) > part.size:
            raise _Fail(ERR["ESP_ERR_INVALID_SIZE"])
        if offset < 0 and it.need_erase and data:
            first = at // SECTOR_SIZE
            last = (at + len(data) - 1) // SECTOR_SIZE
            if at % SECTOR_SIZE == 0:
                self.flash.erase_range(part.offset + at, (last - first + 1) * SECTOR_SIZE)
            elif first != last:
                self.flash.erase_range(part.offset + (first + 1) * SECTOR_SIZE, (last - first) * SECTOR_SIZE)
        self.flash.program(part.offset + at, data)
        if offset < 0:
            it.wrote_size += len(data)
        return _Reply()

    def op_ota_end(self, handle: int, _unused: int = 0) -> _Reply:
        it = self.ota.pop(handle, None)
        if it is None:
            raise _Fail(ERR["ESP_ERR_NOT_FOUND"])
        if it.wrote_size == 0:
            raise _Fail(ERR["ESP_ERR_INVALID_ARG"])
        logs: list = []
        check = self._verify(it.part, logs)
        if not check.ok:
            raise _Fail(ERR["ESP_ERR_OTA_VALIDATE_FAILED"], *logs)
        reply = _Reply()
        reply.logs = logs
        return reply

    def op_ota_abort(self, handle: int, _unused: int = 0) -> _Reply:
        if self.ota.pop(handle, None) is None:
            raise _Fail(ERR["ESP_ERR_NOT_FOUND"])
        return _Reply()

    def op_ota_set_boot_partition(self, addr: int, _unused: int = 0) -> _Reply:
        table = self._table()
        target = table.find_at(addr)
        if target is None:
            raise _Fail(ERR["ESP_ERR_NOT_FOUND"])
        if not target.is_app:
            raise _Fail(ERR["ESP_ERR_INVALID_ARG"])
        logs: list = []
        check = self._verify(target, logs)
        if not check.ok:
            raise _Fail(ERR["ESP_ERR_OTA_VALIDATE_FAILED"], *logs)
        try:
            writes = rules.set_boot_partition(table, self._otadata(table), target, rollback=self.rollback,
                                              idf=rules.IDF_V5_5, target_check=check,
                                              anti_rollback=self.anti_rollback,
                                              efuse_secure_version=self._efuse_secure_version())
        except rules.OtaError as e:
            if e.code == "ESP_ERR_OTA_SMALL_SEC_VER":
                logs.append(("E", "esp_ota_ops", "This a new partition can not be booted due to a secure version is "
                                                 "lower than stored in efuse. Partition will be erased."))
                self.flash.erase_range(target.offset, target.size)
            raise _Fail(ERR.get(e.code, ESP_FAIL), *logs) from None
        self._apply(table, writes)
        reply = _Reply()
        reply.logs = logs
        return reply

    def op_ota_boot_partition(self, _a: int = 0, _b: int = 0) -> _Reply:
        table = self._table()
        p = rules.get_boot_partition(table, self._otadata(table))
        return _Reply(ESP_OK, -1 if p is None else p.offset)

    def op_ota_next_update(self, addr: int, _b: int = 0) -> _Reply:
        table = self._table()
        p = rules.get_next_update(table, table.find_at(addr))
        return _Reply(ESP_OK, -1 if p is None else p.offset)

    def op_ota_mark_valid(self, _a: int = 0, _b: int = 0) -> _Reply:
        table = self._table()
        if table.otadata is None:
            raise _Fail(ERR["ESP_ERR_NOT_FOUND"])
        try:
            writes = rules.mark_app_valid(table, self._otadata(table), self._running(table))
        except rules.OtaError as e:
            raise _Fail(ERR.get(e.code, ESP_FAIL)) from None
        self._apply(table, writes)
        reply = _Reply()
        if writes and self.anti_rollback:
            # esp_ota_current_ota_is_workable(true): once the entry is rewritten VALID, esp_ota_set_anti_rollback()
            # burns the running app's secure_version (esp_efuse_update_secure_version) and returns its result
            desc = self.ctx.image.app_desc
            if desc is None:
                raise _Fail(ERR["ESP_ERR_NOT_FOUND"])
            done = self.efuse.update_secure_version(desc.secure_version)
            if done.message:
                reply.log(done.level or "I", "efuse", done.message)
            if done.code != "ESP_OK":
                reply.status = ERR.get(done.code, ESP_FAIL)
        return reply

    def _check_slot(self):
        return rules.image_slot_check(self.flash.read, chip=self.chip)

    def op_ota_mark_invalid(self, _a: int = 0, _b: int = 0) -> _Reply:
        table = self._table()
        try:
            writes = rules.mark_app_invalid_rollback(table, self._otadata(table), self._running(table),
                                                     check_slot=self._check_slot(),
                                                     anti_rollback=self.anti_rollback,
                                                     efuse_secure_version=self._efuse_secure_version())
        except rules.OtaError as e:
            logs = []
            if e.code == "ESP_ERR_OTA_ROLLBACK_FAILED":
                logs.append(("E", "esp_ota_ops", "Rollback is not possible, do not have any suitable apps in slots"))
            raise _Fail(ERR.get(e.code, ESP_FAIL), *logs) from None
        self._apply(table, writes)
        return _Reply().log("I", "esp_ota_ops", "Rollback to previously worked partition. Restart.")

    def op_ota_last_invalid(self, _a: int = 0, _b: int = 0) -> _Reply:
        table = self._table()
        if table.otadata is None:
            return _Reply(ESP_OK, -1)
        p = rules.last_invalid_partition(table, self._otadata(table))
        return _Reply(ESP_OK, -1 if p is None else p.offset)

    def op_ota_state(self, addr: int, _b: int = 0) -> _Reply:
        table = self._table()
        p = table.find_at(addr)
        if p is None or not p.is_ota_app:
            raise _Fail(ERR["ESP_ERR_NOT_SUPPORTED"])
        if table.otadata is None:  # read_otadata(): the log line, then ESP_ERR_NOT_FOUND
            raise _Fail(ERR["ESP_ERR_NOT_FOUND"], ("E", "esp_ota_ops", "not found otadata"))
        state = rules.app_state(table, self._otadata(table), p)
        if state is None:
            raise _Fail(ERR["ESP_ERR_NOT_FOUND"])
        return _Reply(ESP_OK, int(state))

    def op_ota_rollback_possible(self, _a: int = 0, _b: int = 0) -> _Reply:
        table = self._table()
        ok = rules.check_rollback_is_possible(table, self._otadata(table), self._check_slot(),
                                              anti_rollback=self.anti_rollback,
                                              efuse_secure_version=self._efuse_secure_version())
        return _Reply(ESP_OK, 1 if ok else 0)

    # -- NVS -------------------------------------------------------------------------------------------------
    def _nvs_partition(self, label: str) -> Partition:
        table = read_partition_table(self.flash)
        part = None if table is None else table.find(label)
        if part is None or part.type != 1 or part.subtype != 2:
            raise _Fail(ERR["ESP_ERR_NOT_FOUND"])
        return part

    def _nvs_flash(self) -> NvsFlash:
        return NvsFlash(self.flash.read, self.flash.program, self.flash.erase_range)

    def op_nvs_init(self, label: bytes, _b: int = 0) -> _Reply:
        name = label.decode()
        if name in self.nvs:
            return _Reply()
        part = self._nvs_partition(name)
        store = NvsPartition(self._nvs_flash(), part.offset, part.size)
        status = store.load()
        if status == 0:
            self.nvs[name] = store
        return _Reply(status)

    def op_nvs_deinit(self, label: bytes, _b: int = 0) -> _Reply:
        if self.nvs.pop(label.decode(), None) is None:
            raise _Fail(NVS_ERR["NOT_INITIALIZED"])
        return _Reply()

    def op_nvs_erase(self, label: bytes, _b: int = 0) -> _Reply:
        name = label.decode()
        if name in self.nvs:
            raise _Fail(NVS_ERR["INVALID_STATE"])
        part = self._nvs_partition(name)
        self.flash.erase_range(part.offset, part.size)
        return _Reply()

    def op_nvs_open(self, label: bytes, namespace: bytes, mode: int) -> _Reply:
        store = self.nvs.get(label.decode())
        if store is None:
            raise _Fail(NVS_ERR["NOT_INITIALIZED"])
        ns = namespace.decode()
        if not ns or len(namespace) > 15:
            raise _Fail(NVS_ERR["INVALID_NAME"] if not ns else NVS_ERR["KEY_TOO_LONG"])
        index = store.namespace(ns, create=mode == 1)
        handle = self.nvs_next
        self.nvs_next += 1
        self.nvs_handles[handle] = (label.decode(), index, mode == 1)
        return _Reply(ESP_OK, handle)

    def _nvs_handle(self, handle: int) -> tuple[NvsPartition, int, bool]:
        entry = self.nvs_handles.get(handle)
        if entry is None:
            raise _Fail(NVS_ERR["INVALID_HANDLE"])
        label, index, writable = entry
        store = self.nvs.get(label)
        if store is None:
            raise _Fail(NVS_ERR["INVALID_HANDLE"])
        return store, index, writable

    @staticmethod
    def _key(key: bytes) -> str:
        if not key:
            raise _Fail(ERR["ESP_ERR_INVALID_ARG"])
        if len(key) > 15:
            raise _Fail(NVS_ERR["KEY_TOO_LONG"])
        return key.decode()

    def op_nvs_set(self, handle: int, key: bytes, typ: int, value: bytes) -> _Reply:
        store, index, writable = self._nvs_handle(handle)
        if not writable:
            raise _Fail(NVS_ERR["READ_ONLY"])
        if typ == 0x21 and len(value) > 4000:
            raise _Fail(NVS_ERR["VALUE_TOO_LONG"])
        store.write(index, self._key(key), 0x41 if typ == 0x42 else typ, value)
        return _Reply()

    def op_nvs_get(self, handle: int, key: bytes, typ: int) -> _Reply:
        store, index, _ = self._nvs_handle(handle)
        item = store.find(index, self._key(key))
        want = 0x41 if typ == 0x42 else typ
        if item is None:
            raise _Fail(NVS_ERR["NOT_FOUND"])
        if item.type != want:
            raise _Fail(NVS_ERR["TYPE_MISMATCH"])
        return _Reply(ESP_OK, item.value)

    def op_nvs_erase_key(self, handle: int, key: bytes) -> _Reply:
        store, index, writable = self._nvs_handle(handle)
        if not writable:
            raise _Fail(NVS_ERR["READ_ONLY"])
        store.erase_key(index, self._key(key))
        return _Reply()

    def op_nvs_erase_all(self, _label: bytes, handle: int) -> _Reply:
        store, index, writable = self._nvs_handle(handle)
        if not writable:
            raise _Fail(NVS_ERR["READ_ONLY"])
        store.erase_namespace_items(index)
        return _Reply()

    def op_nvs_commit(self, _label: bytes, handle: int) -> _Reply:
        self._nvs_handle(handle)
        return _Reply()

    def op_nvs_close(self, _label: bytes, handle: int) -> _Reply:
        self.nvs_handles.pop(handle, None)
        return _Reply()

    # -- Wi-Fi and sockets -------------------------------------------------------------------------------------
    def op_wifi_connect(self, ssid: bytes, password: bytes) -> _Reply:
        net = self.net
        net._active(0, True)
        self.wifi_wanted = (ssid.decode(), password.decode())
        net._connect(0, *self.wifi_wanted)
        while net._status(0) == net.status_codes["CONNECTING"]:
            time.sleep(0.02)
        status = net._status(0)
        if status == net.status_codes["GOT_IP"]:
            return _Reply(ESP_OK, net.ip.encode())
        time.sleep(WIFI_SCAN_TIME)
        reason = next((WIFI_REASON[k] for k, v in net.status_codes.items() if v == status and k in WIFI_REASON), 201)
        return _Reply(reason)

    def op_wifi_disconnect(self) -> _Reply:
        self.wifi_wanted = None
        self.net._disconnect(0)
        return _Reply()

    def op_net_connect(self, host: bytes, port: int, timeout_ms: int, tls: int, ca: bytes, verify: int,
                       skip_cn: int, common_name: bytes) -> _Reply:
        net = self.net
        if not net._connected():
            return _Reply(NET_NO_ROUTE)
        hostname = host.decode()
        try:
            infos = socket.getaddrinfo(hostname, port, socket.AF_INET, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return _Reply(NET_DNS, 202)
        handle = net._new(2, 1)
        net._settimeout(handle, max(0.001, timeout_ms / 1000))
        try:
            net._connect_sock(handle, [infos[0][4][0], port])
        except OSError as e:
            net._close(handle)
            if e.errno == errno.ETIMEDOUT or e.errno == errno.EINPROGRESS:
                return _Reply(NET_TIMEOUT)
            return _Reply(NET_CONNECT, e.errno or errno.ECONNREFUSED)
        if tls:
            if verify and b"-----BEGIN CERTIFICATE-----" not in ca:
                net._close(handle)
                return _Reply(NET_CA_PARSE, -0x2180)
            server_name = None if skip_cn else (common_name.decode() or hostname)
            try:
                net._ssl_wrap(handle, 2 if verify else 0, base64.b64encode(ca).decode() if verify else None,
                              server_name, False)
            except ValueError:
                net._close(handle)
                return _Reply(NET_TLS, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED, 1)
            except OSError:
                net._close(handle)
                return _Reply(NET_TLS, MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE, 0)
        return _Reply(ESP_OK, handle)

    def op_net_send(self, handle: int, timeout_ms: int, data: bytes) -> _Reply:
        s = self.net.socks.get(handle)
        if s is None:
            return _Reply(NET_CONNECT, errno.EBADF)
        s.timeout = max(0.001, timeout_ms / 1000)
        try:
            sent = self.net._send(handle, base64.b64encode(data).decode(), True)
        except OSError as e:
            return _Reply(NET_CONNECT, e.errno or errno.ECONNRESET)
        return _Reply(ESP_OK, sent)

    def op_net_recv(self, handle: int, length: int, timeout_ms: int) -> _Reply:
        s = self.net.socks.get(handle)
        if s is None:
            return _Reply(NET_CONNECT, errno.EBADF)
        s.timeout = max(0.001, timeout_ms / 1000)
        try:
            data = self.net._recv_into(handle, max(1, min(length, 1 << 16)))
        except OSError as e:
            if e.errno == errno.ETIMEDOUT or e.errno == errno.EAGAIN:
                return _Reply(NET_TIMEOUT)
            return _Reply(NET_CONNECT, e.errno if isinstance(e.errno, int) and e.errno > 0 else errno.ECONNRESET)
        except ssl.SSLError:
            return _Reply(NET_CONNECT, errno.ECONNRESET)
        return _Reply(ESP_OK, data)

    def op_net_close(self, handle: int) -> _Reply:
        self.net._close(handle)
        return _Reply()


def run_idf_app(ctx: AppContext) -> int:
    return IdfRuntime(ctx).run()
