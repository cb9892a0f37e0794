"""MQTT broker and OTA publisher: the offer/get/chunk/report protocol, its errors, faults at chunk level."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
import zlib

import pytest
from ota_clients import WAIT, MqttDevice, make_image

from harness.servers import (
    DeviceTopics,
    FaultPlan,
    MqttBroker,
    OtaPublisher,
    decode_chunk,
    encode_chunk,
    free_port,
)

IMAGE = make_image(10_000, seed=3)
BASE = "hil/esp32-0/"


def chunk_for(device: MqttDevice, timeout: float = WAIT) -> tuple[str, int, int, bytes]:
    item = device.next(timeout)
    assert item is not None and item[1] == "chunk", f"expected a chunk, got {item}"
    return item[2]


def assert_quiet(device: MqttDevice, seconds: float = 0.5) -> None:
    item = device.next(seconds)
    assert item is None, f"expected nothing, got {item}"


def test_firmware_offer_download_and_status_reports(publisher, mqtt_device):
    device = mqtt_device(BASE)
    transfer = publisher.offer_firmware(BASE, IMAGE, "2.0.0")
    offer = device.wait_control("offer")
    assert offer == {"op": "offer", "id": transfer.id, "kind": "firmware", "version": "2.0.0", "size": len(IMAGE),
                     "sha256": hashlib.sha256(IMAGE).hexdigest(), "chunk": 2048}
    assert len(offer["id"]) == 8 and int(offer["id"], 16) >= 0
    device.report(transfer.id, "downloading", received=0)
    got = device.download(offer, window=2)
    assert (got.data, got.crc_errors, got.end) == (IMAGE, [], "complete")
    device.report(transfer.id, "verified", sha256=hashlib.sha256(got.data).hexdigest())
    device.report(transfer.id, "rebooting")
    assert publisher.wait_status("rebooting", WAIT, transfer_id=transfer.id) == {
        "op": "status", "id": transfer.id, "state": "rebooting"}
    assert [r["state"] for r in publisher.reports(BASE)] == ["downloading", "verified", "rebooting"]
    assert publisher.reports(transfer_id="00000000") == []
    offer_record = publisher.log.wait_for(event="offer")
    assert (offer_record["id"], offer_record["base"], offer_record["size"]) == (transfer.id, BASE, len(IMAGE))


def test_files_offer_lists_each_file_and_sends_their_concatenation(publisher, mqtt_device):
    device = mqtt_device(BASE)
    files = {"app/main.py": b"print('v2')\n", "app/lib/util.py": make_image(3000, seed=4), "boot.py": b"# boot\n"}
    transfer = publisher.offer_files(BASE, files, "2.0.0", chunk=1024)
    offer = device.wait_control("offer")
    blob = b"".join(files.values())
    assert (offer["kind"], offer["size"], offer["chunk"]) == ("files", len(blob), 1024)
    assert offer["sha256"] == hashlib.sha256(blob).hexdigest() == transfer.sha256
    assert offer["files"] == [{"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                              for name, data in files.items()]
    assert device.download(offer).data == blob
    with pytest.raises(ValueError, match="at least one file"):
        publisher.offer_files(BASE, {}, "2.0.0")


def test_chunk_message_layout(publisher, mqtt_device):
    device = mqtt_device(BASE)
    transfer = publisher.offer_firmware(BASE, IMAGE, "2.0.0", chunk=1000)
    device.wait_control("offer")
    device.client.unsubscribe(device.topics.chunks)  # read the raw bytes instead
    raw = []
    device.client.message_callback_add(device.topics.chunks, lambda c, u, m: raw.append(m.payload))
    device.client.subscribe(device.topics.chunks)
    time.sleep(0.2)
    device.get(transfer.id, 9, 1)
    deadline = time.monotonic() + WAIT
    while not raw and time.monotonic() < deadline:
        time.sleep(0.01)
    payload = raw[0]
    assert payload[:4] == bytes.fromhex(transfer.id)
    assert int.from_bytes(payload[4:8], "big") == 9
    assert int.from_bytes(payload[8:12], "big") == zlib.crc32(IMAGE[9000:10000])
    assert payload[12:] == IMAGE[9000:10000]
    assert decode_chunk(encode_chunk(transfer.id, 9, IMAGE[9000:10000])) == (
        transfer.id, 9, zlib.crc32(IMAGE[9000:10000]), IMAGE[9000:10000])


def test_get_beyond_the_end_gets_end_and_unknown_id_gets_error(publisher, mqtt_device):
    device = mqtt_device(BASE)
    transfer = publisher.offer_firmware(BASE, IMAGE, "2.0.0")
    device.wait_control("offer")
    device.get(transfer.id, 5, 1)  # 10000 bytes are chunks 0..4
    assert device.wait_control("end") == {"op": "end", "id": transfer.id}
    device.get("0badf00d", 0, 1)
    assert device.wait_control("error") == {"op": "error", "id": "0badf00d", "error": "unknown transfer"}
    device.get(transfer.id, 3, 8)  # a window running past the end gets the chunks that exist
    assert [chunk_for(device)[1] for _ in range(2)] == [3, 4]


def test_a_transfer_is_served_only_on_its_own_device_topics(publisher, mqtt_device):
    device, other = mqtt_device(BASE), mqtt_device("hil/esp32-1/")
    transfer = publisher.offer_firmware(BASE, IMAGE, "2.0.0")
    device.wait_control("offer")
    publisher.watch(other.topics.base)
    other.get(transfer.id, 0, 1)
    assert other.wait_control("error")["error"] == "unknown transfer"
    assert_quiet(device, 0.2)


def test_malformed_reports_are_logged_and_serving_goes_on(publisher, mqtt_device):
    device = mqtt_device(BASE)
    transfer = publisher.offer_firmware(BASE, IMAGE, "2.0.0")
    device.wait_control("offer")
    device.publish(b"\xff\xfe not json")
    device.publish(b"[1, 2, 3]")
    device.publish({"op": "get", "id": transfer.id, "seq": 0})
    device.publish({"op": "get", "id": transfer.id, "seq": -1, "n": 1})
    device.publish({"op": "get", "id": transfer.id, "seq": True, "n": 1})
    device.publish({"op": "dance"})
    device.get(transfer.id, 0, 1)
    assert chunk_for(device)[1] == 0
    errors = [r["error"] for r in publisher.log.wait(lambda r: r.get("event") == "malformed", 6)]
    assert errors[1:] == ["expected a JSON object, got list", "bad get: 'n' must be an integer >= 1",
                          "bad get: 'seq' must be an integer >= 0", "bad get: 'seq' must be an integer >= 0",
                          "unknown op 'dance'"]
    assert publisher.log.find(event="malformed")[0]["payload"].startswith("\\xff\\xfe")


def test_corrupt_chunk_fails_its_crc_and_the_resend_is_clean(publisher, mqtt_device):
    device = mqtt_device(BASE)
    transfer = publisher.offer_firmware(BASE, IMAGE, "2.0.0", fault=FaultPlan(corrupt=[(3000, 0x40)]))
    device.wait_control("offer")
    device.get(transfer.id, 1, 1)
    _, seq, crc, data = chunk_for(device)
    assert seq == 1 and zlib.crc32(data) != crc == zlib.crc32(IMAGE[2048:4096])
    assert data[3000 - 2048] == IMAGE[3000] ^ 0x40
    device.get(transfer.id, 1, 1)
    _, seq, crc, data = chunk_for(device)
    assert (seq, data, zlib.crc32(data)) == (1, IMAGE[2048:4096], crc)


def test_truncate_cuts_the_chunk_and_answers_end_beyond_it(publisher, mqtt_device):
    device = mqtt_device(BASE)
    transfer = publisher.offer_firmware(BASE, IMAGE, "2.0.0", fault=FaultPlan(truncate_at=5000))
    device.wait_control("offer")
    device.get(transfer.id, 2, 2)
    _, seq, crc, data = chunk_for(device)
    assert (seq, data, crc) == (2, IMAGE[4096:5000], zlib.crc32(IMAGE[4096:5000]))
    assert device.wait_control("end")["id"] == transfer.id
    device.get(transfer.id, 0, 1)  # bytes before the cut are still served
    assert chunk_for(device)[3] == IMAGE[:2048]


def test_drop_disconnects_the_publisher_and_abandons_the_transfer(publisher, broker, mqtt_device):
    device = mqtt_device(BASE)
    transfer = publisher.offer_firmware(BASE, IMAGE, "2.0.0", fault=FaultPlan(drop_at=3000))
    device.wait_control("offer")
    device.get(transfer.id, 0, 4)
    assert [chunk_for(device)[3] for _ in range(2)] == [IMAGE[:2048], IMAGE[2048:3000]]
    assert_quiet(device)
    assert transfer.state == "dropped"
    broker.log.wait_for(event="client-disconnected", client_id=publisher.client_id)
    publisher.log.wait(lambda r: r.get("event") == "connected", 2)  # paho reconnected
    broker.log.wait(lambda r: r.get("event") == "subscribed" and r["client_id"] == publisher.client_id, 2)
    device.get(transfer.id, 2, 1)
    assert_quiet(device)
    assert publisher.log.wait_for(event="get", id=transfer.id, answer="ignored")["reason"] == "transfer is dropped"
    fresh = publisher.offer_firmware(BASE, IMAGE, "2.0.1")
    assert device.download(device.wait_control("offer")).data == IMAGE
    assert fresh.state == "serving"


def test_a_stalled_transfer_does_not_hold_up_another_device(publisher, mqtt_device):
    slow, fast = mqtt_device(BASE), mqtt_device("hil/esp32-1/")
    stalled = publisher.offer_firmware(BASE, IMAGE, "2.0.0", fault=FaultPlan(stall_at=0, stall_s=2.0))
    slow.wait_control("offer")
    slow.get(stalled.id, 0, 1)
    publisher.offer_firmware(fast.topics.base, IMAGE, "2.0.0")
    started = time.monotonic()
    assert fast.download(fast.wait_control("offer")).data == IMAGE
    assert time.monotonic() - started < 1.5
    assert chunk_for(slow, timeout=WAIT)[1] == 0


def test_wait_status_timeout_names_publisher_broker_and_what_came(publisher, mqtt_device):
    device = mqtt_device(BASE)
    publisher.watch(BASE)
    device.report("00000000", "booted")
    publisher.wait_status("booted", WAIT)
    with pytest.raises(TimeoutError, match=rf"mqtt-ota \(broker {publisher.broker_label}\): no status 'done' "
                                           rf"from {BASE} within 0.2s; reports so far: \[\('{BASE}', 'booted'\)\]"):
        publisher.wait_status("done", 0.2, base=BASE)


def test_device_topics():
    topics = DeviceTopics("hil/esp8266-3/")
    assert (topics.control, topics.chunks, topics.reports) == ("hil/esp8266-3/u", "hil/esp8266-3/uc",
                                                               "hil/esp8266-3/r")
    with pytest.raises(ValueError, match="wildcards"):
        DeviceTopics("hil/+/")


def test_broker_logs_garbage_and_keeps_serving(broker, publisher, mqtt_device):
    with socket.create_connection((broker.endpoint.host, broker.endpoint.port), timeout=WAIT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
    broker.log.wait_for(event="broker-warning")
    device = mqtt_device(BASE)
    publisher.offer_firmware(BASE, IMAGE, "2.0.0")
    assert device.download(device.wait_control("offer")).data == IMAGE
    events = {r.get("event") for r in broker.log.records}
    assert {"start", "client-connected", "subscribed", "broker-warning"} <= events


def test_broker_stops_promptly_with_clients_connected(tmp_path):
    broker = MqttBroker(log_path=tmp_path / "b.jsonl")
    broker.start()
    device = MqttDevice(broker.endpoint, BASE)
    started = time.monotonic()
    broker.stop()
    assert time.monotonic() - started < 2
    device.close()
    assert not broker.running
    with pytest.raises(RuntimeError, match="mqtt-broker is not started"):
        _ = broker.url


def test_unreachable_brokers_give_clear_errors():
    port = free_port()
    with pytest.raises(ConnectionError, match=rf"external MQTT broker at 127\.0\.0\.1:{port} is not reachable"):
        MqttBroker.external("127.0.0.1", port).start()
    publisher = OtaPublisher(("127.0.0.1", port), name="ota-x")
    with pytest.raises(ConnectionError, match=rf"ota-x: cannot connect to MQTT broker 127\.0\.0\.1:{port}"):
        publisher.start()


def _mosquitto() -> str | None:
    return shutil.which("mosquitto", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin",
                                                           "/usr/local/sbin"]))


@pytest.mark.skipif(_mosquitto() is None, reason="mosquitto binary not installed (Debian package 'mosquitto')")
def test_external_mosquitto_broker(tmp_path):
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "mosquitto.log", "wb"))
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
                assert time.monotonic() < deadline, f"mosquitto did not listen on {port} within {WAIT}s"
                time.sleep(0.05)
        with MqttBroker.external("127.0.0.1", port) as broker, OtaPublisher(broker) as publisher:
            device = MqttDevice(broker.endpoint, BASE)
            try:
                transfer = publisher.offer_firmware(BASE, IMAGE, "2.0.0", fault=FaultPlan(corrupt=[(10, 1)]))
                got = device.download(device.wait_control("offer"))
                assert got.crc_errors == [0] and got.data[11:] == IMAGE[11:]
                device.report(transfer.id, "failed", reason="crc")
                assert publisher.wait_status("failed", WAIT)["reason"] == "crc"
            finally:
                device.close()
        assert [r["event"] for r in broker.log.records] == ["start", "stop"]
    finally:
        proc.terminate()
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
