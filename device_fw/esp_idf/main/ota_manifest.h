/*
 * The firmware manifest: {"version": str, "size": int, "sha256": hex, "url": str}.
 */
#pragma once

#include "esp_err.h"
#include "ota_client.h"

typedef struct {
    char version[OTA_VERSION_MAX + 1];
    int size;
    char sha256[OTA_SHA256_HEX_LEN + 1]; /* lowercase hex */
    char url[OTA_URL_MAX];               /* the image, resolved against the manifest's URL */
} ota_manifest_t;

/* Downloads and checks the manifest at manifest_url and logs
 * "Manifest: version ..., ... bytes, sha256 ...". */
esp_err_t ota_manifest_fetch(const char *manifest_url, ota_manifest_t *out);
