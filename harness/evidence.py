"""What a scenario case leaves behind for whoever reads its result: logs, the boot state after a failure.

Every case gets a directory ``reports/logs/<case>/`` (``--hil-logs`` moves it), rewritten at
each run of that case:

* ``console-<board>.log``: the board's console from the start of the case's set-up, one
  timestamped line per line, with ``===== ... =====`` notes where the set-up and the test
  body start;
* ``<server>.jsonl``: what each server of the run logged during the case, one JSON object
  per line with an ISO 8601 ``time`` first;
* after a failure, ``boot-state-after.txt`` and ``.json``: the boot state read back from the
  board's flash (when it can still be read: a board that is switched off stays off, since
  a read would boot it).

A failing case's report ends with the board's last console lines and these paths; in
Allure, the console, the server logs and the boot state after a failure are attachments of
the test itself.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import report

if TYPE_CHECKING:
    from .scenario import OtaCase

#: console lines a failure message ends with
TAIL_LINES = 30


def case_dir_name(nodeid: str) -> str:
    """``scenarios/test_power_loss.py::test_x[esp32-0-firmware]`` -> ``test_power_loss.test_x[esp32-0-firmware]``."""
    path, _, name = nodeid.partition("::")
    stem = Path(path).stem
    text = f"{stem}.{name.replace('::', '.')}" if name else stem
    return re.sub(r"[^A-Za-z0-9_.\-\[\]=+,]", "_", text)[:200]


def iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}" + \
        time.strftime("%z", time.localtime(at))


class CaseEvidence:
    """The marks a case starts from and the files it writes; one per scenario case."""

    def __init__(self, nodeid: str, target: OtaCase, logs_root: Path):
        self.nodeid = nodeid
        self.target = target
        self.dir = logs_root / case_dir_name(nodeid)
        self.started = time.time()
        board = target.board
        self.setup_mark = board.console.mark()
        self.body_mark: int | None = None
        self._servers = {name: len(log) for name, log in self._server_logs().items()}
        self.boot_state_after: Any = None
        self.boot_state_note = ""
        self.files: list[Path] = []
        self.write_error = ""
        board.console.note(f"set-up of {nodeid}")

    # -- phases -----------------------------------------------------------------------------------
    def body_starts(self) -> None:
        self.body_mark = self.target.board.console.mark()
        self.target.board.console.note(f"test body of {self.nodeid}")

    def failed(self, stopping: bool) -> None:
        """Read the boot state after a failure (unless the run is stopping), write the logs, attach it all."""
        if not stopping:
            self._read_boot_state()
        self.write()
        self.attach()

    def passed(self) -> None:
        self.write()
        self.attach()

    # -- what is read and written -----------------------------------------------------------------
    def _server_logs(self) -> dict[str, Any]:
        bench = self.target.bench
        logs = {server.name: server.log for server in bench.servers()}
        if bench._mqtt is not None:
            logs["mqtt-broker"] = bench._mqtt[0].log
            logs["mqtt-publisher"] = bench._mqtt[1].log
        return logs

    def _read_boot_state(self) -> None:
        board = self.target.board
        try:
            if board.power.state() is False:
                self.boot_state_note = "not read: the board is switched off (reading would boot it)"
                return
            board.console.note("boot state read after the failure")
            self.boot_state_after = board.boot_state()
        except Exception as e:  # the evidence must never replace the failure it documents
            self.boot_state_note = f"could not be read: {' '.join(str(e).split())[:300]}"

    def console_text(self) -> str:
        return self.target.board.console.transcript(self.setup_mark, after=self.started)

    def server_records(self) -> dict[str, list[dict]]:
        out = {}
        for name, log in self._server_logs().items():
            records = log.records[self._servers.get(name, 0):]
            out[name] = [{"time": iso(r["t"]) if isinstance(r.get("t"), (int, float)) else "", **r}
                         for r in records]
        return out

    def write(self) -> list[Path]:
        """(Re)write the case's directory; returns the files written."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            files = []
            console = self.dir / f"console-{self.target.board.name}.log"
            console.write_text(self.console_text(), encoding="utf-8")
            files.append(console)
            for name, records in self.server_records().items():
                path = self.dir / f"{name}.jsonl"
                path.write_text("".join(json.dumps(r, default=str) + "\n" for r in records), encoding="utf-8")
                files.append(path)
            if self.boot_state_after is not None:
                text = self.dir / "boot-state-after.txt"
                text.write_text(self.boot_state_after.summary() + "\n", encoding="utf-8")
                data = self.dir / "boot-state-after.json"
                data.write_text(json.dumps(self.boot_state_after.to_dict(), indent=2, default=str) + "\n",
                                encoding="utf-8")
                files += [text, data]
            elif self.boot_state_note:
                note = self.dir / "boot-state-after.txt"
                note.write_text(f"boot state after the failure {self.boot_state_note}\n", encoding="utf-8")
                files.append(note)
            self.files = files
        except OSError as e:
            self.files = []
            self.write_error = f"logs not written to {self.dir}: {e.strerror or e}"
        return self.files

    def attach(self) -> None:
        board = self.target.board.name
        report.attach_to_case(self.nodeid, f"console {board}", self.console_text())
        for name, records in self.server_records().items():
            if records or name == "http":
                report.attach_to_case(self.nodeid, f"{name} server log",
                                      "".join(json.dumps(r, default=str) + "\n" for r in records),
                                      mime="application/x-ndjson", extension="jsonl")
        if self.boot_state_after is not None:
            report.attach_to_case(self.nodeid, "boot state after the failure", self.boot_state_after.summary())
            report.attach_to_case(self.nodeid, "boot state after the failure (json)",
                                  json.dumps(self.boot_state_after.to_dict(), indent=2, default=str),
                                  mime="application/json", extension="json")
        elif self.boot_state_note:
            report.attach_to_case(self.nodeid, "boot state after the failure", self.boot_state_note)

    def failure_text(self) -> list[tuple[str, str]]:
        """Sections a failure report ends with: the board's last console lines, then where the logs are."""
        board = self.target.board
        tail = board.console.tail(self.setup_mark, TAIL_LINES) or "(the board printed nothing since the case began)"
        sections = [(f"console {board.name}: last {TAIL_LINES} lines since the case began", tail)]
        lines = [str(p) for p in self.files]
        if self.write_error:
            lines.append(self.write_error)
        if self.boot_state_after is not None:
            summary = self.boot_state_after.summary().splitlines()[1:]
            lines.insert(0, "boot state after the failure: " + ("; ".join(summary[:2]) or "nothing decoded"))
        elif self.boot_state_note:
            lines.insert(0, f"boot state after the failure {self.boot_state_note}")
        sections.append(("logs of this case", "\n".join(lines)))
        return sections
