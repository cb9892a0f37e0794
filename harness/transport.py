"""Opening serial ports by URL, with RFC 2217 made fast enough to flash through.

pyserial's RFC 2217 client renegotiates baud rate, data bits, parity, stop bits
and flow control with the server every time ``timeout`` is assigned, and each
negotiation waits at least 0.1 s. esptool assigns the timeout twice per
command, so over ``rfc2217://`` every command costs about 0.2 s and flashing a
1.5 MB image takes tens of seconds (the same happens with boards exported by
esp_rfc2217_server or ser2net on a farm). A read timeout is purely local to the
client, so :class:`FastRfc2217Serial` applies it without telling the server.
"""

from __future__ import annotations

import serial
import serial.rfc2217


class FastRfc2217Serial(serial.rfc2217.Serial):
    """RFC 2217 client that keeps timeout changes local (no renegotiation)."""

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


def open_port(url: str, baudrate: int = 115200, timeout: float | None = 1.0, **kwargs) -> serial.SerialBase:
    """Open a local device path or a pyserial URL (rfc2217://, socket://, ...)."""
    if url.startswith("rfc2217://"):
        return FastRfc2217Serial(url, baudrate=baudrate, timeout=timeout, **kwargs)
    return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, **kwargs)
