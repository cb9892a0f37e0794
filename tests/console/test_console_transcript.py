"""The console's timestamped log, its notes, ``transcript()`` and ``tail()``.

No port is opened: text is fed through ``Console._append`` as the reader thread feeds it,
with a clock the test sets, so every timestamp is known.
"""

from __future__ import annotations

import re
import time
import types

import pytest

from harness import console as console_module
from harness.console import Console
from harness.devices.micropython import AgentEvents

#: one second past a whole second plus a multiple of 1/8 s: the milliseconds are exact in binary
T0 = 1_700_000_000.0
STAMP = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} ")


def clock(at: float) -> str:
    """``HH:MM:SS.mmm`` of ``at``, worked out here rather than by the module under test."""
    whole = int(at)
    return time.strftime("%H:%M:%S", time.localtime(whole)) + f".{round((at - whole) * 1000):03d}"


class Clock:
    """``time.time`` of the console module, set by the test."""

    def __init__(self, at: float = T0):
        self.at = at

    def __call__(self) -> float:
        return self.at

    def set(self, at: float) -> str:
        self.at = at
        return clock(at)


@pytest.fixture
def now(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(console_module, "time", types.SimpleNamespace(
        time=fake, strftime=time.strftime, localtime=time.localtime, monotonic=time.monotonic, sleep=time.sleep))
    return fake


@pytest.fixture
def con(tmp_path, now):
    c = Console("rfc2217://127.0.0.1:1", "esp32-0", tmp_path / "console.log")
    yield c
    c.close()


def log_of(c: Console) -> str:
    return c.log_path.read_text(encoding="utf-8")


def test_the_console_is_not_attached_until_asked(con):
    assert not con.attached and con.text == ""


def test_every_line_of_the_log_and_of_the_transcript_carries_its_start_time(con, now):
    t1 = now.set(T0 + 0.125)
    con._append("ets Jun  8 2016 00:22:57\n\nrst:0x1 (POWERON_RESET)")
    t2 = now.set(T0 + 1.250)
    con._append(",boot:0x13\nMicroPython v1.27.0\n")
    t3 = now.set(T0 + 2.375)
    con._append(">>> ")

    assert log_of(con) == (f"{t1} ets Jun  8 2016 00:22:57\n"
                           f"{t1} \n"
                           f"{t1} rst:0x1 (POWERON_RESET),boot:0x13\n"  # the time its first byte came
                           f"{t2} MicroPython v1.27.0\n"
                           f"{t3} >>> ")
    assert con.text == "ets Jun  8 2016 00:22:57\n\nrst:0x1 (POWERON_RESET),boot:0x13\nMicroPython v1.27.0\n>>> "
    transcript = con.transcript()
    assert transcript.endswith("\n")
    assert all(STAMP.match(line) for line in transcript.splitlines()), transcript
    assert f"{t1} rst:0x1 (POWERON_RESET),boot:0x13\n{t2} MicroPython v1.27.0\n{t3} >>> \n" in transcript


def test_the_log_is_appended_to_and_written_at_once(tmp_path, now):
    path = tmp_path / "console.log"
    path.write_text("earlier run\n")
    c = Console("rfc2217://127.0.0.1:1", "esp32-0", path)
    try:
        t = now.set(T0 + 0.5)
        c._append("hello\n")
        assert path.read_text() == f"earlier run\n{t} hello\n"  # flushed, not held in a buffer
    finally:
        c.close()


def test_notes_are_lines_of_their_own_in_the_log_and_the_transcript(con, now):
    t1 = now.set(T0 + 0.125)
    con._append("boot\n")
    n1 = now.set(T0 + 0.250)
    con.note("set-up of scenarios/test_x.py::test_y[esp32-0-firmware]")
    t2 = now.set(T0 + 0.375)
    con._append("OTA ready firmware=v1.27.0\n")
    n2 = now.set(T0 + 0.500)
    con.note("test body")

    body = ("===== set-up of scenarios/test_x.py::test_y[esp32-0-firmware] =====", "===== test body =====")
    expected = f"{t1} boot\n{n1} {body[0]}\n{t2} OTA ready firmware=v1.27.0\n{n2} {body[1]}\n"
    assert log_of(con) == expected
    assert con.transcript() == expected
    assert "=====" not in con.text  # notes are the harness's, not the board's output
    assert con.events() == []  # no device implementation has claimed the console: no line is an event
    con.parser = AgentEvents()
    assert [e.name for e in con.events()] == ["ready"]


def test_a_note_that_interrupts_a_line_starts_a_line_of_its_own(con, now):
    t1 = now.set(T0 + 0.125)
    con._append("I (31) boot: ESP-IDF v5.2")
    n = now.set(T0 + 0.250)
    con.note("power off")
    t2 = now.set(T0 + 0.375)
    con._append(" 2nd stage bootloader\nnext\n")

    log = log_of(con)
    assert log.startswith(f"{t1} I (31) boot: ESP-IDF v5.2\n{n} ===== power off =====\n"), log
    assert log.endswith(f"{t2} next\n"), log
    # the transcript shows it as the log does: the note between the two parts of the board's line
    assert con.transcript() == (f"{t1} I (31) boot: ESP-IDF v5.2\n"
                                f"{n} ===== power off =====\n"
                                f"{t2}  2nd stage bootloader\n"
                                f"{t2} next\n")
    assert con.text == "I (31) boot: ESP-IDF v5.2 2nd stage bootloader\nnext\n"


def test_after_a_note_that_interrupts_a_line_the_rest_of_the_line_is_stamped_in_the_log(con, now):
    now.set(T0 + 0.125)
    con._append("abc")
    con.note("power off")
    now.set(T0 + 0.250)
    con._append("def\n")
    lines = log_of(con).splitlines()
    assert len(lines) == 3
    assert all(STAMP.match(line) for line in lines), lines


def test_an_empty_line_of_output_is_kept_in_the_transcript(con, now):
    t = now.set(T0 + 0.125)
    con._append("a\n\nb\n")
    assert con.transcript() == f"{t} a\n{t} \n{t} b\n"


def test_a_transcript_from_the_middle_of_a_line_gets_that_line_s_start_time(con, now):
    t1 = now.set(T0 + 0.125)
    con._append("first\nsecond line ")
    t2 = now.set(T0 + 0.250)
    con._append("goes on\nthird\n")
    since = con.text.index("line goes on")

    assert con.transcript(since) == f"{t1} line goes on\n{t2} third\n"
    # a mark taken at a line start begins with that line
    assert con.transcript(con.text.index("third")) == f"{t2} third\n"


def test_a_transcript_until_a_mark_cuts_the_line_there(con, now):
    t1 = now.set(T0 + 0.125)
    con._append("one\ntwo three\n")
    t2 = now.set(T0 + 0.250)
    con._append("four\n")
    until = con.text.index(" three")

    assert con.transcript(0, until) == f"{t1} one\n{t1} two\n"
    # until just past a newline: nothing of the next line, no empty line for it
    assert con.transcript(0, con.text.index("four")) == f"{t1} one\n{t1} two three\n"
    assert con.transcript(con.text.index("two"), con.text.index("four") + 2) == f"{t1} two three\n{t2} fo\n"


def test_a_transcript_between_two_marks_keeps_only_the_notes_between_them(con, now):
    t1 = now.set(T0 + 0.125)
    con._append("before\n")
    con.note("outside, before")
    con._append("more\n")
    start = con.mark()
    n1 = now.set(T0 + 0.250)
    con.note("set-up")
    t2 = now.set(T0 + 0.375)
    con._append("during\n")
    end = con.mark()
    now.set(T0 + 0.500)
    con._append("after\n")
    con.note("outside, after")

    assert con.transcript(start, end) == f"{n1} ===== set-up =====\n{t2} during\n"
    assert "outside" not in con.transcript(start, end)
    assert con.transcript(0, start).startswith(f"{t1} before\n")


def test_a_transcript_of_nothing_is_empty(con, now):
    assert con.transcript() == ""
    con._append("output\n")
    assert con.transcript(con.mark()) == ""
    n = now.set(T0 + 0.750)
    con.note("only a note")
    assert con.transcript(con.mark()) == f"{n} ===== only a note =====\n"


def test_tail_is_the_last_lines_after_the_mark_without_timestamps(con, now):
    con._append("".join(f"line {i}\n" for i in range(50)))
    assert con.tail(0, 3) == "line 47\nline 48\nline 49"
    assert con.tail(0).splitlines() == [f"line {i}" for i in range(20, 50)]  # 30 by default
    mark = con.text.index("line 48")
    assert con.tail(mark, 10) == "line 48\nline 49"
    con.note("a note")
    con._append("partial")
    assert con.tail(0, 2) == "line 49\npartial"  # notes are not output


def test_tail_of_nothing_is_empty(con):
    assert con.tail() == ""
    con._append("\n\n")
    assert con.tail(2) == ""
    assert con.tail(0, 5) == ""  # only newlines: nothing to show


def test_a_console_without_a_log_keeps_transcripts(now):
    c = Console("rfc2217://127.0.0.1:1", "esp8266-0")
    t = now.set(T0 + 0.125)
    c._append("x\n")
    c.note("n")
    assert c.log_path is None and c.transcript() == f"{t} x\n{t} ===== n =====\n"
    c.close()
