/* The virtual ESP32's side of an ESP-IDF app built for the host.
 *
 * The chip process (harness/emu/runtime_idf.py) starts this executable with an empty environment:
 *   fd 0  bytes received on UART0 (the console's RX),
 *   fd 1  bytes the chip transmits on UART0 (stdout and stderr go there),
 *   argv  the call pipe pair to the board and the facts of this boot.
 * It runs app_main in a task of CONFIG_ESP_MAIN_TASK_STACK_SIZE bytes (plus HIL_STACK_MARGIN for the host
 * ABI), counts the app's heap against an ESP32's, turns crashes into ESP-IDF's panic report, and ends
 * with an exit code the chip process turns into a reset.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_system.h"
#include "esp_app_desc.h"
#include "esp_vfs.h"
#include "hil_board.h"

void app_main(void);

hil_boot_t hil_boot;

static struct timespec t0;
static uint32_t boot_ms0;

/* ------------------------------------------------------------------------------------------------
 * Heap: an ESP32 app with Wi-Fi started has about HIL_HEAP_FREE bytes of free internal heap when
 * app_main runs (ESP-IDF v5.2, 520 KiB SRAM, Wi-Fi + lwIP + event loop allocated). Every block the
 * app (or the ESP-IDF code compiled with it) allocates costs its size rounded to 4 plus
 * HIL_HEAP_BLOCK_OVERHEAD (the TLSF block header); past the budget malloc returns NULL as on the chip.
 */
#ifndef HIL_HEAP_FREE
#define HIL_HEAP_FREE (200 * 1024)
#endif
#define HIL_HEAP_BLOCK_OVERHEAD 8

const size_t hil_heap_budget = HIL_HEAP_FREE;

size_t hil_heap_block_cost(size_t n) { return ((n + 3) & ~(size_t)3) + HIL_HEAP_BLOCK_OVERHEAD; }

/* ------------------------------------------------------------------------------------------------
 * Time
 */
uint64_t hil_micros(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - t0.tv_sec) * 1000000 + (now.tv_nsec - t0.tv_nsec) / 1000;
    return (uint64_t)boot_ms0 * 1000 + (uint64_t)us;
}

uint32_t hil_millis(void) { return (uint32_t)(hil_micros() / 1000); }

void hil_sleep_ms(uint32_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------------------------------------
 * Console: UART0 through the ESP-IDF VFS. TX turns "\n" into the configured line ending (CRLF by
 * default, CONFIG_NEWLIB_STDOUT_LINE_ENDING_CRLF); RX turns the configured ending into "\n" (CR by
 * default). Until uart_vfs_dev_use_driver() reads do not wait: with no byte in the FIFO they fail
 * with EWOULDBLOCK, as the VFS's non-blocking driver-less path does.
 */
static atomic_int tx_mode = ESP_LINE_ENDINGS_CRLF;
static atomic_int rx_mode = ESP_LINE_ENDINGS_CR;
static atomic_bool rx_blocking = false;
static int rx_peek = -1;

void hil_console_set_tx_mode(int mode) { tx_mode = mode; }
void hil_console_set_rx_mode(int mode) { rx_mode = mode; }
void hil_console_set_blocking(bool blocking) { rx_blocking = blocking; }

void hil_console_write(const char *data, size_t len) { hil_write_all(1, data, len); }

static ssize_t console_out(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    int mode = tx_mode;
    if (mode == ESP_LINE_ENDINGS_LF) {
        hil_console_write(buf, size);
        return (ssize_t)size;
    }
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (buf[i] == '\n') {
            hil_console_write(buf + start, i - start);
            hil_console_write(mode == ESP_LINE_ENDINGS_CRLF ? "\r\n" : "\r", mode == ESP_LINE_ENDINGS_CRLF ? 2 : 1);
            start = i + 1;
        }
    }
    hil_console_write(buf + start, size - start);
    return (ssize_t)size;
}

static int rx_byte(bool wait)
{
    if (rx_peek >= 0) {
        int c = rx_peek;
        rx_peek = -1;
        return c;
    }
    struct pollfd p = { .fd = 0, .events = POLLIN };
    int r;
    do {
        r = poll(&p, 1, wait ? -1 : 0);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) return -1;
    unsigned char c;
    ssize_t n;
    do {
        n = read(0, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        /* The board closed the UART: nothing will ever arrive. */
        for (;;) pause();
    }
    return c;
}

static ssize_t console_in(void *cookie, char *buf, size_t size)
{
    (void)cookie;
    size_t got = 0;
    while (got < size) {
        int c = rx_byte(rx_blocking && got == 0);
        if (c < 0) break;
        int mode = rx_mode;
        if (c == '\r' && mode == ESP_LINE_ENDINGS_CR) {
            c = '\n';
        } else if (c == '\r' && mode == ESP_LINE_ENDINGS_CRLF) {
            int next = rx_byte(false);
            if (next == '\n') {
                c = '\n';
            } else if (next >= 0) {
                rx_peek = next;
            }
        }
        buf[got++] = (char)c;
        if (c == '\n') break;
    }
    if (got == 0) {
        errno = EWOULDBLOCK;
        return -1;
    }
    return (ssize_t)got;
}

static void console_init(void)
{
    cookie_io_functions_t out = { .write = console_out };
    cookie_io_functions_t in = { .read = console_in };
    FILE *o = fopencookie(NULL, "w", out);
    FILE *e = fopencookie(NULL, "w", out);
    FILE *i = fopencookie(NULL, "r", in);
    if (!o || !e || !i) _exit(HIL_EXIT_FATAL);
    setvbuf(o, NULL, _IOLBF, 128);
    setvbuf(e, NULL, _IONBF, 0);
    setvbuf(i, NULL, _IONBF, 0);
    stdout = o;
    stderr = e;
    stdin = i;
}

/* ------------------------------------------------------------------------------------------------
 * Board calls (framing: harness/emu/hostcall/hil_call.c): log lines the board sends back
 */
void hil_board_log(const uint8_t *p, uint32_t n)
{
    if (n < 2) return;
    char level = (char)p[0];
    const char *tag = (const char *)p + 1;
    size_t tl = strnlen(tag, n - 1);
    if (tl + 2 > n) return;
    const char *text = tag + tl + 1;
    int tn = (int)(n - 2 - tl);
    switch (level) {
    case 'E': ESP_LOGE(tag, "%.*s", tn, text); break;
    case 'W': ESP_LOGW(tag, "%.*s", tn, text); break;
    case 'D': ESP_LOGD(tag, "%.*s", tn, text); break;
    case 'V': ESP_LOGV(tag, "%.*s", tn, text); break;
    default: ESP_LOGI(tag, "%.*s", tn, text); break;
    }
}

/* ------------------------------------------------------------------------------------------------
 * Resets and panics
 */
void hil_restart(void)
{
    _exit(HIL_EXIT_RESTART);
}

static uint32_t fake_pc(uintptr_t addr)
{
    extern char __executable_start;
    return 0x400d0000u + (uint32_t)((addr - (uintptr_t)&__executable_start) & 0x7fffc);
}

static void raw_print(const char *s) { hil_console_write(s, strlen(s)); }

static void __attribute__((noreturn)) panic_tail(uint32_t pc, uint32_t sp)
{
    char line[160];
    snprintf(line, sizeof(line), "\r\n\r\nBacktrace: 0x%08" PRIx32 ":0x%08" PRIx32 " 0x%08" PRIx32 ":0x%08" PRIx32 "\r\n\r\n\r\n\r\n\r\n",
             pc, sp, pc + 0x3a, sp + 0x20);
    raw_print(line);
    char sha[17];
    esp_app_get_elf_sha256(sha, sizeof(sha));
    snprintf(line, sizeof(line), "ELF file SHA256: %s\r\n\r\nRebooting...\r\n", sha);
    raw_print(line);
    _exit(HIL_EXIT_PANIC);
}

void hil_panic(const char *first_line, const char *guru_reason, uintptr_t pc)
{
    char line[256];
    uint32_t p = fake_pc(pc), sp = 0x3ffb4e00u + (uint32_t)(pc & 0xf0);
    if (first_line) {
        snprintf(line, sizeof(line), "\r\n%s\r\n", first_line);
        raw_print(line);
    }
    if (guru_reason) {
        snprintf(line, sizeof(line),
                 "Guru Meditation Error: Core  0 panic'ed (%s). Exception was unhandled.\r\n\r\n"
                 "Core  0 register dump:\r\n"
                 "PC      : 0x%08" PRIx32 "  PS      : 0x00060030  A0      : 0x%08" PRIx32 "  A1      : 0x%08" PRIx32 "  \r\n",
                 guru_reason, p, 0x800d0000u | (p & 0xffff), sp);
        raw_print(line);
    }
    panic_tail(p, sp);
}

static uint8_t *task_stack_lo;  /* lowest usable address of the app_main task's stack */
static size_t task_guard = 4096;

static void on_fault(int sig, siginfo_t *info, void *uctx)
{
    ucontext_t *uc = uctx;
    uintptr_t pc = 0;
#if defined(__x86_64__)
    pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    pc = (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
#endif
    uint8_t *addr = info->si_addr;
    if ((sig == SIGSEGV || sig == SIGBUS) && task_stack_lo && addr < task_stack_lo + 256 &&
        addr >= task_stack_lo - task_guard - 65536) {
        raw_print("\r\n***ERROR*** A stack overflow in task main has been detected.\r\n");
        panic_tail(fake_pc(pc), 0x3ffb4c00u);
    }
    const char *reason = "LoadProhibited";
    if (sig == SIGILL) reason = "IllegalInstruction";
    else if (sig == SIGFPE) reason = "IntegerDivideByZero";
    else if (sig == SIGBUS) reason = "LoadStoreAlignment";
#if defined(__x86_64__)
    else if (uc->uc_mcontext.gregs[REG_ERR] & 2) reason = "StoreProhibited";
#endif
    hil_panic(NULL, reason, pc);
}

static void on_abort(int sig)
{
    (void)sig;
    char line[96];
    snprintf(line, sizeof(line), "\r\nabort() was called at PC 0x%08" PRIx32 " on core 0\r\n",
             fake_pc((uintptr_t)__builtin_return_address(0)));
    raw_print(line);
    panic_tail(fake_pc((uintptr_t)__builtin_return_address(0)), 0x3ffb4e70u);
}

void __assert_fail(const char *expr, const char *file, unsigned int line, const char *func)
{
    const char *base = strrchr(file, '/');
    char text[256];
    snprintf(text, sizeof(text), "\r\nassert failed: %s %s:%u (%s)\r\n", func, base ? base + 1 : file, line, expr);
    raw_print(text);
    panic_tail(fake_pc((uintptr_t)__builtin_return_address(0)), 0x3ffb4e70u);
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    struct sigaction ab;
    memset(&ab, 0, sizeof(ab));
    ab.sa_handler = on_abort;
    ab.sa_flags = SA_ONSTACK;
    sigemptyset(&ab.sa_mask);
    sigaction(SIGABRT, &ab, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void alt_stack(void)
{
    size_t size = 64 * 1024;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) _exit(HIL_EXIT_FATAL);
    stack_t ss = { .ss_sp = mem, .ss_size = size, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
}

/* ------------------------------------------------------------------------------------------------
 * Start-up
 */
/* The host ABI (64-bit pointers, glibc's printf) needs more stack than Xtensa code does. */
#define HIL_STACK_MARGIN 8192

static void *main_task(void *arg)
{
    (void)arg;
    alt_stack();
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *lo;
        size_t size;
        pthread_attr_getstack(&attr, &lo, &size);
        pthread_attr_getguardsize(&attr, &task_guard);
        task_stack_lo = lo;
        pthread_attr_destroy(&attr);
    }
    ESP_LOGI("main_task", "Started on CPU0");
    ESP_LOGI("main_task", "Calling app_main()");
    app_main();
    ESP_LOGI("main_task", "Returned from app_main()");
    return NULL;
}

static void startup_lines(void)
{
    ESP_LOGI("app_init", "Min chip rev:     v0.0");
    ESP_LOGI("app_init", "Max chip rev:     v3.99 ");
    ESP_LOGI("app_init", "Chip rev:         v3.0");
    ESP_LOGI("heap_init", "Initializing. RAM available for dynamic allocation:");
    ESP_LOGI("heap_init", "At 3FFAE6E0 len 00001920 (6 KiB): DRAM");
    ESP_LOGI("heap_init", "At 3FFB6DA8 len 00029258 (164 KiB): DRAM");
    ESP_LOGI("heap_init", "At 3FFE0440 len 00003AE0 (14 KiB): D/IRAM");
    ESP_LOGI("heap_init", "At 3FFE4350 len 0001BCB0 (111 KiB): D/IRAM");
    ESP_LOGI("heap_init", "At 4009A9E4 len 0000561C (21 KiB): IRAM");
    ESP_LOGI("spi_flash", "detected chip: winbond");
    ESP_LOGI("spi_flash", "flash io: dio");
}

int main(int argc, char **argv)
{
    /* argv: req_fd rep_fd parent_pid boot_ms running_offset flash_size reset_reason mac efuse_secure_version */
    if (argc < 10) return HIL_EXIT_FATAL;
    hil_app_attach(argv);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    boot_ms0 = (uint32_t)strtoul(argv[4], NULL, 10);
    hil_boot.running_offset = (uint32_t)strtoul(argv[5], NULL, 0);
    hil_boot.flash_size = (uint32_t)strtoul(argv[6], NULL, 0);
    hil_boot.reset_reason = atoi(argv[7]);
    for (int i = 0; i < 6; i++) {
        unsigned v = 0;
        sscanf(argv[8] + 2 * i, "%2x", &v);
        hil_boot.mac[i] = (uint8_t)v;
    }
    hil_boot.efuse_secure_version = (uint32_t)strtoul(argv[9], NULL, 0);
    console_init();
    install_handlers();
    alt_stack();
    hil_app_desc_load();
    {
        hil_msg_t m;
        hil_reply_t r;
        hil_msg_init(&m, "app_config");
#if CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE
        hil_put_int(&m, 1);
#else
        hil_put_int(&m, 0);
#endif
#if CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK
        hil_put_int(&m, 1);
#else
        hil_put_int(&m, 0);
#endif
        hil_call(&m, &r);
        hil_reply_free(&r);
    }
    startup_lines();

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    size_t stack = CONFIG_ESP_MAIN_TASK_STACK_SIZE + HIL_STACK_MARGIN;
    if (stack < PTHREAD_STACK_MIN) stack = PTHREAD_STACK_MIN;
    pthread_attr_setstacksize(&attr, stack);
    pthread_t task;
    if (pthread_create(&task, &attr, main_task, NULL) != 0) return HIL_EXIT_FATAL;
    /* The main task ending is not the chip ending: the idle task runs on, the board stays up. */
    for (;;) pause();
}
