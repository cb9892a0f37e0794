"""Rollback: the new version boots but fails its health check and never confirms.

After the next reset the bootloader (firmware) or the slot selector (files) must return
to the previous version, and the new slot must be marked as failed (otadata ABORTED).
"""

from harness import report


def test_unconfirmed_update_rolls_back(target):
    with report.step("the update server will answer the post-update health check with 503"):
        pub = target.publish("next" if target.kind == "firmware" else "unhealthy")
        if target.kind == "firmware":
            target.http.set_health("down")
    mark = target.trigger(pub)
    target.expect("switch", since=mark, timeout=120)

    with report.step("the new version boots, fails its check and rolls back"):
        rollback = target.expect("rollback", since=mark, timeout=90)
        assert rollback["kind"] == target.kind
        target.http.set_health("up")
        ready = target.ready(since=rollback.at, timeout=90)
        assert target.running_version(ready) == target.baseline_version and ready["app"] == "1"
        assert not target.board.console.events(mark, "confirmed")

    state = target.boot_state("after the rollback")
    if target.kind == "firmware":
        assert state.boot_slot == "ota_0"
        assert state.slots["ota_1"].ota_state == "ABORTED" and state.slots["ota_1"].version == pub.version
    else:
        assert (state.files.active, state.files.pending, state.files.previous) == ("a", False, None)
