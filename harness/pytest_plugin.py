"""The pytest plugin: ``--rig``, ``--board``, the ``ota_target`` fixture and the run's Allure extras.

Thin on purpose: rigs are ``harness.rig``, boards ``harness.board``, servers and
artifacts ``harness.scenario``, reporting ``harness.report``.

A scenario asks for ``ota_target``: one (board, update kind) pair of the rig, in its
baseline state. Tests are generated for every pair the rig offers (``updates:`` of each
board, filtered by ``--board``), so the same scenario file runs on the virtual boards
and on a bench.
"""

from __future__ import annotations

import atexit
import os
import signal
import time
from pathlib import Path

import pytest

_BENCH_KEY = pytest.StashKey["object"]()
_RIG_KEY = pytest.StashKey["object"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("esp-ota-hil", "OTA hardware-in-the-loop")
    group.addoption("--rig", default=None,
                    help="rig name in rigs/ or a path to a rig file (default: emu, the virtual boards)")
    group.addoption("--board", action="append", default=[],
                    help="run only on this board of the rig (repeatable)")
    group.addoption("--agent-mutation", default=None,
                    help="deploy the agent with one safety check switched off (see harness/mutations.py)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario: an OTA scenario run against the rig's boards")
    if config.getoption("--rig") is not None:
        _select_rig(config)  # an explicit rig with a mistake stops the run before anything starts


def _select_rig(config: pytest.Config):
    """The rig and its selected boards (loaded once; the default rig is emu)."""
    selected = config.stash.get(_RIG_KEY, None)
    if selected is not None:
        return selected
    from .rig import RigError, load_rig

    try:
        rig = load_rig(config.getoption("--rig") or "emu")
        boards = rig.select(config.getoption("--board") or [])
    except RigError as e:
        raise pytest.UsageError(str(e)) from None
    if config.getoption("--agent-mutation"):
        from .mutations import MutationError, apply_mutation

        try:
            apply_mutation(config.getoption("--agent-mutation"))
        except MutationError as e:
            raise pytest.UsageError(str(e)) from None
    config.stash[_RIG_KEY] = (rig, boards)
    return rig, boards


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ota_target" not in metafunc.fixturenames:
        return
    _rig, boards = _select_rig(metafunc.config)
    kinds = getattr(metafunc.function, "update_kinds", None)
    pairs = [(b.name, k) for b in boards for k in b.updates if kinds is None or k in kinds]
    metafunc.parametrize("ota_target", pairs, ids=[f"{b}-{k}" for b, k in pairs], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # With pytest-xdist (--dist loadgroup) each bench board's tests stay on one worker: a board
    # is never shared between processes, and different boards run in parallel. A virtual board
    # is started by each worker that needs it, so its update kinds can run side by side.
    virtual = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "ota_target" not in callspec.params:
            continue
        if not virtual:
            virtual = {b.name: b.virtual for b in _select_rig(config)[1]}
        board, kind = callspec.params["ota_target"]
        item.add_marker(pytest.mark.xdist_group(f"{board}-{kind}" if virtual.get(board) else board))


@pytest.fixture(scope="session")
def rig(pytestconfig: pytest.Config):
    return _select_rig(pytestconfig)[0]


@pytest.fixture(scope="session")
def ota_bench(pytestconfig: pytest.Config, rig, tmp_path_factory):
    from .scenario import OtaBench

    workdir = Path(tmp_path_factory.mktemp("bench"))
    bench = OtaBench(rig, workdir, mutation=pytestconfig.getoption("--agent-mutation"))
    pytestconfig.stash[_BENCH_KEY] = bench
    _power_off_on_exit(bench)
    try:
        yield bench
    finally:
        bench.close()
        _write_run_properties(pytestconfig, rig, bench)


@pytest.fixture
def ota_target(request: pytest.FixtureRequest, ota_bench):
    from . import report
    from .scenario import Target

    board_name, kind = request.param
    board = ota_bench.board(board_name)
    t = Target(ota_bench, board, kind)
    mark = board.console.mark()
    try:
        t.prepare()
        yield t
    finally:
        report.attach_text(f"console {board_name}", board.console.text[mark:])
        report.attach_text("http server log", "\n".join(str(r) for r in ota_bench.http.log.records[-200:]))


def _power_off_on_exit(bench) -> None:
    """Boards go dark on Ctrl-C, SIGTERM and interpreter exit too, not only on fixture teardown."""

    def off(*_args) -> None:
        for board in list(bench.boards.values()):
            try:
                if not getattr(board.rig, "leave_on", False):
                    board.power.off()
            except Exception:
                pass

    atexit.register(off)
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        off()
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def _write_run_properties(config: pytest.Config, rig, bench) -> None:
    results = config.getoption("--alluredir", default=None) if config.pluginmanager.hasplugin("allure_pytest") \
        else None
    if not results:
        return
    from . import report

    props = {"rig": rig.name, "rig.file": str(rig.path),
             "agent.mutation": config.getoption("--agent-mutation") or "none",
             "run.started": time.strftime("%Y-%m-%d %H:%M:%S"), "host": os.uname().nodename}
    for b in rig.boards:
        props[f"board.{b.name}"] = f"{b.chip}, {'virtual' if b.virtual else 'bench'}, updates {'+'.join(b.updates)}"
        fw = bench._factories.get(b.name)
        if fw is not None:
            props[f"board.{b.name}.baseline"] = fw.version
    report.write_environment(results, props)
    report.write_categories(results)
