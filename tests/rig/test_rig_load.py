"""Loading rigs: the shipped rig files, defaults, environment variables, board selection and ``host: auto``."""

from __future__ import annotations

import ipaddress
import shutil
import textwrap
from pathlib import Path

import pytest

import harness.rig as rig_module
from harness.rig import (
    BaselinePart,
    MqttSpec,
    PortSpec,
    PowerSpec,
    RigError,
    baseline_file_problems,
    load_rig,
    rigs_dir,
)

BENCH1_FILES = ("firmware/ESP32_GENERIC-OTA-20251209-v1.27.0.bin", "firmware/ESP8266_GENERIC-20251209-v1.27.0.bin")


def line_of(path: Path, text: str) -> int:
    return next(n for n, row in enumerate(path.read_text().splitlines(), 1) if text in row)


@pytest.fixture
def bench1(tmp_path, monkeypatch):
    """A copy of rigs/bench1.yaml, without its firmware files; the working directory is the copy's."""
    monkeypatch.chdir(tmp_path)
    return Path(shutil.copy(rigs_dir() / "bench1.yaml", tmp_path / "bench1.yaml"))


def with_firmware(rig: Path) -> Path:
    for name in BENCH1_FILES:
        (rig.parent / name).parent.mkdir(exist_ok=True)
        (rig.parent / name).write_bytes(b"\xe9" * 0x1000)
    return rig


def write(tmp_path: Path, text: str, name: str = "rig.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_emu_is_two_virtual_boards_with_the_micropython_baseline():
    rig = load_rig("emu")
    assert (rig.name, rig.path, rig.host, rig.leave_on) == ("emu", rigs_dir() / "emu.yaml", "127.0.0.1", False)
    assert rig.mqtt == MqttSpec("embedded", None, None)
    assert [(b.name, b.chip, b.virtual, b.baseline, b.updates) for b in rig.boards] == [
        ("esp32-0", "esp32", True, "micropython", ["firmware", "files"]),
        ("esp8266-0", "esp8266", True, "micropython", ["files"]),
    ]
    esp32 = rig.boards[0]
    assert (esp32.flash_size, esp32.port, esp32.power, esp32.device, esp32.baud, esp32.boot_timeout) == (
        4 << 20, None, None, "micropython", 460800, 15.0)
    assert esp32.line == line_of(rig.path, "name: esp32-0")


def test_emu_is_found_by_path_too(monkeypatch):
    monkeypatch.chdir(rigs_dir().parent)
    assert load_rig("rigs/emu.yaml").boards == load_rig("emu").boards


def test_bench1_without_its_firmware_names_the_missing_file(bench1):
    with pytest.raises(RigError) as caught:
        load_rig("bench1.yaml")
    line = line_of(bench1, "file: firmware/ESP32_GENERIC-OTA")
    assert str(caught.value) == (f"bench1.yaml:{line}: boards[0].devices[0].baseline[0].file: file not found: "
                                 f"firmware/ESP32_GENERIC-OTA-20251209-v1.27.0.bin")


def test_bench1_without_its_firmware_loads_for_the_rig_check(bench1):
    """``hil rig check`` reports missing files in its table, next to the relay and port checks."""
    rig = load_rig("bench1.yaml", check_files=False)
    esp32, esp8266 = rig.boards
    assert esp32.baseline == [BaselinePart(0x1000, bench1.parent / BENCH1_FILES[0])]
    assert baseline_file_problems(esp32) == [
        (line_of(bench1, "file: firmware/ESP32_GENERIC-OTA"), "boards[0].devices[0].baseline[0].file",
         f"file not found: {BENCH1_FILES[0]}")]
    assert baseline_file_problems(esp8266) == [
        (line_of(bench1, "file: firmware/ESP8266_GENERIC"), "boards[1].baseline[0].file",
         f"file not found: {BENCH1_FILES[1]}")]
    assert baseline_file_problems(load_rig("emu").boards[0]) == []


def test_baseline_file_problems_lists_every_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.bin").write_bytes(bytes(0x3000))
    (tmp_path / "small.bin").write_bytes(bytes(0x1000))
    (tmp_path / "dir.bin").mkdir()
    rig = load_rig(str(write(tmp_path, """\
        host: auto
        wifi: {ssid_env: S, key_env: K}
        boards:
          - name: a
            chip: esp8266
            flash_size: 1MB
            port: {path: /dev/ttyUSB0}
            power: {kind: lcus, port: /dev/ttyUSB3, channel: 1}
            baseline:
              - {offset: 0x0, file: big.bin}
              - {offset: 0x2000, file: small.bin}
              - {offset: 0x10000, file: gone.bin}
              - {offset: 0x20000, file: dir.bin}
              - {offset: 0xff000, file: big.bin}
    """)), check_files=False)
    assert baseline_file_problems(rig.boards[0]) == [
        (11, "boards[0].baseline[1]", "0x2000..0x3000 overlaps boards[0].baseline[0] (0x0..0x3000)"),
        (12, "boards[0].baseline[2].file", "file not found: gone.bin"),
        (13, "boards[0].baseline[3].file", "not a file: dir.bin"),
        (14, "boards[0].baseline[4].file", "big.bin at 0xff000 ends at 0x102000, beyond the 1MB flash"),
    ]
    with pytest.raises(RigError, match=r"^rig\.yaml:11: boards\[0\]\.baseline\[1\]: 0x2000\.\.0x3000 overlaps "):
        load_rig("rig.yaml")


def test_bench1_with_its_firmware(bench1):
    rig = load_rig(str(with_firmware(bench1)))
    assert rig.name == "bench1"
    ipaddress.ip_address(rig.host)  # "auto" became an address
    assert (rig.wifi_env.ssid_env, rig.wifi_env.key_env) == ("HIL_WIFI_SSID", "HIL_WIFI_KEY")
    esp32, esp8266 = rig.boards
    assert esp32.port == PortSpec("by_id", "usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0")
    assert esp32.power == PowerSpec("lcus", {"port": "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0",
                                             "channel": 1, "channels": 4, "off_time": 1.5})
    assert esp32.baseline == [BaselinePart(0x1000, bench1.parent / BENCH1_FILES[0])]
    assert esp8266.port == PortSpec("location", "1-1.4")
    assert esp8266.power == PowerSpec("usbrelay_hid", {"channel": 1})
    assert esp8266.baseline == [BaselinePart(0, bench1.parent / BENCH1_FILES[1])]
    assert (esp32.updates, esp8266.updates) == (["firmware", "files"], ["files"])
    assert not esp32.virtual and esp8266.line == line_of(bench1, "name: esp8266-nodemcu")


def test_wifi_credentials_come_from_the_environment(bench1, monkeypatch):
    monkeypatch.setenv("HIL_WIFI_SSID", "bench-net")
    monkeypatch.setenv("HIL_WIFI_KEY", "s3cret")
    rig = load_rig(str(with_firmware(bench1)))
    assert rig.wifi() == ("bench-net", "s3cret")
    assert "s3cret" not in repr(rig)


def test_an_open_network_has_an_empty_key(bench1, monkeypatch):
    monkeypatch.setenv("HIL_WIFI_SSID", "bench-net")
    monkeypatch.setenv("HIL_WIFI_KEY", "")
    assert load_rig(str(with_firmware(bench1))).wifi() == ("bench-net", "")


def test_an_unset_variable_is_named_when_real_boards_need_wifi(bench1, monkeypatch):
    monkeypatch.setenv("HIL_WIFI_SSID", "bench-net")
    monkeypatch.delenv("HIL_WIFI_KEY", raising=False)
    rig = load_rig(str(with_firmware(bench1)))  # loading needs no credentials: listing boards does not
    with pytest.raises(RigError) as caught:
        rig.wifi()
    assert str(caught.value) == (f"bench1.yaml:{line_of(bench1, 'key_env:')}: wifi.key_env: environment variable "
                                 f"HIL_WIFI_KEY is not set (boards esp32-devkitc, esp8266-nodemcu join Wi-Fi with it)")
    assert caught.value.__cause__ is None


def test_both_unset_variables_and_an_empty_network_name_are_problems(bench1, monkeypatch):
    monkeypatch.delenv("HIL_WIFI_SSID", raising=False)
    monkeypatch.delenv("HIL_WIFI_KEY", raising=False)
    rig = load_rig(str(with_firmware(bench1)))
    ssid_line, key_line = line_of(bench1, "ssid_env:"), line_of(bench1, "key_env:")
    assert rig.wifi_problems() == [(ssid_line, "wifi.ssid_env", "HIL_WIFI_SSID is not set"),
                                   (key_line, "wifi.key_env", "HIL_WIFI_KEY is not set")]
    with pytest.raises(RigError) as caught:
        rig.wifi()
    assert str(caught.value) == (f"bench1.yaml:{ssid_line}: wifi.ssid_env: environment variable HIL_WIFI_SSID is "
                                 f"not set (boards esp32-devkitc, esp8266-nodemcu join Wi-Fi with it)")
    assert rig.wifi_problems(rig.boards[1:]) == rig.wifi_problems()  # one real board needs them as much
    with pytest.raises(RigError, match=r"HIL_WIFI_SSID is not set \(board esp8266-nodemcu joins Wi-Fi with it\)$"):
        rig.wifi(rig.boards[1:])
    monkeypatch.setenv("HIL_WIFI_SSID", "")
    monkeypatch.setenv("HIL_WIFI_KEY", "k")
    rig = load_rig(str(bench1))
    assert rig.wifi_problems() == [(ssid_line, "wifi.ssid_env", "HIL_WIFI_SSID is empty")]
    with pytest.raises(RigError, match=r": environment variable HIL_WIFI_SSID is empty \(boards "):
        rig.wifi()


def test_virtual_boards_need_no_wifi(tmp_path, monkeypatch):
    monkeypatch.delenv("HIL_WIFI_SSID", raising=False)
    monkeypatch.delenv("HIL_WIFI_KEY", raising=False)
    assert load_rig("emu").wifi() == ("", "")
    rig = load_rig(str(write(tmp_path, """\
        host: 127.0.0.1
        wifi: {ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}
        boards: [{name: a, chip: esp32, virtual: true}]
    """)))
    assert rig.wifi() == ("", "")


def test_virtual_boards_of_a_rig_with_real_ones_need_no_wifi(bench1, monkeypatch):
    monkeypatch.delenv("HIL_WIFI_SSID", raising=False)
    bench1.write_text(bench1.read_text().replace("boards:\n", "boards:\n  - {name: emu, chip: esp32, virtual: true}\n"))
    rig = load_rig(str(with_firmware(bench1)))
    assert rig.wifi(rig.select(["emu"])) == ("", "")
    with pytest.raises(RigError, match=r"HIL_WIFI_SSID is not set \(boards esp32-devkitc, esp8266-nodemcu join"):
        rig.wifi()


def test_select_keeps_rig_order_and_names_unknown_boards(monkeypatch):
    monkeypatch.chdir(rigs_dir().parent)
    rig = load_rig("emu")
    assert [b.name for b in rig.select([])] == ["esp32-0", "esp8266-0"]
    assert [b.name for b in rig.select(["esp8266-0", "esp32-0"])] == ["esp32-0", "esp8266-0"]
    assert [b.name for b in rig.select(["esp8266-0"])] == ["esp8266-0"]
    with pytest.raises(RigError) as caught:
        rig.select(["esp32-0", "esp32-9"])
    assert str(caught.value) == "rigs/emu.yaml: no board named 'esp32-9' (boards: esp32-0, esp8266-0)"


def test_an_unknown_rig_name_lists_the_rigs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rigs").mkdir()
    for name in ("lab2", "lab1"):
        (tmp_path / "rigs" / f"{name}.yaml").write_text("")
    monkeypatch.setattr(rig_module, "rigs_dir", lambda: tmp_path / "rigs")
    with pytest.raises(RigError) as caught:
        load_rig("lab3")
    assert str(caught.value) == "unknown rig 'lab3' (rigs in rigs/: lab1, lab2; or give the path of a rig file)"


def test_a_missing_rig_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RigError, match=r"^lab/x\.yaml: no such rig file$"):
        load_rig("lab/x.yaml")


def test_defaults_and_optional_sections(tmp_path):
    rig = load_rig(str(write(tmp_path, """\
        host: ci-runner.lan
        mqtt: {broker: external, host: 10.0.0.5}
        leave_on: true
        boards:
          - name: a
            chip: esp8266
            virtual: true
            flash_size: 1MB
            baud: 921600
            boot_timeout: 2.5
    """, "lab-7.yaml")))
    assert (rig.name, rig.host, rig.leave_on, rig.wifi_env) == ("lab-7", "ci-runner.lan", True, None)
    assert rig.mqtt == MqttSpec("external", "10.0.0.5", 1883)
    board = rig.boards[0]
    assert (board.flash_size, board.baud, board.boot_timeout, board.updates) == (1 << 20, 921600, 2.5, ["files"])


def test_text_values_stay_as_written(tmp_path):
    """YAML 1.1 would read 0001 as 1, a MAC of digits as base 60 and no as false."""
    (tmp_path / "fw.bin").write_bytes(b"\xe9" * 16)
    rig = load_rig(str(write(tmp_path, """\
        name: no
        host: auto
        wifi: {ssid_env: S, key_env: K}
        boards:
          - name: a
            chip: esp32
            port: {serial: 0001}
            power: {kind: lcus_hid, serial: 0001, product_id: 0x5131}
            baseline: [{offset: '0x1000', file: fw.bin}]
          - name: b
            chip: esp32
            port: {mac: 24-10-34-12-34-56}
            power: {kind: ykush, port: 2, serial: YK21001}
            baseline: [{offset: 4096, file: fw.bin}]
          - name: c
            chip: esp32
            port: {by_id: /dev/serial/by-id/usb-FTDI_FT232R_A50285BI-if00-port0}
            power: {kind: command, cmd_on: [pdu, "on", "3"], cmd_off: pdu off 3}
            baseline: [{offset: 0x1000, file: fw.bin}]
    """)))
    a, b, c = rig.boards
    assert rig.name == "no"
    assert a.port == PortSpec("serial", "0001")
    assert a.power.options == {"serial": "0001", "product_id": 0x5131}
    assert a.baseline == b.baseline == [BaselinePart(0x1000, tmp_path / "fw.bin")]
    assert b.port == PortSpec("mac", "24:10:34:12:34:56")
    assert c.port == PortSpec("by_id", "usb-FTDI_FT232R_A50285BI-if00-port0")
    assert c.power.options["cmd_on"] == ["pdu", "on", "3"]


def test_boards_on_one_relay_board_share_its_options_through_a_merge(tmp_path):
    (tmp_path / "fw.bin").write_bytes(b"\xe9" * 16)
    rig = load_rig(str(write(tmp_path, """\
        host: 192.168.7.1
        wifi: {ssid_env: S, key_env: K}
        boards:
          - name: a
            chip: esp32
            port: {location: 1-1.1}
            power: &relay {kind: lcus, port: /dev/ttyUSB9, channels: 4, channel: 1}
            baseline: [{offset: 0x1000, file: fw.bin}]
          - name: b
            chip: esp32
            port: {location: 1-1.2}
            power:
              <<: *relay
              channel: 2
            baseline: [{offset: 0x1000, file: fw.bin}]
    """)))
    assert rig.boards[1].power == PowerSpec("lcus", {"port": "/dev/ttyUSB9", "channels": 4, "channel": 2})


class FakeUdp:
    """A UDP socket whose route lookup is scripted: ``routes`` maps a target to the local address."""

    routes: dict[str, str] = {}
    targets: list[str] = []

    def __init__(self, *args):
        self.address = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def connect(self, address):
        FakeUdp.targets.append(address[0])
        if address[0] not in FakeUdp.routes:
            raise OSError("Network is unreachable")
        self.address = FakeUdp.routes[address[0]]

    def getsockname(self):
        return self.address, 40000


AUTO_RIG = """\
    host: auto
    wifi: {ssid_env: S, key_env: K}
    boards:
      - {name: a, chip: esp32, virtual: true}
      - name: b
        chip: esp32
        port: {url: "rfc2217://farm1:4000"}
        power: {kind: tasmota, host: plug-1.lan}
        baseline: [{offset: 0x1000, file: fw.bin}]
"""


@pytest.mark.parametrize(("routes", "host", "targets"), [
    ({"farm1": "10.9.0.2", "8.8.8.8": "192.168.1.5"}, "10.9.0.2", ["farm1"]),
    ({"8.8.8.8": "192.168.1.5"}, "192.168.1.5", ["farm1", "8.8.8.8"]),
    ({}, "127.0.0.1", ["farm1", "8.8.8.8"]),
], ids=["route to the port's host", "default route", "no route"])
def test_host_auto_is_this_hosts_address_towards_the_boards(tmp_path, monkeypatch, routes, host, targets):
    (tmp_path / "fw.bin").write_bytes(b"\xe9" * 16)
    monkeypatch.setattr(FakeUdp, "routes", routes)
    monkeypatch.setattr(FakeUdp, "targets", [])
    monkeypatch.setattr(rig_module.socket, "socket", FakeUdp)
    assert load_rig(str(write(tmp_path, AUTO_RIG))).host == host
    assert FakeUdp.targets == targets


def test_a_board_started_by_hand_may_use_loopback(tmp_path):
    """A virtual board run outside the harness is driven like a real one, through its port and control URLs."""
    (tmp_path / "fw.bin").write_bytes(b"\xe9" * 16)
    rig = load_rig(str(write(tmp_path, """\
        host: 127.0.0.1
        wifi: {ssid_env: S, key_env: K}
        boards:
          - name: by-hand
            chip: esp32
            port: {url: "rfc2217://127.0.0.1:40211"}
            power: {kind: virtual, control: "tcp://127.0.0.1:41857"}
            baseline: [{offset: 0x1000, file: fw.bin}]
    """)))
    assert rig.boards[0].power == PowerSpec("virtual", {"control": "tcp://127.0.0.1:41857"})
