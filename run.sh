#!/usr/bin/env bash
# Entry points of the project; each one sets up what it needs first (a .venv with the
# package and its test dependencies, Allure 3 from npm under tools/), so a fresh clone
# needs nothing else.
#
#   ./run.sh suite   the main job: the OTA scenarios on the virtual boards (rigs/emu.yaml),
#                    Allure results in reports/allure-results, the HTML report in reports/html
#                    (HIL_RIG=bench1 ./run.sh suite runs them on a real bench)
#   ./run.sh tests   the harness's own tests
#   ./run.sh setup   only create/refresh .venv and tools/
#
# The .venv gets the labgrid extra too (esp-ota-hil[farm]), so the board-farm tests run everywhere.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${HIL_VENV:-.venv}"
PY="$VENV/bin/python"

setup() {
    if [ ! -x "$PY" ]; then
        echo "run.sh: creating the virtual environment $VENV" >&2
        python3 -m venv "$VENV"
    fi
    # Reinstall only when the dependency list changed. pip's own output goes to a log that is
    # shown only when the install fails.
    local stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        local log="$VENV/install.log"
        echo "run.sh: installing esp-ota-hil with its dependencies and test tools into $VENV (pyproject.toml" \
             "changed or first run; log: $log)" >&2
        if ! { "$PY" -m pip install --upgrade pip && "$PY" -m pip install -e '.[test,farm]'; } >"$log" 2>&1; then
            tail -n 40 "$log" >&2
            echo "run.sh: installing into $VENV failed; the whole log is $log" >&2
            exit 1
        fi
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
    # Allure 3 for the HTML report (Node.js, no Java); skipped when the pinned version is there.
    "$PY" -c 'from harness.report_html import ensure_tool; ensure_tool()'
    # The ESP-IDF client built for the virtual ESP32 (cached by content; a no-op when nothing changed).
    "$PY" -m harness.emu.idf.build >/dev/null
    # The ESP8266 SDK client too, at the version the virtual board's baseline runs (harness/devices/sdk.py).
    "$PY" -c 'import sys
from harness.devices.sdk import host_build
from harness.emu.idf.build import HostBuildError
try:
    host_build()
except HostBuildError as e:
    sys.exit(f"error: {e}")' >/dev/null
}

case "${1:-}" in
    setup)
        setup
        ;;
    tests)
        shift
        setup
        exec "$PY" -m pytest -n auto --dist worksteal tests "$@"
        ;;
    suite)
        shift
        setup
        # pytest runs as a child (the report comes after it), so SIGTERM and SIGINT sent to this
        # script are passed on to it: it stops the run and switches every board off; no report then.
        "$PY" -m pytest scenarios/ --rig "${HIL_RIG:-emu}" -n auto \
            --alluredir reports/allure-results --clean-alluredir "$@" &
        pytest_pid=$!
        stopped=""
        trap 'stopped=TERM; kill -TERM "$pytest_pid" 2>/dev/null || true' TERM
        trap 'stopped=INT; kill -INT "$pytest_pid" 2>/dev/null || true' INT
        rc=0
        # a trapped signal ends `wait` early: wait again until pytest itself has ended
        while :; do
            wait "$pytest_pid" && rc=0 || rc=$?
            kill -0 "$pytest_pid" 2>/dev/null || break
        done
        trap - TERM INT
        if [ -n "$stopped" ]; then
            echo "run.sh: stopped by SIG$stopped (pytest exit status $rc); no report" >&2
            exit $((128 + $(kill -l "$stopped")))
        fi
        "$PY" -m harness.report_html --results reports/allure-results --out reports/html || true
        exit $rc
        ;;
    *)
        echo "usage: ./run.sh suite|tests|setup [pytest args]" >&2
        exit 2
        ;;
esac
