"""The console's OTA events come from the parser of the device on the board; ESP-IDF log lines and writing a line.

No port is opened: text is fed through ``Console._append`` as the reader thread feeds it.
"""

from __future__ import annotations

import pytest

from harness.console import Console, ConsoleError, IdfLogLine, parse_idf_log_line, strip_colours
from harness.devices.idf import IdfEvents
from harness.devices.micropython import AgentEvents


@pytest.fixture
def con():
    c = Console("rfc2217://127.0.0.1:1", "esp32-0")
    yield c
    c.close()


def test_idf_log_lines_with_and_without_colours():
    assert parse_idf_log_line("I (1234) ota_client: Running firmware version: 1") == \
        IdfLogLine("I", "1234", "ota_client", "Running firmware version: 1")
    coloured = "\x1b[0;32mI (87) esp_https_ota: Starting OTA...\x1b[0m"
    assert strip_colours(coloured) == "I (87) esp_https_ota: Starting OTA..."
    assert parse_idf_log_line(coloured) == IdfLogLine("I", "87", "esp_https_ota", "Starting OTA...")
    # a wall-clock time stamp (CONFIG_LOG_TIMESTAMP_SOURCE_SYSTEM) and a tag with a space
    assert parse_idf_log_line("W (12:00:01.250) esp-tls-mbedtls: Failed to verify peer certificate!").tag == \
        "esp-tls-mbedtls"
    assert parse_idf_log_line("E (5) my tag: x").tag == "my tag"


@pytest.mark.parametrize("line", ["OTA ready firmware=1", "ets Jun  8 2016 00:22:57", "I (12)", "",
                                  "X (1) tag: message", "I (abc) tag: message", "rst:0x1 (POWERON_RESET),boot:0x13"])
def test_other_lines_are_not_idf_log_lines(line):
    assert parse_idf_log_line(line) is None


def test_events_come_from_the_parser_of_the_device_on_the_board(con):
    con._append("OTA ready firmware=v1.27.0 files=1 app=1\nI (30) ota_client: Running firmware version: 2\n")
    assert con.events() == []
    con.parser = AgentEvents()
    assert [(e.name, e.fields) for e in con.events()] == [
        ("ready", {"firmware": "v1.27.0", "files": "1", "app": "1"})]
    con.parser = IdfEvents()
    (ready,) = con.events()
    assert (ready.name, ready["firmware"], ready["kind"]) == ("ready", "2", "firmware")
    assert con.text[ready.at:].startswith("I (30) ota_client: Running firmware version: 2")


def test_a_line_still_arriving_is_not_an_event(con):
    con.parser = IdfEvents()
    con._append("I (30) ota_client: Running firmware version: 1")
    assert con.events() == []  # "1" may be the start of "12"
    con._append("2\n")
    assert [e["firmware"] for e in con.events()] == ["12"]


def test_events_after_a_mark_and_by_name(con):
    con.parser = AgentEvents()
    con._append("OTA start kind=files\n")
    mark = con.mark()
    con._append("noise\nOTA writing slot=b\nOTA switch kind=files\n")
    assert [e.name for e in con.events(mark)] == ["writing", "switch"]
    assert [e.name for e in con.events(mark, "switch")] == ["switch"]
    (switch,) = con.events(mark, "switch")
    assert con.text[switch.at:].startswith("OTA switch")
    assert con.expect_event(("refused", "switch"), timeout=0.1, since=mark).name == "switch"
    with pytest.raises(TimeoutError, match="no OTA event 'refused'"):
        con.expect_event("refused", timeout=0.1, since=mark)


class FakePort:
    def __init__(self):
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


def test_write_line_ends_the_text_with_a_newline(con):
    with pytest.raises(ConsoleError, match="not open"):
        con.write_line("http://x/fw.bin")
    con._port = FakePort()
    try:
        con.write_line("http://127.0.0.1:8000/esp32-0/esp-idf/firmware/1/manifest.json")
        assert con._port.written == b"http://127.0.0.1:8000/esp32-0/esp-idf/firmware/1/manifest.json\n"
    finally:
        con._port = None
