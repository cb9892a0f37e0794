"""Processes the harness starts end with the process that started them, however it ends.

A run killed with SIGKILL (a CI runner's timeout, the OOM killer) runs no clean-up code,
so the children cannot rely on being told. Two mechanisms, no timers:

* **lifeline pipe** (virtual boards, the virtual relay): the starter keeps the write end of
  a pipe and the child gets the read end (``--parent-fd N``). The kernel closes the write
  end when the starter dies, the child's read returns end-of-file, and the child stops as
  if it had got SIGTERM: it powers its board off and ends its own children. The write end
  is close-on-exec, so no other program the starter runs keeps it open.
* **parent-death signal** (pytest-xdist workers, a chip's interpreter): ``prctl
  (PR_SET_PDEATHSIG)`` asks the kernel for a signal when the parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


class Lifeline:
    """The starter's side: ``child_fd`` goes to the child (``pass_fds``); keep the object until the child ends."""

    def __init__(self) -> None:
        self.child_fd, self._parent_fd = os.pipe()  # both non-inheritable; pass_fds makes child_fd inheritable there

    def args(self) -> list[str]:
        return ["--parent-fd", str(self.child_fd)]

    def started(self) -> None:
        """The child has its copy: drop ours of the read end."""
        if self.child_fd >= 0:
            os.close(self.child_fd)
            self.child_fd = -1

    def close(self) -> None:
        """Cut the line: the child stops (normally the child has been stopped before)."""
        self.started()
        if self._parent_fd >= 0:
            os.close(self._parent_fd)
            self._parent_fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def watch_parent(fd: int, sig: int = signal.SIGTERM) -> threading.Thread:
    """The child's side: send ``sig`` to this process when the starter's end of ``fd`` closes."""
    os.set_inheritable(fd, False)  # the child's own children must not hold the line open

    def wait() -> None:
        try:
            while os.read(fd, 64):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=wait, name="parent-lifeline", daemon=True)
    thread.start()
    return thread


def parent_fd(text: str) -> int:
    """argparse type of ``--parent-fd``: an open file descriptor."""
    try:
        fd = int(text)
        os.fstat(fd)
    except (ValueError, OSError):
        raise ValueError(f"{text!r} is not an open file descriptor") from None
    return fd


def parent_fd_argument(text: str) -> int:
    """``--parent-fd`` as an argparse type: the message names the value."""
    import argparse

    try:
        return parent_fd(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def module_dying_with_parent(module: str, *args: str) -> list[str]:
    """The command line that runs ``python -m module args`` and ends with this process (a parent-death
    signal, SIGKILL: a program that never reads a pipe cannot notice its parent otherwise). Start it from
    the main thread: the kernel ties the signal to the thread that started the child."""
    return [sys.executable, "-c", _RUN_DYING_WITH_PARENT, str(os.getpid()), module, *args]


_RUN_DYING_WITH_PARENT = (
    "import ctypes, os, runpy, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]): os._exit(1)\n"
    "sys.argv = sys.argv[2:]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel for ``sig`` when the parent process dies; False where that is not available.

    The request is tied to the parent *thread* that created this process; call it only in a
    process started from its parent's main thread. If the parent is already gone, ``sig``
    is sent at once.
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent or parent == 1:
        os.kill(os.getpid(), sig)
    return True
