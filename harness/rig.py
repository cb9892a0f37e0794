"""Rig files: what a bench is made of, checked completely before anything runs.

A rig file (``rigs/NAME.yaml``) lists the boards of a bench, how to reach their
serial ports, how to power them and what firmware they start from. A mistake
in it is reported as one line naming the file, the line and the key::

    rigs/bench1.yaml:14: boards[1].power.channel: expected an integer 1..8, got 'x'

so that it is found when the run starts, not half an hour in when a relay is
first used. Unknown keys are errors too: in a hand-written file they are
typos, and a silently ignored ``boot_timout`` is worse than a refusal.

Scalars are read as in YAML 1.2 (``true``/``false``, ``null``, decimal and
``0x`` numbers; other words stay text): YAML 1.1 would turn a serial number
``0001`` into 1, a MAC address of digits into a base-60 number and ``no`` into
false. Anchors, aliases and
``<<`` merges work, so boards on one relay board can share its options; a file that
expands past :data:`MAX_NODES` values (an alias bomb) or nests deeper than
:data:`MAX_DEPTH` levels is refused, naming the line where it does.

:func:`load_rig` checks that the baseline files exist, can be read, fit the flash and do
not overlap, as a run needs; ``hil rig check`` loads with ``check_files=False`` and
reports those problems in its table, next to the checks of the boards.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .chips import CHIP_NAMES
from .chips import CHIPS as CHIP_CLASSES
from .chips import chip as chip_class
from .errors import RigFileFailure
from .esp.chips import format_size, parse_size
from .power import KINDS, PowerSwitchConfigError, PowerSwitchError, make_switch

CHIPS = CHIP_NAMES
UPDATE_KINDS = ("firmware", "files")
#: the device implementations a board can run (``harness.devices``), and per chip the update kinds each can do:
#: the MicroPython agent what MicroPython's port allows (no OTA on the ESP8266), the ESP-IDF clients firmware
#: updates on the chips ESP-IDF targets
DEVICE_UPDATES: dict[str, dict[str, tuple[str, ...]]] = {
    "micropython": {name: c.micropython.updates for name, c in CHIP_CLASSES.items()},
    "esp-idf": {name: ("firmware",) for name, c in CHIP_CLASSES.items() if c.idf_target},
    "esp-idf-anti-rollback": {name: ("firmware",) for name, c in CHIP_CLASSES.items() if c.idf_target},
    "idf-app": {name: ("firmware",) for name, c in CHIP_CLASSES.items() if c.idf_target},
    # the ESP8266 SDK FOTA client (device_fw/esp8266_sdk) on boot_v1.x's user1/user2
    "esp8266-sdk": {"esp8266": ("firmware",)},
}
DEVICES = tuple(DEVICE_UPDATES)
#: the rig keys of each device implementation besides ``kind`` and ``updates``
DEVICE_KEYS = {"micropython": ("baseline",), "esp-idf": ("build_dir",), "esp-idf-anti-rollback": ("build_dir",),
               "idf-app": ("build_dir", "patterns"), "esp8266-sdk": ("baseline", "build_dir")}
#: the OTA events an ``idf-app`` device's own console lines may be given for (``patterns:``)
IDF_APP_EVENTS = ("ready", "listening", "writing", "switch", "confirmed", "rollback", "refused")
PORT_SELECTORS = ("path", "by_id", "location", "serial", "mac", "url")
PORT_URL_SCHEMES = ("rfc2217", "socket")
BROKERS = ("embedded", "external")
MICROPYTHON_BASELINE = "micropython"

DEFAULT_FLASH_SIZE = 4 * 1024 * 1024
DEFAULT_BAUD = 460800
DEFAULT_BOOT_TIMEOUT = 15.0
#: seconds the device gives a new version's health check before it rolls back: a real board's
#: Wi-Fi and server need a few; a virtual board reaches the harness on the loopback at once
DEFAULT_CONFIRM_TIMEOUT = 4.0
DEFAULT_CONFIRM_TIMEOUT_VIRTUAL = 1.0
DEFAULT_MQTT_PORT = 1883
#: flash is erased and written in 4 KiB sectors, so a part that starts mid-sector would clobber its neighbour
SECTOR = 0x1000

_ROOT_KEYS = ("name", "host", "wifi", "mqtt", "leave_on", "boards", "labgrid")
_WIFI_KEYS = ("ssid_env", "key_env")
_MQTT_KEYS = ("broker", "host", "port")
_BOARD_KEYS = ("name", "chip", "flash_size", "virtual", "devices", "device", "baseline", "build_dir", "patterns",
               "updates", "baud", "boot_timeout", "confirm_timeout", "port", "power", "place", "tags")
#: the board keys of the single-device form, which ``devices:`` replaces
_SINGLE_DEVICE_KEYS = ("device", "baseline", "build_dir", "patterns", "updates")
_PART_KEYS = ("offset", "file")
_VIRTUAL_KEYS = ("power", "channel")
#: what can power a virtual board besides its control endpoint: a virtual relay board of that kind
VIRTUAL_RELAYS = ("lcus",)

_BOARD_NAME = re.compile(r"[a-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_USB_LOCATION = re.compile(r"\d+-\d+(\.\d+)*(:\d+\.\d+)?")
_MAC = re.compile(r"[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}")
_BY_ID_DIR = "/dev/serial/by-id/"
#: where ``host: auto`` looks for a route when no board sits behind a network port; nothing is sent there
_ROUTE_PROBE = "8.8.8.8"
#: a rig is a few dozen values: more than this after expanding aliases is an alias bomb
MAX_NODES = 10_000
#: a rig nests about five levels deep; PyYAML's composer recurses once per level
MAX_DEPTH = 64


class RigError(RigFileFailure, ValueError):
    """A rig that cannot be used; ``str()`` is one line: ``file:line: key: problem``."""


@dataclass(frozen=True)
class PortSpec:
    """How to find a real board's serial port: ``kind`` is one of :data:`PORT_SELECTORS`."""

    kind: str
    value: str


@dataclass(frozen=True)
class PowerSpec:
    """A real board's power switch: ``make_switch(kind, options, board_name)`` builds it."""

    kind: str
    options: dict[str, Any]


@dataclass(frozen=True)
class BaselinePart:
    """One image file of a baseline and the flash offset it is written to.

    ``key`` and ``line`` say where the rig file gives the part, ``file_line`` where its ``file:``
    is, for messages about it.
    """

    offset: int
    path: Path
    key: str = field(default="", compare=False, repr=False)
    line: int = field(default=0, compare=False, repr=False)
    file_line: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class MqttSpec:
    """``embedded``: the harness runs the broker (host and port are chosen then); ``external``: it is at host:port."""

    broker: str = "embedded"
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class WifiEnv:
    """The names of the environment variables holding the Wi-Fi credentials, and where the rig gives them
    (``line``: the ``wifi:`` key; ``ssid_line``, ``key_line``: each variable's name)."""

    ssid_env: str
    key_env: str
    line: int
    ssid_line: int = 0
    key_line: int = 0


@dataclass(frozen=True)
class DeviceSpec:
    """One device implementation a board runs (``harness.devices``), as the rig gives it.

    ``baseline``: the MicroPython agent's firmware (``micropython``, the built-in one, or image files);
    ``build_dir``: an ESP-IDF build directory (``flasher_args.json``) for ``esp-idf`` (and
    ``esp-idf-anti-rollback``) on a bench and for
    ``idf-app``; ``patterns``: ``idf-app``'s own console lines, event -> regex. ``key`` and ``line`` say
    where the rig file gives the device, ``build_dir_line`` where its ``build_dir:`` is.
    """

    kind: str
    updates: list[str]
    baseline: str | list[BaselinePart] | None = None
    build_dir: Path | None = None
    patterns: dict[str, str] = field(default_factory=dict)
    key: str = field(default="", compare=False, repr=False)
    line: int = field(default=0, compare=False, repr=False)
    build_dir_line: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class BoardSpec:
    """One board; ``line`` is where the rig file defines it, for messages about the board."""

    name: str
    chip: str
    flash_size: int
    virtual: bool
    port: PortSpec | None
    power: PowerSpec | None
    devices: list[DeviceSpec]
    baud: int
    boot_timeout: float
    line: int
    #: seconds a new version's health check may take before the device rolls back (``confirm_timeout``)
    confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT
    #: a virtual board wired to this channel of the rig's virtual LCUS relay (``virtual: {power: lcus,
    #: channel: N}``); None: powered through its control endpoint
    relay_channel: int | None = None
    #: a board of the labgrid farm: which places it may be (``place:`` or ``tags:``, ``harness.farm``)
    farm: Any = None

    @property
    def device(self) -> str:
        """The first device implementation's kind (what a board of the single-device form runs)."""
        return self.devices[0].kind

    @property
    def updates(self) -> list[str]:
        """The update kinds of the first device implementation."""
        return self.devices[0].updates

    @property
    def baseline(self) -> str | list[BaselinePart] | None:
        """The MicroPython agent's baseline (``micropython`` or image files); None when no device has one."""
        return next((d.baseline for d in self.devices if d.baseline is not None), None)

    def device_spec(self, kind: str) -> DeviceSpec:
        for spec in self.devices:
            if spec.kind == kind:
                return spec
        raise KeyError(f"board {self.name} runs no {kind!r} device (it runs: "
                       f"{', '.join(d.kind for d in self.devices)})")

    def cases(self) -> list[tuple[str, str]]:
        """(device kind, update kind) for every update each device implementation takes on this board."""
        return [(d.kind, k) for d in self.devices for k in d.updates]


@dataclass(frozen=True)
class Rig:
    """A checked rig: ``host`` is an address (``auto`` is resolved), the Wi-Fi fields hold the environment's
    values (None where a variable is unset)."""

    name: str
    path: Path
    host: str
    wifi_ssid: str | None
    wifi_key: str | None = field(repr=False)  # kept out of reprs, which end up in logs and test reports
    mqtt: MqttSpec
    leave_on: bool
    boards: list[BoardSpec]
    wifi_env: WifiEnv | None = None
    #: ``labgrid:``: the farm's coordinator (``harness.farm.rigfile.FarmSettings``); None without a farm
    labgrid: Any = None

    def select(self, names: Sequence[str]) -> list[BoardSpec]:
        """The boards named (all of them when ``names`` is empty), in rig order."""
        known = [board.name for board in self.boards]
        for name in names:
            if name not in known:
                raise RigError(f"{_shown(self.path)}: no board named {name!r} (boards: {', '.join(known)})")
        return [board for board in self.boards if not names or board.name in names]

    def wifi(self, boards: Sequence[BoardSpec] | None = None) -> tuple[str, str]:
        """``(ssid, key)`` for the boards to join.

        An unset variable (or an empty network name) is an error only for real boards (of ``boards``, by
        default all the rig's): virtual boards share the harness's network and get empty strings. The
        :class:`RigError` is one line naming the rig file, the line of the variable's name and the variable,
        so a run that calls this with its selected boards before it starts stops with that line.
        """
        boards = self.boards if boards is None else boards
        problems = self.wifi_problems(boards)
        if problems:
            line, key, problem = problems[0]
            real = [board.name for board in boards if not board.virtual]
            who = f"board {real[0]} joins" if len(real) == 1 else f"boards {', '.join(real)} join"
            raise RigError(f"{_shown(self.path)}:{line}: {key}: environment variable {problem} "
                           f"({who} Wi-Fi with it)")
        return self.wifi_ssid or "", self.wifi_key or ""

    def wifi_problems(self, boards: Sequence[BoardSpec] | None = None) -> list[tuple[int, str, str]]:
        """``(line, key, "VARIABLE is not set")`` for each Wi-Fi variable that ``boards`` (all the rig's) need
        and do not have: unset, or an empty network name. Virtual boards need none."""
        env = self.wifi_env
        if env is None or all(board.virtual for board in (self.boards if boards is None else boards)):
            return []
        problems = []
        for option, variable, value, line in (("ssid_env", env.ssid_env, self.wifi_ssid, env.ssid_line),
                                              ("key_env", env.key_env, self.wifi_key, env.key_line)):
            if value is None:
                problems.append((line or env.line, f"wifi.{option}", f"{variable} is not set"))
            elif option == "ssid_env" and not value:
                problems.append((line or env.line, f"wifi.{option}", f"{variable} is empty"))
        return problems


def rigs_dir() -> Path:
    """The ``rigs/`` directory of the checkout, where bare rig names are looked up."""
    return Path(__file__).resolve().parent.parent / "rigs"


def load_rig(name_or_path: str, *, check_files: bool = True) -> Rig:
    """The rig ``name_or_path``: a bare name is a file in :func:`rigs_dir`, anything else a path.

    ``check_files``: the baseline files must exist, be readable, fit the flash and not overlap (what a run
    needs before it starts); without it only their names and offsets are checked, and
    :func:`baseline_file_problems` tells what is wrong with the files.
    """
    path = _locate(name_or_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RigError(f"{_shown(path)}: no such rig file") from None
    except OSError as e:
        raise RigError(f"{_shown(path)}: cannot read the rig file: {e.strerror or e}") from None
    try:
        rig = _rig(_parse_yaml(_decode(data)), path)
        if check_files:
            for board in rig.boards:
                problems = baseline_file_problems(board)
                if problems:
                    raise _Invalid(*problems[0])
        return rig
    except _Invalid as e:
        raise RigError(f"{_shown(path)}:{e}") from None


def baseline_file_problems(board: BoardSpec) -> list[tuple[int, str, str]]:
    """``(line, key, problem)`` for each baseline file of ``board``'s devices that is missing, cannot be read, does
    not fit the flash or overlaps an earlier one, and each build directory without a usable ``flasher_args.json``,
    in file order (none for the built-in baseline and the host build)."""
    problems: list[tuple[int, str, str]] = []
    for device in board.devices:
        if isinstance(device.baseline, list):
            problems += image_file_problems(board, device.baseline)
        if device.build_dir is not None:
            problems += build_dir_problems(board, device)
    return problems


def build_dir_problems(board: BoardSpec, device: DeviceSpec) -> list[tuple[int, str, str]]:
    """What is wrong with ``device``'s ESP-IDF build directory: no ``flasher_args.json`` (not built), one that does
    not parse, files it names that are missing, another chip than the board's."""
    from .devices.idf import FlasherArgsError, read_flasher_args

    key = f"{device.key}.build_dir"
    if device.kind == "esp8266-sdk":
        missing = [f"user{slot}" for slot in (1, 2)
                   if not any(device.build_dir.glob(f"user{slot}.*.bin")) and
                   not any(device.build_dir.glob(f"upgrade/user{slot}.*.bin"))]
        if missing:
            return [(device.build_dir_line, key, f"no {' and no '.join(f'{m}.*.bin' for m in missing)} in "
                                                 f"{_shown(device.build_dir)} (the SDK's make with BOOT=new APP=1 and "
                                                 "APP=2 writes bin/upgrade/user1.*.bin and user2.*.bin)")]
        return []
    try:
        args = read_flasher_args(device.build_dir)
    except FlasherArgsError as e:
        return [(device.build_dir_line, key, str(e))]
    problems = []
    if args.chip is not None and args.chip != board.chip:
        problems.append((device.build_dir_line, key, f"built for {args.chip} ({_shown(args.path)}), but board "
                                                     f"{board.name} is an {board.chip}"))
    parts = [BaselinePart(offset, path, key, device.build_dir_line, device.build_dir_line)
             for offset, path in args.flash_files]
    for line, _key, problem in image_file_problems(board, parts):
        problems.append((line, key, problem))
    return problems


def image_file_problems(board: BoardSpec, parts: list[BaselinePart]) -> list[tuple[int, str, str]]:
    """``(line, key, problem)`` for each of ``parts`` that is missing, cannot be read, does not fit ``board``'s
    flash or overlaps an earlier one."""
    problems: list[tuple[int, str, str]] = []
    placed: list[tuple[BaselinePart, int]] = []
    for part in parts:
        file_key = f"{part.key}.file"
        if not part.path.exists():
            problems.append((part.file_line, file_key, f"file not found: {_shown(part.path)}"))
            continue
        if not part.path.is_file():
            problems.append((part.file_line, file_key, f"not a file: {_shown(part.path)}"))
            continue
        try:
            with part.path.open("rb"):
                size = part.path.stat().st_size
        except OSError as e:
            problems.append((part.file_line, file_key, f"cannot read {_shown(part.path)}: {e.strerror or e}"))
            continue
        end = part.offset + size
        if end > board.flash_size:
            problems.append((part.file_line, file_key, f"{_shown(part.path)} at 0x{part.offset:x} ends at "
                                                        f"0x{end:x}, beyond the {format_size(board.flash_size)} flash"))
            continue
        for other, other_end in placed:
            if part.offset < other_end and other.offset < end:
                problems.append((part.line, part.key, f"0x{part.offset:x}..0x{end:x} overlaps {other.key} "
                                                      f"(0x{other.offset:x}..0x{other_end:x})"))
                break
        placed.append((part, end))
    return problems


def _locate(name_or_path: str) -> Path:
    if "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path).expanduser().absolute()
    path = rigs_dir() / f"{name_or_path}.yaml"
    if not name_or_path or not path.is_file():
        names = ", ".join(sorted(p.stem for p in rigs_dir().glob("*.yaml"))) or "none"
        raise RigError(f"unknown rig {name_or_path!r} (rigs in {_shown(rigs_dir())}/: {names}; "
                       f"or give the path of a rig file)")
    return path


def shown_path(path: Path) -> str:
    """``rigs/bench1.yaml`` rather than an absolute path when the file is under the working directory."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


_shown = shown_path


# -- YAML with line numbers -------------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    """The file as text; a byte that is not UTF-8 is named by line, column and offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        raise _Invalid(line, None, f"not UTF-8: byte 0x{data[e.start]:02x} at column {e.start - line_start + 1} "
                                   f"(byte {e.start} of the file): {e.reason}") from None


class _Invalid(Exception):
    """A problem at a line of the file; :func:`load_rig` puts the file name in front."""

    def __init__(self, line: int, key: str | None, problem: str):
        super().__init__(f"{line}: {key}: {problem}" if key else f"{line}: {problem}")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 scalars, refusing nesting its recursive composer cannot take."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Invalid(self.peek_event().start_mark.line + 1, None, f"nesting deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    ("int", r"[-+]?(0|[1-9][0-9]*)|0x[0-9a-fA-F]+", list("-+0123456789")),
    ("float", r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+", list("-+.0123456789")),
    ("merge", r"<<", ["<"]),
):
    _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), _first)

_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class _Node:
    """A value of the file with its key path and line; mappings and lists hold _Nodes."""

    path: str
    line: int
    value: Any
    text: str | None = None  # a scalar as written, for keys whose value is text whatever it looks like


def _parse_yaml(text: str) -> _Node | None:
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            return None if node is None else _convert(loader, node, "", node.start_mark.line + 1, _Budget())
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        # a scanner's context is where the bad token starts (an unclosed quote, a key without its colon);
        # a parser's context is the enclosing block, far from the mistake
        scanning = isinstance(e, yaml.scanner.ScannerError)
        mark = (e.context_mark if scanning else None) or e.problem_mark or e.context_mark
        problem = ", ".join(filter(None, (e.context, e.problem)))
        raise _Invalid(mark.line + 1 if mark else 1, None, f"not valid YAML: {problem}") from None
    except yaml.reader.ReaderError as e:
        raise _Invalid(text.count("\n", 0, e.position) + 1, None, f"not valid YAML: {e.reason}") from None


class _Budget:
    """What is left of :data:`MAX_NODES` as aliases are expanded: a node reached through N aliases counts N times."""

    def __init__(self) -> None:
        self.nodes = 0

    def spend(self, line: int, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Invalid(line, None, f"rig expands past {MAX_NODES} values (aliases?)")
        if depth > MAX_DEPTH:  # only an alias of an enclosing node gets here: the composer limits the rest
            raise _Invalid(line, None, f"nesting deeper than {MAX_DEPTH} levels (an alias inside its own anchor?)")


def _convert(loader: _Loader, node: yaml.Node, path: str, line: int, budget: _Budget, depth: int = 1) -> _Node:
    budget.spend(line, depth)
    if isinstance(node, yaml.SequenceNode):
        return _Node(path, line, [_convert(loader, item, f"{path}[{i}]", item.start_mark.line + 1, budget, depth + 1)
                                  for i, item in enumerate(node.value)])
    if isinstance(node, yaml.ScalarNode):
        try:
            value = loader.construct_object(node)
        except ValueError as e:  # an explicit tag that does not fit the text: !!int x
            raise _Invalid(line, path, f"not valid YAML: {e}") from None
        return _Node(path, line, value, node.value)
    merged: dict[str, _Node] = {}
    own: dict[str, _Node] = {}
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if key_node.tag == _MERGE:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in reversed(sources):  # the first mapping named wins, as in YAML's merge rule
                part = _convert(loader, source, path, key_line, budget, depth + 1)
                if not isinstance(part.value, dict):
                    raise _Invalid(key_line, path, "<< merges mappings only")
                merged.update(part.value)
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Invalid(key_line, path, "expected plain keys, got a key that is a list or a mapping")
        key = key_node.value
        child = _join(path, key)
        if key in own:
            raise _Invalid(key_line, child, f"duplicate key (first given on line {own[key].line})")
        own[key] = _convert(loader, value_node, child, key_line, budget, depth + 1)
    return _Node(path, line, {**merged, **own})


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- checking values ----------------------------------------------------------------------------------------------


def _got(node: _Node) -> str:
    if isinstance(node.value, dict):
        return "a mapping" if node.value else "an empty mapping"
    if isinstance(node.value, list):
        return "a list" if node.value else "an empty list"
    return "nothing" if node.value is None else repr(node.value)


def _expected(node: _Node, what: str) -> _Invalid:
    return _Invalid(node.line, node.path, f"expected {what}, got {_got(node)}")


def _fields(node: _Node, allowed: Sequence[str], what: str) -> dict[str, _Node]:
    if not isinstance(node.value, dict):
        raise _expected(node, what)
    for key, child in node.value.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise _Invalid(child.line, child.path, f"unknown key ({hint}allowed: {', '.join(allowed)})")
    return node.value


def _required(parent: _Node, fields: dict[str, _Node], key: str, what: str) -> _Node:
    if key not in fields:
        raise _Invalid(parent.line, _join(parent.path, key), f"missing ({what})")
    return fields[key]


def _text(node: _Node, what: str = "a non-empty string") -> str:
    if node.text is None or node.value is None or not node.text.strip():
        raise _expected(node, what)
    return node.text.strip()


def _matching(node: _Node, pattern: re.Pattern[str], what: str) -> str:
    text = _text(node, what)
    if not pattern.fullmatch(text):
        raise _expected(node, what)
    return text


def _choice(node: _Node, choices: Sequence[str]) -> str:
    what = f"one of {', '.join(choices)}" if len(choices) > 2 else " or ".join(choices)
    if node.value not in choices:
        raise _expected(node, what)
    return node.value


def _integer(node: _Node, low: int, high: int) -> int:
    if isinstance(node.value, bool) or not isinstance(node.value, int) or not low <= node.value <= high:
        raise _expected(node, f"an integer {low}..{high}")
    return node.value


def _seconds(node: _Node) -> float:
    if isinstance(node.value, bool) or not isinstance(node.value, (int, float)) or not 0 < node.value < math.inf:
        raise _expected(node, "a number of seconds > 0")
    return float(node.value)


def _boolean(node: _Node) -> bool:
    if not isinstance(node.value, bool):
        raise _expected(node, "true or false")
    return node.value


def _optional(fields: dict[str, _Node], key: str, check: Callable[[_Node], Any], default: Any) -> Any:
    return check(fields[key]) if key in fields else default


def _plain(node: _Node) -> Any:
    if isinstance(node.value, dict):
        return {key: _plain(child) for key, child in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(item) for item in node.value]
    return node.value


def _host(node: _Node, what: str) -> str:
    text = _text(node, what)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        if not _HOST_NAME.fullmatch(text):
            raise _expected(node, what) from None
        return text


# -- the rig ------------------------------------------------------------------------------------------------------


def _rig(root: _Node | None, path: Path) -> Rig:
    if root is None:
        raise _Invalid(1, None, "empty rig file, expected a mapping with host and boards")
    fields = _fields(root, _ROOT_KEYS, "a mapping of rig settings (host, boards, ...)")
    name = _optional(fields, "name", _text, path.stem)
    host_node = _required(root, fields, "host", "the address boards reach the harness on: an IP address, "
                                                "a host name or auto")
    host = "auto" if host_node.value == "auto" else _host(host_node, "an IP address, a host name or auto")
    wifi_env = _optional(fields, "wifi", _wifi, None)
    mqtt = _optional(fields, "mqtt", _mqtt, MqttSpec())
    leave_on = _optional(fields, "leave_on", _boolean, False)
    boards = _boards(_required(root, fields, "boards", "a list of the bench's boards"), path.parent)
    from .farm import rigfile as farm_rig

    labgrid = _optional(fields, "labgrid", farm_rig.settings, None)
    farm_rig.check_rig(fields, labgrid, boards)

    real = [board for board in boards if not board.virtual]
    if real and wifi_env is None:
        raise _Invalid(real[0].line, "wifi", f"missing: board {real[0].name} is real and joins Wi-Fi "
                                             f"(wifi: {{ssid_env: VAR, key_env: VAR}})")
    # a manually started virtual board behind a port URL is the one "real" board that can reach a loopback host
    # (a labgrid place's address is known once it is acquired: harness.farm checks it then)
    remote = [board.name for board in real if board.power is not None and board.power.kind != "virtual"]
    if remote and host != "auto" and _loopback(host):
        raise _Invalid(host_node.line, "host", f"{host} is this machine's loopback, which boards "
                                               f"{', '.join(remote)} cannot reach: use auto or the harness's "
                                               f"address on the boards' network")
    return Rig(
        name=name, path=path, host=_route_address(boards) if host == "auto" else host,
        wifi_ssid=None if wifi_env is None else os.environ.get(wifi_env.ssid_env),
        wifi_key=None if wifi_env is None else os.environ.get(wifi_env.key_env),
        mqtt=mqtt, leave_on=leave_on, boards=boards, wifi_env=wifi_env, labgrid=labgrid)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _route_address(boards: list[BoardSpec]) -> str:
    """This host's address on the route to the boards, found by connecting a UDP socket (which sends nothing)."""
    targets = [urlsplit(board.port.value).hostname for board in boards
               if board.port is not None and board.port.kind == "url"]
    for target in [*targets[:1], _ROUTE_PROBE]:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 9))
                return probe.getsockname()[0]
        except OSError:
            continue
    return "127.0.0.1"


def _wifi(node: _Node) -> WifiEnv:
    fields = _fields(node, _WIFI_KEYS, "a mapping with ssid_env and key_env")
    what = "the name of an environment variable (the credentials themselves never go in the file)"
    ssid_env = _matching(_required(node, fields, "ssid_env", "the variable holding the network name"), _ENV_NAME,
                         what)
    key_env = _matching(_required(node, fields, "key_env", "the variable holding the key"), _ENV_NAME, what)
    return WifiEnv(ssid_env, key_env, node.line, fields["ssid_env"].line, fields["key_env"].line)


def _mqtt(node: _Node) -> MqttSpec:
    fields = _fields(node, _MQTT_KEYS, "a mapping with broker (and host, port for an external one)")
    broker = _optional(fields, "broker", lambda n: _choice(n, BROKERS), "embedded")
    if broker == "embedded":
        for key in ("host", "port"):
            if key in fields:
                raise _Invalid(fields[key].line, fields[key].path,
                               "only for broker: external (the embedded broker runs in the harness)")
        return MqttSpec()
    host = _host(_required(node, fields, "host", "the external broker's address"), "an IP address or a host name")
    port = _optional(fields, "port", lambda n: _integer(n, 1, 65535), DEFAULT_MQTT_PORT)
    return MqttSpec("external", host, port)


def _boards(node: _Node, rig_dir: Path) -> list[BoardSpec]:
    if not isinstance(node.value, list) or not node.value:
        raise _expected(node, "a list of at least one board")
    boards: list[BoardSpec] = []
    for item in node.value:
        board = _board(item, rig_dir)
        for other in boards:
            if other.name == board.name:
                raise _Invalid(item.line, f"{item.path}.name",
                               f"{board.name!r} is already the name of the board on line {other.line}")
            if board.port is not None and board.port == other.port:
                raise _Invalid(item.value["port"].line, f"{item.path}.port",
                               f"the same port as board {other.name} (line {other.line})")
            if board.power is not None and board.power == other.power:
                raise _Invalid(item.value["power"].line, f"{item.path}.power", f"the same switch as board "
                               f"{other.name} (line {other.line}): a power cut must hit one board only")
            if board.relay_channel is not None and board.relay_channel == other.relay_channel:
                virtual = item.value["virtual"]
                raise _Invalid(virtual.value.get("channel", virtual).line, f"{virtual.path}.channel",
                               f"relay channel {board.relay_channel} already powers board {other.name} "
                               f"(line {other.line}): a power cut must hit one board only")
        boards.append(board)
    return boards


def _board(node: _Node, rig_dir: Path) -> BoardSpec:
    fields = _fields(node, _BOARD_KEYS, "a mapping describing one board")
    name = _matching(_required(node, fields, "name", "the board's name"), _BOARD_NAME,
                     "a name of a-z, 0-9, _ and -")
    chip = _choice(_required(node, fields, "chip", "esp32 or esp8266"), CHIPS)
    flash_size = _optional(fields, "flash_size", _flash_size, DEFAULT_FLASH_SIZE)
    virtual, relay_channel = _optional(fields, "virtual", _virtual, (False, None))
    from .farm import rigfile as farm_rig

    farm = farm_rig.board(node, fields)
    if farm is not None:
        port = power = None
    elif virtual:
        for key in ("port", "power"):
            if key in fields:
                raise _Invalid(fields[key].line, fields[key].path,
                               "not for a virtual board: the harness starts it and owns its port and power")
        port = power = None
    else:
        port = _port(_required(node, fields, "port", f"a real board needs one of {', '.join(PORT_SELECTORS)}"))
        power = _power(_required(node, fields, "power", "a real board needs a power switch: kind and its options"),
                       name)
    devices = _devices(node, fields, chip, flash_size, virtual, rig_dir)
    if any(d.baseline == MICROPYTHON_BASELINE for d in devices):
        try:
            chip_class(chip).micropython_partition_table(flash_size)
        except ValueError as e:
            raise _Invalid(fields.get("flash_size", node).line, f"{node.path}.flash_size", str(e)) from None
    return BoardSpec(
        name=name, chip=chip, flash_size=flash_size, virtual=virtual, port=port, power=power, devices=devices,
        baud=_optional(fields, "baud", lambda n: _integer(n, 9600, 5_000_000), DEFAULT_BAUD),
        boot_timeout=_optional(fields, "boot_timeout", _seconds, DEFAULT_BOOT_TIMEOUT),
        confirm_timeout=_optional(fields, "confirm_timeout", _seconds,
                                  DEFAULT_CONFIRM_TIMEOUT_VIRTUAL if virtual else DEFAULT_CONFIRM_TIMEOUT),
        line=node.line, relay_channel=relay_channel, farm=farm)


def _devices(node: _Node, fields: dict[str, _Node], chip: str, flash_size: int, virtual: bool,
             rig_dir: Path) -> list[DeviceSpec]:
    """The board's device implementations: ``devices:`` (a list), or the single form (``device``, ``baseline``,
    ``updates`` on the board itself; the MicroPython agent when ``device`` is not given)."""
    if "devices" in fields:
        single = [key for key in _SINGLE_DEVICE_KEYS if key in fields]
        if single:
            raise _Invalid(fields[single[0]].line, fields[single[0]].path,
                           "not next to devices: (give it in the device's own entry)")
        listed = fields["devices"]
        if not isinstance(listed.value, list) or not listed.value:
            raise _expected(listed, "a list of device implementations ({kind: micropython, ...})")
        devices: list[DeviceSpec] = []
        for item in listed.value:
            item_fields = _fields(item, ("kind", "updates", *sorted({k for ks in DEVICE_KEYS.values() for k in ks})),
                                  "a mapping with kind and that device's settings")
            kind = _device_kind(_required(item, item_fields, "kind", f"one of {', '.join(DEVICES)}"), chip)
            device = _device(item, item_fields, kind, chip, flash_size, virtual, rig_dir)
            for other in devices:
                if other.kind == device.kind:
                    raise _Invalid(item_fields["kind"].line, f"{item.path}.kind",
                                   f"{kind!r} is already the device on line {other.line}")
            devices.append(device)
        return devices
    kind = _optional(fields, "device", lambda n: _device_kind(n, chip), DEVICES[0])
    single_fields = {key: child for key, child in fields.items() if key in _SINGLE_DEVICE_KEYS[1:]}
    return [_device(node, single_fields, kind, chip, flash_size, virtual, rig_dir, single=True)]


def _device_kind(node: _Node, chip: str) -> str:
    kind = _choice(node, DEVICES)
    if chip not in DEVICE_UPDATES[kind]:
        raise _Invalid(node.line, node.path, f"{kind!r} does not run on {chip} "
                                             f"(it runs on: {', '.join(DEVICE_UPDATES[kind])})")
    return kind


def _device(node: _Node, fields: dict[str, _Node], kind: str, chip: str, flash_size: int, virtual: bool,
            rig_dir: Path, single: bool = False) -> DeviceSpec:
    """One device implementation: ``node`` holds its keys (the board itself in the single form)."""
    allowed = DEVICE_KEYS[kind]
    for key in ("baseline", "build_dir", "patterns"):
        if key in fields and key not in allowed:
            raise _Invalid(fields[key].line, fields[key].path, f"not a setting of {kind} devices"
                                                               f" (they take: {', '.join(allowed) or 'none'})")
    updates = _optional(fields, "updates", lambda n: _updates(n, chip, kind), list(DEVICE_UPDATES[kind][chip]))
    baseline = build_dir = None
    build_dir_line = 0
    if kind == "esp8266-sdk" and not virtual and "baseline" not in fields:
        raise _Invalid(node.line, _join(node.path, "baseline"),
                       "missing (boot_v1.7.bin at 0x0, user1 at 0x1000, esp_init_data_default and blank.bin: "
                       "a list of {offset, file})")
    if kind == "esp8266-sdk" and "baseline" in fields:
        baseline = _baseline(fields["baseline"], flash_size, virtual, rig_dir)
    if kind == "micropython":
        if "baseline" in fields:
            baseline = _baseline(fields["baseline"], flash_size, virtual, rig_dir)
        elif virtual:
            baseline = MICROPYTHON_BASELINE
        else:
            raise _Invalid(node.line, _join(node.path, "baseline"),
                           "missing (the image files a real board starts from: a list of {offset, file})")
    if "build_dir" in fields:
        # whether it holds a build is baseline_file_problems's question (load_rig(check_files=True))
        build_dir = rig_dir / _text(fields["build_dir"], "an ESP-IDF build directory, relative to the rig file")
        build_dir_line = fields["build_dir"].line
    elif kind == "idf-app" or (kind.startswith("esp-idf") and not virtual) or (kind == "esp8266-sdk" and not virtual):
        what = ("the build directory of your ESP-IDF app (where idf.py build wrote flasher_args.json)"
                if kind == "idf-app" else "the build directory of device_fw/esp_idf (idf.py build)"
                if kind.startswith("esp-idf") else "where the SDK's make wrote user1.*.bin and user2.*.bin")
        raise _Invalid(node.line, _join(node.path, "build_dir"), f"missing ({what})")
    patterns = _optional(fields, "patterns", _patterns, {})
    return DeviceSpec(kind, updates, baseline, build_dir, patterns, key=node.path, line=node.line,
                      build_dir_line=build_dir_line)


def _patterns(node: _Node) -> dict[str, str]:
    """``patterns:`` of an ``idf-app``: event -> a regular expression matched against the message of a log line."""
    fields = _fields(node, IDF_APP_EVENTS, f"a mapping of event -> regular expression ({', '.join(IDF_APP_EVENTS)})")
    patterns = {}
    for event, child in fields.items():
        text = _text(child, "a regular expression")
        try:
            rx = re.compile(text)
        except re.error as e:
            raise _Invalid(child.line, child.path, f"not a valid regular expression: {e}") from None
        if event == "ready" and "version" not in rx.groupindex:
            raise _Invalid(child.line, child.path, "needs a (?P<version>...) group: the running version")
        if event == "refused" and "reason" not in rx.groupindex:
            raise _Invalid(child.line, child.path, "needs a (?P<reason>...) group: why the update was refused")
        patterns[event] = text
    return patterns


def _virtual(node: _Node) -> tuple[bool, int | None]:
    """``virtual:`` as (virtual, relay channel): true/false, or a mapping wiring the board to a virtual relay."""
    if isinstance(node.value, bool):
        return node.value, None
    if not isinstance(node.value, dict):
        raise _expected(node, "true, false or a mapping {power: lcus, channel: N}")
    fields = _fields(node, _VIRTUAL_KEYS, "a mapping {power: lcus, channel: N}")
    _choice(_required(node, fields, "power", "the virtual relay board that powers it: lcus"), VIRTUAL_RELAYS)
    return True, _optional(fields, "channel", lambda n: _integer(n, 1, 8), 1)


def _flash_size(node: _Node) -> int:
    what = "a power of two 1MB..16MB (e.g. 4MB)"
    try:
        size = parse_size(_text(node, what))
    except ValueError:
        raise _expected(node, what) from None
    if size & (size - 1) or not 1 << 20 <= size <= 16 << 20:
        raise _expected(node, what)
    return size


def _updates(node: _Node, chip: str, device: str = "micropython") -> list[str]:
    allowed = DEVICE_UPDATES[device][chip]
    if not isinstance(node.value, list) or not node.value:
        raise _expected(node, f"a list of update kinds ({', '.join(allowed)})")
    updates: list[str] = []
    for item in node.value:
        if item.value in UPDATE_KINDS and item.value not in allowed:
            where = chip if device == "micropython" else f"{chip} with {device}"
            raise _Invalid(item.line, item.path, f"{item.value!r} updates are not possible on {where} "
                                                 f"(allowed: {', '.join(allowed)})")
        kind = _choice(item, allowed)
        if kind in updates:
            raise _Invalid(item.line, item.path, f"{kind!r} is listed twice")
        updates.append(kind)
    return updates


def _baseline(node: _Node, flash_size: int, virtual: bool, rig_dir: Path) -> str | list[BaselinePart]:
    if node.value == MICROPYTHON_BASELINE:
        if not virtual:
            raise _Invalid(node.line, node.path, "'micropython' is the built-in baseline of virtual boards; "
                                                 "a real board lists its image files ({offset, file})")
        return MICROPYTHON_BASELINE
    if not isinstance(node.value, list) or not node.value:
        raise _expected(node, "micropython or a list of {offset, file}")
    parts: list[BaselinePart] = []
    for item in node.value:
        fields = _fields(item, _PART_KEYS, "a mapping with offset and file")
        offset_node = _required(item, fields, "offset", "where the file goes in flash, e.g. 0x1000")
        offset = _offset(offset_node)
        if offset >= flash_size:
            raise _Invalid(offset_node.line, offset_node.path,
                           f"0x{offset:x} is beyond the {format_size(flash_size)} flash")
        file_node = _required(item, fields, "file", "the image file, relative to the rig file")
        # whether the file is there and fits is baseline_file_problems's question (load_rig(check_files=True))
        parts.append(BaselinePart(offset, rig_dir / _text(file_node), item.path, item.line, file_node.line))
    return parts


def _offset(node: _Node) -> int:
    what = "a flash offset: an integer or a 0x hex string, a multiple of 0x1000"
    offset = node.value
    if isinstance(offset, str) and re.fullmatch(r"0[xX][0-9a-fA-F]+", offset.strip()):
        offset = int(offset, 16)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0 or offset % SECTOR:
        got = f"0x{offset:x}" if isinstance(offset, int) and not isinstance(offset, bool) else _got(node)
        raise _Invalid(node.line, node.path, f"expected {what}, got {got}")
    return offset


def _port(node: _Node) -> PortSpec:
    fields = _fields(node, PORT_SELECTORS, f"a mapping with one of {', '.join(PORT_SELECTORS)}")
    if len(fields) != 1:
        at = list(fields.values())[1].line if fields else node.line
        given = " and ".join(fields) or "none"
        raise _Invalid(at, node.path, f"expected exactly one of {', '.join(PORT_SELECTORS)}, got {given}")
    kind, value = next(iter(fields.items()))
    return PortSpec(kind, _PORT_CHECKS[kind](value))


def _by_id(node: _Node) -> str:
    what = f"a name in {_BY_ID_DIR}"
    name = _text(node, what).removeprefix(_BY_ID_DIR)
    if not name or "/" in name:
        raise _expected(node, what)
    return name


def _port_url(node: _Node) -> str:
    what = "rfc2217://host:port or socket://host:port"
    url = _text(node, what)
    try:
        parts = urlsplit(url)
        ok = parts.scheme in PORT_URL_SCHEMES and parts.hostname and parts.port
    except ValueError:
        ok = False
    if not ok:
        raise _expected(node, what)
    return url


_PORT_CHECKS: dict[str, Callable[[_Node], str]] = {
    "path": _text,
    "by_id": _by_id,
    "location": lambda n: _matching(n, _USB_LOCATION, "a USB location such as 1-1.4"),
    "serial": _text,
    "mac": lambda n: _matching(n, _MAC, "a MAC address such as 24:0a:c4:12:34:56").lower().replace("-", ":"),
    "url": _port_url,
}


def _power(node: _Node, board: str) -> PowerSpec:
    if not isinstance(node.value, dict):
        raise _expected(node, "a mapping with kind and that kind's options")
    fields = node.value
    kind = _text(_required(node, fields, "kind", f"one of {', '.join(KINDS)}"))
    options = {key: _plain(value) for key, value in fields.items() if key != "kind"}
    try:
        # building a switch checks every option and opens nothing: ports and sockets open on first use
        make_switch(kind, options, board).close()
    except PowerSwitchConfigError as e:
        message = str(e)  # "power.<option>: problem", the option named as in the file
        option = re.match(r"power\.(\w+)", message)
        if option is None:
            raise _Invalid(node.line, node.path, message) from None
        raise _Invalid(fields.get(option.group(1), node).line, None,
                       node.path + message.removeprefix("power")) from None
    except PowerSwitchError:
        # the only other failure of a constructor is a missing hardware library (hidapi, pyftdi), imported
        # after every option is checked: the file is right, and the switch says so when the run builds it
        pass
    return PowerSpec(kind, options)
