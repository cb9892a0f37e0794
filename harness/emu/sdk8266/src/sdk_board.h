/* Private to the virtual ESP8266's implementation of the NONOS SDK: what its parts share. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "hil_call.h"

/* Board facts handed over at start (argv). */
typedef struct {
    int running_slot;        /* 1 = user1, 2 = user2: the bin boot_v1.x started */
    int map;                 /* flash map code (byte 3 of the boot image's header, high nibble) */
    uint32_t flash_size;     /* bytes of the flash chip */
    int reset_reason;        /* enum rst_reason */
    uint8_t mac[6];
} sdk_boot_t;
extern sdk_boot_t sdk_boot;

/* The map's geometry (the FOTA demo's figures): 0 when the map has no user2. */
typedef struct {
    uint32_t map_flash;      /* flash size the map describes: the system parameter sectors are its last three */
    uint32_t user2;          /* address of user2 */
    uint32_t slot_sectors;   /* writable sectors per slot */
} sdk_map_t;
const sdk_map_t *sdk_map(void);

uint64_t sdk_micros(void);
void sdk_console_write(const char *data, size_t len);

/* Runs `fn(arg)` from the event loop as soon as the current callback has returned. */
void sdk_post(void (*fn)(void *), void *arg);

/* The restart system_restart() asked for happens when the current callback returns. */
void sdk_restart_soon(void);

/* The network part (espconn.c): whether a connection is open or pending, and one poll of the board
 * (waiting up to timeout_ms) that dispatches what happened to the espconn callbacks. */
int sdk_net_busy(void);
void sdk_net_poll(uint32_t timeout_ms);
