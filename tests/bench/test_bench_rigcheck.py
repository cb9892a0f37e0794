"""``hil rig check``: the virtual LCUS bench passes; a broken relay, a missing port, a busy board, a missing
or wrong baseline file and unset Wi-Fi variables fail, each in a row of one table that names the board and the
check, and every check runs whatever an earlier one found."""

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

from harness.firmware import micropython_baseline
from harness.locks import BoardLock

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("power", "port", "chip", "baseline")
WIFI = ("(rig)", "wifi")
WIFI_SET = {"HIL_WIFI_SSID": "bench-net", "HIL_WIFI_KEY": "s3cret"}


def rig_check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``hil rig check ARGS`` with the Wi-Fi variables of ``env`` only (none unless given)."""
    base = {k: v for k, v in os.environ.items() if k not in ("HIL_WIFI_SSID", "HIL_WIFI_KEY")}
    return subprocess.run([sys.executable, "-m", "harness.cli", "rig", "check", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, env={**base, **(env or {})})


def write_firmware(directory: Path) -> None:
    """The release binaries a bench rig names, as MicroPython ships them: ``esp32.bin`` is the combined
    binary written at 0x1000 (bootloader, partition table at 0x8000, app at 0x10000), ``esp8266.bin`` the
    image written at 0."""
    parts = micropython_baseline("esp32")
    combined = bytearray(b"\xff" * (parts[-1].offset + len(parts[-1].data) - 0x1000))
    for part in parts:
        combined[part.offset - 0x1000:part.offset - 0x1000 + len(part.data)] = part.data
    (directory / "esp32.bin").write_bytes(bytes(combined))
    (directory / "esp8266.bin").write_bytes(micropython_baseline("esp8266")[0].data)


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
    # the ESP32 runs three device implementations: a baseline row for each
    esp32 = [("esp32-0", c) for c in CHECKS if c != "baseline"] + [("esp32-0", "baseline micropython"),
                                                                   ("esp32-0", "baseline esp-idf"),
                                                                   ("esp32-0", "baseline esp-idf-anti-rollback")]
    # the ESP8266 two: the agent's and the SDK client's
    esp8266 = [("esp8266-0", c) for c in CHECKS if c != "baseline"] + [("esp8266-0", "baseline micropython"),
                                                                       ("esp8266-0", "baseline esp8266-sdk")]
    assert sorted(rows) == sorted([WIFI, *esp32, *esp8266])
    assert all(result == "ok" for result, _ in rows.values()), proc.stdout
    assert rows[WIFI] == ("ok", "virtual boards need no Wi-Fi credentials")
    assert rows[("esp32-0", "baseline micropython")][1] == (
        "built-in MicroPython, 3 image(s) ending at 0x190000 of 4MB: bootloader at 0x1000, partition table at "
        "0x8000 (6 partitions), micropython v1.27.0 in ota_0 at 0x10000 (0x180000 of 0x180000 bytes)")
    assert rows[("esp32-0", "baseline esp-idf")][1].startswith("host build of device_fw/esp_idf, 4 file(s) ending at")
    assert "esp_ota_client 1 in ota_0 at 0x10000" in rows[("esp32-0", "baseline esp-idf")][1]
    assert rows[("esp8266-0", "baseline micropython")][1] == (
        "built-in MicroPython, 1 image(s) ending at 0x6000 of 4MB: ESP8266 image (MicroPython v1.27.0) at 0x0")
    assert rows[("esp8266-0", "baseline esp8266-sdk")][1].startswith(
        "host build of device_fw/esp8266_sdk, 4 image(s) ending at 0x3ff000 of 4MB: boot_v1.x 1.7(5d6f877) at 0x0, "
        "map 32Mbit(512KB+512KB), esp8266_sdk_fota 1.0.0 in user1 at 0x1000 (0x")
    assert rows[("esp32-0", "power")][1].startswith("virtual LCUS relay /dev/pts/")
    assert rows[("esp32-0", "power")][1].endswith("channel 1: reported off, on after switching on")
    assert rows[("esp8266-0", "power")][1].endswith("channel 2: reported off, on after switching on")
    assert rows[("esp32-0", "chip")][1].startswith("ESP32-D0WD-V3")
    assert rows[("esp8266-0", "chip")][1].startswith("ESP8266EX")
    assert proc.stdout.rstrip().endswith("12 of 12 checks passed")


def test_one_board_is_checked_alone():
    proc = rig_check("emu-lcus", "--board", "esp8266-0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(table(proc.stdout)) == sorted([WIFI, *(("esp8266-0", c) for c in CHECKS if c != "baseline"),
                                                 ("esp8266-0", "baseline micropython"),
                                                 ("esp8266-0", "baseline esp8266-sdk")])


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
    write_firmware(tmp_path)
    rig = tmp_path / "shelf.yaml"
    rig.write_text(textwrap.dedent(f"""\
        host: auto
        wifi: {{ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}}
        boards:
          - name: good
            chip: esp32
            port: {{url: "{board.serial_url}"}}
            power: {{kind: lcus, port: {pty}, channel: 1, channels: 2}}
            baseline: [{{offset: 0x1000, file: esp32.bin}}]
          - name: bad-relay
            chip: esp32
            port: {{url: "{unwired.serial_url}"}}
            power: {{kind: lcus, port: {tmp_path}/no-such-pty, channel: 1, channels: 2}}
            baseline: [{{offset: 0x1000, file: esp32.bin}}]
          - name: no-port
            chip: esp8266
            port: {{url: "rfc2217://127.0.0.1:9"}}
            power: {{kind: lcus, port: {pty}, channel: 2, channels: 2}}
            baseline: [{{offset: 0x0, file: esp8266.bin}}]
          - name: busy
            chip: esp8266
            port: {{url: "rfc2217://127.0.0.1:10"}}
            power: {{kind: lcus, port: {pty}, channel: 3, channels: 4}}
            baseline: [{{offset: 0x0, file: esp8266.bin}}]
        """))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with BoardLock("shelf", "busy").acquire(timeout=0):
        proc = rig_check(str(rig), env=WIFI_SET)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = table(proc.stdout)

    assert rows[WIFI] == ("ok", "HIL_WIFI_SSID is set, HIL_WIFI_KEY is set; boards good, bad-relay, no-port, "
                                "busy join Wi-Fi with them")
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
    for check in ("power", "port", "chip"):  # a board another run holds is not touched
        assert rows[("busy", check)] == ("FAIL", "not checked: another run holds the board (see lock)")
    assert rows[("busy", "baseline")][0] == "ok"
    assert proc.stdout.rstrip().endswith(
        "13 of 21 checks passed; failed: bad-relay power, bad-relay chip, no-port port, no-port chip, busy lock, "
        "busy power, busy port, busy chip")


def test_the_check_leaves_the_boards_off(tmp_path, relay):
    board, pty = relay
    write_firmware(tmp_path)
    rig = tmp_path / "one.yaml"
    rig.write_text(textwrap.dedent(f"""\
        host: auto
        wifi: {{ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}}
        boards:
          - name: good
            chip: esp32
            port: {{url: "{board.serial_url}"}}
            power: {{kind: lcus, port: {pty}, channel: 1, channels: 2}}
            baseline: [{{offset: 0x1000, file: esp32.bin}}]
        """))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    proc = rig_check(str(rig), env={"XDG_RUNTIME_DIR": str(runtime), **WIFI_SET})
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


def test_a_missing_firmware_file_a_dead_relay_and_unset_wifi_are_one_table(tmp_path, start_board):
    """A missing baseline file no longer hides the relay and port checks: every problem is a row, exit status 1."""
    board = start_board("esp32", power_off=True)
    rig = tmp_path / "shelf.yaml"
    rig.write_text(textwrap.dedent(f"""\
        host: auto
        wifi: {{ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}}
        boards:
          - name: dead
            chip: esp32
            port: {{url: "{board.serial_url}"}}
            power: {{kind: lcus, port: {tmp_path}/no-such-pty, channel: 1, channels: 2}}
            baseline:
              - offset: 0x1000
                file: firmware/missing.bin
        """))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    proc = rig_check(str(rig), env={"XDG_RUNTIME_DIR": str(runtime)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.count("┏") == 1  # one table
    rows = table(proc.stdout)
    assert list(rows) == [WIFI, ("dead", "lock"), ("dead", "power"), ("dead", "port"), ("dead", "chip"),
                          ("dead", "baseline")]
    assert rows[WIFI] == ("FAIL", f"HIL_WIFI_SSID is not set ({rig}:2: wifi.ssid_env), HIL_WIFI_KEY is not set "
                                  f"({rig}:2: wifi.key_env); board dead joins Wi-Fi with them")
    assert rows[("dead", "power")][0] == "FAIL"
    assert rows[("dead", "power")][1].startswith(f"LCUS relay {tmp_path}/no-such-pty channel 1: cannot open ")
    assert rows[("dead", "port")] == ("ok", board.serial_url)
    assert rows[("dead", "chip")] == ("FAIL", "not checked: the board could not be switched on")
    assert rows[("dead", "baseline")] == (
        "FAIL", f"{rig}:10: boards[0].baseline[0].file: file not found: {tmp_path}/firmware/missing.bin")
    assert proc.stdout.rstrip().endswith(
        "2 of 6 checks passed; failed: (rig) wifi, dead power, dead chip, dead baseline")


def test_bench1_with_the_release_binaries_and_without_hardware(tmp_path):
    """rigs/bench1.yaml as shipped: the combined ESP32 binary at 0x1000 and the ESP8266 image at 0 pass;
    each missing relay and port is a row."""
    rig = tmp_path / "bench1.yaml"
    rig.write_text((ROOT / "rigs" / "bench1.yaml").read_text())
    (tmp_path / "firmware").mkdir()
    write_firmware(tmp_path / "firmware")
    (tmp_path / "firmware" / "esp32.bin").rename(tmp_path / "firmware" / "ESP32_GENERIC-OTA-20251209-v1.27.0.bin")
    (tmp_path / "firmware" / "esp8266.bin").rename(tmp_path / "firmware" / "ESP8266_GENERIC-20251209-v1.27.0.bin")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    proc = rig_check(str(rig), env={"XDG_RUNTIME_DIR": str(runtime), **WIFI_SET, "HIL_WIFI_KEY": ""})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = table(proc.stdout)
    assert rows[WIFI] == ("ok", "HIL_WIFI_SSID is set, HIL_WIFI_KEY is empty (an open network); boards "
                                "esp32-devkitc, esp8266-nodemcu join Wi-Fi with them")
    assert rows[("esp32-devkitc", "baseline")] == (
        "ok", "1 file(s) ending at 0x190000 of 4MB: bootloader at 0x1000, partition table at 0x8000 (6 partitions), "
              "micropython v1.27.0 in ota_0 at 0x10000 (0x180000 of 0x180000 bytes)")
    assert rows[("esp8266-nodemcu", "baseline")] == (
        "ok", "1 file(s) ending at 0x6000 of 4MB: ESP8266 image (MicroPython v1.27.0) at 0x0")
    for board in ("esp32-devkitc", "esp8266-nodemcu"):
        assert [rows[(board, check)][0] for check in ("lock", *CHECKS)] == ["ok", "FAIL", "FAIL", "FAIL", "ok"]
        assert rows[(board, "chip")] == ("FAIL", "not checked: the board could not be switched on")


HTML = b"<!DOCTYPE html><html><body>404 Not Found</body></html>"[:51]


def test_an_html_page_as_baseline_fails_naming_file_and_offset(tmp_path):
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "x.bin").write_bytes(HTML)
    rig = tmp_path / "page.yaml"
    rig.write_text(textwrap.dedent("""\
        host: auto
        wifi: {ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}
        boards:
          - name: page
            chip: esp32
            port: {url: "rfc2217://127.0.0.1:9"}
            power: {kind: command, cmd_on: "true", cmd_off: "true"}
            baseline: [{offset: 0x1000, file: firmware/x.bin}]
        """))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "rig", "check", "page.yaml"], cwd=tmp_path,
                          text=True, capture_output=True, timeout=60,
                          env={**os.environ, **WIFI_SET, "XDG_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert table(proc.stdout)[("page", "baseline")] == (
        "FAIL", "firmware/x.bin: not an ESP image at 0x1000 (starts with '<!DOCTYPE'...)")


def test_the_wifi_row_asks_only_what_the_checked_boards_need(tmp_path, monkeypatch):
    from harness.rig import load_rig
    from harness.rigcheck import RIG_ROW, Row, check_wifi

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HIL_WIFI_SSID", raising=False)
    monkeypatch.setenv("HIL_WIFI_KEY", "k")
    (tmp_path / "mixed.yaml").write_text(textwrap.dedent("""\
        host: auto
        wifi:
          ssid_env: HIL_WIFI_SSID
          key_env: HIL_WIFI_KEY
        boards:
          - {name: emu, chip: esp32, virtual: true}
          - name: bench
            chip: esp8266
            port: {path: /dev/ttyUSB0}
            power: {kind: lcus, port: /dev/ttyUSB3, channel: 1}
            baseline: [{offset: 0x0, file: missing.bin}]
        """))
    rig = load_rig("mixed.yaml", check_files=False)
    assert check_wifi(rig, rig.select(["emu"])) == Row(RIG_ROW, "wifi", True,
                                                       "virtual boards need no Wi-Fi credentials")
    assert check_wifi(rig, rig.boards) == Row(
        RIG_ROW, "wifi", False,
        "HIL_WIFI_SSID is not set (mixed.yaml:3: wifi.ssid_env); board bench joins Wi-Fi with them")
    monkeypatch.setenv("HIL_WIFI_SSID", "")
    rig = load_rig("mixed.yaml", check_files=False)
    assert check_wifi(rig, rig.boards).detail.startswith("HIL_WIFI_SSID is empty (mixed.yaml:3: wifi.ssid_env)")
