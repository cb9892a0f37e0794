"""What every OTA server shares: where it listens, its structured log, a threaded TCP loop.

Servers run inside the pytest process so a scenario can change their behaviour
between steps (switch the health answer, swap a fault plan) and read what a device
asked for afterwards. Each accepted connection gets its own daemon thread; ``stop()``
closes the listener *and* every open connection, so a stalled transfer never keeps a
test (or the process) alive.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """Where a started server can be reached: give ``url`` (or host/port) to the device."""

    host: str
    port: int
    scheme: str

    @property
    def url(self) -> str:
        host = self.host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return f"{self.scheme}://{host}:{self.port}"


class ServerLog:
    """Thread-safe list of dict records, mirrored as JSON lines to ``path`` when given.

    Every record gets ``t`` (epoch seconds) and ``server`` (the server's name); the
    rest is whatever the server found worth saying (peer, request, status, bytes...).
    The file is what a report attaches; the list is what a test asserts on.
    """

    def __init__(self, name: str, path: str | os.PathLike[str] | None = None) -> None:
        self.name = name
        self.path = Path(path) if path is not None else None
        self._changed = threading.Condition()
        self._records: list[dict[str, Any]] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, **fields: Any) -> dict[str, Any]:
        record = {"t": round(time.time(), 6), "server": self.name, **fields}
        with self._changed:
            self._records.append(record)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, default=str) + "\n")
            self._changed.notify_all()
        return record

    @property
    def records(self) -> list[dict[str, Any]]:
        with self._changed:
            return [dict(r) for r in self._records]

    def find(self, **match: Any) -> list[dict[str, Any]]:
        """Records whose fields equal every ``match`` item."""
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]

    def wait(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1,
             timeout: float = 10.0) -> list[dict[str, Any]]:
        """The records satisfying ``predicate`` once there are at least ``count`` of them.

        Servers log a request after answering it, so a client that has its answer may
        still have to wait a moment for the record.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [dict(r) for r in self._records if predicate(r)]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    break
                self._changed.wait(remaining)
        if len(found) < count:
            raise TimeoutError(f"{self.name}: {len(found)} of {count} expected log records after {timeout:g}s")
        return found

    def wait_for(self, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first record whose fields equal every ``match`` item, waiting for it if need be."""
        return self.wait(lambda r: all(r.get(k) == v for k, v in match.items()), 1, timeout)[0]

    def clear(self) -> None:
        with self._changed:
            self._records.clear()

    def __len__(self) -> int:
        with self._changed:
            return len(self._records)


def peer_name(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in str(host) else f"{host}:{addr[1]}"
    return str(addr)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for servers we cannot hand a bound socket, e.g. mosquitto)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


SIOCOUTQNSD = 0x894B
"""Linux ioctl: bytes in a TCP socket's send queue that have not been sent yet."""


def _unsent_bytes(sock: socket.socket) -> int:
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0"))[0]
    except OSError:  # not Linux, or the socket is gone: nothing to wait for
        return 0


def abort_socket(sock: socket.socket, drain_s: float = 2.0) -> None:
    """Close with RST instead of FIN: what a crashed server or a cut cable looks like to the device.

    A reset discards whatever the kernel has not sent yet, so this first waits (at most
    ``drain_s``) until the bytes already written have left: the peer then receives
    exactly what the server sent before the connection broke.
    """
    deadline = time.monotonic() + drain_s
    while _unsent_bytes(sock) > 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class TcpServerBase:
    """A listening socket, an accept thread and one daemon thread per connection.

    Subclasses implement :meth:`handle_connection`; it owns the socket until it
    returns (the base closes it afterwards unless it is already closed).
    ``advertise_host`` is the address put into :class:`Endpoint` when the server binds a
    wildcard address (a bench board must be told the host's LAN IP, not 0.0.0.0).
    """

    scheme = "tcp"
    connection_timeout: float | None = 30.0
    # A small kernel send buffer keeps "bytes sent" close to "bytes the device has read":
    # with Linux's autotuned buffers a server is hundreds of KB ahead of a slow device, and a
    # fault placed at byte N would strike long before the device got anywhere near N.
    send_buffer: int | None = 16 * 1024

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0, *,
                 log_path: str | os.PathLike[str] | None = None, advertise_host: str | None = None) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.advertise_host = advertise_host
        self.log = ServerLog(name, log_path)
        self.stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.endpoint: Endpoint | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> Endpoint:
        if self._listener is not None:
            raise RuntimeError(f"{self.name} is already running at {self.endpoint}")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"{self.name}: cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        self._listener = sock
        self.stopping.clear()
        bound_port = sock.getsockname()[1]
        host = self.advertise_host or self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        self.endpoint = Endpoint(host, bound_port, self.scheme)
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
        self._accept_thread.start()
        self.log.add(event="start", url=self.endpoint.url)
        return self.endpoint

    def stop(self) -> None:
        if self._listener is None:
            return
        self.stopping.set()
        try:
            # On Linux close() alone does not wake a thread blocked in accept(); shutdown() does.
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        self._listener = None
        self.log.add(event="stop")

    def __enter__(self) -> TcpServerBase:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._listener is not None

    @property
    def url(self) -> str:
        if self.endpoint is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.endpoint.url

    # -- connections -------------------------------------------------------
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self.stopping.is_set():
            try:
                conn, addr = listener.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                time.sleep(0.01)  # e.g. EMFILE: do not spin, keep serving
                continue
            if self.stopping.is_set():  # accepted while stop() ran: it would miss this one
                conn.close()
                return
            if self.connection_timeout is not None:
                conn.settimeout(self.connection_timeout)
            if self.send_buffer is not None:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            # Every write leaves at once: fault points (stall, on_bytes, drop) land at the byte.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._conns_lock:
                self._conns.add(conn)
            threading.Thread(target=self._run_connection, args=(conn, addr), name=f"{self.name}-conn",
                             daemon=True).start()

    def _run_connection(self, conn: socket.socket, addr: Any) -> None:
        try:
            self.handle_connection(conn, addr)
        except Exception as exc:  # one bad connection must never stop the server
            self.log.add(peer=peer_name(addr), event="error", error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def track(self, conn: socket.socket) -> None:
        """Register a socket that replaces the accepted one (e.g. its TLS wrapper) for ``stop()``."""
        with self._conns_lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def handle_connection(self, conn: socket.socket, addr: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


__all__ = ["Endpoint", "ServerLog", "TcpServerBase", "abort_socket", "free_port", "peer_name"]
