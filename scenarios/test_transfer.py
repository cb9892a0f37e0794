"""How the update travels: a body without a length (chunked transfer) and an update behind
redirects (ESP-IDF's OTA example tests ``chunked`` and ``redirect_url``). Neither is a fault:
a device must take the update all the same, switch to it and confirm it.
"""

import pytest

from harness import report
from harness.devices import Capability


def _takes_the_update(ota_target, pub) -> None:
    mark = ota_target.trigger(pub)
    switch = ota_target.expect(("switch", "refused"), since=mark, timeout=120)
    assert switch.name == "switch", f"the update was refused: {switch.fields}"
    ready = ota_target.ready(since=switch.at, timeout=90)
    assert ota_target.running_version(ready) == pub.version
    ota_target.expect("confirmed", since=switch.at, timeout=30)
    if ota_target.kind == "firmware":
        state = ota_target.boot_state("after the update")
        assert state.boot_slot == ota_target.update_slot
        assert state.slots[ota_target.update_slot].version == pub.version


@pytest.mark.needs(Capability.OVER_HTTP)
@pytest.mark.parametrize("how", ["chunked", "redirect"])
def test_the_update_is_taken_whatever_its_transfer(ota_target, how):
    """Transfer: the next version served chunked (no Content-Length), or offered two redirects away.

    Chunked: every file of the update is sent with ``Transfer-Encoding: chunked``. Redirect: the URL
    the device is given answers 302 to another that answers 308 to the update (and so does every
    file a manifest names). Expected: ``switch``, the new version runs and is confirmed.
    """
    with report.step(f"publish the next version, {'chunked' if how == 'chunked' else 'behind a redirect chain'}"):
        pub = ota_target.publish("next", chunked=how == "chunked", redirect=how == "redirect")
    _takes_the_update(ota_target, pub)
    if how == "redirect":
        statuses = [r.get("status") for r in ota_target.http.requests()]
        assert 302 in statuses and 308 in statuses  # the device did follow them
