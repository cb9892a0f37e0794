"""The scenarios on the ESP8266 SDK FOTA client given as a bench gives it: the SDK's build output (a build directory
with user1/user2 bins) and the baseline images a module is flashed with (boot image, user1, esp_init_data_default,
blank.bin), not the harness's own build, on a virtual ESP8266.

Every case the client's capabilities allow must pass: power loss, same version, the invalid images an SDK bin can
be (not another chip's: it has no chip id), and the SDK's own (bad CRC, truncated stream, other slot, too large,
loader fallback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_every_applicable_scenario_passes_on_the_sdk_client_from_its_build_files(tmp_path):
    from harness.devices.sdk import host_build
    from harness.esp import esp8266_image as sdk

    build = host_build()
    sdk_dir = tmp_path / "sdk"
    sdk_dir.mkdir()
    (sdk_dir / "user1.4096.new.4.bin").write_bytes(build.user1)
    (sdk_dir / "user2.4096.new.4.bin").write_bytes(build.user2)
    baseline = []
    for part in sdk.sdk_baseline("4MB", 4, build.user1):
        (sdk_dir / f"at-0x{part.offset:x}.bin").write_bytes(part.data)
        baseline.append(f"{{offset: 0x{part.offset:x}, file: sdk/at-0x{part.offset:x}.bin}}")
    rig = tmp_path / "emu-sdk.yaml"
    rig.write_text("host: 127.0.0.1\nboards:\n"
                   "  - name: esp8266-0\n    chip: esp8266\n    virtual: true\n    devices:\n"
                   f"      - {{kind: esp8266-sdk, build_dir: sdk, baseline: [{', '.join(baseline)}]}}\n")
    cmd = [sys.executable, "-m", "pytest", "scenarios", "--rig", str(rig), "-p", "no:cacheprovider",
           "-o", "addopts=", "--basetemp", str(tmp_path / "run"), "--alluredir", str(tmp_path / "allure"),
           "--hil-logs", str(tmp_path / "logs")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    cases = []
    for path in (tmp_path / "allure").glob("*-result.json"):
        result = json.loads(path.read_text())
        assert result["status"] == "passed", result["name"]
        params = {p["name"]: p["value"] for p in result["parameters"]}
        assert (params["board"], params["device"], params["update kind"]) == ("esp8266-0", "esp8266-sdk", "firmware")
        cases.append(result["fullName"].rsplit("#", 1)[-1])
    expected = {"test_power_loss_mid_write": 1, "test_same_version_is_refused_before_any_write": 1,
                "test_invalid_image_is_refused": 3, "test_bad_crc_is_refused": 1, "test_truncated_stream_is_refused": 1,
                "test_bin_linked_for_the_other_slot_is_refused": 1, "test_bin_larger_than_the_slot_is_refused": 1,
                "test_loader_falls_back_from_a_bin_that_is_no_image": 1}
    assert sorted(cases) == sorted(t for t, n in expected.items() for _ in range(n))
    assert "skipped" not in out.splitlines()[-1]
