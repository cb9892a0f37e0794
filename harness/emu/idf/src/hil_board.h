/* Private to the virtual ESP32 runtime: calls from the app process to the chip process (the board).
 *
 * A call is one frame on the request pipe: u32 length, then the operation name NUL-terminated,
 * then its arguments as items ('i' + i64 little endian, 'b' + u32 length + bytes). The reply is
 * u32 length, i32 status (ESP_OK or an esp_err_t / negative errno the board chose), then items of
 * the same kinds plus 'L' items: log lines the board's part of the API prints (level letter, tag,
 * NUL, text), printed here through esp_log in the order they come.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define HIL_MAX_ITEMS 16

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} hil_msg_t;

typedef struct {
    int32_t status;
    int count;
    char kind[HIL_MAX_ITEMS];
    int64_t num[HIL_MAX_ITEMS];
    const uint8_t *ptr[HIL_MAX_ITEMS];
    uint32_t size[HIL_MAX_ITEMS];
    uint8_t *raw; /* owns the memory ptr[] points into */
} hil_reply_t;

void hil_msg_init(hil_msg_t *m, const char *op);
void hil_put_int(hil_msg_t *m, int64_t v);
void hil_put_bytes(hil_msg_t *m, const void *p, size_t n);
void hil_put_str(hil_msg_t *m, const char *s);
/* Sends the call, waits for the reply, prints its log lines; returns reply->status. Frees m. */
int32_t hil_call(hil_msg_t *m, hil_reply_t *reply);
void hil_reply_free(hil_reply_t *reply);
int64_t hil_int(const hil_reply_t *r, int index, int64_t fallback);
const uint8_t *hil_bytes(const hil_reply_t *r, int index, size_t *len);

/* Memory of the runtime itself: not counted against the app's heap. */
void *hil_alloc(size_t n);
void hil_free(void *p);

/* Board facts handed over at start. */
typedef struct {
    uint32_t running_offset;
    uint32_t flash_size;
    int reset_reason;      /* esp_reset_reason_t */
    uint8_t mac[6];
    uint32_t efuse_secure_version;
} hil_boot_t;
extern hil_boot_t hil_boot;

/* Milliseconds since the chip left reset. */
uint32_t hil_millis(void);
uint64_t hil_micros(void);
/* Sleep that a board interrupt cannot shorten. */
void hil_sleep_ms(uint32_t ms);

/* Console (UART0). */
void hil_console_write(const char *data, size_t len);   /* raw bytes, no line-ending conversion */
void hil_console_set_tx_mode(int mode);
void hil_console_set_rx_mode(int mode);
void hil_console_set_blocking(bool blocking);

/* Ends the app process: the chip resets (software reset). */
void hil_restart(void) __attribute__((noreturn));
/* Prints an ESP-IDF style panic report for `reason` (already formatted first line) and resets. */
void hil_panic(const char *first_line, const char *guru_reason, uintptr_t pc) __attribute__((noreturn));

/* Reads the running image's esp_app_desc_t (done before app_main). */
void hil_app_desc_load(void);

/* The heap model. */
size_t hil_heap_free(void);
size_t hil_heap_min_free(void);
/* Charge (or release, negative) memory the board-side part of an API takes on a real chip. */
bool hil_heap_charge(long bytes);

/* Exit codes the chip process understands. */
#define HIL_EXIT_RESTART 40
#define HIL_EXIT_PANIC   41
#define HIL_EXIT_FATAL   42
