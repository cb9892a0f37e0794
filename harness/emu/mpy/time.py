# time with sleeps the board can interrupt (Ctrl-C on the console, a watchdog).
import _hil
from _time_builtin import (  # noqa: F401  the interpreter's own clocks
    gmtime,
    localtime,
    mktime,
    ticks_add,
    ticks_cpu,
    ticks_diff,
    ticks_ms,
    ticks_us,
    time,
    time_ns,
)


def sleep_ms(ms):
    if ms > 0:
        _hil.call("time_sleep_ms", int(ms))


def sleep_us(us):
    if us > 0:
        _hil.call("time_sleep_ms", us / 1000)


def sleep(s):
    if s > 0:
        _hil.call("time_sleep_ms", s * 1000)
