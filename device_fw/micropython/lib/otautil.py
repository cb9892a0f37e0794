# Shared pieces of the OTA agent: the console protocol, the board's config, versions.
#
# Every event the harness asserts on is one console line:
#     OTA <event> key=value key=value ...
# Values never contain spaces (they are replaced by "_"), so a line splits on spaces.
import json

CONFIG = "/ota_config.json"


def log(event, **fields):
    parts = ["OTA", event]
    for k in sorted(fields):
        v = fields[k]
        if v is None:
            continue
        if isinstance(v, bool):
            v = "yes" if v else "no"
        parts.append("%s=%s" % (k, str(v).replace(" ", "_")))
    print(" ".join(parts))


class Refused(Exception):
    # An update that must not go ahead; args[0] is the reason token, args[1] detail.
    def __init__(self, reason, detail=""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


_conf = None


def config():
    global _conf
    if _conf is None:
        try:
            with open(CONFIG) as f:
                _conf = json.load(f)
        except (OSError, ValueError):
            _conf = {}
    return _conf


def version_key(text):
    # "v1.24.1" -> (1, 24, 1); non-numeric parts are ignored, so "v1.24.1-ota.2" -> (1, 24, 1, 2).
    out = []
    num = ""
    for c in str(text):
        if "0" <= c <= "9":
            num += c
        elif num:
            out.append(int(num))
            num = ""
    if num:
        out.append(int(num))
    return tuple(out)


def check_version(running, offered, allow_downgrade=False):
    # Same version: nothing to do. Older: refused unless the config allows downgrades.
    if str(offered) == str(running):
        raise Refused("same-version", offered)
    if version_key(offered) < version_key(running) and not allow_downgrade:
        raise Refused("older-version", "%s<%s" % (offered, running))


def hexdigest(h):
    import binascii

    return binascii.hexlify(h.digest()).decode()


def crc32(data, crc=0):
    # CRC-32 as binascii.crc32 / zlib.crc32 compute it (``crc`` continues an earlier one).
    # The ESP8266 port has no binascii.crc32: there a table-driven version in Python runs.
    import binascii

    f = getattr(binascii, "crc32", None)
    if f is not None:
        return f(data, crc) & 0xFFFFFFFF
    return _crc32(data, crc)


_crc_lo = None
_crc_hi = None


def _crc_tables():
    # The reflected polynomial 0xEDB88320, kept as two 16-bit halves: on the ESP8266 an int
    # of 31 bits or more lives on the heap, 16-bit halves never do.
    global _crc_lo, _crc_hi
    if _crc_lo is None:
        import array

        lo_t = array.array("H")
        hi_t = array.array("H")
        for n in range(256):
            lo, hi = n, 0
            for _ in range(8):
                carry = lo & 1
                lo = (lo >> 1) | ((hi & 1) << 15)
                hi >>= 1
                if carry:
                    lo ^= 0x8320
                    hi ^= 0xEDB8
            lo_t.append(lo)
            hi_t.append(hi)
        _crc_lo, _crc_hi = lo_t, hi_t
    return _crc_lo, _crc_hi


def _crc32(data, crc=0):
    tlo, thi = _crc_tables()
    lo = (crc & 0xFFFF) ^ 0xFFFF
    hi = ((crc >> 16) & 0xFFFF) ^ 0xFFFF
    for b in data:
        i = (lo ^ b) & 0xFF
        lo = ((lo >> 8) | ((hi & 0xFF) << 8)) ^ tlo[i]
        hi = (hi >> 8) ^ thi[i]
    return ((hi ^ 0xFFFF) << 16) | (lo ^ 0xFFFF)


def wifi_up(timeout_ms=15000):
    import network
    import time

    w = network.WLAN(network.STA_IF)
    if w.isconnected():
        return w
    w.active(True)
    wc = config().get("wifi", {})
    w.connect(wc.get("ssid", ""), wc.get("key", ""))
    t0 = time.ticks_ms()
    while not w.isconnected():
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            raise Refused("no-wifi", "status=%s" % w.status())
        time.sleep_ms(50)
    return w
