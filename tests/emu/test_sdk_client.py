"""The ESP8266 SDK FOTA client (device_fw/esp8266_sdk) on a real virtual ESP8266 in SDK layout: boot_v1.x starts
user1, the client takes ``fota <host> <port>`` against the harness's TCP FOTA server, writes user2 with the upgrade
API, checks it, and boot_v1.x starts user2; refusals leave user1 running; each mutation lets its fault through."""

from __future__ import annotations

import time

import pytest
from test_idf_runtime import IdfBoard

from harness.emu.sdk8266.build import build_client
from harness.esp import esp8266_image as img
from harness.esp.esp8266_image import FotaLayout, sdk_baseline
from harness.servers.faults import FaultPlan
from harness.servers.fota import FotaServer

pytestmark = pytest.mark.timeout(120)

MB4 = 4 * 1024 * 1024
LAYOUT = FotaLayout.for_map_code(4)


@pytest.fixture(scope="module")
def v1():
    return build_client(version="1.0.0")


@pytest.fixture(scope="module")
def v2():
    return build_client(version="1.1.0")


@pytest.fixture
def sdk_board(start_board, tmp_path):
    """Factory: a virtual ESP8266 flashed with the SDK layout (boot image, user1 of ``build``), powered on."""
    opened: list[IdfBoard] = []

    def start(build, name: str = "sdk") -> IdfBoard:
        path = str(tmp_path / f"{name}.bin")
        with open(path, "wb") as f:
            f.write(b"\xff" * MB4)
            for part in sdk_baseline(MB4, 4, build.user1):
                f.seek(part.offset)
                f.write(part.data)
        board = start_board("esp8266", flash_file=path, name=name)
        b = IdfBoard(board, str(tmp_path / f"{name}.console"), path)
        opened.append(b)
        return b

    yield start
    for b in opened:
        b.close()


@pytest.fixture
def fota():
    servers: list[FotaServer] = []

    def start(image: bytes, slot: int = 2) -> FotaServer:
        srv = FotaServer({slot: image})
        srv.endpoint = srv.start()
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.stop()


def ready(board: IdfBoard, version: str, slot: int) -> None:
    board.wait(r"fota: ready, version %s, running user%d\r\n" % (version.replace(".", r"\."), slot))


def update(board: IdfBoard, server: FotaServer) -> None:
    board.since()
    board.send(f"fota 127.0.0.1 {server.endpoint.port}")


def test_update_switches_to_user2_with_the_new_version(sdk_board, fota, v1, v2):
    board = sdk_board(v1)
    ready(board, "1.0.0", 1)
    server = fota(v2.user2)
    t0 = time.monotonic()
    update(board, server)
    board.wait(r"fota: connecting to 127\.0\.0\.1:%d, asking for user2\r\n" % server.endpoint.port)
    n = len(v2.user2)
    board.wait(r"fota: image of %d bytes for user2\r\n" % n)
    board.wait(r"fota: written %d of %d bytes\r\n" % (n, n))
    board.wait(r"fota: crc ok, switching to user2\r\nreboot to use2")
    ready(board, "1.1.0", 2)
    elapsed = time.monotonic() - t0
    assert board.flash(LAYOUT.user2, n) == v2.user2
    assert "jump to run user2 @ 81000" in board.console()[board.mark:]
    print(f"update of {n} bytes: {elapsed:.2f} s")


def test_bad_crc_is_refused_and_user1_boots_again(sdk_board, fota, v1, v2):
    board = sdk_board(v1)
    ready(board, "1.0.0", 1)
    update(board, fota(img.bad_crc(v2.user2)))
    board.wait(r"fota: refused: bad-crc: computed 0x[0-9a-f]{8}, the bin says 0x[0-9a-f]{8}\r\n")
    ready(board, "1.0.0", 1)
    assert "reboot to use2" not in board.console()[board.mark:]


def served(variant: str, v1, v2):
    """(image, fault plan) the server sends for ``variant``."""
    if variant == "other_slot":
        return img.other_slot(v2.user2), None  # relabelled as linked for user1
    if variant == "user1_build":
        return v2.user1, None  # the user1 build served for user2
    if variant == "same":
        return v1.user2, None
    if variant == "older":
        return v1.user2, None
    if variant == "truncated":
        return v2.user2, FaultPlan(truncate_at=len(v2.user2) // 2)
    if variant == "too_large":
        return img.too_large(v2.user2, LAYOUT.slot_size), None
    if variant == "bad_crc":
        return img.bad_crc(v2.user2), None
    raise AssertionError(variant)


@pytest.mark.parametrize("variant, reason", [
    ("other_slot", "wrong-slot"),
    ("user1_build", "wrong-slot"),
    ("same", "same-version"),
    ("truncated", "truncated"),
    ("too_large", "too-large"),
])
def test_refusals(sdk_board, fota, v1, v2, variant, reason):
    board = sdk_board(v1)
    ready(board, "1.0.0", 1)
    image, plan = served(variant, v1, v2)
    server = fota(image)
    server.set_fault(plan)
    update(board, server)
    board.wait(r"fota: refused: %s: " % reason)
    ready(board, "1.0.0", 1)
    assert "switching to user2" not in board.console()[board.mark:]


def test_older_version_is_refused(sdk_board, fota, v1, v2):
    board = sdk_board(v2)
    ready(board, "1.1.0", 1)
    update(board, fota(v1.user2))
    board.wait(r"fota: refused: older-version: the bin is 1\.0\.0, this is 1\.1\.0\r\n")
    ready(board, "1.1.0", 1)


@pytest.mark.parametrize("mutation, variant", [
    ("NO_CRC_CHECK", "bad_crc"),
    ("NO_SLOT_CHECK", "other_slot"),
    ("NO_VERSION_CHECK", "same"),
    ("SWITCH_ON_SHORT", "truncated"),
])
def test_each_mutation_lets_its_fault_through(sdk_board, fota, v1, v2, mutation, variant):
    mutant = build_client(version="1.0.0", mutation=mutation)
    board = sdk_board(mutant)
    ready(board, "1.0.0", 1)
    image, plan = served(variant, v1, v2)
    server = fota(image)
    server.set_fault(plan)
    update(board, server)
    board.wait(r"fota: crc ok, switching to user2\r\n")
    board.wait(r"reboot to use2")


def test_no_length_check_mutation_accepts_a_too_large_bin(sdk_board, fota, v1, v2):
    board = sdk_board(build_client(version="1.0.0", mutation="NO_LENGTH_CHECK"))
    ready(board, "1.0.0", 1)
    update(board, fota(img.too_large(v2.user2, LAYOUT.slot_size)))
    m = board.wait(r"fota: (image of \d+ bytes for user2|refused: too-large)")
    assert "too-large" not in m.group(0)
