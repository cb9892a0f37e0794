"""A virtual board as a whole: boot from flash, power cuts through the control channel, bad input.

Flash is written and read with esptool as a library (``harness.flashing``) over the
board's rfc2217:// port, exactly as the harness does on a bench.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from harness.emu.control import ControlClient, ControlError
from harness.emu.flash import SECTOR_SIZE
from harness.esp import (
    OtaSelectEntry,
    OtaState,
    build_app,
    build_bootloader,
    build_esp8266_app,
    micropython_esp32_ota,
    otadata_region,
    parse_otadata,
)
from harness.flashing import Flasher, FlashingError

TABLE = micropython_esp32_ota("4MB")
OTA0, OTA1 = TABLE.find("ota_0"), TABLE.find("ota_1")
OTADATA = TABLE.otadata


def wait_console(board, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
    """Wait until the board's console log (from byte ``start``) matches ``pattern``."""
    path = board.console_path
    deadline = time.monotonic() + timeout
    while True:
        text = open(path, "rb").read()[start:].decode(errors="replace")
        m = re.search(pattern, text)
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not on the console within {timeout} s; it shows:\n{text[-3000:]}")
        time.sleep(0.05)


def console_size(board) -> int:
    return os.path.getsize(board.console_path)


@pytest.fixture
def esp32(start_board, tmp_path):
    board = start_board("esp32")
    board.console_path = str(tmp_path / "esp32-0.console")
    return board


def flash_two_slots(board, otadata: bytes, corrupt_ota1_at: int | None = None) -> None:
    v2 = bytearray(build_app("esp32", project="demo", version="2.0.0", size=0x30000, seed=1).to_bytes())
    if corrupt_ota1_at is not None:
        v2[corrupt_ota1_at] ^= 0xFF
    with Flasher(board.serial_url, chip="esp32", after="no-reset") as f:
        f.write([
            (0x1000, build_bootloader("esp32").to_bytes()),
            (0x8000, TABLE.to_bytes()),
            (OTADATA.offset, otadata),
            (OTA0.offset, build_app("esp32", project="demo", version="1.0.0", size=0x30000).to_bytes()),
            (OTA1.offset, bytes(v2)),
        ])


def read_otadata(board) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    with Flasher(board.serial_url, chip="esp32", after="no-reset") as f:
        return parse_otadata(f.read(OTADATA.offset, 2 * SECTOR_SIZE))


def boot_events(board, since: int) -> list[dict]:
    return [e for e in board.control.events(since) if e["event"] == "boot" and e.get("mode") == "flash"]


def power_cycle(board) -> int:
    ctl = board.control
    ctl.power(False)
    since = ctl.status()["event_seq"]
    ctl.power(True)
    return since


def test_new_image_goes_pending_verify_then_aborted_and_falls_back(esp32):
    # ota_1 (seq 2) was just written and set to boot, never run: state NEW.
    flash_two_slots(esp32, otadata_region(OtaSelectEntry.make(1, OtaState.VALID),
                                          OtaSelectEntry.make(2, OtaState.NEW)))
    since = power_cycle(esp32)
    first = esp32.control.wait_event("boot", since=since, mode="flash")
    assert (first["result"], first["partition"], first["version"]) == ("app", "ota_1", "2.0.0")
    assert read_otadata(esp32)[1].state == OtaState.PENDING_VERIFY

    # The app never confirmed: the next boot aborts it and falls back to ota_0.
    mark = console_size(esp32)
    since = power_cycle(esp32)
    second = esp32.control.wait_event("boot", since=since, mode="flash")
    # ota_1's entry is now ABORTED (invalid), so otadata itself selects ota_0: no image fallback involved.
    assert (second["partition"], second["version"], second["fallback"]) == ("ota_0", "1.0.0", False)
    wait_console(esp32, r"App version:\s+1\.0\.0", start=mark)
    entries = read_otadata(esp32)
    assert entries[1].state == OtaState.ABORTED


def test_corrupt_selected_image_falls_back_with_the_reason_on_the_console(esp32):
    # A byte inside the first segment of ota_1: its checksum and SHA-256 no longer match.
    flash_two_slots(esp32, otadata_region(OtaSelectEntry.make(1, OtaState.VALID),
                                          OtaSelectEntry.make(2, OtaState.VALID)), corrupt_ota1_at=0x100)
    mark = console_size(esp32)
    since = power_cycle(esp32)
    event = esp32.control.wait_event("boot", since=since, mode="flash")
    assert (event["partition"], event["fallback"], event["selected"]) == ("ota_0", True, "ota_1")
    wait_console(esp32, r"E \(\d+\) esp_image: Checksum failed\. Calculated 0x[0-9a-f]+ read 0x[0-9a-f]+", start=mark)


def test_blank_otadata_boots_ota_0(esp32):
    flash_two_slots(esp32, b"\xff" * 2 * SECTOR_SIZE)
    since = power_cycle(esp32)
    event = esp32.control.wait_event("boot", since=since, mode="flash")
    assert (event["partition"], event["version"], event["fallback"]) == ("ota_0", "1.0.0", False)
    wait_console(esp32, r"rst:0x1 \(POWERON_RESET\),boot:0x13 \(SPI_FAST_FLASH_BOOT\)")


def test_esp8266_rom_loads_the_image_at_zero_and_rejects_a_bad_checksum(start_board, tmp_path):
    board = start_board("esp8266")
    board.console_path = str(tmp_path / "esp8266-0.console")
    image = bytearray(build_esp8266_app(project="demo", version="1.0.0").to_bytes())
    with Flasher(board.serial_url, chip="esp8266", after="no-reset") as f:
        f.write([(0, bytes(image))])
    since = power_cycle(board)
    assert board.control.wait_event("boot", since=since, mode="flash")["result"] == "app"

    image[0x20] ^= 0x01  # a byte of the first segment: the ROM's checksum no longer matches
    with Flasher(board.serial_url, chip="esp8266", after="no-reset") as f:
        f.write([(0, bytes(image))])
    since = power_cycle(board)
    assert board.control.wait_event("boot", since=since, mode="flash")["result"] == "checksum"


def test_power_cut_at_operation_n_keeps_exactly_the_operations_before_it(esp32):
    """Cut at op N while esptool writes; after power-on the flash holds ops 1..N-1 and nothing else."""
    image = build_app("esp32", size=0x20000, seed=5).to_bytes()
    region = 0x100000
    ctl = esp32.control
    with Flasher(esp32.serial_url, chip="esp32", after="no-reset") as f:
        f.erase_region(region, 0x20000)  # known starting state: all FF, one erase per sector so far
        start = ctl.stats()
        erases_before = {int(k, 16): v for k, v in start["erase_counts"].items()}
        cut = ctl.arm_cut(after_ops=40, policy="none")
        with pytest.raises(FlashingError):
            f.write([(region, image)], verify=False)
    status = ctl.status()
    assert status["power"] is False and status["cut"] is None  # the cut fired and switched the board off

    ctl.power(True)
    stats = ctl.stats()
    assert stats["ops"] == cut["at_op"]  # op N was started (and torn with policy "none": no change)
    with Flasher(esp32.serial_url, chip="esp32", after="no-reset") as f:
        got = f.read(region, len(image))
    # Sectors erased by the write, and whole pages that hold the new bytes.
    counts = {int(k, 16): v for k, v in stats["erase_counts"].items()}
    erased = sum(counts.get(a, 0) - erases_before.get(a, 0) for a in range(region, region + 0x20000, SECTOR_SIZE))
    pages = 0
    for p in range(0, len(image), 256):
        chunk, want = got[p:p + 256], image[p:p + 256]
        if chunk == want and want != b"\xff" * len(want):
            pages += 1
        else:
            assert chunk == b"\xff" * len(chunk), f"page at +0x{p:x} is neither new nor erased"
    # Every operation before N is in flash: the erases and page programs add up to N-1.
    ops_done = cut["at_op"] - 1 - start["ops"]
    assert erased + pages == ops_done
    assert pages > 0 and erased > 0


def test_control_channel_rejects_bad_requests_and_keeps_serving(esp32):
    host, port = esp32.control_url[len("tcp://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        f = s.makefile("rwb")
        for line in (b"not json\n", b'{"cmd": "fly"}\n', b'{"cmd": "cut", "policy": "shred", "after_ops": 1}\n',
                     b'{"cmd": "power"}\n'):
            f.write(line)
            f.flush()
            reply = f.readline()
            assert b'"ok": false' in reply and b'"error"' in reply
    with pytest.raises(ControlError, match="already happened"):
        esp32.control.arm_cut(at_op=esp32.control.stats()["ops"])
    assert esp32.control.status()["power"] is True


def _emu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.emu", *args], capture_output=True, text=True, timeout=30)


def test_flash_file_of_the_wrong_size_is_one_line(tmp_path):
    path = tmp_path / "small.bin"
    path.write_bytes(b"\xff" * 1024)
    proc = _emu("--chip", "esp32", "--flash-file", str(path), "--flash-size", "4MB")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "1024 bytes" in lines[0] and "Traceback" not in proc.stderr


def test_unknown_chip_is_one_line(tmp_path):
    proc = _emu("--chip", "esp32s9", "--flash-file", str(tmp_path / "x.bin"))
    assert proc.returncode == 2 and "esp32s9" in proc.stderr and "Traceback" not in proc.stderr


def test_busy_port_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        proc = _emu("--chip", "esp32", "--flash-file", str(tmp_path / "x.bin"), "--serial-port", str(busy))
    assert proc.returncode == 2 and str(busy) in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, names", [
    (("--serial-port", "99999"), "--serial-port: '99999' is not a TCP port"),
    (("--en-delay", "-1"), "--en-delay: '-1' is not a delay"),
    (("--console-log", "/nonexistent-dir/c.log"), "--console-log: directory /nonexistent-dir does not exist"),
])
def test_bad_options_are_one_line(tmp_path, args, names):
    proc = _emu("--chip", "esp32", "--flash-file", str(tmp_path / "x.bin"), *args)
    assert proc.returncode == 2 and names in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_hil_prints_its_version():
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "--version"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("hil (esp-ota-hil) "), proc.stdout


def test_control_client_names_a_dead_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        ControlClient(f"tcp://127.0.0.1:{port}", timeout=1)
