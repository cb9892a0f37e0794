"""What ``hil rig check`` finds in baseline images (:func:`harness.rigcheck.baseline_problems`): ESP images
where the chip boots them, for the board's chip, a partition table that parses, an app that fits its slot.
Each problem is one line naming the file and the flash offset."""

from __future__ import annotations

import pytest

from harness.esp import build_app, build_bootloader, idf_two_ota, micropython_esp32_ota
from harness.esp.app_image import build_esp8266_app
from harness.esp.esp8266_image import build_ea_image
from harness.esp.partition_table import Partition, PartitionTable
from harness.firmware import micropython_baseline
from harness.rigcheck import BaselineImage, baseline_problems

MB = 1 << 20
HTML = b"<!DOCTYPE html><html><body>404 Not Found</body></html>"[:51]


def combined(bootloader: bytes | None = None, table: bytes | None = None, app: bytes | None = None) -> bytes:
    """MicroPython's ESP32 firmware file, written at 0x1000: bootloader, partition table at 0x8000, app at 0x10000."""
    parts = micropython_baseline("esp32")
    bootloader, table, app = (given if given is not None else part.data
                              for given, part in zip((bootloader, table, app), parts, strict=True))
    data = bytearray(b"\xff" * (0xF000 + len(app)))
    data[:len(bootloader)] = bootloader
    data[0x7000:0x7000 + len(table)] = table
    data[0xF000:] = app
    return bytes(data)


def esp32(*parts: tuple[int, bytes], name: str = "fw.bin", flash: int = 4 * MB, complete: bool = True):
    return baseline_problems("esp32", flash, [BaselineImage(offset, data, name) for offset, data in parts],
                             complete=complete)


def esp8266(data: bytes, offset: int = 0, name: str = "fw.bin"):
    return baseline_problems("esp8266", 4 * MB, [BaselineImage(offset, data, name)])


def app(version: str = "v1.27.0", size: int = 0x180000, chip: str = "esp32", **kwargs) -> bytes:
    return build_app(chip, project="micropython", version=version, size=size, micropython_banner=True,
                     **kwargs).to_bytes()


@pytest.mark.parametrize("flash", ["4MB", "8MB", "16MB"])
def test_the_built_in_esp32_baseline_passes(flash):
    parts = micropython_baseline("esp32", flash_size=flash)
    problems, notes = esp32(*((p.offset, p.data) for p in parts), flash=int(flash[:-2]) * MB)
    assert problems == []
    assert notes == ["bootloader at 0x1000", "partition table at 0x8000 (6 partitions)",
                     "micropython v1.27.0 in ota_0 at 0x10000 (0x180000 of 0x180000 bytes)"]


@pytest.mark.parametrize("flash", ["1MB", "4MB", "16MB"])
def test_the_built_in_esp8266_baseline_passes(flash):
    (part,) = micropython_baseline("esp8266", flash_size=flash)
    assert esp8266(part.data) == ([], ["ESP8266 image (MicroPython v1.27.0) at 0x0"])


def test_the_combined_esp32_binary_at_0x1000_passes():
    assert esp32((0x1000, combined()))[0] == []


def test_an_idf_layout_in_separate_files_passes():
    """Bootloader, table and app as esptool gets them from an ESP-IDF build, with the factory app first."""
    table = idf_two_ota("4MB")
    problems, notes = esp32((0x1000, build_bootloader("esp32").to_bytes()), (0x8000, table.to_bytes()),
                            (0x10000, app(size=0x80000)))
    assert problems == []
    assert notes[-1] == "micropython v1.27.0 in factory at 0x10000 (0x80000 of 0x100000 bytes)"


def test_an_html_page_is_not_an_esp_image():
    assert esp32((0x1000, HTML), name="firmware/x.bin") == (
        ["firmware/x.bin: not an ESP image at 0x1000 (starts with '<!DOCTYPE'...)"], [])
    assert esp8266(HTML, name="firmware/x.bin") == (
        ["firmware/x.bin: not an ESP image at 0x0 (starts with '<!DOCTYPE'...)"], [])


def test_a_long_html_page_is_one_problem():
    """A page long enough to reach 0x8000 and 0x10000 is still one problem, not one per thing it should hold."""
    assert esp32((0x1000, HTML * 2000), name="x.bin")[0] == [
        "x.bin: not an ESP image at 0x1000 (starts with '<!DOCTYPE'...)"]


def test_erased_and_binary_junk_are_shown_as_such():
    assert esp32((0x1000, b"\xff" * 0x1000))[0] == ["fw.bin: not an ESP image at 0x1000 (erased: all 0xff)"]
    assert esp32((0x1000, bytes(range(16)) * 4))[0] == [
        "fw.bin: not an ESP image at 0x1000 (starts with 00 01 02 03 04 05 06 07 08...)"]


def test_an_image_for_another_esp32_family_chip():
    bootloader = bytearray(build_bootloader("esp32").to_bytes())
    bootloader[12:14] = (9).to_bytes(2, "little")
    assert esp32((0x1000, combined(bootloader=bytes(bootloader))))[0] == [
        "fw.bin: bootloader at 0x1000 is an image for ESP32-S3 (chip id 9), not esp32's 0"]
    image = bytearray(app())
    image[12:14] = (5).to_bytes(2, "little")
    assert esp32((0x1000, combined(app=bytes(image))))[0] == [
        "fw.bin: app at 0x10000 (ota_0, file offset 0xf000) is an image for ESP32-C3 (chip id 5), not esp32's 0"]


def test_an_esp8266_image_on_an_esp32_and_the_other_way_round():
    (part,) = micropython_baseline("esp8266")
    problems, _ = esp32((0x1000, part.data))
    assert problems == ["fw.bin: bootloader at 0x1000 has chip id 15360, which no chip has (an ESP8266 image?), "
                        "not esp32's 0"]
    # the ESP32's extended header read as ESP8266 segment headers: an absurd segment length
    problems, _ = esp8266(app(size=0x40000))
    assert problems == ["fw.bin: ESP8266 image at 0x0 does not parse as an esp8266 image: image is truncated: "
                        "segment 1 data (0x1000000 bytes) at 0x18 needs data up to 0x1000018 but only 0x40000 bytes "
                        "are present"]


def test_segments_outside_the_esp8266s_memory_are_not_an_esp8266_image():
    """An ESP8266 image has no chip id: an image that parses as one but loads where an ESP8266 has no memory
    (here ESP32 DROM) is for another chip."""
    image = bytearray(micropython_baseline("esp8266")[0].data)
    image[8:12] = (0x3F400020).to_bytes(4, "little")  # segment 0's load address (not in the checksum)
    assert esp8266(bytes(image))[0] == [
        "fw.bin: ESP8266 image at 0x0 is not an esp8266 image: segment 0 loads at 0x3f400020, outside the "
        "esp8266's memory (an image for another chip?)"]


def test_an_sdk_user_image_at_0_is_not_what_the_esp8266_rom_boots():
    assert esp8266(build_ea_image().to_bytes()) == (
        ["fw.bin: an SDK user image (0xea) at 0x0, which the ROM does not boot: it goes after a second-stage boot "
         "loader (boot_v1.x)"], [])


def test_a_corrupt_esp8266_image_is_refused_by_its_checksum():
    image = bytearray(build_esp8266_app(project="micropython", micropython=True).to_bytes())
    image[0x20] ^= 0x01
    problems, _ = esp8266(bytes(image))
    assert len(problems) == 1 and problems[0].startswith("fw.bin: ESP8266 image at 0x0: Checksum failed.")


def test_the_app_must_fit_its_slot():
    assert esp32((0x1000, combined(app=app(size=0x190000))))[0] == [
        "fw.bin: app at 0x10000 (ota_0, file offset 0xf000): Image length 1638400 doesn't fit in partition "
        "length 1572864"]


def test_a_corrupt_app_and_a_truncated_file():
    image = bytearray(app())
    image[0x20000] ^= 0x01
    problems, _ = esp32((0x1000, combined(app=bytes(image))))
    assert len(problems) == 1
    assert problems[0].startswith("fw.bin: app at 0x10000 (ota_0, file offset 0xf000): Checksum failed. Calculated ")
    problems, _ = esp32((0x1000, combined()[:0x100000]))
    assert len(problems) == 1
    assert problems[0].startswith("fw.bin: app at 0x10000 (ota_0, file offset 0xf000): image at 0x10000 is "
                                  "truncated: segment ")


def test_the_partition_table_must_parse_and_fit_the_flash():
    table = bytearray(micropython_esp32_ota("4MB").to_bytes())
    table[40] ^= 0x01
    problems, _ = esp32((0x1000, combined(table=bytes(table))))
    assert problems == [
        "fw.bin: partition table at 0x8000 (file offset 0x7000): partition table entry 6 at 0xc0: MD5 mismatch: "
        "table says 4564543e21204d6364b78630ca0b9b3d, entries 0-5 hash to 5355df892032a0a8ea642b9589aa29a7"]
    problems, _ = esp32((0x1000, combined(table=micropython_esp32_ota("8MB").to_bytes())))
    assert problems == [
        "fw.bin: partition table at 0x8000 (file offset 0x7000): partition table entry 5 at 0xa0: data partition "
        "'vfs' ends at 0x800000, beyond the 0x400000-byte flash"]
    problems, _ = esp32((0x1000, combined(table=b"<html>" + bytes(0xBFA))))
    assert problems == ["fw.bin: no partition table at 0x8000 (file offset 0x7000; starts with 3c 68 74 6d 6c 3e "
                        "00 00 00...)"]


def test_the_bootloader_needs_an_app_to_start():
    no_app = PartitionTable((Partition("nvs", 1, 2, 0x9000, 0x6000),)).to_bytes()
    assert esp32((0x1000, combined(table=no_app)))[0] == [
        "fw.bin: the partition table has no factory or ota_0 app for the bootloader to start"]
    bootloader, table = (p.data for p in micropython_baseline("esp32")[:2])
    assert esp32((0x1000, bootloader), (0x8000, table))[0] == [
        "nothing is written at 0x10000 (ota_0), the app the bootloader starts"]
    # unless a file could not be read: that file is the problem, already reported
    assert esp32((0x1000, bootloader), (0x8000, table), complete=False)[0] == []


def test_an_image_in_the_other_slot_is_checked_too():
    bootloader, table, first = (p.data for p in micropython_baseline("esp32"))
    broken = bytearray(app("v1.28.0"))
    broken[-1] ^= 0x01
    problems, _ = esp32((0x1000, bootloader), (0x8000, table), (0x10000, first), (0x190000, bytes(broken)))
    assert problems == ["fw.bin: app at 0x190000 (ota_1): Image hash failed - image is corrupt"]


def test_without_a_partition_table_an_image_at_0x10000_is_the_app():
    assert esp32((0x10000, app(size=0x40000))) == ([], ["micropython v1.27.0 at 0x10000"])
    assert esp32((0x10000, HTML))[0] == ["fw.bin: not an ESP image at 0x10000 (starts with '<!DOCTYPE'...)"]
    # data elsewhere (a filesystem image) is not an image and is not judged as one
    assert esp32((0x310000, HTML)) == ([], [])
