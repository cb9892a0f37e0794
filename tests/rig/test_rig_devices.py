"""A board's device implementations in a rig: ``devices: [{kind, ...}]`` and the single form, and every mistake as one
line naming file, line and key."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.rig import DEVICES, DeviceSpec, RigError, load_rig

HEAD = """\
host: 192.168.1.2
wifi: {ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}
boards:
"""
REAL = """\
  - name: bench-0
    chip: esp32
    port: {path: /dev/ttyUSB0}
    power: {kind: lcus, port: /dev/ttyUSB3, channel: 1}
"""
VIRTUAL = """\
  - name: emu-0
    chip: esp32
    virtual: true
"""


def idf_build(directory: Path, chip: str = "esp32", **extra) -> Path:
    """What idf.py build leaves in a build directory, as far as a rig reads it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("bootloader/bootloader.bin", "partition_table/partition-table.bin", "app.bin"):
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(b"\xe9" + bytes(4095))
    args = {"flash_files": {"0x1000": "bootloader/bootloader.bin", "0x8000": "partition_table/partition-table.bin",
                            "0x10000": "app.bin"},
            "app": {"offset": "0x10000", "file": "app.bin"}, "extra_esptool_args": {"chip": chip}, **extra}
    (directory / "flasher_args.json").write_text(json.dumps(args))
    return directory


@pytest.fixture
def rig_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HIL_WIFI_SSID", "net")
    monkeypatch.setenv("HIL_WIFI_KEY", "key")
    (tmp_path / "fw.bin").write_bytes(b"\xff" * 0x2000)
    idf_build(tmp_path / "build")
    return tmp_path


def load(rig_dir: Path, text: str):
    (rig_dir / "rig.yaml").write_text(textwrap.dedent(text))
    return load_rig("rig.yaml")


def test_emu_runs_the_agent_on_both_boards_and_the_esp_idf_client_on_the_esp32():
    rig = load_rig("emu")
    assert [(b.name, [(d.kind, d.updates) for d in b.devices]) for b in rig.boards] == [
        ("esp32-0", [("micropython", ["firmware", "files"]), ("esp-idf", ["firmware"]),
                     ("esp-idf-anti-rollback", ["firmware"])]),
        ("esp8266-0", [("micropython", ["files"]), ("esp8266-sdk", ["firmware"])])]
    assert rig.boards[0].cases() == [("micropython", "firmware"), ("micropython", "files"), ("esp-idf", "firmware"),
                                     ("esp-idf-anti-rollback", "firmware")]


def test_a_list_of_devices_with_their_own_settings(rig_dir):
    rig = load(rig_dir, HEAD + REAL + """\
    devices:
      - kind: micropython
        baseline: [{offset: 0x1000, file: fw.bin}]
        updates: [files]
      - {kind: esp-idf, build_dir: build}
      - kind: idf-app
        build_dir: build
        patterns: {ready: 'app (?P<version>\\S+) up', writing: 'wrote \\d+'}
""" + VIRTUAL + """\
    devices: [{kind: micropython}, {kind: esp-idf}]
""")
    bench, emu = rig.boards
    assert [d.kind for d in bench.devices] == ["micropython", "esp-idf", "idf-app"]
    mpy, idf, app = bench.devices
    assert (mpy.updates, idf.updates, app.updates) == (["files"], ["firmware"], ["firmware"])
    assert idf.build_dir == app.build_dir == rig_dir / "build"
    assert app.patterns == {"ready": r"app (?P<version>\S+) up", "writing": r"wrote \d+"}
    assert bench.cases() == [("micropython", "files"), ("esp-idf", "firmware"), ("idf-app", "firmware")]
    # the first device answers for the board in the single form's terms
    assert (bench.device, bench.updates, bench.baseline[0].offset) == ("micropython", ["files"], 0x1000)
    # a virtual board's esp-idf client is built by the harness: no build_dir needed
    assert [(d.kind, d.updates, d.build_dir) for d in emu.devices] == [
        ("micropython", ["firmware", "files"], None), ("esp-idf", ["firmware"], None)]
    assert emu.devices[0].baseline == "micropython"
    assert emu.device_spec("esp-idf") is emu.devices[1]
    with pytest.raises(KeyError, match="board emu-0 runs no 'idf-app' device"):
        emu.device_spec("idf-app")


def test_the_single_form_still_works(rig_dir):
    rig = load(rig_dir, HEAD + REAL + """\
    device: idf-app
    build_dir: build
""" + VIRTUAL + """\
    baseline: micropython
    updates: [files]
""")
    bench, emu = rig.boards
    assert bench.devices == [DeviceSpec("idf-app", ["firmware"], build_dir=rig_dir / "build")]
    assert emu.devices == [DeviceSpec("micropython", ["files"], "micropython")]
    assert bench.baseline is None and emu.baseline == "micropython"


def test_the_device_kinds_are_the_registry_s():
    from harness.devices import DEVICES as REGISTRY

    assert set(DEVICES) == set(REGISTRY)


MISTAKES = [
    ("unknown kind", REAL + "    devices:\n      - kind: zephyr   # <-\n",
     "boards[0].devices[0].kind",
     "expected one of micropython, esp-idf, esp-idf-anti-rollback, idf-app, esp8266-sdk, got 'zephyr'"),
    ("kind missing", REAL + "    devices:\n      - updates: [firmware]   # <-\n",
     "boards[0].devices[0].kind", "missing (one of micropython, esp-idf, esp-idf-anti-rollback, idf-app, esp8266-sdk)"),
    ("empty list", REAL + "    devices: []   # <-\n",
     "boards[0].devices", "expected a list of device implementations ({kind: micropython, ...}), got an empty list"),
    ("twice", VIRTUAL + "    devices:\n      - {kind: micropython}\n      - {kind: micropython}   # <-\n",
     "boards[0].devices[1].kind", "'micropython' is already the device on line 8"),
    ("single and list", VIRTUAL + "    updates: [files]   # <-\n    devices: [{kind: micropython}]\n",
     "boards[0].updates", "not next to devices: (give it in the device's own entry)"),
    ("unknown device key", VIRTUAL + "    devices:\n      - kind: esp-idf\n        bild_dir: x   # <-\n",
     "boards[0].devices[0].bild_dir", "unknown key (did you mean build_dir? allowed: kind, updates, baseline, "
                                      "build_dir, patterns)"),
    ("key of another device", VIRTUAL + "    devices:\n      - kind: esp-idf\n        baseline: micropython   # <-\n",
     "boards[0].devices[0].baseline", "not a setting of esp-idf devices (they take: build_dir)"),
    ("patterns of the agent", VIRTUAL + "    patterns: {ready: x}   # <-\n",
     "boards[0].patterns", "not a setting of micropython devices (they take: baseline)"),
    ("not on this chip", "  - name: emu-0\n    chip: esp8266\n    virtual: true\n    device: esp-idf   # <-\n",
     "boards[0].device", "'esp-idf' does not run on esp8266 (it runs on: esp32)"),
    ("files with esp-idf", VIRTUAL + "    devices:\n      - kind: esp-idf\n        updates: [files]   # <-\n",
     "boards[0].devices[0].updates[0]", "'files' updates are not possible on esp32 with esp-idf (allowed: firmware)"),
    ("bench esp-idf without build_dir", REAL + "    devices:\n      - kind: esp-idf   # <-\n",
     "boards[0].devices[0].build_dir", "missing (the build directory of device_fw/esp_idf (idf.py build))"),
    ("idf-app without build_dir", VIRTUAL + "    devices:\n      - kind: idf-app   # <-\n",
     "boards[0].devices[0].build_dir", "missing (the build directory of your ESP-IDF app (where idf.py build wrote "
                                       "flasher_args.json))"),
    ("bench agent without baseline", REAL + "    devices:\n      - kind: micropython   # <-\n",
     "boards[0].devices[0].baseline", "missing (the image files a real board starts from: a list of {offset, file})"),
    ("build_dir without flasher_args.json", VIRTUAL + "    devices:\n      - kind: idf-app\n"
                                                      "        build_dir: .   # <-\n",
     "boards[0].devices[0].build_dir", "no flasher_args.json in . (is it an ESP-IDF build directory? run idf.py "
                                       "build)"),
    ("build_dir missing", VIRTUAL + "    device: idf-app\n    build_dir: nowhere   # <-\n",
     "boards[0].build_dir", "no such build directory: nowhere (run idf.py build)"),
    ("build for another chip", VIRTUAL + "    device: idf-app\n    build_dir: s3   # <-\n",
     "boards[0].build_dir", "built for esp32s3 (s3/flasher_args.json), but board emu-0 is an esp32"),
    ("bad regex", VIRTUAL + "    device: idf-app\n    build_dir: build\n    patterns:\n"
                            "      writing: 'Written (\\d+'   # <-\n",
     "boards[0].patterns.writing", "not a valid regular expression: missing ), unterminated subpattern at "
                                   "position 8"),
    ("ready without version", VIRTUAL + "    device: idf-app\n    build_dir: build\n    patterns:\n"
                                        "      ready: 'up and running'   # <-\n",
     "boards[0].patterns.ready", "needs a (?P<version>...) group: the running version"),
    ("refused without reason", VIRTUAL + "    device: idf-app\n    build_dir: build\n    patterns:\n"
                                         "      refused: 'no thanks'   # <-\n",
     "boards[0].patterns.refused", "needs a (?P<reason>...) group: why the update was refused"),
    ("unknown event", VIRTUAL + "    device: idf-app\n    build_dir: build\n    patterns:\n"
                                "      done: 'x'   # <-\n",
     "boards[0].patterns.done", "unknown key (allowed: ready, listening, writing, switch, confirmed, rollback, "
                                "refused)"),
]


@pytest.mark.parametrize(("text", "key", "problem"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_a_device_mistake_is_one_line_with_file_line_and_key(rig_dir, text, key, problem):
    idf_build(rig_dir / "s3", chip="esp32s3")
    text = HEAD + text
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "# <-" in row)
    with pytest.raises(RigError) as caught:
        load(rig_dir, text)
    assert str(caught.value) == f"rig.yaml:{line}: {key}: {problem}"


def test_a_build_dir_whose_flasher_args_names_a_missing_file_names_it(rig_dir):
    (rig_dir / "build" / "app.bin").unlink()
    text = HEAD + VIRTUAL + "    device: idf-app\n    build_dir: build\n"
    with pytest.raises(RigError) as caught:
        load(rig_dir, text)
    assert str(caught.value) == "rig.yaml:8: boards[0].build_dir: file not found: build/app.bin"
    # the rig check loads it all the same, and reports the problem in its table
    (rig_dir / "rig.yaml").write_text(text)
    assert load_rig("rig.yaml", check_files=False).boards[0].devices[0].build_dir == rig_dir / "build"
