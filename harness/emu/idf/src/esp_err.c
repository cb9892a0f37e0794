/* esp_err_to_name and ESP_ERROR_CHECK's report (ESP-IDF v5.x wording). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_err.h"
#include "esp_ota_ops.h"
#include "esp_http_client.h"
#include "esp_https_ota.h"
#include "esp_efuse.h"
#include "nvs.h"
#include "esp_netif.h"
#include "spi_flash_mmap.h"
#include "hil_board.h"

#define ERR_TBL_IT(err)    {err, #err}

typedef struct {
    esp_err_t code;
    const char *msg;
} esp_err_msg_t;

static const esp_err_msg_t esp_err_msg_table[] = {
    ERR_TBL_IT(ESP_FAIL),
    ERR_TBL_IT(ESP_OK),
    ERR_TBL_IT(ESP_ERR_NO_MEM),
    ERR_TBL_IT(ESP_ERR_INVALID_ARG),
    ERR_TBL_IT(ESP_ERR_INVALID_STATE),
    ERR_TBL_IT(ESP_ERR_INVALID_SIZE),
    ERR_TBL_IT(ESP_ERR_NOT_FOUND),
    ERR_TBL_IT(ESP_ERR_NOT_SUPPORTED),
    ERR_TBL_IT(ESP_ERR_TIMEOUT),
    ERR_TBL_IT(ESP_ERR_INVALID_RESPONSE),
    ERR_TBL_IT(ESP_ERR_INVALID_CRC),
    ERR_TBL_IT(ESP_ERR_INVALID_VERSION),
    ERR_TBL_IT(ESP_ERR_INVALID_MAC),
    ERR_TBL_IT(ESP_ERR_NOT_FINISHED),
    ERR_TBL_IT(ESP_ERR_NOT_ALLOWED),
    ERR_TBL_IT(ESP_ERR_NVS_BASE),
    ERR_TBL_IT(ESP_ERR_NVS_NOT_INITIALIZED),
    ERR_TBL_IT(ESP_ERR_NVS_NOT_FOUND),
    ERR_TBL_IT(ESP_ERR_NVS_TYPE_MISMATCH),
    ERR_TBL_IT(ESP_ERR_NVS_READ_ONLY),
    ERR_TBL_IT(ESP_ERR_NVS_NOT_ENOUGH_SPACE),
    ERR_TBL_IT(ESP_ERR_NVS_INVALID_NAME),
    ERR_TBL_IT(ESP_ERR_NVS_INVALID_HANDLE),
    ERR_TBL_IT(ESP_ERR_NVS_REMOVE_FAILED),
    ERR_TBL_IT(ESP_ERR_NVS_KEY_TOO_LONG),
    ERR_TBL_IT(ESP_ERR_NVS_PAGE_FULL),
    ERR_TBL_IT(ESP_ERR_NVS_INVALID_STATE),
    ERR_TBL_IT(ESP_ERR_NVS_INVALID_LENGTH),
    ERR_TBL_IT(ESP_ERR_NVS_NO_FREE_PAGES),
    ERR_TBL_IT(ESP_ERR_NVS_VALUE_TOO_LONG),
    ERR_TBL_IT(ESP_ERR_NVS_PART_NOT_FOUND),
    ERR_TBL_IT(ESP_ERR_NVS_NEW_VERSION_FOUND),
    ERR_TBL_IT(ESP_ERR_NVS_XTS_ENCR_FAILED),
    ERR_TBL_IT(ESP_ERR_NVS_XTS_DECR_FAILED),
    ERR_TBL_IT(ESP_ERR_NVS_XTS_CFG_FAILED),
    ERR_TBL_IT(ESP_ERR_NVS_XTS_CFG_NOT_FOUND),
    ERR_TBL_IT(ESP_ERR_NVS_ENCR_NOT_SUPPORTED),
    ERR_TBL_IT(ESP_ERR_NVS_KEYS_NOT_INITIALIZED),
    ERR_TBL_IT(ESP_ERR_NVS_CORRUPT_KEY_PART),
    ERR_TBL_IT(ESP_ERR_NVS_CONTENT_DIFFERS),
    ERR_TBL_IT(ESP_ERR_NVS_WRONG_ENCRYPTION),
    ERR_TBL_IT(ESP_ERR_OTA_BASE),
    ERR_TBL_IT(ESP_ERR_OTA_PARTITION_CONFLICT),
    ERR_TBL_IT(ESP_ERR_OTA_SELECT_INFO_INVALID),
    ERR_TBL_IT(ESP_ERR_OTA_VALIDATE_FAILED),
    ERR_TBL_IT(ESP_ERR_OTA_SMALL_SEC_VER),
    ERR_TBL_IT(ESP_ERR_OTA_ROLLBACK_FAILED),
    ERR_TBL_IT(ESP_ERR_OTA_ROLLBACK_INVALID_STATE),
    ERR_TBL_IT(ESP_ERR_EFUSE),
    ERR_TBL_IT(ESP_OK_EFUSE_CNT),
    ERR_TBL_IT(ESP_ERR_EFUSE_CNT_IS_FULL),
    ERR_TBL_IT(ESP_ERR_EFUSE_REPEATED_PROG),
    ERR_TBL_IT(ESP_ERR_CODING),
    ERR_TBL_IT(ESP_ERR_NOT_ENOUGH_UNUSED_KEY_BLOCKS),
    ERR_TBL_IT(ESP_ERR_DAMAGED_READING),
    ERR_TBL_IT(ESP_ERR_IMAGE_BASE),
    ERR_TBL_IT(ESP_ERR_IMAGE_FLASH_FAIL),
    ERR_TBL_IT(ESP_ERR_IMAGE_INVALID),
    ERR_TBL_IT(ESP_ERR_WIFI_BASE),
    ERR_TBL_IT(ESP_ERR_ESP_NETIF_BASE),
    ERR_TBL_IT(ESP_ERR_ESP_NETIF_INVALID_PARAMS),
    ERR_TBL_IT(ESP_ERR_ESP_NETIF_IF_NOT_READY),
    ERR_TBL_IT(ESP_ERR_ESP_NETIF_DHCPC_START_FAILED),
    ERR_TBL_IT(ESP_ERR_ESP_NETIF_NO_MEM),
    ERR_TBL_IT(ESP_ERR_FLASH_BASE),
    ERR_TBL_IT(ESP_ERR_FLASH_OP_FAIL),
    ERR_TBL_IT(ESP_ERR_FLASH_OP_TIMEOUT),
    ERR_TBL_IT(ESP_ERR_HTTP_BASE),
    ERR_TBL_IT(ESP_ERR_HTTP_MAX_REDIRECT),
    ERR_TBL_IT(ESP_ERR_HTTP_CONNECT),
    ERR_TBL_IT(ESP_ERR_HTTP_WRITE_DATA),
    ERR_TBL_IT(ESP_ERR_HTTP_FETCH_HEADER),
    ERR_TBL_IT(ESP_ERR_HTTP_INVALID_TRANSPORT),
    ERR_TBL_IT(ESP_ERR_HTTP_CONNECTING),
    ERR_TBL_IT(ESP_ERR_HTTP_EAGAIN),
    ERR_TBL_IT(ESP_ERR_HTTP_CONNECTION_CLOSED),
    ERR_TBL_IT(ESP_ERR_HTTPS_OTA_BASE),
    ERR_TBL_IT(ESP_ERR_HTTPS_OTA_IN_PROGRESS),
};

static const char esp_unknown_msg[] = "UNKNOWN ERROR";

const char *esp_err_to_name(esp_err_t code)
{
    for (size_t i = 0; i < sizeof(esp_err_msg_table) / sizeof(esp_err_msg_table[0]); ++i) {
        if (esp_err_msg_table[i].code == code) return esp_err_msg_table[i].msg;
    }
    return esp_unknown_msg;
}

const char *esp_err_to_name_r(esp_err_t code, char *buf, size_t buflen)
{
    for (size_t i = 0; i < sizeof(esp_err_msg_table) / sizeof(esp_err_msg_table[0]); ++i) {
        if (esp_err_msg_table[i].code == code) {
            snprintf(buf, buflen, "%s", esp_err_msg_table[i].msg);
            return buf;
        }
    }
    if (strerror_r(code, buf, buflen) == 0) return buf;
    snprintf(buf, buflen, "%s 0x%x(%d)", esp_unknown_msg, code, code);
    return buf;
}

static void check_failed_print(const char *msg, esp_err_t rc, const char *file, int line, const char *function,
                               const char *expression, void *addr)
{
    char text[512];
    snprintf(text, sizeof(text), "%s failed: esp_err_t 0x%x (%s) at 0x%08x\r\nfile: \"%s\" line %d\r\nfunc: %s\r\nexpression: %s\r\n",
             msg, rc, esp_err_to_name(rc), 0x400d0000u | ((unsigned)(uintptr_t)addr & 0xfffc), file, line, function,
             expression);
    fflush(stdout);
    hil_console_write(text, strlen(text));
}

void _esp_error_check_failed_without_abort(esp_err_t rc, const char *file, int line, const char *function, const char *expression)
{
    check_failed_print("ESP_ERROR_CHECK_WITHOUT_ABORT", rc, file, line, function, expression, __builtin_return_address(0));
}

void _esp_error_check_failed(esp_err_t rc, const char *file, int line, const char *function, const char *expression)
{
    check_failed_print("ESP_ERROR_CHECK", rc, file, line, function, expression, __builtin_return_address(0));
    abort();
}
