"""The labgrid farm's parts that need no coordinator: the rig file's keys, job names, the run's pool."""

from __future__ import annotations

import pytest

from harness.farm.job import held_by_job, worker_user
from harness.farm.provider import STRIKES, RunPool
from harness.rig import RigError, load_rig

HEAD = """\
host: auto
wifi: {ssid_env: S, key_env: K}
labgrid: {coordinator: farm.lan, wait: 30}
boards:
"""
BOARD = """\
  - name: esp32
    chip: esp32
    devices: [{kind: esp-idf, build_dir: .}]
"""


def _load(tmp_path, text):
    path = tmp_path / "farm.yaml"
    path.write_text(text)
    return load_rig(str(path), check_files=False)


def test_labgrid_rig_boards_by_tags_and_by_place(tmp_path, monkeypatch):
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    rig = _load(tmp_path, HEAD + BOARD + "    tags: {pool: ota, flash: 4MB}\n" + BOARD.replace("esp32\n", "one\n", 1)
                + "    place: bench-3\n")
    assert rig.labgrid.address == "farm.lan:20408" and rig.labgrid.wait == 30
    by_tags, by_place = rig.boards
    # the board's chip is always a tag of the filter, so a pool never gives an ESP8266 to an ESP32 board
    assert by_tags.farm.filters() == {"pool": "ota", "flash": "4MB", "chip": "esp32"}
    assert by_place.farm.filters() == {"name": "bench-3"}
    assert by_tags.port is None and by_tags.power is None and not by_tags.virtual
    monkeypatch.setenv("LG_COORDINATOR", "10.0.0.5:1234")
    assert rig.labgrid.address == "10.0.0.5:1234"


@pytest.mark.parametrize(("text", "message"), [
    (HEAD + BOARD + "    tags: {pool: ota}\n    place: x\n", "farm.yaml:8: boards[0].tags: not next to place:"),
    (HEAD + BOARD + "    tags: {chip: esp8266}\n",
     "farm.yaml:8: boards[0].tags.chip: 'esp8266' is not the board's chip"),
    (HEAD + BOARD + "    tags: {Pool: ota}\n", "farm.yaml:8: boards[0].tags.Pool: not a labgrid tag name"),
    (HEAD + BOARD + "    tags: {}\n", "farm.yaml:8: boards[0].tags: expected a mapping of labgrid tags"),
    (HEAD + BOARD + "    place: x\n    port: {path: /dev/ttyUSB0}\n",
     "farm.yaml:9: boards[0].port: not for a board of the labgrid farm"),
    (HEAD.replace("labgrid: {coordinator: farm.lan, wait: 30}\n", "") + BOARD + "    place: x\n",
     "farm.yaml:4: labgrid: missing: board esp32 is a labgrid place"),
    (HEAD.replace("wait: 30", "wait: 0") + BOARD + "    place: x\n",
     "farm.yaml:3: labgrid.wait: expected a number of seconds > 0, got 0"),
    (HEAD.replace("farm.lan", "'farm lan:1'") + BOARD + "    place: x\n",
     "farm.yaml:3: labgrid.coordinator: expected the labgrid coordinator's address"),
])
def test_labgrid_rig_mistakes_are_one_line(tmp_path, text, message):
    with pytest.raises(RigError) as e:
        _load(tmp_path, text)
    assert str(e.value).split("/")[-1].startswith(message), str(e.value)


def test_labgrid_job_names_every_process_of_a_job(monkeypatch):
    monkeypatch.setenv("HIL_FARM_JOB", "ci-4711")
    monkeypatch.setenv("HIL_FARM_WORKER", "gw3")
    monkeypatch.delenv("LG_USERNAME", raising=False)
    assert worker_user() == "ci-4711-gw3"
    import os

    assert os.environ["LG_USERNAME"] == "ci-4711-gw3"
    assert held_by_job("runner/ci-4711-gw3", "ci-4711") and held_by_job("ci-4711", "ci-4711")
    assert not held_by_job("runner/ci-47110-gw0", "ci-4711") and not held_by_job(None, "ci-4711")


def test_labgrid_pool_takes_a_place_out_after_two_failed_checks(tmp_path):
    pool, other_worker = RunPool(tmp_path), RunPool(tmp_path)
    assert STRIKES == 2
    assert not pool.failed("vb-1", "power switch does not answer", "job-gw0")
    assert other_worker.excluded() == {}
    assert other_worker.failed("vb-1", "serial port does not connect", "job-gw1")
    assert list(pool.excluded()) == ["vb-1"]
    assert "2 times, last: serial port does not connect" in pool.excluded()["vb-1"]


def test_labgrid_exporter_config_from_a_bench_rig():
    import yaml

    from harness.farm.cli import exporter_config

    text = exporter_config("bench1", [])
    config = yaml.safe_load(text)
    assert set(config) == {"esp32-devkitc", "esp8266-nodemcu"}
    assert config["esp32-devkitc"]["RawSerialPort"]["port"].startswith("/dev/serial/by-id/usb-Silicon_Labs")
    assert config["esp8266-nodemcu"]["USBSerialPort"]["match"] == {"ID_PATH": "*-usb-0:1-1.4"}
    # an LCUS relay has no labgrid model: the file says what to put in front of it
    assert "# esp32-devkitc: power lcus" in text and "model: rest" in text


def test_labgrid_release_needs_a_coordinator(capsys, monkeypatch):
    from harness.farm.cli import main

    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    assert main(["release", "--job", "ci-1"]) == 1
    assert capsys.readouterr().err.strip() == ("hil farm: which coordinator? give --coordinator HOST:PORT, "
                                               "LG_COORDINATOR or --rig NAME")
