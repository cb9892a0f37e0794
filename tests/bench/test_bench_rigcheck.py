"""``hil rig check``: the virtual LCUS bench passes; a broken relay, a missing port and a busy board fail,
each in a table row that names the board and the check."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.locks import BoardLock

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("power", "port", "chip", "baseline")


def rig_check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "rig", "check", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, env={**os.environ, **(env or {})})


def table(out: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(board, check) -> (result, detail) from the printed table; wrapped details are joined."""
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    last = None
    for line in out.splitlines():
        if not line.startswith("│"):
            continue
        board, check, result, detail = (cell.strip() for cell in line.strip("│").split("│"))
        if board:
            last = (board, check)
            rows[last] = (result, detail)
        elif last is not None:
            rows[last] = (rows[last][0], f"{rows[last][1]} {detail}")
    return rows


def test_the_virtual_lcus_bench_passes():
    proc = rig_check("emu-lcus")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = table(proc.stdout)
    assert sorted(rows) == sorted((b, c) for b in ("esp32-0", "esp8266-0") for c in CHECKS)
    assert all(result == "ok" for result, _ in rows.values()), proc.stdout
    assert rows[("esp32-0", "power")][1].startswith("virtual LCUS relay /dev/pts/")
    assert rows[("esp32-0", "power")][1].endswith("channel 1: reported off, on after switching on")
    assert rows[("esp8266-0", "power")][1].endswith("channel 2: reported off, on after switching on")
    assert rows[("esp32-0", "chip")][1].startswith("ESP32-D0WD-V3")
    assert rows[("esp8266-0", "chip")][1].startswith("ESP8266EX")
    assert proc.stdout.rstrip().endswith("8 of 8 checks passed")


def test_one_board_is_checked_alone():
    proc = rig_check("emu-lcus", "--board", "esp8266-0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(table(proc.stdout)) == sorted(("esp8266-0", c) for c in CHECKS)


@pytest.fixture
def relay(start_board):
    """A virtual LCUS-2 relay on a pty, relay 1 wired to a virtual ESP32 started by hand (as a shared bench is)."""
    board = start_board("esp32", power_off=True)
    sim = subprocess.Popen([sys.executable, "-m", "harness.power.lcus_sim", "--channels", "2",
                            "--board", f"1={board.control_url}"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        assert select.select([sim.stdout], [], [], 10)[0], "the relay simulator did not start"
        yield board, json.loads(sim.stdout.readline())["port"]
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=10)


def test_a_broken_relay_a_missing_port_and_a_busy_board_fail_by_name(tmp_path, relay, start_board, monkeypatch):
    board, pty = relay
    unwired = start_board("esp32", power_off=True)
    (tmp_path / "fw.bin").write_bytes(b"\xe9" * 0x1000)
    rig = tmp_path / "shelf.yaml"
    rig.write_text(textwrap.dedent(f"""\
        host: auto
        wifi: {{ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}}
        boards:
          - name: good
            chip: esp32
            port: {{url: "{board.serial_url}"}}
            power: {{kind: lcus, port: {pty}, channel: 1, channels: 2}}
            baseline: [{{offset: 0x1000, file: fw.bin}}]
          - name: bad-relay
            chip: esp32
            port: {{url: "{unwired.serial_url}"}}
            power: {{kind: lcus, port: {tmp_path}/no-such-pty, channel: 1, channels: 2}}
            baseline: [{{offset: 0x1000, file: fw.bin}}]
          - name: no-port
            chip: esp8266
            port: {{url: "rfc2217://127.0.0.1:9"}}
            power: {{kind: lcus, port: {pty}, channel: 2, channels: 2}}
            baseline: [{{offset: 0x0, file: fw.bin}}]
          - name: busy
            chip: esp8266
            port: {{url: "rfc2217://127.0.0.1:10"}}
            power: {{kind: lcus, port: {pty}, channel: 3, channels: 4}}
            baseline: [{{offset: 0x0, file: fw.bin}}]
        """))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with BoardLock("shelf", "busy").acquire(timeout=0):
        proc = rig_check(str(rig))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = table(proc.stdout)

    assert all(rows[("good", check)][0] == "ok" for check in ("lock", *CHECKS)), proc.stdout
    assert rows[("bad-relay", "power")] == (
        "FAIL", f"LCUS relay {tmp_path}/no-such-pty channel 1: cannot open serial port {tmp_path}/no-such-pty: "
                f"[Errno 2] could not open port {tmp_path}/no-such-pty: [Errno 2] No such file or directory: "
                f"'{tmp_path}/no-such-pty'")
    assert rows[("bad-relay", "chip")] == ("FAIL", "not checked: the board could not be switched on")
    assert rows[("no-port", "power")][0] == "ok"
    assert rows[("no-port", "port")] == (
        "FAIL", "serial port rfc2217://127.0.0.1:9 does not accept a connection: Connection refused")
    assert rows[("no-port", "chip")] == ("FAIL", "not checked: no serial port")
    result, detail = rows[("busy", "lock")]
    assert result == "FAIL" and detail.startswith(f"board busy of rig shelf is in use by pid {os.getpid()} ("), detail
    assert ("busy", "power") not in rows  # a board another run holds is not touched
    assert rows[("busy", "baseline")][0] == "ok"
    assert proc.stdout.rstrip().endswith(
        "12 of 17 checks passed; failed: bad-relay power, bad-relay chip, no-port port, no-port chip, busy lock")


def test_the_check_leaves_the_boards_off(tmp_path, relay):
    board, pty = relay
    (tmp_path / "fw.bin").write_bytes(b"\xe9" * 0x1000)
    rig = tmp_path / "one.yaml"
    rig.write_text(textwrap.dedent(f"""\
        host: auto
        wifi: {{ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}}
        boards:
          - name: good
            chip: esp32
            port: {{url: "{board.serial_url}"}}
            power: {{kind: lcus, port: {pty}, channel: 1, channels: 2}}
            baseline: [{{offset: 0x1000, file: fw.bin}}]
        """))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    proc = rig_check(str(rig), env={"XDG_RUNTIME_DIR": str(runtime)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert board.control.status()["power"] is False


def test_a_rig_mistake_is_one_line_and_exit_status_2(tmp_path):
    rig = tmp_path / "bad.yaml"
    rig.write_text("host: 127.0.0.1\nboards:\n  - {name: a, chip: esp32, virtual: {power: lcus, channel: 0}}\n")
    proc = rig_check(str(rig))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"hil rig check: {rig}:3: boards[0].virtual.channel: expected an integer 1..8, got 0\n"
    proc = rig_check("emu-lcus", "--board", "esp32-1")
    assert proc.returncode == 2
    assert proc.stderr.endswith("no board named 'esp32-1' (boards: esp32-0, esp8266-0)\n")
