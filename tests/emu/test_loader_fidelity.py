"""The ROM loader and flasher stub where esptool's own test suite expects a real chip's behaviour.

* the stub writes only the announced bytes and erases only the sectors they cover (the 0xFF
  padding of the last uncompressed block is not written);
* Read SFDP answers at any address from a complete SFDP table of the modelled part;
* SPI flash commands reach the flash only once it is attached;
* an encrypted write stores what a blank-eFuse ESP32 stores (ESP32 flash encryption with an
  all-zero key, FLASH_CRYPT_CONFIG 0);
* only esptool's real stub image runs as the stub; other RAM code leaves the chip silent.

Like ``test_rom_protocol.py``, most tests drive ``harness.emu.rom.Loader`` with a fake UART; the
SPI register sequences are written here from the register layout in the protocol spec.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zlib

import espsecure
import pytest
from slipwire import (
    FLASH_BEGIN,
    FLASH_DATA,
    FLASH_DEFL_BEGIN,
    FLASH_DEFL_DATA,
    FLASH_DEFL_END,
    FLASH_END,
    MB,
    MEM_END,
    READ_FLASH_SLOW,
    WRITE_REG,
    SocketHost,
    data_request,
    esptool_stub,
    flash_begin,
    md5_request,
    mem_end,
    parse_reply,
    ram_upload,
    read_reg,
    request,
    slip,
    spi_attach,
    sync,
    unslip_stream,
)

from harness.emu.flash import SECTOR_SIZE

ROM_STATUS_LEN = {"esp32": 4, "esp8266": 2}
STUB_VERSIONS = ["1", "2"]  # esptool's stub directories: legacy flasher stub, esp-flasher-stub
both_chips = pytest.mark.parametrize("chip", ["esp32", "esp8266"])
both_stubs = pytest.mark.parametrize("version", STUB_VERSIONS)


def _fill(host, addr: int, data: bytes) -> None:
    host.flash.erase_range(addr, len(data))
    host.flash.program(addr, data)


def _erased_sectors(host, since: list[int]) -> list[int]:
    now = host.flash.meta.erase_counts()
    return [i * SECTOR_SIZE for i, (a, b) in enumerate(zip(since, now)) if b != a]


def _stub_write_uncompressed(host, image: bytes, offset: int, block: int = 0x4000) -> None:
    """What esptool's write-flash --no-compress sends a stub: every block padded to ``block`` with FF."""
    blocks = (len(image) + block - 1) // block
    assert host.one(flash_begin(len(image), blocks, block, offset, stub=True)).ok
    for seq in range(blocks):
        chunk = image[seq * block:(seq + 1) * block]
        r = host.one(data_request(FLASH_DATA, chunk + b"\xff" * (block - len(chunk)), seq))
        assert r.ok, r
    assert host.one(request(FLASH_END, struct.pack("<I", 1))).ok


# -- 1. what the stub writes and erases ----------------------------------------
@both_chips
@both_stubs
def test_stub_uncompressed_write_leaves_the_next_sector_alone(make_host, chip, version):
    """esptool write-flash 0x5000 (4 KiB), then --no-compress write-flash 0x4000 (1 KiB)."""
    host = make_host(chip, stub=version)
    sector = random.Random(1).randbytes(SECTOR_SIZE)
    one_k = random.Random(2).randbytes(0x400)
    _fill(host, 0x5000, sector)
    before = host.flash.meta.erase_counts()
    ops = []
    host.flash.on_op = lambda op, kind, addr, length: ops.append((kind, addr, length))
    _stub_write_uncompressed(host, one_k, 0x4000)
    assert host.flash.read(0x4000, 0x400) == one_k
    assert host.flash.read(0x4400, 0xC00) == b"\xff" * 0xC00  # erased, nothing written there
    assert host.flash.read(0x5000, SECTOR_SIZE) == sector
    assert _erased_sectors(host, before) == [0x4000]
    assert [(a, n) for kind, a, n in ops if kind == "program"] == [(0x4000 + i, 0x100) for i in range(0, 0x400, 0x100)]


@both_stubs
def test_stub_unaligned_end_sector(make_host, version):
    """esptool's TestSectorBoundaries: 1 KiB at 0xFC00 after a sector at 0x10000, both ways."""
    for compress in (False, True):
        host = make_host("esp32", stub=version)
        sector = random.Random(3).randbytes(SECTOR_SIZE)
        one_k = random.Random(4).randbytes(0x400)
        _fill(host, 0x10000, sector)
        before = host.flash.meta.erase_counts()
        if compress:
            comp = zlib.compress(one_k, 9)
            assert host.one(flash_begin(0x400, 1, 0x4000, 0xFC00, stub=True, op=FLASH_DEFL_BEGIN)).ok
            assert host.one(data_request(FLASH_DEFL_DATA, comp, 0)).ok
            assert host.one(request(FLASH_DEFL_END, struct.pack("<I", 1))).ok
        else:
            _stub_write_uncompressed(host, one_k, 0xFC00)
        assert host.flash.read(0xFC00, 0x400) == one_k
        assert host.flash.read(0x10000, SECTOR_SIZE) == sector
        assert _erased_sectors(host, before) == [0xF000]


def test_stub_multi_block_uncompressed_erases_only_the_announced_sectors(make_host):
    host = make_host("esp32", stub="2")
    image = random.Random(5).randbytes(0x4000 + 0x1234)  # two blocks, the second mostly padding
    neighbour = random.Random(6).randbytes(3 * SECTOR_SIZE)  # where that padding would land
    _fill(host, 0x27000, neighbour)
    before = host.flash.meta.erase_counts()
    _stub_write_uncompressed(host, image, 0x21000)
    assert host.flash.read(0x21000, len(image)) == image
    assert host.flash.read(0x21000 + len(image), 0x27000 - 0x21000 - len(image)) == b"\xff" * 0xDCC
    assert host.flash.read(0x27000, len(neighbour)) == neighbour
    assert _erased_sectors(host, before) == list(range(0x21000, 0x27000, SECTOR_SIZE))


def test_stub_ignores_seq_and_drops_blocks_past_the_announced_size(make_host):
    host = make_host("esp8266", stub="1")
    a, b = b"\x11" * 0x1000, b"\x22" * 0x1000
    assert host.one(flash_begin(0x1800, 2, 0x1000, 0x30000, stub=True)).ok
    assert host.one(data_request(FLASH_DATA, a, 7)).ok  # lands at the start whatever seq says
    assert host.one(data_request(FLASH_DATA, b, 7)).ok
    assert host.one(data_request(FLASH_DATA, b"\x33" * 0x1000, 9)).ok  # nothing left to write
    assert host.flash.read(0x30000, 0x1800) == a + b[:0x800]
    assert host.flash.read(0x31800, 0x800) == b"\xff" * 0x800
    assert host.flash.read(0x32000, 0x1000) == b"\xff" * 0x1000


def test_esp32_rom_erases_the_announced_sectors_and_writes_whole_blocks(make_host):
    """The ESP32 ROM erases FLASH_BEGIN's size (rounded up to sectors) up front, then writes each
    padded 1 KiB block: the padding lands in the erased sector as FF, so 0x5000 keeps its data."""
    host = make_host("esp32")
    sector = random.Random(7).randbytes(SECTOR_SIZE)
    _fill(host, 0x5000, sector)
    before = host.flash.meta.erase_counts()
    one_k = random.Random(8).randbytes(0x300)
    assert host.one(flash_begin(len(one_k), 1, 0x400, 0x4000)).ok
    assert _erased_sectors(host, before) == [0x4000]
    assert host.one(data_request(FLASH_DATA, one_k + b"\xff" * 0x100, 0)).ok
    assert host.flash.read(0x4000, 0x400) == one_k + b"\xff" * 0x100
    assert host.flash.read(0x5000, SECTOR_SIZE) == sector
    assert host.flash.meta.get("violations") == 0


# -- 2. SFDP ----------------------------------------
SPI = {  # SPI1 controller: base, W0 offset, MISO bit length register (ESP8266: lengths in USR1)
    "esp32": (0x3FF42000, 0x80, 0x2C),
    "esp8266": (0x60000200, 0x40, None),
}


def spi_command(host, chip: str, opcode: int, read_bits: int, addr: int | None = None,
                addr_len: int = 24, dummy: int = 0) -> int:
    """A user SPI command through the registers, as esptool's run_spiflash_command does it."""
    base, w0, miso_dlen = SPI[chip]
    usr = 1 << 31 | (1 << 28 if read_bits else 0) | (1 << 30 if addr is not None else 0) | (1 << 29 if dummy else 0)
    usr1 = (dummy - 1 if dummy else 0) | ((addr_len - 1) << 26 if addr is not None else 0)
    writes = []
    if miso_dlen is not None:
        writes.append((base + miso_dlen, read_bits - 1))
    else:
        usr1 |= (read_bits - 1) << 8
    writes += [(base + 0x20, usr1), (base + 0x1C, usr), (base + 0x24, (7 << 28) | opcode)]
    if addr is not None:
        writes.append((base + 0x04, addr << (32 - addr_len)))
    writes += [(base + w0, 0), (base, 1 << 18)]
    for reg, value in writes:
        assert host.one(request(WRITE_REG, struct.pack("<IIII", reg, value, 0xFFFFFFFF, 0))).ok
    assert host.one(read_reg(base)).value & (1 << 18) == 0  # the command has completed
    return host.one(read_reg(base + w0)).value


def sfdp_read(host, chip: str, addr: int, nbytes: int) -> bytes:
    return spi_command(host, chip, 0x5A, nbytes * 8, addr=addr, dummy=8).to_bytes(4, "little")[:nbytes]


@both_chips
@pytest.mark.parametrize("stub", [None, "2"], ids=["rom", "stub"])
def test_sfdp_at_any_address(make_host, chip, stub):
    host = make_host(chip, stub=stub)
    assert spi_command(host, chip, 0x5A, 32, addr=0, dummy=8) == 0x50444653  # "SFDP"
    assert spi_command(host, chip, 0x5A, 24, addr=1, dummy=8) == 0x504446  # esptool read-flash-sfdp 1 3
    assert spi_command(host, chip, 0x5A, 8, addr=3, dummy=8) == 0x50
    table = b"".join(sfdp_read(host, chip, a, 4) for a in range(0, 0x100, 4))
    assert sfdp_read(host, chip, 0x101, 3) == table[1:4]  # the 256-byte space wraps
    assert sfdp_read(host, chip, 0xFE, 4) == table[0xFE:] + table[:2]
    assert table[:4] == b"SFDP"


def _parse_bfpt(table: bytes) -> dict:
    major, minor, nph, access = table[5], table[4], table[6], table[7]
    headers = [table[8 + 8 * i: 16 + 8 * i] for i in range(nph + 1)]
    jedec = [h for h in headers if h[0] == 0x00 and h[7] == 0xFF]
    assert (major, access) == (1, 0xFF) and jedec, table[:16].hex()
    h = jedec[0]
    length, ptp = h[3], int.from_bytes(h[4:7], "little")
    assert ptp % 4 == 0 and ptp + 4 * length <= len(table)
    dw = struct.unpack_from(f"<{length}I", table, ptp)
    assert length >= 9  # JESD216: at least the nine DWORDs of the original table
    density = dw[1]
    bits = (density & 0x7FFFFFFF) + 1 if not density & 0x80000000 else 1 << (density & 0x7FFFFFFF)
    erase_types = {1 << (dw[7 + i // 2] >> (16 * (i % 2)) & 0xFF): dw[7 + i // 2] >> (16 * (i % 2) + 8) & 0xFF
                   for i in range(4) if dw[7 + i // 2] >> (16 * (i % 2)) & 0xFF}
    page = 1 << ((dw[10] >> 4) & 0xF) if length >= 11 else None
    return {"rev": (major, minor), "size": bits // 8, "erase": erase_types, "page": page,
            "4k_opcode": (dw[0] >> 8) & 0xFF if dw[0] & 3 == 1 else None}


@pytest.mark.parametrize("size", [2 * MB, 4 * MB, 16 * MB])
def test_sfdp_table_matches_the_part(make_host, size):
    host = make_host("esp32", size=size)
    table = b"".join(sfdp_read(host, "esp32", a, 4) for a in range(0, 0x100, 4))
    bfpt = _parse_bfpt(table)
    rdid = spi_command(host, "esp32", 0x9F, 24)
    assert rdid & 0xFF == 0xEF and 1 << (rdid >> 16) == size  # Winbond, capacity code = log2(size)
    assert bfpt["size"] == size
    assert bfpt["erase"] == {0x1000: 0x20, 0x8000: 0x52, 0x10000: 0xD8}
    assert bfpt["4k_opcode"] == 0x20 and bfpt["page"] == 0x100
    # esptool's XMC start-up check reads SFDP byte 0x10 (a second parameter header's vendor).
    assert sfdp_read(host, "esp32", 0x10, 1) != b"\x20"


# -- 3. the flash is reached only once attached ----------------------------------------
@both_chips
def test_rom_flash_unreachable_before_attach(make_host, chip):
    host = make_host(chip, attach=False)
    data = random.Random(9).randbytes(SECTOR_SIZE)
    _fill(host, 0x8000, data)
    assert spi_command(host, chip, 0x9F, 24) == 0xFFFFFF  # RDID sees the idle bus
    assert spi_command(host, chip, 0x05, 8) == 0xFF
    assert spi_command(host, chip, 0x5A, 32, addr=0, dummy=8) == 0xFFFFFFFF
    if chip == "esp32":
        ops = host.flash.meta.get("ops")
        # Erase and writes go nowhere; reads give the idle bus.
        assert host.one(flash_begin(SECTOR_SIZE, 4, 0x400, 0x8000)).ok
        assert host.one(data_request(FLASH_DATA, bytes(0x400), 0)).ok
        assert host.flash.meta.get("ops") == ops and host.flash.read(0x8000, SECTOR_SIZE) == data
        r = host.one(md5_request(0x8000, SECTOR_SIZE))
        assert r.ok and r.data == hashlib.md5(b"\xff" * SECTOR_SIZE).hexdigest().encode()
        r = host.one(request(READ_FLASH_SLOW, struct.pack("<II", 0x8000, 64)))
        assert r.ok and r.data == b"\xff" * 64
        assert host.one(spi_attach()).ok
    else:
        # The ESP8266 ROM has no SPI_ATTACH: its FLASH_BEGIN attaches (esptool sends one with size 0).
        assert host.one(flash_begin(0, 0, 0x400, 0)).ok
    assert spi_command(host, chip, 0x9F, 24) == 0x1640EF
    assert spi_command(host, chip, 0x5A, 32, addr=0, dummy=8) == 0x50444653
    assert host.one(flash_begin(SECTOR_SIZE, 4, 0x400, 0x8000)).ok
    assert host.flash.read(0x8000, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE  # now the erase happened


@pytest.mark.parametrize("pins, reached", [(0, True), (1, False),  # default SPI pins, HSPI
                                           ((9 << 24) | (11 << 18) | (8 << 12) | (7 << 6) | 6, True),
                                           ((9 << 24) | (5 << 18) | (8 << 12) | (7 << 6) | 6, False)],
                         ids=["spi", "hspi", "default-pins", "cs-on-gpio5"])
def test_esp32_attach_pins(make_host, pins, reached):
    host = make_host("esp32", attach=False)
    assert host.one(spi_attach(pins)).ok
    assert spi_command(host, "esp32", 0x9F, 24) == (0x1640EF if reached else 0xFFFFFF)


@both_chips
def test_stub_attaches_the_flash_itself(make_host, chip):
    host = make_host(chip, stub="2")  # no SPI_ATTACH: esptool sends none to a stub
    assert spi_command(host, chip, 0x9F, 24) == 0x1640EF


# -- 4. encrypted writes ----------------------------------------
def espsecure_ciphertext(data: bytes, address: int) -> bytes:
    """What espsecure encrypt-flash-data makes of ``data`` with a blank chip's key and config."""
    out = io.BytesIO()
    espsecure.encrypt_flash_data(io.BytesIO(bytes(32)), out, address, 0, False, io.BytesIO(data))
    return out.getvalue()


def _stub_encrypted_write(host, image: bytes, offset: int, compressed: bool) -> list:
    """FLASH(_DEFL)_BEGIN with the fifth word (encrypt) set, the blocks, FLASH_END: the replies."""
    replies = []
    if compressed:
        comp = zlib.compress(image, 9)
        blocks = [comp[i:i + 0x4000] for i in range(0, len(comp), 0x4000)]
        begin = struct.pack("<IIII", len(image), len(blocks), 0x4000, offset) + struct.pack("<I", 1)
        replies.append(host.one(request(FLASH_DEFL_BEGIN, begin)))
        replies += [host.one(data_request(FLASH_DEFL_DATA, b, i)) for i, b in enumerate(blocks)]
    else:
        blocks = [image[i:i + 0x4000] for i in range(0, len(image), 0x4000)]
        begin = struct.pack("<IIII", len(image), len(blocks), 0x4000, offset) + struct.pack("<I", 1)
        replies.append(host.one(request(FLASH_BEGIN, begin)))
        replies += [host.one(data_request(FLASH_DATA, b.ljust(0x4000, b"\xff"), i)) for i, b in enumerate(blocks)]
    replies.append(host.one(request(FLASH_END, struct.pack("<I", 1))))
    return replies


@both_stubs
@pytest.mark.parametrize("compressed", [False, True], ids=["no-compress", "compress"])
def test_esp32_stub_encrypted_write_stores_ciphertext(make_host, version, compressed):
    host = make_host("esp32", stub=version)
    image = (random.Random(10).randbytes(0x5000) + bytes(0x3000))[: 0x7FE0]  # a multiple of 32
    replies = _stub_encrypted_write(host, image, 0x10000, compressed)
    assert all(r.ok for r in replies), replies
    stored = host.flash.read(0x10000, len(image))
    assert stored != image
    assert stored == espsecure_ciphertext(image, 0x10000)
    assert host.flash.read(0x10000 + len(image), 0x20) == b"\xff" * 0x20


def test_esp32_stub_encrypted_write_needs_32_byte_alignment(make_host):
    host = make_host("esp32", stub="2")
    _fill(host, 0x10000, bytes(SECTOR_SIZE))
    replies = _stub_encrypted_write(host, bytes(range(256)) * 4, 0x10010, compressed=False)
    # The stub erases the sector, then the flash encryption block refuses the unaligned write.
    assert replies[1].status == b"\xc4\x00"
    assert host.flash.read(0x10000, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE


@pytest.mark.parametrize("version, plaintext", [("1", True), ("2", False)])
def test_esp8266_stub_encrypt_flag(make_host, version, plaintext):
    """The ESP8266 has no flash encryption: the legacy stub drops the flag, esp-flasher-stub fails."""
    host = make_host("esp8266", stub=version)
    image = bytes(range(256)) * 4
    replies = _stub_encrypted_write(host, image, 0x10000, compressed=False)
    if plaintext:
        assert all(r.ok for r in replies) and host.flash.read(0x10000, len(image)) == image
    else:
        assert replies[1].status == b"\xc4\x00"
        assert host.flash.read(0x10000, len(image)) == b"\xff" * len(image)


# -- 5. only esptool's stub runs as the stub ----------------------------------------
@both_chips
@both_stubs
def test_esptool_stub_images_are_recognised(make_host, chip, version):
    host = make_host(chip, attach=False)
    frames = host.enter_stub(version)
    assert frames[-1] == b"OHAI" and host.loader.stub_version == version


def _upload_and_jump(host, segments, entry) -> list[bytes]:
    for r in host.send(*ram_upload(segments)):
        assert r.ok, r
    return host.feed(slip(mem_end(entry)))


@both_chips
@pytest.mark.parametrize("what", ["random-code", "wrong-entry", "patched-text", "data-missing"])
def test_other_ram_code_leaves_the_chip_silent(make_host, chip, what):
    host = make_host(chip, attach=False)
    entry, segments = esptool_stub(chip)
    if what == "random-code":
        segments, entry = [(segments[0][0], random.Random(11).randbytes(0x2000))], segments[0][0]
    elif what == "wrong-entry":
        entry += 4
    elif what == "patched-text":
        text = bytearray(segments[0][1])
        text[100] ^= 0x01
        segments = [(segments[0][0], bytes(text))] + segments[1:]
    else:
        segments = segments[:1]
    frames = _upload_and_jump(host, segments, entry)
    # The ROM answers MEM_END, then jumps: no OHAI, and the loader has left download mode.
    assert len(frames) == 1 and parse_reply(frames[0], ROM_STATUS_LEN[chip]).op == MEM_END
    assert host.exit is not None and host.exit.action == "halt"
    assert not host.loader.stub


def test_mem_end_without_entry_stays_in_the_rom(make_host):
    host = make_host("esp32", attach=False)
    entry, segments = esptool_stub("esp32")
    frames = _upload_and_jump(host, segments, 0)
    assert len(frames) == 1 and host.exit is None and not host.loader.stub
    assert len(host.send(sync())) == 8


def test_board_goes_silent_after_unknown_ram_code_until_reset(start_board):
    board = start_board("esp32")
    since = board.control.status()["event_seq"]
    board.control.reset(download=True)
    board.control.wait_event("boot", since=since, mode="download")
    host = SocketHost(board.socket_url, 4)
    try:
        host.send_raw(slip(sync()))
        host.take(8)
        packets = ram_upload([(0x40090000, random.Random(12).randbytes(0x1000))])
        host.send_raw(b"".join(slip(p) for p in packets))
        assert all(r.ok for r in host.take(len(packets)))
        since = board.control.status()["event_seq"]
        host.send_raw(slip(mem_end(0x40090000)))
        (r,) = host.take(1)
        assert (r.op, r.ok) == (MEM_END, True)
        board.control.wait_event("chip-stop", since=since, reason="halt")
        assert board.control.status()["chip_state"] == "halted"
        host.send_raw(slip(sync()) + slip(read_reg(0x40001000)))
        assert unslip_stream(host.quiet(0.5)) == []
        since = board.control.status()["event_seq"]
        board.control.reset(download=True)
        board.control.wait_event("boot", since=since, mode="download")
        host.send_raw(slip(sync()))
        assert len(host.take(8)) == 8
    finally:
        host.close()
