/* record: one request's timestamps and counts, and the metrics derived
 * from them (docs/metrics.md defines each). Filled by the stream tap and
 * the proxy or load generator; read by metrics, the request log and the
 * reports. Pure (record_begin reads the wall clock). */
#ifndef TOKENTAP_RECORD_H
#define TOKENTAP_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "tap/dialect.h"

struct evbuffer;

/* At most this many inter-token gaps are kept per request; metrics still
 * see every gap as it happens. */
#define RECORD_MAX_GAPS 65536

enum record_outcome {
    RECORD_OK,             /* a complete response, status < 400 */
    RECORD_HTTP_ERROR,     /* a complete response with status >= 400 */
    RECORD_CLIENT_ABORT,   /* the client went away first */
    RECORD_UPSTREAM_ERROR, /* no usable response: refused, malformed, closed before the head */
    RECORD_TRUNCATED,      /* the response was cut mid-way (or an error event ended it) */
    RECORD_TIMEOUT,        /* the upstream timed out */
    RECORD_PROTOCOL_ERROR, /* a complete response whose stream held bytes that are no event of its API */
    RECORD_IN_PROGRESS,    /* not finished yet */
};
#define RECORD_OUTCOMES 8

struct record {
    uint64_t id;
    usec_t wall_start;      /* wall clock at t_received, for logs */

    /* What it was. */
    char method[24];
    char route[96];         /* path without the query */
    enum dialect_kind dialect;
    char model[96];
    char upstream[64];
    char client[96];        /* User-Agent */
    char session[96];
    char parent[96];        /* generated load: the session that spawned this one, "" none */
    char kind[32];          /* generated load: the session's kind ("main", "Explore"), "" none */
    int status;             /* 0 until a response head */
    bool stream;            /* the response was an event stream */
    bool measured;          /* the tap could read it (not compressed, known format) */
    char rules[128];        /* rewrite rules applied, comma-separated */
    int thinking;           /* effective thinking: -1 unknown, 0 off, 1 on */

    /* Monotonic µs; 0 = did not happen. */
    usec_t t_received;      /* request head read */
    usec_t t_start;         /* proxy: last request byte read; load generator: intended send time */
    usec_t t_sent;          /* load generator: actual send time (0 for the proxy) */
    usec_t t_forwarded;     /* request handed to the upstream connection */
    usec_t t_response_head;
    usec_t t_first_byte;    /* first response body byte */
    usec_t t_first_token;
    usec_t t_first_reasoning;
    usec_t t_first_content;
    usec_t t_last_token;
    usec_t t_end;

    /* Counts. */
    uint64_t token_events;  /* SSE events carrying output */
    uint64_t token_pieces[DIALECT_TOKEN_KINDS]; /* pieces per kind (content, reasoning, tool) */
    uint64_t text_bytes[DIALECT_TOKEN_KINDS];
    int64_t server_output_tokens; /* usage/timings; -1 unknown */
    int64_t server_reasoning_tokens;
    int64_t prompt_tokens, cached_tokens;   /* -1 unknown */
    int64_t server_prompt_n, server_predicted_n; /* timings; -1 unknown */
    double server_prompt_ms, server_predicted_ms; /* timings; -1 unknown */
    uint64_t response_bytes;

    /* Generation requests in flight to this upstream, itself included
     * (metrics fills them; 0 for other routes). `concurrency` is the level:
     * the most at any moment from t_start to the first token (to the end
     * without one), so N requests sent together are all level N, also
     * when some wait for a slot. */
    unsigned concurrency;
    unsigned concurrency_start;       /* ... at t_start */
    unsigned concurrency_first_token; /* ... at the first token (0 without tokens) */
    uint64_t concurrency_mark;        /* metrics' count of starts at t_start */
    uint32_t live_lane;               /* live's lane + 1 (0: none), set by live_begin */
    /* The upstream's slot + 1 (0: not looked up) in metrics and in live, set
     * by metrics_begin and live_begin, so that a token event does not look
     * the upstream up by name. */
    uint8_t metrics_upstream, live_series;
    char response_model[96];          /* the model the upstream says answered, "" unknown */

    enum record_outcome outcome;
    bool client_left;       /* the client went away before the response ended */
    char finish_reason[32];
    char error[DIALECT_ERROR_MAX];

    uint32_t *gaps;         /* owned: µs between consecutive token events */
    size_t n_gaps, cap_gaps;
};

/* Zeroes r and sets the unknowns (-1). */
void record_init(struct record *r);
/* record_init, then what every exchange knows before it is sent: its id,
 * method, route (path up to '?'), the dialect the path speaks, t_received,
 * and wall_start (the wall clock now, for logs). Strings are copied and
 * cut to their fields. */
void record_begin(struct record *r, uint64_t id, const char *method, const char *path,
                  size_t path_len, usec_t t_received);
/* Hints that a token event is about to be recorded in r (tap_prefetch):
 * nothing changes. */
void record_prefetch(const struct record *r);
/* Frees the gap list; r may be reused after record_init. */
void record_finish(struct record *r);

/* Deep copy (gaps included when with_gaps). 0 or -ENOMEM. */
int record_copy(struct record *dst, const struct record *src, bool with_gaps);

/* Notes a token-bearing event at t (pieces per kind from the dialect). */
void record_token(struct record *r, usec_t t, const uint64_t pieces[DIALECT_TOKEN_KINDS]);

/* Copies the dialect's final facts (usage, timings, finish, error). */
void record_take_facts(struct record *r, const struct dialect_facts *f);

/* Derived metrics in µs (0 when not defined for this request). */
usec_t record_ttft(const struct record *r);
usec_t record_ttfc(const struct record *r);
usec_t record_e2e(const struct record *r);
/* (last token - first token) / (output tokens - 1); 0 with < 2 tokens. */
usec_t record_tpot(const struct record *r);
/* Output tokens: the server's count when given, else token events. */
uint64_t record_output_tokens(const struct record *r);
/* (output tokens - 1) / (last - first token), tokens per second; 0 if undefined. */
double record_decode_tps(const struct record *r);
/* TTFT minus the server's prompt_ms: time not spent in prefill; -1 unknown. */
int64_t record_queue_estimate(const struct record *r);
/* Response head - t_start: llama-server sends an event stream's head
 * when the request gets a slot, so this is the wait for a slot; -1
 * without a head or for a response that is not a stream. */
int64_t record_slot_wait(const struct record *r);
/* First token - response head: prompt processing; -1 when undefined. */
int64_t record_prefill(const struct record *r);
/* True for the dialects' completion routes: only they enter token
 * latency statistics and concurrency. */
bool record_is_generation(const struct record *r);

const char *record_outcome_name(enum record_outcome o);

/* Appends r as one JSON object (no newline); gaps only when with_gaps. */
void record_to_json(const struct record *r, struct evbuffer *out, bool with_gaps);

#endif
