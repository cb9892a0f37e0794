"""labgrid client sessions on the farm's coordinator.

labgrid's ``ClientSession`` is asyncio code whose message pump must keep running to see places
change. So the sessions of a process run on one event loop in a thread of its own (:func:`_event_loop`),
and every call is a coroutine handed to that loop. A process's places are all taken through one
session per coordinator (:func:`client`). Each session has a gRPC channel with a connection of its own:
on the connection gRPC would otherwise share, the coordinator refuses a second session of the process.
Nothing here knows about boards or rigs: places, tags, reservations and resources, as the coordinator
has them.

The coordinator knows a holder as ``host/user``, where ``user`` is ``LG_USERNAME`` when set when the
session starts (:func:`harness.farm.job.worker_user` sets it per job and worker).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InfrastructureError

#: seconds one call to the coordinator may take before it counts as not answering
CALL_TIMEOUT = 20.0
#: labgrid's client channel options (keepalive), and a connection of the channel's own
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 7500),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.http2.ping_timeout_ms", 10000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.use_local_subchannel_pool", 1),
]
#: how often a waiting reservation is polled (the coordinator expires one that is not polled for 60 s)
POLL_S = 0.5


class FarmError(InfrastructureError, RuntimeError):
    """The labgrid farm did not do what the harness asked; ``str()`` is one line."""


class FarmUnavailable(FarmError):
    """labgrid is not installed, or its coordinator does not answer."""


def labgrid_missing(error: ImportError) -> FarmUnavailable:
    return FarmUnavailable(f"a labgrid rig needs labgrid: pip install 'esp-ota-hil[farm]' ({error})")


@dataclass
class PlaceInfo:
    """A place as the coordinator has it."""

    name: str
    tags: dict[str, str]
    acquired: str | None  # "host/user" of the holder
    reservation: str | None
    matches: list[str] = field(default_factory=list)
    comment: str = ""

    @property
    def holder_user(self) -> str | None:
        return self.acquired.split("/", 1)[1] if self.acquired and "/" in self.acquired else self.acquired


@dataclass
class ReservationInfo:
    token: str
    owner: str  # "host/user"
    state: str  # waiting, allocated, acquired, expired, invalid
    filters: dict[str, str]
    place: str | None

    @property
    def owner_user(self) -> str:
        return self.owner.split("/", 1)[1] if "/" in self.owner else self.owner


class FarmClient:
    """A labgrid client session on coordinator ``address`` (``host:port``), its loop in a daemon thread."""

    def __init__(self, address: str, timeout: float = CALL_TIMEOUT):
        try:
            from labgrid.remote.client import ClientSession
            from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2
        except ImportError as e:
            raise labgrid_missing(e) from None
        self.address = address
        self.timeout = timeout
        self._pb2 = pb2
        self._loop = _event_loop()
        self._session = None
        self.closed = False

        async def start():
            import grpc
            from labgrid.remote.generated import labgrid_coordinator_pb2_grpc

            session = ClientSession(address, self._loop)
            # A channel of its own: gRPC shares one connection between channels to the same address, and the
            # coordinator tells clients apart by connection, so a second session of a process on a shared
            # connection is refused ("Could not connect to coordinator").
            await session.channel.close()
            session.channel = grpc.aio.insecure_channel(target=session.address, options=CHANNEL_OPTIONS)
            session.stub = labgrid_coordinator_pb2_grpc.CoordinatorStub(session.channel)
            await session.start()
            return session

        try:
            self._session = self._run(start())
        except Exception as e:
            self._stop_loop()
            why = _text(e).removeprefix(f"labgrid coordinator {address}: ")
            raise FarmUnavailable(f"labgrid coordinator {address} does not answer ({why})") from None
        except BaseException:
            self._stop_loop()
            raise

    # -- plumbing ------------------------------------------------------------------------------------------
    def _run(self, coro, timeout: float | None = None):
        if self.closed:
            coro.close()
            raise FarmUnavailable(f"labgrid coordinator {self.address}: the session is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            try:
                return future.result(self.timeout if timeout is None else timeout)
            except (KeyboardInterrupt, SystemExit):
                # a stop signal: let the call finish first, so that what it did (an acquire) can be undone
                concurrent.futures.wait([future], timeout=self.timeout)
                raise
        except TimeoutError:
            future.cancel()
            raise FarmUnavailable(f"labgrid coordinator {self.address} did not answer within "
                                  f"{self.timeout if timeout is None else timeout:.0f} s") from None
        except FarmError:
            raise
        except Exception as e:
            raise FarmError(f"labgrid coordinator {self.address}: {_text(e)}") from None

    async def _rpc(self, method: str, request):
        import grpc

        session = self._session
        if session.stopping.is_set():
            raise FarmUnavailable(f"labgrid coordinator {self.address}: the connection was lost")
        try:
            response = await getattr(session.stub, method)(request)
        except grpc.aio.AioRpcError as e:
            raise FarmError(f"labgrid coordinator {self.address}: {method}: {e.details()}") from None
        await session.sync_with_coordinator()
        return response

    def _stop_loop(self) -> None:
        """Nothing to stop: the loop is the process's (:func:`_event_loop`)."""

    def close(self) -> None:
        """End the session (what it holds stays held: release first)."""
        if self.closed:
            return
        try:
            if self._session is not None:
                async def stop():
                    await self._session.stop()
                    await self._session.close()

                with contextlib.suppress(Exception):
                    self._run(stop(), timeout=5)
        finally:
            self.closed = True
            self._stop_loop()

    # -- what the coordinator knows ------------------------------------------------------------------------
    @property
    def user(self) -> str:
        return self._session.getuser()

    @property
    def holder(self) -> str:
        """This session's name at the coordinator, ``host/user``."""
        return f"{self._session.gethostname()}/{self._session.getuser()}"

    def places(self) -> dict[str, PlaceInfo]:
        async def read():
            await self._session.sync_with_coordinator()
            return {name: PlaceInfo(name, dict(p.tags), p.acquired, p.reservation,
                                    [repr(m) for m in p.matches], p.comment)
                    for name, p in self._session.places.items()}

        return self._run(read())

    def reservations(self) -> list[ReservationInfo]:
        from labgrid.remote.common import Reservation

        async def read():
            response = await self._rpc("GetReservations", self._pb2.GetReservationsRequest())
            return [Reservation.from_pb2(r) for r in response.reservations]

        return [_reservation(r) for r in self._run(read())]

    def resources(self, place: str) -> dict[str, tuple[str, dict[str, Any], bool]]:
        """The resources of acquired place ``place``: name -> (class, arguments, available)."""

        async def read():
            await self._session.sync_with_coordinator()
            found = self._session.get_target_resources(self._session.places[place])
            return {name: (entry.cls, dict(entry.args), bool(entry.avail)) for (name, _cls), entry in found.items()}

        return self._run(read())

    # -- reservations and places ---------------------------------------------------------------------------
    def reserve(self, filters: dict[str, str], prio: float = 0.0) -> str:
        pb2 = self._pb2

        async def create():
            request = pb2.CreateReservationRequest(filters={"main": pb2.Reservation.Filter(filter=filters)},
                                                   prio=prio)
            return (await self._rpc("CreateReservation", request)).reservation.token

        return self._run(create())

    def poll(self, token: str) -> ReservationInfo:
        from labgrid.remote.common import Reservation

        async def poll():
            response = await self._rpc("PollReservation", self._pb2.PollReservationRequest(token=token))
            return Reservation.from_pb2(response.reservation)

        return _reservation(self._run(poll()))

    def wait_allocated(self, tokens: list[str], timeout: float,
                       stop: Callable[[], bool] = lambda: False) -> tuple[str, str]:
        """Poll reservations ``tokens`` until one has a place: ``(token, place)``; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for token in tokens:
                res = self.poll(token)
                if res.place is not None and res.state in ("allocated", "acquired"):
                    return token, res.place
                if res.state in ("expired", "invalid"):
                    raise FarmError(f"labgrid reservation {token} ({_filters(res.filters)}) is {res.state}")
            if stop() or time.monotonic() >= deadline:
                raise TimeoutError(f"no place matching {' or '.join(self._filters_of(tokens))} became free within "
                                   f"{timeout:.0f} s")
            time.sleep(POLL_S)

    def _filters_of(self, tokens: list[str]) -> list[str]:
        found = []
        for token in tokens:
            with contextlib.suppress(FarmError):
                found.append(_filters(self.poll(token).filters))
        return found or ["?"]

    def cancel(self, token: str) -> None:
        self._run(self._rpc("CancelReservation", self._pb2.CancelReservationRequest(token=token)))

    def acquire(self, place: str) -> None:
        self._run(self._rpc("AcquirePlace", self._pb2.AcquirePlaceRequest(placename=place)))

    def release(self, place: str, from_user: str | None = None) -> None:
        """Release ``place``; with ``from_user`` (``host/user``) only if that holder still has it."""
        request = (self._pb2.ReleasePlaceRequest(placename=place) if from_user is None
                   else self._pb2.ReleasePlaceRequest(placename=place, fromuser=from_user))
        self._run(self._rpc("ReleasePlace", request))

    # -- setting a farm up (tests, hil farm) ---------------------------------------------------------------
    def add_place(self, name: str, matches: list[str], tags: dict[str, str] | None = None) -> None:
        pb2 = self._pb2

        async def add():
            await self._rpc("AddPlace", pb2.AddPlaceRequest(name=name))
            for pattern in matches:
                await self._rpc("AddPlaceMatch", pb2.AddPlaceMatchRequest(placename=name, pattern=pattern))
            if tags:
                await self._rpc("SetPlaceTags", pb2.SetPlaceTagsRequest(placename=name, tags=tags))

        self._run(add())

    def wait_resources(self, paths: list[str], timeout: float = 10.0) -> None:
        """Wait until the exporters have announced every resource group ``exporter/group``."""
        deadline = time.monotonic() + timeout

        async def known():
            await self._session.sync_with_coordinator()
            return {f"{e}/{g}" for e, groups in self._session.resources.items() for g in groups}

        while True:
            missing = set(paths) - self._run(known())
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise FarmError(f"labgrid coordinator {self.address}: no exporter offers {', '.join(sorted(missing))}")
            time.sleep(0.1)


def _reservation(res) -> ReservationInfo:
    places = [name for group in res.allocations.values() for name in group]
    return ReservationInfo(res.token, res.owner, res.state.name, dict(res.filters.get("main", {})),
                           places[0] if places else None)


def _filters(filters: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(filters.items())) or "(any)"


def _text(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """The process's one event loop for labgrid sessions, running in a daemon thread.

    gRPC's asyncio support serves one event loop per process: a session on a second loop never connects
    (labgrid's "Could not connect to coordinator" for a second session in one process). Every session of
    the process runs on this one.
    """
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="labgrid client", daemon=True).start()
            _LOOP = loop
        return _LOOP


_CLIENTS: dict[str, FarmClient] = {}
_CLIENTS_LOCK = threading.Lock()


def client(address: str) -> FarmClient:
    """This process's session on coordinator ``address`` (started at first use, shared after)."""
    with _CLIENTS_LOCK:
        found = _CLIENTS.get(address)
        if found is None or found.closed:
            found = _CLIENTS[address] = FarmClient(address)
        return found


def close_all() -> None:
    with _CLIENTS_LOCK:
        for found in _CLIENTS.values():
            found.close()
        _CLIENTS.clear()
