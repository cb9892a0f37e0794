"""Host build of the ESP8266 SDK FOTA client: warning-free against the SDK headers, cached, user1/user2 linked
for their slots, compile errors naming the file."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.emu.idf.build import HostBuildError
from harness.emu.sdk8266 import build as sdk_build
from harness.emu.sdk8266.build import DEFAULT_PROJECT, MUTATIONS, build_client, compile_command
from harness.esp.esp8266_image import check_sdk_crc, read_user_bin_desc


def test_client_compiles_warning_free_with_every_mutation(tmp_path):
    for mutation in (None, *MUTATIONS):
        cmd = compile_command("cc", DEFAULT_PROJECT, tmp_path / "app.elf", version="1.2.3", slot=2, mutation=mutation)
        assert "-Wextra" in cmd and "-Werror" in cmd
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_user_bins_are_linked_for_their_slots():
    build = build_client(version="2.3.4")
    for slot, data in ((1, build.user1), (2, build.user2)):
        desc = read_user_bin_desc(data)
        assert (desc.version, desc.linked_slot, desc.header_slot, desc.project) == ("2.3.4", slot, slot,
                                                                                   "esp8266_sdk_fota")
        assert check_sdk_crc(data)
    assert build.user1 != build.user2


def test_builds_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sdk_build._BUILT.clear()
    a = build_client(version="3.0.0")
    sdk_build._BUILT.clear()
    b = build_client(version="3.0.0")
    assert a.build_dir == b.build_dir and a.build_dir.is_relative_to(tmp_path / "cache")
    c = build_client(version="3.0.0", mutation="NO_CRC_CHECK")
    assert c.build_dir != a.build_dir and c.user2 != a.user2


def test_compile_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    project = tmp_path / "prj"
    shutil.copytree(DEFAULT_PROJECT, project, ignore=shutil.ignore_patterns("*.md", "Makefile"))
    (project / "user" / "broken.c").write_text("int broken(void) { return undeclared_thing; }\n")
    with pytest.raises(HostBuildError, match=r"in user/broken\.c"):
        build_client(project, version="1.0.0")


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown mutation"):
        build_client(version="1.0.0", mutation="NO_SUCH_THING")
    with pytest.raises(ValueError, match="version"):
        build_client(version="1 0")


def test_many_processes_building_the_same_client_at_once(tmp_path):
    import os
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-m", "harness.emu.sdk8266.build", "--version", "4.0.0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    dirs = {out.split(": ")[1].split(" (")[0] for out in outs}
    assert len(dirs) == 1
    entries = [p.name for p in (tmp_path / "cache" / "esp-ota-hil" / "sdk8266").iterdir()]
    assert len(entries) == 1, entries  # no half-built directory left behind
