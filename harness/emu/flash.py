"""NOR flash model: the heart of power-fail testing.

Semantics follow SPI NOR parts as the ESP chips use them:

* erase works on 4 KiB sectors and sets every bit to 1;
* program can only clear bits (the stored byte becomes ``old & new``); asking to
  program a 1 over a 0 cannot succeed and is recorded as a *NOR violation*,
  because real code that does it has forgotten an erase and reads back garbage;
* a program never crosses a 256-byte page, so one logical write is split into
  one *operation* per page touched, and every sector erase is one operation.

Every operation increments a persistent counter. A power cut can be armed at
operation N: operations before N complete, operation N is torn according to a
policy (``none``: not applied at all, ``prefix``: only its first bytes land,
``random``: a random subset of the bits it would change do change) and nothing
after it happens, because the flash raises :class:`PowerCut` and the board
process dies.

The flash contents live in a file of exactly the flash size (what a user hands
to ``--flash-file``); counters live in a sidecar file ``<flash>.meta`` that is
memory-mapped, so a process killed at any instant leaves both consistent up to
the last completed operation, and the next process sees exactly what the last
one wrote.
"""

from __future__ import annotations

import mmap
import os
import random
import struct
from dataclasses import dataclass

from ..esp.chips import format_size

SECTOR_SIZE = 0x1000
PAGE_SIZE = 0x100

TEAR_POLICIES = ("none", "prefix", "random")

_META_MAGIC = b"HILFLSH1"
# magic, flash size, then the counters below (u64 each)
_META_HEAD = struct.Struct("<8sQQQQQQQQQ")
_META_COUNTERS = (
    "ops", "programs", "erases", "violations", "violation_bytes", "boots", "resets", "last_violation_addr",
)


def tear(policy: str, seed: int, op: int, old: bytes, target: bytes) -> bytes:
    """What operation ``op`` leaves in flash when power is cut during it under ``policy``.

    ``old`` is what the bytes held before, ``target`` what the completed operation would
    leave (all 0xFF for an erase, ``old & data`` for a program). ``none``: nothing lands;
    ``prefix``: only the first bytes land; ``random``: each bit the operation would change
    changes with probability 1/2. Deterministic in (``seed``, ``op``).
    """
    rng = random.Random((seed << 32) ^ op)
    if policy == "prefix":
        keep = rng.randrange(0, len(target))
        return target[:keep] + old[keep:]
    if policy == "random":
        old_i = int.from_bytes(old, "little")
        tgt_i = int.from_bytes(target, "little")
        mask = rng.getrandbits(8 * len(target)) & (old_i ^ tgt_i)
        return (old_i ^ mask).to_bytes(len(target), "little")
    if policy == "none":
        return old
    raise ValueError(f"unknown tear policy {policy!r} (known: {', '.join(TEAR_POLICIES)})")


class FlashError(Exception):
    """A request the flash chip cannot perform (out of range, misaligned erase)."""


# -- the part's identity: what it answers to RDID and Read SFDP ---------------------------------
# The modelled part is a Winbond W25Qxx JV: manufacturer EF, memory type 40, capacity code
# log2(size) (W25Q16JV 15 .. W25Q128JV 18), so a 4 MB board is a W25Q32JV.
WINBOND = 0xEF
W25Q_MEMORY_TYPE = 0x40
SFDP_SIZE = 0x100  # the W25Q's SFDP space: 256 bytes, A23-A8 ignored (reads wrap)
_BFPT_ADDR = 0x80
# JESD216B basic flash parameter table (16 DWORDs) as a W25Q16JV reports it; DWORD 2 (density)
# is filled in per size. Erase types 4 KiB (20h), 32 KiB (52h), 64 KiB (D8h); 256-byte pages;
# the typical erase/program times are the 16 Mbit part's.
_W25Q_JV_BFPT = (
    0xFFF920E5, None, 0x6B08EB44, 0xBB423B08, 0xFFFFFFFE, 0x0000FFFF, 0xEB40FFFF, 0x520F200C,
    0x0000D810, 0x00A60236, 0xB314EA82, 0x337663E9, 0x757A757A, 0x5CD5A2F7, 0xFF4DF719, 0x80F830E9,
)


def jedec_id(size: int) -> int:
    """RDID's three bytes (manufacturer first) as one little-endian number, e.g. 0x1640EF."""
    return WINBOND | W25Q_MEMORY_TYPE << 8 | (size.bit_length() - 1) << 16


def sfdp_table(size: int) -> bytes:
    """The part's 256-byte SFDP space: header, one parameter header, the BFPT; 0xFF elsewhere."""
    table = bytearray(b"\xff" * SFDP_SIZE)
    # "SFDP", revision 1.5, one parameter header (NPH = 0), access protocol FF.
    struct.pack_into("<IBBBB", table, 0, 0x50444653, 5, 1, 0, 0xFF)
    # Parameter header 0: JEDEC (ID 00/FF), revision 1.5, 16 DWORDs at 0x80.
    struct.pack_into("<BBBB", table, 8, 0x00, 5, 1, len(_W25Q_JV_BFPT))
    table[12:15] = _BFPT_ADDR.to_bytes(3, "little")
    table[15] = 0xFF
    dwords = [size * 8 - 1 if d is None else d for d in _W25Q_JV_BFPT]
    struct.pack_into(f"<{len(dwords)}I", table, _BFPT_ADDR, *dwords)
    return bytes(table)


class PowerCut(Exception):
    """Raised inside the board process when the armed cut point is reached."""

    def __init__(self, op: int, kind: str, addr: int, policy: str):
        super().__init__(f"power cut at flash operation {op} ({kind} at {addr:#x}, torn: {policy})")
        self.op = op
        self.kind = kind
        self.addr = addr
        self.policy = policy


@dataclass
class CutPlan:
    """Where and how the next power cut tears the flash."""

    at_op: int
    policy: str = "prefix"
    seed: int = 0
    #: the tear is drawn for operation ``op - base``: a sweep passes the counter at its trigger, so cut k of an
    #: update tears the same way in every run, whatever the board's counter had reached
    base: int = 0

    def __post_init__(self) -> None:
        if self.policy not in TEAR_POLICIES:
            raise ValueError(f"unknown tear policy {self.policy!r} (known: {', '.join(TEAR_POLICIES)})")
        if self.at_op < 1:
            raise ValueError(f"cut operation must be >= 1, got {self.at_op}")


def meta_path(flash_path: str) -> str:
    return flash_path + ".meta"


def create_flash_file(path: str, size: int) -> None:
    """Create an erased (all 0xFF) flash image of ``size`` bytes."""
    chunk = b"\xff" * 0x10000
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n


def check_flash_file(path: str, size: int) -> None:
    """Raise ValueError with a one-line reason if ``path`` cannot be a ``size`` flash."""
    try:
        actual = os.path.getsize(path)
    except OSError as e:
        raise ValueError(f"flash file {path}: {e.strerror}") from None
    if actual != size:
        raise ValueError(
            f"flash file {path} is {actual} bytes but the flash size is {size} bytes "
            f"({format_size(size)}); delete it or pass the matching --flash-size"
        )


class FlashMeta:
    """Persistent counters of one flash file, memory-mapped for crash consistency."""

    def __init__(self, path: str, flash_size: int, *, readonly: bool = False):
        self.path = path
        self.sectors = flash_size // SECTOR_SIZE
        self.size = _META_HEAD.size + 4 * self.sectors
        fresh = True
        if os.path.exists(path) and os.path.getsize(path) == self.size:
            with open(path, "rb") as f:
                head = f.read(_META_HEAD.size)
            magic, size = struct.unpack_from("<8sQ", head)
            fresh = not (magic == _META_MAGIC and size == flash_size)
        if fresh:
            if readonly:
                raise FileNotFoundError(path)
            with open(path, "wb") as f:
                f.write(_META_HEAD.pack(_META_MAGIC, flash_size, *([0] * len(_META_COUNTERS))))
                f.write(bytes(4 * self.sectors))
        self._fd = os.open(path, os.O_RDONLY if readonly else os.O_RDWR)
        access = mmap.ACCESS_READ if readonly else mmap.ACCESS_WRITE
        self._map = mmap.mmap(self._fd, self.size, access=access)
        self._erase_view = memoryview(self._map)[_META_HEAD.size :].cast("I")

    def close(self) -> None:
        self._erase_view.release()
        self._map.close()
        os.close(self._fd)

    def _get(self, index: int) -> int:
        return struct.unpack_from("<Q", self._map, 16 + 8 * index)[0]

    def _set(self, index: int, value: int) -> None:
        struct.pack_into("<Q", self._map, 16 + 8 * index, value)

    def bump(self, name: str, by: int = 1) -> int:
        i = _META_COUNTERS.index(name)
        v = self._get(i) + by
        self._set(i, v)
        return v

    def get(self, name: str) -> int:
        return self._get(_META_COUNTERS.index(name))

    def set(self, name: str, value: int) -> None:
        self._set(_META_COUNTERS.index(name), value)

    def erase_counts(self) -> list[int]:
        return list(self._erase_view)

    def bump_erase(self, sector: int) -> None:
        self._erase_view[sector] += 1

    def snapshot(self) -> dict:
        counts = self.erase_counts()
        nonzero = {i: c for i, c in enumerate(counts) if c}
        snap = {name: self.get(name) for name in _META_COUNTERS}
        snap["erase_counts"] = {f"{i * SECTOR_SIZE:#x}": c for i, c in nonzero.items()}
        snap["max_sector_erases"] = max(counts) if counts else 0
        return snap


class NorFlash:
    """A NOR flash chip backed by a file.

    Reads come from an in-memory mirror; every completed operation is written
    through to the file with one ``pwrite`` so a killed process never leaves a
    half-applied operation except the one a cut deliberately tears.
    """

    def __init__(self, path: str, size: int, *, cut: CutPlan | None = None):
        check_flash_file(path, size)
        self.path = path
        self.size = size
        self._fd = os.open(path, os.O_RDWR)
        with open(path, "rb") as f:
            self._mem = bytearray(f.read())
        self.meta = FlashMeta(meta_path(path), size)
        self.cut = cut
        self.on_op = None  # optional hook(op_number, kind, addr, length) for tracing
        self.on_program = None  # optional hook(op_number, addr, data): the bytes a program operation asks for
        self.jedec_id = jedec_id(size)
        self.sfdp = sfdp_table(size)

    def close(self) -> None:
        os.close(self._fd)
        self.meta.close()

    # -- reads -------------------------------------------------------------------------
    def read(self, addr: int, length: int) -> bytes:
        self._check_range(addr, length)
        return bytes(self._mem[addr : addr + length])

    def view(self) -> memoryview:
        """Read-only view of the whole flash (for hashing without copies)."""
        return memoryview(self._mem).toreadonly()

    # -- operations --------------------------------------------------------------------
    def erase_sector(self, addr: int) -> None:
        if addr % SECTOR_SIZE:
            raise FlashError(f"erase address {addr:#x} is not sector aligned")
        self._check_range(addr, SECTOR_SIZE)
        op = self._next_op("erase", addr, SECTOR_SIZE)
        new = b"\xff" * SECTOR_SIZE
        if self._is_cut(op):
            self._tear(op, "erase", addr, new)
        self._apply(addr, new)
        self.meta.bump("erases")
        self.meta.bump_erase(addr // SECTOR_SIZE)

    def erase_range(self, addr: int, length: int) -> None:
        """Erase every sector overlapping [addr, addr+length)."""
        if length <= 0:
            return
        start = addr - addr % SECTOR_SIZE
        end = addr + length
        self._check_range(start, end - start)
        for a in range(start, end, SECTOR_SIZE):
            self.erase_sector(a)

    def erase_all(self) -> None:
        self.erase_range(0, self.size)

    def program(self, addr: int, data: bytes) -> None:
        """Program ``data`` at ``addr``, one operation per 256-byte page touched."""
        self._check_range(addr, len(data))
        pos = 0
        while pos < len(data):
            a = addr + pos
            n = min(PAGE_SIZE - a % PAGE_SIZE, len(data) - pos)
            self._program_page(a, data[pos : pos + n])
            pos += n

    def _program_page(self, addr: int, data: bytes) -> None:
        old = self._mem[addr : addr + len(data)]
        old_i = int.from_bytes(old, "little")
        new_i = int.from_bytes(data, "little")
        bad = new_i & ~old_i
        op = self._next_op("program", addr, len(data))
        if self.on_program is not None:
            self.on_program(op, addr, data)
        result = (old_i & new_i).to_bytes(len(data), "little")
        if self._is_cut(op):
            self._tear(op, "program", addr, result)
        if bad:
            self.meta.bump("violations")
            bad_at = [i for i, (o, d) in enumerate(zip(old, data, strict=True)) if d & ~o & 0xFF]
            self.meta.bump("violation_bytes", len(bad_at))
            first = bad_at[0]
            self.meta.set("last_violation_addr", addr + first)
        if result != old:
            self._apply(addr, result)
        self.meta.bump("programs")

    # -- internals ---------------------------------------------------------------------
    def _check_range(self, addr: int, length: int) -> None:
        if addr < 0 or length < 0 or addr + length > self.size:
            raise FlashError(
                f"flash access {addr:#x}..{addr + length:#x} is outside the {self.size:#x}-byte flash"
            )

    def _next_op(self, kind: str, addr: int, length: int) -> int:
        op = self.meta.bump("ops")
        if self.on_op is not None:
            self.on_op(op, kind, addr, length)
        return op

    def _is_cut(self, op: int) -> bool:
        return self.cut is not None and op >= self.cut.at_op

    def _apply(self, addr: int, data: bytes) -> None:
        self._mem[addr : addr + len(data)] = data
        os.pwrite(self._fd, data, addr)

    def _tear(self, op: int, kind: str, addr: int, target: bytes) -> None:
        """Apply operation ``op`` partially according to the cut policy, then cut power."""
        cut = self.cut
        assert cut is not None
        old = bytes(self._mem[addr : addr + len(target)])
        torn = tear(cut.policy, cut.seed, op - cut.base, old, target)
        if torn != old:
            self._apply(addr, torn)
        raise PowerCut(op, kind, addr, cut.policy)
