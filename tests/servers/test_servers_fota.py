"""ESP8266 SDK TCP FOTA server: slot byte, length word, 1280-byte packets, bad requests."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from ota_clients import WAIT, fetch_fota, make_image

USER1 = make_image(5000, seed=5)
USER2 = make_image(7000, seed=6)


@pytest.fixture
def server(fota_server):
    return fota_server({1: USER1, 2: USER2})


def send_and_read_all(server, data: bytes) -> bytes:
    with socket.create_connection((server.endpoint.host, server.endpoint.port), timeout=WAIT) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_each_slot_gets_its_image_after_a_little_endian_length(server):
    assert send_and_read_all(server, b"\x01") == struct.pack("<I", len(USER1)) + USER1
    assert send_and_read_all(server, b"\x02") == struct.pack("<I", len(USER2)) + USER2
    records = server.wait_transfers(2)
    assert [(r["slot"], r["length"], r["bytes_sent"], r["outcome"]) for r in records] == [
        (1, len(USER1), len(USER1), "complete"), (2, len(USER2), len(USER2), "complete")]
    assert server.url.startswith("tcp://127.0.0.1:")


def test_image_goes_out_in_1280_byte_packets(fota_server):
    server = fota_server({1: USER2}, packet_pause_s=0.1)
    got = fetch_fota(server.endpoint, 1)
    assert got.data == USER2
    for boundary in (1280, 2560, 3840, 5120, 6400):
        gap = got.time_of_byte(boundary) - got.time_of_byte(boundary - 1)
        assert gap >= 0.08, f"no pause at packet boundary {boundary}: {gap:.3f}s"
    assert got.time_of_byte(1279) - got.time_of_byte(0) < 0.08


@pytest.mark.parametrize("request_bytes, slot", [(b"\x03", 3), (b"1", 0x31), (b"\x00", 0)])
def test_bad_slot_byte_is_logged_and_the_next_device_is_served(server, request_bytes, slot):
    assert send_and_read_all(server, request_bytes) == b""
    record = server.wait_transfers(1)[0]
    assert (record["slot"], record["outcome"]) == (slot, "bad-slot")
    assert record["error"] == f"no image for slot byte 0x{slot:02x}; have [1, 2]"
    assert fetch_fota(server.endpoint, 2).data == USER2


def test_device_that_sends_nothing_is_logged(fota_server):
    server = fota_server({1: USER1}, slot_timeout=0.2)
    socket.create_connection((server.endpoint.host, server.endpoint.port), timeout=WAIT).close()
    with socket.create_connection((server.endpoint.host, server.endpoint.port), timeout=WAIT) as idle:
        started = time.monotonic()
        assert idle.recv(1) == b""
        assert time.monotonic() - started >= 0.15
    errors = [r["error"] for r in server.wait_transfers(2)]
    assert errors == ["closed before sending a slot byte", "no slot byte within 0.2s"]
    assert fetch_fota(server.endpoint, 1).data == USER1


def test_set_image_replaces_a_slot(server):
    server.set_image(1, b"new user1")
    assert fetch_fota(server.endpoint, 1).data == b"new user1"
    with pytest.raises(ValueError, match="one byte"):
        server.set_image(256, b"")
