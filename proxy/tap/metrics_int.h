/* metrics' own parts, shared by metrics.c (aggregation, JSON) and
 * metrics_prom.c (the Prometheus text): no other module includes this. */
#ifndef TOKENTAP_METRICS_INT_H
#define TOKENTAP_METRICS_INT_H

#include <stdint.h>

#include "core/hist.h"
#include "tap/metrics.h"
#include "tap/record.h"

enum {
    H_TTFT,
    H_TTFC,
    H_ITL,
    H_TPOT,
    H_E2E,
    H_QUEUE,
    H_SLOT_WAIT,
    H_PREFILL,
    H_COUNT,
};

#define WINDOW_SECONDS 64
#define MAX_UPSTREAMS 64
#define MAX_SKIP_REASONS 16
#define MAX_ROUTE_STATS 128
#define MODEL_LEN 96

struct group {
    char upstream[64], model[MODEL_LEN];
    const char *route; /* static: dialect_route_label() */
    unsigned level;   /* 1..concurrency_buckets; the last means "N+" */
    int thinking;     /* -1 unknown, 0 off, 1 on */
    struct hist *h;   /* owned: H_COUNT histograms, allocated at the first ok request */
    uint64_t requests;
    uint64_t outcomes[RECORD_OUTCOMES];
    uint64_t output_tokens, prompt_tokens, cached_tokens, token_events;
    double decode_tps_sum;
    uint64_t decode_n;
};

/* A rise of the in-flight count: the n-th start brought it to value. */
struct rise {
    uint64_t n;
    unsigned value;
};

struct upstate {
    char name[64];
    unsigned in_flight, peak;
    /* The highest in-flight count since any past start, for levels: rises
     * with strictly falling values (a rise hides every lower one before
     * it), so at most `peak` of them. */
    struct rise *rises;  /* owned */
    size_t n_rises, cap_rises;
    uint64_t starts;
    usec_t last_change;
    double area;      /* ∫ in_flight dt, in µs */
    uint64_t tokens;  /* token events delivered */
    uint64_t per_second[WINDOW_SECONDS]; /* token events by second (ring) */
    uint64_t second;  /* the second per_second[second % W] holds */
};

struct session {
    char id[96];
    uint64_t requests, errors, output_tokens, ttft_n;
    usec_t ttft_sum, ttft_max, e2e_sum, last_seen;
};

struct skip {
    char reason[48];
    uint64_t n;
};

/* Requests on routes that generate nothing (/health, /v1/models, ...). */
struct route_stat {
    const char *route; /* static: dialect_route_label() */
    int status;
    uint64_t n;
    struct hist *duration; /* owned */
};

struct metrics {
    struct metrics_options o;
    usec_t start;
    struct group *groups;       /* owned */
    size_t n_groups;
    /* The same requests by level alone (index level - 1), kept as they end:
     * the level table (/tokentap/stats, the dashboard each second) then
     * merges nothing. */
    struct group *levels;       /* owned, o.concurrency_buckets */
    struct upstate ups[MAX_UPSTREAMS];
    size_t n_ups;
    struct session *sessions;   /* owned, o.max_sessions */
    size_t n_sessions;
    struct record *recent;      /* owned ring of o.recent records (with their gaps) */
    size_t recent_next, recent_n;
    struct skip skips[MAX_SKIP_REASONS];
    size_t n_skips;
    struct route_stat routes[MAX_ROUTE_STATS];
    size_t n_routes;
    char (*models)[MODEL_LEN];  /* owned, o.max_models: the model label values */
    size_t n_models;
    uint64_t requests;
};

/* Adds in-flight time up to now to u's time-weighted mean. */
void metrics_account(struct upstate *u, usec_t now);

/* Token events per second over the last `seconds` whole seconds. */
double metrics_rate(struct upstate *u, usec_t now, unsigned seconds);

/* "on", "off" or "unknown" for a thinking state (-1, 0, 1). */
const char *metrics_thinking_name(int t);

#endif
