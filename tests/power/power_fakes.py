"""Fake devices at the drivers' protocol boundaries: a pty, an HTTP server, command-line tools, hid, pyftdi.

Each fake records exactly what crossed the boundary (bytes, requests, argv,
reports) and answers the way the real device does, so the tests compare the
drivers' traffic with the byte strings of the spec, not with the drivers' own
helpers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import select
import socket
import sys
import textwrap
import threading
import time
import tty
import types
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# -- serial devices on a real pty ---------------------------------------------------------------------------------


class PtyDevice:
    """A serial device on the master side of a pty; drivers open :attr:`port` with pyserial as on hardware.

    ``respond`` gets each chunk the driver wrote and returns the device's answer
    (``b""`` for none). Every chunk is recorded with its arrival time.
    """

    def __init__(self, respond: Callable[[bytes], bytes]):
        self.respond = respond
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # the device side: no echo, no line editing before the driver configures it
        self.port = os.ttyname(self._slave)
        self.chunks: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"pty device {self.port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            readable, _, _ = select.select([self.master, self._stop_r], [], [])
            if self._stop_r in readable:
                return
            data = os.read(self.master, 4096)
            with self._lock:
                self.chunks.append((time.monotonic(), data))
            answer = self.respond(data)
            if answer:
                os.write(self.master, answer)

    @property
    def received(self) -> bytes:
        with self._lock:
            return b"".join(data for _, data in self.chunks)

    def wait_received(self, length: int, timeout: float = 2.0) -> bytes:
        """Everything received once at least ``length`` bytes arrived (the driver's write is asynchronous to us)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < length and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.received

    def arrival(self, offset: int) -> float:
        """When the byte at ``offset`` of :attr:`received` arrived."""
        with self._lock:
            seen = 0
            for when, data in self.chunks:
                seen += len(data)
                if seen > offset:
                    return when
        raise AssertionError(f"byte {offset} never arrived")

    def clear(self) -> None:
        with self._lock:
            self.chunks.clear()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(2)
        for fd in (self.master, self._slave, self._stop_r, self._stop_w):
            os.close(fd)


# -- HTTP devices -------------------------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    method: str
    target: str  # path and query exactly as sent
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.target.partition("?")[2], keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpAnswer:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


class HttpDevice:
    """A device's HTTP API on 127.0.0.1 (free port): ``handle`` answers each recorded request."""

    def __init__(self, handle: Callable[[HttpRequest], HttpAnswer]):
        self.requests: list[HttpRequest] = []
        device = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = HttpRequest(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                device.requests.append(request)
                answer = handle(request)
                body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeTasmota:
    """Tasmota's ``/cm`` endpoint: ``Power<n> On|Off`` and ``Power<n>``; credentials as user=&password=."""

    def __init__(self, outputs: int = 1, password: str | None = None, user: str = "admin"):
        self.power = [False] * outputs
        self.password = password
        self.user = user

    def __call__(self, request: HttpRequest) -> HttpAnswer:
        query = request.query
        if self.password is not None and (query.get("user"), query.get("password")) != (self.user, self.password):
            return HttpAnswer(401, {"WARNING": "Need user=<username>&password=<password>"})
        match = re.fullmatch(r"Power(\d)(?: (On|Off))?", query.get("cmnd", ""), re.IGNORECASE)
        if request.path != "/cm" or match is None:
            return HttpAnswer(200, {"Command": "Unknown"})
        n = int(match.group(1))
        if match.group(2):
            self.power[n - 1] = match.group(2).lower() == "on"
        key = "POWER" if len(self.power) == 1 else f"POWER{n}"
        return HttpAnswer(200, {key: "ON" if self.power[n - 1] else "OFF"})


class FakeShellyGen1:
    """Shelly Gen1 ``/relay/<i>``: ``turn=on|off`` (``timer`` flips back), answers with ``ison``."""

    def __init__(self, relays: int = 1, password: str | None = None):
        self.ison = [False] * relays
        self.password = password

    def __call__(self, request: HttpRequest) -> HttpAnswer:
        if self.password is not None:
            token = base64.b64encode(f"admin:{self.password}".encode()).decode()
            if request.headers.get("Authorization") != f"Basic {token}":
                return HttpAnswer(401, b"401 Unauthorized", {"WWW-Authenticate": 'Basic realm="shelly1-AABBCC"'})
        match = re.fullmatch(r"/relay/(\d+)", request.path)
        if match is None or int(match.group(1)) >= len(self.ison):
            return HttpAnswer(404, b"Not Found")
        i = int(match.group(1))
        turn = request.query.get("turn")
        if turn is not None:
            self.ison[i] = turn == "on"
        timer = float(request.query.get("timer", 0))
        return HttpAnswer(200, {"ison": self.ison[i], "has_timer": timer > 0, "timer_duration": timer,
                                "source": "http"})


class FakeShellyGen2:
    """Shelly Gen2 ``POST /rpc``: Switch.Set / Switch.GetStatus; HTTP Digest SHA-256 when a password is set."""

    REALM = "shellyplus1-a8032ab12345"
    NONCE = "1700000000"

    def __init__(self, switches: int = 1, password: str | None = None):
        self.output = [False] * switches
        self.password = password

    def _authorized(self, request: HttpRequest) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[len("Digest "):]))

        def sha(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        ha1 = sha(f"admin:{self.REALM}:{self.password}")
        ha2 = sha(f"{request.method}:{request.target}")
        wanted = sha(f"{ha1}:{self.NONCE}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")
        return (fields.get("username"), fields.get("realm"), fields.get("uri"), fields.get("algorithm"),
                fields.get("response")) == ("admin", self.REALM, request.target, "SHA-256", wanted)

    def __call__(self, request: HttpRequest) -> HttpAnswer:
        if self.password is not None and not self._authorized(request):
            challenge = f'Digest qop="auth", realm="{self.REALM}", nonce="{self.NONCE}", algorithm=SHA-256'
            return HttpAnswer(401, b"", {"WWW-Authenticate": challenge})
        frame = request.json()
        params = frame.get("params", {})
        i = params.get("id", 0)
        if i >= len(self.output):
            return HttpAnswer(200, {"id": frame["id"], "error": {"code": -105, "message": f"Argument 'id', value "
                                                                                          f"{i} not found!"}})
        if frame["method"] == "Switch.Set":
            was_on, self.output[i] = self.output[i], params["on"]
            return HttpAnswer(200, {"id": frame["id"], "src": self.REALM, "result": {"was_on": was_on}})
        if frame["method"] == "Switch.GetStatus":
            return HttpAnswer(200, {"id": frame["id"], "src": self.REALM,
                                    "result": {"id": i, "source": "HTTP_in", "output": self.output[i]}})
        return HttpAnswer(200, {"id": frame["id"], "error": {"code": 404, "message": "No handler"}})


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """Accepts connections (the kernel does, through the backlog) and never answers."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self) -> None:
        self._sock.close()


# -- command-line tools -------------------------------------------------------------------------------------------


class FakeTool:
    """An executable Python script standing in for a CLI tool.

    Each run appends its argv to ``<name>.argv.jsonl``; ``body`` (Python) then
    acts on ``argv`` and the JSON state in ``<name>.state.json`` (saved again
    afterwards) and prints what the real tool prints.
    """

    def __init__(self, directory: Path, name: str, body: str, state: dict[str, Any] | None = None):
        self.path = directory / name
        self.argv_log = directory / f"{name}.argv.jsonl"
        self.state_file = directory / f"{name}.state.json"
        self.state = state or {}
        script = f"""\
            #!{sys.executable}
            import json, sys
            argv = sys.argv[1:]
            with open({str(self.argv_log)!r}, "a") as log:
                log.write(json.dumps(argv) + "\\n")
            with open({str(self.state_file)!r}) as f:
                state = json.load(f)
            def save():
                with open({str(self.state_file)!r}, "w") as f:
                    json.dump(state, f)
            """
        self.path.write_text(textwrap.dedent(script) + textwrap.dedent(body))
        self.path.chmod(0o755)
        self.save()

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state))

    def set(self, **values: Any) -> None:
        self.state.update(values)
        self.save()

    def load(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    @property
    def calls(self) -> list[list[str]]:
        if not self.argv_log.exists():
            return []
        return [json.loads(line) for line in self.argv_log.read_text().splitlines()]


UHUBCTL_BODY = """\
if state.get("fail"):
    print("No compatible devices detected at location " + argv[argv.index("-l") + 1] + "!")
    sys.exit(1)
location, port = argv[argv.index("-l") + 1], argv[argv.index("-p") + 1]
hub = location + " [2109:2817 VIA Labs, Inc. USB2.0 Hub, USB 2.10, 4 ports, ppps]"
def show(header):
    print(header + " status for hub " + hub)
    if state["ports"][port]:
        print("  Port " + port + ": 0503 power highspeed enable connect [1a86:7523 QinHeng Electronics CH340]")
    else:
        print("  Port " + port + ": 0000 off")
show("Current")
if "-a" in argv:
    action = argv[argv.index("-a") + 1]
    print("Sent power " + action + " request")
    if not state.get("gang"):
        state["ports"][port] = action == "on"
        save()
    show("New")
"""


YKUSHCMD_BODY = """\
if not state.get("present", True):
    print("\\n\\nNo YKUSH boards found.\\n")
    sys.exit(0)
flag, port = (argv[-2], argv[-1]) if argv[-1].isdigit() else (argv[-1], "")
if flag == "-u":
    state["ports"][port or "1"] = True
    save()
elif flag == "-d":
    state["ports"][port or "1"] = False
    save()
elif flag == "-g":
    on = state["ports"][port or "1"]
    print("\\n\\nDownstream port " + (port + " " if port else "") + "is " + ("ON" if on else "OFF") + "\\n\\n")
"""


COMMAND_BODY = """\
sys.stdout.write(state.get("stdout", ""))
sys.stderr.write(state.get("stderr", ""))
if state.get("sleep"):
    import time
    time.sleep(state["sleep"])
sys.exit(state.get("exit", 0))
"""


# -- the hid module (PyPI hidapi) ---------------------------------------------------------------------------------


class HidBoard:
    """A HID device as hidapi sees it; records output and feature reports exactly as handed to hidapi."""

    def __init__(self, path: bytes, vendor_id: int, product_id: int, product: str = "", serial: str = ""):
        self.path = path
        self.info = {"path": path, "vendor_id": vendor_id, "product_id": product_id, "serial_number": serial,
                     "product_string": product, "manufacturer_string": "", "interface_number": 0}
        self.writes: list[bytes] = []
        self.feature_reports: list[bytes] = []
        self.fail_io = False
        self.open_handles = 0

    def feature(self, report: bytes) -> None:
        self.feature_reports.append(report)

    def get_feature(self, report_num: int, max_length: int) -> list[int]:
        raise OSError("get_feature_report: not supported by this device")


class DcttechBoard(HidBoard):
    """A dcttech USBRelayN (V-USB): ``FF n`` on, ``FD n`` off; GET_FEATURE: id in bytes 0-4, bitmask in byte 7."""

    def __init__(self, path: bytes, board_id: str, relays: int = 2, ignores_commands: bool = False):
        super().__init__(path, 0x16C0, 0x05DF, product=f"USBRelay{relays}", serial="")
        self.board_id = board_id
        self.mask = 0
        self.ignores_commands = ignores_commands

    def feature(self, report: bytes) -> None:
        super().feature(report)
        command, relay = report[1], report[2]  # report[0] is hidapi's report number
        if self.ignores_commands:
            return
        if command == 0xFF:
            self.mask |= 1 << (relay - 1)
        elif command == 0xFD:
            self.mask &= ~(1 << (relay - 1))

    def get_feature(self, report_num: int, max_length: int) -> list[int]:
        ident = self.board_id.encode().ljust(5, b"\0")
        # hidapi returns the report number first, then the 8 data bytes
        return [report_num, *ident, 0, 0, self.mask][:max_length]


class FakeHidDevice:
    """``hid.device()``: the calls the drivers use, failing like hidapi (OSError, ValueError when not open)."""

    def __init__(self, module: FakeHidModule):
        self._module = module
        self._board: HidBoard | None = None

    def _open_board(self) -> HidBoard:
        if self._board is None:
            raise ValueError("not open")
        if self._board.fail_io:
            raise OSError("write error (device disconnected?)")
        return self._board

    def open_path(self, path: bytes) -> None:
        self._module.calls.append(("open_path", path))
        board = next((b for b in self._module.boards if b.path == path), None)
        if board is None:
            raise OSError("open failed")
        board.open_handles += 1
        self._board = board

    def open(self, vendor_id: int = 0, product_id: int = 0, serial_number: str | None = None) -> None:
        self._module.calls.append(("open", vendor_id, product_id, serial_number))
        for board in self._module.boards:
            info = board.info
            if (info["vendor_id"], info["product_id"]) == (vendor_id, product_id) and \
                    serial_number in (None, info["serial_number"]):
                board.open_handles += 1
                self._board = board
                return
        raise OSError("open failed")

    def write(self, data: list[int]) -> int:
        board = self._open_board()
        board.writes.append(bytes(data))
        return len(data)

    def send_feature_report(self, data: list[int]) -> int:
        board = self._open_board()
        board.feature(bytes(data))
        return len(data)

    def get_feature_report(self, report_num: int, max_length: int) -> list[int]:
        return self._open_board().get_feature(report_num, max_length)

    def close(self) -> None:
        if self._board is not None:
            self._board.open_handles -= 1
            self._board = None


class FakeHidModule(types.ModuleType):
    """Stands in for ``import hid``; ``calls`` records enumerate/open calls (to prove nothing was touched)."""

    def __init__(self, *boards: HidBoard):
        super().__init__("hid")
        self.boards = list(boards)
        self.calls: list[tuple[Any, ...]] = []

    def enumerate(self, vendor_id: int = 0, product_id: int = 0) -> list[dict[str, Any]]:
        self.calls.append(("enumerate", vendor_id, product_id))
        return [dict(b.info) for b in self.boards
                if vendor_id in (0, b.info["vendor_id"]) and product_id in (0, b.info["product_id"])]

    def device(self) -> FakeHidDevice:
        return FakeHidDevice(self)


# -- pyftdi ---------------------------------------------------------------------------------------------------------


class UsbToolsError(Exception):
    """pyftdi.usbtools.UsbToolsError"""


class FtdiError(OSError):
    """pyftdi.ftdi.FtdiError"""


class Ft245rChip:
    """An FT245R on the bus: its eight data pins, and every call made to it."""

    def __init__(self, pins: int = 0, stuck_low: int = 0):
        self.pins = pins
        self.stuck_low = stuck_low  # pins a broken driver transistor holds low
        self.log: list[tuple[Any, ...]] = []
        self.fail_writes = False


def fake_pyftdi(chips: dict[str, Ft245rChip]) -> dict[str, types.ModuleType]:
    """Modules for ``sys.modules``: ``pyftdi``, ``pyftdi.ftdi`` (class Ftdi) and ``pyftdi.usbtools``."""

    class Ftdi:
        def __init__(self) -> None:
            self._chip: Ft245rChip | None = None

        def open_bitbang_from_url(self, url: str, direction: int = 0, latency: int = 16, baudrate: int = 1000000,
                                  sync: bool = False) -> float:
            chip = chips.get(url)
            if chip is None:
                raise UsbToolsError(f"No USB device matches URL {url}")
            chip.log.append(("open", url, direction))
            self._chip = chip
            return float(baudrate)

        def _live(self) -> Ft245rChip:
            if self._chip is None:
                raise FtdiError("Device characteristics not yet known")
            return self._chip

        def read_pins(self) -> int:
            chip = self._live()
            chip.log.append(("read_pins",))
            return chip.pins

        def write_data(self, data: bytes) -> int:
            chip = self._live()
            chip.log.append(("write_data", bytes(data)))
            if chip.fail_writes:
                raise FtdiError("UsbError: [Errno 19] No such device (it may have been disconnected)")
            chip.pins = data[-1] & ~chip.stuck_low
            return len(data)

        def close(self, freeze: bool = False) -> None:
            if self._chip is not None:
                self._chip.log.append(("close", freeze))
                self._chip = None

    package = types.ModuleType("pyftdi")
    ftdi = types.ModuleType("pyftdi.ftdi")
    ftdi.Ftdi = Ftdi  # type: ignore[attr-defined]
    ftdi.FtdiError = FtdiError  # type: ignore[attr-defined]
    usbtools = types.ModuleType("pyftdi.usbtools")
    usbtools.UsbToolsError = UsbToolsError  # type: ignore[attr-defined]
    package.ftdi = ftdi  # type: ignore[attr-defined]
    package.usbtools = usbtools  # type: ignore[attr-defined]
    return {"pyftdi": package, "pyftdi.ftdi": ftdi, "pyftdi.usbtools": usbtools}


# -- a virtual board's control endpoint -----------------------------------------------------------------------------


class FakeControlEndpoint:
    """A virtual board's control endpoint (JSON lines over TCP) that records every request and keeps power state."""

    def __init__(self, powered: bool = True):
        self.requests: list[dict[str, Any]] = []
        self.powered = powered
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(4)
        self.url = f"tcp://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                request = json.loads(line)
                self.requests.append(request)
                if request.get("cmd") == "power":
                    self.powered = request["on"]
                reply = {"ok": True, "power": self.powered}
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.flush()

    def wait_requests(self, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.requests)

    def close(self) -> None:
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        except OSError:
            pass
        self._server.close()
