/*
 * Shared limits and the log tag of the OTA client.
 */
#pragma once

/* Log tag of every line the client itself prints. */
#define OTA_TAG "ota_client"

/* Longest URL accepted, including the terminating NUL. */
#define OTA_URL_MAX 512

/* esp_app_desc_t.version holds up to 32 characters (not always NUL-terminated). */
#define OTA_VERSION_MAX 32

/* SHA-256 as lowercase hex, without the NUL. */
#define OTA_SHA256_HEX_LEN 64
