"""The project's ESP-IDF OTA client (device_fw/esp_idf) end to end on a virtual ESP32.

The client is the host build of its own sources (harness.emu.idf.build); updates come from the harness's
HTTP server, as versions re-stamped from the same build (harness.esp.app_image.set_version), so every
image offered carries the same executable and a check the client makes is the one a real board makes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import time

import pytest
from test_idf_runtime import idf_board  # noqa: F401  (the board fixture)

from harness.emu.idf.build import DEFAULT_PROJECT, build_app
from harness.esp.app_image import AppImage, Segment, parse_image, rehash, set_version
from harness.esp.otadata import OtaState, as_entries
from harness.servers.faults import FaultPlan
from harness.servers.http import HttpServer
from harness.servers.tls import TlsMaterial

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not (DEFAULT_PROJECT / "main").is_dir(), reason="no device_fw/esp_idf")]

OTA_0, OTA_1, OTADATA = 0x10000, 0x190000, 0xD000


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return TlsMaterial.create(tmp_path_factory.mktemp("tls"), ["127.0.0.1", "localhost"])


@pytest.fixture(scope="module")
def client(tls):
    return build_app(ca_pem=tls.ca_pem)



@pytest.fixture
def ready(idf_board, client):  # noqa: F811
    """The client at version 1, connected and waiting for a URL."""
    return idf_board(client, "client").waiting_for_url()


def _states(board) -> list[tuple[int, int]]:
    """(seq, state) of both otadata entries."""
    return [(e.seq, e.state) for e in as_entries(board.flash(OTADATA, 0x2000))]


def _slot_state(board, slot: int) -> int | None:
    for seq, state in _states(board):
        if seq != 0xFFFFFFFF and (seq - 1) % 2 == slot:
            return state
    return None


def test_update_reboots_into_the_new_version_which_confirms_itself(ready, client, server):
    image = set_version(client.image, "2")
    url = server.add("/fw/v2.bin", image)
    ready.since()
    ready.send(url)
    ready.wait(r"esp_https_ota: Writing to <ota_1> partition at offset 0x190000")
    ready.wait(r"ota_client: Written \d+ of %d bytes" % len(image))
    ready.wait(r"ota_client: ESP_HTTPS_OTA upgrade successful\. Rebooting")
    ready.wait(r"rst:0xc \(SW_CPU_RESET\)")
    ready.wait(r"boot: Loaded app from partition at offset 0x190000")
    ready.wait(r"ota_client: Running firmware version: 2\r\n")
    ready.wait(r"ota_client: Diagnostics \(GET http://127\.0\.0\.1:\d+/health\)")
    ready.wait(r"ota_client: App is valid, rollback cancelled successfully")
    assert ready.flash(OTA_1, len(image)) == image
    assert _slot_state(ready, 1) == OtaState.VALID


def test_the_running_version_is_refused_before_anything_is_written(ready, client, server):
    url = server.add("/fw/v1.bin", client.image)
    before = ready.control.stats()
    slot = ready.flash(OTA_1, 0x1000)
    ready.since()
    ready.send(url)
    ready.wait(r"Current running version is the same as a new\. We will not continue the update\.")
    ready.wait(r"Waiting for the firmware URL on the serial line")
    after = ready.control.stats()
    assert ready.flash(OTA_1, 0x1000) == slot
    erased = {int(k, 16) for k, v in after["erase_counts"].items() if before["erase_counts"].get(k) != v}
    assert not [a for a in erased if OTA_1 <= a < OTA_1 + 0x180000 or OTADATA <= a < OTADATA + 0x2000]


def test_failed_diagnostics_roll_back_to_ota_0_and_mark_ota_1_invalid(ready, client, server):
    url = server.add("/fw/v2.bin", set_version(client.image, "2"))
    ready.since()
    ready.send(url)
    ready.wait(r"Running firmware version: 2\r\n")
    server.set_health("down")
    ready.wait(r"ota_client: Diagnostics failed! Start rollback to the previous version")
    ready.wait(r"rst:0xc \(SW_CPU_RESET\)")
    ready.wait(r"boot: Loaded app from partition at offset 0x10000")
    ready.wait(r"ota_client: Running firmware version: 1\r\n")
    assert _slot_state(ready, 1) == OtaState.INVALID
    # the version that failed is refused when offered again
    ready.wait(r"Waiting for the firmware URL")
    ready.since()
    ready.send(url)
    ready.wait(r"New version is the same as invalid version")


def test_a_truncated_image_is_refused_and_version_1_keeps_running(ready, client, server):
    image = set_version(client.image, "2")
    url = server.add("/fw/short.bin", image[:64000])
    ready.since()
    ready.send(url)
    ready.wait(r"Image validation failed, image is corrupted|Complete data was not received")
    ready.wait(r"Waiting for the firmware URL on the serial line")
    assert _slot_state(ready, 1) is None
    ready.since()
    ready.control.reset()
    ready.wait(r"Running firmware version: 1\r\n")


def test_an_image_for_another_chip_is_refused(ready, client, server):
    image = bytearray(set_version(client.image, "2"))
    image[12:14] = struct.pack("<H", 9)  # ESP32-S3
    url = server.add("/fw/s3.bin", rehash(bytes(image)))
    ready.since()
    ready.send(url)
    ready.wait(r"E \(\d+\) esp_https_ota: Mismatch chip id, expected 0, found 9")
    ready.wait(r"Waiting for the firmware URL on the serial line")
    assert _slot_state(ready, 1) is None


def test_a_manifest_with_a_wrong_digest_is_refused(ready, client, server):
    image = set_version(client.image, "2")
    server.add("/fw/v2.bin", image)
    manifest = {"version": "2", "size": len(image), "sha256": hashlib.sha256(b"other").hexdigest(),
                "url": "v2.bin"}
    url = server.add("/fw/manifest.json", json.dumps(manifest).encode(), "application/json")
    ready.since()
    ready.send(url)
    ready.wait(r"ota_client: Manifest: version 2, %d bytes" % len(image))
    ready.wait(r"SHA-256 mismatch")
    ready.wait(r"Waiting for the firmware URL on the serial line")
    assert _slot_state(ready, 1) is None


def test_https_with_the_run_ca_updates(idf_board, client, tls):  # noqa: F811
    srv = HttpServer(tls=tls.cert("server"))
    srv.start()
    try:
        board = idf_board(client, "https")
        board.wait(r"Waiting for the firmware URL on the serial line")
        url = srv.add("/fw/v2.bin", set_version(client.image, "2"))
        assert url.startswith("https://")
        board.since()
        board.send(url)
        board.wait(r"ESP_HTTPS_OTA upgrade successful")
        board.wait(r"Running firmware version: 2\r\n")
    finally:
        srv.stop()


def test_https_with_a_certificate_for_another_host_fails_verification(idf_board, client, tls):  # noqa: F811
    srv = HttpServer(tls=tls.cert("wrong-host"))
    srv.start()
    try:
        board = idf_board(client, "wronghost")
        board.wait(r"Waiting for the firmware URL on the serial line")
        url = srv.add("/fw/v2.bin", set_version(client.image, "2"))
        board.since()
        board.send(url)
        board.wait(r"esp-tls-mbedtls: mbedtls_ssl_handshake returned -0x2700")
        board.wait(r"esp-tls-mbedtls: Failed to verify peer certificate!")
        board.wait(r"E \(\d+\) HTTP_CLIENT: Connection failed, sock < 0")
        board.wait(r"Waiting for the firmware URL on the serial line")
        assert _slot_state(board, 1) is None
    finally:
        srv.stop()


def test_a_power_cut_during_the_download_leaves_version_1_booting(ready, client, server):
    image = set_version(client.image, "2")
    url = server.add("/fw/v2.bin", image, fault=FaultPlan(rate_bps=200_000))
    ready.since()
    ready.send(url)
    ready.wait(r"Written \d+ of %d bytes" % len(image))
    ops = ready.control.stats()["ops"]
    ready.control.arm_cut(after_ops=40, policy="random", seed=7)
    ready.control.wait_event("power", timeout=60, on=False, reason="cut")
    assert ready.control.stats()["ops"] == ops + 40
    assert parse_image(ready.flash(OTA_0, 0x180000)).app_desc.version == "1"
    ready.since()
    ready.control.power(True)
    ready.wait(r"boot: Loaded app from partition at offset 0x10000")
    ready.wait(r"Running firmware version: 1\r\n")


def test_a_1_5_mb_image_updates(ready, client, server, record_property):
    """An image of ESP-IDF's typical size class: the executable plus a filler segment up to ~1.5 MB."""
    base = AppImage.from_bytes(set_version(client.image, "2"))
    pad = (0x170000 - len(base.to_bytes())) & ~3
    image = dataclasses.replace(base, segments=base.segments + (Segment(0x3FFB1000, bytes(pad)),)).to_bytes()
    url = server.add("/fw/big.bin", image)
    ready.since()
    t0 = time.monotonic()
    ready.send(url)
    ready.wait(r"ESP_HTTPS_OTA upgrade successful", timeout=120)
    took = time.monotonic() - t0
    record_property("update_seconds_1_5mb", round(took, 2))
    ready.wait(r"Running firmware version: 2\r\n")
    print(f"1.5 MB image ({len(image)} bytes): written and switched in {took:.1f} s")


def test_a_chunked_answer_and_a_redirect_chain_still_update(ready, client, server):
    image = set_version(client.image, "2")
    server.add("/fw/v2.bin", image, chunked=True)
    server.add_redirect("/fw/latest.bin", "/fw/moved.bin", 302)
    server.add_redirect("/fw/moved.bin", server.url_for("/fw/v2.bin"), 308)
    url = server.url_for("/fw/latest.bin")
    ready.since()
    ready.send(url)
    ready.wait(r"ESP_HTTPS_OTA upgrade successful")
    ready.wait(r"Running firmware version: 2\r\n")
    paths = [r.get("request", "") for r in server.requests()]
    assert any("/fw/latest.bin" in p for p in paths) and any("/fw/v2.bin" in p for p in paths)


def test_the_station_retries_until_the_access_point_is_back(ready):
    ready.control.wifi(False)
    ready.since()
    ready.control.reset()
    ready.wait(r"example_connect: Wi-Fi disconnected 201, trying to reconnect\.\.\.")
    ready.control.wifi(True)
    ready.wait(r"example_common: Connected to example_netif_sta")
    ready.wait(r"Waiting for the firmware URL on the serial line")


def test_without_a_ca_https_fails_as_with_a_ca_that_does_not_parse(idf_board, tls):  # noqa: F811
    srv = HttpServer(tls=tls.cert("server"))
    srv.start()
    try:
        bare = build_app()  # no ca_pem: the placeholder text is embedded
        board = idf_board(bare, "noca")
        board.wait(r"Waiting for the firmware URL on the serial line")
        board.since()
        board.send(srv.add("/fw/v2.bin", set_version(bare.image, "2")))
        board.wait(r"esp-tls-mbedtls: mbedtls_x509_crt_parse returned -0x2180")
        board.wait(r"HTTP_CLIENT: Connection failed, sock < 0")
        board.wait(r"Waiting for the firmware URL on the serial line")
    finally:
        srv.stop()


def test_a_connection_dropped_mid_image_is_incomplete_data(ready, client, server):
    image = set_version(client.image, "2")
    url = server.add("/fw/v2.bin", image, fault=FaultPlan(drop_at=100_000))
    ready.since()
    ready.send(url)
    ready.wait(r"ota_client: Complete data was not received")
    ready.wait(r"Waiting for the firmware URL on the serial line")
    assert _slot_state(ready, 1) is None


def test_a_manifest_with_the_right_digest_updates(ready, client, server):
    """The client hashes the written slot with mbedtls_sha256_*: the runtime's SHA-256 must be the real one."""
    image = set_version(client.image, "2")
    server.add("/fw/v2.bin", image)
    manifest = {"version": "2", "size": len(image), "sha256": hashlib.sha256(image).hexdigest(), "url": "v2.bin"}
    url = server.add("/fw/manifest.json", json.dumps(manifest).encode(), "application/json")
    ready.since()
    ready.send(url)
    ready.wait(r"ESP_HTTPS_OTA upgrade successful")
    ready.wait(r"Running firmware version: 2\r\n")
    assert "SHA-256 mismatch" not in ready.console()[ready.mark:]


@pytest.mark.parametrize("follows", [True, False], ids=["client", "mutation-no-redirects"])
def test_a_manifest_behind_a_redirect(idf_board, tls, server, follows):  # noqa: F811
    """The client follows redirects of its own requests (esp_https_ota follows those of the image itself);
    the NO_REDIRECTS mutation stops at the 3xx answer, so a scenario with a redirected manifest catches it."""
    build = build_app(ca_pem=tls.ca_pem, sdkconfig=None if follows else {"OTA_CLIENT_MUTATION_NO_REDIRECTS": True})
    board = idf_board(build, "redirect")
    board.wait(r"Waiting for the firmware URL on the serial line")
    image = set_version(build.image, "2")
    server.add("/cdn/v2.bin", image)
    # a relative "url" is resolved against the URL written on the serial line, not against where it was redirected
    manifest = {"version": "2", "size": len(image), "sha256": hashlib.sha256(image).hexdigest(),
                "url": server.url_for("/cdn/v2.bin")}
    server.add("/cdn/manifest.json", json.dumps(manifest).encode(), "application/json")
    server.add_redirect("/latest.json", "/cdn/manifest.json", 302)
    board.since()
    board.send(server.url_for("/latest.json"))
    if follows:
        board.wait(r"ota_client: Following an HTTP 302 redirect")
        board.wait(r"ota_client: Manifest: version 2")
        board.wait(r"ESP_HTTPS_OTA upgrade successful")
        board.wait(r"Running firmware version: 2\r\n")
    else:
        board.wait(r"/latest\.json answered HTTP 302")
        board.wait(r"Waiting for the firmware URL on the serial line")
