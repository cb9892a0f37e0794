"""The agent's modules compiled by mpy-cross once: kept in memory and under $XDG_CACHE_HOME/esp-ota-hil/mpy/.

Each test gets an empty cache directory of its own (XDG_CACHE_HOME in tmp_path) and an
empty in-memory cache, and counts how often mpy-cross really runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from harness import deploy
from harness.deploy import compile_module

SOURCE = b"def answer():\n    return 42\n"
ROOT = Path(__file__).resolve().parents[2]


class Runs:
    """Stands in for the ``subprocess`` module of harness.deploy: counts mpy-cross runs, or refuses them."""

    def __init__(self, allowed: bool = True):
        self.allowed = allowed
        self.calls: list[list[str]] = []

    def run(self, cmd, *args, **kwargs):
        self.calls.append(list(cmd))
        if not self.allowed:
            raise AssertionError(f"mpy-cross ran although the module is cached: {cmd}")
        return subprocess.run(cmd, *args, **kwargs)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache: XDG_CACHE_HOME in tmp_path, nothing in memory; returns the .mpy directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(deploy, "_COMPILED", {})
    return tmp_path / "xdg" / "esp-ota-hil" / "mpy"


def counting(monkeypatch, allowed: bool = True) -> Runs:
    runs = Runs(allowed)
    monkeypatch.setattr(deploy, "subprocess", types.SimpleNamespace(run=runs.run))
    return runs


def test_the_first_call_runs_mpy_cross_and_leaves_one_mpy_file(cache, monkeypatch):
    runs = counting(monkeypatch)
    data = compile_module("answer.py", SOURCE)
    assert len(runs.calls) == 1 and "answer.py" in runs.calls[0]
    assert data[:2] == b"M\x06"  # .mpy, bytecode version 6
    files = list(cache.iterdir())
    assert [f.suffix for f in files] == [".mpy"]  # no temporary file left behind
    assert files[0].read_bytes() == data


def test_a_second_call_returns_the_same_bytes_without_mpy_cross(cache, monkeypatch):
    first = compile_module("answer.py", SOURCE)
    runs = counting(monkeypatch, allowed=False)
    assert compile_module("answer.py", SOURCE) == first
    assert runs.calls == []


def test_the_disk_cache_serves_a_process_with_an_empty_memory(cache, monkeypatch):
    first = compile_module("answer.py", SOURCE)
    monkeypatch.setattr(deploy, "_COMPILED", {})
    runs = counting(monkeypatch, allowed=False)
    assert compile_module("answer.py", SOURCE) == first
    assert runs.calls == []


def test_the_disk_cache_serves_a_fresh_process(cache, tmp_path):
    first = compile_module("answer.py", SOURCE)
    script = textwrap.dedent(f"""\
        import hashlib, sys
        sys.path.insert(0, {str(ROOT)!r})
        from harness import deploy

        def refuse(*args, **kwargs):
            raise SystemExit("mpy-cross ran although the module is on disk")

        deploy.subprocess.run = refuse
        print(hashlib.sha256(deploy.compile_module("answer.py", {SOURCE!r})).hexdigest())
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == hashlib.sha256(first).hexdigest()


def test_a_changed_source_compiles_again(cache, monkeypatch):
    runs = counting(monkeypatch)
    first = compile_module("answer.py", SOURCE)
    changed = compile_module("answer.py", SOURCE.replace(b"42", b"43"))
    assert len(runs.calls) == 2
    assert changed != first
    assert len(list(cache.glob("*.mpy"))) == 2
    # and both stay cached
    runs.allowed = False
    assert compile_module("answer.py", SOURCE) == first
    assert compile_module("answer.py", SOURCE.replace(b"42", b"43")) == changed


def test_a_changed_name_compiles_again(cache, monkeypatch):
    runs = counting(monkeypatch)
    first = compile_module("answer.py", SOURCE)
    renamed = compile_module("question.py", SOURCE)
    assert len(runs.calls) == 2 and "question.py" in runs.calls[1]
    assert renamed != first  # the module's source name is in the .mpy
    assert b"question.py" in renamed and b"answer.py" in first


def test_a_changed_mpy_cross_compiles_again(cache, monkeypatch, tmp_path):
    exe = tmp_path / "bin" / "mpy-cross"
    exe.parent.mkdir()
    shutil.copy2(deploy._mpy_cross(), exe)
    monkeypatch.setattr(deploy, "_mpy_cross", lambda: str(exe))
    runs = counting(monkeypatch)
    first = compile_module("answer.py", SOURCE)
    assert compile_module("answer.py", SOURCE) == first and len(runs.calls) == 1
    st = exe.stat()
    os.utime(exe, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new mpy-cross at the same path
    assert compile_module("answer.py", SOURCE) == first
    assert len(runs.calls) == 2


def test_an_unwritable_cache_dir_still_compiles(tmp_path, monkeypatch):
    # the cache's parent is a file: the directory cannot be created (whoever runs the tests, root too)
    blocker = tmp_path / "xdg"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(deploy, "_COMPILED", {})
    runs = counting(monkeypatch)
    data = compile_module("answer.py", SOURCE)
    assert data[:2] == b"M\x06" and len(runs.calls) == 1
    assert compile_module("answer.py", SOURCE) == data and len(runs.calls) == 1  # memory still serves
    monkeypatch.setattr(deploy, "_COMPILED", {})
    assert compile_module("answer.py", SOURCE) == data
    assert len(runs.calls) == 2  # nothing on disk: compiled again
    assert blocker.read_text() == "not a directory"


def test_a_cached_module_compiles_like_mpy_cross_does(cache, tmp_path):
    data = compile_module("answer.py", SOURCE)
    src = tmp_path / "answer.py"
    src.write_bytes(SOURCE)
    subprocess.run([deploy._mpy_cross(), "-o", str(tmp_path / "answer.mpy"), "-s", "answer.py", str(src)],
                   check=True, capture_output=True)
    assert (tmp_path / "answer.mpy").read_bytes() == data
    assert compile_module("answer.py", SOURCE) == data


def test_a_source_mpy_cross_rejects_is_a_deploy_error_and_not_cached(cache, monkeypatch):
    with pytest.raises(deploy.DeployError, match=r"^mpy-cross cannot compile broken\.py: "):
        compile_module("broken.py", b"def (:\n")
    assert not cache.exists() or list(cache.iterdir()) == []
    assert deploy._COMPILED == {}
