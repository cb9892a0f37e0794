"""The pytest plugin: ``--rig``, ``--board``, the ``ota_target`` fixture and the run's Allure extras.

Thin on purpose: rigs are ``harness.rig``, boards ``harness.board``, device implementations
``harness.devices``, servers and artifacts ``harness.scenario``, reporting ``harness.report``.

A scenario asks for ``ota_target``: one (board, device implementation, update kind) of the
rig, in its baseline state. Cases are generated for every such triple the rig offers (each
board's ``devices:`` and their ``updates:``, filtered by ``--board``) where the device can do
what the scenario needs (``@pytest.mark.needs(Capability...)``; where it cannot, no case is
generated), so the same scenario file runs on the virtual boards and on a bench, for every
device. A ``--mutation`` run generates only the cases of the device the mutation belongs to.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from .lifeline import die_with_parent

_BENCH_KEY = pytest.StashKey["object"]()
_RIG_KEY = pytest.StashKey["object"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("esp-ota-hil", "OTA hardware-in-the-loop")
    group.addoption("--rig", default=None,
                    help="rig name in rigs/ or a path to a rig file (default: emu, the virtual boards)")
    group.addoption("--board", action="append", default=[],
                    help="run only on this board of the rig (repeatable)")
    group.addoption("--mutation", "--agent-mutation", dest="mutation", default=None, metavar="NAME",
                    help="run the device implementation the mutation belongs to with one safety check switched "
                         "off, and only its cases (harness/mutations.py; --agent-mutation is the older name)")
    group.addoption("--hil-logs", default=None, metavar="DIR",
                    help="where each scenario case writes its console and server logs (default: reports/logs, "
                         "one directory per case)")
    group.addoption("--no-snapshots", action="store_true", default=False,
                    help="virtual boards: prepare every case from scratch (esptool, mpremote) instead of "
                         "restoring the state saved after the first")
    group.addoption("--no-direct-reads", action="store_true", default=False,
                    help="virtual boards: read boot states with esptool, as on a bench, not from the flash file")
    group.addoption("--no-alluredir", action="store_true", default=False,
                    help="a scenario run writes no Allure results (by default it writes reports/allure-results)")


def reports_dir(config: pytest.Config) -> Path:
    """``reports/`` of the checkout (``HIL_REPORTS_DIR`` moves it: the harness's own tests keep theirs apart)."""
    return Path(os.environ.get("HIL_REPORTS_DIR") or config.rootpath / "reports")


def _scenario_run(config: pytest.Config) -> bool:
    return config.getoption("--rig") is not None or any("scenarios" in Path(str(a).split("::")[0]).parts
                                                        for a in config.args)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: before allure-pytest reads its options
    config.addinivalue_line("markers", "scenario: an OTA scenario run against the rig's boards")
    config.addinivalue_line("markers", "kinds(*update_kinds): the scenario's cases are generated only for these "
                                       "update kinds (firmware, files)")
    config.addinivalue_line("markers", "needs(*capabilities): the scenario's cases are generated only for device "
                                       "implementations with these capabilities (harness.devices.Capability)")
    _install_stop_handlers(config)
    # which worker of the run this process is, for the labgrid user it holds places as (harness.farm.job)
    os.environ["HIL_FARM_WORKER"] = getattr(config, "workerinput", {}).get("workerid", "main")
    if not hasattr(config, "workerinput"):
        _farm_run_environment()
    if config.getoption("--rig") is not None:
        _select_rig(config)  # an explicit rig with a mistake stops the run before anything starts
    option = config.option
    worker = hasattr(config, "workerinput")
    if hasattr(option, "allure_report_dir"):
        if _scenario_run(config) and not option.allure_report_dir and not config.getoption("--no-alluredir") \
                and not option.collectonly:
            option.allure_report_dir = str(reports_dir(config) / "allure-results")
            option.clean_alluredir = True
        if worker:
            # the controller has cleaned the directory; a worker that did it too could remove what
            # another worker has already written
            option.clean_alluredir = False


def _select_rig(config: pytest.Config):
    """The rig and its selected boards (loaded once; the default rig is emu)."""
    selected = config.stash.get(_RIG_KEY, None)
    if selected is not None:
        return selected
    from .rig import RigError, load_rig

    try:
        rig = load_rig(config.getoption("--rig") or "emu")
        boards = rig.select(config.getoption("--board") or [])
        rig.wifi(boards)  # the credentials the selected bench boards join with, before anything starts
    except RigError as e:
        raise pytest.UsageError(str(e)) from None
    if config.getoption("--mutation"):
        from .mutations import MutationError, check_mutation

        try:
            check_mutation(config.getoption("--mutation"))
        except MutationError as e:
            raise pytest.UsageError(str(e)) from None
    config.stash[_RIG_KEY] = (rig, boards)
    return rig, boards


def rig_cases(config: pytest.Config, kinds=None, needs: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """(board, device, update kind) of every case the selected boards offer: of the mutated device only in a
    ``--mutation`` run, of update kinds ``kinds`` (all by default), of devices with the capabilities ``needs``."""
    from .devices import device_class

    mutated = None
    if config.getoption("--mutation"):
        from .mutations import mutation

        mutated = mutation(config.getoption("--mutation")).device
    cases = []
    for board in _select_rig(config)[1]:
        for device, kind in board.cases():
            if mutated is not None and device != mutated:
                continue
            if kinds is not None and kind not in kinds:
                continue
            if not set(needs) <= device_class(device).capabilities:
                continue
            cases.append((board.name, device, kind))
    return cases


def case_id(board: str, device: str, kind: str) -> str:
    return f"{board}-{device}-{kind}"


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """With pytest-xdist, a scenario run keeps each bench board's cases in one worker process (a board
    is never driven by two) and each virtual board's cases of one device and update kind in one worker
    (it starts its own copy of the board once, and then restores its snapshot before each case).

    The group of a case comes from its parameter id (``<board>-<device>-<kind>``), so no marker has to
    survive into xdist's test ids (which pytest-xdist 3.8's ``loadgroup`` cannot do on pytest 9).
    """
    if not _scenario_run(config):
        return None
    from xdist.scheduler import LoadScopeScheduling

    groups = {}
    # a virtual board is started by each worker that needs it, and a labgrid board is whichever matching place
    # each worker gets: their cases spread over the workers; a bench board's stay in one
    spread = {b.name: b.virtual or b.farm is not None for b in _select_rig(config)[1]}
    farm = {b.name for b in _select_rig(config)[1] if b.farm is not None}
    for board, device, kind in rig_cases(config):
        # None: each case is a scope of its own (any worker's place can run it)
        groups[case_id(board, device, kind)] = (None if board in farm else
                                                case_id(board, device, kind) if spread[board] else board)

    class BoardScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            param = nodeid.rpartition("[")[2].rstrip("]") if nodeid.endswith("]") else ""
            if param in groups:
                return groups[param] or nodeid
            # other parameters around it: the longest id that fits (board "m-n" before board "n")
            fits = [key for key in groups if param.startswith(key + "-") or param.endswith("-" + key)]
            return (groups[max(fits, key=len)] or nodeid) if fits else nodeid  # else not a scenario case: own scope

    return BoardScheduling(config, log)


#: the harness's own tests mostly wait on board processes and sockets, not on the CPU
_WORKERS_PER_CPU = 6
_MAX_WORKERS = 32


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """What ``-n auto`` means: one worker per board (per board, device and update kind on virtual boards) for
    the scenarios, several per CPU for the harness's own tests (PYTEST_XDIST_AUTO_NUM_WORKERS still wins)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    if _scenario_run(config):
        rig, boards = _select_rig(config)
        virtual = {b.name: b.virtual for b in boards}
        cases = rig_cases(config)
        if rig.labgrid is not None:
            from .farm.pool import auto_workers

            return auto_workers(rig, boards, cases)
        return max(1, sum(1 for b, _d, _k in cases if virtual[b]) + len({b for b, _d, _k in cases if not virtual[b]}))
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return min(_MAX_WORKERS, _WORKERS_PER_CPU * cpus)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ota_target" not in metafunc.fixturenames:
        return
    kinds = getattr(metafunc.function, "update_kinds", None)
    for mark in metafunc.definition.iter_markers("kinds"):
        kinds = tuple(mark.args) if kinds is None else tuple(k for k in kinds if k in mark.args)
    needs = tuple(c for mark in metafunc.definition.iter_markers("needs") for c in mark.args)
    from .devices import Capability

    unknown = [c for c in needs if c not in Capability.KNOWN]
    if unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown capability {unknown[0]!r} in "
                                f"@pytest.mark.needs (known: {', '.join(Capability.KNOWN)})")
    cases = rig_cases(metafunc.config, kinds, needs)
    # no device of the rig can do what the scenario needs: no case (not a skip)
    metafunc.parametrize("ota_target", cases, ids=[case_id(*c) for c in cases], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or not isinstance(callspec.params.get("ota_target"), tuple):
            continue  # (no case of the rig: pytest's one skipped placeholder)
        board, device, kind = callspec.params["ota_target"]
        # what the one-line result of the case shows, and the report's parameters (travels with xdist's reports)
        item.user_properties.append(("hil.case", {"board": board, "device": device, "kind": kind}))


@pytest.fixture(scope="session")
def rig(pytestconfig: pytest.Config):
    return _select_rig(pytestconfig)[0]


@pytest.fixture(scope="session")
def ota_bench(pytestconfig: pytest.Config, rig, tmp_path_factory):
    from .scenario import OtaBench

    workdir = Path(tmp_path_factory.mktemp("bench"))
    bench = OtaBench(rig, workdir, mutation=pytestconfig.getoption("--mutation"),
                     snapshots=not pytestconfig.getoption("--no-snapshots"),
                     direct_reads=not pytestconfig.getoption("--no-direct-reads"))
    pytestconfig.stash[_BENCH_KEY] = bench
    atexit.register(bench.close)  # a run that ends without its teardown still switches its boards off
    try:
        yield bench
    finally:
        atexit.unregister(bench.close)
        errors = bench.close()
        _write_run_properties(pytestconfig, rig, bench)
        if errors:
            pytest.fail("boards not closed cleanly: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def ota_target(request: pytest.FixtureRequest, ota_bench):
    from .evidence import CaseEvidence
    from .scenario import OtaCase

    board_name, device, kind = request.param
    board = ota_bench.board(board_name)  # BoardUnavailable: one line (pytest_runtest_makereport)
    if board.farm is not None:
        request.node.user_properties.append(("hil.place", board.farm.place))
    t = OtaCase(ota_bench, board, kind, device)
    evidence = CaseEvidence(request.node.nodeid, t, _logs_root(request.config))
    request.node.stash[_EVIDENCE_KEY] = evidence
    try:
        t.prepare()
        yield t
    finally:
        evidence.write()  # again: with what the teardown printed


_EVIDENCE_KEY = pytest.StashKey["object"]()


def _logs_root(config: pytest.Config) -> Path:
    option = config.getoption("--hil-logs")
    return Path(option) if option else reports_dir(config) / "logs"


def _case(item_or_report) -> dict | None:
    for name, value in getattr(item_or_report, "user_properties", ()):
        if name == "hil.case":
            return value
    return None


def _place(item_or_report) -> str | None:
    """The labgrid place a farm board's case ran on."""
    for name, value in getattr(item_or_report, "user_properties", ()):
        if name == "hil.place":
            return value
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item):
    if _STOP["signal"] is not None:
        raise RunStopped(f"{_STOP['signal']}: run stopped")
    item.stash[_STARTED_KEY] = time.time()
    try:
        return (yield)
    except BaseException as e:
        evidence = item.stash.get(_EVIDENCE_KEY, None)
        if evidence is not None and not isinstance(e, pytest.skip.Exception):
            evidence.failed(stopping=isinstance(e, KeyboardInterrupt))
        raise
    finally:
        _describe_case(item)


_STARTED_KEY = pytest.StashKey[float]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item):
    evidence = item.stash.get(_EVIDENCE_KEY, None)
    if evidence is not None:
        evidence.body_starts()
    try:
        result = yield
    except BaseException as e:
        if evidence is not None:
            if isinstance(e, pytest.skip.Exception):
                evidence.passed()
            else:
                evidence.failed(stopping=isinstance(e, KeyboardInterrupt))
        raise
    else:
        if evidence is not None:
            evidence.passed()
        return result
    finally:
        _set_case_start(item)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    from .scenario import BoardUnavailable

    if call.excinfo is not None and isinstance(call.excinfo.value, BoardUnavailable):
        rep.longrepr = str(call.excinfo.value)  # the reason is the whole story: no traceback
    evidence = item.stash.get(_EVIDENCE_KEY, None)
    if evidence is not None and rep.failed and rep.when in ("setup", "call") and _STOP["signal"] is None:
        # trylast: inside allure-pytest's wrapper, which then takes the text with these sections for its trace
        for title, text in evidence.failure_text():
            if hasattr(rep.longrepr, "addsection"):
                rep.longrepr.addsection(title, text)
            else:
                rep.sections.append((title, text))
    return rep


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    try:
        return (yield)
    finally:
        _tidy_report_finalizers(fixturedef)


def _tidy_report_finalizers(fixturedef) -> None:
    """allure-pytest reports every finalizer of a fixture as a tear-down step named after the callable:
    pytest's own (a lambda that closes the report's fixture group and so never gets a status, a partial)
    become ``<lambda>`` and ``1``. Only the fixture's teardown is reported, as "<fixture> (teardown)"."""
    try:
        from allure_commons._allure import fixture as reported
    except ImportError:
        return
    finalizers = getattr(fixturedef, "_finalizers", None)
    if not finalizers:
        return
    for index, fin in enumerate(finalizers):
        if not isinstance(fin, reported):
            continue
        original = fin._fixture_function
        if getattr(original, "__name__", None) == "<lambda>":
            finalizers[index] = original
        else:
            fin._name = f"{fixturedef.argname} (teardown)"


def _describe_case(item: pytest.Item) -> None:
    """Allure: a title and the docstring, board / device / update kind as parameters of their own."""
    case = _case(item)
    if case is None:
        return
    from . import report

    result = report.case_result(item.nodeid)
    if result is None:
        return
    doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
    title = doc.split("\n", 1)[0].rstrip(".") if doc else item.originalname
    result.name = f"{title} ({case['board']}, {case['device']}, {case['kind']})"
    if doc:
        result.description = doc
    from allure_commons.model2 import Parameter

    result.parameters = [p for p in result.parameters if p.name != "ota_target"]
    for name, key in (("board", "board"), ("device", "device"), ("update kind", "kind")):
        if not any(p.name == name for p in result.parameters):
            result.parameters.append(Parameter(name=name, value=case[key]))
    place = _place(item)
    if place is not None and not any(p.name == "labgrid place" for p in result.parameters):
        result.parameters.append(Parameter(name="labgrid place", value=place))


def _set_case_start(item: pytest.Item) -> None:
    """A case's time in the report counts from its set-up, not from its body (allure-pytest's default)."""
    started = item.stash.get(_STARTED_KEY, None)
    if started is None or _case(item) is None:
        return
    from . import report

    result = report.case_result(item.nodeid)
    if result is not None:
        result.start = int(started * 1000)


# -- one line per case ------------------------------------------------------------------------------
_CASES: dict[str, dict] = {}


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """Scenario cases print a line each (below) instead of pytest's dot, unless pytest is verbose."""
    if config.option.verbose > 0 or _case(report) is None:
        return None
    if report.when in ("setup", "teardown"):
        if report.failed:
            return "error", "", "ERROR"
        if report.skipped:
            return "skipped", "", "SKIPPED"
        return "", "", ""
    if report.failed:
        return "failed", "", "FAILED"
    if report.skipped:
        return "skipped", "", "SKIPPED"
    return "passed", "", "PASSED"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    case = _case(report)
    if case is None or _STOP["session"] is None:
        return
    config = _STOP["session"].config
    if hasattr(config, "workerinput"):
        return  # the controller prints
    state = _CASES.setdefault(report.nodeid, {"seconds": 0.0, "outcome": "PASSED"})
    state["seconds"] += report.duration
    if report.failed and state["outcome"] != "FAILED":
        state["outcome"] = "FAILED" if report.when == "call" else "ERROR"
    elif report.skipped and state["outcome"] == "PASSED":
        state["outcome"] = "SKIPPED"
    if report.when != "teardown":
        return
    _CASES.pop(report.nodeid, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    name = report.nodeid.split("::")[-1].split("[")[0]
    outcome = state["outcome"]
    reporter.ensure_newline()
    device_width = max([12] + [len(d) for _b, d, _k in rig_cases(config)])  # the rig's devices line up
    board = case["board"] if _place(report) is None else f"{case['board']}@{_place(report)}"
    reporter.write_line(f"{outcome:<7} {board:<16} {case['device']:<{device_width}} {case['kind']:<9} "
                        f"{state['seconds']:6.1f} s  {name}",
                        green=outcome == "PASSED", red=outcome in ("FAILED", "ERROR"), yellow=outcome == "SKIPPED")


class RunStopped(KeyboardInterrupt):
    """SIGTERM or SIGINT: pytest stops the run the way it stops on Ctrl-C, and tears every fixture down."""


_STOP: dict = {"signal": None, "previous": {}, "session": None, "controller": False}


def _install_stop_handlers(config: pytest.Config) -> None:
    """SIGTERM and SIGINT stop the whole run: no further test starts, the teardown switches every board off.

    The first signal raises :class:`RunStopped` in the main thread (pytest then stops as on
    Ctrl-C and runs every fixture's teardown, which switches the boards off and stops the
    virtual ones); later ones only say that the run is stopping. An xdist controller passes
    the signal on to its workers, and a worker asks for SIGTERM when its controller dies.
    """
    if threading.current_thread() is not threading.main_thread() or _STOP["previous"]:
        return
    if hasattr(config, "workerinput"):
        die_with_parent(signal.SIGTERM)
    # a controller's children are its workers; a run without xdist has only its virtual boards
    _STOP["controller"] = bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")
    for sig in (signal.SIGTERM, signal.SIGINT):
        _STOP["previous"][sig] = signal.signal(sig, _on_stop_signal)
    _STOP["signal"] = None


def _restore_stop_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in _STOP["previous"].items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    _STOP["previous"] = {}


def _on_stop_signal(signum: int, frame) -> None:
    name = signal.Signals(signum).name
    if _STOP["signal"] is not None:
        print(f"hil: {name}: the run is already stopping (boards are being switched off)", file=sys.__stderr__,
              flush=True)
        return
    _STOP["signal"] = name
    message = f"{name}: run stopped; no further test starts, every board is switched off"
    session = _STOP["session"]
    if session is not None:
        # even if a clean-up step masks the exception below, pytest stops after the current test
        session.shouldstop = message
    if _STOP["controller"]:
        _signal_workers(signum)
    raise RunStopped(message)


def _signal_workers(signum: int) -> None:
    """An xdist controller's workers get the signal too (its only child processes are its workers)."""
    for pid in _children(os.getpid()):
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children") if os.path.isdir(f"/proc/{pid}/task") else []:
        with contextlib.suppress(OSError, ValueError):
            found += [int(p) for p in task.read_text().split()]
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    _STOP["session"] = session


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if _STOP["signal"] is not None:
        terminalreporter.write_line(f"hil: stopped by {_STOP['signal']}: no further test was started; the boards "
                                    "of the run were switched off and released", red=True, bold=True)
    if not hasattr(config, "workerinput") and _RIG_KEY in config.stash and config.stash[_RIG_KEY][0].labgrid:
        from .farm.pool import run_summary

        for line, bad in run_summary(config.stash[_RIG_KEY][0], getattr(config.option, "allure_report_dir", None)):
            terminalreporter.write_line(f"hil: {line}", red=bad, bold=bad)


def pytest_unconfigure(config: pytest.Config) -> None:
    _restore_stop_handlers()
    _STOP["session"] = None
    if "harness.farm.provider" in sys.modules:
        # whatever a stopped or failed run still holds goes back to the farm now, not at interpreter exit
        from .farm import client, provider

        provider.release_all()
        client.close_all()
    if not hasattr(config, "workerinput") and os.environ.get("HIL_FARM_RUN_DIR"):
        import shutil

        shutil.rmtree(os.environ["HIL_FARM_RUN_DIR"], ignore_errors=True)


def _farm_run_environment() -> None:
    """A labgrid run's job id and the directory its workers share (``harness.farm``); workers inherit both."""
    import tempfile

    from .farm.job import JOB_ENV, default_job
    from .farm.provider import RUN_DIR_ENV

    os.environ.setdefault(JOB_ENV, default_job())
    os.environ[RUN_DIR_ENV] = os.path.join(tempfile.gettempdir(), f"hil-farm-run-{os.getpid()}-{time.time_ns()}")


def _write_run_properties(config: pytest.Config, rig, bench) -> None:
    results = getattr(config.option, "allure_report_dir", None)
    if not results:
        return
    from . import report

    props = {"rig": rig.name, "rig.file": str(rig.path),
             "mutation": config.getoption("--mutation") or "none",
             "run.started": time.strftime("%Y-%m-%d %H:%M:%S"), "host": os.uname().nodename}
    for b in rig.boards:
        devices = ", ".join(f"{d.kind} ({'+'.join(d.updates)})" for d in b.devices)
        props[f"board.{b.name}"] = f"{b.chip}, {'virtual' if b.virtual else 'bench'}, devices {devices}"
        for d in b.devices:
            device = bench.devices.get((b.name, d.kind))
            fw = getattr(device, "_firmware", None)
            if fw is not None:
                props[f"board.{b.name}.{d.kind}.baseline"] = fw.version
    report.write_environment(results, props)
    report.write_categories(results)
