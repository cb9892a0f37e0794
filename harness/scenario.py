"""What the OTA scenarios share: the servers of a run, the artifacts they serve, one board under test.

:class:`OtaBench` lives for the whole pytest session: it opens the rig's boards when a
test first needs them, runs the HTTP server the devices update from (with its /health
endpoint) and writes each board's agent config. :class:`OtaCase` is one (board, update
kind) pair in its baseline state, with the few verbs a scenario needs: publish an
update (optionally with a fault plan), trigger it, read the running version and the
boot state.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import report
from .board import Board, BoardError, open_board
from .console import OtaEvent
from .deploy import bundle_manifest
from .errors import InfrastructureError, PowerFailure, SerialPortFailure, VirtualBoardFailure
from .firmware import ESP32_APP_OFFSET, FirmwareFactory, app_bundle
from .locks import BoardLock
from .servers import FaultPlan, HttpServer, MqttBroker, OtaPublisher

BASE_APP_VERSION = "1"
NEXT_APP_VERSION = "2"


class OtaBench:
    def __init__(self, rig, workdir: Path, mutation: str | None = None, *, snapshots: bool = True,
                 direct_reads: bool = True):
        self.rig = rig
        #: virtual boards: restore a saved prepared state before each case, read boot states from the flash file
        self.snapshots = snapshots
        self.direct_reads = direct_reads
        self.workdir = workdir
        self.mutation = mutation
        self.boards: dict[str, Board] = {}
        self._board_locks: dict[str, BoardLock] = {}
        self.http = HttpServer(host="127.0.0.1" if _loopback(rig.host) else "0.0.0.0",
                               advertise_host=rig.host, log_path=workdir / "http-server.log", name="http")
        self.http.start()
        self._lock = threading.Lock()
        self._factories: dict[str, FirmwareFactory] = {}
        self._mqtt: tuple[MqttBroker, OtaPublisher] | None = None
        self._unavailable: dict[str, tuple[type[BoardUnavailable], str]] = {}

    def board(self, name: str) -> Board:
        """Board ``name``, opened and switched on at its first use in this process.

        A board that cannot be opened or switched on (a dead switch, no serial port, a virtual
        board that does not start, held by another run) is given up at once: this and every
        later request for it raise :class:`BoardUnavailable` with the same one line, so its
        cases are reported straight away and the rig's other boards go on.
        """
        with self._lock:
            if name in self._unavailable:
                cls, text = self._unavailable[name]
                raise cls(text)
            if name not in self.boards:
                try:
                    self.boards[name] = self._open(name)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as e:
                    reason = " ".join(str(e).split()) or type(e).__name__
                    self._unavailable[name] = (unavailable_because(e), f"board {name} of rig {self.rig.name} is not "
                                                                        f"usable, its cases are not run: {reason}")
                    raise self._unavailable[name][0](self._unavailable[name][1]) from None
            return self.boards[name]

    def _open(self, name: str) -> Board:
        spec = next(b for b in self.rig.boards if b.name == name)
        # another run may be using a bench board; the virtual boards a run starts are its own
        lock = None if spec.virtual else BoardLock(self.rig.name, name).acquire()
        try:
            board = open_board(spec, self.rig, self.workdir / name)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        board.snapshots = board.snapshots and self.snapshots
        board.direct_reads = board.direct_reads and self.direct_reads
        try:
            if lock is not None:
                board.on_power = lambda on, lock=lock: lock.note(powered=on)
                _switch_off_if_left_on(board, lock)
            board.power_on()
        except BaseException:
            try:
                board.close()
            except Exception:
                pass  # what matters is why it could not be switched on
            finally:
                if lock is not None:
                    lock.release()
            raise
        if lock is not None:
            self._board_locks[name] = lock
        return board

    def mqtt(self) -> tuple[MqttBroker, OtaPublisher]:
        """The run's MQTT broker (embedded, or the rig's external one) and the OTA publisher, started once."""
        with self._lock:
            if self._mqtt is None:
                spec = self.rig.mqtt
                if spec.broker == "external":
                    broker = MqttBroker.external(spec.host, spec.port or 1883, log_path=self.workdir / "mqtt.log")
                else:
                    broker = MqttBroker(host="127.0.0.1" if _loopback(self.rig.host) else "0.0.0.0",
                                        advertise_host=self.rig.host, log_path=self.workdir / "mqtt.log")
                broker.start()
                publisher = OtaPublisher(broker, log_path=self.workdir / "mqtt-publisher.log").start()
                self._mqtt = (broker, publisher)
            return self._mqtt

    def mqtt_config(self, board: Board) -> dict:
        """The agent's ``mqtt`` settings for ``board`` (topic base ``hil/<board>/``)."""
        broker, _ = self.mqtt()
        return {"host": broker.endpoint.host, "port": broker.endpoint.port, "base": f"hil/{board.name}/"}

    def config_for(self, board: Board) -> dict:
        ssid, key = ("hil-bench", "") if board.spec.virtual else self.rig.wifi()
        return {"device": board.name, "chip": board.chip, "wifi": {"ssid": ssid, "key": key},
                "health": self.http.url_for("/health"), "confirm_timeout": board.spec.confirm_timeout}

    def firmware(self, board: Board) -> FirmwareFactory:
        if board.name not in self._factories:
            self._factories[board.name] = FirmwareFactory(_baseline_app(board), board.chip)
        return self._factories[board.name]

    def close(self) -> list[str]:
        """Switch every board off and stop the servers; returns one line per board that would not close."""
        errors = []
        locks = self._board_locks
        for board in self.boards.values():
            try:
                board.close()
            except Exception as e:  # every board is switched off even if one fails
                errors.append(f"{board.name}: {e}")
            finally:
                # only now, switched off and its port closed, may another run take the board
                lock = locks.pop(board.name, None)
                if lock is not None:
                    lock.release()
        self.boards.clear()
        self.http.stop()
        if self._mqtt is not None:
            self._mqtt[1].stop()
            self._mqtt[0].stop()
            self._mqtt = None
        return errors


@dataclass
class Published:
    """An update on the server: where the device finds it and what it contains."""

    kind: str
    version: str
    manifest_url: str
    paths: list[str]
    size: int
    sha256: str
    path_sizes: dict[str, int] = field(default_factory=dict)
    fault: FaultPlan | None = None
    cut: threading.Event = field(default_factory=threading.Event)


class OtaCase:
    """One board and one update kind, prepared in its baseline state."""

    def __init__(self, bench: OtaBench, board: Board, kind: str):
        self.bench = bench
        self.board = board
        self.kind = kind
        self.http = bench.http
        self._n = 0

    # -- setup ----------------------------------------------------------------------------------
    def prepare(self, config_extra: dict | None = None, data: dict[str, bytes] | None = None) -> None:
        """Baseline state; ``config_extra`` adds agent settings (e.g. ``mqtt``, ``ca``) and ``data``
        files (e.g. the CA certificate) for this test."""
        self.http.set_health("up")
        extra = _mutated_files(self.bench.mutation)
        config = {**self.bench.config_for(self.board), **(config_extra or {})}
        with report.step(f"prepare {self.board.name}: baseline firmware, agent, application {BASE_APP_VERSION}"):
            self.board.prepare(config, BASE_APP_VERSION, app_bundle(BASE_APP_VERSION), extra=extra, data=data)

    @property
    def baseline_version(self) -> str:
        if self.kind == "firmware":
            return self.bench.firmware(self.board).version
        return BASE_APP_VERSION

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, variant: str = "next", *, cut_at: float | None = None,
                fault: FaultPlan | None = None) -> Published:
        """Put an update on the HTTP server; ``cut_at`` (0..1) cuts the board's power that far into it."""
        self._n += 1
        prefix = f"/{self.board.name}/{self.kind}/{self._n}"
        if self.kind == "firmware":
            pub = self._publish_firmware(prefix, variant)
        else:
            pub = self._publish_files(prefix, variant)
        if cut_at is not None:
            target_path = pub.paths[-1]
            at = max(1, int(pub.path_sizes[target_path] * cut_at))

            def cut() -> None:
                self.board.power.off()
                pub.cut.set()

            fault = FaultPlan(on_bytes=[(at, cut)], truncate_at=at, apply_times=1)
            self.http.set_fault(fault, target_path)
            pub.fault = fault
        elif fault is not None:
            self.http.set_fault(fault, pub.paths[-1])
            pub.fault = fault
        report.attach_json("published update", {
            "kind": pub.kind, "variant": variant, "version": pub.version, "manifest": pub.manifest_url,
            "size": pub.size, "sha256": pub.sha256,
            "fault": None if pub.fault is None else pub.fault.to_dict()})
        return pub

    def _publish_firmware(self, prefix: str, variant: str) -> Published:
        fw = self.bench.firmware(self.board)
        genuine = fw.next()
        image = {"next": genuine, "same": fw.same(), "tampered": fw.tampered(), "bad_sha256": fw.bad_sha256(),
                 "bad_checksum": fw.bad_checksum(), "wrong_chip": fw.wrong_chip()}[variant]
        version = fw.version if variant == "same" else _desc_version(genuine)
        # A tampered image is announced with the digest of the genuine one.
        digest = hashlib.sha256(genuine if variant == "tampered" else image).hexdigest()
        self.board.remember_image(image)
        self.http.add(f"{prefix}/fw.bin", image)
        manifest = {"version": version, "size": len(image), "sha256": digest, "url": "fw.bin"}
        self.http.add_json(f"{prefix}/manifest.json", manifest)
        return Published("firmware", version, self.http.url_for(f"{prefix}/manifest.json"), [f"{prefix}/fw.bin"],
                         len(image), digest, {f"{prefix}/fw.bin": len(image)})

    def _publish_files(self, prefix: str, variant: str) -> Published:
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
            self.http.add(f"{prefix}/{name}", data)
            paths.append(f"{prefix}/{name}")
        self.http.add_json(f"{prefix}/manifest.json", manifest)
        blob = b"".join(files.values())
        return Published("files", version, self.http.url_for(f"{prefix}/manifest.json"), paths, len(blob),
                         hashlib.sha256(blob).hexdigest(), {f"{prefix}/{n}": len(d) for n, d in files.items()})

    # -- driving the device ------------------------------------------------------------------------
    def trigger(self, pub: Published) -> int:
        """The serial command that makes the agent pull ``pub``; returns the console mark before it."""
        with report.step(f"trigger {pub.kind} update to {pub.version} from {pub.manifest_url}"):
            return self.board.trigger_update(self.kind, pub.manifest_url)

    def expect(self, event: str | tuple[str, ...], since: int, timeout: float = 60.0, **fields: str) -> OtaEvent:
        """The device's next ``OTA <event>`` line; one that never comes fails the scenario (the device's fault)."""
        try:
            return self.board.console.expect_event(event, timeout=timeout, since=since, **fields)
        except TimeoutError as e:
            raise DeviceSilent(str(e)) from None

    def ready(self, since: int, timeout: float = 60.0) -> OtaEvent:
        """The device's ``OTA ready`` line; a device that never gets ready (bricked) fails the scenario."""
        try:
            return self.board.wait_ready(since=since, timeout=timeout)
        except TimeoutError as e:
            raise DeviceSilent(str(e)) from None

    def running_version(self, ready: OtaEvent) -> str | None:
        return ready.get("firmware") if self.kind == "firmware" else ready.get("files")

    def boot_state(self, label: str):
        """Read the boot state; if reading reset the board (esptool), this returns once it is ready again."""
        with report.step(f"read boot state ({label})"):
            mark = self.board.console.mark()
            state = self.board.boot_state()
            if self.board.last_read_reset:
                self.ready(since=mark)
            report.attach_text(f"boot state {label}", state.summary())
            report.attach_json(f"boot state {label} (json)", state.to_dict())
        return state

    def other_slot_md5(self) -> str | None:
        """MD5 of the slot an update would write (firmware: the next update partition of the board's partition
        table; files: slot b listing)."""
        if self.kind == "firmware":
            slot = self.board.update_slot()
            if slot is None:
                raise BoardError(f"board {self.board.name}: its partition table has no OTA app partition to update")
            return self.board.flash_md5(slot.offset, slot.size)
        out = self.board.exec("import os\ntry:\n    print(sorted(os.listdir('slots/b')))\nexcept OSError:\n"
                              "    print('absent')")
        return hashlib.md5(out.encode()).hexdigest()

    def attach_logs(self) -> None:
        console = self.board.console.log_path
        if console is not None and console.exists():
            report.attach_file(f"console {self.board.name}", console, "text/plain")
        report.attach_text("http server log", "\n".join(json.dumps(r, default=str) for r in self.http.log.records))


class DeviceSilent(AssertionError):
    """An OTA event the scenario waits for never came: a product failure (e.g. a bricked board), not the bench's."""


class BoardUnavailable(InfrastructureError, RuntimeError):
    """A board of the rig could not be opened or switched on; ``str()`` is one line naming board and reason.

    Raised as the subclass of the part that failed (:func:`unavailable_because`), so the report files the
    board's cases where the cause belongs.
    """


class BoardPortUnavailable(BoardUnavailable, SerialPortFailure):
    pass


class BoardPowerUnavailable(BoardUnavailable, PowerFailure):
    pass


class VirtualBoardUnavailable(BoardUnavailable, VirtualBoardFailure):
    pass


def unavailable_because(cause: BaseException) -> type[BoardUnavailable]:
    for kind, cls in ((SerialPortFailure, BoardPortUnavailable), (PowerFailure, BoardPowerUnavailable),
                      (VirtualBoardFailure, VirtualBoardUnavailable)):
        if isinstance(cause, kind):
            return cls
    return BoardUnavailable


class LeftOnWarning(UserWarning):
    """A bench board was found switched on by a run that ended without switching it off."""


def _switch_off_if_left_on(board: Board, lock: BoardLock) -> None:
    """A run killed while it had the board on left that in the lock's record: switch the board off first."""
    previous = lock.previous or {}
    if not previous.get("powered"):
        return
    board.power.off()
    who = f"pid {previous.get('pid', '?')}" + (f" ({previous['command']})" if previous.get("command") else "")
    warnings.warn(LeftOnWarning(f"board {board.name} of rig {lock.rig_name} was left switched on by {who}, which "
                                "ended without switching it off; switched it off before this run"), stacklevel=2)


def _baseline_app(board: Board) -> bytes:
    """The app image of the baseline at 0x10000: its own file, or inside a combined one (MicroPython's
    release binary is bootloader, partition table and app from 0x1000)."""
    from .esp import parse_image

    for part in board.baseline_parts():
        if part.offset <= ESP32_APP_OFFSET < part.offset + len(part.data):
            data = part.data[ESP32_APP_OFFSET - part.offset:]
            return data[:parse_image(data, board.chip).length]
    raise BoardError(f"board {board.name}: no baseline image covers the app slot at 0x{ESP32_APP_OFFSET:x}")


def _loopback(host: str) -> bool:
    # Virtual boards reach the servers on the loopback; a bench's boards on the rig's address.
    return host in ("localhost", "::1") or host.startswith("127.")


def _desc_version(image: bytes) -> str:
    from .esp import parse_image

    return parse_image(image, "esp32").app_desc.version


def _mutated_files(mutation: str | None) -> dict[str, bytes] | None:
    if not mutation:
        return None
    from .mutations import apply_mutation

    return apply_mutation(mutation)
