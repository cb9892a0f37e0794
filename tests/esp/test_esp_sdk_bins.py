"""SDK user bins (gen_appbin boot mode 2) with the version record, their variants, the boot image
and the SDK baseline; esptool's own parser reads the bins the same way."""

from __future__ import annotations

import io
import struct

import pytest

from harness.emu.idf.build import HOST_HEADER, HOST_MAGIC, find_host_payload
from harness.esp.errors import ImageFormatError
from harness.esp.esp8266_image import (
    BOOT_V1_MARKER,
    INIT_DATA_PLACEHOLDER,
    VERSION_RECORD,
    FlashSettings,
    FotaLayout,
    bad_crc,
    bad_magic,
    build_boot_image,
    build_user_bin,
    check_sdk_crc,
    find_boot_v1,
    other_slot,
    parse_ea_image,
    read_user_bin_desc,
    sdk_baseline,
    sdk_crc,
    too_large,
    truncated,
    verify_ea_image,
    with_version,
)


def framed(exe: bytes) -> bytes:
    import hashlib

    data = HOST_HEADER.pack(HOST_MAGIC, len(exe), 0, hashlib.sha256(exe).digest()) + exe
    return data + bytes(-len(data) % 4)


@pytest.mark.parametrize("slot", [1, 2])
def test_layout_matches_gen_appbin(slot):
    data = build_user_bin(slot, "3.1.4", project="lamp", irom_size=0x1800, seed=3)
    assert data[:4] == bytes([0xEA, 0x04, 0x00, slot])
    assert struct.unpack_from("<I", data, 4)[0] == 0x40100004
    addr, irom_len = struct.unpack_from("<II", data, 8)
    assert addr == 0 and irom_len % 16 == 0 and irom_len >= 0x1800
    inner = 16 + irom_len
    assert data[inner] == 0xE9 and data[inner + 1] == 3
    assert data[inner + 2] == 0 and data[inner + 3] == 0x40  # QIO, map 4, 40 MHz
    p = parse_ea_image(data)
    assert p.length == len(data) and p.crc_ok and p.checksum_ok and p.linked_slot == slot
    assert (p.crc_offset - inner) % 16 == 0  # the checksum byte (just before the CRC) ends a 16-byte line
    assert check_sdk_crc(data) and struct.unpack("<I", data[-4:])[0] == sdk_crc(data[:-4])
    assert [s.addr for s in p.inner.segments] == [0x40100000, 0x3FFE8000, p.inner.segments[2].addr]
    assert VERSION_RECORD.size == 80


def test_user1_and_user2_are_different_builds():
    u1, u2 = build_user_bin(1, "1.0.0"), build_user_bin(2, "1.0.0")
    assert parse_ea_image(u1).inner.segments[0].data != parse_ea_image(u2).inner.segments[0].data


def test_version_record_round_trip_from_the_first_packet():
    data = build_user_bin(2, "10.20.30", project="thermostat")
    desc = read_user_bin_desc(data[:96])
    assert (desc.project, desc.version, desc.linked_slot, desc.header_slot) == ("thermostat", "10.20.30", 2, 2)
    assert data[16:24] == b"SDKAPP\x00\x01"
    assert read_user_bin_desc(data[:95]).version == ""  # the record needs its 80 bytes
    assert read_user_bin_desc(b"\xe9" + data[1:]) is None
    with pytest.raises(ValueError, match="version"):
        build_user_bin(1, "x" * 32)
    with pytest.raises(ValueError, match="slot must be 1 or 2"):
        build_user_bin(3, "1.0")


def test_payload_follows_the_record_and_is_found_in_irom():
    exe = bytes(range(256)) * 5
    data = build_user_bin(1, "1.0.0", payload=framed(exe))
    p = parse_ea_image(data)
    assert p.irom[80:88] == HOST_MAGIC and (16 + 80) % 16 == 0
    seg = type("Seg", (), {"data": p.irom[80:]})
    assert find_host_payload([seg]) == exe
    # a corrupted irom breaks the payload's SHA-256 and the CRC, but not the loader's checksum
    bad = bytearray(data)
    bad[16 + 80 + HOST_HEADER.size + 10] ^= 1
    q = parse_ea_image(bytes(bad))
    assert q.checksum_ok and not q.crc_ok
    assert find_host_payload([type("Seg", (), {"data": q.irom[80:]})]) is None


def test_variants():
    good = build_user_bin(1, "2.0.0", project="p", irom_size=0x400)
    layout = FotaLayout.for_map_code(4)
    v = bad_crc(good)
    assert len(v) == len(good) and not check_sdk_crc(v) and parse_ea_image(v).checksum_ok
    assert "upgrade crc check failed" in verify_ea_image(v).reason
    assert truncated(good, 100) == good[:100] and len(truncated(good)) == len(good) // 2
    with pytest.raises(ValueError, match="keep"):
        truncated(good, len(good))
    v = other_slot(good)
    assert v[3] == 2 and read_user_bin_desc(v).linked_slot == 2 and check_sdk_crc(v)
    assert other_slot(v) == good
    v = bad_magic(good)
    p = parse_ea_image(good)
    assert v[p.inner_offset] != 0xE9 and check_sdk_crc(v)  # passes the app's CRC check
    assert not verify_ea_image(v).ok
    v = too_large(good, layout.fota_size)
    assert len(v) > layout.fota_size and verify_ea_image(v).ok
    assert read_user_bin_desc(v) == read_user_bin_desc(good)
    v = with_version(good, "2.0.1")
    assert read_user_bin_desc(v).version == "2.0.1" and verify_ea_image(v).ok and len(v) == len(good)
    assert with_version(v, "2.0.0") == good
    with pytest.raises(ImageFormatError):
        bad_crc(good[:-1])


def test_boot_image_carries_the_flash_settings_and_is_recognised():
    img = build_boot_image(6, spi_mode="dout", flash_freq="26m")
    assert len(img) < 0x1000 and img[0] == 0xE9 and BOOT_V1_MARKER in img
    s = FlashSettings.from_header(img)
    assert (s.map_code, s.mode_name, s.speed_name) == (6, "DOUT", "26.7MHz")
    info = find_boot_v1(img)
    assert info.ours and info.version == 7 and info.version_text == "1.7(5d6f877)"
    # an SDK boot_v1.x.bin is recognised by its version string
    sdk_like = b"\xe9\x01\x00\x20" + bytes(60) + b"2nd boot version : 1.6(8b1e9d2)\n"
    info = find_boot_v1(sdk_like)
    assert not info.ours and info.version == 6 and info.version_text == "1.6(8b1e9d2)"
    assert find_boot_v1(build_user_bin(1, "1.0")) is None
    with pytest.raises(ValueError, match="flash map code 7"):
        build_boot_image(7)


def test_sdk_baseline():
    user1 = build_user_bin(1, "1.0.0")
    parts = sdk_baseline("4MB", 4, user1)
    assert [(p.offset, p.name) for p in parts] == [
        (0, "boot.bin"), (0x1000, "user1.bin"), (0x3FC000, "esp_init_data_default.bin"), (0x3FE000, "blank.bin")]
    assert parts[2].data == INIT_DATA_PLACEHOLDER and len(parts[2].data) == 128
    assert parts[3].data == b"\xff" * 0x1000
    assert sdk_baseline("1MB", 2, user1)[3].offset == 0xFE000
    with pytest.raises(ValueError, match="needs 4096 KB"):
        sdk_baseline("1MB", 4, user1)
    assert sdk_baseline("4MB", 4, user1, boot=b"\xe9" + bytes(50) + b"2nd boot version : 1.7")[0].name == \
        "boot_v1.7.bin"


def test_esptool_reads_the_bins_like_we_do():
    bin_image = pytest.importorskip("esptool.bin_image")
    from esptool.util import FatalError
    for slot in (1, 2):
        data = build_user_bin(slot, "4.5.6", irom_size=0x2000, seed=9)
        theirs = bin_image.LoadFirmwareImage("esp8266", io.BytesIO(data).read())
        ours = parse_ea_image(data)
        assert isinstance(theirs, bin_image.ESP8266V2FirmwareImage) and theirs.version == 2
        # bytes 2/3 of the outer header are the app number for gen_appbin, mode/size for esptool: esptool
        # warns and takes the inner header's values
        assert (theirs.flash_mode, theirs.flash_size_freq) == (0, 0x40)
        assert theirs.entrypoint == ours.entry == 0x40100004
        assert theirs.segments[0].data == ours.irom
        assert [(s.addr, bytes(s.data)) for s in theirs.segments[1:]] == \
            [(s.addr, s.data) for s in ours.inner.segments]
        assert theirs.checksum == theirs.calculate_checksum() == ours.inner.stored_checksum
        assert bin_image.esp8266_crc32(data[:-4]) == struct.unpack("<I", data[-4:])[0]
        with pytest.raises(FatalError, match="magic"):
            bin_image.LoadFirmwareImage("esp8266", bad_magic(data))
