"""The MicroPython agent as a device implementation, without a board: its console lines, versions, what it publishes."""

from __future__ import annotations

import json
import urllib.request

import pytest
from idf_fakes import PaperBench, paper_board

from harness.console import OtaEvent
from harness.devices import Capability, DeviceError, MicroPythonDevice, parse_ota_line
from harness.devices.micropython import AgentEvents
from harness.rig import DeviceSpec
from harness.servers import HttpServer


def test_the_agent_s_lines():
    assert parse_ota_line("OTA refused kind=firmware reason=same-version version=v1.27.0") == (
        "refused", {"kind": "firmware", "reason": "same-version", "version": "v1.27.0"})
    assert parse_ota_line("OTA reboot") == ("reboot", {})
    assert parse_ota_line("I (30) ota_client: Running firmware version: 1") is None
    assert parse_ota_line(">>> OTA ready") is None
    assert [(i, n) for i, n, _f in AgentEvents().parse_lines(["x", "OTA ready app=1", "OTA bogus line here"])] == [
        (1, "ready")]


@pytest.fixture
def device():
    """The agent on an ESP32 of paper, with the built-in MicroPython baseline."""
    with HttpServer(name="http") as http:
        d = MicroPythonDevice(DeviceSpec("micropython", ["firmware", "files"], "micropython"), paper_board(),
                              PaperBench(http))
        d.take_board()
        yield d


def test_capabilities_and_rollback_state():
    assert set(MicroPythonDevice.capabilities) == set(Capability.ALL)
    assert MicroPythonDevice.rolled_back_state == "ABORTED"


def test_versions_of_the_baseline_and_of_a_ready_line(device):
    assert device.baseline_versions() == {"firmware": "v1.27.0", "files": "1", "app": "1"}
    ((_i, _name, fields),) = AgentEvents().parse_lines(["OTA ready app=1 chip=esp32 files=1 firmware=v1.27.1 slot=a"])
    ready = OtaEvent("ready", fields, 0)
    assert device.running_version(ready, "firmware") == "v1.27.1"
    assert device.running_version(ready, "files") == "1"
    assert device.running_versions(ready) == {"firmware": "v1.27.1", "files": "1", "app": "1"}
    assert device.board.update_slot().label == "ota_1"


def test_the_update_is_a_manifest(device):
    pub = device.publish("firmware", "next", "/esp32-0/micropython/firmware/1")
    with urllib.request.urlopen(pub.url, timeout=5) as answer:
        manifest = json.loads(answer.read())
    assert manifest["version"] == pub.version == "v1.27.1" and manifest["url"] == "fw.bin"
    files = device.publish("files", "tampered", "/esp32-0/micropython/files/2")
    with urllib.request.urlopen(files.url, timeout=5) as answer:
        manifest = json.loads(answer.read())
    assert manifest["version"] == "2" and [f["name"] for f in manifest["files"]] == ["app.py", "assets/data.bin"]
    with pytest.raises(DeviceError, match="no files variant 'wrong_chip'"):
        device.publish("files", "wrong_chip", "/x")
