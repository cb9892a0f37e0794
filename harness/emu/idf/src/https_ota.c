/* esp_https_ota of ESP-IDF v5.x (components/esp_https_ota/src/esp_https_ota.c): begin, image description,
 * perform, finish and abort, with its state machine, buffer sizes and log lines. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_https_ota.h"
#include "esp_ota_ops.h"
#include "esp_app_format.h"
#include "hil_board.h"

ESP_EVENT_DEFINE_BASE(ESP_HTTPS_OTA_EVENT);

#define IMAGE_HEADER_SIZE (sizeof(esp_image_header_t) + sizeof(esp_image_segment_header_t) + sizeof(esp_app_desc_t) + 1)
#define DEFAULT_OTA_BUF_SIZE IMAGE_HEADER_SIZE
#define DEFAULT_REQUEST_SIZE (64 * 1024)

static const int DEFAULT_MAX_AUTH_RETRIES = 10;
static const char *TAG = "esp_https_ota";

typedef enum {
    ESP_HTTPS_OTA_INIT,
    ESP_HTTPS_OTA_BEGIN,
    ESP_HTTPS_OTA_IN_PROGRESS,
    ESP_HTTPS_OTA_SUCCESS,
} esp_https_ota_state;

struct esp_https_ota_handle {
    esp_ota_handle_t update_handle;
    const esp_partition_t *update_partition;
    esp_http_client_handle_t http_client;
    char *ota_upgrade_buf;
    size_t ota_upgrade_buf_size;
    int binary_file_len;
    int image_length;
    int max_http_request_size;
    esp_https_ota_state state;
    bool bulk_flash_erase;
    bool partial_http_download;
    int max_authorization_retries;
};

typedef struct esp_https_ota_handle esp_https_ota_t;

static bool redirection_required(int status_code)
{
    switch (status_code) {
    case HttpStatus_MovedPermanently:
    case HttpStatus_Found:
    case HttpStatus_SeeOther:
    case HttpStatus_TemporaryRedirect:
    case HttpStatus_PermanentRedirect:
        return true;
    default:
        return false;
    }
}

static bool process_again(int status_code)
{
    return redirection_required(status_code) || status_code == HttpStatus_Unauthorized;
}

static esp_err_t _http_handle_response_code(esp_https_ota_t *h, int status_code)
{
    esp_err_t err;
    if (redirection_required(status_code)) {
        err = esp_http_client_set_redirection(h->http_client);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "URL redirection Failed");
            return err;
        }
    } else if (status_code == HttpStatus_Unauthorized) {
        if (h->max_authorization_retries == 0) {
            ESP_LOGE(TAG, "Reached max_authorization_retries (%d)", status_code);
            return ESP_FAIL;
        }
        h->max_authorization_retries--;
        esp_http_client_add_auth(h->http_client);
    } else if (status_code == HttpStatus_NotFound || status_code == HttpStatus_Forbidden) {
        ESP_LOGE(TAG, "File not found(%d)", status_code);
        return ESP_FAIL;
    } else if (status_code >= HttpStatus_BadRequest && status_code < HttpStatus_InternalError) {
        ESP_LOGE(TAG, "Client error (%d)", status_code);
        return ESP_FAIL;
    } else if (status_code >= HttpStatus_InternalError) {
        ESP_LOGE(TAG, "Server error (%d)", status_code);
        return ESP_FAIL;
    }

    char upgrade_data_buf[256];
    // process_again() returns true only in case of redirection.
    if (process_again(status_code)) {
        while (1) {
            /* In case of redirection, esp_http_client_read() is called to clear the response buffer of http_client. */
            int data_read = esp_http_client_read(h->http_client, upgrade_data_buf, sizeof(upgrade_data_buf));
            if (data_read <= 0) return ESP_OK;
        }
    }
    return ESP_OK;
}

static esp_err_t _http_connect(esp_https_ota_t *h)
{
    esp_err_t err = ESP_FAIL;
    int status_code;
    int64_t header_ret;
    do {
        char *post_data = NULL;
        int post_len = esp_http_client_get_post_field(h->http_client, &post_data);
        err = esp_http_client_open(h->http_client, post_len);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "Failed to open HTTP connection: %s", esp_err_to_name(err));
            return err;
        }
        if (post_len) {
            int write_len = 0;
            while (post_len > 0) {
                write_len = esp_http_client_write(h->http_client, post_data, post_len);
                if (write_len < 0) {
                    ESP_LOGE(TAG, "Write failed");
                    return ESP_FAIL;
                }
                post_len -= write_len;
                post_data += write_len;
            }
        }
        header_ret = esp_http_client_fetch_headers(h->http_client);
        if (header_ret < 0) return (esp_err_t)header_ret;
        status_code = esp_http_client_get_status_code(h->http_client);
        err = _http_handle_response_code(h, status_code);
        if (err != ESP_OK) return err;
    } while (process_again(status_code));
    return err;
}

static void _http_cleanup(esp_http_client_handle_t client)
{
    esp_http_client_close(client);
    esp_http_client_cleanup(client);
}

static esp_err_t _ota_write(esp_https_ota_t *h, const void *buffer, size_t buf_len)
{
    if (buffer == NULL || h == NULL) return ESP_FAIL;
    esp_err_t err = esp_ota_write(h->update_handle, buffer, buf_len);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Error: esp_ota_write failed! err=0x%x", err);
    } else {
        h->binary_file_len += (int)buf_len;
        ESP_LOGD(TAG, "Written image length %d", h->binary_file_len);
        err = ESP_ERR_HTTPS_OTA_IN_PROGRESS;
    }
    return err;
}

static bool is_server_verification_enabled(const esp_https_ota_config_t *ota_config)
{
    return (ota_config->http_config->cert_pem || ota_config->http_config->use_global_ca_store ||
            ota_config->http_config->crt_bundle_attach != NULL);
}

esp_err_t esp_https_ota_begin(const esp_https_ota_config_t *ota_config, esp_https_ota_handle_t *handle)
{
    esp_err_t err;
    if (handle == NULL || ota_config == NULL || ota_config->http_config == NULL) {
        ESP_LOGE(TAG, "esp_https_ota_begin: Invalid argument");
        if (handle) *handle = NULL;
        return ESP_ERR_INVALID_ARG;
    }
    if (!is_server_verification_enabled(ota_config)) {
#if CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP
        ESP_LOGW(TAG, "Continuing with insecure option because CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP is set.");
#else
        ESP_LOGE(TAG, "No option for server verification is enabled in esp_http_client config.");
        *handle = NULL;
        return ESP_ERR_INVALID_ARG;
#endif
    }
    esp_https_ota_t *h = calloc(1, sizeof(esp_https_ota_t));
    if (!h) {
        ESP_LOGE(TAG, "Couldn't allocate memory to upgrade data buffer");
        *handle = NULL;
        return ESP_ERR_NO_MEM;
    }
    h->partial_http_download = ota_config->partial_http_download;
    h->max_http_request_size = ota_config->max_http_request_size == 0 ? DEFAULT_REQUEST_SIZE : ota_config->max_http_request_size;
    h->max_authorization_retries = ota_config->http_config->max_authorization_retries;
    if (h->max_authorization_retries == 0) {
        h->max_authorization_retries = DEFAULT_MAX_AUTH_RETRIES;
    } else if (h->max_authorization_retries == -1) {
        h->max_authorization_retries = 0;
    }
    h->http_client = esp_http_client_init(ota_config->http_config);
    if (h->http_client == NULL) {
        ESP_LOGE(TAG, "Failed to initialise HTTP connection");
        err = ESP_FAIL;
        goto failure;
    }
    if (ota_config->http_client_init_cb) {
        err = ota_config->http_client_init_cb(h->http_client);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "http_client_init_cb returned 0x%x", err);
            goto http_cleanup;
        }
    }
    if (h->partial_http_download) {
        ESP_LOGE(TAG, "Partial HTTP download is not enabled (CONFIG_ESP_HTTPS_OTA_ENABLE_PARTIAL_DOWNLOAD)");
        err = ESP_ERR_NOT_SUPPORTED;
        goto http_cleanup;
    }
    err = _http_connect(h);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Failed to establish HTTP connection");
        goto http_cleanup;
    }
    h->image_length = (int)esp_http_client_get_content_length(h->http_client);
    h->update_partition = NULL;
    ESP_LOGI(TAG, "Starting OTA...");
    h->update_partition = esp_ota_get_next_update_partition(NULL);
    if (h->update_partition == NULL) {
        ESP_LOGE(TAG, "Passive OTA partition not found");
        err = ESP_FAIL;
        goto http_cleanup;
    }
    ESP_LOGI(TAG, "Writing to <%s> partition at offset 0x%" PRIx32, h->update_partition->label, h->update_partition->address);
    const int alloc_size = MAX(ota_config->http_config->buffer_size, (int)DEFAULT_OTA_BUF_SIZE);
    h->ota_upgrade_buf = (char *)malloc((size_t)alloc_size);
    if (!h->ota_upgrade_buf) {
        ESP_LOGE(TAG, "Couldn't allocate memory to upgrade data buffer");
        err = ESP_ERR_NO_MEM;
        goto http_cleanup;
    }
    h->ota_upgrade_buf_size = (size_t)alloc_size;
    h->bulk_flash_erase = ota_config->bulk_flash_erase;
    h->binary_file_len = 0;
    *handle = (esp_https_ota_handle_t)h;
    h->state = ESP_HTTPS_OTA_BEGIN;
    return ESP_OK;

http_cleanup:
    _http_cleanup(h->http_client);
failure:
    free(h);
    *handle = NULL;
    return err;
}

static esp_err_t read_header(esp_https_ota_t *handle)
{
    int data_read_size = (int)IMAGE_HEADER_SIZE;
    int data_read = 0, bytes_read = 0;
    while (data_read_size > 0 && !esp_http_client_is_complete_data_received(handle->http_client)) {
        data_read = esp_http_client_read(handle->http_client, (handle->ota_upgrade_buf + bytes_read), data_read_size);
        if (data_read < 0) {
            if (data_read == -ESP_ERR_HTTP_EAGAIN) {
                ESP_LOGD(TAG, "ESP_ERR_HTTP_EAGAIN invoked: Call timed out before data was ready");
                continue;
            }
            ESP_LOGE(TAG, "Connection closed, errno = %d", errno);
            break;
        }
        data_read_size -= data_read;
        bytes_read += data_read;
    }
    if (data_read_size > 0) {
        ESP_LOGE(TAG, "Complete headers were not received");
        return ESP_FAIL;
    }
    handle->binary_file_len = bytes_read;
    return ESP_OK;
}

esp_err_t esp_https_ota_get_img_desc(esp_https_ota_handle_t https_ota_handle, esp_app_desc_t *new_app_info)
{
    esp_https_ota_t *handle = (esp_https_ota_t *)https_ota_handle;
    if (handle == NULL || new_app_info == NULL) {
        ESP_LOGE(TAG, "esp_https_ota_read_img_desc: Invalid argument");
        return ESP_ERR_INVALID_ARG;
    }
    if (handle->state < ESP_HTTPS_OTA_BEGIN) {
        ESP_LOGE(TAG, "esp_https_ota_read_img_desc: Invalid state");
        return ESP_ERR_INVALID_STATE;
    }
    if (read_header(handle) != ESP_OK) return ESP_FAIL;
    const int app_desc_offset = sizeof(esp_image_header_t) + sizeof(esp_image_segment_header_t);
    esp_app_desc_t *app_info = (esp_app_desc_t *)&handle->ota_upgrade_buf[app_desc_offset];
    if (app_info->magic_word != ESP_APP_DESC_MAGIC_WORD) {
        ESP_LOGE(TAG, "Incorrect app descriptor magic");
        return ESP_FAIL;
    }
    memcpy(new_app_info, app_info, sizeof(esp_app_desc_t));
    return ESP_OK;
}

static esp_err_t esp_https_ota_verify_chip_id(const void *arg)
{
    esp_image_header_t *data = (esp_image_header_t *)(arg);
    if (data->chip_id != CONFIG_IDF_FIRMWARE_CHIP_ID) {
        ESP_LOGE(TAG, "Mismatch chip id, expected %d, found %d", CONFIG_IDF_FIRMWARE_CHIP_ID, data->chip_id);
        return ESP_ERR_INVALID_VERSION;
    }
    return ESP_OK;
}

esp_err_t esp_https_ota_perform(esp_https_ota_handle_t https_ota_handle)
{
    esp_https_ota_t *handle = (esp_https_ota_t *)https_ota_handle;
    if (handle == NULL) {
        ESP_LOGE(TAG, "esp_https_ota_perform: Invalid argument");
        return ESP_ERR_INVALID_ARG;
    }
    if (handle->state < ESP_HTTPS_OTA_BEGIN) {
        ESP_LOGE(TAG, "esp_https_ota_perform: Invalid state");
        return ESP_FAIL;
    }
    esp_err_t err;
    int data_read;
    const int erase_size = handle->bulk_flash_erase ? OTA_SIZE_UNKNOWN : OTA_WITH_SEQUENTIAL_WRITES;
    switch (handle->state) {
    case ESP_HTTPS_OTA_BEGIN:
        err = esp_ota_begin(handle->update_partition, (size_t)(unsigned)erase_size, &handle->update_handle);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "esp_ota_begin failed (%s)", esp_err_to_name(err));
            return err;
        }
        handle->state = ESP_HTTPS_OTA_IN_PROGRESS;
        /* In case `esp_https_ota_get_img_desc` was invoked first, then the image data read there should be
         * written to OTA partition */
        int binary_file_len = 0;
        if (handle->binary_file_len) {
            binary_file_len = handle->binary_file_len;
        } else {
            if (read_header(handle) != ESP_OK) return ESP_FAIL;
            binary_file_len = (int)IMAGE_HEADER_SIZE;
        }
        err = esp_https_ota_verify_chip_id(handle->ota_upgrade_buf);
        if (err != ESP_OK) return err;
        /* Header length gets added to handle->binary_file_len in _ota_write */
        handle->binary_file_len = 0;
        return _ota_write(handle, (const void *)handle->ota_upgrade_buf, (size_t)binary_file_len);
    case ESP_HTTPS_OTA_IN_PROGRESS:
        data_read = esp_http_client_read(handle->http_client, handle->ota_upgrade_buf, (int)handle->ota_upgrade_buf_size);
        if (data_read == 0) {
            /* esp_http_client_is_complete_data_received is added to check whether complete image is received. */
            if (!esp_http_client_is_complete_data_received(handle->http_client)) {
                ESP_LOGE(TAG, "Connection closed before complete data was received!");
                return ESP_FAIL;
            }
            ESP_LOGD(TAG, "Connection closed");
        } else if (data_read > 0) {
            return _ota_write(handle, (const void *)handle->ota_upgrade_buf, (size_t)data_read);
        } else {
            if (data_read == -ESP_ERR_HTTP_EAGAIN) {
                ESP_LOGD(TAG, "ESP_ERR_HTTP_EAGAIN invoked: Call timed out before data was ready");
                return ESP_ERR_HTTPS_OTA_IN_PROGRESS;
            }
            ESP_LOGE(TAG, "data read %d, errno %d", data_read, errno);
            return ESP_FAIL;
        }
        handle->state = ESP_HTTPS_OTA_SUCCESS;
        break;
    default:
        ESP_LOGE(TAG, "Invalid ESP HTTPS OTA State");
        return ESP_FAIL;
    }
    return ESP_OK;
}

bool esp_https_ota_is_complete_data_received(esp_https_ota_handle_t https_ota_handle)
{
    esp_https_ota_t *handle = (esp_https_ota_t *)https_ota_handle;
    return esp_http_client_is_complete_data_received(handle->http_client);
}

esp_err_t esp_https_ota_finish(esp_https_ota_handle_t https_ota_handle)
{
    esp_https_ota_t *handle = (esp_https_ota_t *)https_ota_handle;
    if (handle == NULL) return ESP_ERR_INVALID_ARG;
    if (handle->state < ESP_HTTPS_OTA_BEGIN) return ESP_FAIL;

    esp_err_t err = ESP_OK;
    switch (handle->state) {
    case ESP_HTTPS_OTA_SUCCESS:
    case ESP_HTTPS_OTA_IN_PROGRESS:
        err = esp_ota_end(handle->update_handle);
        /* falls through */
    case ESP_HTTPS_OTA_BEGIN:
        if (handle->ota_upgrade_buf) free(handle->ota_upgrade_buf);
        if (handle->http_client) _http_cleanup(handle->http_client);
        break;
    default:
        ESP_LOGE(TAG, "Invalid ESP HTTPS OTA State");
        break;
    }
    if ((err == ESP_OK) && (handle->state == ESP_HTTPS_OTA_SUCCESS)) {
        esp_err_t err = esp_ota_set_boot_partition(handle->update_partition);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "esp_ota_set_boot_partition failed! err=0x%x", err);
        }
        free(handle);
        return err;
    }
    free(handle);
    return err;
}

esp_err_t esp_https_ota_abort(esp_https_ota_handle_t https_ota_handle)
{
    esp_https_ota_t *handle = (esp_https_ota_t *)https_ota_handle;
    if (handle == NULL) return ESP_ERR_INVALID_ARG;
    if (handle->state < ESP_HTTPS_OTA_BEGIN) return ESP_FAIL;
    esp_err_t err = ESP_OK;
    switch (handle->state) {
    case ESP_HTTPS_OTA_SUCCESS:
    case ESP_HTTPS_OTA_IN_PROGRESS:
        err = esp_ota_abort(handle->update_handle);
        /* falls through */
    case ESP_HTTPS_OTA_BEGIN:
        if (handle->ota_upgrade_buf) free(handle->ota_upgrade_buf);
        if (handle->http_client) _http_cleanup(handle->http_client);
        break;
    default:
        err = ESP_ERR_INVALID_STATE;
        ESP_LOGE(TAG, "Invalid ESP HTTPS OTA State");
        break;
    }
    free(handle);
    return err;
}

int esp_https_ota_get_image_len_read(esp_https_ota_handle_t https_ota_handle)
{
    esp_https_ota_t *handle = (esp_https_ota_t *)https_ota_handle;
    if (handle == NULL) return -1;
    if (handle->state < ESP_HTTPS_OTA_IN_PROGRESS) return -1;
    return handle->binary_file_len;
}

int esp_https_ota_get_image_size(esp_https_ota_handle_t https_ota_handle)
{
    esp_https_ota_t *handle = (esp_https_ota_t *)https_ota_handle;
    if (handle == NULL) return -1;
    if (handle->state < ESP_HTTPS_OTA_BEGIN) return -1;
    return handle->image_length;
}

esp_err_t esp_https_ota(const esp_https_ota_config_t *ota_config)
{
    if (ota_config == NULL || ota_config->http_config == NULL) {
        ESP_LOGE(TAG, "esp_https_ota: Invalid argument");
        return ESP_ERR_INVALID_ARG;
    }
    esp_https_ota_handle_t https_ota_handle = NULL;
    esp_err_t err = esp_https_ota_begin(ota_config, &https_ota_handle);
    if (err != ESP_OK) return err;
    if (https_ota_handle == NULL) return ESP_FAIL;
    while (1) {
        err = esp_https_ota_perform(https_ota_handle);
        if (err != ESP_ERR_HTTPS_OTA_IN_PROGRESS) break;
    }
    if (err != ESP_OK) {
        esp_https_ota_abort(https_ota_handle);
        return err;
    }
    esp_err_t ota_finish_err = esp_https_ota_finish(https_ota_handle);
    if (ota_finish_err != ESP_OK) return ota_finish_err;
    return ESP_OK;
}
