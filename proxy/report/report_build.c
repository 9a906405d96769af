#include "report/report_build.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "report/report_doc.h"

/* The primary table has turn 1 TTFT, a column per turn, last-turn tok/s and
 * the total, next to the level label. */
_Static_assert(RESULTS_MAX_TURNS + 4 <= REPORT_DOC_MAX_COLS, "primary table too wide");

/* --- plans --- */

int report_plan_run(struct report_plan *plan, const struct results *run, const char *source,
                    struct config_err *err)
{
    if (run->n_targets > REPORT_MAX_SIDES) {
        config_err_set(err, "%zu targets; a report shows at most %d", run->n_targets,
                       REPORT_MAX_SIDES);
        return -E2BIG;
    }
    memset(plan, 0, sizeof(*plan));
    plan->runs[0] = run;
    plan->source[0] = source;
    for (size_t i = 0; i < run->n_targets; i++) {
        struct report_side *s = &plan->sides[plan->n_sides++];
        s->run = run;
        s->target = &run->targets[i];
        snprintf(s->label, sizeof(s->label), "%s", s->target->label);
        report_doc_utf8_trim(s->label);
        if (i > 0)
            plan->pairs[plan->n_pairs++] = (struct report_pair){0, i};
    }
    return 0;
}

static void add_pair(struct report_plan *plan, const struct results *a,
                     const struct results_target *ta, const struct results *b,
                     const struct results_target *tb)
{
    size_t i = plan->n_sides;
    plan->sides[i] = (struct report_side){.run = a, .target = ta};
    plan->sides[i + 1] = (struct report_side){.run = b, .target = tb};
    snprintf(plan->sides[i].label, sizeof(plan->sides[i].label), "A: %s", ta->label);
    snprintf(plan->sides[i + 1].label, sizeof(plan->sides[i + 1].label), "B: %s", tb->label);
    report_doc_utf8_trim(plan->sides[i].label);
    report_doc_utf8_trim(plan->sides[i + 1].label);
    plan->n_sides += 2;
    plan->pairs[plan->n_pairs++] = (struct report_pair){i, i + 1};
}

int report_plan_compare(struct report_plan *plan, const struct results *a, const char *a_source,
                        const struct results *b, const char *b_source, struct config_err *err)
{
    memset(plan, 0, sizeof(*plan));
    plan->compare = true;
    plan->runs[0] = a;
    plan->runs[1] = b;
    plan->source[0] = a_source;
    plan->source[1] = b_source;
    for (size_t i = 0; i < a->n_targets && plan->n_sides + 2 <= REPORT_MAX_SIDES; i++) {
        const struct results_target *tb = results_target(b, a->targets[i].name);
        if (tb)
            add_pair(plan, a, &a->targets[i], b, tb);
    }
    /* Yesterday's "q4" run against today's "q3" run: one target each is
     * a pair whatever the names. */
    if (plan->n_pairs == 0 && a->n_targets == 1 && b->n_targets == 1)
        add_pair(plan, a, &a->targets[0], b, &b->targets[0]);
    if (plan->n_pairs == 0) {
        config_err_set(err,
                       "no target of the first run has a namesake in the second (and they do not "
                       "have one target each)");
        return -ENOENT;
    }
    return 0;
}

const struct results *report_plan_axis(const struct report_plan *plan)
{
    return plan->runs[0];
}

/* --- numbers --- */

const struct results_level *report_side_level(const struct report_side *s, const char *level)
{
    return results_level(s->run, level);
}

const struct results_level *report_level_low(const struct results *run)
{
    const struct results_level *best = NULL;
    for (size_t i = 0; i < run->n_levels; i++) {
        const struct results_level *l = &run->levels[i];
        if (!best || (!isnan(l->concurrency) && l->concurrency < best->concurrency) ||
            (isnan(best->concurrency) && !isnan(l->concurrency)))
            best = l;
    }
    return best;
}

const struct results_level *report_level_high(const struct results *run)
{
    const struct results_level *best = NULL;
    for (size_t i = 0; i < run->n_levels; i++) {
        const struct results_level *l = &run->levels[i];
        if (!best || (!isnan(l->concurrency) && l->concurrency > best->concurrency) ||
            (isnan(best->concurrency) && !isnan(l->concurrency)))
            best = l;
    }
    return best;
}

int report_summary(const struct results_values *values, struct stats_summary *ret)
{
    if (values && values->summarized) {
        *ret = values->sum;
        return 0;
    }
    return stats_summarize(values ? values->v : NULL, values ? values->n : 0, ret);
}

int report_side_task(const struct report_side *s, const char *level,
                     const struct results_agent *agent, struct report_side_task *ret)
{
    struct report_side_task t = {0};
    bool any = false;
    for (int turn = 1; turn <= agent->turns; turn++) {
        const struct results_cell *c =
            results_cell(s->run, s->target->name, level, agent->name, turn);
        if (!c)
            continue;
        const struct results_values *rt = &c->m[RESULTS_RESPONSE_TIME];
        if (!any) {
            t.time.n = rt->n;
            if (rt->n) {
                t.time.v = calloc(rt->n, sizeof(*t.time.v));
                if (!t.time.v)
                    return -ENOMEM;
            }
        }
        /* Repetition i of every turn adds to repetition i's time. */
        for (size_t i = 0; i < t.time.n; i++)
            t.time.v[i] += i < rt->n ? rt->v[i] : NAN;
        /* Errors fail a checked turn: they could not be checked. */
        if (c->checked > 0) {
            t.pass += c->pass;
            t.of += c->checked + c->errors;
        }
        t.errors += c->errors;
        if (c->n > t.n)
            t.n = c->n;
        any = true;
    }
    if (!any)
        return -ENOENT;
    *ret = t;
    return 0;
}

/* --- formatting --- */

enum unit {
    UNIT_MS,    /* milliseconds, shown as ms or s */
    UNIT_TPS,   /* tokens per second */
    UNIT_COUNT, /* whole numbers */
};

struct scale {
    double div;
    int decimals;
    const char *suffix;
};

static struct scale pick_scale(enum unit u, double v)
{
    double a = fabs(v);
    switch (u) {
    case UNIT_MS:
        if (a < 9.95)
            return (struct scale){1, 1, " ms"};
        if (a < 999.5)
            return (struct scale){1, 0, " ms"};
        if (a < 99950)
            return (struct scale){1000, 1, " s"};
        return (struct scale){1000, 0, " s"};
    case UNIT_TPS:
        return (struct scale){1, 1, ""};
    case UNIT_COUNT:
        break;
    }
    return (struct scale){1, 0, ""};
}

static const char *fmt_value(char *buf, size_t len, enum unit u, double v)
{
    if (isnan(v)) {
        snprintf(buf, len, "—");
        return buf;
    }
    struct scale sc = pick_scale(u, v);
    snprintf(buf, len, "%.*f%s", sc.decimals, v / sc.div, sc.suffix);
    return buf;
}

/* "96 ms ±4": the mean and half the width of its 95 % CI, in the mean's
 * unit; one more decimal when the half-width would round to 0. */
static const char *fmt_mean_ci(char *buf, size_t len, enum unit u, const struct stats_summary *s)
{
    if (s->n == 0)
        return fmt_value(buf, len, u, NAN);
    struct scale sc = pick_scale(u, s->mean);
    int n = snprintf(buf, len, "%.*f%s", sc.decimals, s->mean / sc.div, sc.suffix);
    if (isnan(s->ci_lo) || n < 0 || (size_t)n >= len)
        return buf;
    double h = (s->ci_hi - s->ci_lo) / 2 / sc.div;
    int d = sc.decimals;
    while (d < 3 && h > 0 && h < 0.5 * pow(10, -d))
        d++;
    snprintf(buf + n, len - (size_t)n, " ±%.*f", d, h);
    return buf;
}

static const char *fmt_pct(char *buf, size_t len, double rel)
{
    double p = rel * 100;
    if (isnan(p))
        buf[0] = '\0';
    else if (fabs(p) < 9.95)
        snprintf(buf, len, "%+.1f%%", p);
    else
        snprintf(buf, len, "%+.0f%%", p);
    return buf;
}

/* "+12.2 (+28%) *" or "+1 ms (+0.4%) n.s."; returns the cell's mark. */
static enum report_mark fmt_diff(char *buf, size_t len, enum unit u, const struct stats_diff *d)
{
    struct scale sc = pick_scale(u, d->diff);
    char pct[32];
    fmt_pct(pct, sizeof(pct), d->rel);
    snprintf(buf, len, "%+.*f%s%s%s%s %s", sc.decimals, d->diff / sc.div, sc.suffix,
             pct[0] ? " (" : "", pct, pct[0] ? ")" : "", d->significant ? "*" : "n.s.");
    return d->significant ? REPORT_MARK_SIG : REPORT_MARK_NS;
}

const char *report_format_unit(char *buf, size_t len, const char *unit, double v)
{
    if (unit && strcmp(unit, "share") == 0) {
        if (isnan(v))
            return fmt_value(buf, len, UNIT_COUNT, v);
        snprintf(buf, len, "%.*f %%", v == 0 ? 0 : fabs(v) < 0.1 ? 1 : 0, v * 100);
        return buf;
    }
    enum unit u = !unit || strcmp(unit, "ms") == 0 ? UNIT_MS
                  : strcmp(unit, "tok/s") == 0     ? UNIT_TPS
                                                   : UNIT_COUNT;
    return fmt_value(buf, len, u, v);
}

const char *report_level_label(char *buf, size_t len, const struct results_level *l)
{
    char c[32];
    snprintf(c, sizeof(c), "%g", l->concurrency);
    if (isnan(l->concurrency) || strcmp(c, l->name) == 0)
        snprintf(buf, len, "%s", l->name);
    else
        snprintf(buf, len, "%s (%s)", l->name, c);
    return buf;
}

const char *report_level_head(const struct results *run)
{
    char c[32];
    for (size_t i = 0; i < run->n_levels; i++) {
        snprintf(c, sizeof(c), "%g", run->levels[i].concurrency);
        if (strcmp(c, run->levels[i].name) != 0)
            return "Level (concurrency)";
    }
    return "Concurrency";
}

/* Summary of values, recording a failure in the doc. */
static struct stats_summary summary(struct report_doc *doc, const struct results_values *v)
{
    struct stats_summary s = {.mean = NAN, .ci_lo = NAN, .ci_hi = NAN, .p50 = NAN};
    int rc = report_summary(v, &s);
    if (rc < 0 && !doc->error)
        doc->error = rc;
    return s;
}

static const struct results_values *cell_metric(const struct report_side *s, const char *level,
                                                const struct results_agent *agent, int turn,
                                                enum results_metric_id m)
{
    if (!agent)
        return NULL;
    const struct results_cell *c = results_cell(s->run, s->target->name, level, agent->name, turn);
    return c ? &c->m[m] : NULL;
}

static const struct results_values *level_metric(const struct report_side *s, const char *level,
                                                 enum results_level_metric_id m)
{
    const struct results_level_cell *c = results_level_cell(s->run, s->target->name, level);
    return c ? &c->m[m] : NULL;
}

static void cell_mean_ci(struct report_doc *doc, enum unit u, const struct results_values *v)
{
    char buf[96];
    struct stats_summary s = summary(doc, v);
    report_doc_cell(doc, REPORT_MARK_NONE, "%s", fmt_mean_ci(buf, sizeof(buf), u, &s));
}

/* The difference cell of a comparison row. */
static void cell_diff(struct report_doc *doc, enum unit u, const struct results_values *a,
                      const struct results_values *b)
{
    struct stats_diff d;
    char buf[128];
    int rc = a && b ? stats_bootstrap_diff(a->v, a->n, b->v, b->n, &d) : -ENODATA;
    if (rc == -ENODATA) {
        report_doc_cell(doc, REPORT_MARK_NONE, "—");
        return;
    }
    if (rc < 0) {
        if (!doc->error)
            doc->error = rc;
        return;
    }
    enum report_mark m = fmt_diff(buf, sizeof(buf), u, &d);
    report_doc_cell(doc, m, "%s", buf);
}

/* A section whose table got no rows goes away whole (heading, notes). */
static void drop_empty(struct report_doc *doc, size_t mark)
{
    if (doc->error || report_doc_rows(doc) > 0)
        return;
    while (doc->n_blocks > mark)
        report_doc_drop(doc);
}

/* --- one target --- */

static void primary_table(struct report_doc *doc, const struct report_side *s,
                          const struct results_agent *agent)
{
    const struct results *run = s->run;
    size_t cols = 1 + 1 + (size_t)agent->turns + 1 + 1;
    size_t mark = doc->n_blocks;
    report_doc_heading(doc, 3, NULL, "Primary task performance: %s", agent->label);
    report_doc_table(doc, cols, report_level_head(run), "Turn 1 TTFT", NULL);
    for (int t = 1; t <= agent->turns; t++)
        report_doc_head(doc, 1 + (size_t)t, "Turn %d time", t);
    report_doc_head(doc, cols - 2, "Turn %d tok/s", agent->turns);
    report_doc_head(doc, cols - 1, "Total time");
    for (size_t i = 0; i < run->n_levels; i++) {
        const struct results_level *l = &run->levels[i];
        char lab[96];
        if (!results_cell(run, s->target->name, l->name, agent->name, 1))
            continue;
        report_doc_row(doc);
        report_doc_cell(doc, REPORT_MARK_LABEL, "%s", report_level_label(lab, sizeof(lab), l));
        cell_mean_ci(doc, UNIT_MS, cell_metric(s, l->name, agent, 1, RESULTS_TTFT));
        for (int t = 1; t <= agent->turns; t++)
            cell_mean_ci(doc, UNIT_MS, cell_metric(s, l->name, agent, t, RESULTS_RESPONSE_TIME));
        cell_mean_ci(doc, UNIT_TPS, cell_metric(s, l->name, agent, agent->turns, RESULTS_DECODE_TPS));
        cell_mean_ci(doc, UNIT_MS, level_metric(s, l->name, RESULTS_PRIMARY_TOTAL));
    }
    drop_empty(doc, mark);
}

/* "PASS 5/5 (2.4 s)", "FAIL 1/5 (4.9 s), 1 error", "ok 5/5 (2.4 s)" */
static void side_task_cell(struct report_doc *doc, const struct report_side *s, const char *level,
                           const struct results_agent *agent)
{
    struct report_side_task t;
    char time[64];
    int rc = report_side_task(s, level, agent, &t);
    if (rc == -ENOENT) {
        report_doc_cell(doc, REPORT_MARK_NONE, "—");
        return;
    }
    if (rc < 0) {
        if (!doc->error)
            doc->error = rc;
        return;
    }
    fmt_value(time, sizeof(time), UNIT_MS, stats_mean(t.time.v, t.time.n));
    char errs[32] = "";
    if (t.errors)
        snprintf(errs, sizeof(errs), ", %d error%s", t.errors, t.errors == 1 ? "" : "s");
    if (t.of > 0)
        report_doc_cell(doc, t.pass == t.of ? REPORT_MARK_PASS : REPORT_MARK_FAIL,
                        "%s %d/%d (%s)%s", t.pass == t.of ? "PASS" : "FAIL", t.pass, t.of, time,
                        errs);
    else
        report_doc_cell(doc, t.errors ? REPORT_MARK_FAIL : REPORT_MARK_NONE, "ok %d/%d (%s)%s",
                        t.n - t.errors, t.n, time, errs);
    free(t.time.v);
}

static bool has_side_agent_cells(const struct report_side *s, const struct results_agent *a)
{
    for (size_t i = 0; i < s->run->n_cells; i++) {
        const struct results_cell *c = &s->run->cells[i];
        if (strcmp(c->target, s->target->name) == 0 && strcmp(c->agent, a->name) == 0)
            return true;
    }
    return false;
}

static void side_table(struct report_doc *doc, const struct report_side *s)
{
    const struct results *run = s->run;
    const struct results_agent *agents[REPORT_DOC_MAX_COLS - 1];
    size_t n = 0;
    for (size_t i = 0; i < run->n_agents && n < REPORT_DOC_MAX_COLS - 1; i++)
        if (!run->agents[i].primary && has_side_agent_cells(s, &run->agents[i]))
            agents[n++] = &run->agents[i];
    if (n == 0)
        return;
    report_doc_heading(doc, 3, NULL, "Side task results");
    report_doc_table(doc, 1 + n, report_level_head(run), NULL);
    for (size_t j = 0; j < n; j++)
        report_doc_head(doc, 1 + j, "%s", agents[j]->label);
    for (size_t i = 0; i < run->n_levels; i++) {
        const struct results_level *l = &run->levels[i];
        bool any = false;
        for (size_t j = 0; j < n; j++)
            any = any || results_cell(run, s->target->name, l->name, agents[j]->name, 1);
        if (!any)
            continue;
        char lab[96];
        report_doc_row(doc);
        report_doc_cell(doc, REPORT_MARK_LABEL, "%s", report_level_label(lab, sizeof(lab), l));
        for (size_t j = 0; j < n; j++)
            side_task_cell(doc, s, l->name, agents[j]);
    }
}

/* All of one metric's values over a target's cells at a level. */
int report_pool(const struct report_side *s, const char *level, enum results_metric_id m,
                struct results_values *ret)
{
    size_t n = 0;
    const struct results *run = s->run;
    for (size_t i = 0; i < run->n_cells; i++) {
        const struct results_cell *c = &run->cells[i];
        if (strcmp(c->target, s->target->name) == 0 && strcmp(c->level, level) == 0)
            n += c->m[m].n;
    }
    ret->n = 0;
    ret->v = n ? malloc(n * sizeof(*ret->v)) : NULL;
    if (n && !ret->v)
        return -ENOMEM;
    for (size_t i = 0; i < run->n_cells; i++) {
        const struct results_cell *c = &run->cells[i];
        if (strcmp(c->target, s->target->name) == 0 && strcmp(c->level, level) == 0 && c->m[m].n) {
            memcpy(ret->v + ret->n, c->m[m].v, c->m[m].n * sizeof(*ret->v));
            ret->n += c->m[m].n;
        }
    }
    return 0;
}

/* The median (or mean) of metric m over all of a side's requests at a
 * level; NaN when there are none. */
static double pooled(struct report_doc *doc, const struct report_side *s, const char *level,
                     enum results_metric_id m, bool median)
{
    struct results_values v;
    double x = NAN;
    if (report_pool(s, level, m, &v) < 0) {
        if (!doc->error)
            doc->error = -ENOMEM;
        return NAN;
    }
    if (median) {
        if (stats_percentile(v.v, v.n, 50, &x) == -ENOMEM && !doc->error)
            doc->error = -ENOMEM;
    } else {
        x = stats_mean(v.v, v.n);
    }
    free(v.v);
    return x;
}

static void pooled_cell(struct report_doc *doc, const struct report_side *s, const char *level,
                        enum results_metric_id m, enum unit u, bool median)
{
    char buf[64];
    report_doc_cell(doc, REPORT_MARK_NONE, "%s",
                    fmt_value(buf, sizeof(buf), u, pooled(doc, s, level, m, median)));
}

static void level_summary(struct report_doc *doc, const struct report_side *s)
{
    const struct results *run = s->run;
    report_doc_heading(doc, 3, NULL, "Per-level summary");
    report_doc_table(doc, 10, report_level_head(run), "Requests", "Errors", "TTFT p50 (all)",
                     "Slot wait p50", "Prefill p50", "ITL p50", "Decode tok/s (mean)",
                     "Output tok/s", "Wall time", NULL);
    for (size_t i = 0; i < run->n_levels; i++) {
        const struct results_level *l = &run->levels[i];
        long long requests = 0, errors = 0; /* over any number of cells */
        for (size_t k = 0; k < run->n_cells; k++) {
            const struct results_cell *c = &run->cells[k];
            if (strcmp(c->target, s->target->name) == 0 && strcmp(c->level, l->name) == 0) {
                requests += c->n;
                errors += c->errors;
            }
        }
        const struct results_level_cell *lc = results_level_cell(run, s->target->name, l->name);
        if (!requests && !lc)
            continue;
        if (lc && lc->errors > errors)
            errors = lc->errors;
        char lab[96];
        report_doc_row(doc);
        report_doc_cell(doc, REPORT_MARK_LABEL, "%s", report_level_label(lab, sizeof(lab), l));
        report_doc_cell(doc, REPORT_MARK_NONE, "%lld", requests);
        report_doc_cell(doc, errors ? REPORT_MARK_FAIL : REPORT_MARK_NONE, "%lld", errors);
        pooled_cell(doc, s, l->name, RESULTS_TTFT, UNIT_MS, true);
        pooled_cell(doc, s, l->name, RESULTS_SLOT_WAIT, UNIT_MS, true);
        pooled_cell(doc, s, l->name, RESULTS_PREFILL, UNIT_MS, true);
        pooled_cell(doc, s, l->name, RESULTS_ITL_P50, UNIT_MS, true);
        pooled_cell(doc, s, l->name, RESULTS_DECODE_TPS, UNIT_TPS, false);
        cell_mean_ci(doc, UNIT_TPS, level_metric(s, l->name, RESULTS_OUTPUT_TPS));
        cell_mean_ci(doc, UNIT_MS, level_metric(s, l->name, RESULTS_WALL));
    }
}

static void side_section(struct report_doc *doc, const struct report_side *s)
{
    report_doc_heading(doc, 2, NULL, "%s (`%s`)", s->target->label, s->target->name);
    for (size_t i = 0; i < s->run->n_agents; i++)
        if (s->run->agents[i].primary)
            primary_table(doc, s, &s->run->agents[i]);
    side_table(doc, s);
    level_summary(doc, s);
}

/* --- comparisons --- */

typedef const struct results_values *pair_metric_cb(const struct report_side *s, const char *level);

static const struct results_values *m_ttft(const struct report_side *s, const char *level)
{
    return cell_metric(s, level, results_primary(s->run), 1, RESULTS_TTFT);
}

static const struct results_values *m_total(const struct report_side *s, const char *level)
{
    return level_metric(s, level, RESULTS_PRIMARY_TOTAL);
}

static const struct results_values *m_slot_tps(const struct report_side *s, const char *level)
{
    const struct results_agent *p = results_primary(s->run);
    return p ? cell_metric(s, level, p, p->turns, RESULTS_DECODE_TPS) : NULL;
}

static const struct results_values *m_out_tps(const struct report_side *s, const char *level)
{
    return level_metric(s, level, RESULTS_OUTPUT_TPS);
}

/* A side's value at a level, with its change from the side's first level
 * that has one ("265 ms (+176%)") when `degradation`. */
static void side_value(struct report_doc *doc, const struct report_side *s, const char *level,
                       pair_metric_cb *metric, enum unit u, bool degradation)
{
    char buf[96], pct[32];
    const struct results_values *v = metric(s, level);
    struct stats_summary sm = summary(doc, v);
    fmt_mean_ci(buf, sizeof(buf), u, &sm);
    const struct results_values *base = NULL;
    const char *base_level = NULL;
    for (size_t i = 0; degradation && i < s->run->n_levels && !base; i++) {
        base = metric(s, s->run->levels[i].name);
        base_level = s->run->levels[i].name;
        if (base && stats_count(base->v, base->n) == 0)
            base = NULL;
    }
    if (base && v && strcmp(base_level, level) != 0 && sm.n > 0) {
        double b = stats_mean(base->v, base->n);
        if (b != 0) {
            report_doc_cell(doc, REPORT_MARK_NONE, "%s (%s)", buf,
                            fmt_pct(pct, sizeof(pct), sm.mean / b - 1));
            return;
        }
    }
    report_doc_cell(doc, REPORT_MARK_NONE, "%s", buf);
}

static void compare_table(struct report_doc *doc, const struct report_side *a,
                          const struct report_side *b, const char *title, const char *note,
                          pair_metric_cb *metric, enum unit u, bool degradation)
{
    size_t mark = doc->n_blocks;
    report_doc_heading(doc, 3, NULL, "%s", title);
    if (note)
        report_doc_para(doc, "%s", note);
    report_doc_table(doc, 4, report_level_head(a->run), a->label, b->label, NULL);
    report_doc_head(doc, 3, "Difference (%s − %s)", b->label, a->label);
    for (size_t i = 0; i < a->run->n_levels; i++) {
        const struct results_level *l = &a->run->levels[i];
        if (!report_side_level(b, l->name))
            continue;
        const struct results_values *va = metric(a, l->name), *vb = metric(b, l->name);
        if (!va && !vb)
            continue;
        char lab[96];
        report_doc_row(doc);
        report_doc_cell(doc, REPORT_MARK_LABEL, "%s", report_level_label(lab, sizeof(lab), l));
        side_value(doc, a, l->name, metric, u, degradation);
        side_value(doc, b, l->name, metric, u, degradation);
        cell_diff(doc, u, va, vb);
    }
    drop_empty(doc, mark);
}

/* 1 per pass and 0 per failure (errors fail), for the bootstrap. */
static int pass_values(const struct report_side_task *t, struct results_values *ret)
{
    ret->n = (size_t)t->of;
    if (ret->n > STATS_MAX_VALUES)
        return -E2BIG;
    ret->v = ret->n ? malloc(ret->n * sizeof(*ret->v)) : NULL;
    if (ret->n && !ret->v)
        return -ENOMEM;
    for (size_t i = 0; i < ret->n; i++)
        ret->v[i] = i < (size_t)t->pass ? 1.0 : 0.0;
    return 0;
}

static void pass_rate_cell(struct report_doc *doc, const struct report_side_task *t)
{
    if (t->of == 0)
        report_doc_cell(doc, REPORT_MARK_NONE, "no checks");
    else
        report_doc_cell(doc, t->pass == t->of ? REPORT_MARK_PASS : REPORT_MARK_FAIL,
                        "%d/%d (%.0f%%)", t->pass, t->of, 100.0 * t->pass / t->of);
}

static void pass_rate_row(struct report_doc *doc, const struct report_side *a,
                          const struct report_side *b, const struct results_level *l,
                          const struct results_agent *agent)
{
    struct report_side_task ta, tb;
    const struct results_agent *agent_b = results_agent(b->run, agent->name);
    if (!agent_b || report_side_task(a, l->name, agent, &ta) < 0)
        return;
    if (report_side_task(b, l->name, agent_b, &tb) < 0) {
        free(ta.time.v);
        return;
    }
    /* A task without checks on either side has no pass rate to compare. */
    if (ta.of == 0 && tb.of == 0) {
        free(ta.time.v);
        free(tb.time.v);
        return;
    }
    struct results_values pa = {0}, pb = {0};
    char lab[96];
    report_doc_row(doc);
    report_doc_cell(doc, REPORT_MARK_LABEL, "%s", report_level_label(lab, sizeof(lab), l));
    report_doc_cell(doc, REPORT_MARK_NONE, "%s", agent->label);
    pass_rate_cell(doc, &ta);
    pass_rate_cell(doc, &tb);
    int rc = pass_values(&ta, &pa);
    if (rc == 0)
        rc = pass_values(&tb, &pb);
    if (rc < 0) {
        if (!doc->error)
            doc->error = rc;
        goto done;
    }
    struct stats_diff d;
    if (stats_bootstrap_diff(pa.v, pa.n, pb.v, pb.n, &d) < 0) {
        report_doc_cell(doc, REPORT_MARK_NONE, "—");
        goto done;
    }
    /* Percentage points: a relative change of a rate reads wrong. */
    if (d.diff == 0)
        report_doc_cell(doc, REPORT_MARK_NS, "0 pp n.s.");
    else
        report_doc_cell(doc, d.significant ? REPORT_MARK_SIG : REPORT_MARK_NS, "%+.0f pp %s",
                        d.diff * 100, d.significant ? "*" : "n.s.");
done:
    free(pa.v);
    free(pb.v);
    free(ta.time.v);
    free(tb.time.v);
}

static void pass_rate_table(struct report_doc *doc, const struct report_side *a,
                            const struct report_side *b)
{
    const struct results *run = a->run;
    size_t mark = doc->n_blocks;
    report_doc_heading(doc, 3, NULL, "Side-task pass rate");
    report_doc_table(doc, 5, report_level_head(run), "Task", a->label, b->label, NULL);
    report_doc_head(doc, 4, "Difference (%s − %s)", b->label, a->label);
    for (size_t i = 0; i < run->n_levels; i++) {
        const struct results_level *l = &run->levels[i];
        if (!report_side_level(b, l->name))
            continue;
        for (size_t j = 0; j < run->n_agents; j++)
            if (!run->agents[j].primary)
                pass_rate_row(doc, a, b, l, &run->agents[j]);
    }
    drop_empty(doc, mark);
}

/* --- a calibrated simulator against the server it was fitted to --- */

/* Whether level is one the calibrated side's profile was fitted on ("":
 * all of them). */
static bool fitted_level(const struct results_target *t, const char *level)
{
    size_t n = strlen(level);
    if (!t->calibrated_levels[0])
        return true;
    for (const char *p = t->calibrated_levels; *p;) {
        const char *comma = strstr(p, ", ");
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, level, n) == 0)
            return true;
        p += len + (comma ? 2 : 0);
    }
    return false;
}

/* Measured (m) against predicted (p), per level and metric, with the
 * error: what a calibrated profile is worth at levels it never saw. */
static void prediction(struct report_doc *doc, const struct report_side *m,
                       const struct report_side *p)
{
    static const struct {
        const char *name;
        enum results_metric_id id;
        enum unit u;
        bool median;
    } metrics[] = {
        {"TTFT p50", RESULTS_TTFT, UNIT_MS, true},
        {"Slot wait p50", RESULTS_SLOT_WAIT, UNIT_MS, true},
        {"Prefill p50", RESULTS_PREFILL, UNIT_MS, true},
        {"Decode tok/s p50", RESULTS_DECODE_TPS, UNIT_TPS, true},
        {"Turn time p50", RESULTS_RESPONSE_TIME, UNIT_MS, true},
    };
    const struct results_target *t = p->target;
    size_t mark = doc->n_blocks;
    double worst = 0;
    const char *worst_metric = NULL, *worst_level = NULL;
    char origin[400] = "";
    if (t->calibrated_target || t->calibrated_levels[0])
        snprintf(origin, sizeof(origin), " (%s%s%s%s%s)", t->calibrated_target ? "target " : "",
                 t->calibrated_target ? t->calibrated_target : "",
                 t->calibrated_target && t->calibrated_levels[0] ? ", " : "",
                 t->calibrated_levels[0] ? "levels " : "", t->calibrated_levels);
    report_doc_heading(doc, 3, NULL, "Prediction check: %s predicts %s", p->label, m->label);
    report_doc_para(doc,
                    "%s is the simulator with a profile calibrated on `%s`%s. Each metric is the "
                    "p50 over every request of the level; the error is predicted − measured, as "
                    "%% of measured. Levels marked *fit* are the ones the profile was fitted on; "
                    "the others are predictions.",
                    p->label, t->calibrated_from ? t->calibrated_from : "measured requests", origin);
    report_doc_table(doc, 5, report_level_head(m->run), "Metric", "Measured", "Predicted",
                     "Error", NULL);
    for (size_t i = 0; i < m->run->n_levels; i++) {
        const struct results_level *l = &m->run->levels[i];
        if (!report_side_level(p, l->name))
            continue;
        bool fit = fitted_level(t, l->name);
        for (size_t k = 0; k < sizeof(metrics) / sizeof(metrics[0]); k++) {
            double vm = pooled(doc, m, l->name, metrics[k].id, metrics[k].median);
            double vp = pooled(doc, p, l->name, metrics[k].id, metrics[k].median);
            if (isnan(vm) && isnan(vp))
                continue;
            char lab[96], a[64], b[64], e[32] = "—";
            report_level_label(lab, sizeof(lab), l);
            /* Below a millisecond (a slot wait of 0.2 ms) a ratio says nothing. */
            double err = fabs(vm) >= 1 ? (vp - vm) / vm : NAN;
            if (!isnan(err))
                fmt_pct(e, sizeof(e), err);
            if (!fit && !isnan(err) && fabs(err) > fabs(worst) &&
                metrics[k].id != RESULTS_SLOT_WAIT) {
                worst = err;
                worst_metric = metrics[k].name;
                worst_level = l->name;
            }
            report_doc_row(doc);
            report_doc_cell(doc, REPORT_MARK_LABEL, "%s%s", lab, fit ? " *fit*" : "");
            report_doc_cell(doc, REPORT_MARK_NONE, "%s", metrics[k].name);
            report_doc_cell(doc, REPORT_MARK_NONE, "%s", fmt_value(a, sizeof(a), metrics[k].u, vm));
            report_doc_cell(doc, REPORT_MARK_NONE, "%s", fmt_value(b, sizeof(b), metrics[k].u, vp));
            report_doc_cell(doc, isnan(err) ? REPORT_MARK_NONE
                                 : fabs(err) <= 0.1 ? REPORT_MARK_PASS : REPORT_MARK_FAIL,
                            "%s", e);
        }
    }
    drop_empty(doc, mark);
    if (doc->n_blocks > mark && worst_metric) {
        char pct[32];
        report_doc_para(doc,
                        "At the levels it was not fitted on, the largest error (slot wait aside) "
                        "is %s (%s, level %s).",
                        fmt_pct(pct, sizeof(pct), worst), worst_metric, worst_level);
    }
}

static void comparison(struct report_doc *doc, const struct report_side *a,
                       const struct report_side *b)
{
    char title[256], note[512];
    const struct results_agent *p = results_primary(a->run);
    const struct results_level *low = a->run->n_levels ? &a->run->levels[0] : NULL;
    report_doc_heading(doc, 2, NULL, "Comparison: %s vs %s", b->label, a->label);
    report_doc_para(doc,
                    "Differences are %s − %s, with the percentage of %s's value. `*` marks a "
                    "significant difference (the 95 %% bootstrap CI of the difference of means "
                    "excludes 0), `n.s.` one that is not.",
                    b->label, a->label, a->label);
    if (p) {
        snprintf(note, sizeof(note), "Percentages in the %s and %s columns: change from level "
                                     "%s of the same target.",
                 a->label, b->label, low ? low->name : "1");
        compare_table(doc, a, b, "TTFT degradation (primary turn 1)", note, m_ttft, UNIT_MS, true);
        compare_table(doc, a, b, "Total time (primary task)", NULL, m_total, UNIT_MS, false);
        snprintf(title, sizeof(title), "Per-slot speed (turn %d tok/s)", p->turns);
        compare_table(doc, a, b, title, NULL, m_slot_tps, UNIT_TPS, false);
    }
    compare_table(doc, a, b, "Aggregate throughput (output tok/s, all agents)", NULL, m_out_tps,
                  UNIT_TPS, false);
    pass_rate_table(doc, a, b);
    /* One side a simulator calibrated to stand for the other: how close. */
    if (b->target->calibrated && !a->target->calibrated)
        prediction(doc, a, b);
    else if (a->target->calibrated && !b->target->calibrated)
        prediction(doc, b, a);
}

void report_build(struct report_doc *doc, const struct report_plan *plan)
{
    report_build_header(doc, plan);
    report_build_capacity(doc, plan);
    report_doc_charts(doc);
    if (!plan->compare)
        for (size_t i = 0; i < plan->n_sides; i++)
            side_section(doc, &plan->sides[i]);
    for (size_t i = 0; i < plan->n_pairs; i++)
        comparison(doc, &plan->sides[plan->pairs[i].ref], &plan->sides[plan->pairs[i].other]);
    report_build_how_to_read(doc, plan);
}
