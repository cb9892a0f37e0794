"""The labgrid parts of a rig file: the top-level ``labgrid:`` key and a board's ``place:`` or ``tags:``.

::

    labgrid: {coordinator: farm.lan:20408, wait: 600}
    boards:
      - name: esp32
        chip: esp32
        tags: {pool: ota, flash: 4MB}    # any free place with these tags (and chip=esp32)
        devices: [...]
      - name: nodemcu
        chip: esp8266
        place: nodemcu-3                 # exactly this place

A board of the farm has no ``port:`` or ``power:``: the place it gets says where its serial port is
and which power driver switches it. ``tags`` always include the board's chip (``chip=esp32``) unless
they name it themselves, so a pool of mixed boards never hands an ESP8266 to an ESP32 board.
``harness.rig`` calls these functions; they raise its one-line errors.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

#: labgrid's coordinator port when the address gives none
DEFAULT_COORDINATOR_PORT = 20408
#: seconds a worker waits for a free matching place by default
DEFAULT_WAIT = 600.0
#: a tag key as labgrid's coordinator accepts it; values are kept to what a shell and a URL take unquoted
TAG_KEY = re.compile(r"[a-z][a-z0-9_]+")
TAG_VALUE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
PLACE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_SETTINGS_KEYS = ("coordinator", "wait", "off_time")
BOARD_KEYS = ("place", "tags")


@dataclass(frozen=True)
class FarmSettings:
    """The rig's ``labgrid:``: the coordinator (``LG_COORDINATOR`` overrides it), how long a worker waits for a
    place, and how long a power cycle keeps a board off."""

    coordinator: str
    wait: float = DEFAULT_WAIT
    #: seconds a place's power stays off in a power cycle (``off_time``)
    off_time: float = 1.0
    line: int = field(default=0, compare=False)

    @property
    def address(self) -> str:
        """``host:port`` of the coordinator to use now: ``LG_COORDINATOR`` if set, else the rig's."""
        return with_port(os.environ.get("LG_COORDINATOR") or self.coordinator)


@dataclass(frozen=True)
class FarmBoard:
    """Which places of the farm a rig board may be: one place by name, or any place with all of ``tags``."""

    place: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def filters(self) -> dict[str, str]:
        """The reservation filter: labgrid's coordinator also matches ``name=<place>``."""
        return {"name": self.place} if self.place else dict(self.tags)

    def describe(self) -> str:
        if self.place:
            return f"place {self.place}"
        return "a place tagged " + " ".join(f"{k}={v}" for k, v in sorted(self.tags.items()))


def with_port(address: str) -> str:
    address = address.strip()
    if address.rpartition(":")[2].isdigit() and not address.endswith("]"):
        return address
    return f"{address}:{DEFAULT_COORDINATOR_PORT}"


def settings(node) -> FarmSettings:
    """``labgrid: {coordinator: HOST[:PORT], wait: SECONDS, off_time: SECONDS}``."""
    from .. import rig as r

    fields = r._fields(node, _SETTINGS_KEYS, "a mapping {coordinator: HOST[:PORT], wait: SECONDS, off_time: SECONDS}")
    what = "the labgrid coordinator's address, HOST or HOST:PORT"
    coordinator_node = r._required(node, fields, "coordinator", what)
    coordinator = r._text(coordinator_node, what)
    host, sep, port = coordinator.rpartition(":")
    if not sep:
        host, port = coordinator, str(DEFAULT_COORDINATOR_PORT)
    if not r._HOST_NAME.fullmatch(host) or not (port.isdigit() and 1 <= int(port) <= 65535):
        raise r._expected(coordinator_node, what)
    wait = r._optional(fields, "wait", r._seconds, DEFAULT_WAIT)
    off_time = r._optional(fields, "off_time", r._seconds, 1.0)
    return FarmSettings(coordinator=coordinator, wait=wait, off_time=off_time, line=node.line)


def board(node, fields: dict) -> FarmBoard | None:
    """A board's ``place:`` or ``tags:`` (None when it has neither: not a board of the farm)."""
    from .. import rig as r

    given = [key for key in BOARD_KEYS if key in fields]
    if not given:
        return None
    if len(given) > 1:
        raise r._Invalid(fields["tags"].line, fields["tags"].path,
                         "not next to place: (a board is one named place or any place with these tags)")
    for key in ("port", "power", "virtual"):
        if key in fields and (key != "virtual" or fields[key].value is not False):
            raise r._Invalid(fields[key].line, fields[key].path,
                             f"not for a board of the labgrid farm: the place it gets says its {key}"
                             if key != "virtual" else "a board of the labgrid farm is a place, not a virtual board")
    chip = fields["chip"].value if "chip" in fields else None
    if "place" in fields:
        return FarmBoard(place=r._matching(fields["place"], PLACE_NAME, "a labgrid place name"))
    tags_node = fields["tags"]
    if not isinstance(tags_node.value, dict) or not tags_node.value:
        raise r._expected(tags_node, "a mapping of labgrid tags, e.g. {pool: ota, flash: 4MB}")
    tags: dict[str, str] = {}
    for key, child in tags_node.value.items():
        if not TAG_KEY.fullmatch(key):
            raise r._Invalid(child.line, child.path, "not a labgrid tag name (a-z first, then a-z, 0-9, _)")
        if key == "name":
            raise r._Invalid(child.line, child.path, "name is the place's name: use place: instead")
        value = child.text if child.text is not None else None
        if value is None or not TAG_VALUE.fullmatch(value.strip()):
            raise r._expected(child, "a tag value of letters, digits, _ . + -")
        tags[key] = value.strip()
    if isinstance(chip, str):
        if tags.setdefault("chip", chip) != chip:
            raise r._Invalid(tags_node.value["chip"].line, tags_node.value["chip"].path,
                             f"{tags['chip']!r} is not the board's chip ({chip})")
    return FarmBoard(tags=tags)


def check_rig(root_fields: dict, labgrid: FarmSettings | None, boards: list) -> None:
    """A farm board needs ``labgrid:``, and ``labgrid:`` needs a farm board."""
    from .. import rig as r

    farm = [b for b in boards if getattr(b, "farm", None) is not None]
    if farm and labgrid is None:
        raise r._Invalid(farm[0].line, "labgrid", f"missing: board {farm[0].name} is a labgrid place "
                                                  f"(labgrid: {{coordinator: HOST:PORT}})")
    if labgrid is not None and not farm:
        node = root_fields["labgrid"]
        raise r._Invalid(node.line, "labgrid", "no board of the rig is a labgrid place (give boards place: or tags:)")
