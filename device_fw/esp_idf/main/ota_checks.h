/*
 * Checks an offered firmware must pass before anything is written.
 */
#pragma once

#include "esp_app_desc.h"
#include "esp_err.h"
#include "ota_client.h"

/* Copies a descriptor's version (up to 32 characters) as a C string. */
void ota_desc_version(const esp_app_desc_t *desc, char out[OTA_VERSION_MAX + 1]);

/* Refuses (ESP_ERR_INVALID_VERSION, with its log line) a version that is the
 * running one, older than it, or the one whose last trial failed its health
 * check (its partition's state is ESP_OTA_IMG_INVALID). A version whose trial
 * was aborted (ESP_OTA_IMG_ABORTED: power lost or reset before a verdict) is
 * tried again, with a log line saying so. */
esp_err_t ota_check_version(const char *new_version);

/* Refuses (ESP_ERR_OTA_SMALL_SEC_VER) an image whose secure_version is below
 * the one programmed in eFuse (called in builds with
 * CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK only). */
esp_err_t ota_check_secure_version(const esp_app_desc_t *desc);
