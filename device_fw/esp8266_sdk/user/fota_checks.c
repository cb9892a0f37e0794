/* The FOTA client's checks on a user bin (see fota_checks.h). */
#include "c_types.h"
#include "osapi.h"
#include "spi_flash.h"
#include "user_interface.h"
#include "user_config.h"
#include "fota_checks.h"

static uint32 crc_table[256];
static bool crc_table_ready;

static void ICACHE_FLASH_ATTR crc_table_init(void)
{
    uint32 i, k, c;
    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        }
        crc_table[i] = c;
    }
    crc_table_ready = true;
}

uint32 ICACHE_FLASH_ATTR fota_crc32_update(uint32 crc, const uint8 *data, uint32 len)
{
    uint32 i;
    if (!crc_table_ready) crc_table_init();
    for (i = 0; i < len; i++) {
        crc = crc_table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    }
    return crc;
}

uint32 ICACHE_FLASH_ATTR fota_crc_word(uint32 crc)
{
    /* abs() of a negative int32: two's complement negation */
    return (crc & 0x80000000u) ? (~crc + 1u) : crc;
}

static uint32 ICACHE_FLASH_ATTR next_number(const char **p)
{
    uint32 v = 0;
    while (**p >= '0' && **p <= '9') {
        v = v * 10 + (uint32)(**p - '0');
        (*p)++;
    }
    while (**p && **p != '.') (*p)++;  /* a suffix ("1.2-rc1") does not count */
    if (**p == '.') (*p)++;
    return v;
}

int ICACHE_FLASH_ATTR fota_version_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        uint32 x = next_number(&a), y = next_number(&b);
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

int ICACHE_FLASH_ATTR fota_header_slot(const uint8 *head)
{
    if (head[0] != 0xEA || head[1] != 0x04) return 0;
    return head[3];
}

const fota_app_record_t * ICACHE_FLASH_ATTR fota_record_of(const uint8 *head)
{
    const fota_app_record_t *rec = (const fota_app_record_t *)(head + FOTA_RECORD_OFFSET);
    if (os_memcmp(rec->magic, FOTA_RECORD_MAGIC, 8) != 0) return NULL;
    return rec;
}

const char * ICACHE_FLASH_ATTR fota_running_version(void)
{
    static char version[33];
    static uint32 record[FOTA_HEAD_SIZE / 4];
    if (!version[0]) {
        const fota_app_record_t *rec = NULL;
        if (spi_flash_read(system_get_userbin_addr(), record, sizeof(record)) == SPI_FLASH_RESULT_OK) {
            rec = fota_record_of((const uint8 *)record);
        }
        if (rec) {
            os_memcpy(version, rec->version, 32);
        } else {
            /* not fota_app_record itself: it lives in irom0, which the CPU reads in whole words only */
            os_strncpy(version, APP_VERSION, 32);
        }
        version[32] = 0;
    }
    return version;
}
