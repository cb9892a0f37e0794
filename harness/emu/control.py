"""Control channel of a virtual board: power, reset, cut points, statistics, events.

Newline-delimited JSON over TCP. A request is ``{"cmd": NAME, ...}``; the reply
is ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.

=============  ==================================================================
cmd            meaning
=============  ==================================================================
status         power, chip state, endpoints, armed cut
power          ``on``: true/false. Off kills the chip process at once.
reset          pulse EN like the reset button; ``download``: hold BOOT too
cut            arm a power cut: ``at_op`` (absolute operation number) or
               ``after_ops`` (counted from now), ``policy`` none|prefix|random,
               ``seed``, ``base`` (the tear is drawn for operation at_op - base);
               ``clear``: true disarms
stats          flash operation counters, erase counts, NOR violations, boots,
               MicroPython heap peaks (this boot and the last ones), the eFuse
               (``efuse``: ``secure_version``, ``secure_version_bits``)
events         events since ``since`` (sequence number), e.g. boots and cuts
trace          ``on``: true starts a fresh trace of every flash operation (in
               ``<flash>.ops``, program bytes in ``<flash>.ops.data``; kept
               across resets), false stops it; the chip confirms with a
               ``trace`` event carrying its operation count
wifi           ``up``: true/false: the bench's access point appears or vanishes
               (open connections break; kept across resets and power cycles)
chip           forward ``message`` to the running chip
quit           power off and stop the board process
=============  ==================================================================
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any

from .chip import trace_paths
from .efuse import Efuse
from .flash import TEAR_POLICIES, CutPlan

if TYPE_CHECKING:
    from .process import Supervisor


class ControlError(Exception):
    pass


def handle_request(sup: "Supervisor", line: bytes) -> dict[str, Any]:
    try:
        req = json.loads(line)
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            raise ControlError('a request is a JSON object with a "cmd" string')
        handler = _COMMANDS.get(req["cmd"])
        if handler is None:
            raise ControlError(f"unknown command {req['cmd']!r} (known: {', '.join(sorted(_COMMANDS))})")
        result = handler(sup, req)
        return {"ok": True, **result}
    except json.JSONDecodeError as e:
        return {"ok": False, "error": f"request is not JSON: {e}"}
    except (ControlError, ValueError, RuntimeError) as e:
        return {"ok": False, "error": str(e)}


def _status(sup: "Supervisor", req: dict) -> dict:
    cut = sup.cut
    return {
        "power": sup.powered,
        "chip_state": sup.chip_state,
        "mode": (None if sup.chip is None else ("download" if sup.chip.run.download else "flash")),
        "serial_client": None if sup.serial_client is None else sup.serial_client.kind,
        "cut": None if cut is None else {"at_op": cut.at_op, "policy": cut.policy, "seed": cut.seed,
                                         "base": cut.base},
        "event_seq": sup.event_seq,
        "wifi": sup.wifi_up,
        **sup.endpoints(),
    }


def _power(sup: "Supervisor", req: dict) -> dict:
    on = req.get("on")
    if not isinstance(on, bool):
        raise ControlError('power needs "on": true or false')
    sup.power(on)
    return {"power": sup.powered}


def _reset(sup: "Supervisor", req: dict) -> dict:
    sup.press_reset(bool(req.get("download", False)))
    return {}


def _cut(sup: "Supervisor", req: dict) -> dict:
    if req.get("clear"):
        sup.cut = None
        sup.send_control_to_chip({"cut": None})
        return {"cut": None}
    policy = req.get("policy", "prefix")
    if policy not in TEAR_POLICIES:
        raise ControlError(f"unknown tear policy {policy!r} (known: {', '.join(TEAR_POLICIES)})")
    ops_now = sup.meta.get("ops")
    if "at_op" in req:
        at = int(req["at_op"])
        if at <= ops_now:
            raise ControlError(f"operation {at} has already happened (the flash is at operation {ops_now})")
    elif "after_ops" in req:
        n = int(req["after_ops"])
        if n < 1:
            raise ControlError("after_ops must be >= 1")
        at = ops_now + n
    else:
        raise ControlError('cut needs "at_op" or "after_ops" (or "clear": true)')
    plan = CutPlan(at_op=at, policy=policy, seed=int(req.get("seed", 0)), base=int(req.get("base", 0)))
    sup.cut = plan
    armed = {"at_op": plan.at_op, "policy": plan.policy, "seed": plan.seed, "base": plan.base}
    sup.send_control_to_chip({"cut": armed})
    return {"cut": armed, "ops_now": ops_now}


def _stats(sup: "Supervisor", req: dict) -> dict:
    stats = sup.meta.snapshot()
    # MicroPython heap above the idle baseline: this boot so far, and each boot that ended.
    stats["heap"] = {"current": sup.heap_current, "boots": list(sup.heap_boots)}
    # the chip's eFuse (harness.emu.efuse: kept next to the flash file, not in it)
    efuse = Efuse(sup.opts.chip.flash_file)
    stats["efuse"] = {"secure_version": efuse.read_secure_version(),
                      "secure_version_bits": f"0x{efuse.secure_version_bits():08x}"}
    return {"stats": stats}


def _events(sup: "Supervisor", req: dict) -> dict:
    since = int(req.get("since", 0))
    return {"events": [e for e in sup.events if e["seq"] > since], "event_seq": sup.event_seq}


def _wifi(sup: "Supervisor", req: dict) -> dict:
    up = req.get("up")
    if not isinstance(up, bool):
        raise ControlError('wifi needs "up": true or false')
    sup.wifi_up = up
    sup.send_control_to_chip({"wifi": up})
    sup._record("wifi", up=up)
    return {"wifi": up}


def _trace(sup: "Supervisor", req: dict) -> dict:
    on = req.get("on")
    if not isinstance(on, bool):
        raise ControlError('trace needs "on": true or false')
    ops_path, data_path = trace_paths(sup.opts.chip.flash_file)
    if on:
        for path in (ops_path, data_path):
            with open(path, "wb"):
                pass
    sup.trace = on
    if sup.chip is not None:
        sup.send_control_to_chip({"trace": on})
    sup._record("trace-request", on=on)
    return {"trace": on, "ops": ops_path, "data": data_path, "ops_now": sup.meta.get("ops"),
            "chip_running": sup.chip is not None}


def _chip(sup: "Supervisor", req: dict) -> dict:
    message = req.get("message")
    if not isinstance(message, dict):
        raise ControlError('chip needs a "message" object')
    if sup.chip is None:
        raise ControlError("the chip is not running")
    sup.send_control_to_chip(message)
    return {}


def _quit(sup: "Supervisor", req: dict) -> dict:
    sup.power(False)
    sup.request_exit()
    return {}


_COMMANDS = {
    "status": _status,
    "power": _power,
    "reset": _reset,
    "cut": _cut,
    "stats": _stats,
    "events": _events,
    "wifi": _wifi,
    "trace": _trace,
    "chip": _chip,
    "quit": _quit,
}


class ControlClient:
    """Blocking client for a virtual board's control endpoint (``tcp://host:port``)."""

    def __init__(self, url: str, timeout: float = 10.0):
        if not url.startswith("tcp://"):
            raise ValueError(f"control endpoint {url!r} is not a tcp://host:port URL")
        host, _, port = url[len("tcp://") :].rpartition(":")
        self.url = url
        self.timeout = timeout
        try:
            self._sock = socket.create_connection((host, int(port)), timeout=timeout)
        except OSError as e:
            raise ConnectionError(f"virtual board control endpoint {url} is not answering: {e}") from None
        self._buf = b""

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, cmd: str, **args) -> dict:
        self._sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"virtual board {self.url} closed the control connection")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ControlError(f"virtual board {self.url}: {cmd}: {reply.get('error')}")
        return reply

    def status(self) -> dict:
        return self.request("status")

    def power(self, on: bool) -> None:
        self.request("power", on=on)

    def reset(self, download: bool = False) -> None:
        self.request("reset", download=download)

    def arm_cut(self, *, at_op: int | None = None, after_ops: int | None = None,
                policy: str = "prefix", seed: int = 0, base: int = 0) -> dict:
        args: dict[str, Any] = {"policy": policy, "seed": seed, "base": base}
        if at_op is not None:
            args["at_op"] = at_op
        if after_ops is not None:
            args["after_ops"] = after_ops
        return self.request("cut", **args)["cut"]

    def wifi(self, up: bool) -> None:
        self.request("wifi", up=up)

    def trace(self, on: bool) -> dict:
        """Start (a fresh trace) or stop tracing the flash operations; the reply names the trace files."""
        return self.request("trace", on=on)

    def clear_cut(self) -> None:
        self.request("cut", clear=True)

    def stats(self) -> dict:
        return self.request("stats")["stats"]

    def events(self, since: int = 0) -> list[dict]:
        return self.request("events", since=since)["events"]

    def wait_event(self, name: str, since: int = 0, timeout: float = 10.0, **match) -> dict:
        """Wait for an event called ``name`` (with the given field values) after ``since``."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events(since):
                since = max(since, e["seq"])
                if e["event"] == name and all(e.get(k) == v for k, v in match.items()):
                    return e
            if time.monotonic() > deadline:
                raise TimeoutError(f"virtual board {self.url}: no {name!r} event within {timeout:.1f} s")
            time.sleep(0.02)

    def quit(self) -> None:
        try:
            self.request("quit")
        except (ConnectionError, OSError):
            pass
