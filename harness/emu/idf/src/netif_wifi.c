/* esp_netif, the default event loop and protocol_examples_common's example_connect() (Wi-Fi station):
 * connecting waits for the board's access point and retries like the example does. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_event.h"
#include "esp_netif.h"
#include "protocol_examples_common.h"
#include "hil_board.h"

#ifndef CONFIG_EXAMPLE_WIFI_SSID
#define CONFIG_EXAMPLE_WIFI_SSID "myssid"
#endif
#ifndef CONFIG_EXAMPLE_WIFI_PASSWORD
#define CONFIG_EXAMPLE_WIFI_PASSWORD "mypassword"
#endif
#ifndef CONFIG_EXAMPLE_WIFI_CONN_MAX_RETRY
#define CONFIG_EXAMPLE_WIFI_CONN_MAX_RETRY 6
#endif

static bool netif_ready, loop_ready, connected;
static esp_netif_ip_info_t sta_ip;

esp_err_t esp_netif_init(void)
{
    netif_ready = true;
    return ESP_OK;
}

esp_err_t esp_netif_deinit(void) { return ESP_ERR_NOT_SUPPORTED; }

esp_err_t esp_netif_get_ip_info(esp_netif_t *esp_netif, esp_netif_ip_info_t *ip_info)
{
    (void)esp_netif;
    if (ip_info == NULL) return ESP_ERR_ESP_NETIF_INVALID_PARAMS;
    *ip_info = sta_ip;
    return ESP_OK;
}

esp_netif_t *get_example_netif(void) { return connected ? (esp_netif_t *)&sta_ip : NULL; }

#define MAX_HANDLERS 16
static struct {
    esp_event_base_t base;
    int32_t id;
    esp_event_handler_t fn;
    void *arg;
} handlers[MAX_HANDLERS];

esp_err_t esp_event_loop_create_default(void)
{
    if (loop_ready) return ESP_ERR_INVALID_STATE;
    loop_ready = true;
    return ESP_OK;
}

esp_err_t esp_event_loop_delete_default(void)
{
    loop_ready = false;
    return ESP_OK;
}

esp_err_t esp_event_loop_create(const esp_event_loop_args_t *args, esp_event_loop_handle_t *loop)
{
    if (args == NULL || loop == NULL) return ESP_ERR_INVALID_ARG;
    *loop = (esp_event_loop_handle_t)1;
    return ESP_OK;
}

esp_err_t esp_event_loop_delete(esp_event_loop_handle_t loop) { (void)loop; return ESP_OK; }

esp_err_t esp_event_handler_instance_register(esp_event_base_t base, int32_t id, esp_event_handler_t fn, void *arg,
                                              esp_event_handler_instance_t *instance)
{
    if (!loop_ready) return ESP_ERR_INVALID_STATE;
    for (int i = 0; i < MAX_HANDLERS; i++) {
        if (handlers[i].fn == NULL) {
            handlers[i].base = base;
            handlers[i].id = id;
            handlers[i].fn = fn;
            handlers[i].arg = arg;
            if (instance) *instance = (esp_event_handler_instance_t)&handlers[i];
            return ESP_OK;
        }
    }
    return ESP_ERR_NO_MEM;
}

esp_err_t esp_event_handler_register(esp_event_base_t base, int32_t id, esp_event_handler_t fn, void *arg)
{
    return esp_event_handler_instance_register(base, id, fn, arg, NULL);
}

esp_err_t esp_event_handler_instance_unregister(esp_event_base_t base, int32_t id, esp_event_handler_instance_t instance)
{
    (void)base;
    (void)id;
    for (int i = 0; i < MAX_HANDLERS; i++) {
        if ((void *)&handlers[i] == instance) handlers[i].fn = NULL;
    }
    return ESP_OK;
}

esp_err_t esp_event_handler_unregister(esp_event_base_t base, int32_t id, esp_event_handler_t fn)
{
    for (int i = 0; i < MAX_HANDLERS; i++) {
        if (handlers[i].fn == fn && handlers[i].base == base && handlers[i].id == id) handlers[i].fn = NULL;
    }
    return ESP_OK;
}

esp_err_t esp_event_post(esp_event_base_t base, int32_t id, const void *data, size_t size, TickType_t ticks)
{
    (void)size;
    (void)ticks;
    if (!loop_ready) return ESP_ERR_INVALID_STATE;
    for (int i = 0; i < MAX_HANDLERS; i++) {
        if (handlers[i].fn && (handlers[i].base == NULL || handlers[i].base == base || strcmp(handlers[i].base, base) == 0) &&
            (handlers[i].id == ESP_EVENT_ANY_ID || handlers[i].id == id)) {
            handlers[i].fn(handlers[i].arg, base, id, (void *)data);
        }
    }
    return ESP_OK;
}

/* The Wi-Fi library logs "wifi:" without the space esp_log puts after a tag. */
static void wifi_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void wifi_log(const char *fmt, ...)
{
    char text[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    esp_log_write(ESP_LOG_INFO, "wifi", "I (%" PRIu32 ") wifi:%s\n", esp_log_timestamp(), text);
}

/* The station: each attempt is one board call that takes as long as joining (or failing to find) the AP. */
static int wifi_attempt(char *ip, size_t ip_len)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "wifi_connect");
    hil_put_str(&m, CONFIG_EXAMPLE_WIFI_SSID);
    hil_put_str(&m, CONFIG_EXAMPLE_WIFI_PASSWORD);
    int status = hil_call(&m, &r);
    if (status == 0) {
        size_t n;
        const uint8_t *p = hil_bytes(&r, 0, &n);
        snprintf(ip, ip_len, "%.*s", (int)n, (const char *)p);
    }
    hil_reply_free(&r);
    return status;
}

esp_err_t example_connect(void)
{
#if CONFIG_EXAMPLE_CONNECT_WIFI
    ESP_LOGI("example_connect", "Start example_connect.");
    if (!netif_ready) {
        ESP_LOGE("esp_netif_lwip", "esp_netif_init() must be called first");
        abort();
    }
    wifi_log("wifi driver task: 3ffc1e4c, prio:23, stack:6656, core=0");
    wifi_log("wifi firmware version: 3ce09e5");
    wifi_log("mode : sta (%02x:%02x:%02x:%02x:%02x:%02x)", hil_boot.mac[0], hil_boot.mac[1], hil_boot.mac[2],
             hil_boot.mac[3], hil_boot.mac[4], hil_boot.mac[5]);
    ESP_LOGI("example_connect", "Connecting to %s...", CONFIG_EXAMPLE_WIFI_SSID);
    ESP_LOGI("example_connect", "Waiting for IP(s)");
    char ip[32];
    int retries = 0;
    for (;;) {
        int reason = wifi_attempt(ip, sizeof(ip));
        if (reason == 0) break;
        retries++;
        if (retries > CONFIG_EXAMPLE_WIFI_CONN_MAX_RETRY) {
            ESP_LOGI("example_connect", "WiFi Connect failed %d times, stop reconnect.", retries);
            return ESP_FAIL;
        }
        ESP_LOGI("example_connect", "Wi-Fi disconnected %d, trying to reconnect...", reason);
    }
    unsigned a = 0, b = 0, c = 0, d = 0;
    sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d);
    sta_ip.ip.addr = a | b << 8 | c << 16 | d << 24;
    sta_ip.netmask.addr = 0x00ffffff;
    sta_ip.gw.addr = a | b << 8 | c << 16 | 1u << 24;
    wifi_log("connected with %s, aid = 1, channel 1, BW20, bssid = 02:00:00:00:00:01", CONFIG_EXAMPLE_WIFI_SSID);
    ESP_LOGI("esp_netif_handlers", "example_netif_sta ip: %s, mask: 255.255.255.0, gw: %u.%u.%u.1", ip, a, b, c);
    ESP_LOGI("example_connect", "Got IPv4 event: Interface \"example_netif_sta\" address: %s", ip);
    ESP_LOGI("example_common", "Connected to example_netif_sta");
    ESP_LOGI("example_common", "- IPv4 address: %s,", ip);
    connected = true;
    return ESP_OK;
#else
    ESP_LOGE("example_connect", "no connection method enabled (CONFIG_EXAMPLE_CONNECT_WIFI)");
    return ESP_FAIL;
#endif
}

esp_err_t example_disconnect(void)
{
    connected = false;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "wifi_disconnect");
    hil_call(&m, &r);
    hil_reply_free(&r);
    return ESP_OK;
}
