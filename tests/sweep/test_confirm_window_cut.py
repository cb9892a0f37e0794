"""A power cut in the ESP-IDF client's confirm window: the new version's first boot (PENDING_VERIFY), before its
health check's verdict. The bootloader marks the entry ABORTED at the next boot and starts the old version; the
client must take the same version again when it is offered (only a version whose health check failed, INVALID,
is refused: see tests/emu/test_idf_client.py), and say why."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_cut_before_the_verdict_leaves_the_version_aborted_and_the_client_takes_it_again(tmp_path):
    from harness.rig import load_rig
    from harness.scenario import OtaBench, OtaCase
    from harness.sweep import record_update
    from harness.sweep.system import sweep_system

    bench = OtaBench(load_rig("emu"), tmp_path)
    try:
        case = OtaCase(bench, bench.board("esp32-0"), "firmware", "esp-idf")
        rec = record_update(case)
        # the update's last two operations: the client marking the new version valid (otadata erase, then program)
        erase, program = rec.ops[-2:]
        assert (erase.phase, erase.kind, program.phase, program.kind) == ("otadata", "erase", "otadata", "program")
        mark = case.board.console.mark()
        result = sweep_system(case, rec, policies=("none",), cuts=[len(rec.ops) - 1])
        (cut,) = result.results
        assert cut.outcome == "recovered-old", (cut.outcome, cut.detail)
        text = case.board.console.text[mark:]
        assert f"Version {rec.new_version} was aborted before its health check gave a verdict" in text
        assert "New version is the same as invalid version" not in text
    finally:
        bench.close()
