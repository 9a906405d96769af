/* tap: the stream tap. Observes one response's de-chunked body bytes (it
 * never delays them: the caller forwards bytes first, then feeds them
 * here) and turns them into token events with the read's timestamp,
 * using sse and dialect; at the end it copies the response's own facts
 * (usage, timings, finish, errors) into the record. Pure: bytes and
 * times in, record updates out. */
#ifndef TOKENTAP_TAP_H
#define TOKENTAP_TAP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/clock.h"
#include "tap/dialect.h"
#include "wire/http.h"
#include "tap/record.h"
#include "tap/sse.h"

/* Non-streamed bodies are read whole up to this size to find usage. */
#define TAP_MAX_JSON_BODY (8u * 1024 * 1024)

/* Called for every token-bearing event (after the record is updated), and
 * with each piece of generated text if text_cb is set. */
typedef void (*tap_token_cb)(void *ctx, const struct record *r, usec_t t);

/* Called for every SSE event (token or not) with its arrival time. */
typedef void (*tap_event_cb)(void *ctx, const struct sse_event *ev, usec_t t);

struct tap {
    struct record *rec;        /* borrowed */
    struct sse_parser sse;
    struct dialect dialect;
    enum { TAP_OFF, TAP_SSE, TAP_JSON } mode;
    bool head_seen;            /* tap_head was called: a response began */
    char *json;                /* owned: a non-streamed body being collected */
    size_t json_len, json_cap;
    bool json_overflow;
    uint64_t bad_events;       /* events the dialect could not read */
    uint64_t first_bad_at;     /* stream offset of the first one */
    usec_t now;                /* time of the bytes being fed */
    tap_token_cb on_token;     /* may be NULL */
    dialect_token_cb on_text;  /* may be NULL: receives generated text */
    tap_event_cb on_event;     /* may be NULL */
    void *ctx;                 /* borrowed */
};

/* Prepares a tap for a response to a request in dialect kind. */
void tap_init(struct tap *t, struct record *rec, enum dialect_kind kind);

/* Releases buffers (the record stays). */
void tap_finish(struct tap *t);

/* Reads the response head: SSE or JSON is measured; a compressed body or
 * another content type is passed over (rec->measured = false for encoded
 * bodies). */
void tap_head(struct tap *t, const struct http_head *h, usec_t now);

/* Observes de-chunked body bytes that arrived at now. */
void tap_body(struct tap *t, const char *data, size_t len, usec_t now);

/* Hints for a caller about to feed many taps in turn (tapq): the lines of
 * t that tap_body reads for an event, and, once those are in (a few taps
 * later), the lines of its record. Nothing changes. */
void tap_prefetch(const struct tap *t);
void tap_prefetch_record(const struct tap *t);

/* The response ended (complete or not) at now: final facts into the record. */
void tap_end(struct tap *t, usec_t now);

/* The verdict on an exchange that is over, decided here only (proxy and
 * load generator alike): err is how the upstream side ended (0 when the
 * response ended properly or is not over, else an UPSTREAM_ERR_* or other
 * negative errno); client_left says the client went away first. A client
 * that leaves after the API's own end marker ([DONE], message_stop, ...)
 * of a complete answer lost nothing: ok. Notes client_left in the record. */
enum record_outcome tap_outcome(struct tap *t, int err, bool client_left);

#endif
