import struct
import zlib

import pytest

from harness.esp.app_image import build_esp8266_app, verify_image
from harness.esp.errors import ImageFormatError
from harness.esp.esp8266_image import (
    LAYOUT_1MB_512,
    BootParams,
    FotaLayout,
    active_param_copy,
    build_ea_image,
    check_sdk_crc,
    decode_fota_state,
    find_micropython_banner,
    initial_fota_sectors,
    parse_ea_image,
    rehash_ea,
    sdk_crc,
    switch_slot_writes,
    verify_ea_image,
)


def _sample_with_crc_bit31(bit: int) -> bytes:
    for i in range(1000):
        data = f"sample {i}".encode()
        if ((zlib.crc32(data) >> 31) & 1) == bit:
            return data
    raise AssertionError("no sample found")


@pytest.mark.parametrize("bit", [0, 1])
def test_sdk_crc_rule(bit):
    data = _sample_with_crc_bit31(bit)
    c = zlib.crc32(data)
    expected = c ^ 0xFFFFFFFF if bit else c + 1
    assert sdk_crc(data) == expected
    # the SDK's upgrade_crc_check: table CRC from 0xFFFFFFFF without final inversion, abs() as int32
    raw = c ^ 0xFFFFFFFF
    signed = raw - (1 << 32) if raw & 0x80000000 else raw
    assert sdk_crc(data) == abs(signed)


def test_sdk_crc_matches_esptool():
    bin_image = pytest.importorskip("esptool.bin_image")
    for bit in (0, 1):
        data = _sample_with_crc_bit31(bit)
        assert sdk_crc(data) == bin_image.esp8266_crc32(data)


def test_check_sdk_crc():
    body = b"firmware bytes" * 10
    blob = body + struct.pack("<I", sdk_crc(body))
    assert check_sdk_crc(blob)
    assert not check_sdk_crc(blob[:-1] + bytes([blob[-1] ^ 1]))
    assert not check_sdk_crc(b"\x01\x02")


def test_ea_image_layout_and_round_trip():
    image = build_ea_image(project="fota", version="2.0.0", irom_size=0x3000, slot=2, seed=5)
    data = image.to_bytes()
    assert data[:2] == b"\xea\x04" and data[8:12] == b"\x00\x00\x00\x00"
    parsed = parse_ea_image(data)
    assert parsed.irom_offset == 16 and len(parsed.irom) == 0x3000 and parsed.inner_offset == 16 + 0x3000
    assert data[parsed.inner_offset] == 0xE9
    assert (parsed.spi_mode, parsed.size_freq, parsed.entry) == (data[parsed.inner_offset + 2],
                                                                 data[parsed.inner_offset + 3], image.app.entry)
    assert parsed.crc_ok and parsed.checksum_ok and parsed.length == len(data)
    assert parsed.linked_slot == 2
    assert check_sdk_crc(data)
    assert verify_ea_image(data).ok and verify_image(data, chip="esp8266").ok


def test_ea_corruption_in_irom_fails_crc_only():
    data = bytearray(build_ea_image(irom_size=0x2000).to_bytes())
    data[0x100] ^= 0x01  # inside irom0: not covered by the v1 checksum
    check = verify_ea_image(bytes(data))
    parsed = parse_ea_image(bytes(data))
    assert parsed.checksum_ok and not parsed.crc_ok
    assert check.reason.startswith("upgrade crc check failed: img_crc = ")
    assert check.offset == parsed.crc_offset == len(data) - 4
    assert verify_ea_image(rehash_ea(bytes(data))).ok


def test_ea_corruption_in_ram_segment_fails_checksum_first():
    data = bytearray(build_ea_image(irom_size=0x2000).to_bytes())
    parsed = parse_ea_image(bytes(data))
    seg = parsed.inner.segments[1]
    data[parsed.inner_offset + seg.data_offset] ^= 0x01
    check = verify_ea_image(bytes(data))
    assert check.reason.startswith("Checksum failed.")
    assert check.offset == parsed.inner_offset + parsed.inner.checksum_offset


def test_ea_truncated_and_wrong_magic():
    data = build_ea_image(irom_size=0x2000).to_bytes()
    with pytest.raises(ImageFormatError, match="SDK CRC") as exc:
        parse_ea_image(data[:-2])
    assert exc.value.offset == len(data) - 4
    assert not verify_ea_image(data[:0x1000]).ok
    assert verify_ea_image(b"\xe9" + data[1:]).reason == "image at 0x0 has invalid magic byte 0xe9 (expected 0xea)"


def test_find_micropython_banner_old_and_new_style():
    old = b"\x00junk MicroPython v1.19.1 on 2022-06-18; ESP module with ESP8266\r\n\x00more"
    assert find_micropython_banner(old) == ("1.19.1", "ESP module with ESP8266")
    new = (b"xx\x00MicroPython v1.23.0-preview.6.g3d0b6276f on 2024-03-01\x00abc\x00"
           b"; ESP module with ESP8266\x00tail")
    assert find_micropython_banner(new) == ("1.23.0-preview.6.g3d0b6276f", "ESP module with ESP8266")
    assert find_micropython_banner(b"no banner here") is None
    assert find_micropython_banner(b"MicroPython v1.2.3 on 2020-01-01\x00") == ("1.2.3", None)


def test_banner_is_found_in_built_images():
    v1 = build_esp8266_app(version="1.22.2", micropython=True).to_bytes()
    assert find_micropython_banner(v1) == ("1.22.2", "ESP module with ESP8266")
    ea = build_ea_image(version="1.21.0", micropython=True).to_bytes()
    assert find_micropython_banner(ea).version == "1.21.0"
    assert find_micropython_banner(build_esp8266_app().to_bytes()) is None


def test_fota_layout_512_512():
    lay = LAYOUT_1MB_512
    assert (lay.user1, lay.user2, lay.slot_size) == (0x1000, 0x81000, 123 * 0x1000)
    assert (lay.init_data, lay.params, lay.flag) == (0xFC000, (0xFD000, 0xFE000), 0xFF000)
    assert lay.user1 + lay.slot_size <= lay.user2 and lay.user2 + lay.slot_size <= lay.init_data
    big = FotaLayout.for_map("4MB", "1024KB")
    assert big.user2 == 257 * 0x1000 and big.flag == 0x3FF000
    with pytest.raises(ValueError, match="no boot_v1.x map"):
        FotaLayout.for_map("1MB", "300KB")


def test_boot_params_bits_round_trip():
    raw = bytes([0b1111_1000, 0x04]) + b"\xff" * 30
    p = BootParams.decode(raw)
    assert (p.usr_bin, p.boot_status, p.version) == (0, 0, 4)
    q = BootParams(usr_bin=1, boot_status=1, raw=raw)
    enc = q.encode()
    assert enc[0] == 0b1111_1101 and enc[1:] == raw[1:]
    assert BootParams.decode(enc) == q


@pytest.mark.parametrize("byte0,byte1,slot", [
    (0x04, 0xFF, 1),  # usr_bin 0, boot_status 1
    (0x05, 0xFF, 2),  # usr_bin 1, boot_status 1
    (0x01, 0xFF, 1),  # usr_bin 1, boot_status 0 -> stays on user1
    (0x00, 0xFF, 2),  # usr_bin 0, boot_status 0, version != 4
    (0x00, 0x04, 1),  # ... version 4
    (0xFF, 0xFF, 1),  # erased parameters boot user1
])
def test_booted_slot_rule(byte0, byte1, slot):
    assert BootParams.decode(bytes([byte0, byte1])).booted_slot == slot


def test_flag_byte_selects_copy():
    assert active_param_copy(0) == 0
    assert active_param_copy(1) == 1 and active_param_copy(0xFF) == 1


def _apply(flash: dict[int, bytes], writes) -> dict[int, bytes]:
    out = dict(flash)
    for w in writes:
        out[w.address] = w.data + b"\xff" * (32 - len(w.data))
    return out


def _state(flash):
    lay = LAYOUT_1MB_512
    return decode_fota_state(flash[lay.flag], flash[lay.params[0]], flash[lay.params[1]])


def test_switch_slot_is_an_atomic_two_copy_switch():
    flash = initial_fota_sectors(slot=1)
    state = _state(flash)
    assert (state.active_copy, state.booted_slot) == (0, 1)
    writes = switch_slot_writes(state, 2)
    assert [w.address for w in writes] == [0xFE000, 0xFF000]
    # power lost after the first write: the flag still points at the old copy
    half = _apply(flash, writes[:1])
    assert _state(half).booted_slot == 1
    done = _apply(flash, writes)
    assert (_state(done).active_copy, _state(done).booted_slot) == (1, 2)
    # and back again uses the other copy
    back = _apply(done, switch_slot_writes(_state(done), 1))
    assert (_state(back).active_copy, _state(back).booted_slot) == (0, 1)
    with pytest.raises(ValueError, match="slot must be 1 or 2"):
        switch_slot_writes(state, 3)
