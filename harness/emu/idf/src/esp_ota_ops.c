/* esp_ota_ops: the calls go to the board, which applies ESP-IDF's otadata rules (harness.esp.boot) and
 * image verification (harness.esp.app_image) to its flash model and prints app_update's log lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_system.h"
#include "esp_efuse.h"
#include "hil_board.h"

int hil_partition_count(void);
const esp_partition_t *hil_partition_at(int i);
const esp_partition_t *hil_partition_by_address(uint32_t addr);

static int64_t board_int(const char *op, int64_t a, int64_t b, esp_err_t *err)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, op);
    hil_put_int(&m, a);
    hil_put_int(&m, b);
    esp_err_t e = hil_call(&m, &r);
    int64_t v = hil_int(&r, 0, -1);
    hil_reply_free(&r);
    if (err) *err = e;
    return v;
}

static bool is_ota_app(const esp_partition_t *p)
{
    return p->type == ESP_PARTITION_TYPE_APP && p->subtype >= ESP_PARTITION_SUBTYPE_APP_OTA_MIN &&
           p->subtype < ESP_PARTITION_SUBTYPE_APP_OTA_MAX;
}

const esp_partition_t *esp_ota_get_running_partition(void)
{
    static const esp_partition_t *running;
    if (running == NULL) {
        int n = hil_partition_count();
        for (int i = 0; i < n; i++) {
            const esp_partition_t *p = hil_partition_at(i);
            if (p->type == ESP_PARTITION_TYPE_APP && p->address <= hil_boot.running_offset &&
                hil_boot.running_offset < p->address + p->size) {
                running = p;
                break;
            }
        }
    }
    return running;
}

const esp_partition_t *esp_ota_get_boot_partition(void)
{
    esp_err_t err;
    int64_t addr = board_int("ota_boot_partition", 0, 0, &err);
    if (err != ESP_OK || addr < 0) return NULL;
    return hil_partition_by_address((uint32_t)addr);
}

const esp_partition_t *esp_ota_get_next_update_partition(const esp_partition_t *start_from)
{
    if (start_from == NULL) start_from = esp_ota_get_running_partition();
    if (start_from == NULL) return NULL;
    esp_err_t err;
    int64_t addr = board_int("ota_next_update", start_from->address, 0, &err);
    if (err != ESP_OK || addr < 0) return NULL;
    return hil_partition_by_address((uint32_t)addr);
}

/* As ESP-IDF counts them: ota_0, ota_1, ... up to the first one the table lacks. */
uint8_t esp_ota_get_app_partition_count(void)
{
    uint8_t count = 0;
    while (count < 16 && esp_partition_find_first(ESP_PARTITION_TYPE_APP,
                                                  (esp_partition_subtype_t)(ESP_PARTITION_SUBTYPE_APP_OTA_MIN + count),
                                                  NULL) != NULL) {
        count++;
    }
    return count;
}

esp_err_t esp_ota_begin(const esp_partition_t *partition, size_t image_size, esp_ota_handle_t *out_handle)
{
    if (partition == NULL || out_handle == NULL) return ESP_ERR_INVALID_ARG;
    partition = esp_partition_verify(partition);
    if (partition == NULL) return ESP_ERR_NOT_FOUND;
    esp_err_t err;
    int64_t h = board_int("ota_begin", partition->address, (int64_t)(uint32_t)image_size, &err);
    if (err == ESP_OK) *out_handle = (esp_ota_handle_t)h;
    return err;
}

static esp_err_t write_call(esp_ota_handle_t handle, const void *data, size_t size, int64_t offset)
{
    if (data == NULL) return ESP_ERR_INVALID_ARG;
    if (size == 0) return ESP_OK;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "ota_write");
    hil_put_int(&m, handle);
    hil_put_int(&m, offset);
    hil_put_bytes(&m, data, size);
    esp_err_t err = hil_call(&m, &r);
    hil_reply_free(&r);
    return err;
}

esp_err_t esp_ota_write(esp_ota_handle_t handle, const void *data, size_t size)
{
    return write_call(handle, data, size, -1);
}

esp_err_t esp_ota_write_with_offset(esp_ota_handle_t handle, const void *data, size_t size, uint32_t offset)
{
    return write_call(handle, data, size, offset);
}

esp_err_t esp_ota_end(esp_ota_handle_t handle)
{
    esp_err_t err;
    board_int("ota_end", handle, 0, &err);
    return err;
}

esp_err_t esp_ota_abort(esp_ota_handle_t handle)
{
    esp_err_t err;
    board_int("ota_abort", handle, 0, &err);
    return err;
}

esp_err_t esp_ota_set_boot_partition(const esp_partition_t *partition)
{
    if (partition == NULL) return ESP_ERR_INVALID_ARG;
    esp_err_t err;
    board_int("ota_set_boot_partition", partition->address, 0, &err);
    return err;
}

esp_err_t esp_ota_get_partition_description(const esp_partition_t *partition, esp_app_desc_t *app_desc)
{
    if (partition == NULL || app_desc == NULL) return ESP_ERR_INVALID_ARG;
    if (partition->type != ESP_PARTITION_TYPE_APP) return ESP_ERR_NOT_SUPPORTED;
    esp_err_t err = esp_partition_read(partition, sizeof(esp_image_header_t) + sizeof(esp_image_segment_header_t),
                                       app_desc, sizeof(esp_app_desc_t));
    if (err != ESP_OK) return err;
    if (app_desc->magic_word != ESP_APP_DESC_MAGIC_WORD) return ESP_ERR_NOT_FOUND;
    return ESP_OK;
}

esp_err_t esp_ota_mark_app_valid_cancel_rollback(void)
{
    esp_err_t err;
    board_int("ota_mark_valid", 0, 0, &err);
    return err;
}

esp_err_t esp_ota_mark_app_invalid_rollback_and_reboot(void)
{
    esp_err_t err;
    board_int("ota_mark_invalid", 0, 0, &err);
    if (err == ESP_OK) esp_restart();
    return err;
}

const esp_partition_t *esp_ota_get_last_invalid_partition(void)
{
    esp_err_t err;
    int64_t addr = board_int("ota_last_invalid", 0, 0, &err);
    if (err != ESP_OK || addr < 0) return NULL;
    return hil_partition_by_address((uint32_t)addr);
}

/* ESP-IDF's rule: the state of the otadata entry whose sequence number names the partition's slot
 * (((seq - 1) % app partition count) == subtype - ota_0) and whose CRC is right, whatever that state is
 * (INVALID and ABORTED too); ESP_ERR_NOT_FOUND if no entry does, or there is no otadata or no OTA app
 * partition. The virtual board reads the entries (runtime_idf.py op_ota_state, harness/esp/boot.py app_state). */
esp_err_t esp_ota_get_state_partition(const esp_partition_t *partition, esp_ota_img_states_t *ota_state)
{
    if (partition == NULL || ota_state == NULL) return ESP_ERR_INVALID_ARG;
    if (!is_ota_app(partition)) return ESP_ERR_NOT_SUPPORTED;
    esp_err_t err;
    int64_t state = board_int("ota_state", partition->address, 0, &err);
    if (err == ESP_OK) *ota_state = (esp_ota_img_states_t)(uint32_t)state;
    return err;
}

bool esp_ota_check_rollback_is_possible(void)
{
    esp_err_t err;
    int64_t v = board_int("ota_rollback_possible", 0, 0, &err);
    return err == ESP_OK && v == 1;
}

/* -- esp_efuse: the chip's secure version eFuse field ---------------------------------------------- */
/* Read from the chip each time: esp_ota_mark_app_valid_cancel_rollback() may have burnt it since the app started. */
uint32_t esp_efuse_read_secure_version(void)
{
    esp_err_t err;
    int64_t v = board_int("efuse_secure_version", 0, 0, &err);
    return err == ESP_OK && v >= 0 ? (uint32_t)v : hil_boot.efuse_secure_version;
}

esp_err_t esp_efuse_update_secure_version(uint32_t secure_version)
{
    esp_err_t err;
    board_int("efuse_update_secure_version", secure_version, 0, &err);
    return err;
}

bool esp_efuse_check_secure_version(uint32_t secure_version)
{
    return secure_version >= esp_efuse_read_secure_version();
}
