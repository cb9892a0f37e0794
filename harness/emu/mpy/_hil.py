# Host-call glue of the virtual board's MicroPython port layer (runs inside MicroPython).
#
# Every port module reaches the board (flash, UART, sockets, Wi-Fi, clocks) through
# call(): one synchronous call into the host with JSON arguments. Bytes travel as
# base64 text (call() encodes bytes-like arguments itself). The reply's first character
# says how it went: "0" value, "1" OSError (the port's errno number), "2" KeyboardInterrupt
# (Ctrl-C arrived while waiting), "3" ValueError, "4" RuntimeError, "5" MemoryError,
# "6" TypeError, "7" SystemExit.
#
# The live heap rides along with every call, measured before the call builds anything:
# what the application holds, not the port layer's own encoding work (a chip's native
# flash and socket calls allocate nothing).
import gc
import json
from binascii import a2b_base64, b2a_base64

import host

_rawio = host.rawio

_mem_alloc = gc.mem_alloc
_collect = gc.collect
_base = 0
_public = {}
plan = {}


def set_heap_base(base, heap_plan):
    # From now on heap figures are the device's: what the port layer holds is left out.
    global _base, plan
    _base = base
    plan = heap_plan


def set_public(modules):
    _public.update(modules)


errorcode = {}


def set_errno(module):
    errorcode.update(module.errorcode)


def public(name):
    return _public[name]


def heap_used():
    # Live data only: the interpreter's heap is larger than a chip's, so without a
    # collection garbage would count as use.
    _collect()
    return _mem_alloc() - _base


def _encode(args):
    return [b2a_base64(a, newline=False).decode() if isinstance(a, (bytes, bytearray, memoryview)) else a
            for a in args]


def call_into(op, buf, *args):
    """A call whose answer is bytes, read straight into ``buf``; returns how many."""
    used = heap_used()
    r = host.call_into(op, str(used) + " " + json.dumps(_encode(args)), buf)
    if isinstance(r, int):
        return r
    _raise(r)


def write(op, buf, a=0, b=0, c=0, d=0, e=0):
    # Flash writes go as binary frames and allocate nothing on the way: littlefs writes from a
    # file's finaliser, which runs with the heap locked (runtime_mpy RAW frames name the ops).
    _rawio.raw(op, a, b, c, d, e, buf)


def read(buf, addr, n):
    # A flash read straight into buf, allocating nothing (see write()).
    return _rawio.raw(5, addr, n, 0, 0, 0, buf)


def call_bytes(op, *args):
    """A call whose answer is new bytes: allocated once, at their size, as a native read would."""
    used = heap_used()
    r = host.call_bytes(op, str(used) + " " + json.dumps(_encode(args)))
    if isinstance(r, bytes):
        return r
    if r[0] == "0":
        return json.loads(r[1:]) if len(r) > 1 else None
    _raise(r)


def call(op, *args):
    used = heap_used()
    r = host.call(op, str(used) + " " + json.dumps(_encode(args)))
    if r[0] == "0":
        return json.loads(r[1:]) if len(r) > 1 else None
    _raise(r)


def _raise(r):
    k = r[0]
    v = r[1:]
    if k == "1":
        try:
            code = int(v)
        except ValueError:
            raise OSError(v) from None
        raise OSError(code)
    if k == "2":
        raise KeyboardInterrupt
    if k == "3":
        raise ValueError(v)
    if k == "5":
        raise MemoryError(v)
    if k == "6":
        raise TypeError(v)
    if k == "7":
        raise SystemExit
    raise RuntimeError(v)


class AttrTuple(tuple):
    # A tuple whose fields also read as attributes, as the ports' sys.implementation and
    # os.uname() are; subclasses name the fields.
    _fields = ()

    def __getattr__(self, name):
        i = self._fields.index(name) if name in self._fields else len(self)
        if i < len(self):
            return self[i]
        raise AttributeError(name)

    def __repr__(self):
        return "(" + ", ".join("%s=%r" % (f, v) for f, v in zip(self._fields, self)) + ")"

    __str__ = __repr__


def b64(data):
    return b2a_base64(data, newline=False).decode()


def unb64(text):
    return a2b_base64(text)
