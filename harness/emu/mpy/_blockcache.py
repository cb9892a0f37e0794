# The last few 4 KiB flash blocks read, for the flash block devices of the port layer.
#
# littlefs reads in 128-byte pieces, alternating between a metadata pair and file data;
# keeping the last few blocks turns hundreds of board calls per file into a few (the
# chip's flash cache does this job on a board). The buffers are allocated once, when the
# port layer loads, so they belong to the idle heap and never to an application's use.
import _hil

BLOCK = 4096


class BlockCache:
    def __init__(self, blocks=3):
        self.addrs = [None] * blocks
        self.bufs = [bytearray(BLOCK) for _ in range(blocks)]
        self.order = list(range(blocks))  # least recently used first

    def _touch(self, i):
        self.order.remove(i)
        self.order.append(i)

    def block(self, addr):
        """The 4 KiB block at flash address ``addr`` (aligned)."""
        for i in range(len(self.addrs)):
            if self.addrs[i] == addr:
                self._touch(i)
                return self.bufs[i]
        i = self.order[0]
        self.addrs[i] = None
        _hil.read(self.bufs[i], addr, BLOCK)
        self.addrs[i] = addr
        self._touch(i)
        return self.bufs[i]

    def forget(self, addr, length):
        """Drop every cached block that overlaps [addr, addr + length)."""
        for i in range(len(self.addrs)):
            a = self.addrs[i]
            if a is not None and addr - BLOCK < a < addr + length:
                self.addrs[i] = None


shared = BlockCache()
