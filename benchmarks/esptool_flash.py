"""Flashing figures on a virtual ESP32: esptool write+verify of a 1.5 MB app, and power-cut-to-booted.

Prints, for one 1.5 MB ESP-IDF-style app image written at 0x10000 of a virtual
ESP32 over rfc2217://:

* esptool as a library through the harness's RFC 2217 client (``harness.flashing``),
  with the flasher stub (compressed, 460800 baud) and without it (the ROM loader);
* the stock esptool CLI in a subprocess (pyserial's own RFC 2217 client), with the
  stub, as a baseline in the same run: the ratio shows what the harness's client saves;
* power-cut-to-booted: seconds from power on after a cut to the bootloader having
  chosen the app (the board's ``boot`` event).

Target (issue: virtual boards): write+verify with the stub in at most 5 s on a CI
machine; a real ESP32 at 921600 baud needs about 15-20 s for the same image.

    .venv/bin/python benchmarks/esptool_flash.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness.emu.launcher import VirtualBoard  # noqa: E402
from harness.esp import build_app, build_bootloader, micropython_esp32_ota  # noqa: E402
from harness.flashing import Flasher  # noqa: E402

IMAGE_SIZE = 0x180000  # 1.5 MiB
APP_OFFSET = 0x10000
TARGET_STUB_S = 5.0
CUT_RUNS = 5


def library_write(board: VirtualBoard, image: bytes, *, stub: bool) -> float:
    t0 = time.monotonic()
    with Flasher(board.serial_url, chip="esp32", stub=stub, baud=460800 if stub else 115200,
                 after="no-reset") as f:
        f.write([(APP_OFFSET, image)], verify=True)
    return time.monotonic() - t0


def cli_write(board: VirtualBoard, path: str) -> float:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "esptool", "--port", board.serial_url, "--baud", "460800",
                           "--after", "no-reset", "write-flash", hex(APP_OFFSET), path],
                          capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0 or "Hash of data verified" not in proc.stdout:
        raise SystemExit(f"stock esptool failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def cut_to_booted(board: VirtualBoard, runs: int, say) -> float:
    """Power off (a cut), power on, wait until the bootloader has chosen and started the app."""
    ctl = board.control
    times = []
    for n in range(1, runs + 1):
        ctl.power(False)
        since = ctl.status()["event_seq"]
        t0 = time.monotonic()
        ctl.power(True)
        ctl.wait_event("boot", since=since, timeout=10, result="app")
        times.append(time.monotonic() - t0)
        say(f"  power cut -> app booted, run {n}/{runs}: {times[-1]:.3f} s (virtual ESP32)")
    return sorted(times)[len(times) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    # with --json, stdout carries only the JSON object; the progress goes to stderr
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    image = build_app("esp32", project="bench", version="1.0.0", size=IMAGE_SIZE).to_bytes()
    kb = len(image) / 1024
    say(f"esptool_flash: write + verify of a {len(image)} byte app at 0x{APP_OFFSET:x} over rfc2217://, and power "
        "cut to booted, on a virtual ESP32 (harness.emu) on this machine: times and speeds are of the emulator and "
        "the RFC 2217 link, not of a chip (a real ESP32 at 921600 baud needs about 15-20 s for this image)")
    figures: dict[str, float] = {"image_bytes": len(image)}

    def flashed(key: str, what: str, seconds: float) -> None:
        figures[f"{key}_s"] = seconds
        figures[f"{key}_kbps"] = kb / seconds
        say(f"  {what:47}: {seconds:6.2f} s {kb / seconds:8.1f} KB/s (virtual ESP32)")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "app.bin")
        with open(path, "wb") as fh:
            fh.write(image)
        say("  starting the virtual ESP32")
        with VirtualBoard.start("esp32", os.path.join(tmp, "flash.bin"), "4MB", name="bench") as board:
            flashed("library_stub", "harness.flashing, stub, compressed, 460800 baud",
                    library_write(board, image, stub=True))
            flashed("library_rom", "harness.flashing, ROM loader, no stub",
                    library_write(board, image, stub=False))
            say("  stock esptool CLI: running (pyserial's RFC 2217 client is slow: about half a minute)")
            flashed("cli_stub", "stock esptool CLI, stub (pyserial RFC 2217)", cli_write(board, path))
            # A bootable board: bootloader, the MicroPython OTA table (two 1.5 MB slots), the app in ota_0.
            say("  writing bootloader and partition table for the power-cut runs")
            table = micropython_esp32_ota("4MB")
            with Flasher(board.serial_url, chip="esp32", after="no-reset") as f:
                f.write([(0x1000, build_bootloader("esp32").to_bytes()), (0x8000, table.to_bytes())])
            figures["cut_to_booted_s"] = cut_to_booted(board, CUT_RUNS, say)

    figures["cli_over_library_ratio"] = figures["cli_stub_s"] / figures["library_stub_s"]

    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in figures.items()}), flush=True)
        return 0
    say(f"summary, virtual ESP32, {len(image)} byte app at 0x{APP_OFFSET:x}, write + verify over rfc2217://")
    say(f"  harness.flashing, stub, compressed, 460800 baud : {figures['library_stub_s']:6.2f} s "
        f"{figures['library_stub_kbps']:8.1f} KB/s   (target <= {TARGET_STUB_S:.0f} s)")
    say(f"  harness.flashing, ROM loader, no stub           : {figures['library_rom_s']:6.2f} s "
        f"{figures['library_rom_kbps']:8.1f} KB/s")
    say(f"  stock esptool CLI, stub (pyserial RFC 2217)     : {figures['cli_stub_s']:6.2f} s "
        f"{figures['cli_stub_kbps']:8.1f} KB/s   ({figures['cli_over_library_ratio']:.1f}x the library time)")
    say(f"  power cut -> power on -> app booted (median of {CUT_RUNS}): {figures['cut_to_booted_s']:6.3f} s")
    if figures["library_stub_s"] > TARGET_STUB_S:
        say(f"  MISSED TARGET: stub write+verify took more than {TARGET_STUB_S} s")
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
