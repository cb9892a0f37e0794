"""The ``hil`` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="hil", description="OTA hardware-in-the-loop harness for ESP32/ESP8266")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("emu", help="run one virtual board (see: hil emu --help)", add_help=False)
    sub.add_parser("rig", help="check a rig's boards: hil rig check NAME [--board B]", add_help=False)
    sub.add_parser("farm", help="the labgrid farm: hil farm list | release --job ID | exporter-config RIG",
                   add_help=False)
    sub.add_parser("ca", help="print the path of the CA the OTA servers' certificates come from (firmware that "
                              "embeds its CA, such as device_fw/esp_idf, is built with it)")
    parser.add_argument("--version", action="store_true", help="print the harness's version")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"hil (esp-ota-hil) {version('esp-ota-hil')}")
        except PackageNotFoundError:
            print("hil (esp-ota-hil, not installed as a package)")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "emu":
        from .emu.__main__ import main as emu_main

        return emu_main(rest, prog="hil emu")
    if command == "rig":
        from .rigcheck import main as rig_main

        return rig_main(rest, prog="hil rig")
    if command == "farm":
        from .farm.cli import main as farm_main

        return farm_main(rest, prog="hil farm")
    if command == "ca":
        from .servers.tls import CertificateAuthority, kept_ca_dir

        if rest:
            parser.error(f"hil ca takes no arguments, got {' '.join(rest)!r}")
        directory = kept_ca_dir()
        CertificateAuthority.load_or_create(directory)
        print(directory / "ca.pem")
        return 0
    parser.error(f"unknown command {command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
