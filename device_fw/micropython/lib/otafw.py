# Firmware OTA on the ESP32 (the esp_https_ota flow, on MicroPython's esp32.Partition):
# check the image before the first write, stream it in 4 KiB blocks into the next OTA
# slot with a running SHA-256, verify length and hash by re-reading the flash, and only
# then make it the boot partition. After any failure the boot partition is untouched.
#
# Stock esp32.Partition tells nothing about the trial state (no app_state()), so the
# agent reads the otadata partition itself, as the ESP-IDF bootloader does: two
# 32-byte entries (one at the start of each 4 KiB sector)
#     0 ota_seq u32 | 4 seq_label[20] | 24 ota_state u32 | 28 crc u32 (CRC-32 of ota_seq)
# An entry is valid unless seq is blank, the state is INVALID or ABORTED, or the CRC is
# wrong; the valid entry with the larger seq (sector 0 on a tie) is the active one and
# selects ota_N with N = (seq - 1) % number of ota_N partitions.
import hashlib
import struct

from esp32 import Partition
from otautil import Refused, check_version, config, crc32, hexdigest, log

BLOCK = 4096
IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
CHIP_ID = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9}

SUBTYPE_FACTORY = 0x00
SUBTYPE_OTA_0 = 0x10  # ota_N is 0x10 + N
SUBTYPE_OTADATA = 0x00  # data partition "ota"
SEQ_BLANK = 0xFFFFFFFF
# esp_ota_img_states_t
NEW = 0
PENDING_VERIFY = 1
VALID = 2
INVALID = 3
ABORTED = 4


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


def ota_slot(part):
    # N for an ota_N partition, None for anything else (factory, test).
    sub = part.info()[1]
    return sub - SUBTYPE_OTA_0 if SUBTYPE_OTA_0 <= sub < SUBTYPE_OTA_0 + 16 else None


def slot_of(seq, count):
    # The ota_N an otadata seq selects (C's uint32 arithmetic: seq 0 wraps).
    return ((seq - 1) & 0xFFFFFFFF) % count


def ota_count():
    # Number of ota_N partitions, counted from ota_0 until the first missing one (as ESP-IDF does).
    subtypes = [p.info()[1] for p in Partition.find(Partition.TYPE_APP)]
    n = 0
    while n < 16 and SUBTYPE_OTA_0 + n in subtypes:
        n += 1
    return n


def read_otadata():
    # Both otadata entries as [(seq, state, valid), (seq, state, valid)]; None without otadata.
    found = Partition.find(Partition.TYPE_DATA, subtype=SUBTYPE_OTADATA)
    if not found:
        return None
    buf = bytearray(32)
    entries = []
    for sector in (0, 1):
        found[0].readblocks(sector, buf)
        seq = struct.unpack_from("<I", buf, 0)[0]
        state = struct.unpack_from("<I", buf, 24)[0]
        crc = struct.unpack_from("<I", buf, 28)[0]
        # ESP-IDF: esp_rom_crc32_le(UINT32_MAX, &seq, 4), which is zlib's crc32(seq_bytes, 0xFFFFFFFF)
        valid = seq != SEQ_BLANK and state not in (INVALID, ABORTED) and crc32(buf[:4], 0xFFFFFFFF) == crc
        entries.append((seq, state, valid))
    return entries


def active_entry(entries):
    # Index of the entry the bootloader boots from: the valid one with the larger seq, sector 0
    # on a tie; None when neither is valid (the bootloader then boots factory, else ota_0).
    if entries is None:
        return None
    v0, v1 = entries[0][2], entries[1][2]
    if v0 and v1:
        return 0 if entries[0][0] >= entries[1][0] else 1
    if v0:
        return 0
    if v1:
        return 1
    return None


def trial_state():
    # The running firmware's otadata state (NEW, PENDING_VERIFY, VALID, ...), or None when it is
    # not the app the active otadata entry selects (factory, no otadata, or the bootloader fell
    # back to it because the selected image did not load): then it is not on trial.
    slot = ota_slot(Partition(Partition.RUNNING))
    entries = read_otadata()
    active = active_entry(entries)
    count = ota_count()
    if slot is None or active is None or not count:
        return None
    seq, state, _ = entries[active]
    if slot_of(seq, count) != slot:
        return None
    return state


def check_rollback_possible(run, target):
    # Before the first write, what esp_ota_begin checks, on the stock API: the update goes to
    # another ota_N slot, the running firmware is not itself on trial, and once the new image's
    # otadata entry is marked ABORTED the bootloader comes back to the running firmware.
    slot, new = ota_slot(run), ota_slot(target)
    if new is None or new == slot:
        raise Refused("no-rollback", "update slot %s is not another ota_N slot" % target.info()[4])
    entries = read_otadata()
    if entries is None:
        raise Refused("no-rollback", "no otadata partition")
    active = active_entry(entries)
    if active is None:
        # Nothing valid: the bootloader boots factory if there is one, else ota_0.
        if slot != 0 and not Partition.find(Partition.TYPE_APP, subtype=SUBTYPE_FACTORY):
            raise Refused("no-rollback", "empty otadata boots ota_0, not the running %s" % run.info()[4])
        return
    seq, state, _ = entries[active]
    selected = slot_of(seq, ota_count() or 1)
    if selected != slot:
        raise Refused("no-rollback", "otadata selects ota_%d, not the running %s" % (selected, run.info()[4]))
    if state == PENDING_VERIFY:
        raise Refused("unconfirmed", "the running firmware is still on trial")


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
        check_rollback_possible(self.run, self.part)
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
    # First boot of a new image (otadata says PENDING_VERIFY): confirm it only after the health
    # check passes; if it does not pass in time, reset while it is still unconfirmed, and the
    # bootloader marks it ABORTED and boots the previous slot.
    import machine
    import time

    state = trial_state()
    if state != PENDING_VERIFY:
        return False
    part, (_, _, version) = running()
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
    log("rollback", kind="firmware", version=version, reason="health-failed", detail=reason)
    machine.reset()
