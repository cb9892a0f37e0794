"""Start and stop virtual board processes from Python (fixtures, tests, benchmarks)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from ..errors import VirtualBoardFailure
from ..lifeline import Lifeline
from .control import ControlClient


class BoardStartError(VirtualBoardFailure, RuntimeError):
    pass


@dataclass
class VirtualBoard:
    """A running ``python -m harness.emu`` process and its endpoints."""

    proc: subprocess.Popen
    info: dict
    _control: ControlClient | None = field(default=None, repr=False)

    @property
    def serial_url(self) -> str:
        return self.info["serial"]

    @property
    def socket_url(self) -> str:
        return self.info["socket"]

    @property
    def control_url(self) -> str:
        return self.info["control"]

    @property
    def control(self) -> ControlClient:
        if self._control is None:
            self._control = ControlClient(self.control_url)
        return self._control

    @classmethod
    def start(
        cls,
        chip: str,
        flash_file: str,
        flash_size: str | int = "4MB",
        *,
        name: str | None = None,
        power_off: bool = False,
        console_log: str | None = None,
        extra_args: list[str] | None = None,
        timeout: float = 20.0,
    ) -> "VirtualBoard":
        args = [sys.executable, "-m", "harness.emu", "--chip", chip, "--flash-file", flash_file,
                "--flash-size", str(flash_size)]
        if name:
            args += ["--name", name]
        if power_off:
            args.append("--power-off")
        if console_log:
            args += ["--console-log", console_log]
        args += extra_args or []
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # stderr goes to a file, never a pipe nobody drains: a chatty board must not block.
        errlog = tempfile.TemporaryFile()
        # The board ends with this process however it ends (a lifeline pipe, harness.lifeline), and
        # sits in a session of its own: a Ctrl-C at the terminal reaches the harness, which then
        # switches the board off and stops it, instead of killing the board under the harness.
        lifeline = Lifeline()
        try:
            proc = subprocess.Popen(args + lifeline.args(), stdout=subprocess.PIPE, stderr=errlog, env=env,
                                    pass_fds=(lifeline.child_fd,), start_new_session=True)
        except BaseException:
            lifeline.close()
            raise
        lifeline.started()
        line = _read_line(proc, timeout)
        if not line:
            proc.kill()
            proc.wait()
            lifeline.close()
            errlog.seek(0)
            err = errlog.read().decode(errors="replace").strip()
            errlog.close()
            raise BoardStartError(err.splitlines()[-1] if err else
                                  f"virtual {chip} board did not start within {timeout} s")
        board = cls(proc, json.loads(line))
        board._errlog = errlog
        board._lifeline = lifeline
        return board

    def stop(self, timeout: float = 10.0) -> None:
        """Power the board off and end its process."""
        if self.proc.poll() is None:
            try:
                self.control.quit()
            except Exception:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        errlog = getattr(self, "_errlog", None)
        if errlog is not None:
            errlog.close()
        lifeline = getattr(self, "_lifeline", None)
        if lifeline is not None:
            lifeline.close()

    def stderr_text(self) -> str:
        """What the board process wrote to stderr so far (emulator diagnostics)."""
        errlog = getattr(self, "_errlog", None)
        if errlog is None or errlog.closed:
            return ""
        errlog.seek(0)
        return errlog.read().decode(errors="replace")

    def __enter__(self) -> "VirtualBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _read_line(proc: subprocess.Popen, timeout: float) -> bytes:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    sel.close()
    return buf.split(b"\n", 1)[0]
