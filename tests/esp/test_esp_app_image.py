import hashlib
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from harness.esp.app_image import (
    APP_DESC_OFFSET,
    AppDesc,
    AppImage,
    Segment,
    build_app,
    build_bootloader,
    build_esp8266_app,
    checksum_position,
    image_length,
    parse_image,
    rehash,
    set_version,
    verify_image,
    xor_checksum,
)
from harness.esp.errors import FormatError, ImageFormatError
from harness.esp.esp8266_image import build_ea_image, parse_ea_image


def _have_esptool() -> bool:
    try:
        import esptool  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def app():
    return build_app(project="micropython", version="1.23.0", size=0x60000, seed=7)


@pytest.fixture(scope="module")
def app_bytes(app):
    return app.to_bytes()


def test_xor_checksum_matches_a_plain_loop():
    data = bytes(range(256)) * 3 + b"\x5a\x01"
    expected = 0xEF
    for b in data:
        expected ^= b
    assert xor_checksum(data) == expected
    assert xor_checksum(b"") == 0xEF


def test_checksum_position_pads_to_16():
    assert checksum_position(0x1F) == 0x1F
    assert checksum_position(0x20) == 0x2F
    assert (checksum_position(12345) + 1) % 16 == 0


def test_app_desc_round_trip_and_layout():
    desc = AppDesc(version="1.2.3", project_name="proj", secure_version=5, time="12:00:00", date="Jan  2 2025",
                   idf_ver="v5.2.2", app_elf_sha256=bytes(range(32)), max_efuse_blk_rev_full=99)
    raw = desc.pack()
    assert len(raw) == 256
    assert raw[:4] == bytes.fromhex("3254cdab")
    assert struct.unpack_from("<I", raw, 4)[0] == 5
    assert raw[0x10:0x15] == b"1.2.3" and raw[0x30:0x34] == b"proj"
    assert AppDesc.unpack(raw) == desc


def test_app_desc_rejects_bad_magic_and_long_fields():
    with pytest.raises(ImageFormatError, match="magic 0x00000000") as exc:
        AppDesc.unpack(bytes(256))
    assert exc.value.offset == 0
    with pytest.raises(ValueError, match="version"):
        AppDesc(version="x" * 33).pack()


def test_build_app_layout_looks_like_idf(app, app_bytes):
    addrs = [s.addr for s in app.segments]
    assert addrs[0] == 0x3F400020 and addrs[1] == 0x3FFB0000 and addrs[2] == 0x40080000 and addrs[3] == 0x400D0020
    parsed = parse_image(app_bytes)
    irom = parsed.segments[3]
    assert irom.data_offset % 0x10000 == 0x20  # mapped segment aligned to its MMU page
    assert parsed.segments[0].data_offset == APP_DESC_OFFSET
    assert parsed.app_desc.version == "1.23.0" and parsed.app_desc.project_name == "micropython"
    assert app.app_desc == parsed.app_desc
    assert parsed.chip_id == 0 and parsed.wp_pin == 0xEE and parsed.max_rev_full == 399
    assert parsed.flash_size == 4 * 1024 * 1024 and parsed.spi_mode == 2 and parsed.hash_appended == 1


@pytest.mark.parametrize("size", [0x11000, 0x40000, 1536 * 1024, 0x180000])
def test_build_app_size_is_close_to_request(size):
    data = build_app(size=size).to_bytes()
    assert size - 16 <= len(data) <= size
    assert verify_image(data).ok


def test_build_app_is_deterministic_per_seed():
    a = build_app(seed=1).to_bytes()
    assert build_app(seed=1).to_bytes() == a
    assert build_app(seed=2).to_bytes() != a


def test_build_app_too_small_is_a_clear_error():
    with pytest.raises(ValueError, match="too small for an ESP32 app image"):
        build_app(size=0x8000)


@pytest.mark.parametrize("make", [
    lambda: build_app(size=0x30000),
    lambda: build_bootloader(),
    lambda: build_esp8266_app(micropython=True),
])
def test_image_round_trip(make):
    image = make()
    data = image.to_bytes()
    parsed = parse_image(data, image.chip)
    assert parsed.checksum_ok and parsed.sha256_ok
    assert parsed.length == len(data) == image_length(data, image.chip)
    again = AppImage.from_bytes(data, image.chip)
    assert again == image
    assert again.to_bytes() == data


def test_esp8266_v1_has_8_byte_header_no_hash_no_desc():
    image = build_esp8266_app(version="1.19.1", micropython=True)
    data = image.to_bytes()
    assert data[0] == 0xE9 and data[1] == 3
    parsed = parse_image(data, "esp8266")
    assert parsed.segments[0].header_offset == 8
    assert parsed.digest_offset is None and parsed.app_desc is None and image.app_desc is None
    assert b"MicroPython v1.19.1 on 2024-06-02; ESP module with ESP8266" in data
    assert [s.addr for s in image.segments][0] == 0x40100000


def test_bootloader_layout():
    bl = build_bootloader()
    assert [s.addr for s in bl.segments] == [0x3FFF0030, 0x40078000, 0x40080400]
    assert bl.entry == 0x400805E4 and bl.app_desc is None
    assert len(bl.to_bytes()) < 0x7000  # fits between 0x1000 and the partition table
    assert verify_image(bl.to_bytes()).ok


# -- verification and corruption ----------------------------------------------------
def test_verify_ok(app_bytes):
    check = verify_image(app_bytes, partition_size=0x180000, address=0x10000)
    assert check.ok and check.reason is None and check.length == len(app_bytes)
    assert check.app_desc.version == "1.23.0"
    assert check.log[0].startswith("segment 0: paddr=00010020 vaddr=3f400020 size=")
    assert check.log[0].endswith(" map") and check.log[1].endswith(" load")


def test_flipped_segment_byte_fails_checksum_at_checksum_offset(app_bytes):
    parsed = parse_image(app_bytes)
    victim = parsed.segments[3].data_offset + 1000
    bad = bytearray(app_bytes)
    bad[victim] ^= 0x40
    check = verify_image(bytes(bad))
    assert not check.ok
    assert check.offset == parsed.checksum_offset
    expected = parsed.stored_checksum ^ 0x40
    assert check.reason == f"Checksum failed. Calculated 0x{expected:x} read 0x{parsed.stored_checksum:x}"


def test_checksum_neutral_corruption_fails_hash(app_bytes):
    parsed = parse_image(app_bytes)
    bad = bytearray(app_bytes)
    bad[parsed.segments[3].data_offset + 10] ^= 0x11
    bad[parsed.segments[4].data_offset + 20] ^= 0x11  # XOR cancels in the checksum
    check = verify_image(bytes(bad))
    assert not check.ok
    assert check.reason == "Image hash failed - image is corrupt"
    assert check.offset == parsed.digest_offset == len(app_bytes) - 32


def test_header_change_is_caught_only_by_the_hash(app_bytes):
    bad = bytearray(app_bytes)
    bad[2] = 0  # SPI mode DIO -> QIO: not covered by the checksum
    check = verify_image(bytes(bad))
    assert check.reason == "Image hash failed - image is corrupt"


def test_truncated_image(app_bytes):
    parsed = parse_image(app_bytes)
    cut = parsed.segments[3].data_offset + 0x100
    check = verify_image(app_bytes[:cut], address=0x10000)
    assert not check.ok and "truncated" in check.reason and "segment 3" in check.reason
    assert check.offset == parsed.segments[3].data_offset
    check = verify_image(app_bytes[:-10])
    assert "SHA-256" in check.reason and check.offset == parsed.digest_offset
    with pytest.raises(ImageFormatError, match="truncated") as exc:
        parse_image(app_bytes[:cut])
    assert exc.value.offset == parsed.segments[3].data_offset


def test_truncated_image_in_erased_partition_fails_checksum(app_bytes):
    parsed = parse_image(app_bytes)
    partition = app_bytes[: parsed.segments[4].data_offset] + b"\xff" * 0x180000
    partition = partition[:0x180000]
    check = verify_image(partition, partition_size=0x180000)
    assert not check.ok and check.reason.startswith("Checksum failed.")


def test_wrong_chip_id(app_bytes):
    bad = bytearray(app_bytes)
    bad[12:14] = struct.pack("<H", 5)  # ESP32-C3
    check = verify_image(bytes(bad))
    assert (check.ok, check.reason, check.offset) == (False, "mismatch chip ID, expected 0, found 5", 12)


@pytest.mark.parametrize("blob", [b"", b"\xff" * 0x1000, b"\x00" * 64])
def test_bad_magic(blob):
    check = verify_image(blob, address=0x190000)
    assert check.reason == "image at 0x190000 has invalid magic byte (nothing flashed here?)"
    assert check.offset == 0
    if blob:
        with pytest.raises(ImageFormatError, match="invalid magic byte 0x") as exc:
            parse_image(blob)
        assert exc.value.offset == 0
        assert isinstance(exc.value, FormatError) and isinstance(exc.value, ValueError)


def test_oversized_for_partition(app_bytes):
    check = verify_image(app_bytes, partition_size=0x40000)
    assert check.reason == f"Image length {len(app_bytes)} doesn't fit in partition length {0x40000}"
    assert check.offset == 0x40000 and check.length == len(app_bytes)


def test_chip_revision_range():
    low = build_app(size=0x20000, min_rev_full=301).to_bytes()
    check = verify_image(low)
    assert (check.reason, check.offset) == ("Image requires chip rev >= v3.1, but chip is v3.0", 15)
    assert verify_image(low, chip_rev=301).ok
    high = build_app(size=0x20000, max_rev_full=199).to_bytes()
    assert verify_image(high).reason == "Image requires chip rev <= v1.99, but chip is v3.0"
    assert verify_image(high, chip_rev=100).ok


def test_segment_count_limit(app_bytes):
    bad = bytearray(app_bytes)
    bad[1] = 17
    check = verify_image(bytes(bad))
    assert (check.reason, check.offset) == ("image at 0x0 segment count 17 exceeds max 16", 1)


def test_unaligned_segment_length(app_bytes):
    parsed = parse_image(app_bytes)
    bad = bytearray(app_bytes)
    struct.pack_into("<I", bad, parsed.segments[1].header_offset + 4, parsed.segments[1].length + 2)
    check = verify_image(bytes(bad))
    assert check.reason == f"invalid segment length 0x{parsed.segments[1].length + 2:x}"
    assert check.offset == parsed.segments[1].header_offset + 4


def test_misaligned_mapped_segment():
    image = AppImage(segments=(Segment(0x3FFB0000, bytes(0x100)), Segment(0x400D0020, bytes(0x100))),
                     entry=0x40080000)
    check = verify_image(image.to_bytes(), address=0x10000)
    data_at = 0x10000 + 24 + 8 + 0x100 + 8
    assert check.reason == f"Segment 1 load address 0x400d0020, doesn't match data 0x{data_at:08x}"


def test_require_app_desc_uses_ota_client_text():
    bl = build_bootloader().to_bytes()
    assert verify_image(bl).ok
    assert verify_image(bl, require_app_desc=True).reason == "Incorrect app descriptor magic"


def test_segment_length_must_be_word_multiple_when_building():
    with pytest.raises(ImageFormatError, match="not a multiple of 4"):
        AppImage(segments=(Segment(0x3FFB0000, b"abc"),)).to_bytes()


# -- editing -----------------------------------------------------------------------
def test_rehash_repairs_tampering_and_keeps_trailing_bytes(app_bytes):
    parsed = parse_image(app_bytes)
    bad = bytearray(app_bytes + b"\xff" * 64)
    bad[parsed.segments[1].data_offset] ^= 0xFF
    assert not verify_image(bytes(bad)).ok
    fixed = rehash(bytes(bad))
    assert verify_image(fixed).ok
    assert fixed[-64:] == b"\xff" * 64
    assert fixed[parsed.segments[1].data_offset] == bad[parsed.segments[1].data_offset]


def test_set_version_matches_with_version(app, app_bytes):
    new = set_version(app_bytes, "1.24.0", secure_version=3)
    assert new != app_bytes and len(new) == len(app_bytes)
    check = verify_image(new)
    assert check.ok and check.app_desc.version == "1.24.0" and check.app_desc.secure_version == 3
    assert check.app_desc.project_name == "micropython"
    assert app.with_version("1.24.0", secure_version=3).to_bytes() == new


def test_set_version_needs_an_app_desc():
    with pytest.raises(ImageFormatError, match="no app descriptor") as exc:
        set_version(build_bootloader().to_bytes(), "2.0")
    assert exc.value.offset == 0x20
    with pytest.raises(ValueError, match="version"):
        set_version(build_app(size=0x20000).to_bytes(), "v" * 40)


# -- esptool agreement ----------------------------------------------------------------
def _esptool_image_info(chip: str, path: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "esptool", "--chip", chip, "image-info", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _esptool_segments(out: str) -> list[tuple[int, int, int, int]]:
    rows = re.findall(r"^\s*(\d+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)", out, re.M)
    return [(int(i), int(length, 16), int(addr, 16), int(offs, 16)) for i, length, addr, offs in rows]


@pytest.mark.parametrize("kind", ["esp32-app", "esp32-bootloader", "esp8266-v1", "esp8266-ea"])
def test_esptool_image_info_accepts_our_images(kind, tmp_path):
    if not _have_esptool():
        pytest.skip("esptool is not installed")
    if kind == "esp32-app":
        chip, data = "esp32", build_app(project="micropython", version="1.23.0", size=0x50000, seed=3).to_bytes()
    elif kind == "esp32-bootloader":
        chip, data = "esp32", build_bootloader().to_bytes()
    elif kind == "esp8266-v1":
        chip, data = "esp8266", build_esp8266_app(version="1.19.1", micropython=True).to_bytes()
    else:
        chip, data = "esp8266", build_ea_image(version="1.19.1", micropython=True).to_bytes()
    path = tmp_path / f"{kind}.bin"
    path.write_bytes(data)
    out = _esptool_image_info(chip, path)
    rows = _esptool_segments(out)
    assert "Checksum:" in out and "(valid)" in out.split("Checksum:")[1].splitlines()[0]
    if kind == "esp8266-ea":
        parsed = parse_ea_image(data)
        ours = [(0, len(parsed.irom), 0, 8)] + [
            (s.index + 1, s.length, s.addr, parsed.inner_offset + s.header_offset) for s in parsed.inner.segments]
        assert "Image version: 2" in out
    else:
        parsed = parse_image(data, chip)
        ours = [(s.index, s.length, s.addr, s.header_offset) for s in parsed.segments]
        assert f"Segments: {parsed.segment_count}" in out
        assert f"Entry point: {parsed.entry:#8x}" in out
    assert rows == ours
    if chip == "esp32":
        digest = hashlib.sha256(data[:-32]).hexdigest()
        assert f"Validation hash: {digest} (valid)" in out
    if kind == "esp32-app":
        assert "Project name: micropython" in out and "App version: 1.23.0" in out
        assert "Secure version: 0" in out and "ESP-IDF: v5.2.2" in out
    if kind == "esp32-bootloader":
        assert "Bootloader version: 1" in out


def test_esptool_reports_our_corruption_the_same_way(tmp_path, app_bytes):
    if not _have_esptool():
        pytest.skip("esptool is not installed")
    parsed = parse_image(app_bytes)
    bad = bytearray(app_bytes)
    bad[parsed.segments[2].data_offset] ^= 0x01
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(bad))
    out = _esptool_image_info("esp32", path)
    ours = parse_image(bytes(bad))
    assert f"Checksum: {ours.stored_checksum:#04x} (invalid - calculated {ours.calculated_checksum:#04x})" in out
    assert "(invalid)" in out.split("Validation hash:")[1].splitlines()[0]


@pytest.mark.parametrize("tamper", [False, True])
def test_esptool_parser_agrees_on_checksum_and_hash(app_bytes, tamper):
    bin_image = pytest.importorskip("esptool.bin_image")
    data = bytearray(app_bytes)
    if tamper:
        data[parse_image(app_bytes).segments[0].data_offset + 300] ^= 0x80
    data = bytes(data)
    theirs = bin_image.LoadFirmwareImage("esp32", data)
    ours = parse_image(data)
    assert theirs.checksum == ours.stored_checksum
    assert theirs.calculate_checksum() == ours.calculated_checksum
    assert theirs.stored_digest == ours.stored_sha256
    assert theirs.calc_digest == ours.calculated_sha256
    assert (theirs.checksum == theirs.calculate_checksum()) == ours.checksum_ok == (not tamper)
    assert [(s.addr, len(s.data)) for s in theirs.segments] == [(s.addr, s.length) for s in ours.segments]


def test_esptool_parser_agrees_on_esp8266_images():
    bin_image = pytest.importorskip("esptool.bin_image")
    v1 = build_esp8266_app(size=0x5000, seed=4).to_bytes()
    theirs = bin_image.LoadFirmwareImage("esp8266", v1)
    ours = parse_image(v1, "esp8266")
    assert theirs.version == 1 and theirs.checksum == ours.stored_checksum == ours.calculated_checksum
    ea = build_ea_image(irom_size=0x3000, seed=4).to_bytes()
    theirs = bin_image.LoadFirmwareImage("esp8266", ea)
    parsed = parse_ea_image(ea)
    assert theirs.version == 2
    assert theirs.checksum == parsed.inner.stored_checksum == theirs.calculate_checksum()
    assert len(theirs.segments) == 1 + len(parsed.inner.segments)
    assert theirs.segments[0].data == parsed.irom


def test_decoders_fail_only_with_format_errors_on_garbage():
    import random

    from harness.esp.esp8266_image import verify_ea_image
    from harness.esp.partition_table import PartitionTable, micropython_esp32_ota

    rng = random.Random(1234)
    sources = [build_app(size=0x20000).to_bytes(), build_ea_image(irom_size=0x1000).to_bytes(),
               build_esp8266_app().to_bytes(), micropython_esp32_ota().to_bytes()]
    for _ in range(300):
        data = bytearray(rng.choice(sources + [rng.randbytes(rng.randrange(200))]))
        for _ in range(rng.randrange(1, 5)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3 and data:
            data = data[:rng.randrange(len(data))]
        blob = bytes(data)
        for chip in ("esp32", "esp8266"):
            assert isinstance(verify_image(blob, chip=chip).ok, bool)
            try:
                parse_image(blob, chip)
            except FormatError:
                pass
        assert isinstance(verify_ea_image(blob).ok, bool)
        for decode in (parse_ea_image, PartitionTable.from_bytes):
            try:
                decode(blob)
            except FormatError:
                pass
