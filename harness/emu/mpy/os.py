# os for the virtual board: the interpreter's VFS functions (put in by _boot from its own os)
# plus what the ESP ports add.
import _hil

_u = _hil.call("os_uname")


class _Uname(tuple):
    # os.uname(): an attribute tuple on the port; the same fields here.
    sysname = property(lambda s: s[0])
    nodename = property(lambda s: s[1])
    release = property(lambda s: s[2])
    version = property(lambda s: s[3])
    machine = property(lambda s: s[4])

    def __repr__(self):
        fields = ("sysname", "nodename", "release", "version", "machine")
        return "(" + ", ".join("%s=%r" % (f, v) for f, v in zip(fields, self)) + ")"

    __str__ = __repr__


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
