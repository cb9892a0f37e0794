"""Host build of the ESP8266 NONOS SDK FOTA client for the virtual ESP8266: ``build_client()`` -> user1/user2 bins.

The project (``device_fw/esp8266_sdk``: ``user/*.c``, ``include/user_config.h``) is compiled with the host's ``cc``
against this package's ``include/`` (the SDK subset, with the SDK's names, types and values) and linked with
``src/`` (the virtual ESP8266's SDK: event loop, os_timer, espconn, system_upgrade_*, spi_flash_*) and the shared
call framing (``harness/emu/hostcall``); ``-Wall -Wextra``, warnings are errors for the project's files as the
SDK's own Makefile has ``-Werror``. It is built twice, as the SDK's ``make APP=1`` and ``make APP=2`` are
(``FOTA_LINKED_SLOT`` 1 and 2), with ``APP_VERSION`` and ``SPI_FLASH_SIZE_MAP`` (4: the 4 MB 512+512 map) defined,
and each executable is packed as the host payload (``harness.emu.idf.build.host_payload``: HOST_MAGIC framing,
SHA-256) of a gen_appbin user bin made by ``harness.esp.esp8266_image.build_user_bin(slot, version, project=...,
payload=...)``: the version record first in irom0, then the payload, so a bin whose irom is corrupt carries no
runnable app, as a corrupt irom crashes a chip.

Builds are cached by content under ``$XDG_CACHE_HOME/esp-ota-hil/sdk8266/<key>/`` (key: this module, the SDK
headers and sources, the project's files, version, mutation, compiler), built in a temporary directory and renamed
into place, so any number of processes may build at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ..idf.build import HostBuildError, _compiler, _tool_id, build_once, cache_root, host_payload

HERE = Path(__file__).resolve().parent
INCLUDE_DIR = HERE / "include"
SRC_DIR = HERE / "src"
HOSTCALL_DIR = HERE.parent / "hostcall"
ROOT = HERE.parents[2]
DEFAULT_PROJECT = ROOT / "device_fw" / "esp8266_sdk"
FORMAT = "sdk8266-host-1"
PROJECT_NAME = "esp8266_sdk_fota"
SPI_FLASH_SIZE_MAP = 4

MUTATIONS = ("OTA_CLIENT_MUTATION_NO_CRC_CHECK", "OTA_CLIENT_MUTATION_NO_SLOT_CHECK",
             "OTA_CLIENT_MUTATION_NO_VERSION_CHECK", "OTA_CLIENT_MUTATION_NO_LENGTH_CHECK",
             "OTA_CLIENT_MUTATION_SWITCH_ON_SHORT", "OTA_CLIENT_MUTATION_NO_PARAM_REPAIR")
# malloc and friends of the app go through the SDK heap model (src/sdk_main.c)
WRAPPED = ("malloc", "free", "calloc", "realloc", "strdup", "strndup", "asprintf", "vasprintf")
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,30}$")

__all__ = ["SdkBuild", "build_client", "HostBuildError", "MUTATIONS"]


@dataclass(frozen=True)
class SdkBuild:
    """A host build of the SDK client: ``user1.bin`` and ``user2.bin`` in ``build_dir`` (also as bytes)."""

    build_dir: Path
    version: str
    mutation: str | None
    project: str
    key: str

    @property
    def user1_bin(self) -> Path:
        return self.build_dir / "user1.bin"

    @property
    def user2_bin(self) -> Path:
        return self.build_dir / "user2.bin"

    @property
    def user1(self) -> bytes:
        return self.user1_bin.read_bytes()

    @property
    def user2(self) -> bytes:
        return self.user2_bin.read_bytes()

    @property
    def path(self) -> Path:
        return self.build_dir

    def user_bin(self, slot: int) -> bytes:
        if slot not in (1, 2):
            raise ValueError(f"slot must be 1 or 2, not {slot}")
        return self.user1 if slot == 1 else self.user2


def _project_files(project_dir: Path) -> list[Path]:
    out = []
    for path in sorted(project_dir.rglob("*")):
        rel = path.relative_to(project_dir)
        if rel.parts[0] in ("build", ".output", "bin", ".git") or not path.is_file():
            continue
        if path.suffix in (".c", ".h") or path.name in ("Makefile",):
            out.append(path)
    return out


def _cache_key(project_dir: Path, version: str, mutation: str | None, cc: str) -> str:
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    add("format", FORMAT.encode())
    add("builder", Path(__file__).read_bytes())
    from ...esp import esp8266_image

    add("image", Path(esp8266_image.__file__).read_bytes())
    for base in (INCLUDE_DIR, SRC_DIR, HOSTCALL_DIR):
        for path in sorted(base.rglob("*")):
            if path.is_file():
                add("rt:" + str(path.relative_to(HERE.parent)), path.read_bytes())
    for path in _project_files(project_dir):
        add("prj:" + str(path.relative_to(project_dir)), path.read_bytes())
    add("version", version.encode())
    add("mutation", (mutation or "-").encode())
    add("cc", _tool_id(cc).encode())
    return h.hexdigest()[:32]


_LOCK = threading.Lock()
_BUILT: dict[str, SdkBuild] = {}


def build_client(project_dir: str | os.PathLike[str] = DEFAULT_PROJECT, *, version: str,
                 mutation: str | None = None) -> SdkBuild:
    """Build the SDK FOTA client at ``version`` (with one of :data:`MUTATIONS`, or none); cached by content.

    Raises :class:`HostBuildError` (naming the file) when it does not compile, ``ValueError`` for a bad
    version or mutation name.
    """
    project_dir = Path(project_dir).resolve()
    if not (project_dir / "user").is_dir() or not (project_dir / "include" / "user_config.h").is_file():
        raise HostBuildError(f"{project_dir} is not a NONOS SDK app (no user/ or include/user_config.h)")
    if not _VERSION_RE.match(version):
        raise ValueError(f"version {version!r}: 1 to 31 characters of letters, digits and . + _ -")
    if mutation is not None:
        mutation = mutation if mutation.startswith("OTA_CLIENT_MUTATION_") else "OTA_CLIENT_MUTATION_" + mutation
        if mutation not in MUTATIONS:
            raise ValueError(f"unknown mutation {mutation!r} (known: {', '.join(MUTATIONS)})")
    cc = _compiler()
    key = _cache_key(project_dir, version, mutation, cc)
    with _LOCK:
        if key in _BUILT and _BUILT[key].build_dir.is_dir():
            return _BUILT[key]
        final = cache_root("sdk8266") / key
        if not (final / "build.json").is_file():
            build_once(final, key, lambda work: _build(work, project_dir, version, mutation, cc))
        build = SdkBuild(build_dir=final, version=version, mutation=mutation, project=PROJECT_NAME, key=key)
        _BUILT[key] = build
        return build


def compile_command(cc: str, project_dir: Path, exe: Path, *, version: str, slot: int,
                    mutation: str | None) -> list[str]:
    sources = sorted((project_dir / "user").glob("*.c"))
    if not sources:
        raise HostBuildError(f"{project_dir / 'user'}: no .c files")
    runtime = sorted(SRC_DIR.glob("*.c")) + sorted(HOSTCALL_DIR.glob("*.c"))
    defines = [f'-DAPP_VERSION="{version}"', f"-DFOTA_LINKED_SLOT={slot}", f"-DSPI_FLASH_SIZE_MAP={SPI_FLASH_SIZE_MAP}"]
    if mutation:
        defines.append(f"-D{mutation}=1")
    flags = ["-std=gnu11", "-O1", "-g0", "-pthread", "-Wall", "-Wextra", "-Werror",
             "-Wpointer-arith", "-D_GNU_SOURCE", "-fno-strict-aliasing",
             "-fno-common", f"-fmacro-prefix-map={ROOT}/=", f"-fmacro-prefix-map={project_dir}/=./"]
    incs = [f"-I{project_dir / 'include'}", f"-I{project_dir / 'user'}", f"-I{INCLUDE_DIR}", f"-I{SRC_DIR}",
            f"-I{HOSTCALL_DIR}"]
    link = ["-pthread"] + [f"-Wl,--wrap={name}" for name in WRAPPED]
    return [cc, *flags, *defines, *incs, *map(str, sources + runtime), "-o", str(exe), *link]


def _run_compilers(commands: list[list[str]], cwd: Path, project_dir: Path) -> str:
    procs = [subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "LC_ALL": "C"}) for cmd in commands]
    outputs = [p.communicate()[0] for p in procs]
    for proc, output in zip(procs, outputs):
        if proc.returncode != 0:
            text = output.strip().replace(str(project_dir) + "/", "").replace(str(ROOT) + "/", "")
            files = sorted(set(re.findall(r"^([^\s:]+\.[ch]):\d+:\d+: (?:fatal )?error", text, re.M)))
            where = f" in {', '.join(files)}" if files else ""
            raise HostBuildError(f"{PROJECT_NAME}: the host build failed{where}:\n{text}")
    return "".join(outputs)


def _build(work: Path, project_dir: Path, version: str, mutation: str | None, cc: str) -> None:
    from ...esp.esp8266_image import build_user_bin

    exes = {slot: work / f"user{slot}.elf" for slot in (1, 2)}
    log = _run_compilers([compile_command(cc, project_dir, exes[slot], version=version, slot=slot,
                                          mutation=mutation) for slot in (1, 2)], work, project_dir)
    (work / "build.log").write_text(log)
    for slot, exe in exes.items():
        data = build_user_bin(slot, version, project=PROJECT_NAME, payload=host_payload(exe.read_bytes()))
        (work / f"user{slot}.bin").write_bytes(data)
        exe.unlink()
    meta = {"project": PROJECT_NAME, "version": version, "mutation": mutation,
            "flash_size_map": SPI_FLASH_SIZE_MAP,
            "sha256": {f"user{s}.bin": hashlib.sha256((work / f"user{s}.bin").read_bytes()).hexdigest()
                       for s in (1, 2)}}
    (work / "build.json").write_text(json.dumps(meta, indent=1, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m harness.emu.sdk8266.build",
                                     description="Build the ESP8266 SDK FOTA client for the virtual ESP8266.")
    parser.add_argument("project", nargs="?", default=str(DEFAULT_PROJECT))
    parser.add_argument("--version", required=True)
    parser.add_argument("--mutation", choices=[m.removeprefix("OTA_CLIENT_MUTATION_") for m in MUTATIONS])
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    try:
        build = build_client(args.project, version=args.version, mutation=args.mutation)
    except (HostBuildError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{build.project} {build.version}: {build.build_dir} ({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
