"""Test-side view of the esptool serial protocol: SLIP, requests, replies, a fake UART, a socket host.

Written from the protocol description (shared/specs/esptool-serial-protocol.md), independently of
``harness.emu.rom``, so the tests check the loader against the wire format rather than against itself.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import zlib
from dataclasses import dataclass
from functools import reduce

import pytest

from harness.chips import chip as chip_class
from harness.emu.flash import NorFlash, create_flash_file
from harness.emu.rom import Loader

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD

# command ids
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
SYNC, WRITE_REG, READ_REG = 0x08, 0x09, 0x0A
SPI_SET_PARAMS, SPI_ATTACH, READ_FLASH_SLOW, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0E, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END = 0x10, 0x11, 0x12
SPI_FLASH_MD5, GET_SECURITY_INFO = 0x13, 0x14
ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE = 0xD0, 0xD1, 0xD2, 0xD3

SYNC_DATA = b"\x07\x07\x12\x20" + b"\x55" * 32
MAGIC_REG = 0x40001000
ESP32_MAGIC = 0x00F01D83
ESP8266_MAGIC = 0xFFF0C101
MB = 1024 * 1024
RAM_BLOCK = 0x1800  # esptool's MEM_DATA block size


def slip(packet: bytes) -> bytes:
    out = bytearray([END])
    for b in packet:
        if b == END:
            out += bytes([ESC, ESC_END])
        elif b == ESC:
            out += bytes([ESC, ESC_ESC])
        else:
            out.append(b)
    out.append(END)
    return bytes(out)


def _unescape(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == ESC:
            out.append({ESC_END: END, ESC_ESC: ESC}[raw[i + 1]])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def unslip_frames(stream: bytes) -> list[tuple[bytes, int]]:
    """Complete SLIP frames in ``stream`` with the index just past each one; bytes outside frames are skipped."""
    found = []
    pos = 0
    while True:
        start = stream.find(END, pos)
        if start < 0:
            break
        end = stream.find(END, start + 1)
        if end < 0:
            break
        if end == start + 1:  # C0 C0: the first one closed something else, the second opens a frame
            pos = end
            continue
        found.append((_unescape(stream[start + 1:end]), end + 1))
        pos = end + 1
    return found


def unslip_stream(stream: bytes) -> list[bytes]:
    return [f for f, _ in unslip_frames(stream)]


def checksum(payload: bytes) -> int:
    return reduce(lambda a, b: a ^ b, payload, 0xEF)


def request(op: int, data: bytes = b"", chk: int = 0, length: int | None = None) -> bytes:
    """A request packet (not yet SLIP-framed); ``length`` overrides the header's data length."""
    return struct.pack("<BBHI", 0, op, len(data) if length is None else length, chk) + data


def data_request(op: int, payload: bytes, seq: int, chk: int | None = None) -> bytes:
    """FLASH_DATA / FLASH_DEFL_DATA / MEM_DATA: 16-byte sub-header, payload, checksum in the header."""
    data = struct.pack("<IIII", len(payload), seq, 0, 0) + payload
    return request(op, data, checksum(payload) if chk is None else chk)


def sync() -> bytes:
    return request(SYNC, SYNC_DATA)


def read_reg(addr: int) -> bytes:
    return request(READ_REG, struct.pack("<I", addr))


def spi_set_params(total_size: int) -> bytes:
    return request(SPI_SET_PARAMS, struct.pack("<6I", 0, total_size, 0x10000, 0x1000, 0x100, 0xFFFF))


def flash_begin(erase_size: int, blocks: int, block_size: int, offset: int, *, stub: bool = False,
                op: int = FLASH_BEGIN) -> bytes:
    data = struct.pack("<IIII", erase_size, blocks, block_size, offset)
    if stub:
        data += struct.pack("<I", 0)  # not encrypted
    return request(op, data)


def md5_request(addr: int, size: int) -> bytes:
    return request(SPI_FLASH_MD5, struct.pack("<IIII", addr, size, 0, 0))


def esptool_stub(chip: str, version: str | None = None) -> tuple[int, list[tuple[int, bytes]]]:
    """esptool's flasher stub for ``chip`` as shipped with the installed esptool: (entry, segments).

    ``version`` is the stub directory (``"1"`` legacy, ``"2"`` esp-flasher-stub); by default the
    one esptool itself uploads.
    """
    from esptool.loader import StubFlasher

    version = version or StubFlasher.STUB_SUBDIRS[0]
    with open(os.path.join(StubFlasher.STUB_DIR, version, f"{chip}.json")) as f:
        desc = json.load(f)
    segments = [(desc["text_start"], base64.b64decode(desc["text"]))]
    if "data" in desc:
        segments.append((desc["data_start"], base64.b64decode(desc["data"])))
    return desc["entry"], segments


def ram_upload(segments: list[tuple[int, bytes]]) -> list[bytes]:
    """The MEM_BEGIN / MEM_DATA requests esptool sends to load ``segments`` into RAM."""
    packets = []
    for addr, data in segments:
        blocks = (len(data) + RAM_BLOCK - 1) // RAM_BLOCK
        packets.append(request(MEM_BEGIN, struct.pack("<IIII", len(data), blocks, RAM_BLOCK, addr)))
        packets += [data_request(MEM_DATA, data[i * RAM_BLOCK:(i + 1) * RAM_BLOCK], i) for i in range(blocks)]
    return packets


def mem_end(entry: int) -> bytes:
    return request(MEM_END, struct.pack("<II", int(entry == 0), entry))


def spi_attach(pins: int = 0) -> bytes:
    """SPI_ATTACH as esptool sends it to a ROM: the pin word and four zero bytes."""
    return request(SPI_ATTACH, struct.pack("<II", pins, 0))


@dataclass
class Reply:
    op: int
    value: int
    length: int
    data: bytes
    status: bytes

    @property
    def ok(self) -> bool:
        return self.status[0] == 0


def parse_reply(frame: bytes, status_len: int) -> Reply:
    direction, op, length, value = struct.unpack_from("<BBHI", frame)
    assert direction == 0x01, f"not a response: {frame[:16].hex()}"
    body = frame[8:]
    assert len(body) == length, f"response length field {length} but {len(body)} bytes follow"
    assert length >= status_len, f"response too short for {status_len} status bytes: {frame.hex()}"
    return Reply(op, value, length, body[: length - status_len], body[length - status_len:])


# -- direct: the loader object with a fake UART ---------------------------------------------------------
class Drained(Exception):
    """The fake UART has nothing more to give the loader: stop its loop."""


class FakeUart:
    """Implements harness.emu.rom.Uart: queued host bytes in, written bytes recorded with their baud rate."""

    def __init__(self, baud: int = 115200):
        self.baud = baud
        self.inbox = bytearray()
        self.out: list[tuple[int, bytes]] = []
        self.reads: list[float | None] = []  # timeouts of the loader's read calls
        self.on_idle = None  # callable(uart) -> bytes, consulted when the inbox is empty

    def read(self, timeout: float | None = None) -> bytes:
        self.reads.append(timeout)
        if not self.inbox and self.on_idle is not None:
            self.inbox += self.on_idle(self)
        if not self.inbox:
            raise Drained
        data = bytes(self.inbox)
        self.inbox.clear()
        return data

    def write(self, data: bytes) -> None:
        self.out.append((self.baud, bytes(data)))

    def set_baud(self, baud: int) -> None:
        self.baud = baud

    def output(self, since: int = 0) -> bytes:
        return b"".join(d for _, d in self.out[since:])


class DirectHost:
    """Feeds byte streams to a Loader's own main loop and collects what it answers."""

    def __init__(self, loader, uart: FakeUart):
        self.loader = loader
        self.uart = uart
        self.exit = None  # the LoaderExit, once the loader leaves download mode

    @property
    def status_len(self) -> int:
        return 2 if self.loader.stub else self.loader.profile.rom_status_len

    def feed(self, stream: bytes) -> list[bytes]:
        """Send raw bytes, run the loader until it waits for more; return the frames it wrote."""
        mark = len(self.uart.out)
        self.uart.inbox += stream
        try:
            self.exit = self.loader.run()
        except Drained:
            pass
        return unslip_stream(self.uart.output(mark))

    def send(self, *packets: bytes) -> list[Reply]:
        status_len = self.status_len
        return [parse_reply(f, status_len) for f in self.feed(b"".join(slip(p) for p in packets))]

    def one(self, packet: bytes) -> Reply:
        replies = self.send(packet)
        assert len(replies) == 1, replies
        return replies[0]

    def enter_stub(self, version: str | None = None) -> list[bytes]:
        """Upload esptool's stub the way esptool does: MEM_BEGIN, MEM_DATA..., MEM_END(0, entry)."""
        entry, segments = esptool_stub(self.loader.profile.name, version)
        for r in self.send(*ram_upload(segments)):
            assert r.ok, r
        frames = self.feed(slip(mem_end(entry)))
        assert self.loader.stub
        return frames

    def attach(self) -> None:
        """Attach the flash the way esptool does before flash commands on a ROM: SPI_ATTACH on
        an ESP32, FLASH_BEGIN(0, 0) on an ESP8266 (its ROM has no SPI_ATTACH)."""
        if self.loader.profile.name == "esp8266":
            r = self.one(request(FLASH_BEGIN, struct.pack("<IIII", 0, 0, 0x400, 0)))
        else:
            r = self.one(spi_attach())
        assert r.ok, r


def stub_deflate_write(host: DirectHost, image: bytes, offset: int, block: int = 0x4000) -> None:
    """Write ``image`` the way esptool's stub path does: zlib level 9, ``block``-byte compressed blocks."""
    comp = zlib.compress(image, 9)
    blocks = [comp[i:i + block] for i in range(0, len(comp), block)]
    assert host.one(flash_begin(len(image), len(blocks), block, offset, stub=True, op=FLASH_DEFL_BEGIN)).ok
    for seq, b in enumerate(blocks):
        r = host.one(data_request(FLASH_DEFL_DATA, b, seq))
        assert r.ok, r
    assert host.one(request(FLASH_DEFL_END, struct.pack("<I", 1))).ok


# -- end to end: a board's raw socket port ------------------------------------------------------------
class SocketHost:
    """A host on a virtual board's ``socket://`` port, speaking raw SLIP."""

    def __init__(self, url: str, status_len: int):
        assert url.startswith("socket://")
        host, _, port = url[len("socket://"):].rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.status_len = status_len
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frames(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """Read until ``count`` complete frames arrived and consume them (text before them is skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            found = unslip_frames(self.buf)
            if len(found) >= count:
                self.buf = self.buf[found[count - 1][1]:]
                return [f for f, _ in found[:count]]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"got {len(found)} of {count} frames; last bytes {self.buf[-200:]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError(f"board closed the port after {len(found)} frames")
            self.buf += chunk

    def take(self, count: int, timeout: float = 5.0) -> list[Reply]:
        return [parse_reply(f, self.status_len) for f in self.frames(count, timeout)]

    def quiet(self, wait: float = 0.3) -> bytes:
        """Whatever arrives within ``wait`` seconds (expected: nothing)."""
        self.sock.settimeout(wait)
        got = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        return got


MAC = bytes.fromhex("240ac4a1b2c3")


@pytest.fixture
def make_host(tmp_path):
    """Factory: a loader in download mode on a fresh flash file, driven directly (no serial port).

    A ROM gets the flash attached first, as esptool always does; ``stub=True`` (or a stub version
    such as "1") uploads esptool's stub instead.
    """
    made: list[DirectHost] = []

    def make(chip: str = "esp32", size: int = 4 * MB, stub: bool | str | None = None,
             attach: bool = True) -> DirectHost:
        path = str(tmp_path / f"{chip}-{len(made)}.bin")
        create_flash_file(path, size)
        flash = NorFlash(path, size)
        uart = FakeUart()
        host = DirectHost(Loader(chip_class(chip).rom_profile(), flash, uart, MAC), uart)
        host.flash = flash
        made.append(host)
        if stub:
            host.enter_stub(None if stub is True else stub)
        elif attach:
            host.attach()
        return host

    yield make
    for h in made:
        h.flash.close()
