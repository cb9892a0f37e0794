"""What the OTA scenarios share: the servers of a run, the boards and their device implementations.

:class:`OtaBench` lives for the whole pytest session: it opens the rig's boards when a
test first needs them, makes their device implementations (``harness.devices``), runs the
HTTP server the devices update from (with its /health endpoint) and gives each device its
settings. :class:`OtaCase` is one (board, device, update kind) in its baseline state, with
the few verbs a scenario needs: publish an update (optionally with a fault plan), trigger
it, wait for the device's OTA events, read the running version and the boot state. None of
them depends on which device implementation runs.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import warnings
from pathlib import Path

from . import report
from .board import Board, open_board
from .console import OtaEvent
from .devices import Device, Published, make_device
from .devices.micropython import BASE_APP_VERSION, NEXT_APP_VERSION
from .errors import InfrastructureError, PowerFailure, SerialPortFailure, VirtualBoardFailure
from .firmware import FirmwareFactory
from .locks import BoardLock
from .servers import FaultPlan, FotaServer, HttpServer, MqttBroker, OtaPublisher

__all__ = ["BASE_APP_VERSION", "NEXT_APP_VERSION", "BoardUnavailable", "DeviceSilent", "LeftOnWarning", "OtaBench",
           "OtaCase", "Published"]


class OtaBench:
    def __init__(self, rig, workdir: Path, mutation: str | None = None, *, snapshots: bool = True,
                 direct_reads: bool = True):
        self.rig = rig
        #: virtual boards: restore a saved prepared state before each case, read boot states from the flash file
        self.snapshots = snapshots
        self.direct_reads = direct_reads
        self.workdir = workdir
        #: the run's mutation (``harness.mutations``): the device implementation it names runs with it
        self.mutation = mutation
        self.boards: dict[str, Board] = {}
        self.devices: dict[tuple[str, str], Device] = {}
        self._tls = None
        self._https: dict[str, HttpServer] = {}
        self._fota: dict[str, FotaServer] = {}
        self._board_locks: dict[str, BoardLock] = {}
        self.http = HttpServer(host="127.0.0.1" if _loopback(rig.host) else "0.0.0.0",
                               advertise_host=rig.host, log_path=workdir / "http-server.log", name="http")
        self.http.start()
        self._lock = threading.Lock()
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
        # (a labgrid place's lock is the farm's coordinator: harness.farm)
        lock = None if spec.virtual or spec.farm is not None else BoardLock(self.rig.name, name).acquire()
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

    def device(self, board: Board, kind: str) -> Device:
        """The device implementation ``kind`` of ``board`` (made once: it keeps what it put on the board)."""
        with self._lock:
            key = (board.name, kind)
            if key not in self.devices:
                self.devices[key] = make_device(board.spec.device_spec(kind), board, self)
            return self.devices[key]

    def mutation_for(self, device_kind: str):
        """The run's mutation if it belongs to device implementation ``device_kind``, else None."""
        if not self.mutation:
            return None
        from .mutations import mutation

        m = mutation(self.mutation)
        return m if m.device == device_kind else None

    def tls(self):
        """The run's TLS material (``harness.servers.TlsMaterial``): server, expired and wrong-host certificates
        issued by the kept CA (``hil ca``), so firmware that embeds that CA at build time trusts this run's
        servers. Made once."""
        with self._lock:
            if self._tls is None:
                from .servers import TlsMaterial
                from .servers.tls import kept_ca_dir

                hosts = sorted({"localhost", self.http.endpoint.host, self.rig.host})
                self._tls = TlsMaterial.create(self.workdir / "tls", hosts=hosts, ca_dir=kept_ca_dir())
            return self._tls

    def https(self, certificate: str = "server") -> HttpServer:
        """The run's HTTPS server presenting ``certificate`` (``server``; or ``expired``, ``wrong-host``: what a
        device that verifies the server must refuse), started at first use, with its own /health."""
        tls = self.tls()
        with self._lock:
            if certificate not in self._https:
                server = HttpServer(host=self.http.host, advertise_host=self.rig.host, tls=tls.cert(certificate),
                                    log_path=self.workdir / f"https-{certificate}-server.log",
                                    name=f"https-{certificate}")
                server.start()
                self._https[certificate] = server
            return self._https[certificate]

    def fota(self, board: Board) -> FotaServer:
        """The ESP8266 SDK FOTA server (TCP, seed 003's protocol) of ``board``, started at first use: the protocol
        names no file, so each board has its own and the images it serves are that board's."""
        with self._lock:
            if board.name not in self._fota:
                server = FotaServer({}, host=self.http.host, advertise_host=self.rig.host,
                                    log_path=self.workdir / f"fota-{board.name}-server.log", name=f"fota-{board.name}")
                server.start()
                self._fota[board.name] = server
            return self._fota[board.name]

    def servers(self) -> list:
        """Every server the run started (HTTP(S), SDK FOTA)."""
        return [self.http, *self._https.values(), *self._fota.values()]

    def ca_pem(self) -> bytes:
        """The PEM of the CA the run's servers are certified by: what clients that embed a CA trust."""
        return self.tls().ca_pem

    def firmware(self, board: Board) -> FirmwareFactory:
        """The firmware images of the device on ``board`` (``Device.firmware``)."""
        if board.device is None:
            raise InfrastructureError(f"board {board.name}: no device implementation has been put on it yet")
        return board.device.firmware()

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
        for server in [*self._https.values(), *self._fota.values()]:
            server.stop()
        self._https.clear()
        self._fota.clear()
        if self._mqtt is not None:
            self._mqtt[1].stop()
            self._mqtt[0].stop()
            self._mqtt = None
        return errors


class OtaCase:
    """One board, one device implementation on it and one update kind, prepared in its baseline state.

    ``device`` names the device implementation (default: the board's first one that takes ``kind``).
    """

    def __init__(self, bench: OtaBench, board: Board, kind: str, device: str | None = None):
        self.bench = bench
        self.board = board
        self.kind = kind
        if device is None:
            device = next((d.kind for d in board.spec.devices if kind in d.updates), board.spec.device)
        self.device: Device = bench.device(board, device)
        self.http = bench.http
        self._n = 0

    # -- setup ----------------------------------------------------------------------------------
    def prepare(self, **options) -> None:
        """The baseline state; ``options`` go to the device (the MicroPython agent: ``config_extra`` adds agent
        settings, e.g. ``mqtt``, ``ca``, and ``data`` files, e.g. the CA certificate)."""
        self.http.set_health("up")
        with report.step(f"prepare {self.board.name}: {self.device.kind} in its baseline state"):
            self.device.prepare(**options)

    @property
    def baseline_version(self) -> str:
        """The version of this case's update kind in the baseline state."""
        return self.device.baseline_version(self.kind)

    @property
    def baseline_versions(self) -> dict[str, str]:
        """Every version the device reports when it is ready in the baseline state (what a ``ready`` event of the
        baseline gives :meth:`running_versions`)."""
        return self.device.baseline_versions()

    @property
    def baseline_secure_version(self) -> int:
        """The ``secure_version`` in the app descriptor of the firmware the baseline boots."""
        from .esp import parse_image

        return parse_image(self.device.baseline_app(), self.board.chip).app_desc.secure_version

    def efuse_secure_version(self) -> int | None:
        """The chip's anti-rollback eFuse value (a virtual board's; None on a bench board, whose eFuses the
        harness does not read)."""
        return self.board.efuse_secure_version()

    @property
    def baseline_slot(self) -> str:
        """The app partition the baseline boots (from the board's partition table; ``user1`` on an SDK layout)."""
        return self.device.baseline_slot_name()

    @property
    def update_slot(self) -> str:
        """The app partition a firmware update writes (the next update partition after :attr:`baseline_slot`)."""
        return self.device.update_slot_name()

    @property
    def confirms(self) -> bool:
        """Whether the device confirms a new version once it runs it (a ``confirmed`` event, otadata VALID); the SDK
        client does not: boot_v1.x's check of the bin at its first boot is the only trial there is."""
        return self.device.confirms_updates

    @property
    def rolled_back_state(self) -> str:
        """The otadata state the device leaves a firmware that failed its health check in (ABORTED: never
        confirmed, the bootloader gave up on it; INVALID: the device marked it invalid)."""
        return self.device.rolled_back_state

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, variant: str = "next", *, cut_at: float | None = None, fault: FaultPlan | None = None,
                server: HttpServer | None = None, chunked: bool = False, redirect: bool = False) -> Published:
        """Put an update on the HTTP server (or ``server``, e.g. ``bench.https("wrong-host")``).

        ``cut_at`` (0..1) cuts the board's power that far into it; ``fault`` applies a fault plan to its
        last path; ``chunked`` serves every path of it with ``Transfer-Encoding: chunked`` (no
        Content-Length); ``redirect`` offers it at a URL two redirects away (302, then 308), and every
        path a manifest names relatively too.
        """
        srv = server or self.device.server()
        self._n += 1
        prefix = f"/{self.board.name}/{self.device.kind}/{self.kind}/{self._n}"
        pub = self.device.publish(self.kind, variant, prefix, server=srv)
        if chunked:
            for path in pub.paths:
                srv.set_chunked(path)
        if redirect:
            offered = urllib.parse.urlsplit(pub.url).path
            for path in dict.fromkeys([*pub.paths, offered]):
                name = path[len(prefix) + 1:]
                srv.add_redirect(f"{prefix}/moved/{name}", f"{prefix}/hop/{name}", 302)
                srv.add_redirect(f"{prefix}/hop/{name}", srv.url_for(path), 308)
            pub.url = srv.url_for(f"{prefix}/moved/{offered[len(prefix) + 1:]}")
        if cut_at is not None:
            target_path = pub.paths[-1]
            at = max(1, int(pub.path_sizes[target_path] * cut_at))

            def cut() -> None:
                self.board.power.off()
                pub.cut.set()

            fault = FaultPlan(on_bytes=[(at, cut)], truncate_at=at, apply_times=1)
            srv.set_fault(fault, target_path)
            pub.fault = fault
        elif fault is not None:
            srv.set_fault(fault, pub.paths[-1])
            pub.fault = fault
        report.attach_json("published update", {
            "device": self.device.kind, "kind": pub.kind, "variant": variant, "version": pub.version,
            "url": pub.url, "size": pub.size, "sha256": pub.sha256, "server": srv.name, "chunked": chunked,
            "redirect": redirect, "fault": None if pub.fault is None else pub.fault.to_dict()})
        return pub

    # -- driving the device ------------------------------------------------------------------------
    def trigger(self, pub: Published) -> int:
        """Make the device take ``pub`` (its serial command, or the URL on the serial line); returns the console
        mark before it."""
        with report.step(f"trigger {pub.kind} update to {pub.version} from {pub.url}"):
            return self.device.trigger(pub)

    def expect(self, event: str | tuple[str, ...], since: int, timeout: float = 60.0, **fields: str) -> OtaEvent:
        """The device's next OTA event ``event``; one that never comes fails the scenario (the device's fault)."""
        try:
            return self.board.console.expect_event(event, timeout=timeout, since=since, **fields)
        except TimeoutError as e:
            raise DeviceSilent(str(e)) from None

    def ready(self, since: int, timeout: float = 60.0) -> OtaEvent:
        """The device's ``ready`` event; a device that never gets ready (bricked) fails the scenario."""
        try:
            return self.device.wait_ready(since=since, timeout=timeout)
        except TimeoutError as e:
            raise DeviceSilent(str(e)) from None

    def running_version(self, ready: OtaEvent) -> str | None:
        """The running version of this case's update kind, as the ``ready`` event reports it."""
        return self.device.running_version(ready, self.kind)

    def running_versions(self, ready: OtaEvent) -> dict[str, str | None]:
        """Every version the ``ready`` event reports (compare with :attr:`baseline_versions`)."""
        return self.device.running_versions(ready)

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
        """A digest of what an update would write (firmware: the next update partition of the board's partition
        table; the agent's files: the listing of slot b)."""
        return self.device.other_slot_fingerprint(self.kind)

    def attach_logs(self) -> None:
        console = self.board.console.log_path
        if console is not None and console.exists():
            report.attach_file(f"console {self.board.name}", console, "text/plain")
        for server in self.bench.servers():
            report.attach_text(f"{server.name} server log",
                               "\n".join(json.dumps(r, default=str) for r in server.log.records))


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


def _loopback(host: str) -> bool:
    # Virtual boards reach the servers on the loopback; a bench's boards on the rig's address.
    return host in ("localhost", "::1") or host.startswith("127.")
