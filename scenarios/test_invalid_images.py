"""Invalid images: what ESP-IDF's own OTA example tests serve (truncated image, truncated header,
random data, an image for another chip), offered as the next version.

The server is honest about what it sends (a manifest announces these bytes and their digest), so
only the device's checks of the image itself can catch them. Each must be refused, the boot
selection must not move, and the old version must keep running.
"""

import pytest

from harness import report

#: variant -> (what it is, the refusal reasons that name that fault)
INVALID = {
    "truncated": ("the first 64000 bytes of the next version (an SDK bin: at most half of it)",
                  {"bad-image", "image-hash", "incomplete", "bad-crc"}),
    "truncated_header": ("the first 180 bytes: the header ends inside the app descriptor",
                         {"bad-image", "image-hash", "bad-crc"}),
    "random": ("128 KiB of random bytes, the first 0", {"bad-image"}),
    "wrong_chip": ("the next version with another chip id in its header", {"wrong-chip"}),
}


@pytest.mark.kinds("firmware")
@pytest.mark.parametrize("variant", list(INVALID))
def test_invalid_image_is_refused(ota_target, variant):
    """Invalid image: a truncated image, a truncated header, random data or another chip's image is refused.

    Expected: ``refused`` with a reason naming the fault (``bad-image``, ``wrong-chip``, ...) and no
    ``switch``; the boot selection (otadata, boot_v1.x's parameters) and the boot slot unchanged;
    random data (nothing in it is an image) refused before anything is written; after a power cycle
    the old version runs.
    """
    what, reasons = INVALID[variant]
    before = ota_target.boot_state("before")
    other_before = ota_target.other_slot_md5()
    with report.step(f"publish {what}"):
        pub = ota_target.publish(variant)
    mark = ota_target.trigger(pub)

    outcome = ota_target.expect(("refused", "switch"), since=mark, timeout=120)
    assert outcome.name == "refused", f"the invalid image was switched to: {outcome.fields}"
    assert outcome["reason"] in reasons, f"refused for {outcome['reason']!r}, not as {' or '.join(sorted(reasons))}"
    if variant == "random":
        assert ota_target.other_slot_md5() == other_before  # refused before the first write

    after = ota_target.boot_state("after")
    assert after.boot_slot == before.boot_slot == ota_target.baseline_slot
    assert after.boot_selection == before.boot_selection

    with report.step("the old version is still what runs"):
        mark = ota_target.board.console.mark()
        ota_target.board.power_cycle()
        ready = ota_target.ready(since=mark)
        assert ota_target.running_versions(ready) == ota_target.baseline_versions
