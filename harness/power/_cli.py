"""Running a power tool's command line with a timeout, turning every failure into one error line.

uhubctl, ykushcmd and user scripts can hang on a wedged USB device or a
missing network; a harness that waits forever on them hangs a whole CI run, so
every call has a timeout. A missing binary, a non-zero exit and a timeout all
become :class:`PowerSwitchError` with the command line and the tool's last
words, instead of a ``subprocess`` traceback.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence

from ._options import config_error
from .base import PowerSwitchError

log = logging.getLogger(__name__)


def split_command(command: str | Sequence[str], option: str) -> list[str]:
    """A command line from a rig file: a shell-like string (split with shlex, no shell) or a list."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as e:
            raise config_error(option, f"a command line ({e})", command) from None
    elif isinstance(command, (list, tuple)):
        argv = [str(a) for a in command]
    else:
        argv = []
    if not argv:
        raise config_error(option, "a command line (a string or a list of arguments)", command)
    return argv


def last_words(proc: subprocess.CompletedProcess[str]) -> str:
    """The most telling line a failed tool printed (stderr first), for a one-line error."""
    for stream in (proc.stderr, proc.stdout):
        lines = [line.strip() for line in (stream or "").splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return "no output"


def run(argv: Sequence[str], *, where: str, timeout: float, expected: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell); a non-zero exit status is an error.

    The command runs in its own process group, and a timeout kills the whole
    group: a wrapper script's children (``sudo``, ``ssh``) would otherwise keep
    the output pipes open and the wait would never end.
    """
    shown = shlex.join(argv)
    log.debug("%s: running %s", where, shown)
    try:
        child = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    except FileNotFoundError:
        raise PowerSwitchError(f"{where}: ran {shown}, expected {expected}: command not found: {argv[0]}") from None
    except OSError as e:
        raise PowerSwitchError(f"{where}: ran {shown}, expected {expected}: cannot start: {e}") from None
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise PowerSwitchError(
            f"{where}: ran {shown}, expected {expected}: still running after {timeout:g} s, killed") from None
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    if proc.returncode != 0:
        raise PowerSwitchError(
            f"{where}: ran {shown}, expected {expected}: exit status {proc.returncode}: {last_words(proc)}")
    return proc
