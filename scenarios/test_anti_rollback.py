"""Anti-rollback by secure_version: an image whose ``secure_version`` is below the chip's eFuse.

ESP-IDF's anti-rollback (``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``) burns the confirmed app's
``secure_version`` into an eFuse that never goes back; the bootloader will not boot anything below
it, and a client should refuse such an image from its app descriptor before writing a byte (ESP-IDF's
``advanced_https_ota`` example does). The ESP-IDF examples' test offers one with a lower
secure_version; here: the next version re-stamped with the baseline's secure_version minus one.
"""

import pytest

from harness.devices import Capability


@pytest.mark.kinds("firmware")
@pytest.mark.needs(Capability.ANTI_ROLLBACK)
def test_lower_secure_version_is_refused_before_any_write(ota_target):
    """Anti-rollback: the next version with a secure_version below the eFuse is refused before anything is written.

    Expected: with the baseline confirmed (the eFuse holds its secure_version), ``refused`` with
    ``reason=secure-version`` before any ``writing``, the other slot's MD5 unchanged, the boot selection
    unchanged, the eFuse unchanged (read on a virtual board).
    """
    before = ota_target.boot_state("before")
    efuse_before = ota_target.efuse_secure_version()
    if efuse_before is not None:  # the baseline is confirmed: its secure_version is burnt
        assert efuse_before == ota_target.baseline_secure_version
    other_before = ota_target.other_slot_md5()
    pub = ota_target.publish("lower_secure_version")
    mark = ota_target.trigger(pub)

    outcome = ota_target.expect(("refused", "writing"), since=mark, timeout=60)
    assert outcome.name == "refused", f"the lower secure_version was being written: {outcome.fields}"
    assert outcome["reason"] == "secure-version"

    assert ota_target.other_slot_md5() == other_before  # not one byte written to the other slot
    after = ota_target.boot_state("after")
    assert after.boot_slot == before.boot_slot and after.boot_selection == before.boot_selection
    assert ota_target.efuse_secure_version() == efuse_before
