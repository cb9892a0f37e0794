"""Every fault kind has its documented effect on every server (HTTP, HTTPS, FOTA, MQTT).

Each rig delivers the same image through one server with a given FaultPlan and returns
what the device-side client received; the assertions are written once for all of them.
"""

from __future__ import annotations

import hashlib
import time

import pytest
from ota_clients import Delivery, StrictEofContext, fetch_fota, fetch_http, make_image

from harness.servers import FaultPlan

IMAGE = make_image(16 * 1024 + 123)
CHUNK = 2048  # MQTT chunk size of the rig
BASE = "hil/esp32-0/"


class Rig:
    """One server with IMAGE on it, and how its transport shows each way a transfer can end."""

    name: str
    deliveries = 0
    truncate_end: str  # what the device sees after truncate_at
    drop_end: str  # ... and after drop_at
    lie_end: str  # ... when the announced length is larger than the image

    def deliver(self, plan: FaultPlan | None) -> Delivery:
        raise NotImplementedError

    def logged_outcome(self, expected: str) -> str:
        """How the server's log says the last transfer ended (``expected`` says what to wait for)."""
        raise NotImplementedError

    def fired_before(self, n: int) -> int:
        """Offset of the first byte that goes out only after an on_bytes(n) callback returned."""
        return n


class HttpRig(Rig):
    truncate_end, drop_end, lie_end = "eof", "reset", "eof"

    def __init__(self, server, client_context=None) -> None:
        self.server = server
        self.name = server.scheme
        self.context = client_context
        if client_context is not None:
            self.drop_end = "tls-eof"  # the reset ends TLS without close_notify, a truncation with one
        server.add("/fw.bin", IMAGE)

    def deliver(self, plan):
        self.server.set_fault(plan)
        self.deliveries += 1
        return fetch_http(self.server.endpoint, "/fw.bin", context=self.context)

    def logged_outcome(self, expected):
        return self.server.wait_requests(self.deliveries, "/fw.bin")[-1]["outcome"]


class FotaRig(Rig):
    name = "fota"
    truncate_end, drop_end, lie_end = "eof", "reset", "eof"

    def __init__(self, server) -> None:
        self.server = server

    def deliver(self, plan):
        self.server.set_fault(plan)
        self.deliveries += 1
        return fetch_fota(self.server.endpoint, slot=2)

    def logged_outcome(self, expected):
        return self.server.wait_transfers(self.deliveries)[-1]["outcome"]


class MqttRig(Rig):
    name = "mqtt"
    truncate_end, drop_end, lie_end = "end", "silence", "end"

    def __init__(self, publisher, device) -> None:
        self.publisher = publisher
        self.device = device

    def deliver(self, plan):
        self.transfer = self.publisher.offer_firmware(BASE, IMAGE, "2.0.0", chunk=CHUNK, fault=plan)
        return self.device.download(self.device.wait_control("offer"))

    def logged_outcome(self, expected):
        tid = self.transfer.id
        if expected != "complete":  # gets sent while the publisher reconnects after a drop are never seen
            return self.publisher.log.wait_for(event="get", id=tid, answer=expected)["answer"]
        gets = self.publisher.log.wait(lambda r: r.get("event") == "get" and r.get("id") == tid,
                                       self.device.gets_sent[tid])
        answers = {r["answer"] for r in gets}
        return next((a for a in ("dropped", "truncated") if a in answers), "complete")

    def fired_before(self, n: int) -> int:
        return -(-n // CHUNK) * CHUNK  # the end of the chunk carrying byte n - 1


@pytest.fixture(params=["http", "https", "fota", "mqtt"])
def rig(request, tls_material) -> Rig:
    if request.param == "http":
        return HttpRig(request.getfixturevalue("http_server")())
    if request.param == "https":
        server = request.getfixturevalue("http_server")(tls=tls_material.cert("server"))
        return HttpRig(server, StrictEofContext.trusting(str(tls_material.ca_file)))
    if request.param == "fota":
        return FotaRig(request.getfixturevalue("fota_server")({1: b"other slot", 2: IMAGE}))
    request.getfixturevalue("broker")
    device = request.getfixturevalue("mqtt_device")(BASE)
    return MqttRig(request.getfixturevalue("publisher"), device)


def differing(data: bytes) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(data, IMAGE)) if a != b]


def test_clean_delivery(rig):
    got = rig.deliver(None)
    assert (got.end, got.announced, got.data) == ("complete", len(IMAGE), IMAGE)
    assert rig.logged_outcome("complete") == "complete"


def test_truncate_at_delivers_exactly_the_first_n_bytes(rig):
    got = rig.deliver(FaultPlan(truncate_at=5000))
    assert got.end == rig.truncate_end
    assert got.data == IMAGE[:5000]
    assert rig.logged_outcome("truncated") == "truncated"


def test_drop_at_breaks_the_connection_after_n_bytes(rig):
    got = rig.deliver(FaultPlan(drop_at=7000))
    assert got.end == rig.drop_end
    assert got.data == IMAGE[:7000]
    assert rig.logged_outcome("dropped") == "dropped"


def test_corrupt_flips_exactly_that_byte(rig):
    got = rig.deliver(FaultPlan(corrupt=[(3000, 0x5A)]))
    assert len(got.data) == len(IMAGE)
    assert differing(got.data) == [3000]
    assert got.data[3000] == IMAGE[3000] ^ 0x5A


def test_corrupt_image_passes_every_transport_check(rig):
    got = rig.deliver(FaultPlan(corrupt_image=[(9000, 0x01)]))
    assert got.end == "complete"
    assert differing(got.data) == [9000]
    assert got.crc_errors == []
    if got.offer is not None:  # MQTT: the offer's hash is of the damaged blob
        assert got.offer["sha256"] == hashlib.sha256(got.data).hexdigest()


def test_stall_pauses_before_the_byte(rig):
    got = rig.deliver(FaultPlan(stall_at=6144, stall_s=0.4))
    assert got.data == IMAGE
    gap = got.time_of_byte(6144) - got.time_of_byte(6143)
    # Byte 6143 itself can reach the client late on a loaded machine, shortening the gap seen
    # here; without the stall it would be a few milliseconds.
    assert gap >= 0.25, f"{rig.name}: only {gap:.3f}s between byte 6143 and 6144"


def test_rate_bps_limits_throughput(rig):
    rate = 40_000
    got = rig.deliver(FaultPlan(rate_bps=rate))
    assert got.data == IMAGE
    elapsed = got.arrivals[-1][0] - got.started
    assert elapsed >= 0.85 * len(IMAGE) / rate, f"{rig.name}: {len(IMAGE)} bytes in {elapsed:.3f}s"
    assert elapsed < 4 * len(IMAGE) / rate


def test_lie_length_announces_the_lie_and_sends_the_real_bytes(rig):
    lie = len(IMAGE) + 4096
    got = rig.deliver(FaultPlan(lie_length=lie))
    assert got.announced == lie
    assert got.data == IMAGE
    assert got.end == rig.lie_end


def test_on_bytes_fires_once_between_byte_n_minus_1_and_n(rig):
    n, hold = 5000, 0.3
    calls: list[tuple[float, int]] = []
    plan: FaultPlan

    def cut_power() -> None:
        calls.append((time.monotonic(), plan.stats()["bytes_sent"]))
        time.sleep(hold)  # nothing more may go out while the callback runs

    plan = FaultPlan(on_bytes=[(n, cut_power)])
    got = rig.deliver(plan)
    assert got.data == IMAGE
    assert len(calls) == 1 and len(plan.events) == 1
    fired_at, sent = calls[0]
    boundary = rig.fired_before(n)
    assert sent == boundary >= n
    assert got.time_of_byte(boundary) >= fired_at + hold * 0.9
    assert got.time_of_byte(boundary - 1) < fired_at + hold


def test_apply_times_limits_the_affected_transfers(rig):
    plan = FaultPlan(truncate_at=5000, apply_times=1)
    first, second = rig.deliver(plan), rig.deliver(plan)
    assert first.data == IMAGE[:5000]
    assert second.data == IMAGE and second.end == "complete"
    assert plan.stats()["transfers"] == 2


def test_on_bytes_callback_that_raises_is_recorded_and_the_transfer_goes_on(rig):
    def broken() -> None:
        raise RuntimeError("relay unreachable")

    plan = FaultPlan(on_bytes=[(4096, broken)])
    got = rig.deliver(plan)
    assert got.data == IMAGE
    assert plan.events[0]["error"] == "RuntimeError: relay unreachable"

