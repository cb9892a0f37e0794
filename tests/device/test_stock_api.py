"""The agent runs unchanged on stock MicroPython v1.27.0: every module it imports and every name it
reads from a stock module is in that release's API table for each port the file runs on
(``stock_api.py`` says what is checked and how). ESP32-only files are checked against the ESP32;
files that run on both chips against both.

The table is the project's copy of the specification's (``harness/emu/mpy_api/v1.27.0.json``, the
one the virtual boards are built from). Without it these tests fail: they are not skipped.
"""

from __future__ import annotations

import ast
import functools
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from stock_api import AGENT, ESP32_ONLY, PORTS, TABLE, Port, TableMissing, agent_files, check, load_table

FILES = agent_files()
CASES = [(rel, port) for rel, ports in FILES.items() for port in ports]


@functools.lru_cache(maxsize=None)
def _ports() -> dict[str, Port]:
    table = load_table()
    return {name: Port.from_table(table, name) for name in PORTS}


def port(name: str) -> Port:
    try:
        return _ports()[name]
    except TableMissing as e:
        pytest.fail(str(e))


def test_the_api_table_is_there():
    assert TABLE.is_file(), f"the MicroPython API table is missing: {TABLE}"
    assert load_table()["tag"] == "v1.27.0"


@pytest.mark.parametrize("rel, port_name", CASES, ids=[f"{r}-{p}" for r, p in CASES])
def test_agent_uses_only_stock_names(rel, port_name):
    problems = check((AGENT / rel).read_text(), port(port_name), filename=rel)
    assert not problems, "names stock MicroPython v1.27.0 lacks:\n" + "\n".join(problems)


def test_every_esp32_only_file_exists_and_the_rest_run_on_both():
    assert ESP32_ONLY <= set(FILES)
    assert {"boot.py", "main.py", "lib/otaagent.py", "lib/otafiles.py", "lib/otautil.py", "lib/otahttp.py",
            "lib/otamqtt.py", "lib/ota.py"} <= {r for r, p in FILES.items() if p == PORTS}


def test_files_for_both_chips_load_esp32_only_modules_only_on_demand():
    """A file that runs on the ESP8266 imports the ESP32-only agent modules inside functions only."""
    esp32_only = {Path(r).stem for r in ESP32_ONLY}
    for rel, ports in FILES.items():
        if ports != PORTS:
            continue
        top = set()
        for node in ast.parse((AGENT / rel).read_text()).body:
            if isinstance(node, ast.Import):
                top |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                top.add(node.module)
        assert not top & esp32_only, f"{rel} imports {sorted(top & esp32_only)} when it loads"


# -- the check itself: what it catches and what it lets through ------------------------------------
def _problems(source: str, port_name: str) -> list[str]:
    return check(source, port(port_name), own={"otautil", "app"})


CATCHES = [
    # the names the agent used before it ran on stock firmware
    ("from esp32 import Partition\npart = Partition(Partition.RUNNING)\nstate = part.app_state()\n",
     "esp32", "no member 'app_state'"),
    ("from esp32 import Partition\ndef running():\n    p = Partition(Partition.RUNNING)\n    return p, 1\n"
     "def confirm():\n    part, _ = running()\n    try:\n        return part.app_state()\n"
     "    except AttributeError:\n        return None\n", "esp32", "no member 'app_state'"),
    ("import esp32\nesp32.Partition.check_rollback_is_possible()\n", "esp32", "check_rollback_is_possible"),
    ("from esp32 import Partition\nPartition.mark_app_invalid_rollback_and_reboot()\n", "esp32",
     "mark_app_invalid_rollback_and_reboot"),
    ("import binascii\ncrc = binascii.crc32(b'x')\n", "esp8266", "binascii.crc32 does not exist"),
    ("import hashlib\nh = hashlib.md5()\n", "esp8266", "hashlib.md5 does not exist"),
    ("import ssl\nctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\nctx.load_verify_locations(cadata=b'')\n",
     "esp8266", "forwards to tls.SSLContext"),
    ("import ssl\nctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\nctx.verify_mode = ssl.CERT_REQUIRED\n",
     "esp8266", "ssl.CERT_REQUIRED does not exist"),
    ("import random\nn = random.randint(1, 6)\n", "esp8266", "random.randint does not exist"),
    ("from random import randint\n", "esp8266", "has no 'randint'"),
    ("import os\nhome = os.getenv('HOME')\n", "esp32", "os.getenv does not exist"),
    ("import esp32\n", "esp8266", "imports 'esp32'"),
    ("import utls\n", "esp32", "imports 'utls'"),  # tls is not extensible: no u-alias
    ("import socket\nclass C:\n    def __init__(self):\n        self.s = None\n    def go(self):\n"
     "        self.s = socket.socket()\n        return self.s.fileno()\n", "esp8266", "no member 'fileno'"),
    ("from esp32 import Partition\nfor p in Partition.find(Partition.TYPE_APP):\n    p.app_state()\n",
     "esp32", "no member 'app_state'"),
    ("from esp32 import Partition\nPartition(Partition.RUNNING).get_next_update().app_description()\n",
     "esp32", "no member 'app_description'"),
    ("x = compile('1', 'f', 'eval')\n", "esp8266", "'compile' is neither defined here nor a builtin"),
    ("def f(url):\n    scheme, _, rest = url.partition('://')\n", "esp8266", ".partition() of str/bytes"),
    ("lines = b'a\\nb'.splitlines()\n", "esp8266", ".splitlines() of str/bytes"),
]
LETS_THROUGH = [
    ("import binascii\nf = getattr(binascii, 'crc32', None)\n", "esp8266"),
    ("import hashlib\nif hasattr(hashlib, 'md5'):\n    h = hashlib.md5()\n", "esp8266"),
    ("import ssl\ndef ctx():\n    if not hasattr(ssl, 'CERT_REQUIRED'):\n        raise OSError(1)\n"
     "    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n    c.verify_mode = ssl.CERT_REQUIRED\n"
     "    c.load_verify_locations(cadata=b'')\n    return c\n", "esp8266"),
    ("try:\n    import esp32\nexcept ImportError:\n    esp32 = None\n", "esp8266"),
    ("import uos, utime, ubinascii\nuos.stat('/')\nutime.ticks_ms()\nubinascii.hexlify(b'')\n", "esp8266"),
    ("from otautil import anything\nimport app\n", "esp8266"),
    ("def f(url):\n    scheme, _, rest = url.partition('://')\n", "esp32"),
    ("import socket\ns = socket.socket()\ns.settimeout(1)\ns = None\n", "esp8266"),
    ("from esp32 import Partition\np = Partition.find(Partition.TYPE_DATA, subtype=0)[0]\n"
     "p.readblocks(0, bytearray(32))\nPartition.mark_app_valid_cancel_rollback()\n", "esp32"),
]


@pytest.mark.parametrize("source, port_name, what", CATCHES, ids=[f"{c[1]}:{c[2]}" for c in CATCHES])
def test_the_check_catches(source, port_name, what):
    problems = _problems(source, port_name)
    assert any(what in p for p in problems), problems


@pytest.mark.parametrize("source, port_name", LETS_THROUGH,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(LETS_THROUGH)])
def test_the_check_lets_through(source, port_name):
    assert _problems(source, port_name) == []


def test_the_check_fails_clearly_without_the_table(tmp_path):
    with pytest.raises(TableMissing, match="v1.27.0.json"):
        load_table(tmp_path / "v1.27.0.json")


# -- the agent's own CRC-32, where binascii has none ----------------------------------------------------
def _micropython() -> str:
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        pytest.fail("no micropython (unix port) to run the agent's code with: install the dev dependencies")
    return exe


def test_pure_python_crc32_matches_zlib(tmp_path):
    """otautil.crc32 without binascii.crc32 (the ESP8266) gives zlib's CRC-32, as the MQTT publisher sends it,
    and the otadata CRC (crc32 of the seq, started from 0xFFFFFFFF)."""
    cases = [(b"", 0), (b"123456789", 0), (bytes(range(256)) * 9, 0), ((1).to_bytes(4, "little"), 0xFFFFFFFF),
             ((0x12345678).to_bytes(4, "little"), 0xFFFFFFFF), (b"chunk" * 400, 12345)]
    script = tmp_path / "crc.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(AGENT / 'lib')!r})\n"
        "class NoCrc32:\n    pass\n"
        "sys.modules['binascii'] = NoCrc32()  # what otautil.crc32 imports: a binascii without crc32\n"
        "import otautil\n"
        f"for data, init in {cases!r}:\n"
        "    print(otautil._crc32(data, init), otautil.crc32(data, init))\n")
    out = subprocess.run([_micropython(), str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = [tuple(int(x) for x in line.split()) for line in out.stdout.split("\n") if line]
    assert got == [(zlib.crc32(d, i), zlib.crc32(d, i)) for d, i in cases]
