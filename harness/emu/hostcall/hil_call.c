/* Call framing between a host-built app and the chip process (see hil_call.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>
#include <unistd.h>

#include "hil_call.h"

void *__real_malloc(size_t n);
void __real_free(void *p);
void *__real_realloc(void *p, size_t n);

static int req_fd = -1, rep_fd = -1;
static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;

void hil_call_init(int req, int rep)
{
    req_fd = req;
    rep_fd = rep;
}

void hil_app_attach(char **argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != (pid_t)atol(argv[3])) _exit(HIL_EXIT_FATAL);  /* the chip process is already gone */
    hil_call_init(atoi(argv[1]), atoi(argv[2]));
    fcntl(req_fd, F_SETFD, FD_CLOEXEC);
    fcntl(rep_fd, F_SETFD, FD_CLOEXEC);
}

static void msg_need(hil_msg_t *m, size_t extra)
{
    if (m->len + extra <= m->cap) return;
    size_t cap = m->cap ? m->cap : 256;
    while (cap < m->len + extra) cap *= 2;
    uint8_t *b = __real_realloc(m->buf, cap);
    if (!b) _exit(HIL_EXIT_FATAL);
    m->buf = b;
    m->cap = cap;
}

void hil_msg_init(hil_msg_t *m, const char *op)
{
    memset(m, 0, sizeof(*m));
    size_t n = strlen(op) + 1;
    msg_need(m, 4 + n);
    m->len = 4;
    memcpy(m->buf + 4, op, n);
    m->len += n;
}

void hil_put_int(hil_msg_t *m, int64_t v)
{
    msg_need(m, 9);
    m->buf[m->len++] = 'i';
    memcpy(m->buf + m->len, &v, 8);
    m->len += 8;
}

void hil_put_bytes(hil_msg_t *m, const void *p, size_t n)
{
    msg_need(m, 5 + n);
    m->buf[m->len++] = 'b';
    uint32_t l = (uint32_t)n;
    memcpy(m->buf + m->len, &l, 4);
    m->len += 4;
    if (n) memcpy(m->buf + m->len, p, n);
    m->len += n;
}

void hil_put_str(hil_msg_t *m, const char *s) { hil_put_bytes(m, s ? s : "", s ? strlen(s) : 0); }

static void io_all(int fd, void *buf, size_t n, int writing)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = writing ? write(fd, p, n) : read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            /* The chip process is gone (reset or power cut): nothing of this app may go on. */
            _exit(HIL_EXIT_FATAL);
        }
        p += r;
        n -= (size_t)r;
    }
}

void hil_write_all(int fd, const void *buf, size_t n) { io_all(fd, (void *)(uintptr_t)buf, n, 1); }

int32_t hil_call(hil_msg_t *m, hil_reply_t *reply)
{
    uint32_t body = (uint32_t)(m->len - 4);
    memcpy(m->buf, &body, 4);
    memset(reply, 0, sizeof(*reply));
    pthread_mutex_lock(&call_lock);
    io_all(req_fd, m->buf, m->len, 1);
    uint32_t n;
    io_all(rep_fd, &n, 4, 0);
    uint8_t *raw = __real_malloc(n ? n : 1);
    if (!raw) _exit(HIL_EXIT_FATAL);
    io_all(rep_fd, raw, n, 0);
    pthread_mutex_unlock(&call_lock);
    __real_free(m->buf);
    m->buf = NULL;
    reply->raw = raw;
    memcpy(&reply->status, raw, 4);
    size_t pos = 4;
    while (pos < n) {
        char kind = (char)raw[pos++];
        if (kind == 'i') {
            int64_t v;
            memcpy(&v, raw + pos, 8);
            pos += 8;
            if (reply->count < HIL_MAX_ITEMS) {
                reply->kind[reply->count] = 'i';
                reply->num[reply->count++] = v;
            }
        } else {
            uint32_t l;
            memcpy(&l, raw + pos, 4);
            pos += 4;
            if (kind == 'L') {
                hil_board_log(raw + pos, l);
            } else if (reply->count < HIL_MAX_ITEMS) {
                reply->kind[reply->count] = 'b';
                reply->ptr[reply->count] = raw + pos;
                reply->size[reply->count++] = l;
            }
            pos += l;
        }
    }
    return reply->status;
}

void hil_reply_free(hil_reply_t *reply)
{
    __real_free(reply->raw);
    reply->raw = NULL;
}

int64_t hil_int(const hil_reply_t *r, int index, int64_t fallback)
{
    if (index >= r->count || r->kind[index] != 'i') return fallback;
    return r->num[index];
}

const uint8_t *hil_bytes(const hil_reply_t *r, int index, size_t *len)
{
    if (index >= r->count || r->kind[index] != 'b') {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = r->size[index];
    return r->ptr[index];
}
