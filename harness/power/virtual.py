"""Power switch for a virtual board: its supply is the board process's control endpoint.

Turning it off kills the chip process at once, exactly like pulling a supply:
whatever the chip was about to write never reaches the flash. The virtual
board needs no time to discharge, so the default off time is short.
"""

from __future__ import annotations

from ..emu.control import ControlClient, ControlError
from .base import PowerSwitch, PowerSwitchError


class VirtualPowerSwitch(PowerSwitch):
    default_off_time = 0.05

    def __init__(self, control_url: str, name: str = ""):
        super().__init__(name or control_url)
        self.control_url = control_url
        self._client: ControlClient | None = None

    def _ctl(self) -> ControlClient:
        if self._client is None:
            try:
                self._client = ControlClient(self.control_url)
            except ConnectionError as e:
                raise PowerSwitchError(str(e)) from None
        return self._client

    def _request(self, cmd: str, **args) -> dict:
        try:
            return self._ctl().request(cmd, **args)
        except (ControlError, ConnectionError, OSError) as e:
            self.close()
            raise PowerSwitchError(f"virtual power switch {self.name}: {e}") from None

    def on(self) -> None:
        self._request("power", on=True)

    def off(self) -> None:
        self._request("power", on=False)

    def state(self) -> bool | None:
        return bool(self._request("status")["power"])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
