#include "tap/tap.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/prefetch.h"
#include "wire/upstream.h"

void tap_init(struct tap *t, struct record *rec, enum dialect_kind kind)
{
    memset(t, 0, sizeof(*t));
    t->rec = rec;
    sse_parser_init(&t->sse, 0);
    dialect_init(&t->dialect, kind);
}

void tap_finish(struct tap *t)
{
    sse_parser_finish(&t->sse);
    dialect_finish(&t->dialect);
    free(t->json);
    t->json = NULL;
}

static bool has_prefix(struct http_str v, const char *prefix)
{
    size_t n = strlen(prefix);
    return v.len >= n && strncasecmp(v.p, prefix, n) == 0;
}

void tap_head(struct tap *t, const struct http_head *h, usec_t now)
{
    struct record *r = t->rec;
    t->head_seen = true;
    r->status = h->status;
    r->t_response_head = now;
    const struct http_str *ce = http_head_get(h, "content-encoding");
    if (ce && !http_str_caseeq(*ce, "identity")) {
        /* We asked for identity; a server that compresses anyway is passed
         * through untouched and left unmeasured. */
        r->measured = false;
        t->mode = TAP_OFF;
        return;
    }
    const struct http_str *ct = http_head_get(h, "content-type");
    if (ct && has_prefix(*ct, "text/event-stream")) {
        t->mode = TAP_SSE;
        r->stream = true;
    } else if (ct && has_prefix(*ct, "application/json")) {
        t->mode = TAP_JSON;
    } else {
        t->mode = TAP_OFF;
    }
}

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct tap *t = ctx;
    struct dialect_facts *f = &t->dialect.facts;
    if (t->on_event)
        t->on_event(t->ctx, ev, t->now);
    uint64_t before[DIALECT_TOKEN_KINDS];
    memcpy(before, f->token_events, sizeof(before));
    int n = dialect_event(&t->dialect, ev, t->on_text, t->ctx);
    if (n == -EINVAL && t->bad_events++ == 0)
        t->first_bad_at = t->sse.event_at;
    if (n <= 0)
        return 0;
    uint64_t pieces[DIALECT_TOKEN_KINDS];
    for (int k = 0; k < DIALECT_TOKEN_KINDS; k++) {
        assert(f->token_events[k] >= before[k]); /* counts only grow */
        pieces[k] = f->token_events[k] - before[k];
    }
    record_token(t->rec, t->now, pieces);
    if (t->on_token)
        t->on_token(t->ctx, t->rec, t->now);
    return 0;
}

void tap_body(struct tap *t, const char *data, size_t len, usec_t now)
{
    struct record *r = t->rec;
    if (len == 0)
        return;
    if (r->t_first_byte == 0)
        r->t_first_byte = now;
    r->response_bytes += len;
    t->now = now;
    if (t->mode == TAP_SSE) {
        /* Oversized or broken events are dropped by the parser and
         * counted; the stream goes on. */
        sse_feed(&t->sse, data, len, on_event, t);
    } else if (t->mode == TAP_JSON && !t->json_overflow) {
        if (t->json_len + len > TAP_MAX_JSON_BODY) {
            t->json_overflow = true;
            return;
        }
        if (t->json_len + len > t->json_cap) {
            size_t cap = t->json_cap ? t->json_cap : 4096;
            while (cap < t->json_len + len)
                cap *= 2;
            char *j = realloc(t->json, cap);
            if (!j) {
                t->json_overflow = true;
                return;
            }
            t->json = j;
            t->json_cap = cap;
        }
        assert(t->json_len + len <= t->json_cap);
        memcpy(t->json + t->json_len, data, len);
        t->json_len += len;
    }
}

void tap_prefetch(const struct tap *t)
{
    /* An event read as a repeat (dialect.c) touches the record pointer
     * and the SSE state, the dialect's counts and kept shape (about 220
     * bytes of a llama-server chunk), and the callbacks at the end. */
    prefetch_range(t, offsetof(struct tap, dialect.facts));
    prefetch_range(&t->dialect.facts.bytes, offsetof(struct dialect, repeat.text) -
                                                offsetof(struct dialect, facts.bytes) + 256);
    prefetch_range(&t->dialect.repeat.hits, sizeof(*t) - offsetof(struct tap, dialect.repeat.hits));
}

void tap_prefetch_record(const struct tap *t)
{
    record_prefetch(t->rec);
}

void tap_end(struct tap *t, usec_t now)
{
    struct record *r = t->rec;
    r->t_end = now;
    if (t->mode == TAP_JSON && t->json_len && !t->json_overflow) {
        /* A whole answer at once: its first "token" is the body. */
        if (dialect_body(&t->dialect, t->json, t->json_len, t->on_text, t->ctx) == 0 &&
            r->status < 400)
            r->t_first_token = r->t_first_content = r->t_last_token = r->t_first_byte;
    }
    record_take_facts(r, &t->dialect.facts);
    /* Bytes that are no event of its API: say where, the server is
     * broken or something between it and us is. */
    if (!r->error[0] && (t->bad_events || t->sse.unknown_fields)) {
        uint64_t at = t->sse.unknown_fields && (!t->bad_events || t->sse.first_unknown_at < t->first_bad_at)
                          ? t->sse.first_unknown_at
                          : t->first_bad_at;
        snprintf(r->error, sizeof(r->error), "malformed event stream at byte %llu of the body",
                 (unsigned long long)at);
    }
}

/* Events of the stream that its API does not have. */
static bool malformed(const struct tap *t)
{
    return t->mode == TAP_SSE && (t->bad_events || t->sse.unknown_fields);
}

enum record_outcome tap_outcome(struct tap *t, int err, bool client_left)
{
    struct record *r = t->rec;
    const struct dialect_facts *f = &t->dialect.facts;
    r->client_left = client_left;
    if (client_left) {
        /* The answer was whole: a client may hang up before the chunked
         * terminator (httpx does, after data: [DONE]). */
        if (!err && f->ended && !f->error && r->status < 400 && !malformed(t))
            return RECORD_OK;
        return RECORD_CLIENT_ABORT;
    }
    if (err == UPSTREAM_ERR_TIMEOUT || err == UPSTREAM_ERR_CONNECT_TIMEOUT ||
        err == UPSTREAM_ERR_TLS_TIMEOUT)
        return RECORD_TIMEOUT;
    if (err)
        return t->head_seen ? RECORD_TRUNCATED : RECORD_UPSTREAM_ERROR;
    if (r->status >= 400)
        return RECORD_HTTP_ERROR;
    if (malformed(t))
        return RECORD_PROTOCOL_ERROR;
    /* An error event, or a stream that ended without its end marker. */
    if (f->error || (t->mode == TAP_SSE && r->dialect != DIALECT_UNKNOWN && !f->ended))
        return RECORD_TRUNCATED;
    return RECORD_OK;
}
