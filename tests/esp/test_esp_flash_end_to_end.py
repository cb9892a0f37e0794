"""A whole 4 MB ESP32 flash built from the codecs, run through several OTA cycles."""

import struct

import pytest

from harness.esp import (
    OtaError,
    OtaState,
    PartitionTable,
    app_state,
    apply_writes,
    build_app,
    build_bootloader,
    get_next_update,
    image_slot_check,
    mark_app_valid,
    micropython_esp32_ota,
    parse_otadata,
    select_boot,
    set_boot_partition,
    set_version,
    verify_image,
)


class Flash:
    """The smallest flash model the test needs: erase-to-FF partitions, byte writes."""

    def __init__(self, size=0x400000):
        self.data = bytearray(b"\xff" * size)

    def read(self, offset, length):
        return bytes(self.data[offset:offset + length])

    def write_partition(self, part, blob):
        self.data[part.offset:part.end] = b"\xff" * part.size
        self.data[part.offset:part.offset + len(blob)] = blob


@pytest.fixture()
def board():
    flash = Flash()
    flash.data[0x1000:0x1000 + 0x7000] = build_bootloader().to_bytes().ljust(0x7000, b"\xff")
    table = micropython_esp32_ota()
    flash.data[0x8000:0x8C00] = table.to_bytes()
    base = build_app(project="micropython", version="1.0.0", size=0x120000, seed=11).to_bytes()
    flash.write_partition(table.find("ota_0"), base)
    return flash, base


def _boot(flash):
    table = PartitionTable.from_bytes(flash.read(0x8000, 0xC00), require_md5=True)
    otadata = table.otadata
    decision = select_boot(table, flash.read(otadata.offset, otadata.size), image_slot_check(flash.read))
    region = apply_writes(flash.read(otadata.offset, otadata.size), decision.otadata_writes)
    flash.data[otadata.offset:otadata.end] = region
    return table, decision


def test_ota_cycles_on_a_flash_image(board):
    flash, base = board
    assert verify_image(flash.read(0x1000, 0x7000), address=0x1000).ok
    table, d = _boot(flash)
    assert d.partition.label == "ota_0" and d.check.version == "1.0.0" and d.check.project == "micropython"
    assert "segment 0: paddr=00010020 vaddr=3f400020" in "\n".join(d.log)
    running = d.partition
    for version in ("1.1.0", "1.2.0", "1.3.0"):
        target = get_next_update(table, running)
        flash.write_partition(target, set_version(base, version))
        check = image_slot_check(flash.read)(target)
        otadata = flash.read(table.otadata.offset, 0x2000)
        writes = set_boot_partition(table, otadata, target, target_check=check)
        flash.data[table.otadata.offset:table.otadata.end] = apply_writes(otadata, writes)
        table, d = _boot(flash)
        assert d.partition == target and d.check.version == version and not d.fallback
        otadata = flash.read(table.otadata.offset, 0x2000)
        assert app_state(table, otadata, target) == OtaState.PENDING_VERIFY
        flash.data[table.otadata.offset:table.otadata.end] = apply_writes(otadata, mark_app_valid(table, otadata))
        running = target
    entries = parse_otadata(flash.read(table.otadata.offset, 0x2000))
    assert sorted(e.seq for e in entries) == [3, 4]


def test_truncated_update_is_refused_then_falls_back_if_forced(board):
    flash, base = board
    table, d = _boot(flash)
    target = get_next_update(table, d.partition)
    update = set_version(base, "2.0.0")
    flash.write_partition(target, update[: len(update) // 2])
    check = image_slot_check(flash.read)(target)
    assert not check.ok and check.reason == "invalid segment length 0xffffffff"  # next header reads erased flash
    otadata = flash.read(table.otadata.offset, 0x2000)
    with pytest.raises(OtaError) as exc:
        set_boot_partition(table, otadata, target, target_check=check)
    assert exc.value.code == "ESP_ERR_OTA_VALIDATE_FAILED"
    # a buggy updater that skips validation: the bootloader falls back
    flash.data[table.otadata.offset:table.otadata.end] = apply_writes(
        otadata, set_boot_partition(table, otadata, target))
    table, d = _boot(flash)
    assert d.partition.label == "ota_0" and d.fallback
    assert "OTA app partition slot 1 is not bootable" in d.log
    # next boot: the never-confirmed entry is aborted and ota_0 is selected normally
    table, d = _boot(flash)
    assert d.partition.label == "ota_0" and not d.fallback
    assert app_state(table, flash.read(table.otadata.offset, 0x2000), target) == OtaState.ABORTED


def test_wrong_chip_image_is_rejected_with_the_bootloader_message(board):
    flash, base = board
    table, d = _boot(flash)
    target = get_next_update(table, d.partition)
    bad = bytearray(set_version(base, "3.0.0"))
    bad[12:14] = struct.pack("<H", 9)  # ESP32-S3
    flash.write_partition(target, bytes(bad))
    check = image_slot_check(flash.read)(target)
    assert check.reason == "mismatch chip ID, expected 0, found 9"
    assert image_slot_check(flash.read)(table.find("vfs")).reason == \
        "image at 0x310000 has invalid magic byte (nothing flashed here?)"
