/* Calls from a host-built app process to the chip process (the board), shared by the virtual boards' runtimes.
 *
 * A call is one frame on the request pipe: u32 length, then the operation name NUL-terminated,
 * then its arguments as items ('i' + i64 little endian, 'b' + u32 length + bytes). The reply is
 * u32 length, i32 status (0 or an error code the board chose), then items of the same kinds plus
 * 'L' items: log lines the board's part of an API prints (level letter, tag, NUL, text), handed to
 * hil_board_log() (which each runtime defines) in the order they come.
 *
 * The app's malloc is wrapped by each runtime's heap model; these functions use the C library's own
 * allocator (__real_malloc and friends), which is not counted against the app's heap.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define HIL_MAX_ITEMS 16

/* Exit codes the chip process understands. */
#define HIL_EXIT_RESTART 40
#define HIL_EXIT_PANIC   41
#define HIL_EXIT_FATAL   42

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

/* The pipe pair to the board (from the app's argv). */
void hil_call_init(int req_fd, int rep_fd);
/* The start of a host-built app's main(): argv[1], argv[2] the pipe pair to the board, argv[3] the chip process,
 * which the app dies with (a parent-death signal; a parent that is already another ends it at once). */
void hil_app_attach(char **argv);
/* All of buf to fd (the console: fd 1); the chip process gone ends the app. */
void hil_write_all(int fd, const void *buf, size_t n);

void hil_msg_init(hil_msg_t *m, const char *op);
void hil_put_int(hil_msg_t *m, int64_t v);
void hil_put_bytes(hil_msg_t *m, const void *p, size_t n);
void hil_put_str(hil_msg_t *m, const char *s);
/* Sends the call, waits for the reply, prints its log lines; returns reply->status. Frees m. */
int32_t hil_call(hil_msg_t *m, hil_reply_t *reply);
void hil_reply_free(hil_reply_t *reply);
int64_t hil_int(const hil_reply_t *r, int index, int64_t fallback);
const uint8_t *hil_bytes(const hil_reply_t *r, int index, size_t *len);

/* Defined by each runtime: print one 'L' item of a reply (level letter, tag, NUL, text; n bytes). */
void hil_board_log(const uint8_t *p, uint32_t n);
