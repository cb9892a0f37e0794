# socket for the virtual board: real TCP/UDP sockets on the host, reached over the
# emulated Wi-Fi link (down link: connections fail or are reset, as on a board). The
# constants come from the release's API table (the ESP8266's lwIP values differ from the
# ESP32's); on the ESP8266 this is the lwip module, which `import socket` also gives.
import io

import _hil

_adopt = None  # the host handle accept() hands to the socket it creates


def _h(s):
    h = getattr(s, "_h", None)
    if h is None:
        raise OSError(9)  # EBADF
    return h


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    return [(f, t, p, c, tuple(a)) for f, t, p, c, a in _hil.call("sock_getaddrinfo", host, port, af, type)]


class socket(io.IOBase):
    def __init__(self, af=2, type=1, proto=0):
        global _adopt
        h, _adopt = _adopt, None
        self._h = _hil.call("sock_new", af, type) if h is None else h

    def connect(self, address):
        _hil.call("sock_connect", _h(self), list(address))

    def bind(self, address):
        _hil.call("sock_bind", _h(self), list(address))

    def listen(self, backlog=1):
        _hil.call("sock_listen", _h(self), backlog)

    def accept(self):
        global _adopt
        h, addr = _hil.call("sock_accept", _h(self))
        _adopt = h
        return socket(), tuple(addr)

    def settimeout(self, value):
        _hil.call("sock_settimeout", _h(self), value)

    def setblocking(self, flag):
        _hil.call("sock_settimeout", _h(self), None if flag else 0)

    def setsockopt(self, level, optname, value):
        _h(self)

    def send(self, bytes):
        return _hil.call("sock_send", _h(self), bytes, False)

    def sendall(self, bytes):
        _hil.call("sock_send", _h(self), bytes, True)

    def write(self, buf, n=None):
        if n is not None:
            buf = memoryview(buf)[:n]
        return _hil.call("sock_send", _h(self), buf, True)

    def sendto(self, bytes, address):
        return _hil.call("sock_sendto", _h(self), bytes, list(address))

    def recv(self, bufsize):
        return _hil.call_bytes("sock_recv_bytes", _h(self), bufsize, False)

    def recvfrom(self, bufsize):
        d, addr = _hil.call("sock_recvfrom", _h(self), bufsize)
        return _hil.unb64(d), tuple(addr)

    def read(self, size=-1):
        # Stream read: waits for size bytes (or EOF); -1 reads to EOF. None if non-blocking and empty.
        return _hil.call_bytes("sock_recv_bytes", _h(self), size, True)

    def readinto(self, buf, nbytes=None):
        nbytes = len(buf) if nbytes is None else min(nbytes, len(buf))
        try:
            return _hil.call_into("sock_recv_into", buf, _h(self), nbytes)
        except OSError as e:
            if e.args and e.args[0] == 11:  # EAGAIN: non-blocking and nothing there
                return None
            raise

    def readline(self):
        return _hil.call_bytes("sock_readline_bytes", _h(self))

    def makefile(self, mode="rb", buffering=0):
        return self

    def fileno(self):
        return _h(self)

    def ioctl(self, request, arg):
        # The stream protocol (a native socket has it in C): poll and close.
        if request == 3:  # MP_STREAM_POLL: which of the requested events are ready
            return _hil.call("sock_poll", _h(self), arg)
        if request == 4:  # MP_STREAM_CLOSE
            self.close()
            return 0
        return 0

    def close(self):
        h = getattr(self, "_h", None)
        if h is not None:
            _hil.call("sock_close", h)
            self._h = None

    __del__ = close
