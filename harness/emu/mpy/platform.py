# platform as the ESP ports report it.
import _hil

_p = _hil.call("platform_info")


def platform():
    return _p["platform"]


def python_compiler():
    return _p["compiler"]


def libc_ver():
    return tuple(_p["libc"])
