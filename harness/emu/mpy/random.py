# random, as the ESP ports provide it (hardware RNG on a chip; the host's here). The
# ESP8266 port has only getrandbits and seed: the API table leaves the rest out there.
import _hil


def getrandbits(n):
    if not 0 < n <= 32:
        raise ValueError("bits must be 32 or less")
    return _hil.call("random_bits", n)


def randrange(start, stop=None, step=1):
    if stop is None:
        start, stop = 0, start
    width = (stop - start + step - 1) // step
    if width <= 0:
        raise ValueError("empty range")
    return start + step * _hil.call("random_below", width)


def randint(a, b):
    return randrange(a, b + 1)


def choice(seq):
    return seq[randrange(len(seq))]


def random():
    return getrandbits(32) / 4294967296


def uniform(a, b):
    return a + (b - a) * random()


def seed(n=None):
    pass


def __init__():
    pass
