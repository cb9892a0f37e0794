# Runs ON a board (virtual or real, stock MicroPython): prints, as one JSON line, every
# module name device code can import among CANDIDATES, with each attribute's kind and value
# and each class's members, and which u-aliases import. The parity test compares it with
# the release's API table. Only names every port has are used here.
import json

CANDIDATES = []  # filled in by the test


def _describe(v):
    if isinstance(v, bool):
        return ["const", v]
    if isinstance(v, int):
        return ["int", v]
    if isinstance(v, str):
        return ["str", v]
    if isinstance(v, type):
        members = {}
        for n in dir(v):
            try:
                m = getattr(v, n)
            except Exception:  # noqa: BLE001 - an attribute that exists but cannot be read
                m = None
            members[n] = m if (isinstance(m, int) and not isinstance(m, bool)) else None
        return ["class", members]
    if type(v).__name__ == "module":
        return ["module", None]
    return ["object", None]


def dump():
    # One line per module: a real ESP8266 has too little heap to hold them all at once.
    for name in CANDIDATES:
        try:
            mod = __import__(name)
        except ImportError:
            print("DUMP " + name + " null")
            continue
        print("DUMP " + name + " {")
        first = True
        for attr in dir(mod):
            print(("" if first else ",") + json.dumps(attr) + ":" + json.dumps(_describe(getattr(mod, attr))))
            first = False
        print(("" if first else ",") + '"__module_id__":["int",%d]}' % id(mod))


dump()
