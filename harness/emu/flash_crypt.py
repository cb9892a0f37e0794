"""ESP32 flash encryption, as the chip's flash encryption block applies it to an encrypted write.

The stub's encrypted write (FLASH_BEGIN / FLASH_DEFL_BEGIN with the encrypt flag) goes through
the ROM's ``esp_rom_spiflash_write_encrypted``: the hardware encrypts every 32-byte block with
the key in eFuse BLOCK1, tweaked by the block's flash address as FLASH_CRYPT_CONFIG selects, and
only 32-byte aligned writes are possible. A blank chip has an all-zero BLOCK1 and
FLASH_CRYPT_CONFIG 0 (no tweak), which is what esptool's own test suite expects a blank ESP32 to
store after ``write-flash --encrypt --ignore-flash-enc-efuse``: the output of
``espsecure encrypt-flash-data --keyfile <32 zero bytes> --flash-crypt-conf 0``.

The cipher: each 16-byte block is byte-reversed, run through AES-256 *decryption* (the hardware
uses AES backwards), and byte-reversed again. Only FLASH_CRYPT_CONFIG 0 is modelled, the value
of the boards' blank eFuses.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ENCRYPTED_WRITE_ALIGN = 32  # esp_rom_spiflash_write_encrypted: address and length


def esp32_encrypt(data: bytes, address: int, key: bytes, crypt_config: int) -> bytes:
    """Ciphertext the ESP32 stores for ``data`` written encrypted at ``address``."""
    if crypt_config != 0:
        raise NotImplementedError("only FLASH_CRYPT_CONFIG 0 (a blank chip) is modelled")
    if len(key) != 32:
        raise ValueError("the ESP32 flash encryption key is 256 bits")
    if address % 16 or len(data) % 16:
        raise ValueError("flash encryption works on 16-byte blocks")
    # Reversing the whole buffer reverses every block and the block order; AES-ECB treats
    # blocks independently, and reversing again restores the order with each block reversed back.
    actor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return (actor.update(bytes(data)[::-1]) + actor.finalize())[::-1]
