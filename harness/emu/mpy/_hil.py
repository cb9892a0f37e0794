# Host-call glue of the virtual board's MicroPython port layer (runs inside MicroPython).
#
# Every port module reaches the board (flash, UART, sockets, Wi-Fi, clocks) through
# call(): one synchronous call into the host with JSON arguments. Bytes travel as
# base64 text. The reply's first character says how it went: "0" value, "1" OSError
# (errno name or number), "2" KeyboardInterrupt (Ctrl-C arrived while waiting),
# "3" ValueError, "4" RuntimeError, "5" MemoryError, "6" TypeError, "7" SystemExit.
import errno as _errno
import gc
import json
from binascii import a2b_base64, b2a_base64

import host

_mem_alloc = gc.mem_alloc
_collect = gc.collect
# Live heap after the last collection. The interpreter's heap is larger than a chip's, so
# garbage would pile up unseen; collecting once it grows by GC_STEP keeps each figure
# within GC_STEP of the live data, which is what runs out on a real board.
GC_STEP = 4096
_floor = [0]


def heap_used():
    used = _mem_alloc()
    if used > _floor[0] + GC_STEP:
        _collect()
        used = _mem_alloc()
        _floor[0] = used
    return used


def call(op, *args):
    # The heap in use rides along with every call so the host can keep the peak.
    r = host.call(op, str(heap_used()) + " " + json.dumps(args))
    k = r[0]
    if k == "0":
        return json.loads(r[1:]) if len(r) > 1 else None
    v = r[1:]
    if k == "1":
        code = getattr(_errno, v, None)
        if code is None:
            try:
                code = int(v)
            except ValueError:
                code = v
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


def b64(data):
    return b2a_base64(data, newline=False).decode()


def unb64(text):
    return a2b_base64(text)

