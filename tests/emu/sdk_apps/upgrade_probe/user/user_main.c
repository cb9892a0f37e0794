/* Probe of the virtual ESP8266's NONOS SDK: the upgrade API's semantics (flag, erase calls, the 4-byte carry,
 * the slot bound), the heap figure, system_upgrade_reboot without FINISH. Prints "probe: ..." lines. */
#include "c_types.h"
#include "osapi.h"
#include "mem.h"
#include "spi_flash.h"
#include "upgrade.h"
#include "user_interface.h"

#define USER2 0x81000
#define SLOT (122 * 4096)

static uint32 buf[1024];

static void ICACHE_FLASH_ATTR fill(uint32 addr, uint32 word)
{
    uint32 i;
    for (i = 0; i < 1024; i++) buf[i] = word;
    spi_flash_write(addr, buf, 4096);
}

static uint32 ICACHE_FLASH_ATTR word_at(uint32 addr)
{
    uint32 w = 0;
    spi_flash_read(addr, &w, 4);
    return w;
}

void ICACHE_FLASH_ATTR user_pre_init(void)
{
    static const partition_item_t table[] = {
        { SYSTEM_PARTITION_BOOTLOADER, 0x0, 0x1000 },
        { SYSTEM_PARTITION_OTA_1, 0x1000, SLOT },
        { SYSTEM_PARTITION_OTA_2, USER2, SLOT },
        { SYSTEM_PARTITION_RF_CAL, 0x3fb000, 0x1000 },
        { SYSTEM_PARTITION_PHY_DATA, 0x3fc000, 0x1000 },
        { SYSTEM_PARTITION_SYSTEM_PARAMETER, 0x3fd000, 0x3000 },
    };
    system_partition_table_regist(table, sizeof(table) / sizeof(table[0]), SPI_FLASH_SIZE_MAP);
}

static void ICACHE_FLASH_ATTR probe(void)
{
    uint8 a, b, c;
    uint32 i, ok, heap0, heap1;
    void *p, *q;
    uint8 text[8];

    a = system_upgrade_flag_check();
    system_upgrade_flag_set(3);
    b = system_upgrade_flag_check();
    system_upgrade_flag_set(UPGRADE_FLAG_START);
    system_upgrade_flag_set(7);
    c = system_upgrade_flag_check();
    os_printf("probe: flag %d %d %d\r\n", a, b, c);

    fill(USER2, 0);
    fill(USER2 + 0x2000, 0);
    os_printf("probe: before init %d\r\n", system_upgrade((uint8 *)buf, 8)); /* no target yet */
    system_upgrade_init();
    os_printf("probe: null %d %d\r\n", system_upgrade(NULL, 8), system_upgrade((uint8 *)buf, 0));
    ok = system_upgrade((uint8 *)buf, 8192); /* erases 0x81000 and 0x82000 */
    os_printf("probe: erase %d %08x %08x %08x\r\n", ok, word_at(USER2), word_at(USER2 + 0x1000), word_at(USER2 + 0x2000));

    os_memcpy(text, "ABCDEFGH", 8);
    a = system_upgrade(text, 7);      /* "ABCD" written, "EFG" carried */
    b = system_upgrade(text + 7, 1);  /* "EFGH" */
    c = system_upgrade(text, 3);      /* carried */
    os_printf("probe: carry %d %d %d %08x %08x %08x\r\n", a, b, c, word_at(USER2), word_at(USER2 + 4),
              word_at(USER2 + 8));

    system_upgrade_deinit();
    system_upgrade_init();
    for (i = 0; i < 1024; i++) buf[i] = 0xFFFFFFFF;
    for (i = 0; i < SLOT / 4096; i++) {
        if (!system_upgrade((uint8 *)buf, 4096)) break;
    }
    os_printf("probe: bound %u %d %d\r\n", i, system_upgrade((uint8 *)buf, 4), system_upgrade((uint8 *)buf, 4097));
    system_upgrade_deinit();

    heap0 = system_get_free_heap_size();
    p = os_malloc(1000);
    heap1 = system_get_free_heap_size();
    q = os_malloc(100000);
    os_printf("probe: heap %u %u %d\r\n", heap0, heap0 - heap1, q == NULL);
    os_free(p);
    os_printf("probe: heapback %d\r\n", system_get_free_heap_size() == heap0);

    system_upgrade_flag_set(UPGRADE_FLAG_START);
    system_upgrade_reboot(); /* not FINISH: nothing happens */
    os_printf("probe: still running, map %d, user%d\r\n", system_get_flash_size_map(),
              system_upgrade_userbin_check() + 1);
}

void ICACHE_FLASH_ATTR user_init(void)
{
    system_init_done_cb(probe);
}
