/* Private to the virtual ESP32 runtime: calls from the app process to the chip process (the board).
 *
 * Calls are framed as harness/emu/hostcall/hil_call.h says; a reply's status is ESP_OK or an esp_err_t /
 * negative errno the board chose, and its 'L' items are printed here through esp_log in the order they come.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "hil_heap.h"  /* the heap model: hil_alloc/hil_free, hil_heap_free, hil_heap_charge, ... */

#include "hil_call.h"  /* harness/emu/hostcall: the call framing shared with the other runtimes */

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


