/*
 * HTTP(S) requests of the OTA client: one configuration for all of them (the
 * embedded CA, timeouts, redirects) and small GET helpers.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include "esp_err.h"
#include "esp_http_client.h"

/* Fills cfg for a request to url (url must outlive cfg's use). */
void ota_http_config_init(esp_http_client_config_t *cfg, const char *url);

/* Sends a GET and reads the answer's headers. On success *client is open
 * (release it with ota_http_release) and *content_length is the announced
 * length (0 when none or chunked). On failure nothing is left allocated. */
esp_err_t ota_http_open_get(const char *url, esp_http_client_handle_t *client,
                            int64_t *content_length);

/* Closes and frees a client from ota_http_open_get. */
void ota_http_release(esp_http_client_handle_t client);

/* GET url and report the HTTP status; the body is not read. */
esp_err_t ota_http_get_status(const char *url, int *status);

/* GET url into buf (NUL-terminated, at most buf_size - 1 bytes). A status
 * other than 200 gives ESP_ERR_INVALID_RESPONSE, a larger body
 * ESP_ERR_INVALID_SIZE. */
esp_err_t ota_http_get_body(const char *url, char *buf, size_t buf_size, size_t *len);
