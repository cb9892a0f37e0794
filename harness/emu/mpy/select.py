# select: the interpreter's poll (it polls the board's sockets through their stream
# protocol) and select() on top of it, as the ESP ports have both.
import _unix

_select = _unix["select"]
POLLIN = _select.POLLIN
POLLOUT = _select.POLLOUT
POLLERR = _select.POLLERR
POLLHUP = _select.POLLHUP


class _Poll:
    # The interpreter's poll also takes host file descriptors (ints); the port's takes streams.
    def __init__(self):
        self._p = _select.poll()

    def register(self, obj, eventmask=POLLIN | POLLOUT):
        if isinstance(obj, int):
            raise OSError("stream operation not supported")
        self._p.register(obj, eventmask)

    def unregister(self, obj):
        self._p.unregister(obj)

    def modify(self, obj, eventmask):
        self._p.modify(obj, eventmask)

    def poll(self, timeout=-1):
        return self._p.poll(timeout)

    def ipoll(self, timeout=-1, flags=0):
        return self._p.ipoll(timeout, flags)


def poll():
    return _Poll()


def select(rlist, wlist, xlist, timeout=None):
    p = poll()
    for o in rlist:
        p.register(o, POLLIN)
    for o in wlist:
        p.register(o, POLLOUT | (POLLIN if o in rlist else 0))
    for o in xlist:
        if o not in rlist and o not in wlist:
            p.register(o, 0)
    ready = p.poll(-1 if timeout is None else int(timeout * 1000))
    r, w, x = [], [], []
    for o, ev in ready:
        if ev & POLLIN and o in rlist:
            r.append(o)
        if ev & POLLOUT and o in wlist:
            w.append(o)
        if ev & (POLLERR | POLLHUP) and o in xlist:
            x.append(o)
    return r, w, x
