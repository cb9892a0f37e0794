"""Board: what a scenario drives, the same for a board on a bench and a virtual one.

It bundles the power switch, the serial console, esptool (``harness.flashing``), the
agent deployment (``harness.deploy``) and the boot-state oracle (``harness.bootstate``).
Only :func:`open_board` knows the difference between real and virtual boards: a virtual
board is started here and powered through its control endpoint; a real one is reached
through the rig's port selector and power switch.

A board is left powered off when it is closed, whatever happened before (unless the
rig says ``leave_on``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .bootstate import BootState, read_boot_state
from .console import Console
from .deploy import RM_TREE, agent_files, deploy
from .errors import InfrastructureError
from .firmware import FlashPart, micropython_baseline
from .flashing import Flasher
from .power.base import PowerSwitch

#: where an ESP32's partition table is (the bootloader's CONFIG_PARTITION_TABLE_OFFSET default)
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_SIZE = 0xC00


class BoardError(InfrastructureError, RuntimeError):
    """A board could not be brought into the state a test needs (infrastructure, not product)."""


class Board:
    def __init__(self, spec, rig, workdir: Path, url: str, power: PowerSwitch, virtual=None):
        self.spec = spec
        self.rig = rig
        self.name: str = spec.name
        self.chip: str = spec.chip
        self.workdir = workdir
        self.url = url
        self.power = power
        self.virtual = virtual  # harness.emu.launcher.VirtualBoard for virtual boards
        self.console = Console(url, self.name, workdir / f"{self.name}.console.log")
        self.config: dict = {}
        self._agent_hashes: dict[str, str] | None = None
        self._files_region: tuple[int, int] | None = None
        self._table = None
        self.app_files: dict[str, bytes] = {}
        self.app_version = ""
        self.data_files: dict[str, bytes] = {}
        # Images this run wrote or served: the boot-state oracle recognises them by MD5.
        self.known_images: list[bytes] = []
        self._prepared = False
        #: a virtual board's boot state is read from its flash file (no esptool session, no reset);
        #: the first read of a board also goes through esptool, and the two must agree
        self.direct_reads = virtual is not None
        self._cross_checked = False
        #: whether the last boot-state read reset the board (an esptool session does)
        self.last_read_reset = False
        #: a virtual board's prepared flash, saved once and restored before each case
        self.snapshots = virtual is not None
        self._saved: dict[str, bytes] = {}
        self._saved_inputs: dict[str, dict[str, str]] = {}
        #: called with True before the board is switched on and False after it is switched off
        #: (the bench lock records it, so a run that dies with a board on is found by the next one)
        self.on_power: Callable[[bool], None] | None = None

    # -- power ----------------------------------------------------------------------------------
    def power_on(self) -> None:
        if self.on_power is not None:
            self.on_power(True)
        self.power.on()
        self.console.attach(timeout=self.spec.boot_timeout)

    def power_off(self) -> None:
        # A bench board's USB-UART may vanish with its power; a virtual board's port stays, and so
        # does the console, which then sees the next boot from its first byte.
        if self.virtual is None:
            self.console.release()
        self.power.off()
        if self.on_power is not None:
            self.on_power(False)

    def power_cycle(self) -> None:
        self.power_off()
        time.sleep(self.power.default_off_time)
        self.power_on()

    # -- esptool ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def flasher(self, reset: bool = True) -> Iterator[Flasher]:
        """esptool on the board's port; the console gives the port up meanwhile.

        Afterwards the console reattaches first and then resets the board (``reset``), so
        the boot output is in the log: what a chip prints while no one has the port open
        is lost, on a USB-UART bridge as on a virtual board.
        """
        with self.port_lent(reset=reset):
            with Flasher(self.url, chip=self.chip, baud=self.spec.baud, after="no-reset") as f:
                yield f

    @contextlib.contextmanager
    def port_lent(self, reset: bool = False) -> Iterator[None]:
        """The console gives the serial port up for the body (esptool, mpremote) and takes it back after.

        When the body fails, the console still takes the port back (and resets the board with
        ``reset``), but a failure to do so does not hide the body's error. When the run is being
        stopped (KeyboardInterrupt: Ctrl-C, SIGTERM) nothing is retried: the teardown switches
        the board off.
        """
        self.console.release()
        try:
            yield
        except KeyboardInterrupt:
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                self.console.attach(timeout=self.spec.boot_timeout)
                if reset:
                    self.console.hard_reset()
            raise
        self.console.attach(timeout=self.spec.boot_timeout)
        if reset:
            self.console.hard_reset()

    def baseline_parts(self) -> list[FlashPart]:
        if self.spec.baseline == "micropython":
            return micropython_baseline(self.chip, flash_size=_size_name(self.spec.flash_size))
        return [FlashPart(p.offset, Path(p.path).read_bytes(), Path(p.path).name) for p in self.spec.baseline]

    def restore_firmware(self) -> None:
        """The baseline firmware in place (written only where its MD5 differs) and booting first.

        Erasing otadata makes an ESP32 boot ota_0 again, whatever an update did before.
        """
        parts = self.baseline_parts()
        self.remember_image(*(p.data for p in parts))
        otadata = self.partition_table().otadata if self.chip == "esp32" else None
        with self.flasher() as f:
            f.write([(p.offset, p.data) for p in parts], skip_unchanged=True)
            if otadata is not None:
                f.erase_region(otadata.offset, otadata.size)

    def partition_table(self):
        """The ESP32 partition table the baseline puts on the board (read from its images, at 0x8000)."""
        from .esp.errors import FormatError
        from .esp.partition_table import PartitionTable

        if self._table is None:
            for part in self.baseline_parts():
                if part.offset <= PARTITION_TABLE_OFFSET < part.offset + len(part.data):
                    start = PARTITION_TABLE_OFFSET - part.offset
                    try:
                        self._table = PartitionTable.from_bytes(part.data[start:start + PARTITION_TABLE_SIZE])
                    except FormatError as e:
                        raise BoardError(f"board {self.name}: the baseline's partition table at 0x8000 "
                                         f"({part.name}) does not parse: {e}") from None
                    break
            else:
                raise BoardError(f"board {self.name}: no baseline image holds a partition table at 0x8000")
        return self._table

    def update_slot(self):
        """The app partition an update from the baseline state writes: ESP-IDF's next update partition after the
        one that boots with blank otadata (factory if there is one, else ota_0)."""
        from .esp import boot as rules
        from .esp.otadata import parse_otadata

        table = self.partition_table()
        blank = parse_otadata(b"\xff" * 0x2000)
        return rules.get_next_update(table, rules.get_boot_partition(table, blank))

    def remember_image(self, *images: bytes) -> None:
        for image in images:
            if image not in self.known_images:
                self.known_images.append(image)

    def boot_state(self) -> BootState:
        """Read the flash and decode what boots next.

        A bench board is read with esptool, after which it is reset and boots. A virtual board
        is read from its flash file, where nothing is reset; its first read also goes through
        esptool, and a difference between the two is an error (the esptool path stays tested).
        ``last_read_reset`` tells whether the board was reset.
        """
        region = self.files_region()
        self.last_read_reset = False
        if not self.direct_reads:
            self.last_read_reset = True
            self.console.note("boot state read with esptool (the board is reset afterwards)")
            with self.flasher() as f:
                return read_boot_state(f, self.chip, files_region=region, known=self.known_images)
        self.console.note("boot state read from the flash file")
        state = read_boot_state(self.flash_file(), self.chip, files_region=region, known=self.known_images)
        if not self._cross_checked:
            self.last_read_reset = True
            self.console.note("boot state read with esptool too, to check it (the board is reset afterwards)")
            with self.flasher() as f:
                via_esptool = read_boot_state(f, self.chip, files_region=region, known=self.known_images)
            # checked once it agreed: after a mismatch or a failed session the next read checks again
            self._cross_checked = via_esptool.to_dict() == state.to_dict()
            if not self._cross_checked:
                raise BoardError(f"board {self.name}: the boot state read from its flash file differs from what "
                                 f"esptool reads:\n{state.summary()}\n-- esptool --\n{via_esptool.summary()}")
        return state

    def flash_file(self):
        """A virtual board's flash as the oracle reads it (see :class:`harness.bootstate.FlashFile`)."""
        from .bootstate import FlashFile

        if self.virtual is None:
            raise BoardError(f"board {self.name} is not virtual: its flash is read with esptool")
        return FlashFile(self.virtual.info["flash_file"])

    def flash_md5(self, address: int, size: int) -> str:
        """MD5 of a flash region: from the flash file of a virtual board, else with esptool (the board is
        reset afterwards, and this returns once it is ready again)."""
        if self.direct_reads:
            return self.flash_file().md5(address, size)
        mark = self.console.mark()
        with self.flasher() as f:
            digest = f.md5(address, size)
        self.wait_ready(since=mark)
        return digest

    def files_region(self) -> tuple[int, int] | None:
        """(offset, size) of the MicroPython filesystem; ESP32 boards find it in their partition table."""
        if self.chip == "esp32":
            return None
        if self._files_region is None:
            # What MicroPython's esp8266 port uses: from flash_user_start + 1 reserved sector to
            # 20 KiB before the end (asked once, it depends on the firmware build).
            out = self.exec("import esp; print(esp.flash_user_start(), esp.flash_size())")
            start, size = (int(x) for x in out.split())
            first = start // 0x1000 + 1
            self._files_region = (first * 0x1000, ((size - 20480) // 0x1000 - first) * 0x1000)
        return self._files_region

    # -- the device implementation -----------------------------------------------------------------
    def exec(self, code: str, timeout: float = 30.0) -> str:
        return self.console.exec_raw(code, timeout=timeout)

    def prepare(self, config: Mapping, app_version: str, app_files: Mapping[str, bytes],
                extra: Mapping[str, bytes] | None = None, data: Mapping[str, bytes] | None = None) -> None:
        """Baseline firmware, the agent, ``config`` and application ``app_version`` in slot a; wait for ready.

        The agent is copied with mpremote only when what the board holds differs; otherwise
        only the application slots are reset (before the firmware reset, so the board boots
        straight into the baseline without a trial boot to sit through).
        """
        self.config = dict(config)
        self.app_files = dict(app_files)
        self.app_version = app_version
        self.data_files = dict(data or {})
        if self.snapshots:
            inputs = self._inputs(extra)
            key = _digest(inputs)
            if key in self._saved:
                self._restore(self._saved[key])
                return
            near = self._near_snapshot(inputs)
            if near is not None:
                # the same firmware, agent and application: restore that, then write only what differs
                self._restore(self._saved[near], changes={n: d for n, d in self._expected_files(extra).items()
                                                          if inputs[n] != self._saved_inputs[near].get(n)},
                              save_as=(key, inputs))
                return
        if self.power.state() is False:  # e.g. a scenario that cut the power failed before restoring it
            self.power_on()
        in_place = self._prepared and self._reset_slots_if_agent_matches(extra)
        mark = self.console.mark()
        self.restore_firmware()
        if not in_place:
            self.wait_boot(since=mark)
            if not self._reset_slots_if_agent_matches(extra):
                with self.port_lent():
                    deploy(self.url, self.config, app_version, app_files, extra=extra, reset=False,
                           data=self.data_files)
            mark = self.console.mark()
            self.console.hard_reset()
        self.wait_ready(since=mark)
        self._prepared = True
        if self.snapshots:
            self._save(key, inputs)

    # -- snapshots of a virtual board -------------------------------------------------------------------
    def _inputs(self, extra: Mapping[str, bytes] | None) -> dict[str, str]:
        """SHA-256 of everything that goes into the prepared flash: baseline images and every file."""
        inputs = {f"flash:0x{p.offset:x}": hashlib.sha256(p.data).hexdigest() for p in self.baseline_parts()}
        inputs["chip"] = f"{self.chip} {self.spec.flash_size}"
        for name, data in self._expected_files(extra).items():
            inputs[name] = hashlib.sha256(data).hexdigest()
        return inputs

    def _near_snapshot(self, inputs: dict[str, str]) -> str | None:
        """A saved state that differs from ``inputs`` only in files outside the firmware, agent code and slots."""
        def fixed(d: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in d.items() if k.startswith(("flash:", "chip", "lib/", "slots/"))
                    or k in ("boot.py", "main.py")}

        for key, saved in self._saved_inputs.items():
            if fixed(saved) == fixed(inputs) and not set(saved) - set(inputs):
                return key
        return None

    def _save(self, key: str, inputs: dict[str, str]) -> None:
        """Save the flash as it is now (the board switched off for it: nothing is half-written)."""
        mark = self.console.mark()
        self.power_off()
        self._saved[key] = self.flash_file().path.read_bytes()
        self._saved_inputs[key] = inputs
        self.power_on()
        self.wait_ready(since=mark)
        self._prepared = True

    def _restore(self, image: bytes, changes: Mapping[str, bytes] | None = None,
                 save_as: tuple[str, dict[str, str]] | None = None) -> None:
        """Put a saved flash back while the board is off, boot it to ready; then write ``changes`` (files) and
        save the result as ``save_as`` (switched off for it), after which the board boots once more, to ready."""
        self.power_off()  # (the baseline images are known since the full preparation that saved this flash)
        path = self.flash_file().path
        with open(path, "r+b") as f:
            f.write(image)
        mark = self.console.mark()
        self.power_on()
        self.wait_ready(since=mark)
        if changes:
            self.write_files(changes)
            if save_as is not None:
                self._save(*save_as)  # one boot with the new files, which is the one the case gets
            else:
                mark = self.console.mark()
                self.console.hard_reset()
                self.wait_ready(since=mark)
        self._prepared = True

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

    def _expected_files(self, extra: Mapping[str, bytes] | None) -> dict[str, bytes]:
        files = {**agent_files(self.config, extra), **self.data_files}
        for name, data in self.app_files.items():
            files[f"slots/a/{name}"] = data
        return files

    def _reset_slots_if_agent_matches(self, extra: Mapping[str, bytes] | None) -> bool:
        """One REPL call: if every agent and slot-a file has the expected SHA-256, put slot a back in charge."""
        from .deploy import bundle_manifest

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

    def wait_boot(self, since: int, timeout: float | None = None) -> None:
        """Wait until MicroPython runs after a reset: its banner, or the agent's boot.py line.

        The banner comes only when the REPL starts, after main.py: a main.py that keeps running
        (the agent waiting for MQTT offers) never shows it, on a bench as on a virtual board.
        """
        self.console.expect(r"MicroPython v\S+ on |OTA slot ", timeout or self.spec.boot_timeout + 10, since=since)

    def wait_ready(self, since: int | None = None, timeout: float | None = None):
        """Wait for the agent's ``OTA ready`` line (it has confirmed whatever was on trial)."""
        return self.console.expect_event("ready", timeout or self.spec.boot_timeout + 20,
                                         since=self.console.mark() if since is None else since)

    def trigger_update(self, kind: str, manifest_url: str) -> int:
        """The serial command: run an HTTP(S) pull of ``manifest_url`` from the REPL; returns the console mark."""
        mark = self.console.mark()
        # The raw REPL's "OK" has no line end after it: start the device's output on a new line.
        self.console.exec_raw(f"print()\nimport otaagent\notaagent.update({kind!r}, {manifest_url!r})\n", wait=False)
        return mark

    # -- teardown ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Leave the board powered off (unless the rig says leave_on) and release everything."""
        try:
            if not getattr(self.rig, "leave_on", False):
                self.power_off()
        finally:
            self.console.close()
            self.power.close()
            if self.virtual is not None:
                self.virtual.stop()


def _digest(inputs: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(sorted(inputs.items()))).encode()).hexdigest()


def _size_name(size: int) -> str:
    return f"{size // (1024 * 1024)}MB"


def open_board(spec, rig, workdir: Path) -> Board:
    """Start (virtual) or find (real) the board of ``spec``, powered off, console not yet attached.

    A virtual board wired to the rig's virtual relay (``spec.relay_channel``) is powered
    through the LCUS driver on the relay simulator's pty (``harness.emu.relay_bench``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if spec.virtual and spec.relay_channel is not None:
        from .emu.relay_bench import open_relay_board

        vb, relay = open_relay_board(spec, rig, workdir)
        return Board(spec, rig, workdir, vb.serial_url, relay, vb)
    if spec.virtual:
        from .emu.launcher import VirtualBoard
        from .power.virtual import VirtualPowerSwitch

        vb = VirtualBoard.start(spec.chip, str(workdir / f"{spec.name}.flash"), _size_name(spec.flash_size),
                                name=spec.name, power_off=True, console_log=None)
        return Board(spec, rig, workdir, vb.serial_url, VirtualPowerSwitch(vb.control_url, name=spec.name), vb)
    from .ports import PortError, resolve_port
    from .power import make_switch

    power = make_switch(spec.power.kind, dict(spec.power.options), spec.name)
    try:
        # the switch first: it answers at once or not at all, while a port may take seconds to appear
        power.state()
        try:
            url = resolve_port(spec.port, spec, timeout=0)
        except PortError:
            # a board powered through its USB cable has a port only when on; a dead switch fails here at once
            power.on()
            url = resolve_port(spec.port, spec)
    except BaseException:
        # No port, no board object to close later: the supply is switched off here.
        try:
            power.off()
        finally:
            power.close()
        raise
    return Board(spec, rig, workdir, url, power)
