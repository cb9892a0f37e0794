"""Opening serial ports by URL, with RFC 2217 made fast enough to flash through.

pyserial's RFC 2217 client renegotiates baud rate, data bits, parity, stop bits
and flow control with the server every time ``timeout`` is assigned, and each
negotiation waits at least 0.1 s. esptool assigns the timeout twice per
command, so over ``rfc2217://`` every command costs about 0.2 s and flashing a
1.5 MB image takes tens of seconds (the same happens with boards exported by
esp_rfc2217_server or ser2net on a farm). A read timeout is purely local to the
client, so :class:`FastRfc2217Serial` applies it without telling the server.

The same client also queues every received byte separately, which caps reads at
about 100 KB/s (a 1 MB esptool read-flash took 11 s); it queues whole runs of
data between telnet commands instead. And it waits at least 50 ms for the server
to acknowledge each DTR/RTS change; esptool's reset sequence makes five of them.
TCP delivers the changes in order and esptool times the reset with its own
sleeps, so the acknowledgement is not waited for.

Opening and closing sleep no fixed time either. pyserial polls for each answer it
needs while opening (option negotiation, port settings, two buffer purges) with a
0.05 s sleep before every check, and sleeps 0.3 s after closing; over ``rfc2217://``
an esptool session spent half a second in those sleeps. Here a poll's sleep ends as
soon as the reader thread has taken in a telnet command from the server (see
:class:`_AnswerClock`), and closing hangs up and waits for the server to hang up too,
which is what the fixed sleep was guessing at.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

import serial
import serial.rfc2217
from serial.rfc2217 import DO, DONT, IAC, SB, SE, WILL, WONT
from serial.serialutil import PortNotOpenError, Timeout


class _AnswerClock:
    """Stands in for the ``time`` module in pyserial's RFC 2217 client, which looks it up there.

    A ``sleep`` in the thread of a :class:`FastRfc2217Serial` that is waiting for the server
    (each of pyserial's polls sleeps before it checks) returns as soon as the port's reader
    has taken in a telnet command that came after the previous check, or after the time
    asked; anything else sleeps as usual.
    """

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        port = getattr(_WAITING, "port", None)
        if port is None:
            time.sleep(seconds)
        else:
            port._wait_for_answer(seconds)


_WAITING = threading.local()
serial.rfc2217.time = _AnswerClock()


class FastRfc2217Serial(serial.rfc2217.Serial):
    """RFC 2217 client that keeps timeout changes local, moves received data in chunks and never sleeps a fixed
    time waiting for the server."""

    def open(self):
        self._leftover = bytearray()
        self._queued = 0
        self._count_lock = threading.Lock()
        self._answers = threading.Condition()
        self._answer_count = 0
        self._answers_seen = 0
        with self._waiting():
            super().open()

    @contextlib.contextmanager
    def _waiting(self):
        """pyserial's polls in this thread wait for this port's answers (:class:`_AnswerClock`)."""
        before = getattr(_WAITING, "port", None)
        _WAITING.port = self
        try:
            yield
        finally:
            _WAITING.port = before

    def _answered(self) -> None:
        with self._answers:
            self._answer_count += 1
            self._answers.notify_all()

    def _wait_for_answer(self, seconds: float) -> None:
        with self._answers:
            self._answers.wait_for(lambda: self._answer_count > self._answers_seen, seconds)
            self._answers_seen = self._answer_count

    def close(self):
        """Hang up and wait (bounded) until the server has hung up too: a server that takes one client at a
        time then takes the next connection at once. No fixed sleep."""
        self.is_open = False
        sock, thread = self._socket, self._thread
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(2)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._thread = None
        self._socket = None

    @property
    def in_waiting(self):
        if not self.is_open:
            raise PortNotOpenError()
        with self._count_lock:
            return len(self._leftover) + self._queued

    def _put(self, chunk) -> None:
        if chunk:
            with self._count_lock:
                self._queued += len(chunk)
        self._read_buffer.put(chunk)

    def read(self, size=1):
        if not self.is_open:
            raise PortNotOpenError()
        data = bytearray()
        timeout = Timeout(self._timeout)
        while len(data) < size:
            if self._leftover:
                with self._count_lock:
                    take = self._leftover[: size - len(data)]
                    del self._leftover[: len(take)]
                data += take
                continue
            if self._thread is None or not self._thread.is_alive():
                raise serial.SerialException("connection failed (reader thread died)")
            try:
                buf = self._read_buffer.get(True, timeout.time_left())
            except queue.Empty:
                break
            if buf is None:
                break
            with self._count_lock:
                self._queued -= len(buf)
                self._leftover += buf
            if timeout.expired():
                break
        if len(data) < size and self._leftover:
            with self._count_lock:
                take = self._leftover[: size - len(data)]
                del self._leftover[: len(take)]
            data += take
        return bytes(data)

    def rfc2217_set_control(self, value):
        self._rfc2217_options["control"].set(value)

    def reset_input_buffer(self):
        with self._waiting():
            super().reset_input_buffer()
        with self._count_lock:
            self._leftover.clear()
            self._queued = 0

    def reset_output_buffer(self):
        with self._waiting():
            super().reset_output_buffer()

    def _telnet_read_loop(self):
        # pyserial's loop, with runs of plain data handed over as one chunk.
        normal, iac_seen, negotiate = 0, 1, 2
        mode = normal
        suboption = None
        telnet_command = None
        while True:
            try:
                data = self._socket.recv(65536)
            except socket.timeout:
                if not self.is_open:
                    self._read_buffer.put(None)
                    break
                continue
            except OSError:
                self._read_buffer.put(None)
                break
            if not data:
                self._read_buffer.put(None)
                break
            out = bytearray()  # plain data of this recv, handed over in one piece
            i, n = 0, len(data)
            while i < n:
                if mode == normal:
                    j = data.find(IAC, i)
                    end = n if j < 0 else j
                    if end > i:
                        if suboption is not None:
                            suboption += data[i:end]
                        else:
                            out += data[i:end]
                    if j < 0:
                        break
                    mode = iac_seen
                    i = j + 1
                    continue
                byte = data[i : i + 1]
                i += 1
                if mode == iac_seen:
                    if byte == IAC:
                        if suboption is not None:
                            suboption += IAC
                        else:
                            out += IAC
                        mode = normal
                    elif byte == SB:
                        suboption = bytearray()
                        mode = normal
                    elif byte == SE:
                        self._telnet_process_subnegotiation(bytes(suboption or b""))
                        self._answered()
                        suboption = None
                        mode = normal
                    elif byte in (DO, DONT, WILL, WONT):
                        telnet_command = byte
                        mode = negotiate
                    else:
                        self._telnet_process_command(byte)
                        self._answered()
                        mode = normal
                else:
                    self._telnet_negotiate_option(telnet_command, byte)
                    self._answered()
                    mode = normal
            if out:
                self._put(bytes(out))

    @serial.rfc2217.Serial.timeout.setter  # type: ignore[attr-defined]
    def timeout(self, timeout):
        if timeout is not None:
            if timeout < 0:
                raise ValueError(f"Not a valid timeout: {timeout!r}")
            try:
                timeout + 1
            except TypeError:
                raise ValueError(f"Not a valid timeout: {timeout!r}") from None
        self._timeout = timeout


def open_port(url: str, baudrate: int = 115200, timeout: float | None = 1.0, *, release_lines: bool = False,
              **kwargs) -> serial.SerialBase:
    """Open a local device path or a pyserial URL (rfc2217://, socket://, ...).

    ``release_lines`` opens with DTR and RTS inactive, so opening a monitor on a DevKit
    neither resets the chip nor, while it boots, pulls IO0 low into download mode (pyserial
    would otherwise assert DTR first and RTS a moment later).
    """
    if url.startswith("rfc2217://"):
        port = FastRfc2217Serial(None, baudrate=baudrate, timeout=timeout, **kwargs)
        port.port = url
    else:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, do_not_open=True, **kwargs)
    if release_lines:
        port.dtr = False
        port.rts = False
    port.open()
    return port
