"""What runs inside the chip process: from the moment EN rises until the next reset.

The supervisor forks one chip process per run of the chip. Powering off or
holding EN low kills it, so nothing it would have done afterwards reaches the
flash. A chip process ends itself when the chip resets by its own doing (the
loader's reboot, an app's ``machine.reset()``, a watchdog) or when an armed
power cut fires; its exit status tells the supervisor which.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import traceback
from dataclasses import dataclass

from .flash import CutPlan, NorFlash, PowerCut
from .uart import ChipUart

EXIT_REBOOT = 40  # software reset: boot again from flash
EXIT_WATCHDOG = 41  # watchdog reset: boot again from flash
EXIT_CUT = 42  # armed power cut fired: the board is now off
EXIT_HALT = 43  # the chip stopped (e.g. nothing bootable and the ROM gave up): stay dead until reset
EXIT_DEEPSLEEP = 44  # woke from deep sleep: boot again from flash
EXIT_CRASH = 70  # an emulator bug

EXIT_NAMES = {
    EXIT_REBOOT: "reboot",
    EXIT_WATCHDOG: "watchdog",
    EXIT_CUT: "power-cut",
    EXIT_HALT: "halt",
    EXIT_DEEPSLEEP: "deepsleep",
    EXIT_CRASH: "emulator-crash",
}

# Reset causes as the chip reports them.
CAUSE_POWER_ON = "power-on"
CAUSE_EN = "en-pin"
CAUSE_SOFTWARE = "software"
CAUSE_WATCHDOG = "watchdog"
CAUSE_DEEPSLEEP = "deepsleep"


@dataclass(frozen=True)
class ChipConfig:
    chip: str
    flash_file: str
    flash_size: int
    mac: bytes
    name: str = "board"


@dataclass(frozen=True)
class ChipRun:
    """How this run of the chip starts."""

    download: bool
    cause: str
    cut: CutPlan | None = None
    wifi_up: bool = True  # the bench's access point is reachable (the control channel can take it away)
    trace: bool = False  # append every flash operation to the trace files (see FlashTrace)


def trace_paths(flash_file: str) -> tuple[str, str]:
    """The trace files of a flash file: ``<flash>.ops`` (one ``n kind addr size`` line per operation) and
    ``<flash>.ops.data`` (the bytes of every program operation, concatenated in operation order)."""
    return flash_file + ".ops", flash_file + ".ops.data"


class FlashTrace:
    """Appends each flash operation of this chip process to the trace files, as it starts.

    Every line is written with one ``write`` to a file opened for appending, so a process killed at
    any instant leaves whole lines of every operation it began (a torn one included).
    """

    def __init__(self, flash: NorFlash, flash_file: str):
        ops_path, data_path = trace_paths(flash_file)
        self.flash = flash
        self._ops = os.open(ops_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._data = os.open(data_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        flash.on_program = self._program
        flash.on_op = self._op

    def _program(self, op: int, addr: int, data: bytes) -> None:
        # a program's line and its bytes come from one hook, so they always go together
        os.write(self._data, bytes(data))
        os.write(self._ops, f"{op} program {addr} {len(data)}\n".encode())

    def _op(self, op: int, kind: str, addr: int, length: int) -> None:
        if kind != "program":
            os.write(self._ops, f"{op} {kind} {addr} {length}\n".encode())

    def close(self) -> None:
        self.flash.on_op = None
        self.flash.on_program = None
        os.close(self._ops)
        os.close(self._data)


def run_chip(cfg: ChipConfig, sock: socket.socket, run: ChipRun) -> None:
    """Entry point of a forked chip process; never returns."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = EXIT_CRASH
    uart = None
    flash_box: list[NorFlash] = []

    def on_control(message: dict) -> None:
        # The supervisor re-arms or clears the power cut while the chip runs.
        if "cut" in message and flash_box:
            c = message["cut"]
            flash_box[0].cut = None if c is None else CutPlan(c["at_op"], c["policy"], c["seed"], c.get("base", 0))
        if "trace" in message and flash_box:
            _set_trace(flash_box[0], bool(message["trace"]))
            if uart is not None:
                uart.event("trace", on=bool(message["trace"]), ops=flash_box[0].meta.get("ops"))
        if uart is not None:
            for listener in list(uart.control_listeners):
                listener(message)

    try:
        uart = ChipUart(sock, baud=115200, on_control=on_control)
        flash = NorFlash(cfg.flash_file, cfg.flash_size, cut=run.cut)
        flash_box.append(flash)
        if run.trace:
            _set_trace(flash, True)
        code = _run(cfg, run, uart, flash)
    except PowerCut as cut:
        if uart is not None:
            try:
                uart.event("cut", op=cut.op, kind=cut.kind, addr=cut.addr, policy=cut.policy)
            except OSError:
                pass
        code = EXIT_CUT
    except BaseException:  # an emulator bug: say so loudly, keep the board dead
        traceback.print_exc(file=sys.stderr)
        code = EXIT_CRASH
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


_trace: list[FlashTrace] = []


def _set_trace(flash: NorFlash, on: bool) -> None:
    if on and not _trace:
        _trace.append(FlashTrace(flash, flash.path))
    elif not on and _trace:
        _trace.pop().close()


def _run(cfg: ChipConfig, run: ChipRun, uart: ChipUart, flash: NorFlash) -> int:
    from ..chips import chip as chip_class
    from . import boot
    from .rom import Loader

    profile = chip_class(cfg.chip).rom_profile()
    flash.meta.bump("resets")
    if run.download:
        boot.print_rom_download_banner(cfg.chip, uart, run.cause)
        uart.event("boot", mode="download", cause=run.cause)
        uart.autobaud = True
        loader = Loader(profile, flash, uart, cfg.mac, log=lambda m: uart.event("log", msg=m))
        result = loader.run()
        uart.event("loader-exit", action=result.action, detail=result.detail)
        # Code the model cannot run (RAM code that is not esptool's stub) keeps the chip busy
        # and silent until the next reset.
        return EXIT_HALT if result.action == "halt" else EXIT_REBOOT
    return boot.boot_from_flash(cfg, run, uart, flash)
