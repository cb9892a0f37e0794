"""Anti-rollback by secure_version on a virtual ESP32: its eFuse, the bootloader model and the ESP-IDF runtime.

The ESP32's SECURE_VERSION eFuse field (:mod:`harness.emu.efuse`) is kept next to the board's flash file and
only gains bits. With a bootloader built with CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK (the host build records it
in its bootloader image), the bootloader never selects an app below the eFuse and burns the secure_version of
a VALID app it boots; the runtime burns the running app's secure_version when esp_ota_mark_app_valid_cancel_
rollback makes its entry VALID, and esp_ota_set_boot_partition refuses a lower one, erasing the partition.
The client (device_fw/esp_idf) is built with anti-rollback on and secure_version 2.
"""

from __future__ import annotations

import json

import pytest
from test_idf_runtime import idf_board  # noqa: F401  (the board fixture)

from harness.emu.boot_idf import bootloader_anti_rollback
from harness.emu.efuse import Efuse, efuse_path
from harness.emu.idf.build import DEFAULT_PROJECT, build_app
from harness.esp.app_image import bootloader_config, parse_image, set_version
from harness.esp.otadata import OtaSelectEntry, OtaState, as_entries
from harness.firmware import micropython_baseline
from harness.servers.tls import TlsMaterial

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not (DEFAULT_PROJECT / "main").is_dir(), reason="no device_fw/esp_idf")]

OTA_0, OTA_1, OTADATA = 0x10000, 0x190000, 0xD000
SECURE = {"BOOTLOADER_APP_ANTI_ROLLBACK": True, "BOOTLOADER_APP_SECURE_VERSION": 2}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return TlsMaterial.create(tmp_path_factory.mktemp("tls"), ["127.0.0.1", "localhost"])


@pytest.fixture(scope="module")
def secure_client(tls):
    return build_app(sdkconfig=SECURE, ca_pem=tls.ca_pem)



@pytest.fixture
def ready(idf_board, secure_client):  # noqa: F811
    return idf_board(secure_client, "secure").waiting_for_url()


def _manifest(server, name: str, image: bytes) -> str:
    import hashlib

    server.add(f"/fw/{name}.bin", image)
    version = parse_image(image, "esp32").app_desc.version
    server.add_json(f"/fw/{name}.json", {"version": version, "size": len(image),
                                         "sha256": hashlib.sha256(image).hexdigest(), "url": f"{name}.bin"})
    return server.url_for(f"/fw/{name}.json")


def _erased_in(before: dict, after: dict, start: int, size: int) -> list[int]:
    changed = {int(k, 16) for k, v in after["erase_counts"].items() if before["erase_counts"].get(k) != v}
    return [a for a in changed if start <= a < start + size]


# -- the eFuse ---------------------------------------------------------------------------------------------------
def test_the_efuse_is_kept_next_to_the_flash_and_only_gains_bits(tmp_path):
    flash = str(tmp_path / "board.bin")
    efuse = Efuse(flash)
    assert efuse.path == efuse_path(flash) == flash + ".efuse"
    assert efuse.read_secure_version() == 0  # a fresh chip
    assert efuse.update_secure_version(2).message == "Anti-rollback is set. eFuse field is updated(2)."
    assert (efuse.secure_version_bits(), efuse.read_secure_version()) == (0b11, 2)
    # another process (a later power cycle) reads what was burnt
    assert Efuse(flash).read_secure_version() == 2
    assert json.loads(open(flash + ".efuse").read()) == {"BLK3": {"SECURE_VERSION": "0x00000003"}}
    # the same value: nothing to do; a lower one: ESP_FAIL, nothing burnt; beyond the 32-bit field: refused
    assert efuse.update_secure_version(2).code == "ESP_OK"
    lower = efuse.update_secure_version(1)
    assert (lower.code, lower.level) == ("ESP_FAIL", "E") and efuse.read_secure_version() == 2
    assert efuse.update_secure_version(33).code == "ESP_ERR_INVALID_ARG"
    # bits are ORed in, never cleared: the value is the number of bits set
    efuse.burn_secure_version_bits(0b1000)
    efuse.burn_secure_version_bits(0b0001)
    assert (efuse.secure_version_bits(), efuse.read_secure_version()) == (0b1011, 3)
    with pytest.raises(ValueError):
        efuse.burn_secure_version_bits(1 << 32)


def test_only_a_bootloader_built_with_anti_rollback_has_it(secure_client):
    assert bootloader_config(secure_client.bootloader_bin.read_bytes()) == {"BOOTLOADER_APP_ANTI_ROLLBACK": "y"}
    assert parse_image(secure_client.image, "esp32").app_desc.secure_version == 2
    plain = build_app()
    assert bootloader_config(plain.bootloader_bin.read_bytes()) == {}
    assert parse_image(plain.image, "esp32").app_desc.secure_version == 0

    class Flash:
        def __init__(self, parts):
            self.data = bytearray(b"\xff" * 0x10000)
            for p in parts:
                if p.offset < len(self.data):
                    self.data[p.offset:p.offset + len(p.data)] = p.data[:len(self.data) - p.offset]

        def read(self, addr, length):
            return bytes(self.data[addr:addr + length])

    assert not bootloader_anti_rollback(Flash(micropython_baseline("esp32")))  # MicroPython's: off
    assert bootloader_anti_rollback(Flash(
        [type("P", (), {"offset": o, "data": f.read_bytes()}) for o, f in secure_client.flash_files]))


# -- the bootloader ----------------------------------------------------------------------------------------------------
def test_the_bootloader_burns_the_booted_app_s_secure_version_and_it_survives_power_cycles(ready):
    ready.wait(r"efuse: Anti-rollback is set\. eFuse field is updated\(2\)\.")
    assert ready.control.stats()["efuse"] == {"secure_version": 2, "secure_version_bits": "0x00000003"}
    ready.control.power(False)
    ready.since()
    ready.control.power(True)
    ready.wait(r"ota_client: Running firmware version: 1\r\n")
    assert "Anti-rollback is set" not in ready.console()[ready.mark:]  # already 2: nothing burnt again
    assert ready.control.stats()["efuse"]["secure_version"] == 2


def test_the_bootloader_never_selects_an_app_below_the_efuse(ready, secure_client):
    ready.wait(r"efuse: Anti-rollback is set")
    ready.control.power(False)
    # version 9 with secure_version 1 in ota_1, and otadata selecting it (VALID), as a rollback attack would
    with open(ready.flash_path, "r+b") as f:
        f.seek(OTA_1)
        f.write(set_version(secure_client.image, "9", 1))
        f.seek(OTADATA + 0x1000)
        f.write(OtaSelectEntry.make(2, OtaState.VALID).pack())
    ready.since()
    ready.control.power(True)
    ready.wait(r"OTA slot 1 has an app with secure_version, this version is smaller than in the device")
    ready.wait(r"boot: Loaded app from partition at offset 0x10000")
    ready.wait(r"ota_client: Running firmware version: 1\r\n")
    assert ready.control.stats()["efuse"]["secure_version"] == 2


# -- the runtime (app_update) ---------------------------------------------------------------------------------------
def test_the_client_refuses_a_lower_secure_version_before_writing(ready, secure_client, server):
    ready.wait(r"efuse: Anti-rollback is set")
    url = _manifest(server, "v2", set_version(secure_client.image, "2", 1))
    before = ready.control.stats()
    otadata = ready.flash(OTADATA, 0x2000)
    ready.since()
    ready.send(url)
    ready.wait(r"New firmware security version is less than eFuse programmed, 1 < 2")
    ready.wait(r"Waiting for the firmware URL on the serial line")
    after = ready.control.stats()
    assert not _erased_in(before, after, OTA_1, 0x180000)
    assert ready.flash(OTADATA, 0x2000) == otadata
    assert after["efuse"]["secure_version"] == 2


def test_set_boot_partition_refuses_a_lower_secure_version_and_erases_it(idf_board, tls, server):  # noqa: F811
    unchecked = build_app(sdkconfig={**SECURE, "OTA_CLIENT_MUTATION_SKIP_SECURE_VERSION_CHECK": True},
                          ca_pem=tls.ca_pem)
    b = idf_board(unchecked, "unchecked")
    b.wait(r"Waiting for the firmware URL on the serial line")
    image = set_version(unchecked.image, "2", 1)
    otadata = b.flash(OTADATA, 0x2000)
    b.since()
    b.send(_manifest(server, "v2", image))
    b.wait(r"Written \d+ of %d bytes" % len(image))  # nothing stopped the download
    b.wait(r"E \(\d+\) esp_ota_ops: This a new partition can not be booted due to a secure version is lower than "
           r"stored in efuse\. Partition will be erased\.")
    b.wait(r"Waiting for the firmware URL on the serial line")
    assert b.flash(OTA_1, 0x1000) == b"\xff" * 0x1000  # erased
    assert b.flash(OTADATA, 0x2000) == otadata  # boot selection unchanged
    assert b.control.stats()["efuse"]["secure_version"] == 2


def test_marking_a_new_version_valid_burns_its_secure_version(ready, secure_client, server):
    ready.wait(r"efuse: Anti-rollback is set\. eFuse field is updated\(2\)")
    ready.since()
    ready.send(_manifest(server, "v2", set_version(secure_client.image, "2", 3)))
    ready.wait(r"boot: Loaded app from partition at offset 0x190000")
    ready.wait(r"ota_client: Running firmware version: 2\r\n")
    # the bootloader left the PENDING_VERIFY app's secure_version alone: the app burns it once it is valid
    assert ready.control.stats()["efuse"]["secure_version"] == 2
    ready.wait(r"efuse: Anti-rollback is set\. eFuse field is updated\(3\)\.\r\n(.*\r\n)*?.*"
               r"App is valid, rollback cancelled successfully")
    assert ready.control.stats()["efuse"] == {"secure_version": 3, "secure_version_bits": "0x00000007"}
    assert [e.state for e in as_entries(ready.flash(OTADATA, 0x2000))].count(OtaState.VALID) == 2


def test_without_anti_rollback_the_bootloader_and_the_client_ignore_the_efuse(idf_board, tls, server,  # noqa: F811
                                                                                tmp_path):
    """The project's default build (anti-rollback off) on a chip whose eFuse an anti-rollback build burnt."""
    Efuse(str(tmp_path / "plain.bin")).update_secure_version(5)
    plain = build_app(ca_pem=tls.ca_pem)
    b = idf_board(plain, "plain")
    b.wait(r"Waiting for the firmware URL on the serial line")
    assert "Enabled a check secure version" not in b.console()
    b.since()
    b.send(_manifest(server, "v2", set_version(plain.image, "2")))  # secure_version 0 < 5
    b.wait(r"ota_client: Running firmware version: 2\r\n")
    b.wait(r"App is valid, rollback cancelled successfully")
    assert b.control.stats()["efuse"]["secure_version"] == 5
