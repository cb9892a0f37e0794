# The HaaS-style `ota` module: init / report / on(1, 2, 3) / download / verify.
#
#   ota.on(1, on_trigger)   on_trigger({"url", "length", "module_name", "version", "hash", "hash_type"})
#   ota.on(2, on_download)  on_download(0 on success, < 0 on failure)
#   ota.on(3, on_verify)    on_verify(0 on success, < 0 on failure)
# verify() takes hash_type "sha256" or "md5"; on a port without hashlib.md5 (ESP8266) an md5
# check is refused with reason bad-hash-type.
# A trigger arrives through ota.trigger(info) (the transport's push calls it); download()
# writes to store_path through a temporary file and a rename, so a cut leaves no half file.
import hashlib
import os

from otautil import Refused, hexdigest, log

_callbacks = {}
_handle = None
EV_TRIGGER = 1
EV_DOWNLOAD = 2
EV_VERIFY = 3


def init(data_handle):
    global _handle
    _handle = data_handle
    return 0


def report(report_info):
    log("report", module=report_info.get("module_name"), version=report_info.get("version"))
    return 0


def on(event, callback):
    if event not in (EV_TRIGGER, EV_DOWNLOAD, EV_VERIFY) or not callable(callback):
        return -1
    _callbacks[event] = callback
    return 0


def trigger(info):
    cb = _callbacks.get(EV_TRIGGER)
    if cb is None:
        return -1
    cb(info)
    return 0


def _notify(event, value):
    cb = _callbacks.get(event)
    if cb is not None:
        cb(value)


class _FileSink:
    def __init__(self, path):
        self.path = path
        self.f = open(path + ".part", "wb")

    def write(self, data):
        self.f.write(data)

    def restart(self):
        self.f.close()
        self.f = open(self.path + ".part", "wb")

    def done(self):
        self.f.close()
        os.rename(self.path + ".part", self.path)


def download(data):
    import otahttp

    url, path = data.get("url"), data.get("store_path")
    if not url or not path:
        _notify(EV_DOWNLOAD, -1)
        return -1
    try:
        r = otahttp.get(url)
        length = r.length
        r.close()
        if length is None:
            raise Refused("no-length", url)
        sink = _FileSink(path)
        otahttp.download(url, sink, length, bytearray(1024))
        sink.done()
    except (Refused, OSError) as e:
        log("refused", kind="file", transport="http", reason=getattr(e, "reason", "io-error"), path=path)
        _notify(EV_DOWNLOAD, -1)
        return -1
    log("downloaded", path=path, bytes=length)
    _notify(EV_DOWNLOAD, 0)
    return 0


def verify(data):
    path = data.get("store_path")
    kind = str(data.get("hash_type") or "sha256").lower()
    want = str(data.get("hash", "")).lower()
    try:
        length = int(data.get("length", -1))
        md5 = getattr(hashlib, "md5", None)  # not on every port: the ESP8266 has sha1 and sha256 only
        if kind == "sha256":
            h = hashlib.sha256()
        elif kind == "md5" and md5 is not None:
            h = md5()
        else:
            raise Refused("bad-hash-type", kind)
        n = 0
        buf = bytearray(512)
        with open(path, "rb") as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(memoryview(buf)[:k])
                n += k
        if n != length:
            raise Refused("size-mismatch", "%d != %d" % (n, length))
        if hexdigest(h) != want:
            raise Refused("hash-mismatch", kind)
    except (Refused, OSError, ValueError) as e:
        log("refused", kind="file", transport="verify", reason=getattr(e, "reason", "io-error"),
            detail=getattr(e, "detail", None), path=path)
        _notify(EV_VERIFY, -1)
        return -1
    log("verified", kind="file", path=path, hash_type=kind)
    _notify(EV_VERIFY, 0)
    return 0
