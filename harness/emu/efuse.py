"""The virtual ESP32's eFuse: the anti-rollback ``SECURE_VERSION`` field, kept across power cycles.

On an ESP32 the field is 32 bits of BLK3 (``ESP_EFUSE_SECURE_VERSION``, coding scheme None) and the
secure version is the number of bits set in it (``esp_efuse_read_secure_version``: a popcount of the
``CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD`` low bits, 32 by default). Raising it to ``n`` burns
bits ``0..n-1`` (``esp_efuse_update_secure_version``); a burnt bit never returns to 0.

The field is not flash: it lives in ``<flash-file>.efuse`` next to the board's flash file (a small JSON
file, ``{"BLK3": {"SECURE_VERSION": "0x00000003"}}``), so it outlives power cycles, resets and the chip
processes as an eFuse does, and nothing that erases, writes, re-flashes or restores the flash touches
it. A missing file is a fresh chip (every bit 0). Writers only ever OR bits in. The chip process burns
it (the bootloader model, the ESP-IDF runtime); the supervisor reads it for the control endpoint's
``stats`` (``efuse.secure_version``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

#: bits of the ESP32's SECURE_VERSION field (BLK3) = CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD's maximum
SECURE_VERSION_BITS = 32


def efuse_path(flash_file: str) -> str:
    """Where the eFuse of the board whose flash is ``flash_file`` is kept."""
    return str(flash_file) + ".efuse"


@dataclass
class SecureVersionUpdate:
    """What ``esp_efuse_update_secure_version(v)`` did: its return code name and the line it logs (tag
    ``efuse``), if any."""

    code: str
    level: str | None = None
    message: str | None = None


class Efuse:
    """The eFuse of one virtual chip (see the module's docstring)."""

    def __init__(self, flash_file: str):
        self.path = efuse_path(flash_file)

    def secure_version_bits(self) -> int:
        """The raw SECURE_VERSION field."""
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            return int(str(data["BLK3"]["SECURE_VERSION"]), 0) & ((1 << SECURE_VERSION_BITS) - 1)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{self.path}: not an eFuse file of the virtual chip: {e}") from None

    def read_secure_version(self) -> int:
        """``esp_efuse_read_secure_version``: the number of bits set in the field."""
        return bin(self.secure_version_bits()).count("1")

    def check_secure_version(self, secure_version: int) -> bool:
        """``esp_efuse_check_secure_version``: may an app of ``secure_version`` run?"""
        return secure_version >= self.read_secure_version()

    def burn_secure_version_bits(self, bits: int) -> int:
        """Program ``bits`` into the field (ORed in: a burnt bit stays burnt); returns the new field."""
        if bits < 0 or bits >> SECURE_VERSION_BITS:
            raise ValueError(f"0x{bits:x} does not fit the {SECURE_VERSION_BITS}-bit SECURE_VERSION field")
        new = self.secure_version_bits() | bits
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"BLK3": {"SECURE_VERSION": f"0x{new:08x}"}}, f)
            f.write("\n")
        os.replace(tmp, self.path)
        return new

    def update_secure_version(self, secure_version: int) -> SecureVersionUpdate:
        """``esp_efuse_update_secure_version`` (ESP-IDF v5, ``esp_efuse_fields.c``): raise the field to
        ``secure_version`` set bits; the same value is a no-op, a lower one ESP_FAIL, one beyond the field
        ESP_ERR_INVALID_ARG."""
        if secure_version > SECURE_VERSION_BITS or secure_version < 0:
            return SecureVersionUpdate("ESP_ERR_INVALID_ARG", "E",
                                       f"Max secure version is {SECURE_VERSION_BITS}. Given {secure_version} "
                                       "version can not be written.")
        hw = self.read_secure_version()
        if hw < secure_version:
            self.burn_secure_version_bits((1 << secure_version) - 1)
            return SecureVersionUpdate("ESP_OK", "I",
                                       f"Anti-rollback is set. eFuse field is updated({secure_version}).")
        if hw > secure_version:
            return SecureVersionUpdate("ESP_FAIL", "E", "Anti-rollback is not set. secure_version of app is lower "
                                                        f"that eFuse field({hw}).")
        return SecureVersionUpdate("ESP_OK")
