/* esp-tls / tcp_transport: TCP and TLS connections on the board's emulated network.
 *
 * The socket and the TLS session live in the chip process (Python's ssl, verifying against the PEM the
 * app passes, like mbedTLS with esp_tls_cfg_t.cacert_buf); what the app sees is ESP-IDF's transport
 * contract: esp_transport_read returns bytes, 0 (ERR_TCP_TRANSPORT_CONNECTION_TIMEOUT) on timeout,
 * -1 (ERR_TCP_TRANSPORT_CONNECTION_CLOSED_BY_FIN) at the end of the stream and -2 on errors, and
 * esp-tls logs its failures with ESP-IDF's words.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include "hil_board.h"
#include "hil_transport.h"

/* A TLS session takes this much of the chip's heap (mbedTLS context plus 16 KiB in/out record buffers). */
#define TLS_SESSION_HEAP (38 * 1024)

static const char *TAG_TLS = "esp-tls";
static const char *TAG_MBEDTLS = "esp-tls-mbedtls";
static const char *TAG_TRANSPORT = "transport_base";

/* board replies to net_connect */
enum { NET_OK = 0, NET_DNS = 1, NET_CONNECT = 2, NET_TLS = 3, NET_TIMEOUT = 4, NET_NO_ROUTE = 5, NET_CA_PARSE = 6 };

int hil_transport_connect(hil_transport_t *t, bool tls, const char *host, int port, int timeout_ms,
                          const char *cert_pem, size_t cert_len, bool skip_cn, const char *common_name)
{
    memset(t, 0, sizeof(*t));
    t->handle = -1;
    t->tls = tls;
    if (tls) {
        bool verify = cert_pem != NULL;
        if (!verify) {
#if !CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY
            ESP_LOGE(TAG_MBEDTLS, "No server verification option set in esp_tls_cfg_t structure. Check esp_tls API reference");
            ESP_LOGE(TAG_MBEDTLS, "Failed to set client configurations, returned [0x%04X] (%s)", 0x8017, "ESP_ERR_MBEDTLS_SSL_SETUP_FAILED");
            ESP_LOGE(TAG_MBEDTLS, "create_ssl_handle failed");
            ESP_LOGE(TAG_TLS, "Failed to open new connection");
            ESP_LOGE(TAG_TRANSPORT, "Failed to open a new connection");
            return -1;
#endif
        }
        if (!hil_heap_charge(TLS_SESSION_HEAP)) {
            ESP_LOGE(TAG_MBEDTLS, "mbedtls_ssl_setup returned -0x%04X", 0x7F00);
            ESP_LOGE(TAG_TLS, "Failed to open new connection");
            ESP_LOGE(TAG_TRANSPORT, "Failed to open a new connection");
            return -1;
        }
        t->charged = true;
    }
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "net_connect");
    hil_put_str(&m, host);
    hil_put_int(&m, port);
    hil_put_int(&m, timeout_ms);
    hil_put_int(&m, tls);
    if (cert_pem) {
        hil_put_bytes(&m, cert_pem, cert_len ? cert_len : strlen(cert_pem));
    } else {
        hil_put_bytes(&m, "", 0);
    }
    hil_put_int(&m, tls && cert_pem != NULL);
    hil_put_int(&m, skip_cn);
    hil_put_str(&m, common_name ? common_name : "");
    int status = hil_call(&m, &r);
    int64_t value = hil_int(&r, 0, -1);
    int64_t flags = hil_int(&r, 1, 0);
    hil_reply_free(&r);
    switch (status) {
    case NET_OK:
        t->handle = (int)value;
        t->fd = 54 + (int)(value % 10);
        return 0;
    case NET_DNS:
        ESP_LOGE(TAG_TLS, "couldn't get hostname for :%s: getaddrinfo() returns %d, addrinfo=0x0", host, (int)value);
        break;
    case NET_CONNECT:
        ESP_LOGE(TAG_TLS, "[sock=%d] delayed connect error: %s", 54, strerror((int)value));
        break;
    case NET_TIMEOUT:
        ESP_LOGE(TAG_TLS, "[sock=%d] select() timeout", 54);
        break;
    case NET_NO_ROUTE:
        ESP_LOGE(TAG_TLS, "[sock=%d] connect() error: %s", 54, "Host is unreachable");
        break;
    case NET_TLS:
        ESP_LOGE(TAG_MBEDTLS, "mbedtls_ssl_handshake returned -0x%04X", (unsigned)(-value));
        if (cert_pem != NULL) {
            if (flags) {
                ESP_LOGI(TAG_MBEDTLS, "Failed to verify peer certificate!");
            } else {
                ESP_LOGI(TAG_MBEDTLS, "Certificate verified.");
            }
        }
        break;
    case NET_CA_PARSE:
        /* the CA the app passed holds no certificate mbedTLS can parse */
        ESP_LOGE(TAG_MBEDTLS, "mbedtls_x509_crt_parse returned -0x%04X", (unsigned)(-value));
        ESP_LOGE(TAG_MBEDTLS, "Failed to set client configurations, returned [0x%04X] (%s)", 0x8015,
                 "ESP_ERR_MBEDTLS_X509_CRT_PARSE_FAILED");
        ESP_LOGE(TAG_MBEDTLS, "create_ssl_handle failed");
        break;
    default:
        break;
    }
    if (tls) ESP_LOGE(TAG_TLS, "Failed to open new connection");
    if (tls) {
        ESP_LOGE(TAG_TRANSPORT, "Failed to open a new connection");
    } else {
        ESP_LOGE(TAG_TRANSPORT, "Failed to open a new connection: %d", 0x8006);
    }
    if (t->charged) {
        hil_heap_charge(-TLS_SESSION_HEAP);
        t->charged = false;
    }
    return -1;
}

int hil_transport_write(hil_transport_t *t, const char *buf, int len, int timeout_ms)
{
    if (t->handle < 0) return -1;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "net_send");
    hil_put_int(&m, t->handle);
    hil_put_int(&m, timeout_ms);
    hil_put_bytes(&m, buf, (size_t)len);
    int status = hil_call(&m, &r);
    int64_t sent = hil_int(&r, 0, -1);
    hil_reply_free(&r);
    if (status != 0) {
        errno = (int)sent > 0 ? (int)sent : ECONNRESET;
        ESP_LOGE(t->tls ? TAG_MBEDTLS : "transport_base", "%s error, errno=%s",
                 t->tls ? "write" : "tcp_write", strerror(errno));
        return -1;
    }
    return (int)sent;
}

int hil_transport_read(hil_transport_t *t, char *buf, int len, int timeout_ms)
{
    if (t->handle < 0) return ERR_TCP_TRANSPORT_CONNECTION_FAILED;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "net_recv");
    hil_put_int(&m, t->handle);
    hil_put_int(&m, len);
    hil_put_int(&m, timeout_ms);
    int status = hil_call(&m, &r);
    int result;
    if (status == 0) {
        size_t n;
        const uint8_t *p = hil_bytes(&r, 0, &n);
        if (n == 0) {
            t->errno_last = ENOTCONN;
            result = ERR_TCP_TRANSPORT_CONNECTION_CLOSED_BY_FIN;
        } else {
            memcpy(buf, p, n);
            result = (int)n;
        }
    } else if (status == NET_TIMEOUT) {
        result = ERR_TCP_TRANSPORT_CONNECTION_TIMEOUT;
    } else {
        int e = (int)hil_int(&r, 0, ECONNRESET);
        errno = e;
        t->errno_last = e;
        ESP_LOGE(t->tls ? TAG_MBEDTLS : "transport_base", "%s error, errno=%s", t->tls ? "esp_tls_conn_read" : "tcp_read",
                 strerror(e));
        result = ERR_TCP_TRANSPORT_CONNECTION_FAILED;
    }
    hil_reply_free(&r);
    return result;
}

void hil_transport_close(hil_transport_t *t)
{
    if (t->handle >= 0) {
        hil_msg_t m;
        hil_reply_t r;
        hil_msg_init(&m, "net_close");
        hil_put_int(&m, t->handle);
        hil_call(&m, &r);
        hil_reply_free(&r);
        t->handle = -1;
    }
    if (t->charged) {
        hil_heap_charge(-TLS_SESSION_HEAP);
        t->charged = false;
    }
}
