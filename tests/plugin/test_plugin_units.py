"""Small pieces of the plugin and the scenarios, without a board: the baseline app a device's firmware
updates are made from, case directory names and what ``-n auto`` means."""

from __future__ import annotations

import os
import textwrap
import types

import pytest

from harness.board import Board, BoardError
from harness.devices import MicroPythonDevice
from harness.evidence import case_dir_name
from harness.firmware import ESP32_APP_OFFSET, FlashPart, micropython_baseline
from harness.pytest_plugin import pytest_xdist_auto_num_workers


# -- the baseline's app -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parts() -> list[FlashPart]:
    return micropython_baseline("esp32", flash_size="4MB")


class Baseline(MicroPythonDevice):
    """The agent on a board of no port, power or console, with the baseline ``parts``."""

    def __init__(self, parts: list[FlashPart], name: str):
        board = Board.__new__(Board)  # the layout needs no port, power or console
        board.spec = types.SimpleNamespace(name=name, chip="esp32")
        board.name, board.chip, board._table, board.device = name, "esp32", None, None
        self.board, self.parts, self._firmware = board, parts, None

    def baseline_parts(self) -> list[FlashPart]:
        return list(self.parts)


def _baseline_app(device: Baseline) -> bytes:
    return device.baseline_app()


def baseline_board(parts: list[FlashPart], name: str = "devkit") -> Baseline:
    return Baseline(parts, name)


def combined(parts: list[FlashPart], start: int = 0x1000, trailer: bytes = b"") -> FlashPart:
    """One file from ``start``, as MicroPython's release binary is: the parts in place, 0xFF between them."""
    end = max(p.offset + len(p.data) for p in parts)
    blob = bytearray(b"\xff" * (end - start))
    for p in parts:
        blob[p.offset - start:p.offset - start + len(p.data)] = p.data
    return FlashPart(start, bytes(blob) + trailer, "firmware.bin")


def test_the_baseline_has_its_app_at_0x10000(parts):
    assert ESP32_APP_OFFSET == 0x10000
    assert [p.offset for p in parts] == [0x1000, 0x8000, 0x10000]


def test_the_app_comes_from_its_own_part(parts):
    app = next(p.data for p in parts if p.offset == ESP32_APP_OFFSET)
    assert _baseline_app(baseline_board(parts)) == app
    # the order of the parts does not matter
    assert _baseline_app(baseline_board(list(reversed(parts)))) == app


def test_the_app_comes_out_of_a_combined_file_without_what_follows_it(parts):
    app = next(p.data for p in parts if p.offset == ESP32_APP_OFFSET)
    trailer = b"\xff" * 4096 + bytes(range(256)) * 16  # padding and a file system after the app
    image = combined(parts, trailer=trailer)
    assert image.offset == 0x1000 and len(image.data) == 0x10000 - 0x1000 + len(app) + len(trailer)
    assert _baseline_app(baseline_board([image])) == app


def test_a_combined_file_from_0_works_too(parts):
    app = next(p.data for p in parts if p.offset == ESP32_APP_OFFSET)
    assert _baseline_app(baseline_board([combined(parts, start=0, trailer=b"\x00" * 100)])) == app


def test_without_a_part_at_0x10000_the_board_error_names_the_board(parts):
    no_app = [p for p in parts if p.offset != ESP32_APP_OFFSET]
    with pytest.raises(BoardError, match=r"^board devkit: no baseline image covers the app slot at 0x10000$"):
        _baseline_app(baseline_board(no_app))
    # a combined file that ends just before the app slot does not cover it
    short = combined(no_app)
    short = FlashPart(short.offset, short.data + b"\xff" * (ESP32_APP_OFFSET - short.offset - len(short.data)),
                      short.name)
    assert short.offset + len(short.data) == ESP32_APP_OFFSET
    with pytest.raises(BoardError, match="no baseline image covers the app slot"):
        _baseline_app(baseline_board([short]))
    with pytest.raises(BoardError):
        _baseline_app(baseline_board([]))


def test_a_part_after_the_app_slot_does_not_cover_it(parts):
    app = next(p.data for p in parts if p.offset == ESP32_APP_OFFSET)
    with pytest.raises(BoardError):
        _baseline_app(baseline_board([FlashPart(0x10001, app, "shifted.bin")]))


# -- case directory names ---------------------------------------------------------------------------
@pytest.mark.parametrize("nodeid, name", [
    ("scenarios/test_power_loss.py::test_power_loss[esp32-0-firmware]",
     "test_power_loss.test_power_loss[esp32-0-firmware]"),
    ("scenarios/test_rollback.py::TestRollback::test_health[esp8266-0-files]",
     "test_rollback.TestRollback.test_health[esp8266-0-files]"),
    ("scenarios/test_bad_hash.py", "test_bad_hash"),
    ("test_x.py::test_y", "test_x.test_y"),
    ("tests/scenarios/deep/test_x.py::test_y[a=1,b+2]", "test_x.test_y[a=1,b+2]"),
    # separators, spaces, quotes and anything else a parameter id may hold become "_"
    ("scenarios/test_x.py::test_y[a/b c:d*?\"<>|\\é]", "test_x.test_y[a_b_c_d________]"),
    ("scenarios/test_x.py::test_y[../../etc/passwd]", "test_x.test_y[.._.._etc_passwd]"),
    ("scenarios/test_x.py::test_y[tab\tnew\nline]", "test_x.test_y[tab_new_line]"),
])
def test_case_dir_names(nodeid, name):
    assert case_dir_name(nodeid) == name
    assert "/" not in name and os.sep not in name


def test_a_case_dir_name_is_cut_to_200_characters():
    name = case_dir_name("scenarios/test_x.py::test_y[" + "p" * 500 + "]")
    assert len(name) == 200 and name.startswith("test_x.test_y[ppp")


# -- what -n auto means ------------------------------------------------------------------------------
class FakeConfig:
    """What the hook reads of a pytest config: three options, the arguments and the stash."""

    def __init__(self, args: list[str], rig: str | None = None, boards: list[str] | None = None,
                 mutation: str | None = None):
        self.args = args
        self.stash = pytest.Stash()
        self._options = {"--rig": rig, "--board": boards or [], "--mutation": mutation}

    def getoption(self, name: str):
        return self._options[name]


@pytest.fixture
def auto_env(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    return monkeypatch


def test_the_emu_rig_gets_one_worker_per_virtual_board_device_and_update_kind(auto_env):
    # esp32-0: micropython firmware and files, esp-idf and esp-idf-anti-rollback firmware; esp8266-0: micropython
    # files, esp8266-sdk firmware
    assert pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"], rig="emu")) == 6
    assert pytest_xdist_auto_num_workers(FakeConfig([], rig="emu")) == 6


def test_scenarios_without_a_rig_use_emu(auto_env):
    assert pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"])) == 6
    assert pytest_xdist_auto_num_workers(FakeConfig(["scenarios/test_power_loss.py::test_power_loss"])) == 6


def test_selected_boards_only(auto_env):
    assert pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"], rig="emu", boards=["esp8266-0"])) == 2
    assert pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"], rig="emu", boards=["esp32-0"])) == 4


def test_a_mutation_run_gets_workers_for_its_device_s_cases_only(auto_env):
    assert pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"], rig="emu", mutation="skip-diagnostics")) == 1
    assert pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"], rig="emu", mutation="no-version-check")) == 3


def test_a_bench_board_gets_one_worker_whatever_its_update_kinds(auto_env, tmp_path):
    (tmp_path / "fw.bin").write_bytes(b"\xe9" + bytes(4095))
    (tmp_path / "shelf.yaml").write_text(textwrap.dedent("""\
        host: 192.0.2.10
        wifi: {ssid_env: HIL_TEST_SSID, key_env: HIL_TEST_KEY}
        boards:
          - name: devkit
            chip: esp32
            port: {path: /dev/null}
            power: {kind: command, cmd_on: "true", cmd_off: "true"}
            baseline: [{offset: 0x1000, file: fw.bin}]
            updates: [firmware, files]
          - name: nodemcu
            chip: esp8266
            port: {path: /dev/zero}
            power: {kind: command, cmd_on: "true nodemcu", cmd_off: "true nodemcu"}
            baseline: [{offset: 0x0, file: fw.bin}]
        """))
    auto_env.setenv("HIL_TEST_SSID", "bench")
    auto_env.setenv("HIL_TEST_KEY", "secret")
    assert pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"], rig=str(tmp_path / "shelf.yaml"))) == 2


def test_the_rig_is_loaded_once_and_kept_in_the_stash(auto_env):
    config = FakeConfig(["scenarios/"], rig="emu")
    assert pytest_xdist_auto_num_workers(config) == 6
    config._options["--rig"] = "no-such-rig"  # not read again
    assert pytest_xdist_auto_num_workers(config) == 6


def test_a_bad_rig_or_mutation_is_a_usage_error(auto_env):
    with pytest.raises(pytest.UsageError, match="no-such-rig"):
        pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"], rig="no-such-rig"))
    with pytest.raises(pytest.UsageError):
        pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"], rig="emu", mutation="no-such-mutation"))


@pytest.mark.parametrize("cpus, workers", [(1, 6), (2, 12), (5, 30), (6, 32), (64, 32)])
def test_the_harness_s_own_tests_get_six_workers_per_cpu_up_to_32(auto_env, cpus, workers):
    auto_env.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    assert pytest_xdist_auto_num_workers(FakeConfig(["tests/"])) == workers
    assert pytest_xdist_auto_num_workers(FakeConfig([])) == workers
    assert pytest_xdist_auto_num_workers(FakeConfig(["tests/bench/test_bench_locks.py"])) == workers


def test_the_cpus_this_process_may_use_count(auto_env):
    expected = min(32, 6 * len(os.sched_getaffinity(0)))
    assert pytest_xdist_auto_num_workers(FakeConfig(["tests/"])) == expected


def test_pytest_xdist_auto_num_workers_wins(auto_env):
    auto_env.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")
    assert pytest_xdist_auto_num_workers(FakeConfig(["tests/"])) is None
    assert pytest_xdist_auto_num_workers(FakeConfig(["scenarios/"], rig="emu")) is None
