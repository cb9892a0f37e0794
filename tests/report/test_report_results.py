"""Steps and attachments made through harness.report, read back from the results allure-pytest wrote."""

from __future__ import annotations

import json

from harness import report


def test_steps_nest_and_carry_their_attachments(allure_run):
    result = allure_run.results["test_steps"]
    assert result["status"] == "passed"
    [flash] = result["steps"]
    assert (flash["name"], flash["status"]) == ("flash slot ota_0", "passed")
    attachment, text = allure_run.attachment(flash, "console")
    assert attachment["type"] == "text/plain"
    assert text == "rst:0x1 (POWERON_RESET)\nOTA done, slot ota_0 \u00e9"
    [verify] = flash["steps"]
    assert verify["name"] == "verify"
    assert [a["name"] for a in verify["attachments"]] == ["stats"]


def test_attach_json_is_indented_json(allure_run):
    [flash] = allure_run.results["test_steps"]["steps"]
    attachment, text = allure_run.attachment(flash["steps"][0], "stats")
    assert attachment["type"] == "application/json"
    assert text.startswith('{\n  "erases": 3,\n  "slot": "ota_0",\n')
    stats = json.loads(text)
    assert stats["flash"].endswith("flash.bin")  # a Path, written as its string


def test_attach_file_copies_the_file(allure_run):
    attachment, text = allure_run.attachment(allure_run.results["test_steps"], "server log")
    assert attachment["type"] == "text/plain"
    assert attachment["source"].endswith(".log")
    assert text == '{"event": "get", "bytes": 4096}\n'


def test_attach_file_notes_a_missing_file_instead_of_failing(allure_run):
    attachment, text = allure_run.attachment(allure_run.results["test_steps"], "board log")
    assert attachment["type"] == "text/plain"
    assert text.endswith("never-written.log does not exist")


def test_an_exception_in_a_step_breaks_the_step_and_the_test(allure_run):
    result = allure_run.results["test_serial_port_broken"]
    assert result["status"] == "broken"
    [step] = result["steps"]
    assert (step["name"], step["status"]) == ("connect esptool", "broken")
    assert result["statusDetails"]["message"].startswith("test_scenarios.FlashingError: serial port ")


def test_a_failed_assertion_fails_the_step_and_the_test(allure_run):
    result = allure_run.results["test_update_failed"]
    assert result["status"] == "failed"
    assert result["steps"][0]["status"] == "failed"
    assert "slot ota_1 did not boot" in result["statusDetails"]["message"]


def test_environment_and_categories_sit_beside_the_results(allure_run):
    assert (allure_run.results_dir / "environment.properties").read_text(encoding="ascii") == "rig=virtual-esp32\n"
    categories = json.loads((allure_run.results_dir / "categories.json").read_text(encoding="utf-8"))
    assert categories == report.categories()


def test_helpers_do_nothing_without_allure(monkeypatch, tmp_path):
    monkeypatch.setattr(report, "allure", None)
    with report.step("flash"):
        report.attach_text("console", "text")
        report.attach_json("stats", {"a": 1})
        report.attach_file("log", tmp_path / "missing.log", "text/plain")


def test_helpers_do_nothing_when_the_run_has_no_alluredir(tmp_path):
    # allure-pytest is installed here, but this run writes no results: nothing listens
    log = tmp_path / "console.log"
    log.write_text("boot\n")
    with report.step("flash"):
        report.attach_text("console", "text")
        report.attach_json("stats", {"a": 1})
        report.attach_file("log", log)
    assert list(tmp_path.iterdir()) == [log]
