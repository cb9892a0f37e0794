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
set -euo pipefail
cd "$(dirname "$0")"

VENV="${HIL_VENV:-.venv}"
PY="$VENV/bin/python"

setup() {
    if [ ! -x "$PY" ]; then
        python3 -m venv "$VENV"
    fi
    # Reinstall only when the dependency list changed.
    local stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        "$PY" -m pip install --quiet --upgrade pip
        "$PY" -m pip install --quiet -e '.[test]'
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
    # Allure 3 for the HTML report (Node.js, no Java); skipped when the pinned version is there.
    "$PY" -c 'from harness.report_html import ensure_tool; ensure_tool()'
}

case "${1:-}" in
    setup)
        setup
        ;;
    tests)
        shift
        setup
        exec "$PY" -m pytest -n 12 --dist worksteal tests "$@"
        ;;
    suite)
        shift
        setup
        rc=0
        "$PY" -m pytest scenarios/ --rig "${HIL_RIG:-emu}" -n 3 --dist loadgroup \
            --alluredir reports/allure-results --clean-alluredir "$@" || rc=$?
        "$PY" -m harness.report_html --results reports/allure-results --out reports/html || true
        exit $rc
        ;;
    *)
        echo "usage: ./run.sh suite|tests|setup [pytest args]" >&2
        exit 2
        ;;
esac
