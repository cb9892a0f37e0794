"""ESP8266 SDK FOTA (boot_v1.x, user1/user2, the SDK's TCP protocol): the faults of that system in their own form.

The device asks the server for the slot it does not run from and is sent a 4-byte length and the bin.
A bin must be checked before the switch: its SDK CRC (a bin whose irom is corrupt boots and
crashes: boot_v1.x checks only the RAM segments), the slot it is linked for (a user1 build in
user2 crashes), its length (a stream that ends early, a bin larger than the slot). The one fault
only the loader can catch, a bin that passes the CRC but is no image, is boot_v1.x's fallback.

In every refusal the system parameters must not move and the old bin must boot again.
"""

import pytest

from harness import report
from harness.devices import Capability
from harness.servers import FaultPlan

pytestmark = [pytest.mark.needs(Capability.SDK_USER_BINS), pytest.mark.kinds("firmware")]


def _refused(ota_target, variant: str, reason: str, *, fault: FaultPlan | None = None, before_write: bool = False):
    before = ota_target.boot_state("before")
    other_before = ota_target.other_slot_md5()
    with report.step(f"publish {variant}"):
        pub = ota_target.publish(variant, fault=fault)
    mark = ota_target.trigger(pub)

    outcome = ota_target.expect(("refused", "switch"), since=mark, timeout=120)
    assert outcome.name == "refused", f"the {variant} bin was switched to: {outcome.fields}"
    assert outcome["reason"] == reason, f"refused for {outcome['reason']!r} ({outcome.get('detail')}), not {reason}"
    if before_write:
        assert ota_target.other_slot_md5() == other_before  # refused before the first write
    with report.step("the device restarts on the old bin"):
        ready = ota_target.ready(since=outcome.at, timeout=60)
        assert ota_target.running_versions(ready) == ota_target.baseline_versions

    after = ota_target.boot_state("after")
    assert after.boot_slot == before.boot_slot == ota_target.baseline_slot
    assert after.boot_selection == before.boot_selection  # the system parameters never moved


def test_bad_crc_is_refused(ota_target):
    """Bad CRC: a bin whose SDK CRC does not match its bytes is written, checked and refused; the old bin boots.

    Expected: ``writing``, then ``refused`` with ``reason=bad-crc`` and no ``switch``; the system
    parameters unchanged; the device restarts on its old version.
    """
    _refused(ota_target, "bad_crc", "bad-crc")


def test_truncated_stream_is_refused(ota_target):
    """Truncated stream: the server closes the connection 60% into the bin it announced; the client must not switch.

    Expected: ``refused`` with ``reason=truncated``; parameters unchanged; the old version runs.
    """
    size = len(ota_target.device.images("next")[1][2])
    _refused(ota_target, "next", "truncated", fault=FaultPlan(truncate_at=int(size * 0.6)))


def test_bin_linked_for_the_other_slot_is_refused(ota_target):
    """Wrong slot: asked for user2, the server sends the user1 build (linked at user1's addresses): refused unwritten.

    The seed's own client writes it and switches, and the board crashes on it: its irom code runs at
    the wrong addresses. Expected: ``refused`` with ``reason=wrong-slot`` before anything is written.
    """
    _refused(ota_target, "wrong_slot", "wrong-slot", before_write=True)


def test_bin_larger_than_the_slot_is_refused(ota_target):
    """Too large: a bin longer than the slot it would be written to is refused from its length word, unwritten.

    Expected: ``refused`` with ``reason=too-large`` before anything is written.
    """
    _refused(ota_target, "too_large", "too-large", before_write=True)


def test_loader_falls_back_from_a_bin_that_is_no_image(ota_target):
    """Loader fallback: a bin with a good CRC whose inner image magic is broken: the client switches, boot_v1.x
    cannot boot it and falls back to the old bin for good; a good update is taken afterwards.

    boot_v1.x says so (``error magic!``, ``first boot failed, reboot to try backup bin``) at the ROM's
    74880 baud, which a console at the app's rate cannot read, so the evidence is the device and the
    flash. Expected: ``switch``; then the old version ready again from user1, and every later boot runs
    user1 (checked by a power cycle); the next good version is then taken into user2 and runs. The
    last part needs the device's care: the parameters boot_v1.x leaves still name the failed bin, and
    the SDK's ``system_upgrade_reboot()`` toggles them, so a client that leaves them so switches the
    next update back to the old bin.
    """
    with report.step("publish the next version with its inner image magic broken and its CRC made good again"):
        pub = ota_target.publish("bad_magic")
    mark = ota_target.trigger(pub)
    switch = ota_target.expect(("switch", "refused"), since=mark, timeout=120)
    assert switch.name == "switch", f"the client refused a bin whose CRC is good: {switch.fields}"
    ready = ota_target.ready(since=switch.at, timeout=60)
    assert ota_target.running_versions(ready) == ota_target.baseline_versions
    assert ready["slot"] == "1"

    state = ota_target.boot_state("after the fallback")
    assert state.boot_slot == ota_target.baseline_slot

    with report.step("power cycle: the loader stays on the old bin"):
        mark = ota_target.board.console.mark()
        ota_target.board.power_cycle()
        ready = ota_target.ready(since=mark)
        assert ota_target.running_versions(ready) == ota_target.baseline_versions
        assert ready["slot"] == "1"

    with report.step("a good update is still taken: into user2, which then runs"):
        pub = ota_target.publish("next")
        mark = ota_target.trigger(pub)
        switch = ota_target.expect(("switch", "refused"), since=mark, timeout=120)
        assert switch.name == "switch", f"the good update was refused: {switch.fields}"
        ready = ota_target.ready(since=switch.at, timeout=60)
        assert ota_target.running_version(ready) == pub.version and ready["slot"] == "2"
    final = ota_target.boot_state("after the good update")
    assert final.boot_slot == ota_target.update_slot and final.slots[ota_target.update_slot].version == pub.version
