"""ESP-IDF apps as device implementations: a user's own firmware (``idf-app``) and the project's C client (``esp-idf``).

Both are ESP-IDF builds: the baseline is what ``idf.py flash`` writes, read from the build
directory's ``flasher_args.json`` the way pytest-embedded reads it (``flash_files``: offset ->
file, ``app``, ``extra_esptool_args.chip``). Their console is ESP-IDF's log (``I (1234) tag:
message``), read into OTA events by the messages of ESP-IDF's OTA examples
(``advanced_https_ota``, ``native_ota_example``), which the C client prints too
(``device_fw/esp_idf/README.md``); an ``idf-app`` may give its own patterns per event in the
rig. An update is offered by writing a URL on the serial line, as the examples read it from
stdin (``CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL_FROM_STDIN``): the image's own URL for an
``idf-app``, a manifest's (version, size, sha256, url) for the C client, which therefore also
refuses a tampered image announced with the genuine digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..console import parse_idf_log_line, strip_colours
from ..errors import InfrastructureError
from ..firmware import FlashPart
from .base import Capability, Device, DeviceError, Published, publish_firmware


class FlasherArgsError(InfrastructureError, ValueError):
    """A build directory without a usable ``flasher_args.json``; ``str()`` is one line naming the file."""


@dataclass(frozen=True)
class FlasherArgs:
    """What ``idf.py build`` wrote into ``flasher_args.json``: the files ``idf.py flash`` writes and where."""

    path: Path
    flash_files: list[tuple[int, Path]]  # (offset, file), by offset
    app: tuple[int, Path] | None
    chip: str | None
    flash_settings: dict = field(default_factory=dict)

    @property
    def build_dir(self) -> Path:
        return self.path.parent


def read_flasher_args(build_dir: str | Path) -> FlasherArgs:
    """``build_dir/flasher_args.json`` read as pytest-embedded-idf does: ``flash_files`` (offset strings, ``0x``
    or decimal, -> paths relative to the build directory), ``app`` (offset, file) and the chip
    (``extra_esptool_args.chip``). Whether the files exist is the caller's question."""
    build_dir = Path(build_dir)
    path = build_dir / "flasher_args.json"
    if not build_dir.is_dir():
        raise FlasherArgsError(f"no such build directory: {_shown(build_dir)} (run idf.py build)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FlasherArgsError(f"no flasher_args.json in {_shown(build_dir)} (is it an ESP-IDF build directory? "
                               "run idf.py build)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FlasherArgsError(f"cannot read {_shown(path)}: {getattr(e, 'strerror', None) or e}") from None
    except json.JSONDecodeError as e:
        raise FlasherArgsError(f"{_shown(path)} is not valid JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flash_files"), dict) or not data["flash_files"]:
        raise FlasherArgsError(f"{_shown(path)} has no flash_files (offset -> file)")
    files = []
    for offset, name in data["flash_files"].items():
        try:
            files.append((int(str(offset), 0), build_dir / str(name)))
        except ValueError:
            raise FlasherArgsError(f"{_shown(path)}: flash_files: {offset!r} is not a flash offset") from None
    files.sort()
    app = None
    entry = data.get("app")
    if isinstance(entry, dict) and "offset" in entry and "file" in entry:
        try:
            app = (int(str(entry["offset"]), 0), build_dir / str(entry["file"]))
        except ValueError:
            raise FlasherArgsError(f"{_shown(path)}: app.offset: {entry['offset']!r} is not a flash offset") from None
    chip = (data.get("extra_esptool_args") or {}).get("chip")
    if chip is None:
        described = build_dir / "project_description.json"
        if described.is_file():
            try:
                chip = json.loads(described.read_text(encoding="utf-8")).get("target")
            except (OSError, ValueError):
                chip = None
    return FlasherArgs(path, files, app, chip, dict(data.get("flash_settings") or {}))


def _shown(path: Path) -> str:
    from ..rig import shown_path

    return shown_path(path)


# -- console lines -> events ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventPattern:
    """A message that is an event: ``fields`` are added to the regex's named groups. A ``fallback`` refusal
    counts only when nothing more specific was refused since the device last got ready or listened."""

    event: str
    regex: re.Pattern[str]
    fields: Mapping[str, str] = field(default_factory=dict)
    fallback: bool = False


def _p(event: str, regex: str, fallback: bool = False, **fields: str) -> EventPattern:
    return EventPattern(event, re.compile(regex), fields, fallback)


#: the messages of ESP-IDF's OTA examples and of the project's client, in the order they are tried
IDF_EVENTS: tuple[EventPattern, ...] = (
    _p("ready", r"Running firmware version: (?P<version>\S+)"),
    _p("listening", r"Waiting for the firmware URL on the serial line|Starting Advanced OTA example"),
    _p("writing", r"Written (?P<bytes>\d+) of (?P<total>\d+) bytes"),
    _p("refused", r"Current running version is the same as a new", reason="same-version"),
    _p("refused", r"New version (?P<version>\S+) is older than the running", reason="older-version"),
    _p("refused", r"New version is the same as invalid version", reason="invalid-version"),
    _p("refused", r"New firmware security version is less than eFuse programmed", reason="secure-version"),
    _p("refused", r"SHA-256 mismatch", reason="hash-mismatch"),
    _p("refused", r"Mismatch chip id, expected", reason="wrong-chip"),
    _p("refused", r"Image validation failed, image is corrupted|Incorrect app descriptor magic|"
                  r"Complete headers were not received|OTA image has invalid magic byte", reason="bad-image"),
    _p("refused", r"Complete data was not received", reason="incomplete"),
    _p("refused", r"Failed to verify peer certificate", reason="tls"),
    _p("refused", r"ESP HTTPS OTA Begin failed", fallback=True, reason="connection"),
    _p("refused", r"ESP_HTTPS_OTA upgrade failed", fallback=True, reason="failed"),
    _p("switch", r"ESP_HTTPS_OTA upgrade successful\. Rebooting"),
    _p("confirmed", r"App is valid, rollback cancelled successfully"),
    _p("rollback", r"Diagnostics failed! Start rollback to the previous version", reason="health-failed"),
)


class IdfEvents:
    """ESP-IDF log lines -> OTA events, fields normalised as every device's are: ``kind=firmware`` on each event,
    ``ready`` with ``firmware=<running version>``.

    ``patterns`` (event -> regex, an ``idf-app``'s own lines) are tried before the built-in messages; they are
    searched in a log line's message, and in the whole line of one that is not an ESP-IDF log line.
    """

    def __init__(self, patterns: Mapping[str, str] | None = None):
        own = tuple(EventPattern(event, re.compile(regex)) for event, regex in (patterns or {}).items())
        self.patterns = own + IDF_EVENTS

    def parse_lines(self, lines: Iterable[str]) -> Iterator[tuple[int, str, dict[str, str]]]:
        refused_since_attempt = False
        for index, line in enumerate(lines):
            parsed = self.parse_line(line)
            if parsed is None:
                continue
            pattern, fields = parsed
            if pattern.event in ("ready", "listening"):
                refused_since_attempt = False
            if pattern.event == "refused":
                if pattern.fallback and refused_since_attempt:
                    continue
                refused_since_attempt = True
            yield index, pattern.event, fields

    def parse_line(self, line: str) -> tuple[EventPattern, dict[str, str]] | None:
        log = parse_idf_log_line(line)
        text = log.message if log is not None else strip_colours(line).strip()
        if not text:
            return None
        for pattern in self.patterns:
            m = pattern.regex.search(text)
            if m is None:
                continue
            fields = {"kind": "firmware", **pattern.fields,
                      **{k: v for k, v in m.groupdict().items() if v is not None}}
            if pattern.event == "ready":
                fields["firmware"] = fields["version"]
            if log is not None:
                fields.setdefault("tag", log.tag)
            return pattern, fields
        return None


# -- the devices ---------------------------------------------------------------------------------------------------
class IdfAppDevice(Device):
    """Your own ESP-IDF firmware: any app that follows ``advanced_https_ota``'s conventions (the image URL read from
    the serial line, the examples' log lines; or the rig's ``patterns``), from the rig's ``build_dir``."""

    kind = "idf-app"
    #: no manifest, so no digest to announce; the examples check the version before writing; whether a new version
    #: is confirmed depends on the app's own diagnostics, not on the harness's health endpoint
    capabilities = frozenset({Capability.REFUSES_SAME_VERSION, Capability.OVER_HTTP})
    #: esp_ota_mark_app_invalid_rollback_and_reboot() marks the new slot INVALID
    rolled_back_state = "INVALID"
    variants = {"firmware": ("next", "same", "older", "bad_sha256", "bad_checksum", "wrong_chip", "truncated",
                             "truncated_header", "random")}
    #: the partitions erased with the baseline besides otadata: what the app kept from an earlier case
    erase = ("nvs",)
    #: how long to wait for a line saying the app listens before writing the URL anyway
    listen_timeout = 5.0

    def __init__(self, spec, board, bench):
        super().__init__(spec, board, bench)
        self._build: FlasherArgs | None = None
        self._parts: list[FlashPart] | None = None
        self._listened = 0

    def make_parser(self) -> IdfEvents:
        return IdfEvents(self.spec.patterns)

    # -- the baseline --------------------------------------------------------------------------------------------
    def flasher_args(self) -> FlasherArgs:
        if self._build is None:
            if self.spec.build_dir is None:
                raise DeviceError(f"{self.kind} on board {self.board.name}: no build_dir in the rig")
            self._build = read_flasher_args(self.spec.build_dir)
        return self._build

    def baseline_parts(self) -> list[FlashPart]:
        if self._parts is None:
            args = self.flasher_args()
            parts = []
            for offset, path in args.flash_files:
                try:
                    parts.append(FlashPart(offset, path.read_bytes(), path.name))
                except OSError as e:
                    raise FlasherArgsError(f"{_shown(args.path)}: cannot read {_shown(path)}: "
                                           f"{e.strerror or e}") from None
            self._parts = parts
        return self._parts

    def baseline_app(self) -> bytes:
        """The app image ``flasher_args.json`` names (``app``), else the image in the first app partition."""
        from ..esp import parse_image

        args = self.flasher_args()
        if args.app is not None:
            data = next((p.data for p in self.baseline_parts() if p.offset == args.app[0]), None)
            if data is None:
                data = args.app[1].read_bytes()
        else:
            return super().baseline_app()
        return data[:parse_image(data, self.board.chip).length]

    def baseline_version(self, kind: str) -> str:
        return self.firmware().version

    def prepare(self) -> None:
        """The build's images in place (otadata and nvs erased), booted to ``ready``; a virtual board restores the
        flash it saved after the first such preparation."""
        self.flash_baseline(self.baseline_parts(), erase=self.erase, on_boot=self._listening_from)

    def _listening_from(self, mark: int) -> None:
        self._listened = mark

    # -- updates ---------------------------------------------------------------------------------------------------
    def publish(self, kind: str, variant: str, prefix: str, server=None) -> Published:
        if kind != "firmware":
            raise DeviceError(f"{self.kind} takes no {kind!r} updates")
        return publish_firmware(self, prefix, variant, manifest=False, server=server)

    def trigger(self, pub: Published) -> int:
        """Write ``pub.url`` on the serial line once the app listens for it (its ``listening`` line since it last
        got ready; an app without one gets the URL after :attr:`listen_timeout`)."""
        console = self.board.console
        # a listening line of a boot that has since ended (a power cut, a reset) does not count
        since = self._listened
        readies = console.events(since, "ready")
        if readies:
            since = max(since, readies[-1].at)
        try:
            listening = console.expect_event("listening", timeout=self.listen_timeout, since=since)
            self._listened = console.text.index("\n", listening.at) + 1  # used: the next trigger waits for another
        except TimeoutError:
            if self.must_listen:
                raise
            self._listened = console.mark()
        mark = console.mark()
        console.write_line(pub.url)
        return mark

    #: whether an app that never says it listens is an error (the C client always says so)
    must_listen = False


class EspIdfDevice(IdfAppDevice):
    """The project's ESP-IDF OTA client (``device_fw/esp_idf``): a manifest URL on the serial line, the image read
    back and checked against the manifest's SHA-256, a health check against the update server on the first boot."""

    kind = "esp-idf"
    capabilities = frozenset(Capability.ALL)
    rolled_back_state = "INVALID"
    variants = {"firmware": ("next", "same", "older", "tampered", "unhealthy", "bad_sha256", "bad_checksum",
                             "wrong_chip", "truncated", "truncated_header", "random")}
    must_listen = True
    listen_timeout = 60.0
    #: sdkconfig options of this configuration of the client, under the run's mutation (none: the project's own)
    sdkconfig: ClassVar[Mapping[str, bool | int | str]] = {}

    def flasher_args(self) -> FlasherArgs:
        if self._build is None and self.spec.build_dir is None:
            self._build = read_flasher_args(self.host_build().build_dir)
        return super().flasher_args()

    def host_build(self):
        """The client built for a virtual board (``harness.emu.idf.build``) with the run's mutation (sdkconfig
        overrides) and the run's CA, which the client embeds for https:// URLs."""
        try:
            from ..emu.idf.build import build_app
        except ImportError as e:
            raise DeviceError(f"board {self.board.name}: the host build of device_fw/esp_idf "
                              f"(harness.emu.idf.build) is not available: {e}") from None
        mutation = self.bench.mutation_for(self.kind)
        sdkconfig = {**self.sdkconfig, **(mutation.apply() if mutation is not None else {})}
        return self.host_built(lambda: build_app(sdkconfig=sdkconfig or None, ca_pem=self.bench.ca_pem()))

    def prepare(self) -> None:
        if self.spec.build_dir is not None and self.bench.mutation_for(self.kind) is not None:
            raise DeviceError(f"board {self.board.name}: a mutation of the esp-idf client needs a build the harness "
                              f"makes; the rig gives a build directory ({_shown(self.spec.build_dir)})")
        super().prepare()

    def publish(self, kind: str, variant: str, prefix: str, server=None) -> Published:
        if kind != "firmware":
            raise DeviceError(f"{self.kind} takes no {kind!r} updates")
        return publish_firmware(self, prefix, variant, manifest=True, server=server)


class EspIdfAntiRollbackDevice(EspIdfDevice):
    """The project's ESP-IDF client built with ESP-IDF's anti-rollback: ``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y``
    (its bootloader never boots an app whose ``secure_version`` is below the chip's eFuse, and burns the eFuse
    up to the secure_version of the app it confirms) and ``CONFIG_BOOTLOADER_APP_SECURE_VERSION=2``.

    Everything the client does otherwise is as ``esp-idf``'s; it also takes ``lower_secure_version`` (the next
    version with secure_version 1), which it must refuse before writing. On a real board this burns eFuse bits
    that never come back (builds with anti-rollback off, the project's default, ignore them, so the board still
    runs those); a bench gives its build directory, built with those options; on a virtual board the harness
    builds it.
    """

    kind = "esp-idf-anti-rollback"
    capabilities = EspIdfDevice.capabilities | {Capability.ANTI_ROLLBACK}
    variants = {"firmware": EspIdfDevice.variants["firmware"] + ("lower_secure_version",)}
    #: the baseline's secure_version (what the chip's eFuse holds once the baseline is confirmed)
    secure_version = 2
    sdkconfig = {"BOOTLOADER_APP_ANTI_ROLLBACK": True, "BOOTLOADER_APP_SECURE_VERSION": secure_version}
