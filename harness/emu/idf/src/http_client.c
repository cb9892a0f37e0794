/* esp_http_client for the virtual ESP32: the state machine, buffers and return values of ESP-IDF v5.x's
 * components/esp_http_client/esp_http_client.c (HTTP/1.1, Content-Length, chunked and read-to-close
 * bodies, redirects, keep-alive), on the transport of transport.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_event.h"
#include "esp_http_client.h"
#include "hil_board.h"
#include "hil_transport.h"

ESP_EVENT_DEFINE_BASE(ESP_HTTP_CLIENT_EVENT);

static const char *TAG = "HTTP_CLIENT";

#define DEFAULT_HTTP_PORT (80)
#define DEFAULT_HTTPS_PORT (443)
static const char *DEFAULT_HTTP_USER_AGENT = "ESP32 HTTP Client/1.0";
static const char *DEFAULT_HTTP_PROTOCOL = "HTTP/1.1";
static const char *DEFAULT_HTTP_PATH = "/";
static const int DEFAULT_MAX_REDIRECT = 10;
static const int DEFAULT_MAX_AUTH_RETRIES = 10;
static const int DEFAULT_TIMEOUT_MS = 5000;
#define MAX_HEADER_BYTES (8 * 1024)

static const char *HTTP_METHOD_MAPPING[] = {
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "OPTIONS",
    "COPY", "MOVE", "LOCK", "UNLOCK", "PROPFIND", "PROPPATCH", "MKCOL", "REPORT",
};

typedef enum {
    HTTP_STATE_UNINIT = 0,
    HTTP_STATE_INIT,
    HTTP_STATE_CONNECTED,
    HTTP_STATE_REQ_COMPLETE_HEADER,
    HTTP_STATE_REQ_COMPLETE_DATA,
    HTTP_STATE_RES_COMPLETE_HEADER,
    HTTP_STATE_RES_ON_DATA_START,
    HTTP_STATE_RES_COMPLETE_DATA,
    HTTP_STATE_CLOSE
} esp_http_state_t;

typedef struct header {
    char *key, *value;
    struct header *next;
} header_t;

/* body framing as http_parser decodes it */
enum { BODY_LENGTH, BODY_CHUNKED, BODY_EOF };
enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LF, CH_DONE };

struct esp_http_client {
    int redirect_counter;
    int max_redirection_count;
    int max_authorization_retries;
    int process_again;
    char *scheme, *host, *path, *query, *username, *password;
    int port;
    esp_http_client_method_t method;
    const char *cert_pem;
    size_t cert_len;
    bool skip_cn;
    char *common_name;
    header_t *req_headers;
    char *post_data;
    int post_len;
    char *location;
    esp_http_state_t state;
    http_event_handle_cb event_handler;
    void *user_data;
    esp_http_client_event_t event;
    int timeout_ms;
    int buffer_size_rx, buffer_size_tx;
    bool disable_auto_redirect;
    hil_transport_t transport;
    bool transport_open;
    char *rx;   /* response buffer (buffer_size_rx) */
    char *tx;   /* request buffer (buffer_size_tx) */
    /* response */
    int status_code;
    int64_t content_length;
    int64_t data_process;
    bool is_chunked;
    bool is_chunk_complete;
    int chunk_length;
    int body_mode;
    int64_t body_left;
    int ch_state;
    uint64_t ch_size;
    char *hdr;       /* response header bytes gathered so far */
    int hdr_len;
    char *cache;     /* body bytes decoded while fetching headers */
    int cache_len, cache_off;
    int last_errno;
};

/* -- small helpers ----------------------------------------------------------------------------------- */
static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static void assign(char **dst, const char *s, int n)
{
    free(*dst);
    *dst = s ? dup_n(s, n < 0 ? strlen(s) : (size_t)n) : NULL;
}

static esp_err_t dispatch(esp_http_client_handle_t c, esp_http_client_event_id_t id, void *data, int len)
{
    if (c->event_handler) {
        c->event.event_id = id;
        c->event.client = c;
        c->event.user_data = c->user_data;
        c->event.data = data;
        c->event.data_len = len;
        return c->event_handler(&c->event);
    }
    return ESP_OK;
}

static header_t *header_find(header_t *h, const char *key)
{
    for (; h; h = h->next) {
        if (strcasecmp(h->key, key) == 0) return h;
    }
    return NULL;
}

esp_err_t esp_http_client_set_header(esp_http_client_handle_t client, const char *key, const char *value)
{
    if (client == NULL || key == NULL || value == NULL) return ESP_ERR_INVALID_ARG;
    header_t *h = header_find(client->req_headers, key);
    if (h) {
        assign(&h->value, value, -1);
        return h->value ? ESP_OK : ESP_ERR_NO_MEM;
    }
    h = calloc(1, sizeof(*h));
    if (!h) return ESP_ERR_NO_MEM;
    h->key = strdup(key);
    h->value = strdup(value);
    if (!h->key || !h->value) {
        free(h->key);
        free(h->value);
        free(h);
        return ESP_ERR_NO_MEM;
    }
    header_t **tail = &client->req_headers;
    while (*tail) tail = &(*tail)->next;
    *tail = h;
    return ESP_OK;
}

esp_err_t esp_http_client_get_header(esp_http_client_handle_t client, const char *key, char **value)
{
    if (client == NULL || key == NULL || value == NULL) return ESP_ERR_INVALID_ARG;
    header_t *h = header_find(client->req_headers, key);
    *value = h ? h->value : NULL;
    return ESP_OK;
}

esp_err_t esp_http_client_delete_header(esp_http_client_handle_t client, const char *key)
{
    if (client == NULL || key == NULL) return ESP_ERR_INVALID_ARG;
    for (header_t **pp = &client->req_headers; *pp; pp = &(*pp)->next) {
        if (strcasecmp((*pp)->key, key) == 0) {
            header_t *h = *pp;
            *pp = h->next;
            free(h->key);
            free(h->value);
            free(h);
            return ESP_OK;
        }
    }
    return ESP_ERR_NOT_FOUND;
}

esp_err_t esp_http_client_delete_all_headers(esp_http_client_handle_t client)
{
    if (client == NULL) return ESP_ERR_INVALID_ARG;
    while (client->req_headers) {
        header_t *h = client->req_headers;
        client->req_headers = h->next;
        free(h->key);
        free(h->value);
        free(h);
    }
    return ESP_OK;
}

/* -- URL ---------------------------------------------------------------------------------------------- */
esp_err_t esp_http_client_set_url(esp_http_client_handle_t client, const char *url)
{
    if (client == NULL || url == NULL) {
        ESP_LOGE(TAG, "client or url must not NULL");
        return ESP_ERR_INVALID_ARG;
    }
    const char *p = url;
    const char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *user = NULL;
    int scheme_n = 0, host_n = 0, port_n = 0, path_n = 0, query_n = 0, user_n = 0;
    const char *colon = strstr(p, "://");
    if (colon) {
        scheme = p;
        scheme_n = (int)(colon - p);
        for (int i = 0; i < scheme_n; i++) {
            if (!isalpha((unsigned char)p[i])) {
                ESP_LOGE(TAG, "Error parse url %s", url);
                return ESP_ERR_INVALID_ARG;
            }
        }
        p = colon + 3;
        const char *end = p + strcspn(p, "/?#");
        const char *at = memchr(p, '@', (size_t)(end - p));
        if (at) {
            user = p;
            user_n = (int)(at - p);
            p = at + 1;
        }
        const char *pc = memchr(p, ':', (size_t)(end - p));
        host = p;
        host_n = (int)((pc ? pc : end) - p);
        if (pc) {
            port = pc + 1;
            port_n = (int)(end - port);
            for (int i = 0; i < port_n; i++) {
                if (!isdigit((unsigned char)port[i])) {
                    ESP_LOGE(TAG, "Error parse url %s", url);
                    return ESP_ERR_INVALID_ARG;
                }
            }
        }
        if (host_n == 0) {
            ESP_LOGE(TAG, "Error parse url %s", url);
            return ESP_ERR_INVALID_ARG;
        }
        p = end;
    } else if (*p != '/') {
        ESP_LOGE(TAG, "Error parse url %s", url);
        return ESP_ERR_INVALID_ARG;
    }
    if (*p == '/') {
        path = p;
        path_n = (int)strcspn(p, "?#");
        p += path_n;
    }
    if (*p == '?') {
        query = p + 1;
        query_n = (int)strcspn(query, "#");
    }

    char *old_host = client->host ? strdup(client->host) : NULL;
    int old_port = client->port;
    if (host_n) assign(&client->host, host, host_n);
    if (old_host && client->host && strcasecmp(old_host, client->host) != 0) {
        if (esp_http_client_set_header(client, "Host", client->host) != ESP_OK) {
            free(old_host);
            return ESP_ERR_NO_MEM;
        }
        client->cache_len = client->cache_off = 0;
        esp_http_client_close(client);
    }
    free(old_host);
    if (scheme_n) {
        assign(&client->scheme, scheme, scheme_n);
        if (strcasecmp(client->scheme, "http") == 0) {
            client->port = DEFAULT_HTTP_PORT;
        } else if (strcasecmp(client->scheme, "https") == 0) {
            client->port = DEFAULT_HTTPS_PORT;
        }
    }
    if (port_n) client->port = (int)strtol(port, NULL, 10);
    if (old_port != client->port) {
        client->cache_len = client->cache_off = 0;
        esp_http_client_close(client);
    }
    if (user_n) {
        char *info = dup_n(user, (size_t)user_n);
        if (!info) return ESP_ERR_NO_MEM;
        char *pw = strchr(info, ':');
        if (pw) {
            *pw++ = 0;
            assign(&client->password, pw, -1);
        }
        assign(&client->username, info, -1);
        free(info);
    }
    if (path_n) {
        assign(&client->path, path, path_n);
    } else {
        assign(&client->path, "/", -1);
    }
    if (query_n) {
        assign(&client->query, query, query_n);
    } else if (client->query) {
        free(client->query);
        client->query = NULL;
    }
    return ESP_OK;
}

/* -- init / cleanup ----------------------------------------------------------------------------------- */
static char *host_header(const char *host, int port)
{
    char *out = NULL;
    int n = (port != DEFAULT_HTTP_PORT && port != DEFAULT_HTTPS_PORT) ? asprintf(&out, "%s:%d", host, port)
                                                                       : asprintf(&out, "%s", host);
    return n < 0 ? NULL : out;
}

esp_http_client_handle_t esp_http_client_init(const esp_http_client_config_t *config)
{
    esp_http_client_handle_t client = calloc(1, sizeof(struct esp_http_client));
    if (!client) {
        ESP_LOGE(TAG, "Error allocate memory");
        return NULL;
    }
    client->transport.handle = -1;
    client->method = config->method;
    client->port = config->port;
    client->event_handler = config->event_handler;
    client->timeout_ms = config->timeout_ms;
    client->max_redirection_count = config->max_redirection_count;
    client->max_authorization_retries = config->max_authorization_retries;
    client->user_data = config->user_data;
    client->buffer_size_rx = config->buffer_size;
    client->buffer_size_tx = config->buffer_size_tx;
    client->disable_auto_redirect = config->disable_auto_redirect;
    client->cert_pem = config->cert_pem;
    client->cert_len = config->cert_len;
    client->skip_cn = config->skip_cert_common_name_check;
    if (config->common_name) client->common_name = strdup(config->common_name);
    if (config->buffer_size == 0) client->buffer_size_rx = DEFAULT_HTTP_BUF_SIZE;
    if (config->buffer_size_tx == 0) client->buffer_size_tx = DEFAULT_HTTP_BUF_SIZE;
    if (client->max_redirection_count == 0) client->max_redirection_count = DEFAULT_MAX_REDIRECT;
    if (client->max_authorization_retries == 0) {
        client->max_authorization_retries = DEFAULT_MAX_AUTH_RETRIES;
    } else if (client->max_authorization_retries == -1) {
        client->max_authorization_retries = 0;
    }
    client->path = strdup(config->path ? config->path : DEFAULT_HTTP_PATH);
    if (config->host) client->host = strdup(config->host);
    if (config->query) client->query = strdup(config->query);
    if (config->username) client->username = strdup(config->username);
    if (config->password) client->password = strdup(config->password);
    if (config->transport_type == HTTP_TRANSPORT_OVER_SSL) {
        client->scheme = strdup("https");
        if (client->port == 0) client->port = DEFAULT_HTTPS_PORT;
    } else {
        client->scheme = strdup("http");
        if (client->port == 0) client->port = DEFAULT_HTTP_PORT;
    }
    if (client->timeout_ms == 0) client->timeout_ms = DEFAULT_TIMEOUT_MS;
    client->tx = malloc((size_t)client->buffer_size_tx);
    client->rx = malloc((size_t)client->buffer_size_rx);
    if (!client->path || !client->scheme || !client->tx || !client->rx) {
        ESP_LOGE(TAG, "Allocation failed");
        goto error;
    }
    const char *user_agent = config->user_agent == NULL ? DEFAULT_HTTP_USER_AGENT : config->user_agent;
    if (config->host != NULL && config->path != NULL) {
        if (client->host == NULL) {
            ESP_LOGE(TAG, "invalid host");
            goto error;
        }
    } else if (config->url != NULL) {
        if (esp_http_client_set_url(client, config->url) != ESP_OK) {
            ESP_LOGE(TAG, "Failed to set URL");
            goto error;
        }
        if (client->host == NULL) {
            ESP_LOGE(TAG, "invalid host");
            goto error;
        }
    } else {
        ESP_LOGE(TAG, "config should have either URL or host & path");
        goto error;
    }
    char *hh = host_header(client->host, client->port);
    if (hh == NULL) {
        ESP_LOGE(TAG, "Failed to allocate memory for host header");
        goto error;
    }
    bool ok = esp_http_client_set_header(client, "User-Agent", user_agent) == ESP_OK &&
              esp_http_client_set_header(client, "Host", hh) == ESP_OK;
    free(hh);
    if (!ok) {
        ESP_LOGE(TAG, "Error while setting default configurations");
        goto error;
    }
    client->state = HTTP_STATE_INIT;
    return client;
error:
    esp_http_client_cleanup(client);
    return NULL;
}

esp_err_t esp_http_client_close(esp_http_client_handle_t client)
{
    if (client->state >= HTTP_STATE_INIT) {
        dispatch(client, HTTP_EVENT_DISCONNECTED, NULL, 0);
        client->state = HTTP_STATE_INIT;
        hil_transport_close(&client->transport);
    }
    return ESP_OK;
}

esp_err_t esp_http_client_cleanup(esp_http_client_handle_t client)
{
    if (client == NULL) return ESP_FAIL;
    esp_http_client_close(client);
    hil_transport_close(&client->transport);
    esp_http_client_delete_all_headers(client);
    free(client->scheme);
    free(client->host);
    free(client->path);
    free(client->query);
    free(client->username);
    free(client->password);
    free(client->common_name);
    free(client->location);
    free(client->rx);
    free(client->tx);
    hil_free(client->hdr);
    free(client->cache);
    free(client);
    return ESP_OK;
}

/* -- request ------------------------------------------------------------------------------------------ */
static void prepare(esp_http_client_handle_t client)
{
    client->process_again = 0;
    client->data_process = 0;
    free(client->location);
    client->location = NULL;
    client->status_code = -1;
    client->content_length = -1;
    client->is_chunked = false;
    client->is_chunk_complete = false;
    client->hdr_len = 0;
    client->cache_len = client->cache_off = 0;
}

static esp_err_t connect_transport(esp_http_client_handle_t client)
{
    if (client->state == HTTP_STATE_UNINIT) {
        ESP_LOGE(TAG, "Client has not been initialized");
        return ESP_ERR_INVALID_STATE;
    }
    prepare(client);
    if (client->state < HTTP_STATE_CONNECTED) {
        bool tls;
        if (strcasecmp(client->scheme, "https") == 0) {
            tls = true;
        } else if (strcasecmp(client->scheme, "http") == 0) {
            tls = false;
        } else {
            ESP_LOGE(TAG, "No transport found");
            return ESP_ERR_HTTP_INVALID_TRANSPORT;
        }
        if (hil_transport_connect(&client->transport, tls, client->host, client->port, client->timeout_ms,
                                  tls ? client->cert_pem : NULL, client->cert_len, client->skip_cn,
                                  client->common_name) < 0) {
            ESP_LOGE(TAG, "Connection failed, sock < 0");
            return ESP_ERR_HTTP_CONNECT;
        }
        client->state = HTTP_STATE_CONNECTED;
        dispatch(client, HTTP_EVENT_ON_CONNECTED, NULL, 0);
    }
    return ESP_OK;
}

static int transport_write_all(esp_http_client_handle_t client, const char *buf, int len)
{
    int done = 0;
    while (done < len) {
        int n = hil_transport_write(&client->transport, buf + done, len - done, client->timeout_ms);
        if (n <= 0) return n;
        done += n;
    }
    return done;
}

static esp_err_t request_send(esp_http_client_handle_t client, int write_len)
{
    if (write_len >= 0) {
        bool length_required = client->method != HTTP_METHOD_GET && client->method != HTTP_METHOD_HEAD &&
                               client->method != HTTP_METHOD_DELETE;
        if (write_len != 0 || length_required) {
            char v[16];
            snprintf(v, sizeof(v), "%d", write_len);
            esp_http_client_set_header(client, "Content-Length", v);
        }
    } else {
        esp_http_client_set_header(client, "Transfer-Encoding", "chunked");
    }
    int first = snprintf(client->tx, (size_t)client->buffer_size_tx, "%s %s", HTTP_METHOD_MAPPING[client->method],
                         client->path);
    if (first >= client->buffer_size_tx) {
        ESP_LOGE(TAG, "Out of buffer");
        return -1;
    }
    if (client->query) {
        first += snprintf(client->tx + first, (size_t)(client->buffer_size_tx - first), "?%s", client->query);
        if (first >= client->buffer_size_tx) {
            ESP_LOGE(TAG, "Out of buffer");
            return -1;
        }
    }
    first += snprintf(client->tx + first, (size_t)(client->buffer_size_tx - first), " %s\r\n", DEFAULT_HTTP_PROTOCOL);
    if (first >= client->buffer_size_tx) {
        ESP_LOGE(TAG, "Out of buffer");
        return -1;
    }
    int used = first;
    for (header_t *h = client->req_headers;; h = h->next) {
        char line[512];
        int n = h ? snprintf(line, sizeof(line), "%s: %s\r\n", h->key, h->value) : snprintf(line, sizeof(line), "\r\n");
        if (n >= (int)sizeof(line)) n = (int)sizeof(line) - 1;
        if (used + n > client->buffer_size_tx) {
            if (transport_write_all(client, client->tx, used) <= 0) {
                ESP_LOGE(TAG, "Error write request");
                esp_http_client_close(client);
                return ESP_ERR_HTTP_WRITE_DATA;
            }
            used = 0;
        }
        memcpy(client->tx + used, line, (size_t)n);
        used += n;
        if (!h) break;
    }
    if (used && transport_write_all(client, client->tx, used) <= 0) {
        ESP_LOGE(TAG, "Error write request");
        esp_http_client_close(client);
        return ESP_ERR_HTTP_WRITE_DATA;
    }
    client->state = HTTP_STATE_REQ_COMPLETE_HEADER;
    dispatch(client, HTTP_EVENT_HEADERS_SENT, NULL, 0);
    return ESP_OK;
}

esp_err_t esp_http_client_open(esp_http_client_handle_t client, int write_len)
{
    client->post_len = write_len;
    esp_err_t err;
    if ((err = connect_transport(client)) != ESP_OK) {
        dispatch(client, HTTP_EVENT_ERROR, NULL, 0);
        return err;
    }
    if ((err = request_send(client, write_len)) != ESP_OK) {
        dispatch(client, HTTP_EVENT_ERROR, NULL, 0);
        return err;
    }
    return ESP_OK;
}

int esp_http_client_write(esp_http_client_handle_t client, const char *buffer, int len)
{
    if (client->state < HTTP_STATE_REQ_COMPLETE_HEADER) return ESP_FAIL;
    int widx = 0;
    while (len > 0) {
        int wlen = hil_transport_write(&client->transport, buffer + widx, len, client->timeout_ms);
        if (wlen <= 0) return wlen;
        widx += wlen;
        len -= wlen;
    }
    return widx;
}

/* -- response ----------------------------------------------------------------------------------------- */
/* Decodes body bytes (framing as http_parser does); returns the decoded count written to out. */
static int body_feed(esp_http_client_handle_t c, const char *in, int n, char *out)
{
    int produced = 0;
    int i = 0;
    while (i < n && !c->is_chunk_complete) {
        if (c->body_mode == BODY_EOF) {
            memcpy(out + produced, in + i, (size_t)(n - i));
            produced += n - i;
            i = n;
        } else if (c->body_mode == BODY_LENGTH) {
            int take = (int)((int64_t)(n - i) < c->body_left ? (int64_t)(n - i) : c->body_left);
            memcpy(out + produced, in + i, (size_t)take);
            produced += take;
            i += take;
            c->body_left -= take;
            if (c->body_left == 0) c->is_chunk_complete = true;
        } else {
            char ch = in[i];
            switch (c->ch_state) {
            case CH_SIZE:
                if (isxdigit((unsigned char)ch)) {
                    c->ch_size = c->ch_size * 16 + (uint64_t)(isdigit((unsigned char)ch) ? ch - '0' : (tolower(ch) - 'a' + 10));
                } else if (ch == ';' || ch == ' ') {
                    c->ch_state = CH_EXT;
                } else if (ch == '\r') {
                    c->ch_state = CH_SIZE_LF;
                } else {
                    c->ch_state = CH_DONE;  /* malformed: the parser stops */
                    return produced;
                }
                i++;
                break;
            case CH_EXT:
                if (ch == '\r') c->ch_state = CH_SIZE_LF;
                i++;
                break;
            case CH_SIZE_LF:
                i++;
                c->chunk_length = (int)c->ch_size;
                if (c->ch_size == 0) {
                    c->ch_state = CH_TRAILER;
                } else {
                    c->body_left = (int64_t)c->ch_size;
                    c->ch_state = CH_DATA;
                }
                break;
            case CH_DATA: {
                int take = (int)((int64_t)(n - i) < c->body_left ? (int64_t)(n - i) : c->body_left);
                memcpy(out + produced, in + i, (size_t)take);
                produced += take;
                i += take;
                c->body_left -= take;
                if (c->body_left == 0) c->ch_state = CH_DATA_CR;
                break;
            }
            case CH_DATA_CR:
                i++;
                c->ch_state = CH_DATA_LF;
                break;
            case CH_DATA_LF:
                i++;
                c->ch_size = 0;
                c->ch_state = CH_SIZE;
                break;
            case CH_TRAILER:
                /* an empty line ends the message; trailer fields are skipped */
                if (ch == '\r') {
                    c->ch_state = CH_TRAILER_LF;
                } else {
                    c->ch_state = CH_EXT;  /* a trailer field: skip to its end, then expect more */
                    c->ch_size = 0;
                }
                i++;
                break;
            case CH_TRAILER_LF:
                i++;
                c->is_chunk_complete = true;
                c->ch_state = CH_DONE;
                break;
            default:
                return produced;
            }
        }
    }
    c->data_process += produced;
    return produced;
}

static void body_eof(esp_http_client_handle_t c)
{
    if (c->body_mode == BODY_EOF) c->is_chunk_complete = true;
}

static bool parse_headers(esp_http_client_handle_t c, int end)
{
    char *p = c->hdr;
    char *line_end = strstr(p, "\r\n");
    if (!line_end || strncmp(p, "HTTP/", 5) != 0) return false;
    char *sp = strchr(p, ' ');
    if (!sp || sp > line_end) return false;
    c->status_code = atoi(sp + 1);
    bool chunked = false;
    int64_t length = -1;
    p = line_end + 2;
    while (p < c->hdr + end - 2) {
        line_end = strstr(p, "\r\n");
        if (!line_end || line_end == p) break;
        *line_end = 0;
        char *colon = strchr(p, ':');
        if (colon) {
            *colon = 0;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            size_t vl = strlen(v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) v[--vl] = 0;
            if (strcasecmp(p, "Location") == 0) {
                assign(&c->location, v, -1);
            } else if (strcasecmp(p, "Transfer-Encoding") == 0 && strcasecmp(v, "chunked") == 0) {
                chunked = true;
            } else if (strcasecmp(p, "Content-Length") == 0) {
                length = strtoll(v, NULL, 10);
            }
            c->event.header_key = p;
            c->event.header_value = v;
            dispatch(c, HTTP_EVENT_ON_HEADER, NULL, 0);
        }
        p = line_end + 2;
    }
    c->is_chunked = chunked;
    c->is_chunk_complete = false;
    c->ch_state = CH_SIZE;
    c->ch_size = 0;
    if (chunked) {
        c->body_mode = BODY_CHUNKED;
        c->content_length = -1;
    } else if (length >= 0) {
        c->body_mode = BODY_LENGTH;
        c->body_left = length;
        c->content_length = length;
        if (length == 0) c->is_chunk_complete = true;
    } else {
        c->body_mode = BODY_EOF;
        c->content_length = -1;
    }
    if (c->method == HTTP_METHOD_HEAD || c->status_code == 204 || c->status_code == 304 ||
        (c->status_code >= 100 && c->status_code < 200)) {
        c->is_chunk_complete = true;
    }
    c->data_process = 0;
    return true;
}

int64_t esp_http_client_fetch_headers(esp_http_client_handle_t client)
{
    if (client->state < HTTP_STATE_REQ_COMPLETE_HEADER) return ESP_FAIL;
    client->state = HTTP_STATE_REQ_COMPLETE_DATA;
    client->status_code = -1;
    if (!client->hdr) {
        client->hdr = hil_alloc(MAX_HEADER_BYTES + 1);  /* http_parser keeps no copy: not the app's heap */
        if (!client->hdr) return ESP_FAIL;
    }
    client->hdr_len = 0;
    while (client->state < HTTP_STATE_RES_COMPLETE_HEADER) {
        int len = hil_transport_read(&client->transport, client->rx, client->buffer_size_rx, client->timeout_ms);
        if (len <= 0) {
            if (len == ERR_TCP_TRANSPORT_CONNECTION_TIMEOUT) {
                ESP_LOGW(TAG, "Connection timed out before data was ready!");
                return -ESP_ERR_HTTP_EAGAIN;
            }
            return ESP_FAIL;
        }
        int room = MAX_HEADER_BYTES - client->hdr_len;
        int take = len < room ? len : room;
        memcpy(client->hdr + client->hdr_len, client->rx, (size_t)take);
        int scan_from = client->hdr_len > 3 ? client->hdr_len - 3 : 0;
        client->hdr_len += take;
        client->hdr[client->hdr_len] = 0;
        char *end = strstr(client->hdr + scan_from, "\r\n\r\n");
        if (!end) {
            if (client->hdr_len >= MAX_HEADER_BYTES) return ESP_FAIL;
            continue;
        }
        int head_end = (int)(end - client->hdr) + 4;
        int saved_n = client->hdr_len - head_end;
        int body_in_rx = len - take;
        int raw = saved_n + body_in_rx;
        char *tmp = NULL;
        if (raw > 0) {
            /* body bytes that came with the headers are decoded and kept for esp_http_client_read */
            tmp = malloc((size_t)raw);
            if (!tmp) return ESP_FAIL;
            memcpy(tmp, client->hdr + head_end, (size_t)saved_n);
            memcpy(tmp + saved_n, client->rx + take, (size_t)body_in_rx);
        }
        if (!parse_headers(client, head_end)) {
            free(tmp);
            return ESP_FAIL;
        }
        client->state = HTTP_STATE_RES_COMPLETE_HEADER;
        if (raw > 0) {
            free(client->cache);
            client->cache = malloc((size_t)raw);
            if (!client->cache) {
                free(tmp);
                return ESP_FAIL;
            }
            client->cache_len = body_feed(client, tmp, raw, client->cache);
            client->cache_off = 0;
            free(tmp);
        }
    }
    client->state = HTTP_STATE_RES_ON_DATA_START;
    if (client->content_length <= 0) {
        client->is_chunked = true;
        return 0;
    }
    return client->content_length;
}

bool esp_http_client_is_complete_data_received(esp_http_client_handle_t client)
{
    if (client->is_chunked) {
        if (!client->is_chunk_complete) return false;
    } else {
        if (client->data_process != client->content_length) return false;
    }
    return true;
}

int esp_http_client_read(esp_http_client_handle_t client, char *buffer, int len)
{
    int ridx = 0;
    if (client->cache_len > client->cache_off) {
        int remain = client->cache_len - client->cache_off;
        if (remain > len) remain = len;
        memcpy(buffer, client->cache + client->cache_off, (size_t)remain);
        client->cache_off += remain;
        ridx = remain;
        if (client->cache_off == client->cache_len) {
            free(client->cache);
            client->cache = NULL;
            client->cache_len = client->cache_off = 0;
        }
    }
    int need_read = len - ridx;
    bool is_data_remain = true;
    while (need_read > 0 && is_data_remain) {
        if (client->is_chunked) {
            is_data_remain = !client->is_chunk_complete;
        } else {
            is_data_remain = client->data_process < client->content_length;
        }
        if (!is_data_remain) break;
        int byte_to_read = need_read > client->buffer_size_rx ? client->buffer_size_rx : need_read;
        errno = 0;
        int rlen = hil_transport_read(&client->transport, client->rx, byte_to_read, client->timeout_ms);
        if (rlen <= 0) {
            esp_log_level_t sev = ESP_LOG_WARN;
            if (rlen == ERR_TCP_TRANSPORT_CONNECTION_CLOSED_BY_FIN && client->is_chunked) {
                body_eof(client);
                sev = ESP_LOG_DEBUG;
            }
            if (errno != 0) {
                ESP_LOG_LEVEL(sev, TAG, "esp_transport_read returned:%d and errno:%d ", rlen, errno);
            }
            if (rlen == ERR_TCP_TRANSPORT_CONNECTION_TIMEOUT) {
                if (ridx) return ridx;
                return -ESP_ERR_HTTP_EAGAIN;
            }
            if (rlen != ERR_TCP_TRANSPORT_CONNECTION_CLOSED_BY_FIN) {
                ESP_LOGE(TAG, "transport_read: error - %d | %s", 0xe003, "ESP_ERR_TCP_TRANSPORT_CONNECTION_FAILED");
            }
            if (rlen < 0 && ridx == 0 && !esp_http_client_is_complete_data_received(client)) {
                dispatch(client, HTTP_EVENT_ERROR, NULL, 0);
                return ESP_FAIL;
            }
            return ridx;
        }
        int got = body_feed(client, client->rx, rlen, buffer + ridx);
        if (got) dispatch(client, HTTP_EVENT_ON_DATA, buffer + ridx, got);
        ridx += got;
        need_read -= got;
    }
    return ridx;
}

int esp_http_client_read_response(esp_http_client_handle_t client, char *buffer, int len)
{
    int read_len = 0;
    while (read_len < len) {
        int data_read = esp_http_client_read(client, buffer + read_len, len - read_len);
        if (data_read <= 0) return read_len;
        read_len += data_read;
    }
    return read_len;
}

esp_err_t esp_http_client_flush_response(esp_http_client_handle_t client, int *len)
{
    if (client == NULL) {
        ESP_LOGE(TAG, "client must not be NULL");
        return ESP_ERR_INVALID_ARG;
    }
    int read_len = 0;
    char *tmp = malloc((size_t)client->buffer_size_rx);
    if (!tmp) return ESP_ERR_NO_MEM;
    while (!esp_http_client_is_complete_data_received(client)) {
        int data_read = esp_http_client_read(client, tmp, client->buffer_size_rx);
        if (data_read <= 0) {
            free(tmp);
            return ESP_FAIL;
        }
        read_len += data_read;
    }
    free(tmp);
    if (len) *len = read_len;
    return ESP_OK;
}

int esp_http_client_get_status_code(esp_http_client_handle_t client) { return client->status_code; }
int64_t esp_http_client_get_content_length(esp_http_client_handle_t client) { return client->content_length; }
bool esp_http_client_is_chunked_response(esp_http_client_handle_t client) { return client->is_chunked; }

esp_err_t esp_http_client_get_chunk_length(esp_http_client_handle_t client, int *len)
{
    if (client == NULL || len == NULL) return ESP_ERR_INVALID_ARG;
    if (esp_http_client_is_chunked_response(client)) {
        *len = client->chunk_length;
    } else {
        ESP_LOGE(TAG, "Response is not chunked");
        return ESP_FAIL;
    }
    return ESP_OK;
}

esp_err_t esp_http_client_set_redirection(esp_http_client_handle_t client)
{
    if (client == NULL) return ESP_ERR_INVALID_ARG;
    if (client->location == NULL) return ESP_ERR_INVALID_ARG;
    ESP_LOGD(TAG, "Redirect to %s", client->location);
    char *target = strdup(client->location);
    if (!target) return ESP_ERR_NO_MEM;
    esp_err_t err = esp_http_client_set_url(client, target);
    free(target);
    if (err == ESP_OK) {
        client->redirect_counter++;
        client->process_again = 1;
    }
    return err;
}

esp_err_t esp_http_client_reset_redirect_counter(esp_http_client_handle_t client)
{
    if (client == NULL) return ESP_ERR_INVALID_ARG;
    client->redirect_counter = 0;
    return ESP_OK;
}

static esp_err_t check_response(esp_http_client_handle_t client)
{
    if (client->status_code >= HttpStatus_Ok && client->status_code < HttpStatus_MultipleChoices) {
        client->redirect_counter = 0;
        return ESP_OK;
    }
    if (client->redirect_counter >= client->max_redirection_count) {
        ESP_LOGE(TAG, "Error, reach max_redirection_count count=%d", client->redirect_counter);
        return ESP_ERR_HTTP_MAX_REDIRECT;
    }
    switch (client->status_code) {
    case HttpStatus_MovedPermanently:
    case HttpStatus_Found:
    case HttpStatus_SeeOther:
    case HttpStatus_TemporaryRedirect:
    case HttpStatus_PermanentRedirect:
        if (client->disable_auto_redirect) {
            dispatch(client, HTTP_EVENT_REDIRECT, NULL, 0);
        } else if (esp_http_client_set_redirection(client) != ESP_OK) {
            return ESP_FAIL;
        }
        break;
    default:
        break;
    }
    return ESP_OK;
}

esp_err_t esp_http_client_perform(esp_http_client_handle_t client)
{
    esp_err_t err;
    do {
        if (client->process_again) prepare(client);
        if (client->state > HTTP_STATE_CONNECTED) client->state = HTTP_STATE_CONNECTED;
        if ((err = connect_transport(client)) != ESP_OK) {
            dispatch(client, HTTP_EVENT_ERROR, NULL, 0);
            return err;
        }
        if ((err = request_send(client, client->post_len > 0 ? client->post_len : 0)) != ESP_OK) {
            dispatch(client, HTTP_EVENT_ERROR, NULL, 0);
            return err;
        }
        if (client->post_data && client->post_len > 0 &&
            esp_http_client_write(client, client->post_data, client->post_len) < 0) {
            return ESP_ERR_HTTP_WRITE_DATA;
        }
        int64_t ret = esp_http_client_fetch_headers(client);
        if (ret < 0) {
            if (ret == -ESP_ERR_HTTP_EAGAIN) return ESP_ERR_HTTP_EAGAIN;
            if (client->transport.errno_last == ENOTCONN) {
                ESP_LOGW(TAG, "Close connection due to FIN received");
                esp_http_client_close(client);
                dispatch(client, HTTP_EVENT_ERROR, NULL, 0);
                return ESP_ERR_HTTP_CONNECTION_CLOSED;
            }
            dispatch(client, HTTP_EVENT_ERROR, NULL, 0);
            return ESP_ERR_HTTP_FETCH_HEADER;
        }
        if ((err = check_response(client)) != ESP_OK) {
            ESP_LOGE(TAG, "Error response");
            dispatch(client, HTTP_EVENT_ERROR, NULL, 0);
            return err;
        }
        char *sink = malloc((size_t)client->buffer_size_rx);
        if (!sink) return ESP_ERR_NO_MEM;
        while (!esp_http_client_is_complete_data_received(client)) {
            if (esp_http_client_read(client, sink, client->buffer_size_rx) <= 0) break;
        }
        free(sink);
        dispatch(client, HTTP_EVENT_ON_FINISH, NULL, 0);
        if (client->state > HTTP_STATE_CONNECTED) client->state = HTTP_STATE_CONNECTED;
    } while (client->process_again);
    return ESP_OK;
}

esp_err_t esp_http_client_set_post_field(esp_http_client_handle_t client, const char *data, int len)
{
    client->post_data = (char *)data;
    client->post_len = len;
    if (client->post_data) {
        char *value = NULL;
        esp_http_client_get_header(client, "Content-Type", &value);
        if (value == NULL) return esp_http_client_set_header(client, "Content-Type", "application/x-www-form-urlencoded");
    } else {
        client->post_len = 0;
        esp_http_client_delete_header(client, "Content-Type");
    }
    return ESP_OK;
}

int esp_http_client_get_post_field(esp_http_client_handle_t client, char **data)
{
    if (client->post_data) {
        *data = client->post_data;
        return client->post_len;
    }
    return 0;
}

esp_err_t esp_http_client_set_method(esp_http_client_handle_t client, esp_http_client_method_t method)
{
    client->method = method;
    return ESP_OK;
}

esp_err_t esp_http_client_set_timeout_ms(esp_http_client_handle_t client, int timeout_ms)
{
    if (client == NULL) return ESP_ERR_INVALID_ARG;
    client->timeout_ms = timeout_ms;
    return ESP_OK;
}

int esp_http_client_get_errno(esp_http_client_handle_t client)
{
    if (!client) {
        ESP_LOGE(TAG, "Invalid client handle");
        return -1;
    }
    return client->transport.errno_last;
}

esp_err_t esp_http_client_get_user_data(esp_http_client_handle_t client, void **data)
{
    if (NULL == client || NULL == data) return ESP_ERR_INVALID_ARG;
    *data = client->user_data;
    return ESP_OK;
}

esp_err_t esp_http_client_set_user_data(esp_http_client_handle_t client, void *data)
{
    if (NULL == client) return ESP_ERR_INVALID_ARG;
    client->user_data = data;
    return ESP_OK;
}

esp_err_t esp_http_client_get_username(esp_http_client_handle_t client, char **value)
{
    if (client == NULL || value == NULL) return ESP_ERR_INVALID_ARG;
    *value = client->username;
    return ESP_OK;
}

esp_err_t esp_http_client_set_username(esp_http_client_handle_t client, const char *username)
{
    if (client == NULL) return ESP_ERR_INVALID_ARG;
    assign(&client->username, username, -1);
    return ESP_OK;
}

esp_err_t esp_http_client_get_password(esp_http_client_handle_t client, char **value)
{
    if (client == NULL || value == NULL) return ESP_ERR_INVALID_ARG;
    *value = client->password;
    return ESP_OK;
}

esp_err_t esp_http_client_set_password(esp_http_client_handle_t client, const char *password)
{
    if (client == NULL) return ESP_ERR_INVALID_ARG;
    assign(&client->password, password, -1);
    return ESP_OK;
}

esp_err_t esp_http_client_set_authtype(esp_http_client_handle_t client, esp_http_client_auth_type_t auth_type)
{
    if (client == NULL) return ESP_ERR_INVALID_ARG;
    (void)auth_type;
    return ESP_OK;
}

esp_http_client_transport_t esp_http_client_get_transport_type(esp_http_client_handle_t client)
{
    if (!strcasecmp(client->scheme, "https")) return HTTP_TRANSPORT_OVER_SSL;
    if (!strcasecmp(client->scheme, "http")) return HTTP_TRANSPORT_OVER_TCP;
    return HTTP_TRANSPORT_UNKNOWN;
}

esp_err_t esp_http_client_get_url(esp_http_client_handle_t client, char *url, const int len)
{
    if (client == NULL || url == NULL) return ESP_ERR_INVALID_ARG;
    if (client->host && client->scheme && client->path) {
        snprintf(url, (size_t)len, "%s://%s%s", client->scheme, client->host, client->path);
        return ESP_OK;
    }
    ESP_LOGE(TAG, "Failed to get URL");
    return ESP_FAIL;
}

esp_err_t esp_http_client_cancel_request(esp_http_client_handle_t client)
{
    if (client == NULL) return ESP_ERR_INVALID_ARG;
    if (client->state < HTTP_STATE_CONNECTED) return ESP_ERR_INVALID_STATE;
    hil_transport_close(&client->transport);
    client->state = HTTP_STATE_INIT;
    esp_err_t err = connect_transport(client);
    if (err == ESP_OK) {
        client->data_process = client->content_length;
        return ESP_OK;
    }
    return ESP_FAIL;
}

esp_err_t esp_http_client_set_auth_data(esp_http_client_handle_t client, const char *auth_data, int len)
{
    if (client == NULL || auth_data == NULL || len <= 0) return ESP_ERR_INVALID_ARG;
    return ESP_OK;
}

void esp_http_client_add_auth(esp_http_client_handle_t client)
{
    if (client == NULL) return;
    ESP_LOGW(TAG, "This request requires authentication, but does not provide header information for that");
}
