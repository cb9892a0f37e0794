"""The protocol every device implementation follows: what a scenario may ask of the OTA client under test.

A *device implementation* is the OTA client running on a board (the MicroPython agent, the
project's ESP-IDF client in C, a user's own ESP-IDF app). A scenario never sees its internals:
it asks :class:`Device` (through :class:`harness.scenario.OtaCase`) to

* be put on the board in its baseline state (:meth:`Device.prepare`: flash images whose MD5
  differs, deploy files) and to be ready (:meth:`Device.wait_ready`),
* offer an update of one kind (:meth:`Device.publish`: which server, a manifest or a plain image
  URL, the variant: ``next``, ``same``, ``tampered``, ...),
* take it (:meth:`Device.trigger`: a serial command, a URL on the serial line),

and reads what it did from the console as OTA events named the same for every device
(``ready``, ``writing``, ``refused`` with ``reason``, ``switch``, ``confirmed``, ``rollback``), through
the device's :attr:`Device.parser`. Fields are normalised: every event of a firmware update carries
``kind=firmware``; ``ready`` carries the running version of each update kind under that kind's name
(:meth:`Device.running_version`). What a device can be asked is in :attr:`Device.capabilities`, so a
scenario runs only where it applies (``@pytest.mark.needs(...)``).
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..console import EventParser, OtaEvent
from ..servers import FaultPlan

if TYPE_CHECKING:
    from ..board import Board
    from ..firmware import FirmwareFactory, FlashPart
    from ..rig import DeviceSpec


class Capability:
    """What a device implementation can be asked for, beyond taking an update and surviving a power cut."""

    #: the update is announced with its SHA-256 and the device refuses content that does not match it (bad hash)
    ANNOUNCES_DIGEST = "announces-digest"
    #: the running version offered again is refused before anything is written (same version)
    REFUSES_SAME_VERSION = "refuses-same-version"
    #: a new version is confirmed only once the update server's health check answers; otherwise it rolls back
    HEALTH_ROLLBACK = "health-check-rollback"
    #: https with the run's CA (``hil ca``), which the device is given or was built with; a server whose
    #: certificate does not verify against it is refused
    VERIFIES_TLS = "verifies-server-certificate"
    #: built with anti-rollback (ESP-IDF's CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK) on a baseline whose secure_version
    #: is above 0: an image with a lower secure_version than the chip's eFuse is refused before anything is written
    ANTI_ROLLBACK = "anti-rollback"

    #: takes updates over HTTP(S): a body without a length (chunked) and redirects are the server's choice
    OVER_HTTP = "over-http"
    #: takes boot_v1.x user bins (ESP8266 SDK FOTA): checks their CRC and the slot they are linked for before it
    #: switches, and boot_v1.x falls back to the other bin when the one it was told to boot is not an image
    SDK_USER_BINS = "sdk-user-bins"

    #: what every full-featured HTTP client can do (anti-rollback is a build configuration, not in this list)
    ALL = (ANNOUNCES_DIGEST, REFUSES_SAME_VERSION, HEALTH_ROLLBACK, VERIFIES_TLS, OVER_HTTP)
    #: every capability a scenario may name
    KNOWN = ALL + (ANTI_ROLLBACK, SDK_USER_BINS)


@dataclass
class Published:
    """An update on the server: what the device is given (``url``) and what it contains.

    ``url`` is a manifest's URL for a device that takes manifests, else the image's own.
    ``paths`` are the server paths of the update's content, the one a fault plan applies to last.
    """

    kind: str
    version: str
    url: str
    paths: list[str]
    size: int
    sha256: str
    path_sizes: dict[str, int] = field(default_factory=dict)
    fault: FaultPlan | None = None
    cut: threading.Event = field(default_factory=threading.Event)

    @property
    def manifest_url(self) -> str:
        return self.url


class DeviceError(RuntimeError):
    """A device implementation cannot do what was asked (a variant it has no meaning for, a missing build)."""


class Device(ABC):
    """One device implementation on one board (``bench`` is the run's :class:`harness.scenario.OtaBench`)."""

    #: the name in rig files (``devices: [{kind: ...}]``) and case ids
    kind: ClassVar[str]
    #: what it can be asked for (:class:`Capability`)
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: the otadata state of a new firmware that failed its health check, once the old one runs again
    rolled_back_state: ClassVar[str] = "ABORTED"
    #: the update variants :meth:`publish` knows, per update kind
    variants: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: whether a new version is confirmed by the device once it runs (a ``confirmed`` event, a VALID otadata entry);
    #: False where the loader's own check is all there is (boot_v1.x takes a bin for good once it boots)
    confirms_updates: ClassVar[bool] = True

    def __init__(self, spec: DeviceSpec, board: Board, bench: Any):
        self.spec = spec
        self.board = board
        self.bench = bench
        self.parser: EventParser = self.make_parser()
        #: set once a prepare put this device on the board (and cleared when another device took the board)
        self.installed = False
        self._firmware: FirmwareFactory | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} on {self.board.name}>"

    @property
    def updates(self) -> list[str]:
        """The update kinds the rig has this device take on its board."""
        return list(self.spec.updates)

    # -- console --------------------------------------------------------------------------------------
    @abstractmethod
    def make_parser(self) -> EventParser:
        """How this device's console lines become OTA events."""

    # -- on the board -----------------------------------------------------------------------------------
    @abstractmethod
    def baseline_parts(self) -> list[FlashPart]:
        """The flash images of the baseline state (what ``esptool write-flash`` puts on the board)."""

    def baseline_app(self) -> bytes:
        """The ESP32 app image the baseline boots: at the offset of the partition the baseline boots, in an image
        of its own or inside a combined one (MicroPython's release binary is bootloader, partition table and app
        from 0x1000)."""
        from ..board import BoardError
        from ..esp import boot as rules
        from ..esp import parse_image
        from ..esp.otadata import parse_otadata

        parts = self.baseline_parts()
        table = self.board.partition_table(parts)
        offset = rules.get_boot_partition(table, parse_otadata(b"\xff" * 0x2000)).offset
        for part in parts:
            if part.offset <= offset < part.offset + len(part.data):
                data = part.data[offset - part.offset:]
                return data[:parse_image(data, self.board.chip).length]
        raise BoardError(f"board {self.board.name}: no baseline image covers the app slot at 0x{offset:x}")

    def firmware(self) -> FirmwareFactory:
        """The images firmware updates are made of: the baseline's app with other versions, tampered, ..."""
        from ..firmware import FirmwareFactory

        if self._firmware is None:
            self._firmware = FirmwareFactory(self.baseline_app(), self.board.chip)
        return self._firmware

    @abstractmethod
    def prepare(self, **options: Any) -> None:
        """The board in this device's baseline state, booted to ``ready``."""

    def flash_baseline(self, parts: list[FlashPart], *, erase: tuple[str, ...] = (),
                       on_boot: Any = None) -> None:
        """``parts`` in place (images whose MD5 differs written, the partitions ``erase`` names erased), booted to
        ``ready``; a virtual board restores the flash it saved after the first such preparation instead.
        ``on_boot(mark)`` is told the console mark of the boot that follows."""
        board = self.board
        self.take_board()
        inputs = {"device": self.kind, "chip": f"{board.chip} {board.spec.flash_size}",
                  **{f"flash:0x{p.offset:x}": hashlib.sha256(p.data).hexdigest() for p in parts}}
        if board.snapshots:
            key = board.snapshot_key(inputs)
            if key in board.saved_inputs():
                if on_boot is not None:
                    on_boot(board.console.mark())
                board.restore_snapshot(key, self._ready)
                self.installed = True
                return
        if board.power.state() is False:  # e.g. a scenario that cut the power failed before restoring it
            board.power_on()
        mark = board.console.mark()
        if on_boot is not None:
            on_boot(mark)
        board.restore_firmware(parts, erase=erase)
        self.wait_ready(since=mark)
        self.installed = True
        if board.snapshots:
            board.save_snapshot(inputs, self._ready)

    def _ready(self, mark: int) -> None:
        self.wait_ready(since=mark)

    #: the first line of the host build's error, once it failed in this run
    _build_failed: str | None = None

    def host_built(self, build: Any):
        """``build()``, a host build of the device for a virtual board; once it has failed, every later case of the
        run gets one line instead of the compiler's message again (the first case that needed it has that)."""
        from ..emu.idf.build import HostBuildError

        if self._build_failed is not None:
            raise HostBuildError(f"board {self.board.name}: {self.kind}: the host build failed in an earlier case of "
                                 f"this run ({self._build_failed}); its error has the compiler's message")
        try:
            return build()
        except HostBuildError as e:
            self._build_failed = str(e).splitlines()[0]
            raise

    def take_board(self) -> bool:
        """Make this the device on the board (its console parser, its flash layout); True if it already was
        and its last prepare completed."""
        was_here = self.board.device is self and self.installed
        if self.board.device is not self:
            previous = self.board.device
            if previous is not None:
                previous.installed = False
            self.board.use_device(self)
        return was_here

    def wait_ready(self, since: int | None = None, timeout: float | None = None) -> OtaEvent:
        """The ``ready`` event after ``since``: the device runs and takes updates (``TimeoutError`` if not)."""
        console = self.board.console
        return console.expect_event("ready", timeout or self.board.spec.boot_timeout + 20,
                                    since=console.mark() if since is None else since)

    def files_region(self) -> tuple[int, int] | None:
        """(offset, size) of a file system the boot-state oracle reads slot records from; None: the partition
        table's ``vfs`` partition, if any."""
        return None

    # -- versions -----------------------------------------------------------------------------------------
    @abstractmethod
    def baseline_version(self, kind: str) -> str:
        """The version of ``kind`` the baseline state runs."""

    def baseline_versions(self) -> dict[str, str]:
        """Every version a ``ready`` event of the baseline state reports, by name."""
        return {kind: self.baseline_version(kind) for kind in self.updates}

    def running_version(self, ready: OtaEvent, kind: str) -> str | None:
        """The running version of update kind ``kind``, as ``ready`` reports it."""
        return ready.get(kind)

    def running_versions(self, ready: OtaEvent) -> dict[str, str | None]:
        """What :meth:`baseline_versions` names, as ``ready`` reports it."""
        return {name: ready.get(name) for name in self.baseline_versions()}

    # -- offering an update -------------------------------------------------------------------------------
    @abstractmethod
    def publish(self, kind: str, variant: str, prefix: str, server=None) -> Published:
        """Put an update of ``kind`` on ``server`` (default: the run's HTTP server) under ``prefix``: ``variant`` is
        ``next`` (the next
        version), ``same`` (the running one), ``tampered`` (well-formed, announced with the genuine digest),
        ``unhealthy`` (a version whose health check fails; firmware: the same as ``next``, the scenario takes the
        server's health check down), or one of the device's own :attr:`variants`."""

    @abstractmethod
    def trigger(self, pub: Published) -> int:
        """Make the device take ``pub``; returns the console mark from which its events count."""

    def server(self):
        """The server this device takes updates from unless a scenario names another: the run's HTTP server."""
        return self.bench.http

    def baseline_slot_name(self) -> str:
        """The app slot the baseline boots (the board's partition table's)."""
        return self.board.baseline_slot().label

    def update_slot_name(self) -> str:
        """The app slot a firmware update writes (the next update partition after :meth:`baseline_slot_name`)."""
        slot = self.board.update_slot()
        return slot.label if slot is not None else ""

    def other_slot_fingerprint(self, kind: str) -> str:
        """A digest of what an update of ``kind`` writes to, to show nothing was written (firmware: the MD5 of
        the next update partition of the board's partition table)."""
        slot = self.board.update_slot()
        if slot is None:
            from ..board import BoardError

            raise BoardError(f"board {self.board.name}: its partition table has no OTA app partition to update")
        return self.board.flash_md5(slot.offset, slot.size)

    # -- what applies ------------------------------------------------------------------------------------------
    def supports(self, kind: str, needs: tuple[str, ...] = ()) -> bool:
        return kind in self.updates and set(needs) <= self.capabilities


def publish_firmware(device: Device, prefix: str, variant: str, *, manifest: bool, server=None) -> Published:
    """A firmware image derived from the baseline's app (``harness.firmware.FirmwareFactory``: versions re-stamped
    in the app descriptor) on the run's HTTP server; with ``manifest`` announced by a manifest
    ``{version, size, sha256, url}`` (a ``tampered`` image with the genuine image's digest), else offered as the
    image's own URL."""
    from ..esp import parse_image

    fw = device.firmware()
    genuine = fw.next()
    variants = {"next": fw.next, "unhealthy": fw.next, "same": fw.same, "older": fw.older, "tampered": fw.tampered,
                "bad_sha256": fw.bad_sha256, "bad_checksum": fw.bad_checksum, "wrong_chip": fw.wrong_chip,
                "truncated": fw.truncated, "truncated_header": fw.truncated_header, "random": fw.random,
                "lower_secure_version": fw.lower_secure_version}
    if variant not in variants:
        raise DeviceError(f"no firmware variant {variant!r} (known: {', '.join(variants)})")
    if variant == "tampered" and not manifest:
        raise DeviceError(f"{device.kind} takes a plain image URL: a tampered image announced with the genuine "
                          "digest has nowhere to announce it")
    image = variants[variant]()
    if variant == "same":
        version = fw.version
    elif variant == "older":
        version = parse_image(image, device.board.chip).app_desc.version
    else:
        version = parse_image(genuine, device.board.chip).app_desc.version
    # A tampered image is announced with the digest of the genuine one.
    digest = hashlib.sha256(genuine if variant == "tampered" else image).hexdigest()
    device.board.remember_image(image)
    http = server or device.bench.http
    http.add(f"{prefix}/fw.bin", image)
    url = http.url_for(f"{prefix}/fw.bin")
    if manifest:
        http.add_json(f"{prefix}/manifest.json", {"version": version, "size": len(image), "sha256": digest,
                                                  "url": "fw.bin"})
        url = http.url_for(f"{prefix}/manifest.json")
    return Published("firmware", version, url, [f"{prefix}/fw.bin"], len(image), digest,
                     {f"{prefix}/fw.bin": len(image)})
