"""Tasmota plugs at the HTTP level: a fake device serving ``/cm`` on a local port."""

from __future__ import annotations

import pytest
from power_fakes import FakeTasmota, HttpAnswer, closed_port

from harness.power import PowerSwitchError, make_switch
from harness.power.tasmota import TasmotaSwitch


def test_commands_are_power_n_on_off_and_the_state_is_read_back(http_device):
    plug = FakeTasmota(outputs=2)
    device = http_device(plug)
    with make_switch("tasmota", {"host": device.url, "channel": 2}, "dut") as switch:
        switch.on()
        assert switch.state() is True
        switch.cycle(off_time=0.05)
        switch.off()
        assert switch.state() is False
    assert [(r.method, r.target) for r in device.requests] == [
        ("GET", "/cm?cmnd=Power2%20On"),
        ("GET", "/cm?cmnd=Power2"),
        ("GET", "/cm?cmnd=Power2%20Off"),
        ("GET", "/cm?cmnd=Power2%20On"),
        ("GET", "/cm?cmnd=Power2%20Off"),
        ("GET", "/cm?cmnd=Power2"),
    ]


def test_a_single_output_plug_answers_with_plain_power(http_device):
    device = http_device(FakeTasmota(outputs=1))
    switch = TasmotaSwitch(device.url.removeprefix("http://"))
    switch.on()
    assert switch.state() is True
    assert device.requests[0].target == "/cm?cmnd=Power1%20On"


def test_credentials_go_in_the_query_and_never_into_messages(http_device):
    plug = FakeTasmota(password="s3cret&x", user="admin")
    device = http_device(plug)
    switch = TasmotaSwitch(device.url, password="s3cret&x")
    switch.on()
    assert device.requests[0].target == "/cm?user=admin&password=s3cret%26x&cmnd=Power1%20On"
    assert plug.power == [True]

    wrong = TasmotaSwitch(device.url, password="guess")
    with pytest.raises(PowerSwitchError) as e:
        wrong.off()
    message = str(e.value)
    assert "guess" not in message and "password=***" in message
    assert "HTTP 401" in message and "check the credentials" in message and "Need user=" in message
    assert plug.power == [True]


def test_http_500_names_the_device_and_the_command(http_device):
    device = http_device(lambda request: HttpAnswer(500, b"<html>Internal Server Error</html>"))
    switch = TasmotaSwitch(device.url, channel=1)
    with pytest.raises(PowerSwitchError) as e:
        switch.on()
    assert str(e.value) == (f"Tasmota plug {device.url}: GET /cm?cmnd=Power1%20On: expected "
                            f"{{\"POWER1\": \"ON\" or \"OFF\"}}, got HTTP 500 Internal Server Error: "
                            f"'<html>Internal Server Error</html>'")


def test_an_answer_without_the_power_key_is_an_error(http_device):
    device = http_device(lambda request: HttpAnswer(200, {"Command": "Unknown"}))
    switch = TasmotaSwitch(device.url, channel=3)
    with pytest.raises(PowerSwitchError, match=r"GET /cm\?cmnd=Power3: expected \{\"POWER3\": \"ON\" or \"OFF\"\}, "
                                               r"got '\{\"Command\": \"Unknown\"\}'"):
        switch.state()


def test_an_unreachable_plug_is_one_error_line():
    url = f"http://127.0.0.1:{closed_port()}"
    switch = TasmotaSwitch(url, timeout=0.5)
    with pytest.raises(PowerSwitchError) as e:
        switch.off()
    message = str(e.value)
    assert message.startswith(f"Tasmota plug {url}: GET /cm?cmnd=Power1%20Off: expected")
    assert "Connection refused" in message and "\n" not in message
    assert e.value.__suppress_context__


def test_a_plug_that_never_answers_times_out(silent_server):
    switch = TasmotaSwitch(silent_server.url, timeout=0.3)
    with pytest.raises(PowerSwitchError, match=r"GET /cm\?cmnd=Power1: expected .*: no answer within 0.3 s$"):
        switch.state()


def test_a_proxy_meant_for_the_internet_is_not_used_for_the_plug(http_device, monkeypatch):
    device = http_device(FakeTasmota())
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("no_proxy", "")
    TasmotaSwitch(device.url).on()
    assert device.requests[0].target == "/cm?cmnd=Power1%20On"
