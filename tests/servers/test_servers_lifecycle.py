"""Servers run in daemon threads: a test that forgets stop() (or fails before it) cannot hang the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import socket
    from harness.servers import FaultPlan, FotaServer, HttpServer, MqttBroker, OtaPublisher

    stall = FaultPlan(stall_at=10, stall_s=600)
    http = HttpServer(fault=stall)
    http.add("/fw.bin", bytes(1000))
    http.start()
    fota = FotaServer({1: bytes(1000)}, fault=stall)
    fota.start()
    broker = MqttBroker()
    broker.start()
    publisher = OtaPublisher(broker).start()
    publisher.offer_firmware("hil/d/", bytes(1000), "1.0.0", fault=stall)

    web = socket.create_connection((http.endpoint.host, http.endpoint.port))
    web.sendall(b"GET /fw.bin HTTP/1.1\\r\\n\\r\\n")
    dev = socket.create_connection((fota.endpoint.host, fota.endpoint.port))
    dev.sendall(b"\\x01")
    web.recv(1), dev.recv(1)  # both transfers are under way, and will stall for 10 minutes
    print("leaving without stop()", flush=True)
""")


def test_running_servers_do_not_keep_the_process_alive():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "leaving without stop()"
