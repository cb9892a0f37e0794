"""One board, one test process: an advisory lock per board of a rig.

Two runs on one bench must not drive the same board: one would flash or power-cycle it
under the other. A run takes the board's lock before it opens the board and keeps it
until the board is closed. The lock is an ``flock`` on a file under
``$XDG_RUNTIME_DIR/esp-ota-hil/locks/`` (``/tmp/esp-ota-hil-$UID/locks/`` without one), so
the kernel drops it when the holder dies, however it dies: a crashed run never leaves a
board locked. The holder writes its pid, host, command line and the time it took the
board into the file, for the message another run gets::

    board esp32-0 of rig bench1 is in use by pid 1234 (pytest scenarios/ --rig bench1) since 10:12:03

Virtual boards that a run starts itself need no lock: each run has its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import socket
import stat
import sys
import time
from pathlib import Path

from .errors import InfrastructureError

#: how long a run waits for a board another run holds: long enough for that run's teardown
#: (power off, ports closed) to finish, short enough that a run against a busy bench stops
#: with the holder's name instead of hanging
WAIT_S = 30.0
_POLL_S = 0.1
#: a holder's command line is cut to this length, so the message stays one readable line
_COMMAND_MAX = 120


class LockError(InfrastructureError, RuntimeError):
    """A board lock could not be taken; ``str()`` is one line naming the board or the lock directory."""


class BoardBusyError(LockError):
    """Another process holds the board; ``str()`` names the board and the holder."""


def lock_dir() -> Path:
    """Where the lock files live (per user: ``$XDG_RUNTIME_DIR`` is, and the /tmp fallback carries the uid)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "esp-ota-hil" / "locks"
    # /tmp itself, not $TMPDIR: processes with different TMPDIRs must still meet at the same file
    return Path("/tmp") / f"esp-ota-hil-{os.getuid()}" / "locks"


class BoardLock:
    """The lock of board ``board_name`` of rig ``rig_name``: ``with BoardLock("bench1", "esp32-0"): ...``.

    ``with`` waits up to :data:`WAIT_S`; ``BoardLock(...).acquire(timeout)`` waits as long as
    asked (0: not at all) and returns the held lock, which ``with`` then releases.
    """

    def __init__(self, rig_name: str, board_name: str, directory: Path | None = None):
        self.rig_name = rig_name
        self.board_name = board_name
        self.directory = lock_dir() if directory is None else Path(directory)
        self._shared_parent = directory is None
        self.path = self.directory / f"{_file_part(rig_name)}.{_file_part(board_name)}.lock"
        self._fd: int | None = None
        self._record: dict = {}
        #: the record the previous holder left (None after a clean release): see :meth:`acquire`
        self.previous: dict | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float = WAIT_S) -> BoardLock:
        """Take the lock, waiting up to ``timeout`` seconds; :class:`BoardBusyError` if it stays taken."""
        if self._fd is not None:
            return self
        fd = self._open()
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.close(fd)
                    raise BoardBusyError(self._busy_message(timeout)) from None
                time.sleep(min(_POLL_S, left))
        # What the last holder left: a clean release leaves nothing, a holder that died leaves its record
        # (with ``powered`` if it had switched the board on), which is how the next run finds a board
        # a killed run left on.
        self.previous = _parse_record(os.pread(fd, 65536, 0))
        self._record = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command_line(),
                        "since": time.time()}
        self._fd = fd
        self._write()
        return self

    def note(self, **fields) -> None:
        """Add ``fields`` (e.g. ``powered=True``) to the holder's record, for whoever takes the lock next."""
        if self._fd is None:
            return
        self._record.update(fields)
        self._write()

    def _write(self) -> None:
        data = json.dumps(self._record).encode() + b"\n"
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # a later reader must not take the former holder for the current one
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the file drops the flock

    def holder(self) -> dict | None:
        """What the current holder wrote (pid, host, command, since), None if nothing readable is there."""
        for _ in range(5):
            try:
                text = self.path.read_text(encoding="utf-8")
            except OSError:
                return None
            try:
                record = json.loads(text)
            except ValueError:
                # the holder truncates, then writes: a read in between sees nothing yet
                time.sleep(0.02)
                continue
            return record if isinstance(record, dict) else None
        return None

    def _open(self) -> int:
        try:
            if self._shared_parent:
                _private_dir(self.directory.parent)
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise LockError(f"lock of board {self.board_name} of rig {self.rig_name}: cannot open {self.path}: "
                            f"{e.strerror or e}") from None

    def _busy_message(self, waited: float) -> str:
        who = _describe(self.holder())
        after = f" (waited {waited:.0f} s)" if waited >= 1 else ""
        return f"board {self.board_name} of rig {self.rig_name} is in use by {who}{after}"

    def __enter__(self) -> BoardLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<BoardLock {self.rig_name}/{self.board_name} {'held' if self.held else 'free'}>"


def _parse_record(data: bytes) -> dict | None:
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


def _private_dir(directory: Path) -> None:
    """Create ``directory`` for this user alone, or check it is: in /tmp anyone could have created it first."""
    directory.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise OSError(0, f"{directory} is not a directory of uid {os.getuid()} that only it can write; "
                         f"remove it or set XDG_RUNTIME_DIR")


def _describe(record: dict | None) -> str:
    if not record or "pid" not in record:
        return "another process"
    text = f"pid {record['pid']}"
    if record.get("host") and record["host"] != socket.gethostname():
        text += f" on {record['host']}"
    command = str(record.get("command") or "")
    if command:
        if len(command) > _COMMAND_MAX:
            command = command[:_COMMAND_MAX - 3] + "..."
        text += f" ({command})"
    since = record.get("since")
    if isinstance(since, (int, float)):
        same_day = time.strftime("%Y-%m-%d", time.localtime(since)) == time.strftime("%Y-%m-%d")
        text += " since " + time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", time.localtime(since))
    return text


def _command_line() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    # Only the worker itself runs execnet's "-c" bootstrap; its children inherit the variable.
    if worker and sys.argv[:1] == ["-c"]:
        # an xdist worker runs execnet's bootstrap; the command someone typed is its parent's
        parent = _proc_cmdline(os.getppid())
        if parent:
            return f"{_shown(parent)} [{worker}]"
    return _shown(list(getattr(sys, "orig_argv", sys.argv)))


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def _shown(argv: list[str]) -> str:
    """``pytest scenarios/ --rig bench1`` rather than ``/path/to/.venv/bin/python /path/to/.venv/bin/pytest ...``."""
    if not argv:
        return ""
    program = os.path.basename(argv[0])
    if program.startswith("python") and len(argv) > 1 and not argv[1].startswith("-"):
        # a script run through its #! line: its name says what runs
        argv = argv[1:]
        program = os.path.basename(argv[0])
    return shlex.join([program, *argv[1:]])
