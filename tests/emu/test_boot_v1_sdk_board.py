"""A real virtual ESP8266 (``python -m harness.emu``) in SDK layout: the ROM, boot_v1.x's text, the fallback
with its watchdog reset, and power cuts during the first boot's parameter save."""

from __future__ import annotations

import time

import pytest

from harness.emu.flash import TEAR_POLICIES
from harness.esp.esp8266_image import (
    FotaLayout,
    bad_magic,
    build_user_bin,
    initial_fota_sectors,
    sdk_baseline,
)

pytestmark = pytest.mark.timeout(120)

MB4 = 4 * 1024 * 1024
LAYOUT = FotaLayout.for_map_code(4)
SPEC_TEXT = ("2nd boot version : 1.7(5d6f877)\r\nSPI Speed : 40MHz\r\nSPI Mode : QIO\r\n"
             "SPI Flash Size & Map: 32Mbit(512KB+512KB)\r\njump to run user1 @ 1000\r\n")


def write_flash(path: str, parts) -> None:
    with open(path, "wb") as f:
        f.write(b"\xff" * MB4)
        for offset, data in parts:
            f.seek(offset)
            f.write(data)


def sdk_flash(tmp_path, name: str, *, user2: bytes | None = None, params_slot: int | None = None) -> str:
    user1 = build_user_bin(1, "1.0.0", project="sdkapp")
    parts = [(p.offset, p.data) for p in sdk_baseline(MB4, 4, user1)]
    if user2 is not None:
        parts.append((LAYOUT.user2, user2))
    if params_slot is not None:
        parts += list(initial_fota_sectors(params_slot, LAYOUT).items())
    path = str(tmp_path / f"{name}.bin")
    write_flash(path, parts)
    return path


def console(board_name: str, tmp_path) -> str:
    return open(tmp_path / f"{board_name}.console", "rb").read().decode(errors="replace")


def test_sdk_layout_boots_user1_with_the_spec_text(start_board, tmp_path):
    board = start_board("esp8266", flash_file=sdk_flash(tmp_path, "first"), name="first")
    e = board.control.wait_event("boot", result="app", timeout=20)
    assert (e["loader"], e["slot"], e["offset"], e["project"], e["version"]) == ("boot_v1", 1, 0x1000, "sdkapp",
                                                                                "1.0.0")
    text = console("first", tmp_path)
    assert "ets Jan  8 2013,rst cause:1, boot mode:(3,6)" in text
    assert SPEC_TEXT in text


def test_bad_magic_in_user2_falls_back_to_user1(start_board, tmp_path):
    user2 = bad_magic(build_user_bin(2, "1.1.0", project="sdkapp"))
    path = sdk_flash(tmp_path, "fallback", user2=user2, params_slot=2)
    board = start_board("esp8266", flash_file=path, name="fallback")
    board.control.wait_event("boot", result="fallback", slot=2, timeout=20)
    e = board.control.wait_event("boot", result="app", timeout=20)
    assert e["slot"] == 1 and e["cause"] == "watchdog"
    text = console("fallback", tmp_path)
    assert ("jump to run user2 @ 81000\r\n\r\nerror magic!\r\nfirst boot failed, reboot to try backup bin\r\n"
            in text)
    assert text.index("rst cause:4") > text.index("first boot failed")
    assert "jump to run user1 @ 1000" in text[text.index("rst cause:4"):]


def test_both_bins_bad_is_backup_boot_failed(start_board, tmp_path):
    user2 = bad_magic(build_user_bin(2, "1.1.0"))
    path = sdk_flash(tmp_path, "bothbad", user2=user2, params_slot=2)
    with open(path, "r+b") as f:
        f.seek(LAYOUT.user1)
        f.write(b"\xff" * 0x1000)
    board = start_board("esp8266", flash_file=path, name="bothbad")
    board.control.wait_event("boot", result="no-app", timeout=20)
    assert "jump to run user1 @ 1000\r\n\r\nerror magic!\r\nbackup boot failed.\r\n" in console("bothbad", tmp_path)
    time.sleep(0.3)
    assert not [e for e in board.control.events() if e["event"] == "boot" and e.get("result") == "app"]


@pytest.mark.parametrize("policy", TEAR_POLICIES)
def test_power_cut_during_the_first_boot_save_leaves_a_bootable_board(start_board, tmp_path, policy):
    """Cut the board at each flash operation of the loader's first parameter save, then power it on."""
    for k in range(1, 5):
        name = f"cut-{policy}-{k}"
        board = start_board("esp8266", flash_file=sdk_flash(tmp_path, name), name=name, power_off=True)
        board.control.arm_cut(after_ops=k, policy=policy, seed=k)
        board.control.power(True)
        cut = board.control.wait_event("cut", timeout=20)
        assert cut["addr"] in (LAYOUT.params[0], LAYOUT.flag), cut
        off = board.control.wait_event("power", on=False, timeout=20)  # the board noticed it is off
        board.control.power(True)
        e = board.control.wait_event("boot", since=off["seq"], result="app", timeout=20)
        assert e["slot"] == 1, (policy, k)
        board.stop()
