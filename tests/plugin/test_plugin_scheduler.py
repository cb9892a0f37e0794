"""How pytest-xdist groups scenario cases (``pytest_xdist_make_scheduler``), without starting a run.

A virtual board's cases go together per (board, device, update kind): each worker starts its own
copy of the board. A bench board's cases all go together, whatever the device and update kind: a
bench board is never driven by two workers. Anything else is a scope of its own.
"""

from __future__ import annotations

import textwrap

import pytest
from test_plugin_units import FakeConfig  # tests/plugin is on sys.path (rootdir-relative imports)
from xdist.scheduler import LoadScopeScheduling

from harness.pytest_plugin import pytest_xdist_make_scheduler

SCENARIOS = ["test_power_loss.py::test_power_loss_mid_write", "test_bad_hash.py::test_bad_hash_is_refused",
             "test_same_version.py::test_same_version_is_refused", "test_rollback.py::test_rollback"]


class SchedulerConfig(FakeConfig):
    """FakeConfig plus what LoadScopeScheduling's constructor reads: the --tx specs (``-n 2``)."""

    def __init__(self, *args, tx: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._values = {"tx": tx if tx is not None else ["2*popen"]}

    def getvalue(self, name: str):
        return self._values[name]


def scheduler(*args, **kwargs) -> LoadScopeScheduling:
    sched = pytest_xdist_make_scheduler(SchedulerConfig(*args, **kwargs), log=None)
    assert isinstance(sched, LoadScopeScheduling)
    return sched


def case(param: str, test: str = SCENARIOS[0]) -> str:
    return f"scenarios/{test}[{param}]"


@pytest.fixture
def bench_rig(tmp_path, monkeypatch):
    """Write a rig of bench boards (external-command switches, /dev/null-style ports) and return its path."""
    monkeypatch.setenv("HIL_TEST_SSID", "bench")
    monkeypatch.setenv("HIL_TEST_KEY", "secret")
    (tmp_path / "fw.bin").write_bytes(b"\xe9" + bytes(4095))

    def write(boards: list[tuple[str, str, str]]) -> str:
        body = ""
        for n, (name, chip, updates) in enumerate(boards):
            body += textwrap.dedent(f"""\
                  - name: {name}
                    chip: {chip}
                    port: {{path: /dev/hil-test-{n}}}
                    power: {{kind: command, cmd_on: "true {n}", cmd_off: "true {n}"}}
                    baseline: [{{offset: 0x1000, file: fw.bin}}]
                    updates: [{updates}]
                """)
        path = tmp_path / "shelf.yaml"
        path.write_text("host: 192.0.2.10\nwifi: {ssid_env: HIL_TEST_SSID, key_env: HIL_TEST_KEY}\nboards:\n"
                        + textwrap.indent(body, "  "))
        return str(path)

    return write


# -- when the hook applies ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["tests"], [], ["tests/plugin/test_plugin_units.py"], ["benchmarks"]])
def test_a_run_of_anything_but_the_scenarios_keeps_xdist_s_own_scheduling(args):
    assert pytest_xdist_make_scheduler(SchedulerConfig(args), log=None) is None


@pytest.mark.parametrize("args, rig", [(["scenarios"], None), (["scenarios/test_rollback.py::test_rollback"], None),
                                       (["tests"], "emu"), ([], "emu")])
def test_a_scenario_run_or_an_explicit_rig_gets_the_board_scheduler(args, rig):
    sched = scheduler(args, rig=rig)
    assert sched.numnodes == 2 and sched.collection is None


# -- virtual boards: one group per board and update kind ----------------------------------------------------------
EMU_GROUPS = {case: case for case in ("esp32-0-micropython-firmware", "esp32-0-micropython-files",
                                      "esp32-0-esp-idf-firmware", "esp8266-0-micropython-files")}


@pytest.mark.parametrize("rig", ["emu", "emu-lcus", None])
def test_each_virtual_board_and_update_kind_is_a_group_across_the_scenario_files(rig):
    sched = scheduler(["scenarios"], rig=rig)
    for param, group in EMU_GROUPS.items():
        for test in SCENARIOS:
            assert sched._split_scope(case(param, test)) == group
    # four groups, one per (board, device, kind): what -n auto gives workers for
    groups = {sched._split_scope(case(p, t)) for p in EMU_GROUPS for t in SCENARIOS}
    assert groups == set(EMU_GROUPS.values())


def test_only_the_selected_board_has_groups():
    sched = scheduler(["scenarios"], rig="emu", boards=["esp8266-0"])
    assert sched._split_scope(case("esp8266-0-micropython-files")) == "esp8266-0-micropython-files"
    nodeid = case("esp32-0-micropython-firmware")
    assert sched._split_scope(nodeid) == nodeid  # not a case of this run: a scope of its own


# -- bench boards: one group per board ------------------------------------------------------------------------------
def test_a_bench_board_is_one_group_whatever_the_update_kind(bench_rig):
    rig = bench_rig([("devkit", "esp32", "firmware, files"), ("nodemcu", "esp8266", "files")])
    sched = scheduler(["scenarios"], rig=rig)
    for test in SCENARIOS:
        assert sched._split_scope(case("devkit-micropython-firmware", test)) == "devkit"
        assert sched._split_scope(case("devkit-micropython-files", test)) == "devkit"
        assert sched._split_scope(case("nodemcu-micropython-files", test)) == "nodemcu"


def test_a_bench_board_with_one_update_kind_is_still_named_by_the_board(bench_rig):
    rig = bench_rig([("devkit", "esp32", "files"), ("nodemcu", "esp8266", "files")])
    sched = scheduler(["scenarios"], rig=rig)
    assert sched._split_scope(case("devkit-micropython-files")) == "devkit"
    assert sched._split_scope(case("nodemcu-micropython-files")) == "nodemcu"
    # an update kind the rig does not give the board is not one of its cases
    nodeid = case("devkit-micropython-firmware")
    assert sched._split_scope(nodeid) == nodeid


# -- other parameters next to the board's ------------------------------------------------------------------------------
@pytest.mark.parametrize("param, group", [
    ("esp32-0-micropython-firmware-mqtt", "esp32-0-micropython-firmware"),
    ("esp32-0-micropython-files-https-chunked", "esp32-0-micropython-files"),
    ("esp8266-0-micropython-files-0.4", "esp8266-0-micropython-files"),
    ("mqtt-esp32-0-micropython-firmware", "esp32-0-micropython-firmware"),
    ("cut-0.4-esp8266-0-micropython-files", "esp8266-0-micropython-files"),
])
def test_extra_parameters_before_or_after_the_board_keep_its_group(param, group):
    sched = scheduler(["scenarios"], rig="emu")
    assert sched._split_scope(case(param)) == group
    assert sched._split_scope(f"scenarios/test_x.py::TestClass::test_y[{param}]") == group


def test_extra_parameters_keep_a_bench_board_s_group(bench_rig):
    rig = bench_rig([("devkit", "esp32", "firmware, files"), ("nodemcu", "esp8266", "files")])
    sched = scheduler(["scenarios"], rig=rig)
    assert sched._split_scope(case("devkit-micropython-firmware-mqtt")) == "devkit"
    assert sched._split_scope(case("https-devkit-micropython-files")) == "devkit"
    assert sched._split_scope(case("nodemcu-micropython-files-1")) == "nodemcu"


# -- everything else: a scope of its own ----------------------------------------------------------------------------
@pytest.mark.parametrize("nodeid", [
    "scenarios/test_power_loss.py::test_power_loss_mid_write",
    "tests/plugin/test_plugin_units.py::test_case_dir_names[scenarios/test_bad_hash.py-test_bad_hash]",
    "tests/rig/test_rig_load.py::test_x[1-2]",
    "scenarios/test_x.py::test_y[esp32-0]",          # a board without a device and update kind
    "scenarios/test_x.py::test_y[esp32-0-firmware]",  # a board and update kind without the device
    "scenarios/test_x.py::test_y[esp32-0-idf-app-firmware]",  # a device the board does not run
    "scenarios/test_x.py::test_y[esp32-0-micropython-firmwarex]",  # not the kind's id, only its prefix
    "scenarios/test_x.py::test_y[xesp32-0-micropython-firmware]",
    "scenarios/test_x.py::test_y[esp32-1-micropython-firmware]",  # no such board
    "scenarios/test_x.py::test_y[esp32-0-micropython-firmware]::sub",
    "scenarios/test_x.py",
])
def test_a_nodeid_that_is_not_a_case_of_the_rig_is_its_own_scope(nodeid):
    sched = scheduler(["scenarios"], rig="emu")
    assert sched._split_scope(nodeid) == nodeid


def test_non_scenario_nodeids_are_not_grouped_together():
    sched = scheduler(["scenarios"], rig="emu")
    a, b = "tests/x.py::test_a", "tests/x.py::test_b"
    assert sched._split_scope(a) != sched._split_scope(b)  # xdist's default would group them by module


# -- board names that contain one another -----------------------------------------------------------------------------
def test_a_bench_board_whose_name_ends_in_another_board_s_name_stays_one_group(bench_rig):
    rig = bench_rig([("n", "esp8266", "files"), ("m-n", "esp32", "firmware, files")])
    sched = scheduler(["scenarios"], rig=rig)
    assert sched._split_scope(case("n-micropython-files")) == "n"
    assert sched._split_scope(case("m-n-micropython-firmware")) == "m-n"
    assert sched._split_scope(case("m-n-micropython-files")) == "m-n"  # not "n": board m-n stays in one worker


# -- boards with several device implementations ---------------------------------------------------------------------
def fake_idf_build(directory) -> None:
    """A build directory as idf.py leaves it, as far as the rig reads it: flasher_args.json and its files."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    for name in ("bootloader.bin", "partition-table.bin", "app.bin"):
        (directory / name).write_bytes(b"\xe9" + bytes(4095))
    (directory / "flasher_args.json").write_text(json.dumps({
        "flash_files": {"0x1000": "bootloader.bin", "0x8000": "partition-table.bin", "0x10000": "app.bin"},
        "app": {"offset": "0x10000", "file": "app.bin"}, "extra_esptool_args": {"chip": "esp32"}}))


@pytest.fixture
def two_device_rig(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_TEST_SSID", "bench")
    monkeypatch.setenv("HIL_TEST_KEY", "secret")
    (tmp_path / "fw.bin").write_bytes(b"\xe9" + bytes(4095))
    fake_idf_build(tmp_path / "build")
    path = tmp_path / "two.yaml"
    path.write_text(textwrap.dedent("""\
        host: 192.0.2.10
        wifi: {ssid_env: HIL_TEST_SSID, key_env: HIL_TEST_KEY}
        boards:
          - name: vb
            chip: esp32
            virtual: true
            devices:
              - {kind: micropython, updates: [firmware, files]}
              - {kind: esp-idf}
          - name: devkit
            chip: esp32
            port: {path: /dev/hil-test-0}
            power: {kind: command, cmd_on: "true 0", cmd_off: "true 0"}
            devices:
              - {kind: micropython, baseline: [{offset: 0x1000, file: fw.bin}], updates: [files]}
              - {kind: idf-app, build_dir: build}
        """))
    return str(path)


def test_a_virtual_board_s_devices_are_groups_of_their_own_and_a_bench_board_is_one(two_device_rig):
    sched = scheduler(["scenarios"], rig=two_device_rig)
    for param in ("vb-micropython-firmware", "vb-micropython-files", "vb-esp-idf-firmware"):
        assert sched._split_scope(case(param)) == param
    for param in ("devkit-micropython-files", "devkit-idf-app-firmware"):
        assert sched._split_scope(case(param)) == "devkit"
    nodeid = case("devkit-micropython-firmware")  # not an update kind the rig gives that device
    assert sched._split_scope(nodeid) == nodeid


def test_a_mutation_run_has_groups_of_the_mutated_device_only(two_device_rig):
    sched = scheduler(["scenarios"], rig=two_device_rig, mutation="skip-version-check")
    assert sched._split_scope(case("vb-esp-idf-firmware")) == "vb-esp-idf-firmware"
    nodeid = case("vb-micropython-firmware")
    assert sched._split_scope(nodeid) == nodeid
