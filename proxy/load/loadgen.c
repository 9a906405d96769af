#include "load/loadgen.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "core/jsonw.h"
#include <event2/event.h>

#include "tap/live.h"
#include "tap/metrics.h"
#include "tap/reqlog.h"
#include "tap/tap.h"

struct lgreq {
    struct loadgen *lg;           /* borrowed */
    struct lgreq *prev, *next;    /* the in-flight list */
    struct upstream_req *up;      /* borrowed until on_done */
    loadgen_done_cb done;
    void *ctx;                    /* borrowed */
    struct record rec;
    struct tap tap;
    /* Made on the first byte: most streams have one kind of text and no
     * body, and an empty evbuffer is 144 bytes of heap. */
    struct evbuffer *text[DIALECT_TOKEN_KINDS]; /* owned, may be NULL: output text per kind */
    struct evbuffer *body;        /* owned, may be NULL: a non-streamed body, for the caller */
    /* A piece did not fit: the buffer stops there (no holes from later,
     * smaller pieces). */
    bool text_full[DIALECT_TOKEN_KINDS], body_full;
    bool json_body;
    bool counted;                 /* in lg->in_flight */
    struct event *later;          /* owned: reports a failure to send from the loop */
    int early_err;
};

struct loadgen {
    struct event_base *base;      /* borrowed */
    struct loadgen_options o;
    char label[64];
    struct upstream_pool *pool;   /* owned */
    struct lgreq *reqs;           /* owned list */
    unsigned in_flight;
    uint64_t next_id;
};

void loadgen_options_default(struct loadgen_options *o)
{
    *o = (struct loadgen_options){.max_text = 4u * 1024 * 1024, .keep_text = true};
    upstream_pool_options_default(&o->pool);
    /* A load generator wants every stream on its own connection. */
    o->pool.max_connections = 65536;
    o->pool.max_queue = 1u << 20;
}

int loadgen_new(struct event_base *base, const struct loadgen_options *o, struct loadgen **ret,
                struct config_err *err)
{
    struct url_target t;
    int r = url_parse(o->url, &t, err);
    if (r < 0)
        return r;
    struct loadgen *lg = calloc(1, sizeof(*lg));
    if (!lg)
        return -ENOMEM;
    lg->base = base;
    lg->o = *o;
    lg->o.url = NULL;
    lg->o.label = NULL;
    if (lg->o.max_text == 0)
        lg->o.max_text = 4u * 1024 * 1024;
    snprintf(lg->label, sizeof(lg->label), "%.*s", (int)sizeof(lg->label) - 1,
             o->label ? o->label : t.url);
    r = upstream_pool_new(base, &t, &lg->o.pool, &lg->pool, err);
    if (r < 0) {
        free(lg);
        return r;
    }
    *ret = lg;
    return 0;
}

static void req_free(struct lgreq *q)
{
    struct loadgen *lg = q->lg;
    /* Linked from the start of loadgen_send, and counted until complete(). */
    assert(!q->counted || lg->in_flight > 0);
    assert(q->prev ? q->prev->next == q : lg->reqs == q);
    if (q->up)
        upstream_req_cancel(q->up);
    if (q->prev)
        q->prev->next = q->next;
    else if (lg->reqs == q)
        lg->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    if (q->counted)
        lg->in_flight--;
    for (int k = 0; k < DIALECT_TOKEN_KINDS; k++)
        if (q->text[k])
            evbuffer_free(q->text[k]);
    if (q->body)
        evbuffer_free(q->body);
    if (q->later)
        event_free(q->later);
    tap_finish(&q->tap);
    record_finish(&q->rec);
    free(q);
}

void loadgen_free(struct loadgen *lg)
{
    if (!lg)
        return;
    while (lg->reqs)
        req_free(lg->reqs);
    upstream_pool_free(lg->pool);
    free(lg);
}

unsigned loadgen_in_flight(const struct loadgen *lg)
{
    return lg->in_flight;
}

static const char *text_of(struct evbuffer *b, size_t *len)
{
    *len = 0;
    if (!b || evbuffer_add(b, "", 1) < 0) /* NUL, not counted */
        return "";
    *len = evbuffer_get_length(b) - 1;
    return (const char *)evbuffer_pullup(b, -1);
}

/* Hands the finished record to metrics, the log and the caller, then frees. */
static void complete(struct lgreq *q, enum record_outcome outcome)
{
    struct loadgen *lg = q->lg;
    struct record *r = &q->rec;
    if (r->outcome == RECORD_IN_PROGRESS)
        r->outcome = outcome;
    if (r->t_end == 0)
        r->t_end = clock_now();
    if (lg->o.metrics)
        metrics_end(lg->o.metrics, r, r->t_end);
    if (lg->o.live)
        live_end(lg->o.live, r, r->t_end);
    if (lg->o.log)
        reqlog_write(lg->o.log, r);
    struct loadgen_result res = {.rec = r};
    res.content = text_of(q->text[DIALECT_TOKEN_CONTENT], &res.content_len);
    res.reasoning = text_of(q->text[DIALECT_TOKEN_REASONING], &res.reasoning_len);
    res.tools = text_of(q->text[DIALECT_TOKEN_TOOL], &res.tools_len);
    if (q->json_body && q->body && evbuffer_get_length(q->body))
        res.body = text_of(q->body, &res.body_len);
    /* The request is no longer in flight when its owner hears of it: a
     * closed loop sends the next one from this callback. */
    q->counted = false;
    lg->in_flight--;
    q->done(q->ctx, &res);
    req_free(q);
}

/* Appends to *b (made on first use) unless that would pass max; a piece
 * that does not fit sets *full and stops the buffer there. */
static void keep(struct evbuffer **b, bool *full, size_t max, const char *data, size_t len)
{
    if (*full)
        return;
    if (!*b && !(*b = evbuffer_new())) {
        *full = true;
        return;
    }
    if (evbuffer_get_length(*b) + len > max || evbuffer_add(*b, data, len) < 0)
        *full = true;
}

static void on_text(void *ctx, enum dialect_token_kind kind, const char *text, size_t len)
{
    struct lgreq *q = ctx;
    keep(&q->text[kind], &q->text_full[kind], q->lg->o.max_text, text, len);
}

static void on_token(void *ctx, const struct record *r, usec_t t)
{
    struct lgreq *q = ctx;
    if (q->lg->o.metrics)
        metrics_token(q->lg->o.metrics, &q->rec, t);
    if (q->lg->o.live)
        live_token(q->lg->o.live, &q->rec, t);
}

static void up_head(void *ctx, const struct http_head *h, usec_t t)
{
    struct lgreq *q = ctx;
    q->rec.t_sent = upstream_req_ready_time(q->up);
    q->rec.t_forwarded = q->rec.t_sent;
    tap_head(&q->tap, h, t);
    q->json_body = q->tap.mode == TAP_JSON;
    if (q->lg->o.live)
        live_head(q->lg->o.live, &q->rec, t);
}

static void up_raw(void *ctx, const char *data, size_t len, usec_t t)
{
}

static void up_body(void *ctx, const char *data, size_t len, usec_t t)
{
    struct lgreq *q = ctx;
    tap_body(&q->tap, data, len, t);
    if (q->json_body)
        keep(&q->body, &q->body_full, TAP_MAX_JSON_BODY, data, len);
}

static void up_done(void *ctx, int err, usec_t t)
{
    struct lgreq *q = ctx;
    q->up = NULL;
    if (q->rec.t_sent == 0)
        q->rec.t_sent = t;
    tap_end(&q->tap, t);
    if (err)
        snprintf(q->rec.error, sizeof(q->rec.error), "%s", upstream_strerror(err));
    complete(q, tap_outcome(&q->tap, err, false));
}

static const struct upstream_cb callbacks = {
    .on_head = up_head,
    .on_raw = up_raw,
    .on_body = up_body,
    .on_done = up_done,
};

static void report_later(evutil_socket_t fd, short what, void *arg)
{
    struct lgreq *q = arg;
    snprintf(q->rec.error, sizeof(q->rec.error), "%s", upstream_strerror(q->early_err));
    complete(q, tap_outcome(&q->tap, q->early_err, false));
}

/* The request head and body, queued on q->up. 0 or -ENOMEM. */
static int write_request(struct loadgen *lg, struct lgreq *q, const struct loadgen_req *rq)
{
    const struct url_target *t = upstream_pool_target(lg->pool);
    int w = upstream_req_printf(q->up, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n",
                                rq->method, t->base_path, rq->path, t->host_header, q->rec.client);
    bool has_ct = false;
    for (size_t i = 0; i < rq->n_headers && w == 0; i++) {
        w = upstream_req_printf(q->up, "%s: %s\r\n", rq->headers[i].name, rq->headers[i].value);
        has_ct = has_ct || strcasecmp(rq->headers[i].name, "content-type") == 0;
    }
    if (w == 0 && q->rec.dialect != DIALECT_UNKNOWN)
        w = upstream_req_printf(q->up, "Accept-Encoding: identity\r\n");
    if (w == 0 && rq->body && !has_ct)
        w = upstream_req_printf(q->up, "Content-Type: application/json\r\n");
    if (w == 0 && rq->body)
        w = upstream_req_printf(q->up, "Content-Length: %zu\r\n\r\n", rq->body_len);
    if (w == 0)
        w = rq->body ? upstream_req_write(q->up, rq->body, rq->body_len)
                     : upstream_req_write(q->up, "\r\n", 2);
    if (w == 0)
        upstream_req_flush(q->up);
    return w < 0 ? -ENOMEM : 0;
}

int loadgen_send(struct loadgen *lg, const struct loadgen_req *rq, loadgen_done_cb done, void *ctx)
{
    struct lgreq *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->lg = lg;
    q->done = done;
    q->ctx = ctx;
    q->next = lg->reqs;
    if (lg->reqs)
        lg->reqs->prev = q;
    lg->reqs = q;
    lg->in_flight++;
    q->counted = true;

    struct record *r = &q->rec;
    usec_t now = clock_now();
    record_begin(r, ++lg->next_id, rq->method, rq->path, strlen(rq->path), now);
    r->t_start = rq->intended ? rq->intended : now;
    snprintf(r->upstream, sizeof(r->upstream), "%s", lg->label);
    snprintf(r->client, sizeof(r->client), "tokentap/%s", TOKENTAP_VERSION);
    if (rq->session)
        snprintf(r->session, sizeof(r->session), "%s", rq->session);
    if (rq->parent)
        snprintf(r->parent, sizeof(r->parent), "%s", rq->parent);
    if (rq->kind)
        snprintf(r->kind, sizeof(r->kind), "%s", rq->kind);
    if (rq->model)
        snprintf(r->model, sizeof(r->model), "%s", rq->model);
    r->thinking = rq->thinking;
    if (rq->rules)
        snprintf(r->rules, sizeof(r->rules), "%s", rq->rules);
    tap_init(&q->tap, r, r->dialect);
    q->tap.on_token = on_token;
    q->tap.on_text = lg->o.keep_text ? on_text : NULL;
    q->tap.ctx = q;

    struct upstream_req_options uo = {
        .head_request = strcmp(rq->method, "HEAD") == 0,
        .response_timeout = lg->o.response_timeout,
        .stream_timeout = lg->o.stream_timeout,
    };
    int err = upstream_request(lg->pool, &uo, &callbacks, q, &q->up);
    if (err < 0) {
        /* Reported from the loop, as promised. */
        q->up = NULL;
        q->early_err = err;
        q->later = evtimer_new(lg->base, report_later, q);
        if (!q->later)
            goto fail;
        struct timeval zero = {0, 0};
        evtimer_add(q->later, &zero);
    } else if (write_request(lg, q, rq) < 0) {
        goto fail; /* req_free cancels the half-written request */
    }
    /* Counted in flight only once nothing can fail: complete() ends it. */
    if (lg->o.metrics)
        metrics_begin(lg->o.metrics, r, r->t_start);
    if (lg->o.live)
        live_begin(lg->o.live, r, NULL, now);
    return 0;
fail:
    req_free(q);
    return -ENOMEM;
}

void loadgen_abort_all(struct loadgen *lg)
{
    while (lg->reqs) {
        struct lgreq *q = lg->reqs;
        if (q->up) {
            upstream_req_cancel(q->up);
            q->up = NULL;
        }
        tap_end(&q->tap, clock_now());
        complete(q, tap_outcome(&q->tap, 0, true));
    }
}

struct fetch {
    struct event_base *base; /* borrowed */
    struct loadgen_fetched *f; /* borrowed */
    bool done;
    int err;
};

static void fetch_done(void *ctx, const struct loadgen_result *res)
{
    struct fetch *x = ctx;
    struct loadgen_fetched *f = x->f;
    f->status = res->rec->status;
    f->outcome = res->rec->outcome;
    snprintf(f->error, sizeof(f->error), "%s", res->rec->error);
    if (res->body) {
        f->body = malloc(res->body_len + 1);
        if (f->body) {
            memcpy(f->body, res->body, res->body_len + 1);
            f->body_len = res->body_len;
        } else {
            x->err = -ENOMEM;
        }
    }
    x->done = true;
    event_base_loopexit(x->base, NULL);
}

int loadgen_fetch(struct event_base *base, const char *url, const struct upstream_tls_options *tls,
                  const struct loadgen_req *rq, usec_t timeout, struct loadgen_fetched *ret,
                  struct config_err *err)
{
    struct loadgen_options o;
    loadgen_options_default(&o);
    o.url = url;
    if (tls)
        o.pool.tls = *tls;
    o.response_timeout = timeout;
    o.stream_timeout = timeout;
    o.keep_text = false;
    struct loadgen *lg = NULL;
    int r = loadgen_new(base, &o, &lg, err);
    if (r < 0)
        return r;
    memset(ret, 0, sizeof(*ret));
    struct fetch x = {.base = base, .f = ret};
    r = loadgen_send(lg, rq, fetch_done, &x);
    while (r == 0 && !x.done) {
        /* 0: a loopexit (perhaps an earlier one); else nothing is left to wait for. */
        if (event_base_dispatch(base) != 0 && !x.done) {
            snprintf(ret->error, sizeof(ret->error), "the event loop ended first");
            break;
        }
    }
    loadgen_free(lg);
    if (r == 0)
        r = x.err;
    if (r < 0) {
        free(ret->body);
        ret->body = NULL;
    }
    return r;
}
