# Start-up of MicroPython on the virtual board (runs inside the interpreter, in a private
# namespace that device code cannot import).
#
# The interpreter is MicroPython's unix port; this turns it into the ESP port a real board
# runs. The modules device code can import are built from the release's API table (sent by
# the chip process): every name the real port has, with its value, taken from the port
# layer (machine, esp, esp32, network, socket, tls, ...) or from the interpreter's own
# module of that name, and no other name. An __import__ of our own resolves names the way
# the port does (built-in, filesystem, frozen, u-alias), so nothing of the unix port (its
# VfsPosix, termios, os.system, the host's errno numbers) and nothing of the port layer can
# be reached. The filesystem is mounted from the emulated flash as the port's _boot.py does,
# the heap is held to the real board's size, and boot.py, main.py and the REPL run in
# __main__ as pyexec runs them.
import builtins
import gc
import io
import json
import micropython
import sys
import vfs

# The heap device code will get, taken first while the heap is one free run: the port
# layer's own objects must not break it into pieces (see "the heap" below).
_plan = json.loads(host.call("heap_plan", "0 []")[1:])  # noqa: F821
_keep = bytearray(_plan["device_free"] + _plan["slack"])

_unix = {"os": __import__("os"), "time": __import__("time")}
for _n in ("array", "binascii", "cmath", "collections", "cryptolib", "deflate", "framebuf", "hashlib",
           "heapq", "json", "math", "re", "select", "struct", "uctypes", "websocket", "_asyncio", "_thread"):
    try:
        _unix[_n] = __import__(_n)
    except ImportError:
        pass
_unix.update(io=io, gc=gc, micropython=micropython, sys=sys, vfs=vfs, builtins=builtins)
_orig_import = builtins.__import__
_PORT_DIR = "/__port"
_MISSING = object()


# -- a private loader: port modules and fresh module objects ------------------------------------------
class _Loader:
    # A VFS mounted only while something is imported from it: the sources come from the chip
    # process, so nothing of them is on the board's filesystem.
    def __init__(self):
        self.src = {}

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def stat(self, path):
        text = self.src.get(path.lstrip("/"))
        if text is None:
            raise OSError(2)
        return (0x8000, 0, 0, 0, 0, 0, len(text), 0, 0, 0)

    def open(self, path, mode):
        return io.BytesIO(self.src[path.lstrip("/")])

    def ilistdir(self, path):
        return iter(())


_loader = _Loader()


def _import_private(modname, source):
    # Import ``source`` as a real module object without leaving it in sys.modules.
    _loader.src[modname + ".py"] = source
    path = sys.path[:]
    vfs.mount(_loader, _PORT_DIR)
    try:
        sys.path[:] = [_PORT_DIR]
        return _orig_import(modname)
    finally:
        sys.path[:] = path
        vfs.umount(_PORT_DIR)
        _loader.src.pop(modname + ".py", None)
        sys.modules.pop(modname, None)


def _new_module(name):
    m = _import_private("_port_new", b"")
    d = m.__dict__
    d["__name__"] = name
    d.pop("__file__", None)
    return m


# -- the port layer ------------------------------------------------------------------------------------
_spec = json.loads(host.call("port_spec", ""))  # noqa: F821  (host is given by the bootstrap)
_impl = {}
# Port modules that other port modules must not get in place of the interpreter's own.
_OWN_NAMES = ("sys", "gc", "micropython", "os", "time", "random", "platform", "select")


def _load_impl():
    # Port modules import each other by their public names while they load.
    names = ["_hil", "_blockcache"] + host.call("port_modules", "").split()  # noqa: F821
    loaded = []
    try:
        for name in names:
            m = _import_private("_port_" + name, host.call("port_source", name))  # noqa: F821
            _impl[name] = m
            if name not in _OWN_NAMES:
                sys.modules[name] = m
                loaded.append(name)
    finally:
        for name in loaded:
            sys.modules.pop(name, None)


sys.modules["host"] = host  # noqa: F821
sys.modules["_unix"] = _unix
try:
    _load_impl()
finally:
    sys.modules.pop("host", None)
    sys.modules.pop("_unix", None)
_hil = _impl["_hil"]

# Where a name comes from when the port layer does not supply it: the interpreter's module
# of the same name (never for modules whose unix version reaches the host or the process).
_FALLBACK = {n: _unix.get(n) for n in (
    "array", "binascii", "cmath", "collections", "cryptolib", "deflate", "framebuf", "hashlib", "heapq",
    "io", "json", "math", "re", "select", "struct", "uctypes", "websocket", "_asyncio", "_thread", "gc",
    "micropython", "os", "vfs", "time")}


def _strip_class(cls, members):
    # A class the port layer defines in Python shows only what the native one has (the
    # stream protocol's ioctl aside, which a Python-defined stream needs).
    d = getattr(cls, "__dict__", None)
    if type(cls) is type and d is not None:
        for k in list(d):
            if k in ("__module__", "__qualname__") or (k[:2] != "__" and k not in members and k != "ioctl"):
                try:
                    delattr(cls, k)
                except (AttributeError, TypeError):
                    pass


# The port module that implements a public one of another name (the ESP8266's lwip).
_IMPL_OF = {"lwip": "socket"}


def _build(name, entries):
    m = _new_module(name)
    impl = _impl.get(_IMPL_OF.get(name, name))
    fallback = _FALLBACK.get(name)
    for attr, kind, value in entries:
        if attr == "__name__":
            continue
        # setattr makes the name a qstr, as every name of a firmware's module is (dir() lists
        # only those).
        if kind == "v" or kind == "s":
            setattr(m, attr, value)
            continue
        v = _MISSING
        if impl is not None:
            v = getattr(impl, attr, _MISSING)
        if v is _MISSING and fallback is not None:
            v = getattr(fallback, attr, _MISSING)
        if v is not _MISSING:
            if kind == "c" and impl is not None and getattr(impl, attr, None) is v:
                _strip_class(v, value)
                for member, number in value.items():
                    if number is not None:
                        setattr(v, member, number)
            setattr(m, attr, v)
    return m


_public = {}
_same = _spec["same"]
for _name, _entries in _spec["modules"].items():
    if _name in ("builtins", "ssl") or _name in _same:
        continue
    _public[_name] = _build(_name, _entries)
for _name, _other in _same.items():
    _public[_name] = _public[_other]
_public["builtins"] = builtins

# The values the real port has where the interpreter's differ.
_errno = _public["errno"]
_errno.errorcode = {v: k for k, v in _errno.__dict__.items() if k[:1] == "E"}
_hil.set_errno(_errno)
_sysm = _public["sys"]
_sysm.modules = sys.modules
_sysm.path = sys.path
_sysm.stdout = sys.stdout
_sysm.stderr = sys.stderr
_sysm.stdin = _impl["sys"].stdin
builtins.input = _impl["sys"].input
_sysm.exit = sys.exit
_main = _new_module("__main__")
_public["__main__"] = _main
_BUILTIN = set(_spec["builtin"])
_EXT = set(_spec["extensible"])
_FROZEN = set(_spec["frozen"])
# Frozen modules the interpreter carries itself, the same micropython-lib code the port
# freezes (flashbdev comes from the port layer; the port's other frozen modules are not there).
_UNIX_FROZEN = {"asyncio", "mip", "requests", "ssl", "uasyncio"}
del _spec, _entries  # the table is big; what it says now lives in the modules


# -- imports as the port resolves them ----------------------------------------------------------------
def _on_fs(entry, top):
    # What the port's import finds first: a package directory, then .py, then .mpy.
    base = (entry.rstrip("/") + "/" if entry else "") + top
    for path, kind in ((base, "dir"), (base + ".py", ".py"), (base + ".mpy", ".mpy")):
        try:
            st = _unix["os"].stat(path)
        except OSError:
            continue
        if kind != "dir" or st[0] & 0x4000:
            return kind
    return None


def _import_source(entry, name):
    # A module's source is compiled here as the port compiles it (its errno numbers folded in).
    path = (entry.rstrip("/") + "/" if entry else "") + name + ".py"
    src = _hil.call("fold_source", _read_text(path))
    m = _new_module(name)
    setattr(m, "__file__", path)
    sys.modules[name] = m
    try:
        exec(compile(src, path, "exec"), m.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return m


def _read_text(path):
    with open(path) as f:
        return f.read()


def _import_from(entries, name, globals, locals, fromlist, level):
    saved = sys.path[:]
    try:
        sys.path[:] = entries
        return _orig_import(name, globals, locals, fromlist, level)
    finally:
        sys.path[:] = saved


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    if level:
        return _orig_import(name, globals, locals, fromlist, level)
    top = name.split(".")[0]
    if top in sys.modules:
        return _orig_import(name, globals, locals, fromlist, level)
    # A built-in that is not extensible bypasses the filesystem (`import micropython`).
    if top in _BUILTIN and top not in _EXT and top in _public:
        if top != name:
            raise ImportError("no module named '%s'" % name)
        return _public[top]
    for entry in sys.path:
        if entry == ".frozen":
            if top in _FROZEN and top in _UNIX_FROZEN:
                return _import_from([".frozen"], name, globals, locals, fromlist, level)
            continue
        found = _on_fs(entry, top)
        if found == ".py" and top == name:
            return _import_source(entry, top)
        if found:
            return _import_from([entry], name, globals, locals, fromlist, level)
    if top == name:
        if top in _EXT and top in _public:
            return _public[top]
        if top[:1] == "u" and top[1:] in _EXT and top[1:] in _public:
            return _public[top[1:]]
    raise ImportError("no module named '%s'" % name)


builtins.__import__ = _import
_hil.set_public(_public)


# -- tracebacks show the device's frames only ---------------------------------------------------------
def _device_lines(text):
    out = []
    skip = False
    for line in text.split("\n"):
        if line.startswith('  File "'):
            skip = line.startswith('  File "' + _PORT_DIR) or line.startswith('  File "_boot')
            if skip:
                continue
        elif skip and line.startswith("    "):
            continue
        else:
            skip = False
            if line.startswith("OSError: "):
                line = _oserror_line(line)
        out.append(line)
    return "\n".join(out)


def _oserror_line(line):
    # The port names an errno from its own table ("[Errno 116] ETIMEDOUT"); the interpreter
    # under it would use the host's names for the port's numbers.
    text = line[9:]
    if text.startswith("[Errno "):
        text = text[7:].split("]")[0]
    try:
        code = int(text)
    except ValueError:
        return line
    name = _errno.errorcode.get(code)
    return "OSError: [Errno %d] %s" % (code, name) if name else "OSError: %d" % code


def _format(e):
    buf = io.StringIO()
    sys.print_exception(e, buf)
    return _device_lines(buf.getvalue())


def print_exception(e, file=None):
    text = _format(e)
    (file or sys.stdout).write(text)


_sysm.print_exception = print_exception

# -- the filesystem -----------------------------------------------------------------------------------
_DEFAULT_BOOT_PY = """\
# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
#import webrepl
#webrepl.start()
"""


def _fs_corrupted():
    # What the ports do when the region holds something that is not a filesystem.
    while True:
        print("""\
The filesystem appears to be corrupted. If you had important data there, you
may want to make a flash snapshot to try to recover it. Otherwise, perform
factory reprogramming of MicroPython firmware (completely erase flash, followed
by firmware programming).
""")
        _impl["time"].sleep(3)


def _mount():
    # The host's filesystem is not the board's: only the flash is mounted.
    for _fs, point in vfs.mount():
        vfs.umount(point)
    # The frozen flashbdev module, as the port's _boot.py imports it.
    sys.modules["flashbdev"] = _impl["_flashbdev"]
    bdev = _impl["_flashbdev"].bdev
    if bdev is None:
        return
    try:
        vfs.mount(bdev, "/")
    except OSError:
        buf = bytearray(bdev.ioctl(5, 0))
        bdev.readblocks(0, buf)
        if buf != b"\xff" * len(buf):
            _fs_corrupted()
        print("Performing initial setup")
        vfs.VfsLfs2.mkfs(bdev)
        vfs.mount(vfs.VfsLfs2(bdev), "/")
        with open("boot.py", "w") as f:
            f.write(_DEFAULT_BOOT_PY)
    _unix["os"].chdir("/")


_mount()
sys.path[:] = ["", ".frozen", "/lib"]
gc.collect()

# -- the heap: device code gets what a real board of the release has ---------------------------------
# Everything the port layer holds is live by now; the rest of the interpreter's heap is
# taken by one block that nobody can reach, leaving the real board's free heap (plus a
# little room for the port layer's own work inside board calls) to the device.
_filler = []


def _fill():
    # Everything but the run kept at the start is taken, then the run is let go: the device
    # gets a heap the size of the real one, in one piece.
    size = gc.mem_free()
    while size >= 16:
        try:
            _filler.append(bytearray(size))
        except MemoryError:
            size //= 2


_fill()
del _keep
gc.collect()
_hil.set_heap_base(gc.mem_alloc() - _plan["boot_used"], _plan)


# -- running code as pyexec does -----------------------------------------------------------------------
_g = _main.__dict__


def _unlock_heap():
    # As pyexec does before each prompt: a locked heap left behind would stop the REPL.
    while micropython.heap_unlock():
        pass


def _run_file(name):
    # Like pyexec_file_if_exists: errors are printed, SystemExit asks for a soft reset.
    try:
        _unix["os"].stat(name)
    except OSError:
        return True
    _hil.call("script_begin", name)
    try:
        src = _hil.call("fold_source", _read_text(name))
        exec(compile(src, name, "exec"), _g)
    except SystemExit:
        return False
    except BaseException as e:  # noqa: B036 - the REPL reports everything, as the port does
        _unlock_heap()
        print(_format(e), end="")
    finally:
        _unlock_heap()
        _hil.call("script_end", name)
    return True


def _main_loop():
    mode = _hil.call("vm_mode")
    gc.collect()
    _hil.call("vm_ready")
    if mode in ("boot", "soft-friendly", "soft-raw"):
        if not _run_file("boot.py"):
            return
    if mode in ("boot", "soft-friendly"):
        if not _run_file("main.py"):
            return
    while True:
        kind, src = _hil.call("repl_next")
        if kind == "soft-reset":
            return
        err = ""
        try:
            if kind == "single":
                exec(compile(src, "<stdin>", "single"), _g)
            else:
                exec(src, _g)
        except SystemExit:
            _unlock_heap()
            _hil.call("repl_done", "", True)
            return
        except BaseException as e:  # noqa: B036
            _unlock_heap()
            err = _format(e)
        _unlock_heap()
        _hil.call("repl_done", err, False)


_main_loop()
