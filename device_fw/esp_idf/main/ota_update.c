/*
 * One update: manifest (optional), checks before the first write, download
 * with esp_https_ota, read-back verification, switch and restart.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "esp_https_ota.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "mbedtls/sha256.h"
#include "sdkconfig.h"
#include "ota_checks.h"
#include "ota_client.h"
#include "ota_http.h"
#include "ota_manifest.h"
#include "ota_progress.h"
#include "ota_single_slot.h"
#include "ota_store.h"
#include "ota_update.h"
#include "ota_util.h"

#define HASH_CHUNK 4096
#define SHA256_LEN 32
#define RESTART_DELAY_MS 1000

static const char *TAG = OTA_TAG;

typedef struct {
    bool has_manifest;
    ota_manifest_t manifest;
    char image_url[OTA_URL_MAX];
} ota_request_t;

static esp_err_t set_image_url(ota_request_t *req, const char *url)
{
    size_t len = strlen(url);
    if (len >= sizeof(req->image_url)) {
        ESP_LOGE(TAG, "Image URL longer than %d characters: %s", OTA_URL_MAX - 1,
                 esp_err_to_name(ESP_ERR_INVALID_SIZE));
        return ESP_ERR_INVALID_SIZE;
    }
    memcpy(req->image_url, url, len + 1);
    return ESP_OK;
}

/* Fills req from the URL of the serial line: the manifest's image, or the URL itself. */
static esp_err_t prepare_request(const char *url, ota_request_t *req)
{
    if (!ota_url_is_manifest(url)) {
        req->has_manifest = false;
        return set_image_url(req, url);
    }
    req->has_manifest = true;
    esp_err_t err = ota_manifest_fetch(url, &req->manifest);
    if (err != ESP_OK) {
        return err;
    }
#if !CONFIG_OTA_CLIENT_MUTATION_SKIP_VERSION_CHECK
    err = ota_check_version(req->manifest.version);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "manifest verification failed");
        return err;
    }
#endif
    return set_image_url(req, req->manifest.url);
}

/* The next firmware runs its health check on this origin. */
static esp_err_t remember_origin(const char *url)
{
    char origin[OTA_URL_MAX];
    esp_err_t err = ota_url_origin(url, origin, sizeof(origin));
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "No origin in %s: %s", url, esp_err_to_name(err));
        return err;
    }
    return ota_store_save_origin(origin);
}

static void abort_update(esp_https_ota_handle_t handle)
{
    esp_err_t err = esp_https_ota_abort(handle);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "esp_https_ota_abort: %s", esp_err_to_name(err));
    }
}

static esp_err_t check_image_desc(const esp_app_desc_t *desc)
{
    char version[OTA_VERSION_MAX + 1];
    ota_desc_version(desc, version);
    ESP_LOGI(TAG, "New firmware version: %s", version);
    esp_err_t err = ESP_OK;
#if !CONFIG_OTA_CLIENT_MUTATION_SKIP_VERSION_CHECK
    err = ota_check_version(version);
#endif
    /* As advanced_https_ota does: only a build with anti-rollback has a secure version to keep (without it
     * the bootloader and esp_ota_set_boot_partition ignore the eFuse, and so does the client). */
#if CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK && !CONFIG_OTA_CLIENT_MUTATION_SKIP_SECURE_VERSION_CHECK
    if (err == ESP_OK) {
        err = ota_check_secure_version(desc);
    }
#endif
    return err;
}

/* Refuses an image that cannot fit the update partition. */
static esp_err_t check_image_size(esp_https_ota_handle_t handle, const ota_request_t *req)
{
    int size = esp_https_ota_get_image_size(handle);
#if CONFIG_OTA_CLIENT_MUTATION_REQUIRE_CONTENT_LENGTH
    if (size <= 0) {
        ESP_LOGE(TAG, "Image size unknown (chunked answer); refusing");
        return ESP_ERR_INVALID_SIZE;
    }
#endif
    const esp_partition_t *target = esp_ota_get_next_update_partition(NULL);
    if (target == NULL) {
        ESP_LOGE(TAG, "No OTA partition to update: %s", esp_err_to_name(ESP_ERR_NOT_FOUND));
        return ESP_ERR_NOT_FOUND;
    }
    int announced = size > 0 ? size : (req->has_manifest ? req->manifest.size : 0);
    if (announced > 0 && (uint32_t)announced > target->size) {
        ESP_LOGE(TAG, "Image of %d bytes does not fit the update partition (%" PRIu32 " bytes)",
                 announced, target->size);
        return ESP_ERR_INVALID_SIZE;
    }
    return ESP_OK;
}

/* Everything that can refuse the image before the first byte is written. */
static esp_err_t check_before_write(esp_https_ota_handle_t handle, const ota_request_t *req)
{
    esp_app_desc_t desc;
    esp_err_t err = esp_https_ota_get_img_desc(handle, &desc);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_https_ota_get_img_desc failed: %s", esp_err_to_name(err));
        return err;
    }
    err = check_image_desc(&desc);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "image header verification failed");
        return err;
    }
    return check_image_size(handle, req);
}

static int expected_size(esp_https_ota_handle_t handle, const ota_request_t *req)
{
    int size = esp_https_ota_get_image_size(handle);
    if (size > 0) {
        return size;
    }
    return req->has_manifest ? req->manifest.size : 0;
}

static void to_hex(const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

/* SHA-256 of the first length bytes of part, read back from flash. */
static esp_err_t hash_partition(const esp_partition_t *part, size_t length, uint8_t digest[SHA256_LEN])
{
    uint8_t *buf = malloc(HASH_CHUNK);
    if (buf == NULL) {
        ESP_LOGE(TAG, "Read-back buffer: %s", esp_err_to_name(ESP_ERR_NO_MEM));
        return ESP_ERR_NO_MEM;
    }
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    int rc = mbedtls_sha256_starts(&ctx, 0);
    esp_err_t err = ESP_OK;
    size_t offset = 0;
    while (rc == 0 && offset < length) {
        size_t n = length - offset < HASH_CHUNK ? length - offset : HASH_CHUNK;
        err = esp_partition_read(part, offset, buf, n);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "Reading back 0x%08" PRIx32 "+0x%x failed: %s",
                     part->address, (unsigned)offset, esp_err_to_name(err));
            break;
        }
        rc = mbedtls_sha256_update(&ctx, buf, n);
        offset += n;
    }
    if (err == ESP_OK && rc == 0) {
        rc = mbedtls_sha256_finish(&ctx, digest);
    }
    if (err == ESP_OK && rc != 0) {
        ESP_LOGE(TAG, "SHA-256 computation failed (mbedtls -0x%04x): %s", (unsigned)-rc,
                 esp_err_to_name(ESP_FAIL));
        err = ESP_FAIL;
    }
    mbedtls_sha256_free(&ctx);
    free(buf);
    return err;
}

/* The written image must be exactly the manifest's size and SHA-256. */
static esp_err_t verify_written_image(esp_https_ota_handle_t handle, const ota_manifest_t *m)
{
    char announced[OTA_SHA256_HEX_LEN + 1];
    char actual[OTA_SHA256_HEX_LEN + 1];
    int written = esp_https_ota_get_image_len_read(handle);
    if (written != m->size) {
        snprintf(announced, sizeof(announced), "%d bytes", m->size);
        snprintf(actual, sizeof(actual), "%d bytes", written);
        ESP_LOGE(TAG, "SHA-256 mismatch: the manifest announced %s, the image has %s", announced, actual);
        return ESP_ERR_INVALID_SIZE;
    }
    const esp_partition_t *target = esp_ota_get_next_update_partition(NULL);
    if (target == NULL) {
        ESP_LOGE(TAG, "No OTA partition to read back: %s", esp_err_to_name(ESP_ERR_NOT_FOUND));
        return ESP_ERR_NOT_FOUND;
    }
    uint8_t digest[SHA256_LEN];
    esp_err_t err = hash_partition(target, (size_t)m->size, digest);
    if (err != ESP_OK) {
        return err;
    }
    to_hex(digest, sizeof(digest), actual);
    if (strcmp(actual, m->sha256) != 0) {
        ESP_LOGE(TAG, "SHA-256 mismatch: the manifest announced %s, the image has %s", m->sha256, actual);
        return ESP_ERR_INVALID_CRC;
    }
    ESP_LOGI(TAG, "The written image matches the manifest (sha256 %s)", actual);
    return ESP_OK;
}

/* Runs esp_https_ota_perform until the image is in flash, then verifies it. */
static esp_err_t download(esp_https_ota_handle_t handle, const ota_request_t *req)
{
    ota_progress_t progress;
    ota_progress_init(&progress, expected_size(handle, req));
    esp_err_t err;
    do {
        err = esp_https_ota_perform(handle);
        if (err == ESP_ERR_HTTPS_OTA_IN_PROGRESS || err == ESP_OK) {
            ota_progress_update(&progress, esp_https_ota_get_image_len_read(handle));
        }
    } while (err == ESP_ERR_HTTPS_OTA_IN_PROGRESS);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_https_ota_perform failed: %s", esp_err_to_name(err));
    }
    if (!esp_https_ota_is_complete_data_received(handle)) {
        ESP_LOGE(TAG, "Complete data was not received.");
        return err != ESP_OK ? err : ESP_ERR_INVALID_SIZE;
    }
    if (err != ESP_OK) {
        return err;
    }
#if !CONFIG_OTA_CLIENT_MUTATION_SKIP_SHA256_CHECK
    if (req->has_manifest) {
        err = verify_written_image(handle, &req->manifest);
    }
#endif
    return err;
}

/* Validates the image, switches the boot partition and restarts. */
static esp_err_t finish_update(esp_https_ota_handle_t handle)
{
    esp_err_t err = esp_https_ota_finish(handle);
    if (err == ESP_OK) {
        ESP_LOGI(TAG, "ESP_HTTPS_OTA upgrade successful. Rebooting ...");
        vTaskDelay(pdMS_TO_TICKS(RESTART_DELAY_MS));
        esp_restart();
    }
    if (err == ESP_ERR_OTA_VALIDATE_FAILED) {
        ESP_LOGE(TAG, "Image validation failed, image is corrupted");
    } else {
        ESP_LOGE(TAG, "ESP_HTTPS_OTA upgrade failed 0x%x (%s)", (unsigned)err, esp_err_to_name(err));
    }
    return err;
}

static esp_err_t install_image(const ota_request_t *req)
{
    esp_http_client_config_t http;
    ota_http_config_init(&http, req->image_url);
    esp_https_ota_config_t ota = {
        .http_config = &http,
    };
    esp_https_ota_handle_t handle = NULL;
    esp_err_t err = esp_https_ota_begin(&ota, &handle);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "ESP HTTPS OTA Begin failed: %s", esp_err_to_name(err));
        return err;
    }
    err = check_before_write(handle, req);
    if (err == ESP_OK) {
        err = download(handle, req);
    }
    if (err != ESP_OK) {
        abort_update(handle);
        return err;
    }
    return finish_update(handle);
}

esp_err_t ota_update_run(const char *url)
{
    ota_request_t *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        ESP_LOGE(TAG, "Update request: %s", esp_err_to_name(ESP_ERR_NO_MEM));
        return ESP_ERR_NO_MEM;
    }
    esp_err_t err = prepare_request(url, req);
    if (err == ESP_OK) {
        err = remember_origin(url);
    }
    if (err == ESP_OK) {
#if CONFIG_OTA_CLIENT_MUTATION_WRITE_RUNNING_SLOT
        err = ota_single_slot_install(req->image_url);
#else
        err = install_image(req);
#endif
    }
    free(req);
    return err;
}
