/* esp_system, esp_app_desc, esp_err, esp_log, esp_timer, esp_random and FreeRTOS delays. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_system.h"
#include "esp_app_desc.h"
#include "esp_timer.h"
#include "esp_random.h"
#include "esp_heap_caps.h"
#include "esp_idf_version.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "hil_board.h"

/* -- esp_system ------------------------------------------------------------------------------------ */
#define MAX_SHUTDOWN_HANDLERS 5
static shutdown_handler_t shutdown_handlers[MAX_SHUTDOWN_HANDLERS];

esp_err_t esp_register_shutdown_handler(shutdown_handler_t handler)
{
    for (int i = 0; i < MAX_SHUTDOWN_HANDLERS; i++) {
        if (shutdown_handlers[i] == handler) return ESP_ERR_INVALID_STATE;
        if (shutdown_handlers[i] == NULL) {
            shutdown_handlers[i] = handler;
            return ESP_OK;
        }
    }
    return ESP_ERR_NO_MEM;
}

esp_err_t esp_unregister_shutdown_handler(shutdown_handler_t handler)
{
    for (int i = 0; i < MAX_SHUTDOWN_HANDLERS; i++) {
        if (shutdown_handlers[i] == handler) {
            shutdown_handlers[i] = NULL;
            return ESP_OK;
        }
    }
    return ESP_ERR_INVALID_STATE;
}

void esp_restart(void)
{
    for (int i = MAX_SHUTDOWN_HANDLERS - 1; i >= 0; i--) {
        if (shutdown_handlers[i]) shutdown_handlers[i]();
    }
    /* What the newlib buffer of stdout still holds is lost, as on the chip; lines went out already. */
    hil_restart();
}

esp_reset_reason_t esp_reset_reason(void) { return (esp_reset_reason_t)hil_boot.reset_reason; }
uint32_t esp_get_free_heap_size(void) { return (uint32_t)hil_heap_free(); }
uint32_t esp_get_free_internal_heap_size(void) { return (uint32_t)hil_heap_free(); }
uint32_t esp_get_minimum_free_heap_size(void) { return (uint32_t)hil_heap_min_free(); }

void esp_system_abort(const char *details)
{
    char line[256];
    snprintf(line, sizeof(line), "%s", details ? details : "");
    hil_panic(line, NULL, (uintptr_t)__builtin_return_address(0));
}

size_t heap_caps_get_free_size(uint32_t caps) { (void)caps; return hil_heap_free(); }
size_t heap_caps_get_minimum_free_size(uint32_t caps) { (void)caps; return hil_heap_min_free(); }
size_t heap_caps_get_largest_free_block(uint32_t caps) { (void)caps; return hil_heap_free() > 8 ? (hil_heap_free() - 8) & ~(size_t)3 : 0; }
void *heap_caps_malloc(size_t size, uint32_t caps) { (void)caps; return malloc(size); }
void *heap_caps_calloc(size_t n, size_t size, uint32_t caps) { (void)caps; return calloc(n, size); }
void heap_caps_free(void *ptr) { free(ptr); }

const char *esp_get_idf_version(void) { return "v5.5.1"; }

/* -- esp_app_desc: the running image's descriptor, read from flash at start ------------------------- */
static esp_app_desc_t app_desc;
static int app_desc_loaded;
char app_elf_sha256_str[65];

/* Read once before app_main runs (board.c calls hil_app_desc_load), so a panic report never has to
 * ask the board for it. */
void hil_app_desc_load(void)
{
    if (app_desc_loaded) return;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "flash_read");
    hil_put_int(&m, (int64_t)hil_boot.running_offset + 0x20);
    hil_put_int(&m, sizeof(esp_app_desc_t));
    if (hil_call(&m, &r) == ESP_OK) {
        size_t n;
        const uint8_t *p = hil_bytes(&r, 0, &n);
        if (p && n == sizeof(app_desc)) memcpy(&app_desc, p, n);
    }
    hil_reply_free(&r);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        app_elf_sha256_str[2 * i] = hex[app_desc.app_elf_sha256[i] >> 4];
        app_elf_sha256_str[2 * i + 1] = hex[app_desc.app_elf_sha256[i] & 0xf];
    }
    app_elf_sha256_str[64] = 0;
    app_desc_loaded = 1;
}

const esp_app_desc_t *esp_app_get_description(void)
{
    hil_app_desc_load();
    return &app_desc;
}

int esp_app_get_elf_sha256(char *dst, size_t size)
{
    if (dst == NULL || size < 2) return 0;
    hil_app_desc_load();
    size_t n = size - 1 < 64 ? size - 1 : 64;
    memcpy(dst, app_elf_sha256_str, n);
    dst[n] = 0;
    return (int)n + 1;
}

const esp_app_desc_t *esp_ota_get_app_description(void) { return esp_app_get_description(); }
int esp_ota_get_app_elf_sha256(char *dst, size_t size) { return esp_app_get_elf_sha256(dst, size); }

/* -- esp_log ---------------------------------------------------------------------------------------- */
esp_log_level_t esp_log_default_level = CONFIG_LOG_DEFAULT_LEVEL;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
#define LOG_TAGS 32
static struct { char tag[32]; esp_log_level_t level; } log_tags[LOG_TAGS];
static int log_tag_count;
static vprintf_like_t log_vprintf = vprintf;

void esp_log_level_set(const char *tag, esp_log_level_t level)
{
    pthread_mutex_lock(&log_lock);
    if (strcmp(tag, "*") == 0) {
        esp_log_default_level = level;
        log_tag_count = 0;
    } else {
        int i;
        for (i = 0; i < log_tag_count; i++) {
            if (strncmp(log_tags[i].tag, tag, sizeof(log_tags[i].tag)) == 0) break;
        }
        if (i == log_tag_count && log_tag_count < LOG_TAGS) {
            snprintf(log_tags[i].tag, sizeof(log_tags[i].tag), "%s", tag);
            log_tag_count++;
        }
        if (i < LOG_TAGS) log_tags[i].level = level;
    }
    pthread_mutex_unlock(&log_lock);
}

esp_log_level_t esp_log_level_get(const char *tag)
{
    esp_log_level_t level = esp_log_default_level;
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < log_tag_count; i++) {
        if (strncmp(log_tags[i].tag, tag, sizeof(log_tags[i].tag)) == 0) {
            level = log_tags[i].level;
            break;
        }
    }
    pthread_mutex_unlock(&log_lock);
    return level;
}

vprintf_like_t esp_log_set_vprintf(vprintf_like_t func)
{
    vprintf_like_t old = log_vprintf;
    log_vprintf = func;
    return old;
}

uint32_t esp_log_timestamp(void) { return hil_millis(); }
uint32_t esp_log_early_timestamp(void) { return hil_millis(); }

char *esp_log_system_timestamp(void)
{
    static __thread char buf[24];
    uint32_t ms = hil_millis();
    snprintf(buf, sizeof(buf), "%02u:%02u:%02u.%03u", (unsigned)(ms / 3600000 % 24), (unsigned)(ms / 60000 % 60),
             (unsigned)(ms / 1000 % 60), (unsigned)(ms % 1000));
    return buf;
}

void esp_log_writev(esp_log_level_t level, const char *tag, const char *format, va_list args)
{
    if (level > esp_log_level_get(tag)) return;
    pthread_mutex_lock(&log_lock);
    log_vprintf(format, args);
    pthread_mutex_unlock(&log_lock);
}

void esp_log_write(esp_log_level_t level, const char *tag, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    esp_log_writev(level, tag, format, ap);
    va_end(ap);
}

static void log_buffer(const char *tag, const void *buffer, uint16_t len, esp_log_level_t level, int as_char)
{
    const uint8_t *p = buffer;
    char line[16 * 3 + 1];
    while (len) {
        int n = len > 16 ? 16 : len;
        int pos = 0;
        for (int i = 0; i < n; i++) {
            if (as_char) {
                line[pos++] = (char)p[i];
            } else {
                pos += snprintf(line + pos, sizeof(line) - (size_t)pos, i ? " %02x" : "%02x", p[i]);
            }
        }
        line[pos] = 0;
        ESP_LOG_LEVEL(level, tag, "%s", line);
        p += n;
        len = (uint16_t)(len - n);
    }
}

void esp_log_buffer_hex_internal(const char *tag, const void *buffer, uint16_t buff_len, esp_log_level_t level)
{
    log_buffer(tag, buffer, buff_len, level, 0);
}

void esp_log_buffer_char_internal(const char *tag, const void *buffer, uint16_t buff_len, esp_log_level_t level)
{
    log_buffer(tag, buffer, buff_len, level, 1);
}

/* -- esp_timer, esp_random, FreeRTOS ---------------------------------------------------------------- */
int64_t esp_timer_get_time(void) { return (int64_t)hil_micros(); }

uint32_t esp_random(void)
{
    uint32_t v = 0;
    while (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
    }
    return v;
}

void esp_fill_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
    }
}

void vTaskDelay(const TickType_t ticks)
{
    /* A tick is 1000 / CONFIG_FREERTOS_HZ ms; a delay of 0 ticks only yields. */
    hil_sleep_ms((uint32_t)((uint64_t)ticks * 1000 / configTICK_RATE_HZ));
}

TickType_t xTaskGetTickCount(void) { return (TickType_t)((uint64_t)hil_millis() * configTICK_RATE_HZ / 1000); }

void vTaskDelayUntil(TickType_t *const previous, const TickType_t increment)
{
    TickType_t wake = *previous + increment;
    TickType_t now = xTaskGetTickCount();
    if ((int32_t)(wake - now) > 0) vTaskDelay(wake - now);
    *previous = wake;
}

TaskHandle_t xTaskGetCurrentTaskHandle(void) { return (TaskHandle_t)(uintptr_t)pthread_self(); }
char *pcTaskGetName(TaskHandle_t task) { (void)task; return "main"; }
UBaseType_t uxTaskGetStackHighWaterMark(TaskHandle_t task) { (void)task; return 0; }

void vTaskDelete(TaskHandle_t task)
{
    if (task == NULL) pthread_exit(NULL);
}
