/* report_build: what a report shows, decided once for Markdown and HTML.
 * A plan names the sides (a target of a run) and which pairs are
 * compared; the builders turn it into report_doc blocks (tables with the
 * significance marks), and report_html draws its charts from the same
 * plan. Pure. */
#ifndef TOKENTAP_REPORT_BUILD_H
#define TOKENTAP_REPORT_BUILD_H

#include <stdbool.h>
#include <stddef.h>

#include "report/results.h"
#include "core/stats.h"

struct config_err;
struct report_doc;

/* Targets one report shows (every extra one is compared with the first). */
#define REPORT_MAX_SIDES 32

/* One column of the comparison: a target of a run. */
struct report_side {
    const struct results *run;           /* borrowed */
    const struct results_target *target; /* borrowed */
    char label[160];                     /* how tables and charts name it */
};

struct report_pair {
    size_t ref, other; /* indexes into sides; differences are other - ref */
};

struct report_plan {
    bool compare;                  /* two runs side by side (else one run) */
    const char *source[2];         /* borrowed: file names of the runs, may be NULL */
    const struct results *runs[2]; /* borrowed: runs[1] only when compare */
    struct report_side sides[REPORT_MAX_SIDES];
    size_t n_sides;
    struct report_pair pairs[REPORT_MAX_SIDES];
    size_t n_pairs;
};

/* One run's plan: every target a side, each compared with the first.
 * 0 or -E2BIG (more than REPORT_MAX_SIDES targets, reason in err). */
int report_plan_run(struct report_plan *plan, const struct results *run, const char *source,
                    struct config_err *err);

/* Two runs' plan: targets matched by name (or the only target of each),
 * pairs (A's, B's). 0, or -ENOENT when no target matches (reason in err). */
int report_plan_compare(struct report_plan *plan, const struct results *a, const char *a_source,
                        const struct results *b, const char *b_source, struct config_err *err);

/* Appends the whole report (header, per-target tables in a run, the
 * comparisons, how to read it) with a CHARTS block where the HTML page
 * draws. Errors land in doc->error. */
void report_build(struct report_doc *doc, const struct report_plan *plan);

/* --- shared with report_html: the numbers behind tables and charts --- */

/* A side's level: NULL when its run has no level of that name. */
const struct results_level *report_side_level(const struct report_side *s, const char *level);

/* Every value of metric m in the side's cells at level (all agents and
 * turns, repetition order within a cell) into ret (caller frees ret->v).
 * 0 or -ENOMEM. */
int report_pool(const struct report_side *s, const char *level, enum results_metric_id m,
                struct results_values *ret);

/* The first (lowest) and last (highest concurrency) levels of a run;
 * NULL when it has none. */
const struct results_level *report_level_low(const struct results *run);
const struct results_level *report_level_high(const struct results *run);

/* Statistics of a metric's values (n == 0 when values is NULL). 0 or -errno. */
int report_summary(const struct results_values *values, struct stats_summary *ret);

/* The side-task view of an agent at a level: time per repetition summed
 * over its turns (NaN where any turn failed), passes over checks with
 * errors counted as failures. 0, -ENOENT (no cell) or -ENOMEM; free
 * ret->time.v. */
struct report_side_task {
    struct results_values time; /* owned */
    int pass, of, errors;       /* of = checked + errors; 0 when no checks */
    int n;                      /* repetitions */
};
int report_side_task(const struct report_side *s, const char *level,
                     const struct results_agent *agent, struct report_side_task *ret);

/* Levels of the plan's first run, in order (the charts' x axis). */
const struct results *report_plan_axis(const struct report_plan *plan);

/* The row label of a level: its name, with the concurrency in brackets
 * when the name does not say it. Returns buf. */
const char *report_level_label(char *buf, size_t len, const struct results_level *l);
/* The first column's title: "Concurrency", or "Level (concurrency)" when
 * some level's name is not its concurrency. */
const char *report_level_head(const struct results *run);

/* A value in a results unit ("ms", "tok/s", "tokens", "share") as the
 * tables show it: "96 ms", "2.4 s", "53.2", "1.0 %"; "—" for NaN. Returns buf. */
const char *report_format_unit(char *buf, size_t len, const char *unit, double v);

/* report_capacity.c: the capacity section of a capacity run (or two). */
void report_build_capacity(struct report_doc *doc, const struct report_plan *plan);

/* report_header.c: the header (run facts, targets, scenario) and the
 * closing "How to read this" section. */
void report_build_header(struct report_doc *doc, const struct report_plan *plan);
void report_build_how_to_read(struct report_doc *doc, const struct report_plan *plan);

#endif
