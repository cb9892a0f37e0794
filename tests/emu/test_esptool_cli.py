"""Stock esptool (its CLI, in a subprocess) against virtual boards over rfc2217:// with the default reset.

Every command esptool users run on a bench, on both chip profiles, with and
without the flasher stub. Where a real ROM cannot do something (the ESP8266 ROM
has no MD5, read or erase-region command) esptool must fail the same way it
does on a real chip.
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
import sys

import pytest

# Stock esptool over RFC 2217 spends about 0.2 s per command renegotiating port settings
# (pyserial does so on every timeout change), so these take minutes, as on a board farm.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CHIP_TYPE = {"esp32": "ESP32-D0WD-V3 (revision v3.0)", "esp8266": "ESP8266EX"}


def esptool(board, *args: str, stub: bool = True, check: bool = True, timeout: float = 240) -> str:
    cmd = [sys.executable, "-m", "esptool", "--port", board.serial_url]
    if not stub:
        cmd.append("--no-stub")
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"esptool {' '.join(args)} failed ({proc.returncode}):\n{out}\n"
                             f"--- board stderr ---\n{board.stderr_text()}")
    if not check:
        return out if proc.returncode != 0 else "UNEXPECTED SUCCESS\n" + out
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rnd = random.Random(7)
    blob = bytes(rnd.getrandbits(8) for _ in range(0x9000))  # incompressible, not a multiple of the block size
    text = (b"The quick brown fox jumps over the lazy dog. " * 2000)[:0x12345]
    paths = {"random": d / "random.bin", "text": d / "text.bin"}
    paths["random"].write_bytes(blob)
    paths["text"].write_bytes(text)
    return {k: str(v) for k, v in paths.items()}


def sha(path_or_bytes) -> str:
    data = open(path_or_bytes, "rb").read() if isinstance(path_or_bytes, str) else path_or_bytes
    return hashlib.sha256(data).hexdigest()


both_modes = pytest.mark.parametrize("stub", [True, False], ids=["stub", "no-stub"])
both_chips = pytest.mark.parametrize("chip", ["esp32", "esp8266"])


@both_modes
@both_chips
def test_identify(start_board, chip, stub):
    board = start_board(chip)
    mac = board.info["mac"]
    out = esptool(board, "chip-id", stub=stub)
    assert f"Chip type:          {CHIP_TYPE[chip]}" in out
    assert f"MAC:                {mac}" in out

    out = esptool(board, "read-mac", stub=stub)
    assert f"MAC:                {mac}" in out

    out = esptool(board, "flash-id", stub=stub)
    assert "Manufacturer: ef" in out and "Device: 4016" in out
    assert "Detected flash size: 4MB" in out


@both_modes
@both_chips
def test_write_verify_read(start_board, images, tmp_path, chip, stub):
    board = start_board(chip)
    rom_only_8266 = chip == "esp8266" and not stub
    random_blob = open(images["random"], "rb").read()

    # Compressed (default) and uncompressed writes, the first at 460800 baud, which makes
    # esptool change the baud rate (the ESP8266 ROM cannot: esptool says so and stays at 115200).
    out = esptool(board, "--baud", "460800", "write-flash", "0x10000", images["text"], stub=stub)
    assert "Wrote" in out
    if chip == "esp32" or stub:
        assert "Changing baud rate to 460800" in out
    else:
        assert "Changing baud rate" not in out
    if not rom_only_8266:
        assert "Hash of data verified." in out
    out = esptool(board, "write-flash", "--no-compress", "0x40000", images["random"], stub=stub)
    assert f"Wrote {len(random_blob)} bytes at 0x00040000" in out

    if rom_only_8266:
        # A real ESP8266 ROM has no MD5 or read command: esptool refuses as it does on a chip.
        out = esptool(board, "verify-flash", "0x10000", images["text"], stub=stub, check=False)
        assert "UNEXPECTED SUCCESS" not in out and "ESP8266 ROM does not support function" in out
        out = esptool(board, "read-flash", "0x10000", "0x1000", str(tmp_path / "x.bin"), stub=stub, check=False)
        assert "UNEXPECTED SUCCESS" not in out and "ESP8266 ROM does not support function" in out
        # Read back through the stub instead: what the ROM wrote must be there.
        esptool(board, "read-flash", "0x40000", str(len(random_blob)), str(tmp_path / "r.bin"))
        assert open(tmp_path / "r.bin", "rb").read() == random_blob
        return

    out = esptool(board, "verify-flash", "0x10000", images["text"], "0x40000", images["random"], stub=stub)
    assert out.count("Verification successful (digest matched).") == 2
    # A verify against different data must fail: the MD5 really comes from flash.
    out = esptool(board, "verify-flash", "0x40000", images["text"], stub=stub, check=False)
    assert "Verification failed" in out

    # The ROM reads 64 bytes per command (slow on a real chip too): read less without the stub.
    size = len(random_blob) if stub else 0x100
    out_path = str(tmp_path / "readback.bin")
    esptool(board, "read-flash", "0x40000", str(size), out_path, stub=stub)
    assert open(out_path, "rb").read() == random_blob[:size]


@both_modes
@both_chips
def test_erase(start_board, images, tmp_path, chip, stub):
    board = start_board(chip)
    random_blob = open(images["random"], "rb").read()
    esptool(board, "write-flash", "0x40000", images["random"])
    out_path = str(tmp_path / "readback.bin")

    if chip == "esp8266" and not stub:
        out = esptool(board, "erase-region", "0x40000", "0x2000", stub=stub, check=False)
        assert "UNEXPECTED SUCCESS" not in out and "ESP8266 ROM does not support function erase_region" in out
    else:
        out = esptool(board, "erase-region", "0x40000", "0x2000", stub=stub)
        assert "erased successfully" in out
        esptool(board, "read-flash", "0x41fc0", "0x80", out_path, stub=stub)
        data = open(out_path, "rb").read()
        assert data[:0x40] == b"\xff" * 0x40  # last bytes of the erased region
        assert data[0x40:] == random_blob[0x2000:0x2040]  # first bytes after it, untouched

    if stub:
        before = board.control.stats()["erases"]
        out = esptool(board, "erase-flash", stub=stub)
        assert "Flash memory erased successfully" in out
        assert board.control.stats()["erases"] - before == 1024  # every sector of the 4 MB chip
        esptool(board, "read-flash", "0x40000", "0x9000", out_path, stub=stub)
        assert open(out_path, "rb").read() == b"\xff" * 0x9000
    else:
        # erase-flash needs the stub, on a real chip too.
        out = esptool(board, "erase-flash", stub=stub, check=False)
        assert "UNEXPECTED SUCCESS" not in out and "ROM does not support function erase_flash" in out


def test_baud_change_is_real(start_board, images, tmp_path):
    """After CHANGE_BAUDRATE the chip talks at the new rate: esptool at 921600 works end to end."""
    board = start_board("esp32")
    out = esptool(board, "--baud", "921600", "write-flash", "0x20000", images["random"])
    assert "Changing baud rate to 921600" in out and "Hash of data verified." in out


def test_default_reset_then_hard_reset_boots_from_flash(start_board, images):
    """esptool's default reset enters download mode; --after hard-reset boots from flash."""
    board = start_board("esp32")
    since = board.control.wait_event("chip-start")["seq"]  # the power-on start
    esptool(board, "--after", "hard-reset", "chip-id")
    events = board.control.events(since)
    # A blank flash makes the ROM reset itself about once a second (watchdog starts, not downloads).
    starts = [e for e in events if e["event"] == "chip-start" and e["cause"] != "watchdog"]
    assert starts[0]["download"] is True and starts[0]["cause"] == "en-pin"  # esptool's default reset
    assert starts[-1]["download"] is False and starts[-1]["cause"] == "en-pin"  # hard reset: booted from flash
    assert re.search(r"'reason': 'killed'", str(events))


def test_no_reset_on_socket_url(start_board, images):
    """socket:// cannot reset: with the chip put into download mode by hand, esptool works."""
    board = start_board("esp32")
    board.control.reset(download=True)
    board.control.wait_event("boot", mode="download")
    cmd = [sys.executable, "-m", "esptool", "--port", board.socket_url, "--baud", "115200", "flash-id"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Detected flash size: 4MB" in proc.stdout


# -- where the virtual chip must act as esptool's own test suite expects of a real one ----------
def _file(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _read_flash(board, tmp_path, address: int, size: int, *extra: str) -> bytes:
    out = str(tmp_path / f"read-{address:x}-{size:x}.bin")
    esptool(board, *extra, "read-flash", hex(address), hex(size), out)
    return open(out, "rb").read()


@pytest.mark.parametrize("chip, stub_version", [("esp32", None), ("esp8266", None), ("esp32", "1")],
                         ids=["esp32", "esp8266", "esp32-legacy-stub"])
def test_uncompressed_write_keeps_the_next_sector(start_board, tmp_path, chip, stub_version):
    """write-flash 0x5000 (4 KiB), then --no-compress write-flash 0x4000 (1 KiB): the stub writes
    the 1 KiB and erases its sector only, not the 0xFF padding of its 16 KiB block."""
    board = start_board(chip)
    opts = ("--stub-version", stub_version) if stub_version else ()
    sector = random.Random(20).randbytes(0x1000)
    one_k = random.Random(21).randbytes(0x400)
    esptool(board, *opts, "write-flash", "0x5000", _file(tmp_path, "sector.bin", sector))
    out = esptool(board, *opts, "write-flash", "--no-compress", "0x4000", _file(tmp_path, "one_kb.bin", one_k))
    assert "Wrote 1024 bytes at 0x00004000" in out and "Hash of data verified." in out
    data = _read_flash(board, tmp_path, 0x4000, 0x2000, *opts)
    assert data[:0x400] == one_k
    assert data[0x400:0x1000] == b"\xff" * 0xC00
    assert data[0x1000:] == sector


@pytest.mark.parametrize("chip, stub", [("esp32", True), ("esp32", False), ("esp8266", True)],
                         ids=["esp32-stub", "esp32-rom", "esp8266-stub"])
def test_read_flash_sfdp(start_board, chip, stub):
    """esptool's TestFlashDetection.test_flash_sfdp, and the BFPT's density at 0x84."""
    board = start_board(chip)
    out = esptool(board, "read-flash-sfdp", "0", "4", stub=stub)
    assert "SFDP[0..3]: 0x53 0x46 0x44 0x50" in out
    out = esptool(board, "read-flash-sfdp", "1", "3", stub=stub)
    assert "SFDP[1..3]: 0x46 0x44 0x50" in out
    out = esptool(board, "read-flash-sfdp", "0x84", "4", stub=stub)
    assert "SFDP[132..135]: 0xff 0xff 0xff 0x01" in out  # 32 Mbit - 1: the 4 MB part RDID names


def test_flash_on_other_pins_is_not_reached(start_board):
    """Attached on the HSPI pins, the ROM reaches no flash: esptool reads an idle bus."""
    board = start_board("esp32")
    out = esptool(board, "flash-id", "--spi-connection", "HSPI", stub=False)
    assert "Failed to communicate with the flash chip" in out
    assert "Manufacturer: ff" in out and "Device: ffff" in out
    out = esptool(board, "flash-id", stub=False)
    assert "Manufacturer: ef" in out and "Device: 4016" in out
    assert "Failed to communicate" not in out


def _espsecure_ciphertext(tmp_path, plaintext: str, address: int) -> bytes:
    """espsecure's ciphertext with a blank ESP32's key (BLOCK1 all zero) and FLASH_CRYPT_CONFIG 0."""
    key = _file(tmp_path, "blank_key.bin", bytes(32))
    out = tmp_path / f"expected-{address:x}.bin"
    subprocess.run([sys.executable, "-m", "espsecure", "encrypt-flash-data", "--address", hex(address),
                    "--keyfile", key, "--flash-crypt-conf", "0", "--output", str(out), plaintext],
                   check=True, capture_output=True)
    return out.read_bytes()


def test_encrypted_write_on_blank_efuses(start_board, tmp_path):
    """esptool's TestFlashEncryption on a blank ESP32: --encrypt aborts (also with --force), with
    --ignore-flash-enc-efuse the flash holds espsecure's ciphertext, compressed or not."""
    board = start_board("esp32")
    app = random.Random(22).randbytes(0x2345)
    app_path = _file(tmp_path, "app.bin", app)
    # esptool pads an encrypted image with FF to 32 bytes (espsecure would pad with random bytes).
    padded = app + b"\xff" * (-len(app) % 32)
    padded_path = _file(tmp_path, "app-padded.bin", padded)
    ops = board.control.stats()["ops"]
    for extra in ((), ("--force",)):
        out = esptool(board, "write-flash", "--encrypt", *extra, "0x10000", app_path, check=False)
        assert "UNEXPECTED SUCCESS" not in out
        assert "Flash encryption key is not programmed" in out
        assert "Can't perform encrypted flash write" in out
    assert board.control.stats()["ops"] == ops  # nothing reached the flash
    for compression, address in (("--compress", 0x10000), ("--no-compress", 0x20000)):
        out = esptool(board, "write-flash", "--encrypt", "--ignore-flash-enc-efuse", compression, hex(address),
                      app_path)
        assert "Cannot verify written data if encrypted" in out
    # --encrypt-files: only the named file is encrypted.
    plain = random.Random(23).randbytes(0x800)
    esptool(board, "write-flash", "--ignore-flash-enc-efuse", "0x30000", _file(tmp_path, "plain.bin", plain),
            "--encrypt-files", "0x31000", app_path)
    data = _read_flash(board, tmp_path, 0x10000, 0x21000 + len(padded))
    for address in (0x10000, 0x20000, 0x31000):
        stored = data[address - 0x10000:][: len(padded)]
        assert stored != padded
        assert stored == _espsecure_ciphertext(tmp_path, padded_path, address), hex(address)
    assert data[0x20000:0x20800] == plain
    # The ESP32 ROM has no encrypted write: esptool refuses before sending anything.
    out = esptool(board, "write-flash", "--encrypt", "--ignore-flash-enc-efuse", "0x40000", app_path,
                  stub=False, check=False)
    assert "UNEXPECTED SUCCESS" not in out and "ROM bootloader does not support encrypted writes" in out


def test_load_ram_of_other_code_leaves_the_chip_silent(start_board, tmp_path):
    """load-ram of code that is not esptool's stub: esptool's part succeeds, then the chip runs
    code the model cannot run and answers nothing until it is reset."""
    from esptool.bin_image import ELFSection, ESP32FirmwareImage

    board = start_board("esp32")
    image = ESP32FirmwareImage()
    image.entrypoint = 0x40080400
    image.segments = [ELFSection(b".iram0.text", 0x40080400, random.Random(24).randbytes(0x800), 0)]
    path = str(tmp_path / "ram_app.bin")
    image.save(path)
    since = board.control.status()["event_seq"]
    out = esptool(board, "load-ram", path, stub=False)
    assert "executing at 0x40080400" in out
    board.control.wait_event("chip-stop", since=since, reason="halt")
    assert board.control.status()["chip_state"] == "halted"
    out = esptool(board, "--before", "no-reset", "--connect-attempts", "1", "chip-id", stub=False, check=False)
    assert "UNEXPECTED SUCCESS" not in out and "Failed to connect" in out
    # esptool's default reset brings the ROM back, and its real stub still runs.
    out = esptool(board, "flash-id")
    assert "Stub flasher running" in out and "Manufacturer: ef" in out
