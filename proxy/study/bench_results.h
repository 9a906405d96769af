/* bench_results: turns a bench run's raw entries (one per request, one
 * per level repetition) into results.json (docs/results-format.md):
 * scenario, targets, environment, and the cells that aggregate each
 * metric over repetitions with bootstrap confidence intervals. Pure. */
#ifndef TOKENTAP_BENCH_RESULTS_H
#define TOKENTAP_BENCH_RESULTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/clock.h"
#include "study/scenario.h"

struct cJSON;

struct bench_results_in {
    const struct scenario *s;          /* borrowed */
    const struct cJSON *requests;      /* borrowed: the request entries */
    const struct cJSON *level_runs;    /* borrowed: {target, level, repetition, wall_ms} */
    const struct scenario_target *targets[SCENARIO_MAX_TARGETS]; /* borrowed */
    const struct cJSON *props[SCENARIO_MAX_TARGETS];  /* borrowed: each target's /props or NULL */
    size_t n_targets;
    int thinking_override;             /* -1: none */
    usec_t start_wall, duration;
    char command[2048];
    bool interleaved, complete;
};

/* The whole results.json tree; "requests" is a reference to in->requests
 * (deleting the tree leaves them). NULL on allocation failure. */
struct cJSON *bench_results_build(const struct bench_results_in *in);

#endif
