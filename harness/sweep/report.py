"""The power-cut sweep in the Allure report: one test case per board, device and update kind.

Each case carries a table of its cuts (cut, phase, operation, tear policy, outcome, the flash state it left)
as an HTML attachment, a plot of cut point against outcome (one colour per outcome) as an SVG attachment, and
the figures as JSON. A case with a failing cut is failed, its message listing every failing cut with the one
line that reproduces just that cut.

The results are Allure's own result files (``<uuid>-result.json`` and its attachments), written directly:
``allure generate DIR`` or ``harness.report_html`` turns them into HTML. Everything is built from the figures
``benchmarks/power_cut_sweep.py`` prints with ``--json`` (one dict per board, device and kind).
"""

from __future__ import annotations

import hashlib
import html
import json
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from .system import OUTCOMES, RECOVERED

#: one colour per outcome (recoveries green and blue, failures warm)
COLOURS = {
    "recovered-old": "#2e7d32",
    "recovered-new": "#1565c0",
    "bricked": "#c62828",
    "inconsistent": "#ef6c00",
    "retry-failed": "#8e24aa",
    "not-reached": "#757575",
}
#: marker per tear policy in the plot
MARKERS = {"none": "circle", "prefix": "square", "random": "diamond"}


def _who(fig: dict) -> str:
    return f"{fig['board']} {fig['device']} {fig['kind']}"


def _state_labels(results: list[dict]) -> dict[str, str]:
    """A short name per distinct flash state, in order of first appearance (S1, S2, ...)."""
    labels: dict[str, str] = {}
    for r in results:
        if r.get("state") and r["state"] not in labels:
            labels[r["state"]] = f"S{len(labels) + 1}"
    return labels


def cut_table_html(fig: dict, reproduce: dict[tuple[int, str], str] | None = None) -> str:
    """The cuts of one board, device and kind as an HTML page with one table row per cut."""
    reproduce = reproduce or {}
    labels = _state_labels(fig["results"])
    rows = []
    for r in fig["results"]:
        ok = r["outcome"] in RECOVERED
        state = labels.get(r.get("state") or "", "")
        if r.get("state"):
            state = f'<span title="sha256 {html.escape(r["state"])}">{state}</span>'
        if r.get("same_as") is not None:
            first = fig["results"][r["same_as"]]
            state += f" (as cut {first['cut']} {html.escape(first['policy'])})"
        command = reproduce.get((r["cut"], r["policy"]), "")
        rows.append(
            f'<tr class="{"ok" if ok else "fail"}"><td>{r["cut"]}</td><td>{html.escape(r["phase"])}</td>'
            f'<td>{html.escape(r["op_kind"])} 0x{r["addr"]:x}</td><td>{html.escape(r["policy"])}</td>'
            f'<td style="color:{COLOURS.get(r["outcome"], "#000")}">{html.escape(r["outcome"])}</td>'
            f'<td>{state}</td><td>{html.escape(str(r.get("version") or ""))}</td>'
            f'<td>{html.escape(r.get("detail") or "")}'
            + (f'<br><code>{html.escape(command)}</code>' if command else "") + "</td></tr>")
    counts = ", ".join(f"{k} {v}" for k, v in fig.get("outcomes", {}).items())
    head = (f"<p>{fig['recovered']}/{fig['cuts']} cuts recovered ({html.escape(counts)}), "
            f"{fig['distinct_states']} distinct flash states, {fig['seconds']:.1f} s; "
            f"{fig['operations']} flash operations recorded; tear policies {html.escape(', '.join(fig['policies']))}, "
            f"seed {fig['seed']}</p>")
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>power-cut sweep "
        f"{html.escape(_who(fig))}</title><style>"
        "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
        "tr.fail{background:#fdecea}code{font-size:12px}</style></head><body>"
        f"<h3>power-cut sweep: {html.escape(_who(fig))}</h3>{head}"
        "<table><thead><tr><th>cut</th><th>phase</th><th>operation</th><th>policy</th><th>outcome</th>"
        "<th>flash state</th><th>version</th><th>detail</th></tr></thead><tbody>"
        + "".join(rows) + "</tbody></table></body></html>\n")


def _marker(shape: str, x: float, y: float, colour: str, title: str) -> str:
    tip = f"<title>{html.escape(title)}</title>"
    if shape == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">{tip}</rect>'
    if shape == "diamond":
        return (f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}" '
                f'fill="{colour}">{tip}</polygon>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">{tip}</circle>'


def outcome_plot_svg(fig: dict) -> str:
    """Cut point (the flash operation cut, 1..operations) against outcome: one row per outcome, one colour per
    outcome, one marker per tear policy (circle none, square prefix, diamond random)."""
    results = fig["results"]
    outcomes = [o for o in OUTCOMES if any(r["outcome"] == o for r in results)] or list(RECOVERED)
    ops = max([fig.get("operations") or 1] + [r["cut"] for r in results])
    left, right, top, row_h = 110, 20, 30, 34
    width = 760
    plot_w = width - left - right
    height = top + row_h * len(outcomes) + 70
    row_y = {o: top + row_h * i + row_h / 2 for i, o in enumerate(outcomes)}

    def x_of(cut: int) -> float:
        return left + (cut - 1) * plot_w / max(ops - 1, 1)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="16" font-size="13">power-cut sweep {html.escape(_who(fig))}: cut point against '
             'outcome</text>']
    for o in outcomes:
        y = row_y[o]
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="{COLOURS[o]}">{o}</text>')
    axis_y = top + row_h * len(outcomes)
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="#000"/>')
    for i in range(6):
        cut = 1 + round(i * (ops - 1) / 5)
        x = x_of(cut)
        parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#000"/>')
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{cut}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 32}" text-anchor="middle">cut point (flash '
                 f'operation after the trigger, of {ops})</text>')
    offsets = {"none": -7, "prefix": 0, "random": 7}
    for r in results:
        shape = MARKERS.get(r["policy"], "circle")
        title = f"cut {r['cut']} {r['policy']} ({r['phase']} {r['op_kind']} at 0x{r['addr']:x}): {r['outcome']}"
        parts.append(_marker(shape, x_of(r["cut"]), row_y[r["outcome"]] + offsets.get(r["policy"], 0),
                             COLOURS.get(r["outcome"], "#000"), title))
    legend_y = axis_y + 52
    x = left
    for policy, shape in MARKERS.items():
        parts.append(_marker(shape, x, legend_y - 4, "#555", policy))
        parts.append(f'<text x="{x + 9}" y="{legend_y}">{policy}</text>')
        x += 80
    parts.append("</svg>\n")
    return "\n".join(parts)


def _attacher(out: Path, attachments: list[dict]) -> Callable[[str, str, str, str], None]:
    def attach(name: str, text: str, mime: str, ext: str) -> None:
        source = f"{uuid.uuid4()}-attachment.{ext}"
        (out / source).write_text(text, encoding="utf-8")
        attachments.append({"name": name, "source": source, "type": mime})

    return attach


def write_allure(figures: Iterable[dict], directory: str | Path, reproduce_line: Callable[[dict, dict], str], *,
                 rig: str = "", title: str = "power-cut sweep") -> list[Path]:
    """One Allure result per board, device and kind in ``directory`` (created); returns the result files.

    ``reproduce_line(fig, cut)`` gives the command that runs just that cut.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fig in figures:
        failing = [r for r in fig["results"] if r["outcome"] not in RECOVERED]
        commands = {(r["cut"], r["policy"]): reproduce_line(fig, r) for r in failing}
        case_id = str(uuid.uuid4())
        attachments: list[dict] = []
        attach = _attacher(out, attachments)
        attach("cuts", cut_table_html(fig, commands), "text/html", "html")
        attach("cut point against outcome", outcome_plot_svg(fig), "image/svg+xml", "svg")
        attach("figures", json.dumps(fig, indent=2, default=str), "application/json", "json")
        if failing:
            attach("reproduce", "\n".join(commands[(r["cut"], r["policy"])] for r in failing) + "\n", "text/plain",
                   "txt")
        counts = ", ".join(f"{k} {v}" for k, v in fig.get("outcomes", {}).items())
        summary = (f"{fig['recovered']}/{fig['cuts']} cuts recovered ({counts}), {fig['distinct_states']} distinct "
                   f"flash states")
        if failing:
            message = summary + "; failing cuts:\n" + "\n".join(
                f"cut {r['cut']} ({r['policy']}, {r['phase']} {r['op_kind']} at 0x{r['addr']:x}): {r['outcome']}: "
                f"{r.get('detail') or ''}\n  reproduce: {commands[(r['cut'], r['policy'])]}" for r in failing)
        else:
            message = summary
        name = f"power-cut sweep {_who(fig)}"
        full_name = f"benchmarks.power_cut_sweep#{fig['board']}.{fig['device']}.{fig['kind']}"
        stop = int(time.time() * 1000)
        result = {
            "uuid": case_id,
            "historyId": hashlib.md5(full_name.encode()).hexdigest(),
            "testCaseId": hashlib.md5(full_name.encode()).hexdigest(),
            "fullName": full_name,
            "name": name,
            "status": "failed" if failing else "passed",
            "statusDetails": {"message": message},
            "stage": "finished",
            "start": stop - int(1000 * float(fig.get("seconds") or 0)),
            "stop": stop,
            "description": summary,
            "labels": [{"name": "parentSuite", "value": title}, {"name": "suite", "value": fig["device"]},
                       {"name": "subSuite", "value": fig["kind"]}, {"name": "feature", "value": "power-cut sweep"},
                       {"name": "tag", "value": fig["board"]}, {"name": "framework", "value": "power_cut_sweep"}],
            "parameters": [{"name": "rig", "value": rig}, {"name": "board", "value": fig["board"]},
                           {"name": "device", "value": fig["device"]}, {"name": "kind", "value": fig["kind"]},
                           {"name": "tear policies", "value": ",".join(fig["policies"])},
                           {"name": "seed", "value": str(fig["seed"])}],
            "attachments": attachments,
        }
        path = out / f"{case_id}-result.json"
        path.write_text(json.dumps(result, indent=2), encoding="utf-8")
        written.append(path)
    return written
