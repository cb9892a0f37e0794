"""The boot-state oracle on an ESP8266 in SDK layout: flag, both parameter copies, both slots' headers,
records, checks and CRCs, and the bin that boots next, agreeing with the virtual board's boot_v1.x."""

from __future__ import annotations

import hashlib

import pytest
from test_boot_v1_sdk import MB4, baseline, boot, no_app, state  # noqa: F401  (no_app: an app start returns)

from harness.bootstate import FlashFile, read_boot_state, read_sdk_state
from harness.emu.flash import NorFlash
from harness.esp.esp8266_image import (
    FotaLayout,
    apply_protected_save,
    bad_crc,
    bad_magic,
    build_user_bin,
    decode_fota_state,
    switch_slot_writes,
)
from harness.firmware import micropython_baseline

LAYOUT = FotaLayout.for_map_code(4)


def user_bins(v1: str = "1.0.0", v2: str = "1.1.0", irom_size: int = 0) -> tuple[bytes, bytes]:
    return (build_user_bin(1, v1, project="sdkapp", irom_size=irom_size),
            build_user_bin(2, v2, project="sdkapp", irom_size=irom_size))


def switch(path: str, slot: int) -> None:
    flash = NorFlash(path, MB4)
    assert apply_protected_save(flash, switch_slot_writes(state(path, LAYOUT), slot, LAYOUT))
    flash.close()


def test_fresh_board_before_and_after_its_first_boot(tmp_path):
    u1, _ = user_bins()
    path = baseline(tmp_path, u1)
    k = read_sdk_state(FlashFile(path))
    assert (k.map_code, k.map_name, k.loader, k.loader_version) == (4, "32Mbit(512KB+512KB)", "1.7(5d6f877)", 7)
    assert not k.params.valid and k.next_slot == 1  # blank parameters: the loader initialises them, user1
    assert boot(path)[0] == "app"
    st = read_boot_state(FlashFile(path), "esp8266")
    k = st.sdk
    assert (k.flag, k.current_copy) == (0, 0)
    p = k.params
    assert (p.address, p.usr_bin, p.boot_status, p.version, p.valid) == (LAYOUT.params[0], 0, 1, 7, True)
    s1, s2 = k.slots[1], k.slots[2]
    assert (s1.header_slot, s1.linked_slot, s1.project, s1.version) == (1, 1, "sdkapp", "1.0.0")
    assert s1.magic_ok and s1.inner_magic == 0xE9 and s1.checksum_ok and s1.crc_ok and s1.length == len(u1)
    assert not s2.magic_ok and not s2.bootable and s2.version == ""
    assert (k.chosen_slot, k.next_slot, k.running_slot) == (1, 1, 1)
    assert k.slot_versions == {1: "1.0.0", 2: None}
    assert (st.boot_slot, st.boot_version) == ("user1", "1.0.0")
    assert "sdk: boot_v1 1.7(5d6f877)" in st.summary()


def test_switched_board_and_the_fallback_agree_with_the_model(tmp_path):
    u1, u2 = user_bins()
    path = baseline(tmp_path, u1, bad_magic(u2))
    boot(path)
    switch(path, 2)
    k = read_sdk_state(FlashFile(path))
    assert (k.current_copy, k.params.usr_bin, k.params.boot_status) == (1, 1, 1)
    s2 = k.slots[2]
    assert s2.inner_magic == 0x9E and not s2.magic_ok and s2.crc_ok  # passes the CRC, fails the loader
    assert s2.header_slot == 2 and s2.version == "1.1.0"
    assert (k.chosen_slot, k.next_slot) == (2, 1)
    # the virtual board does what the oracle said
    boot(path)
    code, _text, _e, ctx = boot(path)
    assert code == "app" and ctx.sdk.slot == 1
    k = read_sdk_state(FlashFile(path))
    assert (k.params.boot_status, k.chosen_slot, k.next_slot) == (0, 1, 1)


def test_good_switch_and_known_bins(tmp_path):
    u1, u2 = user_bins(irom_size=0x10000)
    path = baseline(tmp_path, u1, u2)
    boot(path)
    switch(path, 2)
    plain = read_boot_state(FlashFile(path), "esp8266")
    assert plain.sdk.next_slot == 2 and plain.boot_version == "1.1.0"
    assert plain.sdk.slot_versions == {1: "1.0.0", 2: "1.1.0"}

    class Counting(FlashFile):
        reads = 0

        def read(self, address, size):
            Counting.reads += size
            return super().read(address, size)

        def md5(self, address, size):  # a bench computes it on the chip: nothing crosses the wire
            return hashlib.md5(FlashFile.read(self, address, size)).hexdigest()

    known = read_boot_state(Counting(path), "esp8266", known=[u1, u2, bad_crc(u2)])
    assert known.sdk == plain.sdk
    assert Counting.reads < len(u1) + len(u2)  # judged from the known bins, not read back whole


def test_a_bad_crc_bin_still_boots_but_is_reported(tmp_path):
    u1, u2 = user_bins()
    path = baseline(tmp_path, u1, bad_crc(u2))
    boot(path)
    switch(path, 2)
    st = read_boot_state(FlashFile(path), "esp8266")
    s2 = st.sdk.slots[2]
    assert s2.bootable and not s2.crc_ok and "CRC" in s2.reason
    assert st.sdk.next_slot == 2 and not st.slots["user2"].valid


def test_both_bad_is_no_next_slot(tmp_path):
    u1, u2 = user_bins()
    path = baseline(tmp_path, bad_magic(u1), bad_magic(u2))
    k = read_sdk_state(FlashFile(path))
    assert (k.chosen_slot, k.next_slot) == (1, None)
    st = read_boot_state(FlashFile(path), "esp8266")
    assert st.boot_slot is None and "backup boot failed" in st.summary()


@pytest.mark.parametrize("chip", ["esp8266"])
def test_micropython_flash_is_not_sdk_layout(tmp_path, chip):
    path = str(tmp_path / "mpy.bin")
    with open(path, "wb") as f:
        f.write(b"\xff" * MB4)
        for part in micropython_baseline(chip):
            f.seek(part.offset)
            f.write(part.data)
    st = read_boot_state(FlashFile(path), chip)
    assert st.sdk is None and st.slots == {} and st.boot_slot is None


@pytest.mark.parametrize("map_code,size", [(0, 512 * 1024), (2, 1024 * 1024), (6, MB4)])
def test_other_maps(tmp_path, map_code, size):
    layout = FotaLayout.for_map_code(map_code)
    u1 = build_user_bin(1, "2.0.0", map_code=map_code)
    u2 = build_user_bin(2, "2.1.0", map_code=map_code)
    path = baseline(tmp_path, u1, u2, map_code=map_code, size=size)
    assert boot(path, size)[0] == "app"
    flash = NorFlash(path, size)
    data = flash.read(0, size)
    st = decode_fota_state(data[layout.flag:layout.flag + 32], data[layout.params[0]:layout.params[0] + 32],
                           data[layout.params[1]:layout.params[1] + 32])
    assert apply_protected_save(flash, switch_slot_writes(st, 2, layout))
    flash.close()
    k = read_sdk_state(FlashFile(path))
    assert (k.map_code, k.current_copy, k.next_slot) == (map_code, 1, 2)
    assert k.slots[2].address == layout.user2 and k.slots[2].crc_ok and k.slot_versions == {1: "2.0.0", 2: "2.1.0"}
    code, _t, _e, ctx = boot(path, size)
    assert code == "app" and ctx.sdk.slot == 2
