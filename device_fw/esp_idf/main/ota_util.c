/*
 * URL and version helpers (no I/O).
 */
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "ota_util.h"

#define VERSION_PARTS_MAX 8

static size_t scheme_length(const char *url)
{
    if (strncasecmp(url, "http://", 7) == 0) {
        return 4;
    }
    if (strncasecmp(url, "https://", 8) == 0) {
        return 5;
    }
    return 0;
}

bool ota_url_is_http(const char *url)
{
    return url != NULL && scheme_length(url) > 0;
}

bool ota_url_is_https(const char *url)
{
    return url != NULL && scheme_length(url) == 5;
}

bool ota_url_is_manifest(const char *url)
{
    static const char suffix[] = ".json";
    const size_t suffix_len = sizeof(suffix) - 1;
    size_t path_end = strcspn(url, "?#");
    return path_end >= suffix_len &&
           strncasecmp(url + path_end - suffix_len, suffix, suffix_len) == 0;
}

/* Length of "scheme://authority", or 0 when url is not http(s). */
static size_t origin_length(const char *url)
{
    size_t scheme = scheme_length(url);
    if (scheme == 0) {
        return 0;
    }
    const char *authority = url + scheme + 3;
    size_t authority_len = strcspn(authority, "/?#");
    if (authority_len == 0) {
        return 0;
    }
    return scheme + 3 + authority_len;
}

/* Writes the first prefix_len bytes of prefix, then middle and suffix, into
 * out (which must not overlap the inputs). */
static esp_err_t join(const char *prefix, size_t prefix_len, const char *middle,
                      const char *suffix, char *out, size_t out_size)
{
    if (prefix_len > (size_t)INT_MAX) {
        return ESP_ERR_INVALID_SIZE;
    }
    int n = snprintf(out, out_size, "%.*s%s%s", (int)prefix_len, prefix, middle, suffix);
    return (n < 0 || (size_t)n >= out_size) ? ESP_ERR_INVALID_SIZE : ESP_OK;
}

esp_err_t ota_url_origin(const char *url, char *out, size_t out_size)
{
    if (url == NULL || out == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    size_t len = origin_length(url);
    if (len == 0) {
        return ESP_ERR_INVALID_ARG;
    }
    return join(url, len, "", "", out, out_size);
}

/* Length of base up to and including the last '/' of its path; the origin's
 * length when the path is empty (the caller then adds the '/'). */
static size_t directory_length(const char *base, size_t origin_len)
{
    size_t path_end = strcspn(base, "?#");
    size_t len = path_end;
    while (len > origin_len && base[len - 1] != '/') {
        len--;
    }
    return len;
}

esp_err_t ota_url_resolve(const char *base, const char *ref, char *out, size_t out_size)
{
    if (base == NULL || ref == NULL || out == NULL || ref[0] == '\0') {
        return ESP_ERR_INVALID_ARG;
    }
    if (strstr(ref, "://") != NULL && strcspn(ref, ":") < strcspn(ref, "/?#")) {
        return join(ref, strlen(ref), "", "", out, out_size);
    }
    size_t origin_len = origin_length(base);
    if (origin_len == 0) {
        return ESP_ERR_INVALID_ARG;
    }
    if (ref[0] == '/' && ref[1] == '/') {
        return join(base, scheme_length(base) + 1, "", ref, out, out_size);
    }
    if (ref[0] == '/') {
        return join(base, origin_len, "", ref, out, out_size);
    }
    size_t dir_len = directory_length(base, origin_len);
    const char *slash = (dir_len == origin_len) ? "/" : "";
    return join(base, dir_len, slash, ref, out, out_size);
}

/* Splits the digit runs of s into parts (saturating at UINT32_MAX). */
static size_t version_parts(const char *s, uint32_t parts[VERSION_PARTS_MAX])
{
    size_t count = 0;
    while (*s != '\0' && count < VERSION_PARTS_MAX) {
        if (!isdigit((unsigned char)*s)) {
            s++;
            continue;
        }
        uint32_t value = 0;
        for (; isdigit((unsigned char)*s); s++) {
            uint32_t digit = (uint32_t)(*s - '0');
            value = (value > (UINT32_MAX - digit) / 10) ? UINT32_MAX : value * 10 + digit;
        }
        parts[count++] = value;
    }
    return count;
}

int ota_version_compare(const char *a, const char *b)
{
    uint32_t pa[VERSION_PARTS_MAX];
    uint32_t pb[VERSION_PARTS_MAX];
    size_t na = version_parts(a, pa);
    size_t nb = version_parts(b, pb);
    for (size_t i = 0; i < na && i < nb; i++) {
        if (pa[i] != pb[i]) {
            return pa[i] < pb[i] ? -1 : 1;
        }
    }
    return (na > nb) - (na < nb);
}
