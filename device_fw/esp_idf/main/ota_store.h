/*
 * The origin (scheme://host:port) of the last update, kept in NVS so the next
 * firmware knows where to run its health check.
 */
#pragma once

#include <stddef.h>
#include "esp_err.h"

/* Saves origin under namespace "ota_client", key "origin". */
esp_err_t ota_store_save_origin(const char *origin);

/* Reads the saved origin into out (NUL-terminated). */
esp_err_t ota_store_load_origin(char *out, size_t out_size);
