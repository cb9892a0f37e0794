"""ESP-IDF console lines -> OTA events (contract section 3): every message of the table, the fields every device's
events carry, and an idf-app's own patterns."""

from __future__ import annotations

import pytest

from harness.devices.idf import IdfEvents


def events(lines: list[str], patterns=None) -> list[tuple[str, dict[str, str]]]:
    return [(name, fields) for _i, name, fields in IdfEvents(patterns).parse_lines(lines)]


def one(line: str, patterns=None) -> tuple[str, dict[str, str]]:
    (found,) = events([line], patterns)
    return found


TABLE = [
    ("I (312) ota_client: Running firmware version: 1.1", "ready", {"firmware": "1.1", "version": "1.1"}),
    ("I (900) ota_client: Written 4096 of 1536000 bytes", "writing", {"bytes": "4096", "total": "1536000"}),
    ("W (950) ota_client: Current running version is the same as a new. We will not continue the update.",
     "refused", {"reason": "same-version"}),
    ("W (950) ota_client: New version 0.9 is older than the running 1. We will not continue the update.",
     "refused", {"reason": "older-version", "version": "0.9"}),
    ("W (950) ota_client: New version is the same as invalid version.", "refused", {"reason": "invalid-version"}),
    ("W (950) ota_client: New firmware security version is less than eFuse programmed, 1 < 2", "refused",
     {"reason": "secure-version"}),
    ("E (990) ota_client: SHA-256 mismatch: the manifest announced ab12, the image has cd34", "refused",
     {"reason": "hash-mismatch"}),
    ("E (990) esp_https_ota: Mismatch chip id, expected 0, found 254", "refused", {"reason": "wrong-chip"}),
    ("E (990) ota_client: Image validation failed, image is corrupted", "refused", {"reason": "bad-image"}),
    ("E (990) esp_https_ota: Incorrect app descriptor magic", "refused", {"reason": "bad-image"}),
    ("E (990) esp_https_ota: Complete headers were not received", "refused", {"reason": "bad-image"}),
    ("E (990) esp_ota_ops: OTA image has invalid magic byte (expected 0xE9, saw 0x00)", "refused",
     {"reason": "bad-image"}),
    ("E (990) ota_client: Complete data was not received.", "refused", {"reason": "incomplete"}),
    ("E (990) esp-tls-mbedtls: Failed to verify peer certificate!", "refused", {"reason": "tls"}),
    ("E (990) ota_client: ESP HTTPS OTA Begin failed: ESP_FAIL", "refused", {"reason": "connection"}),
    ("I (990) ota_client: ESP_HTTPS_OTA upgrade successful. Rebooting ...", "switch", {}),
    ("I (330) ota_client: App is valid, rollback cancelled successfully", "confirmed", {}),
    ("E (330) ota_client: Diagnostics failed! Start rollback to the previous version ...", "rollback",
     {"reason": "health-failed"}),
    ("I (400) ota_client: Waiting for the firmware URL on the serial line", "listening", {}),
]


@pytest.mark.parametrize("line, event, fields", TABLE, ids=[f"{t[1]}-{i}" for i, t in enumerate(TABLE)])
def test_each_message_of_the_table_is_its_event_with_kind_firmware(line, event, fields):
    name, got = one(line)
    assert name == event
    assert got["kind"] == "firmware"  # what the agent's events carry: a scenario reads them the same
    assert got["tag"] == line.split(") ", 1)[1].split(":", 1)[0]
    assert {k: v for k, v in got.items() if k not in ("kind", "tag")} == fields


def test_colours_and_carriage_returns_do_not_matter():
    assert one("\x1b[0;32mI (31) ota_client: Running firmware version: 2\x1b[0m\r")[1]["firmware"] == "2"


@pytest.mark.parametrize("line", [
    "I (29) boot: Loaded app from partition at offset 0x10000",
    "I (31) esp_https_ota: Starting OTA...",
    "I (31) esp_https_ota: Writing to <ota_1> partition at offset 0x190000",  # before the version check
    "I (32) ota_client: Manifest: version 1.1, 1536000 bytes, sha256 ab",
    "E (33) ota_client: image header verification failed",
    "Running firmware version",
    "",
])
def test_other_lines_are_not_events(line):
    assert events([line]) == []


def test_a_generic_failure_counts_only_when_nothing_more_specific_was_refused():
    attempt = ["I (1) ota_client: Waiting for the firmware URL on the serial line",
               "E (2) esp-tls-mbedtls: Failed to verify peer certificate!",
               "E (3) esp-tls: Failed to open new connection",
               "E (4) ota_client: ESP HTTPS OTA Begin failed: ESP_FAIL",
               "E (5) ota_client: ESP_HTTPS_OTA upgrade failed 0x101 (ESP_ERR_NO_MEM)"]
    assert [(n, f.get("reason")) for n, f in events(attempt)] == [("listening", None), ("refused", "tls")]
    # the next attempt starts afresh: its generic failure is its only refusal
    again = attempt[:1] + ["E (9) ota_client: ESP HTTPS OTA Begin failed: ESP_FAIL"]
    assert [(n, f.get("reason")) for n, f in events(attempt + again)][-2:] == [("listening", None),
                                                                            ("refused", "connection")]


def test_the_line_index_of_each_event():
    lines = ["rst:0x1 (POWERON_RESET),boot:0x13", "I (30) ota_client: Running firmware version: 1", "",
             "I (40) ota_client: Waiting for the firmware URL on the serial line"]
    assert [(i, n) for i, n, _f in IdfEvents().parse_lines(lines)] == [(1, "ready"), (3, "listening")]


def test_an_app_s_own_patterns_come_first_and_lines_need_not_be_log_lines():
    patterns = {"ready": r"my-product v(?P<version>\S+) up", "refused": r"update refused \((?P<reason>[a-z-]+)\)",
                "writing": r"flashing \d+%"}
    assert one("my-product v3.2 up", patterns)[1] == {"kind": "firmware", "version": "3.2", "firmware": "3.2"}
    assert one("W (10) app: update refused (too-old)", patterns)[1]["reason"] == "too-old"
    assert one("I (10) app: flashing 10%", patterns)[0] == "writing"
    # the examples' own lines still count
    assert one("I (1) app: Running firmware version: 3.2", patterns)[0] == "ready"
