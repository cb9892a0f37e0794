"""The app-side otadata rules (esp_ota_ops.c) and how they interact with the bootloader model."""

import pytest

from harness.esp.boot import (
    IDF_LEGACY,
    IDF_V5_5,
    OtadataWrite,
    OtaError,
    SlotCheck,
    app_partition_count,
    app_state,
    apply_writes,
    check_rollback_is_possible,
    compute_ota_seq_for_target_slot,
    get_boot_partition,
    get_next_update,
    last_invalid_partition,
    mark_app_invalid_rollback,
    mark_app_valid,
    ota_begin_refusal,
    ota_begin_writes,
    select_boot,
    set_boot_partition,
)
from harness.esp.otadata import OtaSelectEntry, OtaState, otadata_region, parse_otadata
from harness.esp.partition_table import Partition, PartitionTable, idf_two_ota, micropython_esp32_ota

V, N, P, INV, A = OtaState.VALID, OtaState.NEW, OtaState.PENDING_VERIFY, OtaState.INVALID, OtaState.ABORTED
MP = micropython_esp32_ota()
IDF = idf_two_ota()
THREE = PartitionTable((
    Partition("otadata", 1, 0, 0xD000, 0x2000),
    Partition("ota_0", 0, 0x10, 0x10000, 0x100000),
    Partition("ota_1", 0, 0x11, 0x110000, 0x100000),
    Partition("ota_2", 0, 0x12, 0x210000, 0x100000),
))
BLANK = b"\xff" * 0x2000


def ok(_p):
    return SlotCheck(True)


def E(seq, state):
    return OtaSelectEntry.make(seq, state)


def boot(table, region, bad=()):
    def check(p):
        return SlotCheck(p.label not in bad, "Checksum failed" if p.label in bad else None)

    d = select_boot(table, region, check)
    return d.partition, apply_writes(region, d.otadata_writes)


def test_successive_updates_alternate_sectors_and_grow_seq():
    region = BLANK
    running, region = boot(MP, region)
    assert running.label == "ota_0" and parse_otadata(region)[0] == E(1, V)
    history = []
    for _ in range(4):
        target = get_next_update(MP, running)
        assert ota_begin_refusal(MP, region, running, target) is None
        writes = set_boot_partition(MP, region, target, target_check=SlotCheck(True))
        assert len(writes) == 1 and writes[0].entry.state == N
        history.append((writes[0].sector, writes[0].entry.seq, target.label))
        region = apply_writes(region, writes)
        running, region = boot(MP, region)
        assert running == target
        assert app_state(MP, region, running) == P
        region = apply_writes(region, mark_app_valid(MP, region, running))
        assert app_state(MP, region, running) == V
    assert history == [(1, 2, "ota_1"), (0, 3, "ota_0"), (1, 4, "ota_1"), (0, 5, "ota_0")]


def test_seq_for_three_slots():
    region = otadata_region(E(1, V), None)
    w = set_boot_partition(THREE, region, THREE.find("ota_2"))
    assert (w[0].sector, w[0].entry.seq) == (1, 3)
    region = apply_writes(region, w)
    w = set_boot_partition(THREE, region, THREE.find("ota_1"))
    assert (w[0].sector, w[0].entry.seq) == (0, 5)  # smallest seq >= 3 with (seq-1) % 3 == 1
    assert compute_ota_seq_for_target_slot(3, 1, 3) == 5
    assert compute_ota_seq_for_target_slot(4, 0, 2) == 5
    assert compute_ota_seq_for_target_slot(1, 1, 2) == 2


def test_set_boot_with_no_valid_entry_writes_sector0():
    w = set_boot_partition(MP, BLANK, MP.find("ota_1"))
    assert w == [OtadataWrite(0, E(2, N))]
    region = otadata_region(E(5, INV), E(6, A))
    assert set_boot_partition(MP, region, MP.find("ota_0"), rollback=False) == \
        [OtadataWrite(0, OtaSelectEntry.make(1, OtaState.UNDEFINED))]


def test_set_boot_to_active_slot_legacy_vs_v5_5():
    region = otadata_region(E(1, V), E(2, V))
    legacy = set_boot_partition(MP, region, MP.find("ota_1"), idf=IDF_LEGACY)
    assert legacy == [OtadataWrite(0, E(2, N))]
    new = set_boot_partition(MP, region, MP.find("ota_1"), idf=IDF_V5_5)
    assert new == [OtadataWrite(1, E(2, N))]
    for writes in (legacy, new):
        d = select_boot(MP, apply_writes(region, writes), ok)
        assert d.partition.label == "ota_1"


def test_set_boot_keeps_the_label_bytes_of_the_sector_it_rewrites():
    labelled = OtaSelectEntry(7, V, b"\x01" * 20)
    region = otadata_region(E(8, V), labelled)
    w = set_boot_partition(MP, region, MP.find("ota_0"))
    assert w[0].sector == 1 and w[0].entry.label == b"\x01" * 20 and w[0].entry.seq == 9 and w[0].entry.crc_ok


def test_set_boot_factory_erases_otadata():
    region = otadata_region(E(1, V), E(2, V))
    writes = set_boot_partition(IDF, region, IDF.factory)
    assert writes == [OtadataWrite(0, None), OtadataWrite(1, None)]
    assert apply_writes(region, writes) == BLANK
    assert select_boot(IDF, apply_writes(region, writes), ok).partition == IDF.factory


@pytest.mark.parametrize("table,target,kwargs,code", [
    (MP, MP.find("ota_1"), dict(target_check=SlotCheck(False, "Image hash failed - image is corrupt")),
     "ESP_ERR_OTA_VALIDATE_FAILED"),
    (MP, MP.find("nvs"), {}, "ESP_ERR_INVALID_ARG"),
    (PartitionTable(MP.entries[3:5]), MP.find("ota_1"), {}, "ESP_ERR_NOT_FOUND"),
    (MP, MP.find("ota_1"), dict(anti_rollback=True, efuse_secure_version=3, target_check=SlotCheck(True)),
     "ESP_ERR_OTA_SMALL_SEC_VER"),
    (MP, Partition("ota_5", 0, 0x15, 0x10000, 0x1000), {}, "ESP_ERR_INVALID_ARG"),
])
def test_set_boot_refusals(table, target, kwargs, code):
    with pytest.raises(OtaError) as exc:
        set_boot_partition(table, BLANK, target, **kwargs)
    assert exc.value.code == code and str(exc.value).startswith(code)


def test_mark_app_valid():
    region = otadata_region(E(1, V), E(2, P))
    assert mark_app_valid(MP, region) == [OtadataWrite(1, E(2, V))]
    assert mark_app_valid(MP, otadata_region(E(1, V), None)) == []
    with pytest.raises(OtaError, match="Running firmware is factory") as exc:
        mark_app_valid(MP, BLANK)
    assert exc.value.code == "ESP_FAIL"


def test_mark_app_invalid_rolls_back_to_previous_slot():
    region = otadata_region(E(1, V), E(2, P))
    assert check_rollback_is_possible(MP, region, ok)
    writes = mark_app_invalid_rollback(MP, region, MP.find("ota_1"), check_slot=ok)
    assert writes == [OtadataWrite(1, E(2, INV))]
    region = apply_writes(region, writes)
    d = select_boot(MP, region, ok)
    assert d.partition.label == "ota_0" and not d.fallback and d.otadata_writes == []
    assert last_invalid_partition(MP, region) == MP.find("ota_1")
    assert app_state(MP, region, MP.find("ota_1")) == INV


def test_mark_app_invalid_needs_a_rollback_target():
    only = otadata_region(E(2, P), None)
    assert not check_rollback_is_possible(MP, only, ok)
    with pytest.raises(OtaError) as exc:
        mark_app_invalid_rollback(MP, only, check_slot=ok)
    assert exc.value.code == "ESP_ERR_OTA_ROLLBACK_FAILED"
    # the previous slot's image is corrupt: no rollback either
    region = otadata_region(E(1, V), E(2, P))
    assert not check_rollback_is_possible(MP, region, lambda p: SlotCheck(p.label != "ota_0"))
    # with a factory app the other entry may be blank
    assert check_rollback_is_possible(IDF, otadata_region(None, E(2, P)), ok)
    assert not check_rollback_is_possible(IDF, otadata_region(None, E(2, P)), ok, anti_rollback=True)


def test_get_next_update_wraps():
    assert get_next_update(MP, MP.find("ota_0")).label == "ota_1"
    assert get_next_update(MP, MP.find("ota_1")).label == "ota_0"
    assert get_next_update(IDF, IDF.factory).label == "ota_0"
    assert get_next_update(THREE, THREE.find("ota_2")).label == "ota_0"
    assert get_next_update(THREE, THREE.find("ota_1")).label == "ota_2"
    assert get_next_update(PartitionTable((IDF.factory,)), IDF.factory) is None


def test_ota_begin_refusals():
    region = otadata_region(E(1, V), E(2, P))
    ota0, ota1 = MP.find("ota_0"), MP.find("ota_1")
    assert ota_begin_refusal(MP, region, ota1, ota1).startswith("ESP_ERR_OTA_PARTITION_CONFLICT")
    assert ota_begin_refusal(MP, region, ota1, ota0) == \
        "ESP_ERR_OTA_ROLLBACK_INVALID_STATE: Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)"
    assert ota_begin_refusal(MP, region, ota1, ota0, rollback=False) is None
    assert ota_begin_refusal(MP, region, ota0, ota1) is None  # ota_0's entry is VALID
    assert ota_begin_refusal(IDF, BLANK, IDF.find("ota_0"), IDF.factory).startswith("ESP_ERR_INVALID_ARG")
    assert ota_begin_refusal(MP, region, ota0, None).startswith("ESP_ERR_INVALID_ARG")
    stranger = Partition("ota_9", 0, 0x19, 0x500000, 0x1000)
    assert ota_begin_refusal(MP, region, ota0, stranger).startswith("ESP_ERR_NOT_FOUND")


def test_ota_begin_invalidates_inactive_sector_only_on_v5_5():
    region = otadata_region(E(3, V), E(2, V))  # active ota_0 (seq 3), inactive names ota_1
    ota0, ota1 = MP.find("ota_0"), MP.find("ota_1")
    assert ota_begin_writes(MP, region, ota0, ota1, idf=IDF_LEGACY) == []
    assert ota_begin_writes(MP, region, ota0, ota1, idf=IDF_V5_5) == [OtadataWrite(1, None)]
    # not when the inactive entry names the running slot
    assert ota_begin_writes(MP, otadata_region(E(3, V), E(1, V)), ota0, ota1, idf=IDF_V5_5) == []


def test_app_state_and_boot_partition():
    region = otadata_region(E(1, V), E(2, N))
    assert app_state(MP, region, MP.find("ota_0")) == V
    assert app_state(MP, region, MP.find("ota_1")) == N
    assert app_state(MP, BLANK, MP.find("ota_0")) is None
    assert app_state(IDF, region, IDF.factory) is None
    assert get_boot_partition(MP, region) == MP.find("ota_1")
    assert get_boot_partition(MP, BLANK) == MP.find("ota_0")
    assert get_boot_partition(IDF, BLANK) == IDF.factory
    assert app_partition_count(MP) == 2 and app_partition_count(IDF) == 2 and app_partition_count(THREE) == 3


def test_set_boot_after_fallback_overwrites_the_running_slots_entry():
    """The field bug from the spec (ruuvi gateway #1280), reproduced by the IDF rules.

    ota_1 got a corrupt image and was selected: the bootloader marked it PENDING_VERIFY and
    fell back to ota_0. Updating again before a reboot, set_boot sees the PENDING entry as
    active and writes the *other* sector, the one holding ota_0's VALID entry; the running
    app no longer has an otadata entry at all.
    """
    region = otadata_region(E(1, V), E(2, N))
    running, region = boot(MP, region, bad=("ota_1",))
    assert running.label == "ota_0" and parse_otadata(region)[1] == E(2, P)
    assert app_state(MP, region, running) == V
    target = get_next_update(MP, running)
    assert ota_begin_refusal(MP, region, running, target) is None
    writes = set_boot_partition(MP, region, target)
    assert writes == [OtadataWrite(0, E(2, N))]
    region = apply_writes(region, writes)
    assert app_state(MP, region, running) is None


def test_stale_otadata_after_serial_reflash_keeps_booting_the_ota_slot():
    """Flashing a new app to ota_0 by serial leaves otadata pointing at ota_1 until it is erased."""
    region = otadata_region(E(1, V), E(2, V))
    assert boot(MP, region)[0].label == "ota_1"
    assert boot(MP, BLANK)[0].label == "ota_0"


def test_apply_writes_rejects_bad_sectors():
    with pytest.raises(ValueError, match="sector 2"):
        apply_writes(BLANK, [OtadataWrite(2, None)])
    with pytest.raises(ValueError, match="expected 0x2000"):
        apply_writes(b"\xff" * 10, [])
