"""Virtual boards powered through a virtual LCUS relay: a bench's power wiring, for CI.

A rig marks such a board ``virtual: {power: lcus, channel: N}`` (``rigs/emu-lcus.yaml``). The
first of them that a process opens starts the rig's relay bench: every relay-wired virtual
board of the rig, powered off, and one ``python -m harness.power.lcus_sim`` on a pty wired to
their control endpoints (the simulator has to know them all when it starts, and the boards'
endpoints exist only once they run). Each board is powered through the real
:class:`~harness.power.lcus.LcusSwitch` on that pty, so the relay driver sees the bytes and
answers a bench's relay board gives. The simulator, and the boards of the rig that nobody
opened, stop with the last board that was opened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..esp.chips import format_size
from ..lifeline import Lifeline
from ..power.lcus import BOARD_SIZES, LcusSwitch
from ..power.virtual import VirtualPowerSwitch
from .launcher import BoardStartError, VirtualBoard, _read_line

SIM_START_S = 10.0


@dataclass
class RelayWiredBoard(VirtualBoard):
    """A virtual board of a relay bench; stopping the last one that was handed out stops the bench."""

    bench: RelayBench | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        bench, self.bench = self.bench, None
        if bench is not None:
            bench.returned(self)


class RelayBench:
    """One rig's relay-wired virtual boards and the virtual LCUS relay board that powers them."""

    def __init__(self, rig, root: Path):
        self.rig = rig
        self.root = root
        self.specs = {spec.name: spec for spec in rig.boards if spec.virtual and spec.relay_channel is not None}
        top = max(spec.relay_channel for spec in self.specs.values())
        # the smallest multi-channel board that has the channels: those answer the state query,
        # which the harness and ``hil rig check`` read the relays back with
        self.channels = min(size for size in BOARD_SIZES if size >= max(top, 2))
        self.boards: dict[str, RelayWiredBoard] = {}
        self.handed_out: set[str] = set()
        self.port = ""
        self._sim: subprocess.Popen | None = None
        self._sim_log = None
        self._lifeline: Lifeline | None = None

    def start(self, workdirs: dict[str, Path]) -> None:
        """Start every board (in ``workdirs[name]``, else ``root/name``), then the simulator wired to them."""
        try:
            for name, spec in self.specs.items():
                workdir = workdirs.get(name, self.root / name)
                workdir.mkdir(parents=True, exist_ok=True)
                self.boards[name] = RelayWiredBoard.start(spec.chip, str(workdir / f"{name}.flash"),
                                                          format_size(spec.flash_size), name=name, power_off=True)
            self._start_sim()
        except BaseException:
            self.stop()
            raise

    def _start_sim(self) -> None:
        args = [sys.executable, "-m", "harness.power.lcus_sim", "--channels", str(self.channels)]
        for name, board in self.boards.items():
            args += ["--board", f"{self.specs[name].relay_channel}={board.control_url}"]
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.root.mkdir(parents=True, exist_ok=True)
        log_path = self.root / "lcus_sim.log"
        # every relay click is logged there: the bench's power history when a run is looked into
        self._sim_log = open(log_path, "ab")
        # like the boards: it ends with this process, and a terminal's Ctrl-C is this process's to handle
        self._lifeline = Lifeline()
        try:
            self._sim = subprocess.Popen(args + self._lifeline.args(), stdout=subprocess.PIPE, stderr=self._sim_log,
                                         env=env, pass_fds=(self._lifeline.child_fd,), start_new_session=True)
        finally:
            self._lifeline.started()
        line = _read_line(self._sim, SIM_START_S)
        if not line:
            self._stop_sim()
            lines = log_path.read_text(errors="replace").strip().splitlines()
            raise BoardStartError(f"virtual LCUS relay of rig {self.rig.name} did not start: "
                                  f"{lines[-1] if lines else f'no answer within {SIM_START_S:.0f} s'}")
        self.port = json.loads(line)["port"]

    def hand_out(self, name: str) -> tuple[RelayWiredBoard, LcusSwitch]:
        """Board ``name`` and its relay channel, as the caller's until it stops the board."""
        board = self.boards[name]
        board.bench = self
        self.handed_out.add(name)
        switch = LcusSwitch(self.port, self.specs[name].relay_channel, channels=self.channels, name=name)
        # a virtual board has no capacitors to drain: the off time of its own power switch
        switch.default_off_time = VirtualPowerSwitch.default_off_time
        return board, switch

    def returned(self, board: RelayWiredBoard) -> None:
        with _LOCK:
            self.handed_out.difference_update(name for name, mine in self.boards.items() if mine is board)
            if not self.handed_out:
                if _BENCHES.get(self.rig.path) is self:
                    del _BENCHES[self.rig.path]
                self.stop()

    def stop(self) -> None:
        """Stop the simulator and every board still running."""
        for board in self.boards.values():
            board.bench = None
            board.stop()
        self._stop_sim()

    def _stop_sim(self) -> None:
        sim, self._sim = self._sim, None
        if sim is not None:
            if sim.poll() is None:
                sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(5)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
            if sim.stdout is not None:
                sim.stdout.close()
        if self._sim_log is not None:
            self._sim_log.close()
            self._sim_log = None
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None


_LOCK = threading.RLock()
_BENCHES: dict[Path, RelayBench] = {}


def open_relay_board(spec, rig, workdir: Path) -> tuple[RelayWiredBoard, LcusSwitch]:
    """The running virtual board of ``spec`` and the relay channel that powers it; starts the bench if needed.

    Boards of the bench not asked for yet start in the directories next to ``workdir`` named
    after them, where the harness puts each board's files.
    """
    with _LOCK:
        bench = _BENCHES.get(rig.path)
        if bench is not None and spec.name in bench.handed_out:
            raise BoardStartError(f"virtual board {spec.name} of rig {rig.name} is already open in this process")
        if bench is None:
            bench = RelayBench(rig, workdir.parent)
            bench.start({spec.name: workdir})
            _BENCHES[rig.path] = bench
        return bench.hand_out(spec.name)
