"""The system-level power-cut sweep (harness.sweep.system).

The cut points (every operation that is not bulk image data, the first and last image operation and a
seeded sample) and the result's counts are checked on a made-up recording. On a virtual ESP8266 (slow
tests) the MicroPython agent's file update is cut at the operations that commit its slot record: the
real agent (write-new-then-rename) recovers from every one of them, the mutated one that removes the
record before writing the new one (``files-state-not-atomic``) is caught.
"""

from __future__ import annotations

import pytest

from harness.sweep import FlashOp, Recording
from harness.sweep.system import CutResult, SystemSweepResult, choose_cuts


def recording(phases: list[str]) -> Recording:
    ops = [FlashOp(100 + i, "program", 0x10000 + 0x100 * i, 0x100, phase) for i, phase in enumerate(phases, 1)]
    return Recording(device="micropython", kind="firmware", variant="next", ops=ops, before=b"", after=b"",
                     table=None, ops_at_trigger=100)


def test_the_cut_points_are_every_other_operation_the_first_and_last_image_one_and_a_seeded_sample():
    phases = ["image"] * 40 + ["otadata"] * 2 + ["image"] * 40 + ["filesystem"] * 3
    rec = recording(phases)
    others = [i for i, p in enumerate(phases, 1) if p != "image"]
    image = [i for i, p in enumerate(phases, 1) if p == "image"]
    cuts = choose_cuts(rec, sample=5, seed=1)
    assert set(others) | {image[0], image[-1]} <= set(cuts) and len(cuts) == len(others) + 2 + 5
    assert cuts == sorted(cuts) and set(cuts) <= set(range(1, len(phases) + 1))
    assert choose_cuts(rec, sample=5, seed=1) == cuts  # seeded
    assert choose_cuts(rec, sample=5, seed=2) != cuts
    assert choose_cuts(rec, sample=0) == sorted(others + [image[0], image[-1]])
    assert choose_cuts(rec, sample=1000) == list(range(1, len(phases) + 1))
    assert choose_cuts(recording(["filesystem"] * 4), sample=3) == [1, 2, 3, 4]


def test_the_result_counts_recoveries_outcomes_and_distinct_flash_states():
    res = SystemSweepResult(device="micropython", kind="files", variant="next", board="esp8266-0", operations=9,
                            policies=("none",), seed=0, seconds=30.0)
    for cut, outcome, state in ((1, "recovered-old", "a"), (2, "recovered-old", "a"), (3, "recovered-new", "b"),
                                (4, "inconsistent", "c"), (5, "bricked", "d")):
        res.results.append(CutResult(cut, "none", "program", 0x1000, "filesystem", outcome, state=state))
    assert (res.cuts, res.recovered, res.distinct_states) == (5, 3, 4)
    assert [r.cut for r in res.failures] == [4, 5]
    assert res.counts() == {"recovered-old": 2, "recovered-new": 1, "bricked": 1, "inconsistent": 1}
    assert res.cuts_per_minute == 10.0
    assert res.to_dict()["results"][3]["outcome"] == "inconsistent"
    assert res.results[3].describe() == "cut 4 (none, filesystem program at 0x1000)"


#: the last operations of the agent's file update on the virtual ESP8266: the slot switch and the confirmation
#: each rewrite the slot record (ota_state.json)
LAST = 40


def sweep_the_record_commits(tmp_path, mutation):
    from harness.rig import load_rig
    from harness.scenario import OtaBench, OtaCase
    from harness.sweep import record_update
    from harness.sweep.system import sweep_system

    bench = OtaBench(load_rig("emu"), tmp_path, mutation=mutation)
    try:
        case = OtaCase(bench, bench.board("esp8266-0"), "files")
        rec = record_update(case)
        cuts = range(len(rec.ops) - LAST + 1, len(rec.ops) + 1)
        return rec, sweep_system(case, rec, policies=("none",), cuts=cuts)
    finally:
        bench.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_real_agent_recovers_from_every_cut_of_its_slot_record(tmp_path):
    rec, result = sweep_the_record_commits(tmp_path, None)
    assert result.cuts == LAST and result.recovered == LAST, [(r.cut, r.outcome, r.detail) for r in result.failures]
    outcomes = result.counts()
    assert outcomes.get("recovered-old", 0) >= 1 and outcomes.get("recovered-new", 0) >= 1, outcomes
    assert result.distinct_states <= result.cuts


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_sweep_catches_an_agent_that_replaces_its_slot_record_non_atomically(tmp_path):
    rec, result = sweep_the_record_commits(tmp_path, "files-state-not-atomic")
    assert result.failures, result.counts()
    assert {r.outcome for r in result.failures} <= {"bricked", "inconsistent"}
    assert any("record" in r.detail for r in result.failures), [r.detail for r in result.failures]
