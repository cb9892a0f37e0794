"""Seconds per scenario case and per phase, and the suite's wall time, on the virtual boards.

Runs ``pytest scenarios/ --rig emu -n auto`` as ``./run.sh suite`` does, twice in one go:

* **fast**: what a run does by default: each worker prepares its virtual board once and
  restores that flash snapshot before every later case, and boot states are read from the
  board's flash file (the first read of each board also through esptool, as a check);
* **baseline**: the same suite with ``--no-snapshots --no-direct-reads``: every case
  flashes and deploys through esptool and mpremote, every boot state is an esptool session.

Each case prints a line as it finishes (the run's own); then, per case, set-up, body and
boot-state reads (from the Allure results: the ``ota_target`` fixture, the test, the
"read boot state" steps), the median case after the first case of each worker, the suite's
wall time, and the ratio of the two runs. Targets (a 2-core machine): median case <= 2 s,
suite <= 25 s. Times are the emulator's on this machine, not a real board's.

    .venv/bin/python benchmarks/scenarios.py [--workers N] [--fast-only] [--json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_CASE_S = 2.0
TARGET_SUITE_S = 25.0

#: a finished case in pytest -v output: "[gw0] [ 25%] PASSED scenarios/x.py::t[a]" (xdist) or
#: "scenarios/x.py::t[a] PASSED  [ 25%]" (one process)
_XDIST_RESULT = re.compile(r"^\[gw\d+\] \[\s*\d+%\] (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+::\S+)")
_PLAIN_RESULT = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
#: the harness's own line per case: "PASSED  esp32-0   micropython  firmware   11.8 s  test_x"
_CASE_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED)\s+(\S+)\s+(\S+)\s+(\S+)\s+([\d.]+) s\s+(\S+)")


def finished_case(line: str) -> tuple[str, str] | None:
    """(node id, outcome) when a pytest -v line reports a finished case."""
    m = _XDIST_RESULT.match(line)
    if m:
        return m.group(2), m.group(1)
    m = _PLAIN_RESULT.match(line)
    if m:
        return m.group(1), m.group(2)
    return None


def phases(results_dir: str) -> list[dict]:
    """Per case, from the Allure results: name, worker, start, total, set-up, body and boot-state seconds."""
    setup: dict[str, float] = {}
    for path in glob.glob(os.path.join(results_dir, "*-container.json")):
        with open(path) as f:
            container = json.load(f)
        for before in container.get("befores", []):
            if before.get("name") == "ota_target":
                for child in container.get("children", []):
                    setup[child] = (before["stop"] - before["start"]) / 1000
    cases = []
    for path in glob.glob(os.path.join(results_dir, "*-result.json")):
        with open(path) as f:
            result = json.load(f)
        params = {p["name"]: p["value"] for p in result.get("parameters", [])}
        total = (result["stop"] - result["start"]) / 1000
        reads = 0.0

        def walk(steps):
            nonlocal reads
            for step in steps:
                if step.get("name", "").startswith("read boot state"):
                    reads += (step["stop"] - step["start"]) / 1000
                walk(step.get("steps", []))

        walk(result.get("steps", []))
        worker = next((label["value"] for label in result.get("labels", []) if label["name"] == "thread"), "")
        name = result.get("fullName", "").rsplit("#", 1)[-1]
        cases.append({"case": f"{name}[{params.get('board', '?')}-{params.get('update kind', '?')}]",
                      "worker": worker, "start": result["start"], "status": result.get("status"),
                      "total_s": total, "setup_s": setup.get(result["uuid"], 0.0),
                      "body_s": total - setup.get(result["uuid"], 0.0), "boot_state_s": reads})
    cases.sort(key=lambda c: c["start"])
    firsts = {}
    for c in cases:
        firsts.setdefault(c["worker"], c["case"])
    for c in cases:
        c["first_of_worker"] = firsts[c["worker"]] == c["case"]
    return cases


def run_suite(label: str, extra: list[str], workers: str, say) -> dict:
    with tempfile.TemporaryDirectory(prefix="hil-bench-scenarios-") as tmp:
        results = os.path.join(tmp, "allure")
        cmd = [sys.executable, "-m", "pytest", "scenarios/", "--rig", "emu", "-n", workers, "-p", "no:cacheprovider",
               "--alluredir", results, "--hil-logs", os.path.join(tmp, "logs"), "--basetemp",
               os.path.join(tmp, "run"), *extra]
        say(f"{label}: pytest scenarios/ --rig emu -n {workers} {' '.join(extra)}".rstrip())
        t0 = time.monotonic()
        tail: list[str] = []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                tail = (tail + [line])[-200:]
                if _CASE_LINE.match(line):
                    say(f"  {time.monotonic() - t0:6.1f} s  {line}  (virtual board)")
        wall = time.monotonic() - t0
        cases = phases(results)
    if proc.returncode != 0:
        print("\n".join(tail)[-3000:], file=sys.stderr, flush=True)
    later = [c["total_s"] for c in cases if not c["first_of_worker"]]
    return {"label": label, "wall_s": wall, "returncode": proc.returncode, "cases": cases,
            "median_case_s": statistics.median(later) if later else None}


def report(run: dict, say) -> None:
    say(f"{run['label']}: per case (s)       total  set-up    body  boot-state reads")
    for c in run["cases"]:
        mark = "  (first case of its worker)" if c["first_of_worker"] else ""
        say(f"  {c['case'][:60]:60} {c['total_s']:6.1f}  {c['setup_s']:6.1f}  {c['body_s']:6.1f}  "
            f"{c['boot_state_s']:6.1f}{mark}")
    median = run["median_case_s"]
    say(f"{run['label']}: suite {run['wall_s']:.1f} s wall, {len(run['cases'])} cases, median case after each "
        f"worker's first {median:.2f} s (virtual boards)" if median is not None else
        f"{run['label']}: suite {run['wall_s']:.1f} s wall, {len(run['cases'])} cases")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="auto", help="pytest-xdist workers (default auto, as ./run.sh suite)")
    ap.add_argument("--fast-only", action="store_true", help="skip the baseline run (no snapshots, esptool reads)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    out = sys.stderr if args.json else sys.stdout  # with --json, stdout carries only the JSON object

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say("scenarios: seconds per case and phase and the suite's wall time, on virtual boards (harness.emu) on this "
        f"machine: times are of the emulator, not of real boards (targets: median case <= {TARGET_CASE_S:g} s, "
        f"suite <= {TARGET_SUITE_S:g} s on a 2-core machine)")
    runs = [run_suite("fast", [], args.workers, say)]
    report(runs[0], say)
    if not args.fast_only:
        runs.append(run_suite("baseline", ["--no-snapshots", "--no-direct-reads"], args.workers, say))
        report(runs[1], say)
        fast, base = runs
        say(f"ratio: the suite takes {base['wall_s'] / fast['wall_s']:.1f}x as long without snapshots and direct "
            f"reads ({base['wall_s']:.1f} s / {fast['wall_s']:.1f} s); median case "
            + (f"{base['median_case_s'] / fast['median_case_s']:.1f}x" if fast["median_case_s"] else "n/a"))
    fast = runs[0]
    ok = fast["median_case_s"] is not None and fast["median_case_s"] <= TARGET_CASE_S and \
        fast["wall_s"] <= TARGET_SUITE_S
    say(f"targets {'met' if ok else 'NOT met'}: median case {fast['median_case_s'] or 0:.2f} s "
        f"(<= {TARGET_CASE_S:g}), suite {fast['wall_s']:.1f} s (<= {TARGET_SUITE_S:g})")
    if args.json:
        print(json.dumps({r["label"]: {k: v for k, v in r.items() if k != "label"} for r in runs}, default=str),
              flush=True)
    return max(r["returncode"] for r in runs)


if __name__ == "__main__":
    sys.exit(main())
