/* protocol_examples_common.h: example_connect() of ESP-IDF's protocol examples (Wi-Fi station). */
#pragma once

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_netif.h"

#ifdef __cplusplus
extern "C" {
#endif

#if CONFIG_EXAMPLE_CONNECT_WIFI
#define EXAMPLE_NETIF_DESC_STA "example_netif_sta"
#endif

/**
 * @brief Configure Wi-Fi, connect, wait for IP
 *
 * @return ESP_OK on successful connection
 */
esp_err_t example_connect(void);

/**
 * Counterpart to example_connect, de-initializes Wi-Fi
 */
esp_err_t example_disconnect(void);

esp_netif_t *get_example_netif(void);

#ifdef __cplusplus
}
#endif
