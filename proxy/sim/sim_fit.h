/* sim_fit: fits the simulator's timing model (sim_engine, docs/sim.md) to
 * measured requests, so a simulator profile can stand in for a server that
 * was measured once (`tokentap sim --calibrate`, docs/sim.md#calibration).
 *
 * The model: `slots` parallel slots behind a FIFO queue; prompt
 * processing shared by the slots in prefill, prefill_tps in all, each
 * step slowed by the batch factor 1 + batch_slowdown x (busy slots - 1);
 * one token per 1/decode_tps x the batch factor per slot. A request's
 * record says when it started, when it got a slot (the response head:
 * llama-server sends it then), when its first and last token came, how
 * many prompt tokens the server evaluated and how many it generated. From
 * the records of one server the fit rebuilds how many slots were busy and
 * how many prompts were in prefill at every moment, and then:
 *
 *   decode      each request's steps = decode_tps x the integral of
 *               dt / batch factor over its decode (per gap when the gaps
 *               were kept): least squares in decode_tps for each
 *               batch_slowdown, the best batch_slowdown by a 1-D search;
 *   prefill     each request's evaluated prompt tokens = prefill_tps x the
 *               integral of dt / (prompts in prefill x batch factor) from
 *               its head to its first token: least squares;
 *   slots       given, else the slots busy while requests waited for one
 *               (the time-weighted mode), else at least the most seen busy.
 *
 * Then it replays the requests' arrivals through the same model with the
 * fitted numbers (sim_fit_replay) and compares each request's TTFT, slot
 * wait, prefill, decode tok/s and E2E with what was measured: the fit's
 * error per metric. Pure: no I/O; records come in as cJSON trees. */
#ifndef TOKENTAP_SIM_FIT_H
#define TOKENTAP_SIM_FIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

struct cJSON;

/* Requests one fit takes (a bench run has hundreds; a day of serve logs
 * may have many thousands). */
#define SIM_FIT_MAX_REQUESTS 1000000
/* Gaps one request may bring (the rest are not read). */
#define SIM_FIT_MAX_GAPS 100000

/* One measured request. Times are absolute microseconds on the clock its
 * records share (t.start_us and the offsets after it); 0 = unknown. */
struct sim_fit_request {
    unsigned group;          /* one server's requests share a group: busy slots are counted per group */
    bool ok;                 /* a whole streamed answer: it enters the fits and the error */
    usec_t start, head, first, last, end;
    uint32_t prompt_tokens;  /* the server's count; 0 = unknown */
    uint32_t cached_tokens;  /* of those, reused from the slot's cache */
    uint32_t prompt_n;       /* evaluated (prompt - cached); 0 = unknown */
    uint32_t output_tokens;  /* the server's count, else token events */
    uint32_t *gaps;          /* owned by whoever filled it (sim_fit_input): the
                              * gaps between token events, µs; NULL = not kept */
    size_t n_gaps;
};

/* The timing model's numbers (sim_options' names). */
struct sim_fit_params {
    unsigned slots;
    double prefill_tps, decode_tps, batch_slowdown;
};

enum sim_fit_slots_from {
    SIM_FIT_SLOTS_GIVEN, /* the caller knew (--slots, the server's /props) */
    SIM_FIT_SLOTS_QUEUE, /* the slots busy while requests waited for one */
    SIM_FIT_SLOTS_SEEN,  /* nobody waited: at least this many were busy at once */
};

enum sim_fit_metric {
    SIM_FIT_TTFT,
    SIM_FIT_SLOT_WAIT,
    SIM_FIT_PREFILL,
    SIM_FIT_DECODE_TPS,
    SIM_FIT_E2E,
    SIM_FIT_METRICS,
};

/* Measured against replayed, over the requests that have both. */
struct sim_fit_error {
    size_t n;
    double measured_p50, predicted_p50; /* ms, or tok/s for decode */
    double p50_error;      /* (predicted - measured) / measured; NaN when measured is 0 */
    double median_abs;     /* per request |predicted - measured|, the metric's unit */
};

struct sim_fit_options {
    unsigned slots;         /* 0: from the records */
    double default_slowdown; /* batch_slowdown when no request decoded beside another */
};

struct sim_fit_result {
    struct sim_fit_params p;
    enum sim_fit_slots_from slots_from;
    bool slowdown_measured;  /* some request decoded beside others: batch_slowdown was fitted */
    unsigned busy_max;       /* most slots busy at once (for 1 ms or more) */
    size_t n_requests;       /* given */
    size_t n_prefill, n_decode; /* requests each fit used */
    size_t n_gaps;           /* of n_decode, gaps used one by one */
    size_t n_waited;         /* requests that waited 2 ms or more for a slot */
    uint64_t prompt_tokens, cached_tokens; /* over the ok requests */
    size_t cache_hits;       /* ok requests with cached tokens */
    struct sim_fit_error err[SIM_FIT_METRICS];
};

/* Fits the model to reqs[0..n). 0; -ENODATA when no request can be used
 * for decode or for prefill (then *ret is untouched); -E2BIG past
 * SIM_FIT_MAX_REQUESTS; -ENOMEM. */
int sim_fit(const struct sim_fit_request *reqs, size_t n, const struct sim_fit_options *o,
            struct sim_fit_result *ret);

/* The model's answer for one request, given when it arrives. */
struct sim_fit_arrival {
    usec_t start;
    uint32_t prompt_n;      /* prompt tokens to evaluate (at least 1 is) */
    uint32_t output_tokens; /* tokens to generate (at least 1) */
};

struct sim_fit_times {
    double head, first, last; /* µs on the arrivals' clock */
};

/* Runs arrivals a[0..n) through the model with p (no prompt cache: the
 * arrivals' prompt_n already says what was evaluated): a FIFO queue in
 * arrival order, shared prefill, batched decode, as sim_engine does.
 * ret[i] belongs to a[i]. 0 or -ENOMEM (-EINVAL for p's numbers). */
int sim_fit_replay(const struct sim_fit_params *p, const struct sim_fit_arrival *a, size_t n,
                   struct sim_fit_times *ret);

/* Requests read from records, several sources together. */
struct sim_fit_input {
    struct sim_fit_request *reqs; /* owned, n of cap; each one's gaps owned too */
    size_t n, cap;
    size_t skipped;               /* records without the times a fit needs */
};

/* Adds one request record (docs/metrics.md#request-records: t.start_us,
 * t.response_head, ..., prompt_tokens, cached_tokens, server_prompt_n,
 * output_tokens, gaps_us) to group `group`. A record that is not an object
 * or has no start counts as skipped. 0, -E2BIG or -ENOMEM. */
int sim_fit_input_add(struct sim_fit_input *in, const struct cJSON *record, unsigned group);

/* Frees what the input owns; a zeroed input is empty. */
void sim_fit_input_finish(struct sim_fit_input *in);

#endif
