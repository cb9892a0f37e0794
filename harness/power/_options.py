"""Checks for switch options, so a typo in a rig file fails before any relay clicks.

Rig files are YAML and sometimes carry values from environment variables, so
numbers and booleans may arrive as strings; they are converted here once, with
an error such as ``power.channel: expected an integer 1..8, got 'x'`` instead
of a ``TypeError`` deep inside a driver.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import PowerSwitchConfigError

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def config_error(option: str, expected: str, value: object) -> PowerSwitchConfigError:
    return PowerSwitchConfigError(f"power.{option}: expected {expected}, got {value!r}")


def as_int(value: object, option: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``; strings may be decimal or ``0x`` hex (USB ids)."""
    expected = f"an integer {low}..{high}"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        for base in (10, 0):
            try:
                number = int(text, base)
                break
            except ValueError:
                continue
    if number is None or not low <= number <= high:
        raise config_error(option, expected, value)
    return number


def as_seconds(value: object, option: str) -> float:
    """A positive, finite number of seconds."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not 0 < seconds < float("inf"):
        raise config_error(option, "a number of seconds > 0", value)
    return seconds


def as_bool(value: object, option: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise config_error(option, "true or false", value)


def as_text(value: object, option: str) -> str:
    """A non-empty string (port, host, location, serial number...)."""
    if not isinstance(value, str) or not value.strip():
        raise config_error(option, "a non-empty string", value)
    return value.strip()


def as_choice(value: object, option: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise config_error(option, f"one of {', '.join(choices)}", value)
    return value


def one_of(option_a: str, value_a: object, option_b: str, value_b: object) -> None:
    """Two ways of naming the same device: at most one may be given."""
    if value_a is not None and value_b is not None:
        raise PowerSwitchConfigError(f"power.{option_a}, power.{option_b}: expected one of them, got both")
