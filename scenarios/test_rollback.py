"""Rollback: the new version boots but fails its health check and never confirms.

After the next reset the bootloader (firmware) or the slot selector (files) must return
to the previous version, and the new slot must be marked as failed in otadata (ABORTED when
the device never confirmed it, INVALID when the device marked it invalid).
"""

import pytest

from harness import report
from harness.devices import Capability


@pytest.mark.needs(Capability.HEALTH_ROLLBACK)
def test_unconfirmed_update_rolls_back(ota_target):
    """Rollback: a new version that fails its health check is not confirmed and the old one returns.

    Firmware: the server's /health answers 503 after the switch; files: the new application
    is unhealthy. Expected: ``rollback``, no ``confirmed``, the baseline runs again, and the
    new slot is marked failed in otadata (ABORTED or INVALID, as the device says it leaves it;
    firmware) or dropped from the slot record (files).
    """
    with report.step("the update server will answer the post-update health check with 503"):
        pub = ota_target.publish("next" if ota_target.kind == "firmware" else "unhealthy")
        if ota_target.kind == "firmware":
            ota_target.http.set_health("down")
    mark = ota_target.trigger(pub)
    ota_target.expect("switch", since=mark, timeout=120)

    with report.step("the new version boots, fails its check and rolls back"):
        rollback = ota_target.expect(("rollback", "confirmed"), since=mark, timeout=90)
        assert rollback.name == "rollback", f"the unhealthy version was confirmed: {rollback.fields}"
        assert rollback["kind"] == ota_target.kind
        ota_target.http.set_health("up")
        ready = ota_target.ready(since=rollback.at, timeout=90)
        assert ota_target.running_versions(ready) == ota_target.baseline_versions
        assert not ota_target.board.console.events(mark, "confirmed")

    state = ota_target.boot_state("after the rollback")
    if ota_target.kind == "firmware":
        new = ota_target.update_slot
        assert state.boot_slot == ota_target.baseline_slot
        assert state.slots[new].ota_state == ota_target.rolled_back_state and state.slots[new].version == pub.version
    else:
        assert (state.files.active, state.files.pending, state.files.previous) == ("a", False, None)
