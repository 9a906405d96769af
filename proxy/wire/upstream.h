/* upstream: the HTTP/1.1 client side. A pool per target keeps keep-alive
 * connections (TCP_NODELAY), caps how many are open, queues requests
 * beyond the cap, expires idle ones, and runs one request at a time on
 * each connection with connect / response / stream-idle timeouts. Response
 * bytes are handed on raw (framing intact, for pass-through) and
 * de-chunked (for the stream tap), stamped with the time of the read that
 * delivered them, and can keep a minimum of idle connections open ahead
 * of requests. Used by the proxy and by the load generator alike. */
#ifndef TOKENTAP_UPSTREAM_H
#define TOKENTAP_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "wire/http.h"
#include "wire/net.h"
#include "wire/url.h"

struct config_err;
struct event_base;
struct upstream_pool;
struct upstream_req;

/* Why an exchange failed (negative errno values). */
#define UPSTREAM_ERR_REFUSED (-ECONNREFUSED)   /* connect failed: 502 */
#define UPSTREAM_ERR_CONNECT_TIMEOUT (-ETIMEDOUT) /* connect timed out: 504 */
#define UPSTREAM_ERR_TIMEOUT (-ETIME)          /* no response head in time, or a stalled stream */
#define UPSTREAM_ERR_CLOSED (-ECONNRESET)      /* closed before the response ended */
#define UPSTREAM_ERR_MALFORMED (-EBADMSG)      /* not HTTP */
#define UPSTREAM_ERR_QUEUE_FULL (-EBUSY)       /* too many requests waiting */
/* https targets: the handshake failed, and why (errno values picked for
 * their names; each has its own phrase in upstream_strerror). */
#define UPSTREAM_ERR_TLS_UNTRUSTED (-EKEYREJECTED) /* no trusted CA signed the certificate: 502 */
#define UPSTREAM_ERR_TLS_HOSTNAME (-ENOKEY)        /* the certificate is for another name: 502 */
#define UPSTREAM_ERR_TLS_EXPIRED (-EKEYEXPIRED)    /* expired or not valid yet: 502 */
#define UPSTREAM_ERR_TLS_NOT_TLS (-EPROTONOSUPPORT) /* the server answered without TLS: 502 */
#define UPSTREAM_ERR_TLS_TIMEOUT (-ENOLINK)        /* no handshake within the connect timeout: 504 */
#define UPSTREAM_ERR_TLS (-EPROTO)                 /* any other handshake failure: 502 */

/* Short English phrase for an UPSTREAM_ERR_* code. */
const char *upstream_strerror(int err);

struct upstream_cb {
    /* The response head arrived. t: monotonic µs of the read that completed it. */
    void (*on_head)(void *ctx, const struct http_head *head, usec_t t);
    /* Response bytes after the head exactly as received (framing intact). */
    void (*on_raw)(void *ctx, const char *data, size_t len, usec_t t);
    /* The same bytes de-chunked, delivered after on_raw. May be NULL. */
    void (*on_body)(void *ctx, const char *data, size_t len, usec_t t);
    /* Request bytes may flow again after upstream_req_output_full(). May be NULL. */
    void (*on_drain)(void *ctx);
    /* The exchange is over: err is 0 when the response ended properly.
     * The request is freed after this returns. */
    void (*on_done)(void *ctx, int err, usec_t t);
};

/* How an https target's certificate is checked: signed by a CA in the
 * system's store (or ca_file), for the URL's host; insecure: not at all. */
struct upstream_tls_options {
    const char *ca_file; /* borrowed: PEM CAs to trust instead of the system's, NULL: the system's */
    bool insecure;       /* no certificate verification (the caller warns) */
};

struct upstream_pool_options {
    unsigned max_connections; /* open connections to the target (default 256) */
    unsigned max_queue;       /* requests waiting for one (default 4096) */
    usec_t connect_timeout;   /* default 5 s */
    usec_t idle_timeout;      /* keep-alive idle; below llama-server's 5 s (default 4 s) */
    size_t max_head_bytes;    /* response head limit (default 64 KiB) */
    size_t output_limit;      /* request bytes queued before "full" (default 256 KiB) */
    /* Connections opened ahead and kept idle (default 0): a burst of
     * requests finds them connected (TLS: handshaken). Topped up once a
     * second; never above max_connections. */
    unsigned min_idle;
    struct upstream_tls_options tls; /* https targets */
};

void upstream_pool_options_default(struct upstream_pool_options *o);

/* A pool for target (with its TLS context when https; o->tls is not kept).
 * 0, or -EINVAL with a reason in err (an unreadable ca_file), or -ENOMEM. */
int upstream_pool_new(struct event_base *base, const struct url_target *t,
                      const struct upstream_pool_options *o, struct upstream_pool **ret,
                      struct config_err *err);
/* Closes every connection; pending requests get no more callbacks. */
void upstream_pool_free(struct upstream_pool *p);

const struct url_target *upstream_pool_target(const struct upstream_pool *p);

struct upstream_pool_stats {
    unsigned open, idle, busy, waiting;
    uint64_t connects, reuses, requests, failures;
    uint64_t tls_resumed;  /* https: connections that resumed a TLS session */
};
void upstream_pool_stats(const struct upstream_pool *p, struct upstream_pool_stats *ret);

struct upstream_req_options {
    bool head_request;     /* a HEAD: the response has no body */
    usec_t response_timeout; /* until the response head (0 = none) */
    usec_t stream_timeout;   /* longest silence while the body streams (0 = none) */
};

/* Starts an exchange: a connection is taken from the pool (or opened, or
 * waited for). Bytes written with upstream_req_write are sent once
 * connected. Returns 0 or UPSTREAM_ERR_QUEUE_FULL / -ENOMEM. */
int upstream_request(struct upstream_pool *p, const struct upstream_req_options *o,
                     const struct upstream_cb *cb, void *ctx, struct upstream_req **ret);

/* Queues request bytes (head and body, framed by the caller). */
int upstream_req_write(struct upstream_req *r, const void *data, size_t len);
int upstream_req_printf(struct upstream_req *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sends the queued bytes now, if the connection is up. On a kept-alive
 * connection written bytes wait for this call: make it after each piece of
 * the request (a head, a body chunk, the end). */
void upstream_req_flush(struct upstream_req *r);

/* True when more than output_limit request bytes wait; stop until on_drain. */
bool upstream_req_output_full(struct upstream_req *r);

/* Stops / restarts reading the response (a slow client downstream). */
void upstream_req_pause(struct upstream_req *r, bool pause);

/* Gives up: closes the connection at once (so llama-server frees the slot)
 * and frees r without further callbacks. Safe from inside r's callbacks. */
void upstream_req_cancel(struct upstream_req *r);

/* Time the connection was ready (connect done or reused), 0 before. */
usec_t upstream_req_ready_time(const struct upstream_req *r);

#endif
