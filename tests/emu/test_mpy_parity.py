"""The virtual boards present exactly MicroPython v1.27.0's API (ESP32_GENERIC-OTA, ESP8266_GENERIC).

A script run on each virtual chip dumps every module it can import, with each attribute's
kind and value and each class's members, and the test compares the dump with the release's
API table (``harness/emu/mpy_api``, extracted from MicroPython's sources at the tag): no
name the real port lacks, no constant with another value, u-aliases exactly where the port
has them, and what is missing only what a virtual board cannot have (``ABSENT``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_micropython import mpremote

from harness.chips import chip as chip_class
from harness.emu.mpy_api import ABSENT, TABLE, port_table

pytestmark = pytest.mark.timeout(300)

# Names every class or module has whatever defines it, and what a class defined in Python
# (the port layer's) carries for the interpreter's own use: not part of any API.
GENERIC = {"__class__", "__dict__", "__bases__", "__name__", "__module__", "__qualname__", "__init__", "__new__",
           "__repr__", "__str__", "__getattr__", "__setattr__", "__module_id__"}
# A stream defined in Python needs ``ioctl`` for poll and close (a native socket has it in C).
STREAM_PROTOCOL = {"ioctl"}
# A frozen module is a .py file: what it imports and what freezing adds are in it too (the
# table lists what ssl exports; its source begins with `import tls`).
FROZEN_OWN = {"ssl": {"tls", "__file__", "__version__"}}
# Core type members the interpreter build carries beyond the port's configuration: builtins
# cannot be changed from Python. Listed so any other difference fails.
# The ESP8266 port is built without these (MICROPY_PY_BUILTINS_STR_CENTER, _STR_PARTITION,
# _STR_SPLITLINES, _COMPLEX, _COMPILE, _EXECFILE, _NOTIMPLEMENTED off); the interpreter's
# core types are read-only, so they stay. README: what a virtual board is not.
_NARROW_TEXT = {"center", "partition", "rpartition", "splitlines"}
CORE = {
    "esp32": {},
    "esp8266": {"builtins": {"NotImplemented", "compile", "complex", "execfile"},
                "builtins.str": _NARROW_TEXT, "builtins.bytes": _NARROW_TEXT, "builtins.bytearray": _NARROW_TEXT},
}
SHARED_TABLE = Path(__file__).resolve().parents[3] / "shared" / "specs" / "micropython-api" / "v1.27.0.json"


def _candidates(chip: str) -> list[str]:
    port = port_table(chip)
    names = set(port["builtin_modules"]) | set(port["modules"]) | set(port["frozen_modules"])
    aliases = {"u" + n for n in names if not n.startswith("_")}
    # What the unix port offers and no ESP port has; the port layer's own modules.
    host_only = {"termios", "ffi", "argparse", "_libc", "jni", "_hil", "host", "_boot", "_blockcache", "_flashbdev",
                 "_port_new", "_port_machine", "_unix", "uselect", "usys", "upip", "_os_builtin", "_time_builtin"}
    return sorted(names | aliases | host_only - {"__main__"})


def _dump(board, chip: str) -> dict:
    src = (Path(__file__).with_name("mpy_dump.py").read_text()
           .replace("CANDIDATES = []", "CANDIDATES = " + json.dumps(_candidates(chip))))
    out = mpremote(board, "exec", src).stdout
    result = {}
    for chunk in out.split("DUMP ")[1:]:
        name, _, body = chunk.partition(" ")
        result[name] = json.loads(body.replace("\r", "").replace("\n", ""))
    return result


def test_the_table_shipped_is_the_specification():
    # The port layer reads its own copy; it must be the project's specification, word for word.
    if SHARED_TABLE.exists():
        assert json.loads(TABLE.read_text()) == json.loads(SHARED_TABLE.read_text())


@pytest.mark.parametrize("chip", ["esp32", "esp8266"])
def test_every_module_matches_the_release(mpy_board, chip):
    board = mpy_board(chip)
    dump = _dump(board, chip)
    port = port_table(chip)
    table = port["modules"]
    problems: list[str] = []
    ext = set(port["extensible"])
    builtin = set(port["builtin_modules"]) | set(table)
    for name, found in sorted(dump.items()):
        base = name[1:] if name.startswith("u") and name[1:] in builtin else None
        if base is not None and name not in builtin:
            if ABSENT.get(base) == "*":
                continue
            # A u-alias: present exactly for the extensible modules, and the same module.
            if (found is not None) != (base in ext):
                problems.append(f"import {name}: {'works' if found else 'fails'}, the port "
                                f"{'has' if base in ext else 'has no'} this alias")
            elif found is not None and dump.get(base) and found["__module_id__"] != dump[base]["__module_id__"]:
                problems.append(f"import {name} is not the same module as {base}")
            continue
        if name not in builtin and name not in port["frozen_modules"]:
            if found is not None:
                problems.append(f"import {name} works; the port has no such module")
            continue
        if name not in table:
            continue  # a frozen module without a table entry: importable or not, nothing to compare
        absent = ABSENT.get(name, set())
        if found is None:
            if absent != "*":
                problems.append(f"import {name} fails; the port has it")
            continue
        want = table[name]["names"]
        for attr, (kind, value) in sorted(found.items()):
            if attr in GENERIC or attr in FROZEN_OWN.get(name, ()) or attr in CORE[chip].get(name, ()):
                continue
            spec = want.get(attr)
            if spec is None:
                problems.append(f"{name}.{attr}: not in the port")
                continue
            if spec["kind"] in ("int", "const") and spec.get("value") is not None and value != spec["value"]:
                problems.append(f"{name}.{attr} = {value!r}, the port has {spec['value']!r}")
            if spec["kind"] == "str" and attr != "__name__" and value != spec.get("value"):
                problems.append(f"{name}.{attr} = {value!r}, the port has {spec.get('value')!r}")
            if spec["kind"] == "class" and kind == "class":
                members = spec.get("members") or {}
                if not isinstance(members, dict):
                    members = {m: {"kind": "function"} for m in members}
                allowed = GENERIC | STREAM_PROTOCOL | CORE[chip].get(f"{name}.{attr}", set())
                for member, number in sorted(value.items()):
                    if member in allowed or (member.startswith("__") and member not in ("__enter__", "__exit__")):
                        continue
                    m = members.get(member)
                    if m is None:
                        problems.append(f"{name}.{attr}.{member}: not in the port")
                    elif m.get("kind") == "int" and m.get("value") is not None and number != m["value"]:
                        problems.append(f"{name}.{attr}.{member} = {number}, the port has {m['value']}")
        for attr in sorted(set(want) - set(found)):
            if attr in absent or attr in GENERIC:
                continue
            problems.append(f"{name}.{attr}: missing (the port has it)")
    same = chip_class(chip).micropython.same_module
    for a, b in same.items():
        if dump.get(a) and dump.get(b) and dump[a]["__module_id__"] != dump[b]["__module_id__"]:
            problems.append(f"{a} and {b} are one module on the port")
    assert not problems, f"{len(problems)} differences from MicroPython v1.27.0 on {chip}:\n" + "\n".join(problems)
