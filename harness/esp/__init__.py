"""Pure codecs for ESP32/ESP8266 flash contents: app images, partition tables, otadata,
ESP8266 FOTA images and boot parameters, and ESP-IDF's boot-selection rules.

No I/O happens here: everything takes and returns ``bytes`` and small dataclasses,
so the harness (reading real flash with esptool), the boot-state oracle and the
virtual boards all decode flash with the same code.
"""

from .app_image import (
    APP_DESC_MAGIC,
    APP_DESC_OFFSET,
    AppDesc,
    AppImage,
    ImageCheck,
    ParsedImage,
    ParsedSegment,
    Segment,
    build_app,
    build_bootloader,
    build_esp8266_app,
    image_length,
    parse_image,
    rehash,
    segment_log_lines,
    set_version,
    verify_image,
)
from .boot import (
    IDF_LEGACY,
    IDF_V5_5,
    BootDecision,
    IdfOtaProfile,
    OtadataWrite,
    OtaError,
    SlotCheck,
    app_state,
    apply_writes,
    check_rollback_is_possible,
    get_boot_partition,
    get_next_update,
    image_slot_check,
    mark_app_invalid_rollback,
    mark_app_valid,
    ota_begin_refusal,
    ota_begin_writes,
    select_boot,
    set_boot_partition,
)
from .chips import ESP32, ESP8266, ChipInfo, chip_info, format_size, parse_size
from .errors import FormatError, ImageFormatError, OtadataError, PartitionTableError
from .esp8266_image import (
    Banner,
    BootParams,
    EaImage,
    FotaLayout,
    FotaState,
    ParsedEaImage,
    SectorWrite,
    UserBinDesc,
    apply_protected_save,
    build_boot_image,
    build_ea_image,
    build_user_bin,
    check_sdk_crc,
    decode_fota_state,
    find_micropython_banner,
    parse_ea_image,
    protected_save_writes,
    read_user_bin_desc,
    sdk_baseline,
    sdk_crc,
    switch_slot_writes,
    verify_ea_image,
)
from .otadata import (
    OTADATA_SECTOR_SIZE,
    OtaSelectEntry,
    OtaState,
    ota_seq_crc,
    otadata_region,
    parse_otadata,
    sector_image,
)
from .partition_table import Partition, PartitionTable, PartitionType, idf_two_ota, micropython_esp32_ota

__all__ = [
    "APP_DESC_MAGIC", "APP_DESC_OFFSET", "AppDesc", "AppImage", "Banner", "BootDecision", "BootParams", "ChipInfo",
    "ESP32", "ESP8266", "EaImage", "FormatError", "FotaLayout", "FotaState", "IDF_LEGACY", "IDF_V5_5",
    "IdfOtaProfile", "ImageCheck", "ImageFormatError", "OTADATA_SECTOR_SIZE", "OtaError", "OtaSelectEntry",
    "OtaState", "OtadataError", "OtadataWrite", "ParsedEaImage", "ParsedImage", "ParsedSegment", "Partition",
    "PartitionTable", "PartitionTableError", "PartitionType", "SectorWrite", "Segment", "SlotCheck", "app_state",
    "apply_writes", "build_app", "build_bootloader", "build_ea_image", "build_esp8266_app",
    "check_rollback_is_possible", "check_sdk_crc", "chip_info", "decode_fota_state", "find_micropython_banner",
    "format_size", "get_boot_partition",
    "get_next_update", "idf_two_ota", "image_slot_check", "image_length", "mark_app_invalid_rollback", "mark_app_valid",
    "micropython_esp32_ota", "ota_begin_refusal", "ota_begin_writes", "ota_seq_crc", "otadata_region",
    "parse_ea_image", "parse_image", "parse_otadata", "parse_size", "rehash", "sdk_crc", "sector_image",
    "segment_log_lines", "select_boot", "set_boot_partition", "set_version", "switch_slot_writes",
    "verify_ea_image", "verify_image",
    "UserBinDesc", "apply_protected_save", "build_boot_image", "build_user_bin", "protected_save_writes",
    "read_user_bin_desc", "sdk_baseline",
]
