#include "serve/admin.h"

#include <string.h>

#include <event2/buffer.h>

#include "core/jsonw.h"
#include "serve/dash.h"
#include "tap/metrics.h"

#define ADMIN_PREFIX "/tokentap/"

bool admin_match(const struct http_head *h)
{
    size_t n = strlen(ADMIN_PREFIX);
    return h->url.len >= n && memcmp(h->url.p, ADMIN_PREFIX, n) == 0;
}

static bool path_is(const struct http_head *h, const char *path)
{
    size_t n = strlen(path);
    return h->url.len >= n && memcmp(h->url.p, path, n) == 0 &&
           (h->url.len == n || h->url.p[n] == '?');
}

static void respond_buffer(struct server_req *req, int status, const char *type, struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);
    const char *body = (const char *)evbuffer_pullup(b, -1);
    server_req_respond(req, status, type, body ? body : "", len);
}

static void health(const struct admin_source *src, struct server_req *req)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        server_req_error(req, 500, "server_error", "out of memory");
        return;
    }
    evbuffer_add_printf(b, "{\"status\":\"ok\",\"version\":\"%s\",\"in_flight\":%u,\"upstreams\":[",
                        TOKENTAP_VERSION, src->in_flight(src->ctx));
    size_t n = src->n_upstreams ? src->n_upstreams(src->ctx) : 0;
    for (size_t i = 0; i < n; i++) {
        struct admin_upstream u;
        src->upstream(src->ctx, i, &u);
        evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
        jsonw_cstr(b, u.name);
        evbuffer_add_printf(b, ",\"url\":");
        jsonw_cstr(b, u.url);
        evbuffer_add_printf(b, ",\"default\":%s,\"models\":[", u.is_default ? "true" : "false");
        for (size_t m = 0; m < u.n_models; m++) {
            if (m)
                EVBUFFER_ADD_LIT(b, ",");
            jsonw_cstr(b, u.models[m]);
        }
        evbuffer_add_printf(b,
                            "],\"in_flight\":%u,\"connections_open\":%u,\"connections_idle\":%u,"
                            "\"waiting\":%u,\"connects\":%llu,\"reuses\":%llu,\"requests\":%llu,"
                            "\"failures\":%llu}",
                            u.in_flight, u.pool.open, u.pool.idle, u.pool.waiting,
                            (unsigned long long)u.pool.connects, (unsigned long long)u.pool.reuses,
                            (unsigned long long)u.pool.requests, (unsigned long long)u.pool.failures);
    }
    evbuffer_add_printf(b, "]}");
    respond_buffer(req, 200, "application/json", b);
    evbuffer_free(b);
}

/* Value of ?name=... as an unsigned number, or dflt. */
static unsigned long query_num(const struct http_head *h, const char *name, unsigned long dflt)
{
    const char *q = memchr(h->url.p, '?', h->url.len);
    size_t nlen = strlen(name);
    if (!q)
        return dflt;
    const char *end = h->url.p + h->url.len;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            unsigned long v = 0;
            const char *d = p + nlen + 1;
            if (d == stop)
                return dflt;
            for (; d < stop && *d >= '0' && *d <= '9' && v < 1000000; d++)
                v = v * 10 + (unsigned long)(*d - '0');
            return d == stop ? v : dflt;
        }
        p = stop + 1;
    }
    return dflt;
}

static void with_buffer(const struct admin_source *src, struct server_req *req, int kind)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        server_req_error(req, 500, "server_error", "out of memory");
        return;
    }
    struct metrics *m = src->metrics;
    const struct http_head *h = server_req_head(req);
    if (kind == 0) {
        metrics_prometheus(m, b, clock_now());
        respond_buffer(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    } else if (kind == 1) {
        metrics_stats_json(m, b, clock_now());
        respond_buffer(req, 200, "application/json", b);
    } else {
        size_t limit = query_num(h, "limit", 20);
        metrics_recent_json(m, b, limit, query_num(h, "gaps", 0) != 0);
        respond_buffer(req, 200, "application/json", b);
    }
    evbuffer_free(b);
}

static void on_head(void *ctx, struct server_req *req)
{
    const struct admin_source *src = ctx;
    const struct http_head *h = server_req_head(req);
    bool get = strcmp(h->method, "GET") == 0 || strcmp(h->method, "HEAD") == 0;
    if (!admin_match(h)) {
        if (get && path_is(h, "/")) {
            server_req_printf(req, "HTTP/1.1 302 Found\r\nLocation: /tokentap/\r\n"
                                   "Content-Length: 0\r\n\r\n");
            server_req_finish(req, false);
            return;
        }
        server_req_error(req, 404, "not_found_error",
                         "this port serves tokentap's dashboard at /tokentap/ only");
        return;
    }
    if (get && path_is(h, "/tokentap/health")) {
        health(src, req);
        return;
    }
    if (get && path_is(h, "/tokentap/metrics")) {
        with_buffer(src, req, 0);
        return;
    }
    if (get && path_is(h, "/tokentap/stats")) {
        with_buffer(src, req, 1);
        return;
    }
    if (get && path_is(h, "/tokentap/requests")) {
        with_buffer(src, req, 2);
        return;
    }
    if (get && src->dash && path_is(h, "/tokentap/")) {
        dash_page(src->dash, req);
        return;
    }
    if (strcmp(h->method, "GET") == 0 && src->dash && path_is(h, "/tokentap/events")) {
        dash_events(src->dash, req);
        return;
    }
    server_req_error(req, 404, "not_found_error",
                     "unknown tokentap endpoint: GET /tokentap/ (the dashboard), /tokentap/health, "
                     "/tokentap/metrics, /tokentap/stats, /tokentap/requests?limit=N&gaps=1, "
                     "/tokentap/events");
}

static void on_abort(void *ctx, struct server_req *req)
{
    const struct admin_source *src = ctx;
    if (src->dash)
        dash_abort(src->dash, req);
}

static const struct server_handler handler = {
    .on_head = on_head,
    .on_abort = on_abort,
};

const struct server_handler *admin_handler(void)
{
    return &handler;
}
