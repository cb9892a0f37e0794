"""Per-port power of a USB hub (or a Raspberry Pi's root hub) through the ``uhubctl`` tool.

A board powered from a hub port that supports per-port power switching is
switched with ``uhubctl -l <hub location> -p <port> -a on|off``. uhubctl
prints the hub's port status lines (``  Port 2: 0503 power highspeed enable
connect [...]``, ``  Port 2: 0000 off``); ``uhubctl -l <location> -p <port>``
without an action prints them only, which is what :meth:`state` reads.
Some hubs re-power a port when the host probes it; ``repeat_off`` passes
``-r N`` so uhubctl keeps sending "off" until it sticks. A USB3 hub also
shows up as its USB2 twin; uhubctl switches both and prints both.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from ._cli import last_words, run, split_command
from ._options import as_int, as_seconds, as_text
from .base import PowerSwitch, PowerSwitchError

_HUB_HEADER = re.compile(r"^(?:Current|New) status for hub (\S+)")


def parse_port_power(output: str, location: str, port: int) -> bool | None:
    """Power of ``port`` from uhubctl's status output: True/False, None if not listed.

    The hub that was asked for wins; the status of a USB3 hub's USB2 twin
    (another location) only counts when the asked-for hub is not listed.
    The last block is used, since an action prints the new status last.
    """
    port_line = re.compile(rf"^\s*Port {port}:\s+[0-9a-fA-F]{{4}}\b(.*)$")
    ours: bool | None = None
    others: bool | None = None
    hub = ""
    for line in output.splitlines():
        header = _HUB_HEADER.match(line.strip())
        if header:
            hub = header.group(1)
            continue
        match = port_line.match(line)
        if not match:
            continue
        flags = match.group(1).split("[")[0].split()
        powered = "power" in flags and "off" not in flags
        if hub == location:
            ours = powered
        else:
            others = powered
    return ours if ours is not None else others


class UhubctlSwitch(PowerSwitch):
    """One port of a USB hub with per-port power switching, switched by ``uhubctl``.

    ``location`` is the hub as uhubctl prints it (``1-1``, ``2-1.4``), ``port``
    the port on that hub; ``repeat_off`` passes ``-r N`` when switching off;
    ``uhubctl`` is the command to run (``sudo -n uhubctl`` where it needs
    root); ``timeout`` bounds each run.
    """

    label = "uhubctl"

    def __init__(self, location: str, port: int, repeat_off: int | None = None,
                 uhubctl: str | Sequence[str] = "uhubctl", timeout: float = 10.0, name: str = ""):
        self.location = as_text(location, "location")
        self.port = as_int(port, "port", 1, 255)
        self.repeat_off = None if repeat_off is None else as_int(repeat_off, "repeat_off", 1, 1000)
        self.command = split_command(uhubctl, "uhubctl")
        self.timeout = as_seconds(timeout, "timeout")
        super().__init__(name or f"{self.location}.{self.port}")
        self._where = f"{self.label} hub {self.location} port {self.port}"

    def _run(self, extra: list[str], expected: str) -> tuple[str, bool]:
        argv = [*self.command, "-l", self.location, "-p", str(self.port), *extra]
        proc = run(argv, where=self._where, timeout=self.timeout, expected=expected)
        powered = parse_port_power(proc.stdout, self.location, self.port)
        if powered is None:
            raise PowerSwitchError(f"{self._where}: ran {shlex.join(argv)}, expected a 'Port {self.port}:' "
                                   f"status line for hub {self.location}: {last_words(proc)}")
        return proc.stdout, powered

    def _switch(self, on: bool) -> None:
        extra = ["-a", "on" if on else "off"]
        if not on and self.repeat_off is not None:
            extra += ["-r", str(self.repeat_off)]
        output, powered = self._run(extra, f"port {self.port} switched {'on' if on else 'off'}")
        # uhubctl prints the status before and after switching; the "New status" block is the
        # hub's own word that the port followed (gang-switched hubs silently do not)
        if "New status for hub" in output and powered != on:
            raise PowerSwitchError(f"{self._where}: ran uhubctl {' '.join(extra)}, expected port {self.port} "
                                   f"{'on' if on else 'off'}, the hub reports it {'on' if powered else 'off'}")

    def on(self) -> None:
        self._switch(True)

    def off(self) -> None:
        self._switch(False)

    def state(self) -> bool | None:
        return self._run([], f"the status of port {self.port}")[1]
