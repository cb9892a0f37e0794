"""Firmware for the boards under test: MicroPython baselines and the images a scenario serves.

A virtual board cannot execute Xtensa code, so what runs is decided by what an image
says about itself (ESP-IDF app descriptor, MicroPython banner): a baseline built here
boots the real MicroPython interpreter on a virtual board, exactly as a MicroPython
release binary would. On a bench the rig names real release binaries instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chips import chip as chip_class

MICROPYTHON_VERSION = "v1.27.0"
ESP32_APP_OFFSET = 0x10000


@dataclass(frozen=True)
class FlashPart:
    """One file of a baseline and where it goes."""

    offset: int
    data: bytes
    name: str


def micropython_baseline(chip: str, version: str = MICROPYTHON_VERSION, flash_size: str = "4MB",
                         app_size: int = 0x180000) -> list[FlashPart]:
    """What ``esptool write-flash`` puts on a board to run MicroPython ``version``.

    ESP32: bootloader at 0x1000, MicroPython's OTA partition table at 0x8000 (two 1.5 MB
    slots and a ``vfs`` data partition), the app in ota_0. ESP8266: one image at 0. The chip's
    class (``harness.chips``) builds it; an unknown chip is a ValueError naming the known ones.
    """
    return chip_class(chip).micropython_baseline(version, flash_size, app_size)


# -- images a scenario serves ---------------------------------------------------------------------
def previous_version(version: str) -> str:
    """A version that sorts before ``version``: ``v1.27.0`` -> ``v1.26.99-old``, ``v1.24.1`` -> ``v1.24.0-old``."""
    numbers = [int("".join(c for c in p if c.isdigit()) or 0) for p in version.lstrip("v").split("-")[0].split(".")]
    for i in range(len(numbers) - 1, -1, -1):
        if numbers[i] > 0:
            numbers[i] -= 1
            numbers[i + 1:] = [99] * (len(numbers) - i - 1)
            break
    return "v" + ".".join(map(str, numbers)) + "-old"


def next_version(version: str) -> str:
    """``v1.24.1`` -> ``v1.24.2`` (the last number goes up by one)."""
    head, _, last = version.rpartition(".")
    digits = "".join(c for c in last if c.isdigit()) or "0"
    return f"{head}.{int(digits) + 1}" if head else f"{version}.1"


class FirmwareFactory:
    """Derives the images of the OTA scenarios from a baseline ESP32 app image.

    Every variant except ``bad_checksum``/``bad_sha256``/``truncated``/``random`` is a
    well-formed image: a check that lets it through lets a real image through.
    """

    def __init__(self, baseline: bytes, chip: str = "esp32"):
        from .esp import parse_image

        self.baseline = baseline
        self.chip = chip
        self.version = parse_image(baseline, chip).app_desc.version

    def with_version(self, version: str) -> bytes:
        from .esp import set_version

        return set_version(self.baseline, version)

    def next(self) -> bytes:
        return self.with_version(next_version(self.version))

    def lower_secure_version(self) -> bytes:
        """The next version re-stamped with a ``secure_version`` one below the baseline's (what anti-rollback
        must refuse); a baseline at secure_version 0 has nothing below it (ValueError)."""
        from .esp import parse_image, set_version

        secure = parse_image(self.baseline, self.chip).app_desc.secure_version
        if secure == 0:
            raise ValueError("the baseline's secure_version is 0: no image can have a lower one")
        return set_version(self.baseline, next_version(self.version), secure - 1, self.chip)

    def same(self) -> bytes:
        return self.baseline

    def older(self) -> bytes:
        return self.with_version(previous_version(self.version))

    def tampered(self) -> bytes:
        """The next version with one byte of code changed and its own checksum and hash redone.

        The image is valid in itself; only a check against the digest the server
        announced for the genuine image can tell.
        """
        from .esp import parse_image, rehash

        image = bytearray(self.next())
        seg = parse_image(bytes(image), self.chip).segments[-2]
        image[seg.data_offset + seg.length // 2] ^= 0x5A
        return rehash(bytes(image), self.chip)

    def bad_sha256(self) -> bytes:
        image = bytearray(self.next())
        image[-1] ^= 0xFF
        return bytes(image)

    def bad_checksum(self) -> bytes:
        """A segment byte changed, the appended SHA-256 redone: only the XOR checksum is wrong."""
        import hashlib

        from .esp import parse_image

        image = bytearray(self.next())
        parsed = parse_image(bytes(image), self.chip)
        seg = parsed.segments[-2]
        image[seg.data_offset + 1] ^= 0x01
        if parsed.digest_offset is not None:
            image[parsed.digest_offset:parsed.digest_offset + 32] = hashlib.sha256(
                bytes(image[:parsed.digest_offset])).digest()
        return bytes(image)

    def truncated(self, keep: float | int = 64000) -> bytes:
        """The next version cut short: its first ``keep`` bytes (an int; ESP-IDF's OTA example tests keep 64000),
        or that fraction of it (a float)."""
        data = self.next()
        return data[: keep if isinstance(keep, int) else int(len(data) * keep)]

    def truncated_header(self, keep: int = 180) -> bytes:
        """Only the start of the next version: 180 bytes end inside its app descriptor, as in ESP-IDF's tests."""
        return self.next()[:keep]

    def wrong_chip(self, chip_id: int = 9) -> bytes:
        from .esp import rehash

        image = bytearray(self.next())
        image[12:14] = chip_id.to_bytes(2, "little")
        return rehash(bytes(image), self.chip)

    def oversized(self, slot_size: int) -> bytes:
        from .esp import build_app

        app = build_app(self.chip, project="micropython", version=next_version(self.version), size=slot_size + 0x10000,
                        micropython_banner=True)
        return app.to_bytes()

    def random(self, size: int = 0x20000, seed: int = 1) -> bytes:
        """Random bytes; the first is 0, so no seed makes them start like an image (0xE9)."""
        import random as _random

        return b"\0" + _random.Random(seed).randbytes(size - 1)



# -- file bundles (the application the agent keeps in its slots) ----------------------------------
def app_bundle(version: str, *, healthy: bool = True, data_size: int = 96 * 1024,
               broken: bool = False) -> dict[str, bytes]:
    """An application of about ``data_size`` bytes: ``app.py`` (its version and health check) and data.

    ``healthy=False`` gives an app whose health check fails; ``broken=True`` one that
    cannot even be imported.
    """
    import random as _random

    source = f"VERSION = {version!r}\n\n\ndef health():\n    return {bool(healthy)!r}\n"
    if broken:
        source = f"VERSION = {version!r}\nraise RuntimeError('app {version} fails to start')\n"
    data = _random.Random(f"app-data:{version}").randbytes(data_size)
    return {"app.py": source.encode(), "assets/data.bin": data}
