"""benchmarks/power_cut_sweep.py: one-line argument errors, and a failing cut reproduced from its printed line."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "benchmarks/power_cut_sweep.py"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--policies", "none,nope"], "argument --policies: unknown tear policy nope (known: none, prefix, random)"),
    (["--sample", "-1"], "argument --sample: expected 0 or more, got -1"),
    (["--cut", "0"], "argument --cut: expected at least 1, got 0"),
    (["--policy", "prefix"], "--policy goes with --cut N"),
    (["--cut", "3", "--policy", "none,prefix"], "--policy takes one tear policy, got none,prefix"),
    (["--board", "nope"], "rigs/emu.yaml: no board named 'nope' (boards: esp32-0, esp8266-0)"),
    (["--device", "esp-idf", "--kind", "files"], "rig emu: no board runs device esp-idf with update kind files"),
    (["--device", "esp-idf", "--mutation", "files-state-not-atomic"],
     "mutation files-state-not-atomic belongs to micropython, which no selected board runs"),
    (["--state", "x.json"], "--bench-cut and --state go with --bench"),
    (["--bench", "--cut", "3"], "--cut and --alluredir are of the flash-operation sweep, not of --bench"),
    (["--bench", "--bench-cut", "boot+1"],
     "argument --bench-cut: bench cut 'boot+1': unknown console event 'boot' (known: switch, ready, confirmed)"),
    (["--bench", "--max-cuts", "-2"], "argument --max-cuts: expected 0 or more, got -2"),
])
def test_argument_errors_are_one_line_and_exit_2(args, message):
    proc = run(SCRIPT, *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"power_cut_sweep: {message}" and not proc.stdout


def test_an_unknown_mutation_is_one_line_too():
    proc = run(SCRIPT, "--mutation", "nope")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("power_cut_sweep: unknown mutation 'nope' (known: micropython: ")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_failing_cut_is_reproduced_from_its_printed_line(tmp_path):
    # the mutated agent's file update on the virtual ESP8266, cut while it commits its slot record (the last
    # operations of the update: see tests/sweep/test_system_sweep.py)
    mutation = "files-state-not-atomic"
    probe = run(SCRIPT, "--board", "esp8266-0", "--kind", "files", "--mutation", mutation, "--policies", "none",
                "--cut", "1", "--policy", "none", "--json", timeout=300)
    assert probe.returncode in (0, 1), probe.stderr
    operations = json.loads(probe.stdout)["results"][0]["recording"]["operations"]
    cuts = [arg for n in range(operations - 9, operations + 1) for arg in ("--cut", str(n))]
    allure = tmp_path / "allure"
    sweep = run(SCRIPT, "--board", "esp8266-0", "--kind", "files", "--mutation", mutation, *cuts,
                "--policy", "none", "--alluredir", str(allure), timeout=600)
    assert sweep.returncode == 1, sweep.stdout + sweep.stderr
    lines = sweep.stdout.splitlines()
    assert any(line.startswith("  esp8266-0 micropython files: system level: ") and " cuts recovered " in line
               for line in lines), sweep.stdout
    failed = [line for line in lines if line.startswith("  FAILED cut ")]
    commands = [line.split("reproduce: ", 1)[1] for line in lines if line.startswith("    reproduce: ")]
    assert failed and len(commands) == len(failed), sweep.stdout
    first = failed[0].split()[2]
    outcome = failed[0].split("): ", 1)[1].split(":")[0]
    # the Allure case of the sweep: failed, with every reproduce line in its message and its table and plot
    (result_file,) = allure.glob("*-result.json")
    case = json.loads(result_file.read_text())
    assert case["name"] == "power-cut sweep esp8266-0 micropython files" and case["status"] == "failed"
    assert all(f"reproduce: {command}" in case["statusDetails"]["message"] for command in commands)
    kinds = {a["name"]: a for a in case["attachments"]}
    assert kinds["cuts"]["type"] == "text/html" and kinds["cut point against outcome"]["type"] == "image/svg+xml"
    assert (allure / kinds["cuts"]["source"]).read_text().count('<tr class="fail">') == len(failed)
    command = shlex.split(commands[0])
    assert command[:2] == [".venv/bin/python", SCRIPT]
    assert command[command.index("--cut") + 1] == first and command.count("--cut") == 1
    assert command[command.index("--mutation") + 1] == mutation
    again = run(*command[1:], "--json", timeout=300)
    assert again.returncode == 1, again.stderr
    figures = json.loads(again.stdout)["results"]
    assert len(figures) == 1 and figures[0]["cuts"] == 1
    (result,) = figures[0]["results"]
    assert (str(result["cut"]), result["policy"], result["outcome"]) == (first, "none", outcome)
    assert figures[0]["reproduce"] == [commands[0]]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_bench_sweep_goes_on_where_the_last_run_stopped(tmp_path):
    # the virtual boards behind the virtual LCUS relay: cuts through the real relay driver
    state = tmp_path / "state.json"
    args = [SCRIPT, "--bench", "--rig", "emu-lcus", "--board", "esp32-0", "--device", "esp-idf", "--spread", "1",
            "--state", str(state), "--json"]
    first = run(*args, "--max-cuts", "2", timeout=300)
    assert first.returncode == 0, first.stderr
    (fig,) = json.loads(first.stdout)["results"]
    assert fig["made"] == 2 and fig["cuts"] == 2 and fig["recovered"] == 2
    planned = fig["planned"]
    assert planned[:2] == [r["name"] for r in fig["results"]] and fig["remaining"] == planned[2:]
    second = run(*args, "--max-cuts", "1", timeout=300)
    (fig,) = json.loads(second.stdout)["results"]
    assert fig["made"] == 1 and [r["name"] for r in fig["results"]] == planned[:3], second.stderr
    assert set(json.loads(state.read_text())["cuts"]["esp32-0/esp-idf/firmware/next"]) == set(planned[:3])
