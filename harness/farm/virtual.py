"""Virtual boards as places of a labgrid farm (the harness's own tests, trying a farm out).

A virtual board's serial port is an RFC 2217 server, which a labgrid exporter exports as it is
(``NetworkSerialPort``, no ser2net). Its power is its control endpoint, whose protocol none of
labgrid's power models speaks, and labgrid loads models only from its own package: so
:class:`PowerFront` is a small HTTP server in front of the boards' control endpoints that speaks what
labgrid's ``rest`` model does (GET ``/power/<index>`` -> ``1``/``0``, PUT body ``1``/``0``), the way a
real bench puts ``rest`` in front of a relay labgrid has no model for.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ..power.base import PowerSwitchError
from ..power.virtual import VirtualPowerSwitch


class PowerFront:
    """``http://host:port/power/<index>`` switches the board whose control endpoint is ``control_urls[index]``."""

    def __init__(self, control_urls: list[str], host: str = "127.0.0.1", port: int = 0):
        self.switches = [VirtualPowerSwitch(url, name=f"board {i}") for i, url in enumerate(control_urls)]
        self._locks = [threading.Lock() for _ in control_urls]
        front = self

        class Handler(BaseHTTPRequestHandler):
            def _index(self) -> int | None:
                parts = urlsplit(self.path).path.strip("/").split("/")
                if len(parts) == 2 and parts[0] == "power" and parts[1].isdigit() and \
                        int(parts[1]) < len(front.switches):
                    return int(parts[1])
                self._reply(404, b"no such output\n")
                return None

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                index = self._index()
                if index is None:
                    return
                try:
                    with front._locks[index]:
                        on = front.switches[index].state()
                except PowerSwitchError as e:
                    self._reply(502, f"{e}\n".encode())
                    return
                self._reply(200, b"1" if on else b"0")

            def do_PUT(self) -> None:  # noqa: N802
                index = self._index()
                if index is None:
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).strip()
                if body not in (b"0", b"1"):
                    self._reply(400, b"expected 0 or 1\n")
                    return
                try:
                    with front._locks[index]:
                        (front.switches[index].on if body == b"1" else front.switches[index].off)()
                except PowerSwitchError as e:
                    self._reply(502, f"{e}\n".encode())
                    return
                self._reply(200, body)

            def log_message(self, *args) -> None:  # quiet: the exporter's and the harness's logs tell the story
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="power-front", daemon=True)

    @property
    def url_template(self) -> str:
        """The ``host`` of a ``NetworkPowerPort`` with ``model: rest`` (labgrid fills in ``{index}``)."""
        return f"http://{self.host}:{self.port}/power/{{index}}"

    def start(self) -> PowerFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for switch in self.switches:
            switch.close()

    def __enter__(self) -> PowerFront:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def exporter_groups(boards: list[tuple[str, str]], front: PowerFront, host: str = "127.0.0.1") -> dict:
    """The exporter configuration for virtual boards ``[(group name, serial URL)]`` powered through ``front``."""
    config = {}
    for index, (name, serial_url) in enumerate(boards):
        parts = urlsplit(serial_url)
        config[name] = {
            "NetworkSerialPort": {"host": parts.hostname or host, "port": parts.port, "speed": 115200,
                                  "protocol": "rfc2217"},
            "NetworkPowerPort": {"model": "rest", "host": front.url_template, "index": index},
        }
    return config


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class VirtualFarm:
    """A labgrid farm on this machine: a coordinator, ``len(boards)`` virtual boards behind a
    :class:`PowerFront`, one exporter for them, and a place per board (``<prefix>-<i>``, tagged with its
    chip and ``tags``). Every process ends with this one (parent-death signal) or with :meth:`stop`.
    """

    def __init__(self, workdir, chips: list[str], tags: dict[str, str] | None = None, prefix: str = "vb",
                 exporter_name: str = "farm1", extra_places: dict[str, tuple[dict, dict[str, str]]] | None = None):
        from pathlib import Path

        self.workdir = Path(workdir)
        self.chips = chips
        self.tags = dict(tags or {})
        self.prefix = prefix
        self.exporter_name = exporter_name
        self.boards = []
        self.front: PowerFront | None = None
        self.procs = {}
        self.address = ""
        self.places: list[str] = []
        #: more places, each an exporter group of its own: name -> (group's resources, tags)
        self.extra_places = dict(extra_places or {})

    def _spawn(self, name: str, module: str, *args: str):
        import os
        import subprocess

        from ..lifeline import module_dying_with_parent

        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(module_dying_with_parent(module, *args), cwd=self.workdir / name, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs[name] = (proc, log)
        return proc

    def start(self, timeout: float = 30.0) -> VirtualFarm:
        import time

        import yaml

        from ..emu.launcher import VirtualBoard
        from .client import FarmClient

        for name in ("coordinator", "exporter"):
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self._spawn("coordinator", "labgrid.remote.coordinator", "-l", self.address)
        for i, chip in enumerate(self.chips):
            self.boards.append(VirtualBoard.start(chip, str(self.workdir / f"{self.prefix}-{i}.flash"), "4MB",
                                                  name=f"{self.prefix}-{i}", power_off=True, console_log=None))
        self.front = PowerFront([b.control_url for b in self.boards]).start()
        groups = [f"{self.prefix}-{i}" for i in range(len(self.boards))]
        config = exporter_groups([(g, b.serial_url) for g, b in zip(groups, self.boards)], self.front)
        for name, (resources, _tags) in self.extra_places.items():
            config[name] = resources
        (self.workdir / "exporter" / "exporter.yaml").write_text(yaml.safe_dump(config))
        self._spawn("exporter", "labgrid.remote.exporter", "-c", self.address, "-n", self.exporter_name,
                    "--hostname", "127.0.0.1", "exporter.yaml")
        deadline = time.monotonic() + timeout
        import socket

        while True:  # the coordinator listens once it is up (no client is made before: it would log errors)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.procs["coordinator"][0].poll() is not None:
                    raise RuntimeError(f"labgrid coordinator did not start: {self.log('coordinator')[-500:]}") \
                        from None
                time.sleep(0.05)
        admin = None
        while admin is None:
            try:
                admin = FarmClient(self.address, timeout=5)
            except Exception:
                if time.monotonic() > deadline or self.procs["coordinator"][0].poll() is not None:
                    raise RuntimeError(f"labgrid coordinator did not start: {self.log('coordinator')[-500:]}") from None
                time.sleep(0.1)
        try:
            admin.wait_resources([f"{self.exporter_name}/{g}" for g in [*groups, *self.extra_places]],
                                 timeout=max(1.0, deadline - time.monotonic()))
            for group, chip in zip(groups, self.chips):
                admin.add_place(group, [f"{self.exporter_name}/{group}/*"], {"chip": chip, **self.tags})
                self.places.append(group)
            for name, (_resources, tags) in self.extra_places.items():
                admin.add_place(name, [f"{self.exporter_name}/{name}/*"], tags)
                self.places.append(name)
        finally:
            admin.close()
        return self

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        import signal

        for name in ("exporter", "coordinator"):
            entry = self.procs.pop(name, None)
            if entry is None:
                continue
            proc, log = entry
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except Exception:
                    proc.kill()
                    proc.wait()
            log.close()
        if self.front is not None:
            self.front.stop()
            self.front = None
        for board in self.boards:
            board.stop()
        self.boards.clear()
