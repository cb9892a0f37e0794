"""A build directory as ``idf.py build`` leaves it (bootloader, partition table, app, ``flasher_args.json``), with
images the harness's decoders accept, and a board and bench that need no port, power or console."""

from __future__ import annotations

import json
import types
from pathlib import Path

from harness.board import Board
from harness.console import Console
from harness.esp import build_app, build_bootloader
from harness.esp.partition_table import PartitionTable

#: the client's partitions.csv (contract section 1): the same offsets as MicroPython's OTA layout
CLIENT_CSV = """\
nvs,      data, nvs,   0x9000,  0x4000,
otadata,  data, ota,   0xd000,  0x2000,
phy_init, data, phy,   0xf000,  0x1000,
ota_0,    app,  ota_0, 0x10000, 0x180000,
ota_1,    app,  ota_1, 0x190000, 0x180000,
"""


def idf_build(directory: Path, *, project: str = "esp_ota_client", version: str = "1", chip: str = "esp32",
              csv: str = CLIENT_CSV, app_size: int = 0x20000) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "bootloader/bootloader.bin": build_bootloader("esp32").to_bytes(),
        "partition_table/partition-table.bin": PartitionTable.from_csv(csv).to_bytes(),
        f"{project}.bin": build_app("esp32", project=project, version=version, size=app_size).to_bytes(),
        "ota_data_initial.bin": b"\xff" * 0x2000,
    }
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    (directory / "flasher_args.json").write_text(json.dumps({
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "40m"],
        "flash_settings": {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"},
        "flash_files": {"0x1000": "bootloader/bootloader.bin", "0x8000": "partition_table/partition-table.bin",
                        "0xd000": "ota_data_initial.bin", "0x10000": f"{project}.bin"},
        "bootloader": {"offset": "0x1000", "file": "bootloader/bootloader.bin", "encrypted": "false"},
        "app": {"offset": "0x10000", "file": f"{project}.bin", "encrypted": "false"},
        "partition-table": {"offset": "0x8000", "file": "partition_table/partition-table.bin", "encrypted": "false"},
        "otadata": {"offset": "0xd000", "file": "ota_data_initial.bin", "encrypted": "false"},
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "stub": True, "chip": chip},
    }, indent=4))
    (directory / "project_description.json").write_text(json.dumps({"project_name": project, "target": chip,
                                                                    "app_bin": f"{project}.bin"}))
    return directory


class FakePort:
    """What the console writes to; what it reads is fed through ``Console._append``."""

    def __init__(self):
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        pass


def paper_board(name: str = "esp32-0", chip: str = "esp32", virtual: bool = True) -> Board:
    """A Board with a console on a fake port and nothing else: layout, known images and the console's events."""
    board = Board.__new__(Board)
    board.spec = types.SimpleNamespace(name=name, chip=chip, flash_size=4 << 20, boot_timeout=1.0, virtual=virtual)
    board.name, board.chip, board._table, board.device, board.known_images = name, chip, None, None, []
    board.console = Console("rfc2217://127.0.0.1:1", name)
    board.console._port = FakePort()
    board.snapshots = False
    return board


class PaperBench:
    """What devices ask of the run's OtaBench: the HTTP server, the mutation, the CA."""

    def __init__(self, http, mutation=None, ca=b"-----BEGIN CERTIFICATE-----\nrun CA\n-----END CERTIFICATE-----\n"):
        self.http = http
        self.mutation = mutation
        self.ca = ca

    def mutation_for(self, device_kind: str):
        if self.mutation is None:
            return None
        from harness.mutations import mutation

        m = mutation(self.mutation)
        return m if m.device == device_kind else None

    def ca_pem(self) -> bytes:
        return self.ca
