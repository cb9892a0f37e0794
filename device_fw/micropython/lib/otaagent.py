# The OTA agent: confirms a new firmware or file slot on its first boot, then waits for
# updates (MQTT push) or runs one when asked (HTTP pull, from the REPL: the serial command).
#
#   import otaagent; otaagent.update("firmware", "http://host:port/fw/manifest.json")
#   import otaagent; otaagent.update("files", "https://host:port/files/manifest.json")
import json

import otautil
from otautil import Refused, config, log

BUF = 2048


def chip():
    c = config().get("chip")
    if c:
        return c
    try:
        import esp32  # noqa: F401

        return "esp32"
    except ImportError:
        return "esp8266"


def firmware_version():
    if chip() != "esp32":
        import os

        return "v" + os.uname().release
    import otafw

    return otafw.running_version()


def healthy():
    # The post-update self test: the update server must be reachable and answering.
    url = config().get("health")
    if not url:
        return True
    import otahttp

    r = otahttp.get(url)
    try:
        return r.status == 200
    finally:
        r.close()


def _firmware_sink(size, sha256, version):
    if chip() != "esp32":
        raise Refused("unsupported", "firmware OTA needs an ESP32 (ESP8266 MicroPython has no OTA slots)")
    import otafw

    return otafw.FirmwareSink(size, sha256, version)


def _check_fw_manifest(m):
    if not isinstance(m, dict):
        raise Refused("bad-manifest", "not an object")
    for key, kind in (("version", str), ("size", int), ("sha256", str), ("url", str)):
        if not isinstance(m.get(key), kind):
            raise Refused("bad-manifest", "needs %s" % key)
    if len(m["sha256"]) != 64:
        raise Refused("bad-manifest", "bad sha256")
    return m


def _finish(sink):
    import machine

    sink.finish()
    sink.activate()
    log("reboot")
    machine.reset()


def _run(kind, transport, job, state):
    # Runs an update. After a refusal whatever the update wrote is removed first, then the
    # refusal is reported with its reason and the running version (so the line means "done").
    try:
        job()
        return None
    except Refused as e:
        reason, detail = e.reason, e.detail
    except OSError as e:
        reason, detail = "io-error", e.args[0] if e.args else ""
    sink = state.get("sink")
    if sink is not None and hasattr(sink, "abandon"):
        sink.abandon()
    log("refused", kind=kind, transport=transport, reason=reason, detail=detail,
        version=firmware_version() if kind == "firmware" else _files_version())
    return reason


def _files_version():
    import otafiles

    return otafiles.active_version()


def update(kind, url):
    """HTTP(S) pull of the manifest at ``url``; returns the refusal reason or resets into the new version."""
    import otahttp

    state = {}

    def job():
        otautil.wifi_up()
        manifest = otahttp.fetch_json(url)
        buf = bytearray(BUF)
        if kind == "firmware":
            m = _check_fw_manifest(manifest)
            log("start", kind=kind, transport="http", version=m["version"], size=m["size"])
            sink = state["sink"] = _firmware_sink(m["size"], m["sha256"], m["version"])
            otahttp.download(otahttp.join_url(url, m["url"]), sink, m["size"], buf)
        elif kind == "files":
            import otafiles

            sink = state["sink"] = otafiles.BundleSink(manifest)
            log("start", kind=kind, transport="http", version=manifest["version"], size=sink.size)
            for f in manifest["files"]:
                otahttp.download(otahttp.join_url(url, f.get("url", f["name"])), sink.current_file(), f["size"], buf)
        else:
            raise Refused("bad-kind", kind)
        _finish(sink)

    return _run(kind, "http", job, state)


def handle_offer(client, base, offer):
    import otamqtt

    kind = offer.get("kind")
    state = {}

    def report(st, **kw):
        msg = {"op": "status", "id": offer.get("id"), "state": st}
        msg.update(kw)
        client.publish(base + "r", json.dumps(msg))

    def job():
        for key, t in (("id", str), ("size", int), ("sha256", str), ("version", str)):
            if not isinstance(offer.get(key), t):
                raise Refused("bad-offer", "needs %s" % key)
        log("start", kind=kind, transport="mqtt", version=offer["version"], size=offer["size"])
        if kind == "firmware":
            sink = _firmware_sink(offer["size"], offer["sha256"], offer["version"])
        elif kind == "files":
            import otafiles

            sink = otafiles.BundleSink({"version": offer["version"], "files": offer.get("files"),
                                        "chip": offer.get("chip")})
            if sink.size != offer["size"]:
                raise Refused("size-mismatch", "files add up to %d, offer says %d" % (sink.size, offer["size"]))
        else:
            raise Refused("bad-kind", str(kind))
        state["sink"] = sink
        report("downloading")
        otamqtt.receive(client, base, offer, sink)
        sink.finish()
        report("verified")
        sink.activate()
        report("switching")
        import machine

        log("reboot")
        machine.reset()

    reason = _run(kind, "mqtt", job, state)
    if reason:
        try:
            report("refused", reason=reason)
        except OSError:
            pass
    return reason


def mqtt_loop():
    import time

    import otamqtt

    mc = config().get("mqtt") or {}
    base = mc.get("base", "hil/%s/" % config().get("device", "board"))
    while True:
        client = None
        try:
            otautil.wifi_up()
            client = otamqtt.Client(mc.get("host", "127.0.0.1"), mc.get("port", 1883),
                                    "ota-%s-%d" % (config().get("device", "board"), time.ticks_ms()))
            client.connect()
            client.subscribe(base + "u")
            client.subscribe(base + "uc")
            client.publish(base + "r", json.dumps({"op": "hello", "firmware": firmware_version(),
                                                   "files": _files_version()}))
            log("mqtt", state="subscribed", base=base)
            while True:
                m = client.wait(30000)
                if m is None:
                    client.ping()
                    continue
                topic, payload = m
                if topic != base + "u":
                    continue
                try:
                    msg = json.loads(bytes(payload))
                except ValueError:
                    log("refused", kind="?", transport="mqtt", reason="bad-offer", detail="not JSON")
                    continue
                if isinstance(msg, dict) and msg.get("op") == "offer":
                    handle_offer(client, base, msg)
        except (OSError, Refused) as e:
            log("mqtt", state="disconnected", error=e.args[0] if e.args else "")
            if client is not None:
                client.close()
            time.sleep(1)


def start():
    # main.py: confirm what is on trial, report, then serve MQTT pushes if configured.
    import otafiles

    conf = config()
    timeout = conf.get("confirm_timeout", 15)
    try:
        otautil.wifi_up()
    except Refused as e:
        log("no-wifi", detail=e.detail)
    if chip() == "esp32":
        import otafw

        otafw.confirm(healthy, timeout)
    otafiles.confirm(healthy, timeout)
    try:
        import app

        app_version = getattr(app, "VERSION", None)
    except Exception as e:  # noqa: BLE001 - a broken app is reported, the agent keeps running
        app_version = "broken:%s" % type(e).__name__
    log("ready", chip=chip(), firmware=firmware_version(), files=_files_version(),
        slot=otafiles.load_state()["active"], app=app_version)
    if conf.get("mqtt"):
        mqtt_loop()
