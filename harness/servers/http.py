"""HTTP(S) firmware/file server for OTA scenarios.

It plays every server a device meets in the field, so that one scenario can ask for
each: one that honours ``Range`` (206/416, what ESP-IDF's resumable ``esp_https_ota``
relies on) and one that ignores it (old proxies, some CDNs); plain ``Content-Length``
bodies and ``Transfer-Encoding: chunked``; redirect chains; ``HEAD``; ETag and
Last-Modified; a ``/health`` endpoint whose answer a rollback scenario switches
(up / down / slow) while the new firmware runs its post-update self test; and HTTPS
with a per-run CA (:mod:`harness.servers.tls`).

Response bodies go through :class:`~harness.servers.faults.FaultyStream`, with the plan
set for the path or, failing that, for the server. A malformed request is answered
with the status :mod:`http.server` chooses (400/414/501), logged, and the server keeps
serving. A ``Range`` header gets 206 for one satisfiable range, 416 for one that starts
beyond the end, 400 when it is malformed, and the whole body (200, the record says why)
for another unit or several ranges: :func:`parse_range` has the rules. Each request
leaves one record in ``server.log``: peer, request line, range, status, announced
length, payload bytes sent, outcome and the fault applied.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import mimetypes
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urljoin, urlsplit

from .base import TcpServerBase, abort_socket, peer_name
from .faults import FaultPlan, FaultyStream
from .tls import IssuedCert

HealthState = Literal["up", "down", "slow"]
OCTET_STREAM = "application/octet-stream"


@dataclasses.dataclass
class Blob:
    """What a path serves: bytes held in memory, or a file read at request time."""

    data: bytes | None
    file: Path | None
    content_type: str
    fault: FaultPlan | None
    last_modified: float
    #: ``Transfer-Encoding: chunked`` for this path (None: the server's setting)
    chunked: bool | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.file is not None
        return self.file.read_bytes()


@dataclasses.dataclass(frozen=True)
class Redirect:
    target: str
    status: int


@dataclasses.dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``first..last`` of a ``size``-byte body."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.size}"


class RangeNotSatisfiable(Exception):
    """The Range header asks for bytes the body does not have (-> 416)."""


class MalformedRange(Exception):
    """A Range header that is not valid syntax, or a position no client can mean (-> 400); the message says why."""


class UnusableRange(Exception):
    """A valid Range header the server ignores (-> 200 with the whole body); the message says why."""


#: the most digits a byte position may have: 2**64 - 1 has 20, and no client counts further
MAX_POSITION_DIGITS = 20
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")  # [0-9] is ASCII only: RFC 9110's DIGIT, not "²"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _quoted(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _position(digits: str, spec: str) -> int | None:
    if not digits:
        return None
    if len(digits) > MAX_POSITION_DIGITS:
        raise MalformedRange(f"range {_quoted(spec)} has a position of {len(digits)} digits "
                             f"(at most {MAX_POSITION_DIGITS})")
    return int(digits)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Decode the ``Range`` header of a request for a ``size``-byte body (RFC 9110 section 14).

    * ``None``: there is no header.
    * A :class:`ByteRange` for one satisfiable range: ``bytes=a-b``, ``bytes=a-``, ``bytes=-n``
      (a ``b`` beyond the end is clipped to it) -> 206.
    * :class:`RangeNotSatisfiable` for one well-formed range that selects nothing: it starts at or
      beyond the end, or is the suffix ``-0`` -> 416 with ``Content-Range: bytes */size``.
    * :class:`MalformedRange` when the value is not a ranges-specifier: no ``=``, a unit that is
      not a token, an empty range set, a range without positions, characters other than ASCII
      digits (a superscript two is a digit to ``str.isdigit()``, not to HTTP), a position of
      more than :data:`MAX_POSITION_DIGITS` digits, or one that ends before it starts -> 400
      (RFC 9110 section 14.2 lets a server reject an invalid ranges-specifier; a device that
      sends one has a bug a scenario should see, not a 200 it cannot tell from a server that
      ignores Range).
    * :class:`UnusableRange` for valid headers the server ignores and answers with the whole
      body (200): a unit other than ``bytes``, which RFC 9110 says a server MUST ignore, and
      several ranges (``bytes=0-1,5-6``), which it MAY ignore. Devices ask for one range only
      (the agent resumes with ``bytes=N-``), so the server never builds multipart bodies.
      Each range of such a list is still checked, and a malformed one is a 400.
    """
    if header is None:
        return None
    value = header.strip(" \t")
    unit, equals, range_set = value.partition("=")
    if not equals:
        raise MalformedRange(f"{_quoted(value)} is not unit=ranges")
    if not _TOKEN.fullmatch(unit):
        raise MalformedRange(f"range unit {_quoted(unit)} is not a token")
    # a list may hold empty elements ("0-1, ,"), which a recipient skips (RFC 9110 section 5.6.1.2)
    specs = [item.strip(" \t") for item in range_set.split(",")]
    specs = [spec for spec in specs if spec]
    if not specs:
        raise MalformedRange(f"no range in {_quoted(value)}")
    ranges: list[tuple[int | None, int | None]] = []
    for spec in specs:
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None:
            raise MalformedRange(f"malformed range {_quoted(spec)} (expected first-last, first- or -suffix "
                                 f"in ASCII digits)")
        first, last = _position(match.group(1), spec), _position(match.group(2), spec)
        if first is None and last is None:
            raise MalformedRange(f"malformed range {_quoted(spec)}: no position")
        if first is not None and last is not None and last < first:
            raise MalformedRange(f"range ends before it starts: {_quoted(spec)}")
        ranges.append((first, last))
    if unit.lower() != "bytes":
        raise UnusableRange(f"unit {unit!r} is not 'bytes'")
    if len(ranges) > 1:
        raise UnusableRange("multiple ranges are not supported")
    first, last = ranges[0]
    if first is None:  # a suffix: the last ``last`` bytes
        assert last is not None
        if last == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - last), size - 1, size)
    if first >= size:
        raise RangeNotSatisfiable(header)
    return ByteRange(first, size - 1 if last is None else min(last, size - 1), size)


class _Handler(BaseHTTPRequestHandler):
    """Request parsing from :mod:`http.server`; every decision is made by :class:`HttpServer`."""

    protocol_version = "HTTP/1.1"
    # The stdlib answers an unparsable request line HTTP/0.9-style (a bare body, no status
    # line); no device speaks HTTP/0.9, and a status line is what its logs should show.
    default_request_version = "HTTP/1.1"
    server_version = "esp-ota-hil"
    sys_version = ""
    ota: HttpServer
    tls: bool = False

    def setup(self) -> None:
        super().setup()
        self.abort = False
        self.logged = False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the stdlib's stderr access log: requests go to the structured log."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors :mod:`http.server` raises itself (bad request line, unknown method) get logged too."""
        self.close_connection = True
        super().send_error(code, message, explain)
        if not self.logged:
            self.logged = True
            self.ota.log.add(peer=peer_name(self.client_address), request=getattr(self, "requestline", ""),
                             method=getattr(self, "command", None), status=code, bytes_sent=0,
                             outcome="malformed" if code == 400 else "error", error=message, tls=self.tls,
                             fault=None)

    def handle_one_request(self) -> None:
        self.logged = False
        super().handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.ota.respond(self, head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self.ota.respond(self, head=True)


class HttpServer(TcpServerBase):
    """Threaded HTTP/1.1 server for firmware images and files; HTTPS when given ``tls``.

    ``tls`` is an :class:`~harness.servers.tls.IssuedCert` (e.g. ``material.cert("expired")``)
    or a ready ``ssl.SSLContext``. ``ignore_range`` makes the server answer every GET
    with the whole body (200) and advertise ``Accept-Ranges: none``. ``chunked`` sends
    bodies with ``Transfer-Encoding: chunked`` (``lie_length`` then has no header to
    lie in). ``etag`` adds ETag/Last-Modified and honours If-None-Match / If-Range.
    """

    connection_timeout = 30.0

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: IssuedCert | ssl.SSLContext | None = None,
                 ignore_range: bool = False, chunked: bool = False, chunk_size: int = 16384, etag: bool = False,
                 fault: FaultPlan | None = None, health_path: str = "/health",
                 log_path: str | os.PathLike[str] | None = None, advertise_host: str | None = None,
                 name: str = "http", handshake_timeout: float = 10.0) -> None:
        super().__init__(name, host, port, log_path=log_path, advertise_host=advertise_host)
        if isinstance(tls, IssuedCert):
            tls = tls.server_context()
        self.tls_context: ssl.SSLContext | None = tls
        self.scheme = "https" if tls is not None else "http"
        self.ignore_range = ignore_range
        self.chunked = chunked
        self.chunk_size = chunk_size
        self.etag = etag
        self.fault = fault
        self.health_path = health_path
        self.health: HealthState = "up"
        self.health_delay_s = 5.0
        self.handshake_timeout = handshake_timeout
        self._blobs: dict[str, Blob] = {}
        self._dirs: list[tuple[str, Path, FaultPlan | None]] = []
        self._redirects: dict[str, Redirect] = {}
        self._handler_cls = type("Handler", (_Handler,), {"ota": self, "tls": tls is not None})

    # -- content -----------------------------------------------------------
    @staticmethod
    def _norm(path: str) -> str:
        return path if path.startswith("/") else "/" + path

    def add(self, path: str, data: bytes, content_type: str = OCTET_STREAM, *,
            fault: FaultPlan | None = None, chunked: bool | None = None) -> str:
        """Serve ``data`` at ``path``; returns the URL (once started) or the path.

        ``chunked`` sends this path's body with ``Transfer-Encoding: chunked`` (True) or with a
        Content-Length (False) whatever the server's ``chunked`` says."""
        path = self._norm(path)
        self._blobs[path] = Blob(bytes(data), None, content_type, fault, time.time(), chunked)
        return self.url_for(path) if self.endpoint else path

    def add_json(self, path: str, obj: Any, *, fault: FaultPlan | None = None) -> str:
        return self.add(path, json.dumps(obj).encode(), "application/json", fault=fault)

    def add_file(self, path: str, file: str | os.PathLike[str], content_type: str | None = None, *,
                 fault: FaultPlan | None = None) -> str:
        """Serve a file (read on every request, so rewriting it changes what devices get)."""
        file = Path(file)
        if not file.is_file():
            raise FileNotFoundError(file)
        ctype = content_type or mimetypes.guess_type(file.name)[0] or OCTET_STREAM
        path = self._norm(path)
        self._blobs[path] = Blob(None, file, ctype, fault, file.stat().st_mtime)
        return self.url_for(path) if self.endpoint else path

    def add_directory(self, prefix: str, directory: str | os.PathLike[str], *,
                      fault: FaultPlan | None = None) -> None:
        """Serve every file under ``directory`` at ``prefix`` + its relative path."""
        directory = Path(directory).resolve()
        if not directory.is_dir():
            raise NotADirectoryError(directory)
        prefix = self._norm(prefix)
        if not prefix.endswith("/"):
            prefix += "/"
        self._dirs.append((prefix, directory, fault))

    def remove(self, path: str) -> None:
        self._blobs.pop(self._norm(path), None)
        self._redirects.pop(self._norm(path), None)

    def add_redirect(self, path: str, target: str, status: int = 302) -> str:
        """Answer ``path`` with ``status`` and ``Location: target`` (a path or a full URL)."""
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"{status} is not a redirect status")
        path = self._norm(path)
        self._redirects[path] = Redirect(target, status)
        return self.url_for(path) if self.endpoint else path

    def set_fault(self, plan: FaultPlan | None, path: str | None = None) -> None:
        """Set the server-wide plan, or the plan of one registered path."""
        if path is None:
            self.fault = plan
            return
        blob = self._blobs.get(self._norm(path))
        if blob is None:
            raise KeyError(f"nothing registered at {path}")
        blob.fault = plan

    def body(self, path: str) -> bytes:
        """What ``path`` serves (before any fault plan changes it)."""
        blob = self._lookup(self._norm(path))
        if blob is None:
            raise KeyError(f"nothing registered at {path}")
        return blob.read()

    def set_chunked(self, path: str, chunked: bool | None = True) -> None:
        """Serve one registered path with ``Transfer-Encoding: chunked`` (True), a Content-Length (False) or as the
        server does (None)."""
        blob = self._blobs.get(self._norm(path))
        if blob is None:
            raise KeyError(f"nothing registered at {path}")
        blob.chunked = chunked

    def set_health(self, state: HealthState, delay_s: float | None = None) -> None:
        """``up`` -> 200, ``down`` -> 503, ``slow`` -> 200 after ``delay_s`` seconds."""
        if state not in ("up", "down", "slow"):
            raise ValueError(f"health state must be up, down or slow, not {state!r}")
        self.health = state
        if delay_s is not None:
            self.health_delay_s = delay_s

    def url_for(self, path: str) -> str:
        return self.url + self._norm(path)

    def _lookup(self, path: str) -> Blob | None:
        blob = self._blobs.get(path)
        if blob is not None:
            return blob
        for prefix, directory, fault in self._dirs:
            if path.startswith(prefix):
                candidate = (directory / path[len(prefix):]).resolve()
                if candidate.is_file() and candidate.is_relative_to(directory):
                    ctype = mimetypes.guess_type(candidate.name)[0] or OCTET_STREAM
                    return Blob(None, candidate, ctype, fault, candidate.stat().st_mtime)
        return None

    # -- connections -------------------------------------------------------
    def handle_connection(self, conn: socket.socket, addr: Any) -> None:
        sock: socket.socket = conn
        if self.tls_context is not None:
            conn.settimeout(self.handshake_timeout)
            try:
                sock = self.tls_context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.log.add(peer=peer_name(addr), event="tls-error", status=None, bytes_sent=0, tls=True,
                             error=f"{type(exc).__name__}: {exc}", fault=None)
                return
            sock.settimeout(self.connection_timeout)
            self.track(sock)
        try:
            handler = self._handler_cls(sock, addr, None)
            if handler.abort:
                abort_socket(sock)
            elif isinstance(sock, ssl.SSLSocket):
                _send_close_notify(sock)
        finally:
            if sock is not conn:
                self.untrack(sock)
                try:
                    sock.close()
                except OSError:
                    pass

    # -- one request -------------------------------------------------------
    def respond(self, h: _Handler, head: bool) -> None:
        """Answer one parsed GET/HEAD request and log it."""
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        rec: dict[str, Any] = {"peer": peer_name(h.client_address), "request": h.requestline, "method": h.command,
                               "path": path, "range": h.headers.get("Range"), "tls": h.tls, "fault": None}

        def finish(status: int, sent: int = 0, outcome: str = "complete", **extra: Any) -> None:
            h.logged = True
            self.log.add(**rec, status=status, bytes_sent=sent, outcome=outcome, **extra)

        if path == self.health_path:
            self._serve_health(h, head, finish)
            return
        redirect = self._redirects.get(path)
        if redirect is not None:
            target = redirect.target
            location = target if "://" in target else urljoin(self.url + path, target)
            h.send_response(redirect.status)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
            finish(redirect.status, location=location)
            return
        blob = self._lookup(path)
        if blob is None:
            self._send_simple(h, 404, b"not found\n", head)
            finish(404, outcome="not-found")
            return
        try:
            data = blob.read()
        except OSError as exc:
            self._send_simple(h, 500, b"cannot read file\n", head)
            finish(500, outcome="error", error=f"{type(exc).__name__}: {exc}")
            return
        etag = f'"{hashlib.sha256(data).hexdigest()[:20]}"' if self.etag else None
        if etag is not None and _etag_matches(h.headers.get("If-None-Match"), etag):
            h.send_response(304)
            h.send_header("ETag", etag)
            h.end_headers()
            finish(304)
            return
        try:
            byte_range = self._pick_range(h, len(data), etag, rec)
        except RangeNotSatisfiable:
            h.send_response(416)
            h.send_header("Content-Range", f"bytes */{len(data)}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            finish(416, outcome="unsatisfiable")
            return
        except MalformedRange as exc:
            self._send_simple(h, 400, f"bad Range header: {exc}\n".encode(), head)
            finish(400, outcome="malformed", range_error=str(exc))
            return
        self._send_blob(h, head, blob, data, byte_range, etag, rec, finish)

    def _pick_range(self, h: _Handler, size: int, etag: str | None, rec: dict[str, Any]) -> ByteRange | None:
        """The range to serve, or None for the whole body (noting in ``rec`` why a Range was ignored)."""
        header = h.headers.get("Range")
        if header is None:
            return None
        if self.ignore_range:
            rec["range_ignored"] = "server ignores Range"
            return None
        if etag is not None and h.headers.get("If-Range") not in (None, etag):
            rec["range_ignored"] = "If-Range does not match"  # the client holds part of another version
            return None
        try:
            return parse_range(header, size)
        except UnusableRange as exc:
            rec["range_ignored"] = str(exc)
            return None

    def _send_blob(self, h: _Handler, head: bool, blob: Blob, data: bytes, byte_range: ByteRange | None,
                   etag: str | None, rec: dict[str, Any], finish: Callable[..., None]) -> None:
        plan = blob.fault if blob.fault is not None else self.fault
        first, last = (byte_range.first, byte_range.last) if byte_range else (0, len(data) - 1)
        real_length = last - first + 1
        if head:  # a HEAD is no transfer: it must not use up one of the plan's apply_times
            stream = None
            lie = plan is not None and plan.lie_length is not None and plan.would_apply()
            announced = plan.lie_length if lie and plan is not None else real_length
        else:
            stream = FaultyStream(plan, cancel=self.stopping)
            announced = stream.announced_length(real_length)
            rec["fault"] = stream.fault
        status = 206 if byte_range else 200
        chunked = self.chunked if blob.chunked is None else blob.chunked
        h.send_response(status)
        h.send_header("Content-Type", blob.content_type)
        if chunked and not head:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(announced))
        h.send_header("Accept-Ranges", "none" if self.ignore_range else "bytes")
        if byte_range:
            h.send_header("Content-Range", byte_range.content_range)
        if etag is not None:
            h.send_header("ETag", etag)
            h.send_header("Last-Modified", email.utils.formatdate(blob.last_modified, usegmt=True))
        if stream is not None and stream.active:
            # A faulty body may not match its framing: the connection cannot carry another request.
            h.send_header("Connection", "close")
        h.end_headers()
        if stream is None:
            finish(status, 0, length=announced)
            return
        body = stream.prepare_image(data)[first:last + 1]

        def send(chunk: bytes) -> None:
            h.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)

        result = stream.pump(body, send, offset=first, chunk_size=self.chunk_size)
        if result.outcome == "complete" and chunked:
            try:
                h.wfile.write(b"0\r\n\r\n")
            except OSError:
                result = dataclasses.replace(result, outcome="send-failed", error="could not send the final chunk")
        if result.outcome != "complete":
            h.close_connection = True
        h.abort = result.outcome == "dropped"
        finish(status, result.bytes_sent, result.outcome, length=announced, error=result.error,
               transfer=stream.transfer if stream.plan is not None else None)

    def _serve_health(self, h: _Handler, head: bool, finish: Callable[..., None]) -> None:
        state = self.health
        if state == "slow":
            self.stopping.wait(self.health_delay_s)
        status = 503 if state == "down" else 200
        body = json.dumps({"status": "down" if state == "down" else "up"}).encode()
        self._send_simple(h, status, body, head, "application/json")
        finish(status, 0 if head else len(body), health=state)

    @staticmethod
    def _send_simple(h: _Handler, status: int, body: bytes, head: bool, ctype: str = "text/plain") -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    # -- convenience -------------------------------------------------------
    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Logged requests (optionally for one path), oldest first."""
        return [r for r in self.log.records if "request" in r and (path is None or r.get("path") == path)]

    def wait_requests(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """At least ``count`` logged requests (optionally for one path), waiting for them if need be."""
        return self.log.wait(lambda r: "request" in r and (path is None or r.get("path") == path), count, timeout)


def _send_close_notify(sock: ssl.SSLSocket) -> None:
    """End TLS with close_notify, without waiting for the peer's: a clean end, which a drop is not."""
    try:
        sock.setblocking(False)
        sock.unwrap()
    except (ssl.SSLError, OSError):  # SSLWantReadError: ours is sent, the peer's is not awaited
        pass


def _etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match comparison (RFC 9110 13.1.2: weak comparison, ``*`` matches anything)."""
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


__all__ = ["Blob", "ByteRange", "HealthState", "HttpServer", "MalformedRange", "RangeNotSatisfiable", "Redirect",
           "UnusableRange", "parse_range"]
