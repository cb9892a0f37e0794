"""The OTA scenarios. They run unchanged on any rig: ``pytest scenarios/ --rig emu`` (virtual
boards, the default in CI) or ``--rig bench1`` (real boards). Fixtures come from the
harness plugin (``harness.pytest_plugin``): ``ota_target`` is one board and update kind of the
rig, prepared in its baseline state.
"""
