/* This build's version record. The linker script puts section .irom0.version first in irom0
 * (see README.md), so the record sits at offset 16 of user1.bin/user2.bin, where the FOTA client of the
 * previous version and the test harness read it. */
#include "c_types.h"
#include "user_config.h"
#include "fota_checks.h"

const fota_app_record_t fota_app_record __attribute__((section(".irom0.version"), used, aligned(16))) = {
    .magic = FOTA_RECORD_MAGIC,
    .version = APP_VERSION,
    .project = APP_PROJECT,
    .linked_slot = FOTA_LINKED_SLOT,
};
