/*
 * One update, from the URL read on the serial line to the restart into the
 * new firmware.
 */
#pragma once

#include "esp_err.h"

/* url: an image, or a manifest when its path ends in ".json". Restarts the
 * chip when the update succeeds; returns the reason otherwise (nothing has
 * been switched then). */
esp_err_t ota_update_run(const char *url);
