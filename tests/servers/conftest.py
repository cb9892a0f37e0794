"""Fixtures of the OTA server tests: every server is started on a free 127.0.0.1 port and stopped after."""

from __future__ import annotations

import pytest
from ota_clients import MqttDevice

from harness.servers import FotaServer, HttpServer, MqttBroker, OtaPublisher, TlsMaterial


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory) -> TlsMaterial:
    """One CA per test run, as a scenario run has (RSA, the default the devices get)."""
    return TlsMaterial.create(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def http_server(tmp_path):
    """Factory: a started HttpServer logging to ``tmp_path/<name>.jsonl``."""
    servers: list[HttpServer] = []

    def start(**kwargs) -> HttpServer:
        name = kwargs.pop("name", f"http-{len(servers)}")
        server = HttpServer(name=name, log_path=tmp_path / f"{name}.jsonl", **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fota_server(tmp_path):
    """Factory: a started FotaServer for the given ``{slot: image}``."""
    servers: list[FotaServer] = []

    def start(images, **kwargs) -> FotaServer:
        name = kwargs.pop("name", f"fota-{len(servers)}")
        server = FotaServer(images, name=name, log_path=tmp_path / f"{name}.jsonl", **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def broker(tmp_path):
    with MqttBroker(log_path=tmp_path / "broker.jsonl") as started:
        yield started


@pytest.fixture
def publisher(broker, tmp_path):
    with OtaPublisher(broker, log_path=tmp_path / "publisher.jsonl") as started:
        yield started


@pytest.fixture
def mqtt_device(broker):
    """Factory: a device client on ``broker`` for a topic base."""
    devices: list[MqttDevice] = []

    def connect(base: str = "hil/esp32-0/", client_id: str | None = None) -> MqttDevice:
        device = MqttDevice(broker.endpoint, base, client_id=client_id or f"device-{len(devices)}")
        devices.append(device)
        return device

    yield connect
    for device in devices:
        device.close()
