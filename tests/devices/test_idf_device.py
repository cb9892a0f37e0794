"""The ESP-IDF devices without a board: ``flasher_args.json`` read as pytest-embedded reads it, the baseline and the
layout it gives, the updates each device publishes, the URL written on the serial line, the host build it asks for."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import types
import urllib.request

import pytest
from idf_fakes import PaperBench, idf_build, paper_board

from harness.devices import (
    Capability,
    DeviceError,
    EspIdfAntiRollbackDevice,
    EspIdfDevice,
    FlasherArgsError,
    IdfAppDevice,
    read_flasher_args,
)
from harness.esp import parse_image, set_version, verify_image
from harness.rig import DeviceSpec
from harness.servers import HttpServer


# -- flasher_args.json ----------------------------------------------------------------------------------------------
def test_flasher_args_as_idf_py_writes_them(tmp_path):
    build = idf_build(tmp_path / "build")
    args = read_flasher_args(build)
    assert args.path == build / "flasher_args.json" and args.build_dir == build
    assert [(hex(o), p.relative_to(build).as_posix()) for o, p in args.flash_files] == [
        ("0x1000", "bootloader/bootloader.bin"), ("0x8000", "partition_table/partition-table.bin"),
        ("0xd000", "ota_data_initial.bin"), ("0x10000", "esp_ota_client.bin")]
    assert args.app == (0x10000, build / "esp_ota_client.bin")
    assert args.chip == "esp32" and args.flash_settings["flash_size"] == "4MB"


def test_offsets_in_any_order_and_base_and_the_chip_from_the_project_description(tmp_path):
    build = idf_build(tmp_path / "build", chip="esp32")
    (build / "flasher_args.json").write_text(json.dumps({
        "flash_files": {"65536": "esp_ota_client.bin", "0x1000": "bootloader/bootloader.bin"}}))
    args = read_flasher_args(build)
    assert [o for o, _p in args.flash_files] == [0x1000, 0x10000]
    assert args.app is None and args.chip == "esp32"  # project_description.json's target


@pytest.mark.parametrize("content, problem", [
    (None, "no flasher_args.json in build (is it an ESP-IDF build directory? run idf.py build)"),
    ("{", "build/flasher_args.json is not valid JSON: Expecting property name enclosed in double quotes at line 1"),
    ("[]", "build/flasher_args.json has no flash_files (offset -> file)"),
    ('{"flash_files": {}}', "build/flasher_args.json has no flash_files (offset -> file)"),
    ('{"flash_files": {"boot": "b.bin"}}', "build/flasher_args.json: flash_files: 'boot' is not a flash offset"),
])
def test_a_build_directory_that_cannot_be_used_is_one_line(tmp_path, monkeypatch, content, problem):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build").mkdir()
    if content is not None:
        (tmp_path / "build" / "flasher_args.json").write_text(content)
    with pytest.raises(FlasherArgsError) as caught:
        read_flasher_args(tmp_path / "build")
    assert str(caught.value) == problem
    with pytest.raises(FlasherArgsError, match=r"^no such build directory: nowhere \(run idf.py build\)$"):
        read_flasher_args(tmp_path / "nowhere")


# -- devices on a board of paper ----------------------------------------------------------------------------------
@pytest.fixture
def http():
    with HttpServer(name="http") as server:
        yield server


def make(cls, tmp_path, http, build_dir=None, patterns=None, mutation=None, virtual=True):
    board = paper_board(virtual=virtual)
    spec = DeviceSpec(cls.kind, ["firmware"], build_dir=build_dir, patterns=patterns or {})
    device = cls(spec, board, PaperBench(http, mutation))
    device.take_board()
    return device


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read()


def test_the_baseline_is_the_build_s_flash_files_and_gives_the_board_its_layout(tmp_path, http):
    build = idf_build(tmp_path / "build")
    device = make(IdfAppDevice, tmp_path, http, build)
    parts = device.baseline_parts()
    assert [(p.offset, p.name) for p in parts] == [(0x1000, "bootloader.bin"), (0x8000, "partition-table.bin"),
                                                    (0xD000, "ota_data_initial.bin"), (0x10000, "esp_ota_client.bin")]
    assert parts[-1].data == (build / "esp_ota_client.bin").read_bytes()
    board = device.board
    assert board.device is device and board.console.parser is device.parser
    assert (board.baseline_slot().label, board.update_slot().label) == ("ota_0", "ota_1")
    assert board.partition_table().find("nvs").offset == 0x9000
    assert device.baseline_version("firmware") == "1"
    assert device.baseline_versions() == {"firmware": "1"}
    assert parse_image(device.baseline_app(), "esp32").app_desc.project_name == "esp_ota_client"


def test_capabilities_and_the_state_a_rolled_back_version_is_left_in():
    assert Capability.ANNOUNCES_DIGEST not in IdfAppDevice.capabilities  # a plain image URL announces nothing
    assert Capability.ANNOUNCES_DIGEST in EspIdfDevice.capabilities
    assert set(EspIdfDevice.capabilities) == set(Capability.ALL)
    assert EspIdfDevice.rolled_back_state == IdfAppDevice.rolled_back_state == "INVALID"


def test_the_esp_idf_client_is_offered_a_manifest_with_version_size_and_sha256(tmp_path, http):
    device = make(EspIdfDevice, tmp_path, http, idf_build(tmp_path / "build"))
    pub = device.publish("firmware", "next", "/esp32-0/esp-idf/firmware/1")
    assert pub.url == http.url_for("/esp32-0/esp-idf/firmware/1/manifest.json")
    manifest = json.loads(fetch(pub.url))
    image = fetch(http.url_for("/esp32-0/esp-idf/firmware/1/fw.bin"))
    assert manifest == {"version": pub.version, "size": len(image), "sha256": hashlib.sha256(image).hexdigest(),
                        "url": "fw.bin"}
    # the baseline's app with its version re-stamped (set_version): a valid image of the next version
    assert pub.version == parse_image(image, "esp32").app_desc.version != "1"
    assert verify_image(image, chip="esp32").ok
    assert image in device.board.known_images
    assert pub.paths == ["/esp32-0/esp-idf/firmware/1/fw.bin"] and pub.path_sizes[pub.paths[0]] == len(image)


def test_a_tampered_image_is_announced_with_the_genuine_digest(tmp_path, http):
    device = make(EspIdfDevice, tmp_path, http, idf_build(tmp_path / "build"))
    genuine = device.publish("firmware", "next", "/g")
    tampered = device.publish("firmware", "tampered", "/t")
    image = fetch(http.url_for("/t/fw.bin"))
    assert json.loads(fetch(tampered.url))["sha256"] == genuine.sha256 != hashlib.sha256(image).hexdigest()
    assert verify_image(image, chip="esp32").ok  # well-formed: only the announced digest can catch it
    same = device.publish("firmware", "same", "/s")
    assert same.version == "1" and fetch(http.url_for("/s/fw.bin")) == device.baseline_app()


def test_an_idf_app_is_offered_the_image_s_own_url_and_no_tampered_variant(tmp_path, http):
    device = make(IdfAppDevice, tmp_path, http, idf_build(tmp_path / "build"))
    pub = device.publish("firmware", "next", "/app/1")
    assert pub.url == http.url_for("/app/1/fw.bin")
    assert parse_image(fetch(pub.url), "esp32").app_desc.version == pub.version
    with pytest.raises(DeviceError, match="plain image URL"):
        device.publish("firmware", "tampered", "/app/2")
    with pytest.raises(DeviceError, match="takes no 'files' updates"):
        device.publish("files", "next", "/app/3")
    with pytest.raises(DeviceError, match="no firmware variant 'nope'"):
        device.publish("firmware", "nope", "/app/4")


# -- the URL on the serial line -----------------------------------------------------------------------------------
def feed_later(console, lines: list[str], delay: float = 0.2) -> threading.Thread:
    def feed():
        time.sleep(delay)
        console._append("".join(line + "\n" for line in lines))

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def test_the_url_is_written_once_the_client_listens(tmp_path, http):
    device = make(EspIdfDevice, tmp_path, http, idf_build(tmp_path / "build"))
    console = device.board.console
    console._append("I (30) ota_client: Running firmware version: 1\n")
    pub = device.publish("firmware", "next", "/p")
    feed_later(console, ["I (90) ota_client: Waiting for the firmware URL on the serial line"])
    mark = device.trigger(pub)
    assert console._port.written == pub.url.encode() + b"\n"
    assert mark == console.mark()
    # a second trigger waits for the next listening line: the first one has been used
    device.listen_timeout = 0.3
    with pytest.raises(TimeoutError):
        device.trigger(pub)
    # a listening line of a boot that ended does not count: only one after the last ready
    console._append("I (99) ota_client: Waiting for the firmware URL on the serial line\n"
                    "I (30) ota_client: Running firmware version: 1\n")
    with pytest.raises(TimeoutError):
        device.trigger(pub)
    console._append("I (99) ota_client: Waiting for the firmware URL on the serial line\n")
    device.trigger(pub)
    assert console._port.written == 2 * (pub.url.encode() + b"\n")


def test_an_idf_app_that_never_says_it_listens_gets_the_url_all_the_same(tmp_path, http):
    device = make(IdfAppDevice, tmp_path, http, idf_build(tmp_path / "build"))
    device.listen_timeout = 0.2
    device.board.console._append("I (30) app: Running firmware version: 1\n")
    pub = device.publish("firmware", "next", "/p")
    device.trigger(pub)
    assert device.board.console._port.written == pub.url.encode() + b"\n"


# -- the host build ----------------------------------------------------------------------------------------------
@pytest.fixture
def host_build(tmp_path, monkeypatch):
    """A stand-in for harness.emu.idf.build that records how it was called and returns a build directory."""
    calls = []
    build_dir = idf_build(tmp_path / "host-build")

    def build_app(project_dir=None, *, sdkconfig=None, ca_pem=None, version=None):
        calls.append({"sdkconfig": sdkconfig, "ca_pem": ca_pem})
        return types.SimpleNamespace(build_dir=build_dir)

    from harness.emu.idf.build import HostBuildError

    module = types.ModuleType("harness.emu.idf.build")
    module.build_app = build_app
    module.HostBuildError = HostBuildError
    monkeypatch.setitem(sys.modules, "harness.emu.idf.build", module)
    return calls


def test_a_host_build_that_fails_gives_the_compiler_s_message_once(tmp_path, http, host_build):
    build = sys.modules["harness.emu.idf.build"]
    message = "esp_ota_client: the host build failed in main/ota_update.c:\nmain/ota_update.c:12: error: expected ';'"

    def broken(project_dir=None, **kwargs):
        host_build.append(kwargs)
        raise build.HostBuildError(message)

    build.build_app = broken
    device = make(EspIdfDevice, tmp_path, http)
    with pytest.raises(build.HostBuildError) as first:
        device.baseline_parts()
    assert str(first.value) == message
    with pytest.raises(build.HostBuildError) as again:  # a later case of the run: one line, no second build
        device.baseline_parts()
    assert "\n" not in str(again.value) and "main/ota_update.c" in str(again.value)
    assert "failed in an earlier case of this run" in str(again.value) and len(host_build) == 1


def test_on_a_virtual_board_the_client_is_host_built_with_the_run_s_ca_and_mutation(tmp_path, http, host_build):
    device = make(EspIdfDevice, tmp_path, http, mutation="skip-version-check")
    assert device.flasher_args().build_dir == tmp_path / "host-build"
    assert host_build == [{"sdkconfig": {"OTA_CLIENT_MUTATION_SKIP_VERSION_CHECK": True},
                           "ca_pem": device.bench.ca}]
    device.baseline_parts()
    assert len(host_build) == 1  # built once per device
    plain = make(EspIdfDevice, tmp_path, http, mutation="fw-no-digest-check")  # the agent's: not this device's
    plain.flasher_args()
    assert host_build[-1]["sdkconfig"] is None


def test_a_rig_s_build_directory_is_used_as_it_is_and_cannot_be_mutated(tmp_path, http, host_build):
    device = make(EspIdfDevice, tmp_path, http, idf_build(tmp_path / "build"), mutation="skip-diagnostics")
    assert device.flasher_args().build_dir == tmp_path / "build" and host_build == []
    with pytest.raises(DeviceError, match="a mutation of the esp-idf client needs a build the harness makes"):
        device.prepare()


def test_without_the_host_build_the_error_says_so(tmp_path, http, monkeypatch):
    monkeypatch.setitem(sys.modules, "harness.emu.idf.build", None)  # import fails
    device = make(EspIdfDevice, tmp_path, http)
    with pytest.raises(DeviceError, match=r"the host build of device_fw/esp_idf \(harness.emu.idf.build\) is not "
                                          r"available"):
        device.baseline_parts()


# -- the client built with anti-rollback ---------------------------------------------------------------------------
def test_only_the_anti_rollback_build_has_anti_rollback_and_the_lower_secure_version_variant():
    assert Capability.ANTI_ROLLBACK not in EspIdfDevice.capabilities
    assert EspIdfAntiRollbackDevice.capabilities == EspIdfDevice.capabilities | {Capability.ANTI_ROLLBACK}
    assert "lower_secure_version" in EspIdfAntiRollbackDevice.variants["firmware"]
    assert "lower_secure_version" not in EspIdfDevice.variants["firmware"]
    assert EspIdfDevice.sdkconfig == {}  # the project's defaults: anti-rollback off
    assert EspIdfAntiRollbackDevice.sdkconfig == {"BOOTLOADER_APP_ANTI_ROLLBACK": True,
                                                  "BOOTLOADER_APP_SECURE_VERSION": 2}


def test_lower_secure_version_is_the_next_version_below_the_baseline_s_secure_version(tmp_path, http):
    build = idf_build(tmp_path / "build")
    app = build / "esp_ota_client.bin"
    app.write_bytes(set_version(app.read_bytes(), "1", 2))
    device = make(EspIdfAntiRollbackDevice, tmp_path, http, build)
    pub = device.publish("firmware", "lower_secure_version", "/l")
    image = fetch(http.url_for("/l/fw.bin"))
    desc = parse_image(image, "esp32").app_desc
    assert (pub.version, desc.version, desc.secure_version) == ("1.1", "1.1", 1)  # next_version("1")
    assert verify_image(image, chip="esp32").ok  # well-formed: only its secure_version says no
    assert json.loads(fetch(pub.url))["sha256"] == hashlib.sha256(image).hexdigest()
    plain = make(EspIdfDevice, tmp_path, http, idf_build(tmp_path / "plain"))
    with pytest.raises(ValueError, match="secure_version is 0"):
        plain.publish("firmware", "lower_secure_version", "/p")


def test_the_anti_rollback_build_is_host_built_with_its_options_and_its_mutation(tmp_path, http, host_build):
    make(EspIdfAntiRollbackDevice, tmp_path, http).flasher_args()
    make(EspIdfAntiRollbackDevice, tmp_path, http, mutation="skip-secure-version-check").flasher_args()
    make(EspIdfDevice, tmp_path, http, mutation="skip-secure-version-check").flasher_args()  # not esp-idf's
    assert [c["sdkconfig"] for c in host_build] == [
        {"BOOTLOADER_APP_ANTI_ROLLBACK": True, "BOOTLOADER_APP_SECURE_VERSION": 2},
        {"BOOTLOADER_APP_ANTI_ROLLBACK": True, "BOOTLOADER_APP_SECURE_VERSION": 2,
         "OTA_CLIENT_MUTATION_SKIP_SECURE_VERSION_CHECK": True},
        None]
