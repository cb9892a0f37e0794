"""Tasmota smart plugs and relay boards, through Tasmota's HTTP command endpoint.

``GET /cm?cmnd=Power<n>%20On`` (or ``Off``) switches output n;
``GET /cm?cmnd=Power<n>`` reads it. Both answer JSON such as
``{"POWER1":"ON"}``; single-output devices answer with a plain ``POWER`` key.
When the web UI has a password, Tasmota wants it in the query as
``user=...&password=...``; messages show the password as ``***``. The answer
to a switch command is checked, so a plug that refuses (wrong index,
credentials) raises instead of silently leaving the board powered.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from ._http import HttpDevice, snippet
from ._options import as_int, as_seconds, as_text
from .base import PowerSwitch, PowerSwitchError


class TasmotaSwitch(PowerSwitch):
    """One output of a Tasmota device over HTTP.

    ``host`` is the device's address or URL (``192.168.1.40``,
    ``http://plug-3.lan``); ``channel`` the n of ``Power<n>``; ``username``
    and ``password`` the web UI credentials, sent only when a password is set;
    ``timeout`` bounds each request.
    """

    label = "Tasmota plug"

    def __init__(self, host: str, channel: int = 1, username: str = "admin", password: str | None = None,
                 timeout: float = 3.0, name: str = ""):
        self.host = as_text(host, "host")
        self.channel = as_int(channel, "channel", 1, 32)
        self.username = as_text(username, "username")
        self.password = None if password is None else str(password)
        super().__init__(name or f"{self.host}#{self.channel}")
        self._http = HttpDevice(self.host, label=self.label, timeout=as_seconds(timeout, "timeout"))

    def _command(self, command: str) -> bool:
        fields = {"cmnd": command}
        if self.password is not None:
            fields = {"user": self.username, "password": self.password, **fields}
        query = urlencode(fields, quote_via=quote)
        shown = query if self.password is None else urlencode({**fields, "password": "***"}, quote_via=quote,
                                                               safe="*")
        key = f"POWER{self.channel}"
        expected = f'{{"{key}": "ON" or "OFF"}}'
        answer = self._http.request_json("GET", "/cm", query=query, shown_query=shown, expected=expected)
        value = None
        if isinstance(answer, dict):
            value = answer.get(key)
            if value is None and self.channel == 1:
                value = answer.get("POWER")  # single-output devices drop the index
        if isinstance(value, str) and value.upper() in ("ON", "OFF"):
            return value.upper() == "ON"
        raise PowerSwitchError(f"{self.label} {self._http.base}: GET /cm?{shown}: expected {expected}, "
                               f"got {snippet(json.dumps(answer).encode())}")

    def _switch(self, on: bool) -> None:
        command = f"Power{self.channel} {'On' if on else 'Off'}"
        if self._command(command) != on:
            raise PowerSwitchError(f"{self.label} {self._http.base}: sent {command!r}, expected output "
                                   f"{self.channel} {'on' if on else 'off'}, the device reports it "
                                   f"{'off' if on else 'on'}")

    def on(self) -> None:
        self._switch(True)

    def off(self) -> None:
        self._switch(False)

    def state(self) -> bool | None:
        return self._command(f"Power{self.channel}")
