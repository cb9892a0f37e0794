# machine for the virtual board: what the ESP32/ESP8266 ports offer that OTA code uses.
import _hil

# The reset causes' values come from the API table (the ESP8266 uses the SDK's numbers);
# the chip process reports the cause in the port's numbering.
_cause = _hil.call("machine_reset_cause")


def reset():
    _hil.call("machine_reset")


def soft_reset():
    raise SystemExit


def reset_cause():
    return _cause


def unique_id():
    return _hil.unb64(_hil.call("machine_unique_id"))


def freq(hz=None):
    if hz is None:
        return _hil.call("machine_freq")


def idle():
    _hil.call("time_sleep_ms", 1)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def deepsleep(ms=0):
    _hil.call("machine_deepsleep", ms)


def lightsleep(ms=0):
    _hil.call("time_sleep_ms", ms)


sleep = lightsleep


def wake_reason():
    return 0


class WDT:
    # The watchdog resets the chip if feed() is not called within the timeout.
    def __init__(self, id=0, timeout=5000):
        _hil.call("wdt_start", timeout)

    def feed(self):
        _hil.call("wdt_feed")


class Pin:
    # GPIOs exist but drive nothing on a virtual board (constants: the API table).
    def __init__(self, id, mode=-1, pull=-1, value=None, **kw):
        self._id = id
        self._v = 0 if value is None else value

    def init(self, *a, **kw):
        pass

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0

    def toggle(self):
        self._v ^= 1

    def irq(self, *a, **kw):
        return None


class RTC:
    # RTC memory survives resets and deep sleep, not a power cut.
    def __init__(self, id=0):
        pass

    def datetime(self, datetimetuple=None):
        # (year, month, day, weekday, hours, minutes, seconds, subseconds), as the ports have it.
        time = _hil.public("time")
        if datetimetuple is None:
            t = time.gmtime()
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        y, mo, d, _wd, h, mi, s = tuple(datetimetuple)[:7]
        _hil.call("rtc_set", time.mktime((y, mo, d, h, mi, s, 0, 0)))

    def memory(self, data=None):
        if data is None:
            return _hil.unb64(_hil.call("rtc_memory_get"))
        _hil.call("rtc_memory_set", data)


class Timer:
    # Callbacks need a scheduler the virtual board does not model; timers are inert.
    def __init__(self, id=0, **kw):
        pass

    def init(self, **kw):
        pass

    def deinit(self):
        pass
