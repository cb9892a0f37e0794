"""``hil rig check NAME``: is the bench ready? One row per board and check, before a run finds out.

For the rig (one row, board ``(rig)``):

* ``wifi``: the environment variables the rig names for the Wi-Fi credentials are set, when a
  bench board (one that is not virtual) is checked; virtual boards need none.

For every board of the rig (or those named with ``--board``):

* ``lock``: no other run holds the board (bench boards only; the check does not touch a busy board),
* ``power``: the switch answers: it is read back where the device can report its state (a
  virtual board's control endpoint, the virtual relay of ``emu-lcus``), then switched on,
* ``port``: the serial port is there (a board powered through its USB cable has one only when on),
* ``chip``: esptool finds the chip the rig names,
* ``baseline``: for each device implementation of the board (a row each, ``baseline <device>``,
  when it runs several), the images its baseline writes: the MicroPython agent's baseline files
  (or the built-in one), an ESP-IDF build directory's ``flasher_args.json`` and the files it names
  (or the host build of ``device_fw/esp_idf`` a virtual board runs). They exist, can be read, fit
  the flash and do not overlap, and hold what the chip boots (:func:`baseline_problems`): ESP
  images where images go, for the board's chip, a partition table that parses, an app that fits
  its slot.

Every check runs, whatever an earlier one found; a check that cannot run because of an earlier
failure (a busy board, a switch that does not work) has a FAIL row that says ``not checked:`` and
why. Virtual boards are started for the check and stopped afterwards, as the fixtures do; a board
the check switched on is switched off again (unless the rig says ``leave_on``). Exit status 0
when every check passes, 1 when one fails, 2 when the rig file itself is wrong (a baseline file
that is missing is a failed ``baseline`` row, not a wrong rig file).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .board import open_board
from .chips import chip as chip_class
from .esp.app_image import IMAGE_MAGIC, parse_image, verify_image
from .esp.chips import chip_info, format_size
from .esp.errors import FormatError
from .esp.esp8266_image import EA_MAGIC, find_micropython_banner
from .esp.partition_table import MAX_TABLE_LEN, PartitionTable
from .firmware import ESP32_APP_OFFSET, micropython_baseline
from .flashing import ROM_BAUD, Flasher
from .locks import BoardLock, LockError
from .ports import PortError, resolve_port
from .power import LcusSwitch, PowerSwitchError, VirtualPowerSwitch, make_switch
from .rig import RigError, build_dir_problems, image_file_problems, load_rig, shown_path

#: how long the port may take to appear after power-on: a USB-UART re-enumerates within a second or two
PORT_WAIT_S = 5.0
#: how long a network port (rfc2217://, socket://) may take to accept a connection
CONNECT_S = 3.0
#: the board column of the rows about the whole rig (no board name can have parentheses)
RIG_ROW = "(rig)"
#: the chip id of an ESP image header (bytes 12-13), as esptool numbers the chips
IMAGE_CHIP_IDS = {0: "ESP32", 2: "ESP32-S2", 5: "ESP32-C3", 9: "ESP32-S3", 12: "ESP32-C2", 13: "ESP32-C6",
                  16: "ESP32-H2", 18: "ESP32-P4", 20: "ESP32-C61", 23: "ESP32-C5"}


@dataclass(frozen=True)
class Row:
    board: str
    check: str
    ok: bool
    detail: str


def check_rig(rig, boards, workdir: Path) -> list[Row]:
    """The rig's checks, then every check of every board in ``boards`` (board specs of ``rig``), in order."""
    rows = [check_wifi(rig, boards)]
    for spec in boards:
        rows += check_board(rig, spec, workdir / spec.name)
    return rows


def check_wifi(rig, boards: Sequence) -> Row:
    """The Wi-Fi credentials bench boards join with: the variables the rig names must be set."""
    real = [spec.name for spec in boards if not spec.virtual]
    if not real or rig.wifi_env is None:
        return Row(RIG_ROW, "wifi", True, "virtual boards need no Wi-Fi credentials")
    who = f"board {real[0]} joins" if len(real) == 1 else f"boards {', '.join(real)} join"
    problems = rig.wifi_problems(boards)
    if problems:
        where = ", ".join(f"{problem} ({shown_path(rig.path)}:{line}: {key})" for line, key, problem in problems)
        return Row(RIG_ROW, "wifi", False, f"{where}; {who} Wi-Fi with them")
    env = rig.wifi_env
    key = f"{env.key_env} is set" if rig.wifi_key else f"{env.key_env} is empty (an open network)"
    return Row(RIG_ROW, "wifi", True, f"{env.ssid_env} is set, {key}; {who} Wi-Fi with them")


def check_board(rig, spec, workdir: Path) -> list[Row]:
    rows: list[Row] = []

    def row(check: str, ok: bool, detail: str) -> None:
        rows.append(Row(spec.name, check, ok, detail))

    with contextlib.ExitStack() as stack:
        if _free(rig, spec, stack, row):
            _check_hardware(rig, spec, workdir, stack, row)
        else:
            for check in ("power", "port", "chip"):
                row(check, False, "not checked: another run holds the board (see lock)")
    _check_baseline(rig, spec, row)
    return rows


def _free(rig, spec, stack: contextlib.ExitStack, row: Callable) -> bool:
    """Take a bench board's lock for the check: probing a board resets it under whichever run has it."""
    if spec.virtual or spec.farm is not None:  # a labgrid place is locked by acquiring it (harness.farm)
        return True
    try:
        stack.enter_context(BoardLock(rig.name, spec.name).acquire(timeout=0))
    except LockError as e:
        row("lock", False, _one_line(e))
        return False
    row("lock", True, "free")
    return True


def _check_hardware(rig, spec, workdir: Path, stack: contextlib.ExitStack, row: Callable) -> None:
    switch, port = _open(rig, spec, workdir, stack, row)
    if switch is None and (spec.virtual or spec.farm is not None):
        for check in ("port", "chip"):
            row(check, False, "not checked: " + ("the virtual board did not start" if spec.virtual else
                                                 "no labgrid place"))
        return
    # a bench board's port is looked for even when its switch cannot be built: the board may be on anyway
    powered = switch is not None and _check_power(spec, switch, row)
    if powered and not spec.virtual and not rig.leave_on:
        stack.callback(_switch_off, switch, row)
    url = _check_port(spec, port, row)
    if not powered:
        row("chip", False, "not checked: the board could not be switched on")
    elif url is None:
        row("chip", False, "not checked: no serial port")
    else:
        _check_chip(spec, url, row)


def _open(rig, spec, workdir: Path, stack: contextlib.ExitStack, row: Callable) -> tuple:
    """The board's power switch and, for a virtual board or a labgrid place, its serial URL; (None, None) after a
    FAIL row."""
    if spec.virtual or spec.farm is not None:
        try:
            board = open_board(spec, rig, workdir)
        except Exception as e:
            what = "virtual board did not start" if spec.virtual else "no labgrid place"
            row("power", False, f"{what}: {_one_line(e)}")
            return None, None
        stack.callback(_close_board, board, row)
        return board.power, board.url
    try:
        switch = make_switch(spec.power.kind, dict(spec.power.options), spec.name)
    except PowerSwitchError as e:
        row("power", False, _one_line(e))
        return None, None
    stack.callback(switch.close)
    return switch, None


def _check_power(spec, switch, row: Callable) -> bool:
    """Read the switch back, switch it on and read it again; True once the board is powered."""
    where = _switch_text(spec, switch)
    try:
        before = switch.state()
        switch.on()
        after = switch.state()
    except PowerSwitchError as e:
        row("power", False, _one_line(e))
        return False
    if after is None:
        row("power", True, f"{where}: switched on (the device cannot report its state)")
        return True
    if not after:
        row("power", False, f"{where}: switched on, but it reports off")
        return False
    row("power", True, f"{where}: reported {'on' if before else 'off'}, on after switching on")
    return True


def _switch_off(switch, row: Callable) -> None:
    try:
        switch.off()
    except PowerSwitchError as e:
        row("power", False, f"switching off after the check failed: {_one_line(e)}")


def _close_board(board, row: Callable) -> None:
    try:
        board.close()
    except Exception as e:  # the virtual board is stopped whatever its switch did
        row("power", False, f"switching off after the check failed: {_one_line(e)}")


def _switch_text(spec, switch) -> str:
    if isinstance(switch, VirtualPowerSwitch):
        return f"control endpoint {switch.control_url}"
    if isinstance(switch, LcusSwitch) and spec.virtual:
        return f"virtual LCUS relay {switch.port} channel {switch.channel}"
    if spec.farm is not None:
        return f"labgrid place {getattr(switch, 'name', '?')}: {getattr(switch, 'description', '')}"
    # credentials stay out of the table, which ends up in CI logs
    options = ", ".join(f"{key}={value}" for key, value in spec.power.options.items() if "password" not in key)
    return f"{spec.power.kind} ({options})" if options else spec.power.kind


def _check_port(spec, url: str | None, row: Callable) -> str | None:
    try:
        if url is None:
            url = resolve_port(spec.port, spec, timeout=PORT_WAIT_S)
        _connectable(url)
    except (PortError, OSError) as e:
        row("port", False, _one_line(e))
        return None
    if spec.port is None or spec.port.kind in ("path", "url"):
        row("port", True, url)
    else:
        row("port", True, f"{spec.port.kind}={spec.port.value} -> {url}")
    return url


def _connectable(url: str) -> None:
    """A network port must accept a connection: :func:`resolve_port` takes URLs as they are."""
    parts = urlsplit(url)
    if parts.scheme not in ("rfc2217", "socket"):
        return
    try:
        sock = socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_S)
    except OSError as e:
        raise OSError(f"serial port {url} does not accept a connection: {e.strerror or e}") from None
    with sock:
        # RFC 2217 servers take one client at a time and esptool comes next: hang up, and wait
        # until the server has hung up too, or esptool's connection may arrive while it still
        # counts this one and be turned away
        sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while sock.recv(4096):
                pass


def _check_chip(spec, url: str, row: Callable) -> None:
    try:
        # the ROM loader is enough to identify the chip: no stub upload, no baud change
        with Flasher(url, chip=spec.chip, baud=ROM_BAUD, stub=False, connect_attempts=2) as f:
            description = f.chip_description()
            mac = ":".join(f"{b:02x}" for b in f.esp.read_mac())
    except Exception as e:  # FlashingError, and whatever esptool raises reading the MAC
        row("chip", False, _one_line(e))
        return
    row("chip", True, f"{description}, MAC {mac}")


def _check_baseline(rig, spec, row: Callable) -> None:
    """A ``baseline`` row for each device implementation of the board (``baseline <device>`` when it has several)."""
    for device in spec.devices:
        check = "baseline" if len(spec.devices) == 1 else f"baseline {device.kind}"
        try:
            ok, detail = _device_baseline(rig, spec, device)
        except Exception as e:  # a decoder's or a build's oversight must not cost the table the other rows
            ok, detail = False, f"the images could not be checked: {type(e).__name__}: {_one_line(e)}"
        row(check, ok, detail)


def _device_baseline(rig, spec, device) -> tuple[bool, str]:
    flash = format_size(spec.flash_size)
    problems: list[str] = []
    complete = True
    if device.baseline == "micropython":
        try:
            built = micropython_baseline(spec.chip, flash_size=flash)
        except ValueError as e:
            return False, _one_line(e)
        parts = [BaselineImage(part.offset, part.data, f"built-in {part.name}") for part in built]
        what = f"built-in MicroPython, {len(parts)} image(s)"
    elif isinstance(device.baseline, list):
        problems = [f"{shown_path(rig.path)}:{line}: {key}: {problem}"
                    for line, key, problem in image_file_problems(spec, device.baseline)]
        parts = _read_parts((part.offset, part.path) for part in device.baseline)
        what = f"{len(parts)} file(s)"
        complete = len(parts) == len(device.baseline)
    elif device.kind == "esp8266-sdk":
        # a virtual board's SDK client: the host build a run makes (cached), in the layout the device flashes
        try:
            from .devices.sdk import VIRTUAL_MAP, host_build
            from .esp.esp8266_image import sdk_baseline
        except ImportError as e:
            return False, f"not checked: the host build of device_fw/esp8266_sdk is not available ({_one_line(e)})"
        built = sdk_baseline(spec.flash_size, VIRTUAL_MAP, host_build().user1)
        parts = [BaselineImage(part.offset, part.data, f"host build {part.name}") for part in built]
        what = f"host build of device_fw/esp8266_sdk, {len(parts)} image(s)"
    elif device.build_dir is not None:
        from .devices.idf import FlasherArgsError, read_flasher_args

        problems = [f"{shown_path(rig.path)}:{line}: {key}: {problem}"
                    for line, key, problem in build_dir_problems(spec, device)]
        try:
            args = read_flasher_args(device.build_dir)
        except FlasherArgsError:
            return False, "; ".join(problems)
        parts = _read_parts(args.flash_files)
        what = f"{shown_path(args.path)}, {len(parts)} file(s)"
        complete = len(parts) == len(args.flash_files)
    else:
        # a virtual board's ESP-IDF client: the host build a run makes (cached), checked as a build directory is
        from .devices.idf import read_flasher_args

        try:
            from .emu.idf.build import build_app
        except ImportError as e:
            return False, f"not checked: the host build of device_fw/esp_idf is not available ({_one_line(e)})"
        args = read_flasher_args(build_app().build_dir)
        parts = _read_parts(args.flash_files)
        what = f"host build of device_fw/esp_idf, {len(parts)} file(s)"
    found, notes = baseline_problems(spec.chip, spec.flash_size, parts, complete=complete)
    problems += found
    if problems:
        return False, "; ".join(problems)
    end = max(part.offset + len(part.data) for part in parts)
    return True, f"{what} ending at 0x{end:x} of {flash}: {', '.join(notes)}"


def _read_parts(files) -> list[BaselineImage]:
    parts = []
    for offset, path in files:
        with contextlib.suppress(OSError):  # a file that cannot be read is one of the problems reported
            if path.is_file():
                parts.append(BaselineImage(offset, path.read_bytes(), shown_path(path)))
    return parts


@dataclass(frozen=True)
class BaselineImage:
    """The contents of one baseline file, the flash offset it goes to and its name for messages."""

    offset: int
    data: bytes
    name: str

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


def baseline_problems(chip: str, flash_size: int, parts: Sequence[BaselineImage],
                      complete: bool = True) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` about what ``parts`` put in a ``chip``'s flash: is it what the chip boots?

    ESP32: the bootloader at 0x1000 is an ESP image for this chip; the partition table at 0x8000
    parses and fits the flash; the app the bootloader starts (factory, else ota_0) is there and is
    an ESP image for this chip that fits its slot, as is an image a part writes to another app
    slot. Without a partition table in the baseline, an image at 0x10000 is taken as the app. A
    part may hold several of these (MicroPython's combined binary at 0x1000 holds all three).
    ESP8266: the image at 0 is an ESP8266 image (its header has no chip id: its segments must load
    into the ESP8266's memory). Where the baseline writes nothing, the board keeps what it has;
    ``complete=False`` (a file could not be read) skips the "nothing there" problems. A problem
    names the file and the flash offset (and the offset in the file, when that differs); a part
    found to hold something else (an HTML page) gets one problem, not one per thing it should
    hold. A note says what was found, for the row of a baseline without problems.
    """
    family = chip_class(chip)
    info = family.image
    checker = _LayoutCheck(info.name, sorted(parts, key=lambda part: part.offset))
    if not family.has_partition_table:
        # the one image the ROM boots, at the start of flash; a boot_v1.x there boots user1 or user2
        checker.image(info.bootloader_offset, f"{family.esptool_name} image", None)
        checker.sdk_layout(info.bootloader_offset, flash_size, complete)
        return checker.problems, checker.notes
    checker.image(info.bootloader_offset, "bootloader", None)
    table = checker.partition_table(info.partition_table_offset, flash_size)
    if table is None:
        if checker.at(ESP32_APP_OFFSET) is not None:
            checker.image(ESP32_APP_OFFSET, "app", None)
        return checker.problems, checker.notes
    boot = table.factory or next(iter(table.ota_slots), None)
    if boot is None:
        checker.problems.append(f"{checker.at(info.partition_table_offset)[0].name}: the partition table has no "
                                f"factory or ota_0 app for the bootloader to start")
    for slot in table.apps:
        found = checker.at(slot.offset)
        if found is None:
            if slot is boot and complete:
                checker.problems.append(f"nothing is written at 0x{slot.offset:x} ({slot.label}), the app the "
                                        f"bootloader starts")
            continue
        part, start = found
        if slot is not boot and part.data[start:start + 1] != bytes([IMAGE_MAGIC]):
            continue  # no image in the other slot (erased, or the end of an app too big for its own)
        checker.image(slot.offset, "app", slot)
    return checker.problems, checker.notes


class _LayoutCheck:
    """Checks of the images at flash offsets of one baseline; collects problems and notes."""

    def __init__(self, chip: str, parts: list[BaselineImage]):
        self.chip = chip
        self.info = chip_info(chip)
        self.parts = parts
        self.problems: list[str] = []
        self.notes: list[str] = []
        #: parts that hold something else than they should (an HTML page): one problem each is enough
        self.rejected: set[int] = set()

    def at(self, address: int) -> tuple[BaselineImage, int] | None:
        """The part that writes ``address`` and the offset of ``address`` in it (the last part wins); None for
        an address no part writes, or one in a part already found to be something else."""
        found = None
        for part in self.parts:
            if part.offset <= address < part.end:
                found = part, address - part.offset
        if found is not None and id(found[0]) in self.rejected:
            return None
        return found

    def reject(self, part: BaselineImage, problem: str) -> None:
        self.problems.append(problem)
        self.rejected.add(id(part))

    def partition_table(self, address: int | None, flash_size: int) -> PartitionTable | None:
        found = None if address is None else self.at(address)
        if found is None:
            return None
        part, start = found
        try:
            table = PartitionTable.from_bytes(part.data[start:start + MAX_TABLE_LEN]).validate(flash_size)
        except FormatError as e:
            if e.offset == 0:  # not a table at all
                self.reject(part, f"{part.name}: no partition table at "
                                  f"{_place(address, start, None, _starts_with(part.data[start:]))}")
            else:
                self.problems.append(f"{part.name}: partition table at {_place(address, start)}: {_one_line(e)}")
            return None
        self.notes.append(f"partition table at 0x{address:x} ({len(table)} partitions)")
        return table

    def image(self, address: int, what: str, slot) -> None:
        found = self.at(address)
        if found is None:
            return
        part, start = found
        data = part.data[start:]
        label = None if slot is None else slot.label
        if data[:1] == bytes([EA_MAGIC]) and not self.info.extended_header:
            self.reject(part, f"{part.name}: an SDK user image (0xea) at {_place(address, start, label)}, which the "
                              f"ROM does not boot: it goes after a second-stage boot loader (boot_v1.x)")
            return
        if data[:1] != bytes([IMAGE_MAGIC]):
            self.reject(part, f"{part.name}: not an ESP image at {_place(address, start, label, _starts_with(data))}")
            return
        where = f"{part.name}: {what} at {_place(address, start, label)}"
        if self.info.extended_header:
            chip_id = struct.unpack_from("<H", data, 12)[0] if len(data) >= 14 else None
            if chip_id is not None and chip_id != self.info.image_chip_id:
                mine = f"{self.chip}'s {self.info.image_chip_id}"
                if chip_id in IMAGE_CHIP_IDS:
                    problem = f"is an image for {IMAGE_CHIP_IDS[chip_id]} (chip id {chip_id}), not {mine}"
                else:
                    problem = f"has chip id {chip_id}, which no chip has (an ESP8266 image?), not {mine}"
                self.reject(part, f"{where} {problem}")
                return
        else:
            try:
                parsed = parse_image(data, self.info)
            except FormatError as e:
                self.reject(part, f"{where} does not parse as an {self.chip} image: {_one_line(e)}")
                return
            for segment in parsed.segments:
                if self.info.memory_type(segment.addr) is None:
                    self.reject(part, f"{where} is not an {self.chip} image: segment {segment.index} loads at "
                                      f"0x{segment.addr:08x}, outside the {self.chip}'s memory (an image for "
                                      f"another chip?)")
                    return
        check = verify_image(data, chip=self.info, address=address,
                             partition_size=None if slot is None else slot.size)
        if not check.ok:
            self.problems.append(f"{where}: {check.reason}")
            return
        self.notes.append(self._note(address, what, slot, data, check))

    def sdk_layout(self, address: int, flash_size: int, complete: bool) -> None:
        """An ESP8266 whose image at 0 is a boot_v1.x: its flash map fits the flash and user1 is a user bin linked
        for user1, whole (SDK CRC) and within the slot."""
        from .esp import esp8266_image as sdk

        found = self.at(address)
        if found is None:
            return
        part, start = found
        info = sdk.find_boot_v1(part.data[start:start + sdk.SECTOR])
        if info is None:
            return
        settings = sdk.FlashSettings.from_header(part.data[start:start + 4])
        try:
            layout = sdk.FotaLayout.for_map_code(settings.map_code)
        except ValueError as e:
            self.problems.append(f"{part.name}: boot_v1.x at {_place(address, start)}: {_one_line(e)}")
            return
        self.notes[-1] = f"boot_v1.x {info.version_text} at 0x{address:x}, map {layout.map_name}"
        if layout.flash_size > flash_size:
            self.problems.append(f"{part.name}: boot_v1.x at {_place(address, start)} has the {layout.map_name} map, "
                                 f"which needs {format_size(layout.flash_size)} of flash, not "
                                 f"{format_size(flash_size)}")
            return
        found = self.at(layout.user1)
        if found is None:
            if complete:
                self.problems.append(f"nothing is written at 0x{layout.user1:x} (user1), the bin boot_v1.x starts")
            return
        part, start = found
        data = part.data[start:]
        desc = sdk.read_user_bin_desc(data)
        where = f"{part.name}: user1 at {_place(layout.user1, start, None, None if desc else _starts_with(data))}"
        if desc is None:
            self.reject(part, f"{where} is not an SDK user bin (gen_appbin boot mode 2)")
            return
        if desc.header_slot != 1:
            self.problems.append(f"{where} is linked for user{desc.header_slot} (header byte 3), not user1")
            return
        check = sdk.verify_ea_image(data, partition_size=layout.fota_size, address=layout.user1)
        if not check.ok:
            self.problems.append(f"{where}: {check.reason}")
            return
        name = f"{desc.project} {desc.version}" if desc.version else "user bin"
        self.notes.append(f"{name} in user1 at 0x{layout.user1:x} (0x{check.length:x} of 0x{layout.fota_size:x} "
                          "bytes)")

    def _note(self, address: int, what: str, slot, data: bytes, check) -> str:
        if check.app_desc is not None:
            what = f"{check.app_desc.project_name} {check.app_desc.version}"
        elif not self.info.extended_header:
            banner = find_micropython_banner(data)
            if banner is not None:
                what = f"{what} (MicroPython v{banner.version})"
        if slot is None:
            return f"{what} at 0x{address:x}"
        return f"{what} in {slot.label} at 0x{address:x} (0x{check.length:x} of 0x{slot.size:x} bytes)"


def _place(address: int, file_offset: int, label: str | None = None, found: str | None = None) -> str:
    """``0x10000 (ota_0, file offset 0xf000; starts with ...)``: a flash offset, what helps find it and
    what is there."""
    notes = ", ".join(note for note in (label, f"file offset 0x{file_offset:x}" if file_offset else None) if note)
    if found:
        notes = f"{notes}; {found}" if notes else found
    return f"0x{address:x} ({notes})" if notes else f"0x{address:x}"


def _starts_with(data: bytes) -> str:
    """``starts with '<!DOCTYPE'...``: what is there instead of an image, as text when it is text."""
    head = data[:9]
    more = "..." if len(data) > len(head) else ""
    if data.strip(b"\xff") == b"":
        return "erased: all 0xff"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return f"starts with {head.decode('ascii')!r}{more}"
    return f"starts with {head.hex(' ')}{more}"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def print_table(rows: list[Row], title: str) -> None:
    # a log (CI, a pipe) gets wide rows, so a row stays one line that grep finds
    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title=Text(title), title_justify="left")
    for column in ("board", "check", "result", "detail"):
        table.add_column(column, overflow="fold")
    for r in rows:
        # Text, not markup: details quote commands and errors, whose [brackets] must print as they are
        table.add_row(Text(r.board), Text(r.check), Text("ok") if r.ok else Text("FAIL", style="bold red"),
                      Text(r.detail))
    console.print(table)


def main(argv: list[str] | None = None, prog: str = "hil rig") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Rig files and the benches they describe.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="probe a rig: Wi-Fi variables; each board's lock, power, port, chip, "
                                          "baseline",
                           description="Check the rig's Wi-Fi variables, probe every board of it (lock, power "
                                       "switch, serial port, chip, baseline images) and print one table with a "
                                       "row per board and check. Exit status 0 when every check passes, 1 when "
                                       "one fails (a missing baseline file too), 2 when the rig file is wrong.")
    check.add_argument("rig", metavar="NAME", help="rig name in rigs/ or a path to a rig file")
    check.add_argument("--board", action="append", default=[], help="check only this board (repeatable)")
    args = parser.parse_args(argv)

    try:
        # baseline files are checked in the table, with everything else, not as a mistake in the rig file
        rig = load_rig(args.rig, check_files=False)
        boards = rig.select(args.board)
    except RigError as e:
        print(f"{prog} check: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hil-rig-check-") as tmp:
        rows = check_rig(rig, boards, Path(tmp))
    failed = [r for r in rows if not r.ok]
    print_table(rows, f"rig {rig.name} ({rig.path})")
    print(f"{len(rows) - len(failed)} of {len(rows)} checks passed" + (
        f"; failed: {', '.join(f'{r.board} {r.check}' for r in failed)}" if failed else ""))
    return 1 if failed else 0
