# sys as the ESP ports have it: the release's version, platform and limits (the
# interpreter's own modules, path, streams and exit are put in by _boot).
import _hil

_i = _hil.call("sys_info")


class _Implementation(tuple):
    # sys.implementation: an attribute tuple on the port; the same fields here.
    name = property(lambda s: s[0])
    version = property(lambda s: s[1])
    _machine = property(lambda s: s[2])
    _mpy = property(lambda s: s[3])
    _build = property(lambda s: s[4])
    _thread = property(lambda s: s[5])

    def __repr__(self):
        fields = ("name", "version", "_machine", "_mpy", "_build", "_thread")
        return "(" + ", ".join("%s=%r" % (f, v) for f, v in zip(fields, self)) + ")"


implementation = _Implementation([_i["name"], tuple(_i["version"]), _i["machine"], _i["mpy"], _i["build"]]
                                 + ([_i["thread"]] if _i["thread"] else []))
version = _i["version_text"]
version_info = (3, 4, 0)
platform = _i["platform"]
byteorder = "little"
maxsize = 2147483647  # a 32-bit chip
argv = []
ps1 = ">>> "
ps2 = "... "
