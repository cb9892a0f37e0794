"""A virtual LCUS relay board for CI: a pty that answers the LCUS bytes and powers virtual boards.

``python -m harness.power.lcus_sim --channels 4 --board 1=tcp://127.0.0.1:PORT ...`` creates a
pseudo-terminal, prints one JSON line ``{"port": "/dev/pts/N", "pid": ...}`` when ready and then
behaves like an LCUS-N board on that port: ``A0 ch state sum`` frames switch relay ``ch`` (frames
with a wrong checksum or channel are ignored, as the board does) and, on the multi-channel
boards, ``FF`` is answered with one ``CHn:ON``/``CHn:OFF`` line per relay. A relay wired to a
virtual board (``--board``) sends ``{"cmd": "power", "on": ...}`` to that board's control
endpoint. The relays start off, as on a board that has just been plugged in; the boards are not
told until a frame switches them. The harness drives the port with the real
:class:`~harness.power.lcus.LcusSwitch`, so CI exercises the same bytes as a bench. SIGTERM or
SIGINT stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import tty

from ..emu.control import ControlClient, ControlError
from ..lifeline import parent_fd_argument, watch_parent
from .lcus import BOARD_SIZES, START, STATUS_QUERY, lcus_frame

PROG = "python -m harness.power.lcus_sim"


class LcusBoard:
    """The relay board's behaviour, fed with the bytes that arrive on its port."""

    def __init__(self, channels: int, boards: dict[int, str]):
        self.channels = channels
        self.boards = boards
        self.relays = [False] * channels
        self._pending = bytearray()
        self._clients: dict[int, ControlClient] = {}

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the host; return the board's answer."""
        self._pending += data
        answer = bytearray()
        while self._pending:
            if self._pending[0] == STATUS_QUERY[0]:
                del self._pending[0]
                if self.channels > 1:  # the LCUS-1 has no status query
                    answer += self.status()
            elif self._pending[0] != START:
                del self._pending[0]  # line noise: the board waits for a frame start
            elif len(self._pending) < 4:
                break
            else:
                frame = bytes(self._pending[:4])
                channel, state = frame[1], frame[2]
                if 1 <= channel <= self.channels and state in (0, 1) and frame == lcus_frame(channel, bool(state)):
                    del self._pending[:4]
                    self.switch(channel, bool(state))
                else:
                    del self._pending[0]  # not a frame after all: look for the next start byte
        return bytes(answer)

    def status(self) -> bytes:
        return b"".join(f"CH{n}:{'ON' if on else 'OFF'} \r\n".encode() for n, on in enumerate(self.relays, 1))

    def switch(self, channel: int, on: bool) -> None:
        self.relays[channel - 1] = on
        url = self.boards.get(channel)
        log(f"channel {channel} {'on' if on else 'off'}" + (f" -> {url}" if url else ""))
        if url is None:
            return
        try:
            client = self._clients.get(channel) or ControlClient(url, timeout=5.0)
            self._clients[channel] = client
            client.power(on)
        except (ConnectionError, ControlError, OSError, ValueError) as e:
            # a real relay clicks whether or not anything is wired to it: report and carry on
            log(f"channel {channel}: virtual board {url} did not take power {'on' if on else 'off'}: {e}")
            self._drop(channel)

    def _drop(self, channel: int) -> None:
        client = self._clients.pop(channel, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for channel in list(self._clients):
            self._drop(channel)


def log(message: str) -> None:
    print(f"lcus_sim: {message}", file=sys.stderr, flush=True)


def parse_board(text: str) -> tuple[int, str]:
    channel, sep, url = text.partition("=")
    if not sep or not channel.strip().isdigit() or not url.startswith("tcp://"):
        raise argparse.ArgumentTypeError(f"--board {text!r}: expected CHANNEL=tcp://host:port")
    return int(channel), url


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="A virtual LCUS-1/2/4/8 relay board on a pty that switches "
                                                       "virtual boards through their control endpoints.")
    p.add_argument("--channels", type=int, choices=BOARD_SIZES, default=1, help="relays on the board (default 1)")
    p.add_argument("--board", type=parse_board, action="append", default=[], metavar="N=tcp://HOST:PORT",
                   help="relay N powers the virtual board with this control endpoint (repeatable)")
    p.add_argument("--parent-fd", type=parent_fd_argument, default=None, metavar="FD",
                   help="stop when this inherited pipe's other end closes (the process that started the relay "
                        "holds it)")
    return p



def serve(board: LcusBoard, master: int, wake: int) -> None:
    """Answer the port until a signal arrives on ``wake``."""
    while True:
        readable, _, _ = select.select([master, wake], [], [])
        if wake in readable:
            return
        answer = board.feed(os.read(master, 4096))
        if answer:
            os.write(master, answer)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    boards: dict[int, str] = {}
    for channel, url in args.board:
        if not 1 <= channel <= args.channels:
            print(f"{PROG}: error: --board {channel}=...: the board has channels 1..{args.channels}", file=sys.stderr)
            return 2
        boards[channel] = url
    board = LcusBoard(args.channels, boards)

    master, slave = os.openpty()
    # raw from the start, so nothing the host sends before pyserial configures the port is cooked;
    # the simulator keeps the slave open so the pty survives the host closing and reopening it
    tty.setraw(slave)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)  # the wakeup fd does the work
    if args.parent_fd is not None:
        watch_parent(args.parent_fd)

    print(json.dumps({"port": os.ttyname(slave), "pid": os.getpid(), "channels": args.channels}), flush=True)
    try:
        serve(board, master, wake_r)
    finally:
        board.close()
        for fd in (master, slave, wake_r, wake_w):
            os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
