#include "serve/proxy.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "tap/capture.h"
#include "core/config.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "tap/live.h"
#include "tap/metrics.h"
#include "tap/record.h"
#include "tap/reqlog.h"
#include "rewrite/rewrite.h"
#include "tap/tap.h"
#include "tap/tapq.h"
#include "wire/net.h"

struct pupstream {
    char *name;                   /* owned */
    char **models;                /* owned */
    size_t n_models;
    bool is_default;
    struct url_target target;
    struct upstream_pool *pool;   /* owned */
    unsigned in_flight;
    bool failing;                 /* the last exchange failed before a response head */
};

enum body_mode {
    BODY_NONE,      /* the request has no body */
    BODY_STREAM,    /* forwarded as it arrives */
    BODY_BUFFER,    /* held until complete, to read "model" */
};

enum resp_mode {
    RESP_RAW,       /* bytes as received (Content-Length or chunked) */
    RESP_DECHUNK,   /* chunked upstream, HTTP/1.0 client: de-chunked, then close */
    RESP_NONE,      /* HEAD, 204, 304 */
};

struct exchange {
    struct proxy *proxy;          /* borrowed */
    struct server_req *client;    /* borrowed until finish/abort */
    struct upstream_req *up;      /* borrowed until on_done/cancel */
    struct pupstream *target;     /* borrowed */
    struct exchange *prev, *next; /* the proxy's list */
    enum body_mode body_mode;
    enum resp_mode resp_mode;
    bool client_chunked;          /* the client sent a chunked body */
    bool body_done;               /* the client's body is complete */
    bool head_sent;               /* response head written to the client */
    bool close_client;            /* close the client connection after */
    bool counted;                 /* counted in target->in_flight */
    bool begun;                   /* counted in metrics (metrics_begin called) */
    struct evbuffer *body;        /* owned: BODY_BUFFER bytes */
    struct record rec;            /* what this request did */
    struct tap tap;               /* reads the response for rec */
    struct capture cap;           /* what the trace recorder keeps */
    enum rewrite_thinking override; /* X-Tokentap-Thinking */
    bool rewrite_wanted;          /* some rule (or the override) may edit this request */
    struct rewrite_result rw;     /* owned: what the rules did (header edits, new body) */
    bool rw_done;                 /* rw is filled */
};

struct proxy {
    struct event_base *base;      /* borrowed */
    bool skip_logged[8];          /* a rewrite skip reason was logged once */
    struct proxy_config cfg;      /* pointers inside are not used after proxy_new */
    struct pupstream *ups;        /* owned */
    size_t n_ups;
    struct pupstream *def;        /* borrowed: the default upstream */
    struct exchange *exchanges;   /* owned list */
    unsigned in_flight;
    struct tapq tapq;             /* response bytes the taps read after the loop pass */
    struct event *tap_ev;         /* owned: runs after the stream reads of this loop pass */
};

/* What the taps may hold back at most (a full queue is read at once). */
#define TAPQ_BYTES (256 * 1024)
#define TAPQ_PIECES 4096

/* --- setup --- */

/* The taps read what the streams forwarded in this loop pass (tapq.h). */
static void tap_later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;
    tapq_flush(&p->tapq);
}

int proxy_new(struct event_base *base, const struct proxy_config *cfg, struct proxy **ret,
              struct config_err *err)
{
    int r = -ENOMEM;
    struct proxy *p = calloc(1, sizeof(*p));
    if (!p)
        goto oom;
    p->base = base;
    p->cfg = *cfg;
    p->cfg.upstreams = NULL;
    if (tapq_init(&p->tapq, TAPQ_BYTES, TAPQ_PIECES) < 0 ||
        !(p->tap_ev = event_new(base, -1, 0, tap_later_cb, p)))
        goto oom;
    /* At the streams' own priority: libevent runs an event made active
     * during a pass after the ones already queued at its priority, so the
     * taps read once the reads that were ready have gone out, in the same
     * pass. One priority lower cost another epoll_wait per wake-up (40,000
     * events from 100 streams: 26,000-28,600 epoll_wait calls against
     * 13,600-19,300, CPU 1.04-1.12 s against 0.97-1.02 s). */
    event_priority_set(p->tap_ev, NET_PRIO_IO);
    p->ups = calloc(cfg->n_upstreams ? cfg->n_upstreams : 1, sizeof(*p->ups));
    if (!p->ups)
        goto oom;
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const struct proxy_upstream_config *uc = &cfg->upstreams[i];
        struct pupstream *u = &p->ups[p->n_ups++];
        r = url_parse(uc->url, &u->target, err);
        if (r < 0)
            goto fail;
        u->name = strdup(uc->name);
        u->models = calloc(uc->n_models ? uc->n_models : 1, sizeof(char *));
        if (!u->name || !u->models)
            goto oom;
        for (size_t m = 0; m < uc->n_models; m++) {
            u->models[m] = strdup(uc->models[m]);
            if (!u->models[m])
                goto oom;
            u->n_models++;
        }
        u->is_default = uc->is_default;
        struct upstream_pool_options po = cfg->pool;
        if (uc->max_connections)
            po.max_connections = uc->max_connections;
        if (uc->min_idle >= 0)
            po.min_idle = (unsigned)uc->min_idle;
        po.tls = uc->tls;
        struct config_err perr;
        r = upstream_pool_new(base, &u->target, &po, &u->pool, &perr);
        if (r < 0) {
            config_err_set(err, "upstream '%s': %s", uc->name, perr.msg);
            goto fail;
        }
        if (u->is_default || !p->def)
            p->def = u;
    }
    if (!p->def) {
        r = config_err_set(
            err, "no upstream configured: give --upstream URL or upstreams: in the config");
        goto fail;
    }
    *ret = p;
    return 0;
oom:
    r = -ENOMEM;
    config_err_set(err, "out of memory");
fail:
    proxy_free(p);
    return r;
}

static void exchange_free(struct exchange *x);
static void finalize(struct exchange *x, enum record_outcome outcome);
static void tap_done(struct exchange *x, usec_t t);

void proxy_free(struct proxy *p)
{
    if (!p)
        return;
    tapq_flush(&p->tapq);
    /* Exchanges still here at exit were cut by the shutdown (the drain
     * timeout, or a second signal), not by their clients. */
    while (p->exchanges) {
        struct exchange *x = p->exchanges;
        if (x->rec.outcome == RECORD_IN_PROGRESS) {
            tap_done(x, clock_now());
            if (!x->rec.error[0])
                snprintf(x->rec.error, sizeof(x->rec.error),
                         "cut at shutdown (--drain-timeout ended, or a second signal)");
            finalize(x, RECORD_TRUNCATED);
        }
        x->client = NULL;
        exchange_free(x);
    }
    for (size_t i = 0; i < p->n_ups; i++) {
        struct pupstream *u = &p->ups[i];
        upstream_pool_free(u->pool);
        for (size_t m = 0; m < u->n_models; m++)
            free(u->models[m]);
        free(u->models);
        free(u->name);
    }
    free(p->ups);
    if (p->tap_ev)
        event_free(p->tap_ev);
    tapq_finish(&p->tapq);
    free(p);
}

unsigned proxy_in_flight(const struct proxy *p)
{
    return p->in_flight;
}

size_t proxy_upstream_count(const struct proxy *p)
{
    return p->n_ups;
}

void proxy_upstream_info(const struct proxy *p, size_t i, struct proxy_upstream_info *ret)
{
    const struct pupstream *u = &p->ups[i];
    *ret = (struct proxy_upstream_info){
        .name = u->name,
        .url = u->target.url,
        .is_default = u == p->def,
        .n_models = u->n_models,
        .models = (const char *const *)u->models,
        .in_flight = u->in_flight,
    };
    upstream_pool_stats(u->pool, &ret->pool);
}

/* --- exchanges --- */

/* The response ended at t: the tap reads what it still holds back, then
 * its final facts go in the record. */
static void tap_done(struct exchange *x, usec_t t)
{
    tapq_flush(&x->proxy->tapq);
    tap_end(&x->tap, t);
}

/* Body bytes read at t go to the tap after the loop pass: in a burst, the
 * other streams' bytes go out first (tapq.h). */
static void tap_later(struct exchange *x, const char *data, size_t len, usec_t t)
{
    struct proxy *p = x->proxy;
    bool was_empty = tapq_empty(&p->tapq);
    if (tapq_push(&p->tapq, &x->tap, data, len, t)) {
        if (was_empty)
            event_active(p->tap_ev, EV_TIMEOUT, 0);
        return;
    }
    tapq_flush(&p->tapq);
    if (!tapq_push(&p->tapq, &x->tap, data, len, t))
        tap_body(&x->tap, data, len, t); /* more than the queue holds */
}

/* The request is over: its record goes to metrics and the log. */
static void finalize(struct exchange *x, enum record_outcome outcome)
{
    struct record *r = &x->rec;
    usec_t now = clock_now();
    if (r->outcome == RECORD_IN_PROGRESS)
        r->outcome = outcome;
    if (r->t_end == 0)
        r->t_end = now;
    if (!x->begun)
        return;
    x->begun = false;
    metrics_end(x->proxy->cfg.metrics, r, now);
    if (x->proxy->cfg.live)
        live_end(x->proxy->cfg.live, r, now);
    if (x->proxy->cfg.log)
        reqlog_write(x->proxy->cfg.log, r);
    if (x->proxy->cfg.trace)
        capture_write(&x->cap, x->proxy->cfg.trace, r);
}

static void exchange_free(struct exchange *x)
{
    struct proxy *p = x->proxy;
    /* Without a verdict yet, the exchange ends here because its client
     * left (or the proxy is shutting down): every caller let go of it. */
    assert(!x->client);
    assert(p->in_flight > 0 && (x->prev ? x->prev->next == x : p->exchanges == x));
    /* The queue must not outlive the tap it points to. */
    tapq_flush(&p->tapq);
    if (x->rec.outcome == RECORD_IN_PROGRESS) {
        /* What the tap read so far (usage, timings, finish) goes in the
         * record: the answer may well be whole. */
        tap_done(x, clock_now());
        finalize(x, tap_outcome(&x->tap, 0, true));
    }
    tap_finish(&x->tap);
    capture_finish(&x->cap);
    if (x->rw_done)
        rewrite_result_finish(&x->rw);
    record_finish(&x->rec);
    if (x->up)
        upstream_req_cancel(x->up);
    if (x->counted) {
        assert(x->target->in_flight > 0);
        x->target->in_flight--;
    }
    if (x->client)
        server_req_set_data(x->client, NULL);
    if (x->prev)
        x->prev->next = x->next;
    else
        p->exchanges = x->next;
    if (x->next)
        x->next->prev = x->prev;
    if (x->body)
        evbuffer_free(x->body);
    p->in_flight--;
    free(x);
}

/* Answers the client with an error in llama-server's JSON shape (only
 * possible before the response head went out). */
static void fail_client(struct exchange *x, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_client(struct exchange *x, int status, const char *type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct server_req *client = x->client;
    x->client = NULL;
    exchange_free(x);
    if (client)
        server_req_error(client, status, type, msg);
}

/* RFC 9110 7.6.1: headers that describe one connection, not the message. */
static bool hop_by_hop(const struct http_head *h, struct http_str name)
{
    static const char *const fixed[] = {"connection", "keep-alive", "proxy-connection",
                                        "proxy-authenticate", "proxy-authorization", "te",
                                        "trailer", "upgrade", "transfer-encoding"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (http_str_caseeq(name, fixed[i]))
            return true;
    /* And every header the Connection header names. */
    char buf[64];
    if (name.len >= sizeof(buf))
        return false;
    memcpy(buf, name.p, name.len);
    buf[name.len] = '\0';
    return http_head_has_token(h, "connection", buf);
}

static bool is_name(struct http_str s, const char *a)
{
    return http_str_caseeq(s, a);
}

/* True when a rewrite rule sets or removes header n. */
static bool edited(const struct exchange *x, struct http_str n)
{
    for (size_t i = 0; x->rw_done && i < x->rw.n_headers; i++)
        if (http_str_caseeq(n, x->rw.headers[i].name))
            return true;
    return false;
}

/* Writes the request line and headers to the upstream. body_len >= 0: a
 * buffered body of that size; -1: the client's own framing. */
static void write_request_head(struct exchange *x, long long body_len)
{
    const struct http_head *h = server_req_head(x->client);
    struct upstream_req *up = x->up;
    const struct url_target *t = &x->target->target;
    upstream_req_printf(up, "%s %s%.*s HTTP/1.1\r\nHost: %s\r\n", h->method, t->base_path,
                        (int)h->url.len, h->url.p, t->host_header);
    const struct http_str *xff = NULL;
    for (size_t i = 0; i < h->n_headers; i++) {
        struct http_str n = h->headers[i].name, v = h->headers[i].value;
        if (hop_by_hop(h, n) || is_name(n, "host") || is_name(n, "content-length") ||
            is_name(n, "expect") || is_name(n, REWRITE_THINKING_HEADER) || edited(x, n))
            continue;
        /* The tap must see plain text on the routes it measures. */
        if (is_name(n, "accept-encoding") && x->rec.dialect != DIALECT_UNKNOWN)
            continue;
        if (is_name(n, "x-forwarded-for")) {
            xff = &h->headers[i].value;
            continue;
        }
        upstream_req_printf(up, "%.*s: %.*s\r\n", (int)n.len, n.p, (int)v.len, v.p);
    }
    if (x->rec.dialect != DIALECT_UNKNOWN)
        upstream_req_printf(up, "Accept-Encoding: identity\r\n");
    /* Rule header edits: the last edit of a name wins. */
    for (size_t i = 0; x->rw_done && i < x->rw.n_headers; i++) {
        const struct rewrite_header_edit *e = &x->rw.headers[i];
        bool later = false;
        for (size_t k = i + 1; k < x->rw.n_headers; k++)
            later = later || strcasecmp(x->rw.headers[k].name, e->name) == 0;
        if (e->value && !later)
            upstream_req_printf(up, "%s: %s\r\n", e->name, e->value);
    }
    const char *peer = server_req_peer(x->client);
    if (xff)
        upstream_req_printf(up, "X-Forwarded-For: %.*s, %s\r\n", (int)xff->len, xff->p, peer);
    else
        upstream_req_printf(up, "X-Forwarded-For: %s\r\n", peer);
    if (body_len >= 0) {
        if (body_len > 0 || h->content_length >= 0 || h->chunked)
            upstream_req_printf(up, "Content-Length: %lld\r\n", body_len);
    } else if (h->chunked) {
        upstream_req_printf(up, "Transfer-Encoding: chunked\r\n");
    } else if (h->content_length >= 0) {
        upstream_req_printf(up, "Content-Length: %lld\r\n", (long long)h->content_length);
    }
    upstream_req_write(up, "\r\n", 2);
}

/* Forwards client body bytes, re-framing a chunked body chunk by chunk. */
static void write_body(struct exchange *x, const char *data, size_t len)
{
    if (len == 0)
        return;
    capture_body(&x->cap, data, len);
    if (x->client_chunked) {
        upstream_req_printf(x->up, "%zx\r\n", len);
        upstream_req_write(x->up, data, len);
        upstream_req_write(x->up, "\r\n", 2);
    } else {
        upstream_req_write(x->up, data, len);
    }
    if (x->client && upstream_req_output_full(x->up))
        server_req_pause_body(x->client, true);
}

static void end_body(struct exchange *x)
{
    if (x->client_chunked)
        upstream_req_write(x->up, "0\r\n\r\n", 5);
}

static const struct upstream_cb upstream_callbacks;

static int start_upstream(struct exchange *x, struct pupstream *u)
{
    const struct http_head *h = server_req_head(x->client);
    struct upstream_req_options o = {
        .head_request = strcmp(h->method, "HEAD") == 0,
        .response_timeout = x->proxy->cfg.response_timeout,
        .stream_timeout = x->proxy->cfg.stream_timeout,
    };
    x->target = u;
    snprintf(x->rec.upstream, sizeof(x->rec.upstream), "%s", u->name);
    int r = upstream_request(u->pool, &o, &upstream_callbacks, x, &x->up);
    if (r < 0) {
        x->up = NULL;
        fail_client(x, 503, "unavailable_error", "upstream '%s' (%s): %s", u->name, u->target.url,
                    upstream_strerror(r));
        return r;
    }
    u->in_flight++;
    x->counted = true;
    return 0;
}

static struct pupstream *find_model(struct proxy *p, const char *model)
{
    for (size_t i = 0; i < p->n_ups; i++)
        for (size_t m = 0; m < p->ups[i].n_models; m++)
            if (strcmp(p->ups[i].models[m], model) == 0)
                return &p->ups[i];
    return NULL;
}

/* The buffered body is complete (or too big to hold): pick the upstream
 * by "model" and send everything held so far. */
/* Returns false when x was freed (an error answered the client). */
static struct rewrite_request rewrite_query(const struct exchange *x, const char *upstream)
{
    const struct http_head *h = server_req_head(x->client);
    return (struct rewrite_request){
        .method = h->method,
        .path = h->url.p,
        .path_len = h->url.len,
        .dialect = x->rec.dialect,
        .head = h,
        .upstream = upstream,
        .override = x->override,
    };
}

/* Counts a body the rules had to leave alone; says so once per reason. */
static void note_skip(struct exchange *x)
{
    struct proxy *p = x->proxy;
    if (x->rw.skip == REWRITE_SKIP_NONE)
        return;
    const char *reason = rewrite_skip_name(x->rw.skip);
    metrics_rewrite_skipped(p->cfg.metrics, reason);
    if ((unsigned)x->rw.skip < sizeof(p->skip_logged) && !p->skip_logged[x->rw.skip]) {
        p->skip_logged[x->rw.skip] = true;
        if (x->rw.skip == REWRITE_SKIP_RULE_FAILED)
            log_warn("rewrite: rule '%s' could not apply to a %s %.*s body; it was skipped "
                     "(counted in tokentap_rewrite_skipped_total)",
                     x->rw.failed_rule ? x->rw.failed_rule : "?", x->rec.method,
                     (int)strlen(x->rec.route), x->rec.route);
        else
            log_warn("rewrite: a request body was forwarded unchanged: %s (a JSON object with "
                     "Content-Type: application/json is needed; counted in "
                     "tokentap_rewrite_skipped_total)",
                     reason);
    }
}

/* The upstream for a model name, or NULL after answering 404 (reject). */
static struct pupstream *route_model(struct exchange *x, const char *model, bool *ret_failed)
{
    struct proxy *p = x->proxy;
    *ret_failed = false;
    if (!model || !model[0])
        return p->def;
    struct pupstream *m = find_model(p, model);
    if (m || !p->cfg.reject_unknown_models)
        return m ? m : p->def;
    char known[300] = "";
    for (size_t i = 0; i < p->n_ups; i++)
        for (size_t k = 0; k < p->ups[i].n_models; k++)
            snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
                     known[0] ? ", " : "", p->ups[i].models[k]);
    *ret_failed = true;
    fail_client(x, 404, "not_found_error", "model '%s' is not served by this proxy (known: %s)",
                model, known);
    return NULL;
}

/* The buffered body is complete (or too big to hold): read its model,
 * apply the rewrite rules, pick the upstream by the final model and send
 * everything held so far. Returns false when x was freed (answered). */
static bool route_buffered(struct exchange *x, bool complete)
{
    struct proxy *p = x->proxy;
    struct pupstream *u = p->def;
    size_t len = evbuffer_get_length(x->body);
    const char *text = complete ? (const char *)evbuffer_pullup(x->body, -1) : NULL;
    if (complete && !text && len)
        complete = false;
    char model[sizeof(x->rec.model)] = "";
    bool failed = false;
    if (complete && rewrite_body_model(text, len, model, sizeof(model)) < 0)
        model[0] = '\0';
    if (complete && !x->rewrite_wanted) {
        u = route_model(x, model, &failed);
        if (failed)
            return false;
        x->rec.thinking = rewrite_body_thinking(x->rec.dialect, text, len);
    }
    if (x->rewrite_wanted) {
        /* Rules may match the upstream the original model picks. */
        struct pupstream *first = p->def;
        if (complete && model[0] && find_model(p, model))
            first = find_model(p, model);
        struct rewrite_request q = rewrite_query(x, first->name);
        if (rewrite_apply(p->cfg.rules, &q, text, complete ? len : len + 1, &x->rw) == 0) {
            x->rw_done = true;
            note_skip(x);
            snprintf(x->rec.rules, sizeof(x->rec.rules), "%s", x->rw.rules);
            x->rec.thinking = x->rw.thinking;
            if (x->rw.changed) {
                text = x->rw.body;
                len = x->rw.body_len;
                if (rewrite_body_model(text, len, model, sizeof(model)) < 0)
                    model[0] = '\0';
            }
        }
        if (complete) {
            u = route_model(x, model, &failed);
            if (failed)
                return false;
        }
    }
    snprintf(x->rec.model, sizeof(x->rec.model), "%s", model);
    if (start_upstream(x, u) < 0)
        return false;
    x->body_mode = BODY_STREAM;
    if (complete) {
        x->client_chunked = false; /* re-framed with a Content-Length */
        write_request_head(x, (long long)len);
        if (x->rw_done && x->rw.changed) {
            write_body(x, text, len);
            evbuffer_drain(x->body, evbuffer_get_length(x->body));
        }
    } else {
        write_request_head(x, -1);
    }
    struct evbuffer_iovec v;
    while (evbuffer_get_length(x->body) > 0 && evbuffer_peek(x->body, -1, NULL, &v, 1) == 1) {
        write_body(x, v.iov_base, v.iov_len);
        evbuffer_drain(x->body, v.iov_len);
    }
    if (complete)
        end_body(x);
    upstream_req_flush(x->up);
    return true;
}

static void on_token(void *ctx, const struct record *r, usec_t t)
{
    struct exchange *x = ctx;
    metrics_token(x->proxy->cfg.metrics, &x->rec, t);
    if (x->proxy->cfg.live)
        live_token(x->proxy->cfg.live, &x->rec, t);
}

static void on_text(void *ctx, enum dialect_token_kind kind, const char *text, size_t len)
{
    struct exchange *x = ctx;
    capture_text(&x->cap, kind, text, len);
}

static void on_event(void *ctx, const struct sse_event *ev, usec_t t)
{
    struct exchange *x = ctx;
    capture_event(&x->cap, ev, t, x->rec.t_start);
}

static void copy_header(const struct http_head *h, const char *name, char *dst, size_t len)
{
    const struct http_str *v = http_head_get(h, name);
    if (v && !dst[0])
        snprintf(dst, len, "%.*s", (int)v->len, v->p);
}

/* What the request is, before anything is sent. */
static void start_record(struct exchange *x, const struct http_head *h)
{
    struct record *r = &x->rec;
    record_begin(r, server_req_id(x->client), h->method, h->url.p, h->url.len,
                 server_req_head_time(x->client));
    copy_header(h, "user-agent", r->client, sizeof(r->client));
    if (x->proxy->cfg.session_header)
        copy_header(h, x->proxy->cfg.session_header, r->session, sizeof(r->session));
    copy_header(h, "x-claude-code-session-id", r->session, sizeof(r->session));
    copy_header(h, "x-session-id", r->session, sizeof(r->session));
    tap_init(&x->tap, r, r->dialect);
    x->tap.on_token = on_token;
    x->tap.ctx = x;
    /* Recording: keep the head now, the body as it goes out, the answer
     * as the tap reads it. Out of memory just means no trace line. */
    if (x->proxy->cfg.trace && capture_init(&x->cap, h, x->proxy->cfg.trace_events) == 0) {
        x->tap.on_text = on_text;
        x->tap.on_event = on_event;
    }
}

static void on_head(void *ctx, struct server_req *req)
{
    struct proxy *p = ctx;
    const struct http_head *h = server_req_head(req);
    struct exchange *x = calloc(1, sizeof(*x));
    if (!x) {
        server_req_error(req, 500, "server_error", "out of memory");
        return;
    }
    x->proxy = p;
    x->client = req;
    x->next = p->exchanges;
    if (p->exchanges)
        p->exchanges->prev = x;
    p->exchanges = x;
    p->in_flight++;
    server_req_set_data(req, x);
    x->client_chunked = h->chunked;
    x->close_client = !h->keep_alive;
    start_record(x, h);

    if (rewrite_thinking_override(h, &x->override) < 0) {
        fail_client(x, 400, "invalid_request_error",
                    "X-Tokentap-Thinking: expected on, off or pass");
        return;
    }
    struct rewrite_request q = rewrite_query(x, p->n_ups == 1 ? p->def->name : NULL);
    x->rewrite_wanted = rewrite_wants_body(p->cfg.rules, &q);

    /* Bodies of measured routes (and of every POST when a model picks the
     * upstream, or a rule may edit it) are read whole first: the model
     * names the upstream and the record, the rules edit it. llama-server
     * needs the whole body before it starts anyway. */
    bool has_body = h->chunked || h->content_length > 0;
    bool post = strcmp(h->method, "POST") == 0;
    bool too_big = h->content_length > 0 && (uint64_t)h->content_length > p->cfg.route_body_limit;
    if (x->rewrite_wanted && (!has_body || too_big)) {
        /* Header edits still apply; a body too big to hold is counted. */
        if (rewrite_apply(p->cfg.rules, &q, NULL, has_body ? (size_t)h->content_length : 0,
                          &x->rw) == 0) {
            x->rw_done = true;
            note_skip(x);
            snprintf(x->rec.rules, sizeof(x->rec.rules), "%s", x->rw.rules);
        }
    }
    if (!has_body) {
        x->body_mode = BODY_NONE;
        x->body_done = true;
    } else if (!too_big && (x->rewrite_wanted || (post && (p->n_ups > 1 || x->rec.dialect != DIALECT_UNKNOWN)))) {
        x->body_mode = BODY_BUFFER;
        x->body = evbuffer_new();
        if (!x->body) {
            fail_client(x, 500, "server_error", "out of memory");
            return;
        }
        return; /* the upstream is chosen when the body is in */
    } else {
        x->body_mode = BODY_STREAM;
    }
    if (start_upstream(x, p->def) < 0)
        return;
    write_request_head(x, -1);
    /* Out now: a bodiless request has nothing else that would flush it,
     * and a kept-alive connection does not write on its own. */
    upstream_req_flush(x->up);
}

static void on_body(void *ctx, struct server_req *req, const char *data, size_t len)
{
    struct exchange *x = server_req_data(req);
    if (!x)
        return;
    if (x->body_mode == BODY_BUFFER) {
        evbuffer_add(x->body, data, len);
        if (evbuffer_get_length(x->body) > x->proxy->cfg.route_body_limit)
            route_buffered(x, false); /* too big to hold: stream to the default */
        return;
    }
    if (x->up) {
        write_body(x, data, len);
        upstream_req_flush(x->up);
    }
}

static void on_end(void *ctx, struct server_req *req)
{
    struct exchange *x = server_req_data(req);
    if (!x)
        return;
    x->body_done = true;
    x->rec.t_start = server_req_received(req);
    if (x->body_mode == BODY_BUFFER) {
        if (!route_buffered(x, true))
            return;
    } else if (x->up && x->body_mode == BODY_STREAM) {
        end_body(x);
        upstream_req_flush(x->up);
    }
    /* t_start is the last request byte: concurrency is counted from here. */
    if (x->up && !x->begun) {
        metrics_begin(x->proxy->cfg.metrics, &x->rec, x->rec.t_start);
        if (x->proxy->cfg.live)
            live_begin(x->proxy->cfg.live, &x->rec, server_req_peer(req), x->rec.t_start);
        x->begun = true;
    }
}

static void on_drain(void *ctx, struct server_req *req)
{
    struct exchange *x = server_req_data(req);
    if (x && x->up)
        upstream_req_pause(x->up, false);
}

static void on_abort(void *ctx, struct server_req *req)
{
    struct exchange *x = server_req_data(req);
    if (!x)
        return;
    /* The client is gone: close the upstream connection at once so
     * llama-server frees the slot (exchange_free cancels it). */
    x->client = NULL;
    exchange_free(x);
}

/* The client's request failed after its head (a bad or too large body,
 * a stalled one): answer status if nothing went out yet, and record the
 * request either way (it never reached on_end, where records begin). */
static void on_error(void *ctx, struct server_req *req, int status, const char *message)
{
    struct exchange *x = server_req_data(req);
    if (!x) {
        server_req_error(req, status, "invalid_request_error", message);
        return;
    }
    snprintf(x->rec.error, sizeof(x->rec.error), "%s", message);
    if (!x->rec.upstream[0]) /* the body never let it pick one */
        snprintf(x->rec.upstream, sizeof(x->rec.upstream), "%s", x->proxy->def->name);
    if (!x->begun) {
        x->rec.t_start = clock_now();
        metrics_begin(x->proxy->cfg.metrics, &x->rec, x->rec.t_start);
        x->begun = true;
    }
    if (x->head_sent) {
        tap_done(x, clock_now());
        finalize(x, RECORD_CLIENT_ABORT);
        x->client = NULL;
        exchange_free(x);
        server_req_abort(req);
        return;
    }
    x->rec.status = status;
    finalize(x, RECORD_HTTP_ERROR);
    fail_client(x, status, "invalid_request_error", "%s", message);
}

static const struct server_handler handler = {
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_drain = on_drain,
    .on_abort = on_abort,
    .on_error = on_error,
};

const struct server_handler *proxy_handler(void)
{
    return &handler;
}

/* --- upstream callbacks --- */

static void up_on_head(void *ctx, const struct http_head *uh, usec_t t)
{
    struct exchange *x = ctx;
    struct server_req *c = x->client;
    if (x->target->failing) {
        log_info("upstream '%s' (%s) answers again", x->target->name, x->target->target.url);
        x->target->failing = false;
    }
    if (!c)
        return;
    x->rec.t_forwarded = upstream_req_ready_time(x->up);
    tap_head(&x->tap, uh, t);
    if (x->proxy->cfg.live && x->begun)
        live_head(x->proxy->cfg.live, &x->rec, t);
    const struct http_head *ch = server_req_head(c);
    bool client_10 = ch->version_major == 1 && ch->version_minor == 0;
    bool no_body = strcmp(ch->method, "HEAD") == 0 || uh->status == 204 || uh->status == 304 ||
                   (uh->status >= 100 && uh->status < 200);
    if (no_body)
        x->resp_mode = RESP_NONE;
    else if (uh->chunked && client_10)
        x->resp_mode = RESP_DECHUNK;
    else
        x->resp_mode = RESP_RAW;
    /* A body that ends when the upstream closes ends the client's
     * connection too; so does an HTTP/1.0 client. */
    if (!no_body && !uh->chunked && uh->content_length < 0)
        x->close_client = true;
    if (client_10)
        x->close_client = true;

    server_req_printf(c, "HTTP/1.1 %d %.*s\r\n", uh->status, (int)uh->reason.len, uh->reason.p);
    bool sse = false, accel = false;
    for (size_t i = 0; i < uh->n_headers; i++) {
        struct http_str n = uh->headers[i].name, v = uh->headers[i].value;
        if (is_name(n, "transfer-encoding")) {
            /* Kept when the chunked bytes pass through as they are. */
            if (x->resp_mode == RESP_RAW)
                server_req_printf(c, "%.*s: %.*s\r\n", (int)n.len, n.p, (int)v.len, v.p);
            continue;
        }
        if (hop_by_hop(uh, n))
            continue;
        if (is_name(n, "content-type") && v.len >= 17 && strncasecmp(v.p, "text/event-stream", 17) == 0)
            sse = true;
        if (is_name(n, "x-accel-buffering"))
            accel = true;
        server_req_printf(c, "%.*s: %.*s\r\n", (int)n.len, n.p, (int)v.len, v.p);
    }
    if (sse && !accel)
        server_req_printf(c, "X-Accel-Buffering: no\r\n");
    if (x->close_client)
        server_req_printf(c, "Connection: close\r\n");
    server_req_write(c, "\r\n", 2);
    x->head_sent = true;
}

static void up_on_raw(void *ctx, const char *data, size_t len, usec_t t)
{
    struct exchange *x = ctx;
    /* Nothing goes to the client before our own head. */
    if (!x->client || !x->head_sent || x->resp_mode != RESP_RAW)
        return;
    server_req_write(x->client, data, len);
    /* A client that reads slower than the upstream writes: stop reading
     * the upstream until its buffer drains (bounded memory per stream). */
    if (server_req_output_full(x->client))
        upstream_req_pause(x->up, true);
}

static void up_on_body(void *ctx, const char *data, size_t len, usec_t t)
{
    struct exchange *x = ctx;
    if (!x->client)
        return;
    if (x->resp_mode == RESP_DECHUNK) {
        server_req_write(x->client, data, len);
        if (server_req_output_full(x->client))
            upstream_req_pause(x->up, true);
    }
    /* The bytes are on their way to the client; look at them later. */
    tap_later(x, data, len, t);
}

static void up_on_drain(void *ctx)
{
    struct exchange *x = ctx;
    if (x->client)
        server_req_pause_body(x->client, false);
}

static int error_status(int err)
{
    switch (err) {
    case UPSTREAM_ERR_CONNECT_TIMEOUT:
    case UPSTREAM_ERR_TLS_TIMEOUT:
    case UPSTREAM_ERR_TIMEOUT:
        return 504;
    case UPSTREAM_ERR_QUEUE_FULL:
        return 503;
    default:
        return 502;
    }
}

static void up_on_done(void *ctx, int err, usec_t t)
{
    struct exchange *x = ctx;
    x->up = NULL;
    tap_done(x, t);
    /* After the head a timeout is the stream's silence, not the wait for
     * the response. */
    if (err == UPSTREAM_ERR_TIMEOUT && x->rec.t_response_head)
        snprintf(x->rec.error, sizeof(x->rec.error),
                 "stream stalled: no bytes within the stream timeout (--stream-timeout)");
    else if (err)
        snprintf(x->rec.error, sizeof(x->rec.error), "%s", upstream_strerror(err));
    finalize(x, tap_outcome(&x->tap, err, false));
    struct server_req *c = x->client;
    if (!c) {
        exchange_free(x);
        return;
    }
    if (err == 0) {
        bool close = x->close_client || !x->body_done;
        x->client = NULL;
        exchange_free(x);
        server_req_finish(c, close);
        return;
    }
    if (!x->head_sent) {
        struct pupstream *u = x->target;
        /* Say it once when an upstream starts failing, not per request. */
        if (!u->failing)
            log_warn("upstream '%s' (%s): %s", u->name, u->target.url, upstream_strerror(err));
        u->failing = true;
        fail_client(x, error_status(err), "upstream_error", "upstream '%s' (%s): %s", u->name,
                    u->target.url, upstream_strerror(err));
        return;
    }
    /* Mid-stream: the client must see a truncated response, never a
     * clean end. */
    x->client = NULL;
    exchange_free(x);
    server_req_abort(c);
}

static const struct upstream_cb upstream_callbacks = {
    .on_head = up_on_head,
    .on_raw = up_on_raw,
    .on_body = up_on_body,
    .on_drain = up_on_drain,
    .on_done = up_on_done,
};
