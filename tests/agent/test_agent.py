"""The MicroPython OTA agent on virtual boards: every transport, every refusal, the API facades.

Each test prepares its board in the baseline state (``harness.scenario.OtaCase``), serves an
update and checks the agent's console lines (``device_fw/micropython/README.md``) and, where
the outcome is a new version, that it runs and was confirmed.
"""

from __future__ import annotations

import hashlib

import pytest

from harness.firmware import app_bundle
from harness.rig import load_rig
from harness.scenario import OtaBench, OtaCase
from harness.servers import FaultPlan, HttpServer, TlsMaterial

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    b = OtaBench(load_rig("emu"), tmp_path_factory.mktemp("agent-bench"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def mqtt(bench):
    return bench.mqtt()  # the rig's broker (embedded on emu) and the OTA publisher


def prepared(bench, board: str, kind: str, **kw) -> OtaCase:
    t = OtaCase(bench, bench.board(board), kind)
    # what the board printed before this preparation (an earlier test's MQTT session) does not count
    t.prepared_since = t.board.console.mark()
    t.prepare(**kw)
    return t


def outcome(t: OtaCase, mark: int, timeout: float = 120):
    return t.expect(("refused", "switch"), since=mark, timeout=timeout)


def assert_new_version_confirmed(t: OtaCase, switch, version: str):
    ready = t.ready(since=switch.at, timeout=90)
    assert t.running_version(ready) == version
    t.expect("confirmed", since=switch.at, timeout=5)


# -- firmware (ESP32) ----------------------------------------------------------------------------
def test_firmware_over_http_is_confirmed_and_valid(bench):
    t = prepared(bench, "esp32-0", "firmware")
    pub = t.publish("next")
    ev = outcome(t, t.trigger(pub))
    assert ev.name == "switch" and ev["slot"] == "ota_1"
    assert_new_version_confirmed(t, ev, pub.version)
    state = t.boot_state("after")
    assert (state.boot_slot, state.slots["ota_1"].ota_state, state.slots["ota_1"].version) == \
        ("ota_1", "VALID", pub.version)


def test_firmware_over_https_with_the_run_ca(bench, tmp_path):
    material = TlsMaterial.create(tmp_path / "tls", hosts=["127.0.0.1"])
    t = prepared(bench, "esp32-0", "firmware", config_extra={"ca": "/ca.pem"}, data={"ca.pem": material.ca_pem})
    image = bench.firmware(t.board).next()
    version = _desc_version(image)
    t.board.remember_image(image)
    for kind, expect in (("wrong-host", "refused"), ("server", "switch")):
        with HttpServer(tls=material.cert(kind), name=f"https-{kind}") as https:
            https.add("/fw.bin", image)
            https.add_json("/manifest.json", {"version": version, "size": len(image),
                                              "sha256": hashlib.sha256(image).hexdigest(), "url": "fw.bin"})
            mark = t.device.update("firmware", https.url_for("/manifest.json"))
            ev = outcome(t, mark)
            assert ev.name == expect, ev.fields
            if expect == "refused":
                # The port's mbedTLS raises ValueError with its verify text for a certificate that
                # does not verify; the agent refuses on it as on a handshake error.
                assert ev["reason"] == "tls" and "Common_Name" in ev["detail"], ev.fields
            else:
                assert_new_version_confirmed(t, ev, version)


def test_firmware_trial_state_and_rollback_check_come_from_otadata(bench):
    """The agent decodes otadata itself (stock esp32.Partition has no app_state()): it sees the running
    ota_0 on trial only when the active entry selects it in PENDING_VERIFY with a good CRC, and refuses
    to write an update while it is on trial or when otadata would not bring it back."""
    from harness.esp.otadata import OtaSelectEntry, OtaState

    t = prepared(bench, "esp32-0", "firmware")
    pub = t.publish("next")

    def otadata(entry: OtaSelectEntry) -> str:
        # sector 0 gets the entry, sector 1 is erased; prints what otafw makes of it
        return t.device.exec(
            "from esp32 import Partition\nimport otafw\n"
            "p = Partition.find(Partition.TYPE_DATA, subtype=0)[0]\n"
            "for n in (0, 1):\n    b = bytearray(b'\\xff' * 4096)\n"
            f"    if n == 0:\n        b[:32] = {entry.pack()!r}\n    p.writeblocks(n, b)\n"
            "print('STATE', otafw.trial_state())")

    cases = [
        (OtaSelectEntry.make(1, OtaState.PENDING_VERIFY), "1", "unconfirmed"),  # seq 1 -> ota_0, on trial
        (OtaSelectEntry.make(2, OtaState.VALID), "None", "no-rollback"),  # selects ota_1, not the running ota_0
        (OtaSelectEntry.make(3, OtaState.VALID), "2", None),  # seq 3 -> ota_0, confirmed
        (OtaSelectEntry(1, OtaState.PENDING_VERIFY, crc=0x1234), "None", None),  # bad CRC: as if erased
        (OtaSelectEntry.make(1, OtaState.ABORTED), "None", None),  # not valid either
    ]
    for entry, state, reason in cases:
        assert f"STATE {state}" in otadata(entry), entry.describe()
        if reason is not None:
            mark = t.trigger(pub)
            ev = outcome(t, mark)
            assert ev.name == "refused" and ev["reason"] == reason, (entry.describe(), ev.fields)
            assert not t.board.console.events(mark, "writing")  # refused before the first write


def _desc_version(image: bytes) -> str:
    from harness.esp import parse_image

    return parse_image(image, "esp32").app_desc.version


@pytest.mark.parametrize("variant, reason", [
    ("wrong_chip", "wrong-chip"),
    ("bad_checksum", "bad-image"),
    ("bad_sha256", "image-hash"),
    ("older", "older-version"),
    ("oversized", "too-large"),
])
def test_firmware_bad_images_are_refused(bench, variant, reason):
    t = prepared(bench, "esp32-0", "firmware")
    fw = bench.firmware(t.board)
    image = {"wrong_chip": fw.wrong_chip, "bad_checksum": fw.bad_checksum, "bad_sha256": fw.bad_sha256,
             "older": fw.older, "oversized": lambda: fw.oversized(0x180000)}[variant]()
    version = _desc_version(image)
    t.http.add(f"/bad/{variant}/fw.bin", image)
    t.http.add_json(f"/bad/{variant}/manifest.json", {"version": version, "size": len(image),
                                                      "sha256": hashlib.sha256(image).hexdigest(), "url": "fw.bin"})
    ev = outcome(t, t.device.update("firmware", t.http.url_for(f"/bad/{variant}/manifest.json")))
    assert ev.name == "refused" and ev["reason"] == reason, ev.fields
    assert ev["version"] == fw.version  # what keeps running


@pytest.mark.parametrize("case, reason", [
    ("wrong_size", "size-mismatch"),
    ("truncated", "truncated"),
    ("malformed_json", "bad-manifest"),
    ("missing_field", "bad-manifest"),
])
def test_firmware_bad_transfers_are_refused(bench, case, reason):
    t = prepared(bench, "esp32-0", "firmware")
    pub = t.publish("next")
    prefix = pub.manifest_url.rsplit("/", 1)[0].split("://", 1)[1].split("/", 1)[1]
    manifest = {"version": pub.version, "size": pub.size, "sha256": pub.sha256, "url": "fw.bin"}
    if case == "wrong_size":
        manifest["size"] = pub.size - 4096  # the server then sends more than the manifest said
        t.http.add_json(f"/{prefix}/manifest.json", manifest)
    elif case == "truncated":
        t.http.set_fault(FaultPlan(truncate_at=pub.size // 3), pub.paths[-1])
    elif case == "malformed_json":
        t.http.add(f"/{prefix}/manifest.json", b'{"version": "v9", "size": ', "application/json")
    else:
        del manifest["sha256"]
        t.http.add_json(f"/{prefix}/manifest.json", manifest)
    ev = outcome(t, t.trigger(pub))
    assert ev.name == "refused" and ev["reason"] == reason, ev.fields


@pytest.mark.parametrize("honour_range", [True, False], ids=["range", "no-range"])
def test_dropped_connection_resumes(bench, honour_range):
    t = prepared(bench, "esp32-0", "firmware")
    image = bench.firmware(t.board).next()
    t.board.remember_image(image)
    with HttpServer(ignore_range=not honour_range, name="flaky") as http:
        http.add("/fw.bin", image, fault=FaultPlan(drop_at=len(image) // 2, apply_times=1))
        http.add_json("/manifest.json", {"version": _desc_version(image), "size": len(image),
                                         "sha256": hashlib.sha256(image).hexdigest(), "url": "fw.bin"})
        mark = t.device.update("firmware", http.url_for("/manifest.json"))
        ev = outcome(t, mark)
        assert ev.name == "switch", ev.fields
        resume = t.board.console.events(mark, "resume")
        assert resume and resume[0]["honoured"] == ("yes" if honour_range else "no")
        if honour_range:
            assert any(r.get("range") for r in http.requests("/fw.bin"))
        assert_new_version_confirmed(t, ev, _desc_version(image))


def test_firmware_over_mqtt(bench, mqtt):
    broker, publisher = mqtt
    base = "hil/esp32-0/"
    t = prepared(bench, "esp32-0", "firmware", config_extra={"mqtt": bench.mqtt_config(bench.board("esp32-0"))})
    t.expect("mqtt", since=t.prepared_since, timeout=30, state="subscribed")
    image = bench.firmware(t.board).next()
    t.board.remember_image(image)
    mark = t.board.console.mark()
    transfer = publisher.offer_firmware(base, image, _desc_version(image))
    ev = outcome(t, mark)
    assert ev.name == "switch", ev.fields
    assert publisher.wait_status("verified", transfer_id=transfer.id)["state"] == "verified"
    assert_new_version_confirmed(t, ev, _desc_version(image))


# -- files (ESP8266 and ESP32) ---------------------------------------------------------------------
def test_files_over_mqtt_with_a_corrupted_chunk(bench, mqtt):
    broker, publisher = mqtt
    base = "hil/esp8266-0/"
    t = prepared(bench, "esp8266-0", "files", config_extra={"mqtt": bench.mqtt_config(bench.board("esp8266-0"))})
    t.expect("mqtt", since=t.prepared_since, timeout=30, state="subscribed")
    mark = t.board.console.mark()
    # One byte flipped on the wire, the first time it is sent: the chunk CRC catches it and the
    # agent asks for the chunk again.
    publisher.offer_files(base, app_bundle("2"), "2", fault=FaultPlan(corrupt=[(50_000, 0x55)]))
    ev = outcome(t, mark)
    assert ev.name == "switch", ev.fields
    assert t.board.console.events(mark, "chunk-crc")
    assert_new_version_confirmed(t, ev, "2")


def test_files_over_http_on_esp32(bench):
    t = prepared(bench, "esp32-0", "files")
    pub = t.publish("next")
    ev = outcome(t, t.trigger(pub))
    assert ev.name == "switch"
    assert_new_version_confirmed(t, ev, pub.version)


def test_esp8266_refuses_https_it_cannot_verify(bench, tmp_path):
    """Stock ESP8266 TLS (axtls) cannot check a server certificate: https is refused, never run unverified."""
    material = TlsMaterial.create(tmp_path / "tls", hosts=["127.0.0.1"])
    t = prepared(bench, "esp8266-0", "files", config_extra={"ca": "/ca.pem"}, data={"ca.pem": material.ca_pem})
    files = app_bundle("2")
    with HttpServer(tls=material.cert("server"), name="https-esp8266") as https:
        for name, data in files.items():
            https.add(f"/{name}", data)
        https.add_json("/manifest.json", {"version": "2", "files": [
            {"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest(), "url": n} for n, d in files.items()]})
        ev = outcome(t, t.device.update("files", https.url_for("/manifest.json")))
        assert ev.name == "refused" and ev["reason"] == "tls-unverifiable", ev.fields
        assert ev["version"] == "1"
        assert https.requests() == []  # refused before connecting


@pytest.mark.parametrize("case, reason", [
    ("no_sha256", "bad-manifest"),
    ("escaping_name", "bad-manifest"),
    ("wrong_chip", "wrong-chip"),
    ("tampered", "hash-mismatch"),
])
def test_file_bundles_with_bad_manifests_are_refused(bench, case, reason):
    t = prepared(bench, "esp8266-0", "files")
    files = app_bundle("2")
    manifest = {"version": "2", "files": [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest(),
                                           "url": n} for n, d in files.items()]}
    if case == "no_sha256":
        del manifest["files"][0]["sha256"]
    elif case == "escaping_name":
        manifest["files"][0]["name"] = "../boot.py"
    elif case == "wrong_chip":
        manifest["chip"] = "esp32"
    else:
        files = {**files, "app.py": files["app.py"].replace(b"True", b"Fals")}  # same size, other bytes
    for name, data in files.items():
        t.http.add(f"/bundle-{case}/{name}", data)
    t.http.add_json(f"/bundle-{case}/manifest.json", manifest)
    ev = outcome(t, t.device.update("files", t.http.url_for(f"/bundle-{case}/manifest.json")))
    assert ev.name == "refused" and ev["reason"] == reason, ev.fields
    assert ev["version"] == "1"
    listing = t.device.exec("import os\ntry:\n    print(os.listdir('slots/b'))\nexcept OSError:\n    print('none')")
    assert "none" in listing  # nothing half-written left behind


def test_full_filesystem_is_refused_and_cleaned_up(bench):
    t = prepared(bench, "esp32-0", "files")  # the ESP32's vfs partition is 960 KiB
    free_before = int(t.device.exec("import os\nprint(os.statvfs('/')[3] * 4096)"))
    files = app_bundle("2", data_size=1200 * 1024)
    manifest = {"version": "2", "files": [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest(),
                                           "url": n} for n, d in files.items()]}
    for name, data in files.items():
        t.http.add(f"/big/{name}", data)
    t.http.add_json("/big/manifest.json", manifest)
    ev = outcome(t, t.device.update("files", t.http.url_for("/big/manifest.json")))
    assert ev.name == "refused" and ev["reason"] == "no-space", ev.fields
    out = t.device.exec("import os\nprint(os.statvfs('/')[3] * 4096)\ntry:\n    os.listdir('slots/b')\n"
                       "    print('left')\nexcept OSError:\n    print('clean')")
    assert "clean" in out and int(out.split()[0]) >= free_before - 8192  # the space came back


# -- the API facades ----------------------------------------------------------------------------------
def test_haas_ota_api_download_and_verify(bench):
    t = prepared(bench, "esp32-0", "files")
    data = b"module payload " * 2000
    t.http.add("/haas/module.bin", data)
    md5 = hashlib.md5(data).hexdigest()
    code = f"""
import ota, otautil
otautil.wifi_up()
res = []
info = {{'url': {t.http.url_for('/haas/module.bin')!r}, 'length': {len(data)}, 'module_name': 'app',
        'version': '2', 'hash': {md5!r}, 'hash_type': 'md5'}}
def on_trigger(d):
    ota.download({{'url': d['url'], 'store_path': '/module.bin'}})
def on_download(r):
    res.append(('download', r))
    ota.verify({{'length': info['length'], 'store_path': '/module.bin', 'hash_type': 'md5', 'hash': info['hash']}})
def on_verify(r):
    res.append(('verify', r))
print(ota.init({{}}), ota.on(1, on_trigger), ota.on(2, on_download), ota.on(3, on_verify))
ota.trigger(info)
info['hash'] = '0' * 32
ota.verify({{'length': info['length'], 'store_path': '/module.bin', 'hash_type': 'md5', 'hash': info['hash']}})
print('RESULT', res)
"""
    out = t.device.exec(code, timeout=60)
    assert "0 0 0 0" in out
    assert "RESULT [('download', 0), ('verify', 0), ('verify', -1)]" in out


def test_haas_ota_api_refuses_md5_where_hashlib_has_none(bench):
    """The ESP8266's hashlib has no md5: verify() refuses (bad-hash-type); sha256 works there."""
    t = prepared(bench, "esp8266-0", "files")
    data = b"module payload " * 500
    sha = hashlib.sha256(data).hexdigest()
    code = f"""
import ota
with open('/module.bin', 'wb') as f:
    for _ in range(500):
        f.write(b'module payload ')
res = []
ota.on(3, lambda r: res.append(r))
ota.verify({{'length': {len(data)}, 'store_path': '/module.bin', 'hash_type': 'md5', 'hash': '0' * 32}})
ota.verify({{'length': {len(data)}, 'store_path': '/module.bin', 'hash_type': 'sha256', 'hash': {sha!r}}})
print('RESULT', res)
"""
    out = t.device.exec(code, timeout=60)
    assert "RESULT [-1, 0]" in out, out
    assert "OTA refused detail=md5 kind=file path=/module.bin reason=bad-hash-type transport=verify" in out, out


def test_quecpython_fota_api_downloads_verifies_and_reboots(bench):
    t = prepared(bench, "esp32-0", "firmware")
    pub = t.publish("next")
    fw_url = pub.manifest_url.rsplit("/", 1)[0] + "/fw.bin"
    mark = t.board.console.mark()
    t.board.console.exec_raw("import fota, otautil\notautil.wifi_up()\nf = fota.fota()\n"
                             f"print('RET', f.httpDownload(url1={fw_url!r}, callback=lambda a: print('CB', a)))",
                             wait=False)
    switch = t.expect("switch", since=mark, timeout=120)
    text = t.board.console.text[mark:switch.at]
    assert "CB (0, 0)" in text or "CB (0, 10)" in text
    assert_new_version_confirmed(t, switch, pub.version)

    # An image that fails its own checks: verify() says -1, nothing is switched, no reset.
    bad = bench.firmware(t.board).bad_sha256()
    t.http.add("/fota/bad.bin", bad)
    out = t.device.exec("import fota\nf = fota.fota(reset_disable=1)\n"
                       f"print('RET', f.httpDownload(url1={t.http.url_for('/fota/bad.bin')!r}))", timeout=120)
    assert "RET -1" in out


def test_bundle_variants():
    unhealthy, broken = app_bundle("7", healthy=False), app_bundle("7", broken=True)
    assert b"return False" in unhealthy["app.py"] and len(unhealthy["assets/data.bin"]) == 96 * 1024
    assert b"raise RuntimeError" in broken["app.py"]
    assert app_bundle("7")["assets/data.bin"] != app_bundle("8")["assets/data.bin"]
