/* FOTA client over the seed-003 TCP protocol, for the ESP8266 NONOS SDK 3.x with boot_v1.x (user1/user2).
 *
 * Protocol: connect to <host>:<port>, send one byte: the slot wanted (the one not running, 1 or 2); the server
 * answers a 4-byte little-endian length, then the bin, and closes.
 *
 * What this client checks, in order, before switching:
 *   - the length word: not 0, not negative, not larger than the OTA partition (too-large), at least a header;
 *   - the head of the bin (its first 96 bytes, held back until they are all there, so nothing is written
 *     before they pass): a boot-mode-2 EA header (bad-image) linked for the target slot and a version record
 *     linked for it too (wrong-slot), a version newer than the running one (same-version, older-version);
 *   - every write through the upgrade API (write-failed), never more bytes than announced (overrun);
 *   - the whole bin arrived (truncated), then the SDK's CRC over the bytes read back from flash (bad-crc).
 * Then FINISH + system_upgrade_reboot() (boot_v1.x starts the new bin), or on any refusal IDLE +
 * system_upgrade_deinit() + system_restart() (the running bin starts again).
 *
 * Mutations for testing the test harness (each disables one check; off unless defined to 1):
 *   OTA_CLIENT_MUTATION_NO_CRC_CHECK, OTA_CLIENT_MUTATION_NO_SLOT_CHECK, OTA_CLIENT_MUTATION_NO_VERSION_CHECK,
 *   OTA_CLIENT_MUTATION_NO_LENGTH_CHECK, OTA_CLIENT_MUTATION_SWITCH_ON_SHORT,
 *   OTA_CLIENT_MUTATION_NO_PARAM_REPAIR (boot parameters left naming a bin boot_v1.x fell back from).
 */
#include "c_types.h"
#include "osapi.h"
#include "mem.h"
#include "espconn.h"
#include "upgrade.h"
#include "spi_flash.h"
#include "user_interface.h"
#include "fota_checks.h"
#include "fota_client.h"

#ifndef OTA_CLIENT_MUTATION_NO_CRC_CHECK
#define OTA_CLIENT_MUTATION_NO_CRC_CHECK 0
#endif
#ifndef OTA_CLIENT_MUTATION_NO_SLOT_CHECK
#define OTA_CLIENT_MUTATION_NO_SLOT_CHECK 0
#endif
#ifndef OTA_CLIENT_MUTATION_NO_VERSION_CHECK
#define OTA_CLIENT_MUTATION_NO_VERSION_CHECK 0
#endif
#ifndef OTA_CLIENT_MUTATION_NO_LENGTH_CHECK
#define OTA_CLIENT_MUTATION_NO_LENGTH_CHECK 0
#endif
#ifndef OTA_CLIENT_MUTATION_SWITCH_ON_SHORT
#define OTA_CLIENT_MUTATION_SWITCH_ON_SHORT 0
#endif
#ifndef OTA_CLIENT_MUTATION_NO_PARAM_REPAIR
#define OTA_CLIENT_MUTATION_NO_PARAM_REPAIR 0
#endif

#define CONNECT_ATTEMPTS 5
#define RETRY_MS 1000
#define WIFI_WAIT_MS 10000
#define IDLE_TIMEOUT_MS 10000
#define PROGRESS_BYTES (4 * 1280)    /* a line after the first write, then every 4 of the server's packets */
#define ERASE_AHEAD 0xF000           /* bytes erased ahead of the write position per erase call */
#define SEC SPI_FLASH_SEC_SIZE

typedef enum { ST_IDLE, ST_WIFI, ST_CONNECTING, ST_LENGTH, ST_BODY, ST_DONE } fota_state_t;

static struct {
    fota_state_t state;
    struct espconn conn;
    esp_tcp tcp;
    int target;                 /* 1 or 2 */
    uint32 target_addr;
    uint32 slot_size;
    int attempts;
    sint8 last_err;
    uint32 waited_ms;
    uint8 len_word[4];
    uint32 len_got;
    uint32 length;              /* announced */
    uint32 received;            /* bin bytes received */
    uint32 written;             /* bin bytes handed to system_upgrade */
    uint32 erased;              /* bytes of the slot erased so far */
    uint32 next_progress;
    uint8 head[FOTA_HEAD_SIZE];
    bool head_checked;
    bool refused;
} F;

static os_timer_t retry_timer, finish_timer, idle_timer;

static void connect_now(void);

/* -- ending ------------------------------------------------------------------------------------------------ */
static void ICACHE_FLASH_ATTR finish_cb(void *arg)
{
    (void)arg;
    os_timer_disarm(&idle_timer);
    if (F.state != ST_IDLE && F.state != ST_WIFI) espconn_disconnect(&F.conn);
    if (system_upgrade_flag_check() == UPGRADE_FLAG_FINISH) {
        system_upgrade_deinit();
        system_upgrade_reboot();
    } else {
        system_upgrade_flag_set(UPGRADE_FLAG_IDLE);
        system_upgrade_deinit();
        system_restart();
    }
}

/* Ends the update from a callback: the connection is closed and the chip restarts from a timer, as the SDK
 * forbids espconn_disconnect() inside the connection's own callbacks. */
static void ICACHE_FLASH_ATTR finish_soon(void)
{
    os_timer_disarm(&finish_timer);
    os_timer_setfn(&finish_timer, finish_cb, NULL);
    os_timer_arm(&finish_timer, 10, 0);
}

static void ICACHE_FLASH_ATTR refuse(const char *reason, const char *detail)
{
    if (F.refused) return;
    F.refused = true;
    os_printf("fota: refused: %s: %s\r\n", reason, detail);
    system_upgrade_flag_set(UPGRADE_FLAG_IDLE);
    if (F.state == ST_IDLE || F.state == ST_WIFI) {
        F.state = ST_DONE;
        system_upgrade_deinit();
        system_restart();
        return;
    }
    F.state = ST_DONE;
    finish_soon();
}

/* -- the CRC over what was written ---------------------------------------------------------------------- */
/* CRC register over `count` bytes of the target slot; false when the flash cannot be read. */
static bool ICACHE_FLASH_ATTR crc_of_flash(uint32 count, uint32 *crc_out)
{
    uint32 *buf = (uint32 *)os_malloc(1024);
    uint32 crc = 0xFFFFFFFFu, done = 0;
    if (!buf) return false;
    while (done < count) {
        uint32 n = count - done > 1024 ? 1024 : count - done;
        if (spi_flash_read(F.target_addr + done, buf, (n + 3) & ~3u) != SPI_FLASH_RESULT_OK) {
            os_free(buf);
            return false;
        }
        crc = fota_crc32_update(crc, (const uint8 *)buf, n);
        done += n;
    }
    os_free(buf);
    *crc_out = crc;
    return true;
}

static bool ICACHE_FLASH_ATTR stored_crc(uint32 length, uint32 *word)
{
    uint32 buf[2];
    uint32 at = length - 4, aligned = at & ~3u, skip = at - aligned;
    uint8 *b = (uint8 *)buf;
    if (spi_flash_read(F.target_addr + aligned, buf, 8) != SPI_FLASH_RESULT_OK) return false;
    *word = (uint32)b[skip] | (uint32)b[skip + 1] << 8 | (uint32)b[skip + 2] << 16 | (uint32)b[skip + 3] << 24;
    return true;
}

static void ICACHE_FLASH_ATTR check_and_switch(uint32 have)
{
    char detail[96];
    uint32 crc = 0, want = 0;
    bool crc_ok = false;
    os_timer_disarm(&idle_timer);
    if (have >= 8 && crc_of_flash(have - 4, &crc) && stored_crc(have, &want)) {
        crc_ok = fota_crc_word(crc) == want;
    }
    if (!crc_ok && !OTA_CLIENT_MUTATION_NO_CRC_CHECK && !(OTA_CLIENT_MUTATION_SWITCH_ON_SHORT && have < F.length)) {
        os_sprintf(detail, "computed 0x%08x, the bin says 0x%08x", fota_crc_word(crc), want);
        refuse("bad-crc", detail);
        return;
    }
    os_printf("fota: crc ok, switching to user%d\r\n", F.target);
    system_upgrade_flag_set(UPGRADE_FLAG_FINISH);
    F.state = ST_DONE;
    finish_soon();
}

/* -- writing --------------------------------------------------------------------------------------------- */
static bool ICACHE_FLASH_ATTR erase_ahead(uint32 upto)
{
    /* system_upgrade(len > 4096) erases from its erase pointer to the sector holding write position + len;
     * its write position is what it has written: whole words, the 0..3 bytes it carries not yet */
    if (upto > F.slot_size) upto = F.slot_size;
    while (F.erased < upto) {
        uint32 ahead = F.slot_size - (F.written & ~3u);
        if (ahead > ERASE_AHEAD) ahead = ERASE_AHEAD;
        if (ahead <= SEC) {
            /* the last sectors of the slot: one erase call may not reach past it */
            if (spi_flash_erase_sector((uint16)((F.target_addr + F.erased) / SEC)) != SPI_FLASH_RESULT_OK) return false;
            F.erased += SEC;
            continue;
        }
        if (!system_upgrade(F.head, (uint16)ahead)) return false;
        F.erased = ((F.written & ~3u) + ahead + SEC - 1) & ~(SEC - 1);
    }
    return true;
}

static bool ICACHE_FLASH_ATTR write_bytes(const uint8 *data, uint32 len)
{
    char detail[64];
    while (len) {
        uint32 n = len > 1460 ? 1460 : len;
        if (!erase_ahead(F.written + n + 4) || !system_upgrade((uint8 *)data, (uint16)n)) {
            os_sprintf(detail, "system_upgrade failed at byte %u", F.written);
            refuse("write-failed", detail);
            return false;
        }
        F.written += n;
        data += n;
        len -= n;
    }
    if (F.written >= F.next_progress || F.written == F.length) {
        os_printf("fota: written %u of %u bytes\r\n", F.written, F.length);
        while (F.next_progress <= F.written) F.next_progress += PROGRESS_BYTES;
    }
    return true;
}

static bool ICACHE_FLASH_ATTR check_head(void)
{
    char detail[96];
    const fota_app_record_t *rec = fota_record_of(F.head);
    int hslot = fota_header_slot(F.head);
    if (!OTA_CLIENT_MUTATION_NO_SLOT_CHECK) {
        if (hslot != F.target) {
            if (hslot == 0) {
                os_sprintf(detail, "not a boot_v1.x user bin (starts 0x%02x 0x%02x)", F.head[0], F.head[1]);
                refuse("bad-image", detail);
                return false;
            }
            os_sprintf(detail, "the bin's header is linked for user%d, not user%d", hslot, F.target);
            refuse("wrong-slot", detail);
            return false;
        }
        if (!rec) {
            refuse("wrong-slot", "the bin has no version record: cannot tell which slot it is linked for");
            return false;
        }
        if (rec->linked_slot != F.target) {
            os_sprintf(detail, "the bin's record is linked for user%d, not user%d", rec->linked_slot, F.target);
            refuse("wrong-slot", detail);
            return false;
        }
    }
    if (!OTA_CLIENT_MUTATION_NO_VERSION_CHECK && rec) {
        char version[33];
        int c;
        os_memcpy(version, rec->version, 32);
        version[32] = 0;
        c = fota_version_cmp(version, fota_running_version());
        if (c <= 0) {
            os_sprintf(detail, "the bin is %s, this is %s", version, fota_running_version());
            refuse(c == 0 ? "same-version" : "older-version", detail);
            return false;
        }
    }
    F.head_checked = true;
    return true;
}

static void ICACHE_FLASH_ATTR take_body(const uint8 *data, uint32 len)
{
    char detail[80];
    if (F.received + len > F.length && !OTA_CLIENT_MUTATION_NO_LENGTH_CHECK) {
        os_sprintf(detail, "more than the %u bytes announced", F.length);
        refuse("overrun", detail);
        return;
    }
    if (!F.head_checked) {
        uint32 n = FOTA_HEAD_SIZE - F.received;
        if (n > len) n = len;
        os_memcpy(F.head + F.received, data, n);
        F.received += n;
        data += n;
        len -= n;
        if (F.received < FOTA_HEAD_SIZE) return;
        if (!check_head() || !write_bytes(F.head, FOTA_HEAD_SIZE)) return;
    }
    F.received += len;
    if (len && !write_bytes(data, len)) return;
    if (F.received >= F.length && F.state == ST_BODY) {
        check_and_switch(F.length);
    }
}

/* -- connection callbacks ------------------------------------------------------------------------------------ */
static void ICACHE_FLASH_ATTR idle_cb(void *arg)
{
    char detail[64];
    (void)arg;
    if (F.state != ST_LENGTH && F.state != ST_BODY) return;
    os_sprintf(detail, "no data for %d s after %u of %u bytes", IDLE_TIMEOUT_MS / 1000, F.received, F.length);
    refuse("truncated", detail);
}

static void ICACHE_FLASH_ATTR kick_idle(void)
{
    os_timer_disarm(&idle_timer);
    os_timer_setfn(&idle_timer, idle_cb, NULL);
    os_timer_arm(&idle_timer, IDLE_TIMEOUT_MS, 0);
}

static void ICACHE_FLASH_ATTR on_recv(void *arg, char *pdata, unsigned short len)
{
    const uint8 *p = (const uint8 *)pdata;
    char detail[64];
    (void)arg;
    if (F.state != ST_LENGTH && F.state != ST_BODY) return;
    kick_idle();
    while (F.state == ST_LENGTH && len) {
        F.len_word[F.len_got++] = *p++;
        len--;
        if (F.len_got == 4) {
            uint32 length = (uint32)F.len_word[0] | (uint32)F.len_word[1] << 8 | (uint32)F.len_word[2] << 16 |
                            (uint32)F.len_word[3] << 24;
            if (length & 0x80000000u) {
                os_sprintf(detail, "negative length %d", (int)length);
                refuse("bad-length", detail);
                return;
            }
            if (length < FOTA_HEAD_SIZE + 4) {
                os_sprintf(detail, "%u bytes is not a user bin", length);
                refuse("bad-length", detail);
                return;
            }
            if (length > F.slot_size && !OTA_CLIENT_MUTATION_NO_LENGTH_CHECK) {
                os_sprintf(detail, "%u bytes, the slot holds %u", length, F.slot_size);
                refuse("too-large", detail);
                return;
            }
            F.length = length;
            F.state = ST_BODY;
            os_printf("fota: image of %u bytes for user%d\r\n", length, F.target);
        }
    }
    if (F.state == ST_BODY && len) take_body(p, len);
}

static void ICACHE_FLASH_ATTR stream_ended(const char *how)
{
    char detail[96];
    if (F.state == ST_LENGTH) {
        os_sprintf(detail, "%s before the length word", how);
        refuse("truncated", detail);
    } else if (F.state == ST_BODY) {
        if (OTA_CLIENT_MUTATION_SWITCH_ON_SHORT && F.head_checked) {
            check_and_switch(F.written);
            return;
        }
        os_sprintf(detail, "%s after %u of %u bytes", how, F.received, F.length);
        refuse("truncated", detail);
    }
}

static void ICACHE_FLASH_ATTR on_disconnect(void *arg)
{
    (void)arg;
    stream_ended("the server closed the connection");
}

static void ICACHE_FLASH_ATTR retry_cb(void *arg)
{
    (void)arg;
    connect_now();
}

static void ICACHE_FLASH_ATTR on_reconnect(void *arg, sint8 err)
{
    char detail[64];
    (void)arg;
    if (F.state == ST_CONNECTING) {
        F.last_err = err;
        if (F.attempts >= CONNECT_ATTEMPTS) {
            os_sprintf(detail, "%d attempts, last error %d", F.attempts, err);
            refuse("connect-failed", detail);
            return;
        }
        os_timer_disarm(&retry_timer);
        os_timer_setfn(&retry_timer, retry_cb, NULL);
        os_timer_arm(&retry_timer, RETRY_MS, 0);
        return;
    }
    os_sprintf(detail, "the connection broke (error %d)", err);
    stream_ended(detail);
}

static void ICACHE_FLASH_ATTR on_connect(void *arg)
{
    uint8 want = (uint8)F.target;
    (void)arg;
    F.state = ST_LENGTH;
    kick_idle();
    if (espconn_send(&F.conn, &want, 1) != ESPCONN_OK) {
        stream_ended("sending the slot byte failed");
    }
}

static void ICACHE_FLASH_ATTR connect_now(void)
{
    char detail[64];
    sint8 err;
    F.attempts++;
    F.state = ST_CONNECTING;
    F.conn.type = ESPCONN_TCP;
    F.conn.state = ESPCONN_NONE;
    F.conn.proto.tcp = &F.tcp;
    F.tcp.local_port = (int)espconn_port();
    espconn_regist_connectcb(&F.conn, on_connect);
    espconn_regist_reconcb(&F.conn, on_reconnect);
    espconn_regist_disconcb(&F.conn, on_disconnect);
    espconn_regist_recvcb(&F.conn, on_recv);
    err = espconn_connect(&F.conn);
    if (err != ESPCONN_OK) {
        if (F.attempts >= CONNECT_ATTEMPTS) {
            F.state = ST_WIFI;  /* nothing to close */
            os_sprintf(detail, "%d attempts, espconn_connect returned %d", F.attempts, err);
            refuse("connect-failed", detail);
            return;
        }
        os_timer_disarm(&retry_timer);
        os_timer_setfn(&retry_timer, retry_cb, NULL);
        os_timer_arm(&retry_timer, RETRY_MS, 0);
    }
}

static void ICACHE_FLASH_ATTR wifi_wait_cb(void *arg)
{
    (void)arg;
    if (wifi_station_get_connect_status() == STATION_GOT_IP) {
        connect_now();
        return;
    }
    F.waited_ms += 100;
    if (F.waited_ms >= WIFI_WAIT_MS) {
        refuse("connect-failed", "the station has no IP address (Wi-Fi not connected)");
        return;
    }
    os_timer_disarm(&retry_timer);
    os_timer_setfn(&retry_timer, wifi_wait_cb, NULL);
    os_timer_arm(&retry_timer, 100, 0);
}

bool ICACHE_FLASH_ATTR fota_start(const char *host, int port)
{
    uint32 ip = ipaddr_addr(host);
    partition_item_t item;
    int running = system_upgrade_userbin_check() == USER_BIN1 ? 1 : 2;
    if (F.state != ST_IDLE) {
        os_printf("fota: busy\r\n");
        return false;
    }
    if (ip == IPADDR_NONE || port <= 0 || port > 65535) {
        os_printf("fota: usage: fota <ipv4 address> <port>\r\n");
        return false;
    }
    os_memset(&F, 0, sizeof(F));
    F.target = running == 1 ? 2 : 1;
    if (!system_partition_get_item(F.target == 1 ? SYSTEM_PARTITION_OTA_1 : SYSTEM_PARTITION_OTA_2, &item)) {
        os_printf("fota: no OTA partition for user%d\r\n", F.target);
        return false;
    }
    F.target_addr = item.addr;
    F.slot_size = item.size;
    F.next_progress = 0;
    os_memcpy(F.tcp.remote_ip, &ip, 4);
    F.tcp.remote_port = port;
    os_printf("fota: connecting to %s:%d, asking for user%d\r\n", host, port, F.target);
    system_upgrade_flag_set(UPGRADE_FLAG_START);
    system_upgrade_init();
    F.state = ST_WIFI;
    wifi_wait_cb(NULL);
    return true;
}

/* -- boot parameters after a fallback ---------------------------------------------------------------------------- */
/* When boot_v1.x could not boot the bin its parameters named, it runs the other one and clears the boot status, but
 * the parameters go on naming the failed bin. system_upgrade_reboot() toggles the usr_bin of the parameters, not the
 * running bin: the next update would be written to the other slot and then switch back to the running one, and
 * the new version would never run. Setting the parameters back to the running bin first (the SDK's own switch:
 * FINISH, system_upgrade_reboot(), one more restart) makes the next switch land on the bin it wrote. */
bool ICACHE_FLASH_ATTR fota_repair_boot_params(void)
{
    partition_item_t item;
    uint32 word;
    uint8 running = system_upgrade_userbin_check();
    uint8 usr_bin;
    if (OTA_CLIENT_MUTATION_NO_PARAM_REPAIR) return false;
    if (!system_partition_get_item(SYSTEM_PARTITION_SYSTEM_PARAMETER, &item) || item.size < 3 * SPI_FLASH_SEC_SIZE)
        return false;
    /* the flag sector (the last one) names the current copy: byte 0 non-zero -> the second */
    if (spi_flash_read(item.addr + 2 * SPI_FLASH_SEC_SIZE, &word, 4) != SPI_FLASH_RESULT_OK) return false;
    if (spi_flash_read(item.addr + ((word & 0xFF) ? SPI_FLASH_SEC_SIZE : 0), &word, 4) != SPI_FLASH_RESULT_OK)
        return false;
    usr_bin = (uint8)(word & 0x03);
    if (usr_bin > USER_BIN2 || usr_bin == running) return false;
    os_printf("fota: boot_v1.x fell back to user%d, the boot parameters still name user%d: naming user%d again\r\n",
              running + 1, usr_bin + 1, running + 1);
    system_upgrade_flag_set(UPGRADE_FLAG_FINISH);
    system_upgrade_reboot();
    return true;
}
