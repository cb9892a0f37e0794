"""The virtual ESP8266's NONOS SDK (harness/emu/sdk8266) as an app sees it: the upgrade API's FOTA-demo semantics
(flag in RAM, erase calls, the 4-byte carry, the slot bound), the heap figure, system_upgrade_reboot without
FINISH. The probe app (tests/emu/sdk_apps/upgrade_probe) runs on a virtual ESP8266 in SDK layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_sdk_client import sdk_board  # noqa: F401  (the board factory)

from harness.emu.sdk8266.build import build_client

pytestmark = pytest.mark.timeout(60)

PROBE = Path(__file__).parent / "sdk_apps" / "upgrade_probe"


@pytest.fixture(scope="module")
def probe():
    return build_client(PROBE, version="0.0.1")


def test_upgrade_api_semantics(sdk_board, probe):  # noqa: F811
    board = sdk_board(probe, name="probe")
    board.wait(r"probe: still running")
    lines = {}
    for line in board.console().splitlines():
        if line.startswith("probe: "):
            key, _, rest = line[len("probe: "):].partition(" ")
            lines[key] = rest.strip()
    assert lines["flag"] == "0 0 1"  # IDLE at start, 3 and 7 ignored
    assert lines["before"] == "init 0"  # no target before system_upgrade_init
    assert lines["null"] == "1 1"  # NULL or 0 bytes: true
    # len > 4096 erased the sectors from the start sector to cover it, and nothing after them
    assert lines["erase"] == "1 ffffffff ffffffff 00000000"
    # 7 bytes: one word written, three carried; the next byte completes the second word; 3 more stay carried
    assert lines["carry"] == "1 1 1 44434241 48474645 ffffffff"
    # 122 sectors of writes fit, the next word and an erase past the slot fail
    assert lines["bound"] == "122 0 0"
    free, cost, refused = lines["heap"].split()
    assert 40 * 1024 <= int(free) <= 50 * 1024 and cost == "1008" and refused == "1"
    assert lines["heapback"] == "1"  # os_free gives it back
    assert "reboot to use" not in board.console()
    assert lines["still"] == "running, map 4, user1"
