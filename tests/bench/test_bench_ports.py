"""resolve_port: each selector against fake USB serial ports, and the errors a bench sees."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

import harness.ports as ports_module
from harness.ports import PortError, resolve_port
from harness.rig import PortSpec

BOARD = SimpleNamespace(name="esp32-0", chip="esp32")


@dataclass
class FakePort:
    """The fields of pyserial's ListPortInfo that the selectors look at."""

    device: str
    location: str | None = None
    serial_number: str | None = None


@pytest.fixture
def present(monkeypatch) -> list[FakePort]:
    """The ports list_ports.comports() reports; tests add and remove entries."""
    ports: list[FakePort] = []
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: list(ports))
    return ports


@pytest.fixture
def by_id(tmp_path, monkeypatch):
    directory = tmp_path / "by-id"
    directory.mkdir()
    monkeypatch.setattr(ports_module, "BY_ID", str(directory))
    return directory


def two_cp2102s() -> list[FakePort]:
    # the classic bench: two identical adapters, both reporting serial 0001
    return [FakePort("/dev/ttyUSB1", "1-1.3", "0001"), FakePort("/dev/ttyUSB0", "1-1.4", "0001")]


def test_path_is_taken_as_it_is_when_it_exists(tmp_path, present):
    device = tmp_path / "ttyUSB0"
    device.touch()
    assert resolve_port(PortSpec("path", str(device)), BOARD, timeout=0) == str(device)


def test_url_is_taken_as_it_is(present):
    assert resolve_port(PortSpec("url", "rfc2217://farm1:4000"), BOARD, timeout=0) == "rfc2217://farm1:4000"


def test_by_id_names_a_link_in_the_by_id_directory(by_id, present):
    name = "usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0"
    (by_id / name).symlink_to("/dev/null")
    assert resolve_port(PortSpec("by_id", name), BOARD, timeout=0) == str(by_id / name)
    assert resolve_port(PortSpec("by_id", str(by_id / name)), BOARD, timeout=0) == str(by_id / name)


def test_location_tells_identical_adapters_apart(present):
    present += two_cp2102s()
    assert resolve_port(PortSpec("location", "1-1.4"), BOARD, timeout=0) == "/dev/ttyUSB0"
    assert resolve_port(PortSpec("location", "1-1.3"), BOARD, timeout=0) == "/dev/ttyUSB1"


def test_serial_finds_the_adapter_wherever_it_is_plugged(present):
    present += [FakePort("/dev/ttyUSB0", "1-1.4", "A50285BI"), FakePort("/dev/ttyACM0", "1-2", "5A3C1F0E")]
    assert resolve_port(PortSpec("serial", "5A3C1F0E"), BOARD, timeout=0) == "/dev/ttyACM0"


def test_no_match_is_one_line_listing_what_is_present(present):
    present += two_cp2102s()
    with pytest.raises(PortError) as caught:
        resolve_port(PortSpec("location", "1-1.2"), BOARD, timeout=0)
    assert str(caught.value) == ("serial port of esp32-0: nothing matches location='1-1.2' after 0 s; present: "
                                 "/dev/ttyUSB0 (location 1-1.4, serial 0001), "
                                 "/dev/ttyUSB1 (location 1-1.3, serial 0001)")


@pytest.mark.parametrize("spec", [PortSpec("path", "/dev/ttyUSB9"), PortSpec("by_id", "usb-FTDI_A50285BI-if00-port0"),
                                  PortSpec("serial", "A50285BI")], ids=lambda s: s.kind)
def test_no_port_at_all_says_so(by_id, present, spec):
    with pytest.raises(PortError) as caught:
        resolve_port(spec, BOARD, timeout=0)
    assert "\n" not in str(caught.value)
    assert str(caught.value) == (f"serial port of esp32-0: nothing matches {spec.kind}={spec.value!r} after 0 s; "
                                 f"no serial ports are present")


def test_an_ambiguous_selector_names_every_match(present):
    present += two_cp2102s()
    with pytest.raises(PortError) as caught:
        resolve_port(PortSpec("serial", "0001"), BOARD, timeout=5)
    assert str(caught.value) == "port selector serial='0001' matches several ports: /dev/ttyUSB0, /dev/ttyUSB1"


def test_a_port_that_comes_back_after_power_on_is_waited_for(present):
    """A board powered through its USB cable re-enumerates after power-on: the selector waits for it."""
    present.append(FakePort("/dev/ttyUSB0", "1-1.3", "0001"))

    def plug_in() -> None:
        time.sleep(0.6)
        present.append(FakePort("/dev/ttyUSB1", "1-1.4", "0001"))

    thread = threading.Thread(target=plug_in)
    start = time.monotonic()
    thread.start()
    try:
        assert resolve_port(PortSpec("location", "1-1.4"), BOARD, timeout=10) == "/dev/ttyUSB1"
    finally:
        thread.join()
    assert 0.5 < time.monotonic() - start < 5
