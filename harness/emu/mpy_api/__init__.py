"""The public API of the MicroPython release a virtual board claims to run.

``v1.27.0.json`` lists, per ESP port, every module, class member and constant that stock
firmware offers (extracted from MicroPython's C sources and micropython-lib at the tag; its
layout is described in ``shared/specs/micropython-api/README.md``). The port layer builds
the modules device code can import from this table and nothing else, so a virtual board
offers no name a real one lacks; the parity test compares a running board with it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ...chips import chip as chip_class

RELEASE = "v1.27.0"
TABLE = Path(__file__).with_name(f"{RELEASE}.json")

# What a virtual board cannot offer, by module: peripherals it has no model of, radio
# stacks, and what would reach the host (raw memory access). Everything else in the table
# must be there; the parity test holds the port layer to this list.
ABSENT = {
    "_espnow": "*",
    "_onewire": "*",
    "_webrepl": "*",
    "bluetooth": "*",
    "btree": "*",
    "esp": {"apa102_write", "check_fw", "esf_free_bufs", "gpio_matrix_in", "gpio_matrix_out", "malloc", "free",
            "set_native_code_location", "dht_readinto"},
    "esp32": {"NVS", "PCNT", "RMT", "ULP", "gpio_deep_sleep_hold", "raw_temperature", "wake_on_ext0",
              "wake_on_ext1", "wake_on_gpio", "wake_on_touch", "wake_on_ulp"},
    "machine": {"ADC", "ADCBlock", "Counter", "DAC", "Encoder", "I2C", "I2S", "PWM", "SDCard", "SPI", "Signal",
                "SoftI2C", "SoftSPI", "TouchPad", "UART", "bitstream", "dht_readinto", "mem8", "mem16", "mem32",
                "time_pulse_us"},
    "network": {"LAN", "PPP"},
    # Classes the interpreter build does not carry.
    "io": {"BufferedWriter"},
    "uctypes": {"bytearray_at", "bytes_at"},
    "socket": {"callback", "print_pcbs", "reset"},
    "lwip": {"callback", "print_pcbs", "reset"},
}


@lru_cache(maxsize=None)
def _table() -> dict:
    return json.loads(TABLE.read_text())


def port_table(chip: str) -> dict:
    """The raw table of one port (``esp32`` or ``esp8266``)."""
    return _table()["ports"][chip]


def _entry(name: str, spec: dict) -> list:
    kind = spec["kind"]
    if kind in ("int", "const") and spec.get("value") is not None:
        return [name, "v", spec["value"]]
    if kind == "str":
        return [name, "s", spec.get("value")]
    if kind == "class":
        members = spec.get("members") or {}
        if not isinstance(members, dict):
            members = {m: {"kind": "function"} for m in members}
        return [name, "c", {m: (s.get("value") if s.get("kind") == "int" else None) for m, s in members.items()}]
    return [name, "o", None]


@lru_cache(maxsize=None)
def port_spec(chip: str) -> str:
    """The compact form the board's port layer builds its modules from (JSON text).

    ``modules``: name -> [[attr, kind, value]]: kind "v" a constant with its value, "s" a
    string, "c" a class (value: its members, with the value of each
    integer constant, else null), "o" anything else (function, object),
    which the port layer must supply. Names listed in ABSENT are left out.
    """
    port = port_table(chip)
    modules = {}
    for mod, spec in port["modules"].items():
        absent = ABSENT.get(mod, ())
        if absent == "*":
            continue
        modules[mod] = [_entry(n, s) for n, s in sorted(spec["names"].items()) if n not in absent]
    return json.dumps({
        "release": RELEASE,
        "platform": port["sys_platform"],
        "board": port["board_name"],
        "mcu": port["mcu_name"],
        "builtin": sorted(m for m in port["builtin_modules"] if ABSENT.get(m) != "*"),
        "extensible": sorted(port["extensible"]),
        "frozen": sorted(port["frozen_modules"]),
        "same": chip_class(chip).micropython.same_module,
        "modules": modules,
    }, separators=(",", ":"))


def errno_numbers(chip: str) -> dict[str, int]:
    """The port's errno values by name (newlib's on the ESP32, lwIP's on the ESP8266)."""
    names = port_table(chip)["modules"]["errno"]["names"]
    return {n: s["value"] for n, s in names.items() if s["kind"] == "int"}
