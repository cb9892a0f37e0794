"""The ESP-IDF devices on the real host build of device_fw/esp_idf (harness.emu.idf.build): the build directory read
as idf.py's, the baseline and updates made of it, the same build directory driving an idf-app, the rig check."""

from __future__ import annotations

import textwrap

import pytest
from idf_fakes import PaperBench, idf_build, paper_board

from harness.devices import EspIdfDevice, IdfAppDevice
from harness.esp import parse_image, verify_image
from harness.rig import DeviceSpec, load_rig
from harness.servers import HttpServer

build = pytest.importorskip("harness.emu.idf.build", reason="the host build of device_fw/esp_idf is not there yet")

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def host_build():
    return build.build_app()  # cached by content: built once per checkout and compiler


@pytest.fixture
def http():
    with HttpServer(name="http") as server:
        yield server


def test_the_client_s_host_build_is_its_baseline_on_a_virtual_board(http, host_build, monkeypatch):
    calls = []
    real = build.build_app

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "build_app", recording)
    device = EspIdfDevice(DeviceSpec("esp-idf", ["firmware"]), paper_board(), PaperBench(http, ca=None))
    device.take_board()
    assert device.flasher_args().build_dir == host_build.build_dir
    assert calls == [{"sdkconfig": None, "ca_pem": None}]
    assert [p.offset for p in device.baseline_parts()] == [0x1000, 0x8000, 0xD000, 0x10000]
    board = device.board
    assert (board.baseline_slot().label, board.update_slot().label) == ("ota_0", "ota_1")
    assert board.partition_table().find("nvs") is not None
    desc = parse_image(device.baseline_app(), "esp32").app_desc
    assert (desc.project_name, desc.version) == ("esp_ota_client", "1")
    assert device.baseline_versions() == {"firmware": "1"}


def test_updates_keep_the_executable_the_image_carries(http, host_build):
    device = EspIdfDevice(DeviceSpec("esp-idf", ["firmware"], build_dir=host_build.build_dir), paper_board(),
                          PaperBench(http))
    device.take_board()
    pub = device.publish("firmware", "next", "/p")
    image = device.board.known_images[-1]
    assert parse_image(image, "esp32").app_desc.version == pub.version and pub.version != "1"
    assert verify_image(image, chip="esp32").ok
    payload = build.find_host_payload(parse_image(image, "esp32").segments)
    assert payload is not None and payload == build.find_host_payload(parse_image(host_build.image, "esp32").segments)


def test_an_idf_app_runs_from_the_client_s_build_directory(http, host_build):
    """"Your own firmware": any ESP-IDF build directory, here the C client's."""
    device = IdfAppDevice(DeviceSpec("idf-app", ["firmware"], build_dir=host_build.build_dir), paper_board(),
                          PaperBench(http))
    device.take_board()
    assert [p.data for p in device.baseline_parts()] == [path.read_bytes() for _o, path in host_build.flash_files]
    assert device.publish("firmware", "next", "/app").url.endswith("/app/fw.bin")


def test_the_rig_check_checks_each_device_s_images(tmp_path, host_build):
    from harness import rigcheck

    idf_build(tmp_path / "mine")
    (tmp_path / "rig.yaml").write_text(textwrap.dedent(f"""\
        host: 127.0.0.1
        boards:
          - name: esp32-0
            chip: esp32
            virtual: true
            devices:
              - {{kind: micropython}}
              - {{kind: esp-idf}}
              - {{kind: idf-app, build_dir: mine}}
          - name: esp32-1
            chip: esp32
            virtual: true
            device: idf-app
            build_dir: {host_build.build_dir}
        """))
    rig = load_rig(str(tmp_path / "rig.yaml"))
    rows = []
    for spec in rig.boards:
        rigcheck._check_baseline(rig, spec, lambda check, ok, detail, name=spec.name: rows.append(
            (name, check, ok, detail)))
    assert [(b, c, ok) for b, c, ok, _d in rows] == [
        ("esp32-0", "baseline micropython", True), ("esp32-0", "baseline esp-idf", True),
        ("esp32-0", "baseline idf-app", True), ("esp32-1", "baseline", True)]
    assert rows[1][3].startswith("host build of device_fw/esp_idf, 4 file(s) ending at 0x")
    assert rows[2][3].startswith(f"{tmp_path / 'mine' / 'flasher_args.json'}, 4 file(s)")
