"""The scenarios on the ESP-IDF devices of a virtual ESP32: the project's C client (``esp-idf``, host-built by the
harness), the same client built with anti-rollback (``esp-idf-anti-rollback``) and "your own ESP-IDF firmware"
(``idf-app``) driven with the C client's build directory.

Every case the devices' capabilities allow must pass: for the client every scenario (anti-rollback: for its
anti-rollback build), for the idf-app
(a plain image URL: no digest; its health check is its own business; the run's CA is not its CA)
power loss, same version, invalid images and the transfers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_every_applicable_scenario_passes_on_the_client_and_on_an_idf_app(tmp_path):
    from harness.emu.idf.build import build_app

    rig = tmp_path / "emu-idf.yaml"
    rig.write_text("host: 127.0.0.1\nboards:\n"
                   "  - {name: esp32-0, chip: esp32, virtual: true, devices: [{kind: esp-idf}, "
                   "{kind: esp-idf-anti-rollback}]}\n"
                   f"  - {{name: esp32-1, chip: esp32, virtual: true, device: idf-app, "
                   f"build_dir: '{build_app().build_dir}'}}\n")
    cmd = [sys.executable, "-m", "pytest", "scenarios", "--rig", str(rig), "-n", "2", "-p", "no:cacheprovider",
           "-o", "addopts=", "--basetemp", str(tmp_path / "run"), "--alluredir", str(tmp_path / "allure"),
           "--hil-logs", str(tmp_path / "logs")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=840)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    cases = []
    for path in (tmp_path / "allure").glob("*-result.json"):
        result = json.loads(path.read_text())
        params = {p["name"]: p["value"] for p in result["parameters"]}
        assert result["status"] == "passed", result["name"]
        cases.append((result["fullName"].rsplit("#", 1)[-1], params["board"], params["device"]))
    client = {"test_bad_hash_is_refused": 1, "test_power_loss_mid_write": 1,
              "test_same_version_is_refused_before_any_write": 1, "test_unconfirmed_update_rolls_back": 1,
              "test_invalid_image_is_refused": 4, "test_the_update_is_taken_whatever_its_transfer": 2,
              "test_server_with_a_wrong_certificate_is_refused": 1}
    app = {"test_power_loss_mid_write": 1, "test_same_version_is_refused_before_any_write": 1,
           "test_invalid_image_is_refused": 4, "test_the_update_is_taken_whatever_its_transfer": 2}
    # the client built with anti-rollback: every scenario the client passes, and the anti-rollback one
    secure = {**client, "test_lower_secure_version_is_refused_before_any_write": 1}
    expected = [(t, "esp32-0", "esp-idf") for t, n in client.items() for _ in range(n)] + \
        [(t, "esp32-0", "esp-idf-anti-rollback") for t, n in secure.items() for _ in range(n)] + \
        [(t, "esp32-1", "idf-app") for t, n in app.items() for _ in range(n)]
    assert sorted(cases) == sorted(expected)
