"""Which scenario cases a rig gives: one per (board, device, update kind) where the device can do what the scenario
needs (no case, not a skip, where it cannot), ids that name the device, and a mutation run's device only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from test_plugin_scheduler import fake_idf_build  # tests/plugin is on sys.path (rootdir-relative imports)
from test_plugin_units import FakeConfig

from harness.devices import Capability
from harness.pytest_plugin import case_id, rig_cases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def rig(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_TEST_SSID", "bench")
    monkeypatch.setenv("HIL_TEST_KEY", "secret")
    fake_idf_build(tmp_path / "build")
    path = tmp_path / "rig.yaml"
    path.write_text(textwrap.dedent("""\
        host: 192.0.2.10
        wifi: {ssid_env: HIL_TEST_SSID, key_env: HIL_TEST_KEY}
        boards:
          - name: esp32-0
            chip: esp32
            virtual: true
            devices: [{kind: micropython, updates: [firmware, files]}, {kind: esp-idf}, {kind: esp-idf-anti-rollback}]
          - name: esp8266-0
            chip: esp8266
            virtual: true
          - name: devkit
            chip: esp32
            port: {path: /dev/hil-test-0}
            power: {kind: command, cmd_on: "true", cmd_off: "true"}
            device: idf-app
            build_dir: build
        """))
    return str(path)


ALL = [("esp32-0", "micropython", "firmware"), ("esp32-0", "micropython", "files"), ("esp32-0", "esp-idf", "firmware"),
       ("esp32-0", "esp-idf-anti-rollback", "firmware"), ("esp8266-0", "micropython", "files"),
       ("devkit", "idf-app", "firmware")]


def test_every_board_device_and_update_kind(rig):
    assert rig_cases(FakeConfig(["scenarios"], rig=rig)) == ALL
    assert case_id("esp32-0", "esp-idf", "firmware") == "esp32-0-esp-idf-firmware"


def test_only_devices_that_can_do_what_the_scenario_needs(rig):
    config = FakeConfig(["scenarios"], rig=rig)
    digest = rig_cases(config, needs=(Capability.ANNOUNCES_DIGEST,))
    assert digest == [c for c in ALL if c[1] != "idf-app"]  # a plain image URL announces no digest
    assert rig_cases(config, needs=(Capability.HEALTH_ROLLBACK,)) == digest
    assert rig_cases(config, needs=(Capability.REFUSES_SAME_VERSION,)) == ALL
    assert rig_cases(config, kinds=("files",)) == [c for c in ALL if c[2] == "files"]
    # only the client built with anti-rollback has it
    assert rig_cases(config, needs=(Capability.ANTI_ROLLBACK,)) == [("esp32-0", "esp-idf-anti-rollback", "firmware")]


def test_a_mutation_run_has_the_cases_of_its_device_only(rig):
    assert rig_cases(FakeConfig(["scenarios"], rig=rig, mutation="skip-diagnostics")) == [
        ("esp32-0", "esp-idf", "firmware")]
    assert rig_cases(FakeConfig(["scenarios"], rig=rig, mutation="skip-secure-version-check")) == [
        ("esp32-0", "esp-idf-anti-rollback", "firmware")]
    assert rig_cases(FakeConfig(["scenarios"], rig=rig, mutation="files-write-in-place")) == [
        c for c in ALL if c[1] == "micropython"]
    assert rig_cases(FakeConfig(["scenarios"], rig=rig, boards=["devkit"], mutation="no-version-check")) == []


def test_the_scenarios_collect_one_case_per_applicable_triple(rig, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "--rig", rig, "--collect-only", "-q",
                           "-p", "no:cacheprovider", "-o", "addopts=", "--no-alluredir"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = sorted(line.split("::", 1)[1] for line in proc.stdout.splitlines() if "::" in line)
    expected = []
    # (test, its own parameters, whether it needs what only the project's clients do, firmware only)
    for test, params, project_clients_only, firmware_only in (
            ("test_bad_hash_is_refused", [""], True, False),
            ("test_power_loss_mid_write", [""], False, False),
            ("test_same_version_is_refused_before_any_write", [""], False, False),
            ("test_unconfirmed_update_rolls_back", [""], True, False),
            ("test_invalid_image_is_refused", ["-truncated", "-truncated_header", "-random", "-wrong_chip"], False,
             True),
            ("test_the_update_is_taken_whatever_its_transfer", ["-chunked", "-redirect"], False, False),
            ("test_server_with_a_wrong_certificate_is_refused", [""], True, False)):
        for case in ALL:
            if project_clients_only and case[1] == "idf-app" or firmware_only and case[2] != "firmware":
                continue
            expected += [f"{test}[{case_id(*case)}{param}]" for param in params]
    expected += ["test_lower_secure_version_is_refused_before_any_write[esp32-0-esp-idf-anti-rollback-firmware]"]
    assert ids == sorted(expected)
    assert "skipped" not in proc.stdout


def test_an_unknown_capability_is_a_usage_error(tmp_path):
    (tmp_path / "test_x.py").write_text("import pytest\n\n@pytest.mark.needs('telepathy')\n"
                                        "def test_x(ota_target):\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_x.py"), "--rig", "emu",
                           "--collect-only", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--no-alluredir",
                           "--rootdir", ROOT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown capability 'telepathy' in @pytest.mark.needs" in proc.stdout + proc.stderr
