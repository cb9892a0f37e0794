"""The chips the harness knows: one class per chip, one registry.

Everything that differs between an ESP32 and an ESP8266 board is an attribute (or a small
method) of its class here, the way esptool has one ``ESPLoader`` subclass per target with
its facts as class attributes and one name -> class table: the image format
(:class:`harness.esp.chips.ChipInfo`, referenced, not copied), esptool's name for it, the
MAC OUI, the flash layout (a partition table with OTA app slots or not), what MicroPython's
port for it is like (build, heap, ``.mpy`` ABI, reset causes, the update kinds the agent can
do there), the network stack's constants, the MicroPython baseline, and the emulator's models
of its ROM. Code elsewhere asks the chip (``chip(name).net.dns_error``) and never branches on
its name, so a new chip is one new class here plus the models it names.

The codecs in ``harness.esp`` stay below this module (they only know image and flash
formats); the emulator's ROM models are imported when asked for, so the harness side does
not load the emulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .esp import chips as formats

if TYPE_CHECKING:
    from .emu.boot import RomBoot
    from .emu.rom import RomProfile
    from .esp.partition_table import PartitionTable
    from .firmware import FlashPart


class UnknownChipError(ValueError):
    """A chip name the registry does not know; the message lists the ones it does."""


def _gc_usable(heap_bytes: int) -> int:
    """Bytes of a MicroPython GC heap of this size that objects can use (py/gc.c gc_setup_area:
    16-byte blocks, one allocation-table byte per 4 blocks, one finaliser byte per 8)."""
    return heap_bytes * 16 * 8 // (16 * 8 + 2 + 1) // 16 * 16


def _heap_plan(initial: int, grow: list[int], boot_used: int, slack: int, stack: int) -> dict[str, Any]:
    """The heap device code gets (see :attr:`MicroPythonPort.heap_plan`); ``device_free`` is derived."""
    return {"initial": initial, "grow": grow, "boot_used": boot_used, "slack": slack, "stack": stack,
            "device_free": initial + sum(grow) - boot_used}


@dataclass(frozen=True)
class MicroPythonPort:
    """What MicroPython's port for a chip is like, as the release's firmware shows it.

    ``heap_plan``: the heap device code gets, as the release's ports size it (``initial``
    usable bytes, ``grow`` the blocks the port may add on demand, ``boot_used`` what the
    firmware's own start-up leaves allocated, ``slack`` room the virtual board's port layer
    needs inside a board call, ``stack`` the C stack, ``device_free`` what is left for device
    code). ``heap_size`` is the virtual board's interpreter heap: the device's share, the port
    layer and garbage between collections (not larger: ``gc.mem_alloc()``, sampled on every
    board call, costs time in proportion to it). ``reset_causes`` maps the harness's reset
    causes to ``machine.reset_cause()`` in the port's numbering (None: the cause before it
    stays). ``modules`` are the virtual board's port-layer modules in load order (the API table
    decides what of them is public);
    ``same_module`` names modules that are one module object under two names on the port.
    ``updates`` are the update kinds the harness's MicroPython agent can do on the chip.
    """

    build_name: str
    updates: tuple[str, ...]
    heap_plan: dict[str, Any]
    heap_size: int
    mpy_abi: int
    threads: str | None
    platform: dict[str, Any]
    reset_causes: dict[str, int | None]
    modules: str
    same_module: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetStack:
    """The network stack's numbers as device code sees them.

    ``wlan_status``: ``network.STAT_*`` values; ``dns_error``: the errno ``getaddrinfo``
    raises when a lookup fails; ``tcp_window``: lwIP's TCP receive window (the virtual
    board gives its host socket the same small buffer, so a server can only be a window
    ahead of what the device has read, as with a real board).
    """

    wlan_status: dict[str, int]
    dns_error: int
    tcp_window: int


class Chip:
    """One chip family. Subclasses fill in every attribute; nothing is instantiated."""

    #: the name rig files, the emulator and the codecs use
    name: ClassVar[str]
    #: image and flash format facts
    image: ClassVar[formats.ChipInfo]
    #: esptool's ``CHIP_NAME`` for it
    esptool_name: ClassVar[str]
    #: its ROM serial loader (not esptool's stub) has CHANGE_BAUDRATE / SPI_FLASH_MD5
    rom_change_baud: ClassVar[bool]
    rom_flash_md5: ClassVar[bool]
    #: Espressif's OUI the virtual board's MAC starts with
    mac_oui: ClassVar[bytes]
    #: the CPU clock MicroPython's port runs at (``machine.freq()``)
    cpu_freq: ClassVar[int]
    #: the flash has an ESP-IDF partition table: OTA app slots with otadata, a ``vfs`` partition
    has_partition_table: ClassVar[bool]
    #: ESP-IDF (v5) supports it as a target, so ESP-IDF apps and their host builds run on it
    idf_target: ClassVar[bool]
    micropython: ClassVar[MicroPythonPort]
    net: ClassVar[NetStack]

    @classmethod
    def unique_id(cls, mac: bytes) -> bytes:
        """``machine.unique_id()`` of a board with this base MAC."""
        raise NotImplementedError

    @classmethod
    def micropython_partition_table(cls, flash_size: int | str) -> PartitionTable | None:
        """The partition table of the MicroPython baseline for this flash size (None: the port has none);
        ValueError if the layout does not fit."""
        raise NotImplementedError

    @classmethod
    def micropython_baseline(cls, version: str, flash_size: str, app_size: int) -> list[FlashPart]:
        """What ``esptool write-flash`` puts on a board to run MicroPython ``version``."""
        raise NotImplementedError

    @classmethod
    def rom_profile(cls) -> RomProfile:
        """The emulator's model of the ROM serial loader (what esptool talks to)."""
        raise NotImplementedError

    @classmethod
    def rom_boot(cls) -> RomBoot:
        """The emulator's model of the ROM's first-stage boot."""
        raise NotImplementedError


class Esp32(Chip):
    name = "esp32"
    image = formats.ESP32
    esptool_name = "ESP32"
    rom_change_baud = True
    rom_flash_md5 = True
    mac_oui = b"\x24\x0a\xc4"
    cpu_freq = 160_000_000
    has_partition_table = True
    idf_target = True
    micropython = MicroPythonPort(
        build_name="ESP32_GENERIC-OTA",
        updates=("firmware", "files"),
        # MICROPY_GC_INITIAL_HEAP_SIZE 56 KiB (ports/esp32/mpconfigport.h), grown on demand by
        # gc_try_add_heap (py/gc.c: at least doubling the total each time, never more than the IDF
        # heap's largest free block). What ESP-IDF leaves for that depends on the application;
        # modelled as one 56 KiB and one 16 KiB block, the state the port's comment aims at (room
        # to double the heap once and still start Wi-Fi and make an HTTPS request). boot_used:
        # flashbdev, the mounted littlefs and sys.path, measured on the virtual board.
        heap_plan=_heap_plan(_gc_usable(56 * 1024), [56 * 1024, 16 * 1024], boot_used=1536, slack=2048,
                             stack=15360),
        heap_size=448 * 1024,
        mpy_abi=6 | (3 | 10 << 2) << 8,  # .mpy v6.3, xtensawin
        threads="GIL",
        platform={"compiler": "GCC 14.2.0", "libc": ["newlib", "4.3.0"], "idf": "IDFv5.5.1"},
        # ports/esp32/modmachine.c maps esp_reset_reason()
        reset_causes={"power-on": 1, "en-pin": 1, "software": 2, "watchdog": 3, "deepsleep": 4, "soft": 5},
        modules="sys gc micropython platform machine time os random select esp esp32 network socket tls _flashbdev",
    )
    net = NetStack(
        wlan_status={"IDLE": 1000, "CONNECTING": 1001, "WRONG_PASSWORD": 202, "NO_AP_FOUND": 201,
                     "CONNECT_FAIL": 203, "GOT_IP": 1010},
        dns_error=-202,  # lwIP's EAI_FAIL
        tcp_window=5744,  # CONFIG_LWIP_TCP_WND_DEFAULT
    )

    @classmethod
    def unique_id(cls, mac: bytes) -> bytes:
        # The base MAC (esp_efuse_mac_get_default).
        return mac

    @classmethod
    def micropython_partition_table(cls, flash_size: int | str) -> PartitionTable:
        from .esp.partition_table import micropython_esp32_ota

        return micropython_esp32_ota(flash_size)

    @classmethod
    def micropython_baseline(cls, version: str, flash_size: str, app_size: int) -> list[FlashPart]:
        # The bootloader, MicroPython's OTA partition table (two 1.5 MB slots and a ``vfs`` data
        # partition) and the app in ota_0.
        from .esp import build_app, build_bootloader
        from .firmware import ESP32_APP_OFFSET, FlashPart

        app = build_app(cls.name, project="micropython", version=version, size=app_size, micropython_banner=True,
                        flash_size=flash_size)
        return [
            FlashPart(cls.image.bootloader_offset, build_bootloader(cls.name, flash_size=flash_size).to_bytes(),
                      "bootloader.bin"),
            FlashPart(cls.image.partition_table_offset, cls.micropython_partition_table(flash_size).to_bytes(),
                      "partition-table.bin"),
            FlashPart(ESP32_APP_OFFSET, app.to_bytes(), "micropython.bin"),
        ]

    @classmethod
    def rom_profile(cls) -> RomProfile:
        from .emu.rom import ESP32

        return ESP32

    @classmethod
    def rom_boot(cls) -> RomBoot:
        from .emu.boot import Esp32RomBoot

        return Esp32RomBoot()


class Esp8266(Chip):
    name = "esp8266"
    image = formats.ESP8266
    esptool_name = "ESP8266"
    rom_change_baud = False
    rom_flash_md5 = False
    mac_oui = b"\x5c\xcf\x7f"
    cpu_freq = 80_000_000
    has_partition_table = False
    idf_target = False
    micropython = MicroPythonPort(
        build_name="ESP8266_GENERIC",
        updates=("files",),  # MicroPython has no OTA on the ESP8266
        # One static array, `static char heap[38 * 1024]` (ports/esp8266/main.c).
        heap_plan=_heap_plan(_gc_usable(38 * 1024), [], boot_used=1536, slack=2048, stack=8192),
        heap_size=320 * 1024,
        mpy_abi=6 | (3 | 9 << 2) << 8,  # .mpy v6.3, xtensa
        threads=None,
        platform={"compiler": "GCC 7.3.0", "libc": ["newlib", "2.2.0"], "idf": ""},
        # the SDK's rst_info reason
        reset_causes={"power-on": 0, "en-pin": 6, "software": 4, "watchdog": 1, "deepsleep": 5, "soft": None},
        modules="sys gc micropython platform machine time os random select esp network socket tls _flashbdev",
        same_module={"socket": "lwip"},  # ``import socket`` gives the lwip module
    )
    net = NetStack(
        wlan_status={"IDLE": 0, "CONNECTING": 1, "WRONG_PASSWORD": 2, "NO_AP_FOUND": 3, "CONNECT_FAIL": 4,
                     "GOT_IP": 5},
        dns_error=-2,
        tcp_window=2920,
    )

    @classmethod
    def unique_id(cls, mac: bytes) -> bytes:
        # system_get_chip_id(): the MAC's low three bytes as a little-endian 32-bit number.
        return bytes([mac[5], mac[4], mac[3], 0])

    @classmethod
    def micropython_partition_table(cls, flash_size: int | str) -> None:
        return None

    @classmethod
    def micropython_baseline(cls, version: str, flash_size: str, app_size: int) -> list[FlashPart]:
        # One image at 0 (app_size does not apply: the firmware is one image, the rest is the filesystem).
        from .esp.app_image import build_esp8266_app
        from .firmware import FlashPart

        image = build_esp8266_app(project="micropython", version=version.lstrip("v"), micropython=True,
                                  flash_size=flash_size)
        return [FlashPart(cls.image.bootloader_offset, image.to_bytes(), "micropython.bin")]

    @classmethod
    def rom_profile(cls) -> RomProfile:
        from .emu.rom import ESP8266

        return ESP8266

    @classmethod
    def rom_boot(cls) -> RomBoot:
        from .emu.boot import Esp8266RomBoot

        return Esp8266RomBoot()


CHIPS: dict[str, type[Chip]] = {c.name: c for c in (Esp32, Esp8266)}
CHIP_NAMES = tuple(CHIPS)


def chip_by_esptool_name(esptool_name: str) -> type[Chip] | None:
    """The chip esptool calls ``esptool_name`` (its ``CHIP_NAME``); None for a chip the registry lacks."""
    return next((c for c in CHIPS.values() if c.esptool_name == esptool_name), None)


def chip(name: str | type[Chip]) -> type[Chip]:
    """The class of a chip by name ("esp32"; "ESP32" and "ESP-32" work too); UnknownChipError
    (a ValueError) naming the known chips otherwise."""
    if isinstance(name, type) and issubclass(name, Chip):
        return name
    key = re.sub(r"[-_ ]", "", str(name).lower())
    if key not in CHIPS:
        raise UnknownChipError(f"unknown chip '{name}' (known: {', '.join(CHIPS)})")
    return CHIPS[key]
