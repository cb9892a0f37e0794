"""The HTML report made by Allure 3 from npm, and Allure 3's own reading of the results the harness writes.

The slow tests need tools/node_modules: the first one to run installs it with npm ci (about
20 s with registry access).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import report, report_html

ALLURE_PACKAGES = report_html.TOOLS_DIR / "node_modules" / "@allurereport"
PINNING_LOCK = json.dumps({"packages": {"node_modules/allure": {"version": "3.18.0"}}})


def _report_files(index: Path) -> dict[str, bytes]:
    """The files a single-file awesome report embeds, by path (it inlines each as d("path", "base64"))."""
    html = index.read_text(encoding="utf-8")
    return {m[1]: base64.b64decode(m[2]) for m in re.finditer(r'd\("([^"]+)","([A-Za-z0-9+/=]*)"\)', html)}


def _node(script: str, payload: object) -> object:
    """Run an ES module script in node with ``payload`` as JSON on stdin; its stdout is read as JSON."""
    proc = subprocess.run(["node", "--input-type=module", "-e", script], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_missing_results_dir_is_one_line_naming_it(tmp_path):
    with pytest.raises(report_html.ReportError, match=r"^\S*nowhere: no such directory") as e:
        report_html.render(tmp_path / "nowhere", tmp_path / "html")
    assert "\n" not in str(e.value)


def test_results_dir_without_test_results_is_refused(tmp_path):
    results = tmp_path / "allure-results"
    report.write_categories(results)  # written at session start, before any test ran
    with pytest.raises(report_html.ReportError, match=r"holds no test results \(\*-result\.json\)"):
        report_html.render(results, tmp_path / "html")


def test_cli_prints_an_error_and_exits_1(tmp_path, capsys):
    assert report_html.main(["--results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "html")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m harness.report_html: error: ") and err.count("\n") == 1


def test_missing_node_is_one_line_saying_so(tmp_path, monkeypatch):
    (tmp_path / "package-lock.json").write_text(PINNING_LOCK)
    monkeypatch.setattr(report_html.shutil, "which", lambda program: None)
    with pytest.raises(report_html.ReportError, match=r"^node is not on PATH; the HTML report needs Node\.js"):
        report_html.ensure_tool(tmp_path)


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
def test_failed_npm_ci_is_one_line_with_npms_reason(tmp_path):
    # a lock without its package.json: npm ci fails at once, before asking the registry
    (tmp_path / "package-lock.json").write_text(PINNING_LOCK)
    with pytest.raises(report_html.ReportError) as e:
        report_html.ensure_tool(tmp_path)
    where = re.escape(str(tmp_path.resolve()))
    assert re.fullmatch(rf"npm ci in {where} failed \(exit \d+\): .*Could not read package\.json.*", str(e.value))


@pytest.mark.slow
def test_render_writes_one_self_contained_index_html(allure_run, tmp_path, capsys):
    assert report_html.main(["--results", str(allure_run.results_dir), "--out", str(tmp_path / "html")]) == 0
    index = tmp_path / "html" / "index.html"
    assert capsys.readouterr().out == f"report: {index}\n"
    html = index.read_text(encoding="utf-8")
    assert "<title> esp-ota-hil </title>" in html
    # nothing is fetched when the report is opened: no data files beside it, no analytics
    assert "googletagmanager" not in html and "gtag(" not in html
    assert not (tmp_path / "html" / "data").exists()

    files = _report_files(index)
    tests = {}
    for path, data in files.items():
        if path.startswith("data/test-results/"):
            result = json.loads(data)
            tests[result["name"]] = result
    assert set(tests) == {"test_steps", "test_serial_port_broken", "test_update_failed"}
    [flash] = [s for s in tests["test_steps"]["steps"] if s.get("type") == "step"]
    assert flash["name"] == "flash slot ota_0"
    attachments = [s["link"] for s in flash["steps"] if s.get("type") == "attachment"]
    assert [a["name"] for a in attachments] == ["console"]
    console = files[f"data/attachments/{attachments[0]['id']}{attachments[0]['ext']}"].decode()
    assert console == "rst:0x1 (POWERON_RESET)\nOTA done, slot ota_0 \u00e9"

    categories = json.loads(files["widgets/categories.json"])
    filed = {node["name"]: node["statistic"]["total"] for node in categories["nodes"].values()
             if node["type"] == "category"}
    assert filed == {"Infrastructure: serial port": 1, "Product: OTA scenario failed": 1}
    assert json.loads(files["widgets/allure_environment.json"]) == [{"name": "rig", "values": ["virtual-esp32"]}]


@pytest.mark.slow
def test_allure3_files_every_sample_as_expected(category_samples):
    report_html.ensure_tool()
    core_api = (ALLURE_PACKAGES / "core-api" / "dist" / "index.js").as_uri()
    script = f"""
        import {{ normalizeCategoriesConfig, matchCategory }} from "{core_api}";
        let input = "";
        for await (const chunk of process.stdin) input += chunk;
        const {{ rules, samples }} = JSON.parse(input);
        const categories = normalizeCategoriesConfig(rules);
        const names = samples.map(([status, message]) =>
            matchCategory(categories, {{ status, message, labels: [], flaky: false }})?.name ?? null);
        console.log(JSON.stringify(names));
    """
    names = _node(script, {"rules": report.categories(), "samples": category_samples})
    assert names == [expected for _, _, expected in category_samples]


@pytest.mark.slow
def test_allure3_reads_the_environment_back(tmp_path):
    report_html.ensure_tool()
    props = {"rig name": "bench: 2", "a=b": "c=d", "#boards": "!2", "port": "C:\\dev\\tty",
             "note": "  two  spaces ", "log": "line 1\nline 2\ttab", "opérateur": "Zoë 5 €", "firmware": "ota 🚀"}
    path = report.write_environment(tmp_path, props)
    reader = (ALLURE_PACKAGES / "reader" / "dist" / "properties.js").as_uri()
    script = f"""
        import {{ parseProperties }} from "{reader}";
        let input = "";
        for await (const chunk of process.stdin) input += chunk;
        console.log(JSON.stringify(parseProperties(JSON.parse(input))));
    """
    assert _node(script, path.read_text(encoding="ascii")) == props
