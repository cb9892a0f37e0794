"""``hil rig check NAME``: is the bench ready? One row per board and check, before a run finds out.

For every board of the rig (or those named with ``--board``):

* ``lock``: no other run holds the board (bench boards only; the check does not touch a busy board),
* ``power``: the switch answers: it is read back where the device can report its state (a
  virtual board's control endpoint, the virtual relay of ``emu-lcus``), then switched on,
* ``port``: the serial port is there (a board powered through its USB cable has one only when on),
* ``chip``: esptool finds the chip the rig names,
* ``baseline``: the baseline images exist and fit the flash.

Virtual boards are started for the check and stopped afterwards, as the fixtures do; a board
the check switched on is switched off again (unless the rig says ``leave_on``). Exit status 0
when every check passes, 1 when one fails, 2 when the rig file itself is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .board import open_board
from .esp.chips import format_size
from .firmware import micropython_baseline
from .flashing import ROM_BAUD, Flasher
from .locks import BoardLock, LockError
from .ports import PortError, resolve_port
from .power import LcusSwitch, PowerSwitchError, VirtualPowerSwitch, make_switch
from .rig import RigError, load_rig

#: how long the port may take to appear after power-on: a USB-UART re-enumerates within a second or two
PORT_WAIT_S = 5.0
#: how long a network port (rfc2217://, socket://) may take to accept a connection
CONNECT_S = 3.0


@dataclass(frozen=True)
class Row:
    board: str
    check: str
    ok: bool
    detail: str


def check_rig(rig, boards, workdir: Path) -> list[Row]:
    """Every check of every board in ``boards`` (board specs of ``rig``), in order."""
    rows: list[Row] = []
    for spec in boards:
        rows += check_board(rig, spec, workdir / spec.name)
    return rows


def check_board(rig, spec, workdir: Path) -> list[Row]:
    rows: list[Row] = []

    def row(check: str, ok: bool, detail: str) -> None:
        rows.append(Row(spec.name, check, ok, detail))

    with contextlib.ExitStack() as stack:
        if _free(rig, spec, stack, row):
            _check_hardware(rig, spec, workdir, stack, row)
    _check_baseline(spec, row)
    return rows


def _free(rig, spec, stack: contextlib.ExitStack, row: Callable) -> bool:
    """Take a bench board's lock for the check: probing a board resets it under whichever run has it."""
    if spec.virtual:
        return True
    try:
        stack.enter_context(BoardLock(rig.name, spec.name).acquire(timeout=0))
    except LockError as e:
        row("lock", False, _one_line(e))
        return False
    row("lock", True, "free")
    return True


def _check_hardware(rig, spec, workdir: Path, stack: contextlib.ExitStack, row: Callable) -> None:
    switch, port = _open(rig, spec, workdir, stack, row)
    if switch is None:
        return
    powered = _check_power(spec, switch, row)
    if powered and not spec.virtual and not rig.leave_on:
        stack.callback(_switch_off, switch, row)
    url = _check_port(spec, port, row)
    if not powered:
        row("chip", False, "not checked: the board could not be switched on")
    elif url is None:
        row("chip", False, "not checked: no serial port")
    else:
        _check_chip(spec, url, row)


def _open(rig, spec, workdir: Path, stack: contextlib.ExitStack, row: Callable) -> tuple:
    """The board's power switch and, for a virtual board, its serial URL; (None, None) after a FAIL row."""
    if spec.virtual:
        try:
            board = open_board(spec, rig, workdir)
        except Exception as e:
            row("power", False, f"virtual board did not start: {_one_line(e)}")
            return None, None
        stack.callback(_close_board, board, row)
        return board.power, board.url
    try:
        switch = make_switch(spec.power.kind, dict(spec.power.options), spec.name)
    except PowerSwitchError as e:
        row("power", False, _one_line(e))
        return None, None
    stack.callback(switch.close)
    return switch, None


def _check_power(spec, switch, row: Callable) -> bool:
    """Read the switch back, switch it on and read it again; True once the board is powered."""
    where = _switch_text(spec, switch)
    try:
        before = switch.state()
        switch.on()
        after = switch.state()
    except PowerSwitchError as e:
        row("power", False, _one_line(e))
        return False
    if after is None:
        row("power", True, f"{where}: switched on (the device cannot report its state)")
        return True
    if not after:
        row("power", False, f"{where}: switched on, but it reports off")
        return False
    row("power", True, f"{where}: reported {'on' if before else 'off'}, on after switching on")
    return True


def _switch_off(switch, row: Callable) -> None:
    try:
        switch.off()
    except PowerSwitchError as e:
        row("power", False, f"switching off after the check failed: {_one_line(e)}")


def _close_board(board, row: Callable) -> None:
    try:
        board.close()
    except Exception as e:  # the virtual board is stopped whatever its switch did
        row("power", False, f"switching off after the check failed: {_one_line(e)}")


def _switch_text(spec, switch) -> str:
    if isinstance(switch, VirtualPowerSwitch):
        return f"control endpoint {switch.control_url}"
    if isinstance(switch, LcusSwitch) and spec.virtual:
        return f"virtual LCUS relay {switch.port} channel {switch.channel}"
    # credentials stay out of the table, which ends up in CI logs
    options = ", ".join(f"{key}={value}" for key, value in spec.power.options.items() if "password" not in key)
    return f"{spec.power.kind} ({options})" if options else spec.power.kind


def _check_port(spec, url: str | None, row: Callable) -> str | None:
    try:
        if url is None:
            url = resolve_port(spec.port, spec, timeout=PORT_WAIT_S)
        _connectable(url)
    except (PortError, OSError) as e:
        row("port", False, _one_line(e))
        return None
    if spec.port is None or spec.port.kind in ("path", "url"):
        row("port", True, url)
    else:
        row("port", True, f"{spec.port.kind}={spec.port.value} -> {url}")
    return url


def _connectable(url: str) -> None:
    """A network port must accept a connection: :func:`resolve_port` takes URLs as they are."""
    parts = urlsplit(url)
    if parts.scheme not in ("rfc2217", "socket"):
        return
    try:
        sock = socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_S)
    except OSError as e:
        raise OSError(f"serial port {url} does not accept a connection: {e.strerror or e}") from None
    with sock:
        # RFC 2217 servers take one client at a time and esptool comes next: hang up, and wait
        # until the server has hung up too, or esptool's connection may arrive while it still
        # counts this one and be turned away
        sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while sock.recv(4096):
                pass


def _check_chip(spec, url: str, row: Callable) -> None:
    try:
        # the ROM loader is enough to identify the chip: no stub upload, no baud change
        with Flasher(url, chip=spec.chip, baud=ROM_BAUD, stub=False, connect_attempts=2) as f:
            description = f.chip_description()
            mac = ":".join(f"{b:02x}" for b in f.esp.read_mac())
    except Exception as e:  # FlashingError, and whatever esptool raises reading the MAC
        row("chip", False, _one_line(e))
        return
    row("chip", True, f"{description}, MAC {mac}")


def _check_baseline(spec, row: Callable) -> None:
    flash = format_size(spec.flash_size)
    if spec.baseline == "micropython":
        try:
            parts = micropython_baseline(spec.chip, flash_size=flash)
        except ValueError as e:
            row("baseline", False, _one_line(e))
            return
        end = max(part.offset + len(part.data) for part in parts)
        row("baseline", True, f"built-in MicroPython, {len(parts)} image(s) ending at 0x{end:x} of {flash}")
        return
    ends = []
    for part in spec.baseline:
        try:
            size = Path(part.path).stat().st_size
        except OSError as e:
            row("baseline", False, f"{part.path}: {e.strerror or e}")
            return
        end = part.offset + size
        if end > spec.flash_size:
            row("baseline", False, f"{part.path} at 0x{part.offset:x} ends at 0x{end:x}, beyond the {flash} flash")
            return
        ends.append(end)
    row("baseline", True, f"{len(ends)} file(s) ending at 0x{max(ends):x} of {flash}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def print_table(rows: list[Row], title: str) -> None:
    # a log (CI, a pipe) gets wide rows, so a row stays one line that grep finds
    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title=Text(title), title_justify="left")
    for column in ("board", "check", "result", "detail"):
        table.add_column(column, overflow="fold")
    for r in rows:
        # Text, not markup: details quote commands and errors, whose [brackets] must print as they are
        table.add_row(Text(r.board), Text(r.check), Text("ok") if r.ok else Text("FAIL", style="bold red"),
                      Text(r.detail))
    console.print(table)


def main(argv: list[str] | None = None, prog: str = "hil rig") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Rig files and the benches they describe.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="probe every board of a rig: lock, power, port, chip, baseline",
                           description="Probe every board of a rig (lock, power switch, serial port, chip, "
                                       "baseline) and print one row per board and check. Exit status 0 when "
                                       "every check passes, 1 when one fails, 2 when the rig file is wrong.")
    check.add_argument("rig", metavar="NAME", help="rig name in rigs/ or a path to a rig file")
    check.add_argument("--board", action="append", default=[], help="check only this board (repeatable)")
    args = parser.parse_args(argv)

    try:
        rig = load_rig(args.rig)
        boards = rig.select(args.board)
    except RigError as e:
        print(f"{prog} check: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hil-rig-check-") as tmp:
        rows = check_rig(rig, boards, Path(tmp))
    failed = [r for r in rows if not r.ok]
    print_table(rows, f"rig {rig.name} ({rig.path})")
    print(f"{len(rows) - len(failed)} of {len(rows)} checks passed" + (
        f"; failed: {', '.join(f'{r.board} {r.check}' for r in failed)}" if failed else ""))
    return 1 if failed else 0
