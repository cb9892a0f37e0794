"""The ESP8266 SDK FOTA client (``device_fw/esp8266_sdk``) as a device implementation: ``esp8266-sdk``.

The client runs on boot_v1.x's user1/user2 layout. An update is offered on the SDK FOTA TCP server
(:class:`harness.servers.FotaServer`, one per board, the protocol of seed 003): the device is told
``fota <host> <port>`` on the serial line, asks for the slot it does not run from, checks the length,
the slot the bin is linked for and its version, erases, writes with the SDK's upgrade API, checks the
CRC and switches with ``system_upgrade_reboot`` (or restarts on the old bin). Its console lines are
read into OTA events here (``fota: ...``), and boot_v1.x's fallback (``first boot failed, reboot to
try backup bin``) is a ``rollback``.

Versions: a user bin's version is the record at the start of its irom0 segment
(:func:`harness.esp.esp8266_image.read_user_bin_desc`); the client reports the record of the bin it
runs from, so the versions of an update are the baseline's bins re-stamped
(:func:`~harness.esp.esp8266_image.with_version`), on a bench as on a virtual board. On a virtual board the
harness builds the client for the host (``harness.emu.sdk8266.build``) with the run's mutation; a bench
gives the SDK's build output (``build_dir`` with ``user1.*.bin`` and ``user2.*.bin``) and its baseline images
(boot_v1.7.bin, esp_init_data_default, blank.bin, user1).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..firmware import FlashPart, next_version, previous_version
from .base import Capability, Device, DeviceError, Published

PROJECT_DIR = Path(__file__).resolve().parents[2] / "device_fw" / "esp8266_sdk"
#: the flash map the virtual ESP8266 runs the client on (4 MB, 512 KB + 512 KB: user1 and user2 are different builds)
VIRTUAL_MAP = 4
#: the baseline's version on a virtual board
BASE_VERSION = "1.0.0"

_EVENTS: tuple[tuple[str, re.Pattern[str], dict[str, str]], ...] = tuple(
    (event, re.compile(regex), fields) for event, regex, fields in (
        ("ready", r"fota: ready, version (?P<version>\S+), running user(?P<slot>[12])", {}),
        ("listening", r"fota: connecting to (?P<host>\S+?):(?P<port>\d+), asking for user(?P<slot>[12])", {}),
        ("writing", r"fota: written (?P<bytes>\d+) of (?P<total>\d+) bytes", {}),
        ("refused", r"fota: refused: (?P<reason>[a-z][a-z-]*): (?P<detail>.*)", {}),
        ("switch", r"fota: crc ok, switching to user(?P<slot>[12])", {}),
        # boot_v1.x gave up on the bin it was told to boot and went back to the other one
        ("rollback", r"first boot failed, reboot to try backup bin", {"reason": "boot-failed"}),
    ))


def host_build(mutation: str | None = None):
    """The client built for a virtual board (``harness.emu.sdk8266.build``, cached by content) at the baseline's
    version, with ``mutation`` (one of its ``OTA_CLIENT_MUTATION_*`` switches) or as it ships."""
    from ..emu.sdk8266.build import build_client

    return build_client(PROJECT_DIR, version=BASE_VERSION, mutation=mutation)


class SdkEvents:
    """The client's ``fota:`` lines and boot_v1.x's fallback -> OTA events (``kind=firmware`` on each; ``ready``
    with ``firmware=<running version>`` and ``slot``)."""

    def parse_lines(self, lines: Iterable[str]) -> Iterator[tuple[int, str, dict[str, str]]]:
        for index, line in enumerate(lines):
            parsed = self.parse_line(line)
            if parsed is not None:
                yield index, parsed[0], parsed[1]

    def parse_line(self, line: str) -> tuple[str, dict[str, str]] | None:
        text = line.strip()
        for event, regex, extra in _EVENTS:
            m = regex.search(text)
            if m is None:
                continue
            fields = {"kind": "firmware", **extra, **{k: v for k, v in m.groupdict().items() if v is not None}}
            if event == "ready":
                fields["firmware"] = fields["version"]
            return event, fields
        return None


class EspSdkDevice(Device):
    """The project's ESP8266 SDK FOTA client on boot_v1.x (user1/user2)."""

    kind = "esp8266-sdk"
    #: it reads the version record of what it is sent and refuses the running version; no manifest (the CRC is in
    #: the bin itself), no health check (boot_v1.x's magic check is the only fallback), no TLS
    capabilities = frozenset({Capability.REFUSES_SAME_VERSION, Capability.SDK_USER_BINS})
    variants = {"firmware": ("next", "same", "older", "bad_crc", "truncated", "truncated_header", "random",
                             "wrong_slot", "bad_magic", "too_large")}
    #: the boot selection of an SDK board is its system parameters, not an otadata partition
    rolled_back_state = ""
    #: nothing confirms a new bin: boot_v1.x's magic and checksum check at its first boot is the only trial
    confirms_updates = False

    def __init__(self, spec, board, bench):
        super().__init__(spec, board, bench)
        self._bins: dict[int, bytes] | None = None
        self._parts: list[FlashPart] | None = None

    def make_parser(self) -> SdkEvents:
        return SdkEvents()

    # -- the build ---------------------------------------------------------------------------------------------
    def user_bins(self) -> dict[int, bytes]:
        """The baseline's user1 and user2 bins (``{1: ..., 2: ...}``)."""
        if self._bins is None:
            self._bins = self._bench_bins() if self.spec.build_dir is not None else self._host_bins()
        return self._bins

    def _host_bins(self) -> dict[int, bytes]:
        mutation = self.bench.mutation_for(self.kind)
        build = self.host_built(lambda: host_build(mutation.macro if mutation is not None else None))
        return {1: build.user1, 2: build.user2}

    def _bench_bins(self) -> dict[int, bytes]:
        if self.bench.mutation_for(self.kind) is not None:
            raise DeviceError(f"board {self.board.name}: a mutation of the esp8266-sdk client needs a build the "
                              f"harness makes; the rig gives a build directory ({self.spec.build_dir})")
        build_dir = Path(self.spec.build_dir)
        bins = {}
        for slot in (1, 2):
            found = sorted(build_dir.glob(f"user{slot}.*.bin")) or sorted(build_dir.glob(f"upgrade/user{slot}.*.bin"))
            if not found:
                raise DeviceError(f"{self.kind} on board {self.board.name}: no user{slot}.*.bin in {build_dir} "
                                  f"(the SDK's make with BOOT=new APP={slot} writes bin/upgrade/user{slot}.*.bin)")
            bins[slot] = found[-1].read_bytes()
        return bins

    # -- the baseline ------------------------------------------------------------------------------------------
    def layout(self):
        """The boot_v1.x flash map of the baseline: the map code in its boot image's header (byte 3, high nibble)."""
        from ..esp.esp8266_image import FotaLayout

        boot = next((p.data for p in self.baseline_parts() if p.offset == 0), b"")
        if len(boot) < 4:
            raise DeviceError(f"{self.kind} on board {self.board.name}: the baseline has no boot image at 0x0")
        try:
            return FotaLayout.for_map_code(boot[3] >> 4)
        except ValueError as e:
            raise DeviceError(f"{self.kind} on board {self.board.name}: the boot image at 0x0: {e}") from None

    def baseline_parts(self) -> list[FlashPart]:
        """The boot image, user1, esp_init_data_default and blank.bin (the rig's on a bench; on a virtual board the
        project's boot image and the client built for the host), and the whole system-parameter area (both copies
        and the flag sector) erased, so that every case starts from the loader's first boot whatever an earlier
        one left there."""
        if self._parts is None:
            from ..esp.esp8266_image import FotaLayout, sdk_baseline

            if isinstance(self.spec.baseline, list):
                parts = [FlashPart(p.offset, p.path.read_bytes(), p.path.name) for p in self.spec.baseline]
                boot = next((p.data for p in parts if p.offset == 0), b"")
                layout = FotaLayout.for_map_code(boot[3] >> 4) if len(boot) >= 4 else None
            else:
                parts = sdk_baseline(self.board.spec.flash_size, VIRTUAL_MAP, self.user_bins()[1])
                layout = FotaLayout.for_map_code(VIRTUAL_MAP)
            if layout is not None:
                for address in (*layout.params, layout.flag):
                    if not any(p.offset <= address < p.offset + len(p.data) for p in parts):
                        parts.append(FlashPart(address, b"\xff" * 0x1000, f"blank@0x{address:x}"))
            self._parts = sorted(parts, key=lambda p: p.offset)
        return self._parts

    def baseline_app(self) -> bytes:
        return self.user_bins()[1]

    def baseline_version(self, kind: str) -> str:
        from ..esp.esp8266_image import read_user_bin_desc

        desc = read_user_bin_desc(self.user_bins()[1])
        if desc is None or not desc.version:
            raise DeviceError(f"{self.kind} on board {self.board.name}: the user1 bin has no version record")
        return desc.version

    def prepare(self, **options: Any) -> None:
        self.flash_baseline(self.baseline_parts())

    # -- slots ----------------------------------------------------------------------------------------------------
    def running_slot(self) -> int:
        """The slot (1 or 2) the device said it runs from in its last ``ready``."""
        readies = self.board.console.events(0, "ready")
        return int(readies[-1]["slot"]) if readies else 1

    def baseline_slot_name(self) -> str:
        return "user1"

    def update_slot_name(self) -> str:
        return "user2"

    def other_slot_fingerprint(self, kind: str) -> str:
        layout = self.layout()
        other = 3 - self.running_slot()
        return self.board.flash_md5(layout.slot_address(other), layout.slot_size)

    # -- updates ---------------------------------------------------------------------------------------------------
    def server(self):
        return self.bench.fota(self.board)

    def images(self, variant: str) -> tuple[str, dict[int, bytes]]:
        """(the version the update announces, ``{slot: bin}``) of ``variant``: both slots' bins at that version, the
        one for the slot the device will ask for changed as the variant says."""
        from ..esp import esp8266_image as sdk

        base = self.user_bins()
        version = self.baseline_version("firmware")
        target = 3 - self.running_slot()
        if variant not in self.variants["firmware"]:
            raise DeviceError(f"no {self.kind} firmware variant {variant!r} (known: "
                              f"{', '.join(self.variants['firmware'])})")
        new = {"same": version, "older": previous_version(version)}.get(variant, next_version(version))
        bins = {slot: sdk.with_version(data, new) for slot, data in base.items()}
        good = bins[target]
        changed = {
            "bad_crc": lambda: sdk.bad_crc(good),
            # the first 64000 bytes, as ESP-IDF's example test serves; of a smaller bin, the first half
            "truncated": lambda: good[:min(64000, len(good) // 2)],
            "truncated_header": lambda: good[:180],
            "random": lambda: b"\x00" + hashlib.shake_256(b"random bin").digest(0x20000 - 1),
            "wrong_slot": lambda: bins[3 - target],
            "bad_magic": lambda: sdk.bad_magic(good),
            "too_large": lambda: sdk.too_large(good, self.layout().slot_size),
        }
        if variant in changed:
            bins[target] = changed[variant]()
        return new, bins

    def publish(self, kind: str, variant: str, prefix: str, server=None) -> Published:
        if kind != "firmware":
            raise DeviceError(f"{self.kind} takes no {kind!r} updates")
        fota = server or self.server()
        version, bins = self.images(variant)
        target = 3 - self.running_slot()
        fota.set_fault(None)  # a fault plan of an earlier case on this board's server is over
        for slot, data in bins.items():
            fota.set_image(slot, data)
        image = bins[target]
        self.board.remember_image(image)
        path = f"user{target}"
        return Published("firmware", version, f"fota://{fota.endpoint.host}:{fota.endpoint.port}", [path], len(image),
                         hashlib.sha256(image).hexdigest(), {path: len(image)})

    def trigger(self, pub: Published) -> int:
        host, port = pub.url[len("fota://"):].rsplit(":", 1)
        console = self.board.console
        mark = console.mark()
        console.write_line(f"fota {host} {port}")
        return mark


__all__ = ["EspSdkDevice", "SdkEvents"]
