/*
 * Progress lines of a download.
 */
#include "esp_log.h"
#include "ota_client.h"
#include "ota_progress.h"

#define UNKNOWN_SIZE_STEP (64 * 1024)

static const char *TAG = OTA_TAG;

void ota_progress_init(ota_progress_t *progress, int total)
{
    progress->total = total > 0 ? total : 0;
    progress->next_mark = 0;
    progress->started = false;
}

void ota_progress_update(ota_progress_t *progress, int written)
{
    if (written <= 0 || (progress->started && written < progress->next_mark)) {
        return;
    }
    int64_t step = progress->total > 0 ? progress->total / 10 : UNKNOWN_SIZE_STEP;
    if (step < 1) {
        step = 1;
    }
    ESP_LOGI(TAG, "Written %d of %d bytes", written, progress->total);
    progress->next_mark = ((int64_t)written / step + 1) * step;
    progress->started = true;
}
