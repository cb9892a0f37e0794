"""The ROM serial loader and the flasher stub, as stock esptool sees them.

A virtual chip cannot run esptool's stub, but after esptool uploads it to RAM
and jumps to it the chip can *behave* as the stub: greet with ``OHAI``, send two
status bytes, and accept the stub-only commands. Only esptool's own stub image
gets that treatment (see ``ram.py``); a jump to any other RAM code leaves the
chip silent until the next reset. Everything the chip answers is derived from
the per-chip profile classes below (register values, status format, which
commands exist; ``harness.chips`` names each chip's profile), never from
``if chip ==`` branches.

The SPI flash is reachable only once it is attached: the ESP32 ROM attaches it
on SPI_ATTACH, the ESP8266 ROM on FLASH_BEGIN, both stubs when they start.
Before that, flash commands reach no chip: reads see the idle bus (all ones,
so RDID gives 0xFFFFFF as on a board whose flash is not on the attached pins)
and erases and writes change nothing.

Facts come from esptool's loader and targets (what it sends and what it checks)
and the ESP32 / ESP8266 ROM behaviour it documents; see
``shared/specs/esptool-serial-protocol.md``.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from typing import Callable, Protocol

from .flash import SECTOR_SIZE, SFDP_SIZE, FlashError, NorFlash
from .flash_crypt import ENCRYPTED_WRITE_ALIGN, esp32_encrypt
from .ram import Ram

# -- command ids ---------------------------------------------------------------------------
FLASH_BEGIN = 0x02
FLASH_DATA = 0x03
FLASH_END = 0x04
MEM_BEGIN = 0x05
MEM_END = 0x06
MEM_DATA = 0x07
SYNC = 0x08
WRITE_REG = 0x09
READ_REG = 0x0A
SPI_SET_PARAMS = 0x0B
SPI_ATTACH = 0x0D
READ_FLASH_SLOW = 0x0E
CHANGE_BAUDRATE = 0x0F
FLASH_DEFL_BEGIN = 0x10
FLASH_DEFL_DATA = 0x11
FLASH_DEFL_END = 0x12
SPI_FLASH_MD5 = 0x13
GET_SECURITY_INFO = 0x14
ERASE_FLASH = 0xD0
ERASE_REGION = 0xD1
READ_FLASH = 0xD2
RUN_USER_CODE = 0xD3

SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32

# -- ROM error reasons (second status byte after status 0x01) --------------------------------
ROM_INVALID_MESSAGE = 0x05
ROM_FAILED_TO_ACT = 0x06
ROM_BAD_CHECKSUM = 0x07
ROM_FLASH_WRITE_ERROR = 0x08
ROM_FLASH_READ_ERROR = 0x09
ROM_READ_LENGTH_ERROR = 0x0A
ROM_DEFLATE_ERROR = 0x0B

# -- stub error codes (first status byte, second is 0) ----------------------------------------
STUB_BAD_DATA_LEN = 0xC0
STUB_BAD_CHECKSUM = 0xC1
STUB_BAD_BLOCKSIZE = 0xC2
STUB_INVALID_COMMAND = 0xC3
STUB_FAILED_SPI_OP = 0xC4
STUB_NOT_IN_FLASH_MODE = 0xC6
STUB_INFLATE_ERROR = 0xC7
STUB_NOT_ENOUGH_DATA = 0xC8
STUB_TOO_MUCH_DATA = 0xC9
STUB_NOT_IMPLEMENTED = 0xFF

# SPI controller: CMD register bit that runs the user command, USR register phase bits
SPI_CMD_USR = 1 << 18
SPI_USR_COMMAND = 1 << 31
SPI_USR_ADDR = 1 << 30
SPI_USR_DUMMY = 1 << 29
SPI_USR_MISO = 1 << 28
SPI_USR_MOSI = 1 << 27
SPI_USR_OFFS, SPI_USR1_OFFS, SPI_USR2_OFFS = 0x1C, 0x20, 0x24
SPI_W_REGS = 16  # W0..W15: 64 bytes of data buffer

# SPI flash opcodes the part answers through the user-command registers
SPIFLASH_RDID = 0x9F
SPIFLASH_RDSFDP = 0x5A
SPIFLASH_RDSR = (0x05, 0x35, 0x15)


def xor_checksum(data: bytes, state: int = 0xEF) -> int:
    """0xEF XOR every byte, computed by folding one big integer (fast for 16 KiB blocks)."""
    if not data:
        return state
    x = int.from_bytes(data, "little")
    bits = len(data) * 8
    while bits > 8:
        half = (bits // 16) * 8 or 8
        x = (x >> half) ^ (x & ((1 << half) - 1))
        bits = max(half, bits - half)
    return (x & 0xFF) ^ state


class SlipDecoder:
    """Splits a byte stream into SLIP frames; bytes outside frames are dropped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False

    def feed(self, data: bytes) -> list[bytes | None]:
        """Return the frames completed by ``data``; ``None`` marks a malformed frame."""
        frames: list[bytes | None] = []
        pos = 0
        while pos < len(data):
            end = data.find(b"\xc0", pos)
            if not self._in_frame:
                if end < 0:
                    return frames
                self._in_frame = True
                pos = end + 1
                continue
            if end < 0:
                self._buf += data[pos:]
                return frames
            self._buf += data[pos:end]
            pos = end + 1
            raw = bytes(self._buf)
            self._buf.clear()
            if not raw:
                # Two C0 in a row: the second one opens the next frame.
                continue
            self._in_frame = False
            frames.append(slip_unescape(raw))
        return frames


def slip_unescape(raw: bytes) -> bytes | None:
    if b"\xdb" not in raw:
        return raw
    out = raw.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
    # Any DB left was not followed by DC/DD: a malformed escape.
    if out.count(b"\xdb") != raw.count(b"\xdb\xdd"):
        return None
    return out


def slip_frame(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class Uart(Protocol):
    baud: int

    def read(self, timeout: float | None = None) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def set_baud(self, baud: int) -> None: ...


# -- chip profiles ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RomProfile:
    """What distinguishes one chip's ROM loader on the wire."""

    name: str
    magic: int
    rom_status_len: int
    rom_commands: frozenset[int]
    spi_base: int
    spi_w0_offs: int
    uart_clkdiv_reg: int
    uart_clock_hz: int
    sync_value: int = 0x20120707
    # Flash size the ROM assumes until SPI_SET_PARAMS says otherwise (None: the real size).
    rom_default_flash_size: int | None = None
    # ESP32: MISO bit length register (offset from spi_base); None: lengths live in USR1.
    spi_miso_dlen_offs: int | None = None
    # The ROM attaches the flash itself on FLASH_BEGIN (it has no SPI_ATTACH command).
    attach_on_flash_begin: bool = False
    # SPI_ATTACH's pin argument: 0 (the default pins) and this encoding of the same pins reach
    # the flash, anything else (HSPI, other pins) reaches nothing. None: the argument is ignored.
    default_spi_pins: int | None = None
    # The stub can write through the flash encryption block (FLASH_BEGIN's 5th word).
    flash_encryption: bool = False

    def registers(self, mac: bytes, download: bool) -> dict[int, int]:
        raise NotImplementedError

    def rom_erase_bytes(self, offset: int, size: int) -> int:
        """Bytes the ROM's FLASH_BEGIN actually erases for a requested ``size``."""
        return size

    def rom_baud_from_request(self, requested: int, regs: dict[int, int]) -> int:
        return requested

    def spi_miso_bits(self, regs: dict[int, int]) -> int:
        """Bits the user command reads back on MISO, from the length registers esptool set."""
        if self.spi_miso_dlen_offs is not None:
            return (regs.get(self.spi_base + self.spi_miso_dlen_offs, 0) & 0xFFFFFF) + 1
        # ESP8266: USR1 holds MISO bit length - 1 in bits 8-16.
        return ((regs.get(self.spi_base + SPI_USR1_OFFS, 0) >> 8) & 0x1FF) + 1

    def flash_encrypt(self, data: bytes, address: int) -> bytes:
        raise NotImplementedError(f"{self.name} has no flash encryption")


def spi_attach_pins(clk: int, q: int, d: int, hd: int, cs: int) -> int:
    """SPI_ATTACH's pin argument for a custom connection (esptool's encoding)."""
    return (hd << 24) | (cs << 18) | (d << 12) | (q << 6) | clk


class Esp32Profile(RomProfile):
    EFUSE = 0x3FF5A000
    APB_CTL_DATE = 0x3FF6607C
    RTCCALICFG1 = 0x3FF5F06C
    GPIO_STRAP = 0x3FF44038

    def registers(self, mac: bytes, download: bool) -> dict[int, int]:
        # MAC: efuse word 2 low 16 bits = first two bytes, word 1 = last four (big endian).
        w1 = int.from_bytes(mac[2:6], "big")
        w2 = int.from_bytes(mac[0:2], "big")
        # Revision v3.0 (efuse3 bit 15, efuse5 bit 20, APB_CTL_DATE bit 31), package D0WD
        # (pkg 1), 240 MHz rated; CK8M calibration 0x50 + RTCCALICFG1 1280<<7 make esptool's
        # "ROM-calculated crystal" come out at exactly 40 MHz.
        w3 = (1 << 15) | (1 << 13) | (1 << 9)
        w4 = 0x50
        w5 = 1 << 20
        return {
            self.magic_addr: self.magic,
            self.EFUSE + 0x00: 0,
            self.EFUSE + 0x04: w1,
            self.EFUSE + 0x08: w2,
            self.EFUSE + 0x0C: w3,
            self.EFUSE + 0x10: w4,
            self.EFUSE + 0x14: w5,
            self.EFUSE + 0x18: 0,
            self.APB_CTL_DATE: 0x80000000 | 0x16042000,
            self.RTCCALICFG1: 1280 << 7,
            self.GPIO_STRAP: 0x03 if download else 0x13,
        }

    magic_addr = 0x40001000

    # Blank eFuses, as the registers above report them: BLOCK1 (the flash encryption key)
    # all zero and readable, FLASH_CRYPT_CONFIG (efuse word 5 bits 28-31) 0.
    FLASH_CRYPT_KEY = bytes(32)
    FLASH_CRYPT_CONFIG = 0

    def flash_encrypt(self, data: bytes, address: int) -> bytes:
        return esp32_encrypt(data, address, self.FLASH_CRYPT_KEY, self.FLASH_CRYPT_CONFIG)

    def rom_baud_from_request(self, requested: int, regs: dict[int, int]) -> int:
        # esptool scales the value by the ROM's idea of the crystal; with the calibration
        # registers above the scale is exactly 1.
        cali = (regs.get(self.RTCCALICFG1, 0) >> 7) & 0x01FFFFFF
        ck8m = regs.get(self.EFUSE + 0x10, 0) & 0xFF
        rom_freq = cali * 15625 * ck8m / 40
        if not rom_freq:
            return requested
        valid = 40_000_000 if rom_freq > 33_000_000 else 26_000_000
        return int(round(requested * valid / rom_freq))


class Esp8266Profile(RomProfile):
    OTP = 0x3FF00050
    magic_addr = 0x40001000

    def registers(self, mac: bytes, download: bool) -> dict[int, int]:
        # esptool: MAC = OUI (from mac3, or 18:FE:34 when mac1 bits 16-23 are 0)
        # + mac1 bits 8-15, mac1 bits 0-7, mac0 bits 24-31.
        oui = mac[0:3]
        mac0 = mac[5] << 24
        mac1 = (mac[3] << 8) | mac[4]
        mac3 = int.from_bytes(oui, "big") if oui != b"\x18\xfe\x34" else 0
        return {
            self.magic_addr: self.magic,
            self.OTP + 0x0: mac0,
            self.OTP + 0x4: mac1,
            self.OTP + 0x8: 0,
            self.OTP + 0xC: mac3,
        }

    def rom_erase_bytes(self, offset: int, size: int) -> int:
        # The ESP8266 ROM's SPIEraseArea miscounts: besides the sectors asked for it
        # erases again as many as fit before the next 64 KiB boundary (at most as many
        # as were asked). esptool sends a reduced size to compensate.
        sectors = (size + SECTOR_SIZE - 1) // SECTOR_SIZE
        head = 16 - (offset // SECTOR_SIZE) % 16
        return (sectors + min(head, sectors)) * SECTOR_SIZE


_ESP32_ROM_CMDS = frozenset(
    {FLASH_BEGIN, FLASH_DATA, FLASH_END, MEM_BEGIN, MEM_END, MEM_DATA, SYNC, WRITE_REG, READ_REG,
     SPI_SET_PARAMS, SPI_ATTACH, READ_FLASH_SLOW, CHANGE_BAUDRATE, FLASH_DEFL_BEGIN, FLASH_DEFL_DATA,
     FLASH_DEFL_END, SPI_FLASH_MD5}
)
_ESP8266_ROM_CMDS = frozenset(
    {FLASH_BEGIN, FLASH_DATA, FLASH_END, MEM_BEGIN, MEM_END, MEM_DATA, SYNC, WRITE_REG, READ_REG}
)
STUB_CMDS = frozenset(
    {FLASH_BEGIN, FLASH_DATA, FLASH_END, MEM_BEGIN, MEM_END, MEM_DATA, SYNC, WRITE_REG, READ_REG,
     SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE, FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END,
     SPI_FLASH_MD5, ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE}
)

ESP32 = Esp32Profile(
    name="esp32",
    magic=0x00F01D83,
    rom_status_len=4,
    rom_commands=_ESP32_ROM_CMDS,
    spi_base=0x3FF42000,
    spi_w0_offs=0x80,
    uart_clkdiv_reg=0x3FF40014,
    uart_clock_hz=40_000_000,
    rom_default_flash_size=2 * 1024 * 1024,
    spi_miso_dlen_offs=0x2C,
    # The flash of an ESP32 module: CLK GPIO6, Q GPIO7, D GPIO8, HD GPIO9, CS GPIO11.
    default_spi_pins=spi_attach_pins(6, 7, 8, 9, 11),
    flash_encryption=True,
)
ESP8266 = Esp8266Profile(
    name="esp8266",
    magic=0xFFF0C101,
    rom_status_len=2,
    rom_commands=_ESP8266_ROM_CMDS,
    spi_base=0x60000200,
    spi_w0_offs=0x40,
    uart_clkdiv_reg=0x60000014,
    uart_clock_hz=52_000_000,
    attach_on_flash_begin=True,
)


# -- the loader --------------------------------------------------------------------------------
class CommandError(Exception):
    """A command failed; carries the reason in ROM and stub terms."""

    def __init__(self, rom_reason: int, stub_code: int, detail: str = ""):
        super().__init__(detail)
        self.rom_reason = rom_reason
        self.stub_code = stub_code


@dataclass
class LoaderExit:
    """Why the loader stopped answering: the chip leaves download mode."""

    action: str  # "reboot" (chip reset), "run" (jump to the app in flash), "halt" (runs code the model cannot)
    detail: str = ""


@dataclass
class _WriteSession:
    offset: int
    size: int  # bytes the host said it will write (stub) or erase (ROM)
    block_size: int
    blocks: int
    compressed: bool
    written: int = 0  # stub: bytes of the announced size taken so far
    erased_until: int = 0  # stub: next byte not yet erased
    erase_end: int = 0  # stub: end of the sectors the announced size covers
    inflater: "zlib._Decompress | None" = None
    next_seq: int = 0
    encrypt: bool = False  # stub: write through the flash encryption block
    encrypt_fails: bool = False  # stub: encrypted writes are not possible on this chip
    pending: bytearray | None = None  # stub, encrypted: bytes waiting for a whole 32-byte block


class Loader:
    """Answers esptool on one UART until the chip leaves download mode."""

    def __init__(
        self,
        profile: RomProfile,
        flash: NorFlash,
        uart: Uart,
        mac: bytes,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.profile = profile
        self.flash = flash
        self.uart = uart
        self.mac = mac
        self.log = log or (lambda msg: None)
        self.stub = False
        self.stub_version: str | None = None  # which of esptool's stubs is running
        self.regs = profile.registers(mac, download=True)
        self._flash_param_size = profile.rom_default_flash_size or flash.size
        # In download mode the ROM has not attached the SPI flash (see the module docstring).
        self.flash_attached = False
        self._write: _WriteSession | None = None
        self.ram = Ram()
        self._decoder = SlipDecoder()

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> LoaderExit:
        while True:
            data = self.uart.read(None)
            if not data:
                continue
            for frame in self._decoder.feed(data):
                result = self.handle_frame(frame)
                if result is not None:
                    return result

    def handle_frame(self, frame: bytes | None) -> LoaderExit | None:
        if frame is None:
            self.log("dropped a frame with a malformed SLIP escape")
            return None
        if len(frame) < 8 or frame[0] != 0x00:
            self.log(f"ignored a {len(frame)}-byte frame that is not a request")
            return None
        _, op, length, chk = struct.unpack_from("<BBHI", frame)
        data = frame[8:]
        if length != len(data):
            self.log(f"command {op:#04x}: header says {length} bytes, frame has {len(data)}")
            self._reply_error(op, ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN)
            return None
        supported = STUB_CMDS if self.stub else self.profile.rom_commands
        if op not in supported:
            self.log(f"command {op:#04x} is not supported by the {'stub' if self.stub else 'ROM'}")
            self._reply_error(op, ROM_INVALID_MESSAGE, STUB_NOT_IMPLEMENTED)
            return None
        handler = self._HANDLERS[op]
        try:
            return handler(self, op, data, chk)
        except CommandError as e:
            if str(e):
                self.log(f"command {op:#04x} failed: {e}")
            self._reply_error(op, e.rom_reason, e.stub_code)
        except FlashError as e:
            self.log(f"command {op:#04x} failed: {e}")
            self._reply_error(op, ROM_FAILED_TO_ACT, STUB_FAILED_SPI_OP)
        return None

    # -- replies ----------------------------------------------------------------------------------
    @property
    def status_len(self) -> int:
        return 2 if self.stub else self.profile.rom_status_len

    def _reply(self, op: int, value: int = 0, data: bytes = b"") -> None:
        body = data + bytes(self.status_len)
        self.uart.write(slip_frame(struct.pack("<BBHI", 1, op, len(body), value) + body))

    def _reply_error(self, op: int, rom_reason: int, stub_code: int) -> None:
        if self.stub:
            status = bytes([stub_code, 0])
        else:
            status = bytes([1, rom_reason]) + bytes(self.status_len - 2)
        self.uart.write(slip_frame(struct.pack("<BBHI", 1, op, len(status), 0) + status))

    # -- commands -------------------------------------------------------------------------------
    def _sync(self, op: int, data: bytes, chk: int) -> None:
        if data != SYNC_PAYLOAD:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "SYNC payload is wrong")
        value = 0 if self.stub else self.profile.sync_value
        # The ROM answers a SYNC with a burst of replies; esptool reads eight.
        for _ in range(8):
            self._reply(op, value)

    def _read_reg(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 4:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "READ_REG needs 4 bytes")
        (addr,) = struct.unpack("<I", data)
        self._reply(op, self._reg_value(addr))

    def _reg_value(self, addr: int) -> int:
        if addr == self.profile.uart_clkdiv_reg:
            return (self.profile.uart_clock_hz // max(self.uart.baud, 1)) & 0xFFFFF
        return self.regs.get(addr, 0)

    def _write_reg(self, op: int, data: bytes, chk: int) -> None:
        if not data or len(data) % 16:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "WRITE_REG needs 16-byte records")
        for addr, value, mask, _delay in struct.iter_unpack("<IIII", data):
            old = self.regs.get(addr, 0)
            self.regs[addr] = (old & ~mask) | (value & mask)
            if addr == self.profile.spi_base and value & mask & SPI_CMD_USR:
                self._run_spi_command()
        self._reply(op)

    def _run_spi_command(self) -> None:
        """Execute the user SPI command esptool set up in the SPI1 registers.

        The command phase's opcode is in USR2; the address (when USR has the address phase)
        sits in the top bits of ADDR, as long as USR1 says; what the part shifts out during
        the MISO phase lands in W0.. (least significant byte first), only as many bits as
        the MISO length asks for.
        """
        p, regs = self.profile, self.regs
        base = p.spi_base
        usr = regs.get(base + SPI_USR_OFFS, 0)
        opcode = regs.get(base + SPI_USR2_OFFS, 0) & 0xFF
        addr = 0
        if usr & SPI_USR_ADDR:
            addr_bits = ((regs.get(base + SPI_USR1_OFFS, 0) >> 26) & 0x3F) + 1
            addr = regs.get(base + 0x04, 0) >> (32 - addr_bits)
        miso_bits = min(p.spi_miso_bits(regs), 32 * SPI_W_REGS) if usr & SPI_USR_MISO else 0
        if miso_bits:
            n = (miso_bits + 7) // 8
            out = self._spi_flash_output(opcode, addr, n) if self.flash_attached else b"\xff" * n
            value = int.from_bytes(out, "little") & ((1 << miso_bits) - 1)
            for i in range((miso_bits + 31) // 32):
                reg = base + p.spi_w0_offs + 4 * i
                mask = ((1 << miso_bits) - 1) >> (32 * i) & 0xFFFFFFFF
                regs[reg] = (regs.get(reg, 0) & ~mask) | ((value >> (32 * i)) & mask)
        regs[base] = regs.get(base, 0) & ~SPI_CMD_USR

    def _spi_flash_output(self, opcode: int, addr: int, n: int) -> bytes:
        """The first ``n`` bytes the flash part shifts out after ``opcode`` (and its address)."""
        if opcode == SPIFLASH_RDID:  # manufacturer, memory type, capacity, repeating
            ident = self.flash.jedec_id.to_bytes(3, "little")
            return (ident * (n // 3 + 1))[:n]
        if opcode == SPIFLASH_RDSFDP:  # the 256-byte SFDP space; A23-A8 are ignored
            table = self.flash.sfdp
            return bytes(table[(addr + i) % SFDP_SIZE] for i in range(n))
        if opcode in SPIFLASH_RDSR:  # status registers 1-3: idle, nothing protected
            return bytes(n)
        return b"\xff" * n  # a command the part ignores: nothing drives MISO

    def _spi_set_params(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 24:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "SPI_SET_PARAMS needs 24 bytes")
        _id, total, _block, _sector, _page, _mask = struct.unpack("<6I", data)
        self._flash_param_size = total
        self._reply(op)

    def _spi_attach(self, op: int, data: bytes, chk: int) -> None:
        # ROM: pins word plus 4 bytes (the "legacy" flag); stub: the pins word.
        if len(data) < 4 or (self.stub and len(data) != 4):
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "SPI_ATTACH needs the pin word")
        (pins,) = struct.unpack_from("<I", data)
        self._attach(pins)
        self._reply(op)

    def _attach(self, pins: int = 0) -> None:
        default = self.profile.default_spi_pins
        self.flash_attached = default is None or pins in (0, default)
        if not self.flash_attached:
            self.log(f"SPI flash attached on pins {pins:#x}: the flash is not there")

    def _get_security_info(self, op: int, data: bytes, chk: int) -> None:  # pragma: no cover
        raise CommandError(ROM_INVALID_MESSAGE, STUB_NOT_IMPLEMENTED)

    def _change_baud(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 8:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "CHANGE_BAUDRATE needs 8 bytes")
        new, _old = struct.unpack("<II", data)
        if not self.stub:
            new = self.profile.rom_baud_from_request(new, self.regs)
        if new <= 0:
            raise CommandError(ROM_FAILED_TO_ACT, STUB_INVALID_COMMAND, f"baud rate {new} is invalid")
        self._reply(op)  # at the old rate
        self.uart.set_baud(new)
        self.log(f"UART now at {new} baud")

    # RAM download: how esptool uploads its stub (and `load-ram` any other code).
    def _mem_begin(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 16:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "MEM_BEGIN needs 16 bytes")
        _size, _blocks, _bs, addr = struct.unpack("<IIII", data)
        self.ram.begin(addr)
        self._reply(op)

    def _mem_data(self, op: int, data: bytes, chk: int) -> None:
        payload = self._data_payload(data, chk)
        self.ram.append(payload)
        self._reply(op)

    def _mem_end(self, op: int, data: bytes, chk: int) -> LoaderExit | None:
        if len(data) != 8:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "MEM_END needs 8 bytes")
        no_entry, entry = struct.unpack("<II", data)
        self._reply(op)
        if no_entry or not entry:
            return None
        stub = self.ram.stub_at(self.profile.name, entry)
        if stub is None:
            # Code the model cannot run: the chip leaves the loader and says nothing more.
            self.log(f"jumped to RAM code at {entry:#x} that is not esptool's flasher stub")
            return LoaderExit("halt", f"MEM_END: running unknown RAM code at {entry:#x}")
        # esptool's flasher stub: from here on behave as it does. It attaches the flash
        # itself and reads the flash chip's real size.
        self.stub = True
        self.stub_version = stub.version
        self._flash_param_size = self.flash.size
        self._write = None
        self._attach()
        self.uart.write(slip_frame(b"OHAI"))
        self.log(f"flasher stub {stub.version} running (entry {entry:#x})")
        return None

    # Flash writes.
    def _flash_begin(self, op: int, data: bytes, chk: int, compressed: bool = False) -> None:
        words = 5 if self.stub else 4
        if len(data) not in (16, 20) or (self.stub and len(data) != 4 * words):
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, f"FLASH_BEGIN needs {4 * words} bytes")
        size, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if block_size == 0 or (self.stub and block_size > 0x4000):
            raise CommandError(ROM_FAILED_TO_ACT, STUB_BAD_BLOCKSIZE, f"block size {block_size} not accepted")
        session = _WriteSession(offset, size, block_size, blocks, compressed)
        if self.stub:
            # The stub takes the first word as the number of bytes to write and erases as it
            # writes: the sectors from the one holding ``offset`` to the one holding the last
            # announced byte, nothing past them.
            if offset + size > self._flash_param_size:
                raise CommandError(ROM_FAILED_TO_ACT, STUB_FAILED_SPI_OP,
                                   f"write {offset:#x}+{size:#x} beyond flash size {self._flash_param_size:#x}")
            session.erased_until = offset - offset % SECTOR_SIZE
            session.erase_end = -(-(offset + size) // SECTOR_SIZE) * SECTOR_SIZE
            if len(data) == 20 and struct.unpack_from("<I", data, 16)[0]:
                if self.profile.flash_encryption:
                    session.encrypt, session.pending = True, bytearray()
                elif self.stub_version != "1":
                    # esp-flasher-stub refuses encrypted writes on a chip without flash
                    # encryption; the legacy stub drops the flag and writes plaintext.
                    session.encrypt_fails = True
        else:
            if self.profile.attach_on_flash_begin:
                self._attach()
            erase = self.profile.rom_erase_bytes(offset, size) if not compressed else size
            if offset + erase > self._flash_param_size:
                raise CommandError(ROM_FAILED_TO_ACT, STUB_FAILED_SPI_OP,
                                   f"erase {offset:#x}+{erase:#x} beyond flash size {self._flash_param_size:#x}")
            self._erase(offset, erase)
        if compressed:
            session.inflater = zlib.decompressobj()
        self._write = session
        self._reply(op)

    def _flash_defl_begin(self, op: int, data: bytes, chk: int) -> None:
        self._flash_begin(op, data, chk, compressed=True)

    def _flash_data(self, op: int, data: bytes, chk: int) -> None:
        session = self._write
        payload = self._data_payload(data, chk)
        if session is None or session.compressed:
            raise CommandError(ROM_FAILED_TO_ACT, STUB_NOT_IN_FLASH_MODE, "FLASH_DATA without FLASH_BEGIN")
        seq = struct.unpack_from("<I", data, 4)[0]
        if self.stub:
            if len(payload) > session.block_size:
                raise CommandError(ROM_FAILED_TO_ACT, STUB_TOO_MUCH_DATA, "block larger than announced")
            # The stub ignores seq (blocks land one after another) and drops whatever the
            # host sends past the announced size: the 0xFF padding of the last block.
            self._stub_take(session, payload)
        else:
            # The ROM writes each whole block (padding included) where seq puts it.
            self._rom_write(session, session.offset + seq * session.block_size, payload)
        self._reply(op)

    def _flash_defl_data(self, op: int, data: bytes, chk: int) -> None:
        session = self._write
        payload = self._data_payload(data, chk)
        if session is None or not session.compressed or session.inflater is None:
            raise CommandError(ROM_FAILED_TO_ACT, STUB_NOT_IN_FLASH_MODE, "FLASH_DEFL_DATA without FLASH_DEFL_BEGIN")
        seq = struct.unpack_from("<I", data, 4)[0]
        if seq != session.next_seq:
            if seq == session.next_seq - 1:
                self._reply(op)  # a retried block we already took
                return
            raise CommandError(ROM_FAILED_TO_ACT, STUB_BAD_DATA_LEN, f"block {seq} out of order")
        try:
            out = session.inflater.decompress(payload)
        except zlib.error as e:
            raise CommandError(ROM_DEFLATE_ERROR, STUB_INFLATE_ERROR, f"inflate failed: {e}") from None
        limit = session.size if self.stub else self._flash_param_size - session.offset
        if session.written + len(out) > limit:
            raise CommandError(ROM_FLASH_WRITE_ERROR, STUB_TOO_MUCH_DATA, "more data than announced")
        if self.stub:
            self._stub_take(session, out)
        else:
            self._rom_write(session, session.offset + session.written, out)
        session.next_seq += 1
        self._reply(op)

    def _check_write(self, addr: int, size: int) -> None:
        end = addr + size
        if end > self._flash_param_size:
            raise CommandError(ROM_FLASH_WRITE_ERROR, STUB_FAILED_SPI_OP,
                               f"write {addr:#x}..{end:#x} beyond flash size {self._flash_param_size:#x}")

    def _rom_write(self, session: _WriteSession, addr: int, payload: bytes) -> None:
        if not payload:
            return
        self._check_write(addr, len(payload))
        self._program(addr, payload)
        session.written = max(session.written, addr + len(payload) - session.offset)

    def _stub_take(self, session: _WriteSession, data: bytes) -> None:
        """The stub writes the next bytes of the announced size; anything beyond is dropped."""
        room = session.size - session.written
        if len(data) > room:
            data = data[:room]
        if not data:
            return
        addr = session.offset + session.written
        session.written += len(data)
        if not session.encrypt:
            self._stub_write(session, addr, data)
            return
        # Encrypted: the stub hands the flash encryption block whole 32-byte blocks (only the
        # end of the announced size may fall short, and then the write fails).
        pending = session.pending
        assert pending is not None
        start = addr - len(pending)
        pending += data
        done = session.written == session.size
        n = len(pending) if done else len(pending) - len(pending) % ENCRYPTED_WRITE_ALIGN
        if n:
            chunk = bytes(pending[:n])
            del pending[:n]
            self._stub_write(session, start, chunk, encrypt=True)

    def _stub_write(self, session: _WriteSession, addr: int, data: bytes, encrypt: bool = False) -> None:
        """Erase what the write needs (within the announced sectors), then program."""
        end = addr + len(data)
        self._check_write(addr, len(data))
        erase_to = min(-(-end // SECTOR_SIZE) * SECTOR_SIZE, session.erase_end)
        while session.erased_until < erase_to:
            self._erase(session.erased_until, SECTOR_SIZE)
            session.erased_until += SECTOR_SIZE
        if session.encrypt_fails:
            raise CommandError(ROM_FAILED_TO_ACT, STUB_FAILED_SPI_OP, "no encrypted writes on this chip")
        if encrypt:
            # esp_rom_spiflash_write_encrypted: 32-byte aligned address and length only.
            if addr % ENCRYPTED_WRITE_ALIGN or len(data) % ENCRYPTED_WRITE_ALIGN:
                raise CommandError(ROM_FAILED_TO_ACT, STUB_FAILED_SPI_OP,
                                   f"encrypted write {addr:#x}+{len(data):#x} is not 32-byte aligned")
            data = self.profile.flash_encrypt(data, addr)
        self._program(addr, data)

    def _flash_end(self, op: int, data: bytes, chk: int) -> LoaderExit | None:
        if len(data) != 4:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "FLASH_END needs 4 bytes")
        (run_user,) = struct.unpack("<I", data)
        session, self._write = self._write, None
        if self.stub and session is not None and session.compressed and session.inflater is not None:
            if not session.inflater.eof and session.size and session.written < session.size:
                raise CommandError(ROM_FAILED_TO_ACT, STUB_NOT_ENOUGH_DATA, "compressed stream ended early")
        self._reply(op)
        if self.stub:
            if run_user == 0:
                # Leaving the stub with "reboot" hands control back to the ROM loader.
                self.stub = False
                self.stub_version = None
                self.log("stub exited to the ROM loader")
            return None
        if run_user:
            return LoaderExit("run", "FLASH_END: run user code")
        return LoaderExit("reboot", "FLASH_END: reboot")

    def _flash_defl_end(self, op: int, data: bytes, chk: int) -> LoaderExit | None:
        return self._flash_end(op, data, chk)

    def _run_user_code(self, op: int, data: bytes, chk: int) -> LoaderExit:
        return LoaderExit("run", "RUN_USER_CODE")

    # Reads and erases.
    def _md5(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 16:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "SPI_FLASH_MD5 needs 16 bytes")
        addr, size, _, _ = struct.unpack("<IIII", data)
        self._check_read(addr, size)
        digest = hashlib.md5(self.flash.view()[addr : addr + size] if self.flash_attached else b"\xff" * size)
        self._reply(op, 0, digest.digest() if self.stub else digest.hexdigest().encode())

    def _read_flash_slow(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 8:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "READ_FLASH_SLOW needs 8 bytes")
        addr, size = struct.unpack("<II", data)
        if size > 64:
            raise CommandError(ROM_READ_LENGTH_ERROR, STUB_BAD_DATA_LEN, f"read length {size} > 64")
        self._check_read(addr, size)
        block = self._read(addr, size).ljust(64, b"\xff")
        self._reply(op, 0, block)

    def _read_flash(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 16:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "READ_FLASH needs 16 bytes")
        addr, size, packet, in_flight = struct.unpack("<IIII", data)
        if packet == 0 or packet > 0x4000:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_BLOCKSIZE, f"packet size {packet}")
        self._check_read(addr, size)
        self._reply(op)
        blob = self._read(addr, size)
        sent = acked = 0
        in_flight = max(in_flight, 1)
        decoder = SlipDecoder()
        while acked < size:
            while sent < size and (sent - acked) < packet * in_flight:
                chunk = blob[sent : sent + packet]
                self.uart.write(slip_frame(chunk))
                sent += len(chunk)
            data_in = self.uart.read(5.0)
            if not data_in:
                self.log("READ_FLASH: host stopped acknowledging; abandoning the read")
                return
            for frame in decoder.feed(data_in):
                if frame is not None and len(frame) == 4:
                    acked = max(acked, struct.unpack("<I", frame)[0])
        self.uart.write(slip_frame(hashlib.md5(blob).digest()))

    def _erase_flash(self, op: int, data: bytes, chk: int) -> None:
        self._erase(0, self.flash.size)
        self._reply(op)

    def _erase_region(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 8:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "ERASE_REGION needs 8 bytes")
        addr, size = struct.unpack("<II", data)
        if addr % SECTOR_SIZE or size % SECTOR_SIZE:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN,
                               f"erase region {addr:#x}+{size:#x} is not sector aligned")
        if addr + size > self._flash_param_size:
            raise CommandError(ROM_FAILED_TO_ACT, STUB_FAILED_SPI_OP,
                               f"erase region {addr:#x}+{size:#x} beyond flash size {self._flash_param_size:#x}")
        self._erase(addr, size)
        self._reply(op)

    # -- helpers ------------------------------------------------------------------------------
    def _data_payload(self, data: bytes, chk: int) -> bytes:
        if len(data) < 16:
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN, "data command shorter than its header")
        length = struct.unpack_from("<I", data)[0]
        payload = data[16:]
        if length != len(payload):
            raise CommandError(ROM_INVALID_MESSAGE, STUB_BAD_DATA_LEN,
                               f"data length field {length} but {len(payload)} bytes sent")
        if xor_checksum(payload) != (chk & 0xFF):
            raise CommandError(ROM_BAD_CHECKSUM, STUB_BAD_CHECKSUM, "data checksum mismatch")
        return payload

    def _check_read(self, addr: int, size: int) -> None:
        if addr + size > self._flash_param_size or addr + size > self.flash.size:
            raise CommandError(ROM_FLASH_READ_ERROR, STUB_FAILED_SPI_OP,
                               f"read {addr:#x}+{size:#x} beyond flash size")

    def _read(self, addr: int, size: int) -> bytes:
        # An unattached flash does not drive MISO: the bus reads as all ones.
        return self.flash.read(addr, size) if self.flash_attached else b"\xff" * size

    def _physical(self, addr: int) -> int:
        # Address bits above the chip's capacity are ignored by a real NOR part.
        return addr % self.flash.size

    def _erase(self, addr: int, size: int) -> None:
        if not self.flash_attached:
            return  # the erase command reaches no chip
        start = addr - addr % SECTOR_SIZE
        for a in range(start, addr + size, SECTOR_SIZE):
            self.flash.erase_sector(self._physical(a))

    def _program(self, addr: int, data: bytes) -> None:
        if not self.flash_attached:
            return  # the page programs reach no chip
        phys = self._physical(addr)
        if phys + len(data) <= self.flash.size:
            self.flash.program(phys, data)
        else:
            first = self.flash.size - phys
            self.flash.program(phys, data[:first])
            self.flash.program(0, data[first:])

    _HANDLERS: dict  # filled in below


Loader._HANDLERS = {
    SYNC: Loader._sync,
    READ_REG: Loader._read_reg,
    WRITE_REG: Loader._write_reg,
    SPI_SET_PARAMS: Loader._spi_set_params,
    SPI_ATTACH: Loader._spi_attach,
    CHANGE_BAUDRATE: Loader._change_baud,
    MEM_BEGIN: Loader._mem_begin,
    MEM_DATA: Loader._mem_data,
    MEM_END: Loader._mem_end,
    FLASH_BEGIN: Loader._flash_begin,
    FLASH_DATA: Loader._flash_data,
    FLASH_END: Loader._flash_end,
    FLASH_DEFL_BEGIN: Loader._flash_defl_begin,
    FLASH_DEFL_DATA: Loader._flash_defl_data,
    FLASH_DEFL_END: Loader._flash_defl_end,
    SPI_FLASH_MD5: Loader._md5,
    READ_FLASH_SLOW: Loader._read_flash_slow,
    READ_FLASH: Loader._read_flash,
    ERASE_FLASH: Loader._erase_flash,
    ERASE_REGION: Loader._erase_region,
    RUN_USER_CODE: Loader._run_user_code,
    GET_SECURITY_INFO: Loader._get_security_info,
}
