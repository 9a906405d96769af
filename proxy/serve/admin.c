#include "serve/admin.h"

#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "core/jsonw.h"
#include "serve/dash.h"
#include "tap/metrics.h"
#include "tap/trace.h"

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

/* Trace records lost while recording: not queued (queue full, too long,
 * invalid, no memory) or queued and then not written (a full disk). */
static uint64_t trace_lost(const struct trace_writer_stats *ts)
{
    return ts->lines_dropped + ts->write_errors;
}

static void health_trace(const struct admin_source *src, struct evbuffer *b)
{
    struct trace_writer *w = src->trace;
    if (!w)
        return;
    struct trace_writer_stats ts;
    trace_writer_stats(w, &ts);
    char file[512];
    trace_writer_current_file(w, file, sizeof(file));
    evbuffer_add_printf(b, ",\"trace\":{\"file\":");
    jsonw_cstr(b, file);
    evbuffer_add_printf(b, ",\"written\":%llu,\"lost\":%llu,\"queued\":%llu,\"last_error\":",
                        (unsigned long long)ts.lines_written, (unsigned long long)trace_lost(&ts),
                        (unsigned long long)ts.queued_lines);
    if (ts.last_write_error)
        jsonw_cstr(b, strerror(-ts.last_write_error));
    else
        EVBUFFER_ADD_LIT(b, "null");
    EVBUFFER_ADD_LIT(b, "}");
}

static void prometheus_trace(const struct admin_source *src, struct evbuffer *b)
{
    struct trace_writer *w = src->trace;
    if (!w)
        return;
    struct trace_writer_stats ts;
    trace_writer_stats(w, &ts);
    evbuffer_add_printf(b,
                        "# HELP tokentap_trace_records_total Trace records (--record) by result: "
                        "written, or lost (dropped or failed to write).\n"
                        "# TYPE tokentap_trace_records_total counter\n"
                        "tokentap_trace_records_total{result=\"written\"} %llu\n"
                        "tokentap_trace_records_total{result=\"lost\"} %llu\n",
                        (unsigned long long)ts.lines_written, (unsigned long long)trace_lost(&ts));
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
                            "\"failures\":%llu,\"tls_resumed\":%llu}",
                            u.in_flight, u.pool.open, u.pool.idle, u.pool.waiting,
                            (unsigned long long)u.pool.connects, (unsigned long long)u.pool.reuses,
                            (unsigned long long)u.pool.requests, (unsigned long long)u.pool.failures,
                            (unsigned long long)u.pool.tls_resumed);
    }
    evbuffer_add_printf(b, "]");
    health_trace(src, b);
    evbuffer_add_printf(b, "}");
    respond_buffer(req, 200, "application/json", b);
    evbuffer_free(b);
}

/* The raw value of ?name=... (a view into the URL), or false. */
static bool query_value(const struct http_head *h, const char *name, struct http_str *ret)
{
    const char *q = memchr(h->url.p, '?', h->url.len);
    size_t nlen = strlen(name);
    if (!q)
        return false;
    const char *end = h->url.p + h->url.len;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            *ret = (struct http_str){p + nlen + 1, (size_t)(stop - p) - nlen - 1};
            return true;
        }
        p = stop + 1;
    }
    return false;
}

/* Value of ?name=... as an unsigned number, or dflt. */
static unsigned long query_num(const struct http_head *h, const char *name, unsigned long dflt)
{
    struct http_str v;
    if (!query_value(h, name, &v) || v.len == 0)
        return dflt;
    unsigned long n = 0;
    size_t i = 0;
    for (; i < v.len && v.p[i] >= '0' && v.p[i] <= '9' && n < 1000000; i++)
        n = n * 10 + (unsigned long)(v.p[i] - '0');
    return i == v.len ? n : dflt;
}

void admin_access_loopback(struct admin_access *a)
{
    *a = (struct admin_access){0};
    net_parse_cidr("127.0.0.0/8", &a->allow[a->n_allow++]);
    net_parse_cidr("::1/128", &a->allow[a->n_allow++]);
}

/* Equal, in time that does not depend on where they differ. */
static bool token_equal(const char *want, const char *got, size_t got_len)
{
    size_t n = strlen(want);
    unsigned char diff = n != got_len;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < got_len ? got[i] : 0);
    return diff == 0;
}

/* 0 when req may ask, else the status it gets (and why, in *ret_why). */
static int access_check(const struct admin_access *a, struct server_req *req, const char **ret_why)
{
    if (!a)
        return 0;
    bool allowed = a->n_allow == 0;
    for (size_t i = 0; i < a->n_allow && !allowed; i++)
        allowed = net_cidr_contains(&a->allow[i], server_req_peer(req));
    if (!allowed) {
        *ret_why = "your address may not use the /tokentap/ endpoints: loopback clients only by "
                   "default, else admin.allow (--admin-allow); see docs/serve.md";
        return 403;
    }
    if (!a->token)
        return 0;
    const struct http_head *h = server_req_head(req);
    const struct http_str *auth = http_head_get(h, "authorization");
    struct http_str t;
    if (auth && auth->len > 7 && strncasecmp(auth->p, "Bearer ", 7) == 0 &&
        token_equal(a->token, auth->p + 7, auth->len - 7))
        return 0;
    if (query_value(h, "token", &t) && token_equal(a->token, t.p, t.len))
        return 0;
    *ret_why = "the /tokentap/ endpoints need the admin token: Authorization: Bearer TOKEN, or ?token=TOKEN";
    return 401;
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
        prometheus_trace(src, b);
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
    const char *why = NULL;
    int denied = access_check(src->access, req, &why);
    if (denied) {
        server_req_error(req, denied, denied == 401 ? "authentication_error" : "permission_error", why);
        return;
    }
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
                         "this is tokentap's admin listener: GET /tokentap/ (the dashboard), "
                         "/tokentap/health, /tokentap/metrics, /tokentap/stats, /tokentap/requests");
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

/* A bad body after on_head: only the event stream is still going (the
 * rest was answered in on_head), and it has sent bytes: cut it. */
static void on_error(void *ctx, struct server_req *req, int status, const char *message)
{
    const struct admin_source *src = ctx;
    if (!src->dash || !server_req_data(req))
        return;
    dash_abort(src->dash, req);
    server_req_abort(req);
}

static const struct server_handler handler = {
    .on_head = on_head,
    .on_abort = on_abort,
    .on_error = on_error,
};

const struct server_handler *admin_handler(void)
{
    return &handler;
}
