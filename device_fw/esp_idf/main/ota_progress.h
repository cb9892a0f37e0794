/*
 * "Written N of M bytes" progress lines: at the first block, then every 10 %.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int total;         /* image size, 0 when unknown */
    int64_t next_mark; /* bytes at which the next line is due */
    bool started;
} ota_progress_t;

/* total: the image size, or 0 when unknown (then a line every 64 KiB). */
void ota_progress_init(ota_progress_t *progress, int total);

/* Reports that written bytes are now in flash. */
void ota_progress_update(ota_progress_t *progress, int written);
