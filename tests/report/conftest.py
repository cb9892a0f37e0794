"""A real pytest run with allure-pytest whose results the report tests read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import report

ROOT = Path(__file__).resolve().parents[2]

# Scenarios the way the harness's own ones use harness.report, with the three outcomes a
# report must tell apart: passed, failed on an assertion, broken by the infrastructure.
SCENARIOS = '''
from harness import report


class FlashingError(RuntimeError):
    pass


def test_steps(tmp_path):
    with report.step("flash slot ota_0"):
        report.attach_text("console", "rst:0x1 (POWERON_RESET)\\nOTA done, slot ota_0 \\u00e9")
        with report.step("verify"):
            report.attach_json("stats", {"erases": 3, "slot": "ota_0", "flash": tmp_path / "flash.bin"})
    log = tmp_path / "server.log"
    log.write_text('{"event": "get", "bytes": 4096}\\n')
    report.attach_file("server log", log)
    report.attach_file("board log", tmp_path / "never-written.log")


def test_serial_port_broken():
    with report.step("connect esptool"):
        raise FlashingError("serial port rfc2217://127.0.0.1:1 cannot be opened: connection refused")


def test_update_failed():
    with report.step("check the running slot"):
        assert "ota_0" == "ota_1", "slot ota_1 did not boot after the update"
'''


@dataclass
class AllureRun:
    results_dir: Path
    results: dict[str, dict]  # by test name
    output: str

    def attachment(self, node: dict, name: str) -> tuple[dict, str]:
        """The attachment called ``name`` of a test result or step, and its file's text."""
        [found] = [a for a in node.get("attachments", []) if a["name"] == name]
        return found, (self.results_dir / found["source"]).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def allure_run(tmp_path_factory) -> AllureRun:
    work = tmp_path_factory.mktemp("allure-run")
    (work / "test_scenarios.py").write_text(SCENARIOS, encoding="utf-8")
    results_dir = work / "allure-results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--alluredir", str(results_dir), "test_scenarios.py"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert "2 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    report.write_environment(results_dir, {"rig": "virtual-esp32"})
    report.write_categories(results_dir)
    results = {}
    for path in results_dir.glob("*-result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        results[result["name"]] = result
    return AllureRun(results_dir, results, proc.stdout)


# (status, message as allure-pytest records it, the category it belongs to)
CATEGORY_SAMPLES = [
    ("broken", "harness.flashing.FlashingError: serial port rfc2217://10.0.0.5:4000 cannot be opened: timed out",
     "Infrastructure: serial port"),
    ("broken", "harness.flashing.FlashingError: esptool on rfc2217://127.0.0.1:4000: sync failed: no answer",
     "Infrastructure: serial port"),
    ("broken", "harness.deploy.DeployError: mpremote on /dev/ttyUSB0: cp main.py : failed: OSError",
     "Infrastructure: serial port"),
    ("broken", "TimeoutError: console of dut1: 'OTA done' not seen within 60 s; last lines:\nrst:0x1\nboot: ota_0",
     "Infrastructure: serial port"),
    ("broken", "harness.power.base.PowerSwitchError: virtual power switch dut1: connection refused",
     "Infrastructure: power switch"),
    ("broken", "harness.power.base.PowerSwitchConfigError: kind 'relay9' is not known (known: hid, lcus)",
     "Infrastructure: power switch"),
    ("broken", "RuntimeError: cycling the Power switch of dut2 took 12 s", "Infrastructure: power switch"),
    ("broken", "RuntimeError: server http is not started", "Infrastructure: OTA server"),
    ("broken", "server mqtt-broker: cannot listen on 127.0.0.1:1883", "Infrastructure: OTA server"),
    ("broken", "OSError: [Errno 98] HttpServer http: address already in use", "Infrastructure: OTA server"),
    ("broken", "RuntimeError: MqttBroker stopped\nwhile the board was subscribed", "Infrastructure: OTA server"),
    ("broken", "TimeoutError: FotaServer fota: no request within 30 s", "Infrastructure: OTA server"),
    ("broken", "ConnectionError: virtual board tcp://127.0.0.1:40001 closed the control connection",
     "Infrastructure: virtual board"),
    ("broken", "harness.emu.launcher.BoardStartError: esp32-0 did not print its endpoints within 20 s",
     "Infrastructure: virtual board"),
    ("broken", "harness.rig.RigError: bench-2 has no 'port' for its console", "Infrastructure: rig file"),
    # a message that two categories describe goes to the first of them, in Allure 2 as in Allure 3
    ("broken", "harness.rig.RigError: bench-2: power switch kind 'relay9' is not known",
     "Infrastructure: power switch"),
    ("broken", "ValueError: rigs/bench.yaml:12: unknown key 'baud'", "Infrastructure: rig file"),
    ("broken", "rig/lab.yml:3: port must be a string", "Infrastructure: rig file"),
    ("failed", "AssertionError: slot ota_1 did not boot after the update\nassert 'ota_0' == 'ota_1'",
     "Product: OTA scenario failed"),
    # an assertion that mentions the infrastructure is still the product's failure
    ("failed", "AssertionError: the board answered on serial port /dev/ttyUSB0 with the old version",
     "Product: OTA scenario failed"),
    ("failed", "Failed: Timeout >300.0s", "Product: OTA scenario failed"),
    ("broken", "KeyError: 'slot'", "Harness errors"),
    ("broken", "ValueError: slot must be 1 or 2, not 3", "Harness errors"),
    # the infrastructure words, but not where the categories look for them
    ("broken", "ValueError: bad serial port URL 'com3'", "Harness errors"),
    ("broken", "RuntimeError: the server answered 500", "Harness errors"),
    ("broken", "TypeError: ConsoleError() takes no keyword arguments\nconsole of dut1", "Harness errors"),
    ("broken", "", "Harness errors"),
]


@pytest.fixture
def category_samples() -> list[tuple[str, str, str]]:
    return CATEGORY_SAMPLES
