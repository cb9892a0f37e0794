"""Shelly plugs and relays, Gen1 (REST) and Gen2+ (JSON-RPC over HTTP).

Gen1: ``GET /relay/<i>?turn=on|off`` switches, ``GET /relay/<i>`` reads; both
answer JSON with ``ison``. HTTP Basic auth when a password is set.

Gen2 and later: ``POST /rpc`` with a JSON-RPC frame; ``Switch.Set`` switches
(``{"id":0,"on":true}``), ``Switch.GetStatus`` reads (``result.output``).
HTTP Digest auth (SHA-256, user ``admin``) when a password is set.

Auto-off: with ``auto_off`` set, every "on" carries a flip-back timer (Gen2
``toggle_after``, Gen1 ``timer``), so the plug turns itself off if the harness
dies or loses the network instead of leaving a board powered for days. While
the switch is on, a background thread re-sends "on" with the same timer every
third of that time, so a living harness keeps its board powered. ``off()`` and
``close()`` stop the refresh; after ``close()`` the plug therefore turns off
within ``auto_off`` seconds, which is the point.
"""

from __future__ import annotations

import abc
import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from ._http import Credentials, HttpDevice, snippet
from ._options import as_int, as_seconds, as_text
from .base import PowerSwitch, PowerSwitchConfigError, PowerSwitchError

log = logging.getLogger(__name__)

#: identifies the harness in the device's logs (``src`` of a JSON-RPC frame)
RPC_SOURCE = "esp-ota-hil"


class _Refresher:
    """Re-sends "on" periodically so the flip-back timer only fires once the harness is gone."""

    def __init__(self, interval: float, send_on: Callable[[], None], name: str):
        self._interval = interval
        self._send_on = send_on
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.stop()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name=f"auto-off {self._name}",
                                        daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            try:
                self._send_on()
            except PowerSwitchError as e:
                # keep trying: one lost packet must not cut the board; if the plug stays
                # unreachable its own timer turns it off, which is the intended failure
                log.warning("auto-off refresh failed: %s", e)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()


class _ShellySwitch(PowerSwitch):
    label = "Shelly"

    def __init__(self, host: str, channel: int, auto_off: float | None, timeout: float, name: str,
                 basic: Credentials | None = None, digest: Credentials | None = None):
        self.host = as_text(host, "host")
        self.channel = as_int(channel, "channel", 0, 15)
        self.auto_off = None if auto_off is None else as_seconds(auto_off, "auto_off")
        super().__init__(name or f"{self.host}#{self.channel}")
        self._http = HttpDevice(self.host, label=self.label, timeout=as_seconds(timeout, "timeout"),
                                basic=basic, digest=digest)
        self._lock = threading.Lock()  # the refresher and the caller share one device
        self._refresher = None if self.auto_off is None else _Refresher(self.auto_off / 3, self._send_on, self.name)

    @abc.abstractmethod
    def _set(self, on: bool, flip_back: float | None) -> None:
        """Switch; with ``flip_back``, the device switches back by itself after that many seconds."""

    def _send_on(self) -> None:
        with self._lock:
            self._set(True, self.auto_off)

    def on(self) -> None:
        self._send_on()
        if self._refresher is not None:
            self._refresher.start()

    def off(self) -> None:
        if self._refresher is not None:
            self._refresher.stop()
        with self._lock:
            self._set(False, None)

    def close(self) -> None:
        if self._refresher is not None:
            self._refresher.stop()

    def _fail(self, what: str, expected: str, answer: Any) -> PowerSwitchError:
        return PowerSwitchError(f"{self.label} {self._http.base}: {what}: expected {expected}, "
                                f"got {snippet(json.dumps(answer).encode())}")


class ShellyGen1Switch(_ShellySwitch):
    """One relay of a Shelly Gen1 device (Shelly 1, Plug S, 2.5, ...).

    ``channel`` is the relay index from 0; ``username``/``password`` are for
    devices with login enabled (HTTP Basic).
    """

    label = "Shelly Gen1"

    def __init__(self, host: str, channel: int = 0, username: str = "admin", password: str | None = None,
                 auto_off: float | None = None, timeout: float = 3.0, name: str = ""):
        basic = None if password is None else Credentials(as_text(username, "username"), str(password))
        super().__init__(host, channel, auto_off, timeout, name, basic=basic)

    def _relay(self, query: str) -> bool:
        path = f"/relay/{self.channel}"
        answer = self._http.request_json("GET", path, query=query, expected="JSON with a boolean 'ison'")
        if isinstance(answer, dict) and isinstance(answer.get("ison"), bool):
            return answer["ison"]
        raise self._fail(f"GET {path}" + (f"?{query}" if query else ""), "JSON with a boolean 'ison'", answer)

    def _set(self, on: bool, flip_back: float | None) -> None:
        fields = {"turn": "on" if on else "off"}
        if flip_back is not None:
            fields["timer"] = f"{flip_back:g}"
        query = urlencode(fields)
        if self._relay(query) != on:
            raise PowerSwitchError(f"{self.label} {self._http.base}: GET /relay/{self.channel}?{query}: "
                                   f"expected ison={str(on).lower()}, the device reports ison={str(not on).lower()}")

    def state(self) -> bool | None:
        return self._relay("")


class ShellyGen2Switch(_ShellySwitch):
    """One switch of a Shelly Gen2/Gen3/Gen4 device (Plus, Pro, Plug S Gen3, ...).

    ``channel`` is the switch id from 0; ``password`` enables HTTP Digest (the
    user is always ``admin``).
    """

    label = "Shelly Gen2"

    def __init__(self, host: str, channel: int = 0, password: str | None = None, auto_off: float | None = None,
                 timeout: float = 3.0, name: str = ""):
        digest = None if password is None else Credentials("admin", str(password))
        super().__init__(host, channel, auto_off, timeout, name, digest=digest)
        self._next_id = 0

    def _rpc(self, method: str, params: dict[str, Any], expected: str) -> dict[str, Any]:
        self._next_id += 1
        frame = {"id": self._next_id, "src": RPC_SOURCE, "method": method, "params": params}
        body = json.dumps(frame, separators=(",", ":")).encode()
        answer = self._http.request_json("POST", "/rpc", body=body, content_type="application/json",
                                         expected=expected)
        what = f"POST /rpc {method} {json.dumps(params, separators=(',', ':'))}"
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            error = answer["error"]
            raise PowerSwitchError(f"{self.label} {self._http.base}: {what}: expected {expected}, "
                                   f"got error {error.get('code')}: {error.get('message')}")
        if not isinstance(answer, dict) or not isinstance(answer.get("result"), dict):
            raise self._fail(what, expected, answer)
        return answer["result"]

    def _set(self, on: bool, flip_back: float | None) -> None:
        params: dict[str, Any] = {"id": self.channel, "on": on}
        if flip_back is not None:
            params["toggle_after"] = flip_back
        self._rpc("Switch.Set", params, "a result with 'was_on'")

    def state(self) -> bool | None:
        expected = "a result with a boolean 'output'"
        result = self._rpc("Switch.GetStatus", {"id": self.channel}, expected)
        if isinstance(result.get("output"), bool):
            return result["output"]
        raise self._fail(f"POST /rpc Switch.GetStatus {{\"id\":{self.channel}}}", expected, result)


def shelly(host: str, generation: int = 2, channel: int = 0, username: str | None = None,
           password: str | None = None, auto_off: float | None = None, timeout: float = 3.0,
           name: str = "") -> ShellyGen1Switch | ShellyGen2Switch:
    """The rig file's ``shelly`` kind: ``generation: 1`` for the REST API, 2 (default) or later for JSON-RPC."""
    if as_int(generation, "generation", 1, 9) == 1:
        return ShellyGen1Switch(host, channel=channel, username="admin" if username is None else username,
                                password=password, auto_off=auto_off, timeout=timeout, name=name)
    if username not in (None, "admin"):
        raise PowerSwitchConfigError(f"power.username: expected 'admin' (fixed on Shelly Gen2+), got {username!r}")
    return ShellyGen2Switch(host, channel=channel, password=password, auto_off=auto_off, timeout=timeout, name=name)
