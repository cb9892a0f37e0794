"""Unit tests of the NOR flash model (harness.emu.flash): erase, program, operations, persistence, power cuts."""

from __future__ import annotations

import os

import pytest

from harness.emu.flash import (
    PAGE_SIZE,
    SECTOR_SIZE,
    CutPlan,
    FlashError,
    FlashMeta,
    NorFlash,
    PowerCut,
    check_flash_file,
    create_flash_file,
    meta_path,
)

SIZE = 0x10000  # 16 sectors, 256 pages: small and fast


@pytest.fixture
def path(tmp_path):
    p = str(tmp_path / "flash.bin")
    create_flash_file(p, SIZE)
    return p


@pytest.fixture
def flash(path):
    f = NorFlash(path, SIZE)
    yield f
    f.close()


def trace(flash: NorFlash) -> list[tuple[int, str, int, int]]:
    """Record every operation the flash performs from now on."""
    ops: list[tuple[int, str, int, int]] = []
    flash.on_op = lambda op, kind, addr, length: ops.append((op, kind, addr, length))
    return ops


def pattern(length: int, seed: int = 1) -> bytes:
    """Deterministic bytes with plenty of 0 and 1 bits."""
    x = seed * 2654435761 & 0xFFFFFFFF
    out = bytearray()
    for _ in range(length):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out.append(x >> 16 & 0xFF)
    return bytes(out)


# -- erase -----------------------------------------------------------------------------------------
def test_new_flash_file_is_erased(path):
    with open(path, "rb") as f:
        assert f.read() == b"\xff" * SIZE


def test_erase_sets_ff_in_exactly_one_sector(flash):
    flash.program(0, bytes(3 * SECTOR_SIZE))  # sectors 0-2 all zero
    flash.erase_sector(SECTOR_SIZE)
    assert flash.read(0, SECTOR_SIZE) == bytes(SECTOR_SIZE)
    assert flash.read(SECTOR_SIZE, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE
    assert flash.read(2 * SECTOR_SIZE, SECTOR_SIZE) == bytes(SECTOR_SIZE)
    assert flash.meta.get("erases") == 1


def test_erase_range_covers_every_overlapping_sector(flash):
    flash.program(0, bytes(4 * SECTOR_SIZE))
    ops = trace(flash)
    flash.erase_range(0x1800, 0x1000)  # straddles sectors 1 and 2
    assert [(k, a, n) for _, k, a, n in ops] == [("erase", 0x1000, SECTOR_SIZE), ("erase", 0x2000, SECTOR_SIZE)]
    assert flash.read(0x0FFF, 1) == b"\x00"
    assert flash.read(0x1000, 0x2000) == b"\xff" * 0x2000
    assert flash.read(0x3000, 1) == b"\x00"
    flash.erase_range(0x5000, 0)  # nothing at all
    assert len(ops) == 2


# -- program -------------------------------------------------------------------------------------------
def test_program_ands_bits(flash):
    flash.program(0x10, b"\xf0\x0f\xaa\xff")
    assert flash.read(0x10, 4) == b"\xf0\x0f\xaa\xff"
    flash.program(0x10, b"\x30\x0c\x0a\x55")  # only clears bits: no violation
    assert flash.read(0x10, 4) == b"\x30\x0c\x0a\x55"
    assert flash.meta.get("violations") == 0
    assert flash.read(0x0F, 1) == b"\xff" and flash.read(0x14, 1) == b"\xff"


def test_program_one_over_zero_is_a_violation_and_stays_zero(flash):
    flash.program(0x100, bytes(4))
    flash.program(0x100, b"\x00\x01\x00\x80")  # bytes 1 and 3 try to set a bit
    assert flash.read(0x100, 4) == bytes(4)  # the stored bits stay 0
    snap = flash.meta.snapshot()
    assert snap["violations"] == 1  # one operation
    assert snap["violation_bytes"] == 2
    assert snap["last_violation_addr"] == 0x101

    # A violating write across a page boundary is two violating operations; the last
    # address is the first bad byte of the last violating operation.
    flash.program(0x1FC, bytes(8))
    flash.program(0x1FC, b"\x00\x00\x00\x01\x00\x00\x40\x00")
    assert flash.read(0x1FC, 8) == bytes(8)
    snap = flash.meta.snapshot()
    assert snap["violations"] == 3
    assert snap["violation_bytes"] == 4
    assert snap["last_violation_addr"] == 0x202
    # Programming what is already there (or fewer 1s) is never a violation.
    flash.program(0x1FC, bytes(8))
    assert flash.meta.get("violations") == 3


def test_partial_violation_still_clears_the_other_bits(flash):
    flash.program(0x40, b"\x0f")
    flash.program(0x40, b"\xf3")  # 0xf0 would set bits, 0x03 clears 0x0c
    assert flash.read(0x40, 1) == b"\x03"
    assert flash.meta.get("violations") == 1


@pytest.mark.parametrize(
    "start, expected",
    [
        # 600 bytes from page offset 0x80: 128 + 256 + 216 bytes, i.e. three pages.
        (0x080, [(0x080, 128), (0x100, 256), (0x200, 216)]),
        # From page offset 0xC0 the same 600 bytes touch four pages: 64 + 256 + 256 + 24.
        (0x0C0, [(0x0C0, 64), (0x100, 256), (0x200, 256), (0x300, 24)]),
        (0x300, [(0x300, 256), (0x400, 256), (0x500, 88)]),
    ],
)
def test_one_operation_per_page_touched(flash, start, expected):
    ops = trace(flash)
    flash.program(start, pattern(600))
    assert [(a, n) for _, kind, a, n in ops if kind == "program"] == expected
    assert [op for op, *_ in ops] == list(range(1, len(expected) + 1))
    assert flash.meta.get("ops") == len(expected)
    assert flash.meta.get("programs") == len(expected)
    assert flash.read(start, 600) == pattern(600)


def test_every_operation_is_counted_even_if_it_changes_nothing(flash):
    flash.program(0, b"\xff" * PAGE_SIZE)  # programming 0xFF over erased flash changes nothing
    flash.erase_sector(0)  # erasing an erased sector
    snap = flash.meta.snapshot()
    assert (snap["ops"], snap["programs"], snap["erases"]) == (2, 1, 1)


def test_erase_counts_per_sector(flash):
    for _ in range(3):
        flash.erase_sector(2 * SECTOR_SIZE)
    flash.erase_sector(5 * SECTOR_SIZE)
    flash.erase_range(0xF000, SECTOR_SIZE)
    counts = flash.meta.erase_counts()
    assert len(counts) == SIZE // SECTOR_SIZE
    assert counts[2] == 3 and counts[5] == 1 and counts[15] == 1
    assert sum(counts) == 5
    snap = flash.meta.snapshot()
    assert snap["erase_counts"] == {"0x2000": 3, "0x5000": 1, "0xf000": 1}
    assert snap["max_sector_erases"] == 3
    assert snap["erases"] == 5 and snap["ops"] == 5


# -- persistence -----------------------------------------------------------------------------------------
def test_a_new_flash_on_the_same_file_sees_contents_and_counters(path):
    f = NorFlash(path, SIZE)
    data = pattern(0x1234, seed=7)
    f.erase_sector(0x3000)
    f.program(0x3010, data)
    f.program(0x3010, b"\xff")  # a violation where the pattern byte is not 0xff
    expected_violations = 0 if data[0] == 0xFF else 1
    snap = f.meta.snapshot()
    f.close()

    with open(path, "rb") as raw:
        on_disk = raw.read()
    assert on_disk[0x3010:0x3010 + len(data)] == data  # written through to the file

    g = NorFlash(path, SIZE)
    try:
        assert g.read(0, SIZE) == on_disk
        assert g.meta.snapshot() == snap
        assert snap["ops"] == 1 + 19 + 1  # erase, 0x1234 bytes from page offset 0x10 = 19 pages, 1 page
        assert snap["violations"] == expected_violations
        assert snap["erase_counts"] == {"0x3000": 1}
        g.program(0x3000, b"\x00")
        assert g.meta.get("ops") == snap["ops"] + 1  # counting continues where it stopped
    finally:
        g.close()
    # A read-only view of the counters (what the board supervisor reports) agrees.
    ro = FlashMeta(meta_path(path), SIZE, readonly=True)
    try:
        assert ro.get("ops") == snap["ops"] + 1
    finally:
        ro.close()


def test_meta_for_another_flash_size_starts_fresh(path, tmp_path):
    f = NorFlash(path, SIZE)
    f.erase_sector(0)
    f.close()
    m = FlashMeta(meta_path(path), 2 * SIZE)  # a different chip size: old counters are not reused
    try:
        assert m.get("ops") == 0 and len(m.erase_counts()) == 2 * SIZE // SECTOR_SIZE
    finally:
        m.close()
    with pytest.raises(FileNotFoundError):
        FlashMeta(str(tmp_path / "missing.meta"), SIZE, readonly=True)


# -- power cuts ------------------------------------------------------------------------------------------------
OLD = pattern(4 * PAGE_SIZE, seed=3)
NEW = pattern(4 * PAGE_SIZE, seed=4)
BASE = 0x2000  # four pages at 0x2000..0x2400: ops 1..4 of the write below


def _prepared(path, cut: CutPlan | None) -> NorFlash:
    """Flash with OLD at BASE: one erase and four page programs, operations 1..5."""
    f = NorFlash(path, SIZE)
    f.erase_sector(BASE)
    f.program(BASE, OLD)
    assert f.meta.get("ops") == 5
    f.cut = cut
    return f


def _expected_and(old: bytes, new: bytes) -> bytes:
    return bytes(o & n for o, n in zip(old, new))


def _cut_run(path, policy: str, nth: int, seed: int = 0) -> tuple[bytes, PowerCut, NorFlash]:
    """Program NEW over OLD (4 ops, numbers 6..9) with a cut at the ``nth`` of them."""
    f = _prepared(path, CutPlan(at_op=5 + nth, policy=policy, seed=seed))
    ops = trace(f)
    with pytest.raises(PowerCut) as info:
        f.program(BASE, NEW)
    assert [op for op, *_ in ops] == list(range(6, 6 + nth))  # nothing was attempted after the cut
    return f.read(BASE, len(NEW)), info.value, f


def _page(data: bytes, i: int) -> bytes:
    return data[i * PAGE_SIZE:(i + 1) * PAGE_SIZE]


@pytest.mark.parametrize("policy", ["none", "prefix", "random"])
@pytest.mark.parametrize("nth", [1, 3, 4])
def test_cut_completes_earlier_ops_tears_op_n_and_stops(path, policy, nth):
    got, cut, f = _cut_run(path, policy, nth, seed=5)
    assert (cut.op, cut.kind, cut.addr, cut.policy) == (5 + nth, "program", BASE + (nth - 1) * PAGE_SIZE, policy)
    assert f"power cut at flash operation {5 + nth}" in str(cut)
    done = _expected_and(OLD, NEW)
    for i in range(nth - 1):  # ops before N: complete
        assert _page(got, i) == _page(done, i)
    for i in range(nth, 4):  # ops after N: never happened
        assert _page(got, i) == _page(OLD, i)
    torn, old, target = _page(got, nth - 1), _page(OLD, nth - 1), _page(done, nth - 1)
    if policy == "none":
        assert torn == old
    elif policy == "prefix":
        keep = next((i for i in range(len(torn)) if torn[i:] == old[i:]), len(torn))
        assert torn[:keep] == target[:keep]
        assert keep < len(torn)  # never the whole operation
    else:
        t, o, g = (int.from_bytes(b, "little") for b in (torn, old, target))
        assert (t ^ o) & ~(o ^ g) == 0  # only bits the operation would change differ
    assert f.meta.get("ops") == 5 + nth  # the torn operation was counted, nothing after it
    assert f.meta.get("programs") == 4 + nth - 1  # ... but did not complete (4 programs of OLD before)
    f.close()
    # What the cut left is on disk: a new process sees exactly this.
    g = NorFlash(path, SIZE)
    try:
        assert g.read(BASE, len(NEW)) == got
    finally:
        g.close()


def test_prefix_tear_lands_a_real_prefix(path, tmp_path):
    """Over several seeds the torn page is sometimes strictly between old and new, always old-suffixed."""
    partial = 0
    done = _expected_and(OLD, NEW)
    for seed in range(6):
        p = str(tmp_path / f"s{seed}.bin")
        create_flash_file(p, SIZE)
        got, _, f = _cut_run(p, "prefix", 2, seed=seed)
        f.close()
        torn, old, target = _page(got, 1), _page(OLD, 1), _page(done, 1)
        if torn != old and torn != target:
            partial += 1
            keep = max(i for i in range(1, len(torn) + 1) if torn[:i] == target[:i])
            assert torn[keep:] == old[keep:]
    assert partial >= 3


def test_random_tear_is_reproducible_by_seed(path, tmp_path):
    results = {}
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        p = str(tmp_path / f"{name}.bin")
        create_flash_file(p, SIZE)
        got, _, f = _cut_run(p, "random", 2, seed=seed)
        f.close()
        results[name] = got
    assert results["a"] == results["b"]
    assert results["a"] != results["c"]
    # Roughly half the bits that would change did change: a real random subset, not all or nothing.
    old, done = _page(OLD, 1), _page(_expected_and(OLD, NEW), 1)
    o, g, t = (int.from_bytes(b, "little") for b in (old, done, _page(results["a"], 1)))
    would, did = bin(o ^ g).count("1"), bin(o ^ t).count("1")
    assert would > 100 and 0.3 * would < did < 0.7 * would


@pytest.mark.parametrize("policy", ["none", "prefix", "random"])
def test_cut_during_an_erase(path, policy):
    f = NorFlash(path, SIZE)
    f.program(0x4000, bytes(SECTOR_SIZE))  # 16 page ops
    f.program(0x5000, bytes(16))  # op 17: the sector after stays as it is
    f.cut = CutPlan(at_op=19, policy=policy, seed=3)
    with pytest.raises(PowerCut) as info:
        f.erase_range(0x3000, 0x3000)  # erase 0x3000 (op 18), 0x4000 (op 19, cut), 0x5000 (never)
    assert (info.value.op, info.value.kind, info.value.addr) == (19, "erase", 0x4000)
    torn = f.read(0x4000, SECTOR_SIZE)
    assert f.read(0x3000, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE
    assert f.read(0x5000, 16) == bytes(16)
    assert f.meta.get("erases") == 1 and f.meta.erase_counts()[4] == 0
    if policy == "none":
        assert torn == bytes(SECTOR_SIZE)
    elif policy == "prefix":
        keep = torn.find(b"\x00")
        assert 0 <= keep and torn[:keep] == b"\xff" * keep and torn[keep:] == bytes(SECTOR_SIZE - keep)
    else:
        assert 0 < sum(bin(b).count("1") for b in torn) < 8 * SECTOR_SIZE
    f.close()


def test_cut_plan_validation():
    with pytest.raises(ValueError, match="unknown tear policy 'half'"):
        CutPlan(at_op=3, policy="half")
    with pytest.raises(ValueError, match="must be >= 1"):
        CutPlan(at_op=0)


def test_no_cut_before_the_armed_operation(flash):
    flash.cut = CutPlan(at_op=10, policy="none")
    flash.program(0, bytes(9 * PAGE_SIZE))  # ops 1..9
    assert flash.meta.get("ops") == 9
    with pytest.raises(PowerCut):
        flash.erase_sector(0x8000)


# -- errors -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda f: f.read(SIZE - 4, 8),
        lambda f: f.read(-1, 4),
        lambda f: f.program(SIZE - 0x10, bytes(0x20)),
        lambda f: f.erase_sector(SIZE),
        lambda f: f.erase_range(SIZE - SECTOR_SIZE, 2 * SECTOR_SIZE),
    ],
    ids=["read", "read-negative", "program", "erase", "erase-range"],
)
def test_out_of_range_raises_and_changes_nothing(flash, call):
    before = flash.read(0, SIZE)
    with pytest.raises(FlashError, match="outside the 0x10000-byte flash"):
        call(flash)
    assert flash.meta.get("ops") == 0  # rejected before any operation started
    assert flash.read(0, SIZE) == before


@pytest.mark.parametrize("addr", [0x800, 0x1001, 0xFFF])
def test_misaligned_erase_raises(flash, addr):
    with pytest.raises(FlashError, match=f"erase address {addr:#x} is not sector aligned"):
        flash.erase_sector(addr)
    assert flash.meta.get("ops") == 0


# -- the flash file --------------------------------------------------------------------------------------------------
def test_check_flash_file_wrong_size(tmp_path):
    p = tmp_path / "short.bin"
    p.write_bytes(b"\xff" * 1000)
    with pytest.raises(ValueError) as info:
        check_flash_file(str(p), 4 * 1024 * 1024)
    msg = str(info.value)
    assert msg == (f"flash file {p} is 1000 bytes but the flash size is 4194304 bytes (4MB); "
                   "delete it or pass the matching --flash-size")
    with pytest.raises(ValueError, match=r"is 1000 bytes but the flash size is 524288 bytes \(512KB\)"):
        check_flash_file(str(p), 512 * 1024)
    with pytest.raises(ValueError, match=rf"flash file {tmp_path}/missing.bin: No such file or directory"):
        check_flash_file(str(tmp_path / "missing.bin"), SIZE)
    with pytest.raises(ValueError, match="is 1000 bytes"):
        NorFlash(str(p), SIZE)


def test_create_flash_file_sizes(tmp_path):
    for size in (0x1000, 0x10000 + 0x1000, 0x40000):
        p = str(tmp_path / f"{size}.bin")
        create_flash_file(p, size)
        assert os.path.getsize(p) == size
        check_flash_file(p, size)
