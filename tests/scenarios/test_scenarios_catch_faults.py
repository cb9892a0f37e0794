"""Each scenario catches the fault it targets: with the device implementation's corresponding check
switched off (``--mutation``, see ``harness/mutations.py``) the scenario must fail, and fail in its
assertions (not in set-up, which would prove nothing).

The unmutated scenarios pass in ``./run.sh suite``; here each one runs once against the broken
device on the cheapest board of ``emu`` that shows it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from harness.mutations import MUTATIONS, mutation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: (mutation, scenario, case id: board-device-kind[, -k expression of the scenario's own parameters])
CASES = [
    ("fw-write-over-running", "test_power_loss.py", "esp32-0-micropython-firmware"),
    ("files-write-in-place", "test_power_loss.py", "esp8266-0-micropython-files"),
    ("fw-no-digest-check", "test_bad_hash.py", "esp32-0-micropython-firmware"),
    ("files-no-digest-check", "test_bad_hash.py", "esp8266-0-micropython-files"),
    ("no-version-check", "test_same_version.py", "esp32-0-micropython-firmware"),
    ("fw-confirm-without-health", "test_rollback.py", "esp32-0-micropython-firmware"),
    ("fw-rollback-without-reset", "test_rollback.py", "esp32-0-micropython-firmware"),
    ("files-confirm-without-health", "test_rollback.py", "esp8266-0-micropython-files"),
    ("write-running-slot", "test_power_loss.py", "esp32-0-esp-idf-firmware"),
    ("skip-sha256-check", "test_bad_hash.py", "esp32-0-esp-idf-firmware"),
    ("skip-version-check", "test_same_version.py", "esp32-0-esp-idf-firmware"),
    ("skip-diagnostics", "test_rollback.py", "esp32-0-esp-idf-firmware"),
    # the ESP-IDF examples' reference cases
    ("fw-write-over-running", "test_invalid_images.py", "esp32-0-micropython-firmware", "truncated"),
    ("fw-no-header-check", "test_invalid_images.py", "esp32-0-micropython-firmware", "random or wrong_chip"),
    ("write-running-slot", "test_invalid_images.py", "esp32-0-esp-idf-firmware", ""),
    ("http-no-chunked", "test_transfer.py", "esp32-0-micropython-firmware", "chunked"),
    ("http-no-redirects", "test_transfer.py", "esp32-0-micropython-firmware", "redirect"),
    ("require-content-length", "test_transfer.py", "esp32-0-esp-idf-firmware", "chunked"),
    ("no-redirects", "test_transfer.py", "esp32-0-esp-idf-firmware", "redirect"),
    ("tls-no-verify", "test_tls.py", "esp32-0-micropython-firmware"),
    ("skip-cert-verify", "test_tls.py", "esp32-0-esp-idf-firmware"),
    # the client's check off, the image is written and only esp_ota_set_boot_partition refuses it
    ("skip-secure-version-check", "test_anti_rollback.py", "esp32-0-esp-idf-anti-rollback-firmware"),
    # the ESP8266 SDK FOTA client (seed 003)
    ("sdk-no-crc-check", "test_sdk_fota.py", "esp8266-0-esp8266-sdk-firmware", "bad_crc"),
    ("sdk-no-crc-check", "test_invalid_images.py", "esp8266-0-esp8266-sdk-firmware", "truncated"),
    ("sdk-no-slot-check", "test_sdk_fota.py", "esp8266-0-esp8266-sdk-firmware", "other_slot"),
    ("sdk-no-version-check", "test_same_version.py", "esp8266-0-esp8266-sdk-firmware"),
    ("sdk-no-length-check", "test_sdk_fota.py", "esp8266-0-esp8266-sdk-firmware", "larger_than"),
    ("sdk-switch-on-short", "test_sdk_fota.py", "esp8266-0-esp8266-sdk-firmware", "truncated_stream"),
    # the SDK's system_upgrade_reboot() toggles the parameters, which still name the bin boot_v1.x fell back from
    ("sdk-no-param-repair", "test_sdk_fota.py", "esp8266-0-esp8266-sdk-firmware", "falls_back"),
]

#: mutations no scenario can catch yet
WITHOUT_A_SCENARIO: set[str] = set()

#: mutations only the power-cut sweep catches: its tests show it (tests/sweep/test_system_sweep.py,
#: tests/bench/test_power_cut_sweep_cli.py); the one cut a scenario makes (40% into the download) misses them
CAUGHT_BY_THE_SWEEP = {"files-state-not-atomic"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_every_mutation_has_a_case():
    assert sorted(MUTATIONS) == sorted({case[0] for case in CASES} | WITHOUT_A_SCENARIO | CAUGHT_BY_THE_SWEEP)
    for name, _scenario, target, *_ in CASES:
        assert f"-{mutation(name).device}-" in target  # each runs on the device it belongs to


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1][5:-3]}" for c in CASES])
def test_scenario_fails_against_the_broken_device(case, tmp_path):
    mutation, scenario, target, *rest = case
    board, _, device_kind = target.partition("-0-")
    board += "-0"
    device, kind = device_kind.rsplit("-", 1)
    select = f"{device}-{kind}" + (f" and ({rest[0]})" if rest and rest[0] else "")
    cmd = [sys.executable, "-m", "pytest", f"scenarios/{scenario}", "--rig", "emu", "--board", board,
           "-k", select, "--mutation", mutation, "-p", "no:cacheprovider", "-q", "-o", "addopts=",
           "--basetemp", str(tmp_path / "run"), "--alluredir", str(tmp_path / "allure"),
           "--hil-logs", str(tmp_path / "logs")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"expected the scenario to fail (exit 1), got {proc.returncode}:\n{out[-4000:]}"
    summary = out.splitlines()[-1]
    # every selected case fails, in its assertions
    assert re.search(r"\d+ failed", summary) and "passed" not in summary and "error" not in summary, out[-4000:]
    # the device's lines, or the bootloader's (of a board that was resetting, or that a client bricked)
    device_line = {"micropython": r"^(OTA |[EWI] \(\d+\) )", "esp8266-sdk": r"^fota: "}.get(device, r"^[EWI] \(\d+\) ")
    _shows_its_evidence(out, board, device_line, tmp_path)


def _shows_its_evidence(out: str, board: str, device_line: str, tmp_path) -> None:
    """The failure text ends with the board's console and the logs' paths; Allure has them on the test itself."""
    failure = out[out.index("= FAILURES ="):]
    console = failure[failure.index(f"console {board}: last 30 lines since the case began"):]
    assert re.search(device_line, console.split("logs of this case")[0], re.MULTILINE), failure[-3000:]
    logs = console[console.index("logs of this case"):]
    directories = sorted((tmp_path / "logs").iterdir())
    transcript = next(d for d in directories if str(d) in logs) / f"console-{board}.log"
    assert str(transcript) in logs and transcript.read_text().count("===== test body of ") == 1
    assert "boot state after the failure" in logs
    results = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
    assert len(results) == len(directories) and {r["status"] for r in results} == {"failed"}
    for result in results:  # every failed case carries its own evidence
        attached = {a["name"]: tmp_path / "allure" / a["source"] for a in result.get("attachments", [])}
        assert {f"console {board}", "http server log", "boot state after the failure"} <= set(attached), attached
        assert re.search(device_line.replace("^", r"^\S+ "), attached[f"console {board}"].read_text(), re.MULTILINE)
        assert attached["boot state after the failure"].read_text().startswith("chip ")
        assert {"board", "device", "update kind"} <= {p["name"] for p in result["parameters"]}
