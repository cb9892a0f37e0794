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
