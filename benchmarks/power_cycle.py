"""Power-off to READY on the virtual LCUS bench: how soon a board is back after a power cycle.

Each board of ``rigs/emu-lcus.yaml`` is prepared as a scenario prepares it (baseline firmware,
agent, application), then power-cycled through the virtual LCUS relay (the real LCUS driver
on the relay simulator's pty): seconds from the relay's off frame until the agent prints
``OTA ready``, which includes the switch's off time and the whole boot (ROM, bootloader,
MicroPython, the agent's start-up). Median and max of 5 cycles per board.

Then the power-cut sweep's cycle: cut the power (no off time), power on, wait for ``OTA
ready``, read the boot state (on a virtual board from its flash file; the first read of a
board, also through esptool, comes before the timing). OtaCase on a virtual board: <= 1 s.

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

from harness.cliargs import positive  # noqa: E402
from harness.rig import RigError, load_rig  # noqa: E402
from harness.scenario import OtaBench, OtaCase  # noqa: E402


def where(spec) -> str:
    """"virtual" (the emulator's times on this machine, not a chip's) or "real"."""
    if spec.virtual or (spec.power is not None and spec.power.kind == "virtual"):
        return "virtual"
    return "real"


def measure(bench: OtaBench, spec, cycles: int, say) -> dict:
    board = bench.board(spec.name)
    who = f"{spec.name} ({where(spec)} board)"
    say(f"  {who}: preparing: baseline firmware, agent, application")
    t0 = time.monotonic()
    OtaCase(bench, board, board.spec.updates[0]).prepare()
    say(f"  {who}: prepared in {time.monotonic() - t0:.1f} s")
    seconds = []
    for n in range(1, cycles + 1):
        mark = board.console.mark()
        t0 = time.monotonic()
        board.power_cycle()
        board.wait_ready(since=mark)
        seconds.append(time.monotonic() - t0)
        say(f"  {who}: cycle {n}/{cycles}: power off -> OTA ready in {seconds[-1]:.2f} s")
    board.boot_state()  # the board's first read goes through esptool too (a check), outside the timing
    if board.last_read_reset:
        board.wait_ready()
    cuts = []
    for n in range(1, cycles + 1):
        t0 = time.monotonic()
        board.power.off()
        mark = board.console.mark()
        board.power_on()
        board.wait_ready(since=mark)
        state = board.boot_state()
        cuts.append(time.monotonic() - t0)
        say(f"  {who}: cut {n}/{cycles}: cut -> power on -> OTA ready -> boot state ({state.boot_slot or 'files'}) "
            f"in {cuts[-1]:.2f} s" + (" (boot state read with esptool)" if board.last_read_reset else ""))
        if board.last_read_reset:
            board.wait_ready()
    return {"cycles": [round(s, 2) for s in seconds], "median_s": round(statistics.median(seconds), 2),
            "cut_cycles": [round(s, 2) for s in cuts], "cut_median_s": round(statistics.median(cuts), 2),
            "max_s": round(max(seconds), 2), "off_time_s": board.power.default_off_time,
            "switch": f"{type(board.power).__name__} {getattr(board.power, 'port', '')}".strip(),
            "board": where(spec)}


def header(rig_name: str, kinds: set[str], cycles: int) -> str:
    if kinds == {"virtual"}:
        what = "virtual boards (harness.emu) on this machine: times are of the emulator, not of a chip"
    elif kinds == {"real"}:
        what = "real boards"
    else:
        what = ("virtual and real boards: the times of the virtual ones (harness.emu, on this machine) are of "
                "the emulator, not of a chip")
    return (f"power_cycle: seconds from power off until the agent prints 'OTA ready', {cycles} cycle(s) per board, "
            f"rig {rig_name}, {what}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rig", default="emu-lcus", help="rig name or file (default emu-lcus)")
    ap.add_argument("--board", action="append", default=[], help="only this board (repeatable)")
    ap.add_argument("--cycles", type=positive, default=5, help="power cycles per board (default 5)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    try:
        rig = load_rig(args.rig)
        boards = rig.select(args.board)
    except RigError as e:
        raise SystemExit(f"power_cycle: {e}") from None
    # with --json, stdout carries only the JSON object; the progress goes to stderr
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say(header(rig.name, {where(spec) for spec in boards}, args.cycles))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench = OtaBench(rig, Path(tmp))
        try:
            for spec in boards:
                results[spec.name] = measure(bench, spec, args.cycles, say)
        finally:
            bench.close()
    if args.json:
        print(json.dumps(results), flush=True)
        return 0
    say(f"summary, power-off to OTA ready on rig {rig.name}, {args.cycles} cycle(s) per board:")
    for name, r in results.items():
        say(f"  {name:10} median {r['median_s']:5.2f} s  max {r['max_s']:5.2f} s  ({r['board']} board; "
            f"{r['switch']}, off time {r['off_time_s']:g} s; each: {', '.join(f'{s:.2f}' for s in r['cycles'])})")
        say(f"  {name:10} cut -> ready -> boot state: median {r['cut_median_s']:5.2f} s (target <= 1 s on a "
            f"virtual board; each: {', '.join(f'{s:.2f}' for s in r['cut_cycles'])})")
    return 0

if __name__ == "__main__":
    sys.exit(main())
