/* The virtual ESP8266's SPI flash calls and the NONOS SDK's upgrade API, with the FOTA demo's semantics
 * (ESP8266 RTOS sample code 06Cloud/FOTA_Demo upgrade_lib.c, which re-implements the SDK's libupgrade):
 *
 * - The upgrade flag lives in RAM only (IDLE 0, START 1, FINISH 2; system_upgrade_flag_set ignores 3 and up).
 * - system_upgrade_init() targets the bin that is not running: start sector 1 for user1, 65/129/257 for user2
 *   by the flash map; system_upgrade_deinit() forgets it.
 * - system_upgrade(data, len): NULL or 0 -> true. len > 4096 means erase: the sectors from the erase pointer
 *   (the start sector at first) up to the one holding target + written + len; past the slot -> false.
 *   Otherwise the bytes are written in 4-byte multiples, the 0..3 left over carried to the next call;
 *   a write past the slot's writable sectors fails (the SDK's "spi_flash_write exceed").
 *   Note: the NONOS header gives len as uint16, so one erase call covers at most 64 KB ahead of the write
 *   position; a client erases ahead of its writes (the RTOS SDK's u32 len erases a whole bin at once).
 * - system_upgrade_reboot(): nothing unless the flag is FINISH; toggles the parameters' usr_bin (not the running
 *   bin: see the function), prints "reboot to use1"/"reboot to use2" (the new usr_bin), sets boot_status and
 *   enhance_boot, does the protected save and restarts.
 *
 * The protected save (boot parameters in the flash map's last three sectors): the flag sector's byte 0 says which
 * data copy is current (non-zero: copy 1 at N-2, zero: copy 0 at N-3). A save copies the current sector with the
 * new boot bytes into the other copy (erase, write, read back), then rewrites the flag sector with the flag
 * toggled. Every step is a flash operation of the board's flash model, so a power cut can fall between any two:
 * before the flag is rewritten the old copy stays current.
 */
#include <string.h>

#include "sdk_board.h"
#include "c_types.h"
#include "osapi.h"
#include "mem.h"
#include "spi_flash.h"
#include "upgrade.h"
#include "user_interface.h"

#define SEC SPI_FLASH_SEC_SIZE

/* by map code: flash the map describes, user2's address, writable sectors per slot */
static const sdk_map_t MAPS[] = {
    [FLASH_SIZE_4M_MAP_256_256] = { 0x80000, 0x41000, 58 },
    [FLASH_SIZE_2M] = { 0, 0, 0 },
    [FLASH_SIZE_8M_MAP_512_512] = { 0x100000, 0x81000, 122 },
    [FLASH_SIZE_16M_MAP_512_512] = { 0x200000, 0x81000, 122 },
    [FLASH_SIZE_32M_MAP_512_512] = { 0x400000, 0x81000, 122 },
    [FLASH_SIZE_16M_MAP_1024_1024] = { 0x200000, 0x101000, 250 },
    [FLASH_SIZE_32M_MAP_1024_1024] = { 0x400000, 0x101000, 250 },
};
static const sdk_map_t NO_MAP = { 0, 0, 0 };

const sdk_map_t *sdk_map(void)
{
    if (sdk_boot.map < 0 || (size_t)sdk_boot.map >= sizeof(MAPS) / sizeof(MAPS[0])) return &NO_MAP;
    return &MAPS[sdk_boot.map];
}

/* ------------------------------------------------------------------------------------------------
 * SPI flash
 */
static SpiFlashOpResult flash_status(int32_t st) { return st == 0 ? SPI_FLASH_RESULT_OK : SPI_FLASH_RESULT_ERR; }

SpiFlashOpResult spi_flash_erase_sector(uint16 sec)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "flash_erase");
    hil_put_int(&m, sec);
    int32_t st = hil_call(&m, &r);
    hil_reply_free(&r);
    return flash_status(st);
}

SpiFlashOpResult spi_flash_write(uint32 des_addr, uint32 *src_addr, uint32 size)
{
    /* the SDK writes whole words from a word-aligned buffer */
    if (!src_addr || (des_addr | size) & 3 || ((uintptr_t)src_addr & 3)) return SPI_FLASH_RESULT_ERR;
    if (!size) return SPI_FLASH_RESULT_OK;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "flash_write");
    hil_put_int(&m, des_addr);
    hil_put_bytes(&m, src_addr, size);
    int32_t st = hil_call(&m, &r);
    hil_reply_free(&r);
    return flash_status(st);
}

SpiFlashOpResult spi_flash_read(uint32 src_addr, uint32 *des_addr, uint32 size)
{
    if (!des_addr || (src_addr | size) & 3 || ((uintptr_t)des_addr & 3)) return SPI_FLASH_RESULT_ERR;
    if (!size) return SPI_FLASH_RESULT_OK;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "flash_read");
    hil_put_int(&m, src_addr);
    hil_put_int(&m, size);
    int32_t st = hil_call(&m, &r);
    size_t n = 0;
    const uint8_t *data = hil_bytes(&r, 0, &n);
    if (st == 0 && data && n == size) memcpy(des_addr, data, size);
    else st = 1;
    hil_reply_free(&r);
    return flash_status(st);
}

uint32 spi_flash_get_id(void) { return 0x1640EF; /* Winbond W25Q32 */ }

/* ------------------------------------------------------------------------------------------------
 * Upgrade
 */
static uint8 upgrade_flag = UPGRADE_FLAG_IDLE;
static uint16 fw_bin_sec;        /* start sector of the target; 0 before init / after deinit */
static uint16 fw_bin_sec_num;    /* writable sectors */
static uint16 fw_bin_sec_erase;  /* next sector an erase call erases */
static uint32 fw_bin_written;    /* bytes written from the start sector */
static uint8 carry[4];
static uint8 carry_len;

uint8 system_upgrade_userbin_check(void) { return sdk_boot.running_slot == 2 ? USER_BIN2 : USER_BIN1; }

uint8 system_upgrade_flag_check() { return upgrade_flag; }

void system_upgrade_flag_set(uint8 flag)
{
    if (flag <= UPGRADE_FLAG_FINISH) upgrade_flag = flag;
}

void system_upgrade_init()
{
    const sdk_map_t *map = sdk_map();
    fw_bin_sec = system_upgrade_userbin_check() == USER_BIN1 ? (uint16)(map->user2 / SEC) : 1;
    fw_bin_sec_num = (uint16)map->slot_sectors;
    fw_bin_sec_erase = fw_bin_sec;
    fw_bin_written = 0;
    carry_len = 0;
}

void system_upgrade_deinit()
{
    fw_bin_sec = 0;
    fw_bin_sec_num = 0;
    fw_bin_sec_erase = 0;
    fw_bin_written = 0;
    carry_len = 0;
}

bool system_upgrade(uint8 *data, uint16 len)
{
    if (data == NULL || len == 0) return true;
    if (!fw_bin_sec) return false;
    uint32 start = (uint32)fw_bin_sec * SEC;
    uint32 limit = start + (uint32)fw_bin_sec_num * SEC;
    if (len > SEC) {
        uint32 end = start + fw_bin_written + len;
        uint32 end_sec = (end + SEC - 1) / SEC;
        if (end > limit) return false;
        while (fw_bin_sec_erase < end_sec) {
            if (spi_flash_erase_sector(fw_bin_sec_erase) != SPI_FLASH_RESULT_OK) return false;
            fw_bin_sec_erase++;
        }
        return true;
    }
    uint32 total = carry_len + (uint32)len;
    uint8 *buf = (uint8 *)os_malloc(total);
    if (!buf) return false;
    os_memcpy(buf, carry, carry_len);
    os_memcpy(buf + carry_len, data, len);
    uint32 whole = total & ~3u;
    bool ok = true;
    if (start + fw_bin_written + whole > limit) {
        ok = false;  /* spi_flash_write exceed */
    } else if (whole) {
        ok = spi_flash_write(start + fw_bin_written, (uint32 *)buf, whole) == SPI_FLASH_RESULT_OK;
    }
    if (ok) {
        fw_bin_written += whole;
        carry_len = (uint8)(total - whole);
        os_memcpy(carry, buf + whole, carry_len);
    }
    os_free(buf);
    return ok;
}

/* ------------------------------------------------------------------------------------------------
 * Boot parameters: the protected save
 */
static bool params_save(uint8 byte0_set, uint8 byte0_clear, uint8 byte1_set)
{
    const sdk_map_t *map = sdk_map();
    uint32 flag_addr = map->map_flash - SEC;
    uint32 copy_addr[2] = { map->map_flash - 3 * SEC, map->map_flash - 2 * SEC };
    uint32 *flag = (uint32 *)os_malloc(SEC);
    uint32 *data = (uint32 *)os_malloc(SEC);
    uint32 *check = (uint32 *)os_malloc(SEC);
    bool ok = false;
    if (!flag || !data || !check) goto out;
    if (spi_flash_read(flag_addr, flag, SEC) != SPI_FLASH_RESULT_OK) goto out;
    int current = ((uint8 *)flag)[0] ? 1 : 0;
    int other = 1 - current;
    if (spi_flash_read(copy_addr[current], data, SEC) != SPI_FLASH_RESULT_OK) goto out;
    uint8 *b = (uint8 *)data;
    b[0] = (uint8)((b[0] & ~byte0_clear) | byte0_set);
    b[1] = (uint8)(b[1] | byte1_set);
    if (spi_flash_erase_sector((uint16)(copy_addr[other] / SEC)) != SPI_FLASH_RESULT_OK) goto out;
    if (spi_flash_write(copy_addr[other], data, SEC) != SPI_FLASH_RESULT_OK) goto out;
    if (spi_flash_read(copy_addr[other], check, SEC) != SPI_FLASH_RESULT_OK) goto out;
    if (os_memcmp(data, check, SEC) != 0) goto out;
    ((uint8 *)flag)[0] = (uint8)other;
    if (spi_flash_erase_sector((uint16)(flag_addr / SEC)) != SPI_FLASH_RESULT_OK) goto out;
    if (spi_flash_write(flag_addr, flag, SEC) != SPI_FLASH_RESULT_OK) goto out;
    ok = true;
out:
    os_free(flag);
    os_free(data);
    os_free(check);
    return ok;
}

/* usr_bin (bits 1..0 of byte 0) of the current parameter copy: what the SDK read into RAM at start-up. */
static int params_usr_bin(void)
{
    const sdk_map_t *map = sdk_map();
    uint8 head[4] __attribute__((aligned(4)));
    if (spi_flash_read(map->map_flash - SEC, (uint32 *)head, 4) != SPI_FLASH_RESULT_OK) return -1;
    int current = head[0] ? 1 : 0;
    if (spi_flash_read(map->map_flash - (uint32)(3 - current) * SEC, (uint32 *)head, 4) != SPI_FLASH_RESULT_OK)
        return -1;
    return head[0] & 0x03;
}

void system_upgrade_reboot(void)
{
    if (upgrade_flag != UPGRADE_FLAG_FINISH) return;
    /* The SDK toggles the usr_bin of its parameters (libmain, as esp-open-rtos re-implements it; the FOTA demo's
     * upgrade_lib does the same): usr_bin 1 becomes 0 (user1), anything else 1 (user2). It does not look at the
     * bin that runs: after boot_v1.x has fallen back from a bin, the parameters still name that bin (its boot
     * status cleared), and the toggle names the running one. */
    uint8 target = params_usr_bin() == 1 ? USER_BIN1 : USER_BIN2;
    os_printf("reboot to use%d\n", target + 1);
    /* byte 0: usr_bin (bits 1..0) = target, boot_status (bit 2) = 1; byte 1: enhance_boot (bit 7) = 1 */
    params_save((uint8)(target | 0x04), 0x03, 0x80);
    system_restart();
}
