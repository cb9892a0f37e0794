"""Render Allure results into one self-contained HTML file, with Allure 3 from npm (no Java).

Allure 3 is pinned in ``tools/package.json`` and ``tools/package-lock.json`` and installed
into ``tools/node_modules`` on first use. The "awesome" report is written as a single
``index.html`` that works when opened from the file system: the multi-file layout loads
its data with fetch(), which browsers refuse for file:// pages.

    python -m harness.report_html [--results reports/allure-results] [--out reports/html]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

StrPath = str | os.PathLike[str]
TOOLS_DIR = Path(__file__).resolve().parent.parent / "tools"
REPORT_NAME = "esp-ota-hil"
# generous: a first npm ci on a slow link, or a report of a few thousand tests
TIMEOUT_S = 600

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The awesome template of Allure 3.18 always adds Google Analytics (no option turns it off): opening a
# report from a bench or CI artifact should contact nobody, so the two script tags are cut out.
_ANALYTICS = re.compile(r"\s*<script async src=\"https://www\.googletagmanager\.com/[^\"]*\"></script>"
                        r"\s*<script>\s*window\.dataLayer[^<]*</script>")


class ReportError(RuntimeError):
    """The HTML report could not be made; the message says what is missing or what failed."""


def _summary(output: str) -> str:
    """The line of a failed command's output that says what went wrong."""
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines()]
    # npm says it in its first "npm error" line that is not a code/errno/syscall/path field
    npm = [line.removeprefix("npm error").strip() for line in lines if line.startswith("npm error")]
    npm = [line for line in npm if line and line.split()[0] not in ("code", "errno", "syscall", "path")
           and not line.startswith("A complete log")]
    if npm:
        return npm[0]
    lines = [line for line in lines if line and not line.startswith("npm warn")]
    return lines[-1] if lines else "no output"


def _run(cmd: list[str], what: str, cwd: StrPath | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S,
                              env={**os.environ, "NO_COLOR": "1"})
    except subprocess.TimeoutExpired:
        raise ReportError(f"{what} did not finish within {TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise ReportError(f"{what} failed (exit {proc.returncode}): {_summary(proc.stderr + proc.stdout)}")


def _pinned_version(tools: Path) -> str:
    path = tools / "package-lock.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))["packages"]["node_modules/allure"]["version"]
    except FileNotFoundError:
        raise ReportError(f"{path} is missing, so there is no pinned Allure to install") from None
    except (ValueError, KeyError, TypeError):
        raise ReportError(f"{path}: not a package-lock.json that pins the allure package") from None


def _installed_version(tools: Path) -> str | None:
    try:
        return json.loads((tools / "node_modules" / "allure" / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None


def _require(program: str) -> None:
    if shutil.which(program) is None:
        raise ReportError(f"{program} is not on PATH; the HTML report needs Node.js with npm "
                          "(Debian: apt-get install nodejs npm)")


def ensure_tool(tools_dir: StrPath = TOOLS_DIR) -> Path:
    """The ``allure`` command of ``tools_dir``, installed with ``npm ci`` unless the pinned version is there."""
    tools = Path(tools_dir).resolve()
    allure = tools / "node_modules" / ".bin" / "allure"
    pinned = _pinned_version(tools)
    _require("node")  # it runs the installed command as well
    # comparing versions, not only looking for the command, so a changed pin reinstalls
    if allure.exists() and _installed_version(tools) == pinned:
        return allure
    _require("npm")
    # Two runs at once (pytest -n, parallel jobs in one checkout) must not both run npm ci, which
    # deletes node_modules first. The lock is on package-lock.json, which npm ci never rewrites.
    with open(tools / "package-lock.json", "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (allure.exists() and _installed_version(tools) == pinned):
            print(f"installing Allure {pinned or ''} (the HTML report) with npm into {tools}", file=sys.stderr,
                  flush=True)
            _run(["npm", "ci", "--prefix", str(tools), "--no-audit", "--no-fund"], f"npm ci in {tools}")
    if not allure.exists():
        raise ReportError(f"npm ci in {tools} finished but installed no {allure}")
    return allure


def _categories(results: Path) -> list[dict] | None:
    """The rules of ``categories.json``: the awesome report takes them from its config, not from the results."""
    path = results / "categories.json"
    if not path.is_file():
        return None
    try:
        rules = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ReportError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(rules, list):
        raise ReportError(f"{path}: expected a list of categories, found {type(rules).__name__}")
    return rules


def render(results_dir: StrPath, out_dir: StrPath, tools_dir: StrPath = TOOLS_DIR) -> Path:
    """Write the report of ``results_dir`` into ``out_dir``; returns the path of its ``index.html``."""
    results = Path(results_dir).resolve()
    out = Path(out_dir).resolve()
    if not results.is_dir():
        raise ReportError(f"{results_dir}: no such directory (run pytest with --alluredir {results_dir} first)")
    if not any(results.glob("*-result.json")):
        raise ReportError(f"{results_dir}: holds no test results (*-result.json); did the pytest run start any test?")
    allure = ensure_tool(tools_dir)
    config: dict = {
        "name": REPORT_NAME,
        "plugins": {"awesome": {"options": {"reportName": REPORT_NAME, "singleFile": True}}},
    }
    rules = _categories(results)
    if rules is not None:
        config["categories"] = rules
    if os.environ.get("HIL_ALLURE_HISTORY"):
        # Allure 3's history file (JSON lines, one per run): a nightly job keeps it between runs for the trends
        config["historyPath"] = str(Path(os.environ["HIL_ALLURE_HISTORY"]).resolve())
    with tempfile.TemporaryDirectory(prefix="allure-config-") as tmp:
        rc = Path(tmp) / "allurerc.json"
        rc.write_text(json.dumps(config), encoding="utf-8")
        # run in the scratch directory so Allure finds no other allurerc and leaves nothing behind
        _run([str(allure), "generate", "--config", str(rc), "--output", str(out), str(results)],
             f"allure generate {results_dir}", cwd=tmp)
    index = out / "index.html"
    if not index.is_file():
        raise ReportError(f"allure generate {results_dir} finished but wrote no {index}")
    html = index.read_text(encoding="utf-8")
    index.write_text(_ANALYTICS.sub("", html, count=1), encoding="utf-8")
    return index


def main(argv: list[str] | None = None, prog: str = "python -m harness.report_html") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Render Allure results into a self-contained HTML report")
    parser.add_argument("--results", default="reports/allure-results", help="Allure results directory (%(default)s)")
    parser.add_argument("--out", default="reports/html", help="directory the report is written to (%(default)s)")
    args = parser.parse_args(argv)
    try:
        index = render(args.results, args.out)
    except ReportError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
