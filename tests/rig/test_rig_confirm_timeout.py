"""``confirm_timeout``: how long a new version's health check may take before the device rolls back.

A board key of its own, checked like ``boot_timeout``, with a default that depends on the board
(a virtual board reaches the harness on the loopback at once, a real one needs Wi-Fi first), and
what the agent's config gets from the harness (``OtaBench.config_for``).
"""

from __future__ import annotations

import types

import pytest

from harness.rig import DEFAULT_CONFIRM_TIMEOUT, DEFAULT_CONFIRM_TIMEOUT_VIRTUAL, RigError, load_rig
from harness.scenario import OtaBench

WIFI = {"HIL_TEST_SSID": "bench-net", "HIL_TEST_KEY": "secret"}


def virtual_board(extra: str = "") -> str:
    return "  - name: emu-0\n    chip: esp32\n    virtual: true\n" + extra


def bench_board(extra: str = "", name: str = "devkit", port: str = "/dev/null") -> str:
    return (f"  - name: {name}\n    chip: esp32\n    port: {{path: {port}}}\n"
            f"    power: {{kind: command, cmd_on: \"true {name}\", cmd_off: \"true {name}\"}}\n"
            "    baseline: [{offset: 0x1000, file: fw.bin}]\n" + extra)


def rig_text(*boards: str) -> str:
    return ("host: 192.0.2.10\nwifi: {ssid_env: HIL_TEST_SSID, key_env: HIL_TEST_KEY}\nboards:\n"
            + "".join(boards))


@pytest.fixture
def rig_dir(tmp_path, monkeypatch):
    """A working directory with a baseline image, so messages name the rig file as ``rig.yaml``."""
    monkeypatch.chdir(tmp_path)
    for name, value in WIFI.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "fw.bin").write_bytes(b"\xe9" + bytes(0x1fff))
    return tmp_path


def load(rig_dir, text: str):
    (rig_dir / "rig.yaml").write_text(text)
    return load_rig("rig.yaml")


# -- defaults -----------------------------------------------------------------------------------------------
def test_the_defaults_are_one_second_for_a_virtual_board_and_four_for_a_bench_board(rig_dir):
    assert (DEFAULT_CONFIRM_TIMEOUT_VIRTUAL, DEFAULT_CONFIRM_TIMEOUT) == (1.0, 4.0)
    rig = load(rig_dir, rig_text(virtual_board(), bench_board()))
    virtual, bench = rig.boards
    assert virtual.virtual and virtual.confirm_timeout == 1.0
    assert not bench.virtual and bench.confirm_timeout == 4.0
    assert isinstance(virtual.confirm_timeout, float) and isinstance(bench.confirm_timeout, float)


def test_the_shipped_rigs_use_the_defaults():
    for spec in load_rig("emu").boards + load_rig("emu-lcus").boards:
        assert spec.virtual and spec.confirm_timeout == 1.0, spec.name


def test_the_default_does_not_follow_boot_timeout(rig_dir):
    rig = load(rig_dir, rig_text(virtual_board("    boot_timeout: 40\n"), bench_board("    boot_timeout: 2\n")))
    assert [b.confirm_timeout for b in rig.boards] == [1.0, 4.0]


# -- explicit values ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, seconds", [("2.5", 2.5), ("10", 10.0), ("0.25", 0.25), ("1e1", 10.0)])
def test_an_explicit_value_wins_on_either_kind_of_board(rig_dir, value, seconds):
    rig = load(rig_dir, rig_text(virtual_board(f"    confirm_timeout: {value}\n"),
                                 bench_board(f"    confirm_timeout: {value}\n")))
    assert [b.confirm_timeout for b in rig.boards] == [seconds, seconds]
    assert all(isinstance(b.confirm_timeout, float) for b in rig.boards)


def test_each_board_has_its_own(rig_dir):
    rig = load(rig_dir, rig_text(bench_board("    confirm_timeout: 8\n"),
                                 bench_board(name="nodemcu", port="/dev/zero"),
                                 virtual_board("    confirm_timeout: 3\n")))
    assert {b.name: b.confirm_timeout for b in rig.boards} == {"devkit": 8.0, "nodemcu": 4.0, "emu-0": 3.0}


# -- invalid values ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, shown", [
    ("0", "0"), ("-1", "-1"), ("x", "'x'"), ("true", "True"), ("-0.5", "-0.5"), ("''", "''"), ("[1]", None),
    (".inf", None), ("null", None),
])
@pytest.mark.parametrize("board", ["virtual", "bench"])
def test_an_invalid_value_is_one_line_with_file_line_and_key(rig_dir, value, shown, board):
    entry = virtual_board if board == "virtual" else bench_board
    text = rig_text(entry(f"    confirm_timeout: {value}\n"))
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "confirm_timeout" in row)
    with pytest.raises(RigError) as caught:
        load(rig_dir, text)
    message = str(caught.value)
    assert "\n" not in message
    prefix = f"rig.yaml:{line}: boards[0].confirm_timeout: expected a number of seconds > 0, got "
    assert message.startswith(prefix), message
    if shown is not None:
        assert message == prefix + shown
    assert caught.value.__cause__ is None


def test_the_message_names_the_board_s_index(rig_dir):
    text = rig_text(virtual_board(), bench_board("    confirm_timeout: 0\n"))
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "confirm_timeout" in row)
    with pytest.raises(RigError, match=rf"^rig\.yaml:{line}: boards\[1\]\.confirm_timeout: expected a number of "
                                       r"seconds > 0, got 0$"):
        load(rig_dir, text)


def test_a_misspelt_key_suggests_confirm_timeout(rig_dir):
    with pytest.raises(RigError) as caught:
        load(rig_dir, rig_text(virtual_board("    confirm_timout: 2\n")))
    message = str(caught.value)
    assert "boards[0].confirm_timout: unknown key (did you mean confirm_timeout?" in message
    assert "confirm_timeout" in message.split("allowed:", 1)[1]


# -- what the agent's config gets ------------------------------------------------------------------------------------
@pytest.fixture
def bench_of(tmp_path):
    """An OtaBench on a rig (its HTTP server runs; no board is opened), closed after the test."""
    benches: list[OtaBench] = []

    def make(rig) -> OtaBench:
        bench = OtaBench(rig, tmp_path / f"bench{len(benches)}")
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        bench.close()


def fake_board(spec) -> types.SimpleNamespace:
    """What config_for reads of a board: its name, chip and spec."""
    return types.SimpleNamespace(name=spec.name, chip=spec.chip, spec=spec)


def test_config_for_gives_a_virtual_board_its_confirm_timeout(bench_of, tmp_path):
    bench = bench_of(load_rig("emu"))
    for spec in bench.rig.boards:
        config = bench.config_for(fake_board(spec))
        assert config["confirm_timeout"] == 1.0
        assert config["device"] == spec.name and config["chip"] == spec.chip
        assert config["wifi"] == {"ssid": "hil-bench", "key": ""}
        assert config["health"] == bench.http.url_for("/health")
    assert bench.boards == {}  # nothing was opened


def test_config_for_gives_a_bench_board_its_own_or_the_default(bench_of, rig_dir):
    rig = load(rig_dir, rig_text(bench_board("    confirm_timeout: 7.5\n"),
                                 bench_board(name="nodemcu", port="/dev/zero"),
                                 virtual_board("    confirm_timeout: 2\n")))
    bench = bench_of(rig)
    configs = {spec.name: bench.config_for(fake_board(spec)) for spec in rig.boards}
    assert {name: c["confirm_timeout"] for name, c in configs.items()} == \
        {"devkit": 7.5, "nodemcu": 4.0, "emu-0": 2.0}
    assert configs["devkit"]["wifi"] == {"ssid": "bench-net", "key": "secret"}
    assert configs["emu-0"]["wifi"] == {"ssid": "hil-bench", "key": ""}
    assert bench.boards == {}
