"""The bootloader-level power-cut sweep on boot_v1.x (an ESP8266 in the SDK's FOTA layout).

A synthetic update on the 4 MB 512+512 map: user1 runs 1.0.0, user2 still holds 0.9.0 from an earlier
update; the update writes 1.0.1 into user2 and then switches with the protected parameter save (the new
parameters into the copy that is not current, then the flag sector). Written that way every cut starts the
old or the new bin, whole. Switched before the bin is written ("point at user2, then fill it"), a cut
between the two starts the stale 0.9.0, which the sweep reports. (A half-written bin cannot start: its E9
image comes last, so boot_v1.x falls back to user1 from it.)
"""

from __future__ import annotations

from harness.emu.flash import PAGE_SIZE, SECTOR_SIZE
from harness.esp import esp8266_image as sdk
from harness.sweep import FlashOp, Recording
from harness.sweep.boot_sweep import sweep_boot

LAYOUT = sdk.FotaLayout.for_map_code(4)


class Ops:
    def __init__(self) -> None:
        self.ops: list[FlashOp] = []
        self.data: dict[int, bytes] = {}

    def _add(self, kind: str, addr: int, size: int, phase: str) -> int:
        self.ops.append(FlashOp(len(self.ops) + 1, kind, addr, size, phase))
        return len(self.ops)

    def erase(self, addr: int, length: int, phase: str) -> None:
        for a in range(addr, addr + length, SECTOR_SIZE):
            self._add("erase", a, SECTOR_SIZE, phase)

    def program(self, addr: int, data: bytes, phase: str) -> None:
        for pos in range(0, len(data), PAGE_SIZE):
            self.data[self._add("program", addr + pos, len(data[pos:pos + PAGE_SIZE]), phase)] = \
                data[pos:pos + PAGE_SIZE]

    def save(self, write: sdk.SectorWrite) -> None:
        self.erase(write.address, SECTOR_SIZE, "params")
        self.program(write.address, write.data, "params")


def baseline() -> bytes:
    flash = bytearray(b"\xff" * LAYOUT.flash_size)
    for part in sdk.sdk_baseline("4MB", 4, sdk.build_user_bin(1, "1.0.0", irom_size=0x3000)):
        flash[part.offset:part.offset + len(part.data)] = part.data
    stale = sdk.build_user_bin(2, "0.9.0", irom_size=0x3000)
    flash[LAYOUT.user2:LAYOUT.user2 + len(stale)] = stale
    # the loader's first boot has been: fresh parameters in copy 0, the flag naming it
    for write in sdk.protected_save_writes(0xFF, sdk.fresh_boot_params(sdk.BOOT_V1_PARAM_VERSION), LAYOUT):
        flash[write.address:write.address + SECTOR_SIZE] = write.data.ljust(SECTOR_SIZE, b"\xff")
    return bytes(flash)


def update(atomic: bool) -> Recording:
    before = baseline()
    ops = Ops()
    new = sdk.build_user_bin(2, "1.0.1", irom_size=0x3000)
    ops.erase(LAYOUT.user2, -(-len(new) // SECTOR_SIZE) * SECTOR_SIZE, "image")
    ops.program(LAYOUT.user2, new, "image")
    flag = before[LAYOUT.flag]
    current = sdk.BootParams.decode(before[LAYOUT.params[sdk.active_param_copy(flag)]:][:32])
    params = sdk.BootParams(usr_bin=1, boot_status=1, raw=current.raw).encode()
    writes = sdk.protected_save_writes(flag, params, LAYOUT)
    if not atomic:
        # the parameters switched first, the bin written after
        ops.ops, ops.data = [], {}
        for write in writes:
            ops.save(write)
        ops.erase(LAYOUT.user2, -(-len(new) // SECTOR_SIZE) * SECTOR_SIZE, "image")
        ops.program(LAYOUT.user2, new, "image")
    else:
        for write in writes:
            ops.save(write)
    rec = Recording("synthetic-sdk", "firmware", "next", ops.ops, before, b"", None, chip="esp8266", data=ops.data,
                    old_version="1.0.0", new_version="1.0.1")
    rec.after = bytes(rec.replay())
    return rec


def test_the_protected_save_after_the_bin_boots_old_or_new_after_every_cut():
    result = sweep_boot(update(atomic=True))
    assert result.applicable and result.ok, result.summary()
    assert (result.old, result.new) == ("user1 (1.0.0)", "user2 (1.0.1)")
    assert result.outcomes["new"] > 0 and result.outcomes["failed"] == 0
    assert set(result.by_phase) == {"image", "params"}


def test_parameters_switched_before_the_bin_is_whole_are_caught():
    result = sweep_boot(update(atomic=False))
    assert not result.ok
    # once the flag sector is being rewritten (erased: 0xFF names copy 1 too) the new copy is current and names
    # user2, which still holds 0.9.0
    first = result.failures[0]
    assert (first.index, first.phase, first.kind, first.chose, first.version) == (3, "params", "erase", "user2",
                                                                                  "0.9.0"), result.summary()
    assert "usr_bin=1 boot_status=1" in first.why and "op 3 (#3, erase 0x3ff000, params)" in result.summary()
    # until the first erase of user2 lands; from then on boot_v1.x cannot start it and falls back to user1
    assert [(f.index, f.policy) for f in result.failures if f.phase == "image"] == [(5, "none")]
