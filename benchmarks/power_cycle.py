"""Power-off to READY on the virtual LCUS bench: how soon a board is back after a power cycle.

Each board of ``rigs/emu-lcus.yaml`` is prepared as a scenario prepares it (baseline firmware,
agent, application), then power-cycled through the virtual LCUS relay (the real LCUS driver
on the relay simulator's pty): seconds from the relay's off frame until the agent prints
``OTA ready``, which includes the switch's off time and the whole boot (ROM, bootloader,
MicroPython, the agent's start-up). Median and max of 5 cycles per board.

    .venv/bin/python benchmarks/power_cycle.py [--rig emu-lcus] [--board NAME] [--cycles 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness.rig import load_rig  # noqa: E402
from harness.scenario import OtaBench, Target  # noqa: E402


def measure(bench: OtaBench, board_name: str, cycles: int) -> dict:
    board = bench.board(board_name)
    Target(bench, board, board.spec.updates[0]).prepare()
    seconds = []
    for _ in range(cycles):
        mark = board.console.mark()
        t0 = time.monotonic()
        board.power_cycle()
        board.wait_ready(since=mark)
        seconds.append(time.monotonic() - t0)
    return {"cycles": [round(s, 2) for s in seconds], "median_s": round(statistics.median(seconds), 2),
            "max_s": round(max(seconds), 2), "off_time_s": board.power.default_off_time,
            "switch": f"{type(board.power).__name__} {getattr(board.power, 'port', '')}".strip()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rig", default="emu-lcus", help="rig name or file (default emu-lcus)")
    ap.add_argument("--board", action="append", default=[], help="only this board (repeatable)")
    ap.add_argument("--cycles", type=int, default=5, help="power cycles per board (default 5)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    rig = load_rig(args.rig)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench = OtaBench(rig, Path(tmp))
        try:
            for spec in rig.select(args.board):
                results[spec.name] = measure(bench, spec.name, args.cycles)
        finally:
            bench.close()
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"power-off to OTA ready on rig {rig.name}, {args.cycles} cycles per board:")
    for name, r in results.items():
        print(f"  {name:10} median {r['median_s']:5.2f} s  max {r['max_s']:5.2f} s  "
              f"({r['switch']}, off time {r['off_time_s']:g} s; each: {', '.join(f'{s:.2f}' for s in r['cycles'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
