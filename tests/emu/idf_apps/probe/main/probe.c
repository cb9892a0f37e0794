/* Reads commands from the console and answers with one "probe: ..." log line each; the tests of the
 * virtual ESP32's ESP-IDF runtime drive it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "esp_err.h"
#include "esp_log.h"
#include "esp_system.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "nvs_flash.h"
#include "nvs.h"
#include "driver/uart.h"
#include "driver/uart_vfs.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

static const char *TAG = "probe";

static int recurse(int depth)
{
    volatile char pad[512];
    pad[0] = (char)depth;
    return depth > 100000 ? pad[0] : recurse(depth + 1) + pad[0];
}

static void command(char *line)
{
    if (strcmp(line, "restart") == 0) {
        esp_restart();
    } else if (strcmp(line, "abort") == 0) {
        abort();
    } else if (strcmp(line, "null") == 0) {
        volatile int *p = NULL;
        *p = 42;
    } else if (strcmp(line, "overflow") == 0) {
        ESP_LOGI(TAG, "deep %d", recurse(0));
    } else if (strcmp(line, "check") == 0) {
        ESP_ERROR_CHECK(ESP_ERR_INVALID_SIZE);
    } else if (strcmp(line, "heap") == 0) {
        uint32_t before = esp_get_free_heap_size();
        size_t n = 0;
        void *blocks[64];
        while (n < 64 && (blocks[n] = malloc(16 * 1024)) != NULL) {
            n++;
        }
        ESP_LOGI(TAG, "heap free %" PRIu32 ", %d blocks of 16 KiB", before, (int)n);
        while (n) {
            free(blocks[--n]);
        }
        ESP_LOGI(TAG, "heap after %" PRIu32, esp_get_free_heap_size());
    } else if (strcmp(line, "running") == 0) {
        const esp_partition_t *p = esp_ota_get_running_partition();
        esp_ota_img_states_t state = 0;
        esp_err_t err = esp_ota_get_state_partition(p, &state);
        ESP_LOGI(TAG, "running %s at 0x%" PRIx32 " state %s 0x%" PRIx32, p->label, p->address, esp_err_to_name(err),
                 (uint32_t)state);
    } else if (strcmp(line, "ota-running") == 0) {
        esp_ota_handle_t h;
        esp_err_t err = esp_ota_begin(esp_ota_get_running_partition(), OTA_SIZE_UNKNOWN, &h);
        ESP_LOGI(TAG, "begin on running: %s", esp_err_to_name(err));
    } else if (strcmp(line, "ota-bad-magic") == 0) {
        esp_ota_handle_t h;
        const esp_partition_t *next = esp_ota_get_next_update_partition(NULL);
        esp_err_t err = esp_ota_begin(next, OTA_WITH_SEQUENTIAL_WRITES, &h);
        uint8_t junk[16] = { 0x00, 1, 2, 3 };
        esp_err_t werr = esp_ota_write(h, junk, sizeof(junk));
        esp_err_t eerr = esp_ota_end(h);
        ESP_LOGI(TAG, "bad magic: begin %s write %s end %s", esp_err_to_name(err), esp_err_to_name(werr),
                 esp_err_to_name(eerr));
    } else if (strncmp(line, "nvs-set ", 8) == 0 || strcmp(line, "nvs-get") == 0) {
        esp_err_t err = nvs_flash_init();
        if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
            nvs_flash_erase();
            err = nvs_flash_init();
        }
        nvs_handle_t h;
        if (err == ESP_OK) err = nvs_open("probe", NVS_READWRITE, &h);
        if (err == ESP_OK && line[3] == '-' && line[4] == 's') {
            err = nvs_set_str(h, "word", line + 8);
            if (err == ESP_OK) err = nvs_commit(h);
            ESP_LOGI(TAG, "nvs set: %s", esp_err_to_name(err));
        } else if (err == ESP_OK) {
            char value[64];
            size_t len = sizeof(value);
            err = nvs_get_str(h, "word", value, &len);
            ESP_LOGI(TAG, "nvs get: %s %s", esp_err_to_name(err), err == ESP_OK ? value : "");
        }
        if (err == ESP_OK) nvs_close(h);
    } else if (strcmp(line, "sleep") == 0) {
        TickType_t t0 = xTaskGetTickCount();
        vTaskDelay(pdMS_TO_TICKS(500));
        ESP_LOGI(TAG, "slept %d ticks", (int)(xTaskGetTickCount() - t0));
    } else {
        ESP_LOGW(TAG, "unknown command '%s'", line);
    }
}

void app_main(void)
{
    ESP_LOGI(TAG, "reset reason %d", (int)esp_reset_reason());
    setvbuf(stdin, NULL, _IONBF, 0);
    ESP_ERROR_CHECK(uart_driver_install(UART_NUM_0, 256, 0, 0, NULL, 0));
    uart_vfs_dev_use_driver(UART_NUM_0);
    ESP_LOGI(TAG, "ready");
    char line[128];
    for (;;) {
        if (fgets(line, sizeof(line), stdin) == NULL) {
            clearerr(stdin);
            vTaskDelay(pdMS_TO_TICKS(10));
            continue;
        }
        line[strcspn(line, "\r\n")] = 0;
        if (line[0]) command(line);
    }
}
