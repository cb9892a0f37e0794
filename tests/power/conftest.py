"""Fixtures that put a fake device at each switch driver's protocol boundary and clean it up afterwards."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from power_fakes import FakeControlEndpoint, HttpAnswer, HttpDevice, HttpRequest, PtyDevice, SilentServer


@pytest.fixture
def pty_device() -> Iterator[Callable[[Callable[[bytes], bytes]], PtyDevice]]:
    """Factory: a serial device on a real pty, answering with the given function."""
    devices: list[PtyDevice] = []

    def start(respond: Callable[[bytes], bytes]) -> PtyDevice:
        device = PtyDevice(respond)
        devices.append(device)
        return device

    yield start
    for device in devices:
        device.close()


@pytest.fixture
def http_device() -> Iterator[Callable[[Callable[[HttpRequest], HttpAnswer]], HttpDevice]]:
    """Factory: a device's HTTP API on a free local port."""
    devices: list[HttpDevice] = []

    def start(handle: Callable[[HttpRequest], HttpAnswer]) -> HttpDevice:
        device = HttpDevice(handle)
        devices.append(device)
        return device

    yield start
    for device in devices:
        device.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def control_endpoint() -> Iterator[Callable[[], FakeControlEndpoint]]:
    endpoints: list[FakeControlEndpoint] = []

    def start() -> FakeControlEndpoint:
        endpoint = FakeControlEndpoint()
        endpoints.append(endpoint)
        return endpoint

    yield start
    for endpoint in endpoints:
        endpoint.close()


@pytest.fixture
def tool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory for fake command-line tools, first on PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}:{sys.prefix}/bin:/usr/bin:/bin")
    return directory
