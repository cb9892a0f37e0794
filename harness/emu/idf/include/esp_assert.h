/* esp_assert.h: static assertions. */
#pragma once

#include <assert.h>

#ifndef __cplusplus
#define ESP_STATIC_ASSERT _Static_assert
#else
#define ESP_STATIC_ASSERT static_assert
#endif
