"""The bootloader-level power-cut sweep (harness.sweep.boot_sweep).

A synthetic update on a small ESP32 flash: the running firmware is in ota_1, ota_0 holds an older
one, the update writes a third version into ota_0 and then switches otadata. Written the ESP-IDF
way (the new entry goes to the other sector: one erase and one program) every cut boots the old or
the new version; written non-atomically (both otadata sectors erased before the image, the entry
written at the end) a cut in between boots the stale firmware in ota_0, which the sweep reports.
The real recordings of the MicroPython agent's and the ESP-IDF client's firmware updates (slow
tests) have no failing cut.
"""

from __future__ import annotations

import time

import pytest

from harness.emu.flash import PAGE_SIZE, SECTOR_SIZE
from harness.esp import boot as rules
from harness.esp.app_image import build_app
from harness.esp.otadata import OTADATA_SECTOR_SIZE, OtaSelectEntry, OtaState, parse_otadata
from harness.esp.partition_table import PartitionTable
from harness.sweep import FlashOp, Recording
from harness.sweep.boot_sweep import sweep_boot
from harness.sweep.record import phase_of

FLASH = 0x100000
TABLE = PartitionTable.from_csv("nvs,data,nvs,0x9000,0x4000\notadata,data,ota,0xd000,0x2000\n"
                                "ota_0,app,ota_0,0x10000,0x40000\nota_1,app,ota_1,0x50000,0x40000\n")


class Ops:
    """Builds a recording's operations the way the flash model splits writes (sectors, 256-byte pages)."""

    def __init__(self) -> None:
        self.ops: list[FlashOp] = []
        self.data: dict[int, bytes] = {}

    def _add(self, kind: str, addr: int, size: int) -> int:
        n = len(self.ops) + 1
        self.ops.append(FlashOp(n, kind, addr, size, phase_of(addr, TABLE)))
        return n

    def erase(self, addr: int, length: int = SECTOR_SIZE) -> None:
        for a in range(addr, addr + length, SECTOR_SIZE):
            self._add("erase", a, SECTOR_SIZE)

    def program(self, addr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            a = addr + pos
            k = min(PAGE_SIZE - a % PAGE_SIZE, len(data) - pos)
            self.data[self._add("program", a, k)] = data[pos:pos + k]
            pos += k


def image(version: str) -> bytes:
    return build_app("esp32", version=version, size=0x12000, seed=len(version) + ord(version[-1])).to_bytes()


def baseline() -> bytes:
    """ota_0: 1.0.0 (stale), ota_1: 2.0.0 (running, VALID, otadata sector 0)."""
    flash = bytearray(b"\xff" * FLASH)
    for label, version in (("ota_0", "1.0.0"), ("ota_1", "2.0.0")):
        data = image(version)
        flash[TABLE.find(label).offset:TABLE.find(label).offset + len(data)] = data
    otadata = TABLE.otadata.offset
    flash[otadata:otadata + 32] = OtaSelectEntry.make(2, OtaState.VALID).pack()
    return bytes(flash)


def update(atomic: bool) -> Recording:
    before = baseline()
    ops = Ops()
    otadata = TABLE.otadata
    if not atomic:  # "clear the boot selection first": both sectors erased long before the new entry
        ops.erase(otadata.offset, 2 * OTADATA_SECTOR_SIZE)
    new = image("3.0.0")
    slot = TABLE.find("ota_0")
    ops.erase(slot.offset, -(-len(new) // SECTOR_SIZE) * SECTOR_SIZE)
    ops.program(slot.offset, new)
    region = before[otadata.offset:otadata.offset + 2 * OTADATA_SECTOR_SIZE]
    (write,) = rules.set_boot_partition(TABLE, parse_otadata(region), slot)
    if atomic:
        ops.erase(write.address(otadata))
    ops.program(write.address(otadata), write.entry.pack())
    rec = Recording("synthetic", "firmware", "next", ops.ops, before, b"", TABLE, data=ops.data,
                    old_version="2.0.0", new_version="3.0.0")
    rec.after = bytes(rec.replay())
    return rec


def test_an_atomic_otadata_switch_boots_old_or_new_after_every_cut():
    rec = update(atomic=True)
    result = sweep_boot(rec)
    assert result.applicable and result.ok, result.summary()
    assert result.operations == len(rec.ops) and result.states == 3 * len(rec.ops)
    assert (result.old, result.new) == ("ota_1 (2.0.0)", "ota_0 (3.0.0)")
    # the last operation is the switch itself: a cut during it never completes it, so every cut boots the old one
    assert result.outcomes == {"old": result.states, "new": 0, "failed": 0}


def test_a_non_atomic_otadata_write_is_caught_with_the_op_the_policy_and_what_boots():
    rec = update(atomic=False)
    result = sweep_boot(rec)
    assert not result.ok
    # both sectors blank (or the active one torn) while the bootloader's default, ota_0, still holds the
    # stale 1.0.0; once ota_0's first sector is erased the bootloader falls back to ota_1
    assert {(f.index, f.policy) for f in result.failures} == {
        (1, "prefix"), (1, "random"), (2, "none"), (2, "prefix"), (2, "random"), (3, "none")}
    first = result.failures[0]
    assert (first.n, first.kind, first.addr, first.phase, first.chose, first.version) == (
        1, "erase", 0xD000, "otadata", "ota_0", "1.0.0")
    assert "no valid otadata entry: the default is ota_0" in first.why and "neither" in first.why
    assert "op 2 (#2, erase 0xe000, otadata) torn 'none': boots ota_0 (1.0.0)" in result.summary()
    assert result.to_dict()["failures"][0]["policy"] == "prefix"
    assert result.by_phase["otadata"]["failed"] == 5 and result.by_phase["image"]["failed"] == 1


def test_policies_can_be_chosen_and_unknown_ones_are_refused():
    rec = update(atomic=True)
    assert sweep_boot(rec, policies=("none",)).states == len(rec.ops)
    with pytest.raises(ValueError, match="unknown tear policy"):
        sweep_boot(rec, policies=("half",))


def test_an_esp8266_recording_is_not_applicable():
    rec = Recording("micropython", "files", "next", [], b"", b"", None, chip="esp8266")
    result = sweep_boot(rec)
    assert not result.applicable and "not applicable" in result.summary()


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("device", ["micropython", "esp-idf"])
def test_the_real_firmware_updates_have_no_failing_cut_and_sweep_within_a_minute(tmp_path, device):
    from harness.rig import load_rig
    from harness.scenario import OtaBench, OtaCase
    from harness.sweep import record_update

    bench = OtaBench(load_rig("emu"), tmp_path)
    try:
        rec = record_update(OtaCase(bench, bench.board("esp32-0"), "firmware", device=device))
    finally:
        bench.close()
    t0 = time.monotonic()
    result = sweep_boot(rec)
    seconds = time.monotonic() - t0
    assert result.ok, result.summary()
    assert result.states == 3 * len(rec.ops)
    if device == "micropython":  # its firmware is 1.5 MiB: over 6000 page programs and sector erases
        assert rec.phase_counts()["image"] > 6000
    assert result.outcomes["new"] >= 1 and result.outcomes["old"] >= 1
    assert seconds < 60, result.summary()
