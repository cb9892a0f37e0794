/* The heap model shared by the host-built runtimes: see hil_heap.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hil_heap.h"

#define HDR 16  /* the host block's own header: a tag and the requested size */
#define MAGIC 0x48494c4845415021ULL

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t heap_used, heap_peak;

void *__real_malloc(size_t n);
void __real_free(void *p);
void *__real_realloc(void *p, size_t n);
void *__real_calloc(size_t a, size_t b);

static bool heap_take(size_t cost)
{
    bool ok;
    pthread_mutex_lock(&heap_lock);
    ok = cost <= hil_heap_budget && heap_used + cost <= hil_heap_budget;
    if (ok) {
        heap_used += cost;
        if (heap_used > heap_peak) heap_peak = heap_used;
    }
    pthread_mutex_unlock(&heap_lock);
    return ok;
}

static void heap_give(size_t cost)
{
    pthread_mutex_lock(&heap_lock);
    heap_used -= cost < heap_used ? cost : heap_used;
    pthread_mutex_unlock(&heap_lock);
}

int hil_heap_charge(long bytes)
{
    if (bytes >= 0) return heap_take((size_t)bytes);
    heap_give((size_t)(-bytes));
    return 1;
}

size_t hil_heap_free(void)
{
    size_t u;
    pthread_mutex_lock(&heap_lock);
    u = heap_used;
    pthread_mutex_unlock(&heap_lock);
    return hil_heap_budget - u;
}

size_t hil_heap_min_free(void)
{
    size_t p;
    pthread_mutex_lock(&heap_lock);
    p = heap_peak;
    pthread_mutex_unlock(&heap_lock);
    return hil_heap_budget - p;
}

static int is_ours(uint8_t *base) { return ((uint64_t *)base)[0] == (MAGIC ^ (uint64_t)(uintptr_t)base); }

void *__wrap_malloc(size_t n)
{
    if (n > hil_heap_budget || !heap_take(hil_heap_block_cost(n))) {
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *base = __real_malloc(n + HDR);
    if (!base) {
        heap_give(hil_heap_block_cost(n));
        return NULL;
    }
    ((uint64_t *)base)[0] = MAGIC ^ (uint64_t)(uintptr_t)base;
    ((uint64_t *)base)[1] = n;
    return base + HDR;
}

void __wrap_free(void *p)
{
    if (!p) return;
    uint8_t *base = (uint8_t *)p - HDR;
    if (is_ours(base)) {
        size_t n = ((uint64_t *)base)[1];
        ((uint64_t *)base)[0] = 0;
        heap_give(hil_heap_block_cost(n));
        __real_free(base);
    } else {
        __real_free(p);  /* a block the C library allocated for itself */
    }
}

void *__wrap_calloc(size_t a, size_t b)
{
    if (b && a > SIZE_MAX / b) return NULL;
    void *p = __wrap_malloc(a * b);
    if (p) memset(p, 0, a * b);
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (!p) return __wrap_malloc(n);
    if (n == 0) {
        __wrap_free(p);
        return NULL;
    }
    uint8_t *base = (uint8_t *)p - HDR;
    if (!is_ours(base)) return __real_realloc(p, n);
    size_t old = ((uint64_t *)base)[1];
    void *q = __wrap_malloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    __wrap_free(p);
    return q;
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = __wrap_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

char *__wrap_strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *p = __wrap_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

int __wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) return -1;
    *out = __wrap_malloc((size_t)n + 1);
    if (!*out) return -1;
    return vsnprintf(*out, (size_t)n + 1, fmt, ap);
}

int __wrap_asprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = __wrap_vasprintf(out, fmt, ap);
    va_end(ap);
    return n;
}

void *hil_alloc(size_t n) { return __real_malloc(n); }
void hil_free(void *p) { __real_free(p); }
