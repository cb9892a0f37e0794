/* The virtual ESP8266's side of a NONOS SDK app built for the host: start-up, the event loop, timers,
 * the heap, the console, system_* and the Wi-Fi station.
 *
 * The chip process (harness/emu/runtime_sdk.py) starts this executable with an empty environment:
 *   fd 0  bytes received on UART0, fd 1  bytes the chip transmits on UART0,
 *   argv  the call pipe pair to the board and the facts of this boot (see main()).
 * As on a chip running the NONOS SDK, everything runs in one thread: user_pre_init(), user_init(), then a
 * loop that runs posted work, due os_timers and the network's callbacks, one callback at a time; nothing
 * preempts a callback. system_restart() takes effect when the current callback returns.
 *
 * Heap: the ESP8266EX datasheet gives about 50 KB for the heap and data of an app in station mode
 * connected to an AP; a small app's own .data/.bss take a few KB of that, so the app starts with
 * SDK_HEAP_FREE bytes free. The SDK's allocator (umm_malloc) hands out 8-byte blocks with a 4-byte
 * header: a block of n bytes costs n + 4 rounded up to 8. Past the budget os_malloc/malloc return NULL.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "sdk_board.h"
#include "hil_heap.h"
#include "c_types.h"
#include "osapi.h"
#include "mem.h"
#include "user_interface.h"

void user_init(void);
void user_pre_init(void);

sdk_boot_t sdk_boot;

#ifndef SDK_HEAP_FREE
#define SDK_HEAP_FREE (47 * 1024)
#endif
#define SDK_VERSION "3.0.6"

static struct timespec t0;
static uint32_t boot_ms0;
static int restart_pending;
static init_done_cb_t init_done;

/* ------------------------------------------------------------------------------------------------
 * Heap (the model: hostcall/hil_heap.c)
 */
const size_t hil_heap_budget = SDK_HEAP_FREE;

size_t hil_heap_block_cost(size_t n) { return (n + 4 + 7) & ~(size_t)7; }

void *pvPortMalloc(size_t sz, const char *file, unsigned line, bool iram)
{
    (void)file; (void)line; (void)iram;
    return __wrap_malloc(sz);
}

void vPortFree(void *p, const char *file, unsigned line)
{
    (void)file; (void)line;
    __wrap_free(p);
}

void *pvPortZalloc(size_t sz, const char *file, unsigned line)
{
    (void)file; (void)line;
    return __wrap_calloc(1, sz);
}

void *pvPortZallocIram(size_t sz, const char *file, unsigned line) { return pvPortZalloc(sz, file, line); }

void *pvPortRealloc(void *p, size_t n, const char *file, unsigned line)
{
    (void)file; (void)line;
    return __wrap_realloc(p, n);
}

void *pvPortCalloc(size_t count, size_t size, const char *file, unsigned line)
{
    (void)file; (void)line;
    return __wrap_calloc(count, size);
}

void *pvPortCallocIram(size_t count, size_t size, const char *file, unsigned line)
{
    return pvPortCalloc(count, size, file, line);
}

uint32 system_get_free_heap_size(void) { return (uint32)hil_heap_free(); }

/* ------------------------------------------------------------------------------------------------
 * Time
 */
uint64_t sdk_micros(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - t0.tv_sec) * 1000000 + (now.tv_nsec - t0.tv_nsec) / 1000;
    return (uint64_t)boot_ms0 * 1000 + (uint64_t)us;
}

uint32 system_get_time(void) { return (uint32)sdk_micros(); }

void ets_delay_us(uint32_t us)
{
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void ets_intr_lock(void) {}
void ets_intr_unlock(void) {}

/* ------------------------------------------------------------------------------------------------
 * Console (UART0): os_printf writes the bytes as given (the SDK adds no line-ending conversion);
 * uart_rx_one_char is the ROM's: one byte from the RX FIFO if there is one (OK), else FAIL.
 */
void sdk_console_write(const char *data, size_t len) { hil_write_all(1, data, len); }

static int console_vprintf(const char *fmt, va_list ap)
{
    char buf[512];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n < 0) return n;
    sdk_console_write(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
    return n;
}

int os_printf_plus(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = console_vprintf(format, ap);
    va_end(ap);
    return n;
}

int ets_sprintf(char *str, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsprintf(str, format, ap);
    va_end(ap);
    return n;
}

int ets_snprintf(char *str, unsigned int size, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(str, size, format, ap);
    va_end(ap);
    return n;
}

STATUS uart_rx_one_char(uint8 *pRxChar)
{
    struct pollfd p = { .fd = 0, .events = POLLIN };
    int r;
    do {
        r = poll(&p, 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) return FAIL;
    ssize_t n;
    do {
        n = read(0, pRxChar, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? OK : FAIL;
}

void uart_div_modify(uint8 uart_no, uint32 DivLatchValue)
{
    if (uart_no != 0 || DivLatchValue == 0) return;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "uart_baud");
    hil_put_int(&m, (int64_t)(80000000u / DivLatchValue));
    hil_call(&m, &r);
    hil_reply_free(&r);
}

void hil_board_log(const uint8_t *p, uint32_t n)
{
    /* level letter, tag, NUL, text: printed as the SDK's libraries print, the text alone */
    if (n < 2) return;
    size_t tl = strnlen((const char *)p + 1, n - 1);
    if (tl + 2 > n) return;
    sdk_console_write((const char *)p + tl + 2, n - 2 - tl);
}

/* ------------------------------------------------------------------------------------------------
 * Strings (ROM functions)
 */
void ets_bzero(void *s, size_t n) { memset(s, 0, n); }
int ets_memcmp(const void *a, const void *b, unsigned int n) { return memcmp(a, b, n); }
void *ets_memcpy(void *d, const void *s, unsigned int n) { return memcpy(d, s, n); }
void *ets_memmove(void *d, const void *s, unsigned int n) { return memmove(d, s, n); }
void *ets_memset(void *d, int v, unsigned int n) { return memset(d, v, n); }
int ets_strcmp(const char *a, const char *b) { return strcmp(a, b); }
char *ets_strcpy(char *a, const char *b) { return strcpy(a, b); }
int ets_strlen(const char *s) { return (int)strlen(s); }
int ets_strncmp(const char *a, const char *b, unsigned int n) { return strncmp(a, b, n); }
char *ets_strncpy(char *a, const char *b, unsigned int n) { return strncpy(a, b, n); }
char *ets_strstr(const char *a, const char *b) { return strstr(a, b); }

unsigned long os_random(void) { return (unsigned long)random(); }

int os_get_random(unsigned char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)random();
    return 0;
}

uint32 ipaddr_addr(const char *cp)
{
    unsigned a, b, c, d;
    char tail;
    if (sscanf(cp, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a > 255 || b > 255 || c > 255 || d > 255)
        return IPADDR_NONE;
    return (uint32)(a | (b << 8) | (c << 16) | (d << 24));
}

/* ------------------------------------------------------------------------------------------------
 * Software timers (os_timer): milliseconds, run from the event loop in expiry order.
 */
static ETSTimer *timers;

void ets_timer_disarm(ETSTimer *t)
{
    for (ETSTimer **pp = &timers; *pp; pp = &(*pp)->timer_next) {
        if (*pp == t) {
            *pp = t->timer_next;
            break;
        }
    }
    t->timer_next = NULL;
}

static void timer_insert(ETSTimer *t)
{
    ETSTimer **pp = &timers;
    while (*pp && (int32_t)((*pp)->timer_expire - t->timer_expire) <= 0) pp = &(*pp)->timer_next;
    t->timer_next = *pp;
    *pp = t;
}

void ets_timer_setfn(ETSTimer *t, ETSTimerFunc *fn, void *arg)
{
    ets_timer_disarm(t);
    t->timer_func = fn;
    t->timer_arg = arg;
    t->timer_period = 0;
}

void ets_timer_arm_new(ETSTimer *t, uint32_t time, bool repeat_flag, bool ms_flag)
{
    uint32_t ms = ms_flag ? time : (time + 999) / 1000;
    ets_timer_disarm(t);
    t->timer_expire = (uint32_t)(sdk_micros() / 1000) + ms;
    t->timer_period = repeat_flag ? (ms ? ms : 1) : 0;
    timer_insert(t);
}

/* Runs the first due timer; returns 1 if one ran. */
static int run_due_timer(void)
{
    ETSTimer *t = timers;
    uint32_t now = (uint32_t)(sdk_micros() / 1000);
    if (!t || (int32_t)(t->timer_expire - now) > 0) return 0;
    timers = t->timer_next;
    t->timer_next = NULL;
    if (t->timer_period) {
        t->timer_expire += t->timer_period;
        if ((int32_t)(t->timer_expire - now) < 0) t->timer_expire = now;
        timer_insert(t);
    }
    if (t->timer_func) t->timer_func(t->timer_arg);
    return 1;
}

static uint32_t ms_to_next_timer(uint32_t cap)
{
    if (!timers) return cap;
    int32_t d = (int32_t)(timers->timer_expire - (uint32_t)(sdk_micros() / 1000));
    if (d <= 0) return 0;
    return (uint32_t)d < cap ? (uint32_t)d : cap;
}

/* ------------------------------------------------------------------------------------------------
 * Posted work (the SDK's task queue as far as this implementation needs it)
 */
#define POST_MAX 32
static struct {
    void (*fn)(void *);
    void *arg;
} posted[POST_MAX];
static int post_head, post_count;

void sdk_post(void (*fn)(void *), void *arg)
{
    if (post_count == POST_MAX) {
        os_printf("sdk: task queue full\n");
        return;
    }
    int i = (post_head + post_count++) % POST_MAX;
    posted[i].fn = fn;
    posted[i].arg = arg;
}

static int run_posted(void)
{
    if (!post_count) return 0;
    void (*fn)(void *) = posted[post_head].fn;
    void *arg = posted[post_head].arg;
    post_head = (post_head + 1) % POST_MAX;
    post_count--;
    fn(arg);
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * System
 */
void sdk_restart_soon(void) { restart_pending = 1; }

void system_restart(void)
{
    /* The SDK stops Wi-Fi and restarts once the current task has returned. */
    restart_pending = 1;
}

static struct rst_info rst;

struct rst_info *system_get_rst_info(void) { return &rst; }

uint32 system_get_chip_id(void)
{
    return (uint32)sdk_boot.mac[3] << 16 | (uint32)sdk_boot.mac[4] << 8 | sdk_boot.mac[5];
}

const char *system_get_sdk_version(void) { return SDK_VERSION; }

void system_init_done_cb(init_done_cb_t cb) { init_done = cb; }

enum flash_size_map system_get_flash_size_map(void) { return (enum flash_size_map)sdk_boot.map; }

uint32 system_get_userbin_addr(void)
{
    return sdk_boot.running_slot == 2 && sdk_map()->user2 ? sdk_map()->user2 : 0x1000;
}

/* The partition table user_pre_init() must register (NONOS SDK 3.x). */
#define PART_MAX 16
static partition_item_t part_table[PART_MAX];
static uint32_t part_count;

bool system_partition_table_regist(const partition_item_t *partition_table, uint32_t partition_num, uint32_t map)
{
    if (!partition_table || partition_num == 0 || partition_num > PART_MAX || map != (uint32_t)sdk_boot.map) {
        return false;
    }
    for (uint32_t i = 0; i < partition_num; i++) {
        const partition_item_t *p = &partition_table[i];
        if (p->addr % SPI_FLASH_SEC_SIZE || p->addr + p->size > sdk_map()->map_flash) return false;
        if (p->type == SYSTEM_PARTITION_OTA_2 && p->addr != sdk_map()->user2) return false;
    }
    memcpy(part_table, partition_table, partition_num * sizeof(*partition_table));
    part_count = partition_num;
    return true;
}

bool system_partition_get_item(partition_type_t type, partition_item_t *partition_item)
{
    for (uint32_t i = 0; i < part_count; i++) {
        if (part_table[i].type == type) {
            if (partition_item) *partition_item = part_table[i];
            return true;
        }
    }
    return false;
}

uint32_t system_partition_get_ota_partition_size(void)
{
    partition_item_t p;
    return system_partition_get_item(SYSTEM_PARTITION_OTA_1, &p) ? p.size : 0;
}

/* ------------------------------------------------------------------------------------------------
 * Wi-Fi station: the board's access point (its network model says whether the SSID and key are right).
 */
static uint8 opmode = STATION_MODE;
static struct station_config sta;
static int sta_configured;

uint8 wifi_get_opmode(void) { return opmode; }

bool wifi_set_opmode(uint8 mode)
{
    if (mode > STATIONAP_MODE) return false;
    opmode = mode;
    return true;
}

bool wifi_set_opmode_current(uint8 mode) { return wifi_set_opmode(mode); }

bool wifi_station_connect(void)
{
    if (!(opmode & STATION_MODE) || !sta_configured) return false;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "wifi_connect");
    hil_put_bytes(&m, sta.ssid, strnlen((const char *)sta.ssid, sizeof(sta.ssid)));
    hil_put_bytes(&m, sta.password, strnlen((const char *)sta.password, sizeof(sta.password)));
    int32_t st = hil_call(&m, &r);
    hil_reply_free(&r);
    return st == 0;
}

bool wifi_station_set_config_current(struct station_config *config)
{
    if (!config || !(opmode & STATION_MODE)) return false;
    sta = *config;
    sta_configured = 1;
    return true;
}

bool wifi_station_set_config(struct station_config *config)
{
    /* On a chip the configuration is also saved in the system parameter area; the host keeps it in RAM. */
    return wifi_station_set_config_current(config);
}

bool wifi_station_disconnect(void)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "wifi_disconnect");
    hil_call(&m, &r);
    hil_reply_free(&r);
    return true;
}

static uint8 auto_connect = 1;

bool wifi_station_set_auto_connect(uint8 set)
{
    auto_connect = set;
    return true;
}

uint8 wifi_station_get_connect_status(void)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "wifi_status");
    hil_call(&m, &r);
    uint8 st = (uint8)hil_int(&r, 0, STATION_IDLE);
    hil_reply_free(&r);
    return st;
}

bool wifi_get_ip_info(uint8 if_index, struct ip_info *info)
{
    if (!info || if_index != STATION_IF) return false;
    memset(info, 0, sizeof(*info));
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "wifi_ip");
    hil_call(&m, &r);
    info->ip.addr = (uint32)hil_int(&r, 0, 0);
    info->netmask.addr = (uint32)hil_int(&r, 1, 0);
    info->gw.addr = (uint32)hil_int(&r, 2, 0);
    hil_reply_free(&r);
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Start-up and the event loop
 */
static void start_lines(void)
{
    char line[160];
    snprintf(line, sizeof(line), "\r\nSDK ver: %s compiled @ Jan  1 2025 00:00:00\r\n", SDK_VERSION);
    sdk_console_write(line, strlen(line));
}

static void idle_ms(uint32_t ms)
{
    if (sdk_net_busy()) {
        sdk_net_poll(ms);
    } else if (ms) {
        ets_delay_us(ms * 1000);
    }
}

int main(int argc, char **argv)
{
    /* argv: req_fd rep_fd parent_pid boot_ms running_slot map flash_size reset_reason mac */
    if (argc < 10) return HIL_EXIT_FATAL;
    hil_app_attach(argv);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    boot_ms0 = (uint32_t)strtoul(argv[4], NULL, 10);
    sdk_boot.running_slot = atoi(argv[5]);
    sdk_boot.map = atoi(argv[6]);
    sdk_boot.flash_size = (uint32_t)strtoul(argv[7], NULL, 0);
    sdk_boot.reset_reason = atoi(argv[8]);
    for (int i = 0; i < 6; i++) {
        unsigned v = 0;
        sscanf(argv[9] + 2 * i, "%2x", &v);
        sdk_boot.mac[i] = (uint8_t)v;
    }
    rst.reason = (uint32)sdk_boot.reset_reason;
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)sdk_boot.mac[5] * 2654435761u ^ (unsigned)boot_ms0);

    start_lines();
    if (!sdk_map()->map_flash) {
        os_printf("flash size map %d is not supported\r\n", sdk_boot.map);
        for (;;) pause();
    }
    user_pre_init();
    if (!part_count) {
        /* NONOS SDK 3.x stops here when user_pre_init() registered no partition table */
        os_printf("partition table not registered\r\n");
        for (;;) pause();
    }
    user_init();
    if (sta_configured && auto_connect && (opmode & STATION_MODE)) wifi_station_connect();
    if (init_done) init_done();

    for (;;) {
        if (restart_pending) _exit(HIL_EXIT_RESTART);  /* the chip process resets the chip */
        if (run_posted() || run_due_timer()) continue;
        idle_ms(ms_to_next_timer(post_count ? 0 : 200));
    }
}
