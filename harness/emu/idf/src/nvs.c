/* nvs_flash / nvs: the store lives in the partition table's nvs partition; the board keeps it in ESP-IDF's
 * page format through its flash model (harness/emu/idf/nvs.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_err.h"
#include "esp_log.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "hil_board.h"

static esp_err_t simple(const char *op, const char *a, int64_t b)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, op);
    hil_put_str(&m, a);
    hil_put_int(&m, b);
    esp_err_t err = hil_call(&m, &r);
    hil_reply_free(&r);
    return err;
}

esp_err_t nvs_flash_init(void) { return nvs_flash_init_partition(NVS_DEFAULT_PART_NAME); }
esp_err_t nvs_flash_init_partition(const char *label) { return simple("nvs_init", label, 0); }
esp_err_t nvs_flash_deinit(void) { return nvs_flash_deinit_partition(NVS_DEFAULT_PART_NAME); }
esp_err_t nvs_flash_deinit_partition(const char *label) { return simple("nvs_deinit", label, 0); }
esp_err_t nvs_flash_erase(void) { return nvs_flash_erase_partition(NVS_DEFAULT_PART_NAME); }
esp_err_t nvs_flash_erase_partition(const char *label) { return simple("nvs_erase", label, 0); }

esp_err_t nvs_open_from_partition(const char *part_name, const char *namespace_name, nvs_open_mode_t open_mode,
                                  nvs_handle_t *out_handle)
{
    if (out_handle == NULL || namespace_name == NULL) return ESP_ERR_INVALID_ARG;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "nvs_open");
    hil_put_str(&m, part_name);
    hil_put_str(&m, namespace_name);
    hil_put_int(&m, open_mode);
    esp_err_t err = hil_call(&m, &r);
    if (err == ESP_OK) *out_handle = (nvs_handle_t)hil_int(&r, 0, 0);
    hil_reply_free(&r);
    return err;
}

esp_err_t nvs_open(const char *namespace_name, nvs_open_mode_t open_mode, nvs_handle_t *out_handle)
{
    return nvs_open_from_partition(NVS_DEFAULT_PART_NAME, namespace_name, open_mode, out_handle);
}

static esp_err_t set_item(nvs_handle_t handle, const char *key, int type, const void *data, size_t len)
{
    if (key == NULL) return ESP_ERR_INVALID_ARG;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "nvs_set");
    hil_put_int(&m, handle);
    hil_put_str(&m, key);
    hil_put_int(&m, type);
    hil_put_bytes(&m, data, len);
    esp_err_t err = hil_call(&m, &r);
    hil_reply_free(&r);
    return err;
}

/* Reads an item: *len in = room (or 0 with out NULL to ask for the size), out = its size. */
static esp_err_t get_item(nvs_handle_t handle, const char *key, int type, void *out, size_t *len, bool exact)
{
    if (key == NULL || len == NULL) return ESP_ERR_INVALID_ARG;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "nvs_get");
    hil_put_int(&m, handle);
    hil_put_str(&m, key);
    hil_put_int(&m, type);
    esp_err_t err = hil_call(&m, &r);
    if (err == ESP_OK) {
        size_t n;
        const uint8_t *p = hil_bytes(&r, 0, &n);
        if (exact) {
            memcpy(out, p, n < *len ? n : *len);
        } else if (out == NULL) {
            *len = n;
        } else if (*len < n) {
            *len = n;
            err = ESP_ERR_NVS_INVALID_LENGTH;
        } else {
            memcpy(out, p, n);
            *len = n;
        }
    }
    hil_reply_free(&r);
    return err;
}

#define NVS_INT(name, ctype, code)                                                                  \
    esp_err_t nvs_set_##name(nvs_handle_t handle, const char *key, ctype value)                     \
    {                                                                                               \
        return set_item(handle, key, code, &value, sizeof(value));                                  \
    }                                                                                               \
    esp_err_t nvs_get_##name(nvs_handle_t handle, const char *key, ctype *out_value)                \
    {                                                                                               \
        if (out_value == NULL) return ESP_ERR_INVALID_ARG;                                          \
        size_t n = sizeof(*out_value);                                                              \
        return get_item(handle, key, code, out_value, &n, true);                                    \
    }

NVS_INT(i8, int8_t, NVS_TYPE_I8)
NVS_INT(u8, uint8_t, NVS_TYPE_U8)
NVS_INT(i16, int16_t, NVS_TYPE_I16)
NVS_INT(u16, uint16_t, NVS_TYPE_U16)
NVS_INT(i32, int32_t, NVS_TYPE_I32)
NVS_INT(u32, uint32_t, NVS_TYPE_U32)
NVS_INT(i64, int64_t, NVS_TYPE_I64)
NVS_INT(u64, uint64_t, NVS_TYPE_U64)

esp_err_t nvs_set_str(nvs_handle_t handle, const char *key, const char *value)
{
    if (value == NULL) return ESP_ERR_INVALID_ARG;
    return set_item(handle, key, NVS_TYPE_STR, value, strlen(value) + 1);
}

esp_err_t nvs_set_blob(nvs_handle_t handle, const char *key, const void *value, size_t length)
{
    return set_item(handle, key, NVS_TYPE_BLOB, value, length);
}

esp_err_t nvs_get_str(nvs_handle_t handle, const char *key, char *out_value, size_t *length)
{
    return get_item(handle, key, NVS_TYPE_STR, out_value, length, false);
}

esp_err_t nvs_get_blob(nvs_handle_t handle, const char *key, void *out_value, size_t *length)
{
    return get_item(handle, key, NVS_TYPE_BLOB, out_value, length, false);
}

esp_err_t nvs_erase_key(nvs_handle_t handle, const char *key)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "nvs_erase_key");
    hil_put_int(&m, handle);
    hil_put_str(&m, key);
    esp_err_t err = hil_call(&m, &r);
    hil_reply_free(&r);
    return err;
}

esp_err_t nvs_erase_all(nvs_handle_t handle) { return simple("nvs_erase_all", "", handle); }
esp_err_t nvs_commit(nvs_handle_t handle) { return simple("nvs_commit", "", handle); }
void nvs_close(nvs_handle_t handle) { simple("nvs_close", "", handle); }
