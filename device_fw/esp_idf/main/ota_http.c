/*
 * HTTP(S) requests of the OTA client.
 */
#include <inttypes.h>
#include <stdbool.h>
#include "esp_http_client.h"
#include "esp_log.h"
#include "sdkconfig.h"
#include "ota_client.h"
#include "ota_http.h"

#define HTTP_TIMEOUT_MS 10000
#define HTTP_BUFFER_SIZE 4096
#define HTTP_MAX_REDIRECTS 5

static const char *TAG = OTA_TAG;

/* server_certs/ca_cert.pem, embedded by main/CMakeLists.txt (NUL-terminated). */
extern const char ca_cert_pem_start[] asm("_binary_ca_cert_pem_start");
extern const char ca_cert_pem_end[] asm("_binary_ca_cert_pem_end");

/* The CA to verify servers with, or NULL when there is none to use. It is set
 * for http:// URLs too, so a redirect to https:// is still verified. */
static const char *server_ca(void)
{
#if CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY
    return NULL;
#else
    if (ca_cert_pem_end - ca_cert_pem_start <= 1) {
        ESP_LOGW(TAG, "server_certs/ca_cert.pem is empty: https:// URLs cannot be verified");
        return NULL;
    }
    return ca_cert_pem_start;
#endif
}

void ota_http_config_init(esp_http_client_config_t *cfg, const char *url)
{
    *cfg = (esp_http_client_config_t) {
        .url = url,
        .cert_pem = server_ca(),
        .timeout_ms = HTTP_TIMEOUT_MS,
        .keep_alive_enable = true,
        .buffer_size = HTTP_BUFFER_SIZE,
        .max_redirection_count = HTTP_MAX_REDIRECTS,
#if CONFIG_OTA_CLIENT_MUTATION_NO_REDIRECTS
        .disable_auto_redirect = true,
#endif
#if CONFIG_OTA_CLIENT_SKIP_CERT_COMMON_NAME_CHECK
        .skip_cert_common_name_check = true,
#endif
    };
}

void ota_http_release(esp_http_client_handle_t client)
{
    esp_err_t err = esp_http_client_close(client);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "esp_http_client_close: %s", esp_err_to_name(err));
    }
    err = esp_http_client_cleanup(client);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "esp_http_client_cleanup: %s", esp_err_to_name(err));
    }
}

static bool is_redirect(int status)
{
    return status == HttpStatus_MovedPermanently || status == HttpStatus_Found ||
           status == HttpStatus_SeeOther || status == HttpStatus_TemporaryRedirect ||
           status == HttpStatus_PermanentRedirect;
}

/* Sends the GET and reads the answer's headers; returns the content length
 * (-1 for a chunked answer) or a negative error. */
static esp_err_t open_once(esp_http_client_handle_t c, const char *url, int64_t *length)
{
    esp_err_t err = esp_http_client_open(c, 0);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Connecting to %s failed: %s", url, esp_err_to_name(err));
        return err;
    }
    int64_t n = esp_http_client_fetch_headers(c);
    if (n < 0 && !esp_http_client_is_chunked_response(c)) {
        /* -1 (ESP_FAIL) or a negated esp_err_t such as -ESP_ERR_HTTP_EAGAIN */
        err = (n == ESP_FAIL) ? ESP_FAIL : (esp_err_t)(-n);
        ESP_LOGE(TAG, "Reading the answer of %s failed: %s", url, esp_err_to_name(err));
        return err;
    }
    *length = n;
    return ESP_OK;
}

/* Follows the redirect the last answer gave; the next open goes there. */
static esp_err_t follow_redirect(esp_http_client_handle_t c, int redirects)
{
    if (redirects >= HTTP_MAX_REDIRECTS) {
        ESP_LOGE(TAG, "More than %d redirects", HTTP_MAX_REDIRECTS);
        return ESP_ERR_HTTP_MAX_REDIRECT;
    }
    int status = esp_http_client_get_status_code(c);
    esp_err_t err = esp_http_client_flush_response(c, NULL);
    if (err == ESP_OK) {
        err = esp_http_client_set_redirection(c);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Following a redirect failed: %s", esp_err_to_name(err));
        return err;
    }
    ESP_LOGI(TAG, "Following an HTTP %d redirect", status);
    return ESP_OK;
}

esp_err_t ota_http_open_get(const char *url, esp_http_client_handle_t *client,
                            int64_t *content_length)
{
    esp_http_client_config_t cfg;
    ota_http_config_init(&cfg, url);
    esp_http_client_handle_t c = esp_http_client_init(&cfg);
    if (c == NULL) {
        ESP_LOGE(TAG, "esp_http_client_init(%s) failed: %s", url, esp_err_to_name(ESP_FAIL));
        return ESP_FAIL;
    }
    int64_t length = 0;
    esp_err_t err = ESP_OK;
    for (int redirects = 0;; redirects++) {
        err = open_once(c, url, &length);
        if (err != ESP_OK || !is_redirect(esp_http_client_get_status_code(c))) {
            break;
        }
#if CONFIG_OTA_CLIENT_MUTATION_NO_REDIRECTS
        break; /* the caller gets the 3xx answer */
#endif
        err = follow_redirect(c, redirects);
        if (err != ESP_OK) {
            break;
        }
    }
    if (err != ESP_OK) {
        ota_http_release(c);
        return err;
    }
    *client = c;
    *content_length = length;
    return ESP_OK;
}

esp_err_t ota_http_get_status(const char *url, int *status)
{
    esp_http_client_handle_t client;
    int64_t length;
    esp_err_t err = ota_http_open_get(url, &client, &length);
    if (err != ESP_OK) {
        return err;
    }
    *status = esp_http_client_get_status_code(client);
    ota_http_release(client);
    return ESP_OK;
}

/* Reads the body into buf[0 .. buf_size - 2]; fails if more is left. */
static esp_err_t read_body(esp_http_client_handle_t client, const char *url,
                           char *buf, size_t buf_size, size_t *len)
{
    size_t used = 0;
    while (used < buf_size - 1) {
        int n = esp_http_client_read_response(client, buf + used, (int)(buf_size - 1 - used));
        if (n < 0) {
            ESP_LOGE(TAG, "Reading the body of %s failed: %s", url, esp_err_to_name(ESP_FAIL));
            return ESP_FAIL;
        }
        if (n == 0) {
            break;
        }
        used += (size_t)n;
    }
    if (used == buf_size - 1) {
        char extra;
        if (esp_http_client_read(client, &extra, 1) > 0) {
            ESP_LOGE(TAG, "The body of %s exceeds %u bytes", url, (unsigned)(buf_size - 1));
            return ESP_ERR_INVALID_SIZE;
        }
    }
    buf[used] = '\0';
    *len = used;
    return ESP_OK;
}

esp_err_t ota_http_get_body(const char *url, char *buf, size_t buf_size, size_t *len)
{
    if (buf == NULL || buf_size < 2 || len == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    esp_http_client_handle_t client;
    int64_t length;
    esp_err_t err = ota_http_open_get(url, &client, &length);
    if (err != ESP_OK) {
        return err;
    }
    int status = esp_http_client_get_status_code(client);
    if (status != 200) {
        ESP_LOGE(TAG, "%s answered HTTP %d", url, status);
        err = ESP_ERR_INVALID_RESPONSE;
    } else if (length >= 0 && length > (int64_t)(buf_size - 1)) {
        ESP_LOGE(TAG, "%s announces %" PRId64 " bytes, more than the %u accepted",
                 url, length, (unsigned)(buf_size - 1));
        err = ESP_ERR_INVALID_SIZE;
    } else {
        err = read_body(client, url, buf, buf_size, len);
    }
    ota_http_release(client);
    return err;
}
