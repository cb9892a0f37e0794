"""categories.json: infrastructure failures apart from product failures, as both Allure generations match them."""

from __future__ import annotations

import json
import re

from harness import report

NAMES = [
    "Infrastructure: serial port",
    "Infrastructure: power switch",
    "Infrastructure: OTA server",
    "Infrastructure: virtual board",
    "Infrastructure: rig file",
    "Product: OTA scenario failed",
    "Harness errors",
]


def _matches(rule: dict, status: str, message: str, *, allure3: bool) -> bool:
    if rule.get("matchedStatuses") and status not in rule["matchedStatuses"]:
        return False
    if "messageRegex" not in rule:
        return True
    if allure3:  # RegExp.test: a search, "." not matching newlines
        return re.search(rule["messageRegex"], message) is not None
    return re.fullmatch(rule["messageRegex"], message, re.DOTALL) is not None  # Pattern.matches with DOTALL


def allure2_categories(rules: list[dict], status: str, message: str) -> list[str]:
    """Every category that matches: Allure 2 files a test under each of them."""
    return [r["name"] for r in rules if _matches(r, status, message, allure3=False)]


def allure3_category(rules: list[dict], status: str, message: str) -> str | None:
    """The first category that matches: Allure 3 files a test under that one only."""
    return next((r["name"] for r in rules if _matches(r, status, message, allure3=True)), None)


def test_categories_json_is_written_in_order(tmp_path):
    path = report.write_categories(tmp_path / "allure-results")
    rules = json.loads(path.read_text(encoding="utf-8"))
    assert [r["name"] for r in rules] == NAMES
    assert all(r["matchedStatuses"] == ["broken"] for r in rules if r["name"].startswith("Infrastructure"))
    assert rules[-2] == {"name": "Product: OTA scenario failed", "matchedStatuses": ["failed"]}
    assert rules[-1]["matchedStatuses"] == ["broken"]


def test_every_sample_lands_in_exactly_one_category(category_samples):
    rules = report.categories()
    for status, message, expected in category_samples:
        assert allure2_categories(rules, status, message) == [expected], message
        assert allure3_category(rules, status, message) == expected, message


def test_every_category_has_a_sample(category_samples):
    assert {expected for _, _, expected in category_samples} == set(NAMES)


def test_regexes_work_the_same_in_java_and_javascript():
    for rule in report.categories():
        regex = rule.get("messageRegex")
        if regex is None:
            continue
        # anchored at both ends, so a search (Allure 3) and a full match (Allure 2) agree
        assert regex.startswith("^") and regex.endswith("$"), rule["name"]
        # no "." outside escapes and classes: it matches newlines in Allure 2 (DOTALL), not in Allure 3
        assert "." not in re.sub(r"\\.|\[(?:\\.|[^\]])*\]", "", regex), rule["name"]


def test_passed_and_skipped_tests_have_no_category():
    rules = report.categories()
    for status in ("passed", "skipped"):
        assert allure2_categories(rules, status, "") == []
        assert allure3_category(rules, status, "") is None


def test_real_allure_pytest_messages(allure_run):
    rules = report.categories()
    for name, expected in [("test_serial_port_broken", "Infrastructure: serial port"),
                           ("test_update_failed", "Product: OTA scenario failed")]:
        result = allure_run.results[name]
        message = result["statusDetails"]["message"]
        assert allure2_categories(rules, result["status"], message) == [expected], message
        assert allure3_category(rules, result["status"], message) == expected, message


def test_every_failure_type_of_the_harness_is_filed_by_its_class_whatever_its_message_says():
    from harness.errors import CATEGORY_BASES, failure_types

    rules = report.categories()
    for base in CATEGORY_BASES:
        for cls in failure_types(base):
            # a message that by its words would belong nowhere, or elsewhere: the type decides
            for text in ("no words of any category", "the server answered 500"):
                message = f"{cls.__module__}.{cls.__name__}: {text}"
                assert allure3_category(rules, "broken", message) == base.category, message
                assert allure2_categories(rules, "broken", message) == [base.category], message


def test_a_board_given_up_is_filed_where_its_cause_belongs():
    from harness.emu.launcher import BoardStartError
    from harness.ports import PortError
    from harness.power.base import PowerSwitchError
    from harness.scenario import (
        BoardPortUnavailable,
        BoardPowerUnavailable,
        BoardUnavailable,
        VirtualBoardUnavailable,
        unavailable_because,
    )

    assert unavailable_because(PortError("x")) is BoardPortUnavailable
    assert unavailable_because(PowerSwitchError("x")) is BoardPowerUnavailable
    assert unavailable_because(BoardStartError("x")) is VirtualBoardUnavailable
    assert unavailable_because(KeyError("x")) is BoardUnavailable
    rules = report.categories()
    text = "board devkit of rig bench is not usable, its cases are not run: LCUS relay /dev/x: cannot open"
    assert allure3_category(rules, "broken", f"harness.scenario.BoardPowerUnavailable: {text}") == \
        "Infrastructure: power switch"
    assert allure3_category(rules, "broken", f"harness.scenario.BoardUnavailable: {text}") == "Harness errors"
