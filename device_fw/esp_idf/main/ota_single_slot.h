/*
 * Test mutation OTA_CLIENT_MUTATION_WRITE_RUNNING_SLOT: a single-slot updater
 * that overwrites the running firmware in place.
 */
#pragma once

#include "esp_err.h"

/* Downloads image_url over the running partition, then restarts. Returns only
 * when it fails. */
esp_err_t ota_single_slot_install(const char *image_url);
