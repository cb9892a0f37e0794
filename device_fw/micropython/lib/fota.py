# The QuecPython-style `fota` API on the ESP32 firmware slots:
#
#   f = fota.fota(reset_disable=0)
#   f.write(chunk, file_size) ... f.flush(); f.verify()          local image, pushed in pieces
#   f.httpDownload(url1="http://...", callback=cb)                 download, verify, switch, reset
#   f.download_cancel()
# Return values follow QuecPython: 0 success, -1 failure. The callback gets (status,
# progress): status 0 while downloading / done, an error code otherwise; progress is a
# percentage. verify() checks the image's own SHA-256 and makes it the boot partition.
from otautil import Refused, log

ERR_DOWNLOAD = 1
ERR_VERIFY = 2
ERR_CANCELLED = 3


class _Cancelled(Exception):
    pass


class fota:  # noqa: N801 - the QuecPython class name
    def __init__(self, reset_disable=0):
        self.reset_disable = bool(reset_disable)
        self.sink = None
        self.cancelled = False

    def _sink(self, size):
        if self.sink is None:
            import otafw

            self.sink = otafw.FirmwareSink(size, None)
        return self.sink

    def write(self, data, file_size):
        try:
            self._sink(file_size).write(data)
            return 0
        except (Refused, OSError) as e:
            log("refused", kind="firmware", transport="fota", reason=getattr(e, "reason", "io-error"))
            self.sink = None
            return -1

    def flush(self):
        if self.sink is None:
            return -1
        try:
            if self.sink.fill:
                self.sink._flush()
            return 0
        except (Refused, OSError) as e:
            log("refused", kind="firmware", transport="fota", reason=getattr(e, "reason", "io-error"))
            return -1

    def verify(self):
        if self.sink is None:
            return -1
        try:
            self.sink.finish()
            self.sink.activate()
            return 0
        except (Refused, OSError) as e:
            log("refused", kind="firmware", transport="fota", reason=getattr(e, "reason", "io-error"),
                detail=getattr(e, "detail", ""))
            return -1
        finally:
            self.sink = None

    def download_cancel(self):
        self.cancelled = True
        return 0

    def httpDownload(self, url1=None, url2=None, callback=None, ssl_params=None):  # noqa: N802 - QuecPython name
        import otahttp
        import otautil

        if not url1 or url2 is not None:
            return -1  # one-stage (full image) updates only
        if ssl_params and ssl_params.get("ca_cert"):
            with open("/fota_ca.pem", "w") as f:
                f.write(ssl_params["ca_cert"])
            otautil.config()["ca"] = "/fota_ca.pem"
        self.cancelled = False
        status = 0
        try:
            otautil.wifi_up()
            r = otahttp.get(url1)
            size = r.length
            r.close()
            if r.status != 200 or size is None:
                raise Refused("http-%d" % r.status, url1)
            outer = self

            class Progress:
                def __init__(self):
                    self.sink = outer._sink(size)
                    self.last = -1

                def write(self, data):
                    if outer.cancelled:
                        raise _Cancelled()
                    self.sink.write(data)
                    pct = self.sink.received * 100 // size
                    if callback is not None and pct // 10 != self.last // 10:
                        self.last = pct
                        callback((0, pct))

                def restart(self):
                    self.sink.restart()

            otahttp.download(url1, Progress(), size, bytearray(2048))
        except _Cancelled:
            status = ERR_CANCELLED
            log("refused", kind="firmware", transport="fota", reason="cancelled")
        except (Refused, OSError) as e:
            status = ERR_DOWNLOAD
            log("refused", kind="firmware", transport="fota", reason=getattr(e, "reason", "io-error"))
        if status:
            self.sink = None
            if callback is not None:
                callback((status, 0))
            return -1
        if self.verify() != 0:
            if callback is not None:
                callback((ERR_VERIFY, 0))
            return -1
        if callback is not None:
            callback((0, 100))
        if not self.reset_disable:
            import machine

            log("reboot")
            machine.reset()
        return 0
