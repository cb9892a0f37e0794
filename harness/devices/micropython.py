"""The MicroPython OTA agent (``device_fw/micropython/``) as a device implementation.

Put on a board as a MicroPython baseline (the built-in one of virtual boards or the rig's
release binaries) plus the agent's files, copied with stock mpremote (``harness.deploy``);
an update is offered as a manifest on the run's HTTP server and taken through the serial
command (``otaagent.update(kind, url)`` in the raw REPL); the agent reports every event as
one line ``OTA <event> key=value ...`` (``device_fw/micropython/README.md``). Update kinds:
firmware (ESP32) and files (both chips).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from ..chips import chip as chip_class
from ..console import OtaEvent
from ..deploy import RM_TREE, agent_files, bundle_manifest, deploy
from ..firmware import FlashPart, app_bundle, micropython_baseline
from .base import Capability, Device, DeviceError, Published, publish_firmware

#: the application version the agent's slot a holds in the baseline state, and the next one
BASE_APP_VERSION = "1"
NEXT_APP_VERSION = "2"
#: the run's CA on the board (the agent's config ``ca``), for https updates
CA_FILE = "ca.pem"

_OTA_LINE = re.compile(r"^OTA ([a-z-]+)((?: [A-Za-z_]+=\S*)*)\s*$")


def parse_ota_line(line: str) -> tuple[str, dict[str, str]] | None:
    """``OTA <event> key=value ...`` -> (event, fields); None for any other line."""
    m = _OTA_LINE.match(line.strip())
    if not m:
        return None
    fields = dict(part.split("=", 1) for part in m.group(2).split())
    return m.group(1), fields


class AgentEvents:
    """The agent's console protocol: every line ``OTA <event> k=v ...`` is an event, fields as printed."""

    def parse_lines(self, lines: Iterable[str]) -> Iterator[tuple[int, str, dict[str, str]]]:
        for index, line in enumerate(lines):
            parsed = parse_ota_line(line)
            if parsed is not None:
                yield index, parsed[0], parsed[1]


class MicroPythonDevice(Device):
    kind = "micropython"
    capabilities = frozenset(Capability.ALL)
    #: the agent never confirms a version that failed its health check: the bootloader marks it ABORTED
    rolled_back_state = "ABORTED"
    variants = {"firmware": ("next", "same", "older", "tampered", "unhealthy", "bad_sha256", "bad_checksum",
                             "wrong_chip", "truncated", "truncated_header", "random"),
                "files": ("next", "same", "tampered", "unhealthy", "broken")}

    def __init__(self, spec, board, bench):
        super().__init__(spec, board, bench)
        self.config: dict = {}
        self.app_files: dict[str, bytes] = {}
        self.app_version = ""
        self.data_files: dict[str, bytes] = {}
        self._files_region: tuple[int, int] | None = None

    def make_parser(self) -> AgentEvents:
        return AgentEvents()

    # -- the baseline ----------------------------------------------------------------------------------
    def baseline_parts(self) -> list[FlashPart]:
        from ..board import _size_name

        if self.spec.baseline == "micropython":
            return micropython_baseline(self.board.chip, flash_size=_size_name(self.board.spec.flash_size))
        return [FlashPart(p.offset, Path(p.path).read_bytes(), Path(p.path).name) for p in self.spec.baseline]

    def baseline_version(self, kind: str) -> str:
        if kind == "firmware":
            return self.firmware().version
        return BASE_APP_VERSION

    def baseline_versions(self) -> dict[str, str]:
        """The firmware (where it can be updated), the file slot's version and the application's own."""
        from ..rig import DEVICE_UPDATES

        kinds = DEVICE_UPDATES[self.kind][self.board.chip]
        return {**{kind: self.baseline_version(kind) for kind in kinds}, "app": BASE_APP_VERSION}

    def prepare(self, config_extra: Mapping | None = None, data: Mapping[str, bytes] | None = None) -> None:
        """Baseline firmware, the agent with the board's config (plus ``config_extra``, e.g. ``mqtt``, ``ca``),
        ``data`` files (e.g. a CA certificate) and application 1 in slot a; ready."""
        # https is verified against the run's CA (hil ca): the agent gets it as ca.pem
        config = {**self.bench.config_for(self.board), "ca": CA_FILE, **(config_extra or {})}
        data = {CA_FILE: self.bench.ca_pem(), **(data or {})}
        mutation = self.bench.mutation_for(self.kind)
        extra = mutation.apply() if mutation is not None else None
        self.install(config, BASE_APP_VERSION, app_bundle(BASE_APP_VERSION), extra=extra, data=data)

    def install(self, config: Mapping, app_version: str, app_files: Mapping[str, bytes],
                extra: Mapping[str, bytes] | None = None, data: Mapping[str, bytes] | None = None) -> None:
        """Baseline firmware, the agent, ``config`` and application ``app_version`` in slot a; wait for ready.

        The agent is copied with mpremote only when what the board holds differs; otherwise
        only the application slots are reset (before the firmware reset, so the board boots
        straight into the baseline without a trial boot to sit through). A virtual board
        restores the flash it saved after the first such preparation instead, and writes only
        the files that differ from it.
        """
        board = self.board
        was_here = self.take_board()
        self.config = dict(config)
        self.app_files = dict(app_files)
        self.app_version = app_version
        self.data_files = dict(data or {})
        if board.snapshots:
            inputs = self._inputs(extra)
            key = board.snapshot_key(inputs)
            saved = board.saved_inputs()
            if key in saved:
                board.restore_snapshot(key, self._ready)
                self.installed = True
                return
            near = self._near_snapshot(inputs, saved)
            if near is not None:
                # the same firmware, agent and application: restore that, then write only what differs
                changes = {n: d for n, d in self._expected_files(extra).items() if inputs[n] != saved[near].get(n)}
                board.restore_snapshot(near, self._ready)
                self.write_files(changes)
                board.save_snapshot(inputs, self._ready)  # one boot with the new files: the one the case gets
                self.installed = True
                return
        if board.power.state() is False:  # e.g. a scenario that cut the power failed before restoring it
            board.power_on()
        in_place = was_here and self._reset_slots_if_agent_matches(extra)
        mark = board.console.mark()
        board.restore_firmware(self.baseline_parts())
        if not in_place:
            self.wait_boot(since=mark)
            if not self._reset_slots_if_agent_matches(extra):
                with board.port_lent():
                    deploy(board.url, self.config, app_version, app_files, extra=extra, reset=False,
                           data=self.data_files)
            mark = board.console.mark()
            board.console.hard_reset()
        self.wait_ready(since=mark)
        self.installed = True
        if board.snapshots:
            board.save_snapshot(inputs, self._ready)

    def _inputs(self, extra: Mapping[str, bytes] | None) -> dict[str, str]:
        """SHA-256 of everything that goes into the prepared flash: the device, baseline images and every file."""
        inputs = {"device": self.kind}
        inputs.update({f"flash:0x{p.offset:x}": hashlib.sha256(p.data).hexdigest() for p in self.baseline_parts()})
        inputs["chip"] = f"{self.board.chip} {self.board.spec.flash_size}"
        for name, data in self._expected_files(extra).items():
            inputs[name] = hashlib.sha256(data).hexdigest()
        return inputs

    @staticmethod
    def _near_snapshot(inputs: dict[str, str], saved: dict[str, dict[str, str]]) -> str | None:
        """A saved state that differs from ``inputs`` only in files outside the firmware, agent code and slots."""
        def fixed(d: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in d.items() if k.startswith(("device", "flash:", "chip", "lib/", "slots/"))
                    or k in ("boot.py", "main.py")}

        for key, before in saved.items():
            if fixed(before) == fixed(inputs) and not set(before) - set(inputs):
                return key
        return None

    def _expected_files(self, extra: Mapping[str, bytes] | None) -> dict[str, bytes]:
        files = {**agent_files(self.config, extra), **self.data_files}
        for name, data in self.app_files.items():
            files[f"slots/a/{name}"] = data
        return files

    def _reset_slots_if_agent_matches(self, extra: Mapping[str, bytes] | None) -> bool:
        """One REPL call: if every agent and slot-a file has the expected SHA-256, put slot a back in charge."""
        want = {name: hashlib.sha256(data).hexdigest() for name, data in self._expected_files(extra).items()}
        manifest = json.dumps(bundle_manifest(self.app_version, self.app_files))
        state = json.dumps({"active": "a", "previous": None, "pending": False, "tries": 0})
        code = ("import os, hashlib, binascii\n"
                f"want = {want!r}\n"
                "def sha(n):\n"
                "    try:\n"
                "        h = hashlib.sha256()\n"
                "        with open(n, 'rb') as f:\n"
                "            while True:\n"
                "                b = f.read(1024)\n"
                "                if not b:\n"
                "                    break\n"
                "                h.update(b)\n"
                "        return binascii.hexlify(h.digest()).decode()\n"
                "    except OSError:\n"
                "        return '-'\n"
                "diff = [n for n in want if sha(n) != want[n]]\n"
                + RM_TREE +
                "if not diff:\n"
                "    rm('slots/b')\n"
                "    for n in os.listdir('/'):\n"
                "        if n.endswith('.new') or n.endswith('.part'):\n"
                "            os.remove(n)\n"
                # Closed at once: a file left to the garbage collector is not on flash before a reset.
                f"    with open('slots/a/.manifest.json', 'w') as f:\n"
                f"        f.write({manifest!r})\n"
                f"    with open('ota_state.json', 'w') as f:\n"
                f"        f.write({state!r})\n"
                "print('DIFF', diff)\n")
        try:
            out = self.exec(code, timeout=10)
        except Exception:
            return False
        return "DIFF []" in out

    # -- the REPL ----------------------------------------------------------------------------------------
    def exec(self, code: str, timeout: float = 30.0) -> str:
        """Run ``code`` in the board's raw REPL (what mpremote does) and return what it printed."""
        return self.board.console.exec_raw(code, timeout=timeout)

    def write_files(self, files: Mapping[str, bytes]) -> None:
        """Write ``files`` (path -> bytes) on the board through the raw REPL, creating directories."""
        for name, data in files.items():
            code = ("import os\n"
                    f"p = {name!r}\n"
                    "d = ''\n"
                    "for part in p.split('/')[:-1]:\n"
                    "    d = d + '/' + part if d else part\n"
                    "    try:\n"
                    "        os.mkdir(d)\n"
                    "    except OSError:\n"
                    "        pass\n"
                    "with open(p, 'wb') as f:\n")
            for i in range(0, len(data), 512):
                code += f"    f.write({data[i:i + 512]!r})\n"
            if not data:
                code += "    pass\n"
            self.exec(code, timeout=30)

    def wait_boot(self, since: int, timeout: float | None = None) -> None:
        """Wait until MicroPython runs after a reset: its banner, or the agent's boot.py line.

        The banner comes only when the REPL starts, after main.py: a main.py that keeps running
        (the agent waiting for MQTT offers) never shows it, on a bench as on a virtual board.
        """
        self.board.console.expect(r"MicroPython v\S+ on |OTA slot ", timeout or self.board.spec.boot_timeout + 10,
                                  since=since)

    def wait_ready(self, since: int | None = None, timeout: float | None = None) -> OtaEvent:
        """Wait for the agent's ``OTA ready`` line (it has confirmed or rolled back whatever was on trial)."""
        return super().wait_ready(since=since, timeout=timeout)

    def files_region(self) -> tuple[int, int] | None:
        """(offset, size) of the MicroPython filesystem; ESP32 boards find it in their partition table."""
        if chip_class(self.board.chip).has_partition_table:
            return None
        if self._files_region is None:
            # What MicroPython's esp8266 port uses: from flash_user_start + 1 reserved sector to
            # 20 KiB before the end (asked once, it depends on the firmware build).
            out = self.exec("import esp; print(esp.flash_user_start(), esp.flash_size())")
            start, size = (int(x) for x in out.split())
            first = start // 0x1000 + 1
            self._files_region = (first * 0x1000, ((size - 20480) // 0x1000 - first) * 0x1000)
        return self._files_region

    # -- updates -------------------------------------------------------------------------------------------
    def publish(self, kind: str, variant: str, prefix: str, server=None) -> Published:
        if kind == "firmware":
            return publish_firmware(self, prefix, variant, manifest=True, server=server)
        if kind == "files":
            return self._publish_files(prefix, variant, server)
        raise DeviceError(f"{self.kind} takes no {kind!r} updates")

    def _publish_files(self, prefix: str, variant: str, server=None) -> Published:
        if variant not in self.variants["files"]:
            raise DeviceError(f"no files variant {variant!r} (known: {', '.join(self.variants['files'])})")
        http = server or self.bench.http
        version = BASE_APP_VERSION if variant == "same" else NEXT_APP_VERSION
        files = app_bundle(version, healthy=variant != "unhealthy", broken=variant == "broken")
        manifest = bundle_manifest(version, files)
        for entry in manifest["files"]:
            entry["url"] = entry["name"]
        if variant == "tampered":
            # The data file is served with one byte changed; the manifest keeps the genuine digest.
            files = dict(files)
            data = bytearray(files["assets/data.bin"])
            data[len(data) // 2] ^= 0x5A
            files["assets/data.bin"] = bytes(data)
        paths = []
        for name, data in files.items():
            http.add(f"{prefix}/{name}", data)
            paths.append(f"{prefix}/{name}")
        http.add_json(f"{prefix}/manifest.json", manifest)
        blob = b"".join(files.values())
        return Published("files", version, http.url_for(f"{prefix}/manifest.json"), paths, len(blob),
                         hashlib.sha256(blob).hexdigest(), {f"{prefix}/{n}": len(d) for n, d in files.items()})

    def trigger(self, pub: Published) -> int:
        return self.update(pub.kind, pub.url)

    def update(self, kind: str, manifest_url: str) -> int:
        """The serial command: run an HTTP(S) pull of ``manifest_url`` from the REPL; returns the console mark."""
        console = self.board.console
        mark = console.mark()
        # The raw REPL's "OK" has no line end after it: start the device's output on a new line.
        console.exec_raw(f"print()\nimport otaagent\notaagent.update({kind!r}, {manifest_url!r})\n", wait=False)
        return mark

    def other_slot_fingerprint(self, kind: str) -> str:
        """Firmware: the MD5 of the next update partition; files: of the listing of slot b."""
        if kind == "firmware":
            return super().other_slot_fingerprint(kind)
        out = self.exec("import os\ntry:\n    print(sorted(os.listdir('slots/b')))\nexcept OSError:\n"
                        "    print('absent')")
        return hashlib.md5(out.encode()).hexdigest()
