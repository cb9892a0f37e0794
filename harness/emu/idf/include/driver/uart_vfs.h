/* driver/uart_vfs.h: UART VFS of ESP-IDF >= v5.3 (stdin/stdout of the console). */
#pragma once

#include "esp_err.h"
#include "esp_vfs.h"

#ifdef __cplusplus
extern "C" {
#endif

void uart_vfs_dev_register(void);
int uart_vfs_dev_port_set_rx_line_endings(int uart_num, esp_line_endings_t mode);
int uart_vfs_dev_port_set_tx_line_endings(int uart_num, esp_line_endings_t mode);
void uart_vfs_dev_use_nonblocking(int uart_num);
void uart_vfs_dev_use_driver(int uart_num);

#ifdef __cplusplus
}
#endif
