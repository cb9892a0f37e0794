"""The OTA scenarios. They run unchanged on any rig: ``pytest scenarios/ --rig emu`` (virtual
boards, the default in CI) or ``--rig bench1`` (real boards). Fixtures come from the
harness plugin (``harness.pytest_plugin``): ``ota_target`` is one board, device implementation
and update kind of the rig, prepared in its baseline state; ``@pytest.mark.needs`` names what a
scenario asks of the device (``harness.devices.Capability``): where a device cannot, no case.
"""
