# gc with the real board's heap figures: what device code has allocated and what is left
# of the heap a board of the release gives it (the interpreter's own heap is larger).
import _hil
import _unix

_gc = _unix["gc"]


def mem_alloc():
    return max(0, _gc.mem_alloc() - _hil._base)


def _total(used):
    # The ESP32's heap starts small and grows by adding areas from the IDF heap as
    # allocations need them (py/gc.c gc_try_add_heap); the ESP8266's is one static array.
    plan = _hil.plan
    total = plan["initial"]
    for block in plan.get("grow", ()):
        if used < total:
            break
        total += min(block, max(total, used - total + 2048))
    return total


def mem_free():
    used = mem_alloc()
    return max(0, _total(used) - used)
