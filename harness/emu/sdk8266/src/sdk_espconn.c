/* The virtual ESP8266's espconn: TCP client connections on the board's network (its Wi-Fi station and
 * host sockets behind it), with the callbacks run from the event loop as the SDK runs them.
 *
 * espconn_connect() starts the connection and returns; the connect callback (or the reconnect callback with
 * ESPCONN_RST for a refused connection, ESPCONN_TIMEOUT when nothing answers in 10 s) comes later.
 * Data arrives in the receive callback in segments of at most one TCP MSS (1460 bytes), however the peer
 * wrote it; a peer that closes gives the disconnect callback, a connection that breaks (Wi-Fi lost, reset)
 * the reconnect callback. espconn_send() hands the data over and the sent callback follows;
 * espconn_disconnect() closes and the disconnect callback follows. As on a chip, espconn_disconnect() must not
 * be called from inside one of the connection's callbacks (post it).
 */
#include <string.h>

#include "sdk_board.h"
#include "c_types.h"
#include "osapi.h"
#include "mem.h"
#include "espconn.h"

#define MAX_CONN 5
#define TCP_MSS 1460

/* events of the board's net_poll */
enum { EV_NONE = 0, EV_CONNECTED = 1, EV_DATA = 2, EV_CLOSED = 3, EV_ERROR = 4 };

typedef struct {
    struct espconn *conn;
    int64_t handle;     /* the board's socket handle; 0 when free */
    int connected;
} conn_slot_t;

static conn_slot_t slots[MAX_CONN];
static int in_callback;

static conn_slot_t *slot_of(struct espconn *conn)
{
    for (int i = 0; i < MAX_CONN; i++) {
        if (slots[i].handle && slots[i].conn == conn) return &slots[i];
    }
    return NULL;
}

static conn_slot_t *slot_by_handle(int64_t handle)
{
    for (int i = 0; i < MAX_CONN; i++) {
        if (slots[i].handle == handle) return &slots[i];
    }
    return NULL;
}

int sdk_net_busy(void)
{
    for (int i = 0; i < MAX_CONN; i++) {
        if (slots[i].handle) return 1;
    }
    return 0;
}

static void board_close(int64_t handle)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "tcp_close");
    hil_put_int(&m, handle);
    hil_call(&m, &r);
    hil_reply_free(&r);
}

static void slot_free(conn_slot_t *s)
{
    board_close(s->handle);
    s->handle = 0;
    s->connected = 0;
    if (s->conn) s->conn->state = ESPCONN_CLOSE;
}

sint8 espconn_regist_connectcb(struct espconn *espconn, espconn_connect_callback connect_cb)
{
    if (!espconn || !espconn->proto.tcp) return ESPCONN_ARG;
    espconn->proto.tcp->connect_callback = connect_cb;
    return ESPCONN_OK;
}

sint8 espconn_regist_reconcb(struct espconn *espconn, espconn_reconnect_callback recon_cb)
{
    if (!espconn || !espconn->proto.tcp) return ESPCONN_ARG;
    espconn->proto.tcp->reconnect_callback = recon_cb;
    return ESPCONN_OK;
}

sint8 espconn_regist_disconcb(struct espconn *espconn, espconn_connect_callback discon_cb)
{
    if (!espconn || !espconn->proto.tcp) return ESPCONN_ARG;
    espconn->proto.tcp->disconnect_callback = discon_cb;
    return ESPCONN_OK;
}

sint8 espconn_regist_recvcb(struct espconn *espconn, espconn_recv_callback recv_cb)
{
    if (!espconn) return ESPCONN_ARG;
    espconn->recv_callback = recv_cb;
    return ESPCONN_OK;
}

sint8 espconn_regist_sentcb(struct espconn *espconn, espconn_sent_callback sent_cb)
{
    if (!espconn) return ESPCONN_ARG;
    espconn->sent_callback = sent_cb;
    return ESPCONN_OK;
}

static uint32 next_port = 49152;

uint32 espconn_port(void)
{
    uint32 p = next_port++;
    if (next_port > 65535) next_port = 49152;
    return p;
}

sint8 espconn_connect(struct espconn *espconn)
{
    if (!espconn || espconn->type != ESPCONN_TCP || !espconn->proto.tcp) return ESPCONN_ARG;
    if (slot_of(espconn)) return ESPCONN_ISCONN;
    conn_slot_t *free_slot = NULL;
    for (int i = 0; i < MAX_CONN && !free_slot; i++) {
        if (!slots[i].handle) free_slot = &slots[i];
    }
    if (!free_slot) return ESPCONN_MAXNUM;
    const uint8 *ip = espconn->proto.tcp->remote_ip;
    char host[16];
    os_sprintf(host, "%d.%d.%d.%d", ip[0], ip[1], ip[2], ip[3]);
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "tcp_connect");
    hil_put_str(&m, host);
    hil_put_int(&m, espconn->proto.tcp->remote_port);
    int32_t st = hil_call(&m, &r);
    int64_t handle = hil_int(&r, 0, 0);
    hil_reply_free(&r);
    if (st != 0 || handle <= 0) return st ? (sint8)st : ESPCONN_RTE;  /* no route: the station has no IP */
    free_slot->conn = espconn;
    free_slot->handle = handle;
    free_slot->connected = 0;
    espconn->state = ESPCONN_WAIT;
    if (!espconn->proto.tcp->local_port) espconn->proto.tcp->local_port = (int)espconn_port();
    return ESPCONN_OK;
}

static void deliver_sent(void *arg)
{
    struct espconn *conn = arg;
    if (slot_of(conn) && conn->sent_callback) {
        in_callback++;
        conn->sent_callback(conn);
        in_callback--;
    }
}

sint8 espconn_send(struct espconn *espconn, uint8 *psent, uint16 length)
{
    conn_slot_t *s = espconn ? slot_of(espconn) : NULL;
    if (!s || !psent || !length) return ESPCONN_ARG;
    if (!s->connected) return ESPCONN_CONN;
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "tcp_send");
    hil_put_int(&m, s->handle);
    hil_put_bytes(&m, psent, length);
    int32_t st = hil_call(&m, &r);
    hil_reply_free(&r);
    if (st != 0) return ESPCONN_CONN;
    espconn->state = ESPCONN_WRITE;
    sdk_post(deliver_sent, espconn);
    return ESPCONN_OK;
}

sint8 espconn_sent(struct espconn *espconn, uint8 *psent, uint16 length)
{
    return espconn_send(espconn, psent, length);
}

static void deliver_disconnect(void *arg)
{
    struct espconn *conn = arg;
    if (conn->proto.tcp && conn->proto.tcp->disconnect_callback) {
        in_callback++;
        conn->proto.tcp->disconnect_callback(conn);
        in_callback--;
    }
}

sint8 espconn_disconnect(struct espconn *espconn)
{
    conn_slot_t *s = espconn ? slot_of(espconn) : NULL;
    if (!s) return ESPCONN_ARG;
    if (in_callback) {
        /* what the SDK documents as forbidden: on a chip it may crash; here it is refused loudly */
        os_printf("espconn_disconnect called from an espconn callback\n");
        return ESPCONN_INPROGRESS;
    }
    slot_free(s);
    sdk_post(deliver_disconnect, espconn);
    return ESPCONN_OK;
}

sint8 espconn_abort(struct espconn *espconn)
{
    conn_slot_t *s = espconn ? slot_of(espconn) : NULL;
    if (!s) return ESPCONN_ARG;
    slot_free(s);
    return ESPCONN_OK;
}

sint8 espconn_delete(struct espconn *espconn)
{
    conn_slot_t *s = espconn ? slot_of(espconn) : NULL;
    if (s) return ESPCONN_INPROGRESS;
    return ESPCONN_OK;
}

void sdk_net_poll(uint32_t timeout_ms)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, "net_poll");
    hil_put_int(&m, timeout_ms);
    hil_put_int(&m, TCP_MSS);
    hil_call(&m, &r);
    int kind = (int)hil_int(&r, 0, EV_NONE);
    int64_t handle = hil_int(&r, 1, 0);
    int err = (int)hil_int(&r, 2, 0);
    size_t n = 0;
    const uint8_t *data = hil_bytes(&r, 3, &n);
    conn_slot_t *s = kind == EV_NONE ? NULL : slot_by_handle(handle);
    if (!s) {
        hil_reply_free(&r);
        return;
    }
    struct espconn *conn = s->conn;
    in_callback++;
    switch (kind) {
    case EV_CONNECTED:
        s->connected = 1;
        conn->state = ESPCONN_CONNECT;
        if (conn->proto.tcp->connect_callback) conn->proto.tcp->connect_callback(conn);
        break;
    case EV_DATA: {
        /* the callback gets the SDK's own buffer: copy out of the reply first */
        char *buf = (char *)os_malloc(n ? n : 1);
        if (buf) {
            memcpy(buf, data, n);
            hil_reply_free(&r);
            conn->state = ESPCONN_READ;
            if (conn->recv_callback) conn->recv_callback(conn, buf, (unsigned short)n);
            os_free(buf);
        }
        break;
    }
    case EV_CLOSED:
        slot_free(s);
        if (conn->proto.tcp->disconnect_callback) conn->proto.tcp->disconnect_callback(conn);
        break;
    default:
        slot_free(s);
        if (conn->proto.tcp->reconnect_callback) conn->proto.tcp->reconnect_callback(conn, (sint8)err);
        break;
    }
    in_callback--;
    hil_reply_free(&r);
}
