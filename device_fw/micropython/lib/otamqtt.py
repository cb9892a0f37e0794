# MQTT push: a minimal MQTT 3.1.1 client (QoS 0) and the chunked OTA pull protocol.
#
# Topics under the device's base B (seed scheme): the server offers on B+"u" (JSON), sends
# chunks on B+"uc" (binary), and the device reports and asks on B+"r" (JSON).
#   offer:  {"op": "offer", "id": ID, "kind": "firmware"|"files", "version": V, "size": N,
#            "sha256": HEX, "chunk": C[, "files": [{"name", "size", "sha256"}, ...]]}
#   get:    {"op": "get", "id": ID, "seq": k, "n": W}          device -> server
#   chunk:  4-byte id + u32 BE seq + u32 BE CRC-32(data) + data    server -> device
#           (the CRC of zlib.crc32; otautil.crc32 computes it where binascii has no crc32)
#   status: {"op": "status", "id": ID, "state": S[, "reason": R, "detail": D]}
# Only W chunks are in flight, so an image of any size passes through a few KiB of RAM.
import binascii
import hashlib
import json
import socket
import struct

from otautil import Refused, crc32, hexdigest, log

WINDOW = 4
CHUNK_TIMEOUT_MS = 5000
MAX_RETRIES = 5


class MQTTError(OSError):
    pass


class Client:
    def __init__(self, host, port, client_id, keepalive=60):
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keepalive = keepalive
        self.sock = None
        self.pid = 0

    def _str(self, s):
        b = s.encode() if isinstance(s, str) else s
        return struct.pack("!H", len(b)) + b

    def _send(self, first, body):
        n = len(body)
        head = bytearray([first])
        while True:
            b = n & 0x7F
            n >>= 7
            head.append(b | (0x80 if n else 0))
            if not n:
                break
        self.sock.write(bytes(head) + body)

    def _read(self, n):
        data = self.sock.read(n)
        if data is None or len(data) != n:
            raise MQTTError(104, "broker closed the connection")
        return data

    def _length(self):
        # MQTT's variable-length "remaining length": 7 bits per byte, low bits first.
        n = 0
        shift = 0
        while True:
            b = self._read(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def _packet(self):
        first = self._read(1)[0]
        n = self._length()
        return first, (self._read(n) if n else b"")

    def connect(self):
        ai = socket.getaddrinfo(self.host, self.port)[0][-1]
        self.sock = socket.socket()
        self.sock.settimeout(10)
        self.sock.connect(ai)
        body = self._str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", self.keepalive) + self._str(self.client_id)
        self._send(0x10, body)
        first, ack = self._packet()
        if first != 0x20 or len(ack) != 2 or ack[1] != 0:
            raise MQTTError(111, "CONNACK refused (%r)" % (ack,))

    def subscribe(self, topic):
        self.pid = self.pid % 65535 + 1
        self._send(0x82, struct.pack("!H", self.pid) + self._str(topic) + b"\x00")
        while True:
            first, body = self._packet()
            if first == 0x90:
                if body[2:3] == b"\x80":
                    raise MQTTError(1, "subscription refused: %s" % topic)
                return

    def publish(self, topic, payload):
        if isinstance(payload, str):
            payload = payload.encode()
        self._send(0x30, self._str(topic) + payload)

    def ping(self):
        self._send(0xC0, b"")

    def wait(self, timeout_ms):
        # Next PUBLISH as (topic, payload), or None when nothing arrives in time.
        self.sock.settimeout(timeout_ms / 1000)
        try:
            first = self.sock.read(1)
        except OSError as e:
            if e.args and e.args[0] in (11, 110, 116):  # EAGAIN, ETIMEDOUT
                return None
            raise
        finally:
            self.sock.settimeout(10)
        if not first:
            raise MQTTError(104, "broker closed the connection")
        n = self._length()
        body = self._read(n) if n else b""
        if first[0] & 0xF0 != 0x30:
            return self.wait(timeout_ms) if first[0] in (0xD0, 0x90) else None
        tlen = struct.unpack("!H", body[:2])[0]
        topic = body[2:2 + tlen].decode()
        pos = 2 + tlen + (2 if first[0] & 0x06 else 0)
        # A view, not a copy: on an ESP8266 every chunk-sized copy fragments a 36 KiB heap.
        return topic, memoryview(body)[pos:]

    def close(self):
        if self.sock is not None:
            try:
                self._send(0xE0, b"")
            except OSError:
                pass
            self.sock.close()
            self.sock = None


def receive(client, base, offer, sink):
    # Pull every chunk of ``offer`` into ``sink``, checking id, sequence and CRC of each.
    tid = offer["id"]
    size = offer["size"]
    chunk = offer.get("chunk", 2048)
    count = (size + chunk - 1) // chunk
    idb = binascii.unhexlify(tid)
    blob = hashlib.sha256()
    seq = 0
    retries = 0
    while seq < count:
        client.publish(base + "r", json.dumps({"op": "get", "id": tid, "seq": seq, "n": WINDOW}))
        asked_for = min(count, seq + WINDOW)
        while seq < asked_for:
            m = client.wait(CHUNK_TIMEOUT_MS)
            if m is None:
                retries += 1
                log("chunk-timeout", seq=seq, retries=retries)
                break
            topic, payload = m
            if topic == base + "u":
                msg = json.loads(bytes(payload))
                if msg.get("id") == tid and msg.get("op") in ("end", "error"):
                    raise Refused("truncated", "server ended at chunk %d of %d" % (seq, count))
                continue
            if topic != base + "uc" or bytes(payload[:4]) != idb:
                continue
            got_seq, crc = struct.unpack("!II", payload[4:12])
            data = payload[12:]
            if got_seq != seq:
                continue  # left over from a window asked for before a re-request
            if crc32(data) != crc:
                retries += 1
                log("chunk-crc", seq=seq, retries=retries)
                break
            want = min(chunk, size - seq * chunk)
            if len(data) != want:
                raise Refused("truncated", "chunk %d has %d of %d bytes" % (seq, len(data), want))
            sink.write(data)
            blob.update(data)
            seq += 1
            retries = 0
        if retries > MAX_RETRIES:
            raise Refused("transfer-failed", "chunk %d after %d retries" % (seq, retries))
        if seq and seq % 32 == 0:
            log("progress", bytes=min(size, seq * chunk), total=size)
    if hexdigest(blob) != offer["sha256"]:
        raise Refused("hash-mismatch", "blob %s" % hexdigest(blob)[:16])
