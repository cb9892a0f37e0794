"""ESP8266 NONOS SDK apps on the virtual ESP8266: the host executable a user bin carries, run as the chip's app.

``harness.emu.sdk8266.build`` compiles a NONOS SDK project for the host against this emulator's implementation of
the SDK subset (``harness/emu/sdk8266``) and puts the executable, framed as ``harness.emu.idf.build.host_payload``
does, after the version record in the irom0 part of a gen_appbin user bin. When the boot_v1.x model starts such a
bin (``AppContext.sdk``: the flash layout and the slot), :func:`run_sdk_app` extracts the executable from the bin as
booted (its SHA-256 checked: a bin whose irom is corrupt has no app that runs and crashes, as on a chip), starts
it with an empty environment in an empty directory and serves it:

* UART0: what the app writes goes to the board's UART as it comes; what the UART receives goes to the app's fd 0
  (the ROM's RX FIFO, which the app polls with ``uart_rx_one_char``); ``uart_div_modify`` sets the baud rate.
* flash: ``spi_flash_read/write/erase_sector`` through the board's flash model (counted, NOR rules, power cuts);
  ``system_upgrade_*`` and the boot parameter save are done by the app's side of the SDK with these.
* network: the Wi-Fi station and TCP connections on the board's network (:class:`harness.emu.port_net.NetHost`:
  the bench's AP, host sockets behind it); ``net_poll`` waits for the next connection event (connected, data of
  at most one MSS, closed, error) for the app's event loop.
* restarts: ``system_restart`` (and ``system_upgrade_reboot``) end the app with the restart exit code: the chip
  resets (rst cause 4 on a chip, a software restart here); anything else that ends it is reported as the SDK's
  fatal exception and resets the chip.

The figures of the model (``harness/emu/sdk8266/src``): the app starts with 47 KiB of free heap (the ESP8266EX
datasheet gives about 50 KB for the heap and data of an app in station mode connected to an AP), each block costing
its size plus 4 rounded up to 8 (umm_malloc's blocks); ``system_upgrade`` writes at most the FOTA demo's writable
sectors per slot (58 / 122 / 250 for the 256 / 512 / 1024 KB maps); received data comes in segments of at most one
TCP MSS (1460 bytes).

Known differences from a chip: time is the host's (flash and network take no modelled time); there is no
watchdog; the SDK's own start-up text is shortened to its version line.
"""

from __future__ import annotations

import errno
import hashlib
import select
import socket
import time
from types import SimpleNamespace

from ..esp.esp8266_image import VERSION_RECORD, VERSION_RECORD_MAGIC
from .apps import AppContext
from .chip import CAUSE_DEEPSLEEP, CAUSE_EN, CAUSE_POWER_ON, CAUSE_SOFTWARE, CAUSE_WATCHDOG, EXIT_REBOOT
from .flash import SECTOR_SIZE
from .host_app import Reply, decode, run_host_app
from .idf.build import HOST_MAGIC, find_host_payload
from .port_net import NetHost

APP_EXIT_RESTART = 40
RECORD_SIZE = VERSION_RECORD.size  # the version record before the payload in irom0

# enum rst_reason by the cause of this run of the chip
RESET_REASON = {CAUSE_POWER_ON: 0, CAUSE_EN: 6, CAUSE_SOFTWARE: 4, CAUSE_WATCHDOG: 1, CAUSE_DEEPSLEEP: 5}
MAP_CODES = {(512 * 1024, 256 * 1024): 0, (1 << 20, 512 * 1024): 2, (2 << 20, 512 * 1024): 3,
             (4 << 20, 512 * 1024): 4, (2 << 20, 1024 * 1024): 5, (4 << 20, 1024 * 1024): 6}
STANDARD_BAUDS = (9600, 19200, 38400, 57600, 74880, 115200, 230400, 460800, 921600)
CONNECT_TIMEOUT = 10.0  # seconds before a connection nothing answers fails (ESPCONN_TIMEOUT)
ESPCONN_TIMEOUT, ESPCONN_ABRT, ESPCONN_RST, ESPCONN_CONN, ESPCONN_RTE = -3, -8, -9, -11, -4
EV_NONE, EV_CONNECTED, EV_DATA, EV_CLOSED, EV_ERROR = 0, 1, 2, 3, 4


def _irom(image) -> bytes:
    return bytes(getattr(image, "irom", b"") or b"")


def carries_sdk_app(image) -> bool:
    """Whether a booted user bin (ParsedEaImage) is a host build of an SDK app (its payload may be corrupt)."""
    irom = _irom(image)
    return irom[RECORD_SIZE:RECORD_SIZE + len(HOST_MAGIC)] == HOST_MAGIC


def sdk_payload(image) -> bytes | None:
    """The executable a user bin carries, None when it is missing or its SHA-256 does not match."""
    return find_host_payload([SimpleNamespace(data=_irom(image)[RECORD_SIZE:])])


class SdkRuntime:
    """One run of a NONOS SDK host app on the chip."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.uart = ctx.uart
        self.flash = ctx.flash
        self.chip = ctx.cfg.chip
        self.layout = getattr(ctx.sdk, "layout", None)
        self.slot = int(getattr(ctx.sdk, "slot", 1) or 1)
        self.net = NetHost(self)
        self.connecting: dict[int, float] = {}  # handle -> deadline
        self.ops = {name[3:]: getattr(self, name) for name in dir(self) if name.startswith("op_")}
        self.uart.control_listeners.append(self._on_control)

    # NetHost asks these of its runtime
    def check_interrupt(self) -> None:
        pass

    def _on_control(self, message: dict) -> None:
        if "wifi" in message:
            self.net.set_link(bool(message["wifi"]))

    def _map_code(self) -> int:
        byte3 = self.flash.read(0, 4)[3]
        if self.layout is not None:
            code = MAP_CODES.get((self.layout.flash_size, self.layout.app_size))
            if code is not None:
                return code
        return byte3 >> 4

    # -- running ----------------------------------------------------------------------------------------------
    def _linked_slot(self) -> int | None:
        irom = _irom(self.ctx.image)
        if irom[:8] != VERSION_RECORD_MAGIC:
            return None
        return VERSION_RECORD.unpack_from(irom)[3]

    def run(self) -> int:
        exe_bytes = sdk_payload(self.ctx.image)
        if exe_bytes is None:
            return self._crash("the irom0 part of the bin is corrupt (its app does not run)")
        linked = self._linked_slot()
        if (linked in (1, 2) and linked != self.slot and self.layout is not None
                and self.layout.app_size <= 512 * 1024):
            # on the 256+256 and 512+512 maps user1 and user2 are different links (irom0 at 0x40201010 or
            # 0x40281010): a bin linked for the other slot jumps into code that is not there
            return self._crash(f"a bin linked for user{linked} runs from user{self.slot}")
        digest = hashlib.sha256(exe_bytes).hexdigest()
        image = SimpleNamespace(segments=[SimpleNamespace(data=_irom(self.ctx.image)[RECORD_SIZE:])])
        boot_ms = int((time.monotonic() - self.ctx.started) * 1000) if self.ctx.started else 0
        args = [str(boot_ms), str(self.slot), str(self._map_code()), hex(self.flash.size),
                str(RESET_REASON.get(self.ctx.run.cause, 0)), self.ctx.cfg.mac.hex()]
        try:
            code = run_host_app(self.uart, image, digest, args, self._dispatch, prefix="hil-sdk-")
        except OSError as e:
            return self._crash(f"the app could not start: {e}")
        finally:
            self.net.reset()
        if code == APP_EXIT_RESTART:
            self.uart.event("app-exit", reason="restart")
            return EXIT_REBOOT
        why = f"signal {-code}" if code < 0 else f"exit status {code}"
        return self._crash(f"the app process ended: {why}")

    def _crash(self, why: str) -> int:
        """The SDK's exception report, then the reset a chip makes."""
        self.uart.event("app-exit", reason="crash", detail=why)
        self.uart.write(b"Fatal exception 0(IllegalInstructionCause):\r\n"
                        b"epc1=0x40201234, epc2=0x00000000, epc3=0x00000000, excvaddr=0x00000000, depc=0x00000000\r\n")
        time.sleep(0.05)
        return EXIT_REBOOT

    def _dispatch(self, body: bytes) -> Reply:
        name, args = decode(body)
        op = self.ops.get(name)
        if op is None:
            return Reply(-1).log("E", "hil", f"unknown board call {name}\n")
        try:
            return op(*args)
        except Exception as e:
            if type(e).__name__ == "PowerCut":
                raise
            import traceback

            self.uart.event("log", msg=f"board call {name} failed: {traceback.format_exc()}")
            return Reply(-1)

    # -- UART, flash --------------------------------------------------------------------------------------------
    def op_uart_baud(self, baud: int) -> Reply:
        # 80 MHz / divisor is never exactly a standard rate (80e6 / 694 = 115274); a UART receives within ~2 %
        near = min(STANDARD_BAUDS, key=lambda b: abs(b - baud))
        self.uart.set_baud(near if abs(near - baud) <= near * 0.02 else int(baud))
        return Reply()

    def op_flash_read(self, addr: int, size: int) -> Reply:
        if addr < 0 or size < 0 or addr + size > self.flash.size:
            return Reply(1)
        return Reply(0, self.flash.read(addr, size))

    def op_flash_write(self, addr: int, data: bytes) -> Reply:
        if addr < 0 or addr + len(data) > self.flash.size:
            return Reply(1)
        self.flash.program(addr, data)
        return Reply()

    def op_flash_erase(self, sector: int) -> Reply:
        if sector < 0 or (sector + 1) * SECTOR_SIZE > self.flash.size:
            return Reply(1)
        self.flash.erase_range(sector * SECTOR_SIZE, SECTOR_SIZE)
        return Reply()

    # -- Wi-Fi ----------------------------------------------------------------------------------------------------
    def op_wifi_connect(self, ssid: bytes, password: bytes) -> Reply:
        self.net._active(0, True)
        self.net._connect(0, ssid.decode(errors="replace"), password.decode(errors="replace"))
        return Reply()

    def op_wifi_disconnect(self) -> Reply:
        self.net._disconnect(0)
        return Reply()

    def op_wifi_status(self) -> Reply:
        return Reply(0, self.net._status(0))

    def op_wifi_ip(self) -> Reply:
        def word(text: str) -> int:
            return int.from_bytes(socket.inet_aton(text), "little")

        ip, mask, gw, _dns = self.net._ifconfig(0)
        return Reply(0, word(ip), word(mask), word(gw))

    # -- TCP ------------------------------------------------------------------------------------------------------
    def op_tcp_connect(self, host: bytes, port: int) -> Reply:
        net = self.net
        if not net._connected():
            return Reply(ESPCONN_RTE)
        handle = net._new(2, 1)
        s = net.socks[handle]
        err = s.sock.connect_ex((host.decode(), int(port)))
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            # refused at once: the reconnect callback says so from the event loop
            s.broken = True
        self.connecting[handle] = time.monotonic() + CONNECT_TIMEOUT
        return Reply(0, handle)

    def op_tcp_send(self, handle: int, data: bytes) -> Reply:
        s = self.net.socks.get(handle)
        if s is None or s.broken or handle in self.connecting:
            return Reply(ESPCONN_CONN)
        try:
            s.sock.setblocking(True)
            s.sock.settimeout(5.0)
            s.sock.sendall(data)
        except OSError:
            return Reply(ESPCONN_CONN)
        finally:
            s.sock.setblocking(False)
        return Reply()

    def op_tcp_close(self, handle: int) -> Reply:
        self.connecting.pop(handle, None)
        self.net._close(handle)
        return Reply()

    def op_net_poll(self, timeout_ms: int, mss: int) -> Reply:
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        while True:
            event = self._net_event(max(1, mss))
            if event is not None:
                return event
            left = deadline - time.monotonic()
            if left <= 0:
                return Reply(0, EV_NONE)
            try:
                select.select([s for h, s in self._open() if h not in self.connecting],
                              [s for h, s in self._open() if h in self.connecting], [], min(left, 0.05))
            except (OSError, ValueError):
                time.sleep(min(left, 0.01))

    def _open(self) -> list[tuple[int, socket.socket]]:
        return [(h, s.sock) for h, s in self.net.socks.items() if not s.broken]

    def _net_event(self, mss: int) -> Reply | None:
        now = time.monotonic()
        for handle, s in list(self.net.socks.items()):
            if handle in self.connecting:
                if s.broken:
                    self.connecting.pop(handle)
                    return Reply(0, EV_ERROR, handle, ESPCONN_RST)
                _r, w, _x = select.select([], [s.sock], [], 0)
                if w:
                    self.connecting.pop(handle)
                    err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        return Reply(0, EV_ERROR, handle, ESPCONN_RST)
                    return Reply(0, EV_CONNECTED, handle)
                if now >= self.connecting[handle]:
                    self.connecting.pop(handle)
                    return Reply(0, EV_ERROR, handle, ESPCONN_TIMEOUT)
                continue
            if s.broken:
                return Reply(0, EV_ERROR, handle, ESPCONN_ABRT)
            try:
                r, _w, _x = select.select([s.sock], [], [], 0)
            except (OSError, ValueError):
                return Reply(0, EV_ERROR, handle, ESPCONN_ABRT)
            if not r:
                continue
            try:
                data = s.sock.recv(mss)
            except BlockingIOError:
                continue
            except OSError:
                s.broken = True
                return Reply(0, EV_ERROR, handle, ESPCONN_RST)
            if not data:
                s.broken = True
                return Reply(0, EV_CLOSED, handle)
            return Reply(0, EV_DATA, handle, 0, data)
        return None


def run_sdk_app(ctx: AppContext) -> int:
    return SdkRuntime(ctx).run()
