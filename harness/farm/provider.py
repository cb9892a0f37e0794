"""A board of the labgrid farm: reserve a matching place, acquire it, resolve its serial port and power.

:func:`open_place` is what ``harness.board.open_board`` calls for a rig board with ``place:`` or
``tags:``. It reserves with the board's filter (``name=<place>`` or its tags), waits up to the rig's
``labgrid.wait`` for the coordinator to allocate a place, acquires it, and reads the place's
resources: the ``NetworkSerialPort`` (a board server's RFC 2217 port, or a local tty the exporter
serves through ser2net, which it starts on acquire on a fresh port: read after acquiring) becomes
``rfc2217://host:port``; the power resource becomes a :class:`LabgridPowerSwitch`.

Then the place's infrastructure checks: the power switch answers and switches the board off, and the
serial port accepts a connection. A place that fails them is released and recorded in the run's
pool (:class:`RunPool`, shared by the run's workers through a file); one that failed twice is taken
out of the run's pool: no worker of the run takes it again, and the report lists it.

:class:`PlaceHolding` releases the place and cancels its reservation when the board closes, when the
process ends (atexit) or when a stop signal unwinds the run (its teardown closes the board). A waiting
reservation is cancelled however the wait ends.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import PowerFailure, SerialPortFailure
from .client import FarmClient, FarmError, client
from .job import held_by_job, job_id, worker_user
from .power import LabgridPowerSwitch

#: failures of its checks after which a place is out of the run's pool
STRIKES = 2
RUN_DIR_ENV = "HIL_FARM_RUN_DIR"
#: seconds the exporter may take to report a ser2net port after the place was acquired
RESOURCE_WAIT = 10.0
#: seconds the serial port may take to accept a connection
PORT_TIMEOUT = 5.0


class PlaceCheckFailed(FarmError):
    """An acquired place failed the harness's infrastructure checks (power, serial port)."""


class FarmSerialFailure(PlaceCheckFailed, SerialPortFailure):
    pass


class FarmPowerFailure(PlaceCheckFailed, PowerFailure):
    pass


@dataclass
class PlaceHolding:
    """A place this process has acquired, with its reservation; :meth:`release` gives both back (once)."""

    client: FarmClient
    place: str
    token: str | None
    board: str
    url: str
    power: LabgridPowerSwitch | None = None
    #: seconds from the first reservation to the acquired place, and of that the wait for a free one
    seconds_to_acquire: float = 0.0
    seconds_waited: float = 0.0
    released: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def release(self) -> None:
        with self._lock:
            if self.released:
                return
            self.released = True
        _HOLDINGS.discard(self)
        errors = []
        try:
            self.client.release(self.place, from_user=self.client.holder)
        except Exception as e:
            errors.append(str(e))
        if self.token is not None:
            try:
                self.client.cancel(self.token)
            except Exception as e:
                if "does not exist" not in str(e):
                    errors.append(str(e))
        if errors:
            raise FarmError(f"labgrid place {self.place}: not given back cleanly: {'; '.join(errors)}")

    def __hash__(self) -> int:
        return id(self)


class _Holdings:
    """Every place this process holds, released at exit whatever closed or did not close before."""

    def __init__(self) -> None:
        self._held: set[PlaceHolding] = set()
        self._lock = threading.Lock()
        self._registered = False

    def add(self, holding: PlaceHolding) -> None:
        with self._lock:
            self._held.add(holding)
            if not self._registered:
                atexit.register(self.release_all)
                self._registered = True

    def discard(self, holding: PlaceHolding) -> None:
        with self._lock:
            self._held.discard(holding)

    def release_all(self) -> None:
        with self._lock:
            held = list(self._held)
        for holding in held:
            with contextlib.suppress(Exception):
                holding.release()


_HOLDINGS = _Holdings()


def release_all() -> None:
    """Give back every place this process holds (the signal and exit paths call this)."""
    _HOLDINGS.release_all()


# -- the run's pool --------------------------------------------------------------------------------------------


class RunPool:
    """What the run's workers share about places: failed checks and places taken out; a JSON file under a lock.

    The directory is ``HIL_FARM_RUN_DIR`` (the pytest controller makes one per run and its workers inherit
    it); without it (``hil rig check``), one for this process in the temporary directory.
    """

    def __init__(self, directory: Path | None = None):
        if directory is None:
            directory = Path(os.environ.get(RUN_DIR_ENV) or
                             Path(tempfile.gettempdir()) / f"hil-farm-{job_id()}-{os.getpid()}")
        self.directory = Path(directory)
        self.path = self.directory / "pool.json"

    @contextlib.contextmanager
    def _locked(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "pool.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text()) if self.path.exists() else {}
            except (OSError, ValueError):
                data = {}
            data.setdefault("failures", {})
            data.setdefault("excluded", {})
            data.setdefault("used", {})
            yield data
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(self.path)

    def read(self) -> dict:
        with self._locked() as data:
            return json.loads(json.dumps(data))

    def excluded(self) -> dict[str, str]:
        return dict(self.read()["excluded"])

    def failed(self, place: str, reason: str, worker: str) -> bool:
        """Record a failed check of ``place``; True when that takes it out of the pool."""
        with self._locked() as data:
            failures = data["failures"].setdefault(place, [])
            failures.append({"worker": worker, "reason": reason, "time": time.time()})
            if len(failures) >= STRIKES and place not in data["excluded"]:
                data["excluded"][place] = (f"failed its infrastructure checks {len(failures)} times, last: "
                                           f"{reason}")
                return True
            return False

    def used(self, place: str, board: str, worker: str, waited: float, acquire: float) -> None:
        with self._locked() as data:
            data["used"].setdefault(place, []).append({"board": board, "worker": worker, "waited": round(waited, 2),
                                                       "acquire": round(acquire, 2)})


# -- opening a place ------------------------------------------------------------------------------------------


def open_place(spec, rig, *, should_stop=lambda: False) -> PlaceHolding:
    """Reserve, wait for, acquire and check a place for rig board ``spec``; the holding is released by its owner.

    Raises :class:`FarmError` (or a subclass by the part that failed) with one line when no usable place
    can be had within the rig's ``labgrid.wait``.
    """
    settings = rig.labgrid
    user = worker_user()
    farm = client(settings.address)
    if farm.user != user:
        raise FarmError(f"this process's labgrid session is user {farm.user}, not {user} (LG_USERNAME changed)")
    pool = RunPool()
    started = time.monotonic()
    deadline = started + settings.wait
    waited = 0.0
    last_failure = None
    attempts = 0
    while True:
        excluded = pool.excluded()
        candidates = _candidates(farm, spec.farm, excluded)
        if spec.farm.place is None and not excluded:
            filters = [spec.farm.filters()]
        else:
            filters = [{"name": name} for name in candidates]
        if not filters:
            out = "; ".join(f"{p}: {why}" for p, why in sorted(excluded.items()))
            raise FarmError(f"board {spec.name}: no place of the farm is {spec.farm.describe()}"
                            + (f" and still in this run's pool (taken out: {out})" if out else "")
                            + (f"; last failure: {last_failure}" if last_failure else ""))
        tokens = []
        holding = None
        try:
            for fltr in filters:
                tokens.append(farm.reserve(fltr))
            wait_from = time.monotonic()
            try:
                token, place = farm.wait_allocated(tokens, max(0.0, deadline - time.monotonic()), should_stop)
            except TimeoutError as e:
                raise FarmError(f"board {spec.name}: {e} (labgrid.wait {settings.wait:.0f} s; holders: "
                                f"{_holders(farm, candidates)})") from None
            waited += time.monotonic() - wait_from
            for other in tokens:
                if other != token:
                    with contextlib.suppress(FarmError):
                        farm.cancel(other)
            tokens = []
            # held from here on: released at exit whatever happens, also if a stop signal interrupts the acquire
            holding = PlaceHolding(farm, place, token, spec.name, "")
            _HOLDINGS.add(holding)
            farm.acquire(place)
        except BaseException:
            with contextlib.suppress(Exception):
                if holding is not None:
                    holding.release()  # releases only what this session holds, and cancels the reservation
            for other in tokens:
                with contextlib.suppress(Exception):
                    farm.cancel(other)
            raise
        attempts += 1
        try:
            holding.url, holding.power = _resolve(farm, place, spec, rig)
            _check(holding, rig)
        except PlaceCheckFailed as e:
            last_failure = str(e)
            with contextlib.suppress(Exception):
                if holding.power is not None:
                    holding.power.close()
            holding.release()
            if pool.failed(place, str(e), user):
                _note(f"labgrid place {place} is taken out of this run's pool: {e}")
            if time.monotonic() >= deadline or attempts >= 2 * STRIKES * max(1, len(candidates)):
                raise
            continue
        except BaseException:
            with contextlib.suppress(Exception):
                if holding.power is not None:
                    holding.power.close()
            holding.release()
            raise
        holding.seconds_to_acquire = time.monotonic() - started
        holding.seconds_waited = waited
        pool.used(place, spec.name, user, waited, holding.seconds_to_acquire)
        return holding


def _candidates(farm: FarmClient, board, excluded: dict[str, str]) -> list[str]:
    places = farm.places()
    if board.place is not None:
        if board.place not in places:
            raise FarmError(f"labgrid coordinator {farm.address} has no place {board.place} "
                            f"(places: {', '.join(sorted(places)) or 'none'})")
        names = [board.place]
    else:
        names = [name for name, p in places.items() if board.tags.items() <= p.tags.items()]
    return sorted(name for name in names if name not in excluded)


def _holders(farm: FarmClient, names: list[str]) -> str:
    with contextlib.suppress(Exception):
        places = farm.places()
        return ", ".join(f"{n} by {places[n].acquired or 'nobody (reserved)'}" for n in names if n in places) or "none"
    return "?"


def _resolve(farm: FarmClient, place: str, spec, rig) -> tuple[str, LabgridPowerSwitch]:
    deadline = time.monotonic() + RESOURCE_WAIT
    while True:
        resources = farm.resources(place)
        serial = [(name, args, avail) for name, (cls, args, avail) in resources.items() if cls == "NetworkSerialPort"]
        if serial and serial[0][2] and serial[0][1].get("port"):
            break
        if time.monotonic() >= deadline:
            what = "no NetworkSerialPort" if not serial else f"serial port {serial[0][0]} not available"
            raise FarmSerialFailure(f"labgrid place {place}: {what} (resources: {', '.join(resources) or 'none'})")
        time.sleep(0.2)
    _name, args, _avail = serial[0]
    host, port = str(args.get("host") or ""), int(args["port"])
    if not host:
        raise FarmSerialFailure(f"labgrid place {place}: its serial port has no host")
    scheme = "socket" if args.get("protocol") == "raw" else "rfc2217"
    url = f"{scheme}://{host}:{port}"
    if _loopback(rig.host) and not _loopback(host):
        raise FarmError(f"labgrid place {place} is on {host}, which cannot reach the harness on the rig's host "
                        f"{rig.host} (loopback): use host: auto or the harness's address on the boards' network")
    power = [(cls, args) for name, (cls, args, _a) in resources.items() if cls != "NetworkSerialPort"
             and "Power" in cls]
    if not power:
        raise FarmPowerFailure(f"labgrid place {place}: no power resource (resources: {', '.join(resources)})")
    cls, power_args = power[0]
    try:
        switch = LabgridPowerSwitch(cls, power_args, name=f"{spec.name}@{place}", off_time=rig.labgrid.off_time)
    except PowerFailure as e:
        raise FarmPowerFailure(f"labgrid place {place}: {e}") from None
    return url, switch


def _check(holding: PlaceHolding, rig) -> None:
    """The place's infrastructure checks: its switch answers and switches off, its serial port connects."""
    try:
        holding.power.off()
        if holding.power.state() is True:
            raise FarmPowerFailure(f"labgrid place {holding.place}: its power switch still reports on after off")
    except PowerFailure as e:
        if isinstance(e, FarmPowerFailure):
            raise
        raise FarmPowerFailure(f"labgrid place {holding.place}: {e}") from None
    parts = urlsplit(holding.url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=PORT_TIMEOUT):
            pass
    except OSError as e:
        raise FarmSerialFailure(f"labgrid place {holding.place}: serial port {holding.url} does not connect: "
                                f"{e.strerror or e}") from None


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _note(text: str) -> None:
    import sys

    print(f"hil: {text}", file=sys.__stderr__, flush=True)


def job_holdings(farm: FarmClient, job: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``([(place, holder)], [(token, owner)])``: what job ``job``'s processes hold at the coordinator."""
    places = [(name, p.acquired) for name, p in sorted(farm.places().items()) if held_by_job(p.acquired, job)]
    reservations = [(r.token, r.owner) for r in farm.reservations() if held_by_job(r.owner, job)]
    return places, reservations
