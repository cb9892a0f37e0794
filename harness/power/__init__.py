"""Power switches behind one :class:`PowerSwitch` interface, and the factory that builds them from a rig file.

``make_switch(kind, options, name)`` checks every option before any device is
touched: an unknown kind, an unknown, missing or bad option raises
:class:`PowerSwitchConfigError` naming it (``power.channel: expected an
integer 1..8, got 'x'``). Hardware libraries (``hid`` from hidapi, pyftdi) are
imported only when a switch that needs them is created: ``pip install
'esp-ota-hil[hw]'``.

Every kind takes ``off_time``: seconds the supply stays off in ``cycle()``
(default 1, 0.05 for ``virtual``). Channels are numbered as printed on the
board: from 1, except Numato (from 0) and Shelly (switch id from 0).

=============  ===========================================================================================
kind           options (required in bold)
=============  ===========================================================================================
lcus           **port** (pyserial URL), channel 1-8, channels (board size 1/2/4/8; 2+ enables state),
               baudrate (9600), timeout (1 s)
lcus_hid       channel 1-8, path (HID path) or serial (USB serial), product_id (any 0x5131 device)
usbrelay_hid   channel 1-8, serial (the board's 5-character id) or path (HID path)
ft245r         channel 1-8 (pin D0-D7), **url** (pyftdi URL) or **serial** (FTDI serial), invert (false)
numato         **port**, channel 0-31, baudrate (19200), timeout (1 s)
kmtronic       **port**, channel 1-8, status (single/all/none), relays (8), baudrate (9600), timeout (1 s)
tasmota        **host**, channel 1-32 (Power<n>), username (admin), password, timeout (3 s)
shelly         **host**, generation (2; 1 for the REST API), channel 0-15, username (Gen1 only),
               password, auto_off (seconds: the plug turns itself off unless refreshed), timeout (3 s)
uhubctl        **location**, **port**, repeat_off, uhubctl (command, default ``uhubctl``), timeout (10 s)
ykush          port 1-3 (required except on a YKUSH XS), serial, board (ykush/ykush3/ykushxs),
               ykushcmd (command, default ``ykushcmd``), timeout (10 s)
command        **cmd_on**, **cmd_off**, cmd_state (prints on/off), cmd_cycle, timeout (30 s)
virtual        **control** (the virtual board's ``tcp://host:port`` control endpoint)
=============  ===========================================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ._options import as_seconds, as_text
from .base import PowerSwitch, PowerSwitchConfigError, PowerSwitchError
from .command import CommandSwitch
from .ft245r import Ft245rSwitch
from .kmtronic import KmtronicSwitch
from .lcus import LcusSwitch
from .lcus_hid import LcusHidSwitch
from .numato import NumatoSwitch
from .shelly import ShellyGen1Switch, ShellyGen2Switch, shelly
from .tasmota import TasmotaSwitch
from .uhubctl import UhubctlSwitch
from .usbrelay_hid import UsbRelayHidSwitch
from .virtual import VirtualPowerSwitch
from .ykush import YkushSwitch


def _virtual(control: str, name: str = "") -> VirtualPowerSwitch:
    url = as_text(control, "control")
    if not url.startswith("tcp://") or not url.rpartition(":")[2].isdigit():
        raise PowerSwitchConfigError(f"power.control: expected a tcp://host:port URL, got {control!r}")
    return VirtualPowerSwitch(url, name=name)


#: kind -> the class (or function) whose keyword parameters are the kind's options
BUILDERS: dict[str, Callable[..., PowerSwitch]] = {
    "lcus": LcusSwitch,
    "lcus_hid": LcusHidSwitch,
    "usbrelay_hid": UsbRelayHidSwitch,
    "ft245r": Ft245rSwitch,
    "numato": NumatoSwitch,
    "kmtronic": KmtronicSwitch,
    "tasmota": TasmotaSwitch,
    "shelly": shelly,
    "uhubctl": UhubctlSwitch,
    "ykush": YkushSwitch,
    "command": CommandSwitch,
    "virtual": _virtual,
}

KINDS = tuple(BUILDERS)


def make_switch(kind: str, options: Mapping[str, Any] | None, name: str = "") -> PowerSwitch:
    """The switch of ``kind`` configured by ``options`` (a rig file's ``power:`` mapping, without ``kind``)."""
    builder = BUILDERS.get(kind)
    if builder is None:
        raise PowerSwitchConfigError(f"power.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    options = dict(options or {})
    off_time = options.pop("off_time", None)
    parameters = {p: v for p, v in inspect.signature(builder).parameters.items() if p != "name"}
    for option in options:
        if option not in parameters:
            known = ", ".join([*parameters, "off_time"])
            raise PowerSwitchConfigError(f"power.{option}: not an option of kind {kind!r} (known: {known})")
    for option, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and option not in options:
            raise PowerSwitchConfigError(f"power.{option}: missing, kind {kind!r} needs it")
    hold_off = None if off_time is None else as_seconds(off_time, "off_time")
    switch = builder(**options, name=name)
    if hold_off is not None:
        switch.default_off_time = hold_off
    return switch


__all__ = [
    "KINDS", "CommandSwitch", "Ft245rSwitch", "KmtronicSwitch", "LcusHidSwitch", "LcusSwitch", "NumatoSwitch",
    "PowerSwitch", "PowerSwitchConfigError", "PowerSwitchError", "ShellyGen1Switch", "ShellyGen2Switch",
    "TasmotaSwitch", "UhubctlSwitch", "UsbRelayHidSwitch", "VirtualPowerSwitch", "YkushSwitch", "make_switch",
]
