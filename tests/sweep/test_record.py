"""Recording an update's flash operations (harness.sweep.record, the chip's flash trace in harness.emu.chip)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.emu.chip import FlashTrace, trace_paths
from harness.emu.flash import SECTOR_SIZE, CutPlan, NorFlash, PowerCut, create_flash_file, tear
from harness.sweep import FlashOp, Recording
from harness.sweep.record import RecordingError, check_recording, file_data_as_image, phase_of, read_trace

SIZE = 0x10000


@pytest.fixture
def path(tmp_path):
    p = str(tmp_path / "flash.bin")
    create_flash_file(p, SIZE)
    return p


def traced_writes(flash: NorFlash) -> None:
    flash.erase_sector(0x1000)
    flash.program(0x1080, bytes(range(256)) * 2)  # three pages: 0x80 + 0x100 + 0x80 bytes
    flash.program(0x3000, b"\x00\x0f")


def test_a_trace_holds_every_operation_and_the_bytes_of_each_program(path):
    flash = NorFlash(path, SIZE)
    before = Path(path).read_bytes()
    trace = FlashTrace(flash, path)
    traced_writes(flash)
    trace.close()
    flash.erase_sector(0x2000)  # after the trace stopped: not in it
    flash.close()
    ops, data = read_trace(*trace_paths(path), table=None, files_region=(0x3000, 0x1000))
    assert [(op.n, op.kind, op.addr, op.size, op.phase) for op in ops] == [
        (1, "erase", 0x1000, SECTOR_SIZE, "other"), (2, "program", 0x1080, 0x80, "other"),
        (3, "program", 0x1100, 0x100, "other"), (4, "program", 0x1200, 0x80, "other"),
        (5, "program", 0x3000, 2, "filesystem")]
    assert data[5] == b"\x00\x0f" and b"".join(data[n] for n in (2, 3, 4)) == bytes(range(256)) * 2
    after = bytearray(Path(path).read_bytes())
    after[0x2000:0x3000] = before[0x2000:0x3000]  # undo the untraced erase (of an erased sector anyway)
    rec = Recording("d", "firmware", "next", ops, before, bytes(after), None, data=data, ops_at_trigger=0)
    check_recording(rec)
    with pytest.raises(RecordingError, match="does not give"):
        check_recording(Recording("d", "firmware", "next", ops[:-1], before, bytes(after), None, data=data))
    with pytest.raises(RecordingError, match="skips"):
        check_recording(Recording("d", "firmware", "next", ops[1:], before, bytes(after), None, data=data))


def test_a_cut_operation_is_in_the_trace_and_the_torn_bytes_are_what_tear_gives(path):
    flash = NorFlash(path, SIZE, cut=CutPlan(at_op=3, policy="random", seed=7))
    FlashTrace(flash, path)
    with pytest.raises(PowerCut):
        traced_writes(flash)
    flash.close()
    ops, data = read_trace(*trace_paths(path), table=None)
    assert [op.n for op in ops] == [1, 2, 3]
    torn = tear("random", 7, 3, b"\xff" * 0x100, bytes(data[3]))
    assert Path(path).read_bytes()[0x1100:0x1200] == torn


def test_a_cut_with_a_base_tears_as_the_same_cut_of_a_run_that_started_at_zero(tmp_path):
    """A sweep arms cut k of an update at the board's counter + k: with the counter as the base, the tear is
    the same in every run (and the same as the bootloader-level sweep's cut k)."""
    def torn_after(ops_before: int) -> bytes:
        p = str(tmp_path / f"flash-{ops_before}.bin")
        create_flash_file(p, SIZE)
        flash = NorFlash(p, SIZE)
        for _ in range(ops_before):
            flash.erase_sector(0x8000)
        flash.cut = CutPlan(at_op=ops_before + 3, policy="random", seed=7, base=ops_before)
        with pytest.raises(PowerCut):
            traced_writes(flash)
        flash.close()
        return Path(p).read_bytes()[0x1100:0x1200]

    assert torn_after(0) == torn_after(41) == tear("random", 7, 3, b"\xff" * 0x100, bytes(range(256))[0x80:] +
                                                   bytes(range(256))[:0x80])


def test_phases_follow_the_partition_table():
    from harness.esp.partition_table import PartitionTable

    table = PartitionTable.from_csv("nvs,data,nvs,0x9000,0x6000\notadata,data,ota,0xf000,0x2000\n"
                                    "ota_0,app,ota_0,0x20000,0x100000\nvfs,data,fat,0x200000,0x100000\n")
    assert [phase_of(a, table) for a in (0x9000, 0xF000, 0x10FFF, 0x20000, 0x200000, 0x8000, 0x300000)] == [
        "nvs", "otadata", "otadata", "image", "filesystem", "other", "other"]
    assert FlashOp(1, "erase", 0, SECTOR_SIZE, "other") == FlashOp(1, "erase", 0, SECTOR_SIZE, "other")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_file_system_writes_of_the_update_s_own_bytes_are_its_bulk_data():
    content = bytes(range(256)) * 40
    fs = 0x300000
    ops = [FlashOp(1, "erase", fs, SECTOR_SIZE, "filesystem"),           # the sector the data goes to
           FlashOp(2, "program", fs, 256, "filesystem"),                 # data (littlefs pointers first)
           FlashOp(3, "erase", fs + 0x1000, SECTOR_SIZE, "filesystem"),  # a metadata pair
           FlashOp(4, "program", fs + 0x1000, 64, "filesystem"),         # the slot record's commit
           FlashOp(5, "program", 0x10000, 256, "image")]
    data = {2: b"\x01\x02\x03\x04" * 8 + content[1000:1224], 4: b"record" + bytes(58), 5: bytes(256)}
    phases = [op.phase for op in file_data_as_image(ops, data, [content])]
    assert phases == ["image", "image", "filesystem", "filesystem", "image"]
    assert [op.phase for op in file_data_as_image(ops, data, [])] == [op.phase for op in ops]


def test_recording_the_agent_s_firmware_update_on_a_virtual_board(tmp_path):
    from harness.rig import load_rig
    from harness.scenario import OtaBench, OtaCase
    from harness.sweep import record_update

    bench = OtaBench(load_rig("emu"), tmp_path)
    try:
        case = OtaCase(bench, bench.board("esp32-0"), "firmware", device="micropython")
        rec = record_update(case)
    finally:
        bench.close()
    assert rec.outcome == "confirmed" and rec.new_version != rec.old_version
    counts = rec.phase_counts()
    assert counts["image"] > 6000 and counts["otadata"] >= 2  # 1.5 MiB in pages and sectors; the switch
    assert rec.ops[0].n == rec.ops_at_trigger + 1
    check_recording(rec)  # record_update checked it too: replaying gives the flash after the update


def test_without_a_partition_table_boot_v1_s_user_bins_are_image_and_its_parameters_params():
    from harness.esp.esp8266_image import FotaLayout
    from harness.sweep.record import device_regions

    layout = FotaLayout.for_map("4MB", "512KB")

    class SdkLike:
        def layout(self):
            return layout

    regions = device_regions(SdkLike())
    assert phase_of(layout.user1 + 0x100, None, None, regions) == "image"
    assert phase_of(layout.user2 + layout.slot_size - 1, None, None, regions) == "image"
    assert phase_of(layout.user2 + layout.slot_size, None, None, regions) == "other"
    assert [phase_of(a, None, None, regions) for a in (*layout.params, layout.flag)] == ["params"] * 3
    assert phase_of(layout.init_data, None, None, regions) == "other"
    assert device_regions(object()) == ()
