"""TCP server of the ESP8266 SDK FOTA protocol (seed-003), which non-OS SDK apps update from.

The device connects and sends one byte: the slot it wants (1 = ``user1.bin``, 2 =
``user2.bin``: the one it is not running from). The server answers with the image
length as a 4-byte little-endian word, then the image in 1280-byte packets, and
closes. Images are given per slot when the server is built (or replaced later with
:meth:`FotaServer.set_image`).

The body goes through :class:`~harness.servers.faults.FaultyStream`: ``lie_length``
changes the length word, the other faults act on image offsets as documented in
:mod:`harness.servers.faults`. A slot byte the server has no image for is logged and
the connection closed; the server keeps serving.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from collections.abc import Mapping
from typing import Any

from .base import TcpServerBase, abort_socket, peer_name
from .faults import FaultPlan, FaultyStream

PACKET_SIZE = 1280
LENGTH_WORD = struct.Struct("<I")


class FotaServer(TcpServerBase):
    """Serves ``images`` (``{1: user1.bin bytes, 2: user2.bin bytes}``) to ESP8266 SDK FOTA clients.

    ``packet_pause_s`` waits after each full packet, as SDK-era servers did to let the
    device write flash between packets; 0 (default) sends as fast as TCP allows.
    ``slot_timeout`` is how long a connected device may take to send its slot byte.
    """

    def __init__(self, images: Mapping[int, bytes], host: str = "127.0.0.1", port: int = 0, *,
                 fault: FaultPlan | None = None, packet_size: int = PACKET_SIZE, packet_pause_s: float = 0.0,
                 slot_timeout: float = 10.0, log_path: str | os.PathLike[str] | None = None,
                 advertise_host: str | None = None, name: str = "fota") -> None:
        super().__init__(name, host, port, log_path=log_path, advertise_host=advertise_host)
        self._images: dict[int, bytes] = {}
        for slot, image in images.items():
            self.set_image(slot, image)
        self.fault = fault
        self._faults: dict[int, FaultPlan | None] = {}
        self.packet_size = packet_size
        self.packet_pause_s = packet_pause_s
        self.slot_timeout = slot_timeout

    def set_image(self, slot: int, image: bytes) -> None:
        if not 0 <= slot <= 0xFF:
            raise ValueError(f"{self.name}: a slot is one byte, not {slot}")
        if len(image) > 0xFFFFFFFF:
            raise ValueError(f"{self.name}: an image of {len(image)} bytes does not fit the 32-bit length word")
        self._images[slot] = bytes(image)

    def set_fault(self, plan: FaultPlan | None, path: str | None = None) -> None:
        """Apply ``plan`` to every transfer, or (``path`` ``user1``/``user2``, as a device publishes it) only to the
        transfers of that slot."""
        if path is None:
            self.fault = plan
            self._faults.clear()
            return
        m = re.fullmatch(r"user([12])", path)
        if m is None:
            raise ValueError(f"{self.name}: a fault applies to user1 or user2, not {path!r}")
        self._faults[int(m.group(1))] = plan

    def transfers(self) -> list[dict[str, Any]]:
        """Logged connections (served, refused or abandoned), oldest first."""
        return [r for r in self.log.records if "slot" in r]

    def wait_transfers(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """At least ``count`` logged connections, waiting for them if need be."""
        return self.log.wait(lambda r: "slot" in r, count, timeout)

    def handle_connection(self, conn: socket.socket, addr: Any) -> None:
        peer = peer_name(addr)
        conn.settimeout(self.slot_timeout)
        try:
            request = conn.recv(1)
        except TimeoutError:
            self.log.add(peer=peer, slot=None, outcome="no-slot", error=f"no slot byte within {self.slot_timeout:g}s")
            return
        if not request:
            self.log.add(peer=peer, slot=None, outcome="no-slot", error="closed before sending a slot byte")
            return
        slot = request[0]
        image = self._images.get(slot)
        if image is None:
            self.log.add(peer=peer, slot=slot, outcome="bad-slot",
                         error=f"no image for slot byte 0x{slot:02x}; have {sorted(self._images)}")
            return
        conn.settimeout(self.connection_timeout)
        stream = FaultyStream(self._faults.get(slot, self.fault), cancel=self.stopping)
        body = stream.prepare_image(image)
        announced = stream.announced_length(len(body))
        rec: dict[str, Any] = {"peer": peer, "slot": slot, "length": announced, "real_length": len(body),
                               "fault": stream.fault, "transfer": stream.transfer if stream.plan is not None else None}
        try:
            conn.sendall(LENGTH_WORD.pack(announced))
        except OSError as exc:
            self.log.add(**rec, bytes_sent=0, outcome="send-failed", error=f"{type(exc).__name__}: {exc}")
            return
        result = stream.pump(body, conn.sendall, chunk_size=self.packet_size, pace_s=self.packet_pause_s)
        if result.outcome == "dropped":
            abort_socket(conn)
        self.log.add(**rec, bytes_sent=result.bytes_sent, outcome=result.outcome, error=result.error)


__all__ = ["FotaServer", "LENGTH_WORD", "PACKET_SIZE"]
