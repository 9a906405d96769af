/* capacity: how many users a server holds before a service objective
 * breaks (docs/bench.md#capacity). A user is whatever the caller runs
 * once per user and measures (bench: one copy of a scenario level's
 * agents); this module only plans and judges:
 *
 *   - the objective, parsed from text like "ttft_p95<2s, errors<1%": each
 *     part a metric bench reports per level, a statistic over the level's
 *     requests (or repetitions), a comparison and a limit;
 *   - the search: 1, 2, 4, 8, ... users until the objective breaks, then
 *     bisection between the last count that held and the first that broke,
 *     then more repetitions of those two until each verdict is significant
 *     (the objective's bootstrap CI over the repetitions lies on one side
 *     of the limit) or a cap is reached;
 *   - the answer: the largest count that held below the smallest that
 *     broke, its 95 % CI (the whole judgement bootstrapped over each
 *     count's repetitions), and the objective that broke first.
 *
 * The caller adds one repetition at a time (capacity_add) and asks what
 * to run next (capacity_next). Pure and deterministic (fixed seeds). */
#ifndef TOKENTAP_CAPACITY_H
#define TOKENTAP_CAPACITY_H

#include <stdbool.h>
#include <stddef.h>

struct config_err;

#define CAPACITY_MAX_OBJECTIVES 8
#define CAPACITY_MAX_USERS 256   /* the most users a search may try */
#define CAPACITY_MAX_POINTS 64   /* counts one search may try */
#define CAPACITY_MAX_REPS 100    /* repetitions of one count */
#define CAPACITY_RESAMPLES 1000  /* bootstrap resamples of a judgement */

enum capacity_metric {
    /* Per request (the cells' metrics). */
    CAPACITY_TTFT,
    CAPACITY_TTFC,
    CAPACITY_E2E,
    CAPACITY_TOKENS,
    CAPACITY_DECODE_TPS,
    CAPACITY_ITL,
    CAPACITY_SLOT_WAIT,
    CAPACITY_PREFILL,
    /* Per request, 1 or 0: failed; an answer check passed (checked turns). */
    CAPACITY_ERRORS,
    CAPACITY_PASS,
    /* Per repetition: all output tokens over its wall time; its wall time. */
    CAPACITY_OUTPUT_TPS,
    CAPACITY_WALL,
    /* Per user and repetition: the primary agent's first request to last answer. */
    CAPACITY_TOTAL,
    CAPACITY_METRICS,
};

enum capacity_stat { CAPACITY_P50, CAPACITY_P90, CAPACITY_P95, CAPACITY_P99, CAPACITY_MEAN,
                     CAPACITY_MIN, CAPACITY_MAX };

enum capacity_op { CAPACITY_LT, CAPACITY_LE, CAPACITY_GT, CAPACITY_GE };

enum capacity_unit { CAPACITY_UNIT_MS, CAPACITY_UNIT_TPS, CAPACITY_UNIT_COUNT, CAPACITY_UNIT_SHARE };

struct capacity_objective {
    enum capacity_metric metric;
    enum capacity_stat stat;
    enum capacity_op op;
    double limit;   /* ms, tok/s, tokens, or a share 0..1 (errors, pass) */
    char name[32];  /* "ttft_p95": results.json's key for it */
    char text[64];  /* "TTFT p95 < 2 s": how reports say it */
};

struct capacity_slo {
    struct capacity_objective o[CAPACITY_MAX_OBJECTIVES];
    size_t n;
    char text[256]; /* the objectives' texts joined with ", " */
};

/* Parses "ttft_p95<2s, decode_tps_p50>20, errors<1%". 0, or -EINVAL with
 * a one-line reason in err (naming the part and what is expected). */
int capacity_slo_parse(const char *text, struct capacity_slo *ret, struct config_err *err);

/* The metric's key ("ttft", "decode_tps", ...), its name in prose
 * ("TTFT", "decode tok/s"), its unit. */
const char *capacity_metric_key(enum capacity_metric m);
const char *capacity_metric_label(enum capacity_metric m);
enum capacity_unit capacity_metric_unit(enum capacity_metric m);

/* Whether v meets objective o (NaN never does). */
bool capacity_meets(const struct capacity_objective *o, double v);

struct capacity_settings {
    unsigned max_users;     /* the search stops here (1..CAPACITY_MAX_USERS) */
    unsigned search_reps;   /* repetitions of every count tried (>= 1) */
    unsigned boundary_reps; /* at least this many at the two boundary counts */
    unsigned max_reps;      /* at most this many of any count */
};

struct capacity_search;

/* A search for objective slo (borrowed: it must outlive the search).
 * 0 or -ENOMEM; -EINVAL for settings out of range. */
int capacity_search_new(const struct capacity_slo *slo, const struct capacity_settings *set,
                        struct capacity_search **ret);
void capacity_search_free(struct capacity_search *s);

/* One repetition at `users`: values[i][0..n[i]) for objective i (finite
 * values only; copied). 0, -E2BIG (too many counts or repetitions) or
 * -ENOMEM. */
int capacity_add(struct capacity_search *s, unsigned users, const double *const *values,
                 const size_t *n);

/* What to run next: one more repetition at *ret_users (1), or nothing (0:
 * the answer is as good as the settings allow). -ENOMEM. */
int capacity_next(struct capacity_search *s, unsigned *ret_users);

/* One objective at one count. */
struct capacity_judgement {
    double value;      /* the statistic over every value of the count */
    double lo, hi;     /* its 95 % bootstrap CI over the repetitions; NaN with one */
    bool pass;
    bool significant;  /* the CI lies on the same side of the limit as the value */
};

struct capacity_point_result {
    unsigned users;
    size_t reps;
    bool pass, significant;
    struct capacity_judgement j[CAPACITY_MAX_OBJECTIVES];
};

enum capacity_bound {
    CAPACITY_NONE,     /* nothing measured */
    CAPACITY_FOUND,    /* held at `capacity`, broke at the next count */
    CAPACITY_AT_LEAST, /* never broke up to max_users */
    CAPACITY_BELOW_ONE, /* one user already breaks it: capacity 0 */
};

struct capacity_answer {
    enum capacity_bound bound;
    unsigned capacity;         /* the largest count that held (below the first that broke) */
    unsigned ci_lo, ci_hi;     /* 95 % bootstrap CI of capacity */
    int broke;                 /* objective that broke first (at broke_at), -1 when none */
    unsigned broke_at;         /* the smallest count that broke, 0 when none */
    struct capacity_point_result *points; /* owned: every count tried, by users */
    size_t n_points;
};

/* The answer so far. 0 or -ENOMEM; free with capacity_answer_finish. */
int capacity_answer(const struct capacity_search *s, struct capacity_answer *ret);
void capacity_answer_finish(struct capacity_answer *a);

#endif
