"""A case's evidence without a board: what is written, what a failure's text ends with."""

from __future__ import annotations

import json
from types import SimpleNamespace

from harness.console import Console
from harness.evidence import CaseEvidence
from harness.servers.base import ServerLog


def case(tmp_path, logs_root=None):
    console = Console("rfc2217://nowhere:1", "dut")
    http = ServerLog("http")
    http.add(event="before the case")  # an earlier case's record: not this case's
    server = SimpleNamespace(name="http", log=http)
    target = SimpleNamespace(board=SimpleNamespace(name="dut", console=console),
                             bench=SimpleNamespace(http=server, servers=lambda: [server], _mqtt=None))
    console._append("boot of an earlier case\n")
    ev = CaseEvidence("scenarios/test_x.py::test_y[dut-files]", target, logs_root or tmp_path)
    return ev, console, http


def test_the_case_s_console_and_server_records_only_with_iso_times(tmp_path):
    ev, console, http = case(tmp_path)
    console._append("OTA ready app=1\n")
    ev.body_starts()
    console._append("OTA refused reason=same-version\n")
    http.add(status=200, path="/m.json")
    files = ev.write()
    assert [p.name for p in files] == ["console-dut.log", "http.jsonl"]
    text = files[0].read_text()
    assert "earlier case" not in text and "===== set-up of scenarios/test_x.py::test_y[dut-files] =====" in text
    assert text.index("OTA ready") < text.index("===== test body of") < text.index("OTA refused")
    (record,) = [json.loads(line) for line in files[1].read_text().splitlines()]
    assert record["path"] == "/m.json" and record["time"][:4].isdigit() and "T" in record["time"]
    assert ev.dir.name == "test_x.test_y[dut-files]"


def test_a_failure_ends_with_the_console_tail_and_the_paths(tmp_path):
    ev, console, _ = case(tmp_path)
    for i in range(40):
        console._append(f"line {i}\n")
    ev.boot_state_note = "not read: the board is switched off (reading would boot it)"
    ev.write()
    (tail_title, tail), (logs_title, logs) = ev.failure_text()
    assert tail_title.startswith("console dut: last 30 lines") and tail.splitlines()[0] == "line 10"
    assert logs.splitlines()[0].startswith("boot state after the failure not read")
    assert str(ev.dir / "console-dut.log") in logs


def test_logs_that_cannot_be_written_are_said_so_in_the_failure_text(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    ev, _, _ = case(tmp_path, logs_root=blocker)
    assert ev.write() == []
    assert "logs not written to" in ev.failure_text()[1][1]
