/* bench_results: a bench run's typed rows (one per request, one per level
 * repetition) become its results twice over: struct results for the
 * report, with the cells that aggregate each metric over repetitions, and
 * the text of results.json (docs/results-format.md). The rows stay structs
 * from the load generator to the report; JSON is written for the file
 * only. Pure. */
#ifndef TOKENTAP_BENCH_RESULTS_H
#define TOKENTAP_BENCH_RESULTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/clock.h"
#include "study/scenario.h"
#include "tap/record.h"

struct capacity_answer;
struct capacity_settings;
struct capacity_slo;
struct cJSON;
struct results;

/* Characters of the answer a request keeps (seed-script compatibility). */
#define BENCH_PREVIEW_CHARS 200

/* One measured request. */
struct bench_request {
    size_t target, level, agent;   /* indexes into the scenario */
    unsigned repetition;           /* 1-based */
    unsigned user;                 /* 1-based: which copy of the level (capacity runs), else 1 */
    size_t turn;                   /* 1-based */
    size_t phase;                  /* index into the level's phases */
    struct record rec;             /* owned (record_finish): a copy, gaps included */
    bool checked;                  /* the turn has a check, and check is its result */
    struct scenario_check_result check;
    /* The answer's first BENCH_PREVIEW_CHARS characters, at most 4 bytes
     * each, never half a UTF-8 sequence. */
    char preview[BENCH_PREVIEW_CHARS * 4 + 1];
};

/* One target running one level once (one user of it, in capacity runs). */
struct bench_level_run {
    size_t target, level;          /* indexes into the scenario */
    unsigned repetition;           /* 1-based */
    unsigned user;                 /* 1-based */
    usec_t start;                  /* when it started */
    usec_t wall;                   /* from its start to its last answer */
};

struct bench_results_in {
    const struct scenario *s;          /* borrowed */
    const struct bench_request *requests;     /* borrowed: n_requests, in finishing order */
    size_t n_requests;
    const struct bench_level_run *level_runs; /* borrowed: n_level_runs */
    size_t n_level_runs;
    const struct scenario_target *targets[SCENARIO_MAX_TARGETS]; /* borrowed */
    const struct cJSON *props[SCENARIO_MAX_TARGETS];  /* borrowed: each target's /props or NULL */
    size_t n_targets;
    int thinking_override;             /* -1: none */
    usec_t start_wall, duration;
    char command[2048];
    bool interleaved, complete;
    /* Capacity runs (bench --capacity): levels are counts of users (the
     * scenario's levels[].users), each target ran each count reps[t][l]
     * times (0: not at all); otherwise every level ran s->repetitions
     * times with one user. */
    bool capacity;
    unsigned reps[SCENARIO_MAX_TARGETS][SCENARIO_MAX_LEVELS];
    const struct capacity_slo *slo;                    /* borrowed: the objective */
    const struct capacity_settings *search;            /* borrowed: the search's limits */
    const struct capacity_answer *answers[SCENARIO_MAX_TARGETS]; /* borrowed: per target */
};

/* The run as the report reads it. Names borrow from in->s, gaps are
 * copied: *ret (free it with results_free) must not outlive the scenario.
 * 0 or -ENOMEM. */
int bench_results_build(const struct bench_results_in *in, struct results **ret);

/* results.json for the run: in's rows and the cells of run (which
 * bench_results_build made from in), as malloc'ed text. NULL for want of
 * memory. */
char *bench_results_json(const struct bench_results_in *in, const struct results *run);

/* The values the capacity search judges one repetition by: for each of
 * slo's objectives, those of target's requests at level in repetition rep
 * (a per-request metric of the ok ones, 1/0 per request for errors and
 * checks passed), of the repetition (output tok/s, wall time) or of each
 * user (the primary's total time). Reads in's scenario, requests and level
 * runs. values[i] is malloc'ed with n[i] entries (the caller frees them).
 * 0 or -ENOMEM. */
int bench_results_capacity_values(const struct bench_results_in *in, size_t target, size_t level,
                                  unsigned rep, const struct capacity_slo *slo, double **values,
                                  size_t *n);

#endif
