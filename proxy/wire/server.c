#include "wire/server.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/log.h"
#include "wire/tls.h"

enum conn_state {
    CONN_IDLE,      /* waiting for (the rest of) a request head */
    CONN_BODY,      /* head handed on, reading the body */
    CONN_WAITING,   /* request read, response not finished */
};

struct server_req {
    struct conn *conn; /* borrowed: the connection owns this request */
    uint64_t id;
    void *data;        /* borrowed: the handler's state */
    usec_t head_time, received;
    bool finished;     /* handler called finish */
    bool close_after;  /* finish asked to close */
    bool body_paused;
    bool want_drain;
};

/* What a token's write reads (the request, the output, the socket and
 * the flags) comes first, in the first cache lines: in a burst each
 * stream's connection is cold. */
struct conn {
    struct server_req req;    /* the request in progress (valid unless CONN_IDLE) */
    struct evbuffer *out;     /* borrowed: bev's output, looked up once */
    int fd;                   /* borrowed: bev's socket (plain only), looked up once */
    bool req_active;          /* handler knows about req */
    bool closing;             /* flush output, then free */
    bool staged;              /* output holds bytes not yet tried on the socket */
    bool out_used;            /* output may hold bytes: false only once seen empty */
    bool tls;                 /* bev is a TLS bufferevent */
    bool handshaking;         /* its handshake is not done yet */
    bool dead;                /* free when depth returns to 0 */
    int depth;                /* nesting of entry points, for deferred free */
    struct server *srv;       /* borrowed */
    struct bufferevent *bev;  /* owned */
    struct event *head_timer; /* owned: the request head's deadline */
    struct http_parser *parser; /* owned */
    struct conn *prev, *next; /* server's list */
    uint64_t id;
    unsigned n_requests;      /* requests started on this connection */
    usec_t idle_since;        /* when it last became idle (accepted or answered) */
    usec_t head_start;        /* first byte of the head being read; 0 when none */
    enum conn_state state;
    char peer[64];
};

struct server {
    struct event_base *base;      /* borrowed */
    struct event *lev;            /* owned: the listening socket's readiness; NULL once shut */
    int lfd;                      /* owned: the listening socket, -1 once shut */
    struct server_options opts;
    const struct server_handler *handler; /* borrowed */
    void *ctx;                    /* borrowed */
    struct net_addr addr;
    struct conn *conns;           /* owned list */
    unsigned n_conns;
    uint64_t next_conn_id, next_req_id;
    bool listener_paused;
    bool shutting_down;
};

void server_options_default(struct server_options *o)
{
    *o = (struct server_options){
        .limits = {.max_head_bytes = 16 * 1024, .max_body_bytes = 64ull * 1024 * 1024},
        .idle_timeout = 60 * USEC_PER_SEC,
        .header_timeout = 60 * USEC_PER_SEC,
        .body_timeout = 60 * USEC_PER_SEC,
        .max_connections = 4096,
        .output_limit = 256 * 1024,
    };
}

static void conn_process(struct conn *c);
static void pause_if_full(struct server *srv);

/* Accepting stops at the connection cap (new clients wait in the
 * kernel's backlog) and starts again when a connection ends or idles. */
static void listener_pause(struct server *srv)
{
    if (srv->lev && !srv->listener_paused)
        event_del(srv->lev);
    srv->listener_paused = true;
}

static void listener_resume(struct server *srv)
{
    if (srv->lev && srv->listener_paused)
        event_add(srv->lev, NULL);
    srv->listener_paused = false;
}

/* --- lifetime --- */

static void conn_enter(struct conn *c)
{
    c->depth++;
}

static void conn_destroy(struct conn *c)
{
    struct server *srv = c->srv;
    assert(c->depth == 0 && c->dead && srv->n_conns > 0);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    if (c->tls)
        tls_close_notify(c->bev);
    bufferevent_free(c->bev);
    if (c->head_timer)
        event_free(c->head_timer);
    http_parser_free(c->parser);
    free(c);
    if (srv->listener_paused && srv->n_conns < srv->opts.max_connections)
        listener_resume(srv);
}

/* Leaves an entry point. At the outermost level, frees a dead connection,
 * or parses input that waited while a response was in progress (a
 * handler may finish from any callback). Returns false when freed. */
static bool conn_leave(struct conn *c)
{
    if (c->depth == 1 && !c->dead && !c->closing && c->state == CONN_IDLE &&
        evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        conn_process(c);
    assert(c->depth > 0);
    if (--c->depth > 0 || !c->dead)
        return true;
    conn_destroy(c);
    return false;
}

/* Marks the connection dead; tells the handler if a request was in flight. */
static void conn_kill(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->req_active && !c->req.finished) {
        c->req_active = false;
        if (c->srv->handler->on_abort)
            c->srv->handler->on_abort(c->srv->ctx, &c->req);
    }
    c->req_active = false;
}

static struct timeval tv_of(usec_t us)
{
    return (struct timeval){.tv_sec = (time_t)(us / USEC_PER_SEC),
                            .tv_usec = (suseconds_t)(us % USEC_PER_SEC)};
}

/* The read timeout: while idle, how long a connection may stay silent
 * before a request (restarted by every byte; the head's deadline bounds a
 * head that trickles); while a body is read, the longest silence between
 * body bytes (not counted while the body is paused for backpressure);
 * none while a response is in progress. */
static void set_read_timeout(struct conn *c, usec_t us)
{
    struct timeval tv = tv_of(us);
    bufferevent_set_timeouts(c->bev, us ? &tv : NULL, NULL);
}

static void set_idle_timeout(struct conn *c, bool idle)
{
    set_read_timeout(c, idle ? c->srv->opts.idle_timeout : 0);
}

/* Write interest is switched on only once something waits in the output:
 * a connection whose writes all go straight to the socket never costs the
 * epoll_ctl calls of turning it on and off. Once on, libevent keeps it
 * while output is pending. */
static void out_queued(struct conn *c)
{
    if (!(bufferevent_get_enabled(c->bev) & EV_WRITE))
        bufferevent_enable(c->bev, EV_WRITE);
}

/* Bytes waiting in the output. Only this file adds to it (libevent only
 * drains it), so a plain connection whose output was last seen empty and
 * got nothing since has none, without a look at the evbuffer: in a burst
 * each stream's evbuffer is one more cold cache line per token. A TLS
 * bufferevent may queue bytes itself (tls.h), so it is always looked at. */
static size_t out_length(struct conn *c)
{
    if (!c->out_used && !c->tls)
        return 0;
    size_t n = evbuffer_get_length(c->out);
    if (n == 0)
        c->out_used = false;
    return n;
}

static int out_add(struct conn *c, const void *data, size_t len)
{
    c->out_used = true;
    return evbuffer_add(c->out, data, len);
}

/* Writes now what can go now. Queuing would cost a loop pass (every
 * stream of a burst would wait for all the upstream reads) and the
 * epoll_ctl calls of write interest. Staged bytes (a response head built
 * piece by piece) go out together with data; bytes queued behind a full
 * socket stay behind it. What the socket does not take is queued; errors
 * surface there. TLS the same through tls_write, under its rules (tls.h):
 * the output is written directly only while the bufferevent is not
 * writing itself. */
static int conn_write(struct conn *c, const void *data, size_t len)
{
    if (c->staged) {
        c->staged = false;
        if (len && out_add(c, data, len) < 0)
            return -ENOMEM;
        if (!c->tls)
            net_write_bufferevent_output(c->bev);
        else if (!(bufferevent_get_enabled(c->bev) & EV_WRITE))
            tls_write_output(c->bev);
        len = 0;
    } else if (len && out_length(c) == 0) {
        size_t n;
        if (c->tls) {
            n = tls_write(c->bev, data, len);
        } else {
            ssize_t k = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            n = k > 0 ? (size_t)k : 0;
        }
        if (n == len)
            return 0; /* all on the socket, nothing queued */
        data = (const char *)data + n;
        len -= n;
    }
    if (len && out_add(c, data, len) < 0)
        return -ENOMEM;
    if (out_length(c))
        out_queued(c);
    return 0;
}

/* Flush what is queued, then close. */
static void conn_close_after_flush(struct conn *c)
{
    c->closing = true;
    conn_write(c, NULL, 0);
    bufferevent_disable(c->bev, EV_READ);
    /* Fire the write callback when the output is fully drained. */
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(c->out) == 0)
        conn_kill(c);
}

/* --- the server's own error responses --- */

static void write_error(struct conn *c, int status, const char *type, const char *message)
{
    struct evbuffer *out = c->out;
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddNumberToObject(err, "code", status);
    cJSON_AddStringToObject(err, "message", message);
    cJSON_AddStringToObject(err, "type", type);
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    const char *b = body ? body : "{}";
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
    if (c->srv->opts.server_header)
        evbuffer_add_printf(out, "Server: %s\r\n", c->srv->opts.server_header);
    evbuffer_add_printf(out,
                        "Content-Type: application/json; charset=utf-8\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                        strlen(b), b);
    free(body);
    c->out_used = true;
    c->staged = true;
    conn_write(c, NULL, 0);
}

/* The request in progress failed on the client's side (a bad or too
 * large body, a stalled body): the handler answers if it still can and
 * records it; without an on_error handler the connection just ends. */
static void request_failed(struct conn *c, int status, const char *msg)
{
    if (c->srv->handler->on_error) {
        c->srv->handler->on_error(c->srv->ctx, &c->req, status, msg);
        if (!c->dead && c->req_active && !c->req.finished)
            conn_kill(c); /* the handler did not end it */
    } else {
        conn_kill(c);
    }
}

static void protocol_error(struct conn *c, int err)
{
    int status = 400;
    const char *msg = "malformed HTTP request";
    if (err == HTTP_ERR_HEAD_TOO_LARGE) {
        status = 431;
        msg = "request header block exceeds the limit";
    } else if (err == HTTP_ERR_BODY_TOO_LARGE) {
        status = 413;
        msg = "request body exceeds the limit (--max-body)";
    } else if (err == HTTP_ERR_UNSUPPORTED) {
        status = 501;
        msg = "unsupported request";
    }
    if (!c->srv->opts.quiet)
        log_debug("connection %llu from %s: %d: %s", (unsigned long long)c->id, c->peer, status,
                  http_parser_error(c->parser));
    char full[256];
    snprintf(full, sizeof(full), "%s: %s", msg, http_parser_error(c->parser));
    if (!c->req_active || c->req.finished) {
        write_error(c, status, "invalid_request_error", full);
        conn_close_after_flush(c);
    } else {
        request_failed(c, status, full);
    }
}

/* --- request processing --- */

static int on_body(void *ctx, const char *data, size_t len)
{
    struct conn *c = ctx;
    if (c->req_active && c->srv->handler->on_body)
        c->srv->handler->on_body(c->srv->ctx, &c->req, data, len);
    return c->dead ? -EPIPE : 0;
}

static void start_request(struct conn *c)
{
    struct server *srv = c->srv;
    /* A head is parsed only between requests: the handler's request is never wiped. */
    assert(c->state == CONN_IDLE && !c->req_active);
    memset(&c->req, 0, sizeof(c->req));
    c->req.conn = c;
    c->req.id = ++srv->next_req_id;
    c->n_requests++;
    c->req.head_time = clock_now();
    c->state = CONN_BODY;
    c->req_active = true;
    /* From here its bytes are a stream's (net.h); idle again at the end. */
    bufferevent_priority_set(c->bev, NET_PRIO_IO);
    pause_if_full(srv);
    c->head_start = 0;
    if (c->head_timer)
        evtimer_del(c->head_timer);
    set_read_timeout(c, srv->opts.body_timeout);
    const struct http_head *h = http_parser_head(c->parser);
    if (h->expect_continue && h->version_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_write(c, cont, sizeof(cont) - 1);
    }
    srv->handler->on_head(srv->ctx, &c->req);
}

/* The response is finished and the request fully read: next request. */
static void end_request(struct conn *c)
{
    const struct http_head *h = http_parser_head(c->parser);
    bool keep = h->keep_alive && !c->req.close_after && !c->srv->shutting_down;
    c->req_active = false;
    c->state = CONN_IDLE;
    if (!keep) {
        conn_close_after_flush(c);
        return;
    }
    http_parser_reset(c->parser);
    set_idle_timeout(c, true);
    bufferevent_priority_set(c->bev, NET_PRIO_NEW);
    bufferevent_enable(c->bev, EV_READ);
    if (c->tls)
        tls_idle(c->bev);
    c->idle_since = clock_now();
    /* An idle connection can give way to a new one (accept_cb). */
    if (c->srv->listener_paused)
        listener_resume(c->srv);
}

/* The whole request was read: hand it on, and go on with the next one if
 * the handler already answered. */
static void request_done(struct conn *c)
{
    c->req.received = clock_now();
    c->state = CONN_WAITING;
    set_read_timeout(c, 0);
    if (c->req_active && c->srv->handler->on_end)
        c->srv->handler->on_end(c->srv->ctx, &c->req);
}

static void conn_process(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->dead && !c->closing) {
        if (c->state == CONN_WAITING)
            return;
        if (c->state == CONN_BODY && c->req.body_paused)
            return;
        if (evbuffer_get_length(in) == 0)
            return;
        if (c->state == CONN_IDLE && c->head_start == 0) {
            /* The head's deadline runs from its first byte: a client that
             * trickles one byte at a time cannot hold the connection
             * longer than --header-timeout. */
            c->head_start = clock_now();
            if (c->head_timer) {
                struct timeval tv = tv_of(c->srv->opts.header_timeout);
                evtimer_add(c->head_timer, &tv);
            }
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            return;
        size_t consumed = 0;
        int step = http_parser_feed(c->parser, v.iov_base, v.iov_len, &consumed);
        if (c->dead)
            return;
        if (step >= 0)
            evbuffer_drain(in, consumed);
        if (step == HTTP_STEP_HEAD) {
            start_request(c);
            if (c->dead || c->closing)
                return;
            step = http_parser_resume(c->parser, false);
        }
        if (step < 0) {
            protocol_error(c, step);
            return;
        }
        if (step == HTTP_STEP_DONE)
            request_done(c);
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    conn_enter(c);
    conn_process(c);
    /* While a response is in progress the client may pipeline more; bound
     * what we hold for it. */
    if (!c->dead && c->state != CONN_IDLE &&
        evbuffer_get_length(bufferevent_get_input(bev)) > c->srv->opts.limits.max_head_bytes)
        bufferevent_disable(bev, EV_READ);
    conn_leave(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    conn_enter(c);
    /* TLS: all written; conn_write writes directly again. */
    if (c->tls && !c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_kill(c);
    } else if (c->req_active && c->req.want_drain) {
        c->req.want_drain = false;
        if (c->srv->handler->on_drain)
            c->srv->handler->on_drain(c->srv->ctx, &c->req);
    }
    conn_leave(c);
}

/* A plain HTTP request on the TLS port gets a plain answer saying so
 * (nginx does the same), instead of a reset the client cannot explain. */
static void plain_http_answer(struct conn *c)
{
    static const char body[] =
        "{\"error\":{\"code\":400,\"message\":\"this port speaks TLS: use https:// "
        "(a plain HTTP request was sent)\",\"type\":\"invalid_request_error\"}}";
    char msg[512];
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    int fd = bufferevent_getfd(c->bev);
    /* The rest of the request is read first: closing with unread bytes
     * would reset the connection, and the answer with it. */
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && !c->srv->opts.quiet)
        log_debug("connection %llu from %s: cannot answer a plain HTTP request",
                  (unsigned long long)c->id, c->peer);
}

/* The TLS handshake failed or timed out: nothing can be answered in
 * HTTP over TLS, so the connection just ends. */
static void handshake_failed(struct conn *c, short what)
{
    char why[160] = "timed out";
    bool plain = !(what & BEV_EVENT_TIMEOUT) && tls_accept_failure(c->bev, why, sizeof(why));
    if (plain)
        plain_http_answer(c);
    if (!c->srv->opts.quiet)
        log_debug("connection %llu from %s: TLS handshake failed: %s", (unsigned long long)c->id,
                  c->peer, plain ? "a plain HTTP request on the TLS port" : why);
    conn_kill(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    conn_enter(c);
    if (c->handshaking) {
        if (what & BEV_EVENT_CONNECTED) {
            /* The first head's deadline runs from its first byte, as on
             * a plain connection. */
            c->handshaking = false;
            c->head_start = 0;
            if (c->head_timer)
                evtimer_del(c->head_timer);
        } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
            handshake_failed(c, what);
        }
        conn_leave(c);
        return;
    }
    /* A body that stalled: 408 if nothing was answered yet. EOF, error or
     * another timeout: an idle connection just ends; a request or
     * response in progress is aborted (a client that closes mid-stream has
     * gone away; llama-server frees the slot the same way). */
    if ((what & BEV_EVENT_TIMEOUT) && c->state == CONN_BODY && c->req_active && !c->req.finished &&
        !c->dead) {
        if (!c->srv->opts.quiet)
            log_debug("connection %llu from %s: request body stalled", (unsigned long long)c->id,
                      c->peer);
        request_failed(c, 408, "request body stalled: no bytes within the body timeout "
                               "(--body-timeout)");
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        conn_kill(c);
    }
    conn_leave(c);
}

/* The request head was not complete within header_timeout of its first
 * byte: 408 and close. */
static void head_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    conn_enter(c);
    if (!c->dead && c->handshaking) {
        if (!c->srv->opts.quiet)
            log_debug("connection %llu from %s: TLS handshake not done in time",
                      (unsigned long long)c->id, c->peer);
        conn_kill(c);
    } else if (!c->dead && !c->closing && c->state == CONN_IDLE && c->head_start) {
        if (!c->srv->opts.quiet)
            log_debug("connection %llu from %s: request head not complete in time",
                      (unsigned long long)c->id, c->peer);
        write_error(c, 408, "invalid_request_error",
                    "request head not complete within the header timeout (--header-timeout)");
        conn_close_after_flush(c);
    }
    conn_leave(c);
}

/* At the connection cap, the connection that gives way to a new one: a
 * kept-alive one between requests, idle the longest; else the one waiting
 * longest for a whole head (a new connection counts from its accept, so a
 * client that just connected is the last to go). Connections with a
 * request in progress never do. NULL when every connection is busy. */
static struct conn *pick_victim(struct server *srv)
{
    struct conn *idle = NULL, *slow = NULL;
    usec_t slow_since = 0;
    for (struct conn *c = srv->conns; c; c = c->next) {
        if (c->dead || c->closing || c->state != CONN_IDLE)
            continue;
        if (c->n_requests > 0 && c->head_start == 0 &&
            evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
            if (!idle || c->idle_since < idle->idle_since)
                idle = c;
            continue;
        }
        usec_t since = c->head_start ? c->head_start : c->idle_since;
        if (!slow || since < slow_since) {
            slow = c;
            slow_since = since;
        }
    }
    return idle ? idle : slow;
}

/* At the cap with no connection that could give way, stop accepting: new
 * clients wait in the kernel backlog until one ends or becomes idle. */
static void pause_if_full(struct server *srv)
{
    if (srv->n_conns >= srv->opts.max_connections && !srv->listener_paused && srv->lev &&
        !pick_victim(srv))
        listener_pause(srv);
}

static void accept_conn(struct server *srv, evutil_socket_t fd, struct sockaddr *sa, int salen)
{
    struct conn *c = NULL;
    if (srv->n_conns >= srv->opts.max_connections) {
        struct conn *v = pick_victim(srv);
        if (!v) {
            /* Every connection is busy (pause_if_full missed it): refuse,
             * and stop accepting until one ends or becomes idle. */
            listener_pause(srv);
            goto fail;
        }
        if (!srv->opts.quiet)
            log_debug("connection %llu from %s closed to make room (--max-connections %u)",
                      (unsigned long long)v->id, v->peer, srv->opts.max_connections);
        conn_enter(v);
        conn_kill(v);
        conn_leave(v);
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    struct net_addr peer = {.len = (socklen_t)salen};
    memcpy(&peer.ss, sa, (size_t)salen < sizeof(peer.ss) ? (size_t)salen : sizeof(peer.ss));
    net_format_host(&peer, c->peer, sizeof(c->peer));
    c->parser = http_parser_new(HTTP_KIND_REQUEST, &srv->opts.limits, on_body, c);
    if (!c->parser)
        goto fail;
    if (srv->opts.header_timeout &&
        !(c->head_timer = evtimer_new(srv->base, head_timer_cb, c)))
        goto fail;
    net_set_nodelay(fd);
    if (srv->opts.tls) {
        c->bev = tls_server_bufferevent(srv->opts.tls, srv->base, fd);
        fd = -1; /* the bufferevent's, or closed */
        c->tls = c->handshaking = true;
    } else {
        c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev)
        goto fail;
    /* Each token's write uses both: bufferevent_getfd is an indirect call. */
    c->out = bufferevent_get_output(c->bev);
    c->fd = bufferevent_getfd(c->bev);
    c->idle_since = clock_now();
    if (c->tls && c->head_timer) {
        /* The handshake has the head's deadline. */
        struct timeval tv = tv_of(srv->opts.header_timeout);
        c->head_start = c->idle_since;
        evtimer_add(c->head_timer, &tv);
    }
    /* A new connection waits behind the bytes of streams in progress;
     * start_request moves it up for its request (net.h). */
    bufferevent_priority_set(c->bev, NET_PRIO_NEW);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, srv->opts.output_limit / 2, 0);
    set_idle_timeout(c, true);
    /* New bufferevents start with writing on: off until output waits. */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    pause_if_full(srv);
    return;
fail:
    if (c) {
        if (c->head_timer)
            event_free(c->head_timer);
        http_parser_free(c->parser);
        free(c);
    }
    if (fd >= 0)
        evutil_closesocket(fd);
}

/* Accepts up to accept_batch connections per readiness: in a burst of
 * arrivals the loop goes back to the streams in progress between batches
 * (and the listener's priority puts them first, net.h). */
static void listen_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct server *srv = arg;
    unsigned batch = srv->opts.accept_batch ? srv->opts.accept_batch : UINT_MAX;
    for (unsigned i = 0; i < batch && srv->lev && !srv->listener_paused; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("accept failed: %s", strerror(errno));
            return;
        }
        accept_conn(srv, fd, (struct sockaddr *)&ss, (int)len);
    }
}

static void listener_close(struct server *srv)
{
    if (srv->lev)
        event_free(srv->lev);
    srv->lev = NULL;
    if (srv->lfd >= 0)
        close(srv->lfd);
    srv->lfd = -1;
}

/* The listening socket: reusable address, non-blocking, close-on-exec,
 * a backlog that holds a burst of clients (the kernel caps it at
 * net.core.somaxconn). */
static int listener_open(struct server *srv, const struct net_addr *addr)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    srv->lfd = fd;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 || listen(fd, 4096) < 0)
        return -errno;
    srv->lev = event_new(srv->base, fd, EV_READ | EV_PERSIST, listen_cb, srv);
    if (!srv->lev)
        return -ENOMEM;
    event_priority_set(srv->lev, NET_PRIO_NEW);
    if (event_add(srv->lev, NULL) < 0)
        return -ENOMEM;
    return 0;
}

int server_new(struct event_base *base, const char *listen, const struct server_options *opts,
               const struct server_handler *handler, void *ctx, struct server **ret)
{
    struct net_addr addr;
    int r = net_parse_hostport(listen, &addr);
    if (r < 0) {
        log_error("invalid listen address '%s': expected HOST:PORT, e.g. 127.0.0.1:8080", listen);
        return r;
    }
    struct server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->base = base;
    srv->opts = *opts;
    srv->handler = handler;
    srv->ctx = ctx;
    srv->lfd = -1;
    r = listener_open(srv, &addr);
    if (r < 0) {
        log_error("cannot listen on %s: %s%s", listen, strerror(-r),
                  r == -EADDRINUSE ? " (another process uses the port; pick another with --listen)"
                                   : "");
        goto fail;
    }
    r = net_sockname(srv->lfd, &srv->addr);
    if (r < 0)
        goto fail;
    *ret = srv;
    return 0;
fail:
    server_free(srv);
    return r;
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    while (srv->conns) {
        struct conn *c = srv->conns;
        c->dead = true;
        c->depth = 0;
        conn_destroy(c);
    }
    listener_close(srv);
    free(srv);
}

const struct net_addr *server_address(const struct server *srv)
{
    return &srv->addr;
}

void server_shutdown(struct server *srv)
{
    srv->shutting_down = true;
    /* Close the listening socket, so new connections are refused rather
     * than left in the backlog. */
    listener_close(srv);
    struct conn *next;
    for (struct conn *c = srv->conns; c; c = next) {
        next = c->next;
        /* Idle means no request bytes at all: a request that is arriving
         * is in flight and gets its answer. */
        if (c->state == CONN_IDLE && !c->closing && !http_parser_in_message(c->parser) &&
            evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
            conn_enter(c);
            conn_kill(c);
            conn_leave(c);
        }
    }
}

unsigned server_connections(const struct server *srv)
{
    return srv->n_conns;
}

uint64_t server_connections_total(const struct server *srv)
{
    return srv->next_conn_id;
}

/* --- per request --- */

const struct http_head *server_req_head(const struct server_req *req)
{
    return http_parser_head(req->conn->parser);
}

void server_req_set_data(struct server_req *req, void *data)
{
    req->data = data;
}

void *server_req_data(const struct server_req *req)
{
    return req->data;
}

const char *server_req_peer(const struct server_req *req)
{
    return req->conn->peer;
}

usec_t server_req_head_time(const struct server_req *req)
{
    return req->head_time;
}

usec_t server_req_received(const struct server_req *req)
{
    return req->received;
}

uint64_t server_req_id(const struct server_req *req)
{
    return req->id;
}

unsigned server_req_seq(const struct server_req *req)
{
    return req->conn->n_requests;
}

int server_req_write(struct server_req *req, const void *data, size_t len)
{
    struct conn *c = req->conn;
    if (c->dead)
        return -EPIPE;
    return conn_write(c, data, len);
}

int server_req_printf(struct server_req *req, const char *fmt, ...)
{
    struct conn *c = req->conn;
    if (c->dead)
        return -EPIPE;
    va_list ap;
    va_start(ap, fmt);
    int n = evbuffer_add_vprintf(c->out, fmt, ap);
    va_end(ap);
    c->out_used = true;
    if (n < 0)
        return -ENOMEM;
    /* Staged: sent with the next write or flush, in one piece. */
    if (!c->staged && evbuffer_get_length(c->out) == (size_t)n)
        c->staged = true;
    return 0;
}

void server_req_flush(struct server_req *req)
{
    if (!req->conn->dead)
        conn_write(req->conn, NULL, 0);
}

bool server_req_output_full(struct server_req *req)
{
    struct conn *c = req->conn;
    if (out_length(c) <= c->srv->opts.output_limit)
        return false;
    req->want_drain = true;
    return true;
}

size_t server_req_output_pending(const struct server_req *req)
{
    return evbuffer_get_length(req->conn->out);
}

void server_req_pause_body(struct server_req *req, bool pause)
{
    struct conn *c = req->conn;
    if (req->body_paused == pause)
        return;
    req->body_paused = pause;
    if (c->dead)
        return;
    if (pause) {
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    bufferevent_enable(c->bev, EV_READ);
    conn_enter(c);
    conn_process(c);
    conn_leave(c);
}

void server_req_finish(struct server_req *req, bool close)
{
    struct conn *c = req->conn;
    conn_enter(c);
    if (!c->dead)
        conn_write(c, NULL, 0);
    req->finished = true;
    req->close_after = req->close_after || close;
    if (!c->dead) {
        if (c->state == CONN_WAITING) {
            end_request(c);
        } else {
            /* Answered before the body was read (e.g. an early error): the
             * rest of the body cannot be skipped safely, so close. */
            c->req_active = false;
            c->state = CONN_IDLE;
            conn_close_after_flush(c);
        }
    }
    conn_leave(c);
}

void server_req_abort(struct server_req *req)
{
    /* What was queued still goes out; the stream just stops, with no
     * terminating chunk, and the connection closes. */
    server_req_finish(req, true);
}

void server_req_respond(struct server_req *req, int status, const char *content_type,
                        const char *body, size_t len)
{
    server_req_printf(req, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                      status, http_status_reason(status), content_type, len);
    if (strcmp(server_req_head(req)->method, "HEAD") != 0)
        server_req_write(req, body, len);
    server_req_finish(req, false);
}

void server_req_error(struct server_req *req, int status, const char *type, const char *message)
{
    struct conn *c = req->conn;
    if (!c->dead)
        write_error(c, status, type, message);
    server_req_finish(req, true);
}
