"""The power-cut sweep: a power cut at chosen flash operations of each update, on the virtual boards.

For each board, device implementation and update kind of the rig (default ``rigs/emu.yaml``), the
update is recorded once uncut (``harness.sweep.record``: every flash operation and its phase), then

* at system level (``harness.sweep.system``) the whole board's power is cut at every operation that is
  not bulk image data, at the first and last image operation and at ``--sample`` more drawn with
  ``--seed``, with each tear policy: restore the prepared board, arm the cut, run the same update, power
  on, check the device is ready on the old or the new version, its boot state agrees and a retried update
  succeeds. Printed: ``N/N cuts recovered``, the distinct flash states the cuts left (each checked once),
  the wall time and the cuts per minute (one board, one worker);
* at bootloader level (``harness.sweep.boot_sweep``, where present) every operation x tear policy is
  checked against the boot-selection model without running the board: the count and the time.

Every failing cut is printed with one line that reproduces just that cut (``--cut N --policy P``).
The times are of the emulator on this machine, not of a chip. ``--alluredir DIR`` also writes one
Allure case per board, device and kind (``harness.sweep.report``).

``--bench`` runs the sweep through each board's power switch instead (``harness.sweep.bench``; any
rig, a bench's boards too): cuts after N bytes of the image and after console events, at most
``--max-cuts`` per board, device and kind in a run, finished ones kept in ``--state`` and skipped
when the run is repeated.

    .venv/bin/python benchmarks/power_cut_sweep.py [--rig emu] [--board B] [--device D] [--kind K]
        [--sample 8] [--policies none,prefix,random] [--seed 0] [--mutation M] [--cut N --policy P] [--json]
        [--alluredir DIR]
    .venv/bin/python benchmarks/power_cut_sweep.py --bench [--rig R] [--board B] [--device D] [--kind K]
        [--spread 8] [--max-cuts 10] [--state FILE] [--bench-cut bytes:N|EVENT+S] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness.cliargs import non_negative, positive  # noqa: E402
from harness.emu.flash import TEAR_POLICIES  # noqa: E402
from harness.rig import RigError, load_rig  # noqa: E402

NAME = "power_cut_sweep"


def policies(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [p for p in names if p not in TEAR_POLICIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown tear policy {', '.join(unknown) or repr(text)} "
                                         f"(known: {', '.join(TEAR_POLICIES)})")
    return names


def bench_cut(text: str):
    from harness.sweep.bench import BenchCut

    try:
        return BenchCut.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{NAME}: {message}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--rig", default="emu", help="rig name or file (default emu); virtual boards only")
    ap.add_argument("--board", action="append", default=[], help="only this board (repeatable)")
    ap.add_argument("--device", action="append", default=[], help="only this device implementation (repeatable)")
    ap.add_argument("--kind", action="append", default=[], help="only this update kind (repeatable)")
    ap.add_argument("--sample", type=non_negative, default=8,
                    help="image-data operations drawn besides the first and last (default 8)")
    ap.add_argument("--policies", type=policies, default=TEAR_POLICIES,
                    help=f"tear policies, comma-separated (default {','.join(TEAR_POLICIES)})")
    ap.add_argument("--seed", type=non_negative, default=0, help="seeds the image sample and the tears (default 0)")
    ap.add_argument("--mutation", default=None, help="run the device implementation with this mutation "
                    "(harness/mutations.py)")
    ap.add_argument("--cut", type=positive, action="append", default=[],
                    help="only this cut: the N-th flash operation after the trigger (repeatable; with --policy)")
    ap.add_argument("--policy", type=policies, default=None, help="the tear policy of --cut (one)")
    ap.add_argument("--no-boot-sweep", action="store_true", help="skip the bootloader-level sweep")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    bench = ap.add_argument_group("on a bench (opt-in): cut through the board's power switch when the server has sent "
                                  "N bytes of the image, or after a console event; minutes per cut on a real board")
    bench.add_argument("--bench", action="store_true", help="run this sweep instead (any rig, bench boards too)")
    bench.add_argument("--spread", type=non_negative, default=8,
                       help="byte counts spread evenly over the image, besides its last bytes (default 8)")
    bench.add_argument("--bench-cut", action="append", default=[], metavar="CUT", type=bench_cut,
                       help="only this cut, made again even if the state file has it: bytes:N or EVENT+SECONDS "
                       "(switch, ready, confirmed; repeatable)")
    bench.add_argument("--state", default=None, metavar="FILE",
                       help="the state file: finished cuts, skipped when the run is repeated "
                       "(default reports/power_cut_bench/<rig>.json)")
    bench.add_argument("--max-cuts", type=non_negative, default=10,
                       help="make at most this many cuts in this run (default 10)")
    ap.add_argument("--alluredir", default=None, metavar="DIR",
                    help="also write one Allure result per board, device and kind into DIR: a table of the cuts, "
                    "a plot of cut point against outcome, and for a failing cut the line that reproduces it")
    args = ap.parse_args(argv)
    if args.policy is not None:
        if len(args.policy) != 1:
            ap.error(f"--policy takes one tear policy, got {','.join(args.policy)}")
        if not args.cut:
            ap.error("--policy goes with --cut N")
        args.policies = args.policy
    if not args.bench and (args.bench_cut or args.state):
        ap.error("--bench-cut and --state go with --bench")
    if args.bench and (args.cut or args.alluredir):
        ap.error("--cut and --alluredir are of the flash-operation sweep, not of --bench")
    if args.mutation:
        from harness.mutations import MutationError, check_mutation

        try:
            check_mutation(args.mutation)
        except MutationError as e:
            ap.error(str(e))
    return args


def targets(rig, args) -> list[tuple[object, str, str]]:
    """(board spec, device kind, update kind) of the rig, as the options select them."""
    boards = rig.select(args.board)
    out = []
    for spec in boards:
        for dev in spec.devices:
            if args.device and dev.kind not in args.device:
                continue
            for kind in dev.updates:
                if args.kind and kind not in args.kind:
                    continue
                out.append((spec, dev.kind, kind))
    if not out:
        raise RigError(f"rig {rig.name}: no board runs device {' or '.join(args.device) or 'any'} with update kind "
                       f"{' or '.join(args.kind) or 'any'}")
    if args.mutation:
        from harness.mutations import mutation

        device = mutation(args.mutation).device
        out = [t for t in out if t[1] == device]
        if not out:
            raise RigError(f"mutation {args.mutation} belongs to {device}, which no selected board runs")
    return out


def reproduce_line(args, board: str, device: str, kind: str, cut: int, policy: str) -> str:
    """The command that runs just this cut."""
    cmd = [".venv/bin/python", "benchmarks/power_cut_sweep.py"]
    if args.rig != "emu":
        cmd += ["--rig", args.rig]
    cmd += ["--board", board, "--device", device, "--kind", kind, "--cut", str(cut), "--policy", policy]
    if args.seed:
        cmd += ["--seed", str(args.seed)]
    if args.mutation:
        cmd += ["--mutation", args.mutation]
    return shlex.join(cmd)


def boot_level(rec, policies_: tuple[str, ...], seed: int) -> dict | None:
    """The bootloader-level sweep's count and time (``harness.sweep.boot_sweep``), None if it is not there."""
    try:
        from harness.sweep.boot_sweep import sweep_boot
    except ImportError:
        return None
    res = sweep_boot(rec, policies=policies_, seed=seed)
    figures = res.to_dict() if hasattr(res, "to_dict") else {}
    figures["summary"] = res.summary() if hasattr(res, "summary") else str(res)
    figures["ok"] = bool(res.ok() if callable(getattr(res, "ok", None)) else getattr(res, "ok", True))
    return figures


def run_one(bench, spec, device: str, kind: str, args, say) -> dict:
    from harness.scenario import OtaCase
    from harness.sweep.record import record_update
    from harness.sweep.system import choose_cuts, sweep_system

    who = f"{spec.name} {device} {kind}"
    board = bench.board(spec.name)
    case = OtaCase(bench, board, kind, device)
    say(f"{who}: preparing and recording the update once, uncut")
    t0 = time.monotonic()
    rec = record_update(case)
    phases = ", ".join(f"{p} {n}" for p, n in rec.phase_counts().items() if n)
    say(f"{who}: {len(rec.ops)} flash operations ({phases}), {rec.old_version} -> {rec.new_version} "
        f"{rec.outcome}, recorded in {time.monotonic() - t0:.1f} s")
    boot = None if args.no_boot_sweep or args.cut else boot_level(rec, args.policies, args.seed)
    if boot is not None:
        say("  " + "\n  ".join(boot["summary"].splitlines()))
    points = args.cut or choose_cuts(rec, args.sample, args.seed)
    say(f"{who}: system level: {len(points)} cut points x {len(args.policies)} tear policies = "
        f"{len(points) * len(args.policies)} cuts")

    def progress(r) -> None:
        mark = "ok  " if r.recovered else "FAIL"
        same = " (same flash as an earlier cut)" if r.same_as is not None else ""
        if r.retry_as is not None:
            same += " (its retry as an earlier cut's)"
        steps = " ".join(f"{k} {v:.2f}" for k, v in r.timings.items())
        say(f"  {mark} {r.describe()}: {r.outcome}{same} {r.seconds:.2f} s" + (f" ({steps})" if steps else "")
            + (f": {r.detail}" if r.detail else ""))

    res = sweep_system(case, rec, policies=args.policies, sample=args.sample, seed=args.seed,
                       cuts=args.cut or None, progress=progress)
    figures = res.to_dict()
    figures["recording"] = {"operations": len(rec.ops), "phases": rec.phase_counts(), "seconds": rec.seconds,
                            "old_version": rec.old_version, "new_version": rec.new_version}
    figures["boot_level"] = boot
    figures["reproduce"] = [reproduce_line(args, spec.name, device, kind, r.cut, r.policy) for r in res.failures]
    return figures


def bench_reproduce_line(args, state: str, board: str, device: str, kind: str, cut: str) -> str:
    cmd = [".venv/bin/python", "benchmarks/power_cut_sweep.py", "--bench"]
    if args.rig != "emu":
        cmd += ["--rig", args.rig]
    cmd += ["--board", board, "--device", device, "--kind", kind, "--bench-cut", cut, "--state", state]
    if args.mutation:
        cmd += ["--mutation", args.mutation]
    return shlex.join(cmd)


def bench_main(args, rig, chosen) -> int:
    """The sweep through the boards' power switches (harness.sweep.bench)."""
    from harness.scenario import OtaBench, OtaCase
    from harness.sweep.bench import sweep_bench
    from harness.sweep.system import SweepError

    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    state = args.state or os.path.join("reports", "power_cut_bench", f"{rig.name}.json")
    say(f"{NAME}: rig {rig.name}, cuts through each board's power switch by bytes sent and by console; state file "
        f"{state}; at most {args.max_cuts} cuts per board, device and kind in this run")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        bench = OtaBench(rig, Path(tmp), mutation=args.mutation)
        try:
            for spec, device, kind in chosen:
                who = f"{spec.name} {device} {kind}"
                case = OtaCase(bench, bench.board(spec.name), kind, device)

                def progress(r, who=who) -> None:
                    mark = "ok  " if r.recovered else "FAIL"
                    say(f"  {mark} {who} {r.name}: {r.outcome} {r.seconds:.1f} s" + (f": {r.detail}" if r.detail
                                                                                   else ""))

                try:
                    res = sweep_bench(case, state, spread=args.spread, cuts=args.bench_cut or None,
                                      max_cuts=args.max_cuts, redo=bool(args.bench_cut), progress=progress)
                except SweepError as e:
                    print(f"{NAME}: {who}: {e}", file=sys.stderr)
                    return 2
                fig = res.to_dict()
                fig["reproduce"] = [bench_reproduce_line(args, state, spec.name, device, kind, r.name)
                                    for r in res.failures]
                results.append(fig)
        finally:
            bench.close()
    failing = sum(len(r["reproduce"]) for r in results)
    if args.json:
        print(json.dumps({"rig": rig.name, "state": state, "results": results}), flush=True)
        return 1 if failing else 0
    say(f"summary, rig {rig.name} (bench sweep):")
    for r in results:
        say(f"  {r['board']} {r['device']} {r['kind']}: {r['recovered']}/{r['cuts']} cuts recovered ({r['made']} made "
            f"in this run, {r['seconds']:.0f} s; {len(r['remaining'])} of {len(r['planned'])} planned still to make)")
        for line, res in zip(r["reproduce"], [x for x in r["results"] if x["outcome"] not in
                                               ("recovered-old", "recovered-new")], strict=True):
            say(f"  FAILED cut {res['name']}: {res['outcome']}: {res['detail']}")
            say(f"    reproduce: {line}")
    return 1 if failing else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rig = load_rig(args.rig)
        chosen = targets(rig, args)
    except RigError as e:
        print(f"{NAME}: {e}", file=sys.stderr)
        return 2
    if args.bench:
        return bench_main(args, rig, chosen)
    not_virtual = [spec.name for spec, _, _ in chosen if not spec.virtual]
    if not_virtual:
        print(f"{NAME}: board {', '.join(dict.fromkeys(not_virtual))} of rig {rig.name} is not virtual: the sweep "
              "cuts a virtual board's power at a flash operation", file=sys.stderr)
        return 2
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    what = f"cuts {', '.join(map(str, args.cut))}" if args.cut else f"image sample {args.sample}, seed {args.seed}"
    say(f"{NAME}: rig {rig.name}, virtual boards (harness.emu) on this machine: times are of the emulator, not of a "
        f"chip; tear policies {','.join(args.policies)}; {what}" + (f"; mutation {args.mutation}" if args.mutation
                                                                    else ""))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        from harness.scenario import OtaBench

        bench = OtaBench(rig, Path(tmp), mutation=args.mutation)
        try:
            for spec, device, kind in chosen:
                results.append(run_one(bench, spec, device, kind, args, say))
        finally:
            bench.close()
    failing = sum(len(r["reproduce"]) for r in results)
    if args.alluredir:
        from harness.sweep.report import write_allure

        written = write_allure(results, args.alluredir, lambda fig, cut: reproduce_line(
            args, fig["board"], fig["device"], fig["kind"], cut["cut"], cut["policy"]), rig=rig.name)
        say(f"{NAME}: {len(written)} Allure results in {args.alluredir}")
    if args.json:
        print(json.dumps({"rig": rig.name, "policies": list(args.policies), "sample": args.sample, "seed": args.seed,
                          "mutation": args.mutation, "results": results}), flush=True)
        return 1 if failing else 0
    say(f"summary, rig {rig.name}:")
    for r in results:
        who = f"{r['board']} {r['device']} {r['kind']}"
        outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
        say(f"  {who}: system level: {r['recovered']}/{r['cuts']} cuts recovered ({outcomes}), "
            f"{r['distinct_states']} distinct flash states, {r['seconds']:.1f} s, {r['cuts_per_minute']:.1f} cuts/min "
            f"(1 worker; {r['recording']['operations']} operations recorded in {r['recording']['seconds']:.1f} s, "
            f"first boot-state read {r['setup_seconds']:.1f} s)")
        boot = r["boot_level"]
        if boot is not None:
            say("  " + "\n  ".join(boot["summary"].splitlines()))
        for line, res in zip(r["reproduce"], [x for x in r["results"] if x["outcome"] not in
                                               ("recovered-old", "recovered-new")], strict=True):
            say(f"  FAILED cut {res['cut']} ({res['policy']}, {res['phase']} {res['op_kind']} at 0x{res['addr']:x}): "
                f"{res['outcome']}: {res['detail']}")
            say(f"    reproduce: {line}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
