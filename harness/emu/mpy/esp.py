# esp: raw flash access as the ESP32/ESP8266 ports provide it.
import _hil


def flash_size():
    return _hil.call("flash_size")


def flash_user_start():
    return _hil.call("flash_user_start")


def flash_read(offset, buf_or_len):
    if isinstance(buf_or_len, int):
        return bytearray(_hil.unb64(_hil.call("flash_read", offset, buf_or_len)))
    data = _hil.unb64(_hil.call("flash_read", offset, len(buf_or_len)))
    buf_or_len[: len(data)] = data


def flash_write(offset, buf):
    _hil.call("flash_write", offset, buf)


def flash_erase(sector):
    _hil.call("flash_erase", sector)


def osdebug(level=None, *a):
    pass


def sleep_type(t=None):
    return 0
