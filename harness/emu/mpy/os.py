# os for the virtual board: the interpreter's VFS-backed os plus what the ESP ports add.
import _hil
import _os_builtin
from _os_builtin import (  # noqa: F401  the VFS functions every port has
    chdir,
    getcwd,
    ilistdir,
    listdir,
    mkdir,
    remove,
    rename,
    rmdir,
    stat,
    statvfs,
)

_u = _hil.call("os_uname")


class _Uname(tuple):
    sysname = property(lambda s: s[0])
    nodename = property(lambda s: s[1])
    release = property(lambda s: s[2])
    version = property(lambda s: s[3])
    machine = property(lambda s: s[4])


def uname():
    return _Uname(_u)


def urandom(n):
    return _hil.unb64(_hil.call("os_urandom", n))


def dupterm(stream=None, index=0):
    return None


def sync():
    pass


def mount(fs, mount_point, readonly=False):
    import vfs

    vfs.mount(fs, mount_point, readonly=readonly)


def umount(mount_point):
    import vfs

    vfs.umount(mount_point)


try:
    sep = _os_builtin.sep
except AttributeError:
    sep = "/"
