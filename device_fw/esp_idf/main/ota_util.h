/*
 * URL and version helpers (no I/O).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include "esp_err.h"

/* True for an absolute http:// or https:// URL (scheme case-insensitive). */
bool ota_url_is_http(const char *url);

/* True for an https:// URL. */
bool ota_url_is_https(const char *url);

/* True when the URL's path (query and fragment excluded) ends in ".json". */
bool ota_url_is_manifest(const char *url);

/* "scheme://host[:port]" of an http(s) URL (out must not overlap url).
 * ESP_ERR_INVALID_ARG for anything else, ESP_ERR_INVALID_SIZE when out is too
 * small. */
esp_err_t ota_url_origin(const char *url, char *out, size_t out_size);

/* Resolves ref (absolute, "//host/...", "/path" or a relative path) against
 * base, an http(s) URL; out must not overlap base or ref.
 * ESP_ERR_INVALID_SIZE when out is too small. */
esp_err_t ota_url_resolve(const char *base, const char *ref, char *out, size_t out_size);

/* Compares the numbers in two version strings ("v1.2.10" -> 1, 2, 10; other
 * characters only separate them) as tuples: <0 when a is older than b, 0 when
 * they are equal, >0 when a is newer. */
int ota_version_compare(const char *a, const char *b);
