/* bench_results_int: what bench_results.c and bench_capacity.c share and
 * nobody else uses: a request's per-turn numbers and a repetition's
 * facts, computed one way for the cells and for the capacity search. */
#ifndef TOKENTAP_BENCH_RESULTS_INT_H
#define TOKENTAP_BENCH_RESULTS_INT_H

#include <stdbool.h>

#include "report/results.h"
#include "study/bench_results.h"

struct cJSON;

/* The per-turn metrics of a request that went well (NaN where undefined). */
void bench_results_request_metrics(const struct record *r, double v[RESULTS_CELL_METRICS]);

/* Copies of level li run at once: its users (1 outside capacity runs). */
unsigned bench_results_users_of(const struct bench_results_in *in, size_t li);

/* One repetition of a level on a target: its wall time (first user's
 * start to last user's answer, ms; NaN when it did not run), its output
 * tokens, and whether a request failed. */
struct bench_rep_facts {
    double wall, tokens;
    bool bad;
};
struct bench_rep_facts bench_results_rep_facts(const struct bench_results_in *in, size_t ti,
                                               size_t li, unsigned rep);

/* The primary agent's time in one user's repetition, from its first
 * request's start to its last response's end (ms); NaN when none of its
 * requests is there or one of the user's requests failed. */
double bench_results_primary_total(const struct bench_results_in *in, size_t ti, size_t li,
                                   unsigned rep, unsigned user);

/* bench_capacity.c: the answer into run->capacity (nothing outside
 * capacity runs; 0 or -ENOMEM), and as results.json's "capacity". */
int bench_capacity_build(const struct bench_results_in *in, struct results *run);
struct cJSON *bench_capacity_json(const struct bench_results_in *in,
                                  const struct results_capacity *c);

#endif
