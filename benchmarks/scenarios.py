"""Wall time of the whole emulated scenario suite and of each scenario case.

Runs ``pytest scenarios/ --rig emu`` as ``./run.sh suite`` does (three workers, one virtual
board and update kind per worker), prints a line as each case finishes, then the total and each case's time
(set-up included: restoring the baseline, deploying the agent when needed). Target: the whole suite in under 90 s
on a 2-core CI machine.

    .venv/bin/python benchmarks/scenarios.py [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_S = 90.0


#: a finished case in pytest -v output: "[gw0] [ 25%] PASSED scenarios/x.py::t[a]" (xdist) or
#: "scenarios/x.py::t[a] PASSED  [ 25%]" (one process)
_XDIST_RESULT = re.compile(r"^\[gw\d+\] \[\s*\d+%\] (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+::\S+)")
_PLAIN_RESULT = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_COLLECTED = re.compile(r"(?:collected |\[)(\d+) items?\b")


def finished_case(line: str) -> tuple[str, str] | None:
    """(node id, outcome) when a pytest -v line reports a finished case."""
    m = _XDIST_RESULT.match(line)
    if m:
        return m.group(2), m.group(1)
    m = _PLAIN_RESULT.match(line)
    if m:
        return m.group(1), m.group(2)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=3, help="pytest-xdist workers (default 3, as ./run.sh suite)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    # with --json, stdout carries only the JSON object; the progress goes to stderr
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say(f"scenarios: wall time of the scenario suite (pytest scenarios/ --rig emu, {args.workers} worker(s)) on "
        f"virtual boards (harness.emu) on this machine: times are of the emulator and this machine, not of real "
        f"boards (target < {TARGET_S:.0f} s on a 2-core CI machine)")
    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "junit.xml")
        cmd = [sys.executable, "-m", "pytest", "scenarios/", "--rig", "emu", "-v", "-p", "no:cacheprovider",
               f"--junitxml={junit}", "-o", "junit_duration_report=total"]
        if args.workers > 1:
            cmd += ["-n", str(args.workers), "--dist", "loadgroup"]
        tail: collections.deque[str] = collections.deque(maxlen=200)
        total = None
        done = 0
        t0 = time.monotonic()
        # unbuffered, so that each case's line arrives when it finishes
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                tail.append(line)
                if total is None and (m := _COLLECTED.search(line)):
                    total = int(m.group(1))
                    say(f"  {total} cases collected after {time.monotonic() - t0:.1f} s")
                case = finished_case(line)
                if case:
                    done += 1
                    node, outcome = case
                    count = f"{done}/{total if total is not None else '?'}"
                    say(f"  [{count:>5}] {time.monotonic() - t0:6.1f} s elapsed  "
                        f"{outcome:7} {node.rsplit('::', 1)[-1]}  (virtual board)")
        wall = time.monotonic() - t0
        cases = {}
        if os.path.exists(junit):
            for tc in ET.parse(junit).getroot().iter("testcase"):
                failed = tc.find("failure") is not None or tc.find("error") is not None
                cases[tc.get("name")] = (float(tc.get("time", 0)), "FAIL" if failed else "ok")
    if args.json:
        print(json.dumps({"wall_s": round(wall, 1), "workers": args.workers,
                          "cases": {k: {"s": round(v[0], 1), "result": v[1]} for k, v in cases.items()}}), flush=True)
    else:
        say(f"summary, emulated scenario suite on virtual boards: {len(cases)} cases, {wall:.1f} s wall with "
            f"{args.workers} worker(s) (target < {TARGET_S:.0f} s)")
        for name, (secs, result) in sorted(cases.items()):
            say(f"  {secs:6.1f} s  {result:4}  {name}")
        say(f"  sum of case times: {sum(v[0] for v in cases.values()):.1f} s")
    if proc.returncode != 0:
        print("\n".join(tail)[-3000:], file=sys.stderr, flush=True)
    return proc.returncode

if __name__ == "__main__":
    sys.exit(main())
