"""Host build of an ESP-IDF project for the virtual ESP32: ``build_app()`` -> an idf.py-like build directory.

What it does, in idf.py's order:

1. **sdkconfig**: ESP-IDF's defaults this API set needs (:data:`IDF_DEFAULTS`), then the defaults of the
   project's ``main/Kconfig.projbuild`` (and of every component's ``Kconfig.projbuild``), then the project's
   ``sdkconfig.defaults``, then the caller's overrides; choice groups are resolved the way Kconfig does
   (``CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y`` -> ``CONFIG_ESPTOOLPY_FLASHSIZE="4MB"``), and an option whose
   dependency is off is dropped (``CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY`` needs ``CONFIG_ESP_TLS_INSECURE``).
   Written as ``sdkconfig`` and ``config/sdkconfig.h``.
2. **partition table** from the CSV the sdkconfig names (``harness.esp.partition_table``), **bootloader** as
   ``harness.firmware``'s baselines use (``build_bootloader``), ``ota_data_initial.bin`` (0x2000 bytes of 0xFF).
   The bootloader carries the bootloader options of :data:`BOOTLOADER_OPTIONS` that are on
   (``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``), which the virtual ESP32's bootloader model follows, as a real
   bootloader has them compiled in.
3. **the app**: the sources ``main/CMakeLists.txt`` registers (``idf_component_register(SRCS ...)``) compiled
   with the host's ``cc`` against ``harness/emu/idf/include`` and linked with ``harness/emu/idf/src``
   (``-Wall -Werror=implicit-function-declaration``; malloc and friends wrapped for the heap model).
   ``EMBED_TXTFILES`` become ``_binary_<name>_start/_end`` symbols holding the file plus a NUL, as ESP-IDF's
   ``data_file_embed_asm.cmake`` makes them; ``server_certs/ca_cert.pem`` is the ``ca_pem`` argument (the
   run's CA), or, without one, the file in the project if it exists, else :data:`NO_CA_PLACEHOLDER` (text
   without a certificate: every HTTPS connection then fails as a board's does when its CA does not parse,
   ``mbedtls_x509_crt_parse returned ...``).
4. **the image** ``<project>.bin``: a valid ESP32 app image (``harness.esp.app_image``: header with chip id
   0 and the flash settings of the sdkconfig, segments, checksum, appended SHA-256) whose descriptor names the
   project (its ``project()`` in CMakeLists.txt), the version (``PROJECT_VER``, or ``version``), the
   ``secure_version`` (``CONFIG_BOOTLOADER_APP_SECURE_VERSION``) and ``app_elf_sha256`` = SHA-256 of the host
   executable, which is also written as ``<project>.elf``.

Image format (what the virtual board's ``harness.emu.runtime_idf`` reads back)::

    segment 0  DROM 0x3F400020  esp_app_desc_t (256 bytes), then zeros up to the IROM page alignment
    segment 1  DRAM 0x3FFB0000  256 bytes of zeros (.data)
    segment 2  IRAM 0x40080000  1 KiB of zeros (the vectors' place)
    segment 3  IROM 0x400D0020  the host payload: HOST_MAGIC (8 bytes, b"HILHOST1"), u32 executable length,
                                u32 reserved (0), SHA-256 of the executable (32 bytes), the executable
                                (an x86-64/aarch64 Linux ELF), zero padding to a multiple of 4

The IROM segment's data starts at an image offset congruent to its load address modulo 64 KiB, as the
bootloader's MMU check requires. Because the executable only exists inside the image, a truncated or altered
image (checksum or SHA-256 wrong) is rejected by the bootloader model and cannot run; re-stamping the
version (``harness.esp.app_image.set_version``) keeps the payload intact.

Builds are cached by content under ``$XDG_CACHE_HOME/esp-ota-hil/idf/<key>/`` (key: this module, the
runtime's headers and sources, the project's files, the overrides, the CA, the version and the compiler),
built in a temporary directory next to it and renamed into place, so any number of processes may build the
same thing at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InfrastructureError
from ...esp.app_image import AppDesc, AppImage, Segment, build_bootloader
from ...esp.chips import SPI_MODES, chip_info, parse_size
from ...esp.errors import FormatError
from ...esp.partition_table import PartitionTable

HERE = Path(__file__).resolve().parent
INCLUDE_DIR = HERE / "include"
SRC_DIR = HERE / "src"
HOSTCALL_DIR = HERE.parent / "hostcall"  # the call framing shared with the other host-built runtimes
ROOT = HERE.parents[2]
DEVICE_FW = ROOT / "device_fw"
DEFAULT_PROJECT = DEVICE_FW / "esp_idf"
FORMAT = "idf-host-1"
IDF_VERSION = "v5.5.1"
BUILD_DATE = "Jan  1 2025"
BUILD_TIME = "00:00:00"

HOST_MAGIC = b"HILHOST1"
HOST_HEADER = struct.Struct("<8sII32s")  # magic, executable length, reserved, SHA-256 of the executable

DROM_ADDR = 0x3F400020
DRAM_ADDR = 0x3FFB0000
IRAM_ADDR = 0x40080000
IROM_ADDR = 0x400D0020

NO_CA_PLACEHOLDER = (b"# No CA was given to this host build (harness.emu.idf.build.build_app(ca_pem=...)).\n"
                     b"# There is no certificate here: HTTPS connections fail as on a board whose CA does not parse.\n")

#: bootloader options the virtual ESP32's bootloader model follows (recorded in the host build's bootloader image)
BOOTLOADER_OPTIONS = ("BOOTLOADER_APP_ANTI_ROLLBACK",)

# ESP-IDF v5.2 defaults of the options the API set reads (what `idf.py menuconfig` starts from).
IDF_DEFAULTS: dict[str, str | bool | int] = {
    "IDF_TARGET": "esp32",
    "IDF_TARGET_ESP32": True,
    "IDF_FIRMWARE_CHIP_ID": 0x0000,
    "APP_BUILD_TYPE_APP_2NDBOOT": True,
    "APP_BUILD_GENERATE_BINARIES": True,
    "APP_BUILD_BOOTLOADER": True,
    "BOOTLOADER_OFFSET_IN_FLASH": 0x1000,
    "BOOTLOADER_LOG_LEVEL_INFO": True,
    "BOOTLOADER_LOG_LEVEL": 3,
    "BOOTLOADER_APP_ROLLBACK_ENABLE": False,
    "BOOTLOADER_APP_ANTI_ROLLBACK": False,
    "BOOTLOADER_APP_SECURE_VERSION": 0,
    "ESPTOOLPY_FLASHMODE_DIO": True,
    "ESPTOOLPY_FLASHMODE": "dio",
    "ESPTOOLPY_FLASHFREQ_40M": True,
    "ESPTOOLPY_FLASHFREQ": "40m",
    "ESPTOOLPY_FLASHSIZE_2MB": True,
    "ESPTOOLPY_FLASHSIZE": "2MB",
    "ESPTOOLPY_BEFORE_RESET": True,
    "ESPTOOLPY_BEFORE": "default_reset",
    "ESPTOOLPY_AFTER_RESET": True,
    "ESPTOOLPY_AFTER": "hard_reset",
    "ESPTOOLPY_MONITOR_BAUD": 115200,
    "PARTITION_TABLE_SINGLE_APP": True,
    "PARTITION_TABLE_CUSTOM": False,
    "PARTITION_TABLE_CUSTOM_FILENAME": "partitions.csv",
    "PARTITION_TABLE_FILENAME": "partitions_singleapp.csv",
    "PARTITION_TABLE_OFFSET": 0x8000,
    "PARTITION_TABLE_MD5": True,
    "COMPILER_OPTIMIZATION_DEBUG": True,
    "ESP_ERR_TO_NAME_LOOKUP": True,
    "ESP_CONSOLE_UART_DEFAULT": True,
    "ESP_CONSOLE_UART": True,
    "ESP_CONSOLE_UART_NUM": 0,
    "ESP_CONSOLE_UART_BAUDRATE": 115200,
    "ESP_MAIN_TASK_STACK_SIZE": 3584,
    "ESP_MAIN_TASK_AFFINITY_CPU0": True,
    "ESP_HTTP_CLIENT_ENABLE_HTTPS": True,
    "ESP_HTTPS_OTA_ALLOW_HTTP": False,
    "ESP_TLS_USING_MBEDTLS": True,
    "ESP_TLS_INSECURE": False,
    "ESP_TLS_SKIP_SERVER_CERT_VERIFY": False,
    "FREERTOS_HZ": 100,
    "FREERTOS_CHECK_STACKOVERFLOW_CANARY": True,
    "LOG_DEFAULT_LEVEL_INFO": True,
    "LOG_DEFAULT_LEVEL": 3,
    "LOG_MAXIMUM_EQUALS_DEFAULT": True,
    "LOG_MAXIMUM_LEVEL": 3,
    "LOG_COLORS": True,
    "LOG_TIMESTAMP_SOURCE_RTOS": True,
    "MMU_PAGE_SIZE": 0x10000,
    "NEWLIB_STDOUT_LINE_ENDING_CRLF": True,
    "NEWLIB_STDIN_LINE_ENDING_CR": True,
    "EXAMPLE_CONNECT_WIFI": True,
    "EXAMPLE_WIFI_SSID": "myssid",
    "EXAMPLE_WIFI_PASSWORD": "mypassword",
    "EXAMPLE_WIFI_CONN_MAX_RETRY": 6,
    "EXAMPLE_WIFI_SCAN_METHOD_ALL_CHANNEL": True,
}
# Choice groups: member suffix -> value of the string option, as Kconfig derives them.
CHOICES: dict[str, tuple[str, dict[str, str | int]]] = {
    "ESPTOOLPY_FLASHSIZE_": ("ESPTOOLPY_FLASHSIZE", {s: s for s in ("1MB", "2MB", "4MB", "8MB", "16MB", "32MB",
                                                                      "64MB", "128MB")}),
    "ESPTOOLPY_FLASHMODE_": ("ESPTOOLPY_FLASHMODE", {"QIO": "dio", "QOUT": "dout", "DIO": "dio", "DOUT": "dout"}),
    "ESPTOOLPY_FLASHFREQ_": ("ESPTOOLPY_FLASHFREQ", {"80M": "80m", "40M": "40m", "26M": "26m", "20M": "20m"}),
    "LOG_DEFAULT_LEVEL_": ("LOG_DEFAULT_LEVEL", {"NONE": 0, "ERROR": 1, "WARN": 2, "INFO": 3, "DEBUG": 4,
                                                 "VERBOSE": 5}),
}
# option -> the option it depends on (an option whose dependency is off does not exist)
DEPENDS = {"ESP_TLS_SKIP_SERVER_CERT_VERIFY": "ESP_TLS_INSECURE"}

# malloc and friends of the app go through the heap model (src/board.c)
WRAPPED = ("malloc", "free", "calloc", "realloc", "strdup", "strndup", "asprintf", "vasprintf")

SdkValue = str | bool | int


class HostBuildError(InfrastructureError):
    """The project did not build for the virtual ESP32 (the compiler's message names the file)."""


@dataclass(frozen=True)
class IdfBuild:
    """An idf.py-like build directory of a host build.

    ``build_dir`` holds ``flasher_args.json``, ``<project>.bin``, ``<project>.elf`` (the host executable),
    ``bootloader/bootloader.bin``, ``partition_table/partition-table.bin``, ``ota_data_initial.bin``,
    ``sdkconfig``, ``config/sdkconfig.h`` and ``project_description.json``.
    """

    build_dir: Path
    project_name: str
    version: str
    sdkconfig: dict[str, SdkValue] = field(repr=False)
    app_offset: int
    elf_sha256: str
    key: str

    @property
    def app_bin(self) -> Path:
        return self.build_dir / f"{self.project_name}.bin"

    @property
    def app_elf(self) -> Path:
        return self.build_dir / f"{self.project_name}.elf"

    @property
    def bootloader_bin(self) -> Path:
        return self.build_dir / "bootloader" / "bootloader.bin"

    @property
    def partition_table_bin(self) -> Path:
        return self.build_dir / "partition_table" / "partition-table.bin"

    @property
    def ota_data_bin(self) -> Path:
        return self.build_dir / "ota_data_initial.bin"

    @property
    def flasher_args(self) -> dict:
        return json.loads((self.build_dir / "flasher_args.json").read_text())

    @property
    def flash_files(self) -> list[tuple[int, Path]]:
        """(offset, file) of everything ``idf.py flash`` writes, by offset."""
        return sorted((int(k, 16), self.build_dir / v) for k, v in self.flasher_args["flash_files"].items())

    @property
    def image(self) -> bytes:
        """The app image (``<project>.bin``)."""
        return self.app_bin.read_bytes()

    @property
    def partition_table(self) -> PartitionTable:
        return PartitionTable.from_bytes(self.partition_table_bin.read_bytes())


# -- project files ------------------------------------------------------------------------------------------------
def _cmake_text(path: Path) -> str:
    return re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8"))


def project_name(project_dir: Path) -> str:
    m = re.search(r"\bproject\(\s*([A-Za-z0-9_.+-]+)", _cmake_text(project_dir / "CMakeLists.txt"))
    if not m:
        raise HostBuildError(f"{project_dir / 'CMakeLists.txt'}: no project() call")
    return m.group(1)


def project_version(project_dir: Path) -> str:
    text = _cmake_text(project_dir / "CMakeLists.txt")
    m = re.search(r'\bset\(\s*PROJECT_VER\s+"?([^")\s]+)"?\s*\)', text)
    if m:
        return m.group(1)
    m = re.search(r"\bproject\([^)]*\bVERSION\s+([^\s)]+)", text)
    if m:
        return m.group(1)
    version_txt = project_dir / "version.txt"
    if version_txt.is_file():
        return version_txt.read_text().strip()
    return "1"


@dataclass
class Component:
    srcs: list[Path]
    include_dirs: list[Path]
    embed_txt: list[Path]
    embed_bin: list[Path]


_KEYWORDS = ("SRCS", "SRC_DIRS", "EXCLUDE_SRCS", "INCLUDE_DIRS", "PRIV_INCLUDE_DIRS", "LDFRAGMENTS", "REQUIRES",
             "PRIV_REQUIRES", "REQUIRED_IDF_TARGETS", "EMBED_FILES", "EMBED_TXTFILES", "KCONFIG",
             "KCONFIG_PROJBUILD", "WHOLE_ARCHIVE")


def read_component(component_dir: Path, project_dir: Path) -> Component:
    """The arguments of ``idf_component_register`` in ``<component>/CMakeLists.txt``."""
    cmake = component_dir / "CMakeLists.txt"
    text = _cmake_text(cmake)
    m = re.search(r"idf_component_register\s*\((.*?)\)\s*(?:$|\n)", text, re.S)
    if not m:
        raise HostBuildError(f"{cmake}: no idf_component_register()")
    variables = {"project_dir": str(project_dir), "CMAKE_CURRENT_SOURCE_DIR": str(component_dir),
                 "COMPONENT_DIR": str(component_dir)}
    tokens = re.findall(r'"[^"]*"|[^\s"]+', m.group(1))
    groups: dict[str, list[str]] = {}
    current = None
    for tok in tokens:
        if tok in _KEYWORDS:
            current = tok
            groups.setdefault(tok, [])
            continue
        value = tok.strip('"')
        value = re.sub(r"\$\{(\w+)\}", lambda v: variables.get(v.group(1), ""), value)
        if current:
            groups[current].append(value)

    def paths(key: str) -> list[Path]:
        return [(component_dir / v).resolve() for v in groups.get(key, [])]

    srcs = paths("SRCS")
    for d in paths("SRC_DIRS"):
        srcs += sorted(d.glob("*.c"))
    excluded = set(paths("EXCLUDE_SRCS"))
    srcs = [s for s in srcs if s not in excluded and s.suffix == ".c"]
    return Component(srcs, paths("INCLUDE_DIRS") + paths("PRIV_INCLUDE_DIRS"), paths("EMBED_TXTFILES"),
                     paths("EMBED_FILES"))


# -- sdkconfig ----------------------------------------------------------------------------------------------------
def _parse_value(raw: str) -> SdkValue:
    raw = raw.strip()
    if raw == "y":
        return True
    if raw == "n":
        return False
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    try:
        return int(raw, 0)
    except ValueError:
        return raw


def kconfig_defaults(path: Path) -> dict[str, SdkValue]:
    """The unconditional defaults of a Kconfig file's ``config`` entries (bool/int/hex/string)."""
    out: dict[str, SdkValue] = {}
    name = None
    kind = None
    defaulted: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        m = re.match(r"(?:menu)?config\s+(\w+)$", s)
        if m:
            name, kind = m.group(1), None
            continue
        if name is None:
            continue
        m = re.match(r"(bool|int|hex|string|tristate)\b", s)
        if m:
            kind = m.group(1)
            if kind == "bool":
                out.setdefault(name, False)
            continue
        m = re.match(r"default\s+(.+?)(\s+if\s+.*)?$", s)
        if m and not m.group(2) and name not in defaulted:
            value = _parse_value(m.group(1))
            out[name] = (value is True) if kind == "bool" else value
            defaulted.add(name)
    return out


def read_sdkconfig_defaults(path: Path) -> dict[str, SdkValue]:
    out: dict[str, SdkValue] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        m = re.match(r"#\s*CONFIG_(\w+) is not set", s)
        if m:
            out[m.group(1)] = False
            continue
        if not s or s.startswith("#") or "=" not in s:
            continue
        key, _, value = s.partition("=")
        key = key.strip()
        if key.startswith("CONFIG_"):
            key = key[len("CONFIG_"):]
        out[key] = _parse_value(value)
    return out


def _normalise_override(key: str, value: SdkValue) -> tuple[str, SdkValue]:
    key = key[len("CONFIG_"):] if key.startswith("CONFIG_") else key
    if isinstance(value, str) and value in ("y", "n"):
        value = value == "y"
    return key, value


def resolve_sdkconfig(project_dir: Path, overrides: dict[str, SdkValue] | None) -> dict[str, SdkValue]:
    config: dict[str, SdkValue] = dict(IDF_DEFAULTS)
    for kconfig in sorted(project_dir.glob("*/Kconfig.projbuild")) + sorted(project_dir.glob("components/*/Kconfig")):
        config.update(kconfig_defaults(kconfig))
    layers = [read_sdkconfig_defaults(project_dir / "sdkconfig.defaults")] if (
        project_dir / "sdkconfig.defaults").is_file() else []
    layers.append(dict(_normalise_override(k, v) for k, v in (overrides or {}).items()))
    for layer in layers:
        for key, value in layer.items():
            for prefix, (target, members) in CHOICES.items():
                if key.startswith(prefix) and value is True and key[len(prefix):] in members:
                    for other in members:
                        config[prefix + other] = False
                    config[target] = members[key[len(prefix):]]
            config[key] = value
    if config.get("PARTITION_TABLE_CUSTOM"):
        config["PARTITION_TABLE_SINGLE_APP"] = False
        config["PARTITION_TABLE_FILENAME"] = config.get("PARTITION_TABLE_CUSTOM_FILENAME", "partitions.csv")
    if config.get("LOG_MAXIMUM_EQUALS_DEFAULT", True):
        config["LOG_MAXIMUM_LEVEL"] = config.get("LOG_DEFAULT_LEVEL", 3)
    for option, needs in DEPENDS.items():
        if not config.get(needs):
            config[option] = False
    return config


def sdkconfig_text(config: dict[str, SdkValue]) -> str:
    lines = ["#", "# Automatically generated file. DO NOT EDIT.", "# Espressif IoT Development Framework (ESP-IDF) "
             f"{IDF_VERSION} Project Configuration (host build for the virtual ESP32)", "#"]
    for key in sorted(config):
        value = config[key]
        if value is True:
            lines.append(f"CONFIG_{key}=y")
        elif value is False:
            lines.append(f"# CONFIG_{key} is not set")
        elif isinstance(value, int):
            lines.append(f"CONFIG_{key}={value:#x}" if key.endswith(("OFFSET", "ADDR", "CHIP_ID", "FLASH"))
                         or key == "MMU_PAGE_SIZE" else f"CONFIG_{key}={value}")
        else:
            lines.append(f'CONFIG_{key}="{value}"')
    return "\n".join(lines) + "\n"


def sdkconfig_header(config: dict[str, SdkValue]) -> str:
    lines = ["/*", " * Automatically generated file. DO NOT EDIT.",
             f" * Espressif IoT Development Framework (ESP-IDF) {IDF_VERSION} Configuration Header", " */",
             "#pragma once"]
    for key in sorted(config):
        value = config[key]
        if value is True:
            lines.append(f"#define CONFIG_{key} 1")
        elif value is False:
            continue
        elif isinstance(value, int):
            lines.append(f"#define CONFIG_{key} {value:#x}" if key.endswith(("OFFSET", "ADDR", "CHIP_ID", "FLASH"))
                         or key == "MMU_PAGE_SIZE" else f"#define CONFIG_{key} {value}")
        else:
            escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'#define CONFIG_{key} "{escaped}"')
    return "\n".join(lines) + "\n"


# -- compiling ----------------------------------------------------------------------------------------------------
def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise HostBuildError("no C compiler: the host build of an ESP-IDF project needs `cc` (install gcc)")
    return cc


def _tool_id(cc: str) -> str:
    path = shutil.which(cc) or cc
    try:
        st = os.stat(os.path.realpath(path))
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return path


def _symbol(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", path.name)


def _embed_source(files: list[tuple[Path, bytes, bool]]) -> str:
    """C source with the symbols ESP-IDF's EMBED_FILES/EMBED_TXTFILES produce (text files get a NUL)."""
    out = ["/* Generated by harness.emu.idf.build: embedded files. */", "#include <stddef.h>", ""]
    for path, data, text in files:
        sym = _symbol(path)
        blob = data + (b"\0" if text else b"")
        body = ",".join(str(b) for b in blob) or "0"
        out.append(f'__attribute__((aligned(4))) const unsigned char _binary_{sym}_start[{max(1, len(blob))}] = '
                   f'{{{body}}};')
        out.append(f"__asm__(\".globl _binary_{sym}_end\\n.globl {sym}\\n.set {sym}, _binary_{sym}_start\\n\"")
        out.append(f"        \".set _binary_{sym}_end, _binary_{sym}_start + {len(blob)}\");")
        out.append(f"const size_t {sym}_length = {len(blob)};")
        out.append("")
    return "\n".join(out)


def _compile(cc: str, work: Path, sources: list[Path], include_dirs: list[Path], project_dir: Path,
             exe: Path, name: str) -> None:
    flags = ["-std=gnu17", "-O1", "-g0", "-pthread", "-Wall", "-Werror=implicit-function-declaration",
             "-Wno-unused-function", "-DESP_PLATFORM", f'-DIDF_VER="{IDF_VERSION}"', "-D_GNU_SOURCE",
             f"-fmacro-prefix-map={ROOT}/=", f"-fmacro-prefix-map={project_dir}/=./",
             "-fno-strict-aliasing", "-fno-common"]
    incs = [f"-I{work / 'config'}", f"-I{INCLUDE_DIR}", f"-I{HOSTCALL_DIR}"] + [f"-I{d}" for d in include_dirs]
    link = ["-pthread", "-lm"] + [f"-Wl,--wrap={name}" for name in WRAPPED]
    cmd = [cc, *flags, *incs, *map(str, sources), "-o", str(exe), *link]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if proc.returncode != 0:
        output = (proc.stderr + proc.stdout).strip()
        output = output.replace(str(project_dir) + "/", "")
        files = sorted(set(re.findall(r"^([^\s:]+\.[ch]):\d+:\d+: (?:fatal )?error", output, re.M)))
        where = f" in {', '.join(files)}" if files else ""
        raise HostBuildError(f"{name}: the host build failed{where}:\n{output}")
    (work / "build.log").write_text(proc.stderr + proc.stdout)


# -- the image ----------------------------------------------------------------------------------------------------
def host_payload(executable: bytes) -> bytes:
    head = HOST_HEADER.pack(HOST_MAGIC, len(executable), 0, hashlib.sha256(executable).digest())
    data = head + executable
    return data + bytes(-len(data) % 4)


def find_host_payload(segments) -> bytes | None:
    """The executable an image carries (segments of a parsed image), or None; its SHA-256 is checked."""
    for seg in segments:
        data = seg.data
        if len(data) >= HOST_HEADER.size and data[:8] == HOST_MAGIC:
            _magic, length, _res, digest = HOST_HEADER.unpack_from(data)
            exe = data[HOST_HEADER.size:HOST_HEADER.size + length]
            if len(exe) == length and hashlib.sha256(exe).digest() == digest:
                return bytes(exe)
    return None


def make_image(executable: bytes, *, project: str, version: str, secure_version: int, flash_size: str,
               flash_mode: str, flash_freq: str) -> AppImage:
    info = chip_info("esp32")
    desc = AppDesc(version=version, project_name=project, secure_version=secure_version, time=BUILD_TIME,
                   date=BUILD_DATE, idf_ver=IDF_VERSION, app_elf_sha256=hashlib.sha256(executable).digest(),
                   max_efuse_blk_rev_full=99, mmu_page_size=16)
    dram = bytes(0x100)
    iram = bytes(0x400)
    page = info.mmu_page_size
    head = 24
    seg = 8

    def irom_at(drom_len: int) -> int:
        return head + seg + drom_len + seg + len(dram) + seg + len(iram) + seg

    drom_len = 0x200
    drom_len += (IROM_ADDR % page - irom_at(drom_len)) % page
    drom = desc.pack() + bytes(drom_len - 256)
    segments = (Segment(DROM_ADDR, drom), Segment(DRAM_ADDR, dram), Segment(IRAM_ADDR, iram),
                Segment(IROM_ADDR, host_payload(executable)))
    return AppImage(chip="esp32", segments=segments, entry=IRAM_ADDR + 0x3E4, spi_mode=SPI_MODES[flash_mode],
                    flash_size=parse_size(flash_size), flash_freq=info.flash_freq_code(flash_freq),
                    hash_appended=True)


# -- build directory ------------------------------------------------------------------------------------------------
def _project_files(project_dir: Path) -> list[Path]:
    skip = {"build", "managed_components", ".git"}
    out = []
    for path in sorted(project_dir.rglob("*")):
        rel = path.relative_to(project_dir)
        if rel.parts[0] in skip or not path.is_file():
            continue
        if rel.name in ("sdkconfig", "sdkconfig.old") or rel.name.endswith((".pyc", "~")):
            continue
        out.append(path)
    return out


def _cache_key(project_dir: Path, overrides: dict, ca_pem: bytes | None, version: str | None, cc: str) -> str:
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    add("format", FORMAT.encode())
    add("builder", Path(__file__).read_bytes())
    for path in sorted(INCLUDE_DIR.rglob("*")) + sorted(SRC_DIR.rglob("*")) + sorted(HOSTCALL_DIR.rglob("*")):
        if path.is_file():
            add("rt:" + str(path.relative_to(HERE.parent)), path.read_bytes())
    for path in _project_files(project_dir):
        add("prj:" + str(path.relative_to(project_dir)), path.read_bytes())
    add("overrides", json.dumps(overrides, sort_keys=True, default=str).encode())
    add("ca", b"-" if ca_pem is None else b"+" + ca_pem)
    add("version", b"-" if version is None else b"+" + version.encode())
    add("cc", _tool_id(cc).encode())
    return h.hexdigest()[:32]


_LOCK = threading.Lock()
_BUILT: dict[str, IdfBuild] = {}


def build_app(project_dir: str | os.PathLike[str] = DEFAULT_PROJECT, *,
              sdkconfig: dict[str, SdkValue] | None = None, ca_pem: bytes | None = None,
              version: str | None = None) -> IdfBuild:
    """Build ``project_dir`` (an ESP-IDF project) for the virtual ESP32; cached by content.

    ``sdkconfig`` overrides options (``{"OTA_CLIENT_MUTATION_SKIP_VERSION_CHECK": True}``; the ``CONFIG_``
    prefix is optional), ``ca_pem`` is embedded as ``server_certs/ca_cert.pem``, ``version`` replaces
    ``PROJECT_VER``. Raises :class:`HostBuildError` when the project does not compile.
    """
    project_dir = Path(project_dir).resolve()
    if not (project_dir / "CMakeLists.txt").is_file():
        raise HostBuildError(f"{project_dir} is not an ESP-IDF project (no CMakeLists.txt)")
    overrides = dict(sdkconfig or {})
    cc = _compiler()
    key = _cache_key(project_dir, overrides, ca_pem, version, cc)
    with _LOCK:
        if key in _BUILT and _BUILT[key].build_dir.is_dir():
            return _BUILT[key]
        final = cache_root("idf") / key
        if not (final / "build.json").is_file():
            build_once(final, key, lambda work: _build(work, project_dir, overrides, ca_pem, version, cc))
        meta = json.loads((final / "build.json").read_text())
        build = IdfBuild(build_dir=final, project_name=meta["project_name"], version=meta["version"],
                         sdkconfig=meta["sdkconfig"], app_offset=meta["app_offset"], elf_sha256=meta["elf_sha256"],
                         key=key)
        _BUILT[key] = build
        return build


def build_once(final: Path, key: str, fill) -> None:
    """Make the cached build ``final``: ``fill(work)`` writes it into a fresh directory next to it, which then takes
    its place whole (a build directory is complete or absent; another process building the same key at the same
    time may win the race, and its build is kept)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
    try:
        fill(work)
        try:
            os.rename(work, final)
        except OSError:
            if not (final / "build.json").is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def cache_root(kind: str) -> Path:
    """Where host builds of ``kind`` (``idf``, ``sdk8266``) are cached: ``$XDG_CACHE_HOME/esp-ota-hil/<kind>``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "esp-ota-hil" / kind


def _build(work: Path, project_dir: Path, overrides: dict, ca_pem: bytes | None, version: str | None,
           cc: str) -> None:
    name = project_name(project_dir)
    ver = version if version is not None else project_version(project_dir)
    config = resolve_sdkconfig(project_dir, overrides)
    (work / "config").mkdir(parents=True)
    (work / "sdkconfig").write_text(sdkconfig_text(config))
    (work / "config" / "sdkconfig.h").write_text(sdkconfig_header(config))
    (work / "config" / "sdkconfig.json").write_text(json.dumps(config, indent=1, sort_keys=True))

    # partition table, bootloader, otadata
    csv_name = str(config["PARTITION_TABLE_FILENAME"])
    csv_path = project_dir / csv_name
    if not csv_path.is_file():
        raise HostBuildError(f"{name}: the partition table {csv_name} is not in the project")
    table_offset = int(config["PARTITION_TABLE_OFFSET"])
    try:
        table = PartitionTable.from_csv(csv_path.read_text(), table_offset=table_offset)
        table.validate(str(config["ESPTOOLPY_FLASHSIZE"]), table_offset=table_offset)
    except FormatError as e:
        raise HostBuildError(f"{name}: {csv_name}: {e}") from None
    (work / "partition_table").mkdir()
    (work / "partition_table" / "partition-table.bin").write_bytes(table.to_bytes())
    (work / "bootloader").mkdir()
    flash_size = str(config["ESPTOOLPY_FLASHSIZE"])
    flash_mode = str(config["ESPTOOLPY_FLASHMODE"])
    flash_freq = str(config["ESPTOOLPY_FLASHFREQ"])
    # The bootloader's own options are compiled into it: the virtual ESP32's bootloader model reads them
    # from the image (harness.esp.app_image.bootloader_config), so a board follows the bootloader it was flashed with.
    bootloader_options = {k: config[k] for k in BOOTLOADER_OPTIONS if config.get(k)}
    bootloader = build_bootloader("esp32", idf_ver=IDF_VERSION, spi_mode=flash_mode, flash_size=flash_size,
                                  flash_freq=flash_freq, config=bootloader_options or None)
    (work / "bootloader" / "bootloader.bin").write_bytes(bootloader.to_bytes())
    otadata = table.otadata
    if otadata is not None:
        (work / "ota_data_initial.bin").write_bytes(b"\xff" * otadata.size)

    # sources
    main = read_component(project_dir / "main", project_dir)
    components = [main] + [read_component(d, project_dir) for d in sorted((project_dir / "components").glob("*"))
                           if (d / "CMakeLists.txt").is_file()]
    embedded = []
    for comp in components:
        for path, text in [(p, True) for p in comp.embed_txt] + [(p, False) for p in comp.embed_bin]:
            if path == (project_dir / "server_certs" / "ca_cert.pem").resolve():
                data = ca_pem if ca_pem is not None else (path.read_bytes() if path.is_file() else NO_CA_PLACEHOLDER)
            elif path.is_file():
                data = path.read_bytes()
            else:
                raise HostBuildError(f"{name}: embedded file {path.relative_to(project_dir)} does not exist")
            embedded.append((path, data, text))
    host = work / "host"
    host.mkdir()
    (host / "embedded_files.c").write_text(_embed_source(embedded))
    sources = ([s for comp in components for s in comp.srcs] + sorted(SRC_DIR.glob("*.c"))
               + sorted(HOSTCALL_DIR.glob("*.c")) + [host / "embedded_files.c"])
    missing = [s for s in sources if not s.is_file()]
    if missing:
        raise HostBuildError(f"{name}: source file {missing[0]} does not exist")
    include_dirs = [d for comp in components for d in comp.include_dirs]
    exe_path = work / f"{name}.elf"
    _compile(cc, work, sources, include_dirs, project_dir, exe_path, name)
    executable = exe_path.read_bytes()

    # the app image
    image = make_image(executable, project=name, version=ver,
                       # (the option exists only with anti-rollback: it depends on BOOTLOADER_APP_ANTI_ROLLBACK)
                       secure_version=int(config.get("BOOTLOADER_APP_SECURE_VERSION", 0) or 0)
                       if config.get("BOOTLOADER_APP_ANTI_ROLLBACK") else 0,
                       flash_size=flash_size, flash_mode=flash_mode, flash_freq=flash_freq).to_bytes()
    apps = [p for p in table if p.is_app]
    if not apps:
        raise HostBuildError(f"{name}: {csv_name} has no app partition")
    app_part = table.factory or apps[0]
    if len(image) > app_part.size:
        raise HostBuildError(f"{name}: the app image is {len(image)} bytes, more than partition "
                             f"{app_part.label} ({app_part.size} bytes)")
    (work / f"{name}.bin").write_bytes(image)

    files = {f"{0x1000:#x}": "bootloader/bootloader.bin", f"{table_offset:#x}": "partition_table/partition-table.bin",
             f"{app_part.offset:#x}": f"{name}.bin"}
    args: dict = {
        "write_flash_args": ["--flash_mode", flash_mode, "--flash_size", flash_size, "--flash_freq", flash_freq],
        "flash_settings": {"flash_mode": flash_mode, "flash_size": flash_size, "flash_freq": flash_freq},
        "flash_files": files,
        "bootloader": {"offset": "0x1000", "file": "bootloader/bootloader.bin", "encrypted": "false"},
        "app": {"offset": f"{app_part.offset:#x}", "file": f"{name}.bin", "encrypted": "false"},
        "partition-table": {"offset": f"{table_offset:#x}", "file": "partition_table/partition-table.bin",
                            "encrypted": "false"},
    }
    if otadata is not None:
        files[f"{otadata.offset:#x}"] = "ota_data_initial.bin"
        args["otadata"] = {"offset": f"{otadata.offset:#x}", "file": "ota_data_initial.bin", "encrypted": "false"}
    args["extra_esptool_args"] = {"after": "hard_reset", "before": "default_reset", "stub": True, "chip": "esp32"}
    (work / "flasher_args.json").write_text(json.dumps(args, indent=4) + "\n")
    description = {
        "version": "1.2", "project_name": name, "project_version": ver, "project_path": str(project_dir),
        "idf_path": "", "build_dir": str(work.parent / work.name), "config_file": "sdkconfig",
        "config_defaults": str(project_dir / "sdkconfig.defaults"), "bootloader_elf": "",
        "app_elf": f"{name}.elf", "app_bin": f"{name}.bin", "build_type": "flash_app", "git_revision": "",
        "target": "esp32", "rev": "", "min_rev": "0", "max_rev": "399", "phy_data_partition": "",
        "monitor_baud": str(config.get("ESPTOOLPY_MONITOR_BAUD", 115200)), "monitor_toolprefix": "",
        "c_compiler": cc, "config_environment": {"COMPONENT_KCONFIGS": "", "COMPONENT_KCONFIGS_PROJBUILD": ""},
        "host_build": True,
    }
    (work / "project_description.json").write_text(json.dumps(description, indent=4) + "\n")
    meta = {"project_name": name, "version": ver, "sdkconfig": config, "app_offset": app_part.offset,
            "elf_sha256": hashlib.sha256(executable).hexdigest()}
    (work / "build.json").write_text(json.dumps(meta, indent=1, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m harness.emu.idf.build",
                                     description="Build an ESP-IDF project for the virtual ESP32 (cached).")
    parser.add_argument("project", nargs="?", default=str(DEFAULT_PROJECT))
    parser.add_argument("--ca", help="PEM file to embed as server_certs/ca_cert.pem")
    parser.add_argument("--version", help="app version instead of PROJECT_VER")
    parser.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                        help="sdkconfig override (NAME=y, NAME=n, NAME=123, NAME=text)")
    args = parser.parse_args(argv)
    overrides = {}
    for d in args.defines:
        k, _, v = d.partition("=")
        overrides[k] = _parse_value(v)
    ca = Path(args.ca).read_bytes() if args.ca else None
    t0 = time.monotonic()
    try:
        build = build_app(args.project, sdkconfig=overrides or None, ca_pem=ca, version=args.version)
    except HostBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{build.project_name} {build.version}: {build.build_dir} ({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
