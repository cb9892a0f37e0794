"""``hil farm``: the labgrid farm as the harness sees it.

::

    hil farm list [--rig farm | --coordinator HOST:PORT]       places, tags, holders, reservations
    hil farm release --job ID [--rig farm | --coordinator ...]  give back what job ID's processes hold
    hil farm exporter-config bench1 [--name-prefix P]          an exporter configuration for a bench's boards

``release`` is the always-run last step of a CI job: places acquired by ``<ID>`` or ``<ID>-<worker>``
are released and their reservations cancelled, whichever of the job's processes took them (one that
was SIGKILLed too). The coordinator is ``--coordinator``, else ``LG_COORDINATOR``, else the rig's.
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml


def main(argv: list[str], prog: str = "hil farm") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="the labgrid farm: places, holders, releasing a job's "
                                                            "places, exporter configurations")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("list", "places with their tags and holders, and the reservations"),
                       ("release", "release the places job ID holds and cancel its reservations")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--rig", help="a labgrid rig (its labgrid.coordinator)")
        p.add_argument("--coordinator", help="the coordinator's HOST[:PORT] (default: LG_COORDINATOR, the rig's)")
        if name == "release":
            p.add_argument("--job", required=True, help="the job id (HIL_FARM_JOB of the run)")
    p = sub.add_parser("exporter-config", help="a labgrid exporter configuration for a bench rig's boards")
    p.add_argument("rig", help="a bench rig (rigs/NAME.yaml or a path)")
    p.add_argument("--board", action="append", default=[], help="only this board (repeatable)")
    args = parser.parse_args(argv)
    from .client import FarmError

    try:
        if args.action == "exporter-config":
            sys.stdout.write(exporter_config(args.rig, args.board))
            return 0
        address = _address(args)
        if args.action == "list":
            return _list(address)
        return _release(address, args.job)
    except (FarmError, ValueError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1


def _address(args) -> str:
    from .rigfile import with_port

    if args.coordinator:
        return with_port(args.coordinator)
    if os.environ.get("LG_COORDINATOR"):
        return with_port(os.environ["LG_COORDINATOR"])
    if args.rig:
        from ..rig import load_rig

        rig = load_rig(args.rig, check_files=False)
        if rig.labgrid is None:
            raise ValueError(f"rig {rig.name} has no labgrid: coordinator")
        return rig.labgrid.address
    raise ValueError("which coordinator? give --coordinator HOST:PORT, LG_COORDINATOR or --rig NAME")


def _list(address: str) -> int:
    from .client import FarmClient

    farm = FarmClient(address)
    try:
        places = farm.places()
        reservations = farm.reservations()
    finally:
        farm.close()
    rows = [("PLACE", "TAGS", "HOLDER", "RESERVATION")]
    by_token = {r.token: r for r in reservations}
    for name, place in sorted(places.items()):
        tags = " ".join(f"{k}={v}" for k, v in sorted(place.tags.items())) or "-"
        res = by_token.get(place.reservation) if place.reservation else None
        rows.append((name, tags, place.acquired or "-",
                     f"{res.owner} ({res.state})" if res is not None else (place.reservation or "-")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    waiting = [r for r in reservations if r.state == "waiting"]
    for r in waiting:
        print(f"waiting: {r.owner} for {' '.join(f'{k}={v}' for k, v in sorted(r.filters.items()))} ({r.token})")
    return 0


def _release(address: str, job: str) -> int:
    from .client import FarmClient, FarmError
    from .job import JOB_ID
    from .provider import job_holdings

    if not JOB_ID.fullmatch(job):
        raise ValueError(f"--job {job!r}: a job id is letters, digits and _ . + -")
    farm = FarmClient(address)
    problems = 0
    try:
        places, reservations = job_holdings(farm, job)
        for name, holder in places:
            try:
                farm.release(name, from_user=holder)
                print(f"released {name} (held by {holder})")
            except FarmError as e:
                problems += 1
                print(f"could not release {name}: {e}", file=sys.stderr)
        for token, owner in reservations:
            try:
                farm.cancel(token)
                print(f"cancelled reservation {token} of {owner}")
            except FarmError as e:
                if "does not exist" not in str(e):
                    problems += 1
                    print(f"could not cancel reservation {token}: {e}", file=sys.stderr)
        if not places and not reservations:
            print(f"job {job} holds nothing at {address}")
    finally:
        farm.close()
    return 1 if problems else 0


# -- exporter configuration ------------------------------------------------------------------------------------

def exporter_config(rig_name: str, boards: list[str]) -> str:
    """YAML for ``labgrid-exporter``: a group per bench board, its serial port and (where labgrid has a model
    for the switch) its power; a comment says what to do where it has none."""
    from ..rig import load_rig

    rig = load_rig(rig_name, check_files=False)
    lines = [f"# labgrid exporter configuration for the boards of rig {rig.name} ({rig.path.name}),",
             "# made by `hil farm exporter-config`. Run it on the host the boards are plugged into:",
             "#   labgrid-exporter -c COORDINATOR:20408 -n <this host> this-file.yaml",
             "# then make a place per group: labgrid-client -p NAME create; -p NAME add-match '<host>/NAME/*';",
             "#   -p NAME set-tags chip=<chip> pool=<pool>", ""]
    config: dict = {}
    notes: dict[str, list[str]] = {}
    for spec in rig.select(boards):
        if spec.virtual or spec.farm is not None:
            continue
        group: dict = {}
        notes[spec.name] = []
        port = spec.port
        if port.kind == "url":
            from urllib.parse import urlsplit

            parts = urlsplit(port.value)
            group["NetworkSerialPort"] = {"host": parts.hostname, "port": parts.port, "speed": spec.baud,
                                          "protocol": "rfc2217" if parts.scheme == "rfc2217" else "raw"}
        elif port.kind in ("path", "by_id"):
            path = port.value if port.kind == "path" else f"/dev/serial/by-id/{port.value}"
            group["RawSerialPort"] = {"port": path, "speed": 115200}
        else:
            match = {"serial": {"ID_SERIAL_SHORT": port.value}, "location": {"ID_PATH": f"*-usb-0:{port.value}"},
                     "mac": None}[port.kind]
            if match is None:
                notes[spec.name].append(f"port by MAC {port.value}: give the USBSerialPort a udev match by hand")
            else:
                group["USBSerialPort"] = {"match": match, "speed": 115200}
        power = spec.power
        options = power.options
        if power.kind == "tasmota":
            group["NetworkPowerPort"] = {"model": "tasmota", "host": options.get("host"),
                                         "index": int(options.get("channel", 1))}
        elif power.kind == "shelly":
            gen = int(options.get("generation", 2))
            group["NetworkPowerPort"] = {"model": "shelly_gen2" if gen == 2 else "shelly_gen1",
                                         "host": f"http://{options.get('host')}",
                                         "index": int(options.get("channel", 0))}
        else:
            notes[spec.name].append(f"power {power.kind} {options}: labgrid has no model for it; put an HTTP front "
                                    f"speaking labgrid's rest model in front of it and use "
                                    f"NetworkPowerPort: {{model: rest, host: 'http://HOST:PORT/power/{{index}}', "
                                    f"index: N}}")
        config[spec.name] = group
    if not config:
        raise ValueError(f"rig {rig.name} has no bench boards to export")
    text = "\n".join(lines)
    for name, group in config.items():
        for note in notes[name]:
            text += f"# {name}: {note}\n"
        text += yaml.safe_dump({name: group}, sort_keys=False)
    return text
