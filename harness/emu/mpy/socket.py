# socket for the virtual board: real TCP/UDP sockets on the host, reached over the
# emulated Wi-Fi link (down link: connections fail or are reset, as on a board).
import io

import _hil

AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
IPPROTO_IP = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
SOL_SOCKET = 0xFFF
SO_REUSEADDR = 4
SO_KEEPALIVE = 8
TCP_NODELAY = 1


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    return [(f, t, p, c, tuple(a)) for f, t, p, c, a in _hil.call("sock_getaddrinfo", host, port, af, type)]


class socket(io.IOBase):
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0, _h=None):
        self._h = _hil.call("sock_new", af, type) if _h is None else _h

    def _ch(self):
        if self._h is None:
            raise OSError(9)  # EBADF
        return self._h

    def connect(self, addr):
        _hil.call("sock_connect", self._ch(), list(addr))

    def bind(self, addr):
        _hil.call("sock_bind", self._ch(), list(addr))

    def listen(self, backlog=1):
        _hil.call("sock_listen", self._ch(), backlog)

    def accept(self):
        h, addr = _hil.call("sock_accept", self._ch())
        return socket(_h=h), tuple(addr)

    def settimeout(self, value):
        _hil.call("sock_settimeout", self._ch(), value)

    def setblocking(self, flag):
        _hil.call("sock_settimeout", self._ch(), None if flag else 0)

    def setsockopt(self, level, opt, value):
        pass

    def send(self, data):
        return _hil.call("sock_send", self._ch(), data, False)

    def sendall(self, data):
        _hil.call("sock_send", self._ch(), data, True)

    def write(self, data, n=None):
        if n is not None:
            data = memoryview(data)[:n]
        return _hil.call("sock_send", self._ch(), data, True)

    def sendto(self, data, addr):
        return _hil.call("sock_sendto", self._ch(), data, list(addr))

    def recv(self, n):
        r = _hil.call("sock_recv", self._ch(), n, False)
        return None if r is None else _hil.unb64(r)

    def recvfrom(self, n):
        d, addr = _hil.call("sock_recvfrom", self._ch(), n)
        return _hil.unb64(d), tuple(addr)

    def read(self, n=-1):
        # Stream read: waits for n bytes (or EOF); -1 reads to EOF. None if non-blocking and empty.
        r = _hil.call("sock_recv", self._ch(), n, True)
        return None if r is None else _hil.unb64(r)

    def readinto(self, buf, n=None):
        n = len(buf) if n is None else min(n, len(buf))
        try:
            return _hil.call_into("sock_recv_into", buf, self._ch(), n)
        except OSError as e:
            if e.args and e.args[0] == 11:  # EAGAIN: non-blocking and nothing there
                return None
            raise

    def readline(self):
        r = _hil.call("sock_readline", self._ch())
        return None if r is None else _hil.unb64(r)

    def makefile(self, mode="rb", buffering=0):
        return self

    def fileno(self):
        return -1

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL: which of the requested events are ready
            return _hil.call("sock_poll", self._ch(), arg)
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
            return 0
        return 0

    def close(self):
        if self._h is not None:
            _hil.call("sock_close", self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
