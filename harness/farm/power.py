"""A place's power resource, switched by labgrid's own power driver, behind :class:`PowerSwitch`.

The place's resource is made on a local labgrid ``Target`` from what the coordinator says about it
(class and arguments), and the driver labgrid's client would use for it switches it: for a
``NetworkPowerPort`` labgrid's ``NetworkPowerDriver`` with the port's model (``shelly_gen2``,
``tasmota``, ``rest`` in front of a relay labgrid has no model for, ...). ``cycle`` is the
harness's: off, the rig's ``off_time``, on.
"""

from __future__ import annotations

from typing import Any

from ..power.base import PowerSwitch, PowerSwitchError

#: resource class -> the labgrid driver that switches it (as ``labgrid-client power`` picks them)
DRIVERS = {
    "NetworkPowerPort": "NetworkPowerDriver",
    "PDUDaemonPort": "PDUDaemonDriver",
    "TasmotaPowerPort": "TasmotaPowerDriver",
}


class LabgridPowerSwitch(PowerSwitch):
    def __init__(self, resource_cls: str, args: dict[str, Any], name: str = "", off_time: float | None = None):
        super().__init__(name or resource_cls)
        driver_name = DRIVERS.get(resource_cls)
        if driver_name is None:
            raise PowerSwitchError(f"power of {self.name}: labgrid resource {resource_cls} is not one the harness "
                                   f"switches ({', '.join(DRIVERS)})")
        try:
            from labgrid import Target
            from labgrid.factory import target_factory
        except ImportError as e:
            raise PowerSwitchError(f"power of {self.name}: needs labgrid: pip install 'esp-ota-hil[farm]' ({e})") \
                from None
        try:
            self._target = Target(f"hil-{self.name}")
            target_factory.make_resource(self._target, resource_cls, "power", dict(args))
            driver = target_factory.class_from_string(driver_name)(self._target, name=None)
            self._target.activate(driver)
        except Exception as e:
            raise PowerSwitchError(f"power of {self.name}: labgrid {driver_name} on {resource_cls} {args}: "
                                   f"{_text(e)}") from None
        self._driver = driver
        self.description = f"{resource_cls} {args.get('model', '')} {args.get('host', '')}".strip()
        if off_time is not None:
            self.default_off_time = off_time

    def _do(self, what: str, call):
        try:
            return call()
        except Exception as e:
            raise PowerSwitchError(f"power switch of {self.name} ({self.description}): {what}: {_text(e)}") from None

    def on(self) -> None:
        self._do("on", self._driver.on)

    def off(self) -> None:
        self._do("off", self._driver.off)

    def state(self) -> bool | None:
        try:
            return bool(self._driver.get())
        except NotImplementedError:  # a model that cannot read its output back
            return None
        except Exception as e:
            raise PowerSwitchError(f"power switch of {self.name} ({self.description}): get: {_text(e)}") from None

    def close(self) -> None:
        if self._target is not None:
            try:
                self._target.deactivate_all_drivers()
            except Exception:  # nothing is held open by the network drivers
                pass


def _text(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
