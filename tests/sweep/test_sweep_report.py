"""The power-cut sweep's Allure results (harness.sweep.report): one case per board, device and kind, its table, its
plot, and a failed case whose message gives the line that reproduces each failing cut."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict

from harness.sweep.report import COLOURS, cut_table_html, outcome_plot_svg, write_allure
from harness.sweep.system import CutResult, SystemSweepResult

SVG = "{http://www.w3.org/2000/svg}"


def figures(device: str, kind: str, outcomes: list[tuple[int, str, str, str]]) -> dict:
    res = SystemSweepResult(device=device, kind=kind, variant="next", board="esp32-0", operations=900,
                            policies=("none", "prefix", "random"), seed=0, seconds=12.0)
    for cut, policy, outcome, state in outcomes:
        res.results.append(CutResult(cut, policy, "program", 0x1000 + cut, "otadata", outcome, state=state,
                                     detail="" if outcome.startswith("recovered") else f"why {cut}"))
    return res.to_dict()


def reproduce(fig: dict, cut: dict) -> str:
    return f"reproduce {fig['device']} {fig['kind']} --cut {cut['cut']} --policy {cut['policy']}"


GOOD = figures("esp-idf", "firmware", [(1, "none", "recovered-old", "a"), (1, "prefix", "recovered-old", "a"),
                                       (862, "none", "recovered-new", "b")])
BAD = figures("micropython", "files", [(5, "none", "recovered-old", "c"), (7, "random", "bricked", "d"),
                                       (9, "none", "retry-failed", "e")])


def results_in(directory) -> dict[str, dict]:
    found = {}
    for path in directory.glob("*-result.json"):
        result = json.loads(path.read_text())
        found[result["name"]] = result
    return found


def test_one_allure_case_per_device_and_kind_with_its_table_plot_and_figures(tmp_path):
    written = write_allure([GOOD, BAD], tmp_path, reproduce, rig="emu")
    assert len(written) == 2
    cases = results_in(tmp_path)
    assert set(cases) == {"power-cut sweep esp32-0 esp-idf firmware", "power-cut sweep esp32-0 micropython files"}
    good = cases["power-cut sweep esp32-0 esp-idf firmware"]
    assert good["status"] == "passed" and "3/3 cuts recovered" in good["statusDetails"]["message"]
    kinds = {a["name"]: a for a in good["attachments"]}
    assert kinds["cuts"]["type"] == "text/html" and kinds["cut point against outcome"]["type"] == "image/svg+xml"
    assert "reproduce" not in kinds
    for a in good["attachments"]:
        assert (tmp_path / a["source"]).is_file()
    table = (tmp_path / kinds["cuts"]["source"]).read_text()
    assert table.count("<tr class=") == 3 and "recovered-new" in table and ">862<" in table
    figures_back = json.loads((tmp_path / kinds["figures"]["source"]).read_text())
    assert figures_back["cuts"] == 3


def test_a_failing_cut_fails_its_case_with_the_line_that_reproduces_it(tmp_path):
    write_allure([GOOD, BAD], tmp_path, reproduce, rig="emu")
    bad = results_in(tmp_path)["power-cut sweep esp32-0 micropython files"]
    assert bad["status"] == "failed"
    message = bad["statusDetails"]["message"]
    assert message.startswith("1/3 cuts recovered")
    assert "reproduce: reproduce micropython files --cut 7 --policy random" in message
    assert "reproduce: reproduce micropython files --cut 9 --policy none" in message
    assert "--cut 5 " not in message
    lines = next(a for a in bad["attachments"] if a["name"] == "reproduce")
    assert (tmp_path / lines["source"]).read_text().splitlines() == [
        "reproduce micropython files --cut 7 --policy random", "reproduce micropython files --cut 9 --policy none"]
    table = (tmp_path / next(a for a in bad["attachments"] if a["name"] == "cuts")["source"]).read_text()
    assert table.count('<tr class="fail">') == 2 and "reproduce micropython files --cut 7 --policy random" in table


def test_the_table_names_each_distinct_flash_state_and_the_cut_that_first_left_it():
    fig = figures("esp-idf", "firmware", [(1, "none", "recovered-old", "a"), (1, "prefix", "recovered-old", "a")])
    fig["results"][1]["same_as"] = 0
    table = cut_table_html(fig)
    assert table.count(">S1<") == 2 and "(as cut 1 none)" in table and ">S2<" not in table


def test_the_plot_puts_each_cut_on_its_outcome_row_in_that_outcome_colour():
    svg = ET.fromstring(outcome_plot_svg(BAD))
    rows = {t.text: float(t.get("y")) for t in svg.iter(f"{SVG}text") if t.text in COLOURS}
    assert set(rows) == {"recovered-old", "bricked", "retry-failed"}
    markers = [e for e in svg.iter() if e.tag in (f"{SVG}circle", f"{SVG}rect", f"{SVG}polygon")
               and e.find(f"{SVG}title") is not None and e.find(f"{SVG}title").text.startswith("cut ")]
    assert len(markers) == 3
    for e in markers:
        title = e.find(f"{SVG}title").text
        outcome = title.rsplit(": ", 1)[1]
        assert e.get("fill") == COLOURS[outcome]
    xs = {e.find(f"{SVG}title").text.split()[1]: float(e.get("cx") or e.get("x") or e.get("points").split(",")[0])
          for e in markers}
    assert float(xs["5"]) < float(xs["7"]) < float(xs["9"])  # cut point along the x axis
    assert len({e.get("fill") for e in markers}) == 3


def test_the_figures_of_a_cut_result_round_trip_through_asdict():
    r = CutResult(3, "none", "erase", 0xE000, "otadata", "recovered-old", timings={"prepare": 0.3})
    assert asdict(r)["timings"] == {"prepare": 0.3} and asdict(r)["retry_as"] is None
