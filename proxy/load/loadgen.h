/* loadgen: sends generated requests to a target through the same
 * pipeline the proxy measures with (upstream pool, stream tap, record,
 * metrics, request log), and hands back each finished record with the
 * response's text. Timing and ordering belong to the caller (sched,
 * replay, bench); loadgen only sends, measures and reports. */
#ifndef TOKENTAP_LOADGEN_H
#define TOKENTAP_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/clock.h"
#include "tap/record.h"
#include "wire/upstream.h"

struct event_base;
struct live;
struct loadgen;
struct metrics;
struct reqlog;

struct loadgen_options {
    const char *url;            /* borrowed: http://HOST:PORT[/prefix] */
    const char *label;          /* borrowed: upstream name in records (default: the URL) */
    struct upstream_pool_options pool;
    usec_t response_timeout;    /* until the response head (0 = none) */
    usec_t stream_timeout;      /* longest silence mid-response (0 = none) */
    struct metrics *metrics;    /* borrowed, may be NULL */
    struct reqlog *log;         /* borrowed, may be NULL */
    struct live *live;          /* borrowed, may be NULL: what a dashboard (--ui) shows */
    size_t max_text;            /* text kept per kind (default 4 MiB); the rest is dropped */
    bool keep_text;             /* keep the answer text for loadgen_result (default true);
                                 * false saves a copy per token when nobody reads it */
};

void loadgen_options_default(struct loadgen_options *o);

struct loadgen_header {
    const char *name, *value;   /* borrowed */
};

/* One request to send. Everything is copied by loadgen_send. */
struct loadgen_req {
    const char *method;         /* "POST" */
    const char *path;           /* with query */
    const struct loadgen_header *headers; /* extra headers (not Host/Content-Length) */
    size_t n_headers;
    const char *body;
    size_t body_len;
    usec_t intended;            /* intended send time; 0 = now (closed loop) */
    const char *session;        /* for the record, may be NULL */
    const char *parent, *kind;  /* for the record: an agentic session's parent and kind, may be NULL */
    const char *model;          /* for the record, may be NULL */
    int thinking;               /* for the record: -1 unknown, 0 off, 1 on */
    const char *rules;          /* for the record: rewrite rules applied, may be NULL */
};

/* What came back. Valid during the callback only. */
struct loadgen_result {
    const struct record *rec;
    /* Decoded output text, NUL-terminated: every piece up to the first
     * that would pass max_text (a prefix, never one with holes). */
    const char *content, *reasoning, *tools;
    size_t content_len, reasoning_len, tools_len;
    /* A non-streamed response body (NUL-terminated; its first
     * TAP_MAX_JSON_BODY bytes at most), else NULL. */
    const char *body;
    size_t body_len;
};

typedef void (*loadgen_done_cb)(void *ctx, const struct loadgen_result *res);

/* Returns 0, or -EINVAL with a reason in err for a bad URL, or -ENOMEM. */
int loadgen_new(struct event_base *base, const struct loadgen_options *o, struct loadgen **ret,
                struct config_err *err);

/* Frees everything; requests in flight are cancelled without callbacks. */
void loadgen_free(struct loadgen *lg);

/* Sends rq now. done is called exactly once (from the event loop, never
 * from inside this call) with the record, whatever the outcome. 0 or
 * -ENOMEM. */
int loadgen_send(struct loadgen *lg, const struct loadgen_req *rq, loadgen_done_cb done, void *ctx);

/* Aborts everything in flight: each gets its callback with outcome
 * client-abort. */
void loadgen_abort_all(struct loadgen *lg);

unsigned loadgen_in_flight(const struct loadgen *lg);

/* One answer brought back whole by loadgen_fetch. */
struct loadgen_fetched {
    int status;                 /* 0: no response */
    enum record_outcome outcome;
    char *body;                 /* owned: a JSON body, NUL-terminated; NULL for anything else */
    size_t body_len;
    char error[160];            /* why there was no answer, "" */
};

/* Sends rq to url (https: with tls, NULL for the defaults) and runs base
 * until the answer is in or timeout passed: for the few requests a
 * command makes around its load (a probe, the target's tokenizer). Other
 * events on base run meanwhile (an embedded sim answers). 0 with *ret
 * filled (free ret->body), -EINVAL for a bad URL or CA file (err says
 * why) or -ENOMEM. */
int loadgen_fetch(struct event_base *base, const char *url, const struct upstream_tls_options *tls,
                  const struct loadgen_req *rq, usec_t timeout, struct loadgen_fetched *ret,
                  struct config_err *err);

#endif
