"""Power loss mid-write: the board loses power while the new image or files are being written.

Afterwards the board must boot the old version, report it, and a retried update must
succeed. Nothing may be bricked.
"""

from harness import report


def test_power_loss_mid_write(ota_target):
    """Power loss mid-write: the power is cut 40% into the download; the old version boots and a retry succeeds.

    Expected after power-on: the baseline version runs and reports itself, the boot selection
    (otadata, boot_v1.x's parameters, or the file slot record) never moved, the half-written slot is
    not listed; then the same update, uninterrupted, switches to the new version and is confirmed
    (where the device confirms: the SDK client's new bin is taken for good once boot_v1.x boots it).
    """
    before = ota_target.boot_state("before")

    with report.step("publish the next version; the server cuts the board's power 40% into it"):
        pub = ota_target.publish("next", cut_at=0.4)
    mark = ota_target.trigger(pub)
    with report.step("wait for the power cut"):
        assert pub.cut.wait(120), "the update never got 40% through the download"
        ota_target.expect("writing", since=mark, timeout=5)  # the cut landed while writing

    with report.step("power on: the old version boots"):
        mark = ota_target.board.console.mark()
        ota_target.board.power_on()
        ready = ota_target.ready(since=mark, timeout=ota_target.board.spec.boot_timeout + 15)
        assert ota_target.running_versions(ready) == ota_target.baseline_versions

    after = ota_target.boot_state("after the cut")
    if ota_target.kind == "firmware":
        old = ota_target.baseline_slot
        assert after.boot_slot == before.boot_slot == old
        assert after.boot_selection == before.boot_selection  # the boot selection never moved
        assert after.slots[old].valid and after.slots[old].version == ota_target.baseline_version
    else:
        assert (after.files.active, after.files.pending) == ("a", False)
        assert after.files.versions["a"] == "1" and after.files.versions["b"] is None  # half slot never listed

    with report.step("retry: the same update, this time uninterrupted"):
        mark = ota_target.trigger(pub)
        switch = ota_target.expect("switch", since=mark, timeout=120)
        ready = ota_target.ready(since=switch.at, timeout=90)
        assert ota_target.running_version(ready) == pub.version
        if ota_target.confirms:
            ota_target.expect("confirmed", since=switch.at, timeout=5)

    final = ota_target.boot_state("after the retry")
    if ota_target.kind == "firmware":
        new = ota_target.update_slot
        assert final.boot_slot == new and final.slots[new].version == pub.version
        if ota_target.confirms:
            assert final.slots[new].ota_state == "VALID"
    else:
        assert (final.files.active, final.files.versions["b"], final.files.pending) == ("b", pub.version, False)
