"""HTTPS: an update server whose certificate does not verify against the run's CA (issued for
another host name) must be refused before anything is written, as ESP-IDF's esp-tls and a
verifying MicroPython TLS context refuse it.
"""

import pytest

from harness import report
from harness.devices import Capability


@pytest.mark.needs(Capability.VERIFIES_TLS)
def test_server_with_a_wrong_certificate_is_refused(ota_target):
    """Wrong server certificate: the next version on an HTTPS server whose certificate names another host.

    Expected: ``refused`` (reason ``tls``; a port whose TLS cannot verify at all refuses every
    https URL: ``tls-unverifiable``) before any ``writing``; the other slot and the boot selection
    unchanged.
    """
    before = ota_target.boot_state("before")
    other_before = ota_target.other_slot_md5()
    with report.step("publish the next version on an HTTPS server certified for wrong-host.invalid"):
        pub = ota_target.publish("next", server=ota_target.bench.https("wrong-host"))
    mark = ota_target.trigger(pub)

    outcome = ota_target.expect(("refused", "writing", "switch"), since=mark, timeout=120)
    assert outcome.name == "refused", f"the update was taken from a server that did not verify: {outcome.fields}"
    assert outcome["reason"] in ("tls", "tls-unverifiable")
    assert ota_target.other_slot_md5() == other_before
    after = ota_target.boot_state("after")
    if ota_target.kind == "firmware":
        assert after.boot_slot == before.boot_slot and after.boot_selection == before.boot_selection
    else:
        assert (after.files.active, after.files.versions["b"]) == ("a", None)
