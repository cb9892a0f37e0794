/*
 * Test mutation OTA_CLIENT_MUTATION_WRITE_RUNNING_SLOT: downloads the image
 * with esp_http_client and writes it over the running partition, sector by
 * sector, then restarts. There is no second copy to fall back to: this is the
 * fault a scenario has to catch. Built only when the mutation is enabled.
 */
#include "sdkconfig.h"
#include "ota_single_slot.h"

#if CONFIG_OTA_CLIENT_MUTATION_WRITE_RUNNING_SLOT

#include <inttypes.h>
#include <stdlib.h>
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "ota_client.h"
#include "ota_http.h"
#include "ota_progress.h"

#define SECTOR_SIZE 4096
#define RESTART_DELAY_MS 1000

static const char *TAG = OTA_TAG;

/* Erases the sector at offset and writes len bytes of data there. */
static esp_err_t write_sector(const esp_partition_t *part, size_t offset, const char *data, size_t len)
{
    esp_err_t err = esp_partition_erase_range(part, offset, SECTOR_SIZE);
    if (err == ESP_OK) {
        err = esp_partition_write(part, offset, data, len);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Writing 0x%08" PRIx32 "+0x%x failed: %s", part->address, (unsigned)offset,
                 esp_err_to_name(err));
    }
    return err;
}

/* Streams the answer body of client over part. */
static esp_err_t copy_body(esp_http_client_handle_t client, const esp_partition_t *part, int total)
{
    char *buf = malloc(SECTOR_SIZE);
    if (buf == NULL) {
        ESP_LOGE(TAG, "Sector buffer: %s", esp_err_to_name(ESP_ERR_NO_MEM));
        return ESP_ERR_NO_MEM;
    }
    ota_progress_t progress;
    ota_progress_init(&progress, total);
    esp_err_t err = ESP_OK;
    size_t offset = 0;
    for (;;) {
        int n = esp_http_client_read_response(client, buf, SECTOR_SIZE);
        if (n < 0) {
            err = ESP_FAIL;
            ESP_LOGE(TAG, "Download failed: %s", esp_err_to_name(err));
            break;
        }
        if (n == 0) {
            break;
        }
        if (offset + (size_t)n > part->size) {
            err = ESP_ERR_INVALID_SIZE;
            ESP_LOGE(TAG, "Image larger than the partition: %s", esp_err_to_name(err));
            break;
        }
        err = write_sector(part, offset, buf, (size_t)n);
        if (err != ESP_OK) {
            break;
        }
        offset += (size_t)n;
        ota_progress_update(&progress, (int)offset);
        if (n < SECTOR_SIZE) {
            break;
        }
    }
    free(buf);
    return err;
}

esp_err_t ota_single_slot_install(const char *image_url)
{
    const esp_partition_t *running = esp_ota_get_running_partition();
    if (running == NULL) {
        ESP_LOGE(TAG, "No running partition: %s", esp_err_to_name(ESP_ERR_NOT_FOUND));
        return ESP_ERR_NOT_FOUND;
    }
    ESP_LOGW(TAG, "Test mutation: writing %s over the running partition at 0x%08" PRIx32,
             image_url, running->address);
    esp_http_client_handle_t client;
    int64_t length;
    esp_err_t err = ota_http_open_get(image_url, &client, &length);
    if (err != ESP_OK) {
        return err;
    }
    int status = esp_http_client_get_status_code(client);
    if (status != 200) {
        ESP_LOGE(TAG, "%s answered HTTP %d", image_url, status);
        err = ESP_ERR_INVALID_RESPONSE;
    } else if (length > (int64_t)running->size) {
        ESP_LOGE(TAG, "Image of %" PRId64 " bytes larger than the partition", length);
        err = ESP_ERR_INVALID_SIZE;
    } else {
        err = copy_body(client, running, (int)length);
    }
    ota_http_release(client);
    if (err != ESP_OK) {
        return err;
    }
    ESP_LOGI(TAG, "ESP_HTTPS_OTA upgrade successful. Rebooting ...");
    vTaskDelay(pdMS_TO_TICKS(RESTART_DELAY_MS));
    esp_restart();
}

#endif /* CONFIG_OTA_CLIENT_MUTATION_WRITE_RUNNING_SLOT */
