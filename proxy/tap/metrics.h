/* metrics: aggregates request records. Groups by upstream × model × route
 * × concurrency level × thinking, keeps in-flight counts, time-weighted
 * and peak concurrency and delivered tokens/s per upstream, per-session
 * totals and a ring of recent records; renders Prometheus text and JSON.
 * Latency histograms take only requests that completed (outcome ok), so
 * aborts and cut streams never skew percentiles; they are counted by
 * outcome instead. Pure: no I/O, the caller passes the time. */
#ifndef TOKENTAP_METRICS_H
#define TOKENTAP_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/clock.h"
#include "tap/record.h"

struct evbuffer;
struct hist;
struct metrics;

struct metrics_options {
    unsigned concurrency_buckets; /* levels 1..N-1 exact, the last is "N+" (default 16) */
    unsigned max_groups;          /* label combinations kept (default 1024) */
    unsigned max_sessions;        /* sessions kept, least recent dropped (default 256) */
    unsigned recent;              /* records kept for /tokentap/requests (default 256) */
};

void metrics_options_default(struct metrics_options *o);

/* Returns 0 or -ENOMEM. now: the start of the metrics' clock. */
int metrics_new(const struct metrics_options *o, usec_t now, struct metrics **ret);
void metrics_free(struct metrics *m);

/* r starts at now on r->upstream: counts it in flight and sets
 * r->concurrency_start. */
void metrics_begin(struct metrics *m, struct record *r, usec_t now);

/* A token event of r arrived at now (after record_token): feeds the
 * tokens/s window and, for the first one, r->concurrency_first_token. */
void metrics_token(struct metrics *m, struct record *r, usec_t now);

/* r finished (its outcome set): no longer in flight; aggregated. */
void metrics_end(struct metrics *m, const struct record *r, usec_t now);

/* Counts a request body the rewrite filter left alone, by reason. */
void metrics_rewrite_skipped(struct metrics *m, const char *reason);

/* Prometheus text exposition (version 0.0.4) of everything. */
void metrics_prometheus(struct metrics *m, struct evbuffer *out, usec_t now);

/* JSON statistics: overall, per group, per concurrency level, per
 * thinking state, per session, outcomes, concurrency and throughput. */
void metrics_stats_json(struct metrics *m, struct evbuffer *out, usec_t now);

/* The last `limit` records as a JSON array, newest first. */
void metrics_recent_json(const struct metrics *m, struct evbuffer *out, size_t limit, bool with_gaps);

/* Appends "key":{"count","p50","p90","p95","p99","min","max","mean"} in
 * milliseconds for a µs histogram (the shape every report reads). */
void metrics_hist_json(struct evbuffer *out, const char *key, const struct hist *h);

/* A few live figures for progress lines. */
struct metrics_brief {
    uint64_t finished, ok, errors;
    usec_t ttft_p50;             /* ok requests; 0 when none */
    uint64_t output_tokens;
    uint64_t token_events;       /* delivered so far, finished or not */
    double token_events_per_s;   /* all upstreams, last 10 s */
};
void metrics_brief(struct metrics *m, usec_t now, struct metrics_brief *ret);

/* Requests in flight across upstreams. */
unsigned metrics_in_flight(const struct metrics *m);

#endif
