"""The virtual LCUS bench (rigs/emu-lcus.yaml): one relay simulator per rig, started with the first board
opened and stopped with the last one closed; each board switched through its own relay channel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.board import open_board
from harness.emu.launcher import BoardStartError
from harness.power import LcusSwitch
from harness.rig import load_rig


def children(marker: str) -> list[int]:
    """This process's children whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and marker in cmd:
            found.append(int(entry))
    return found


def test_boards_share_one_relay_and_the_last_one_closed_stops_it(tmp_path):
    rig = load_rig("emu-lcus")
    opened = []
    try:
        esp32 = open_board(rig.boards[0], rig, tmp_path / "esp32-0")
        opened.append(esp32)
        assert len(children("harness.power.lcus_sim")) == 1
        assert len(children("harness.emu")) == 2  # the board not opened yet is wired up too
        esp8266 = open_board(rig.boards[1], rig, tmp_path / "esp8266-0")
        opened.append(esp8266)
        assert len(children("harness.power.lcus_sim")) == 1
        assert isinstance(esp32.power, LcusSwitch) and isinstance(esp8266.power, LcusSwitch)
        assert esp32.power.port == esp8266.power.port and esp32.power.port.startswith("/dev/pts/")
        assert (esp32.power.channel, esp8266.power.channel) == (1, 2)

        assert (esp32.power.state(), esp8266.power.state()) == (False, False)
        esp8266.power.on()
        assert esp8266.power.state() is True
        assert esp8266.virtual.control.status()["power"] is True
        assert esp32.virtual.control.status()["power"] is False
        esp8266.power.off()
        assert esp8266.power.state() is False
        assert esp8266.virtual.control.status()["power"] is False

        opened.pop(0).close()
        assert len(children("harness.power.lcus_sim")) == 1  # esp8266-0 still needs its relay
        opened.pop(0).close()
    finally:
        for board in opened:
            board.close()
    assert children("harness.power.lcus_sim") == [] and children("harness.emu") == []
    assert "channel 2 on" in (tmp_path / "lcus_sim.log").read_text()


def test_a_board_is_opened_once_per_process(tmp_path):
    rig = load_rig("emu-lcus")
    board = open_board(rig.boards[0], rig, tmp_path / "esp32-0")
    try:
        with pytest.raises(BoardStartError, match="^virtual board esp32-0 of rig emu-lcus is already open in this "
                                                  "process$"):
            open_board(rig.boards[0], rig, tmp_path / "again")
    finally:
        board.close()
    assert children("harness.power.lcus_sim") == []
