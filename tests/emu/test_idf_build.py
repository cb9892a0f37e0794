"""The host build of ESP-IDF projects (harness.emu.idf.build): layout, image, sdkconfig, cache, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.emu.idf.build import (
    HOST_MAGIC,
    HostBuildError,
    build_app,
    find_host_payload,
    resolve_sdkconfig,
)
from harness.esp.app_image import parse_image, set_version, verify_image
from harness.esp.partition_table import PartitionTable

pytestmark = pytest.mark.timeout(300)

APPS = Path(__file__).with_name("idf_apps")
PROBE = APPS / "probe"
BROKEN = APPS / "broken"
ROOT = Path(__file__).resolve().parents[2]


def test_the_build_directory_is_laid_out_like_idf_py_s():
    b = build_app(PROBE)
    args = json.loads((b.build_dir / "flasher_args.json").read_text())
    assert args["flash_files"] == {"0x1000": "bootloader/bootloader.bin",
                                   "0x8000": "partition_table/partition-table.bin",
                                   "0xd000": "ota_data_initial.bin", "0x10000": "idf_probe.bin"}
    assert args["app"] == {"offset": "0x10000", "file": "idf_probe.bin", "encrypted": "false"}
    assert args["extra_esptool_args"]["chip"] == "esp32"
    assert args["flash_settings"] == {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"}
    for _offset, path in b.flash_files:
        assert path.is_file()
    assert (b.build_dir / "ota_data_initial.bin").read_bytes() == b"\xff" * 0x2000
    described = json.loads((b.build_dir / "project_description.json").read_text())
    assert (described["project_name"], described["app_bin"], described["target"]) == ("idf_probe", "idf_probe.bin",
                                                                                      "esp32")
    table = PartitionTable.from_bytes(b.partition_table_bin.read_bytes())
    assert [(p.label, p.offset, p.size) for p in table] == [
        ("nvs", 0x9000, 0x4000), ("otadata", 0xD000, 0x2000), ("phy_init", 0xF000, 0x1000),
        ("ota_0", 0x10000, 0x180000), ("ota_1", 0x190000, 0x180000)]
    sdkconfig = (b.build_dir / "sdkconfig").read_text()
    assert "CONFIG_ESP_MAIN_TASK_STACK_SIZE=8192" in sdkconfig and "# CONFIG_LOG_COLORS is not set" in sdkconfig
    assert '#define CONFIG_IDF_TARGET "esp32"' in (b.build_dir / "config" / "sdkconfig.h").read_text()


def test_the_image_is_a_valid_app_image_carrying_the_executable():
    b = build_app(PROBE)
    image = b.image
    check = verify_image(image, chip="esp32", partition_size=0x180000, address=0x10000)
    assert check.ok, check.reason
    desc = check.app_desc
    assert (desc.project_name, desc.version, desc.secure_version) == ("idf_probe", "0.1", 0)
    parsed = parse_image(image)
    exe = find_host_payload(parsed.segments)
    assert exe == b.app_elf.read_bytes() and exe[:4] == b"\x7fELF"
    assert desc.app_elf_sha256.hex() == b.elf_sha256
    assert any(seg.data[:8] == HOST_MAGIC and seg.addr == 0x400D0020 for seg in parsed.segments)
    # a re-stamped version keeps the executable; a damaged payload is no executable at all
    assert find_host_payload(parse_image(set_version(image, "7", secure_version=2)).segments) == exe
    seg = next(s for s in parsed.segments if s.data[:8] == HOST_MAGIC)
    damaged = bytearray(image)
    damaged[seg.data_offset + 100] ^= 1
    assert find_host_payload(parse_image(bytes(damaged)).segments) is None


def test_builds_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = build_app(PROBE, version="3")
    assert first.build_dir.parent == tmp_path / "esp-ota-hil" / "idf"
    t0 = time.monotonic()
    again = build_app(PROBE, version="3")
    assert again.build_dir == first.build_dir and time.monotonic() - t0 < 0.5
    other = build_app(PROBE, version="3", sdkconfig={"CONFIG_LOG_COLORS": True})
    assert other.build_dir != first.build_dir
    assert parse_image(first.image).app_desc.version == "3"
    assert "CONFIG_LOG_COLORS=y" in (other.build_dir / "sdkconfig").read_text()


def test_concurrent_builds_of_the_same_project_agree(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "harness.emu.idf.build", str(PROBE), "--version", "9"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    dirs = {out.split(": ", 1)[1].rsplit(" (", 1)[0] for out, _err in outs}
    assert len(dirs) == 1
    assert [p.name for p in (tmp_path / "esp-ota-hil" / "idf").iterdir()] == [Path(dirs.pop()).name]


def test_sdkconfig_layers_choices_and_dependencies():
    config = resolve_sdkconfig(PROBE, {"CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY": True, "LOG_DEFAULT_LEVEL_DEBUG": "y"})
    assert config["ESPTOOLPY_FLASHSIZE"] == "4MB" and not config["ESPTOOLPY_FLASHSIZE_2MB"]
    assert config["LOG_DEFAULT_LEVEL"] == 4 and config["LOG_MAXIMUM_LEVEL"] == 4
    assert config["PARTITION_TABLE_FILENAME"] == "partitions.csv"
    assert config["ESP_TLS_SKIP_SERVER_CERT_VERIFY"] is False  # depends on CONFIG_ESP_TLS_INSECURE
    insecure = resolve_sdkconfig(PROBE, {"ESP_TLS_INSECURE": True, "ESP_TLS_SKIP_SERVER_CERT_VERIFY": True})
    assert insecure["ESP_TLS_SKIP_SERVER_CERT_VERIFY"] is True


def test_the_ca_is_embedded_nul_terminated():
    pem = b"-----BEGIN CERTIFICATE-----\nTUlJ\n-----END CERTIFICATE-----\n"
    client_like = build_app(PROBE)
    assert pem + b"\0" not in client_like.app_elf.read_bytes()
    from harness.emu.idf.build import DEFAULT_PROJECT

    if not (DEFAULT_PROJECT / "main").is_dir():
        pytest.skip("no device_fw/esp_idf")
    with_ca = build_app(ca_pem=pem)
    assert pem + b"\0" in with_ca.app_elf.read_bytes()
    embedded = (with_ca.build_dir / "host" / "embedded_files.c").read_text()
    assert "_binary_ca_cert_pem_start" in embedded and "_binary_ca_cert_pem_end" in embedded


def test_a_compile_error_names_the_file_once():
    with pytest.raises(HostBuildError) as info:
        build_app(BROKEN)
    text = str(info.value)
    assert text.startswith("idf_broken: the host build failed in main/broken.c:")
    assert text.count("implicit declaration of function 'esp_no_such_function'") == 1


def test_the_command_line_builds_and_reports_errors(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "harness.emu.idf.build", str(BROKEN)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "error: idf_broken: the host build failed in main/broken.c" in proc.stderr
