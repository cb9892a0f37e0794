"""Bad CRC / hash: the update's content does not match the digest the server announced.

The image (or data file) is well-formed in itself; only the end-to-end check against the
announced SHA-256 can catch it. It must be refused with a clear reason, the boot
selection must not move, and the old version keeps running.
"""

import pytest

from harness import report
from harness.devices import Capability


@pytest.mark.needs(Capability.ANNOUNCES_DIGEST)
def test_bad_hash_is_refused(ota_target):
    """Bad hash: a tampered update announced with the genuine digest is refused.

    The image (or data file) is well-formed; only the end-to-end SHA-256 check against the
    announced digest can catch it. Expected: ``refused`` with ``reason=hash-mismatch``, the boot
    selection unchanged (otadata / the slot record), and after a power cycle the old version runs.
    """
    before = ota_target.boot_state("before")
    with report.step("publish a tampered update announced with the genuine digest"):
        pub = ota_target.publish("tampered")
    mark = ota_target.trigger(pub)

    outcome = ota_target.expect(("refused", "switch"), since=mark, timeout=120)
    assert outcome.name == "refused", f"the tampered update was accepted: {outcome.fields}"
    assert outcome["reason"] == "hash-mismatch"

    after = ota_target.boot_state("after")
    if ota_target.kind == "firmware":
        assert after.boot_slot == before.boot_slot == ota_target.baseline_slot
        assert after.boot_selection == before.boot_selection
    else:
        assert (after.files.active, after.files.pending, after.files.versions["b"]) == ("a", False, None)

    with report.step("the old version is still what runs"):
        mark = ota_target.board.console.mark()
        ota_target.board.power_cycle()
        ready = ota_target.ready(since=mark)
        assert ota_target.running_versions(ready) == ota_target.baseline_versions
