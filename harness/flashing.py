"""esptool used as a library: connect, write/verify, read, erase, reset.

The same calls work for a board on a local USB-UART, a board exported by
``esp_rfc2217_server``/ser2net (``rfc2217://``) and a virtual board. Ports are
opened with :func:`harness.transport.open_port`, so RFC 2217 ports skip
pyserial's per-timeout renegotiation (see that module) and flashing through a
farm costs what it costs on a desk.

Every esptool failure comes out as one :class:`FlashingError` that names the
port and what was being done, never as a traceback from inside esptool.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import serial

from .chips import UnknownChipError, chip_by_esptool_name
from .chips import chip as chip_class
from .errors import SerialPortFailure
from .transport import open_port

ROM_BAUD = 115200


def _esptool_name(chip: str) -> str:
    """esptool's name for a chip the rig names ("esp32" -> "ESP32")."""
    try:
        return chip_class(chip).esptool_name
    except UnknownChipError:
        return chip.upper()


def _changes_baud(esp) -> bool:
    """esptool can switch this loader to another baud rate (the stub always can; chips the registry does
    not know are taken to, as esptool's newer targets do)."""
    rom = chip_by_esptool_name(esp.CHIP_NAME)
    return esp.IS_STUB or rom is None or rom.rom_change_baud


def _does_md5(esp) -> bool:
    """esptool can ask this loader for a flash region's MD5 (skip unchanged parts, verify writes)."""
    rom = chip_by_esptool_name(esp.CHIP_NAME)
    return esp.IS_STUB or rom is None or rom.rom_flash_md5


class FlashingError(SerialPortFailure, RuntimeError):
    """esptool could not do what was asked; the message names the port and the step."""


@dataclass(frozen=True)
class WriteResult:
    address: int
    size: int
    skipped: bool  # the flash already held exactly these bytes (MD5 matched)


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """esptool prints progress to stdout; keep it for error messages instead."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


class Flasher:
    """One esptool session on a board: ``with Flasher(url, chip="esp32") as f: f.write(...)``.

    ``before`` is esptool's reset on connect (``default-reset`` pulses EN with IO0
    low through DTR/RTS, as a DevKit's auto-reset circuit expects), ``after`` the
    reset on close (``hard-reset`` boots the new firmware, ``no-reset`` stays in
    the loader).
    """

    def __init__(self, url: str, *, chip: str | None = None, baud: int = 460800, stub: bool = True,
                 before: str = "default-reset", after: str = "hard-reset", connect_attempts: int = 4):
        self.url = url
        self.chip = chip
        self.baud = baud
        self.stub = stub
        self.before = before
        self.after = after
        self.connect_attempts = connect_attempts
        self.port: serial.SerialBase | None = None
        self.esp = None
        self.log = io.StringIO()

    # -- session ------------------------------------------------------------------------------
    def _fail(self, step: str, exc: BaseException) -> FlashingError:
        detail = str(exc).strip().splitlines()
        last = detail[-1] if detail else type(exc).__name__
        return FlashingError(f"esptool on {self.url}: {step} failed: {last}")

    def open(self) -> Flasher:
        from esptool.cmds import attach_flash, detect_chip, run_stub

        try:
            self.port = open_port(self.url, ROM_BAUD, timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as e:
            raise FlashingError(f"serial port {self.url} cannot be opened: {e}") from None
        try:
            with _quiet() as out:
                esp = detect_chip(self.port, ROM_BAUD, self.before, connect_attempts=self.connect_attempts)
                if self.chip is not None and esp.CHIP_NAME != _esptool_name(self.chip):
                    raise FlashingError(f"esptool on {self.url}: the rig says {self.chip} but the board is "
                                        f"{esp.CHIP_NAME}")
                if self.stub:
                    esp = run_stub(esp)
                if self.baud != ROM_BAUD and _changes_baud(esp):
                    esp.change_baud(self.baud)
                attach_flash(esp)
            self.log.write(out.getvalue())
        except FlashingError:
            self.close(reset=False)
            raise
        except Exception as e:  # esptool's FatalError, serial errors, timeouts
            self.close(reset=False)
            raise self._fail("connecting", e) from None
        self.esp = esp
        return self

    def close(self, reset: bool = True) -> None:
        if self.esp is not None and reset:
            from esptool.cmds import reset_chip

            try:
                with _quiet():
                    reset_chip(self.esp, self.after)
            except Exception:
                pass  # the port may be gone with the board's power: closing is all that is left
        self.esp = None
        if self.port is not None:
            try:
                self.port.close()
            except Exception:
                pass
            self.port = None

    def __enter__(self) -> Flasher:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _need(self):
        if self.esp is None:
            raise FlashingError(f"esptool on {self.url}: not connected")
        return self.esp

    # -- flash --------------------------------------------------------------------------------
    def md5(self, address: int, size: int) -> str:
        esp = self._need()
        try:
            return esp.flash_md5sum(address, size)
        except Exception as e:
            raise self._fail(f"MD5 of 0x{address:x}+0x{size:x}", e) from None

    def write(self, parts: Sequence[tuple[int, bytes]], *, compress: bool = True, verify: bool = True,
              skip_unchanged: bool = False) -> list[WriteResult]:
        """Write each ``(address, data)``; with ``skip_unchanged`` a part whose MD5 already matches is left."""
        from esptool.cmds import verify_flash, write_flash

        esp = self._need()
        results, todo = [], []
        for address, data in parts:
            skip = False
            if skip_unchanged and _does_md5(esp):
                skip = self.md5(address, len(data)) == hashlib.md5(data).hexdigest()
            results.append(WriteResult(address, len(data), skip))
            if not skip:
                todo.append((address, bytes(data)))
        if not todo:
            return results
        where = ", ".join(f"0x{a:x}" for a, _ in todo)
        try:
            with _quiet() as out:
                write_flash(esp, todo, compress=compress, no_compress=not compress, no_progress=True)
                if verify and _does_md5(esp):
                    verify_flash(esp, todo)
            self.log.write(out.getvalue())
        except Exception as e:
            raise self._fail(f"writing {where}", e) from None
        return results

    def read(self, address: int, size: int) -> bytes:
        from esptool.cmds import read_flash

        esp = self._need()
        try:
            with _quiet():
                data = read_flash(esp, address, size, None, no_progress=True)
        except Exception as e:
            raise self._fail(f"reading 0x{address:x}+0x{size:x}", e) from None
        assert data is not None
        return data

    def erase_region(self, address: int, size: int) -> None:
        esp = self._need()
        try:
            with _quiet():
                esp.erase_region(address, size)
        except Exception as e:
            raise self._fail(f"erasing 0x{address:x}+0x{size:x}", e) from None

    def chip_description(self) -> str:
        esp = self._need()
        try:
            return esp.get_chip_description()
        except Exception as e:
            raise self._fail("reading the chip description", e) from None
