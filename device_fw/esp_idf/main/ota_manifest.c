/*
 * Download and validation of the firmware manifest.
 */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"
#include "esp_log.h"
#include "ota_http.h"
#include "ota_manifest.h"
#include "ota_util.h"

/* A manifest is a few hundred bytes; anything beyond this is refused. */
#define MANIFEST_MAX_BYTES 2048

static const char *TAG = OTA_TAG;

/* Copies the string member name (1 .. out_size - 1 characters) into out. */
static esp_err_t get_string(const cJSON *root, const char *name, char *out, size_t out_size)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        ESP_LOGE(TAG, "Manifest: \"%s\" is missing or not a string", name);
        return ESP_ERR_INVALID_RESPONSE;
    }
    size_t len = strlen(item->valuestring);
    if (len == 0 || len >= out_size) {
        ESP_LOGE(TAG, "Manifest: \"%s\" must have 1 to %u characters", name, (unsigned)(out_size - 1));
        return ESP_ERR_INVALID_RESPONSE;
    }
    memcpy(out, item->valuestring, len + 1);
    return ESP_OK;
}

static esp_err_t get_size(const cJSON *root, int *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "size");
    if (!cJSON_IsNumber(item)) {
        ESP_LOGE(TAG, "Manifest: \"size\" is missing or not a number");
        return ESP_ERR_INVALID_RESPONSE;
    }
    double value = item->valuedouble;
    if (!(value >= 1 && value <= INT_MAX) || value != (double)(int)value) {
        ESP_LOGE(TAG, "Manifest: \"size\" must be a whole number of bytes from 1 to %d", INT_MAX);
        return ESP_ERR_INVALID_RESPONSE;
    }
    *out = (int)value;
    return ESP_OK;
}

static esp_err_t get_sha256(const cJSON *root, char out[OTA_SHA256_HEX_LEN + 1])
{
    esp_err_t err = get_string(root, "sha256", out, OTA_SHA256_HEX_LEN + 1);
    if (err != ESP_OK) {
        return err;
    }
    size_t len = strlen(out);
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)out[i])) {
            len = 0;
            break;
        }
        out[i] = (char)tolower((unsigned char)out[i]);
    }
    if (len != OTA_SHA256_HEX_LEN) {
        ESP_LOGE(TAG, "Manifest: \"sha256\" must be %d hex digits", OTA_SHA256_HEX_LEN);
        return ESP_ERR_INVALID_RESPONSE;
    }
    return ESP_OK;
}

static esp_err_t get_image_url(const cJSON *root, const char *manifest_url, char *out, size_t out_size)
{
    char *ref = malloc(out_size);
    if (ref == NULL) {
        ESP_LOGE(TAG, "Manifest: %s", esp_err_to_name(ESP_ERR_NO_MEM));
        return ESP_ERR_NO_MEM;
    }
    esp_err_t err = get_string(root, "url", ref, out_size);
    if (err == ESP_OK) {
        err = ota_url_resolve(manifest_url, ref, out, out_size);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "Manifest: cannot resolve \"url\" %s: %s", ref, esp_err_to_name(err));
        } else if (!ota_url_is_http(out)) {
            ESP_LOGE(TAG, "Manifest: \"url\" %s is not an http(s) URL", out);
            err = ESP_ERR_INVALID_RESPONSE;
        }
    }
    free(ref);
    return err;
}

static esp_err_t read_fields(const cJSON *root, const char *manifest_url, ota_manifest_t *out)
{
    esp_err_t err = get_string(root, "version", out->version, sizeof(out->version));
    if (err == ESP_OK) {
        err = get_size(root, &out->size);
    }
    if (err == ESP_OK) {
        err = get_sha256(root, out->sha256);
    }
    if (err == ESP_OK) {
        err = get_image_url(root, manifest_url, out->url, sizeof(out->url));
    }
    return err;
}

static esp_err_t parse_manifest(const char *text, size_t len, const char *manifest_url,
                                ota_manifest_t *out)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (root == NULL) {
        ESP_LOGE(TAG, "Manifest %s is not valid JSON", manifest_url);
        return ESP_ERR_INVALID_RESPONSE;
    }
    esp_err_t err = ESP_ERR_INVALID_RESPONSE;
    if (cJSON_IsObject(root)) {
        err = read_fields(root, manifest_url, out);
    } else {
        ESP_LOGE(TAG, "Manifest %s is not a JSON object", manifest_url);
    }
    cJSON_Delete(root);
    return err;
}

esp_err_t ota_manifest_fetch(const char *manifest_url, ota_manifest_t *out)
{
    char *text = malloc(MANIFEST_MAX_BYTES + 1);
    if (text == NULL) {
        ESP_LOGE(TAG, "Manifest buffer: %s", esp_err_to_name(ESP_ERR_NO_MEM));
        return ESP_ERR_NO_MEM;
    }
    size_t len = 0;
    esp_err_t err = ota_http_get_body(manifest_url, text, MANIFEST_MAX_BYTES + 1, &len);
    if (err == ESP_OK) {
        err = parse_manifest(text, len, manifest_url, out);
    }
    free(text);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Manifest %s refused: %s", manifest_url, esp_err_to_name(err));
        return err;
    }
    ESP_LOGI(TAG, "Manifest: version %s, %d bytes, sha256 %s", out->version, out->size, out->sha256);
    return ESP_OK;
}
