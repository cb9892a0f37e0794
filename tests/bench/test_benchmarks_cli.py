"""The benchmark scripts: they start, say what they measure on what, and report progress as they go."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("script", BENCHMARKS)
def test_help(script):
    proc = run(f"benchmarks/{script}", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--json" in proc.stdout


def test_scenarios_reads_finished_cases_from_pytest_verbose_output():
    bench = load("scenarios")
    xdist = "[gw1] [ 25%] PASSED scenarios/test_bad_hash.py::test_bad_hash[esp32-0-firmware] "
    assert bench.finished_case(xdist) == ("scenarios/test_bad_hash.py::test_bad_hash[esp32-0-firmware]", "PASSED")
    plain = "scenarios/test_rollback.py::test_rollback[esp8266-0-files] FAILED                [ 50%]"
    assert bench.finished_case(plain) == ("scenarios/test_rollback.py::test_rollback[esp8266-0-files]", "FAILED")
    assert bench.finished_case("[gw0] linux Python 3.11.2 cwd: /work/main") is None
    assert bench.finished_case("scenarios/test_x.py::test_y[a] ") is None
    # the harness's own line per case, which the benchmark shows as cases finish
    line = "PASSED  esp32-0          micropython  firmware    11.8 s  test_power_loss_mid_write"
    assert bench._CASE_LINE.match(line).groups() == ("PASSED", "esp32-0", "micropython", "firmware", "11.8",
                                                     "test_power_loss_mid_write")
    assert bench._CASE_LINE.match("scenarios/test_x.py::test_y[a] PASSED") is None


def test_power_cycle_names_what_it_measures_on():
    bench = load("power_cycle")
    emulated = SimpleNamespace(virtual=True, power=None)
    by_hand = SimpleNamespace(virtual=False, power=SimpleNamespace(kind="virtual"))  # a virtual board behind a URL
    real = SimpleNamespace(virtual=False, power=SimpleNamespace(kind="lcus"))
    assert [bench.where(b) for b in (emulated, by_hand, real)] == ["virtual", "virtual", "real"]
    assert "of the emulator, not of a chip" in bench.header("emu-lcus", {"virtual"}, 5)
    assert "not of a chip" not in bench.header("bench1", {"real"}, 5)
    assert "not of a chip" in bench.header("mixed", {"virtual", "real"}, 5)


def test_power_cycle_rejects_bad_arguments_in_one_line():
    proc = run("benchmarks/power_cycle.py", "--cycles", "0")
    assert proc.returncode == 2 and "expected at least 1" in proc.stderr
    proc = run("benchmarks/power_cycle.py", "--board", "nope")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("power_cycle: rigs/emu-lcus.yaml: no board named 'nope' "
                                   "(boards: esp32-0, esp8266-0)")


@pytest.mark.slow
def test_power_cycle_json_keeps_progress_off_stdout():
    proc = run("benchmarks/power_cycle.py", "--board", "esp8266-0", "--cycles", "1", "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert list(figures) == ["esp8266-0"] and figures["esp8266-0"]["board"] == "virtual"
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("power_cycle: ") and "virtual boards (harness.emu)" in lines[0]
    assert any("cycle 1/1: power off -> OTA ready in" in line for line in lines)


def test_idf_update_pads_the_next_version_to_the_slot_and_keeps_it_valid():
    from harness.esp.app_image import build_app, parse_image, verify_image

    bench = load("idf_update")
    small = build_app("esp32", project="esp_ota_client", version="2", size=0x30000).to_bytes()
    image = bench.padded_image(small, 0x180000, 0x190000)
    assert 0x180000 - 16 < len(image) <= 0x180000
    check = verify_image(image, partition_size=0x180000, address=0x190000, require_app_desc=True)
    assert check.ok, check.reason
    assert check.app_desc.version == "2"
    parsed, before = parse_image(image), parse_image(small)
    assert len(parsed.segments) == len(before.segments) + 1
    for old, new in zip(before.segments, parsed.segments):  # the app's own segments are kept as they were
        assert (new.addr, small[old.data_offset:old.data_offset + old.length]) == \
            (old.addr, image[new.data_offset:new.data_offset + new.length])
    filler = parsed.segments[-1]
    assert 0x3F400000 <= filler.addr < filler.addr + filler.length <= 0x3F800000  # flash-mapped rodata


@pytest.mark.parametrize("args, message", [
    (["--updates", "0"], "idf_update: argument --updates: expected at least 1, got 0 (see --help)"),
    (["--updates", "many"], "idf_update: argument --updates: expected a whole number, got 'many' (see --help)"),
    (["--rig", "nope"], "idf_update: unknown rig 'nope' (rigs in rigs/: bench-sdk, bench1, emu, emu-lcus, farm; or "
                        "give the path of a rig file)"),
    (["--board", "nope"], "idf_update: rigs/emu.yaml: no board named 'nope' (boards: esp32-0, esp8266-0)"),
    (["--board", "esp8266-0"], "idf_update: board esp8266-0 is not a virtual board that runs both the esp-idf "
                               "client and the micropython agent with firmware updates"),
])
def test_idf_update_rejects_bad_arguments_in_one_line(args, message):
    proc = run("benchmarks/idf_update.py", *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(message), proc.stderr


@pytest.mark.slow
def test_idf_update_json_one_update_of_each_device():
    proc = run("benchmarks/idf_update.py", "--updates", "1", "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert (figures["rig"], figures["board"], figures["updates"]) == ("emu", "esp32-0", 1)
    size = figures["image_bytes"]
    assert 0x170000 <= size <= figures["slot_bytes"] == 0x180000  # about 1.5 MiB, fits ota_1
    for device in ("esp-idf", "micropython"):
        (r,) = figures[device]["runs"]
        assert figures[device]["image_bytes"] == r["image_bytes"] == size  # the same size through both
        assert 0 < r["switch_s"] <= r["ready_s"] <= r["confirmed_s"] < 120, r
        assert r["slot_holds_image"] and r["nor_violations"] == 0
        # the slot erased once, sector by sector, plus the otadata sector(s) of the switch and the confirmation
        assert r["erases_by_partition"]["ota_1"] == -(-size // 0x1000)
        assert set(r["erases_by_partition"]) == {"ota_1", "otadata"}
        assert r["erases"] == sum(r["erases_by_partition"].values()) and r["erased_bytes"] == r["erases"] * 0x1000
        assert size // 0x100 <= r["programs"] <= 2 * size // 0x100  # every page of the image, at most twice over
        assert r["ops"] == r["erases"] + r["programs"]
        assert figures[device]["median"] == {k: r[k] for k in figures[device]["median"]}
    assert set(figures["ratio"]) == {"switch_s", "ready_s", "confirmed_s", "ops", "erases", "programs"}
    assert all(v > 0 for v in figures["ratio"].values())
    assert figures["ratio"]["erases"] == 1.0
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("idf_update: a 1.5 MiB firmware update through the ESP-IDF OTA client")
    assert "not of a chip" in lines[0]
    assert any(line.startswith("  esp-idf     1/1: switch") for line in lines)
    assert any(line.startswith("  micropython 1/1: switch") for line in lines)
