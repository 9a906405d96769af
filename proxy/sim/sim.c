#include "sim/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "core/config.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "sim/sim_internal.h"

#define SIM_KEEPALIVE_MAX 100 /* cpp-httplib's keep_alive_max_count */

void sim_fault_none(struct sim_fault *f)
{
    *f = (struct sim_fault){.disconnect_after = -1, .garbage_after = -1, .stall_after = -1};
}

static int fault_param(const char *params, const char *key, long *ret)
{
    size_t klen = strlen(key);
    for (const char *p = params; p && *p; p = strchr(p, ':')) {
        if (*p == ':')
            p++;
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            char *end = NULL;
            errno = 0;
            long v = strtol(p + klen + 1, &end, 10);
            if (errno || end == p + klen + 1 || v < 0 || (*end != '\0' && *end != ':'))
                return -EINVAL;
            *ret = v;
            return 0;
        }
    }
    return -ENOENT;
}

static int fault_parse_one(const char *spec, struct sim_fault *f)
{
    const char *colon = strchr(spec, ':');
    size_t kind_len = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *params = colon ? colon + 1 : "";
    long v = 0, ms = 0;
#define KIND(s) (kind_len == strlen(s) && strncmp(spec, s, kind_len) == 0)
    if (KIND("status")) {
        char *end = NULL;
        v = strtol(params, &end, 10);
        if (end == params || *end != '\0' || v < 100 || v > 599)
            return -EINVAL;
        f->status = (int)v;
    } else if (KIND("disconnect")) {
        if (fault_param(params, "after", &v) < 0)
            return -EINVAL;
        f->disconnect_after = v;
    } else if (KIND("garbage")) {
        if (fault_param(params, "after", &v) < 0)
            return -EINVAL;
        f->garbage_after = v;
    } else if (KIND("stall")) {
        if (fault_param(params, "ms", &ms) < 0)
            return -EINVAL;
        if (fault_param(params, "after", &v) == -EINVAL)
            return -EINVAL;
        f->stall_after = v;
        f->stall_us = (usec_t)ms * USEC_PER_MSEC;
    } else if (KIND("slow-headers")) {
        if (fault_param(params, "ms", &ms) < 0)
            return -EINVAL;
        f->slow_headers_us = (usec_t)ms * USEC_PER_MSEC;
    } else {
        return -EINVAL;
    }
#undef KIND
    return 0;
}

int sim_fault_parse(const char *spec, struct sim_fault *ret)
{
    struct sim_fault f;
    sim_fault_none(&f);
    char buf[256];
    if (strlen(spec) >= sizeof(buf))
        return -EINVAL;
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (fault_parse_one(tok, &f) < 0)
            return -EINVAL;
    }
    *ret = f;
    return 0;
}

/* --- responses --- */

void sim_add(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, s, strlen(s));
}

/* Writes the status line and llama-server's headers. content_length < 0
 * means a chunked event stream. */
static void write_head(struct exchange *x, int status, const char *content_type,
                       long long content_length, const char *extra)
{
    if (!x->req)
        return;
    bool close = x->close || status >= 400;
    server_req_printf(x->req,
                      "HTTP/1.1 %d %s\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: %s\r\n%s",
                      status, http_status_reason(status), x->origin, extra ? extra : "");
    if (content_length < 0)
        server_req_printf(x->req, "X-Accel-Buffering: no\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n",
                          content_type);
    else
        server_req_printf(x->req, "Content-Type: %s\r\nContent-Length: %lld\r\n", content_type,
                          content_length);
    server_req_printf(x->req, close ? "Connection: close\r\n\r\n"
                                    : "Keep-Alive: timeout=5, max=100\r\n\r\n");
    /* llama-server sends its head before the first token. */
    server_req_flush(x->req);
}

static void exchange_free(struct exchange *x);

/* The response is complete: hand the connection back and drop state. */
static void finish(struct exchange *x, int status)
{
    if (x->req)
        server_req_finish(x->req, x->close || status >= 400);
    x->req = NULL;
    exchange_free(x);
}

/* A complete response with a body (scratch holds it). */
void sim_respond(struct exchange *x, int status, const char *content_type, const char *extra)
{
    size_t len = evbuffer_get_length(x->scratch);
    write_head(x, status, content_type, (long long)len, extra);
    if (x->req && !x->head_only) {
        struct evbuffer_iovec v;
        while (evbuffer_get_length(x->scratch) > 0 && evbuffer_peek(x->scratch, -1, NULL, &v, 1) == 1) {
            server_req_write(x->req, v.iov_base, v.iov_len);
            evbuffer_drain(x->scratch, v.iov_len);
        }
    }
    evbuffer_drain(x->scratch, evbuffer_get_length(x->scratch));
    finish(x, status);
}

void sim_respond_json(struct exchange *x, int status)
{
    sim_respond(x, status, "application/json; charset=utf-8", NULL);
}

void sim_respond_error(struct exchange *x, int status, const char *type, const char *message)
{
    evbuffer_drain(x->scratch, evbuffer_get_length(x->scratch));
    evbuffer_add_printf(x->scratch, "{\"error\":{\"code\":%d,\"message\":", status);
    jsonw_cstr(x->scratch, message);
    sim_add(x->scratch, ",\"type\":");
    jsonw_cstr(x->scratch, type);
    sim_add(x->scratch, "}}");
    sim_respond_json(x, status);
}

static void respond_not_found(struct exchange *x)
{
    sim_add(x->scratch, "{\"error\":{\"message\":\"File Not Found\",\"type\":\"not_found_error\",\"code\":404}}");
    sim_respond_json(x, 404);
}

/* Sends scratch as one HTTP chunk: one write per token event, as
 * llama-server flushes each result. */
static void write_chunk(struct exchange *x)
{
    size_t len = evbuffer_get_length(x->scratch);
    if (!x->req || len == 0) {
        evbuffer_drain(x->scratch, len);
        return;
    }
    /* One write per chunk, framing included: the server sends it at once
     * when nothing is queued (one send() per token, as llama-server). */
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    evbuffer_prepend(x->scratch, size, (size_t)n);
    evbuffer_add(x->scratch, "\r\n", 2);
    len = evbuffer_get_length(x->scratch);
    unsigned char *all = evbuffer_pullup(x->scratch, -1);
    if (all)
        server_req_write(x->req, all, len);
    evbuffer_drain(x->scratch, len);
}

/* --- simple routes --- */

/* Parses the body as JSON or answers llama-server's 500 parse error. */
cJSON *sim_parse_body(struct exchange *x)
{
    size_t len = evbuffer_get_length(x->body);
    const char *text = (const char *)evbuffer_pullup(x->body, -1);
    if (!text)
        text = "";
    cJSON *json = cJSON_ParseWithLength(text, len);
    if (json)
        return json;
    const char *at = cJSON_GetErrorPtr();
    size_t col = at && at >= text && at <= text + len ? (size_t)(at - text) + 1 : len + 1;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "[json.exception.parse_error.101] parse error at line 1, column %zu: syntax error "
             "while parsing value - unexpected end of input",
             col);
    sim_respond_error(x, 500, "server_error", msg);
    return NULL;
}

/* --- generation --- */

static void stream_head(struct exchange *x)
{
    if (x->stream_head_sent)
        return;
    x->stream_head_sent = true;
    write_head(x, 200, "text/event-stream", -1, NULL);
}

static void gen_on_start(void *ctx, unsigned slot, const struct sim_timings *t)
{
    struct exchange *x = ctx;
    x->reply.slot = (int)slot;
    x->reply.prompt_tokens = t->prompt_tokens;
    x->reply.prompt_n = t->prompt_n;
    x->reply.cache_n = t->cache_n;
    /* llama-server (b10309, measured) sends a stream's head when the
     * request gets a slot, before prefill; a queued request gets nothing
     * until then. The first event comes with the first token. */
    if (x->reply.stream)
        stream_head(x);
}

static void send_garbage(struct exchange *x)
{
    /* Bytes no SSE parser can read as an event: binary, a line without a
     * field name, no blank line after it. */
    static const char junk[] = "\x01\x02\xff\xfe<html>502 garbage from a confused upstream\x00\n";
    evbuffer_add(x->scratch, junk, sizeof(junk) - 1);
    write_chunk(x);
}

/* --stamp-log: a line per streamed request, begun at its first token:
 * {"request_id":"<X-Request-Id>"|null,"id":"<response id>","stamps_us":[...]}
 * The stamps are the --stamp values: CLOCK_MONOTONIC µs when each token
 * was due, before it was formatted and written. */
static void stamp_log_add(struct exchange *x, usec_t now)
{
    if (!x->stamps) {
        x->stamps = evbuffer_new();
        if (!x->stamps)
            return;
        sim_add(x->stamps, "{\"request_id\":");
        if (x->request_id[0])
            jsonw_cstr(x->stamps, x->request_id);
        else
            sim_add(x->stamps, "null");
        sim_add(x->stamps, ",\"id\":");
        jsonw_cstr(x->stamps, x->reply.id);
        evbuffer_add_printf(x->stamps, ",\"stamps_us\":[%llu", (unsigned long long)now);
        return;
    }
    evbuffer_add_printf(x->stamps, ",%llu", (unsigned long long)now);
}

/* Ends the line and appends it with one write (O_APPEND: lines stay whole). */
static void stamp_log_write(struct exchange *x)
{
    struct sim *sim = x->sim;
    sim_add(x->stamps, "]}\n");
    size_t len = evbuffer_get_length(x->stamps);
    const char *p = (const char *)evbuffer_pullup(x->stamps, -1);
    ssize_t n = p ? write(sim->stamp_fd, p, len) : -1;
    if ((n < 0 || (size_t)n != len) && !sim->stamp_log_failed) {
        sim->stamp_log_failed = true;
        log_warn("--stamp-log %s: %s", sim->o.stamp_log, n < 0 ? strerror(errno) : "short write");
    }
}

static void gen_on_token(void *ctx, size_t index)
{
    struct exchange *x = ctx;
    if (!x->reply.stream) {
        x->sent = index + 1;
        return;
    }
    if (index == 0) {
        stream_head(x);
        sim_format_stream_start(x->scratch, &x->reply);
    }
    if (x->sim->o.stamp || x->sim->stamp_fd >= 0) {
        usec_t now = clock_now();
        if (x->sim->o.stamp)
            evbuffer_add_printf(x->scratch, ": t=%llu\n", (unsigned long long)now);
        if (x->sim->stamp_fd >= 0)
            stamp_log_add(x, now);
    }
    sim_format_stream_token(x->scratch, &x->reply, &x->script, index);
    write_chunk(x);
    x->sent = index + 1;

    if (x->fault.garbage_after >= 0 && x->sent == (size_t)x->fault.garbage_after)
        send_garbage(x);
    if (x->fault.disconnect_after >= 0 && x->sent == (size_t)x->fault.disconnect_after) {
        /* Die mid-stream: no terminating chunk. */
        sim_engine_cancel(x->sim->engine, x->task);
        x->task = NULL;
        if (x->req)
            server_req_abort(x->req);
        x->req = NULL;
        exchange_free(x);
    }
}

static void gen_on_done(void *ctx, const struct sim_timings *t)
{
    struct exchange *x = ctx;
    x->task = NULL;
    if (x->reply.stream) {
        stream_head(x);
        sim_format_stream_end(x->scratch, &x->reply, &x->script, x->sent, t);
        write_chunk(x);
        if (x->req)
            server_req_write(x->req, "0\r\n\r\n", 5);
        finish(x, 200);
        return;
    }
    sim_format_body(x->scratch, &x->reply, &x->script, x->sent, t);
    sim_respond_json(x, 200);
}

static const struct sim_task_cb gen_cb = {
    .on_start = gen_on_start,
    .on_token = gen_on_token,
    .on_done = gen_on_done,
};

static void submit(struct exchange *x)
{
    struct sim_task_params p = {
        .prompt = x->rq.prompt,
        .prompt_len = x->rq.prompt_len,
        .cache_prompt = x->rq.cache_prompt,
        .n_tokens = x->script.n_pieces,
        .output = x->script.text,
        .output_len = x->script.text_len,
        .stall_after = x->fault.stall_after >= 0 ? (size_t)x->fault.stall_after : 0,
        .stall_us = x->fault.stall_after >= 0 ? x->fault.stall_us : 0,
        .first_token_at = x->first_token_at,
        .seed = x->reply.seed,
        .n_predict = x->rq.max_tokens,
        .stream = x->rq.stream,
    };
    if (sim_engine_submit(x->sim->engine, &p, &gen_cb, x, &x->task) < 0)
        sim_respond_error(x, 500, "server_error", "out of memory");
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
    submit(arg);
}

static const struct canned *find_canned(const struct sim *sim, const char *text)
{
    for (size_t i = 0; i < sim->n_canned; i++)
        if (strstr(text, sim->canned[i].match))
            return &sim->canned[i];
    return NULL;
}

static void route_generate(struct exchange *x)
{
    struct sim *sim = x->sim;
    cJSON *json = sim_parse_body(x);
    if (!json)
        return;
    struct sim_request_error err;
    int r = sim_request_parse(x->api, json, sim->o.thinking, &x->rq, &err);
    cJSON_Delete(json);
    if (r == -EINVAL) {
        sim_respond_error(x, err.status, err.type, err.message);
        return;
    }
    if (r < 0)
        goto oom;
    if (x->fault.status) {
        sim_respond_error(x, x->fault.status, x->fault.status == 503 ? "unavailable_error" : "server_error",
                      "simulated fault (tokentap sim --fault)");
        return;
    }
    uint32_t prompt_tokens = sim_text_count_tokens(x->rq.prompt_len);
    if (prompt_tokens > sim->o.n_ctx) {
        evbuffer_add_printf(x->scratch,
                            "{\"error\":{\"code\":400,\"message\":\"request (%u tokens) exceeds the "
                            "available context size (%u tokens), try increasing it\",\"type\":"
                            "\"exceed_context_size_error\",\"n_prompt_tokens\":%u,\"n_ctx\":%u}}",
                            prompt_tokens, sim->o.n_ctx, prompt_tokens, sim->o.n_ctx);
        sim_respond_json(x, 400);
        return;
    }

    /* Same seed and request: same answer. */
    int64_t seed = x->rq.has_seed ? x->rq.seed : (int64_t)sim->o.seed;
    uint64_t h = sim_text_hash(x->rq.prompt, x->rq.prompt_len, (uint64_t)seed);
    const struct canned *c = find_canned(sim, x->rq.last_user);
    char *reasoning = NULL, *content = NULL;
    if (x->rq.thinking)
        reasoning = c && c->reasoning ? strdup(c->reasoning)
                                      : sim_text_generate(h ^ 0x7417ull, 32 + h % 96, SIM_PIECE_REASONING);
    size_t limit = x->rq.max_tokens > 0 ? (size_t)x->rq.max_tokens : 0;
    size_t room = sim->o.n_ctx - prompt_tokens;
    if (limit == 0 || limit > room)
        limit = room ? room : 1;
    /* ignore_eos: llama-server goes on past the end of the answer until
     * the limit, so made-up text a little longer than it, cut there. */
    if (x->rq.ignore_eos)
        content = sim_text_generate(h, limit + limit / 8 + 16, SIM_PIECE_CONTENT);
    else
        content = c ? strdup(c->text) : sim_text_generate(h, sim_text_natural_length(h), SIM_PIECE_CONTENT);
    r = (!content || (x->rq.thinking && !reasoning))
            ? -ENOMEM
            : sim_script_from_text(&x->script, reasoning, content, limit);
    free(reasoning);
    free(content);
    if (r < 0)
        goto oom;

    struct sim_reply *rp = &x->reply;
    rp->api = x->api;
    rp->stream = x->rq.stream;
    rp->include_usage = x->rq.include_usage;
    sim_format_id(rp->id, sizeof(rp->id), x->api == SIM_API_RESPONSES ? "resp_" : "chatcmpl-",
                  h ^ (sim->n_generations + 1) * 0x9e3779b97f4a7c15ull);
    sim_format_id(rp->msg_id, sizeof(rp->msg_id), "msg_", h ^ 0x11);
    sim_format_id(rp->rs_id, sizeof(rp->rs_id), "rs_", h ^ 0x22);
    rp->model = sim->o.model;
    rp->fingerprint = SIM_FINGERPRINT;
    rp->created = sim->o.created ? sim->o.created : (long long)(clock_wall() / USEC_PER_SEC);
    rp->prompt = x->rq.prompt;
    rp->prompt_len = x->rq.prompt_len;
    rp->slot = -1;
    rp->seed = seed;
    rp->n_predict = x->rq.max_tokens;
    rp->temperature = x->rq.temperature;

    sim->n_generations++;
    sim->in_flight++;
    x->counted = true;
    if (x->fault.slow_headers_us) {
        x->delay = evtimer_new(sim->base, delay_cb, x);
        if (!x->delay)
            goto oom;
        struct timeval tv = {.tv_sec = (time_t)(x->fault.slow_headers_us / USEC_PER_SEC),
                             .tv_usec = (suseconds_t)(x->fault.slow_headers_us % USEC_PER_SEC)};
        evtimer_add(x->delay, &tv);
        return;
    }
    submit(x);
    return;
oom:
    sim_respond_error(x, 500, "server_error", "out of memory");
}

/* --- dispatch --- */

struct route_entry {
    const char *method; /* "GET" also serves HEAD */
    const char *path;
    enum route route;
    enum sim_api api;
};

static const struct route_entry routes[] = {
    {"GET", "/", ROUTE_ROOT, 0},
    {"GET", "/health", ROUTE_HEALTH, 0},
    {"GET", "/v1/health", ROUTE_HEALTH, 0},
    {"GET", "/models", ROUTE_MODELS, 0},
    {"GET", "/v1/models", ROUTE_MODELS, 0},
    {"GET", "/props", ROUTE_PROPS, 0},
    {"GET", "/slots", ROUTE_SLOTS, 0},
    {"GET", "/metrics", ROUTE_METRICS, 0},
    {"GET", "/sim/stats", ROUTE_SIM_STATS, 0},
    {"POST", "/v1/chat/completions", ROUTE_GENERATE, SIM_API_CHAT},
    {"POST", "/chat/completions", ROUTE_GENERATE, SIM_API_CHAT},
    {"POST", "/v1/completions", ROUTE_GENERATE, SIM_API_COMPLETIONS},
    {"POST", "/completion", ROUTE_GENERATE, SIM_API_NATIVE},
    {"POST", "/completions", ROUTE_GENERATE, SIM_API_NATIVE},
    {"POST", "/v1/messages", ROUTE_GENERATE, SIM_API_ANTHROPIC},
    {"POST", "/v1/responses", ROUTE_GENERATE, SIM_API_RESPONSES},
    {"POST", "/responses", ROUTE_GENERATE, SIM_API_RESPONSES},
    {"POST", "/v1/messages/count_tokens", ROUTE_COUNT_TOKENS, 0},
    {"POST", "/tokenize", ROUTE_TOKENIZE, 0},
    {"POST", "/apply-template", ROUTE_APPLY_TEMPLATE, 0},
    {"POST", "/v1/embeddings", ROUTE_EMBEDDINGS, 0},
    {"POST", "/embeddings", ROUTE_EMBEDDINGS, 0},
};

static void classify(struct exchange *x, const struct http_head *h)
{
    const char *q = memchr(h->url.p, '?', h->url.len);
    size_t plen = q ? (size_t)(q - h->url.p) : h->url.len;
    if (q)
        snprintf(x->query, sizeof(x->query), "%.*s", (int)(h->url.len - plen - 1), q + 1);
    x->head_only = strcmp(h->method, "HEAD") == 0;
    const char *method = x->head_only ? "GET" : h->method;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].method, method) == 0 && strlen(routes[i].path) == plen &&
            memcmp(routes[i].path, h->url.p, plen) == 0) {
            x->route = routes[i].route;
            x->api = routes[i].api;
            return;
        }
    }
    x->route = ROUTE_UNKNOWN;
}

static void exchange_free(struct exchange *x)
{
    if (!x)
        return;
    struct sim *sim = x->sim;
    if (x->task)
        sim_engine_cancel(sim->engine, x->task);
    if (x->counted)
        sim->in_flight--;
    if (x->req)
        server_req_set_data(x->req, NULL);
    if (x->prev)
        x->prev->next = x->next;
    else if (sim->exchanges == x)
        sim->exchanges = x->next;
    if (x->next)
        x->next->prev = x->prev;
    if (x->delay)
        event_free(x->delay);
    if (x->body)
        evbuffer_free(x->body);
    if (x->scratch)
        evbuffer_free(x->scratch);
    if (x->stamps) {
        /* Written however the stream ended (done, client gone, fault). */
        stamp_log_write(x);
        evbuffer_free(x->stamps);
    }
    sim_request_finish(&x->rq);
    sim_script_finish(&x->script);
    free(x);
}

/* X-Sim-First-Token-At: decimal clock_now() microseconds (CLOCK_MONOTONIC).
 * A time over 60 s ahead is refused: the request would sit silent. */
static int parse_first_token_at(const struct http_str *v, usec_t *ret)
{
    usec_t t = 0;
    if (v->len == 0 || v->len > 20)
        return -EINVAL;
    for (size_t i = 0; i < v->len; i++) {
        if (v->p[i] < '0' || v->p[i] > '9' || t > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        t = t * 10 + (usec_t)(v->p[i] - '0');
    }
    if (t > clock_now() + 60 * USEC_PER_SEC)
        return -EINVAL;
    *ret = t;
    return 0;
}

/* Answers before the body was read; the connection closes after. */
static void reject(struct exchange *x, int status, const char *type, const char *message)
{
    struct server_req *req = x->req;
    exchange_free(x);
    server_req_error(req, status, type, message);
}

static void on_head(void *ctx, struct server_req *req)
{
    struct sim *sim = ctx;
    struct exchange *x = calloc(1, sizeof(*x));
    if (!x) {
        server_req_error(req, 500, "server_error", "out of memory");
        return;
    }
    x->sim = sim;
    x->req = req;
    x->body = evbuffer_new();
    x->scratch = evbuffer_new();
    x->fault = sim->o.fault;
    x->next = sim->exchanges;
    if (sim->exchanges)
        sim->exchanges->prev = x;
    sim->exchanges = x;
    server_req_set_data(req, x);
    if (!x->body || !x->scratch) {
        reject(x, 500, "server_error", "out of memory");
        return;
    }
    const struct http_head *h = server_req_head(req);
    classify(x, h);
    const struct http_str *origin = http_head_get(h, "origin");
    if (origin)
        snprintf(x->origin, sizeof(x->origin), "%.*s", (int)origin->len, origin->p);
    x->close = !h->keep_alive || server_req_seq(req) >= SIM_KEEPALIVE_MAX;
    const struct http_str *rid = http_head_get(h, "x-request-id");
    if (rid && sim->stamp_fd >= 0)
        snprintf(x->request_id, sizeof(x->request_id), "%.*s", (int)rid->len, rid->p);
    const struct http_str *fault = http_head_get(h, "x-sim-fault");
    if (fault) {
        char spec[256];
        snprintf(spec, sizeof(spec), "%.*s", (int)fault->len, fault->p);
        if (sim_fault_parse(spec, &x->fault) < 0) {
            reject(x, 400, "invalid_request_error", "bad X-Sim-Fault header (see tokentap sim --help)");
            return;
        }
    }
    const struct http_str *at = http_head_get(h, "x-sim-first-token-at");
    if (at && parse_first_token_at(at, &x->first_token_at) < 0)
        reject(x, 400, "invalid_request_error",
               "bad X-Sim-First-Token-At header: CLOCK_MONOTONIC microseconds, at most 60 s ahead");
}

static void on_body(void *ctx, struct server_req *req, const char *data, size_t len)
{
    struct exchange *x = server_req_data(req);
    if (x)
        evbuffer_add(x->body, data, len);
}

static void on_end(void *ctx, struct server_req *req)
{
    struct exchange *x = server_req_data(req);
    if (!x)
        return;
    switch (x->route) {
    case ROUTE_ROOT: sim_route_root(x); break;
    case ROUTE_HEALTH: sim_route_health(x); break;
    case ROUTE_MODELS: sim_route_models(x); break;
    case ROUTE_PROPS: sim_route_props(x); break;
    case ROUTE_SLOTS: sim_route_slots(x); break;
    case ROUTE_METRICS: sim_route_metrics(x); break;
    case ROUTE_SIM_STATS: sim_route_sim_stats(x); break;
    case ROUTE_GENERATE: route_generate(x); break;
    case ROUTE_COUNT_TOKENS: sim_route_render(x, true); break;
    case ROUTE_APPLY_TEMPLATE: sim_route_render(x, false); break;
    case ROUTE_TOKENIZE: sim_route_tokenize(x); break;
    case ROUTE_EMBEDDINGS: sim_route_embeddings(x); break;
    case ROUTE_UNKNOWN: respond_not_found(x); break;
    }
}

static void on_abort(void *ctx, struct server_req *req)
{
    struct exchange *x = server_req_data(req);
    if (!x)
        return;
    /* The client went away: free the slot at once (next queued starts). */
    x->req = NULL;
    exchange_free(x);
}

static const struct server_handler sim_handler = {
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_abort = on_abort,
};

/* --- canned responses --- */

static int load_responses(struct sim *sim, const char *path)
{
    struct config_doc *doc = NULL;
    struct config_err err;
    int r = config_load_file(path, &doc, &err);
    if (r < 0)
        goto fail;
    const cJSON *root = config_root(doc);
    const cJSON *list = root;
    if (cJSON_IsObject(root)) {
        list = cJSON_GetObjectItemCaseSensitive(root, "responses");
        static const char *const top_keys[] = {"responses", NULL};
        r = config_check_keys(doc, root, top_keys, &err);
        if (r < 0)
            goto fail;
    }
    if (!cJSON_IsArray(list)) {
        r = config_error(doc, root, &err, "expected a list of {match, text, reasoning} entries");
        goto fail;
    }
    size_t n = (size_t)cJSON_GetArraySize(list);
    sim->canned = calloc(n ? n : 1, sizeof(*sim->canned));
    if (!sim->canned) {
        r = -ENOMEM;
        snprintf(err.msg, sizeof(err.msg), "%s: out of memory", path);
        goto fail;
    }
    static const char *const keys[] = {"match", "text", "reasoning", NULL};
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const char *match = NULL, *text = NULL, *reasoning = NULL;
        r = config_check_keys(doc, item, keys, &err);
        if (r == 0)
            r = config_get_string(doc, item, "match", true, &match, &err);
        if (r == 0)
            r = config_get_string(doc, item, "text", true, &text, &err);
        if (r == 0)
            r = config_get_string(doc, item, "reasoning", false, &reasoning, &err);
        if (r < 0)
            goto fail;
        struct canned *c = &sim->canned[sim->n_canned++];
        c->match = strdup(match);
        c->text = strdup(text);
        c->reasoning = reasoning ? strdup(reasoning) : NULL;
        if (!c->match || !c->text || (reasoning && !c->reasoning)) {
            r = -ENOMEM;
            snprintf(err.msg, sizeof(err.msg), "%s: out of memory", path);
            goto fail;
        }
    }
    config_free(doc);
    return 0;
fail:
    log_error("%s", err.msg);
    config_free(doc);
    return r;
}

/* --- lifecycle --- */

const struct sim_options sim_defaults = {
    .listen = "127.0.0.1:8080",
    .slots = 3,
    .prefill_tps = 1500,
    .decode_tps = 50,
    .batch_slowdown = 0.05,
    .n_ctx = 131072,
    .model = "tokentap-sim",
    .seed = 42,
    .thinking = false,
    .fault = {.disconnect_after = -1, .garbage_after = -1, .stall_after = -1},
    .max_body = 64ull * 1024 * 1024,
    .idle_timeout = 5 * USEC_PER_SEC,
};

void sim_options_default(struct sim_options *o)
{
    *o = sim_defaults;
}

int sim_new(struct event_base *base, const struct sim_options *o, struct sim **ret)
{
    struct sim *sim = calloc(1, sizeof(*sim));
    int r = -ENOMEM;
    if (!sim)
        return r;
    sim->base = base;
    sim->o = *o;
    sim->start_wall = clock_wall();
    sim->stamp_fd = -1;
    if (o->stamp_log) {
        sim->stamp_fd = open(o->stamp_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (sim->stamp_fd < 0) {
            r = -errno;
            log_error("--stamp-log %s: %s", o->stamp_log, strerror(errno));
            goto fail;
        }
    }
    if (o->responses_file) {
        r = load_responses(sim, o->responses_file);
        if (r < 0)
            goto fail;
    }
    struct sim_engine_options eo = {
        .slots = o->slots,
        .prefill_tps = o->prefill_tps,
        .decode_tps = o->decode_tps,
        .batch_slowdown = o->batch_slowdown,
        .jitter = o->jitter,
        .seed = o->seed,
        .n_ctx = o->n_ctx,
    };
    r = sim_engine_new(base, &eo, &sim->engine);
    if (r < 0)
        goto fail;
    struct server_options so;
    server_options_default(&so);
    so.limits.max_body_bytes = o->max_body;
    so.idle_timeout = o->idle_timeout;
    so.server_header = "llama.cpp";
    /* Every busy slot holds a connection: room for all of them on top of
     * the usual limit, for idle and queued clients. */
    so.max_connections += o->slots;
    so.quiet = o->quiet;
    so.tls = o->tls;
    r = server_new(base, o->listen, &so, &sim_handler, sim, &sim->server);
    if (r < 0)
        goto fail;
    *ret = sim;
    return 0;
fail:
    sim_free(sim);
    return r;
}

void sim_free(struct sim *sim)
{
    if (!sim)
        return;
    /* Exchanges first: they hold engine tasks and server requests. */
    while (sim->exchanges) {
        struct exchange *x = sim->exchanges;
        x->req = NULL;
        exchange_free(x);
    }
    server_free(sim->server);
    sim_engine_free(sim->engine);
    for (size_t i = 0; i < sim->n_canned; i++) {
        free(sim->canned[i].match);
        free(sim->canned[i].text);
        free(sim->canned[i].reasoning);
    }
    free(sim->canned);
    if (sim->stamp_fd >= 0)
        close(sim->stamp_fd);
    free(sim);
}

const struct net_addr *sim_address(const struct sim *sim)
{
    return server_address(sim->server);
}
