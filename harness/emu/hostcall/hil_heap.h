/* The heap model of the host-built apps of the virtual boards (ESP-IDF on the ESP32, the NONOS SDK on the
 * ESP8266): the app's malloc family is linked to this (-Wl,--wrap=malloc,...) and counts every block against
 * what the chip's allocator has free when the app starts; past that budget an allocation fails (NULL, ENOMEM)
 * as it does on the chip. Each runtime says what its chip has and what a block costs there.
 */
#pragma once

#include <stddef.h>

/* Defined by the runtime: bytes free when the app starts, and what a block of n bytes costs (size rounded as the
 * chip's allocator rounds it, plus its header). */
extern const size_t hil_heap_budget;
size_t hil_heap_block_cost(size_t n);

/* Free now, and the least that was free since the start. */
size_t hil_heap_free(void);
size_t hil_heap_min_free(void);
/* Charge (or release, negative) memory the board-side part of an API takes on a real chip; 0 if it does not fit
 * (an int, not a bool: the SDK's c_types.h has its own bool). */
int hil_heap_charge(long bytes);

/* Memory of the runtime itself: not counted against the app's heap. */
void *hil_alloc(size_t n);
void hil_free(void *p);

/* The wrapped allocator (what the app's malloc, free, calloc, realloc, strdup, strndup, asprintf, vasprintf
 * become). */
void *__wrap_malloc(size_t n);
void __wrap_free(void *p);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
