"""Table-driven tests of the ESP-IDF bootloader model (harness.esp.boot.select_boot)."""

from dataclasses import dataclass, field

import pytest

from harness.esp.boot import BootDecision, OtadataWrite, SlotCheck, apply_writes, select_boot
from harness.esp.otadata import OtaSelectEntry, OtaState, otadata_region
from harness.esp.partition_table import Partition, PartitionTable, idf_two_ota, micropython_esp32_ota

V, N, P, INV, A, U = (OtaState.VALID, OtaState.NEW, OtaState.PENDING_VERIFY, OtaState.INVALID, OtaState.ABORTED,
                    OtaState.UNDEFINED)
MP = micropython_esp32_ota()  # ota_0, ota_1, no factory
IDF = idf_two_ota()  # factory, ota_0, ota_1
THREE = PartitionTable((
    Partition("otadata", 1, 0, 0xD000, 0x2000),
    Partition("ota_0", 0, 0x10, 0x10000, 0x100000),
    Partition("ota_1", 0, 0x11, 0x110000, 0x100000),
    Partition("ota_2", 0, 0x12, 0x210000, 0x100000),
))
WITH_TEST = PartitionTable(MP.entries[:5] + (Partition("test", 0, 0x20, 0x310000, 0x80000),))
NO_OTADATA = PartitionTable((Partition("factory", 0, 0, 0x10000, 0x100000), Partition("ota_0", 0, 0x10, 0x110000,
                                                                                       0x100000)))
BLANK = None


def E(seq, state, crc=None):
    return OtaSelectEntry(seq, state, crc=crc)


@dataclass
class Case:
    id: str
    table: PartitionTable
    entries: tuple | None
    boots: str | None
    writes: list = field(default_factory=list)
    active: int | None = None
    fallback: bool = False
    calls: list | None = None
    bad: tuple = ()
    sv: dict = field(default_factory=dict)
    efuse: int = 0
    rollback: bool = True
    log: tuple = ()
    burned: int | None = None


CASES = [
    Case("both-blank-no-factory", MP, BLANK, "ota_0", [(0, 1, V)], calls=["ota_0"],
         log=("No factory image, trying OTA 0", "Loaded app from partition at offset 0x10000",
              "Set actual ota_seq=1 in otadata[0]")),
    Case("both-blank-factory", IDF, BLANK, "factory", calls=["factory"], log=("Defaulting to factory image",)),
    Case("one-valid-sector0", MP, (E(1, V), OtaSelectEntry.blank()), "ota_0", active=0, calls=["ota_0"],
         log=("Active otadata[0]", "Mapping seq 0 -> OTA slot 0")),
    Case("one-valid-sector1", MP, (OtaSelectEntry.blank(), E(2, V)), "ota_1", active=1),
    Case("seq-tie-picks-sector0", MP, (E(3, V), E(3, N)), "ota_0", active=0),
    Case("wrap-3-4", MP, (E(3, V), E(4, V)), "ota_1", active=1, log=("Mapping seq 3 -> OTA slot 1",)),
    Case("wrap-5-4", MP, (E(5, V), E(4, V)), "ota_0", active=0),
    Case("wrap-three-slots", THREE, (E(5, V), E(4, V)), "ota_1", active=0),
    Case("new-becomes-pending", MP, (E(1, V), E(2, N)), "ota_1", [(1, 2, P)], active=1,
         log=("otadata[1] is selected as new and marked PENDING_VERIFY state",)),
    Case("pending-becomes-aborted", MP, (E(1, V), E(2, P)), "ota_0", [(1, 2, A)], active=0, calls=["ota_0"],
         log=("state PENDING_VERIFY -> ABORTED",)),
    Case("both-pending", MP, (E(1, P), E(2, P)), "ota_0", [(0, 1, A), (1, 2, A)],
         log=("No factory image, trying OTA 0",)),
    Case("crc-mismatch-ignored", MP, (E(1, V), E(2, V, crc=0xDEADBEEF)), "ota_0", active=0),
    Case("invalid-ignored", MP, (E(1, V), E(2, INV)), "ota_0", active=0),
    Case("chosen-image-corrupt-falls-back", MP, (E(1, V), E(2, V)), "ota_0", active=1, fallback=True,
         calls=["ota_1", "ota_0"], bad=("ota_1",),
         log=("Checksum failed. Calculated 0x1 read 0x2", "OTA app partition slot 1 is not bootable",
              "Loaded app from partition at offset 0x10000")),
    Case("new-image-corrupt", MP, (E(1, V), E(2, N)), "ota_0", [(1, 2, P)], active=1, fallback=True,
         bad=("ota_1",)),
    Case("nothing-bootable", MP, (E(1, V), OtaSelectEntry.blank()), None, active=0, calls=["ota_0", "ota_1"],
         bad=("ota_0", "ota_1"), log=("No bootable app partitions in the partition table",)),
    Case("factory-when-entries-invalid", IDF, (E(1, INV), E(2, A)), "factory", calls=["factory"]),
    Case("factory-corrupt-walks-to-ota0", IDF, BLANK, "ota_0", fallback=True, calls=["factory", "ota_0"],
         bad=("factory",), log=("Factory app partition is not bootable",)),
    Case("no-factory-aborted-entries-no-seq-write", MP, (E(1, A), E(2, INV)), "ota_0"),
    Case("blank-ota0-corrupt-records-ota1", MP, BLANK, "ota_1", [(0, 2, V)], fallback=True,
         calls=["ota_0", "ota_1"], bad=("ota_0",), log=("Set actual ota_seq=2 in otadata[0]",)),
    Case("three-slots-walk-down", THREE, (E(3, V), OtaSelectEntry.blank()), "ota_0", active=0, fallback=True,
         calls=["ota_2", "ota_1", "ota_0"], bad=("ota_2", "ota_1")),
    Case("three-slots-walk-up", THREE, (E(1, V), OtaSelectEntry.blank()), "ota_1", active=0, fallback=True,
         calls=["ota_0", "ota_1"], bad=("ota_0",)),
    Case("crc-only-invalid-with-factory", IDF, (E(1, N, crc=0), OtaSelectEntry.blank()), "factory",
         log=("ota data partition invalid, falling back to factory",)),
    Case("crc-only-invalid-no-factory", MP, (E(1, N, crc=0), OtaSelectEntry.blank()), "ota_0", fallback=True,
         log=("ota data partition invalid and no factory, will try all partitions",)),
    Case("test-app-last", WITH_TEST, (E(1, V), OtaSelectEntry.blank()), "test", active=0, fallback=True,
         calls=["ota_0", "ota_1", "test"], bad=("ota_0", "ota_1"),
         log=("Falling back to test app as only bootable partition",)),
    Case("no-otadata-partition", NO_OTADATA, (E(2, V), OtaSelectEntry.blank()), "factory", calls=["factory"]),
    Case("anti-rollback-skips-low-entry", MP, (E(1, V), E(2, V)), "ota_0", active=0, sv={"ota_0": 2, "ota_1": 1},
         efuse=2, calls=["ota_0", "ota_1"],
         log=("Secure version (from eFuse) = 2", "OTA slot 1 has an app with secure_version")),
    Case("anti-rollback-skips-low-image-in-walk", MP, (E(1, V), OtaSelectEntry.blank()), "ota_1", fallback=True,
         sv={"ota_0": 1, "ota_1": 2}, efuse=2, log=("app secure_version 1 is below the eFuse secure version 2",)),
    Case("anti-rollback-burns-efuse-for-valid", MP, (E(1, V), OtaSelectEntry.blank()), "ota_0", active=0,
         sv={"ota_0": 3}, efuse=1, burned=3),
    Case("rollback-disabled-keeps-pending", MP, (E(1, V), E(2, P)), "ota_1", active=1, rollback=False),
]


def _checker(case: Case):
    calls = []

    def check(p: Partition) -> SlotCheck:
        calls.append(p.label)
        if p.label in case.bad:
            return SlotCheck(False, "Checksum failed. Calculated 0x1 read 0x2", secure_version=case.sv.get(p.label, 0))
        return SlotCheck(True, None, version=f"v-{p.label}", project="mp", secure_version=case.sv.get(p.label, 0),
                         log=(f"segment 0: paddr={p.offset + 0x20:08x} vaddr=3f400020 size=00100h (   256) map",))

    return check, calls


def _writes(decision: BootDecision):
    return [(w.sector, w.entry.seq, w.entry.state) if w.entry else (w.sector, None) for w in decision.otadata_writes]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_select_boot(case: Case):
    check, calls = _checker(case)
    otadata = otadata_region(*case.entries) if case.entries else b"\xff" * 0x2000
    d = select_boot(case.table, otadata, check, efuse_secure_version=case.efuse, rollback=case.rollback)
    assert (d.partition.label if d.partition else None) == case.boots
    assert _writes(d) == case.writes
    assert d.active_sector == case.active
    assert d.fallback == case.fallback
    if case.calls is not None:
        assert calls == case.calls
    assert len(calls) == len(set(calls)), "each image is validated at most once"
    joined = "\n".join(d.log)
    for text in case.log:
        assert text in joined
    assert d.efuse_secure_version == case.burned
    if d.partition is not None:
        assert d.check.ok and d.check.version == f"v-{case.boots}"
        assert d.log[-1].startswith(("Loaded app", "Set actual", "Falling back", "eFuse"))
    else:
        assert d.check is None and d.log[-1] == "No bootable app partitions in the partition table"


def test_tuple_and_region_inputs_agree():
    check, _ = _checker(Case("x", MP, None, None))
    entries = (E(1, V), E(2, N))
    a = select_boot(MP, entries, check)
    b = select_boot(MP, otadata_region(*entries), check)
    assert _writes(a) == _writes(b) == [(1, 2, P)]
    assert a.partition == b.partition == MP.find("ota_1")


def test_image_log_lines_are_in_the_boot_log():
    check, _ = _checker(Case("x", MP, None, None))
    d = select_boot(MP, (E(1, V), OtaSelectEntry.blank()), check)
    i = d.log.index("segment 0: paddr=00010020 vaddr=3f400020 size=00100h (   256) map")
    assert d.log[i + 1] == "Loaded app from partition at offset 0x10000"
    assert d.log[0].startswith("otadata[0]: sequence values 0x00000001")


def test_small_otadata_partition_stops_the_bootloader():
    table = PartitionTable((Partition("otadata", 1, 0, 0xD000, 0x1000),) + MP.entries[3:5])
    check, calls = _checker(Case("x", table, None, None))
    d = select_boot(table, None, check)
    assert d.partition is None and calls == []
    assert d.log == ["ota_info partition size 4096 is too small (minimum 8192 bytes)"]


def test_pending_image_that_never_confirms_is_rolled_back_over_two_boots():
    """NEW -> PENDING_VERIFY on the first boot, then PENDING_VERIFY -> ABORTED on the next one."""
    check, _ = _checker(Case("x", MP, None, None))
    region = otadata_region(E(1, V), E(2, N))
    first = select_boot(MP, region, check)
    assert first.partition.label == "ota_1" and _writes(first) == [(1, 2, P)]
    region = apply_writes(region, first.otadata_writes)
    second = select_boot(MP, region, check)
    assert second.partition.label == "ota_0" and _writes(second) == [(1, 2, A)] and second.active_sector == 0
    region = apply_writes(region, second.otadata_writes)
    third = select_boot(MP, region, check)
    assert third.partition.label == "ota_0" and third.otadata_writes == []


def test_write_addresses():
    w = OtadataWrite(1, None)
    assert w.address(MP.otadata) == 0xE000
    assert OtadataWrite(0, E(1, V)).address(MP.otadata) == 0xD000
