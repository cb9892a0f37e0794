# The block device the filesystem lives on, laid out as each port lays it out.
#   ESP32: the data partition labelled "vfs" (4 KiB blocks through esp32.Partition).
#   ESP8266: from esp.flash_user_start() plus one reserved sector to 20 KiB before the end
#   of flash (the SDK keeps its parameters there).
import _blockcache
import _hil

bdev = None

if _hil.call("chip") == "esp32":
    from esp32 import Partition

    _found = Partition.find(Partition.TYPE_DATA, label="vfs")
    bdev = _found[0] if _found else None
else:
    import esp

    class FlashBdev:
        SEC_SIZE = 4096
        RESERVED_SECS = 1
        START_SEC = esp.flash_user_start() // SEC_SIZE + RESERVED_SECS

        def __init__(self, blocks):
            self.blocks = blocks

        def readblocks(self, n, buf, off=0):
            if off + len(buf) > self.SEC_SIZE:
                esp.flash_read((n + self.START_SEC) * self.SEC_SIZE + off, buf)
                return
            try:
                block = _blockcache.shared.block((n + self.START_SEC) * self.SEC_SIZE)
                buf[:] = memoryview(block)[off:off + len(buf)]
            except MemoryError:  # the heap is locked (a finaliser): read without allocating
                _hil.read(buf, (n + self.START_SEC) * self.SEC_SIZE + off, len(buf))

        def writeblocks(self, n, buf, off=None):
            _blockcache.shared.forget((n + self.START_SEC) * self.SEC_SIZE, self.SEC_SIZE)
            if off is None:
                esp.flash_erase(n + self.START_SEC)
                off = 0
            esp.flash_write((n + self.START_SEC) * self.SEC_SIZE + off, buf)

        def ioctl(self, op, arg):
            if op == 4:  # block count
                return self.blocks
            if op == 5:  # block size
                return self.SEC_SIZE
            if op == 6:  # erase a block
                _blockcache.shared.forget((arg + self.START_SEC) * self.SEC_SIZE, self.SEC_SIZE)
                esp.flash_erase(arg + self.START_SEC)
                return 0

    _size = esp.flash_size()
    if _size >= 1024 * 1024:
        bdev = FlashBdev((_size - 20480) // FlashBdev.SEC_SIZE - FlashBdev.START_SEC)
