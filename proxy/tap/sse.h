/* sse: an incremental Server-Sent Events parser (WHATWG event-stream
 * rules). Pure: bytes in, events out through a callback, no I/O.
 *
 * Events that lie whole in the fed buffer and have at most one data line
 * are handed out as views into that buffer; an event that spans feeds is
 * copied into the parser's own buffer, and multi-line data is joined in a
 * second one. Both are allocated on first need and never grow past
 * max_event_bytes. */
#ifndef TOKENTAP_SSE_H
#define TOKENTAP_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Used when max_event_bytes is 0 (a zeroed parser). Large enough for a
 * Responses `response.completed` event, which repeats the whole output. */
#define SSE_DEFAULT_MAX_EVENT_BYTES (4u * 1024 * 1024)

/* One dispatched event. Views, not NUL-terminated, valid only during the
 * callback. */
struct sse_event {
    const char *event; /* borrowed: last `event:` value; NULL when the event had none */
    size_t event_len;
    const char *data;  /* borrowed: `data:` lines joined with "\n"; never NULL */
    size_t data_len;
    const char *id;    /* borrowed: last `id:` value of this event; NULL when none */
    size_t id_len;
};

/* Called once per dispatched event. Return 0 to go on; any other value
 * stops sse_feed(), which returns it. */
typedef int (*sse_event_cb)(void *ctx, const struct sse_event *ev);

/* A zeroed struct is a ready parser with the default limit. The fields are
 * private to sse.c except the counters at the end. */
struct sse_parser {
    size_t max_event_bytes; /* raw bytes of one event, line ends included; 0 = default */

    char *raw;              /* owned: the pending event's raw bytes (ev_len of them) once it spans feeds */
    size_t raw_cap;
    char *join;             /* owned: the pending event's data when it has several lines */
    size_t join_len, join_cap;

    /* The pending event: sizes and offsets from its first byte. */
    size_t ev_len;
    size_t line_off;        /* where the current line starts */
    size_t data_off, data_len;
    size_t type_off, type_len;
    size_t id_off, id_len;
    uint32_t data_lines;
    bool has_type, has_id;
    bool ev_active;         /* a field line was seen since the last blank line */
    bool ev_spilled;        /* the pending event lives in raw */

    bool in_line;           /* the current line started in an earlier feed */
    bool line_stored;       /* the current line belongs to the pending event */
    bool cr_pending;        /* the last feed ended on CR: a leading LF ends the same line */
    bool cr_stored;         /* ...and that LF belongs to the pending event */
    bool discarding;        /* dropping an oversized event until the next blank line */
    bool bom_done;          /* the stream start was checked for a UTF-8 BOM */
    uint8_t bom_matched;

    uint64_t fed;           /* stream bytes fed before the current feed */
    uint64_t ev_at, line_at;/* stream offsets of the pending event and the current line */

    /* Counters, for the caller to read. */
    uint64_t events;        /* events dispatched */
    uint64_t comments;      /* `:` comment lines */
    uint64_t oversized;     /* events dropped for going over max_event_bytes */
    /* Field lines no event stream of ours has (not data, event, id or
     * retry): the spec ignores them, a measuring tap reports them. */
    uint64_t unknown_fields;
    uint64_t first_unknown_at; /* stream offset of the first such line */
    uint64_t event_at;      /* stream offset of the event being dispatched (in the callback) */
};

/* Prepares a parser; max_event_bytes 0 means SSE_DEFAULT_MAX_EVENT_BYTES. */
void sse_parser_init(struct sse_parser *p, size_t max_event_bytes);

/* Frees the parser's buffers and forgets any pending event; the counters
 * and the limit stay, so the parser can be read (or fed a new stream). */
void sse_parser_finish(struct sse_parser *p);

/* Parses len bytes of the stream, calling cb (may be NULL) for each
 * complete event. Returns 0; or the first nonzero value cb returned (the
 * rest of buf is dropped, the parser stays between events); or -E2BIG if
 * an event went over the limit, or -ENOMEM if a buffer could not grow (that
 * event was dropped up to the next blank line; later events in buf were
 * still delivered). */
int sse_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_cb cb, void *ctx);

/* True when no event is pending (a partial comment line does not count):
 * a stream that ends here lost nothing; one that ends otherwise lost its
 * last event. */
bool sse_parser_idle(const struct sse_parser *p);

#endif
