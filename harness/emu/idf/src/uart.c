/* driver/uart and the UART VFS for UART0, the board's console. Other ports have nothing connected. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include <stdint.h>
#include "driver/uart.h"
#include "driver/uart_vfs.h"
#include "esp_vfs_dev.h"
#include "hil_board.h"

static const char *TAG = "uart";
static bool installed[UART_NUM_MAX];
static bool use_driver[UART_NUM_MAX];

#define UART_CHECK(a, str, ret_val) do { if (!(a)) { ESP_LOGE(TAG, "%s(%d): %s", __FUNCTION__, __LINE__, str); return (ret_val); } } while (0)

esp_err_t uart_driver_install(uart_port_t uart_num, int rx_buffer_size, int tx_buffer_size, int queue_size,
                              QueueHandle_t *uart_queue, int intr_alloc_flags)
{
    (void)queue_size;
    (void)intr_alloc_flags;
    UART_CHECK((uart_num >= 0 && uart_num < UART_NUM_MAX), "uart_num error", ESP_FAIL);
    UART_CHECK((rx_buffer_size > UART_FIFO_LEN), "uart rx buffer length error", ESP_FAIL);
    UART_CHECK((tx_buffer_size > UART_FIFO_LEN) || (tx_buffer_size == 0), "uart tx buffer length error", ESP_FAIL);
    if (installed[uart_num]) {
        ESP_LOGE(TAG, "UART driver already installed");
        return ESP_FAIL;
    }
    if (!hil_heap_charge(rx_buffer_size + tx_buffer_size + 400)) return ESP_ERR_NO_MEM;
    installed[uart_num] = true;
    if (uart_queue) *uart_queue = NULL;
    return ESP_OK;
}

esp_err_t uart_driver_delete(uart_port_t uart_num)
{
    UART_CHECK((uart_num >= 0 && uart_num < UART_NUM_MAX), "uart_num error", ESP_FAIL);
    if (!installed[uart_num]) {
        ESP_LOGI(TAG, "ALREADY NULL");
        return ESP_OK;
    }
    installed[uart_num] = false;
    if (uart_num == CONFIG_ESP_CONSOLE_UART_NUM && use_driver[uart_num]) hil_console_set_blocking(false);
    return ESP_OK;
}

bool uart_is_driver_installed(uart_port_t uart_num) { return uart_num >= 0 && uart_num < UART_NUM_MAX && installed[uart_num]; }

esp_err_t uart_param_config(uart_port_t uart_num, const uart_config_t *uart_config)
{
    UART_CHECK((uart_num >= 0 && uart_num < UART_NUM_MAX), "uart_num error", ESP_FAIL);
    UART_CHECK(uart_config != NULL, "param null", ESP_FAIL);
    return ESP_OK;
}

esp_err_t uart_set_pin(uart_port_t uart_num, int tx_io_num, int rx_io_num, int rts_io_num, int cts_io_num)
{
    (void)tx_io_num;
    (void)rx_io_num;
    (void)rts_io_num;
    (void)cts_io_num;
    UART_CHECK((uart_num >= 0 && uart_num < UART_NUM_MAX), "uart_num error", ESP_FAIL);
    return ESP_OK;
}

int uart_write_bytes(uart_port_t uart_num, const void *src, size_t size)
{
    UART_CHECK((uart_num >= 0 && uart_num < UART_NUM_MAX), "uart_num error", -1);
    UART_CHECK(installed[uart_num], "uart driver error", -1);
    if (uart_num == CONFIG_ESP_CONSOLE_UART_NUM) {
        fflush(stdout);
        hil_console_write(src, size);
    }
    return (int)size;
}

esp_err_t uart_wait_tx_done(uart_port_t uart_num, TickType_t ticks_to_wait)
{
    (void)ticks_to_wait;
    UART_CHECK((uart_num >= 0 && uart_num < UART_NUM_MAX), "uart_num error", ESP_FAIL);
    return ESP_OK;
}

void uart_vfs_dev_register(void) {}

int uart_vfs_dev_port_set_rx_line_endings(int uart_num, esp_line_endings_t mode)
{
    if (uart_num < 0 || uart_num >= UART_NUM_MAX) return -1;
    if (uart_num == CONFIG_ESP_CONSOLE_UART_NUM) hil_console_set_rx_mode(mode);
    return 0;
}

int uart_vfs_dev_port_set_tx_line_endings(int uart_num, esp_line_endings_t mode)
{
    if (uart_num < 0 || uart_num >= UART_NUM_MAX) return -1;
    if (uart_num == CONFIG_ESP_CONSOLE_UART_NUM) hil_console_set_tx_mode(mode);
    return 0;
}

void uart_vfs_dev_use_nonblocking(int uart_num)
{
    if (uart_num >= 0 && uart_num < UART_NUM_MAX) use_driver[uart_num] = false;
    if (uart_num == CONFIG_ESP_CONSOLE_UART_NUM) hil_console_set_blocking(false);
}

void uart_vfs_dev_use_driver(int uart_num)
{
    if (uart_num < 0 || uart_num >= UART_NUM_MAX) return;
    /* The VFS asserts the driver is there (uart_vfs.c: "UART driver must be installed"). */
    if (!installed[uart_num]) {
        hil_panic("assert failed: uart_vfs_dev_use_driver uart_vfs.c:1069 (uart_is_driver_installed(uart_num))", NULL,
                  (uintptr_t)__builtin_return_address(0));
    }
    use_driver[uart_num] = true;
    if (uart_num == CONFIG_ESP_CONSOLE_UART_NUM) hil_console_set_blocking(true);
}

void esp_vfs_dev_uart_register(void) { uart_vfs_dev_register(); }
int esp_vfs_dev_uart_port_set_rx_line_endings(int uart_num, esp_line_endings_t mode) { return uart_vfs_dev_port_set_rx_line_endings(uart_num, mode); }
int esp_vfs_dev_uart_port_set_tx_line_endings(int uart_num, esp_line_endings_t mode) { return uart_vfs_dev_port_set_tx_line_endings(uart_num, mode); }
void esp_vfs_dev_uart_use_nonblocking(int uart_num) { uart_vfs_dev_use_nonblocking(uart_num); }
void esp_vfs_dev_uart_use_driver(int uart_num) { uart_vfs_dev_use_driver(uart_num); }
