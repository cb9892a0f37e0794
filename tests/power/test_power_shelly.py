"""Shelly Gen1 (REST) and Gen2 (JSON-RPC) at the HTTP level: fake devices on a local port."""

from __future__ import annotations

import time

import pytest
from power_fakes import FakeShellyGen1, FakeShellyGen2, HttpAnswer, closed_port

from harness.power import PowerSwitchError, make_switch
from harness.power.shelly import ShellyGen1Switch, ShellyGen2Switch


def rpc_calls(device) -> list[tuple[str, dict]]:
    return [(r.json()["method"], r.json()["params"]) for r in device.requests if r.path == "/rpc"]


# -- Gen1 --------------------------------------------------------------------------------------------------------


def test_gen1_turns_the_relay_and_reads_ison(http_device):
    relay = FakeShellyGen1(relays=2)
    device = http_device(relay)
    with make_switch("shelly", {"host": device.url, "generation": 1, "channel": 1}, "dut") as switch:
        assert isinstance(switch, ShellyGen1Switch)
        switch.on()
        assert switch.state() is True
        switch.cycle(off_time=0.05)
        switch.off()
    assert [(r.method, r.target) for r in device.requests] == [
        ("GET", "/relay/1?turn=on"),
        ("GET", "/relay/1"),
        ("GET", "/relay/1?turn=off"),
        ("GET", "/relay/1?turn=on"),
        ("GET", "/relay/1?turn=off"),
    ]
    assert relay.ison == [False, False]


def test_gen1_basic_auth(http_device):
    device = http_device(FakeShellyGen1(password="pw"))
    ShellyGen1Switch(device.url, password="pw").on()
    with pytest.raises(PowerSwitchError, match=r"GET /relay/0\?turn=on: expected JSON with a boolean 'ison', "
                                               r"got HTTP 401 Unauthorized \(check the credentials\)"):
        ShellyGen1Switch(device.url, password="wrong").on()


def test_gen1_auto_off_sends_a_timer_and_refreshes_it_while_on(http_device):
    device = http_device(FakeShellyGen1())
    switch = ShellyGen1Switch(device.url, auto_off=0.3)
    switch.on()
    time.sleep(0.45)  # at least two refreshes, one every auto_off / 3
    switch.off()
    targets = [r.target for r in device.requests]
    assert targets[0] == "/relay/0?turn=on&timer=0.3"
    assert targets[-1] == "/relay/0?turn=off"
    refreshes = targets[1:-1]
    assert len(refreshes) >= 2 and set(refreshes) == {"/relay/0?turn=on&timer=0.3"}
    time.sleep(0.25)
    assert len(device.requests) == len(targets), "off() must stop the refresh"


def test_gen1_a_relay_that_stays_off_is_reported(http_device):
    device = http_device(lambda request: HttpAnswer(200, {"ison": False, "has_timer": False}))
    with pytest.raises(PowerSwitchError, match=r"GET /relay/0\?turn=on: expected ison=true, the device reports "
                                               r"ison=false"):
        ShellyGen1Switch(device.url).on()


# -- Gen2 --------------------------------------------------------------------------------------------------------


def test_gen2_switch_set_and_get_status(http_device):
    plug = FakeShellyGen2(switches=2)
    device = http_device(plug)
    with make_switch("shelly", {"host": device.url, "channel": "1"}, "dut") as switch:
        assert isinstance(switch, ShellyGen2Switch)
        switch.on()
        assert switch.state() is True
        switch.off()
        assert switch.state() is False
    assert rpc_calls(device) == [
        ("Switch.Set", {"id": 1, "on": True}),
        ("Switch.GetStatus", {"id": 1}),
        ("Switch.Set", {"id": 1, "on": False}),
        ("Switch.GetStatus", {"id": 1}),
    ]
    frame = device.requests[0].json()
    assert frame["id"] == 1 and frame["src"] == "esp-ota-hil"
    assert all(r.method == "POST" and r.headers["Content-Type"] == "application/json" for r in device.requests)


def test_gen2_digest_auth_with_sha256(http_device):
    plug = FakeShellyGen2(password="hunter2")
    device = http_device(plug)
    switch = ShellyGen2Switch(device.url, password="hunter2")
    switch.on()
    assert plug.output == [True]
    # the first request of each call is challenged, the answer to the challenge is accepted
    assert [("Authorization" in r.headers) for r in device.requests] == [False, True]
    with pytest.raises(PowerSwitchError, match=r"POST /rpc .*Switch.Set.*: expected a result with 'was_on', "
                                               r"got HTTP 401 Unauthorized \(check the credentials\)"):
        ShellyGen2Switch(device.url, password="wrong").off()
    assert plug.output == [True]


def test_gen2_toggle_after_is_the_dead_man_switch(http_device):
    device = http_device(FakeShellyGen2())
    switch = make_switch("shelly", {"host": device.url, "auto_off": "0.3"}, "dut")
    switch.on()
    time.sleep(0.45)
    switch.close()  # the harness is done: no more refreshes, the plug's own timer will cut the board
    calls = rpc_calls(device)
    assert calls[0] == ("Switch.Set", {"id": 0, "on": True, "toggle_after": 0.3})
    assert len(calls) >= 3 and set(map(str, calls)) == {str(calls[0])}
    time.sleep(0.25)
    assert len(rpc_calls(device)) == len(calls), "close() must stop the refresh"


def test_gen2_rpc_error_is_reported(http_device):
    device = http_device(FakeShellyGen2(switches=1))
    switch = ShellyGen2Switch(device.url, channel=3)
    with pytest.raises(PowerSwitchError) as e:
        switch.on()
    assert str(e.value) == (f"Shelly Gen2 {device.url}: POST /rpc Switch.Set {{\"id\":3,\"on\":true}}: "
                            f"expected a result with 'was_on', got error -105: Argument 'id', value 3 not found!")


def test_gen2_http_500_and_non_json(http_device):
    device = http_device(lambda request: HttpAnswer(500, b"oops"))
    with pytest.raises(PowerSwitchError, match=r"^Shelly Gen2 http://127.0.0.1:\d+: POST /rpc .*: expected a result "
                                               r"with a boolean 'output', got HTTP 500 Internal Server Error: 'oops'$"):
        ShellyGen2Switch(device.url).state()
    html = http_device(lambda request: HttpAnswer(200, b"<html>captive portal</html>"))
    with pytest.raises(PowerSwitchError, match=r"POST /rpc: expected a result with 'was_on', "
                                               r"got non-JSON '<html>captive portal</html>'"):
        ShellyGen2Switch(html.url).off()


def test_gen2_unreachable():
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(PowerSwitchError, match=rf"^Shelly Gen2 {url}: POST /rpc .*Connection refused"):
        ShellyGen2Switch(url, timeout=0.5).on()
