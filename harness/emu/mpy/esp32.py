# esp32.Partition on the virtual board: OTA partitions, otadata and rollback, with the
# error codes ESP-IDF returns (an OSError carrying the negated esp_err_t).
import _blockcache
import _hil

_cache = _blockcache.shared

class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=4096):
        # id: BOOT, RUNNING or a label; _info is (type, subtype, addr, size, label, encrypted)
        if isinstance(id, tuple):
            self._info = id
        else:
            self._info = tuple(_hil.call("part_get", id))
        self._bs = block_size

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=4096):
        return [Partition(tuple(i), block_size) for i in _hil.call("part_find", type, subtype, label)]

    def info(self):
        return self._info

    def __repr__(self):
        t, s, a, n, label, enc = self._info
        return "<Partition type=%d, subtype=%d, address=%d, size=%d, label=%s, encrypted=%d>" % (
            t, s, a, n, label, enc)

    def readblocks(self, block, buf, offset=0):
        n = len(buf)
        if self._bs == 4096 and offset + n <= 4096 and block * 4096 + 4096 <= self._info[3]:
            try:
                buf[:] = memoryview(_cache.block(self._info[2] + block * 4096))[offset:offset + n]
                return
            except MemoryError:  # the heap is locked (a finaliser): read without allocating
                _hil.read(buf, self._info[2] + block * 4096 + offset, n)
                return
        data = _hil.unb64(_hil.call("part_read", self._info[2], self._info[3], block * self._bs + offset, n))
        buf[: len(data)] = data

    def writeblocks(self, block, buf, offset=None):
        # Without an offset the blocks are erased first (as the port does).
        erase = offset is None
        off = block * self._bs + (0 if offset is None else offset)
        _cache.forget(self._info[2] + off - off % 4096, len(buf) + off % 4096)
        _hil.write(3, buf, self._info[2], self._info[3], off, 1 if erase else 0, self._bs)

    def ioctl(self, op, arg):
        if op == 4:
            return self._info[3] // self._bs
        if op == 5:
            return self._bs
        if op == 6:
            _cache.forget(self._info[2] + arg * self._bs, self._bs)
            _hil.write(4, b"", self._info[2], self._info[3], arg * self._bs, self._bs)
            return 0
        if op in (1, 2, 3):
            return 0
        return None

    def set_boot(self):
        _hil.call("ota_set_boot", self._info[2])

    def get_next_update(self):
        return Partition(tuple(_hil.call("ota_next_update", self._info[2])))

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        _hil.call("ota_mark_valid")



HEAP_DATA = 4
HEAP_EXEC = 1


def idf_heap_info(capabilities):
    # (total, free, largest free block, minimum free ever) per IDF heap region.
    return [tuple(r) for r in _hil.call("idf_heap_info", capabilities)]
