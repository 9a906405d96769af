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

#define METRICS_MAX_BUCKETS 128

/* Upper bounds of Prometheus histogram buckets, ascending, µs. */
struct metrics_buckets {
    size_t n;
    usec_t le[METRICS_MAX_BUCKETS];
};

struct metrics_options {
    unsigned concurrency_buckets; /* levels 1..N-1 exact, the last is "N+" (default 16) */
    unsigned max_groups;          /* label combinations kept (default 1024) */
    unsigned max_sessions;        /* sessions kept, least recent dropped (default 256) */
    unsigned recent;              /* records kept for /tokentap/requests (default 256) */
    unsigned max_models;          /* model label values (configured + answered); then "other" (default 64) */
    /* Prometheus buckets: `slow` for TTFT, TTFC, slot wait, prefill,
     * queue estimate and durations (default 1 ms .. 5 min), `fast` for ITL
     * and TPOT (default 0.1 ms .. 10 s); 20 per decade. */
    struct metrics_buckets slow, fast;
};

void metrics_options_default(struct metrics_options *o);

/* Log-spaced bounds from min to max (µs), per_decade per factor of ten,
 * each rounded to three significant digits, the last one >= max. 0, or
 * -EINVAL when they do not fit METRICS_MAX_BUCKETS or min/max/per_decade
 * are out of range. */
int metrics_buckets_log(struct metrics_buckets *b, usec_t min, usec_t max, unsigned per_decade);

/* Returns 0 or -ENOMEM. now: the start of the metrics' clock. */
int metrics_new(const struct metrics_options *o, usec_t now, struct metrics **ret);
void metrics_free(struct metrics *m);

/* A model name the configuration knows: it is a label value of its own
 * (up to max_models names in all). 0 or -ENOSPC. */
int metrics_add_model(struct metrics *m, const char *name);

/* r starts at now on r->upstream: a generation request is counted in
 * flight, and r->concurrency_start and r->concurrency are set. */
void metrics_begin(struct metrics *m, struct record *r, usec_t now);

/* A token event of r arrived at now (after record_token): feeds the
 * tokens/s window and, for the first one, r->concurrency_first_token and
 * r->concurrency (the most in flight since r started). */
void metrics_token(struct metrics *m, struct record *r, usec_t now);

/* r finished (its outcome set): no longer in flight; aggregated: a
 * generation request into the latency statistics by upstream, model,
 * route, level and thinking (r->concurrency is final after this), any
 * other one into a count and duration by route and status. */
void metrics_end(struct metrics *m, struct record *r, usec_t now);

/* Counts a request body the rewrite filter left alone, by reason. */
void metrics_rewrite_skipped(struct metrics *m, const char *reason);

/* Prometheus text exposition (version 0.0.4) of everything. */
void metrics_prometheus(struct metrics *m, struct evbuffer *out, usec_t now);

/* JSON statistics: overall, per group, per concurrency level, per
 * thinking state, per session, outcomes, concurrency and throughput. */
void metrics_stats_json(struct metrics *m, struct evbuffer *out, usec_t now);

/* The by_concurrency array of metrics_stats_json alone (the dashboard's
 * level table): one row per concurrency level, in order. */
void metrics_levels_json(const struct metrics *m, struct evbuffer *out);

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
