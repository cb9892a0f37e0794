/*
 * OTA client: at boot, confirms a new firmware after its health check or rolls
 * it back; then installs the firmware whose URL arrives on the serial line.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <inttypes.h>
#include "driver/uart.h"
#include "driver/uart_vfs.h"
#include "esp_app_desc.h"
#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_ota_ops.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "nvs_flash.h"
#include "protocol_examples_common.h"
#include "sdkconfig.h"
#include "ota_checks.h"
#include "ota_client.h"
#include "ota_http.h"
#include "ota_store.h"
#include "ota_update.h"
#include "ota_util.h"

#if !defined(CONFIG_ESP_CONSOLE_UART_NUM) || CONFIG_ESP_CONSOLE_UART_NUM < 0
#error "The OTA client reads update URLs from the UART console: select a UART console in menuconfig"
#endif

#define CONSOLE_UART CONFIG_ESP_CONSOLE_UART_NUM
#define CONSOLE_RX_BUFFER 1024
#define HEALTH_PATH "/health"
#define HEALTH_ATTEMPTS 3
#define HEALTH_RETRY_MS 1000
#define CONNECT_RETRY_MS 5000
#define READ_RETRY_MS 100

static const char *TAG = OTA_TAG;

static void init_nvs(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_LOGW(TAG, "Erasing the NVS partition (%s)", esp_err_to_name(err));
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
}

static void log_running_firmware(const esp_partition_t *running)
{
    if (running != NULL) {
        ESP_LOGI(TAG, "Running partition type %d subtype %d (offset 0x%08" PRIx32 ")",
                 running->type, running->subtype, running->address);
    }
    char version[OTA_VERSION_MAX + 1];
    ota_desc_version(esp_app_get_description(), version);
    ESP_LOGI(TAG, "Running firmware version: %s", version);
}

static bool is_on_trial(const esp_partition_t *running)
{
    esp_ota_img_states_t state;
    esp_err_t err = esp_ota_get_state_partition(running, &state);
    if (err != ESP_OK) {
        /* e.g. ESP_ERR_NOT_FOUND: flashed over the cable, otadata still blank */
        ESP_LOGI(TAG, "No OTA state for the running partition (%s)", esp_err_to_name(err));
        return false;
    }
    return state == ESP_OTA_IMG_PENDING_VERIFY;
}

static void mark_valid(void)
{
    esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
    if (err == ESP_OK) {
        ESP_LOGI(TAG, "App is valid, rollback cancelled successfully");
    } else {
        ESP_LOGE(TAG, "Marking the app valid failed: %s", esp_err_to_name(err));
    }
}

#if !CONFIG_OTA_CLIENT_MUTATION_SKIP_DIAGNOSTICS
/* The new firmware's health check: GET /health on the origin of the update
 * must answer 200. Connection failures are retried a few times. */
static bool run_diagnostics(void)
{
    char origin[OTA_URL_MAX];
    if (ota_store_load_origin(origin, sizeof(origin)) != ESP_OK) {
        return false;
    }
    char url[OTA_URL_MAX + sizeof(HEALTH_PATH)];
    snprintf(url, sizeof(url), "%s%s", origin, HEALTH_PATH);
    ESP_LOGI(TAG, "Diagnostics (GET %s)...", url);
    int status = 0;
    esp_err_t err = ESP_FAIL;
    for (int attempt = 1; attempt <= HEALTH_ATTEMPTS && err != ESP_OK; attempt++) {
        if (attempt > 1) {
            vTaskDelay(pdMS_TO_TICKS(HEALTH_RETRY_MS));
        }
        err = ota_http_get_status(url, &status);
    }
    if (err != ESP_OK) {
        return false;
    }
    if (status != 200) {
        ESP_LOGE(TAG, "Health check answered HTTP %d", status);
        return false;
    }
    return true;
}
#endif

/* Confirms or rolls back the firmware on trial; returns whether the network is up. */
static bool confirm_or_roll_back(void)
{
#if CONFIG_OTA_CLIENT_MUTATION_SKIP_DIAGNOSTICS
    ESP_LOGW(TAG, "Test mutation: confirming the new firmware without diagnostics");
    mark_valid();
    return false;
#else
    esp_err_t err = example_connect();
    bool connected = (err == ESP_OK);
    if (!connected) {
        ESP_LOGE(TAG, "example_connect failed: %s", esp_err_to_name(err));
    }
    if (connected && run_diagnostics()) {
        ESP_LOGI(TAG, "Diagnostics completed successfully! Continuing execution ...");
        mark_valid();
        return true;
    }
    ESP_LOGE(TAG, "Diagnostics failed! Start rollback to the previous version ...");
    err = esp_ota_mark_app_invalid_rollback_and_reboot();
    ESP_LOGE(TAG, "Rollback failed: %s", esp_err_to_name(err));
    return connected;
#endif
}

static void connect_or_restart(void)
{
    esp_err_t err = example_connect();
    if (err == ESP_OK) {
        return;
    }
    ESP_LOGE(TAG, "example_connect failed: %s; restarting in %d ms", esp_err_to_name(err), CONNECT_RETRY_MS);
    vTaskDelay(pdMS_TO_TICKS(CONNECT_RETRY_MS));
    esp_restart();
}

/* Blocking, interrupt-driven reads of the console UART through stdin. */
static void configure_console_input(void)
{
    setvbuf(stdin, NULL, _IONBF, 0);
    esp_err_t err = uart_driver_install((uart_port_t)CONSOLE_UART, CONSOLE_RX_BUFFER, 0, 0, NULL, 0);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "uart_driver_install failed: %s", esp_err_to_name(err));
        return;
    }
    uart_vfs_dev_use_driver(CONSOLE_UART);
    if (uart_vfs_dev_port_set_rx_line_endings(CONSOLE_UART, ESP_LINE_ENDINGS_CR) != 0 ||
            uart_vfs_dev_port_set_tx_line_endings(CONSOLE_UART, ESP_LINE_ENDINGS_CRLF) != 0) {
        ESP_LOGW(TAG, "Setting the console line endings failed: %s", esp_err_to_name(ESP_FAIL));
    }
}

static void discard_rest_of_line(void)
{
    int c;
    do {
        c = fgetc(stdin);
    } while (c != EOF && c != '\n');
}

/* Removes leading and trailing white space in place. */
static void strip(char *s)
{
    size_t start = 0;
    while (s[start] == ' ' || s[start] == '\t') {
        start++;
    }
    size_t len = strlen(s + start);
    memmove(s, s + start, len + 1);
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t')) {
        s[--len] = '\0';
    }
}

/* Reads one line into buf; true when it holds a non-empty, stripped line. */
static bool read_line(char *buf, size_t size)
{
    if (fgets(buf, (int)size, stdin) == NULL) {
        clearerr(stdin);
        vTaskDelay(pdMS_TO_TICKS(READ_RETRY_MS));
        return false;
    }
    size_t len = strlen(buf);
    if (len == size - 1 && buf[len - 1] != '\n') {
        discard_rest_of_line();
        ESP_LOGE(TAG, "Ignoring a line longer than %d characters", (int)(size - 2));
        return false;
    }
    strip(buf);
    return buf[0] != '\0';
}

/* Waits for the next http(s) URL on the serial line. */
static void wait_for_url(char *url, size_t size)
{
    for (;;) {
        if (!read_line(url, size)) {
            continue;
        }
        if (ota_url_is_http(url)) {
            return;
        }
        ESP_LOGE(TAG, "Ignoring a line that is not an http(s) URL: %s", url);
    }
}

static void serve_update_requests(void)
{
    /* one more byte than a URL for its '\n' */
    static char url[OTA_URL_MAX + 1];
    for (;;) {
        ESP_LOGI(TAG, "Waiting for the firmware URL on the serial line");
        wait_for_url(url, sizeof(url));
        esp_err_t err = ota_update_run(url);
        ESP_LOGE(TAG, "Update from %s failed: %s", url, esp_err_to_name(err));
    }
}

void app_main(void)
{
    init_nvs();
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());

    const esp_partition_t *running = esp_ota_get_running_partition();
    log_running_firmware(running);

    bool connected = false;
    if (running != NULL && is_on_trial(running)) {
        connected = confirm_or_roll_back();
    }
    if (!connected) {
        connect_or_restart();
    }
    configure_console_input();
    serve_update_requests();
}
