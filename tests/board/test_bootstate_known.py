"""The boot-state oracle judges a slot from an image it knows only if the slot holds all of it."""

from __future__ import annotations

from harness.bootstate import FlashFile, _known_image, _Reader
from harness.esp import build_app

SLOT = 0x10000


def _flash(tmp_path, content: bytes) -> _Reader:
    path = tmp_path / "flash.bin"
    data = bytearray(b"\xff" * 0x100000)
    data[SLOT:SLOT + len(content)] = content
    path.write_bytes(bytes(data))
    return _Reader(FlashFile(path))


def test_a_known_prefix_of_the_slot_s_image_is_not_taken_for_it(tmp_path):
    image = build_app("esp32", project="app", version="2", size=0x30000).to_bytes()
    truncated = image[:64000]
    # the slot holds the whole image: the truncated copy served earlier matches its first 64000 bytes too
    assert _known_image(_flash(tmp_path, image), SLOT, [truncated, image]) == image
    assert _known_image(_flash(tmp_path, image), SLOT, [truncated]) is None  # the slot is read instead
    # a slot that holds only the truncated one is read too: a truncated image is never a shortcut
    assert _known_image(_flash(tmp_path, truncated), SLOT, [image, truncated]) is None
