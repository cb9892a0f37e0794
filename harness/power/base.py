"""The small interface every power switch implements.

A power switch turns one board's supply on and off. ``cycle`` holds the supply
off long enough for the board to discharge before turning it on again. Devices
that can report their output implement :meth:`PowerSwitch.state`; others return
``None`` (unknown) rather than guessing.
"""

from __future__ import annotations

import abc
import time

from ..errors import PowerFailure


class PowerSwitchError(PowerFailure):
    """A switch did not do what it was asked; the message names the device and what was expected."""


class PowerSwitchConfigError(PowerSwitchError, ValueError):
    """A rig file asked for a switch that cannot exist (unknown kind, missing or bad option).

    It is both a :class:`PowerSwitchError` (so a bench script that only catches
    switch failures still sees it) and a :class:`ValueError` (it is a bad value,
    found before any device is touched).
    """


def missing_library(where: str, package: str, error: ImportError) -> PowerSwitchError:
    """The error for an optional hardware library that is not installed (``hid``, ``pyftdi``)."""
    return PowerSwitchError(f"{where}: needs the {package} package: pip install 'esp-ota-hil[hw]' ({error})")


class PowerSwitch(abc.ABC):
    #: seconds the supply stays off in :meth:`cycle` unless told otherwise
    default_off_time: float = 1.0

    def __init__(self, name: str = ""):
        self.name = name or type(self).__name__

    @abc.abstractmethod
    def on(self) -> None:
        """Power the board."""

    @abc.abstractmethod
    def off(self) -> None:
        """Cut the board's power."""

    def state(self) -> bool | None:
        """True if powered, False if not, None if the device cannot tell."""
        return None

    def cycle(self, off_time: float | None = None) -> None:
        """Off, wait ``off_time`` (default :attr:`default_off_time`), on."""
        self.off()
        time.sleep(self.default_off_time if off_time is None else off_time)
        self.on()

    def close(self) -> None:  # noqa: B027 - optional hook, most switches hold nothing open
        """Release the device (ports, sessions). The output stays as it is."""

    def __enter__(self) -> "PowerSwitch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
