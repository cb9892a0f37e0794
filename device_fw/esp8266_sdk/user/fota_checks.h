/* The FOTA client's checks on a user bin: the SDK's CRC, the EA header and the version record. */
#ifndef FOTA_CHECKS_H
#define FOTA_CHECKS_H

#include "c_types.h"

/* The version record: the first 80 bytes of irom0 (file offset 16 of a boot-mode-2 user bin). */
#define FOTA_RECORD_MAGIC "SDKAPP\0\1"
#define FOTA_RECORD_OFFSET 16
#define FOTA_RECORD_SIZE 80
#define FOTA_HEAD_SIZE (FOTA_RECORD_OFFSET + FOTA_RECORD_SIZE)

typedef struct {
    char magic[8];
    char version[32];
    char project[32];
    uint8 linked_slot;
    uint8 reserved[7];
} fota_app_record_t;

extern const fota_app_record_t fota_app_record;

/* The version of the bin this app runs from: the record at offset 16 of the running user bin, read from flash
 * (so a bin re-stamped after the build reports its stamp); APP_VERSION if the flash has none. */
const char *fota_running_version(void);

/* Reflected CRC-32 (polynomial 0xEDB88320), no final XOR: start with 0xFFFFFFFF, feed bytes. */
uint32 fota_crc32_update(uint32 crc, const uint8 *data, uint32 len);
/* What a boot-mode-2 user bin's last 4 bytes hold for a CRC register value after the rest of the bin:
 * abs() of it as a signed 32-bit number (the SDK's upgrade_crc_check). */
uint32 fota_crc_word(uint32 crc);

/* -1, 0, 1 as dotted numeric versions compare ("1.10" > "1.9"). */
int fota_version_cmp(const char *a, const char *b);

/* The slot a bin's header says it is linked for (byte 3 of "EA 04 00 <app>"), or 0 when the head is not a
 * boot-mode-2 user bin. */
int fota_header_slot(const uint8 *head);
/* The record in a bin's first FOTA_HEAD_SIZE bytes, or NULL. */
const fota_app_record_t *fota_record_of(const uint8 *head);

#endif
