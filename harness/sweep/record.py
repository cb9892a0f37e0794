"""Record an update's flash operations on a virtual board, once and uncut.

The virtual board traces every flash operation while asked to (control ``trace``: one
``n kind addr size`` line per operation in ``<flash>.ops``, the bytes of every program in
``<flash>.ops.data``). :func:`record_update` prepares the case, starts a fresh trace with the
device idle, keeps the flash as it is at that moment, triggers the update and waits until the
device is ready on the new version and has confirmed it (or the update ended otherwise: refused,
rolled back), then stops the trace and keeps the flash again. The recording is checked before it
is returned: the operation numbers follow on from the board's counter without a gap, and replaying
every operation on ``before`` gives exactly ``after``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..chips import chip as chip_class
from ..emu.flash import SECTOR_SIZE

if TYPE_CHECKING:
    from ..esp.partition_table import PartitionTable
    from ..scenario import OtaCase

PHASES = ("image", "otadata", "params", "nvs", "filesystem", "other")


@dataclass(frozen=True)
class FlashOp:
    n: int  # the board's absolute operation number (what CutPlan.at_op takes)
    kind: str  # "erase" | "program"
    addr: int
    size: int
    phase: str  # "image", "otadata", "params" (boot_v1.x's system parameters), "nvs", "filesystem", "other"


@dataclass
class Recording:
    device: str
    kind: str
    variant: str
    ops: list[FlashOp]  # every operation from the trigger until the new version is confirmed (or the update ended)
    before: bytes  # the whole flash before the trigger
    after: bytes  # the whole flash when the update is done
    table: PartitionTable | None
    chip: str = "esp32"
    #: the bytes each program operation asked for, by operation number (what it leaves is ``old & data``)
    data: dict[int, bytes] = field(default_factory=dict, repr=False)
    #: the board's operation counter at the trigger: ``ops[0].n == ops_at_trigger + 1``
    ops_at_trigger: int = 0
    #: the file system the device keeps slot records in (offset, size), if any
    files_region: tuple[int, int] | None = None
    old_version: str = ""
    new_version: str = ""
    outcome: str = ""  # how the update ended: "confirmed", "rollback", "refused", ...
    seconds: float = 0.0
    #: the chip's anti-rollback eFuse (SECURE_VERSION) at the trigger
    efuse_secure_version: int = 0

    def target(self, op: FlashOp, old: bytes) -> bytes:
        """What ``op`` leaves in flash when it completes over ``old`` (flash.py's rules: erase -> 0xFF,
        program -> old & data)."""
        if op.kind == "erase":
            return b"\xff" * op.size
        new = int.from_bytes(self.data[op.n], "little")
        return (int.from_bytes(old, "little") & new).to_bytes(op.size, "little")

    def apply(self, flash: bytearray, op: FlashOp) -> None:
        """Apply ``op`` in full to ``flash``."""
        flash[op.addr:op.addr + op.size] = self.target(op, bytes(flash[op.addr:op.addr + op.size]))

    def replay(self, upto: int | None = None) -> bytearray:
        """The flash after the first ``upto`` operations (all of them by default), from ``before``."""
        flash = bytearray(self.before)
        for op in self.ops[:upto]:
            self.apply(flash, op)
        return flash

    def phase_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(PHASES, 0)
        for op in self.ops:
            counts[op.phase] += 1
        return counts


class RecordingError(RuntimeError):
    """The update could not be recorded, or its trace does not account for what the flash became."""


#: a flash region and the phase of every operation in it: (offset, size, phase)
Region = tuple[int, int, str]


def phase_of(addr: int, table: PartitionTable | None, files_region: tuple[int, int] | None = None,
             regions: tuple[Region, ...] = ()) -> str:
    """The phase an operation at ``addr`` belongs to: the phase of the first of ``regions`` it falls in (a layout
    without a partition table: boot_v1.x's user bins are "image", its system parameters "params"), an app
    partition's bulk data ("image"), otadata, an NVS partition, the file system ("filesystem": ``files_region`` or
    a vfs/littlefs/spiffs/fat data partition), else "other"."""
    for offset, size, phase in regions:
        if offset <= addr < offset + size:
            return phase
    if files_region is not None and files_region[0] <= addr < files_region[0] + files_region[1]:
        return "filesystem"
    if table is None:
        return "other"
    for p in table:
        if p.offset <= addr < p.offset + p.size:
            if p.is_app:
                return "image"
            if p.is_otadata:
                return "otadata"
            sub = p.subtype_name
            if sub == "nvs" or p.label == "nvs":
                return "nvs"
            if sub in ("fat", "spiffs", "littlefs") or p.label in ("vfs", "littlefs", "spiffs", "ffat"):
                return "filesystem"
            return "other"
    return "other"


def read_trace(ops_path: str | Path, data_path: str | Path, table: PartitionTable | None,
               files_region: tuple[int, int] | None = None,
               regions: tuple[Region, ...] = ()) -> tuple[list[FlashOp], dict[int, bytes]]:
    """The operations of a trace and the bytes of its programs (lines as harness.emu.chip.FlashTrace writes)."""
    blob = Path(data_path).read_bytes()
    pos = 0
    ops: list[FlashOp] = []
    data: dict[int, bytes] = {}
    for line in Path(ops_path).read_text().splitlines():
        if not line.strip():
            continue
        n_text, kind, addr_text, size_text = line.split()
        n, addr, size = int(n_text), int(addr_text), int(size_text)
        if kind == "program":
            if pos + size > len(blob):
                raise RecordingError(f"trace {data_path}: the bytes of operation {n} are missing")
            data[n] = blob[pos:pos + size]
            pos += size
        elif kind != "erase" or size != SECTOR_SIZE:
            raise RecordingError(f"trace {ops_path}: unexpected operation {line!r}")
        ops.append(FlashOp(n, kind, addr, size, phase_of(addr, table, files_region, regions)))
    return ops, data


def device_regions(device) -> tuple[Region, ...]:
    """The regions a device without a partition table names: boot_v1.x's user1 and user2 slots ("image") and its
    system parameters (both copies and the flag sector: "params"), for a device that has such a ``layout()``."""
    layout_of = getattr(device, "layout", None)
    if not callable(layout_of):
        return ()
    layout = layout_of()
    sector = SECTOR_SIZE
    return ((layout.user1, layout.slot_size, "image"), (layout.user2, layout.slot_size, "image"),
            (layout.params[0], sector, "params"), (layout.params[1], sector, "params"), (layout.flag, sector, "params"))


def _settled_ops(control, wait: float = 0.3, limit: float = 10.0) -> int:
    """The board's operation counter once no operation has happened for ``wait`` seconds."""
    ops = control.stats()["ops"]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(wait)
        again = control.stats()["ops"]
        if again == ops:
            return ops
        ops = again
    raise RecordingError(f"the board's flash never went quiet ({ops} operations, still writing after {limit} s)")


def record_update(case: OtaCase, variant: str = "next", *, prepare: bool = True, timeout: float = 300.0) -> Recording:
    """Run ``case``'s update to ``variant`` once, uncut, on its virtual board and record every flash operation.

    ``prepare``: put the case in its baseline state first (a restored snapshot after the first time).
    ``before`` is the flash at the trigger, with the device idle (what the prepared snapshot holds, plus
    anything the boot wrote since).
    """
    board = case.board
    if board.virtual is None:
        raise RecordingError(f"board {board.name} is not virtual: only a virtual board's flash can be traced")
    if prepare:
        case.prepare()
    pub = case.publish(variant)
    control = board.virtual.control
    flash_path = Path(board.virtual.info["flash_file"])
    table = board.partition_table() if chip_class(board.chip).has_partition_table else None
    files_region = case.device.files_region()
    if files_region is None and table is not None:
        vfs = table.find("vfs")
        files_region = (vfs.offset, vfs.size) if vfs is not None else None
    regions = device_regions(case.device) if table is None else ()

    ops_at = _settled_ops(control)
    efuse = board.efuse_secure_version() or 0
    seq = control.status()["event_seq"]
    reply = control.trace(True)
    control.wait_event("trace", since=seq, timeout=10, on=True)
    before = flash_path.read_bytes()
    if control.stats()["ops"] != ops_at:
        control.trace(False)
        raise RecordingError(f"board {board.name} wrote its flash while the recording started; try again")
    t0 = time.monotonic()
    try:
        mark = case.trigger(pub)
        end = case.expect(("switch", "refused"), since=mark, timeout=timeout)
        outcome = end.name
        if end.name == "switch":
            ready = case.ready(since=end.at, timeout=timeout)
            running = case.running_version(ready)
            if case.device.confirms_updates:
                done = case.expect(("confirmed", "rollback"), since=end.at, timeout=timeout)
                outcome = done.name
            else:  # the loader takes the new bin for good once it boots (boot_v1.x), or falls back first
                outcome = "rollback" if case.board.console.events(end.at, "rollback") else "confirmed"
            if outcome == "confirmed" and running != pub.version:
                raise RecordingError(f"{case.device.kind}: version {running} runs after the update, "
                                     f"not {pub.version}")
        _settled_ops(control)
        seconds = time.monotonic() - t0
    finally:
        control.trace(False)
    after = flash_path.read_bytes()
    ops, data = read_trace(reply["ops"], reply["data"], table, files_region, regions)
    ops = [op for op in ops if op.n > ops_at]
    if case.kind == "files":
        ops = file_data_as_image(ops, data, [case.http.body(path) for path in pub.paths])
    rec = Recording(device=case.device.kind, kind=case.kind, variant=variant, ops=ops, before=before, after=after,
                    table=table, chip=board.chip, data=data, ops_at_trigger=ops_at, files_region=files_region,
                    old_version=case.baseline_version, new_version=pub.version, outcome=outcome,
                    seconds=round(seconds, 3), efuse_secure_version=efuse)
    check_recording(rec)
    return rec


def file_data_as_image(ops: list[FlashOp], data: dict[int, bytes], contents: list[bytes]) -> list[FlashOp]:
    """File-system operations that write the update's own bytes are its bulk data ("image"), like an app slot's:
    a program whose bytes (past the block's first 32, where littlefs keeps its skip-list pointers) are part of
    a published file, and an erase whose sector is next programmed with such bytes. Everything else in the file
    system (directory pairs, the slot record, renames) stays "filesystem": each of those is a cut point."""
    if not contents:
        return ops
    def carries_content(op: FlashOp) -> bool:
        body = data.get(op.n, b"")
        if len(body) >= 96:
            body = body[32:]
        return len(body) >= 64 and any(body in content for content in contents)

    phases = [op.phase for op in ops]
    for i, op in enumerate(ops):
        if op.phase == "filesystem" and op.kind == "program" and carries_content(op):
            phases[i] = "image"
    for i, op in enumerate(ops):
        if op.phase != "filesystem" or op.kind != "erase":
            continue
        sector = op.addr - op.addr % SECTOR_SIZE
        later = next((j for j in range(i + 1, len(ops)) if ops[j].kind == "program"
                      and sector <= ops[j].addr < sector + SECTOR_SIZE), None)
        if later is not None and phases[later] == "image":
            phases[i] = "image"
    return [op if phase == op.phase else dataclasses.replace(op, phase=phase) for op, phase in zip(ops, phases)]


def check_recording(rec: Recording) -> None:
    """Raise :class:`RecordingError` unless the operations are numbered without gaps from ``ops_at_trigger + 1``
    and replaying them on ``before`` gives ``after``."""
    for i, op in enumerate(rec.ops):
        if op.n != rec.ops_at_trigger + 1 + i:
            raise RecordingError(f"the trace skips from operation {rec.ops_at_trigger + i} to {op.n}")
    if bytes(rec.replay()) != rec.after:
        raise RecordingError("replaying the recorded operations on the flash before the update does not give the "
                             "flash after it")
