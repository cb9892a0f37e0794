"""The OTA servers a scenario starts inside the test process, all driven by one fault-plan model.

* :class:`HttpServer`: HTTP/HTTPS firmware and file server (Range, chunked, redirects,
  ETag, a switchable ``/health``), HTTPS with certificates from :class:`TlsMaterial`;
* :class:`MqttBroker` and :class:`OtaPublisher`: an embedded (or external) broker and the
  publisher of the MQTT chunked-pull OTA protocol;
* :class:`FotaServer`: the ESP8266 SDK TCP FOTA protocol;
* :class:`FaultPlan`: what goes wrong during a transfer, the same for every server.

Every server binds 127.0.0.1 and a free port unless told otherwise, runs in daemon
threads, and keeps a :class:`ServerLog` of structured records for reports.
"""

from .base import Endpoint, ServerLog, TcpServerBase, free_port
from .faults import ByteTrigger, FaultPlan, FaultyStream, StreamResult
from .fota import FotaServer
from .http import HttpServer, parse_range
from .mqtt import DeviceTopics, MqttBroker, OtaPublisher, Transfer, decode_chunk, encode_chunk
from .tls import WRONG_HOST, CertificateAuthority, IssuedCert, TlsMaterial

__all__ = [
    "WRONG_HOST",
    "ByteTrigger",
    "CertificateAuthority",
    "DeviceTopics",
    "Endpoint",
    "FaultPlan",
    "FaultyStream",
    "FotaServer",
    "HttpServer",
    "IssuedCert",
    "MqttBroker",
    "OtaPublisher",
    "ServerLog",
    "StreamResult",
    "TcpServerBase",
    "TlsMaterial",
    "Transfer",
    "decode_chunk",
    "encode_chunk",
    "free_port",
    "parse_range",
]
