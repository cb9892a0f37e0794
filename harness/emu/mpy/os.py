# os for the virtual board: the interpreter's VFS functions (put in by _boot from its own os)
# plus what the ESP ports add.
import _hil

_u = _hil.call("os_uname")


class _Uname(_hil.AttrTuple):
    _fields = ("sysname", "nodename", "release", "version", "machine")


def uname():
    return _Uname(_u)


def urandom(n):
    return _hil.unb64(_hil.call("os_urandom", n))


def dupterm(stream_object=None, index=0):
    return None


def dupterm_notify(obj_in):
    return None


def sync():
    pass
