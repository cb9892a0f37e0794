"""The labgrid farm end to end: a real labgrid coordinator and exporter on the loopback exporting virtual
boards (serial as NetworkSerialPort, power through labgrid's ``rest`` model to a front of each board's control
endpoint), and scenario runs through a labgrid rig."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("labgrid", reason="the farm extra (pip install 'esp-ota-hil[farm]') is not installed")

from harness.farm.client import FarmClient  # noqa: E402
from harness.farm.virtual import VirtualFarm, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def idf_build():
    from harness.emu.idf.build import build_app
    from harness.servers.tls import CertificateAuthority, kept_ca_dir

    ca = CertificateAuthority.load_or_create(kept_ca_dir())
    return build_app(ca_pem=ca.cert_pem).build_dir


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """Two virtual ESP32s as places vb-0 and vb-1, and place vb-dead whose power switch does not answer."""
    dead = {"NetworkSerialPort": {"host": "127.0.0.1", "port": free_port(), "speed": 115200, "protocol": "rfc2217"},
            "NetworkPowerPort": {"model": "rest", "host": f"http://127.0.0.1:{free_port()}/power/{{index}}",
                                 "index": 0}}
    farm = VirtualFarm(tmp_path_factory.mktemp("farm"), ["esp32", "esp32"], {"pool": "ota"},
                       extra_places={"vb-dead": (dead, {"chip": "esp32", "pool": "ota"})})
    started = time.monotonic()
    try:
        farm.start()
        farm.seconds_to_start = time.monotonic() - started
        yield farm
    finally:
        farm.stop()


def _rig(path, farm, build_dir, tags="{pool: ota}", wait=90):
    path.write_text(f"""\
host: 127.0.0.1
wifi: {{ssid_env: HIL_FARM_TEST_SSID, key_env: HIL_FARM_TEST_KEY}}
labgrid: {{coordinator: {farm.address}, wait: {wait}, off_time: 0.05}}
boards:
  - name: esp32
    chip: esp32
    tags: {tags}
    devices:
      - {{kind: esp-idf, build_dir: {build_dir}}}
""")
    return path


def _env(job):
    return dict(os.environ, HIL_FARM_JOB=job, HIL_FARM_TEST_SSID="farm", HIL_FARM_TEST_KEY="", LG_COORDINATOR="")


def _holdings(farm, job):
    from harness.farm.provider import job_holdings

    admin = FarmClient(farm.address)
    try:
        return job_holdings(admin, job)
    finally:
        admin.close()


def test_labgrid_scenarios_run_on_two_places_with_three_workers(farm, idf_build, tmp_path):
    rig = _rig(tmp_path / "farm.yaml", farm, idf_build)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios/test_invalid_images.py", "--rig", str(rig), "-n", "3",
         "-k", "truncated or random",
         "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "run"), "--alluredir", str(tmp_path / "allure"),
         "--hil-logs", str(tmp_path / "logs")],
        cwd=ROOT, env=_env("farmtest"), capture_output=True, text=True, timeout=200)
    wall = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    # every case ran on one of the two good places, both were used
    ran_on = set(re.findall(r"^PASSED\s+esp32@(\S+)", proc.stdout, re.M))
    assert ran_on == {"vb-0", "vb-1"}, out[-3000:]
    # the dead place failed its checks twice and was taken out of the run's pool, and the run says so
    assert re.search(r"hil: labgrid place vb-dead was taken out of this run's pool: failed its infrastructure "
                     r"checks 2 times", proc.stdout), out[-3000:]
    # one report: each case names the place it ran on
    results = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
    assert sorted(next(x["value"] for x in r["parameters"] if x["name"] == "labgrid place") in ("vb-0", "vb-1")
                  for r in results) == [True] * 3, results
    env = (tmp_path / "allure" / "environment.properties").read_text()
    assert "labgrid.out_of_pool.vb-dead=" in env and "labgrid.place.vb-0=" in env, env
    # three workers on two places: one waited for a place another worker gave back
    waits = [float(w) for w in re.findall(r"waited (\d+\.\d) s", proc.stdout)]
    assert len(waits) == 3 and max(waits) > 1.0, out[-3000:]
    # nothing is held after the run
    assert _holdings(farm, "farmtest") == ([], [])
    acquired = re.findall(r"acquired in (\d+\.\d) s", proc.stdout)
    print(f"farm start {farm.seconds_to_start:.1f} s; run {wall:.1f} s; waits {waits}; acquire {acquired}")


def _start_run(tmp_path, farm, build_dir, job, name):
    rig = _rig(tmp_path / f"{name}.yaml", farm, build_dir, tags="{pool: ota}")
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "scenarios/test_invalid_images.py", "--rig", str(rig), "-p", "no:xdist",
         "-p", "no:cacheprovider", "--basetemp", str(tmp_path / name), "--no-alluredir",
         "--hil-logs", str(tmp_path / f"{name}-logs")],
        cwd=ROOT, env=_env(job), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_held(farm, job, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        places, _ = _holdings(farm, job)
        if places:
            return places
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"job {job} never acquired a place")


def test_labgrid_sigterm_releases_the_place(farm, idf_build, tmp_path):
    proc = _start_run(tmp_path, farm, idf_build, "termjob", "term")
    try:
        places = _wait_held(farm, "termjob", proc)
        assert places[0][1].endswith("/termjob-main")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "stopped by SIGTERM" in out, out[-3000:]
    assert _holdings(farm, "termjob") == ([], [])


def test_labgrid_sigkilled_run_s_place_is_freed_by_hil_farm_release(farm, idf_build, tmp_path):
    proc = _start_run(tmp_path, farm, idf_build, "killjob", "kill")
    try:
        places = _wait_held(farm, "killjob", proc)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # labgrid keeps a killed holder's place (it knows a host and a user, not a process)
    held, reservations = _holdings(farm, "killjob")
    assert [p for p, _ in held] == [p for p, _ in places] and reservations
    release = subprocess.run([sys.executable, "-m", "harness.cli", "farm", "release", "--job", "killjob",
                              "--coordinator", farm.address], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert release.returncode == 0, release.stdout + release.stderr
    assert f"released {places[0][0]}" in release.stdout
    assert _holdings(farm, "killjob") == ([], [])
    # -n auto: a worker per matching place (vb-0, vb-1, vb-dead), no more than there are cases
    from harness.farm.pool import auto_workers
    from harness.rig import load_rig

    rig = load_rig(str(tmp_path / "kill.yaml"), check_files=False)
    cases = [("esp32", "esp-idf", "firmware")]
    assert auto_workers(rig, rig.boards, cases * 5) == 3 and auto_workers(rig, rig.boards, cases) == 1
    listing = subprocess.run([sys.executable, "-m", "harness.cli", "farm", "list", "--coordinator", farm.address],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"^vb-0\s+chip=esp32 pool=ota\s+-", listing.stdout, re.M), listing.stdout


def test_labgrid_rig_check_takes_a_place_checks_it_and_gives_it_back(farm, idf_build, tmp_path):
    rig = _rig(tmp_path / "check.yaml", farm, idf_build, tags="{pool: ota}")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "rig", "check", str(rig)], cwd=ROOT,
                          env=_env("checkjob"), capture_output=True, text=True, timeout=120)
    rows = {tuple(c.strip() for c in line.split("\u2502")[1:4]) for line in proc.stdout.splitlines()
            if line.startswith("\u2502")}
    for check in ("power", "port", "chip", "baseline"):
        assert ("esp32", check, "ok") in rows, proc.stdout
    assert _holdings(farm, "checkjob") == ([], [])
