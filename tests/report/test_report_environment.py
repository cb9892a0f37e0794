"""environment.properties as java.util.Properties.store writes it (what Allure 2 and 3 both read)."""

from __future__ import annotations

import pytest

from harness import report


def _written(tmp_path, props: dict[str, str]) -> str:
    return report.write_environment(tmp_path / "allure-results", props).read_text(encoding="ascii")


@pytest.mark.parametrize("key, value, line", [
    ("rig", "bench-2", "rig=bench-2"),
    # a space, ':' or '=' would end the key early
    ("rig name", "bench 2", "rig\\ name=bench 2"),
    ("board:dut1", "esp32", "board\\:dut1=esp32"),
    ("a=b", "c=d", "a\\=b=c\\=d"),
    # '#' and '!' would start a comment at the beginning of a line
    ("#boards", "!2", "\\#boards=\\!2"),
    ("port", "C:\\dev\\tty", "port=C\\:\\\\dev\\\\tty"),
    # leading spaces of a value are skipped by the reader, inner and trailing ones are kept
    ("note", "  two  spaces ", "note=\\  two  spaces "),
    ("log", "line 1\nline 2\ttab\r\f", "log=line 1\\nline 2\\ttab\\r\\f"),
    ("empty", "", "empty="),
])
def test_special_characters_are_escaped(tmp_path, key, value, line):
    assert _written(tmp_path, {key: value}) == line + "\n"


def test_non_ascii_becomes_utf16_escapes(tmp_path):
    text = _written(tmp_path, {"opérateur": "Zoë 5 €", "firmware": "ota 🚀"})
    assert text == "op\\u00E9rateur=Zo\\u00EB 5 \\u20AC\nfirmware=ota \\uD83D\\uDE80\n"


def test_one_line_per_property_in_the_given_order(tmp_path):
    props = {"rig": "bench-2", "chips": "esp32, esp8266", "python": "3.11.9", "esptool": "5.6.0"}
    lines = _written(tmp_path, props).splitlines()
    assert [line.split("=", 1)[0] for line in lines] == list(props)


def test_rewriting_replaces_the_file(tmp_path):
    _written(tmp_path, {"rig": "bench-1", "old": "x"})
    assert _written(tmp_path, {"rig": "bench-2"}) == "rig=bench-2\n"
