"""Same-version rejection: an update whose version equals the running one.

It must be refused before anything is written: the other slot stays exactly as it was
and the boot selection does not move.
"""

import pytest

from harness.devices import Capability


@pytest.mark.needs(Capability.REFUSES_SAME_VERSION)
def test_same_version_is_refused_before_any_write(ota_target):
    """Same version: the running version offered again is refused before anything is written.

    Expected: ``refused`` with ``reason=same-version`` before any ``writing``, the other slot's MD5
    unchanged, the boot selection unchanged.
    """
    before = ota_target.boot_state("before")
    other_before = ota_target.other_slot_md5()
    pub = ota_target.publish("same")
    mark = ota_target.trigger(pub)

    outcome = ota_target.expect(("refused", "writing"), since=mark, timeout=60)
    assert outcome.name == "refused", f"the same version was being written: {outcome.fields}"
    assert outcome["reason"] == "same-version"

    assert ota_target.other_slot_md5() == other_before  # not one byte written to the other slot
    after = ota_target.boot_state("after")
    if ota_target.kind == "firmware":
        assert after.boot_slot == before.boot_slot and after.boot_selection == before.boot_selection
    else:
        assert (after.files.active, after.files.versions["b"]) == ("a", None)
