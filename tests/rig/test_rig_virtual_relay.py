"""Virtual boards wired to a virtual LCUS relay: ``virtual: {power: lcus, channel: N}`` (rigs/emu-lcus.yaml)."""

from __future__ import annotations

import textwrap

import pytest

from harness.rig import RigError, load_rig, rigs_dir


def test_emu_lcus_is_the_emu_boards_on_two_relay_channels():
    rig = load_rig("emu-lcus")
    emu = load_rig("emu")
    assert (rig.name, rig.host) == ("emu-lcus", "127.0.0.1")
    assert [(b.name, b.chip, b.virtual, b.relay_channel, b.port, b.power) for b in rig.boards] == [
        ("esp32-0", "esp32", True, 1, None, None),
        ("esp8266-0", "esp8266", True, 2, None, None),
    ]
    assert [b.devices for b in rig.boards] == [b.devices for b in emu.boards]
    assert rig.path == rigs_dir() / "emu-lcus.yaml"


def test_plain_virtual_boards_have_no_relay_channel():
    assert [b.relay_channel for b in load_rig("emu").boards] == [None, None]


def test_the_channel_defaults_to_1(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text("host: 127.0.0.1\nboards:\n  - {name: a, chip: esp8266, virtual: {power: lcus}}\n")
    assert load_rig(str(path)).boards[0].relay_channel == 1


HEAD = "host: 127.0.0.1\nboards:\n"

CASES = [
    ("not a mapping", HEAD + "  - name: a\n    chip: esp32\n    virtual: lcus   # <-\n",
     "boards[0].virtual", "expected true, false or a mapping {power: lcus, channel: N}, got 'lcus'"),
    ("unknown key", HEAD + "  - name: a\n    chip: esp32\n    virtual:\n      power: lcus\n      chanel: 1   # <-\n",
     "boards[0].virtual.chanel", "unknown key (did you mean channel? allowed: power, channel)"),
    ("power missing", HEAD + "  - name: a\n    chip: esp32\n    virtual: {channel: 1}   # <-\n",
     "boards[0].virtual.power", "missing (the virtual relay board that powers it: lcus)"),
    ("power kind", HEAD + "  - name: a\n    chip: esp32\n    virtual: {power: shelly, channel: 1}   # <-\n",
     "boards[0].virtual.power", "expected lcus, got 'shelly'"),
    ("channel range", HEAD + "  - name: a\n    chip: esp32\n    virtual:\n      power: lcus\n      channel: 9   # <-\n",
     "boards[0].virtual.channel", "expected an integer 1..8, got 9"),
    ("port beside it", HEAD + "  - name: a\n    chip: esp32\n    virtual: {power: lcus, channel: 1}\n"
                              "    port: {path: /dev/ttyUSB0}   # <-\n",
     "boards[0].port", "not for a virtual board: the harness starts it and owns its port and power"),
    ("channel taken", HEAD + "  - name: a\n    chip: esp32\n    virtual: {power: lcus, channel: 2}\n"
                             "  - name: b\n    chip: esp8266\n    virtual:\n"
                             "      power: lcus\n      channel: 2   # <-\n",
     "boards[1].virtual.channel", "relay channel 2 already powers board a (line 3): a power cut must hit one "
                                  "board only"),
    ("default channel taken", HEAD + "  - name: a\n    chip: esp32\n    virtual: {power: lcus, channel: 1}\n"
                                     "  - name: b\n    chip: esp8266\n    virtual: {power: lcus}   # <-\n",
     "boards[1].virtual.channel", "relay channel 1 already powers board a (line 3): a power cut must hit one "
                                  "board only"),
]


@pytest.mark.parametrize(("text", "key", "problem"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_mistake_is_one_line_with_file_line_and_key(tmp_path, monkeypatch, text, key, problem):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rig.yaml").write_text(textwrap.dedent(text))
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "# <-" in row)
    with pytest.raises(RigError) as caught:
        load_rig("rig.yaml")
    assert str(caught.value) == f"rig.yaml:{line}: {key}: {problem}"
