/* results: a bench run's results (docs/results-format.md, version 1) as
 * plain structs, for report and compare: typed through and through, so
 * the report reads no JSON. Two ways in, one struct: bench builds it in
 * memory from its typed rows (study/bench_results.c), and results_parse
 * reads a results.json. Pure: it takes the text or a cJSON tree and never
 * touches files. Names point into the cJSON tree, which the struct either
 * owns (results_parse) or borrows (results_from_json), or into bench's
 * scenario. Metric values are per repetition, NaN where the repetition
 * failed or the value is null. */
#ifndef TOKENTAP_RESULTS_H
#define TOKENTAP_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/stats.h"

struct cJSON;
struct config_err;

#define RESULTS_FORMAT "tokentap-bench"
#define RESULTS_VERSION 1
/* results.json holds every request record (and maybe every gap): large,
 * but never this large for a bench run. */
#define RESULTS_MAX_BYTES ((size_t)512 << 20)
/* Values per metric: one per repetition. */
#define RESULTS_MAX_REPETITIONS 100000
/* Turns per agent a results file may hold; scenarios take the same bound. */
#define RESULTS_MAX_TURNS 64

/* Per-turn metrics of a cell. */
enum results_metric_id {
    RESULTS_TTFT,
    RESULTS_TTFC,
    RESULTS_RESPONSE_TIME,
    RESULTS_TOKENS,
    RESULTS_DECODE_TPS,
    RESULTS_ITL_P50,
    RESULTS_SLOT_WAIT, /* streams: response head - start (the wait for a slot) */
    RESULTS_PREFILL,   /* streams: first token - response head */
    RESULTS_CELL_METRICS,
};

/* Per-level metrics of a level cell. */
enum results_level_metric_id {
    RESULTS_PRIMARY_TOTAL,
    RESULTS_WALL,
    RESULTS_OUTPUT_TPS,
    RESULTS_LEVEL_METRICS,
};

/* One metric's values, in repetition order. */
struct results_values {
    double *v; /* owned; NULL when n == 0 */
    size_t n;
    /* stats_summarize(v, n), when whoever made the values has computed it
     * (bench does, for results.json); the report then need not again. */
    bool summarized;
    struct stats_summary sum;
};

struct results_agent {
    const char *name;  /* borrowed from the tree */
    const char *label; /* borrowed; the name when the file has none */
    bool primary;      /* role "primary" (else a side task) */
    int turns;
};

/* One phase of a level: its kind and who runs in it. */
struct results_phase {
    const char *kind;    /* borrowed; NULL when the file names none */
    const char **agents; /* owned array of borrowed names; NULL where the file has no string */
    size_t n_agents;
};

struct results_level {
    const char *name;   /* borrowed */
    double concurrency; /* NaN when unknown */
    struct results_phase *phases; /* owned */
    size_t n_phases;
};

/* One setting of a simulator profile, in the profile's order. */
struct results_setting {
    const char *key; /* borrowed */
    char value[64];  /* as shown: %g for a number, the string, true or false */
};

struct results_target {
    const char *name;  /* borrowed */
    const char *label; /* borrowed; the name when the file has none */
    const char *url;   /* borrowed; NULL on the simulator */
    bool on_sim;       /* it has a simulator profile: sim[] */
    struct results_setting *sim; /* owned; n_sim settings */
    size_t n_sim;
    const char *profile; /* borrowed: the sim profile's file, NULL when inline or none */
    /* A profile fitted to measured requests (`tokentap sim --calibrate`):
     * a prediction of the server it was fitted to. */
    bool calibrated;
    const char *calibrated_from;   /* borrowed: the measured files; NULL when unknown */
    const char *calibrated_target; /* borrowed: the target fitted; NULL when unknown */
    char calibrated_levels[256];   /* the levels fitted, ", "-separated; "" = all */
    const char *sweep_value; /* borrowed: its value of the run's sweep, NULL = none */
    const char *model; /* borrowed; may be NULL */
    int thinking;      /* 1, 0, or -1 when not set */
    double vram_gb;    /* NaN when absent */
    double context;    /* NaN when absent */
};

struct results_cell {
    const char *target, *level, *agent; /* borrowed */
    int turn;
    int n, errors, pass, checked;
    struct results_values m[RESULTS_CELL_METRICS]; /* owned */
};

struct results_level_cell {
    const char *target, *level; /* borrowed */
    double concurrency;
    int n, errors;
    struct results_values m[RESULTS_LEVEL_METRICS]; /* owned */
};

/* What the report draws of one request (its timeline lane), from its
 * record. */
struct results_request {
    const char *target, *level, *agent; /* borrowed */
    long repetition;
    int user;                    /* capacity runs: which user (1-based); 0 otherwise */
    int turn;
    int check;                   /* 1 pass, 0 fail, -1 no check */
    bool ok;                     /* outcome "ok" (or the record names none) */
    double start_us;             /* t.start_us; NaN when unknown or there is no record */
    double first_token_ms, last_token_ms, end_ms; /* after the start; NaN when unknown */
    double output_tokens;        /* NaN when unknown */
    const double *gaps_us;       /* borrowed from the struct's gaps: the gaps between
                                  * token events, NaN where the file has no number */
    size_t n_gaps;
};

/* Objectives one capacity search judged by. */
#define RESULTS_MAX_OBJECTIVES 8
/* Counts one search may have tried, per target. */
#define RESULTS_MAX_POINTS 64

/* One part of a capacity objective ("ttft_p95<2s"). */
struct results_objective {
    const char *name;  /* borrowed: "ttft_p95" */
    const char *text;  /* borrowed: "TTFT p95 < 2 s"; the name when absent */
    const char *op;    /* borrowed: "<", "<=", ">" or ">="; NULL when absent */
    const char *unit;  /* borrowed: "ms", "tok/s", "tokens" or "share"; NULL when absent */
    double limit;      /* in unit (a share is 0..1); NaN when absent */
};

/* One objective at one count of users. */
struct results_judgement {
    double value, lo, hi; /* the statistic and its 95 % CI; NaN when unknown */
    int pass;             /* 1, 0, -1 unknown */
    int significant;      /* the CI backs the verdict: 1, 0, -1 unknown */
};

struct results_capacity_point {
    double users;
    int repetitions;
    int pass, significant; /* 1, 0, -1 unknown */
    struct results_judgement j[RESULTS_MAX_OBJECTIVES];
};

/* One target's capacity. */
struct results_capacity_target {
    const char *target;   /* borrowed */
    const char *bound;    /* borrowed: "found", "at-least", "below-one" or "none" */
    double capacity;      /* the largest count that held; NaN when unknown */
    double ci_lo, ci_hi;  /* its 95 % CI; NaN when unknown */
    const char *broke;    /* borrowed: the objective that broke first (its name); NULL */
    double broke_at;      /* the smallest count that broke; NaN when none */
    struct results_capacity_point *points; /* owned: the counts tried, by users */
    size_t n_points;
};

/* A capacity run's answer (bench --capacity): docs/results-format.md#capacity. */
struct results_capacity {
    bool present;
    const char *objective; /* borrowed: the objectives' texts, ", "-joined */
    struct results_objective objectives[RESULTS_MAX_OBJECTIVES];
    size_t n_objectives;
    const char *user_level; /* borrowed: the level whose agents are one user, or NULL */
    const char *user_trace; /* borrowed: or the agentic trace (a file or directory) one
                             * run of which is a user; NULL when the user is a level */
    const char *unit;       /* borrowed: "agents" (a user is one agent) or "users" */
    double max_users;       /* NaN when absent */
    struct results_capacity_target *targets; /* owned */
    size_t n_targets;
};

/* Where and when the run ran (the "environment" object). */
struct results_environment {
    char *host, *os, *started, *finished, *command, *schedule; /* owned; NULL when absent */
    double cpus, duration_s;     /* NaN when absent */
};

struct results {
    struct cJSON *owned_root;  /* owned by results_parse, NULL when borrowed */
    bool complete;
    const char *tokentap_version; /* borrowed; may be NULL */
    const char *scenario_name;   /* borrowed; "" when absent */
    const char *description;     /* borrowed: the scenario's; NULL when absent */
    const char *scenario_file;   /* borrowed: the scenario's path; NULL when absent */
    const char *sweep_key;       /* borrowed: what the run swept (--sweep); NULL when nothing */
    double warmup;               /* scenario.warmup; NaN when absent */
    int repetitions;             /* scenario.repetitions, 0 when unknown */
    bool has_environment;        /* env holds the file's "environment" */
    struct results_environment env;
    struct results_agent *agents; /* owned */
    size_t n_agents;
    struct results_level *levels; /* owned, in the scenario's order */
    size_t n_levels;
    struct results_target *targets; /* owned */
    size_t n_targets;
    struct results_cell *cells; /* owned */
    size_t n_cells;
    struct results_level_cell *level_cells; /* owned */
    size_t n_level_cells;
    struct results_request *requests; /* owned */
    size_t n_requests;
    double *gaps;                /* owned: every request's gaps, one list after another */
    size_t n_gaps;
    struct results_capacity capacity; /* present: a capacity run */
};

/* Parses results.json text. On success *ret owns a new struct (free it with
 * results_free). On failure returns -EINVAL (not JSON, not a results file,
 * another format version, a malformed section), -EFBIG or -ENOMEM and
 * writes a one-line reason into err (which may be NULL). */
int results_parse(const char *text, size_t len, struct results **ret, struct config_err *err);

/* Like results_parse, on a tree the caller keeps alive (and unchanged)
 * for the struct's lifetime. */
int results_from_json(const struct cJSON *root, struct results **ret, struct config_err *err);

/* Frees r and, from results_parse, its tree. NULL is a no-op. */
void results_free(struct results *r);

/* Lookups; NULL when absent. */
const struct results_target *results_target(const struct results *r, const char *name);
const struct results_level *results_level(const struct results *r, const char *name);
const struct results_agent *results_agent(const struct results *r, const char *name);
const struct results_cell *results_cell(const struct results *r, const char *target,
                                        const char *level, const char *agent, int turn);
const struct results_level_cell *results_level_cell(const struct results *r, const char *target,
                                                    const char *level);

/* The key of a metric in results.json's cells and level cells. */
const char *results_metric_key(enum results_metric_id m);
const char *results_level_metric_key(enum results_level_metric_id m);

/* A target's capacity in a capacity run; NULL when there is none. */
const struct results_capacity_target *results_capacity_of(const struct results *r,
                                                          const char *target);

/* The first primary agent, or NULL when the scenario has none. */
const struct results_agent *results_primary(const struct results *r);

#endif
