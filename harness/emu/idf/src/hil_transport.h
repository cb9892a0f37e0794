/* Private: the transport under esp_http_client (esp-tls / tcp_transport on the board's network). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum {
    ERR_TCP_TRANSPORT_NO_MEM = -3,
    ERR_TCP_TRANSPORT_CONNECTION_FAILED = -2,
    ERR_TCP_TRANSPORT_CONNECTION_CLOSED_BY_FIN = -1,
    ERR_TCP_TRANSPORT_CONNECTION_TIMEOUT = 0,
};

typedef struct {
    int handle;       /* the board's connection, -1 when closed */
    int fd;           /* the socket number lwIP would have given */
    bool tls;
    bool charged;     /* the TLS session's heap is taken */
    int errno_last;
} hil_transport_t;

int hil_transport_connect(hil_transport_t *t, bool tls, const char *host, int port, int timeout_ms,
                          const char *cert_pem, size_t cert_len, bool skip_cn, const char *common_name);
int hil_transport_write(hil_transport_t *t, const char *buf, int len, int timeout_ms);
int hil_transport_read(hil_transport_t *t, char *buf, int len, int timeout_ms);
void hil_transport_close(hil_transport_t *t);
