# esp: raw flash access as the ESP32/ESP8266 ports provide it.
import _hil


def flash_size():
    return _hil.call("flash_size")


def flash_user_start():
    return _hil.call("flash_user_start")


def flash_read(offset, buf_or_len):
    if isinstance(buf_or_len, int):
        buf = bytearray(buf_or_len)
        _hil.call_into("flash_read_into", buf, offset, buf_or_len)
        return buf
    _hil.read(buf_or_len, offset, len(buf_or_len))


def flash_write(offset, buf):
    _hil.write(1, buf, offset)


def flash_erase(sector):
    _hil.write(2, b"", sector)


def osdebug(level=None, *a):
    pass


def sleep_type(t=None):
    return 0


def flash_id():
    return _hil.call("flash_id")


def deepsleep(time_us=0, *a):
    _hil.call("machine_deepsleep", time_us // 1000)


def freemem():
    return _hil.public("gc").mem_free()


def meminfo():
    gc = _hil.public("gc")
    print("data  : 0x3ffe8000 ~ 0x3ffe8000, len: 0\nheap  : 0x3ffe8000 ~ 0x3ffe8000, len: %d" % gc.mem_free())
