"""Wall time of the whole emulated scenario suite and of each scenario case.

Runs ``pytest scenarios/ --rig emu`` as ``./run.sh suite`` does (three workers, one virtual
board and update kind per worker) and prints the total and each case's time (set-up included: restoring the baseline,
deploying the agent when needed). Target: the whole suite in under 90 s on a 2-core CI machine.

    .venv/bin/python benchmarks/scenarios.py [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_S = 90.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=3, help="pytest-xdist workers (default 3, as ./run.sh suite)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "junit.xml")
        cmd = [sys.executable, "-m", "pytest", "scenarios/", "--rig", "emu", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}", "-o", "junit_duration_report=total"]
        if args.workers > 1:
            cmd += ["-n", str(args.workers), "--dist", "loadgroup"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - t0
        cases = {}
        for tc in ET.parse(junit).getroot().iter("testcase"):
            failed = tc.find("failure") is not None or tc.find("error") is not None
            cases[tc.get("name")] = (float(tc.get("time", 0)), "FAIL" if failed else "ok")
    if args.json:
        print(json.dumps({"wall_s": round(wall, 1), "workers": args.workers,
                          "cases": {k: {"s": round(v[0], 1), "result": v[1]} for k, v in cases.items()}}))
    else:
        print(f"emulated scenario suite: {len(cases)} cases, {wall:.1f} s wall with {args.workers} worker(s) "
              f"(target < {TARGET_S:.0f} s)")
        for name, (secs, result) in sorted(cases.items()):
            print(f"  {secs:6.1f} s  {result:4}  {name}")
        print(f"  sum of case times: {sum(v[0] for v in cases.values()):.1f} s")
    if proc.returncode != 0:
        print(proc.stdout[-3000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
