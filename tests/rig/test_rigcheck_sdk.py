"""hil rig check on an ESP8266 in the SDK's FOTA layout: boot_v1.x at 0x0 names the flash map, user1 must be a whole
user bin linked for user1 that fits its slot; each problem names the file and the offset."""

from harness.esp import esp8266_image as sdk
from harness.rigcheck import BaselineImage, baseline_problems

MB4 = 4 * 1024 * 1024


def parts(user1: bytes, map_code: int = 4) -> list[BaselineImage]:
    return [BaselineImage(p.offset, p.data, p.name) for p in sdk.sdk_baseline("4MB", map_code, user1)]


def test_a_good_sdk_baseline_is_described():
    problems, notes = baseline_problems("esp8266", MB4, parts(sdk.build_user_bin(1, "2.3.4", project="fw")))
    assert problems == []
    assert notes[0] == "boot_v1.x 1.7(5d6f877) at 0x0, map 32Mbit(512KB+512KB)"
    assert notes[1].startswith("fw 2.3.4 in user1 at 0x1000 (0x")


def test_a_user2_build_at_user1_is_named():
    problems, _ = baseline_problems("esp8266", MB4, parts(sdk.build_user_bin(2, "1.0.0")))
    assert problems == ["user1.bin: user1 at 0x1000 is linked for user2 (header byte 3), not user1"]


def test_a_bin_whose_crc_fails_is_named():
    problems, _ = baseline_problems("esp8266", MB4, parts(sdk.bad_crc(sdk.build_user_bin(1, "1.0.0"))))
    assert len(problems) == 1 and problems[0].startswith("user1.bin: user1 at 0x1000: upgrade crc check failed")


def test_something_else_at_user1_is_named():
    page = b"<!DOCTYPE html><html>" + bytes(100)
    problems, _ = baseline_problems("esp8266", MB4, parts(page))
    assert problems == ["user1.bin: user1 at 0x1000 (starts with '<!DOCTYPE'...) is not an SDK user bin "
                        "(gen_appbin boot mode 2)"]


def test_a_map_larger_than_the_flash_is_named():
    problems, _ = baseline_problems("esp8266", 1024 * 1024, parts(sdk.build_user_bin(1, "1.0.0")))
    assert problems == ["boot.bin: boot_v1.x at 0x0 has the 32Mbit(512KB+512KB) map, which needs 4MB of flash, "
                        "not 1MB"]


def test_a_build_directory_without_user_bins_is_named(tmp_path):
    from harness.rig import BoardSpec, DeviceSpec, build_dir_problems

    (tmp_path / "user1.4096.new.4.bin").write_bytes(sdk.build_user_bin(1, "1.0.0"))
    device = DeviceSpec("esp8266-sdk", ["firmware"], build_dir=tmp_path, key="boards[0].devices[0]",
                        build_dir_line=7)
    board = BoardSpec("b", "esp8266", MB4, False, None, None, [device], 460800, 15.0, 3)
    assert build_dir_problems(board, device) == [
        (7, "boards[0].devices[0].build_dir", f"no user2.*.bin in {tmp_path} (the SDK's make with BOOT=new APP=1 "
                                              "and APP=2 writes bin/upgrade/user1.*.bin and user2.*.bin)")]
    (tmp_path / "user2.4096.new.4.bin").write_bytes(sdk.build_user_bin(2, "1.0.0"))
    assert build_dir_problems(board, device) == []


def test_a_bench_sdk_device_needs_its_baseline(tmp_path):
    import pytest

    from harness.rig import RigError, load_rig

    rig = tmp_path / "rig.yaml"
    rig.write_text("host: 192.0.2.1\nwifi: {ssid_env: S, key_env: K}\nboards:\n  - name: b\n    chip: esp8266\n"
                   "    port: {path: /dev/null}\n    power: {kind: command, cmd_on: 'true', cmd_off: 'true'}\n"
                   "    devices:\n      - {kind: esp8266-sdk, build_dir: sdk}\n")
    with pytest.raises(RigError) as caught:
        load_rig(str(rig), check_files=False)
    assert str(caught.value) == (f"{rig}:9: boards[0].devices[0].baseline: missing (boot_v1.7.bin at 0x0, user1 at "
                                 "0x1000, esp_init_data_default and blank.bin: a list of {offset, file})")
