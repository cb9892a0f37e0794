"""A virtual board's MicroPython is the release's ESP port, not the unix interpreter under it.

Device code tries each way out to the host (its files, environment, processes, the unix
port's modules, the port layer's internals) and gets what a real board gives; the values a
real board reports (platform, version, uname, errno, reset causes, ssl defaults) are the
port's; REPL code runs in __main__; tracebacks show the device's frames only.
"""

from __future__ import annotations

import json
import re

import pytest
from test_micropython import both_chips, mpremote

from harness.emu.mpy_api import port_table

pytestmark = pytest.mark.timeout(300)

ESCAPES = r"""
import os, sys, vfs
out = {}
def attempt(name, f):
    try:
        out[name] = ['ok', repr(f())]
    except Exception as e:
        out[name] = [type(e).__name__, str(e.args[0]) if e.args else '']
attempt('listdir', lambda: sorted(os.listdir('/')))
attempt('cwd', os.getcwd)
attempt('etc_passwd', lambda: open('/etc/passwd').read())
attempt('host_tmp', lambda: os.listdir('/tmp'))
attempt('proc_self', lambda: open('/proc/self/environ').read())
attempt('dev_fd', lambda: open('/dev/fd/0', 'rb'))
attempt('vfsposix', lambda: vfs.VfsPosix)
attempt('os_system', lambda: os.system('true'))
attempt('os_getenv', lambda: os.getenv('HOME'))
attempt('os_putenv', lambda: os.putenv)
for name in ('termios', 'ffi', 'argparse', '_hil', 'host', '_boot', '_blockcache', '_flashbdev', '_unix',
             '_port_new', '_port_machine', '_port_socket', 'usys', 'upip'):
    attempt('import_' + name, lambda: __import__(name))
attempt('mounts', lambda: [p for _f, p in vfs.mount()])
attempt('sys_path', lambda: sys.path)
attempt('sys_argv', lambda: sys.argv)
attempt('sys_modules', lambda: sorted(sys.modules))
attempt('sys_executable', lambda: sys.executable)
attempt('sys_atexit', lambda: sys.atexit)
attempt('poll_fd', lambda: __import__('select').poll().register(0))
attempt('uctypes_bytes_at', lambda: __import__('uctypes').bytes_at(0, 4))
print('RESULT' + __import__('json').dumps(out))
"""


def _result(text: str) -> dict:
    return json.loads(re.search(r"RESULT(.*)", text).group(1))


@both_chips
def test_device_code_reaches_nothing_of_the_host(mpy_board, chip):
    board = mpy_board(chip)
    mpremote(board, "fs", "mkdir", ":lib")
    r = _result(mpremote(board, "exec", ESCAPES).stdout)
    # The board's own filesystem and nothing else: boot.py (written at the first boot) and lib.
    assert r["listdir"] == ["ok", "['boot.py', 'lib']"]
    assert r["cwd"] == ["ok", "'/'"]
    for key in ("etc_passwd", "host_tmp", "proc_self", "dev_fd"):
        assert r[key] == ["OSError", "2"], key  # ENOENT, as on a board
    for key in ("vfsposix", "os_system", "os_getenv", "os_putenv", "sys_executable", "sys_atexit",
                "uctypes_bytes_at"):
        assert r[key][0] == "AttributeError", (key, r[key])
    for key in [k for k in r if k.startswith("import_")]:
        assert r[key][0] == "ImportError", (key, r[key])
    assert r["mounts"] == ["ok", "['/']"]
    assert r["sys_path"] == ["ok", "['', '.frozen', '/lib']"]
    assert r["sys_argv"] == ["ok", "[]"]
    assert r["sys_modules"] == ["ok", "['flashbdev']"]  # what the port's frozen _boot.py imports
    assert r["poll_fd"][0] == "OSError"


@both_chips
def test_the_board_reports_the_release_as_the_port_does(mpy_board, repl_of, chip):
    board = mpy_board(chip)
    port = port_table(chip)
    machine = f"{port['board_name']} with {port['mcu_name']}"
    out = mpremote(board, "exec", "import sys, os, errno\n"
                   "print('P', sys.platform, sys.version)\n"
                   "print('I', sys.implementation.name, sys.implementation.version, sys.implementation._machine)\n"
                   "print('U', os.uname())\n"
                   "print('S', os.uname().sysname, os.uname().machine)\n"
                   "print('E', errno.ETIMEDOUT, errno.EINPROGRESS, errno.errorcode[errno.ETIMEDOUT])\n"
                   "print('M', sys.maxsize)\n"
                   "import machine, network, binascii\n"
                   "print('ID', binascii.hexlify(machine.unique_id()).decode(),"
                   " binascii.hexlify(network.WLAN(network.STA_IF).config('mac')).decode())\n").stdout
    assert f"P {chip} 3.4.0; MicroPython v1.27.0 on 2025-12-09" in out
    assert f"I micropython (1, 27, 0, '') {machine}" in out
    assert (f"U (sysname='{chip}', nodename='{chip}', release='1.27.0', version='v1.27.0 on 2025-12-09', "
            f"machine='{machine}')") in out
    assert f"S {chip} {machine}" in out
    numbers = {"esp32": "116 119", "esp8266": "110 115"}[chip]  # newlib's and lwIP's, not Linux's 110 115
    assert f"E {numbers} ETIMEDOUT" in out
    assert "M 2147483647" in out
    # unique_id: the ESP32's MAC; the ESP8266's chip id (the MAC's low three bytes, little-endian).
    mac = bytes.fromhex(board.info["mac"].replace(":", ""))
    uid = mac if chip == "esp32" else bytes([mac[5], mac[4], mac[3], 0])
    assert f"ID {uid.hex()} {mac.hex()}" in out
    assert f"MicroPython v1.27.0 on 2025-12-09; {machine}" in open(board.console_path, "rb").read().decode(
        errors="replace")


@both_chips
def test_ssl_defaults_are_stock(mpy_board, chip):
    board = mpy_board(chip)
    out = mpremote(board, "exec", "import ssl, tls\n"
                   "c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
                   "print('ssl', c.verify_mode)\n"
                   "print('tls', tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).verify_mode)\n"
                   "print('req', hasattr(ssl, 'CERT_REQUIRED'))\n"
                   "try:\n"
                   "    c.load_verify_locations(cadata=b'x')\n"
                   "    print('lvl ok')\n"
                   "except Exception as e:\n"
                   "    print('lvl', type(e).__name__)\n").stdout
    # micropython-lib's frozen ssl.py starts every context with CERT_NONE.
    assert "ssl 0" in out
    if chip == "esp32":
        assert "tls 2" in out and "req True" in out  # mbedTLS: a tls client context starts with CERT_REQUIRED
    else:
        # axtls: no verification at all, no CERT_REQUIRED, no load_verify_locations.
        assert "tls 0" in out and "req False" in out and "lvl AttributeError" in out


@both_chips
def test_repl_code_runs_in_main_and_tracebacks_show_device_frames(mpy_board, repl_of, chip):
    board = mpy_board(chip)
    repl = repl_of(board)
    repl.run("x = 41")
    assert "42 ['__main__', '__name__', 'x']" in repl.run("import __main__; print(__main__.x + 1, sorted(globals()))")
    out = repl.run("import socket; s = socket.socket(); s.connect(('127.0.0.1', 9))")
    # No station joined: the port's EHOSTUNREACH, raised in the device's line, no port-layer frame.
    code = port_table(chip)["modules"]["errno"]["names"]["EHOSTUNREACH"]["value"]
    assert f"OSError: [Errno {code}] EHOSTUNREACH" in out
    assert 'File "<stdin>", line 1, in <module>' in out and "__port" not in out and "_boot" not in out


def test_reset_causes_follow_the_port(mpy_board):
    # ESP32 (ports/esp32/modmachine.c): power-on 1, machine.reset() HARD_RESET 2, soft reset SOFT_RESET 5.
    # ESP8266 (the SDK's rst_info): power-on 0, machine.reset() 4, a soft reset leaves it as it was.
    for chip, after_power, after_reset, after_soft in (("esp32", 1, 2, 5), ("esp8266", 0, 4, 4)):
        board = mpy_board(chip)
        cause = "import machine; print('cause', machine.reset_cause())"
        assert f"cause {after_power}" in mpremote(board, "resume", "exec", cause).stdout
        mpremote(board, "reset")  # machine.reset()
        board.control.wait_event("mpy-ready", since=board.control.status()["event_seq"] - 5)
        assert f"cause {after_reset}" in mpremote(board, "resume", "exec", cause).stdout
        assert f"cause {after_soft}" in mpremote(board, "exec", cause).stdout  # exec soft-resets first
        # Waking from deep sleep: DEEPSLEEP_RESET (ESP32 4, ESP8266 5).
        mark = board.control.status()["event_seq"]
        mpremote(board, "exec", "--no-follow", "import machine\nmachine.deepsleep(100)")
        board.control.wait_event("mpy-ready", since=mark)
        assert f"cause {4 if chip == 'esp32' else 5}" in mpremote(board, "resume", "exec", cause).stdout


@both_chips
def test_device_code_reads_the_console_as_stdin(mpy_board, repl_of, chip):
    board = mpy_board(chip)
    repl = repl_of(board)
    repl.send("import sys; print('got', repr(sys.stdin.read(3)))\r")
    repl.expect(rb"print\('got', repr\(sys.stdin.read\(3\)\)\)\r\n")
    repl.send("abc")
    assert "got 'abc'" in repl.expect(rb">>> $").decode()


def test_errno_names_compile_to_the_port_numbers(mpy_board):
    # The port's compiler folds errno.NAME into its own number; so does a virtual board's, in
    # the REPL, in boot.py/main.py and in modules imported from the filesystem.
    board = mpy_board("esp32")
    module = "import errno\nT = errno.ETIMEDOUT\ndef raised():\n    try:\n        raise OSError(116)\n" \
             "    except OSError as e:\n        return e.errno == errno.ETIMEDOUT\n"
    mpremote(board, "exec", f"f = open('m.py', 'w')\nf.write({module!r})\nf.close()")
    out = mpremote(board, "exec", "import errno, m\nprint('R', errno.ETIMEDOUT, m.T, m.raised(), errno.EINPROGRESS)\n"
                   "try:\n    errno.ENOSPC\nexcept AttributeError:\n    print('no ENOSPC')\n").stdout
    assert "R 116 116 True 119" in out and "no ENOSPC" in out


@both_chips
def test_a_file_closed_with_the_heap_locked_reaches_flash(mpy_board, chip):
    # As a file's finaliser closes it (the garbage collector runs it with the heap locked): the
    # block device must write without allocating, as the port's native one does.
    board = mpy_board(chip)
    mpremote(board, "exec", "import micropython\nf = open('gc.txt', 'w')\nf.write('written with the heap locked')\n"
             "micropython.heap_lock()\nf.close()\nmicropython.heap_unlock()\n")
    assert "written with the heap locked" in mpremote(board, "exec", "print(open('gc.txt').read())").stdout


def test_the_clock_counts_from_2000_and_the_rtc_sets_it(mpy_board):
    # The ports' epoch is 2000-01-01 and a chip's RTC starts at zero: not the host's date.
    board = mpy_board("esp32")
    out = mpremote(board, "exec", "import time, machine\n"
                   "print('T', time.time() < 3600, time.gmtime()[0], time.localtime(0)[:3])\n"
                   "machine.RTC().datetime((2026, 11, 30, 0, 12, 0, 0, 0))\n"
                   "print('R', time.localtime()[:5], time.mktime((2000, 1, 2, 0, 0, 0, 0, 0)))\n"
                   "import os\nprint('U', os.uname())\n").stdout
    assert "T True 2000 (2000, 1, 1)" in out
    assert "R (2026, 11, 30, 12, 0) 86400" in out
    assert "U (sysname='esp32', nodename='esp32', release='1.27.0'" in out  # an attribute tuple
