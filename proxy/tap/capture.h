/* capture: what the proxy keeps of one exchange for the trace recorder
 * (serve --record): the request head and body as forwarded, the response's
 * text per kind and, optionally, every SSE event with its arrival offset.
 * Everything is capped; a capped body is not recorded at all (a trace
 * must replay exactly what was sent). Pure: buffers in, a trace entry out. */
#ifndef TOKENTAP_CAPTURE_H
#define TOKENTAP_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/clock.h"
#include "tap/dialect.h"
#include "wire/http.h"
#include "tap/record.h"

struct evbuffer;
struct sse_event;
struct trace_writer;

/* Request bodies larger than this are left out of the trace. */
#define CAPTURE_MAX_BODY (64u * 1024 * 1024)
/* Response text kept per kind, and event bytes kept. */
#define CAPTURE_MAX_TEXT (8u * 1024 * 1024)
#define CAPTURE_MAX_EVENT_BYTES (16u * 1024 * 1024)

struct capture {
    bool active;
    bool events_on;
    char *path;                     /* owned: path with query */
    struct http_header *headers;    /* owned copies (names and values in `strings`) */
    size_t n_headers;
    char *strings;                  /* owned */
    struct evbuffer *body;          /* owned: the request body as forwarded */
    bool body_dropped;              /* over CAPTURE_MAX_BODY */
    struct evbuffer *text[DIALECT_TOKEN_KINDS]; /* owned */
    struct evbuffer *events;        /* owned: packed (offset µs, length, bytes) */
    size_t n_events;
    bool events_dropped;
};

/* Starts capturing an exchange whose request head is h. 0 or -ENOMEM. */
int capture_init(struct capture *c, const struct http_head *h, bool events);
void capture_finish(struct capture *c);

/* The request body bytes as forwarded (call once per piece, in order). */
void capture_body(struct capture *c, const char *data, size_t len);
/* Generated text from the tap. */
void capture_text(struct capture *c, enum dialect_token_kind kind, const char *text, size_t len);
/* One SSE event from the tap, arrived at t (t_start is the record's). */
void capture_event(struct capture *c, const struct sse_event *ev, usec_t t, usec_t t_start);

/* Hands the exchange to the writer as one trace line (never blocks).
 * Returns trace_writer_add's result. */
int capture_write(struct capture *c, struct trace_writer *w, const struct record *r);

#endif
