/* server: the listening side. Accepts connections, parses requests with
 * http, hands each request to a handler in order (one at a time per
 * connection), moves response bytes back with backpressure, and handles
 * keep-alive, idle timeouts, limits and malformed input. It knows nothing
 * about LLMs; sim, serve and the admin endpoints are its handlers. */
#ifndef TOKENTAP_SERVER_H
#define TOKENTAP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "wire/http.h"
#include "wire/net.h"

struct event_base;
struct server;
struct server_req;
struct tls_server;

struct server_handler {
    /* The request head is complete. The handler may answer at once or wait
     * for the body. Body bytes follow through on_body, then on_end. */
    void (*on_head)(void *ctx, struct server_req *req);
    /* De-chunked body bytes, a view valid during the call. May be NULL. */
    void (*on_body)(void *ctx, struct server_req *req, const char *data, size_t len);
    /* The whole request was read (server_req_received() is now set). */
    void (*on_end)(void *ctx, struct server_req *req);
    /* The client's output buffer fell below half of output_limit after
     * server_req_output_full() said it was full. May be NULL. */
    void (*on_drain)(void *ctx, struct server_req *req);
    /* The connection died before the handler finished the response (client
     * gone, write error, timeout). req is freed after this returns; the
     * handler must drop every reference to it. */
    void (*on_abort)(void *ctx, struct server_req *req);
    /* The request failed on the client's side after on_head: a malformed
     * or too large body, or a stalled one (status 400, 413, 501 or 408,
     * message says why). The handler ends it: server_req_error() when it
     * has sent nothing yet, else server_req_abort(). NULL: the connection
     * just ends, through on_abort. */
    void (*on_error)(void *ctx, struct server_req *req, int status, const char *message);
};

struct server_options {
    struct http_limits limits; /* head and body size limits */
    usec_t idle_timeout;       /* silence before a request (keep-alive); 0 = none */
    usec_t header_timeout;     /* a whole request head, from its first byte (408); 0 = none */
    usec_t body_timeout;       /* longest silence inside a request body (408); 0 = none */
    unsigned max_connections;  /* at the cap an idle (else slow-head) connection gives way */
    size_t output_limit;       /* bytes queued to a client before it counts as full */
    const char *server_header; /* "Server:" value on the server's own errors, or NULL */
    bool quiet;                /* do not log per-connection protocol errors */
    struct tls_server *tls;    /* borrowed: speak TLS (wire/tls.h), NULL: plain HTTP. The
                                * handshake and the first head share header_timeout. */
    unsigned accept_batch;     /* connections accepted per loop pass, 0 = all waiting */
};

/* Default options: 16 KiB heads, 64 MiB bodies, 60 s idle, head and body
 * timeouts, 4096 conns, 256 KiB output. */
void server_options_default(struct server_options *o);

/* Binds `listen` ("HOST:PORT", port 0 picks a free one) and starts
 * accepting on base. On error returns a negative errno and logs why. */
int server_new(struct event_base *base, const char *listen, const struct server_options *opts,
               const struct server_handler *handler, void *ctx, struct server **ret);

/* Closes the listener and every connection (without callbacks). NULL is a no-op. */
void server_free(struct server *srv);

/* The bound address (with the real port when 0 was asked for). */
const struct net_addr *server_address(const struct server *srv);

/* Stops accepting and closes idle connections; busy ones close after their
 * current response. */
void server_shutdown(struct server *srv);

/* Connections open now / ever accepted. */
unsigned server_connections(const struct server *srv);
uint64_t server_connections_total(const struct server *srv);

/* --- per request --- */

const struct http_head *server_req_head(const struct server_req *req);
void server_req_set_data(struct server_req *req, void *data);
void *server_req_data(const struct server_req *req);
/* Peer host ("127.0.0.1"). */
const char *server_req_peer(const struct server_req *req);
/* Monotonic µs: head parsed / last request byte read (0 until then). */
usec_t server_req_head_time(const struct server_req *req);
usec_t server_req_received(const struct server_req *req);
/* Request serial number (1-based, per server). */
uint64_t server_req_id(const struct server_req *req);
/* Position of the request on its connection (1 for the first). */
unsigned server_req_seq(const struct server_req *req);

/* Sends response bytes exactly as given (the handler frames them), at
 * once when the socket takes them, else queued. 0, or -EPIPE when the
 * connection is already gone. */
int server_req_write(struct server_req *req, const void *data, size_t len);
/* Stages bytes (a head built piece by piece): they go out with the next
 * server_req_write, server_req_flush or server_req_finish. */
int server_req_printf(struct server_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void server_req_flush(struct server_req *req);

/* True when more than output_limit bytes wait for the client; the handler
 * should stop producing until on_drain. */
bool server_req_output_full(struct server_req *req);

/* Bytes queued for the client and not yet taken by the socket. */
size_t server_req_output_pending(const struct server_req *req);

/* Stops / restarts reading the request body (backpressure towards the client). */
void server_req_pause_body(struct server_req *req, bool pause);

/* The response is complete. With close, or when the request asked for it,
 * the connection closes once the output is flushed; otherwise the next
 * request on it is parsed. req must not be used afterwards. */
void server_req_finish(struct server_req *req, bool close);

/* Ends the response where it is (no terminating chunk): queued bytes are
 * flushed and the connection closes, so the client sees a truncated
 * message. req must not be used afterwards. */
void server_req_abort(struct server_req *req);

/* Writes a complete response with Content-Type and Content-Length and
 * finishes (keep-alive unless the request asked to close). */
void server_req_respond(struct server_req *req, int status, const char *content_type,
                        const char *body, size_t len);

/* Writes a complete JSON error response in llama-server's shape
 * {"error":{"code":N,"message":...,"type":...}} and finishes with close. */
void server_req_error(struct server_req *req, int status, const char *type, const char *message);

#endif
