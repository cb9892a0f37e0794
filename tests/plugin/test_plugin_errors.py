"""Bad input to ``pytest scenarios/ --rig ...``: one clear line naming the problem; infrastructure
failures make the test error (not fail); the board is switched off afterwards.

Real-board rigs here use an external-command power switch whose commands append to a file,
so what the harness did to the supply is visible without hardware.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.timeout(300)


def run_scenarios(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "scenarios/test_same_version.py", "-p", "no:cacheprovider", "-q",
           "-o", "addopts=", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_unknown_rig_is_one_line():
    proc = run_scenarios("--rig", "nope")
    assert proc.returncode == 4
    assert "ERROR: unknown rig 'nope' (rigs in rigs/: " in proc.stderr and "Traceback" not in proc.stderr


def test_board_not_in_the_rig_is_one_line():
    proc = run_scenarios("--rig", "emu", "--board", "esp32-9")
    assert proc.returncode == 4
    assert "esp32-9" in proc.stderr and "esp32-0" in proc.stderr and "Traceback" not in proc.stderr


def _bench_rig(tmp_path, port_yaml: str, baseline: str) -> tuple[str, str]:
    log = tmp_path / "power.log"
    rig = tmp_path / "bench.yaml"
    rig.write_text(textwrap.dedent(f"""\
        host: 192.0.2.10
        wifi:
          ssid_env: HIL_TEST_SSID
          key_env: HIL_TEST_KEY
        boards:
          - name: devkit
            chip: esp32
            port: {port_yaml}
            boot_timeout: 2
            power:
              kind: command
              cmd_on: "sh -c 'echo on >> {log}'"
              cmd_off: "sh -c 'echo off >> {log}'"
            baseline:
              - {{offset: 0x1000, file: {baseline}}}
        """))
    return str(rig), str(log)


def test_missing_firmware_file_names_file_line_and_key(tmp_path):
    rig, _ = _bench_rig(tmp_path, "{path: /dev/null}", "missing.bin")
    proc = run_scenarios("--rig", rig)
    assert proc.returncode == 4
    line = [x for x in proc.stderr.splitlines() if x.startswith("ERROR:")][0]
    assert "bench.yaml:" in line and "baseline" in line and "missing.bin" in line


@pytest.fixture
def baseline_file(tmp_path):
    path = tmp_path / "bootloader.bin"
    path.write_bytes(b"\xe9" + bytes(4095))
    return path.name


ENV = {"HIL_TEST_SSID": "bench", "HIL_TEST_KEY": "secret"}


def test_missing_port_errors_and_leaves_the_board_off(tmp_path, baseline_file):
    rig, log = _bench_rig(tmp_path, "{path: /dev/ttyHIL-NOT-THERE}", baseline_file)
    proc = run_scenarios("--rig", rig, env=ENV)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "error" in out.splitlines()[-1] and "failed" not in out.splitlines()[-1]
    assert "serial port of devkit: nothing matches path='/dev/ttyHIL-NOT-THERE'" in out
    assert open(log).read().split()[-1] == "off"


def test_esptool_failure_errors_and_leaves_the_board_off(tmp_path, baseline_file):
    # A port that opens but where nothing answers esptool (a TCP server that never replies).
    server = socket.create_server(("127.0.0.1", 0))
    conns = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        rig, log = _bench_rig(tmp_path, f"{{url: 'socket://127.0.0.1:{server.getsockname()[1]}'}}", baseline_file)
        proc = run_scenarios("--rig", rig, env=ENV)
    finally:
        stop.set()
        t.join()
        server.close()
        for c in conns:
            c.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "error" in out.splitlines()[-1], out[-3000:]
    assert "esptool on socket://127.0.0.1:" in out and "connecting failed" in out
    assert open(log).read().split()[-1] == "off"


def test_a_dead_board_is_given_up_at_once_and_the_others_go_on(tmp_path, baseline_file):
    # a bench board whose port is missing, next to a virtual board: one probe, one line per case, no traceback
    rig, log = _bench_rig(tmp_path, "{path: /dev/ttyHIL-NOT-THERE}", baseline_file)
    text = open(rig).read().replace("host: 192.0.2.10", "host: auto")  # reachable by the virtual board too
    text += textwrap.indent(textwrap.dedent("""\
        updates: [firmware, files]
      - name: emu8266
        chip: esp8266
        virtual: true
        baseline: micropython
        updates: [files]
        """), "  ")
    open(rig, "w").write(text)
    proc = run_scenarios("--rig", rig, env=ENV)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert out.splitlines()[-1].startswith("1 passed, 2 errors"), out[-3000:]
    lines = [x for x in out.splitlines() if x.startswith("ERROR   devkit")]
    assert len(lines) == 2, out[-3000:]
    assert float(lines[1].split()[4]) < 1.0, lines  # the second case is not probed again
    reason = "board devkit of rig bench is not usable, its cases are not run: serial port of devkit: nothing " \
             "matches path='/dev/ttyHIL-NOT-THERE'"
    assert out.count(reason) >= 2 and "Traceback" not in out and "harness/" not in out.split("= ERRORS =")[1], \
        out[-3000:]
    assert [x for x in out.splitlines() if x.startswith("PASSED  emu8266")], out[-3000:]
    assert open(log).read().split()[-1] == "off"
