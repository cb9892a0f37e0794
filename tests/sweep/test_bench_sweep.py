"""The power-cut sweep on a bench (harness.sweep.bench): the cuts it plans, their names, the state file that makes a
rerun skip finished cuts, and (slow) cuts through the virtual LCUS relay of rigs/emu-lcus.yaml, the real relay
driver's path."""

from __future__ import annotations

import json
import re

import pytest

from harness.sweep.bench import BenchCut, BenchCutResult, BenchState, plan_bench_cuts
from harness.sweep.system import SweepError


def test_the_plan_spreads_byte_counts_over_the_image_then_its_last_bytes_then_the_console_cuts():
    cuts = plan_bench_cuts(9000, spread=2, tail=(100, 1), events=(("switch", 0.0), ("ready", 0.5)))
    assert [c.name for c in cuts] == ["bytes:3000", "bytes:6000", "bytes:8900", "bytes:8999", "bytes:9000",
                                      "switch+0", "ready+0.5"]
    assert [c.name for c in plan_bench_cuts(10, spread=0, tail=(100, 1), events=())] == ["bytes:9", "bytes:10"]
    with pytest.raises(SweepError, match="0 bytes has no byte"):
        plan_bench_cuts(0)


@pytest.mark.parametrize("text, cut", [("bytes:123", BenchCut(at_bytes=123)),
                                       ("switch+0.3", BenchCut(event="switch", delay=0.3)),
                                       ("ready+0", BenchCut(event="ready", delay=0.0))])
def test_a_cut_name_reads_back_as_the_cut(text, cut):
    assert BenchCut.parse(text) == cut and cut.name == text


@pytest.mark.parametrize("text, message", [("bytes:0", "at least 1"), ("boot+1", "unknown console event 'boot'"),
                                           ("12345", "expected bytes:N or EVENT+SECONDS")])
def test_a_bad_cut_name_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BenchCut.parse(text)


def test_the_state_file_keeps_finished_cuts_per_board_device_and_kind(tmp_path):
    path = tmp_path / "state" / "bench.json"
    state = BenchState(path)
    state.add("esp32-0/esp-idf/firmware/next", BenchCutResult("bytes:10", "recovered-old", "1"))
    state.add("esp32-0/esp-idf/firmware/next", BenchCutResult("switch+0", "bricked", detail="silent"))
    again = BenchState(path)
    done = again.done("esp32-0/esp-idf/firmware/next")
    assert set(done) == {"bytes:10", "switch+0"} and done["switch+0"]["outcome"] == "bricked"
    assert again.done("esp32-0/micropython/firmware/next") == {}
    assert not list(path.parent.glob("*.tmp"))
    path.write_text("{not json")
    with pytest.raises(SweepError, match="cannot be read"):
        BenchState(path)
    path.write_text(json.dumps([1]))
    with pytest.raises(SweepError, match="not a state file"):
        BenchState(path)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cuts_through_the_virtual_lcus_relay_resume_from_the_state_file(tmp_path):
    from harness.rig import load_rig
    from harness.scenario import OtaBench, OtaCase
    from harness.sweep.bench import sweep_bench

    state = tmp_path / "bench.json"
    bench = OtaBench(load_rig("emu-lcus"), tmp_path / "run")
    try:
        board = bench.board("esp32-0")
        assert type(board.power).__name__.lower().startswith("lcus")  # the real relay driver, not the virtual switch
        case = OtaCase(bench, board, "firmware", "esp-idf")
        cuts = [BenchCut(at_bytes=4096), BenchCut(event="ready", delay=0.0), BenchCut(event="confirmed", delay=0.0)]
        first = sweep_bench(case, state, cuts=cuts, max_cuts=2)
        assert first.made == 2 and [r.name for r in first.results] == ["bytes:4096", "ready+0"]
        assert first.remaining == ["confirmed+0"]
        assert all(r.recovered for r in first.results), [(r.name, r.outcome, r.detail) for r in first.results]
        assert first.results[0].outcome == "recovered-old"  # 4 KiB of the image: the old version stays
        second = sweep_bench(case, state, cuts=cuts, max_cuts=2)
        assert second.made == 1 and [r.name for r in second.results] == ["bytes:4096", "ready+0", "confirmed+0"]
        assert second.results[2].outcome == "recovered-new", second.results[2]
        assert set(json.loads(state.read_text())["cuts"]["esp32-0/esp-idf/firmware/next"]) == {
            "bytes:4096", "ready+0", "confirmed+0"}
    finally:
        bench.close()
