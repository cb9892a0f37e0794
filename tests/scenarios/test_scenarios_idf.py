"""The scenarios on the ESP-IDF devices of a virtual ESP32: the project's C client (``esp-idf``, host-built by the
harness) and "your own ESP-IDF firmware" (``idf-app``) driven with the C client's build directory.

Every case the devices' capabilities allow must pass: for the client all four scenarios, for the
idf-app (a plain image URL: no digest; its health check is its own business) power loss and same
version. They run once the virtual board can run a host-built client (``harness/emu/runtime_idf.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _host_runtime() -> None:
    for module in ("harness.emu.idf.build", "harness.emu.runtime_idf"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not there yet: a virtual board cannot run the ESP-IDF client")


def test_every_applicable_scenario_passes_on_the_client_and_on_an_idf_app(tmp_path):
    _host_runtime()
    from harness.emu.idf.build import build_app

    rig = tmp_path / "emu-idf.yaml"
    rig.write_text("host: 127.0.0.1\nboards:\n"
                   "  - {name: esp32-0, chip: esp32, virtual: true, devices: [{kind: esp-idf}]}\n"
                   f"  - {{name: esp32-1, chip: esp32, virtual: true, device: idf-app, "
                   f"build_dir: '{build_app().build_dir}'}}\n")
    cmd = [sys.executable, "-m", "pytest", "scenarios", "--rig", str(rig), "-n", "2", "-p", "no:cacheprovider",
           "-o", "addopts=", "--basetemp", str(tmp_path / "run"), "--alluredir", str(tmp_path / "allure"),
           "--hil-logs", str(tmp_path / "logs")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=840)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    cases = {}
    for path in (tmp_path / "allure").glob("*-result.json"):
        result = json.loads(path.read_text())
        params = {p["name"]: p["value"] for p in result["parameters"]}
        cases[(result["fullName"].rsplit("#", 1)[-1], params["board"], params["device"])] = result["status"]
    assert set(cases.values()) == {"passed"}
    assert sorted(cases) == sorted(
        [(t, "esp32-0", "esp-idf") for t in ("test_bad_hash_is_refused", "test_power_loss_mid_write",
                                             "test_same_version_is_refused_before_any_write",
                                             "test_unconfirmed_update_rolls_back")]
        + [(t, "esp32-1", "idf-app") for t in ("test_power_loss_mid_write",
                                               "test_same_version_is_refused_before_any_write")])
