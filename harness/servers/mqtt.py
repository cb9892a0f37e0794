"""MQTT side of the OTA scenarios: a broker and the OTA publisher that speaks to the device agent.

:class:`MqttBroker` is an embedded amqtt broker running on its own event loop in a
daemon thread, or (``MqttBroker.external(host, port)``) a broker run by someone else,
e.g. mosquitto. :class:`OtaPublisher` connects to it with paho-mqtt and serves OTA
transfers with this protocol (QoS 0 throughout; ``B`` is the device's topic base, e.g.
``hil/esp32-0/``):

* the device subscribes to ``B + "u"`` (JSON control messages) and ``B + "uc"`` (binary
  chunks) and publishes to ``B + "r"`` (JSON requests and reports);
* offer, on ``B + "u"``: ``{"op": "offer", "id": "<8 hex>", "kind": "firmware" | "files",
  "version": "2.0.0", "size": N, "sha256": "<hex of the blob>", "chunk": C}``; a "files"
  offer adds ``"files": [{"name", "size", "sha256"}, ...]`` and its blob is the
  concatenation of those files in that order;
* the device pulls: ``{"op": "get", "id": ID, "seq": k, "n": W}`` asks for chunks
  ``k .. k+W-1``; chunk ``k`` holds blob bytes ``[k*C, (k+1)*C)`` and goes out on
  ``B + "uc"`` as: 4-byte id (the 8 hex chars as raw bytes), u32 BE seq, u32 BE
  ``zlib.crc32`` of the data, the data. A ``get`` whose ``seq`` is beyond the end is
  answered ``{"op": "end", "id": ID}`` on ``B + "u"``; a ``get`` for an id the server
  does not know, ``{"op": "error", "id": ID, "error": "unknown transfer"}``;
* the device reports on ``B + "r"``: ``{"op": "status", "id": ID, "state": "...", ...}``;
  the publisher keeps every report (:meth:`OtaPublisher.reports`,
  :meth:`OtaPublisher.wait_status`).

A :class:`~harness.servers.faults.FaultPlan` applies to blob offsets as documented in
:mod:`harness.servers.faults`: chunk by chunk (a chunk is the MQTT unit, so ``on_bytes``
fires after the chunk carrying byte ``n - 1``), ``truncate_at`` cuts the chunk holding
the cut and answers requests beyond it with ``end``, ``drop_at`` breaks the publisher's
broker connection without DISCONNECT and stops serving that transfer, ``lie_length``
changes the offer's ``size``. Malformed messages on ``B + "r"`` (not JSON, a ``get``
with bad fields, an unknown op) are logged and ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import queue
import secrets
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
from amqtt.broker import Broker
from amqtt.plugins.base import BasePlugin

from .base import Endpoint, ServerLog, peer_name
from .faults import FaultPlan, FaultyStream

DEFAULT_CHUNK = 2048
CHUNK_HEADER = struct.Struct(">4sII")
"""id (4 raw bytes), seq, CRC-32 of the data; the data follows."""

Kind = Literal["firmware", "files"]


@dataclass(frozen=True)
class DeviceTopics:
    """The three topics of one device, derived from its topic base."""

    base: str

    def __post_init__(self) -> None:
        if not self.base or any(c in self.base for c in "#+\0"):
            raise ValueError(f"topic base must be non-empty and free of wildcards, not {self.base!r}")

    @property
    def control(self) -> str:
        return self.base + "u"

    @property
    def chunks(self) -> str:
        return self.base + "uc"

    @property
    def reports(self) -> str:
        return self.base + "r"


def encode_chunk(transfer_id: str, seq: int, data: bytes, crc: int | None = None) -> bytes:
    """One chunk message; ``crc`` defaults to the CRC of ``data`` (a corrupted chunk passes the clean one)."""
    return CHUNK_HEADER.pack(bytes.fromhex(transfer_id), seq, zlib.crc32(data) if crc is None else crc) + data


def decode_chunk(payload: bytes) -> tuple[str, int, int, bytes]:
    """``(id, seq, crc, data)`` of a chunk message (what the device agent does)."""
    if len(payload) < CHUNK_HEADER.size:
        raise ValueError(f"chunk message of {len(payload)} bytes is shorter than its {CHUNK_HEADER.size}-byte header")
    raw_id, seq, crc = CHUNK_HEADER.unpack_from(payload)
    return raw_id.hex(), seq, crc, payload[CHUNK_HEADER.size:]


# -- broker -------------------------------------------------------------------


class _BrokerEvents(BasePlugin):  # type: ignore[type-arg]
    """amqtt plugin that copies client connects, disconnects and subscriptions into the broker's ServerLog."""

    @dataclass
    class Config:
        log: Any = None

    async def on_broker_client_connected(self, *, client_id: str, client_session: Any) -> None:
        self.config.log.add(event="client-connected", client_id=client_id,
                            peer=peer_name((client_session.remote_address, client_session.remote_port)))

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Any) -> None:
        self.config.log.add(event="client-disconnected", client_id=client_id)

    async def on_broker_client_subscribed(self, *, client_id: str, topic: str, qos: int) -> None:
        self.config.log.add(event="subscribed", client_id=client_id, topic=topic, qos=qos)

    async def on_broker_client_unsubscribed(self, *, client_id: str, topic: str) -> None:
        self.config.log.add(event="unsubscribed", client_id=client_id, topic=topic)


class _BrokerWarnings(logging.Handler):
    """Puts amqtt's warnings about one broker (garbage on the wire, broken sessions) into its ServerLog.

    amqtt logs through module-level loggers shared by every broker in the process; each
    embedded broker runs in its own thread, so the thread tells whose warning it is.
    """

    def __init__(self, log: ServerLog, thread_id: int) -> None:
        super().__init__(logging.WARNING)
        self.server_log = log
        self.thread_id = thread_id

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            self.server_log.add(event="broker-warning", level=record.levelname, message=record.getMessage())


class _AmqttThread:
    """An amqtt broker on its own event loop in a daemon thread: amqtt is asyncio-only, the harness is not."""

    def __init__(self, name: str, host: str, port: int, log: ServerLog) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.log = log
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Broker | None = None
        self._bound_port = 0
        self._warnings: _BrokerWarnings | None = None

    def start(self, timeout: float) -> int:
        """Start the broker; returns the port it listens on."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name=f"{self.name}-loop",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"{self.name}: embedded broker on {self.host}:{self.port} did not start "
                               f"within {timeout:g}s")
        if failure:
            self._thread.join(timeout=5)
            raise OSError(f"{self.name}: embedded broker cannot listen on {self.host}:{self.port}: "
                          f"{failure[0]}") from failure[0]
        return self._bound_port

    def stop(self, timeout: float = 5.0) -> None:
        loop, broker, thread = self._loop, self._broker, self._thread
        if loop is None or thread is None:
            return
        if broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(timeout=timeout)
            except Exception as exc:  # the loop is stopped below either way
                self.log.add(event="broker-warning", level="ERROR", message=f"shutdown failed: {exc!r}")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=timeout)
        self._loop = self._broker = self._thread = None

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._warnings = _BrokerWarnings(self.log, threading.get_ident())
        logging.getLogger("amqtt").addHandler(self._warnings)
        try:
            self._broker = loop.run_until_complete(self._create())
            # amqtt (pinned to an exact version) has no public accessor for a port-0 listener.
            self._bound_port = self._broker._servers["default"].instance.sockets[0].getsockname()[1]
        except Exception as exc:  # reported by start() in the caller's thread
            failure.append(exc)
            ready.set()
            self._close_loop(loop)
            return
        ready.set()
        loop.run_forever()
        self._close_loop(loop)

    async def _create(self) -> Broker:
        bind = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        config = {
            "listeners": {"default": {"type": "tcp", "bind": bind}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
                f"{__name__}._BrokerEvents": {"log": self.log},
            },
        }
        broker = Broker(config, loop=asyncio.get_running_loop())
        await broker.start()
        return broker

    def _close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        if self._warnings is not None:
            logging.getLogger("amqtt").removeHandler(self._warnings)


class MqttBroker:
    """The MQTT broker of a scenario: embedded amqtt (default) or an external one.

    The embedded broker allows anonymous clients, keeps nothing between runs and binds
    ``host:port`` (port 0 = any free port); ``advertise_host`` is the address put in
    :attr:`endpoint` (a bench board must be told the host's LAN IP, not 0.0.0.0). Its
    log has one record per client connect, disconnect and subscription, plus amqtt's
    warnings about that broker (e.g. garbage on the wire).
    """

    start_timeout = 10.0

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, log_path: str | os.PathLike[str] | None = None,
                 advertise_host: str | None = None, name: str = "mqtt-broker") -> None:
        self.name = name
        self.host = host
        self.port = port
        self.advertise_host = advertise_host
        self.is_external = False
        self.log = ServerLog(name, log_path)
        self.endpoint: Endpoint | None = None
        self._embedded: _AmqttThread | None = None

    @classmethod
    def external(cls, host: str, port: int = 1883, *, log_path: str | os.PathLike[str] | None = None,
                 name: str = "mqtt-broker") -> MqttBroker:
        """A broker that is already running elsewhere (mosquitto, a lab broker); start/stop only check and log."""
        broker = cls(host, port, log_path=log_path, name=name)
        broker.is_external = True
        return broker

    def start(self) -> Endpoint:
        if self.endpoint is not None:
            raise RuntimeError(f"{self.name} is already running at {self.endpoint.url}")
        if self.is_external:
            self._check_reachable()
            self.endpoint = Endpoint(self.host, self.port, "mqtt")
        else:
            embedded = _AmqttThread(self.name, self.host, self.port, self.log)
            port = embedded.start(self.start_timeout)
            self._embedded = embedded
            self.endpoint = Endpoint(self._advertised(), port, "mqtt")
        self.log.add(event="start", url=self.endpoint.url, external=self.is_external)
        return self.endpoint

    def stop(self) -> None:
        if self.endpoint is None:
            return
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
        self.endpoint = None
        self.log.add(event="stop")

    def __enter__(self) -> MqttBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.endpoint is not None

    @property
    def url(self) -> str:
        if self.endpoint is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.endpoint.url

    def _check_reachable(self) -> None:
        try:
            socket.create_connection((self.host, self.port), timeout=5).close()
        except OSError as exc:
            raise ConnectionError(f"{self.name}: external MQTT broker at {self.host}:{self.port} "
                                  f"is not reachable: {exc}") from exc

    def _advertised(self) -> str:
        if self.advertise_host:
            return self.advertise_host
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)


# -- OTA publisher --------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One message a device published on its report topic."""

    base: str
    t: float
    message: dict[str, Any]


class Transfer:
    """One offer and the serving of its chunks.

    Gets are queued and answered in order by the transfer's own thread, so a stall or
    a rate limit holds back this transfer only, never paho's network thread or another
    device.
    """

    def __init__(self, publisher: OtaPublisher, *, transfer_id: str, topics: DeviceTopics, kind: Kind,
                 version: str, blob: bytes, chunk: int, files: list[dict[str, Any]], stream: FaultyStream) -> None:
        self.id = transfer_id
        self.topics = topics
        self.kind = kind
        self.version = version
        self.blob = blob
        self.chunk = chunk
        self.files = files
        self.stream = stream
        self.sha256 = hashlib.sha256(blob).hexdigest()
        self.announced_size = stream.announced_length(len(blob))
        self.state: Literal["serving", "dropped", "closed"] = "serving"
        self._publisher = publisher
        self._gets: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"{publisher.name}-{transfer_id}", daemon=True)
        self._thread.start()

    @property
    def size(self) -> int:
        return len(self.blob)

    @property
    def chunk_count(self) -> int:
        return -(-len(self.blob) // self.chunk)

    def offer_message(self) -> dict[str, Any]:
        offer: dict[str, Any] = {"op": "offer", "id": self.id, "kind": self.kind, "version": self.version,
                                 "size": self.announced_size, "sha256": self.sha256, "chunk": self.chunk}
        if self.kind == "files":
            offer["files"] = self.files
        return offer

    def request(self, seq: int, n: int) -> None:
        self._gets.put((seq, n))

    def close(self, timeout: float = 5.0) -> None:
        if self.state == "serving":
            self.state = "closed"
        self._gets.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._gets.get()) is not None:
            try:
                self._serve(*item)
            except Exception as exc:  # keep serving the next get
                self._publisher.log.add(event="error", id=self.id, base=self.topics.base,
                                        error=f"{type(exc).__name__}: {exc}")

    def _serve(self, seq: int, n: int) -> None:
        pub = self._publisher
        rec: dict[str, Any] = {"event": "get", "id": self.id, "base": self.topics.base, "seq": seq, "n": n,
                               "fault": self.stream.fault}
        if self.state != "serving":
            pub.log.add(**rec, answer="ignored", reason=f"transfer is {self.state}")
            return
        if seq >= self.chunk_count:
            pub.send_control(self.topics, {"op": "end", "id": self.id})
            pub.log.add(**rec, answer="end")
            return
        sent: list[int] = []
        nbytes = 0
        answer = "chunks"
        for k in range(seq, min(seq + n, self.chunk_count)):
            offset = k * self.chunk
            piece = self.stream.piece(offset, self.blob[offset:offset + self.chunk])
            if self.stream.cancel.is_set():
                answer = "cancelled"
                break
            if piece.data:
                if not pub.send(self.topics.chunks, encode_chunk(self.id, k, piece.data, zlib.crc32(piece.clean))):
                    answer = "send-failed"
                    break
                sent.append(k)
                nbytes += len(piece.data)
            self.stream.commit(piece)
            if piece.stop == "drop":
                self.state = "dropped"
                pub.drop_connection(f"drop_at reached in transfer {self.id}")
                answer = "dropped"
                break
            if piece.stop == "truncate":
                answer = "truncated"
                if not piece.data or k + 1 < seq + n:
                    pub.send_control(self.topics, {"op": "end", "id": self.id})
                break
        pub.log.add(**rec, answer=answer, chunks=sent, bytes=nbytes)


class OtaPublisher:
    """Offers firmware or file bundles to devices over MQTT and serves the chunks they ask for.

    ``broker`` is a started :class:`MqttBroker`, an :class:`Endpoint` or ``(host, port)``.
    ``fault`` is the plan for offers that do not bring their own. The log has one record
    per offer, get (with the chunks sent), report, malformed message, connect/disconnect
    and drop.
    """

    connect_timeout = 10.0
    publish_timeout = 10.0

    def __init__(self, broker: MqttBroker | Endpoint | tuple[str, int], *, fault: FaultPlan | None = None,
                 name: str = "mqtt-ota", client_id: str | None = None,
                 log_path: str | os.PathLike[str] | None = None, keepalive: int = 30) -> None:
        self.name = name
        self.broker = broker
        self.fault = fault
        self.client_id = client_id or f"hil-ota-{secrets.token_hex(4)}"
        self.keepalive = keepalive
        self.log = ServerLog(name, log_path)
        self.stopping = threading.Event()
        self._client: paho.Client | None = None
        self._address: tuple[str, int] | None = None
        self._connected = threading.Event()
        self._connect_failure: str | None = None
        self._lock = threading.Lock()
        self._watched: set[str] = set()
        self._suback: dict[int, threading.Event] = {}
        self._transfers: dict[str, Transfer] = {}
        self._reports: list[Report] = []
        self._reports_changed = threading.Condition()

    # -- lifecycle ---------------------------------------------------------
    def _broker_address(self) -> tuple[str, int]:
        if isinstance(self.broker, MqttBroker):
            if self.broker.endpoint is None:
                raise RuntimeError(f"{self.name}: start {self.broker.name} before the publisher")
            return self.broker.endpoint.host, self.broker.endpoint.port
        if isinstance(self.broker, Endpoint):
            return self.broker.host, self.broker.port
        host, port = self.broker
        return host, int(port)

    def start(self) -> OtaPublisher:
        if self._client is not None:
            raise RuntimeError(f"{self.name} is already connected to {self.broker_label}")
        self._address = self._broker_address()
        self.stopping.clear()
        self._connected.clear()
        self._connect_failure = None
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv311)
        # Reconnect soon after a drop_at: the scenario's next offer should not wait long.
        client.reconnect_delay_set(min_delay=0.2, max_delay=2)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client
        client.connect_async(*self._address, keepalive=self.keepalive)
        client.loop_start()
        if not self._connected.wait(self.connect_timeout) or self._connect_failure:
            reason = self._connect_failure or f"no CONNACK within {self.connect_timeout:g}s"
            self._shutdown_client()
            raise ConnectionError(f"{self.name}: cannot connect to MQTT broker {self.broker_label}: {reason}")
        self.log.add(event="start", broker=self.broker_label, client_id=self.client_id)
        return self

    def stop(self) -> None:
        if self._client is None:
            return
        self.stopping.set()
        self._shutdown_client()
        with self._lock:
            transfers = list(self._transfers.values())
        for transfer in transfers:
            transfer.close()
        self.log.add(event="stop")

    def _shutdown_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def __enter__(self) -> OtaPublisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def broker_label(self) -> str:
        host, port = self._address or self._broker_address()
        return f"{host}:{port}"

    def set_fault(self, plan: FaultPlan | None) -> None:
        """The plan for later offers that do not bring their own."""
        self.fault = plan

    # -- offers ------------------------------------------------------------
    def offer_firmware(self, base: str, image: bytes, version: str, *, chunk: int = DEFAULT_CHUNK,
                       fault: FaultPlan | None = None) -> Transfer:
        """Offer a firmware image to the device at ``base``; returns the transfer that serves it."""
        return self._offer(DeviceTopics(base), "firmware", bytes(image), version, chunk, fault, [])

    def offer_files(self, base: str, files: Mapping[str, bytes] | Sequence[tuple[str, bytes]], version: str, *,
                    chunk: int = DEFAULT_CHUNK, fault: FaultPlan | None = None) -> Transfer:
        """Offer a file bundle: the blob is the files concatenated in the given order."""
        items = list(files.items()) if isinstance(files, Mapping) else [(str(n), bytes(d)) for n, d in files]
        if not items:
            raise ValueError(f"{self.name}: a files offer needs at least one file")
        blob = b"".join(data for _, data in items)
        names = [(name, len(data)) for name, data in items]
        return self._offer(DeviceTopics(base), "files", blob, version, chunk, fault, names)

    def _offer(self, topics: DeviceTopics, kind: Kind, blob: bytes, version: str, chunk: int,
               fault: FaultPlan | None, names: list[tuple[str, int]]) -> Transfer:
        if self._client is None:
            raise RuntimeError(f"{self.name} is not started")
        if chunk < 1:
            raise ValueError(f"{self.name}: chunk size must be >= 1, not {chunk}")
        stream = FaultyStream(fault if fault is not None else self.fault, cancel=self.stopping)
        delivered = stream.prepare_image(blob)
        files = []
        offset = 0
        for name, size in names:
            part = delivered[offset:offset + size]
            files.append({"name": name, "size": size, "sha256": hashlib.sha256(part).hexdigest()})
            offset += size
        with self._lock:
            transfer_id = secrets.token_hex(4)
            while transfer_id in self._transfers:
                transfer_id = secrets.token_hex(4)
            transfer = Transfer(self, transfer_id=transfer_id, topics=topics, kind=kind, version=version,
                                blob=delivered, chunk=chunk, files=files, stream=stream)
            self._transfers[transfer_id] = transfer
        self.watch(topics.base)
        offer = transfer.offer_message()
        if not self.send(topics.control, json.dumps(offer).encode()):
            raise ConnectionError(f"{self.name}: could not publish the offer to {topics.control} "
                                  f"via {self.broker_label}")
        self.log.add(event="offer", base=topics.base, **{k: v for k, v in offer.items() if k != "op"},
                     real_size=transfer.size, fault=stream.fault, transfer=stream.transfer)
        return transfer

    def transfer(self, transfer_id: str) -> Transfer:
        with self._lock:
            try:
                return self._transfers[transfer_id]
            except KeyError:
                raise KeyError(f"{self.name}: no transfer {transfer_id!r}") from None

    # -- reports -----------------------------------------------------------
    def watch(self, base: str) -> None:
        """Subscribe to the device's report topic (offers do this; call it to see reports before one)."""
        topics = DeviceTopics(base)
        with self._lock:
            if topics.base in self._watched:
                return
            self._watched.add(topics.base)
        self._subscribe(topics.reports)

    def reports(self, base: str | None = None, transfer_id: str | None = None) -> list[dict[str, Any]]:
        """Status reports received so far, oldest first (the device's messages as sent)."""
        with self._reports_changed:
            return [dict(r.message) for r in self._reports
                    if (base is None or r.base == base) and (transfer_id is None or r.message.get("id") == transfer_id)]

    def wait_status(self, state: str, timeout: float = 30.0, *, transfer_id: str | None = None,
                    base: str | None = None) -> dict[str, Any]:
        """The first status report (received before or during the wait) with ``state``."""
        return self.wait_report(lambda m: m.get("state") == state and (transfer_id is None or
                                                                        m.get("id") == transfer_id),
                                timeout, base=base, what=f"status {state!r}")

    def wait_report(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0, *,
                    base: str | None = None, what: str = "a matching report") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._reports_changed:
            while True:
                for report in self._reports:
                    if (base is None or report.base == base) and predicate(report.message):
                        return dict(report.message)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(r.base, r.message.get("state")) for r in self._reports]
                    raise TimeoutError(f"{self.name} (broker {self.broker_label}): no {what} from "
                                       f"{base or 'any device'} within {timeout:g}s; reports so far: {seen}")
                self._reports_changed.wait(remaining)

    # -- MQTT plumbing (also used by Transfer) -----------------------------
    def send(self, topic: str, payload: bytes) -> bool:
        """Publish and wait until the bytes are on the socket; False (and logged) when they are not."""
        client = self._client
        if client is None:
            return False
        info = client.publish(topic, payload, qos=0)
        deadline = time.monotonic() + self.publish_timeout
        try:
            # In slices, so that stop() is not held up by a publish that will never go out.
            while not info.is_published() and time.monotonic() < deadline and not self.stopping.is_set():
                info.wait_for_publish(0.1)
        except (RuntimeError, ValueError) as exc:
            self.log.add(event="send-failed", topic=topic, error=str(exc))
            return False
        if not info.is_published():
            self.log.add(event="send-failed", topic=topic, error=f"not sent within {self.publish_timeout:g}s")
            return False
        return True

    def send_control(self, topics: DeviceTopics, message: dict[str, Any]) -> bool:
        return self.send(topics.control, json.dumps(message).encode())

    def drop_connection(self, reason: str) -> None:
        """Break the broker connection without DISCONNECT, as a crashed server would; paho reconnects."""
        client = self._client
        sock = client.socket() if client is not None else None
        self.log.add(event="drop", reason=reason)
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _subscribe(self, topic: str) -> None:
        client = self._client
        if client is None:
            raise RuntimeError(f"{self.name} is not started")
        done = threading.Event()
        with self._lock:
            result, mid = client.subscribe(topic, qos=0)
            if result != paho.MQTT_ERR_SUCCESS or mid is None:
                raise ConnectionError(f"{self.name}: cannot subscribe to {topic} via {self.broker_label}: "
                                      f"{paho.error_string(result)}")
            self._suback[mid] = done
        # Without the SUBACK the device's first get could reach the broker before our subscription.
        if not done.wait(self.publish_timeout):
            raise TimeoutError(f"{self.name}: no SUBACK for {topic} from {self.broker_label} "
                               f"within {self.publish_timeout:g}s")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            self._connect_failure = str(reason_code)
            self.log.add(event="connect-failed", broker=self.broker_label, reason=str(reason_code))
            self._connected.set()
            return
        self.log.add(event="connected", broker=self.broker_label)
        with self._lock:
            watched = sorted(self._watched)
        for base in watched:  # after a reconnect (drop_at), keep hearing the devices
            client.subscribe(DeviceTopics(base).reports, qos=0)
        self._connected.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        if not self._connected.is_set():  # at start(): fail now rather than after connect_timeout
            self._connect_failure = "connection refused or unreachable"
            self._connected.set()
        self.log.add(event="connect-failed", broker=self.broker_label, reason="no connection")

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self.log.add(event="disconnected", broker=self.broker_label, reason=str(reason_code))

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reason_codes: Any,
                      properties: Any) -> None:
        with self._lock:
            done = self._suback.pop(mid, None)
        if done is not None:
            done.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        base = msg.topic.removesuffix("r")
        try:
            message = json.loads(msg.payload)
            if not isinstance(message, dict):
                raise ValueError(f"expected a JSON object, got {type(message).__name__}")
        except ValueError as exc:  # includes UnicodeDecodeError
            self.log.add(event="malformed", base=base, error=str(exc), payload=_preview(msg.payload))
            return
        op = message.get("op")
        if op == "get":
            self._on_get(client, base, message)
        elif op == "status":
            with self._reports_changed:
                self._reports.append(Report(base, time.time(), message))
                self._reports_changed.notify_all()
            self.log.add(event="status", base=base, report=message)
        else:
            self.log.add(event="malformed", base=base, error=f"unknown op {op!r}", payload=_preview(msg.payload))

    def _on_get(self, client: paho.Client, base: str, message: dict[str, Any]) -> None:
        transfer_id, seq, n = message.get("id"), message.get("seq"), message.get("n")
        problem = None
        if not isinstance(transfer_id, str):
            problem = "'id' must be a string"
        elif not _is_int(seq) or seq < 0:
            problem = "'seq' must be an integer >= 0"
        elif not _is_int(n) or n < 1:
            problem = "'n' must be an integer >= 1"
        if problem is not None:
            self.log.add(event="malformed", base=base, error=f"bad get: {problem}", payload=message)
            return
        with self._lock:
            transfer = self._transfers.get(transfer_id)
        if transfer is None or transfer.topics.base != base:
            # Not send(): paho's network thread (this one) must not wait for its own publish.
            client.publish(DeviceTopics(base).control, json.dumps({"op": "error", "id": transfer_id,
                                                                   "error": "unknown transfer"}), qos=0)
            self.log.add(event="get", base=base, id=transfer_id, seq=seq, n=n, answer="error",
                         reason="unknown transfer")
            return
        transfer.request(seq, n)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _preview(payload: bytes, limit: int = 80) -> str:
    text = payload[:limit].decode("utf-8", "backslashreplace")
    return text + ("..." if len(payload) > limit else "")


__all__ = ["CHUNK_HEADER", "DEFAULT_CHUNK", "DeviceTopics", "MqttBroker", "OtaPublisher", "Report", "Transfer",
           "decode_chunk", "encode_chunk"]
