/* ESP8266 NONOS SDK 3.x app: a console on UART0 and the FOTA client.
 *
 * Console (115200 baud, lines end with CR or LF):  fota <ipv4 address> <port>
 * Lines the app prints (the test harness reads them):
 *   fota: ready, version <v>, running user<N>
 *   fota: connecting to <host>:<port>, asking for user<M>
 *   fota: image of <len> bytes for user<M>
 *   fota: written <n> of <len> bytes
 *   fota: refused: <reason>: <detail>
 *   fota: crc ok, switching to user<M>
 */
#include "c_types.h"
#include "osapi.h"
#include "user_interface.h"
#include "upgrade.h"
#include "fota_checks.h"
#include "fota_client.h"

/* The ROM's UART receive (eagle.rom.addr.v6.ld provides it; no SDK header declares it): OK with a byte from the
 * RX FIFO, FAIL when it is empty. */
extern STATUS uart_rx_one_char(uint8 *pRxChar);

#ifndef SPI_FLASH_SIZE_MAP
#define SPI_FLASH_SIZE_MAP 4
#endif

/* Partition table NONOS SDK 3.x wants from user_pre_init(): OTA slots of the FOTA demo's writable size
 * (58 sectors for 256+256 KB, 122 for 512+512 KB, 250 for 1024+1024 KB), RF calibration at N-5,
 * esp_init_data_default (PHY data) at N-4, the system parameters in the last three sectors. */
#if SPI_FLASH_SIZE_MAP == 0
#define OTA_SIZE 0x3A000
#define OTA_2_ADDR 0x41000
#define FLASH_END 0x80000
#elif SPI_FLASH_SIZE_MAP == 2
#define OTA_SIZE 0x7A000
#define OTA_2_ADDR 0x81000
#define FLASH_END 0x100000
#elif SPI_FLASH_SIZE_MAP == 3
#define OTA_SIZE 0x7A000
#define OTA_2_ADDR 0x81000
#define FLASH_END 0x200000
#elif SPI_FLASH_SIZE_MAP == 4
#define OTA_SIZE 0x7A000
#define OTA_2_ADDR 0x81000
#define FLASH_END 0x400000
#elif SPI_FLASH_SIZE_MAP == 5
#define OTA_SIZE 0xFA000
#define OTA_2_ADDR 0x101000
#define FLASH_END 0x200000
#elif SPI_FLASH_SIZE_MAP == 6
#define OTA_SIZE 0xFA000
#define OTA_2_ADDR 0x101000
#define FLASH_END 0x400000
#else
#error "SPI_FLASH_SIZE_MAP must be one of the boot_v1.x FOTA maps: 0, 2, 3, 4, 5, 6"
#endif

static const partition_item_t partition_table[] = {
    { SYSTEM_PARTITION_BOOTLOADER, 0x0, 0x1000 },
    { SYSTEM_PARTITION_OTA_1, 0x1000, OTA_SIZE },
    { SYSTEM_PARTITION_OTA_2, OTA_2_ADDR, OTA_SIZE },
    { SYSTEM_PARTITION_RF_CAL, FLASH_END - 0x5000, 0x1000 },
    { SYSTEM_PARTITION_PHY_DATA, FLASH_END - 0x4000, 0x1000 },
    { SYSTEM_PARTITION_SYSTEM_PARAMETER, FLASH_END - 0x3000, 0x3000 },
};

void ICACHE_FLASH_ATTR user_pre_init(void)
{
    if (!system_partition_table_regist(partition_table, sizeof(partition_table) / sizeof(partition_table[0]),
                                       SPI_FLASH_SIZE_MAP)) {
        os_printf("system_partition_table_regist fail\r\n");
        while (1) {
        }
    }
}

/* -- console -------------------------------------------------------------------------------------------------- */
#define LINE_MAX 96
static char line[LINE_MAX];
static uint32 line_len;
static bool line_overflow;
static os_timer_t uart_timer;

static void ICACHE_FLASH_ATTR run_command(char *cmd)
{
    char *argv[4];
    int argc = 0;
    char *p = cmd;
    while (*p && argc < 4) {
        while (*p == ' ' || *p == '\t') *p++ = 0;
        if (!*p) break;
        argv[argc++] = p;
        while (*p && *p != ' ' && *p != '\t') p++;
    }
    if (argc == 0) return;
    if (argc == 3 && os_strcmp(argv[0], "fota") == 0) {
        int port = 0;
        const char *q = argv[2];
        while (*q >= '0' && *q <= '9' && port <= 65535) port = port * 10 + (*q++ - '0');
        if (*q) port = -1;
        fota_start(argv[1], port);
        return;
    }
    os_printf("fota: usage: fota <ipv4 address> <port>\r\n");
}

/* NONOS apps without a UART driver read the RX FIFO themselves: every 10 ms is well within the 128-byte
 * FIFO at 115200 baud (about 115 bytes per 10 ms). */
static void ICACHE_FLASH_ATTR uart_poll_cb(void *arg)
{
    uint8 c;
    (void)arg;
    while (uart_rx_one_char(&c) == OK) {
        if (c == '\r' || c == '\n') {
            if (!line_overflow) {
                line[line_len] = 0;
                run_command(line);
            }
            line_len = 0;
            line_overflow = false;
        } else if (line_len + 1 < LINE_MAX) {
            line[line_len++] = (char)c;
        } else {
            line_overflow = true;
        }
    }
}

static void ICACHE_FLASH_ATTR init_done_cb(void)
{
    if (fota_repair_boot_params()) return;  /* restarts on the running bin */
    os_printf("fota: ready, version %s, running user%d\r\n", fota_running_version(),
              system_upgrade_userbin_check() == USER_BIN1 ? 1 : 2);
    os_timer_disarm(&uart_timer);
    os_timer_setfn(&uart_timer, uart_poll_cb, NULL);
    os_timer_arm(&uart_timer, 10, 1);
}

void ICACHE_FLASH_ATTR user_init(void)
{
    struct station_config config;
    uart_div_modify(0, 80000000 / FOTA_CONSOLE_BAUD);
    os_memset(&config, 0, sizeof(config));
    os_memcpy(config.ssid, WIFI_SSID, os_strlen(WIFI_SSID));
    os_memcpy(config.password, WIFI_PASS, os_strlen(WIFI_PASS));
    wifi_set_opmode(STATION_MODE);
    wifi_station_set_config(&config);
    wifi_station_set_auto_connect(1);
    system_init_done_cb(init_done_cb);
}
