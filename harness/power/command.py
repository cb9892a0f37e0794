"""A switch made of the bench's own commands, like labgrid's ExternalPowerDriver.

For supplies no driver knows (a lab PDU script, ``ssh`` to a relay host,
``pdudaemon``'s client), the rig gives the command lines: ``cmd_on`` and
``cmd_off``, optionally ``cmd_cycle`` (then :meth:`CommandSwitch.cycle` runs it
instead of off, wait, on; ``off_time`` is not passed to it) and ``cmd_state``,
which must print ``on`` or ``off`` (``1``/``0``, ``true``/``false``). Commands
are split like a shell would but run without one; a rig that needs pipes
writes ``sh -c '...'``. Exit status 0 is success.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from ._cli import last_words, run, split_command
from ._options import as_seconds
from .base import PowerSwitch, PowerSwitchError

_ON_WORDS = ("on", "1", "true")
_OFF_WORDS = ("off", "0", "false")


class CommandSwitch(PowerSwitch):
    """Power switched by user-supplied commands; ``timeout`` bounds each one."""

    label = "power command"

    def __init__(self, cmd_on: str | Sequence[str], cmd_off: str | Sequence[str],
                 cmd_state: str | Sequence[str] | None = None, cmd_cycle: str | Sequence[str] | None = None,
                 timeout: float = 30.0, name: str = ""):
        self.cmd_on = split_command(cmd_on, "cmd_on")
        self.cmd_off = split_command(cmd_off, "cmd_off")
        self.cmd_state = None if cmd_state is None else split_command(cmd_state, "cmd_state")
        self.cmd_cycle = None if cmd_cycle is None else split_command(cmd_cycle, "cmd_cycle")
        self.timeout = as_seconds(timeout, "timeout")
        super().__init__(name or shlex.join(self.cmd_on))
        self._where = f"{self.label} {self.name}"

    def on(self) -> None:
        run(self.cmd_on, where=self._where, timeout=self.timeout, expected="exit status 0")

    def off(self) -> None:
        run(self.cmd_off, where=self._where, timeout=self.timeout, expected="exit status 0")

    def cycle(self, off_time: float | None = None) -> None:
        if self.cmd_cycle is None:
            super().cycle(off_time)
        else:
            run(self.cmd_cycle, where=self._where, timeout=self.timeout, expected="exit status 0")

    def state(self) -> bool | None:
        if self.cmd_state is None:
            return None
        expected = "'on' or 'off' on standard output"
        proc = run(self.cmd_state, where=self._where, timeout=self.timeout, expected=expected)
        words = proc.stdout.split()
        word = words[0].lower() if len(words) == 1 else None
        if word in _ON_WORDS:
            return True
        if word in _OFF_WORDS:
            return False
        raise PowerSwitchError(f"{self._where}: ran {shlex.join(self.cmd_state)}, expected {expected}, "
                               f"got: {last_words(proc)!r}")
