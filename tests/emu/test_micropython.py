"""MicroPython on the virtual boards: the real interpreter, its REPL, stock mpremote, the port layer.

Boards start with a MicroPython baseline (``harness.firmware``) already in their flash file;
flashing it with esptool is covered by the esptool tests.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from harness.chips import chip as chip_class
from harness.esp.partition_table import PartitionTable
from harness.firmware import MICROPYTHON_VERSION, micropython_baseline
from harness.transport import open_port

pytestmark = pytest.mark.timeout(300)

BANNER = {
    "esp32": f"MicroPython {MICROPYTHON_VERSION} on 2025-12-09; Generic ESP32 module with OTA with ESP32",
    "esp8266": f"MicroPython {MICROPYTHON_VERSION} on 2025-12-09; ESP module with ESP8266",
}
both_chips = pytest.mark.parametrize("chip", ["esp32", "esp8266"])


def write_flash_file(path: str, chip: str, size: int = 4 * 1024 * 1024) -> None:
    with open(path, "wb") as f:
        f.write(b"\xff" * size)
        for part in micropython_baseline(chip):
            f.seek(part.offset)
            f.write(part.data)


@pytest.fixture
def mpy_board(start_board, tmp_path):
    """Factory: a virtual board running MicroPython, at its REPL."""

    def start(chip: str = "esp32"):
        name = f"{chip}-mpy"
        flash = str(tmp_path / f"{name}.bin")
        write_flash_file(flash, chip)
        board = start_board(chip, flash_file=flash, name=name)
        board.console_path = str(tmp_path / f"{name}.console")
        board.control.wait_event("mpy-ready", timeout=30)
        return board

    return start


def console(board) -> str:
    return open(board.console_path, "rb").read().decode(errors="replace")


def wait_console(board, pattern: str, timeout: float = 20.0, start: int = 0) -> re.Match:
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, console(board)[start:])
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not on the console within {timeout} s:\n{console(board)[-2000:]}")
        time.sleep(0.05)


def mpremote(board, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "mpremote", "connect", board.serial_url, *args],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mpremote {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
                             f"\n--- console ---\n{console(board)[-2000:]}\n--- board stderr ---\n"
                             f"{board.stderr_text()[-2000:]}")
    return proc


class Repl:
    """The friendly REPL over the board's serial URL, as a person at a terminal uses it."""

    def __init__(self, board):
        self.port = open_port(board.serial_url, 115200, timeout=0.2)
        self.buf = b""

    def send(self, text: str | bytes) -> None:
        # What was read before this input cannot answer it: an earlier prompt left in the buffer
        # (the boot prompt and the one the first Enter gives can come in one read) would match at once.
        self.buf = b""
        self.port.write(text.encode() if isinstance(text, str) else text)

    def expect(self, pattern: bytes, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.buf):
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not seen within {timeout} s; got {self.buf[-800:]!r}")
            self.buf += self.port.read(4096)
        m = re.search(pattern, self.buf)
        out, self.buf = self.buf[: m.end()], self.buf[m.end():]
        return out

    def run(self, line: str, timeout: float = 15.0) -> str:
        self.send(line + "\r")
        return self.expect(rb">>> $", timeout).decode(errors="replace")

    def close(self) -> None:
        if self.port.is_open:
            self.port.close()


@pytest.fixture
def repl_of():
    opened: list[Repl] = []

    def make(board) -> Repl:
        r = Repl(board)
        opened.append(r)
        r.send("\r")
        r.expect(rb">>> ")
        return r

    yield make
    for r in opened:
        r.close()


@both_chips
def test_boots_the_interpreter_with_the_image_version(mpy_board, repl_of, chip):
    board = mpy_board(chip)
    wait_console(board, re.escape(BANNER[chip]))
    repl = repl_of(board)
    assert "42" in repl.run("print(6 * 7)")
    out = repl.run("import os, sys; print(os.uname().sysname, os.uname().release, sys.implementation.name)")
    assert f"{chip} {MICROPYTHON_VERSION.lstrip('v')} micropython" in out
    # A multi-line block in the friendly REPL, with its continuation prompt.
    repl.send("for i in range(3):\r")
    repl.expect(rb"\.\.\. ")
    repl.send("    print('line', i)\r\r")
    assert "line 2" in repl.expect(rb">>> $").decode()


@both_chips
def test_mpremote_copies_lists_execs_and_resets(mpy_board, tmp_path, chip):
    board = mpy_board(chip)
    data = os.urandom(64 * 1024)
    src, back = tmp_path / "big.bin", tmp_path / "back.bin"
    src.write_bytes(data)
    mpremote(board, "fs", "mkdir", ":lib")
    mpremote(board, "fs", "cp", str(src), ":lib/big.bin")
    mpremote(board, "fs", "cp", ":lib/big.bin", str(back))
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()
    listing = mpremote(board, "fs", "ls", ":lib").stdout
    assert re.search(r"65536 big\.bin", listing)
    # In pieces, as on a real board: 64 KiB does not fit in an ESP8266's heap.
    assert mpremote(board, "exec", "import hashlib, binascii\n"
                    "h = hashlib.sha256()\n"
                    "f = open('lib/big.bin', 'rb')\n"
                    "buf = bytearray(1024)\n"
                    "while f.readinto(buf):\n"
                    "    h.update(buf)\n"
                    "print(binascii.hexlify(h.digest()).decode())").stdout.strip() == hashlib.sha256(data).hexdigest()
    assert mpremote(board, "eval", "1 + 41").stdout.strip() == "42"
    boots = len([e for e in board.control.events() if e["event"] == "boot" and e.get("mode") == "flash"])
    mpremote(board, "soft-reset")
    before_reset = board.control.status()["event_seq"]
    mpremote(board, "reset")
    # the interpreter of the boot that the reset causes (not one from before it)
    boot = board.control.wait_event("boot", since=before_reset, mode="flash")
    board.control.wait_event("mpy-ready", since=boot["seq"])
    after = [e for e in board.control.events() if e["event"] == "boot" and e.get("mode") == "flash"]
    assert len(after) == boots + 1  # reset is a hard reset (the chip boots again); soft-reset is not
    mpremote(board, "fs", "rm", ":lib/big.bin")
    assert "big.bin" not in mpremote(board, "fs", "ls", ":lib").stdout
    assert "boot.py" in mpremote(board, "fs", "ls").stdout  # written by the first boot, still there


def test_power_cut_during_fs_cp_leaves_a_mountable_filesystem(mpy_board, tmp_path):
    board = mpy_board("esp32")
    mpremote(board, "fs", "cp", str(_write(tmp_path / "keep.txt", b"precious\n")), ":keep.txt")
    big = _write(tmp_path / "big.bin", os.urandom(64 * 1024))
    ctl = board.control
    ops0 = ctl.stats()["ops"]
    ctl.arm_cut(after_ops=60, policy="random", seed=3)  # in the middle of the copy's page programs
    proc = subprocess.Popen([sys.executable, "-m", "mpremote", "connect", board.serial_url, "fs", "cp", str(big),
                             ":big.bin"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        cut = ctl.wait_event("power", timeout=60, on=False, reason="cut")
    finally:
        proc.kill()
        proc.wait()
    assert cut and ctl.stats()["ops"] == ops0 + 60
    mark = len(console(board))
    since = ctl.status()["event_seq"]
    ctl.power(True)
    ctl.wait_event("mpy-ready", since=since, timeout=30)
    text = console(board)[mark:]
    assert "Performing initial setup" not in text and "corrupted" not in text  # mounted as it was
    assert mpremote(board, "fs", "cat", ":keep.txt").stdout == "precious\n"
    listing = mpremote(board, "fs", "ls").stdout
    size = re.search(r"(\d+) big\.bin", listing)
    assert size is None or int(size.group(1)) < 64 * 1024  # the torn copy never completed


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@both_chips
def test_ctrl_c_interrupts_a_busy_loop_and_a_sleep(mpy_board, repl_of, chip):
    board = mpy_board(chip)
    repl = repl_of(board)
    for code in ("while True: pass", "import time; time.sleep(60)"):
        repl.send(code + "\r")
        time.sleep(0.5)
        t0 = time.monotonic()
        repl.send(b"\x03")
        out = repl.expect(rb">>> $", timeout=10).decode()
        assert "KeyboardInterrupt" in out and time.monotonic() - t0 < 5
    assert "ok" in repl.run("x = 'ok'; print(x)")  # the interpreter kept its state and carries on


def test_heap_peak_is_recorded_per_boot(mpy_board, repl_of):
    board = mpy_board("esp8266")
    repl = repl_of(board)
    repl.run("import machine; b = bytearray(20 * 1024); machine.idle()")
    heap = board.control.stats()["heap"]["current"]
    # The figure is within a GC step (4 KiB) and the REPL's own compile of the line above the live data.
    assert 20 * 1024 <= heap["peak_above_baseline"] < 32 * 1024 and heap["over_budget"] is False
    # 50 KiB live: a real ESP8266 has no room, and neither has the virtual one.
    out = repl.run("c = bytearray(30 * 1024)")
    assert "MemoryError: memory allocation failed, allocating 30720 bytes" in out
    assert "_boot" not in out and "__port" not in out  # the device's frames only
    assert "42" in repl.run("print(6 * 7)")  # the board carries on
    repl.close()  # the port has one user at a time, as a tty
    mpremote(board, "reset")
    board.control.wait_event("mpy-ready", since=board.control.status()["event_seq"] - 10)
    ended = board.control.stats()["heap"]["boots"]
    assert ended and ended[0]["budget"] == chip_class("esp8266").micropython.heap_plan["device_free"]


@both_chips
def test_allocations_past_the_real_heap_raise_memory_error(mpy_board, chip):
    # ESP8266: a static 38 KiB heap; ESP32: 56 KiB grown from the IDF heap (harness.chips: MicroPythonPort.heap_plan).
    board = mpy_board(chip)
    out = mpremote(board, "exec", "import gc\n"
                   "print('free', gc.mem_free(), gc.mem_alloc())\n"
                   "x = []\n"
                   "try:\n"
                   "    while True:\n"
                   "        x.append(bytearray(1024))\n"
                   "except MemoryError:\n"
                   "    n = len(x)\n"
                   "    x = None\n"
                   "print('allocated', n * 1024)\n").stdout
    allocated = int(re.search(r"allocated (\d+)", out).group(1))
    limit = chip_class(chip).micropython.heap_plan["device_free"]
    assert 0.9 * limit <= allocated <= 1.1 * limit, (allocated, limit)
    free, used = map(int, re.search(r"free (\d+) (\d+)", out).groups())
    # The ESP8266's one static heap; the ESP32's initial 56 KiB area before it grows.
    assert free + used == chip_class(chip).micropython.heap_plan["initial"]
    # Under heap_lock the MemoryError is the device code's, and the REPL goes on.
    out = mpremote(board, "exec", "import micropython\n"
                   "def f():\n"
                   "    micropython.heap_lock()\n"
                   "    try:\n"
                   "        y = [1, 2, 3]\n"
                   "    except MemoryError as e:\n"
                   "        micropython.heap_unlock()\n"
                   "        return e\n"
                   "print('locked', f())\n").stdout
    assert "locked memory allocation failed, heap is locked" in out
    out = mpremote(board, "exec", "import micropython\nmicropython.heap_lock()\nz = bytearray(10)\n", check=False)
    assert "MemoryError" in out.stdout + out.stderr
    assert "ok" in mpremote(board, "exec", "print('ok')").stdout


def test_watchdog_resets_the_board_when_not_fed(mpy_board, repl_of):
    board = mpy_board("esp32")
    repl = repl_of(board)
    since = board.control.status()["event_seq"]
    repl.send("from machine import WDT; import time; w = WDT(timeout=500); time.sleep(5)\r")
    board.control.wait_event("watchdog", since=since, timeout=10)
    board.control.wait_event("mpy-ready", since=since, timeout=30)
    repl.close()
    # `resume`: no soft reset first (after one, the ESP32 port reports SOFT_RESET).
    assert "3" in mpremote(board, "resume", "exec", "import machine; print(machine.reset_cause())").stdout


def test_esp32_partition_api_follows_esp_idf(mpy_board):
    board = mpy_board("esp32")
    out = mpremote(board, "exec", """
from esp32 import Partition
run = Partition(Partition.RUNNING)
nxt = run.get_next_update()
print('labels', run.info()[4], nxt.info()[4], nxt.ioctl(4, 0), nxt.ioctl(5, 0))
nxt.writeblocks(0, b'\\x00' * 4096)
try:
    nxt.set_boot()
except OSError as e:
    print('set_boot', e.args[0])
buf = bytearray(16)
nxt.readblocks(0, buf)
print('read', bytes(buf) == bytes(16))
Partition.mark_app_valid_cancel_rollback()
print('boot', Partition(Partition.BOOT).info()[4])
""").stdout
    assert "labels ota_0 ota_1 384 4096" in out
    assert "set_boot -5379" in out  # ESP_ERR_OTA_VALIDATE_FAILED: the image is not valid
    assert "read True" in out and "boot ota_0" in out
    # The filesystem is the partition table's vfs partition, with real littlefs on it.
    table = PartitionTable.from_bytes(open(board.info["flash_file"], "rb").read()[0x8000:0x8C00])
    vfs = table.find("vfs")
    block0 = open(board.info["flash_file"], "rb").read()[vfs.offset:vfs.offset + 0x1000]
    assert b"littlefs" in block0


def test_output_streams_while_code_runs(mpy_board, repl_of):
    board = mpy_board("esp32")
    repl = repl_of(board)
    repl.send("import time\rfor i in range(3): print('tick', i); time.sleep(0.4)\r\r")
    t0 = time.monotonic()
    repl.expect(rb"tick 0")
    first = time.monotonic() - t0
    repl.expect(rb"tick 2")
    assert first < 0.6  # printed as it ran, not at the end


def test_interpreter_cannot_reach_the_host_filesystem(mpy_board):
    board = mpy_board("esp32")
    out = mpremote(board, "exec", "import os\nprint(sorted(os.listdir('/')))\n"
                   "try:\n    open('/etc/passwd')\nexcept OSError as e:\n    print('denied', e.args[0])").stdout
    assert "denied 2" in out and "etc" not in out


def _interpreters_of(pid: int) -> list[int]:
    """Interpreter processes descending from process ``pid``."""
    parents, found = {}, []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        if b"micropython_unix" in cmdline:
            found.append(int(entry))
    out = []
    for p in found:
        q = p
        while q in parents and q != pid:
            q = parents[q]
        if q == pid:
            out.append(p)
    return out


def test_power_off_leaves_no_interpreter_running(mpy_board):
    board = mpy_board("esp32")
    assert len(_interpreters_of(board.info["pid"])) == 1
    board.control.power(False)
    deadline = time.monotonic() + 2
    while _interpreters_of(board.info["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _interpreters_of(board.info["pid"]) == []


@pytest.fixture
def http_server():
    """A plain HTTP server on the host that serves 100 KB at /blob."""
    import http.server
    import socketserver

    blob = os.urandom(100 * 1024)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def log_message(self, *a):
            pass

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], blob
    srv.shutdown()
    srv.server_close()


WIFI_UP = """
import network, time
w = network.WLAN(network.STA_IF)
w.active(True)
w.connect('hil-bench', 'secret')
for _ in range(100):
    if w.isconnected():
        break
    time.sleep_ms(20)
print('ip', w.ifconfig()[0])
"""


def test_sockets_reach_host_servers_through_the_emulated_wifi(mpy_board, http_server):
    port, blob = http_server
    board = mpy_board("esp32")
    fetch = f"""
import socket, hashlib, binascii
try:
    socket.getaddrinfo('127.0.0.1', {port})
except OSError as e:
    print('before wifi', e.args[0])
{WIFI_UP}
s = socket.socket()
s.connect(socket.getaddrinfo('127.0.0.1', {port})[0][-1])
s.write(b'GET /blob HTTP/1.0\\r\\n\\r\\n')
h = hashlib.sha256()
head = b''
n = 0
while True:
    chunk = s.read(4096)
    if not chunk:
        break
    if head is not None:
        head += chunk
        if b'\\r\\n\\r\\n' not in head:
            continue
        chunk = head.split(b'\\r\\n\\r\\n', 1)[1]
        head = None
    h.update(chunk)
    n += len(chunk)
s.close()
print('got', n, binascii.hexlify(h.digest()).decode())
"""
    out = mpremote(board, "exec", fetch).stdout
    assert "before wifi 118" in out  # EHOSTUNREACH (newlib numbering; Linux: 113) until the station has joined
    assert re.search(r"ip 192\.168\.4\.\d+", out)
    assert f"got {len(blob)} {hashlib.sha256(blob).hexdigest()}" in out


def test_taking_wifi_down_breaks_open_connections(mpy_board):
    board = mpy_board("esp32")
    import socket as host_socket

    silent = host_socket.create_server(("127.0.0.1", 0))  # accepts (backlog) and never answers
    code = WIFI_UP + f"""
import socket
s = socket.socket()
s.connect(socket.getaddrinfo('127.0.0.1', {silent.getsockname()[1]})[0][-1])
s.settimeout(20)
print('waiting')
try:
    s.recv(10)
except OSError as e:
    print('recv failed', e.args[0])
"""
    proc = subprocess.Popen([sys.executable, "-m", "mpremote", "connect", board.serial_url, "exec", code],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_console_or_output = time.monotonic() + 20
        while "wifi" not in [e["event"] for e in board.control.events()] and time.monotonic() < wait_console_or_output:
            time.sleep(0.05)
        time.sleep(0.5)  # the device is now blocked in recv
        board.control.wifi(False)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
        silent.close()
    assert "recv failed 113" in out  # ECONNABORTED (newlib; Linux: 103), at once, not after the 20 s timeout
    board.control.wifi(False)
    out = mpremote(board, "exec", WIFI_UP + "print('status', w.status(), w.isconnected())").stdout
    assert "status 201 False" in out  # STAT_NO_AP_FOUND on the ESP32 port
    board.control.wifi(True)
    out = mpremote(board, "exec", WIFI_UP + "print('connected', w.isconnected())").stdout
    assert "connected True" in out
