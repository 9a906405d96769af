#include "tap/record.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/jsonw.h"
#include "core/prefetch.h"

void record_init(struct record *r)
{
    memset(r, 0, sizeof(*r));
    r->thinking = -1;
    r->server_output_tokens = -1;
    r->server_reasoning_tokens = -1;
    r->prompt_tokens = -1;
    r->cached_tokens = -1;
    r->server_prompt_n = -1;
    r->server_predicted_n = -1;
    r->server_prompt_ms = -1;
    r->server_predicted_ms = -1;
    r->measured = true;
    r->outcome = RECORD_IN_PROGRESS;
}

void record_begin(struct record *r, uint64_t id, const char *method, const char *path,
                  size_t path_len, usec_t t_received)
{
    record_init(r);
    r->id = id;
    r->wall_start = clock_wall();
    r->t_received = t_received;
    snprintf(r->method, sizeof(r->method), "%s", method);
    const char *q = memchr(path, '?', path_len);
    size_t route_len = q ? (size_t)(q - path) : path_len;
    snprintf(r->route, sizeof(r->route), "%.*s", (int)route_len, path);
    r->dialect = dialect_from_path(path, path_len);
}

void record_finish(struct record *r)
{
    free(r->gaps);
    r->gaps = NULL;
    r->n_gaps = r->cap_gaps = 0;
}

int record_copy(struct record *dst, const struct record *src, bool with_gaps)
{
    *dst = *src;
    dst->gaps = NULL;
    dst->n_gaps = dst->cap_gaps = 0;
    if (!with_gaps || src->n_gaps == 0)
        return 0;
    dst->gaps = malloc(src->n_gaps * sizeof(*dst->gaps));
    if (!dst->gaps)
        return -ENOMEM;
    memcpy(dst->gaps, src->gaps, src->n_gaps * sizeof(*dst->gaps));
    dst->n_gaps = dst->cap_gaps = src->n_gaps;
    return 0;
}

void record_prefetch(const struct record *r)
{
    /* The times and counts a token event updates, live's lane. */
    prefetch_range(&r->t_first_byte,
                   offsetof(struct record, live_series) + 1 - offsetof(struct record, t_first_byte));
    prefetch_range(&r->gaps, sizeof(r->gaps) + sizeof(r->n_gaps) + sizeof(r->cap_gaps));
}

void record_token(struct record *r, usec_t t, const uint64_t pieces[DIALECT_TOKEN_KINDS])
{
    if (r->t_first_token == 0)
        r->t_first_token = t;
    if (pieces[DIALECT_TOKEN_REASONING] && r->t_first_reasoning == 0)
        r->t_first_reasoning = t;
    if ((pieces[DIALECT_TOKEN_CONTENT] || pieces[DIALECT_TOKEN_TOOL]) && r->t_first_content == 0)
        r->t_first_content = t;
    if (r->t_last_token && r->n_gaps < RECORD_MAX_GAPS) {
        if (r->n_gaps == r->cap_gaps) {
            size_t cap = r->cap_gaps ? r->cap_gaps * 2 : 64;
            uint32_t *g = realloc(r->gaps, cap * sizeof(*g));
            if (g) {
                r->gaps = g;
                r->cap_gaps = cap;
            }
        }
        assert(r->n_gaps <= r->cap_gaps);
        if (r->n_gaps < r->cap_gaps) {
            usec_t gap = clock_diff(t, r->t_last_token);
            r->gaps[r->n_gaps++] = gap > UINT32_MAX ? UINT32_MAX : (uint32_t)gap;
        }
    }
    r->t_last_token = t;
    r->token_events++;
    for (int k = 0; k < DIALECT_TOKEN_KINDS; k++)
        r->token_pieces[k] += pieces[k];
}

void record_take_facts(struct record *r, const struct dialect_facts *f)
{
    int64_t out = dialect_output_tokens(f);
    if (out >= 0)
        r->server_output_tokens = out;
    if (f->reasoning_tokens >= 0)
        r->server_reasoning_tokens = f->reasoning_tokens;
    if (f->prompt_tokens >= 0)
        r->prompt_tokens = f->prompt_tokens;
    else if (f->prompt_n >= 0 && f->cache_n >= 0)
        r->prompt_tokens = f->prompt_n + f->cache_n;
    if (f->cached_tokens >= 0)
        r->cached_tokens = f->cached_tokens;
    else if (f->cache_n >= 0)
        r->cached_tokens = f->cache_n;
    r->server_prompt_n = f->prompt_n;
    r->server_predicted_n = f->predicted_n;
    r->server_prompt_ms = f->prompt_ms;
    r->server_predicted_ms = f->predicted_ms;
    for (int k = 0; k < DIALECT_TOKEN_KINDS; k++)
        if (f->bytes[k] > r->text_bytes[k])
            r->text_bytes[k] = f->bytes[k];
    if (f->finish_reason[0])
        memcpy(r->finish_reason, f->finish_reason, sizeof(r->finish_reason));
    if (f->model[0])
        memcpy(r->response_model, f->model, sizeof(r->response_model));
    /* The same size: the dialect cut the message at a character boundary. */
    _Static_assert(sizeof(r->error) == sizeof(f->error_message), "error sizes");
    if (f->error && !r->error[0])
        memcpy(r->error, f->error_message, sizeof(r->error));
}

usec_t record_ttft(const struct record *r)
{
    return clock_diff(r->t_first_token, r->t_start);
}

usec_t record_ttfc(const struct record *r)
{
    return clock_diff(r->t_first_content, r->t_start);
}

usec_t record_e2e(const struct record *r)
{
    return clock_diff(r->t_end, r->t_start);
}

uint64_t record_output_tokens(const struct record *r)
{
    return r->server_output_tokens >= 0 ? (uint64_t)r->server_output_tokens : r->token_events;
}

usec_t record_tpot(const struct record *r)
{
    uint64_t n = record_output_tokens(r);
    usec_t span = clock_diff(r->t_last_token, r->t_first_token);
    if (n < 2 || span == 0)
        return 0;
    return span / (n - 1);
}

double record_decode_tps(const struct record *r)
{
    uint64_t n = record_output_tokens(r);
    usec_t span = clock_diff(r->t_last_token, r->t_first_token);
    if (n < 2 || span == 0)
        return 0;
    return (double)(n - 1) * 1e6 / (double)span;
}

int64_t record_queue_estimate(const struct record *r)
{
    if (r->server_prompt_ms < 0 || r->t_first_token == 0)
        return -1;
    int64_t q = (int64_t)record_ttft(r) - (int64_t)(r->server_prompt_ms * 1000.0);
    return q < 0 ? 0 : q;
}

int64_t record_slot_wait(const struct record *r)
{
    /* Only an event stream's head comes before its body is known. */
    if (!r->stream || !r->t_response_head || !r->t_start)
        return -1;
    return (int64_t)clock_diff(r->t_response_head, r->t_start);
}

int64_t record_prefill(const struct record *r)
{
    if (!r->stream || !r->t_response_head || !r->t_first_token || r->t_first_token < r->t_response_head)
        return -1;
    return (int64_t)(r->t_first_token - r->t_response_head);
}

bool record_is_generation(const struct record *r)
{
    return r->dialect != DIALECT_UNKNOWN;
}

const char *record_outcome_name(enum record_outcome o)
{
    static const char *const names[] = {"ok",        "http-error", "client-abort",   "upstream-error",
                                        "truncated", "timeout",    "protocol-error", "in-progress"};
    return (unsigned)o < RECORD_OUTCOMES ? names[o] : "unknown";
}

static void key(struct evbuffer *out, const char *k)
{
    evbuffer_add_printf(out, ",\"%s\":", k);
}

static void ms(struct evbuffer *out, const char *k, usec_t us, bool defined)
{
    key(out, k);
    if (defined)
        jsonw_double(out, (double)us / 1000.0);
    else
        EVBUFFER_ADD_LIT(out, "null");
}

static void rel(struct evbuffer *out, const char *k, usec_t t, usec_t base)
{
    ms(out, k, clock_diff(t, base), t != 0 && base != 0);
}

static void i64(struct evbuffer *out, const char *k, int64_t v)
{
    key(out, k);
    if (v < 0)
        EVBUFFER_ADD_LIT(out, "null");
    else
        evbuffer_add_printf(out, "%lld", (long long)v);
}

static void dbl(struct evbuffer *out, const char *k, double v)
{
    key(out, k);
    if (v < 0)
        EVBUFFER_ADD_LIT(out, "null");
    else
        jsonw_double(out, v);
}

static void str(struct evbuffer *out, const char *k, const char *v)
{
    key(out, k);
    if (v[0])
        jsonw_cstr(out, v);
    else
        EVBUFFER_ADD_LIT(out, "null");
}

void record_to_json(const struct record *r, struct evbuffer *out, bool with_gaps)
{
    char when[40];
    clock_format_wall(r->wall_start, when, sizeof(when));
    evbuffer_add_printf(out, "{\"id\":%llu,\"time\":\"%s\"", (unsigned long long)r->id, when);
    str(out, "method", r->method);
    str(out, "route", r->route);
    str(out, "dialect", dialect_name(r->dialect));
    str(out, "model", r->model);
    str(out, "upstream", r->upstream);
    str(out, "client", r->client);
    str(out, "session", r->session);
    /* Only replays of agentic traces know these: other lines stay as they were. */
    if (r->parent[0])
        str(out, "parent", r->parent);
    if (r->kind[0])
        str(out, "kind", r->kind);
    key(out, "status");
    evbuffer_add_printf(out, "%d", r->status);
    key(out, "outcome");
    jsonw_cstr(out, record_outcome_name(r->outcome));
    evbuffer_add_printf(out, ",\"client_left\":%s", r->client_left ? "true" : "false");
    evbuffer_add_printf(out, ",\"stream\":%s,\"measured\":%s", r->stream ? "true" : "false",
                        r->measured ? "true" : "false");
    str(out, "finish_reason", r->finish_reason);
    str(out, "error", r->error);
    str(out, "rules", r->rules);
    key(out, "thinking");
    evbuffer_add_printf(out, "%s", r->thinking < 0 ? "null" : r->thinking ? "true" : "false");

    /* Derived metrics, ms. */
    ms(out, "ttft_ms", record_ttft(r), r->t_first_token != 0);
    ms(out, "ttfc_ms", record_ttfc(r), r->t_first_content != 0);
    ms(out, "tpot_ms", record_tpot(r), record_tpot(r) != 0);
    ms(out, "e2e_ms", record_e2e(r), r->t_end != 0);
    dbl(out, "decode_tps", record_decode_tps(r) > 0 ? record_decode_tps(r) : -1);
    int64_t q = record_queue_estimate(r);
    ms(out, "queue_ms", q < 0 ? 0 : (usec_t)q, q >= 0);
    int64_t w = record_slot_wait(r), p = record_prefill(r);
    ms(out, "slot_wait_ms", w < 0 ? 0 : (usec_t)w, w >= 0);
    ms(out, "prefill_ms", p < 0 ? 0 : (usec_t)p, p >= 0);

    /* Counts. */
    evbuffer_add_printf(out,
                        ",\"output_tokens\":%llu,\"token_events\":%llu,\"pieces\":{\"content\":%llu,"
                        "\"reasoning\":%llu,\"tool\":%llu},\"text_bytes\":{\"content\":%llu,"
                        "\"reasoning\":%llu,\"tool\":%llu}",
                        (unsigned long long)record_output_tokens(r),
                        (unsigned long long)r->token_events,
                        (unsigned long long)r->token_pieces[DIALECT_TOKEN_CONTENT],
                        (unsigned long long)r->token_pieces[DIALECT_TOKEN_REASONING],
                        (unsigned long long)r->token_pieces[DIALECT_TOKEN_TOOL],
                        (unsigned long long)r->text_bytes[DIALECT_TOKEN_CONTENT],
                        (unsigned long long)r->text_bytes[DIALECT_TOKEN_REASONING],
                        (unsigned long long)r->text_bytes[DIALECT_TOKEN_TOOL]);
    i64(out, "server_output_tokens", r->server_output_tokens);
    i64(out, "server_reasoning_tokens", r->server_reasoning_tokens);
    i64(out, "prompt_tokens", r->prompt_tokens);
    i64(out, "cached_tokens", r->cached_tokens);
    i64(out, "server_prompt_n", r->server_prompt_n);
    i64(out, "server_predicted_n", r->server_predicted_n);
    dbl(out, "server_prompt_ms", r->server_prompt_ms);
    dbl(out, "server_predicted_ms", r->server_predicted_ms);
    evbuffer_add_printf(out,
                        ",\"response_bytes\":%llu,\"concurrency\":%u,\"concurrency_start\":%u,"
                        "\"concurrency_first_token\":%u",
                        (unsigned long long)r->response_bytes, r->concurrency, r->concurrency_start,
                        r->concurrency_first_token);
    str(out, "response_model", r->response_model);

    /* Raw timeline, ms after t_start (the sender's intended time for
     * generated load). */
    EVBUFFER_ADD_LIT(out, ",\"t\":{");
    evbuffer_add_printf(out, "\"start_us\":%llu", (unsigned long long)r->t_start);
    rel(out, "received", r->t_received, r->t_start);
    rel(out, "sent", r->t_sent, r->t_start);
    rel(out, "forwarded", r->t_forwarded, r->t_start);
    rel(out, "response_head", r->t_response_head, r->t_start);
    rel(out, "first_byte", r->t_first_byte, r->t_start);
    rel(out, "first_token", r->t_first_token, r->t_start);
    rel(out, "first_reasoning", r->t_first_reasoning, r->t_start);
    rel(out, "first_content", r->t_first_content, r->t_start);
    rel(out, "last_token", r->t_last_token, r->t_start);
    rel(out, "end", r->t_end, r->t_start);
    EVBUFFER_ADD_LIT(out, "}");
    if (with_gaps) {
        EVBUFFER_ADD_LIT(out, ",\"gaps_us\":[");
        for (size_t i = 0; i < r->n_gaps; i++)
            evbuffer_add_printf(out, i ? ",%u" : "%u", r->gaps[i]);
        EVBUFFER_ADD_LIT(out, "]");
    }
    EVBUFFER_ADD_LIT(out, "}");
}
