/* esp_attr.h: placement attributes; on the virtual ESP32 they place nothing. */
#pragma once

#define IRAM_ATTR
#define DRAM_ATTR
#define IRAM_DATA_ATTR
#define IRAM_BSS_ATTR
#define DMA_ATTR
#define WORD_ALIGNED_ATTR __attribute__((aligned(4)))
#define RTC_DATA_ATTR
#define RTC_RODATA_ATTR
#define RTC_NOINIT_ATTR
#define RTC_IRAM_ATTR
#define RTC_FAST_ATTR
#define RTC_SLOW_ATTR
#define EXT_RAM_BSS_ATTR
#define EXT_RAM_NOINIT_ATTR
#define __NOINIT_ATTR
#define NOINLINE_ATTR __attribute__((noinline))
#define FORCE_INLINE_ATTR static inline __attribute__((always_inline))
#define NOINIT_ATTR
#define COUNTER_ATTR
#define IDF_DEPRECATED(REASON) __attribute__((deprecated(REASON)))
