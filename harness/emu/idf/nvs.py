"""ESP-IDF's NVS (non-volatile storage) in the nvs partition of the virtual board's flash.

The page format is ESP-IDF's (``components/nvs_flash``, format version 2):

* a page is one 4 KiB sector: a 32-byte header (state u32, sequence number u32, version u8 = 0xFE, 19 bytes
  0xFF, CRC-32 of bytes 4..27), a 32-byte entry-state bitmap (2 bits per entry: 11 empty, 10 written,
  00 erased), then 126 entries of 32 bytes;
* an entry: namespace index u8, type u8, span u8, chunk index u8 (0xFF), CRC-32 u32 (of the entry without
  this field), key (16 bytes, NUL padded), 8 data bytes: a primitive value (little endian, 0xFF padded), or
  for a string (type 0x21) its size u16, 0xFFFF, and the CRC-32 of its bytes, which follow in the next
  span - 1 entries;
* namespaces are entries of namespace 0, type U8, whose value is the index (1..254) the namespace's items use;
* page states: 0xFFFFFFFF empty, 0xFFFFFFFE active, 0xFFFFFFFC full, 0xFFFFFFF8 freeing, 0xFFFFFFF0 corrupt.

Every change is a real flash operation (entry program, then its state bits; the old entry's bits go to
"erased" afterwards), so a power cut can land between them and the next boot reads what the chip would.

Known differences from ESP-IDF's implementation: no garbage collection (when the pages are full a set fails
with ESP_ERR_NVS_NOT_ENOUGH_SPACE instead of reclaiming erased entries into a free page), blobs are stored
as single-page BLOB (0x41) items rather than BLOB_DATA/BLOB_IDX chunks, and the hash list that speeds up
look-ups is not modelled (it has no flash footprint).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

PAGE_SIZE = 4096
ENTRY_SIZE = 32
ENTRY_COUNT = 126
ENTRIES_OFFSET = 64
BITMAP_OFFSET = 32
PAGE_VERSION = 0xFE

PAGE_EMPTY = 0xFFFFFFFF
PAGE_ACTIVE = 0xFFFFFFFE
PAGE_FULL = 0xFFFFFFFC
PAGE_FREEING = 0xFFFFFFF8
PAGE_CORRUPT = 0xFFFFFFF0

ST_EMPTY = 3
ST_WRITTEN = 2
ST_ERASED = 0

TYPE_U8, TYPE_I8, TYPE_U16, TYPE_I16 = 0x01, 0x11, 0x02, 0x12
TYPE_U32, TYPE_I32, TYPE_U64, TYPE_I64 = 0x04, 0x14, 0x08, 0x18
TYPE_STR, TYPE_BLOB, TYPE_BLOB_DATA, TYPE_BLOB_IDX = 0x21, 0x41, 0x42, 0x48
PRIMITIVE = {TYPE_U8: 1, TYPE_I8: 1, TYPE_U16: 2, TYPE_I16: 2, TYPE_U32: 4, TYPE_I32: 4, TYPE_U64: 8, TYPE_I64: 8}

# esp_err_t values (nvs.h)
ESP_OK = 0
ESP_ERR_NOT_FOUND = 0x105
ESP_ERR_INVALID_ARG = 0x102
ERR = {name: 0x1100 + n for name, n in (
    ("NOT_INITIALIZED", 0x01), ("NOT_FOUND", 0x02), ("TYPE_MISMATCH", 0x03), ("READ_ONLY", 0x04),
    ("NOT_ENOUGH_SPACE", 0x05), ("INVALID_NAME", 0x06), ("INVALID_HANDLE", 0x07), ("KEY_TOO_LONG", 0x09),
    ("INVALID_STATE", 0x0B), ("INVALID_LENGTH", 0x0C), ("NO_FREE_PAGES", 0x0D), ("VALUE_TOO_LONG", 0x0E),
    ("PART_NOT_FOUND", 0x0F), ("NEW_VERSION_FOUND", 0x10))}


class NvsError(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def crc32(data: bytes) -> int:
    """ESP-IDF's ``esp_rom_crc32_le(0xffffffff, data, len)``."""
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


@dataclass
class Item:
    page: int
    index: int
    ns: int
    type: int
    span: int
    key: str
    value: bytes


class Flash:
    """What the store needs from the board's flash (offsets are absolute flash addresses)."""

    def __init__(self, read: Callable[[int, int], bytes], program: Callable[[int, bytes], None],
                 erase: Callable[[int, int], None]):
        self.read = read
        self.program = program
        self.erase = erase


class NvsPartition:
    def __init__(self, flash: Flash, offset: int, size: int):
        self.flash = flash
        self.offset = offset
        self.pages = size // PAGE_SIZE
        self.items: list[Item] = []
        self.namespaces: dict[str, int] = {}
        self.page_state: list[int] = []
        self.page_seq: list[int] = []
        self.active: int | None = None

    # -- loading -------------------------------------------------------------------------------------
    def _addr(self, page: int, at: int = 0) -> int:
        return self.offset + page * PAGE_SIZE + at

    def _entry_addr(self, page: int, index: int) -> int:
        return self._addr(page, ENTRIES_OFFSET + index * ENTRY_SIZE)

    def _states(self, page: int) -> list[int]:
        bitmap = self.flash.read(self._addr(page, BITMAP_OFFSET), 32)
        return [(bitmap[i // 4] >> ((i % 4) * 2)) & 3 for i in range(ENTRY_COUNT)]

    def load(self) -> int:
        """Scan the pages as nvs_flash_init does: ESP_OK, NO_FREE_PAGES or NEW_VERSION_FOUND."""
        if self.pages < 2:
            return ERR["NO_FREE_PAGES"]
        self.items.clear()
        self.namespaces.clear()
        self.page_state = []
        self.page_seq = []
        for p in range(self.pages):
            head = self.flash.read(self._addr(p), 32)
            state, seq, version = struct.unpack_from("<IIB", head)
            crc = struct.unpack_from("<I", head, 28)[0]
            if state in (PAGE_ACTIVE, PAGE_FULL, PAGE_FREEING):
                if version != 0xFF and version < PAGE_VERSION:
                    return ERR["NEW_VERSION_FOUND"]
                if crc != crc32(head[4:28]):
                    state = PAGE_CORRUPT
            elif state != PAGE_EMPTY:
                state = PAGE_CORRUPT
            self.page_state.append(state)
            self.page_seq.append(seq)
        used = sorted((p for p in range(self.pages) if self.page_state[p] in (PAGE_ACTIVE, PAGE_FULL, PAGE_FREEING)),
                      key=lambda p: self.page_seq[p])
        for p in used:
            self._load_page(p)
        actives = [p for p in used if self.page_state[p] == PAGE_ACTIVE]
        self.active = actives[-1] if actives else None
        if self.active is None:
            empty = [p for p in range(self.pages) if self.page_state[p] == PAGE_EMPTY]
            if not empty:
                return ERR["NO_FREE_PAGES"]
            self._activate(empty[0])
        if not any(s == PAGE_EMPTY for s in self.page_state):
            # ESP-IDF keeps one free page for garbage collection; a partition without one is refused.
            if len([s for s in self.page_state if s == PAGE_ACTIVE]) == 0:
                return ERR["NO_FREE_PAGES"]
        return ESP_OK

    def _load_page(self, page: int) -> None:
        states = self._states(page)
        i = 0
        while i < ENTRY_COUNT:
            if states[i] != ST_WRITTEN:
                i += 1
                continue
            raw = self.flash.read(self._entry_addr(page, i), ENTRY_SIZE)
            ns, typ, span = raw[0], raw[1], raw[2]
            crc = struct.unpack_from("<I", raw, 4)[0]
            if crc != crc32(raw[0:4] + raw[8:32]) or span == 0 or i + span > ENTRY_COUNT:
                i += 1
                continue
            key = raw[8:24].split(b"\0", 1)[0].decode(errors="replace")
            if typ in PRIMITIVE:
                value = raw[24:24 + PRIMITIVE[typ]]
            elif typ in (TYPE_STR, TYPE_BLOB):
                size, _res, data_crc = struct.unpack_from("<HHI", raw, 24)
                data = b"".join(self.flash.read(self._entry_addr(page, i + k), ENTRY_SIZE) for k in range(1, span))
                value = data[:size]
                if len(value) != size or crc32(value) != data_crc:
                    i += span
                    continue
            else:
                i += span
                continue
            item = Item(page, i, ns, typ, span, key, value)
            # a newer copy (later page, or later in the page) replaces an older one
            self.items = [x for x in self.items if not (x.ns == ns and x.key == key)]
            self.items.append(item)
            if ns == 0 and typ == TYPE_U8:
                self.namespaces[key] = value[0]
            i += span

    def _activate(self, page: int) -> None:
        seq = max(self.page_seq, default=0) + 1 if any(s != PAGE_EMPTY for s in self.page_state) else 0
        body = struct.pack("<IB", seq, PAGE_VERSION) + b"\xff" * 19
        head = struct.pack("<I", PAGE_ACTIVE) + body + struct.pack("<I", crc32(body))
        self.flash.program(self._addr(page), head)
        self.page_state[page] = PAGE_ACTIVE
        self.page_seq[page] = seq
        self.active = page

    def _set_page_state(self, page: int, state: int) -> None:
        self.flash.program(self._addr(page), struct.pack("<I", state))
        self.page_state[page] = state

    def _set_entry_state(self, page: int, index: int, state: int) -> None:
        byte = index // 4
        addr = self._addr(page, BITMAP_OFFSET + byte)
        old = self.flash.read(addr, 1)[0]
        shift = (index % 4) * 2
        new = (old & ~(3 << shift)) | (state << shift)
        self.flash.program(addr, bytes([new & 0xFF]))

    # -- API ------------------------------------------------------------------------------------------
    def find(self, ns: int, key: str) -> Item | None:
        for item in self.items:
            if item.ns == ns and item.key == key:
                return item
        return None

    def namespace(self, name: str, create: bool) -> int:
        if name in self.namespaces:
            return self.namespaces[name]
        if not create:
            raise NvsError(ERR["NOT_FOUND"])
        used = set(self.namespaces.values())
        index = next((i for i in range(1, 255) if i not in used), None)
        if index is None:
            raise NvsError(ERR["NOT_ENOUGH_SPACE"])
        self.write(0, name, TYPE_U8, bytes([index]))
        self.namespaces[name] = index
        return index

    def _free_entries(self, page: int) -> int:
        states = self._states(page)
        # entries are appended: the free ones are those after the last used one
        last = max((i for i, s in enumerate(states) if s != ST_EMPTY), default=-1)
        return ENTRY_COUNT - 1 - last

    def _next_index(self, page: int) -> int:
        states = self._states(page)
        return max((i for i, s in enumerate(states) if s != ST_EMPTY), default=-1) + 1

    def write(self, ns: int, key: str, typ: int, value: bytes) -> None:
        old = self.find(ns, key)
        if old is not None and old.type == typ and old.value == value:
            return  # ESP-IDF compares and skips an identical write
        if typ in PRIMITIVE:
            span = 1
        else:
            span = 1 + (len(value) + ENTRY_SIZE - 1) // ENTRY_SIZE
            if span > ENTRY_COUNT:
                raise NvsError(ERR["VALUE_TOO_LONG"])
        page = self.active
        if page is None or self._free_entries(page) < span:
            empty = [p for p in range(self.pages) if self.page_state[p] == PAGE_EMPTY]
            # one page stays free for garbage collection, as in ESP-IDF
            if len(empty) < 2:
                raise NvsError(ERR["NOT_ENOUGH_SPACE"])
            if page is not None:
                self._set_page_state(page, PAGE_FULL)
            self._activate(empty[0])
            page = empty[0]
        index = self._next_index(page)
        kb = key.encode()[:15].ljust(16, b"\0")
        if typ in PRIMITIVE:
            data = value.ljust(8, b"\xff")
        else:
            data = struct.pack("<HHI", len(value), 0xFFFF, crc32(value))
        head = bytes([ns, typ, span, 0xFF])
        entry = head + struct.pack("<I", crc32(head + kb + data)) + kb + data
        self.flash.program(self._entry_addr(page, index), entry)
        for k in range(1, span):
            chunk = value[(k - 1) * ENTRY_SIZE:k * ENTRY_SIZE].ljust(ENTRY_SIZE, b"\xff")
            self.flash.program(self._entry_addr(page, index + k), chunk)
        for k in range(span):
            self._set_entry_state(page, index + k, ST_WRITTEN)
        if old is not None:
            self._erase_item(old)
        self.items = [x for x in self.items if not (x.ns == ns and x.key == key)]
        self.items.append(Item(page, index, ns, typ, span, key, value))

    def _erase_item(self, item: Item) -> None:
        for k in range(item.span):
            self._set_entry_state(item.page, item.index + k, ST_ERASED)

    def erase_key(self, ns: int, key: str) -> None:
        item = self.find(ns, key)
        if item is None:
            raise NvsError(ERR["NOT_FOUND"])
        self._erase_item(item)
        self.items.remove(item)

    def erase_namespace_items(self, ns: int) -> None:
        for item in [x for x in self.items if x.ns == ns]:
            self._erase_item(item)
            self.items.remove(item)

    def erase_all_pages(self) -> None:
        self.flash.erase(self.offset, self.pages * PAGE_SIZE)
        self.items.clear()
        self.namespaces.clear()
        self.active = None
