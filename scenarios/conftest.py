"""The OTA scenarios. They run unchanged on any rig: ``pytest scenarios/ --rig emu`` (virtual
boards, the default in CI) or ``--rig bench1`` (real boards). Fixtures come from the
harness plugin (``harness.pytest_plugin``): ``ota_target`` is one board, device implementation
and update kind of the rig, prepared in its baseline state; ``@pytest.mark.needs`` names what a
scenario asks of the device (``harness.devices.Capability``): where a device cannot, no case.
"""

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A scenario no device of the rig can take has no case (not a skipped placeholder), and one parametrized over
    update variants has none for a device that has no such variant (an ESP8266 SDK bin has no chip id to get
    wrong): those items are deselected, as where a device lacks a capability."""
    from harness.devices import DeviceError, device_class

    keep, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "ota_target" in params and not isinstance(params["ota_target"], tuple):
            # no board, device and update kind of the rig can take the scenario: pytest's placeholder for an empty
            # parametrization would report a skip; there is simply no case
            dropped.append(item)
            continue
        if "variant" in params and "ota_target" in params:
            _board, device, kind = params["ota_target"]
            try:
                known = device_class(device).variants.get(kind, ())
            except DeviceError:
                known = (params["variant"],)
            if params["variant"] not in known:
                dropped.append(item)
                continue
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
