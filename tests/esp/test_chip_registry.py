"""harness.chips: one class per chip, one registry, every chip complete and consistent."""

import pytest

from harness.chips import CHIP_NAMES, CHIPS, Chip, Esp32, Esp8266, UnknownChipError, chip, chip_by_esptool_name
from harness.emu.rom import CHANGE_BAUDRATE, SPI_FLASH_MD5
from harness.esp import chips as formats


def test_registry_lists_each_chip_once_by_its_name():
    assert CHIPS == {"esp32": Esp32, "esp8266": Esp8266}
    assert CHIP_NAMES == ("esp32", "esp8266")
    assert chip("esp32") is Esp32
    assert chip("ESP8266") is Esp8266
    assert chip("esp-32") is Esp32
    assert chip(Esp8266) is Esp8266


def test_unknown_chip_names_the_known_ones():
    with pytest.raises(UnknownChipError, match=r"unknown chip 'esp32s3' \(known: esp32, esp8266\)"):
        chip("esp32s3")
    assert issubclass(UnknownChipError, ValueError)


@pytest.mark.parametrize("cls", list(CHIPS.values()), ids=list(CHIPS))
def test_every_chip_fills_in_every_fact(cls):
    for attr in Chip.__annotations__:
        assert hasattr(cls, attr), f"{cls.__name__} lacks {attr}"
    assert cls.image is formats.CHIPS[cls.name]  # the image format facts are referenced, not copied
    assert cls.has_partition_table == (cls.image.partition_table_offset is not None)
    assert len(cls.mac_oui) == 3
    plan = cls.micropython.heap_plan
    assert plan["device_free"] == plan["initial"] + sum(plan["grow"]) - plan["boot_used"]
    assert set(cls.micropython.updates) <= {"firmware", "files"}
    assert ("firmware" in cls.micropython.updates) == cls.has_partition_table  # OTA needs app slots
    assert cls.rom_profile().name == cls.name
    assert cls.rom_change_baud == (CHANGE_BAUDRATE in cls.rom_profile().rom_commands)
    assert cls.rom_flash_md5 == (SPI_FLASH_MD5 in cls.rom_profile().rom_commands)
    assert chip_by_esptool_name(cls.esptool_name) is cls
    assert cls.rom_boot().chip == cls.name
    assert len(cls.unique_id(bytes(range(6)))) in (4, 6)


def test_unique_id_as_each_port_reports_it():
    mac = bytes.fromhex("240ac4123456")
    assert Esp32.unique_id(mac) == mac
    assert Esp8266.unique_id(mac) == bytes([0x56, 0x34, 0x12, 0])


def test_a_chip_esptool_knows_and_the_registry_does_not():
    assert chip_by_esptool_name("ESP32-S3") is None
