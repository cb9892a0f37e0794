"""A 1.5 MiB firmware update through the ESP-IDF OTA client on a virtual ESP32: seconds and flash operations.

The board (``esp32-0`` of ``rigs/emu.yaml`` by default) runs the project's ESP-IDF client
(``device_fw/esp_idf``, the host build the harness makes, ``harness.emu.idf.build``), put on it and
driven through the device layer as a scenario does (``OtaBench``/``OtaCase``: prepare, publish a
manifest, the URL on the serial line, the client's OTA events). The update is the client's next
version with a filler segment (flash-mapped rodata) that brings it to the size of the MicroPython
image, 1.5 MiB, the whole ``ota_1`` slot; it still carries the client's executable, so the version
that boots is the client again and confirms itself after its health check.

Each of ``--updates`` updates starts from the prepared baseline (a virtual board restores the flash
saved after its first preparation) and is timed from the trigger to the client's ``switch``
(``ESP_HTTPS_OTA upgrade successful. Rebooting``), to ``ready`` on the new version and to
``confirmed`` (rollback cancelled). Flash operations are the virtual board's flash model counters
(``harness.emu.control`` ``stats()``) from the trigger until the new version has confirmed: sector
erases (4 KiB; per partition), page programs (one per 256-byte page a write touches, so pages x 256
bytes is what was programmed, at most) and all operations. In the same run, the baseline to
compare with: the same-size firmware update through the MicroPython agent on the same board
(device ``micropython``, kind ``firmware``); the summary gives median and max per device and the
ratio C client / MicroPython of the medians. Times are the emulator's on this machine, not a chip's.

    .venv/bin/python benchmarks/idf_update.py [--rig emu] [--board esp32-0] [--updates 3] [--json]
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import hashlib
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
from harness.devices import Published  # noqa: E402
from harness.esp.app_image import AppImage, Segment, filler, parse_image, verify_image  # noqa: E402
from harness.rig import RigError, load_rig  # noqa: E402
from harness.scenario import OtaBench, OtaCase  # noqa: E402

NAME = "idf_update"
C_CLIENT, AGENT = "esp-idf", "micropython"
SECTOR, PAGE = 0x1000, 0x100
MMU_PAGE = 0x10000
DROM = (0x3F400000, 0x3F800000)  # the ESP32's flash-mapped data region
TIMES = ("switch_s", "ready_s", "confirmed_s")
COUNTS = ("ops", "erases", "programs")


class UsageError(Exception):
    """A rig, board or argument the benchmark cannot run with: one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        print(f"{NAME}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


# -- the board and the image -----------------------------------------------------------------------------------------
def pick_board(rig, names: list[str]):
    """The board to run on: the first (of ``names``, else of the rig) that is virtual and runs both the C client
    and the MicroPython agent with firmware updates."""
    try:
        boards = rig.select(names)
    except RigError as e:
        raise UsageError(str(e)) from None

    def takes(spec, kind: str) -> bool:
        return any(d.kind == kind and "firmware" in d.updates for d in spec.devices)

    for spec in boards:
        if spec.virtual and takes(spec, C_CLIENT) and takes(spec, AGENT):
            return spec
    which = f"board {names[0]}" if len(names) == 1 else f"no board of rig {rig.name}"
    raise UsageError(f"{which} {'is not' if len(names) == 1 else 'is'} a virtual board that runs both the "
                     f"{C_CLIENT} client and the {AGENT} agent with firmware updates (the benchmark reads the "
                     f"virtual board's flash counters and compares the two)")


def padded_image(image: bytes, size: int, slot_offset: int) -> bytes:
    """``image`` (an ESP32 app) with a filler segment of flash-mapped rodata added so that it is ``size`` bytes
    (or up to 15 bytes less: an image ends 16-byte aligned, then its SHA-256), checksum and SHA-256 redone."""
    base = AppImage.from_bytes(image)
    parsed = parse_image(image)
    data_start = parsed.segments[-1].data_offset + parsed.segments[-1].length + 8  # the new segment's data
    # mapped above the image's own rodata, at an address that keeps the MMU page rule (load address and flash
    # address agree modulo 64 KiB)
    top = max([s.addr + s.length for s in parsed.segments if DROM[0] <= s.addr < DROM[1]] or [DROM[0]])
    addr = (top + 2 * MMU_PAGE - 1) // MMU_PAGE * MMU_PAGE + (slot_offset + data_start) % MMU_PAGE
    pad = (size - len(image)) & ~3
    data = b""
    while pad > 0:
        out = dataclasses.replace(base, segments=base.segments + (Segment(addr, filler(7, "idf-update", pad)),))
        data = out.to_bytes()  # the checksum and the SHA-256 of the new layout
        if len(data) <= size:
            break
        pad -= 4
    if pad <= 0 or addr + pad > DROM[1]:
        raise RuntimeError(f"cannot bring a {len(image)} byte image to {size} bytes")
    return data


def publish_image(case: OtaCase, image: bytes, version: str) -> Published:
    """``image`` on the run's HTTP server announced by a manifest ``{version, size, sha256, url}``, as the device
    layer announces a firmware update to a device that takes manifests (``harness.devices.base.publish_firmware``,
    which publishes only images it derives itself)."""
    prefix = f"/{case.board.name}/{case.device.kind}/firmware/big-{time.monotonic_ns()}"
    digest = hashlib.sha256(image).hexdigest()
    case.board.remember_image(image)
    case.http.add(f"{prefix}/fw.bin", image)
    case.http.add_json(f"{prefix}/manifest.json", {"version": version, "size": len(image), "sha256": digest,
                                                   "url": "fw.bin"})
    return Published("firmware", version, case.http.url_for(f"{prefix}/manifest.json"), [f"{prefix}/fw.bin"],
                     len(image), digest, {f"{prefix}/fw.bin": len(image)})


# -- one update ------------------------------------------------------------------------------------------------------
def line_time(console, at: int) -> float:
    """The wall time at which the console line starting at ``at`` arrived (now, if the console keeps no times)."""
    stamps = getattr(console, "_stamps", None)
    if not stamps:
        return time.time()
    i = bisect.bisect_right(stamps, (at, float("inf"))) - 1
    return stamps[i][1] if i >= 0 else time.time()


def settled_stats(control, wait: float = 0.3, limit: float = 3.0) -> dict:
    """The flash counters once no operation has happened for ``wait`` seconds (so a write just after the line the
    timing stops at still counts)."""
    stats = control.stats()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(wait)
        again = control.stats()
        if again["ops"] == stats["ops"]:
            return again
        stats = again
    return stats


def partition_of(table, address: int) -> str:
    for p in table:
        if p.offset <= address < p.offset + p.size:
            return p.label
    return f"0x{address:x}"


def one_update(case: OtaCase, image: bytes, own_image: bool) -> dict:
    """prepare -> publish -> trigger -> switch -> ready on the new version -> confirmed, timed and counted.
    ``own_image``: publish ``image`` (else the device's ``next`` variant, which is ``image``)."""
    board = case.board
    case.prepare()
    version = parse_image(image).app_desc.version
    pub = publish_image(case, image, version) if own_image else case.publish("next")
    if pub.size != len(image) or pub.version != version:
        raise RuntimeError(f"{case.device.kind}: published {pub.size} bytes of {pub.version}, expected "
                           f"{len(image)} bytes of {version}")
    control = board.virtual.control
    before = settled_stats(control, wait=0.1, limit=1.0)
    t0 = time.time()
    mark = case.trigger(pub)
    switch = case.expect("switch", since=mark, timeout=300)
    ready = case.ready(since=switch.at, timeout=120)
    running = case.running_version(ready)
    if running != pub.version:
        raise RuntimeError(f"{case.device.kind}: version {running} runs after the update, not {pub.version}")
    confirmed = case.expect("confirmed", since=switch.at, timeout=120)
    console = board.console
    times = {"switch_s": line_time(console, switch.at) - t0, "ready_s": line_time(console, ready.at) - t0,
             "confirmed_s": line_time(console, confirmed.at) - t0}
    after = settled_stats(control)
    table = list(board.partition_table())
    by_partition: dict[str, int] = {}
    for key, count in after["erase_counts"].items():
        n = count - before["erase_counts"].get(key, 0)
        if n:
            label = partition_of(table, int(key, 16))
            by_partition[label] = by_partition.get(label, 0) + n
    counts = {name: after[name] - before[name] for name in COUNTS}
    # after the switch the new version runs from what was the update slot: it holds the image
    running_slot = next(p for p in table if p.label == case.update_slot)
    holds = board.flash_md5(running_slot.offset, len(image)) == hashlib.md5(image).hexdigest()
    return {**{k: round(v, 3) for k, v in times.items()}, **counts,
            "erased_bytes": counts["erases"] * SECTOR, "programmed_bytes_max": counts["programs"] * PAGE,
            "image_bytes": len(image), "erases_by_partition": dict(sorted(by_partition.items())),
            "nor_violations": after["violations"] - before["violations"], "slot_holds_image": holds,
            "version": pub.version}


def summarise(runs: list[dict]) -> dict:
    keys = TIMES + COUNTS + ("erased_bytes", "programmed_bytes_max")
    return {"median": {k: round(statistics.median(r[k] for r in runs), 3) for k in keys},
            "max": {k: round(max(r[k] for r in runs), 3) for k in keys}}


def ratios(c: dict, mpy: dict) -> dict:
    return {k: round(c["median"][k] / mpy["median"][k], 3) if mpy["median"][k] else None for k in TIMES + COUNTS}


# -- output ----------------------------------------------------------------------------------------------------------
def mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


def run_line(device: str, n: int, total: int, r: dict) -> str:
    parts = ", ".join(f"{k} {v}" for k, v in r["erases_by_partition"].items())
    return (f"  {device:11} {n}/{total}: switch {r['switch_s']:6.2f} s  ready {r['ready_s']:6.2f} s  confirmed "
            f"{r['confirmed_s']:6.2f} s | {r['ops']} flash ops: {r['erases']} erases ({parts}), {r['programs']} page "
            f"programs; {mib(r['programmed_bytes_max'])} programmed at most for a {mib(r['image_bytes'])} image "
            f"(x{r['programmed_bytes_max'] / r['image_bytes']:.2f})"
            + ("" if r["slot_holds_image"] else "; THE SLOT DOES NOT HOLD THE IMAGE")
            + (f"; {r['nor_violations']} NOR VIOLATIONS" if r["nor_violations"] else ""))


def header(board: str, rig: str, updates: int, size: int | None = None) -> str:
    what = f"a {mib(size)} ({size} byte)" if size else "a 1.5 MiB"
    return (f"{NAME}: {what} firmware update through the ESP-IDF OTA client (device_fw/esp_idf, host build) on "
            f"virtual ESP32 {board} of rig {rig}, {updates} update(s) from the prepared baseline: seconds from the "
            f"trigger to switch, to ready on the new version and to confirmed, and the flash operations of the "
            f"board's flash model (4 KiB sector erases, 256-byte page programs); baseline: the same-size update "
            f"through the MicroPython agent on the same board. Times are of the emulator on this machine, not of a "
            f"chip")


def summary_lines(result: dict) -> list[str]:
    lines = [f"summary, {result['updates']} update(s) of {result['image_bytes']} bytes on virtual board "
             f"{result['board']} of rig {result['rig']} (median / max):"]
    for device in (C_CLIENT, AGENT):
        m, x = result[device]["median"], result[device]["max"]
        lines.append(f"  {device:11} switch {m['switch_s']:6.2f} / {x['switch_s']:6.2f} s  ready {m['ready_s']:6.2f} "
                     f"/ {x['ready_s']:6.2f} s  confirmed {m['confirmed_s']:6.2f} / {x['confirmed_s']:6.2f} s | ops "
                     f"{m['ops']:g} / {x['ops']:g}  erases {m['erases']:g} / {x['erases']:g}  programs "
                     f"{m['programs']:g} / {x['programs']:g}")
    r = result["ratio"]

    def f(v):
        return "n/a" if v is None else f"{v:.2f}"

    lines.append(f"  C client / MicroPython (medians): switch {f(r['switch_s'])}  ready {f(r['ready_s'])}  "
                 f"confirmed {f(r['confirmed_s'])} | ops {f(r['ops'])}  erases {f(r['erases'])}  programs "
                 f"{f(r['programs'])}")
    return lines


# -- main ------------------------------------------------------------------------------------------------------------
def measure(rig, spec, updates: int, say) -> dict:
    result: dict = {"rig": rig.name, "board": spec.name, "updates": updates}
    with tempfile.TemporaryDirectory(prefix="hil-bench-idf-") as tmp:
        bench = OtaBench(rig, Path(tmp))
        try:
            board = bench.board(spec.name)
            agent = OtaCase(bench, board, "firmware", device=AGENT)
            client = OtaCase(bench, board, "firmware", device=C_CLIENT)
            say(f"  preparing {spec.name}: the {C_CLIENT} client (host build of device_fw/esp_idf)")
            t0 = time.monotonic()
            client.prepare()
            slot = board.update_slot()
            agent_image = agent.device.firmware().next()  # MicroPython's next version: its 1.5 MiB image
            size = min(len(agent_image), slot.size)
            image = padded_image(client.device.firmware().next(), size, slot.offset)
            check = verify_image(image, chip=board.chip, partition_size=slot.size, address=slot.offset,
                                 require_app_desc=True)
            if not check.ok:
                raise RuntimeError(f"the padded image does not verify: {check.reason}")
            added = len(image) - len(client.device.firmware().next())
            say(f"  prepared in {time.monotonic() - t0:.1f} s; the update: {len(image)} bytes (version "
                f"{check.app_desc.version}, the client's next version with {added} bytes of filler rodata), slot "
                f"{slot.label} is {slot.size} bytes; MicroPython's: {len(agent_image)} bytes")
            result["image_bytes"] = len(image)
            result["slot_bytes"] = slot.size
            for device, case, img, own in ((C_CLIENT, client, image, True), (AGENT, agent, agent_image, False)):
                if device == AGENT:
                    say(f"  preparing {spec.name}: the {AGENT} agent (MicroPython baseline, agent, application)")
                    t0 = time.monotonic()
                    case.prepare()
                    say(f"  prepared in {time.monotonic() - t0:.1f} s")
                runs = []
                for n in range(1, updates + 1):
                    runs.append(one_update(case, img, own))
                    say(run_line(device, n, updates, runs[-1]))
                result[device] = {"image_bytes": len(img), "runs": runs, **summarise(runs)}
        finally:
            bench.close()
    result["ratio"] = ratios(result[C_CLIENT], result[AGENT])
    return result


def main(argv: list[str] | None = None) -> int:
    ap = Parser(prog="idf_update.py", description=__doc__.splitlines()[0])
    ap.add_argument("--rig", default="emu", help="rig name or file (default emu)")
    ap.add_argument("--board", action="append", default=[], help="the board (default: the rig's first virtual "
                    "ESP32 that runs both the esp-idf client and the MicroPython agent)")
    ap.add_argument("--updates", type=positive, default=3, help="updates per device (default 3)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object (progress on stderr)")
    args = ap.parse_args(argv)
    try:
        rig = load_rig(args.rig)
        spec = pick_board(rig, args.board)
    except (RigError, UsageError) as e:
        print(f"{NAME}: {e}", file=sys.stderr)
        return 2
    out = sys.stderr if args.json else sys.stdout  # with --json, stdout carries only the JSON object

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say(header(spec.name, rig.name, args.updates))
    try:
        result = measure(rig, spec, args.updates, say)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a failed run: one line (the device's or the board's), not a traceback
        text = " ".join(str(e).split()) or type(e).__name__
        print(f"{NAME}: the run failed: {type(e).__name__}: {text[:600]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result), flush=True)
        return 0
    for line in summary_lines(result):
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
