#include "wire/upstream.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/config.h"
#include "core/prefetch.h"
#include "wire/tls.h"

/* A request on a reused connection that the server had just closed is
 * sent again once, if this much or less was written. */
#define REPLAY_LIMIT (1024 * 1024)
#define MAX_VIEWS 64
/* One recv() per readiness takes up to this much; a full read is followed
 * by up to READ_ROUNDS - 1 more before going back to the loop. */
#define READ_BUF (16 * 1024)
#define READ_ROUNDS 4

struct body_view {
    const char *p;
    size_t len;
};

/* Connections connect and write through a bufferevent, but read with
 * their own event and recv() into a stack buffer that is parsed in place:
 * a bufferevent read costs an ioctl(FIONREAD), a copy and an allocation
 * per token, which at thousands of streams is most of the proxy's work.
 * TLS connections are the same with SSL_read (wire/tls.h): once the socket
 * is connected, a TLS bufferevent takes it over for the handshake and the
 * writing side. What a read touches (the request, the parser, the flags,
 * the views) comes first, in the first cache lines: in a burst each
 * stream's connection is cold. */
struct conn {
    struct upstream_req *req;     /* borrowed: the request in progress, NULL when idle */
    struct http_parser *parser;   /* owned */
    struct evbuffer *in;          /* owned: bytes read but not consumed yet (paused) */
    usec_t last_read;             /* bytes last came, or the wait (re)started */
    int depth;                    /* callback nesting, for deferred free */
    bool dead;
    bool tls;                     /* bev is a TLS bufferevent */
    size_t n_views;
    /* De-chunked body views collected while parsing one segment. */
    struct body_view views[MAX_VIEWS];
    struct upstream_pool *pool;   /* borrowed */
    struct bufferevent *bev;      /* owned: connect and write side (TLS: the TLS one) */
    struct event *rev;            /* owned: read readiness, once connected */
    struct event *timer;          /* owned: checks read_timeout, once connected */
    usec_t read_timeout;          /* longest wait for the next bytes, 0 none */
    struct conn *prev, *next;     /* the pool's list */
    struct conn *idle_prev, *idle_next; /* the pool's idle list, while idle */
    bool connected;               /* ready for requests (TLS: handshake done) */
    bool handshaking;             /* TLS handshake in progress */
    bool idle;                    /* connected, no request, alive: in the idle list */
    bool warming;                 /* opened ahead (min_idle), connecting, no request yet */
    bool ahead;                   /* opened ahead: its first request may find it stale */
    unsigned served;              /* requests completed on it */
};

/* What a read touches (the callbacks, their context, the flags) comes
 * first, in one cache line. */
struct upstream_req {
    struct upstream_cb cb;
    void *ctx;                    /* borrowed */
    bool head_seen, any_response_byte, paused, want_drain, retried;
    bool in_callback, cancelled, done;
    struct upstream_pool *pool;   /* borrowed */
    struct conn *conn;            /* borrowed; NULL while waiting */
    struct upstream_req *prev, *next; /* the wait queue */
    struct upstream_req_options o;
    struct evbuffer *pending;     /* owned: bytes written before a connection was attached */
    struct evbuffer *replay;      /* owned: copy of what was written, NULL once over REPLAY_LIMIT */
    usec_t ready_time;
};

struct upstream_pool {
    struct event_base *base;      /* borrowed */
    struct url_target target;
    struct upstream_pool_options o;
    struct conn *conns;           /* owned: every open connection */
    struct conn *idle_head;       /* borrowed: the idle ones, last released first */
    struct upstream_req *wait_head, *wait_tail; /* owned: requests without a connection */
    struct tls_client *tls;       /* owned: https targets, NULL for http */
    struct event *warm_ev;        /* owned: tops up min_idle each second; NULL when 0 */
    usec_t warm_failed;           /* when a connection opened ahead last failed */
    unsigned n_conns, n_idle, n_waiting, n_warming;
    uint64_t connects, reuses, requests, failures, tls_resumed;
};

static void conn_read(struct conn *c);
static void dispatch(struct upstream_pool *p);

const char *upstream_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case UPSTREAM_ERR_REFUSED: return "connection refused";
    case UPSTREAM_ERR_CONNECT_TIMEOUT: return "connect timed out";
    case UPSTREAM_ERR_TIMEOUT: return "timed out waiting for the response";
    case UPSTREAM_ERR_CLOSED: return "connection closed before the response ended";
    case UPSTREAM_ERR_MALFORMED: return "malformed HTTP response";
    case UPSTREAM_ERR_QUEUE_FULL: return "too many requests waiting for a connection";
    case UPSTREAM_ERR_TLS_UNTRUSTED:
        return "TLS: the upstream's certificate is not trusted; give its CA (ca_file, --ca-file) "
               "or turn checks off (insecure)";
    case UPSTREAM_ERR_TLS_HOSTNAME:
        return "TLS: the upstream's certificate is for another host name; use a name it lists "
               "in the URL";
    case UPSTREAM_ERR_TLS_EXPIRED:
        return "TLS: the upstream's certificate has expired or is not valid yet";
    case UPSTREAM_ERR_TLS_NOT_TLS:
        return "TLS: the upstream answered without TLS (plain HTTP?); use an http:// URL for it";
    case UPSTREAM_ERR_TLS_TIMEOUT:
        return "TLS handshake timed out (does the upstream speak TLS on that port?)";
    case UPSTREAM_ERR_TLS: return "TLS handshake failed";
    case -ENOMEM: return "out of memory";
    default: return "upstream error";
    }
}

void upstream_pool_options_default(struct upstream_pool_options *o)
{
    *o = (struct upstream_pool_options){
        .max_connections = 256,
        .max_queue = 4096,
        .connect_timeout = 5 * USEC_PER_SEC,
        .idle_timeout = 4 * USEC_PER_SEC,
        .max_head_bytes = 64 * 1024,
        .output_limit = 256 * 1024,
    };
}

/* --- helpers --- */

static struct timeval tv_of(usec_t us)
{
    return (struct timeval){.tv_sec = (time_t)(us / USEC_PER_SEC),
                            .tv_usec = (suseconds_t)(us % USEC_PER_SEC)};
}

/* Reads when connected, alive and not paused; (re)starts the timeout.
 * The timeout is its own timer, which on expiry looks at when bytes last
 * came: a timeout on the read event itself would be re-scheduled by
 * libevent on every read, a heap update per token. */
static void stop_read(struct conn *c)
{
    if (c->rev) {
        event_del(c->rev);
        event_del(c->timer);
    }
}

static void arm_read(struct conn *c)
{
    if (!c->rev || c->dead || (c->req && c->req->paused)) {
        stop_read(c);
        return;
    }
    event_add(c->rev, NULL);
    c->last_read = clock_now();
    struct timeval tv = tv_of(c->read_timeout);
    if (c->read_timeout)
        event_add(c->timer, &tv);
    else
        event_del(c->timer);
}

static void set_read_timeout(struct conn *c, usec_t us)
{
    c->read_timeout = us;
    arm_read(c);
}

static void req_free(struct upstream_req *r)
{
    if (r->pending)
        evbuffer_free(r->pending);
    if (r->replay)
        evbuffer_free(r->replay);
    free(r);
}

static void wait_remove(struct upstream_pool *p, struct upstream_req *r)
{
    /* Only a waiting request is removed: it is linked and counted. */
    assert(p->n_waiting > 0 && (r->prev ? r->prev->next == r : p->wait_head == r));
    if (r->prev)
        r->prev->next = r->next;
    else
        p->wait_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        p->wait_tail = r->prev;
    r->prev = r->next = NULL;
    p->n_waiting--;
}

static void wait_push(struct upstream_pool *p, struct upstream_req *r, bool front)
{
    if (front) {
        r->next = p->wait_head;
        if (p->wait_head)
            p->wait_head->prev = r;
        else
            p->wait_tail = r;
        p->wait_head = r;
    } else {
        r->prev = p->wait_tail;
        if (p->wait_tail)
            p->wait_tail->next = r;
        else
            p->wait_head = r;
        p->wait_tail = r;
    }
    p->n_waiting++;
}

/* --- connections --- */

/* Idle connections have their own list so that a request finds one at
 * once: with thousands of busy connections, a walk of every connection
 * per request was most of a load generator's CPU. */
static void idle_push(struct conn *c)
{
    struct upstream_pool *p = c->pool;
    assert(!c->idle && !c->dead && !c->req);
    c->idle = true;
    c->idle_prev = NULL;
    c->idle_next = p->idle_head;
    if (p->idle_head)
        p->idle_head->idle_prev = c;
    p->idle_head = c;
    p->n_idle++;
}

static void idle_remove(struct conn *c)
{
    struct upstream_pool *p = c->pool;
    if (!c->idle)
        return;
    assert(p->n_idle > 0);
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else
        p->idle_head = c->idle_next;
    if (c->idle_next)
        c->idle_next->idle_prev = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    c->idle = false;
    p->n_idle--;
}

/* Writes what is queued on a connected connection now, not on the loop's
 * next pass: under load that pass runs through hundreds of token events,
 * every request that arrived meanwhile would reach the server at once, and
 * their token streams would stay in step (bursty) for their whole life.
 * Write interest is switched on only for what the socket did not take, so
 * a request on a kept-alive connection costs no epoll_ctl calls. While the
 * body is paused for a full buffer, the bufferevent does the writing so
 * that its drain callback fires. A failed write leaves the bytes queued:
 * the bufferevent's own write meets the same error and reports it. */
static void conn_flush(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) == 0)
        return;
    /* TLS: only while the bufferevent is not writing itself; it may be in
     * the middle of a record (tls.h). */
    if (!(c->req && c->req->want_drain)) {
        if (!c->tls)
            net_write_bufferevent_output(c->bev);
        else if (!(bufferevent_get_enabled(c->bev) & EV_WRITE))
            tls_write_output(c->bev);
    }
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(c->bev, EV_WRITE);
}

static void conn_destroy(struct conn *c)
{
    struct upstream_pool *p = c->pool;
    /* Never under a callback of its own (see conn_leave). */
    assert(c->depth == 0 && p->n_conns > 0);
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    p->n_conns--;
    idle_remove(c);
    if (c->warming) {
        p->n_warming--;
        p->warm_failed = clock_now();
    }
    if (c->tls)
        tls_close_notify(c->bev);
    bufferevent_free(c->bev);
    if (c->rev) {
        event_free(c->rev);
        event_free(c->timer);
    }
    if (c->in)
        evbuffer_free(c->in);
    http_parser_free(c->parser);
    free(c);
}

static void conn_enter(struct conn *c)
{
    c->depth++;
}

static void conn_leave(struct conn *c)
{
    assert(c->depth > 0);
    if (--c->depth == 0 && c->dead)
        conn_destroy(c);
}

/* Takes the connection out of service; freed when the stack unwinds. */
static void conn_kill(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    idle_remove(c);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    stop_read(c);
    if (c->depth == 0)
        conn_destroy(c);
}

static int on_parser_body(void *ctx, const char *data, size_t len)
{
    struct conn *c = ctx;
    /* The parser pauses at MAX_VIEWS, and n_views is reset before each feed. */
    assert(c->n_views < MAX_VIEWS);
    c->views[c->n_views++] = (struct body_view){data, len};
    /* Full: the parser stops after these bytes, the caller hands them on
     * and feeds the rest. */
    return c->n_views == MAX_VIEWS ? HTTP_BODY_PAUSE : 0;
}

/* Ends the request on c: releases or closes the connection, then tells
 * the owner. */
static void req_complete(struct conn *c, int err, usec_t t)
{
    struct upstream_req *r = c->req;
    struct upstream_pool *p = c->pool;
    assert(r && r->conn == c && !r->done);
    c->req = NULL;
    r->conn = NULL;
    r->done = true;
    const struct http_head *h = http_parser_head(c->parser);
    bool reusable = err == 0 && h->keep_alive && !c->dead;
    if (reusable) {
        c->served++;
        http_parser_reset(c->parser);
        /* Writing stays off while idle (see conn_flush). */
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            bufferevent_disable(c->bev, EV_WRITE);
        if (c->tls)
            tls_idle(c->bev);
        idle_push(c);
        set_read_timeout(c, p->o.idle_timeout);
    } else {
        conn_kill(c);
    }
    if (err)
        p->failures++;
    if (!r->cancelled) {
        r->in_callback = true;
        r->cb.on_done(r->ctx, err, t);
    }
    req_free(r);
    dispatch(p);
}

/* A reused connection was closed by the server before any response byte:
 * it closed it while it sat idle, and never saw the request. Send the
 * request again on a fresh connection, once. Never after a timeout (the
 * server may be working on it: a second generation) or any other error. */
static bool try_replay(struct conn *c, int err)
{
    struct upstream_req *r = c->req;
    if (err != UPSTREAM_ERR_CLOSED || (c->served == 0 && !c->ahead) || r->any_response_byte ||
        r->retried || !r->replay)
        return false;
    r->retried = true;
    c->req = NULL;
    r->conn = NULL;
    /* Send everything again from the copy (kept for a further retry). */
    evbuffer_drain(r->pending, evbuffer_get_length(r->pending));
    size_t n = evbuffer_get_length(r->replay);
    if (n)
        evbuffer_add(r->pending, evbuffer_pullup(r->replay, (ev_ssize_t)n), n);
    conn_kill(c);
    wait_push(c->pool, r, true);
    dispatch(c->pool);
    return true;
}

static void conn_fail(struct conn *c, int err)
{
    if (c->req && !c->req->cancelled && try_replay(c, err))
        return;
    if (c->req)
        req_complete(c, err, clock_now());
    conn_kill(c);
}

static void flush_views(struct conn *c, usec_t t)
{
    struct upstream_req *r = c->req;
    for (size_t i = 0; i < c->n_views && r && !r->cancelled; i++)
        if (r->cb.on_body)
            r->cb.on_body(r->ctx, c->views[i].p, c->views[i].len, t);
    c->n_views = 0;
}

/* Hands body bytes on: raw first (the client gets them before any parsing
 * of ours), then the de-chunked views for the tap. False when the owner
 * cancelled the request meanwhile (r is freed then). */
static bool hand_on(struct conn *c, struct upstream_req *r, const char *at, size_t used, usec_t now)
{
    r->in_callback = true;
    if (used > 0)
        r->cb.on_raw(r->ctx, at, used, now);
    flush_views(c, now);
    r->in_callback = false;
    if (r->cancelled) {
        req_free(r);
        return false;
    }
    return true;
}

/* Parses data[0, len) read at now and hands it on. Returns how much was
 * consumed: less than len when the request paused (the caller keeps the
 * rest), all of it when the connection ended. */
static size_t conn_process(struct conn *c, const char *data, size_t len, usec_t now)
{
    size_t off = 0;
    /* A parser paused by full views may end the message on no more input. */
    bool again = false;
    while (!c->dead && (off < len || again)) {
        struct upstream_req *r = c->req;
        if (!r) {
            /* Bytes nobody asked for: the connection is not usable. */
            conn_kill(c);
            return len;
        }
        if (r->paused)
            return off;
        r->any_response_byte = true;
        const char *at = data + off;
        size_t used = 0;
        c->n_views = 0;
        /* Its owner's state comes while the bytes are parsed. */
        __builtin_prefetch(r->ctx, 1);
        int step = http_parser_feed(c->parser, at, len - off, &used);
        again = step == HTTP_STEP_BODY;
        if (step < 0) {
            /* Bad framing: what was valid before it in this read (whole
             * chunks, events) still goes to the client and the tap. */
            if (r->head_seen && used > 0 && !hand_on(c, r, at, used, now))
                return len;
            conn_fail(c, UPSTREAM_ERR_MALFORMED);
            return len;
        }
        off += used;
        if (step == HTTP_STEP_HEAD) {
            r->head_seen = true;
            set_read_timeout(c, r->o.stream_timeout);
            r->in_callback = true;
            r->cb.on_head(r->ctx, http_parser_head(c->parser), now);
            r->in_callback = false;
            if (r->cancelled) {
                req_free(r);
                return len;
            }
            step = http_parser_resume(c->parser, r->o.head_request);
            if (step < 0) {
                conn_fail(c, UPSTREAM_ERR_MALFORMED);
                return len;
            }
            if (step == HTTP_STEP_DONE)
                req_complete(c, 0, now);
            continue;
        }
        /* Head bytes that came before the head was whole belong to the
         * head: the parser keeps them, nobody else sees them. */
        if (!r->head_seen)
            continue;
        if (!hand_on(c, r, at, used, now))
            return len;
        if (step == HTTP_STEP_DONE)
            req_complete(c, 0, now);
    }
    return c->dead ? len : off;
}

/* Goes on with bytes kept while paused. */
static void conn_read(struct conn *c)
{
    while (!c->dead && c->in && evbuffer_get_length(c->in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1)
            return;
        size_t used = conn_process(c, v.iov_base, v.iov_len, clock_now());
        if (c->dead)
            return;
        evbuffer_drain(c->in, used);
        if (used < v.iov_len)
            return;
    }
}

/* Keeps what the request did not take (it paused). */
static void conn_keep(struct conn *c, const char *data, size_t len)
{
    if (!c->in && !(c->in = evbuffer_new())) {
        conn_fail(c, UPSTREAM_ERR_CLOSED);
        return;
    }
    if (evbuffer_add(c->in, data, len) < 0)
        conn_fail(c, UPSTREAM_ERR_CLOSED);
}

/* The server closed its side. */
static void conn_eof(struct conn *c)
{
    if (c->req && c->req->head_seen) {
        /* A body delimited by the connection closing ends here. */
        if (!c->dead && c->req)
            conn_fail(c, http_parser_finish(c->parser) == HTTP_STEP_DONE ? 0 : UPSTREAM_ERR_CLOSED);
        else
            conn_kill(c);
    } else {
        conn_fail(c, UPSTREAM_ERR_CLOSED);
    }
}

/* TLS holds bytes it read ahead, or decrypted ones a paused request left:
 * no readiness event comes for them, so the read callback runs again. */
static void tls_read_more(struct conn *c)
{
    if (c->tls && c->rev && !c->dead && !(c->req && c->req->paused) && tls_read_pending(c->bev))
        event_active(c->rev, EV_READ, 0);
}

/* The read timeout's check: no bytes for read_timeout fails the
 * connection, else it looks again when that much will have passed. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    usec_t quiet = clock_diff(clock_now(), c->last_read);
    if (quiet < c->read_timeout) {
        struct timeval tv = tv_of(c->read_timeout - quiet);
        event_add(c->timer, &tv);
        return;
    }
    conn_enter(c);
    conn_fail(c, UPSTREAM_ERR_TIMEOUT);
    conn_leave(c);
}

static void rev_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    conn_enter(c);
    /* Kept bytes read first may pause the request. */
    bool kept = c->in && evbuffer_get_length(c->in);
    conn_read(c);
    for (int round = 0; round < READ_ROUNDS; round++) {
        if (c->dead || (c->in && evbuffer_get_length(c->in)))
            break;
        /* A paused request has no read event (arm_read): the first round
         * reads unless kept bytes were handed on just now; later ones
         * look, as the bytes just read may have paused it. Not looking
         * first lets the request's and the parser's lines come while the
         * kernel copies (in a burst each stream's state is cold). */
        if (round == 0 && !kept && c->req) {
            prefetch_range(c->req, offsetof(struct upstream_req, pool));
            http_parser_prefetch(c->parser);
        } else if (c->req && c->req->paused) {
            break;
        }
        char buf[READ_BUF];
        ssize_t n = c->tls ? tls_read(c->bev, buf, sizeof(buf)) : recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            c->last_read = clock_now();
            size_t used = conn_process(c, buf, (size_t)n, c->last_read);
            if (!c->dead && used < (size_t)n)
                conn_keep(c, buf + used, (size_t)n - used);
            /* A short read emptied the socket (TLS: and what it read ahead). */
            if ((size_t)n < sizeof(buf))
                break;
        } else if (n == 0) {
            conn_eof(c);
            break;
        } else {
            if (c->tls ? n != -EAGAIN : errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                conn_fail(c, UPSTREAM_ERR_CLOSED);
            break;
        }
    }
    tls_read_more(c);
    conn_leave(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct upstream_req *r = c->req;
    /* TLS: all written; conn_flush writes directly again. */
    if (c->tls && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (!r || !r->want_drain || r->cancelled)
        return;
    conn_enter(c);
    r->want_drain = false;
    if (r->cb.on_drain) {
        r->in_callback = true;
        r->cb.on_drain(r->ctx);
        r->in_callback = false;
        if (r->cancelled)
            req_free(r);
    }
    conn_leave(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg);

/* https: the socket is connected; a TLS bufferevent takes it over, with
 * the request bytes queued so far, and does the handshake within the
 * connect timeout. */
static void start_tls(struct conn *c)
{
    struct upstream_pool *p = c->pool;
    struct bufferevent *plain = c->bev;
    int fd = bufferevent_getfd(plain);
    net_set_nodelay(fd);
    struct bufferevent *tb = tls_client_bufferevent(p->tls, p->base, fd);
    if (!tb) {
        conn_fail(c, -ENOMEM);
        return;
    }
    /* The socket bufferevent lets go of the socket (libevent keeps it
     * alive until this callback returns). */
    bufferevent_disable(plain, EV_READ | EV_WRITE);
    bufferevent_setfd(plain, -1);
    evbuffer_add_buffer(bufferevent_get_output(tb), bufferevent_get_output(plain));
    bufferevent_free(plain);
    c->bev = tb;
    c->tls = true;
    c->handshaking = true;
    bufferevent_priority_set(tb, NET_PRIO_IO);
    bufferevent_setcb(tb, NULL, write_cb, event_cb, c);
    bufferevent_setwatermark(tb, EV_WRITE, p->o.output_limit / 2, 0);
    struct timeval ct = tv_of(p->o.connect_timeout);
    bufferevent_set_timeouts(tb, &ct, &ct);
}

static int tls_error(struct bufferevent *bev)
{
    switch (tls_failure(bev)) {
    case TLS_FAILURE_UNTRUSTED: return UPSTREAM_ERR_TLS_UNTRUSTED;
    case TLS_FAILURE_HOSTNAME: return UPSTREAM_ERR_TLS_HOSTNAME;
    case TLS_FAILURE_EXPIRED: return UPSTREAM_ERR_TLS_EXPIRED;
    case TLS_FAILURE_NOT_TLS: return UPSTREAM_ERR_TLS_NOT_TLS;
    default: return UPSTREAM_ERR_TLS;
    }
}

/* Connected (TLS: handshake done): reading starts, queued bytes go out. */
static void conn_ready(struct conn *c)
{
    struct bufferevent *bev = c->bev;
    c->connected = true;
    if (c->tls) {
        c->handshaking = false;
        if (tls_resumed(bev))
            c->pool->tls_resumed++;
        /* Writing is conn_flush's from here (tls.h). */
        bufferevent_disable(bev, EV_WRITE);
    } else {
        net_set_nodelay(bufferevent_getfd(bev));
    }
    bufferevent_set_timeouts(bev, NULL, NULL);
    c->rev = event_new(c->pool->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST, rev_cb, c);
    c->timer = c->rev ? event_new(c->pool->base, -1, 0, timer_cb, c) : NULL;
    if (!c->timer) {
        if (c->rev)
            event_free(c->rev);
        c->rev = NULL;
        conn_fail(c, UPSTREAM_ERR_REFUSED);
        return;
    }
    event_priority_set(c->rev, NET_PRIO_IO);
    if (c->req) {
        c->req->ready_time = clock_now();
        set_read_timeout(c, c->req->o.response_timeout);
    }
    if (c->tls)
        conn_flush(c);
    if (!c->req) {
        /* Opened ahead, and nothing took it while it connected. */
        c->warming = false;
        c->pool->n_warming--;
        bufferevent_disable(bev, EV_WRITE);
        if (c->tls)
            tls_idle(bev);
        idle_push(c);
        set_read_timeout(c, c->pool->o.idle_timeout);
        dispatch(c->pool);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    conn_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        if (c->pool->tls && !c->tls)
            start_tls(c);
        else
            conn_ready(c);
    } else if (what & BEV_EVENT_TIMEOUT) {
        conn_fail(c, c->handshaking ? UPSTREAM_ERR_TLS_TIMEOUT : UPSTREAM_ERR_CONNECT_TIMEOUT);
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        conn_fail(c, c->handshaking ? tls_error(bev)
                     : c->connected  ? UPSTREAM_ERR_CLOSED
                                     : UPSTREAM_ERR_REFUSED);
    }
    conn_leave(c);
}

static struct conn *conn_open(struct upstream_pool *p)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->pool = p;
    struct http_limits limits = {.max_head_bytes = p->o.max_head_bytes, .max_body_bytes = 0};
    c->parser = http_parser_new(HTTP_KIND_RESPONSE, &limits, on_parser_body, c);
    c->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->parser || !c->bev)
        goto fail;
    /* A stream's bytes go before new connections and requests (net.h). */
    bufferevent_priority_set(c->bev, NET_PRIO_IO);
    bufferevent_setcb(c->bev, NULL, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, p->o.output_limit / 2, 0);
    /* Connecting is writing: its timeout is the write timeout. */
    struct timeval ct = tv_of(p->o.connect_timeout);
    bufferevent_set_timeouts(c->bev, NULL, &ct);
    bufferevent_enable(c->bev, EV_WRITE);
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    p->n_conns++;
    p->connects++;
    return c;
fail:
    if (c->bev)
        bufferevent_free(c->bev);
    http_parser_free(c->parser);
    free(c);
    return NULL;
}

static void attach(struct conn *c, struct upstream_req *r)
{
    struct upstream_pool *p = c->pool;
    c->req = r;
    r->conn = c;
    if (c->warming) {
        c->warming = false;
        p->n_warming--;
    }
    if (c->idle) {
        idle_remove(c);
        p->reuses++;
        r->ready_time = clock_now();
        set_read_timeout(c, r->o.response_timeout);
    }
    /* A new connection writes once connected (writing is on since
     * conn_open); a kept-alive one writes now. */
    evbuffer_add_buffer(bufferevent_get_output(c->bev), r->pending);
    if (c->connected)
        conn_flush(c);
}

static struct conn *find_idle(struct upstream_pool *p)
{
    return p->idle_head;
}

/* A connection opened ahead that is still connecting: a request waits
 * less on it than on a new one. */
static struct conn *find_warming(struct upstream_pool *p)
{
    if (p->n_warming == 0)
        return NULL;
    for (struct conn *c = p->conns; c; c = c->next)
        if (c->warming && !c->dead)
            return c;
    return NULL;
}

static void dispatch(struct upstream_pool *p)
{
    while (p->wait_head) {
        /* A request sent again goes on a fresh connection: another idle
         * one may be just as stale (an idle one gives way if need be). */
        bool retry = p->wait_head->retried;
        struct conn *c = retry ? NULL : find_idle(p);
        if (!c && !retry)
            c = find_warming(p);
        bool fresh = false;
        if (retry && p->n_conns >= p->o.max_connections && p->idle_head)
            conn_kill(p->idle_head);
        if (!c) {
            if (p->n_conns >= p->o.max_connections)
                return;
            c = conn_open(p);
            if (!c)
                return;
            fresh = true;
        }
        struct upstream_req *r = p->wait_head;
        wait_remove(p, r);
        conn_enter(c);
        attach(c, r);
        /* A connect error may be reported from inside this call; the
         * request is attached by then and gets it. */
        if (fresh)
            bufferevent_socket_connect(c->bev, (struct sockaddr *)&p->target.addr.ss,
                                       (int)p->target.addr.len);
        conn_leave(c);
    }
}

/* --- pool --- */

/* Opens connections until min_idle are idle or on their way, within
 * max_connections. Not while requests wait (dispatch opens theirs), and
 * not for a second after one failed, so a down upstream costs one try per
 * connection per second. At most the shortfall per call: a connect that
 * fails at once must not make it loop. */
static void warm_up(struct upstream_pool *p)
{
    usec_t now = clock_now();
    if (p->wait_head || (p->warm_failed && now - p->warm_failed < USEC_PER_SEC))
        return;
    unsigned have = p->n_idle + p->n_warming;
    unsigned want = p->o.min_idle > have ? p->o.min_idle - have : 0;
    for (unsigned i = 0; i < want && p->n_conns < p->o.max_connections; i++) {
        struct conn *c = conn_open(p);
        if (!c)
            return;
        c->warming = c->ahead = true;
        p->n_warming++;
        conn_enter(c);
        bufferevent_socket_connect(c->bev, (struct sockaddr *)&p->target.addr.ss,
                                   (int)p->target.addr.len);
        conn_leave(c);
    }
}

static void warm_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    warm_up(arg);
}

int upstream_pool_new(struct event_base *base, const struct url_target *t,
                      const struct upstream_pool_options *o, struct upstream_pool **ret,
                      struct config_err *err)
{
    struct upstream_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return config_err_set(err, "out of memory"), -ENOMEM;
    p->base = base;
    p->target = *t;
    p->o = *o;
    p->o.tls.ca_file = NULL;
    if (t->tls) {
        struct tls_client_options to = {.host = t->host, .ca_file = o->tls.ca_file,
                                        .insecure = o->tls.insecure};
        int r = tls_client_new(&to, &p->tls, err);
        if (r < 0) {
            free(p);
            return r;
        }
    }
    if (p->o.min_idle) {
        /* The first top-up runs as soon as the loop does. */
        struct timeval second = {1, 0};
        p->warm_ev = event_new(base, -1, EV_PERSIST, warm_cb, p);
        if (p->warm_ev)
            event_priority_set(p->warm_ev, NET_PRIO_LATER); /* fails harmlessly without priorities */
        if (!p->warm_ev || event_add(p->warm_ev, &second) < 0) {
            upstream_pool_free(p);
            return config_err_set(err, "out of memory"), -ENOMEM;
        }
        event_active(p->warm_ev, EV_TIMEOUT, 0);
    }
    *ret = p;
    return 0;
}

void upstream_pool_free(struct upstream_pool *p)
{
    if (!p)
        return;
    if (p->warm_ev)
        event_free(p->warm_ev);
    while (p->conns) {
        struct conn *c = p->conns;
        if (c->req) {
            c->req->conn = NULL;
            req_free(c->req);
            c->req = NULL;
        }
        c->depth = 0;
        conn_destroy(c);
    }
    while (p->wait_head) {
        struct upstream_req *r = p->wait_head;
        wait_remove(p, r);
        req_free(r);
    }
    tls_client_free(p->tls);
    free(p);
}

const struct url_target *upstream_pool_target(const struct upstream_pool *p)
{
    return &p->target;
}

void upstream_pool_stats(const struct upstream_pool *p, struct upstream_pool_stats *ret)
{
    *ret = (struct upstream_pool_stats){
        .open = p->n_conns,
        .idle = p->n_idle,
        .busy = p->n_conns - p->n_idle,
        .waiting = p->n_waiting,
        .connects = p->connects,
        .reuses = p->reuses,
        .requests = p->requests,
        .failures = p->failures,
        .tls_resumed = p->tls_resumed,
    };
}

/* --- requests --- */

int upstream_request(struct upstream_pool *p, const struct upstream_req_options *o,
                     const struct upstream_cb *cb, void *ctx, struct upstream_req **ret)
{
    if (p->n_waiting >= p->o.max_queue && !find_idle(p) && p->n_conns >= p->o.max_connections)
        return UPSTREAM_ERR_QUEUE_FULL;
    struct upstream_req *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->pool = p;
    r->o = *o;
    r->cb = *cb;
    r->ctx = ctx;
    r->pending = evbuffer_new();
    r->replay = evbuffer_new();
    if (!r->pending || !r->replay) {
        req_free(r);
        return -ENOMEM;
    }
    p->requests++;
    wait_push(p, r, false);
    *ret = r;
    dispatch(p);
    return 0;
}

int upstream_req_write(struct upstream_req *r, const void *data, size_t len)
{
    if (r->replay) {
        if (evbuffer_get_length(r->replay) + len > REPLAY_LIMIT) {
            evbuffer_free(r->replay);
            r->replay = NULL;
        } else {
            evbuffer_add(r->replay, data, len);
        }
    }
    struct evbuffer *out = r->conn ? bufferevent_get_output(r->conn->bev) : r->pending;
    return evbuffer_add(out, data, len) < 0 ? -ENOMEM : 0;
}

int upstream_req_printf(struct upstream_req *r, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof(small))
        return upstream_req_write(r, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = upstream_req_write(r, big, (size_t)n);
    free(big);
    return rc;
}

void upstream_req_flush(struct upstream_req *r)
{
    struct conn *c = r->conn;
    if (c && c->connected && !c->dead)
        conn_flush(c);
}

bool upstream_req_output_full(struct upstream_req *r)
{
    struct evbuffer *out = r->conn ? bufferevent_get_output(r->conn->bev) : r->pending;
    if (evbuffer_get_length(out) <= r->pool->o.output_limit)
        return false;
    r->want_drain = true;
    return true;
}

void upstream_req_pause(struct upstream_req *r, bool pause)
{
    if (r->paused == pause)
        return;
    r->paused = pause;
    struct conn *c = r->conn;
    if (!c || c->dead)
        return;
    arm_read(c);
    if (pause)
        return;
    tls_read_more(c);
    if (!r->in_callback) {
        conn_enter(c);
        conn_read(c);
        conn_leave(c);
    }
}

void upstream_req_cancel(struct upstream_req *r)
{
    if (r->cancelled || r->done)
        return;
    r->cancelled = true;
    struct upstream_pool *p = r->pool;
    struct conn *c = r->conn;
    if (c) {
        /* Close at once: llama-server frees the slot when the socket goes. */
        c->req = NULL;
        r->conn = NULL;
        p->failures++;
        conn_kill(c);
    } else {
        wait_remove(p, r);
    }
    if (!r->in_callback)
        req_free(r);
    dispatch(p);
}

usec_t upstream_req_ready_time(const struct upstream_req *r)
{
    return r->ready_time;
}
