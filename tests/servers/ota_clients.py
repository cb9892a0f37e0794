"""Device-side clients for the server tests: what a board does, with timestamps for every byte.

Each ``fetch_*`` function downloads one image the way a device would and returns a
:class:`Delivery`, so one fault test can be written once and run against every server.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import queue
import socket
import ssl
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho

from harness.servers import DeviceTopics, Endpoint, decode_chunk

WAIT = 5.0  # upper bound for anything that should happen "at once"


@dataclass
class Delivery:
    """What a device received.

    ``end`` is how the transfer ended for the device: ``complete`` (all announced bytes),
    ``eof`` (clean close before that), ``reset`` (connection reset), ``end`` (MQTT end
    message), ``silence`` (MQTT: nothing more within the wait). ``arrivals`` holds
    ``(monotonic time, payload bytes received so far)`` after every read.
    """

    announced: int
    data: bytes = b""
    end: str = "complete"
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    started: float = 0.0
    crc_errors: list[int] = field(default_factory=list)
    offer: dict[str, Any] | None = None

    def time_of_byte(self, offset: int) -> float:
        """When the byte at ``offset`` had arrived."""
        for t, count in self.arrivals:
            if count > offset:
                return t
        raise AssertionError(f"byte {offset} never arrived ({len(self.data)} bytes received)")


def _read_stream(read, delivery: Delivery) -> Delivery:
    buf = bytearray()
    try:
        while True:
            chunk = read()
            if not chunk:
                break
            buf += chunk
            delivery.arrivals.append((time.monotonic(), len(buf)))
    except ConnectionResetError:
        delivery.end = "reset"
    except ssl.SSLEOFError:
        delivery.end = "tls-eof"  # closed without close_notify: how a reset shows through Python's ssl
    delivery.data = bytes(buf)
    if delivery.end not in ("reset", "tls-eof"):
        delivery.end = "complete" if len(buf) >= delivery.announced else "eof"
    return delivery


class StrictEofContext(ssl.SSLContext):
    """Client context whose sockets report a close without close_notify instead of hiding it as EOF."""

    def wrap_socket(self, sock, *args, **kwargs):
        kwargs["suppress_ragged_eofs"] = False
        return super().wrap_socket(sock, *args, **kwargs)

    @classmethod
    def trusting(cls, cafile: str) -> StrictEofContext:
        ctx = cls(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile)
        return ctx


def fetch_http(endpoint: Endpoint, path: str, headers: dict[str, str] | None = None,
               context: Any = None) -> Delivery:
    """GET with http.client, reading the body as it comes."""
    if endpoint.scheme == "https":
        conn = http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=WAIT, context=context)
    else:
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=WAIT)
    started = time.monotonic()
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        assert resp.status in (200, 206), f"GET {path}: {resp.status} {resp.reason}"
        delivery = Delivery(int(resp.headers["Content-Length"]), started=started)
        return _read_stream(lambda: resp.read1(65536), delivery)
    finally:
        conn.close()


def fetch_fota(endpoint: Endpoint, slot: int = 1) -> Delivery:
    """Send the slot byte, read the length word and the image until the server closes."""
    with socket.create_connection((endpoint.host, endpoint.port), timeout=WAIT) as sock:
        started = time.monotonic()
        sock.sendall(bytes([slot]))
        word = b""
        while len(word) < 4:
            part = sock.recv(4 - len(word))
            assert part, f"server closed after {len(word)} bytes of the length word"
            word += part
        delivery = Delivery(struct.unpack("<I", word)[0], started=started)
        return _read_stream(lambda: sock.recv(65536), delivery)


class MqttDevice:
    """The device agent's side of the MQTT OTA protocol (paho instead of umqtt.simple, same messages)."""

    def __init__(self, endpoint: Endpoint, base: str, client_id: str = "device") -> None:
        self.topics = DeviceTopics(base)
        self.gets_sent: Counter[str] = Counter()
        self.inbox: queue.Queue[tuple[float, str, Any]] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        subscribed = queue.Queue()
        self.client.on_subscribe = lambda *args: subscribed.put(True)
        self.client.connect(endpoint.host, endpoint.port, keepalive=30)
        self.client.loop_start()
        self.client.subscribe([(self.topics.control, 0), (self.topics.chunks, 0)])
        subscribed.get(timeout=WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        if msg.topic == self.topics.chunks:
            self.inbox.put((now, "chunk", decode_chunk(msg.payload)))
        else:
            self.inbox.put((now, "control", json.loads(msg.payload)))

    def next(self, timeout: float = WAIT) -> tuple[float, str, Any] | None:
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_control(self, op: str, timeout: float = WAIT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (item := self.next(max(0.0, deadline - time.monotonic()))) is not None:
            if item[1] == "control" and item[2].get("op") == op:
                return item[2]
        raise AssertionError(f"no {op!r} message on {self.topics.control} within {timeout:g}s")

    def publish(self, message: dict[str, Any] | bytes) -> None:
        payload = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.client.publish(self.topics.reports, payload, qos=0).wait_for_publish(WAIT)

    def get(self, transfer_id: str, seq: int, n: int = 1) -> None:
        self.gets_sent[transfer_id] += 1
        self.publish({"op": "get", "id": transfer_id, "seq": seq, "n": n})

    def report(self, transfer_id: str, state: str, **extra: Any) -> None:
        self.publish({"op": "status", "id": transfer_id, "state": state, **extra})

    def download(self, offer: dict[str, Any], window: int = 4, quiet: float = 0.8) -> Delivery:
        """Pull the chunks the offer announces, ``window`` at a time, keeping the bytes as first received.

        A window is done when its chunks are in or on ``end``. After ``quiet`` seconds
        without a message the missing chunks are asked for once more, as the agent
        does; if that stays quiet too, the download ends in ``silence``.
        """
        size, chunk, tid = offer["size"], offer["chunk"], offer["id"]
        count = -(-size // chunk)
        delivery = Delivery(size, started=time.monotonic(), offer=offer)
        chunks: dict[int, bytes] = {}
        received = 0
        seq, retried_at = 0, None
        while seq < count:
            n = min(window, count - seq)
            self.get(tid, seq, n)
            wanted = set(range(seq, seq + n))
            while wanted:
                item = self.next(quiet)
                if item is None:
                    break
                t, kind, body = item
                if kind == "control":
                    assert body == {"op": "end", "id": tid}, f"unexpected control message {body}"
                    delivery.end = "end"
                    break
                chunk_id, k, crc, data = body
                assert chunk_id == tid and k in wanted, f"unexpected chunk {chunk_id}/{k}, wanted {sorted(wanted)}"
                wanted.discard(k)
                if zlib.crc32(data) != crc:
                    delivery.crc_errors.append(k)
                chunks[k] = data
                received += len(data)  # chunks arrive in order: the publisher sends them one by one
                delivery.arrivals.append((t, received))
            if delivery.end == "end":
                break
            if wanted:
                if retried_at == min(wanted):
                    delivery.end = "silence"
                    break
                seq = retried_at = min(wanted)
                continue
            seq += n
        delivery.data = b"".join(chunks[i] for i in sorted(chunks))
        if delivery.end == "complete" and len(delivery.data) < size:
            delivery.end = "eof"
        return delivery


def make_image(size: int, seed: int = 1) -> bytes:
    """Deterministic bytes that look random (every offset distinguishable)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])
