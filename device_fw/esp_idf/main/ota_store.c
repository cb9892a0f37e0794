/*
 * The origin of the last update in NVS.
 */
#include "esp_log.h"
#include "nvs.h"
#include "ota_client.h"
#include "ota_store.h"

#define STORE_NAMESPACE "ota_client"
#define STORE_KEY_ORIGIN "origin"

static const char *TAG = OTA_TAG;

esp_err_t ota_store_save_origin(const char *origin)
{
    nvs_handle_t handle;
    esp_err_t err = nvs_open(STORE_NAMESPACE, NVS_READWRITE, &handle);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "nvs_open(%s) for writing failed: %s", STORE_NAMESPACE, esp_err_to_name(err));
        return err;
    }
    err = nvs_set_str(handle, STORE_KEY_ORIGIN, origin);
    if (err == ESP_OK) {
        err = nvs_commit(handle);
    }
    nvs_close(handle);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Saving the update origin failed: %s", esp_err_to_name(err));
    }
    return err;
}

esp_err_t ota_store_load_origin(char *out, size_t out_size)
{
    nvs_handle_t handle;
    esp_err_t err = nvs_open(STORE_NAMESPACE, NVS_READONLY, &handle);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "nvs_open(%s) failed: %s", STORE_NAMESPACE, esp_err_to_name(err));
        return err;
    }
    size_t length = out_size;
    err = nvs_get_str(handle, STORE_KEY_ORIGIN, out, &length);
    nvs_close(handle);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Reading the update origin failed: %s", esp_err_to_name(err));
    }
    return err;
}
