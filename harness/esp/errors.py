"""Errors raised by the codecs in :mod:`harness.esp`.

Every decoder failure says *what* is wrong and *where*: the byte offset inside
the blob that was being decoded (an image, a partition table, an otadata
region). Offsets matter because the same decoders read real flash dumps: "the
checksum at 0x17f0a0 is wrong" points a person at the damaged sector.
"""

from __future__ import annotations


class FormatError(ValueError):
    """A blob does not have the layout its format requires.

    ``offset`` is the byte offset, relative to the start of the blob that was
    passed in, of the field that is wrong (``None`` when no single byte is to
    blame, e.g. an empty input).
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class ImageFormatError(FormatError):
    """An app/bootloader image (ESP32 or ESP8266) is malformed."""


class PartitionTableError(FormatError):
    """A partition table (binary or CSV) is malformed or inconsistent."""


class OtadataError(FormatError):
    """An otadata region cannot be decoded."""
