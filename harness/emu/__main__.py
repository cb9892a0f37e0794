"""``python -m harness.emu``: start one virtual board and print its endpoints as one JSON line."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

from ..chips import CHIP_NAMES
from ..chips import chip as chip_class
from ..lifeline import parent_fd_argument, watch_parent


def parse_flash_size(text: str) -> int:
    from ..esp.chips import parse_size

    try:
        value = parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if value & (value - 1) or not 256 * 1024 <= value <= 128 * 1024 * 1024:
        raise argparse.ArgumentTypeError(f"flash size {text!r} must be a power of two between 256KB and 128MB")
    return value


def parse_mac(text: str) -> bytes:
    parts = text.replace("-", ":").split(":")
    try:
        mac = bytes(int(p, 16) for p in parts)
    except ValueError:
        mac = b""
    if len(mac) != 6:
        raise argparse.ArgumentTypeError(f"MAC {text!r} is not six hex bytes like 24:0a:c4:12:34:56")
    return mac


def default_mac(chip: str, flash_file: str) -> bytes:
    """A stable per-board MAC with Espressif's OUI, derived from the flash file path."""
    digest = hashlib.sha256(os.path.abspath(flash_file).encode()).digest()
    return chip_class(chip).mac_oui + digest[:3]


def parse_port(text: str) -> int:
    """A TCP port, 0 for any free one."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535; 0 picks a free one)")
    return port


def parse_delay(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not a delay in seconds (0 to 10)")
    return seconds


def build_parser(prog: str = "python -m harness.emu") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run one virtual ESP board: esptool flashes it over rfc2217://, it boots from its flash file.",
    )
    p.add_argument("--chip", required=True, choices=CHIP_NAMES, help="chip profile")
    p.add_argument("--flash-size", type=parse_flash_size, default=4 * 1024 * 1024,
                   help="flash size, e.g. 4MB (default: 4MB)")
    p.add_argument("--flash-file", required=True,
                   help="flash contents; created erased if missing, must match --flash-size if present")
    p.add_argument("--name", default=None, help="board name used in logs (default: file name)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--serial-port", type=parse_port, default=0, help="RFC 2217 port (default: any free port)")
    p.add_argument("--raw-port", type=parse_port, default=0,
                   help="plain TCP serial port for socket:// (default: any)")
    p.add_argument("--control-port", type=parse_port, default=0, help="control endpoint port (default: any)")
    p.add_argument("--mac", type=parse_mac, default=None, help="base MAC (default: derived from the flash file path)")
    p.add_argument("--console-log", default=None, help="append everything the chip prints to this file")
    p.add_argument("--power-off", action="store_true", help="start with the board powered off")
    p.add_argument("--en-delay", type=parse_delay, default=0.12,
                   help="seconds from EN release to the chip starting (RC delay of the reset line)")
    p.add_argument("--parent-fd", type=parent_fd_argument, default=None, metavar="FD",
                   help="stop (board powered off) when this inherited pipe's other end closes: the process "
                        "that started the board holds it, so the board ends with that process however it ends")
    return p



def main(argv: list[str] | None = None, prog: str = "python -m harness.emu") -> int:
    args = build_parser(prog).parse_args(argv)
    from .chip import ChipConfig
    from .flash import check_flash_file, create_flash_file
    from .process import BoardOptions, Supervisor

    flash_size = args.flash_size
    prog = "harness.emu"
    path = args.flash_file
    if not os.path.exists(path):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            print(f"{prog}: error: flash file directory {parent} does not exist", file=sys.stderr)
            return 2
        create_flash_file(path, flash_size)
    if args.console_log and not os.path.isdir(os.path.dirname(os.path.abspath(args.console_log))):
        print(f"{prog}: error: --console-log: directory {os.path.dirname(os.path.abspath(args.console_log))} "
              "does not exist", file=sys.stderr)
        return 2
    try:
        check_flash_file(path, flash_size)
        cfg = ChipConfig(
            chip=args.chip,
            flash_file=os.path.abspath(path),
            flash_size=flash_size,
            mac=args.mac or default_mac(args.chip, path),
            name=args.name or os.path.splitext(os.path.basename(path))[0],
        )
        sup = Supervisor(
            BoardOptions(
                chip=cfg,
                host=args.host,
                serial_port=args.serial_port,
                raw_port=args.raw_port,
                control_port=args.control_port,
                en_delay=args.en_delay,
                power_on=not args.power_off,
                console_log=args.console_log,
            )
        )
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a port in use, an address that is not this machine's
        print(f"{prog}: error: cannot listen on {args.host}: {e.strerror or e}", file=sys.stderr)
        return 2
    sup.install_signal_handlers()
    if args.parent_fd is not None:
        watch_parent(args.parent_fd)
    print(json.dumps(sup.endpoints()), flush=True)
    try:
        sup.serve_forever()
    finally:
        sup.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
