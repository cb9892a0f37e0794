"""The ESP8266 SDK FOTA client (device_fw/esp8266_sdk) on a real virtual ESP8266 in SDK layout: boot_v1.x starts
user1, the client takes ``fota <host> <port>`` against the harness's TCP FOTA server, writes user2 with the upgrade
API, checks it, and boot_v1.x starts user2; refusals leave user1 running; each mutation lets its fault through."""

from __future__ import annotations

import time
from types import SimpleNamespace

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


def test_a_restamped_bin_reports_its_stamp_and_updates(sdk_board, fota, v1, v2):
    board = sdk_board(SimpleNamespace(user1=img.with_version(v1.user1, "1.0.5")))
    ready(board, "1.0.5", 1)
    update(board, fota(img.with_version(v2.user2, "1.0.7")))
    board.wait(r"fota: crc ok, switching to user2\r\n")
    ready(board, "1.0.7", 2)


def test_a_bin_that_passes_the_crc_but_not_the_loader_falls_back(sdk_board, fota, v1, v2):
    board = sdk_board(v1)
    ready(board, "1.0.0", 1)
    update(board, fota(img.bad_magic(v2.user2)))
    board.wait(r"fota: crc ok, switching to user2\r\nreboot to use2")
    board.wait(r"error magic!\r\nfirst boot failed, reboot to try backup bin\r\n")
    ready(board, "1.0.0", 1)


def test_a_bin_linked_for_user1_crashes_in_user2(sdk_board, fota, v1, v2):
    """What the slot check prevents: with it off, the user1 build is written to user2 and crashes there."""
    board = sdk_board(build_client(version="1.0.0", mutation="NO_SLOT_CHECK"))
    ready(board, "1.0.0", 1)
    update(board, fota(v2.user1))
    board.wait(r"jump to run user2 @ 81000\r\n")
    board.wait(r"Fatal exception 0\(IllegalInstructionCause\)")


def test_a_corrupt_irom_crashes(sdk_board, v1):
    data = bytearray(v1.user1)
    data[16 + 80 + 200] ^= 0xFF  # inside the host payload: boot_v1.x cannot see it, the app does not run
    board = sdk_board(SimpleNamespace(user1=bytes(data)))
    board.wait(r"jump to run user1 @ 1000\r\n")
    board.wait(r"Fatal exception 0\(IllegalInstructionCause\)")
    assert "fota: ready" not in board.console()


@pytest.mark.parametrize("plan, reason", [
    (lambda n: FaultPlan(lie_length=n - 100), "overrun"),
    (lambda n: FaultPlan(lie_length=0), "bad-length"),
    (lambda n: FaultPlan(lie_length=0x80000000), "bad-length"),
    (lambda n: FaultPlan(truncate_at=2), "truncated"),
])
def test_bad_streams_are_refused(sdk_board, fota, v1, v2, plan, reason):
    board = sdk_board(v1)
    ready(board, "1.0.0", 1)
    server = fota(v2.user2)
    server.set_fault(plan(len(v2.user2)))
    update(board, server)
    board.wait(r"fota: refused: %s: " % reason)
    ready(board, "1.0.0", 1)


def test_nothing_listening_is_connect_failed_after_five_attempts(sdk_board, v1):
    from harness.servers.base import free_port

    board = sdk_board(v1)
    ready(board, "1.0.0", 1)
    board.since()
    board.send(f"fota 127.0.0.1 {free_port()}")
    board.wait(r"fota: refused: connect-failed: 5 attempts, last error -9\r\n", timeout=20)
    ready(board, "1.0.0", 1)


def _ops_in_stall(board: IdfBoard, server: FotaServer, stall_at: int) -> int:
    """Start an update whose stream pauses before byte ``stall_at``; the flash operation count during the pause."""
    server.set_fault(FaultPlan(stall_at=stall_at, stall_s=1.5))
    update(board, server)
    board.wait(r"fota: image of \d+ bytes")
    time.sleep(0.6)
    return board.control.stats()["ops"]


# The protected save's flash operations (256-byte page programs): erase the other copy, 16 pages of it,
# erase the flag sector, 16 pages of it. Cut at the copy's erase, in its write, at the flag's erase, at its last page.
SAVE_OPS = 34
CUTS = (1, 10, 18, 34)


def test_a_power_cut_in_the_switch_leaves_a_bootable_board(sdk_board, fota, v1, v2):
    """Measure the operations after a pause near the end of the stream (the last packet, then the save of the boot
    parameters), then cut at the save's operations and power on again: user1 or the complete user2 boots."""
    last_packet = len(v2.user2) - len(v2.user2) % 1280
    server = fota(v2.user2)
    board = sdk_board(v1, name="record")
    ready(board, "1.0.0", 1)
    paused = _ops_in_stall(board, server, last_packet)
    ready(board, "1.1.0", 2)
    tail = board.control.stats()["ops"] - paused  # the last packet's page programs + the save
    board.board.stop()
    booted = {}
    for j in CUTS:
        b = sdk_board(v1, name=f"cut{j}")
        ready(b, "1.0.0", 1)
        _ops_in_stall(b, server, last_packet)
        b.control.arm_cut(after_ops=tail - SAVE_OPS + j, policy="prefix", seed=j)
        cut = b.control.wait_event("cut", timeout=20)
        assert any(p <= cut["addr"] < p + 0x1000 for p in (*LAYOUT.params, LAYOUT.flag)), cut
        off = b.control.wait_event("power", on=False, timeout=20)
        b.since()
        b.control.power(True)
        e = b.control.wait_event("boot", since=off["seq"], result="app", timeout=20)
        ready(b, "1.0.0" if e["slot"] == 1 else "1.1.0", e["slot"])
        booted[j] = e["slot"]
        b.board.stop()
    # before the flag names the new copy the old parameters hold; once its first page is written, the new ones
    assert booted[1] == 1 and booted[10] == 1 and booted[34] == 2, booted
