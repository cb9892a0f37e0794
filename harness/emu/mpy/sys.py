# sys as the ESP ports have it: the release's version, platform and limits (the
# interpreter's own modules, path, stdout and exit are put in by _boot).
import io

import _hil

_i = _hil.call("sys_info")


class _Implementation(_hil.AttrTuple):
    _fields = ("name", "version", "_machine", "_mpy", "_build", "_thread")


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


def _console_read(n):
    out = b""
    while n < 0 or len(out) < n:
        buf = bytearray(256 if n < 0 else min(256, n - len(out)))
        got = _hil.call_into("console_read", buf, len(buf))
        out += buf[:got]
        if n < 0:
            break
    return out


def _console_line():
    line = b""
    one = bytearray(1)
    while not line.endswith(b"\n"):
        _hil.call_into("console_read", one, 1)
        line += one
    return line


class _ConsoleBytes(io.IOBase):
    # sys.stdin.buffer: the board's UART (not the interpreter process's own stdin), as bytes.
    def ioctl(self, request, arg):
        if request == 3:  # MP_STREAM_POLL: POLLIN when the console has input
            return arg & 1 if _hil.call("console_pending") else 0
        return 0

    def read(self, n=-1):
        return _console_read(n)

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        return _hil.call_into("console_read", buf, n)

    def readline(self):
        return _console_line()


class _Console(_ConsoleBytes):
    # sys.stdin: the same, as text.
    def read(self, n=-1):
        return _console_read(n).decode()

    def readline(self):
        return _console_line().decode()


stdin = _Console()
stdin.buffer = _ConsoleBytes()


def input(prompt=None):
    # builtins.input as the ports have it: the prompt out, a line in from the console, echoed.
    if prompt is not None:
        print(prompt, end="")
    line = bytearray()
    one = bytearray(1)
    while True:
        _hil.call_into("console_read", one, 1)
        c = one[0]
        if c in (13, 10):
            print()
            return line.decode()
        if c in (8, 127):
            if line:
                line.pop()
                print("\b \b", end="")
            continue
        line.append(c)
        print(chr(c), end="")
