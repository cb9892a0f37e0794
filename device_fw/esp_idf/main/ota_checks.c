/*
 * Checks an offered firmware must pass before anything is written.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include "esp_efuse.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "ota_checks.h"
#include "ota_util.h"

static const char *TAG = OTA_TAG;

void ota_desc_version(const esp_app_desc_t *desc, char out[OTA_VERSION_MAX + 1])
{
    size_t len = strnlen(desc->version, sizeof(desc->version));
    if (len > OTA_VERSION_MAX) {
        len = OTA_VERSION_MAX;
    }
    memcpy(out, desc->version, len);
    out[len] = '\0';
}

/* The version of the app that last left its trial without being confirmed
 * (esp_ota_get_last_invalid_partition: its otadata entry is INVALID or
 * ABORTED) and that entry's state. */
static bool last_invalid_version(char out[OTA_VERSION_MAX + 1], esp_ota_img_states_t *state)
{
    const esp_partition_t *invalid = esp_ota_get_last_invalid_partition();
    if (invalid == NULL) {
        return false;
    }
    esp_app_desc_t desc;
    esp_err_t err = esp_ota_get_partition_description(invalid, &desc);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "Reading the app description at 0x%08" PRIx32 " failed: %s",
                 invalid->address, esp_err_to_name(err));
        return false;
    }
    err = esp_ota_get_state_partition(invalid, state);
    if (err != ESP_OK) {
        /* no entry to tell why it left its trial: treat it as failed */
        ESP_LOGW(TAG, "Reading the OTA state of partition %s failed: %s", invalid->label, esp_err_to_name(err));
        *state = ESP_OTA_IMG_INVALID;
    }
    ota_desc_version(&desc, out);
    return true;
}

esp_err_t ota_check_version(const char *new_version)
{
    char running[OTA_VERSION_MAX + 1];
    ota_desc_version(esp_app_get_description(), running);
    if (strcmp(new_version, running) == 0) {
        ESP_LOGW(TAG, "Current running version is the same as a new. We will not continue the update.");
        return ESP_ERR_INVALID_VERSION;
    }
    if (ota_version_compare(new_version, running) < 0) {
        ESP_LOGW(TAG, "New version %s is older than the running %s. We will not continue the update.",
                 new_version, running);
        return ESP_ERR_INVALID_VERSION;
    }
    char invalid[OTA_VERSION_MAX + 1];
    esp_ota_img_states_t state;
    if (last_invalid_version(invalid, &state) && strcmp(new_version, invalid) == 0) {
        if (state == ESP_OTA_IMG_ABORTED) {
            /* The bootloader found it still PENDING_VERIFY at the next boot: power
             * went (or the chip reset) before its health check gave a verdict. */
            ESP_LOGW(TAG, "Version %s was aborted before its health check gave a verdict (power lost or reset "
                     "during its trial); trying it again.", invalid);
            return ESP_OK;
        }
        ESP_LOGW(TAG, "New version is the same as invalid version.");
        ESP_LOGW(TAG, "Previously, there was an attempt to launch the firmware with %s version, but it failed.",
                 invalid);
        return ESP_ERR_INVALID_VERSION;
    }
    return ESP_OK;
}

esp_err_t ota_check_secure_version(const esp_app_desc_t *desc)
{
    if (esp_efuse_check_secure_version(desc->secure_version)) {
        return ESP_OK;
    }
    ESP_LOGW(TAG, "New firmware security version is less than eFuse programmed, %" PRIu32 " < %" PRIu32,
             desc->secure_version, esp_efuse_read_secure_version());
    return ESP_ERR_OTA_SMALL_SEC_VER;
}
