"""Yepkit YKUSH USB hubs (YKUSH, YKUSH3, YKUSH XS) through the ``ykushcmd`` tool.

``ykushcmd [board] -s SERIAL -u N`` powers downstream port N, ``-d N`` cuts it,
``-g N`` prints ``Downstream port N is ON`` (or ``OFF``). ``board`` is
``ykush3`` or ``ykushxs`` for those models and left out for the original
YKUSH; the single-port YKUSH XS takes no port number and prints
``Downstream port is ON``. ykushcmd exits with status 0 even when it found no board or did not
understand its arguments (it prints its help instead), so every switch is
followed by ``-g N``: the board's own answer is the only proof the port
followed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from ._cli import last_words, run, split_command
from ._options import as_choice, as_int, as_seconds, as_text, config_error
from .base import PowerSwitch, PowerSwitchError

BOARDS = ("ykush", "ykush3", "ykushxs")


def parse_port_status(output: str, port: int | None) -> bool | None:
    """``Downstream port N is ON|OFF`` (no N on a YKUSH XS) -> True/False; None when the line is missing."""
    number = "" if port is None else f"{port} "
    match = re.search(rf"^\s*Downstream port {number}is (ON|OFF)\s*$", output, re.IGNORECASE | re.MULTILINE)
    return None if match is None else match.group(1).upper() == "ON"


class YkushSwitch(PowerSwitch):
    """One downstream port of a Yepkit YKUSH hub.

    ``port`` is the downstream port (1-3; none on a YKUSH XS); ``serial`` the
    board's serial number (``ykushcmd -l``), needed when more than one board
    is attached; ``board`` the model word ykushcmd wants first (``ykush3``,
    ``ykushxs``); ``ykushcmd`` the command to run; ``timeout`` bounds each run.
    """

    label = "YKUSH"

    def __init__(self, port: int | None = None, serial: str | None = None, board: str = "ykush",
                 ykushcmd: str | Sequence[str] = "ykushcmd", timeout: float = 10.0, name: str = ""):
        self.board = as_choice(board, "board", BOARDS)
        if self.board == "ykushxs":
            if port is not None:
                raise config_error("port", "no port on a YKUSH XS (it has one)", port)
            self.port: int | None = None
        else:
            self.port = as_int(port, "port", 1, 3)
        self.serial = None if serial is None else as_text(serial, "serial")
        self.command = split_command(ykushcmd, "ykushcmd")
        self.timeout = as_seconds(timeout, "timeout")
        suffix = "" if self.port is None else f" port {self.port}"
        super().__init__(name or f"{self.serial or self.board}{suffix}")
        self._where = f"{self.label} {self.serial or '(the only board)'}{suffix}"

    def _argv(self, flag: str) -> list[str]:
        argv = list(self.command)
        if self.board != "ykush":
            argv.append(self.board)
        if self.serial is not None:
            argv += ["-s", self.serial]
        argv.append(flag)
        if self.port is not None:
            argv.append(str(self.port))
        return argv

    def _switch(self, on: bool) -> None:
        argv = self._argv("-u" if on else "-d")
        wanted = "ON" if on else "OFF"
        run(argv, where=self._where, timeout=self.timeout, expected=f"the port switched {wanted}")
        if self.state() != on:
            raise PowerSwitchError(f"{self._where}: ran {shlex.join(argv)}, expected the port {wanted}, "
                                   f"the board reports it {'OFF' if on else 'ON'}")

    def on(self) -> None:
        self._switch(True)

    def off(self) -> None:
        self._switch(False)

    def state(self) -> bool:
        argv = self._argv("-g")
        line = "Downstream port " + ("" if self.port is None else f"{self.port} ") + "is ON|OFF"
        proc = run(argv, where=self._where, timeout=self.timeout, expected=f"'{line}'")
        powered = parse_port_status(proc.stdout, self.port)
        if powered is None:
            raise PowerSwitchError(f"{self._where}: ran {shlex.join(argv)}, expected '{line}', "
                                   f"got: {last_words(proc)}")
        return powered
