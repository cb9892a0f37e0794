# A small HTTP/1.1 client for OTA downloads: redirects, chunked bodies, TLS with a pinned
# CA, and resume by Range after a dropped connection.
import socket

from otautil import Refused, config, log

MAX_REDIRECTS = 5
RETRIES = 3
TIMEOUT_S = 10


def cut(text, sep):
    # str.partition without its middle: the ESP8266 build has no str.partition.
    i = text.find(sep)
    return (text, text[:0]) if i < 0 else (text[:i], text[i + len(sep):])


def split_url(url):
    scheme, rest = cut(url, "://")
    if scheme not in ("http", "https") or not rest:
        raise Refused("bad-url", url)
    hostport, path = cut(rest, "/")
    host, port = cut(hostport, ":")
    port = int(port) if port else (443 if scheme == "https" else 80)
    return scheme, host, port, "/" + path


def join_url(base, location):
    if "://" in location:
        return location
    scheme, host, port, path = split_url(base)
    if not location.startswith("/"):
        location = path.rsplit("/", 1)[0] + "/" + location
    return "%s://%s:%d%s" % (scheme, host, port, location)


def _ca():
    path = config().get("ca")
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def tls_context():
    # A client context that verifies the server against the configured CA, or a refusal.
    # Stock ssl.SSLContext(PROTOCOL_TLS_CLIENT) starts with CERT_NONE, so CERT_REQUIRED is set
    # here. The ESP8266's TLS (axtls) cannot verify a certificate at all (its ssl has no
    # CERT_REQUIRED and no working load_verify_locations): https is refused there rather
    # than run unverified.
    import ssl

    if not hasattr(ssl, "CERT_REQUIRED"):
        raise Refused("tls-unverifiable", "this port's TLS cannot verify a server certificate")
    ca = _ca()
    if ca is None:
        raise Refused("no-ca", "https needs a CA file in the config")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca)
    return ctx


class Response:
    def __init__(self, sock, status, headers):
        self.sock = sock
        self.status = status
        self.headers = headers
        self.chunked = "chunked" in headers.get("transfer-encoding", "")
        n = headers.get("content-length")
        self.length = int(n) if n is not None else None
        self._left = self.length  # body bytes still to come (None: until EOF or last chunk)
        self._chunk_left = 0
        self._done = False

    def _line(self):
        line = self.sock.readline()
        if not line:
            raise OSError(104, "connection closed")
        return line

    def readinto(self, buf):
        # Fills buf with body bytes; returns 0 at the end of the body.
        if self._done:
            return 0
        want = len(buf)
        if self.chunked:
            if self._chunk_left == 0:
                size = int(self._line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line() not in (b"\r\n", b"\n"):
                        pass
                    self._done = True
                    return 0
                self._chunk_left = size
            want = min(want, self._chunk_left)
        elif self._left is not None:
            if self._left == 0:
                self._done = True
                return 0
            want = min(want, self._left)
        mv = memoryview(buf)
        n = self.sock.readinto(mv[:want])
        if not n:
            if self._left is None and not self.chunked:
                self._done = True
                return 0
            raise OSError(104, "connection closed in the body")
        if self.chunked:
            self._chunk_left -= n
            if self._chunk_left == 0:
                self._line()  # the CRLF after each chunk
        elif self._left is not None:
            self._left -= n
        return n

    def read_all(self, limit=8192):
        out = bytearray()
        buf = bytearray(512)
        while True:
            n = self.readinto(buf)
            if not n:
                return bytes(out)
            out += buf[:n]
            if len(out) > limit:
                raise Refused("too-large", "body over %d bytes" % limit)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def get(url, start=0, redirects=MAX_REDIRECTS):
    # GET url (from byte ``start``), following redirects; returns a Response.
    for _ in range(redirects + 1):
        scheme, host, port, path = split_url(url)
        ctx = tls_context() if scheme == "https" else None
        ai = socket.getaddrinfo(host, port)[0][-1]
        s = socket.socket()
        try:
            s.settimeout(TIMEOUT_S)
            s.connect(ai)
            if ctx is not None:
                try:
                    s = ctx.wrap_socket(s, server_hostname=host)
                except (OSError, ValueError) as e:
                    # The ESP32 port raises ValueError with mbedTLS's verify text when the certificate
                    # does not verify, OSError (an mbedTLS code) when the handshake fails otherwise.
                    detail = e.args[0] if e.args else e
                    if isinstance(detail, str):
                        detail = detail.strip()
                    raise Refused("tls", "handshake with %s failed: %s" % (host, detail))
            req = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: esp-ota-hil-agent\r\nConnection: close\r\n" % (path, host)
            if start:
                req += "Range: bytes=%d-\r\n" % start
            s.write(req.encode() + b"\r\n")
            status_line = s.readline()
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise OSError(5, "bad status line")
            status = int(parts[1])
            headers = {}
            while True:
                line = s.readline()
                if not line or line in (b"\r\n", b"\n"):
                    break
                k, v = cut(line.decode(), ":")
                headers[k.strip().lower()] = v.strip()
        except BaseException:
            s.close()
            raise
        if status in (301, 302, 303, 307, 308) and "location" in headers:
            s.close()
            url = join_url(url, headers["location"])
            log("redirect", to=url)
            continue
        return Response(s, status, headers)
    raise Refused("redirect-loop", url)


def fetch_json(url):
    import json

    r = get(url)
    try:
        if r.status != 200:
            raise Refused("http-%d" % r.status, url)
        body = r.read_all()
    finally:
        r.close()
    try:
        return json.loads(body)
    except ValueError:
        raise Refused("bad-manifest", "not JSON")


def download(url, sink, size, buf):
    # Stream ``size`` bytes from url into sink; after a dropped connection resume with a
    # Range request (or start over if the server ignores it).
    done = 0
    tries = 0
    while True:
        try:
            r = get(url, done)
        except OSError as e:
            tries += 1
            if tries > RETRIES:
                raise Refused("connection", "connect: %s" % e)
            continue
        try:
            if done and r.status == 200:
                log("resume", offset=done, honoured=False)
                sink.restart()
                done = 0
            elif done and r.status == 206:
                log("resume", offset=done, honoured=True)
            elif r.status != 200:
                raise Refused("http-%d" % r.status, url)
            total = done + (r.length if r.length is not None else size - done)
            if total != size:
                raise Refused("size-mismatch", "server says %d, expected %d" % (total, size))
            while True:
                n = r.readinto(buf)
                if not n:
                    break
                if done + n > size:
                    raise Refused("size-mismatch", "more than %d bytes" % size)
                sink.write(memoryview(buf)[:n])
                done += n
            if done == size:
                return
            raise OSError(104, "body ended at %d of %d" % (done, size))
        except OSError as e:
            tries += 1
            log("interrupted", offset=done, error=e.args[0] if e.args else "")
            if tries > RETRIES:
                raise Refused("truncated", "%d of %d bytes" % (done, size))
        finally:
            r.close()
