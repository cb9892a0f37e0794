#!/usr/bin/env bash
# Entry points of the project; each one sets up what it needs first (a .venv with
# the package and its test dependencies), so a fresh clone needs nothing else.
#
#   ./run.sh suite   the main job: the virtual boards flashed by stock esptool and
#                    booted, with the flashing figures (later: the OTA scenario suite)
#   ./run.sh tests   the harness's own tests
#   ./run.sh setup   only create/refresh .venv
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
}

case "${1:-}" in
    setup)
        setup
        ;;
    tests)
        shift
        setup
        exec "$PY" -m pytest -n 6 tests "$@"
        ;;
    suite)
        shift
        setup
        exec "$PY" benchmarks/esptool_flash.py "$@"
        ;;
    *)
        echo "usage: ./run.sh suite|tests|setup [pytest args]" >&2
        exit 2
        ;;
esac
