import pytest

from harness.esp.chips import ESP32, ESP8266, chip_info, format_size, parse_size


@pytest.mark.parametrize("text,expected", [
    ("4MB", 4 * 1024 * 1024), ("4M", 4 * 1024 * 1024), ("4mib", 4 * 1024 * 1024), ("1MB", 1 << 20),
    ("512KB", 512 * 1024), ("512K", 512 * 1024), ("0x400000", 0x400000), ("4096", 4096), (123, 123),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "4XB", "-1", "MB", "0.3K"])
def test_parse_size_rejects_garbage(bad):
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(bad)


def test_format_size_inverts_parse_size():
    for text in ("4MB", "16KB", "1MB", "3B"):
        assert format_size(parse_size(text)) == text


def test_chip_lookup_and_error():
    assert chip_info("ESP32") is ESP32
    assert chip_info("esp-8266") is ESP8266
    with pytest.raises(ValueError, match=r"unknown chip 'x' \(known: esp32, esp8266\)"):
        chip_info("x")


def test_chip_constants():
    assert (ESP32.image_chip_id, ESP32.bootloader_offset, ESP32.partition_table_offset) == (0, 0x1000, 0x8000)
    assert (ESP8266.image_chip_id, ESP8266.bootloader_offset, ESP8266.partition_table_offset) == (None, 0, None)
    assert ESP32.has_app_desc and not ESP8266.has_app_desc
    assert ESP32.hash_appended_default and not ESP8266.hash_appended_default


@pytest.mark.parametrize("size,code", [("1MB", 0), ("2MB", 1), ("4MB", 2), ("8MB", 3), ("16MB", 4), ("128MB", 7)])
def test_esp32_flash_size_codes(size, code):
    assert ESP32.flash_size_code(size) == code
    assert ESP32.flash_size_bytes(code) == parse_size(size)


@pytest.mark.parametrize("size,c1,code", [
    ("512KB", False, 0), ("256KB", False, 1), ("1MB", False, 2), ("2MB", False, 3), ("4MB", False, 4),
    ("2MB", True, 5), ("4MB", True, 6), ("8MB", False, 8), ("16MB", False, 9),
])
def test_esp8266_flash_size_codes_differ_from_esp32(size, c1, code):
    assert ESP8266.flash_size_code(size, c1=c1) == code
    assert ESP8266.flash_size_bytes(code) == parse_size(size)


def test_flash_size_code_errors_name_the_chip():
    with pytest.raises(ValueError, match="esp8266 images cannot encode a flash size of 32MB"):
        ESP8266.flash_size_code("32MB")
    with pytest.raises(ValueError, match="flash size code 0xf is not defined"):
        ESP32.flash_size_bytes(0xF)


def test_flash_freq_and_mapping():
    assert ESP32.flash_freq_code("80m") == 0xF and ESP32.flash_freq_name(0) == "40m"
    assert ESP32.is_mapped(0x3F400020) and ESP32.is_mapped(0x400D0020)
    assert not ESP32.is_mapped(0x40080000) and not ESP32.is_mapped(0x3FFB0000)
    assert ESP32.memory_type(0x40080000) == "IRAM"
