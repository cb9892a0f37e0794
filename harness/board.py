"""Board: what a scenario drives, the same for a board on a bench and a virtual one.

It bundles the power switch, the serial console, esptool (``harness.flashing``), the
snapshots of a virtual board's prepared flash and the boot-state oracle
(``harness.bootstate``). What runs on the board is a device implementation
(``harness.devices``): it uses these to put itself on the board, and the board knows it only
as :attr:`Board.device` (whose console parser and flash layout are the board's while it is
there). Only :func:`open_board` knows the difference between real and virtual boards: a
virtual board is started here and powered through its control endpoint; a real one is
reached through the rig's port selector and power switch.

A board is left powered off when it is closed, whatever happened before (unless the
rig says ``leave_on``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .bootstate import BootState, read_boot_state
from .chips import chip as chip_class
from .console import Console, NoEvents, OtaEvent
from .errors import InfrastructureError
from .firmware import FlashPart
from .flashing import Flasher
from .power.base import PowerSwitch

if TYPE_CHECKING:
    from .devices.base import Device

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
        #: the device implementation on the board (``harness.devices``), once one has been put there
        self.device: Device | None = None
        self._table = None
        # Images this run wrote or served: the boot-state oracle recognises them by MD5.
        self.known_images: list[bytes] = []
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
        #: the labgrid place a farm board is (``harness.farm.provider.PlaceHolding``), given back on close
        self.farm = None

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

    # -- the device implementation on the board ------------------------------------------------------------
    def use_device(self, device: Device | None) -> None:
        """``device`` is now what runs on the board: its console lines are events, its baseline the flash layout."""
        self.device = device
        self.console.parser = device.parser if device is not None else NoEvents()
        self._table = None

    def baseline_parts(self) -> list[FlashPart]:
        """The baseline images of the device on the board: where the board's flash layout comes from."""
        if self.device is None:
            raise BoardError(f"board {self.name}: no device implementation has been put on it yet")
        return self.device.baseline_parts()

    def wait_ready(self, since: int | None = None, timeout: float | None = None) -> OtaEvent:
        """Wait until the device on the board is ready (its ``ready`` event after ``since``)."""
        if self.device is None:
            raise BoardError(f"board {self.name}: no device implementation has been put on it yet")
        return self.device.wait_ready(since=since, timeout=timeout)

    def restore_firmware(self, parts: Sequence[FlashPart] | None = None, erase: Sequence[str] = ()) -> None:
        """The baseline images in place (written only where their MD5 differs) and booting first.

        Erasing otadata makes an ESP32 boot its first app again, whatever an update did before;
        ``erase`` names more partitions of the table to erase (e.g. ``nvs``, where a client keeps its
        state). The board is reset afterwards (its boot is in the console).
        """
        parts = list(self.baseline_parts() if parts is None else parts)
        self.remember_image(*(p.data for p in parts))
        regions = []
        if chip_class(self.chip).has_partition_table:
            table = self.partition_table(parts)
            if table.otadata is not None:
                regions.append((table.otadata.offset, table.otadata.size))
            for label in erase:
                found = table.find(label)
                if found is not None:
                    regions.append((found.offset, found.size))
        with self.flasher() as f:
            f.write([(p.offset, p.data) for p in parts], skip_unchanged=True)
            for offset, size in regions:
                f.erase_region(offset, size)

    def partition_table(self, parts: Sequence[FlashPart] | None = None):
        """The ESP32 partition table a baseline puts on the board (read from its images, at 0x8000): ``parts``, or
        the baseline of the device on the board."""
        from .esp.errors import FormatError
        from .esp.partition_table import PartitionTable

        if parts is not None or self._table is None:
            table = None
            for part in self.baseline_parts() if parts is None else parts:
                if part.offset <= PARTITION_TABLE_OFFSET < part.offset + len(part.data):
                    start = PARTITION_TABLE_OFFSET - part.offset
                    try:
                        table = PartitionTable.from_bytes(part.data[start:start + PARTITION_TABLE_SIZE])
                    except FormatError as e:
                        raise BoardError(f"board {self.name}: the baseline's partition table at 0x8000 "
                                         f"({part.name}) does not parse: {e}") from None
                    break
            else:
                raise BoardError(f"board {self.name}: no baseline image holds a partition table at 0x8000")
            if parts is not None:
                return table
            self._table = table
        return self._table

    def baseline_slot(self):
        """The app partition the baseline state boots: the one that boots with blank otadata (factory if there is
        one, else ota_0)."""
        from .esp import boot as rules
        from .esp.otadata import parse_otadata

        return rules.get_boot_partition(self.partition_table(), parse_otadata(b"\xff" * 0x2000))

    def update_slot(self):
        """The app partition an update from the baseline state writes: ESP-IDF's next update partition after
        :meth:`baseline_slot`."""
        from .esp import boot as rules

        return rules.get_next_update(self.partition_table(), self.baseline_slot())

    def remember_image(self, *images: bytes) -> None:
        for image in images:
            if image not in self.known_images:
                self.known_images.append(image)

    def boot_state(self, files_region: tuple[int, int] | None = None) -> BootState:
        """Read the flash and decode what boots next (``files_region``: where a file system with slot records is;
        by default where the device on the board says).

        A bench board is read with esptool, after which it is reset and boots. A virtual board
        is read from its flash file, where nothing is reset; its first read also goes through
        esptool, and a difference between the two is an error (the esptool path stays tested).
        ``last_read_reset`` tells whether the board was reset.
        """
        region = files_region
        if region is None and self.device is not None:
            region = self.device.files_region()
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

    def efuse_secure_version(self) -> int | None:
        """The chip's anti-rollback eFuse (SECURE_VERSION, the number of bits set): a virtual board's, from its
        control endpoint (``harness.emu.efuse``); None for a bench board (the harness does not read its eFuses)."""
        if self.virtual is None:
            return None
        return int(self.virtual.control.stats()["efuse"]["secure_version"])

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

    # -- snapshots of a virtual board -------------------------------------------------------------------
    @staticmethod
    def snapshot_key(inputs: Mapping[str, str]) -> str:
        return _digest(inputs)

    def saved_inputs(self) -> dict[str, dict[str, str]]:
        """The inputs (what went into the flash: images, files, device) of every saved snapshot, by key."""
        return dict(self._saved_inputs)

    def save_snapshot(self, inputs: Mapping[str, str], ready: Callable[[int], object]) -> str:
        """Save the flash as it is now under ``inputs`` (the board switched off for it: nothing is half-written),
        then switch it on again and wait with ``ready(mark)``; returns the key."""
        key = _digest(inputs)
        mark = self.console.mark()
        self.power_off()
        self._saved[key] = self.flash_file().path.read_bytes()
        self._saved_inputs[key] = dict(inputs)
        self.power_on()
        ready(mark)
        return key

    def restore_snapshot(self, key: str, ready: Callable[[int], object]) -> None:
        """Put a saved flash back while the board is off and switch it on; ``ready(mark)`` waits for the device."""
        self.power_off()
        with open(self.flash_file().path, "r+b") as f:
            f.write(self._saved[key])
        mark = self.console.mark()
        self.power_on()
        ready(mark)

    # -- teardown ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Leave the board powered off (unless the rig says leave_on) and release everything."""
        try:
            if not getattr(self.rig, "leave_on", False):
                self.power_off()
        finally:
            try:
                self.console.close()
                self.power.close()
                if self.virtual is not None:
                    self.virtual.stop()
            finally:
                if self.farm is not None:
                    self.farm.release()  # switched off and its port closed: another run may take it now


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
    if getattr(spec, "farm", None) is not None:
        # a place of the labgrid farm: reserved, acquired and checked; its resources give port and power
        from .farm.provider import open_place

        holding = open_place(spec, rig)
        try:
            board = Board(spec, rig, workdir, holding.url, holding.power)
        except BaseException:
            holding.power.close()
            holding.release()
            raise
        board.farm = holding
        return board
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
