"""boot_v1.x on the virtual ESP8266 (harness.emu.boot_v1), driven in-process on the NOR flash model.

The ROM hand-over, the boot text, first-boot parameters, the user1/user2 choice, the fallback with
marking, and power cuts at every flash operation of each parameter save (every tear policy): each
cut leaves a board that boots an app.
"""

from __future__ import annotations

import pytest

from harness.emu import boot_esp8266, boot_v1
from harness.emu.chip import EXIT_HALT, EXIT_WATCHDOG, ChipConfig, ChipRun
from harness.emu.flash import TEAR_POLICIES, CutPlan, NorFlash, PowerCut, create_flash_file
from harness.esp.esp8266_image import (
    BootParams,
    FotaLayout,
    apply_protected_save,
    bad_magic,
    build_boot_image,
    build_user_bin,
    decode_fota_state,
    parse_ea_image,
    sdk_baseline,
    switch_slot_writes,
)

MB4 = 4 * 1024 * 1024
SPEC_LINES_4MB = (
    "2nd boot version : 1.7(5d6f877)\r\n"
    "SPI Speed : 40MHz\r\n"
    "SPI Mode : QIO\r\n"
    "SPI Flash Size & Map: 32Mbit(512KB+512KB)\r\n"
    "jump to run user1 @ 1000\r\n"
)


class FakeUart:
    def __init__(self):
        self.text = b""
        self.events: list[dict] = []
        self.baud = 74880

    def write_at(self, baud: int, data: bytes) -> None:
        self.text += data

    def write(self, data: bytes) -> None:
        self.text += data

    def set_baud(self, baud: int) -> None:
        self.baud = baud

    def event(self, name: str, **fields) -> None:
        self.events.append({"event": name, **fields})

    def read(self, timeout=None) -> bytes:
        return b""


class Started(Exception):
    def __init__(self, ctx):
        super().__init__("app started")
        self.ctx = ctx


@pytest.fixture(autouse=True)
def no_app(monkeypatch):
    """An app that started raises Started (the real one would run until the chip stops)."""

    def start(ctx):
        raise Started(ctx)

    monkeypatch.setattr(boot_v1, "run_app", start)


def bins(version: str = "1.0.0", map_code: int = 4) -> tuple[bytes, bytes]:
    return (build_user_bin(1, version, project="sdkapp", map_code=map_code),
            build_user_bin(2, version, project="sdkapp", map_code=map_code))


def make_flash(tmp_path, parts, size: int = MB4, name: str = "flash.bin") -> str:
    path = str(tmp_path / name)
    create_flash_file(path, size)
    with open(path, "r+b") as f:
        for offset, data in parts:
            f.seek(offset)
            f.write(data)
    return path


def baseline(tmp_path, user1: bytes, user2: bytes | None = None, map_code: int = 4, size: int = MB4) -> str:
    parts = [(p.offset, p.data) for p in sdk_baseline(size, map_code, user1)]
    if user2 is not None:
        parts.append((FotaLayout.for_map_code(map_code).user2, user2))
    return make_flash(tmp_path, parts, size)


def boot(path: str, size: int = MB4, cut: CutPlan | None = None, cause: str = "power-on"):
    """One boot: (exit code or 'app', console text, events, app context or None)."""
    uart = FakeUart()
    flash = NorFlash(path, size, cut=cut)
    cfg = ChipConfig(chip="esp8266", flash_file=path, flash_size=size, mac=bytes(6))
    try:
        code = boot_esp8266.rom_load(cfg, ChipRun(download=False, cause=cause, cut=cut), uart, flash, 74880)
        ctx = None
    except Started as s:
        code, ctx = "app", s.ctx
    finally:
        flash.close()
    return code, uart.text.decode(errors="replace"), uart.events, ctx


def state(path: str, layout: FotaLayout):
    data = open(path, "rb").read()
    return decode_fota_state(data[layout.flag:layout.flag + 32], data[layout.params[0]:layout.params[0] + 32],
                             data[layout.params[1]:layout.params[1] + 32])


def boot_until_app(path: str, size: int = MB4, tries: int = 3):
    """Boot (with watchdog resets) until an app starts; the texts of every boot."""
    texts = []
    for _ in range(tries):
        code, text, _events, ctx = boot(path, size)
        texts.append(text)
        if code == "app":
            return ctx, texts
        assert code == EXIT_WATCHDOG, f"boot stopped with {code}:\n{text}"
    raise AssertionError("no app after watchdog resets:\n" + "\n----\n".join(texts))


def count_ops(path: str, size: int = MB4, action=None) -> int:
    """Flash operations one boot (or ``action(flash)``) performs."""
    flash = NorFlash(path, size)
    before = flash.meta.get("ops")
    flash.close()
    if action is None:
        boot(path, size)
    else:
        flash = NorFlash(path, size)
        action(flash)
        flash.close()
    flash = NorFlash(path, size)
    n = flash.meta.get("ops") - before
    flash.close()
    return n


def test_first_boot_prints_the_spec_lines_and_initialises_the_parameters(tmp_path):
    user1, _ = bins("1.4.2")
    path = baseline(tmp_path, user1)
    code, text, events, ctx = boot(path)
    assert code == "app"
    assert SPEC_LINES_4MB in text
    assert text.startswith("load 0x40100000")  # the ROM loaded the boot image first
    layout = FotaLayout.for_map_code(4)
    st = state(path, layout)
    assert (st.flag, st.active_copy) == (0, 0)
    assert (st.params.usr_bin, st.params.boot_status, st.params.version) == (0, 1, 7)
    assert ctx.offset == 0x1000 and ctx.project == "sdkapp" and ctx.version == "1.4.2"
    assert ctx.sdk.slot == 1 and ctx.sdk.layout == layout
    assert parse_ea_image(user1).inner == ctx.image.inner
    assert events[-1]["result"] == "app" and events[-1]["slot"] == 1
    # a second boot leaves the parameters alone
    assert count_ops(path) == 0


@pytest.mark.parametrize("map_code,size,mapname", [
    (0, 512 * 1024, "4Mbit(256KB+256KB)"),
    (2, 1024 * 1024, "8Mbit(512KB+512KB)"),
    (3, 2 * 1024 * 1024, "16Mbit(512KB+512KB)"),
    (5, 2 * 1024 * 1024, "16Mbit(1024KB+1024KB)"),
    (6, MB4, "32Mbit(1024KB+1024KB)"),
])
def test_every_map_reads_its_layout_from_the_header(tmp_path, map_code, size, mapname):
    user1, user2 = bins(map_code=map_code)
    path = baseline(tmp_path, user1, user2, map_code=map_code, size=size)
    layout = FotaLayout.for_map_code(map_code)
    code, text, _e, ctx = boot(path, size)
    assert code == "app" and f"SPI Flash Size & Map: {mapname}\r\n" in text
    assert "jump to run user1 @ 1000\r\n" in text
    # the app's upgrade switches to user2
    flash = NorFlash(path, size)
    assert apply_protected_save(flash, switch_slot_writes(state(path, layout), 2, layout))
    flash.close()
    code, text, _e, ctx = boot(path, size)
    assert code == "app" and f"jump to run user2 @ {layout.user2:x}\r\n" in text
    assert ctx.offset == layout.user2 and ctx.sdk.slot == 2


def test_speed_and_mode_come_from_the_header(tmp_path):
    user1, _ = bins()
    boot_image = build_boot_image(4, spi_mode="dio", flash_freq="80m")
    parts = [(p.offset, p.data) for p in sdk_baseline(MB4, 4, user1, boot=boot_image)]
    path = make_flash(tmp_path, parts)
    code, text, _e, _c = boot(path)
    assert code == "app" and "SPI Speed : 80MHz\r\nSPI Mode : DIO\r\n" in text


def switched_to_bad_user2(tmp_path) -> str:
    user1, user2 = bins()
    path = baseline(tmp_path, user1, bad_magic(user2))
    assert boot(path)[0] == "app"  # first boot: parameters initialised, user1 runs
    layout = FotaLayout.for_map_code(4)
    flash = NorFlash(path, MB4)
    assert apply_protected_save(flash, switch_slot_writes(state(path, layout), 2, layout))
    flash.close()
    return path


def test_bad_magic_falls_back_to_the_other_bin_and_stays_there(tmp_path):
    path = switched_to_bad_user2(tmp_path)
    layout = FotaLayout.for_map_code(4)
    code, text, events, _ = boot(path)
    assert code == EXIT_WATCHDOG
    assert ("jump to run user2 @ 81000\r\n\r\nerror magic!\r\n"
            "first boot failed, reboot to try backup bin\r\n") in text
    assert events[-1]["result"] == "fallback" and events[-1]["slot"] == 2
    st = state(path, layout)
    assert (st.params.usr_bin, st.params.boot_status) == (1, 0)  # user2 marked failed
    code, text, _e, ctx = boot(path, cause="watchdog")
    assert code == "app" and "jump to run user1 @ 1000\r\n" in text and ctx.sdk.slot == 1
    assert "ets Jan" not in text  # the ROM line is the ROM class's, not this function's
    # and stays on the backup
    code, text, _e, ctx = boot(path)
    assert code == "app" and ctx.sdk.slot == 1 and "error magic!" not in text


def test_both_bins_bad_is_backup_boot_failed(tmp_path):
    path = switched_to_bad_user2(tmp_path)
    # user1 goes bad too
    flash = NorFlash(path, MB4)
    flash.erase_sector(0x1000)
    flash.close()
    assert boot(path)[0] == EXIT_WATCHDOG
    code, text, events, ctx = boot(path)
    assert code == EXIT_HALT and ctx is None
    assert "jump to run user1 @ 1000\r\n\r\nerror magic!\r\nbackup boot failed.\r\n" in text
    assert events[-1]["result"] == "no-app"


def test_a_bad_ram_checksum_falls_back_without_error_magic(tmp_path):
    user1, user2 = bins()
    bad = bytearray(user2)
    parsed = parse_ea_image(user2)
    bad[parsed.inner_offset + parsed.inner.segments[0].data_offset + 5] ^= 0xFF
    path = baseline(tmp_path, user1, bytes(bad))
    boot(path)
    layout = FotaLayout.for_map_code(4)
    flash = NorFlash(path, MB4)
    apply_protected_save(flash, switch_slot_writes(state(path, layout), 2, layout))
    flash.close()
    code, text, events, _ = boot(path)
    assert code == EXIT_WATCHDOG and "error magic!" not in text
    assert "first boot failed, reboot to try backup bin" in text and "checksum" in events[-1]["detail"]


def test_corrupt_irom_is_not_seen_by_the_loader(tmp_path):
    user1 = build_user_bin(1, "1.0.0", irom_size=0x1000)
    bad = bytearray(user1)
    bad[0x800] ^= 0xFF  # irom0 part: only the app's CRC check would notice
    assert parse_ea_image(bytes(bad)).inner_offset > 0x800 and not parse_ea_image(bytes(bad)).crc_ok
    path = baseline(tmp_path, bytes(bad))
    assert boot(path)[0] == "app"


LAYOUT4 = FotaLayout.for_map_code(4)


def params_of(path: str) -> tuple[int, int, int]:
    p = state(path, LAYOUT4).params
    return p.usr_bin, p.boot_status, p.version


def _cut_every_op(tmp_path, prepare, name: str, check=None):
    """For each flash operation of the parameter save the next boot of what ``prepare`` leaves does, and
    each tear policy: a fresh board, cut there; the parameters are then the old or the new ones, never
    a mixture, and the board boots until an app starts."""
    probe = prepare(tmp_path / f"{name}-probe")
    before = params_of(probe)
    n = count_ops(probe)
    after = params_of(probe)
    assert before != after
    assert n >= 4, f"expected a parameter save (erase, program, erase, program), got {n} operations"
    for policy in TEAR_POLICIES:
        for seeds in range(3 if policy == "random" else 1):
            for k in range(1, n + 1):
                path = prepare(tmp_path / f"{name}-{policy}-{seeds}-{k}")
                flash = NorFlash(path, MB4)
                base = flash.meta.get("ops")
                flash.close()
                with pytest.raises(PowerCut):
                    boot(path, cut=CutPlan(at_op=base + k, policy=policy, seed=seeds, base=base))
                assert params_of(path) in (before, after), (policy, seeds, k)
                ctx, texts = boot_until_app(path)
                if check is not None:
                    check(ctx, texts, policy, k)
    return n


def test_cut_at_every_operation_of_the_first_boot_save_leaves_a_bootable_board(tmp_path):
    user1, _ = bins()

    def prepare(d):
        d.mkdir()
        return baseline(d, user1)

    def check(ctx, texts, policy, k):
        assert ctx.sdk.slot == 1, (policy, k)
        assert SPEC_LINES_4MB in texts[-1]

    assert _cut_every_op(tmp_path, prepare, "init", check) == 4


def test_cut_at_every_operation_of_the_fallback_save_leaves_a_bootable_board(tmp_path):
    def prepare(d):
        d.mkdir()
        return switched_to_bad_user2(d)

    def check(ctx, texts, policy, k):
        assert ctx.sdk.slot == 1, (policy, k)

    _cut_every_op(tmp_path, prepare, "fallback", check)


def test_cut_at_every_operation_of_the_upgrade_switch_boots_the_old_or_the_new_bin(tmp_path):
    """The save an SDK app's system_upgrade_reboot does (the harness's switch_slot_writes, the same helper)."""
    user1, user2 = bins()
    layout = FotaLayout.for_map_code(4)

    def prepare(d):
        d.mkdir(exist_ok=True)
        path = baseline(d, user1, user2)
        assert boot(path)[0] == "app"
        return path

    probe = prepare(tmp_path / "probe")
    n = count_ops(probe, action=lambda f: apply_protected_save(f, switch_slot_writes(state(probe, layout), 2, layout)))
    assert n == 4
    seen = set()
    for policy in TEAR_POLICIES:
        for k in range(1, n + 1):
            path = prepare(tmp_path / f"{policy}-{k}")
            flash = NorFlash(path, MB4)
            flash.cut = CutPlan(at_op=flash.meta.get("ops") + k, policy=policy, seed=k,
                                base=flash.meta.get("ops"))
            old = params_of(path)
            with pytest.raises(PowerCut):
                apply_protected_save(flash, switch_slot_writes(state(path, layout), 2, layout))
            flash.close()
            assert params_of(path) in (old, (1, 1, 7)), (policy, k)
            assert count_ops(path) == 0  # the loader found sound parameters: nothing re-initialised
            ctx, _texts = boot_until_app(path)
            seen.add(ctx.sdk.slot)
            if k <= 2:  # the new copy was not complete: the flag still names the old one
                assert ctx.sdk.slot == 1, (policy, k)
    assert seen == {1, 2}


def test_invalid_parameters_are_replaced(tmp_path):
    user1, user2 = bins()
    path = baseline(tmp_path, user1, user2)
    layout = FotaLayout.for_map_code(4)
    raw = BootParams(usr_bin=3, boot_status=1, raw=bytes([0xFF, 0xE7]) + b"\xff" * 30).encode()
    flash = NorFlash(path, MB4)
    apply_protected_save(flash, [w if i else type(w)(w.address, raw) for i, w in
                                 enumerate(switch_slot_writes(state(path, layout), 2, layout))])
    flash.close()
    assert state(path, layout).params.usr_bin == 3
    code, _t, _e, ctx = boot(path)
    assert code == "app" and ctx.sdk.slot == 1 and state(path, layout).params.usr_bin == 0


def test_a_map_the_flash_cannot_hold_stops_the_loader(tmp_path):
    user1, _ = bins()
    parts = [(0, build_boot_image(4)), (0x1000, user1)]
    path = make_flash(tmp_path, parts, size=1024 * 1024)
    code, text, events, _ = boot(path, size=1024 * 1024)
    assert code == EXIT_HALT and "SPI Flash Size & Map: 32Mbit(512KB+512KB)" in text
    assert events[-1]["result"] == "no-app"
