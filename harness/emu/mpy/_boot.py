# Start-up of MicroPython on the virtual board (runs inside the interpreter).
#
# Installs the port layer (machine, esp, esp32, network, socket, ssl, time, os, random)
# as the firmware's built-in modules, mounts the filesystem from the emulated flash at
# "/" as the ports' _boot.py does (VfsLfs2 on the flash block device, formatted with a
# default boot.py only when the region is blank), runs boot.py and main.py like the
# ESP ports do, then serves the REPL: the host side decodes the console (friendly, raw
# and raw-paste modes) and hands over each piece of code to run here.
import sys

import host


class _Module:
    # This build cannot create module objects from Python; a namespace whose attribute
    # lookups go to the module's globals behaves the same for import and attribute access.
    def __init__(self, d):
        self._module_globals = d

    def __getattr__(self, attr):
        try:
            return self._module_globals[attr]
        except KeyError:
            raise AttributeError(attr) from None

    def __repr__(self):
        return "<module '%s'>" % self._module_globals["__name__"]


def _load(name):
    d = {"__name__": name}
    sys.modules[name] = _Module(d)
    exec(compile(host.call("port_source", name), name + ".py", "exec"), d)


def _install():
    import os as _ob
    import time as _tb

    sys.modules["_time_builtin"] = _tb
    sys.modules["_os_builtin"] = _ob
    _load("_hil")
    for name in host.call("port_modules", "").split():
        _load(name)


_install()

import gc  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402

import _hil  # noqa: E402
import vfs  # noqa: E402

_DEFAULT_BOOT_PY = """\
# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
#import webrepl
#webrepl.start()
"""


def _fs_corrupted():
    # What the ports do when the region holds something that is not a filesystem.
    import time

    while True:
        print("""\
The filesystem appears to be corrupted. If you had important data there, you
may want to make a flash snapshot to try to recover it. Otherwise, perform
factory reprogramming of MicroPython firmware (completely erase flash, followed
by firmware programming).
""")
        time.sleep(3)


def _mount():
    # The host's filesystem is not the board's: only the flash is mounted.
    for _fs, point in vfs.mount():
        vfs.umount(point)
    from _flashbdev import bdev

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
    os.chdir("/")


_mount()
sys.path[:] = ["", ".frozen", "/lib"]
_g = {"__name__": "__main__"}


def _traceback(e):
    buf = io.StringIO()
    sys.print_exception(e, buf)
    return buf.getvalue()


def _run_file(name):
    # Like pyexec_file_if_exists: errors are printed, SystemExit asks for a soft reset.
    try:
        os.stat(name)
    except OSError:
        return True
    _hil.call("script_begin", name)
    try:
        with open(name) as f:
            src = f.read()
        exec(compile(src, name, "exec"), _g)
    except SystemExit:
        return False
    except BaseException as e:  # noqa: B036 - the REPL reports everything, as the port does
        print(_traceback(e), end="")
    finally:
        _hil.call("script_end", name)
    return True


def _main():
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
            _hil.call("repl_done", "", True)
            return
        except BaseException as e:  # noqa: B036
            err = _traceback(e)
        _hil.call("repl_done", err, False)


_main()
