"""Every rule of a rig file, broken once: one line naming the file, the line of the mistake and its key path.

The line is where ``# <-`` marks the input, so a case reads like the file a user wrote.
"""

from __future__ import annotations

import textwrap

import pytest

from harness.rig import RigError, load_rig

HEAD = """\
host: 192.168.1.2
wifi: {ssid_env: HIL_WIFI_SSID, key_env: HIL_WIFI_KEY}
boards:
"""
VIRTUAL = """\
  - name: emu-0
    chip: esp32
    virtual: true
"""


def real(name: str = "bench-0", chip: str = "esp32", **replace: str) -> str:
    """A valid real board in block style; ``replace`` swaps or adds whole lines by key (None drops one)."""
    lines = {
        "chip": f"chip: {chip}",
        "port": "port: {path: /dev/ttyUSB0}",
        "power": "power: {kind: lcus, port: /dev/ttyUSB3, channel: 1}",
        "baseline": "baseline: [{offset: 0x1000, file: fw.bin}]",
    }
    lines.update(replace)
    body = "".join(f"    {line}\n" for line in lines.values() if line is not None)
    return f"  - name: {name}\n{body}"


CASES = [
    # -- the file ----------------------------------------------------------------------------------------------
    ("syntax", "host: 127.0.0.1\nboards:\n  - name: a\n    chip esp32   # <-\n    virtual: true\n",
     None, "not valid YAML: while scanning a simple key, could not find expected ':'"),
    ("unclosed quote", 'host: "127.0.0.1   # <-\nboards: []\n',
     None, "not valid YAML: while scanning a quoted scalar, found unexpected end of stream"),
    ("two documents", "host: 127.0.0.1\n---   # <-\nboards: []\n",
     None, "not valid YAML: expected a single document in the stream, but found another document"),
    ("empty", "# <-\n", None, "empty rig file, expected a mapping with host and boards"),
    ("not a mapping", "- host   # <-\n", None, "expected a mapping of rig settings (host, boards, ...), got a list"),
    ("duplicate key", "host: 127.0.0.1\nboards: []\nhost: 10.0.0.1   # <-\n",
     "host", "duplicate key (first given on line 1)"),
    # -- top level ---------------------------------------------------------------------------------------------
    ("unknown key", "hots: 127.0.0.1   # <-\nboards: []\n",
     "hots", "unknown key (did you mean host? allowed: name, host, wifi, mqtt, leave_on, boards, labgrid)"),
    ("host missing", "boards:   # <-\n" + VIRTUAL,
     "host", "missing (the address boards reach the harness on: an IP address, a host name or auto)"),
    ("host bad", "host: my laptop   # <-\nboards:\n" + VIRTUAL,
     "host", "expected an IP address, a host name or auto, got 'my laptop'"),
    ("loopback for real boards", "host: 127.0.0.1   # <-\nwifi: {ssid_env: S, key_env: K}\nboards:\n" + real(),
     "host", "127.0.0.1 is this machine's loopback, which boards bench-0 cannot reach: use auto or the "
             "harness's address on the boards' network"),
    ("name empty", "name: ''   # <-\nhost: auto\nboards:\n" + VIRTUAL, "name", "expected a non-empty string, got ''"),
    ("leave_on", "host: auto\nleave_on: yes   # <-\nboards:\n" + VIRTUAL,
     "leave_on", "expected true or false, got 'yes'"),
    ("boards missing", "host: auto   # <-\n", "boards", "missing (a list of the bench's boards)"),
    ("boards empty", "host: auto\nboards: []   # <-\n",
     "boards", "expected a list of at least one board, got an empty list"),
    # -- wifi ----------------------------------------------------------------------------------------------------
    ("wifi missing", "host: auto\nboards:\n" + real().replace("bench-0", "bench-0   # <-"),
     "wifi", "missing: board bench-0 is real and joins Wi-Fi (wifi: {ssid_env: VAR, key_env: VAR})"),
    ("wifi secret in file", "host: auto\nwifi:\n  ssid: bench-net   # <-\nboards:\n" + VIRTUAL,
     "wifi.ssid", "unknown key (did you mean ssid_env? allowed: ssid_env, key_env)"),
    ("wifi env name", "host: auto\nwifi:\n  ssid_env: my net   # <-\n  key_env: K\nboards:\n" + VIRTUAL,
     "wifi.ssid_env", "expected the name of an environment variable (the credentials themselves never go in "
                      "the file), got 'my net'"),
    ("wifi key_env missing", "host: auto\nwifi:   # <-\n  ssid_env: S\nboards:\n" + VIRTUAL,
     "wifi.key_env", "missing (the variable holding the key)"),
    # -- mqtt ----------------------------------------------------------------------------------------------------
    ("mqtt broker", "host: auto\nmqtt: {broker: mosquitto}   # <-\nboards:\n" + VIRTUAL,
     "mqtt.broker", "expected embedded or external, got 'mosquitto'"),
    ("mqtt external host missing", "host: auto\nmqtt:   # <-\n  broker: external\nboards:\n" + VIRTUAL,
     "mqtt.host", "missing (the external broker's address)"),
    ("mqtt embedded host", "host: auto\nmqtt:\n  host: 10.0.0.5   # <-\nboards:\n" + VIRTUAL,
     "mqtt.host", "only for broker: external (the embedded broker runs in the harness)"),
    ("mqtt port", "host: auto\nmqtt:\n  broker: external\n  host: 10.0.0.5\n  port: 70000   # <-\nboards:\n" + VIRTUAL,
     "mqtt.port", "expected an integer 1..65535, got 70000"),
    # -- boards --------------------------------------------------------------------------------------------------
    ("board not a mapping", "host: auto\nboards:\n  - esp32-0   # <-\n",
     "boards[0]", "expected a mapping describing one board, got 'esp32-0'"),
    ("board unknown key", HEAD + VIRTUAL + "    boot_timout: 30   # <-\n",
     "boards[0].boot_timout", "unknown key (did you mean boot_timeout? allowed: name, chip, flash_size, virtual, "
                              "devices, device, baseline, build_dir, patterns, updates, baud, boot_timeout, "
                              "confirm_timeout, port, power, place, tags)"),
    ("board name missing", HEAD + "  - chip: esp32   # <-\n    virtual: true\n",
     "boards[0].name", "missing (the board's name)"),
    ("board name", HEAD + "  - name: ESP32 0   # <-\n    chip: esp32\n    virtual: true\n",
     "boards[0].name", "expected a name of a-z, 0-9, _ and -, got 'ESP32 0'"),
    ("board name twice", HEAD + VIRTUAL + VIRTUAL.replace("emu-0", "emu-0   # <-"),
     "boards[1].name", "'emu-0' is already the name of the board on line 4"),
    ("chip", HEAD + "  - name: a\n    chip: esp32s3   # <-\n    virtual: true\n",
     "boards[0].chip", "expected esp32 or esp8266, got 'esp32s3'"),
    ("flash_size not a power of two", HEAD + VIRTUAL + "    flash_size: 3MB   # <-\n",
     "boards[0].flash_size", "expected a power of two 1MB..16MB (e.g. 4MB), got '3MB'"),
    ("flash_size too big", HEAD + VIRTUAL + "    flash_size: 32MB   # <-\n",
     "boards[0].flash_size", "expected a power of two 1MB..16MB (e.g. 4MB), got '32MB'"),
    ("micropython baseline needs 4MB on esp32", HEAD + VIRTUAL + "    flash_size: 2MB   # <-\n",
     "boards[0].flash_size", "the MicroPython OTA layout needs at least 4MB of flash, not 0x200000 bytes"),
    ("virtual", HEAD + VIRTUAL.replace("true", "1   # <-"), "boards[0].virtual",
     "expected true, false or a mapping {power: lcus, channel: N}, got 1"),
    ("virtual with port", HEAD + VIRTUAL + "    port: {path: /dev/ttyUSB0}   # <-\n",
     "boards[0].port", "not for a virtual board: the harness starts it and owns its port and power"),
    ("virtual with power", HEAD + VIRTUAL + "    power: {kind: lcus, port: /dev/ttyUSB3}   # <-\n",
     "boards[0].power", "not for a virtual board: the harness starts it and owns its port and power"),
    ("device", HEAD + VIRTUAL + "    device: zephyr   # <-\n",
     "boards[0].device",
     "expected one of micropython, esp-idf, esp-idf-anti-rollback, idf-app, esp8266-sdk, got 'zephyr'"),
    ("updates unknown", HEAD + VIRTUAL + "    updates: [firmware, fs]   # <-\n",
     "boards[0].updates[1]", "expected firmware or files, got 'fs'"),
    ("updates twice", HEAD + VIRTUAL + "    updates: [files, files]   # <-\n",
     "boards[0].updates[1]", "'files' is listed twice"),
    ("updates empty", HEAD + VIRTUAL + "    updates: []   # <-\n",
     "boards[0].updates", "expected a list of update kinds (firmware, files), got an empty list"),
    ("firmware updates on esp8266", HEAD + VIRTUAL.replace("esp32", "esp8266") + "    updates:\n      - files\n"
                                                                                 "      - firmware   # <-\n",
     "boards[0].updates[1]", "'firmware' updates are not possible on esp8266 (allowed: files)"),
    ("baud", HEAD + VIRTUAL + "    baud: fast   # <-\n",
     "boards[0].baud", "expected an integer 9600..5000000, got 'fast'"),
    ("boot_timeout", HEAD + VIRTUAL + "    boot_timeout: 0   # <-\n",
     "boards[0].boot_timeout", "expected a number of seconds > 0, got 0"),
    # -- real boards: port -----------------------------------------------------------------------------------------
    ("port missing", HEAD + real(port=None).replace("bench-0", "bench-0   # <-"),
     "boards[0].port", "missing (a real board needs one of path, by_id, location, serial, mac, url)"),
    ("port as a string", HEAD + real(port="port: /dev/ttyUSB0   # <-"),
     "boards[0].port", "expected a mapping with one of path, by_id, location, serial, mac, url, got '/dev/ttyUSB0'"),
    ("port two selectors", HEAD + real(port="port:\n      path: /dev/ttyUSB0\n      serial: '0001'   # <-"),
     "boards[0].port", "expected exactly one of path, by_id, location, serial, mac, url, got path and serial"),
    ("port none", HEAD + real(port="port: {}   # <-"),
     "boards[0].port", "expected exactly one of path, by_id, location, serial, mac, url, got none"),
    ("port unknown selector", HEAD + real(port="port:\n      device: /dev/ttyUSB0   # <-"),
     "boards[0].port.device", "unknown key (allowed: path, by_id, location, serial, mac, url)"),
    ("port location", HEAD + real(port="port: {location: usb1/1-1.4}   # <-"),
     "boards[0].port.location", "expected a USB location such as 1-1.4, got 'usb1/1-1.4'"),
    ("port mac", HEAD + real(port="port: {mac: 24:0a:c4:12:34}   # <-"),
     "boards[0].port.mac", "expected a MAC address such as 24:0a:c4:12:34:56, got '24:0a:c4:12:34'"),
    ("port url", HEAD + real(port="port: {url: 'farm1:4000'}   # <-"),
     "boards[0].port.url", "expected rfc2217://host:port or socket://host:port, got 'farm1:4000'"),
    ("port by_id", HEAD + real(port="port: {by_id: /dev/ttyUSB0}   # <-"),
     "boards[0].port.by_id", "expected a name in /dev/serial/by-id/, got '/dev/ttyUSB0'"),
    ("same port twice", HEAD + real() + real("bench-1", port="port: {path: /dev/ttyUSB0}   # <-",
                                             power="power: {kind: lcus, port: /dev/ttyUSB3, channel: 2}"),
     "boards[1].port", "the same port as board bench-0 (line 4)"),
    # -- real boards: power ----------------------------------------------------------------------------------------
    ("power missing", HEAD + real(power=None).replace("bench-0", "bench-0   # <-"),
     "boards[0].power", "missing (a real board needs a power switch: kind and its options)"),
    ("power kind missing", HEAD + real(power="power:   # <-\n      port: /dev/ttyUSB3"),
     "boards[0].power.kind", "missing (one of lcus, lcus_hid, usbrelay_hid, ft245r, numato, kmtronic, tasmota, "
                             "shelly, uhubctl, ykush, command, virtual)"),
    ("power kind", HEAD + real(power="power:\n      kind: relay   # <-"),
     "boards[0].power.kind", "expected one of lcus, lcus_hid, usbrelay_hid, ft245r, numato, kmtronic, tasmota, "
                             "shelly, uhubctl, ykush, command, virtual, got 'relay'"),
    ("power channel", HEAD + real() + real("bench-1", port="port: {path: /dev/ttyUSB1}",
                                          power="power:\n      kind: lcus\n      port: /dev/ttyUSB3\n"
                                                "      channel: x   # <-"),
     "boards[1].power.channel", "expected an integer 1..8, got 'x'"),
    ("power option unknown", HEAD + real(power="power:\n      kind: lcus\n      port: /dev/ttyUSB3\n"
                                               "      chanel: 2   # <-"),
     "boards[0].power.chanel", "not an option of kind 'lcus' (known: port, channel, channels, baudrate, timeout, "
                               "off_time)"),
    ("power option missing", HEAD + real(power="power:   # <-\n      kind: lcus\n      channel: 2"),
     "boards[0].power.port", "missing, kind 'lcus' needs it"),
    ("power off_time", HEAD + real(power="power:\n      kind: tasmota\n      host: plug-3.lan\n"
                                         "      off_time: -1   # <-"),
     "boards[0].power.off_time", "expected a number of seconds > 0, got -1"),
    ("same switch twice", HEAD + real() + real("bench-1", port="port: {path: /dev/ttyUSB1}",
                                               power="power: {kind: lcus, port: /dev/ttyUSB3, channel: 1}   # <-"),
     "boards[1].power", "the same switch as board bench-0 (line 4): a power cut must hit one board only"),
    # -- baselines -----------------------------------------------------------------------------------------------------
    ("baseline missing", HEAD + real(baseline=None).replace("bench-0", "bench-0   # <-"),
     "boards[0].baseline", "missing (the image files a real board starts from: a list of {offset, file})"),
    ("micropython baseline on a real board", HEAD + real(baseline="baseline: micropython   # <-"),
     "boards[0].baseline", "'micropython' is the built-in baseline of virtual boards; a real board lists its "
                           "image files ({offset, file})"),
    ("baseline word", HEAD + VIRTUAL + "    baseline: circuitpython   # <-\n",
     "boards[0].baseline", "expected micropython or a list of {offset, file}, got 'circuitpython'"),
    ("baseline file missing", HEAD + real(baseline="baseline:\n      - offset: 0x1000\n"
                                                   "        file: firmware/missing.bin   # <-"),
     "boards[0].baseline[0].file", "file not found: firmware/missing.bin"),
    ("baseline offset unaligned", HEAD + real(baseline="baseline:\n      - offset: 0x1001   # <-\n"
                                                       "        file: fw.bin"),
     "boards[0].baseline[0].offset", "expected a flash offset: an integer or a 0x hex string, a multiple of "
                                     "0x1000, got 0x1001"),
    ("baseline offset word", HEAD + real(baseline="baseline:\n      - offset: start   # <-\n        file: fw.bin"),
     "boards[0].baseline[0].offset", "expected a flash offset: an integer or a 0x hex string, a multiple of "
                                     "0x1000, got 'start'"),
    ("baseline part key", HEAD + real(baseline="baseline:\n      - offset: 0x1000\n        path: fw.bin   # <-"),
     "boards[0].baseline[0].path", "unknown key (allowed: offset, file)"),
    ("baseline does not fit", HEAD + real(chip="esp8266", baseline="flash_size: 1MB\n    baseline:\n"
                                                                   "      - offset: 0xff000\n"
                                                                   "        file: fw.bin   # <-"),
     "boards[0].baseline[0].file", "fw.bin at 0xff000 ends at 0x101000, beyond the 1MB flash"),
    ("baseline offset beyond the flash", HEAD + real(chip="esp8266", baseline="flash_size: 1MB\n    baseline:\n"
                                                                            "      - offset: 0x100000   # <-\n"
                                                                            "        file: fw.bin"),
     "boards[0].baseline[0].offset", "0x100000 is beyond the 1MB flash"),
    ("baseline parts overlap", HEAD + real(baseline="baseline:\n      - {offset: 0x1000, file: fw.bin}\n"
                                                    "      - {offset: 0x2000, file: fw.bin}   # <-"),
     "boards[0].baseline[1]", "0x2000..0x4000 overlaps boards[0].baseline[0] (0x1000..0x3000)"),
]


@pytest.fixture
def in_rig_dir(tmp_path, monkeypatch):
    """A working directory with a 8 KiB image, so messages name files as a user in the rig's directory sees them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fw.bin").write_bytes(b"\xff" * 0x2000)
    return tmp_path


@pytest.mark.parametrize(("text", "key", "problem"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_mistake_is_one_line_with_file_line_and_key(in_rig_dir, text, key, problem):
    (in_rig_dir / "rig.yaml").write_text(textwrap.dedent(text))
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "# <-" in row)
    with pytest.raises(RigError) as caught:
        load_rig("rig.yaml")
    assert str(caught.value) == f"rig.yaml:{line}: {key + ': ' if key else ''}{problem}"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

