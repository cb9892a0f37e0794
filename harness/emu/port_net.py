"""Host side of network, socket and ssl for MicroPython on the virtual board.

Sockets are real host sockets, so the device talks to the harness's real HTTP,
MQTT and TCP servers. They sit behind an emulated Wi-Fi station: until it has
joined the access point nothing connects, and when the harness takes Wi-Fi down
(control channel) every open connection breaks, as on a board that loses its AP.
TLS is the host's ``ssl`` with real certificate checks; failures surface as the
OSError codes MicroPython's mbedTLS binding raises.
"""

from __future__ import annotations

import base64
import errno
import select
import socket
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..chips import chip as chip_class

if TYPE_CHECKING:
    from .runtime_mpy import MicroPythonRuntime

# The per-port numbers (network.STAT_* values, getaddrinfo's errno, lwIP's TCP window) are
# the chip's (harness.chips.NetStack).
CONNECT_TIME = 0.15  # seconds from WLAN.connect() to an IP address
MBEDTLS_SSL_FATAL_ALERT = -0x7780


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# OpenSSL's verify codes as mbedtls_x509_crt_verify_info() words the same failure.
_X509_NOT_TRUSTED = "The certificate is not correctly signed by the trusted CA\n"
_X509_VERIFY_INFO = {
    62: "The certificate Common Name (CN) does not match with the expected CN\n",  # host name
    64: "The certificate Common Name (CN) does not match with the expected CN\n",  # IP address
    10: "The certificate validity has expired\n",
    9: "The certificate validity starts in the future\n",
}


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


@dataclass
class _Sock:
    sock: socket.socket
    type: int
    timeout: float | None = None  # None blocks, 0 is non-blocking
    broken: bool = False
    eof: bool = False


class NetHost:
    def __init__(self, rt: "MicroPythonRuntime"):
        self.rt = rt
        self.chip = rt.chip
        self.stack = chip_class(self.chip).net
        self.status_codes = self.stack.wlan_status
        networks = getattr(rt.ctx.cfg, "wifi", ()) or ()
        self.networks = {ssid: key for ssid, key in networks}
        self.link_up = rt.ctx.run.wifi_up  # the emulated AP is there (the control channel can take it away)
        self.active = [False, False]
        self.status = self.status_codes["IDLE"]
        self.ssid: str | None = None
        self._connect_at = 0.0
        self._pending_status = None
        self.socks: dict[int, _Sock] = {}
        self._next = 1
        mac = rt.ctx.cfg.mac
        self.ip = f"192.168.4.{10 + mac[-1] % 200}"

    def reset(self) -> None:
        """Soft reset: sockets close, the station keeps its association (as the ports do)."""
        for s in self.socks.values():
            try:
                s.sock.close()
            except OSError:
                pass
        self.socks.clear()

    def set_link(self, up: bool) -> None:
        """The access point comes and goes (control channel)."""
        self.link_up = up
        if not up:
            if self.status == self.status_codes["GOT_IP"] or self._pending_status is not None:
                self.status = self.status_codes["IDLE"]
                self._pending_status = None
            # Called from the UART thread: mark and shut down (which wakes any waiting select);
            # the interpreter's own calls close the sockets.
            for s in list(self.socks.values()):
                s.broken = True
                try:
                    s.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.rt.ctx.uart.event("wifi", up=up)

    def ops(self) -> dict:
        return {
            "wlan_constants": lambda: self.status_codes,
            "wlan_active": self._active,
            "wlan_connect": self._connect,
            "wlan_disconnect": self._disconnect,
            "wlan_status": self._status,
            "wlan_ifconfig": self._ifconfig,
            "wlan_ssid": lambda i: self.ssid,
            "wlan_scan": self._scan,
            "wlan_hostname": lambda: f"{self.chip}-{self.rt.ctx.cfg.mac[-3:].hex()}",
            "sock_getaddrinfo": self._getaddrinfo,
            "sock_new": self._new,
            "sock_connect": self._connect_sock,
            "sock_bind": self._bind,
            "sock_listen": self._listen,
            "sock_accept": self._accept,
            "sock_settimeout": self._settimeout,
            "sock_send": self._send,
            "sock_sendto": self._sendto,
            "sock_recv": self._recv,
            "sock_recv_into": self._recv_into,
            "sock_recvfrom": self._recvfrom,
            "sock_readline": self._readline,
            # The same as raw bytes, for reads that return a new bytes object.
            "sock_recv_bytes": lambda h, n, stream: _unb64(self._recv(h, n, stream)),
            "sock_readline_bytes": lambda h: _unb64(self._readline(h)),
            "sock_poll": self._poll,
            "sock_close": self._close,
            "ssl_wrap": self._ssl_wrap,
        }

    # -- WLAN ---------------------------------------------------------------------------------------
    def _active(self, iface: int, on):
        if on is None:
            return self.active[iface]
        self.active[iface] = bool(on)
        if not on and iface == 0:
            self._disconnect(0)
        return None

    def _connect(self, iface: int, ssid, key) -> None:
        if not self.active[iface]:
            raise OSError(errno.EPERM, "STA must be active")  # the port says "Wifi Internal State Error"
        self.ssid = ssid
        if not self.link_up or (self.networks and ssid not in self.networks):
            result = "NO_AP_FOUND"
        elif self.networks and self.networks[ssid] != (key or ""):
            result = "WRONG_PASSWORD"
        else:
            result = "GOT_IP"
        self.status = self.status_codes["CONNECTING"]
        self._pending_status = self.status_codes[result]
        self._connect_at = time.monotonic() + CONNECT_TIME

    def _disconnect(self, iface: int) -> None:
        self.status = self.status_codes["IDLE"]
        self._pending_status = None

    def _status(self, iface: int) -> int:
        if self._pending_status is not None and time.monotonic() >= self._connect_at:
            self.status = self._pending_status
            self._pending_status = None
            if self.status == self.status_codes["GOT_IP"]:
                self.rt.ctx.uart.event("wifi", up=True, ip=self.ip, ssid=self.ssid)
        return self.status

    def _connected(self) -> bool:
        return self.link_up and self._status(0) == self.status_codes["GOT_IP"]

    def _ifconfig(self, iface: int) -> list:
        if self._connected():
            return [self.ip, "255.255.255.0", "192.168.4.1", "192.168.4.1"]
        return ["0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0"]

    def _scan(self) -> list:
        if not self.link_up:
            return []
        names = list(self.networks) or ["hil-bench"]
        return [[n, "", 1, -55, 3, False] for n in names]

    # -- sockets -------------------------------------------------------------------------------------
    def _need_link(self) -> None:
        if not self._connected():
            raise OSError(errno.EHOSTUNREACH, "Wi-Fi is not connected")

    def _getaddrinfo(self, host: str, port: int, af: int, stype: int) -> list:
        self._need_link()
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM if stype != 2 else
                                       socket.SOCK_DGRAM)
        except socket.gaierror:
            raise OSError(self.stack.dns_error, "name lookup failed") from None
        out = []
        for _family, socktype, proto, _canon, addr in infos:
            out.append([2, 2 if socktype == socket.SOCK_DGRAM else 1, proto, "", [addr[0], addr[1]]])
        return out[:1]

    def _new(self, af: int, stype: int) -> int:
        if af not in (2,):
            raise OSError(errno.EAFNOSUPPORT, "only AF_INET")
        kind = socket.SOCK_DGRAM if stype == 2 else socket.SOCK_STREAM
        s = socket.socket(socket.AF_INET, kind)
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.stack.tcp_window)
        s.setblocking(False)
        h = self._next
        self._next += 1
        self.socks[h] = _Sock(s, stype)
        return h

    def _get(self, h: int) -> _Sock:
        s = self.socks.get(h)
        if s is None:
            raise OSError(errno.EBADF, "bad socket")
        if s.broken:
            raise OSError(errno.ECONNABORTED, "connection aborted (Wi-Fi lost)")
        return s

    def _wait(self, s: _Sock, readable: bool, what: str) -> bool:
        """Wait until the socket is ready (honouring its timeout); False if non-blocking and not ready."""
        deadline = None if s.timeout is None else time.monotonic() + s.timeout
        while True:
            if s.broken:
                raise OSError(errno.ECONNABORTED, "connection aborted (Wi-Fi lost)")
            if readable and isinstance(s.sock, ssl.SSLSocket) and s.sock.pending():
                return True
            slice_ = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
            try:
                r, w, _ = select.select([s.sock] if readable else [], [] if readable else [s.sock], [], slice_)
            except (OSError, ValueError):
                if s.broken:
                    raise OSError(errno.ECONNABORTED, "connection aborted (Wi-Fi lost)") from None
                raise OSError(errno.EBADF, "socket closed") from None
            if s.broken:
                raise OSError(errno.ECONNABORTED, "connection aborted (Wi-Fi lost)")
            if r or w:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                if s.timeout == 0:
                    return False
                raise OSError(errno.ETIMEDOUT, f"{what} timed out")
            self.rt.check_interrupt()

    def _addr(self, addr: list) -> tuple[str, int]:
        host, port = addr[0], int(addr[1])
        if isinstance(host, (bytes, bytearray)):
            host = host.decode()
        return host, port

    def _connect_sock(self, h: int, addr: list) -> None:
        s = self._get(h)
        self._need_link()
        host, port = self._addr(addr)
        err = s.sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            raise OSError(err, "connect failed")
        if err != 0:
            saved, s.timeout = s.timeout, (20.0 if s.timeout is None else s.timeout)  # lwIP gives up eventually
            try:
                if not self._wait(s, readable=False, what="connect"):
                    raise OSError(errno.EINPROGRESS, "connecting")
            finally:
                s.timeout = saved
            err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, "connect failed")

    def _bind(self, h: int, addr: list) -> None:
        s = self._get(h)
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        host, port = self._addr(addr)
        s.sock.bind(("127.0.0.1" if host in ("0.0.0.0", "") else host, port))

    def _listen(self, h: int, backlog: int) -> None:
        self._get(h).sock.listen(max(1, backlog))

    def _accept(self, h: int) -> list:
        s = self._get(h)
        if not self._wait(s, readable=True, what="accept"):
            raise OSError(errno.EAGAIN, "no connection")
        conn, addr = s.sock.accept()
        conn.setblocking(False)
        nh = self._next
        self._next += 1
        self.socks[nh] = _Sock(conn, 1)
        return [nh, [addr[0], addr[1]]]

    def _settimeout(self, h: int, value) -> None:
        self._get(h).timeout = None if value is None else max(0.0, float(value))

    def _send(self, h: int, data: str, all_: bool) -> int:
        s = self._get(h)
        blob = base64.b64decode(data)
        sent = 0
        while sent < len(blob):
            if not self._wait(s, readable=False, what="send"):
                if sent:
                    return sent
                raise OSError(errno.EAGAIN, "would block")
            try:
                n = s.sock.send(blob[sent:])
            except (ssl.SSLWantWriteError, BlockingIOError):
                continue
            except (ConnectionResetError, BrokenPipeError):
                raise OSError(errno.ECONNRESET, "connection reset") from None
            sent += n
            if not all_:
                break
        return sent

    def _sendto(self, h: int, data: str, addr: list) -> int:
        s = self._get(h)
        self._need_link()
        return s.sock.sendto(base64.b64decode(data), self._addr(addr))

    def _recv_some(self, s: _Sock, n: int) -> bytes | None:
        """Up to n bytes; b"" at end of stream; None if non-blocking and nothing is there."""
        while True:
            if not self._wait(s, readable=True, what="recv"):
                return None
            try:
                data = s.sock.recv(n)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue  # readable at the TCP level, not yet a whole TLS record
            except ConnectionResetError:
                raise OSError(errno.ECONNRESET, "connection reset") from None
            except ssl.SSLError as e:
                raise OSError(MBEDTLS_SSL_FATAL_ALERT, f"TLS error: {e}") from None
            if not data:
                s.eof = True
            return data

    def _recv_into(self, h: int, n: int) -> bytes:
        """Up to n bytes, raw (the interpreter reads them straight into the caller's buffer)."""
        data = self._recv_some(self._get(h), max(1, n))
        if data is None:
            raise OSError(errno.EAGAIN, "no data")
        return data

    def _recv(self, h: int, n: int, stream: bool):
        s = self._get(h)
        if not stream:
            data = self._recv_some(s, max(1, n))
            if data is None:
                raise OSError(errno.EAGAIN, "no data")
            return _b64(data)
        out = bytearray()
        while n < 0 or len(out) < n:
            want = 4096 if n < 0 else n - len(out)
            data = self._recv_some(s, want)
            if data is None:
                if not out:
                    return None
                break
            if not data:
                break
            out += data
        return _b64(bytes(out))

    def _recvfrom(self, h: int, n: int) -> list:
        s = self._get(h)
        if not self._wait(s, readable=True, what="recvfrom"):
            raise OSError(errno.EAGAIN, "no data")
        data, addr = s.sock.recvfrom(n)
        return [_b64(data), [addr[0], addr[1]]]

    def _readline(self, h: int):
        s = self._get(h)
        out = bytearray()
        while True:
            data = self._recv_some(s, 1)
            if data is None:
                return None if not out else _b64(bytes(out))
            if not data:
                break
            out += data
            if data == b"\n":
                break
        return _b64(bytes(out))

    def _poll(self, h: int, flags: int) -> int:
        s = self.socks.get(h)
        if s is None:
            return 32  # POLLNVAL
        if s.broken:
            return 8 | 16  # POLLERR | POLLHUP
        ready = 0
        try:
            if isinstance(s.sock, ssl.SSLSocket) and s.sock.pending():
                ready |= 1
            r, w, _ = select.select([s.sock], [s.sock], [], 0)
        except (OSError, ValueError):
            return 16
        if r:
            ready |= 1
        if w:
            ready |= 4
        result = ready & (flags | 8 | 16)
        if not result:
            time.sleep(0.001)  # the poll loop calls again at once; do not spin the host
        return result

    def _close(self, h: int) -> None:
        s = self.socks.pop(h, None)
        if s is not None:
            try:
                s.sock.close()
            except OSError:
                pass

    def _ssl_wrap(self, h: int, verify_mode: int, cadata, server_hostname, server_side: bool) -> None:
        s = self._get(h)
        if server_side:
            raise OSError(errno.EOPNOTSUPP, "TLS server sockets are not supported on the virtual board")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify_mode == 0:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx.check_hostname = bool(server_hostname)
            ctx.verify_mode = ssl.CERT_REQUIRED
            if cadata is not None:
                blob = base64.b64decode(cadata)
                try:
                    if b"-----BEGIN" in blob:
                        ctx.load_verify_locations(cadata=blob.decode())
                    else:
                        ctx.load_verify_locations(cadata=blob)
                except ssl.SSLError as e:
                    raise OSError(errno.EINVAL, f"bad CA data: {e}") from None
        raw = s.sock
        raw.setblocking(True)
        raw.settimeout(s.timeout if s.timeout else 20.0)
        try:
            wrapped = ctx.wrap_socket(raw, server_hostname=server_hostname or None)
        except ssl.SSLCertVerificationError as e:
            # mbedTLS's port raises ValueError with mbedtls_x509_crt_verify_info()'s text here
            # (extmod/modtls_mbedtls.c), not an OSError.
            raise ValueError(_X509_VERIFY_INFO.get(e.verify_code, _X509_NOT_TRUSTED)) from None
        except (ssl.SSLError, OSError) as e:
            raise OSError(MBEDTLS_SSL_FATAL_ALERT, f"TLS handshake failed: {e}") from None
        wrapped.setblocking(False)
        s.sock = wrapped
