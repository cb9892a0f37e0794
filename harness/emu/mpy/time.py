# time with sleeps the board can interrupt (Ctrl-C on the console, a watchdog); the clocks
# are the interpreter's own (put in by _boot).
import _hil


def sleep_ms(ms):
    if ms > 0:
        _hil.call("time_sleep_ms", int(ms))


def sleep_us(us):
    if us > 0:
        _hil.call("time_sleep_ms", us / 1000)


def sleep(s):
    if s > 0:
        _hil.call("time_sleep_ms", s * 1000)
