"""The MicroPython agent on the virtual boards: seconds and peak heap of an update.

* ESP32: a 1.5 MB firmware OTA over HTTP (download, write, read-back verification, switch);
* ESP8266: a ~100 KiB file OTA over HTTP (two files into the inactive slot, verification, switch).

Heap is the device's live heap (``gc.collect(); gc.mem_alloc()`` at every board call, the port
layer left out). The targets are for the update: its peak above the idle level after boot (the
agent loaded, the board waiting), from the moment the update is triggered until the board resets
into the new version. The peak above the baseline taken before boot.py runs is printed too, against
the heap a real board of MicroPython v1.27.0 gives device code (ESP8266: the static 38 KiB less
what the firmware's start-up holds; ESP32: the 56 KiB initial heap grown from the IDF heap, up to
the model's limit): the virtual boards raise MemoryError past it, so an update that finishes here
fits. Targets: ESP8266 file OTA under 24 KiB, ESP32 firmware OTA under 64 KiB.

    .venv/bin/python benchmarks/agent_ota.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness.rig import load_rig  # noqa: E402
from harness.scenario import OtaBench, OtaCase  # noqa: E402

TARGETS = {"esp32-0-firmware": 64 * 1024, "esp8266-0-files": 24 * 1024}


def measure(bench: OtaBench, board_name: str, kind: str, say) -> dict:
    board = bench.board(board_name)
    t = OtaCase(bench, board, kind)
    say(f"  {board_name} {kind}: preparing the virtual board (baseline firmware, agent, application)")
    t0 = time.monotonic()
    t.prepare()
    pub = t.publish("next")
    say(f"  {board_name} {kind}: prepared in {time.monotonic() - t0:.1f} s; triggering a {pub.size} byte update")
    ended = len(board.virtual.control.stats()["heap"]["boots"])
    board.virtual.control.request("chip", message={"heap": "reset-peak"})  # count the update, not the boot
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        idle = board.virtual.control.stats()["heap"]["current"] or {}
        if idle.get("peak_at") == "":
            break
        time.sleep(0.05)
    t0 = time.monotonic()
    mark = t.trigger(pub)
    switch = t.expect("switch", since=mark, timeout=300)
    t_switch = time.monotonic() - t0
    say(f"  {board_name} {kind}: downloaded, written, verified and switched in {t_switch:.1f} s "
        f"({pub.size / 1024 / t_switch:.1f} KB/s, virtual board); waiting for the new version")
    ready = t.ready(since=switch.at, timeout=120)
    t_ready = time.monotonic() - t0
    boots = board.virtual.control.stats()["heap"]["boots"]
    heap = boots[ended] if len(boots) > ended else {}
    result = {"bytes": pub.size, "update_s": round(t_switch, 2), "to_new_version_ready_s": round(t_ready, 2),
              "kbps": round(pub.size / 1024 / t_switch, 1),
              "peak_heap_above_baseline": heap.get("peak_above_baseline"),
              "idle_heap_above_baseline": idle.get("peak_above_baseline"),
              "heap_budget": heap.get("budget"), "new_version": t.running_version(ready)}
    say(f"  {board_name} {kind}: new version {result['new_version']} ready after {t_ready:.1f} s (virtual board); "
        f"the update's peak heap {update_heap(result) / 1024:.1f} KiB above the idle agent")
    return result


def update_heap(r: dict) -> int:
    """Bytes of heap the update took above the idle agent."""
    return (r["peak_heap_above_baseline"] or 0) - (r["idle_heap_above_baseline"] or 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    # with --json, stdout carries only the JSON object; the progress goes to stderr
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say("agent_ota: seconds and device heap of an OTA update by the MicroPython agent (ESP32: 1.5 MB firmware, "
        "ESP8266: ~100 KiB of files, over HTTP), on virtual boards (rig emu, harness.emu) on this machine: "
        "times and speeds are of the emulator, not of a chip; heap is the device's MicroPython heap")
    rig = load_rig("emu")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench = OtaBench(rig, Path(tmp))
        try:
            results["esp32-0-firmware"] = measure(bench, "esp32-0", "firmware", say)
            results["esp8266-0-files"] = measure(bench, "esp8266-0", "files", say)
        finally:
            bench.close()
    if args.json:
        print(json.dumps(results), flush=True)
        return 0
    say("summary (virtual boards):")
    ok = True
    for name, r in results.items():
        target = TARGETS[name]
        peak = r["peak_heap_above_baseline"] or 0
        update = update_heap(r)
        verdict = "ok" if update < target else "OVER TARGET"
        ok &= update < target
        say(f"  {name}: {r['bytes']} bytes in {r['update_s']:.1f} s ({r['kbps']} KB/s), new version "
            f"{r['new_version']} ready after {r['to_new_version_ready_s']:.1f} s; the update's peak heap "
            f"{update / 1024:.1f} KiB above the idle agent (target < {target // 1024} KiB: {verdict}); "
            f"agent and update together {peak / 1024:.1f} KiB of the real heap's {r['heap_budget'] / 1024:.1f} KiB")
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
