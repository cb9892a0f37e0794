"""What the loader's RAM download (MEM_BEGIN / MEM_DATA / MEM_END) leaves in the chip's RAM,
and whether the code it jumps to is esptool's flasher stub.

A virtual chip cannot execute the uploaded code. It can *behave* as esptool's stub, but only
when what was uploaded is that stub: the text and data segments and the entry point of one of
the stub images shipped with the installed esptool (``esptool/targets/stub_flasher/<n>/<chip>.json``:
``1`` is the legacy flasher stub, ``2`` esp-flasher-stub, esptool's default). Any other code a
host jumps to leaves the chip running something the model cannot run: it goes silent, as a real
chip running unknown code does, until the next reset.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class StubImage:
    chip: str
    version: str  # esptool's stub directory name
    entry: int
    segments: tuple[tuple[int, bytes], ...]  # (load address, bytes): text, then data


def _stub_dir() -> str:
    # esptool.loader.StubFlasher.STUB_DIR, found without importing esptool (a fraction of a
    # second that would fall between MEM_END and the stub's greeting).
    spec = importlib.util.find_spec("esptool")
    if spec is None or spec.origin is None:
        raise RuntimeError("esptool is not installed: its stub images are the reference")
    return os.path.join(os.path.dirname(spec.origin), "targets", "stub_flasher")


@functools.lru_cache(maxsize=None)
def known_stubs(chip: str) -> tuple[StubImage, ...]:
    """The stub images the installed esptool can upload to ``chip`` (one per stub version)."""
    base = _stub_dir()
    found = []
    for version in sorted(os.listdir(base)):
        path = os.path.join(base, version, f"{chip}.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            desc = json.load(f)
        segments = [(desc["text_start"], base64.b64decode(desc["text"]))]
        if "data" in desc:
            segments.append((desc["data_start"], base64.b64decode(desc["data"])))
        found.append(StubImage(chip, version, desc["entry"], tuple(segments)))
    return tuple(found)


class Ram:
    """The bytes RAM downloads wrote, by region (one region per MEM_BEGIN)."""

    def __init__(self) -> None:
        self._regions: dict[int, bytearray] = {}
        self._current: bytearray | None = None

    def begin(self, addr: int) -> None:
        self._current = self._regions.setdefault(addr, bytearray())
        self._current.clear()

    def append(self, data: bytes) -> None:
        if self._current is not None:
            self._current += data

    def holds(self, addr: int, data: bytes) -> bool:
        """Whether ``data`` was downloaded to ``addr`` (within one region)."""
        for start, buf in self._regions.items():
            if start <= addr and addr + len(data) <= start + len(buf):
                return buf[addr - start : addr - start + len(data)] == data
        return False

    def stub_at(self, chip: str, entry: int) -> StubImage | None:
        """The esptool stub image whose entry is ``entry`` and whose segments RAM holds, if any."""
        for stub in known_stubs(chip):
            if stub.entry == entry and all(self.holds(a, d) for a, d in stub.segments):
                return stub
        return None
