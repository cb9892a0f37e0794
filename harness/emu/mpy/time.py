# time with sleeps the board can interrupt (Ctrl-C on the console, a watchdog), the ports'
# epoch and the chip's RTC; the tick counters are the interpreter's own (put in by _boot).
import _hil
import _unix


def sleep_ms(ms):
    if ms > 0:
        _hil.call("time_sleep_ms", int(ms))


def sleep_us(us):
    if us > 0:
        _hil.call("time_sleep_ms", us / 1000)


def sleep(s):
    if s > 0:
        _hil.call("time_sleep_ms", s * 1000)


# The clock: the chip's RTC, counting from the ports' epoch (2000-01-01) and starting at zero when
# the chip starts, until something sets it (machine.RTC().datetime(), ntptime). No time zone.
_EPOCH_2000 = 946684800
_unix_time = _unix["time"]


def time():
    return int(_hil.call("rtc_seconds"))


def time_ns():
    return int(_hil.call("rtc_seconds") * 1000000) * 1000


def gmtime(secs=None):
    return _unix_time.gmtime((time() if secs is None else int(secs)) + _EPOCH_2000)


localtime = gmtime


def mktime(t):
    return _unix_time.mktime(t) - _EPOCH_2000
