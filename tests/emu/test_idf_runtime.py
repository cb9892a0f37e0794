"""ESP-IDF apps on the virtual ESP32: the runtime under a test program (tests/emu/idf_apps/probe).

The program reads commands on the console and answers with ``probe:`` log lines; the tests check what the
real chip does: start-up lines, panics (abort, a NULL store, a stack overflow, ESP_ERROR_CHECK) that print
ESP-IDF's report and reset the chip, the heap's limit, the otadata rules behind esp_ota_*, NVS kept in flash
across resets, and an app process that ends with its chip. Helpers here are shared with test_idf_client.py.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from harness.emu.idf.build import build_app
from harness.emu.idf.nvs import Flash as NvsFlash
from harness.emu.idf.nvs import NvsPartition
from harness.servers.http import HttpServer
from harness.transport import open_port

pytestmark = pytest.mark.timeout(300)

PROBE = Path(__file__).with_name("idf_apps") / "probe"
FLASH_SIZE = 4 * 1024 * 1024


def write_flash_file(path: str, build, size: int = FLASH_SIZE) -> None:
    """What ``idf.py flash`` writes, on an erased chip."""
    with open(path, "wb") as f:
        f.write(b"\xff" * size)
        for offset, file in build.flash_files:
            f.seek(offset)
            f.write(file.read_bytes())


class IdfBoard:
    """A virtual ESP32 running an ESP-IDF host build, its console log and its serial line."""

    def __init__(self, board, console_path: str, flash_path: str):
        self.board = board
        self.console_path = console_path
        self.flash_path = flash_path
        self.mark = 0
        self._port = None

    @property
    def control(self):
        return self.board.control

    def console(self) -> str:
        try:
            return open(self.console_path, "rb").read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def since(self) -> int:
        """A mark: later waits look only at what the console shows after it."""
        self.mark = len(self.console())
        return self.mark

    def wait(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.console()[self.mark:])
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the console within {timeout} s:\n"
                                     f"{self.console()[self.mark:][-3000:]}\n--- board stderr ---\n"
                                     f"{self.board.stderr_text()[-2000:]}")
            time.sleep(0.05)

    def waiting_for_url(self, version: str = "1") -> IdfBoard:
        """Wait until the OTA client runs ``version`` and waits for a URL on the serial line."""
        self.wait(r"ota_client: Running firmware version: %s\r\n" % re.escape(version))
        self.wait(r"Waiting for the firmware URL on the serial line")
        return self

    def send(self, line: str) -> None:
        if self._port is None:
            # DTR and RTS released: opening the port must neither reset the chip nor select download mode
            self._port = open_port(self.board.serial_url, 115200, timeout=0.2, release_lines=True)
        self._port.write((line + "\n").encode())
        self._port.flush()

    def flash(self, offset: int, length: int) -> bytes:
        with open(self.flash_path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def close(self) -> None:
        if self._port is not None and self._port.is_open:
            self._port.close()


@pytest.fixture
def idf_board(start_board, tmp_path):
    """Factory: a virtual ESP32 with a host build flashed as ``idf.py flash`` would, powered on."""
    opened: list[IdfBoard] = []

    def start(build, name: str = "idf") -> IdfBoard:
        flash = str(tmp_path / f"{name}.bin")
        write_flash_file(flash, build)
        console = str(tmp_path / f"{name}.console")
        board = start_board("esp32", flash_file=flash, name=name)
        b = IdfBoard(board, console, flash)
        opened.append(b)
        return b

    yield start
    for b in opened:
        b.close()


@pytest.fixture
def server():
    """The harness's HTTP server, for a client on a board to update from."""
    srv = HttpServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def probe_build():
    return build_app(PROBE)


@pytest.fixture
def probe(idf_board, probe_build):
    b = idf_board(probe_build, "probe")
    b.wait(r"probe: ready")
    return b


def test_starts_like_an_esp_idf_app(probe):
    text = probe.console()
    for line in ("cpu_start: Pro cpu start user code", "app_init: Project name:     idf_probe",
                 "app_init: App version:      0.1", "app_init: ESP-IDF:          v5.5.1",
                 "main_task: Calling app_main()", "probe: reset reason 1"):
        assert line in text
    # ESP-IDF's log format, CRLF line endings, no colours (CONFIG_LOG_COLORS=n)
    assert re.search(r"\r\nI \(\d+\) probe: ready\r\n", text)
    assert "\x1b[" not in text


def test_abort_prints_the_panic_report_and_resets(probe):
    probe.since()
    probe.send("abort")
    probe.wait(r"abort\(\) was called at PC 0x[0-9a-f]{8} on core 0")
    probe.wait(r"Backtrace: 0x[0-9a-f]{8}:0x[0-9a-f]{8}")
    probe.wait(r"ELF file SHA256: [0-9a-f]{16}\r\n\r\nRebooting\.\.\.")
    probe.wait(r"rst:0xc \(SW_CPU_RESET\)")
    probe.wait(r"probe: reset reason 3")
    probe.wait(r"probe: ready")


def test_a_null_store_is_a_guru_meditation(probe):
    probe.since()
    probe.send("null")
    probe.wait(r"Guru Meditation Error: Core  0 panic'ed \(StoreProhibited\)\. Exception was unhandled\.")
    probe.wait(r"Rebooting\.\.\.")
    probe.wait(r"probe: ready")


def test_a_stack_overflow_is_detected_and_resets(probe):
    probe.since()
    probe.send("overflow")
    probe.wait(r"\*\*\*ERROR\*\*\* A stack overflow in task main has been detected\.")
    probe.wait(r"Rebooting\.\.\.")
    probe.wait(r"probe: ready")


def test_esp_error_check_names_the_expression_then_aborts(probe):
    probe.since()
    probe.send("check")
    m = probe.wait(r"ESP_ERROR_CHECK failed: esp_err_t 0x104 \(ESP_ERR_INVALID_SIZE\) at 0x[0-9a-f]{8}\r\n"
                   r"file: \"(.*?)\" line \d+\r\nfunc: command\r\nexpression: ESP_ERR_INVALID_SIZE")
    assert m.group(1) == "./main/probe.c"
    probe.wait(r"abort\(\) was called at PC")
    probe.wait(r"probe: ready")


def test_the_heap_is_an_esp32_s(probe):
    probe.since()
    probe.send("heap")
    m = probe.wait(r"probe: heap free (\d+), (\d+) blocks of 16 KiB")
    free, blocks = int(m.group(1)), int(m.group(2))
    assert 150 * 1024 < free <= 200 * 1024
    assert blocks == free // (16 * 1024 + 8)  # each block also costs its heap header
    assert int(probe.wait(r"probe: heap after (\d+)").group(1)) == free


def test_restart_is_a_software_reset_and_delays_sleep(probe):
    probe.send("sleep")
    ticks = int(probe.wait(r"probe: slept (\d+) ticks").group(1))
    assert 50 <= ticks <= 60  # CONFIG_FREERTOS_HZ=100
    probe.since()
    probe.send("restart")
    probe.wait(r"rst:0xc \(SW_CPU_RESET\),boot:0x13")
    probe.wait(r"probe: reset reason 3")


def test_ota_calls_follow_app_update_s_rules(probe):
    probe.send("running")
    # the bootloader recorded ota_0 (seq 1, VALID) when it booted it from blank otadata
    probe.wait(r"probe: running ota_0 at 0x10000 state ESP_OK 0x2")
    probe.send("ota-running")
    probe.wait(r"probe: begin on running: ESP_ERR_OTA_PARTITION_CONFLICT")
    probe.send("ota-bad-magic")
    probe.wait(r"E \(\d+\) esp_ota_ops: OTA image has invalid magic byte \(expected 0xE9, saw 0x00\)")
    probe.wait(r"probe: bad magic: begin ESP_OK write ESP_ERR_OTA_VALIDATE_FAILED end ESP_ERR_INVALID_ARG")


def test_nvs_is_kept_in_the_nvs_partition_across_resets(probe):
    probe.send("nvs-set hello-flash")
    probe.wait(r"probe: nvs set: ESP_OK")
    probe.since()
    probe.send("restart")
    probe.wait(r"probe: ready")
    probe.send("nvs-get")
    probe.wait(r"probe: nvs get: ESP_OK hello-flash")
    # ESP-IDF's page format in the flash file: an active page holding the namespace and the string
    store = NvsPartition(NvsFlash(probe.flash, None, None), 0x9000, 0x4000)
    assert store.load() == 0
    ns = store.namespaces["probe"]
    assert store.find(ns, "word").value == b"hello-flash\0"


def test_the_app_process_ends_with_its_chip(probe):
    chip = [e for e in probe.control.events() if e["event"] == "chip-start"][-1]["pid"]
    children = Path(f"/proc/{chip}/task/{chip}/children").read_text().split()
    apps = [int(pid) for pid in children if os.readlink(f"/proc/{pid}/exe").endswith(".elf")]
    assert len(apps) == 1
    probe.control.power(False)
    deadline = time.monotonic() + 10
    while _alive(apps[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(apps[0])


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not re.search(r"^State:\s+Z", status, re.M)  # a zombie has ended; only its reaping is left
