"""Power loss mid-write: the board loses power while the new image or files are being written.

Afterwards the board must boot the old version, report it, and a retried update must
succeed. Nothing may be bricked.
"""

from harness import report


def test_power_loss_mid_write(target):
    before = target.boot_state("before")

    with report.step("publish the next version; the server cuts the board's power 40% into it"):
        pub = target.publish("next", cut_at=0.4)
    mark = target.trigger(pub)
    with report.step("wait for the power cut"):
        assert pub.cut.wait(120), "the update never got 40% through the download"
        target.expect("writing", since=mark, timeout=5)  # the cut landed while writing

    with report.step("power on: the old version boots"):
        mark = target.board.console.mark()
        target.board.power_on()
        ready = target.ready(since=mark)
        assert target.running_version(ready) == target.baseline_version
        assert ready["app"] == "1"

    after = target.boot_state("after the cut")
    if target.kind == "firmware":
        assert after.boot_slot == before.boot_slot == "ota_0"
        assert after.otadata == before.otadata  # the boot selection never moved
        assert after.slots["ota_0"].valid and after.slots["ota_0"].version == target.baseline_version
    else:
        assert (after.files.active, after.files.pending) == ("a", False)
        assert after.files.versions["a"] == "1" and after.files.versions["b"] is None  # half slot never listed

    with report.step("retry: the same update, this time uninterrupted"):
        mark = target.trigger(pub)
        switch = target.expect("switch", since=mark, timeout=120)
        ready = target.ready(since=switch.at, timeout=90)
        assert target.running_version(ready) == pub.version
        target.expect("confirmed", since=switch.at, timeout=5)

    final = target.boot_state("after the retry")
    if target.kind == "firmware":
        assert final.boot_slot == "ota_1" and final.slots["ota_1"].version == pub.version
        assert final.slots["ota_1"].ota_state == "VALID"
    else:
        assert (final.files.active, final.files.versions["b"], final.files.pending) == ("b", pub.version, False)
