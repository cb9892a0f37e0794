"""Bad CRC / hash: the update's content does not match the digest the server announced.

The image (or data file) is well-formed in itself; only the end-to-end check against the
announced SHA-256 can catch it. It must be refused with a clear reason, the boot
selection must not move, and the old version keeps running.
"""

from harness import report


def test_bad_hash_is_refused(target):
    before = target.boot_state("before")
    with report.step("publish a tampered update announced with the genuine digest"):
        pub = target.publish("tampered")
    mark = target.trigger(pub)

    refused = target.expect("refused", since=mark, timeout=120)
    assert refused["reason"] == "hash-mismatch"
    assert not target.board.console.events(mark, "switch")

    after = target.boot_state("after")
    if target.kind == "firmware":
        assert after.boot_slot == before.boot_slot == "ota_0"
        assert after.otadata == before.otadata
    else:
        assert (after.files.active, after.files.pending, after.files.versions["b"]) == ("a", False, None)

    with report.step("the old version is still what runs"):
        mark = target.board.console.mark()
        target.board.power_cycle()
        ready = target.ready(since=mark)
        assert target.running_version(ready) == target.baseline_version and ready["app"] == "1"
