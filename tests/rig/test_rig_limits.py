"""Rig files that would take the loader down: an alias bomb, deep nesting, an alias inside its own anchor,
bytes that are not UTF-8. Each is refused quickly with one line naming the file and the line."""

from __future__ import annotations

import time

import pytest

from harness.rig import MAX_DEPTH, MAX_NODES, RigError, load_rig

HEAD = "host: 127.0.0.1\nboards:\n  - name: a\n    chip: esp32\n    virtual: true\n"


def refused(tmp_path, monkeypatch, data: bytes | str, seconds: float = 2.0) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rig.yaml").write_bytes(data.encode() if isinstance(data, str) else data)
    start = time.monotonic()
    with pytest.raises(RigError) as caught:
        load_rig("rig.yaml")
    assert time.monotonic() - start < seconds
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    message = str(caught.value)
    assert "\n" not in message
    return message


def laughs(levels: int = 9, width: int = 9) -> str:
    """The billion laughs: each level an anchor holding ``width`` aliases of the level below."""
    rows = ["lol0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    rows += [f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(rows) + "\n"


def test_an_alias_bomb_is_refused(tmp_path, monkeypatch):
    message = refused(tmp_path, monkeypatch, HEAD + laughs())
    assert message.startswith("rig.yaml:") and message.endswith(f": rig expands past {MAX_NODES} values (aliases?)")
    assert 6 <= int(message.split(":")[1]) <= 15  # a line of the bomb


def test_an_alias_bomb_beside_the_boards_is_refused(tmp_path, monkeypatch):
    """Anchors under any key count, as do the aliases a board's option uses."""
    anchors = "".join(f"  - {row.split(': ', 1)[1]}\n" for row in laughs().splitlines())
    text = ("host: auto\nwifi: {ssid_env: S, key_env: K}\nshared:\n" + anchors + "boards:\n"
            "  - name: a\n    chip: esp32\n    port: {path: /dev/ttyUSB0}\n"
            "    baseline: [{offset: 0x1000, file: fw.bin}]\n"
            "    power: {kind: command, cmd_on: *l9, cmd_off: x}\n")
    assert refused(tmp_path, monkeypatch, text).endswith(f": rig expands past {MAX_NODES} values (aliases?)")


def test_a_merge_bomb_is_refused(tmp_path, monkeypatch):
    rows = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    rows += [f"m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(8)) + "}" for i in range(1, 9)]
    rows.append("m9: {<<: [*m8, *m7, *m6]}")
    assert refused(tmp_path, monkeypatch, HEAD + "\n".join(rows) + "\n").endswith("(aliases?)")


def test_a_rig_just_within_the_limit_loads(tmp_path, monkeypatch):
    """Aliases as a rig uses them (one relay board's options shared by boards) are nowhere near the limit."""
    monkeypatch.chdir(tmp_path)
    boards = "".join(f"  - {{name: b{i}, chip: esp32, virtual: true, updates: *u}}\n" for i in range(200))
    (tmp_path / "rig.yaml").write_text("host: 127.0.0.1\nx: &u [firmware, files]\nboards:\n" + boards)
    with pytest.raises(RigError, match=r"^rig\.yaml:2: x: unknown key"):
        load_rig("rig.yaml")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 100_000])
def test_deep_flow_nesting_is_one_line(tmp_path, monkeypatch, depth):
    message = refused(tmp_path, monkeypatch, "host: 127.0.0.1\nboards: " + "[" * depth + "]" * depth + "\n",
                      seconds=5.0)
    assert message == f"rig.yaml:2: nesting deeper than {MAX_DEPTH} levels"


def test_deep_block_nesting_names_the_line(tmp_path, monkeypatch):
    text = "host: 127.0.0.1\nboards:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(1, 5000))
    message = refused(tmp_path, monkeypatch, text, seconds=5.0)
    line = int(message.split(":")[1])
    assert message == f"rig.yaml:{line}: nesting deeper than {MAX_DEPTH} levels"
    assert f"k{MAX_DEPTH // 2}:" in text.splitlines()[line - 1]  # each "- k:" level is a list and a mapping


def test_nesting_up_to_the_limit_is_fine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    depth = MAX_DEPTH - 3  # the root mapping, boards' list and the board's mapping hold it
    (tmp_path / "rig.yaml").write_text(HEAD + "    updates: " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(RigError) as caught:  # read in full, then judged
        load_rig("rig.yaml")
    assert str(caught.value) == "rig.yaml:6: boards[0].updates[0]: expected firmware or files, got a list"


def test_an_alias_inside_its_own_anchor_is_one_line(tmp_path, monkeypatch):
    assert refused(tmp_path, monkeypatch, "host: 127.0.0.1\nboards: &a [*a]\n") == (
        f"rig.yaml:2: nesting deeper than {MAX_DEPTH} levels (an alias inside its own anchor?)")


@pytest.mark.parametrize(("data", "where"), [
    ("host: 127.0.0.1\nboards:\n  - name: caf\xe9\n".encode("latin-1"),
     "3: not UTF-8: byte 0xe9 at column 14 (byte 37 of the file): invalid continuation byte"),
    (b"\xff\xfehost: 127.0.0.1\n", "1: not UTF-8: byte 0xff at column 1 (byte 0 of the file): invalid start byte"),
    (b"host: 127.0.0.1\nboards: []\n# \xc3", "3: not UTF-8: byte 0xc3 at column 3 (byte 29 of the file): "
                                             "unexpected end of data"),
], ids=["latin-1", "utf-16 bom", "cut short"])
def test_a_byte_that_is_not_utf8_is_named_by_line_and_column(tmp_path, monkeypatch, data, where):
    assert refused(tmp_path, monkeypatch, data) == f"rig.yaml:{where}"


def test_a_control_character_is_named_by_line(tmp_path, monkeypatch):
    message = refused(tmp_path, monkeypatch, "host: 127.0.0.1\nboards:\n  - name: a\x07\n")
    assert message.startswith("rig.yaml:3: not valid YAML: ")
