# Firmware OTA on the ESP32 (the esp_https_ota flow, on MicroPython's esp32.Partition):
# check the image before the first write, stream it in 4 KiB blocks into the next OTA
# slot with a running SHA-256, verify length and hash by re-reading the flash, and only
# then make it the boot partition. After any failure the boot partition is untouched.
import hashlib

from esp32 import Partition
from otautil import Refused, check_version, config, hexdigest, log

BLOCK = 4096
IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
CHIP_ID = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9}


def describe(block0):
    # (chip id, project, version) from an app image's first bytes (header + esp_app_desc_t).
    if len(block0) < 112 or block0[0] != IMAGE_MAGIC:
        raise Refused("bad-image", "magic 0x%02x" % (block0[0] if block0 else 0))
    chip_id = block0[12] | (block0[13] << 8)
    if int.from_bytes(block0[32:36], "little") != APP_DESC_MAGIC:
        raise Refused("bad-image", "no app descriptor")
    version = bytes(block0[48:80]).split(b"\0")[0].decode()
    project = bytes(block0[80:112]).split(b"\0")[0].decode()
    return chip_id, project, version


def running():
    part = Partition(Partition.RUNNING)
    buf = bytearray(112)
    part.readblocks(0, buf)
    return part, describe(buf)


def running_version():
    return running()[1][2]


class FirmwareSink:
    """Receives an image of ``size`` bytes into the next OTA slot.

    ``sha256`` is the digest the offer or manifest promised (None: only the image's own
    appended digest is checked, as the QuecPython-style API does); ``version`` the version
    it announced (None: known only from the image's first block).
    """

    def __init__(self, size, sha256, version=None):
        self.run, (_, self.project, self.running_version) = running()
        self.part = self.run.get_next_update()
        self.label = self.part.info()[4]
        self.size = size
        self.sha256 = sha256
        self.version = version
        if version is not None:
            check_version(self.running_version, version, config().get("allow_downgrade", False))
        if size > self.part.info()[3]:
            raise Refused("too-large", "%d bytes > slot %s of %d" % (size, self.label, self.part.info()[3]))
        self.buf = bytearray(BLOCK)
        self.restart()

    def restart(self):
        self._hash_appended = False
        self.fill = 0
        self.block = 0
        self.received = 0
        self.h = hashlib.sha256()

    def write(self, data):
        self.h.update(data)
        self.received += len(data)
        pos = 0
        while pos < len(data):
            n = min(len(data) - pos, BLOCK - self.fill)
            self.buf[self.fill:self.fill + n] = data[pos:pos + n]
            self.fill += n
            pos += n
            if self.fill == BLOCK:
                self._flush()

    def _flush(self):
        if self.block == 0:
            self._check_header()
        if self.fill < BLOCK:
            for i in range(self.fill, BLOCK):
                self.buf[i] = 0xFF
        self.part.writeblocks(self.block, self.buf)
        self.block += 1
        self.fill = 0
        if self.block % 64 == 0:
            log("progress", bytes=self.received, total=self.size)

    def _check_header(self):
        # Everything the first block can tell is checked before anything is written.
        chip_id, project, version = describe(self.buf)
        self._hash_appended = self.buf[23] == 1
        want = CHIP_ID.get(config().get("chip", "esp32"), 0)
        if chip_id != want:
            raise Refused("wrong-chip", "image chip id %d, board %d" % (chip_id, want))
        if self.version is not None and version != self.version:
            raise Refused("bad-image", "image says %s, offer said %s" % (version, self.version))
        check_version(self.running_version, version, config().get("allow_downgrade", False))
        log("writing", slot=self.label, version=version, project=project)

    def finish(self):
        if self.fill:
            self._flush()
        if self.received != self.size:
            raise Refused("size-mismatch", "%d of %d bytes" % (self.received, self.size))
        got = hexdigest(self.h)
        if self.sha256 is not None and got != self.sha256:
            raise Refused("hash-mismatch", "stream %s" % got[:16])
        # Read back what the flash holds: a write that did not stick must not be booted. The
        # same pass checks the SHA-256 the image carries over itself (its last 32 bytes).
        whole = hashlib.sha256()
        body = hashlib.sha256()
        tail = bytearray()
        body_len = self.size - 32
        pos = 0
        block = 0
        while pos < self.size:
            self.part.readblocks(block, self.buf)
            n = min(BLOCK, self.size - pos)
            view = memoryview(self.buf)[:n]
            whole.update(view)
            if pos < body_len:
                body.update(view[:min(n, body_len - pos)])
            if pos + n > body_len:
                tail += view[max(0, body_len - pos):]
            pos += n
            block += 1
        if hexdigest(whole) != got:
            raise Refused("flash-mismatch", "read-back differs")
        if self._hash_appended and body.digest() != bytes(tail):
            raise Refused("image-hash", "the image's own SHA-256 does not match")
        log("verified", slot=self.label, bytes=self.size, sha256=got[:16])

    def activate(self):
        try:
            self.part.set_boot()
        except OSError as e:
            raise Refused("bad-image", "set_boot refused: %s" % e.args[0])
        log("switch", kind="firmware", slot=self.label)


def confirm(healthy, timeout_s):
    # First boot of a new image: confirm it only after the health check passes; if it does
    # not pass in time, reset so the bootloader rolls back (the image stays unconfirmed).
    import machine
    import time

    part, (_, _, version) = running()
    try:
        state = part.app_state()
    except AttributeError:
        state = None  # older MicroPython: confirming every boot is harmless
    if state is not None and state != "pending_verify":
        return False
    t0 = time.ticks_ms()
    reason = ""
    while True:
        try:
            if healthy():
                Partition.mark_app_valid_cancel_rollback()
                log("confirmed", kind="firmware", version=version, slot=part.info()[4])
                return True
            reason = "unhealthy"
        except Exception as e:  # noqa: BLE001 - any failure of the check is a failed check
            reason = "%s:%s" % (type(e).__name__, e)
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_s * 1000:
            break
        time.sleep_ms(500)
    if state is None:
        log("unconfirmed", kind="firmware", version=version, reason=reason)
        return False
    log("rollback", kind="firmware", version=version, reason="health-failed", detail=reason)
    machine.reset()
