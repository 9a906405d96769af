/* results: a parsed bench results.json (docs/results-format.md, version 1)
 * as plain structs, for report and compare. Pure: it takes the text or a
 * cJSON tree and never touches files. Strings and request records point
 * into the cJSON tree, which the struct either owns (results_parse) or
 * borrows (results_from_json). Metric values are per repetition, NaN where
 * the repetition failed or the value is null. */
#ifndef TOKENTAP_RESULTS_H
#define TOKENTAP_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
};

struct results_agent {
    const char *name;  /* borrowed from the tree */
    const char *label; /* borrowed; the name when the file has none */
    bool primary;      /* role "primary" (else a side task) */
    int turns;
};

struct results_level {
    const char *name;   /* borrowed */
    double concurrency; /* NaN when unknown */
    const struct cJSON *phases; /* borrowed; may be NULL */
};

struct results_target {
    const char *name;  /* borrowed */
    const char *label; /* borrowed; the name when the file has none */
    const char *url;   /* borrowed; NULL on the simulator */
    const struct cJSON *sim; /* borrowed; the simulator profile or NULL */
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

struct results_request {
    const char *target, *level, *agent; /* borrowed */
    long repetition;
    int turn;
    int check;                   /* 1 pass, 0 fail, -1 no check */
    const struct cJSON *record;  /* borrowed; the request record or NULL */
};

struct results {
    struct cJSON *owned_root;  /* owned by results_parse, NULL when borrowed */
    const struct cJSON *root;  /* borrowed (or owned_root) */
    bool complete;
    const char *tokentap_version; /* borrowed; may be NULL */
    const struct cJSON *scenario;    /* borrowed */
    const struct cJSON *environment; /* borrowed; may be NULL */
    const char *scenario_name;   /* borrowed; "" when absent */
    int repetitions;             /* scenario.repetitions, 0 when unknown */
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

/* The first primary agent, or NULL when the scenario has none. */
const struct results_agent *results_primary(const struct results *r);

#endif
