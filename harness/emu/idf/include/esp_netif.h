/* esp_netif.h: the network interface calls an ESP-IDF v5.x app makes before connecting. */
#pragma once

#include <stdint.h>
#include "esp_err.h"
#include "esp_event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct esp_netif_obj esp_netif_t;

typedef struct {
    uint32_t addr;
} esp_ip4_addr_t;

typedef struct {
    esp_ip4_addr_t ip;      /**< Interface IPV4 address */
    esp_ip4_addr_t netmask; /**< Interface IPV4 netmask */
    esp_ip4_addr_t gw;      /**< Interface IPV4 gateway address */
} esp_netif_ip_info_t;

#define ESP_ERR_ESP_NETIF_BASE                  0x5000
#define ESP_ERR_ESP_NETIF_INVALID_PARAMS        ESP_ERR_ESP_NETIF_BASE + 0x01
#define ESP_ERR_ESP_NETIF_IF_NOT_READY          ESP_ERR_ESP_NETIF_BASE + 0x02
#define ESP_ERR_ESP_NETIF_DHCPC_START_FAILED    ESP_ERR_ESP_NETIF_BASE + 0x03
#define ESP_ERR_ESP_NETIF_NO_MEM                ESP_ERR_ESP_NETIF_BASE + 0x06

#define IP2STR(ipaddr) ((ipaddr)->addr) & 0xff, \
    (((ipaddr)->addr) >> 8) & 0xff, \
    (((ipaddr)->addr) >> 16) & 0xff, \
    (((ipaddr)->addr) >> 24) & 0xff
#define IPSTR "%d.%d.%d.%d"

esp_err_t esp_netif_init(void);
esp_err_t esp_netif_deinit(void);
esp_err_t esp_netif_get_ip_info(esp_netif_t *esp_netif, esp_netif_ip_info_t *ip_info);

#ifdef __cplusplus
}
#endif
