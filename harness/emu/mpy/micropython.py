# micropython: mem_info with the board's heap, and the console's interrupt character.
import _hil
import _unix


def mem_info(verbose=None):
    gc = _hil.public("gc")
    used = gc.mem_alloc()
    free = gc.mem_free()
    print("stack: %d out of %d" % (736, _hil.plan["stack"]))
    print("GC: total: %d, used: %d, free: %d" % (used + free, used, free))
    print(" No. of 1-blocks: %d, 2-blocks: %d, max blk sz: %d, max free sz: %d" % (0, 0, 0, free // 16))


def kbd_intr(chr):
    # The console's interrupt character: -1 lets a Ctrl-C through as data.
    _hil.call("kbd_intr", int(chr))


def stack_use():
    return 736


def qstr_info(verbose=None):
    print("qstr pool: n_pool=1, n_qstr=0, n_str_data_bytes=0, n_total_bytes=0")


_m = _unix["micropython"]
const = _m.const


def alloc_emergency_exception_buf(size):
    pass
