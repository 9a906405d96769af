#include "report/report_html.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core/jsonw.h"
#include "core/chartjs.h"
#include "report/report_assets.h"
#include "report/report_build.h"
#include "report/report_doc.h"

/* The radar's six axes. Each is 0..100, higher is better:
 *
 *   Speed        per-slot decode speed (the primary's last turn, tok/s) at
 *                the lowest level, as % of the best side's.
 *   Stability    100 x (1 - mean coefficient of variation of the primary's
 *                total time over the repetitions, over levels), floored at 0.
 *   Latency      the best side's primary turn-1 TTFT at the lowest level
 *                divided by this side's, as % (lower TTFT, higher score).
 *   Accuracy     checks passed / checks run (errors count as failed), all
 *                agents and levels, as %.
 *   Scaling      output tok/s at the highest level / (output tok/s at the
 *                lowest level x the concurrency ratio), as %, capped at 100:
 *                100 means throughput grew in step with the agents.
 *   VRAM eff.    Speed's tok/s per GB of VRAM, as % of the best side's.
 *
 * An axis that some side cannot fill (no VRAM figure, no checks, one
 * level, one repetition) is left out for every side, and the page's
 * footnotes say so; with fewer than 3 axes there is no radar. */
enum axis {
    AXIS_SPEED,
    AXIS_STABILITY,
    AXIS_LATENCY,
    AXIS_ACCURACY,
    AXIS_SCALING,
    AXIS_VRAM,
    AXIS_COUNT,
};

static const struct {
    const char *name;
    const char *definition;
    const char *missing; /* why it can be left out */
} axes[AXIS_COUNT] = {
    [AXIS_SPEED] = {"Speed",
                    "per-slot decode speed (the primary task's last turn, tok/s) at the lowest "
                    "level, as % of the best target's",
                    "a target has no decode speed at its lowest level"},
    [AXIS_STABILITY] = {"Stability",
                        "100 × (1 − the mean coefficient of variation of the primary task's "
                        "total time across repetitions, over the levels), floored at 0",
                        "a target has fewer than 2 repetitions at every level"},
    [AXIS_LATENCY] = {"Latency",
                      "the best target's primary turn-1 TTFT at the lowest level divided by this "
                      "target's, as % (lower TTFT scores higher)",
                      "a target has no TTFT at its lowest level"},
    [AXIS_ACCURACY] = {"Accuracy",
                       "checks passed / checks run, all agents and levels, as % (a failed "
                       "request counts as a failed check)",
                       "the scenario has no checks"},
    [AXIS_SCALING] = {"Throughput scaling",
                      "output tok/s at the highest level ÷ (output tok/s at the lowest level × "
                      "the ratio of their concurrencies), as %, capped at 100 (100 = throughput "
                      "grew in step with the number of agents)",
                      "a target has only one level or no output tok/s"},
    [AXIS_VRAM] = {"VRAM efficiency",
                   "Speed's tok/s per GB of VRAM (the target's vram_gb), as % of the best "
                   "target's",
                   "a target has no vram_gb in the results"},
};

struct page {
    const struct report_plan *plan; /* borrowed */
    cJSON *data;                    /* owned: the charts' JSON */
    bool axis_used[AXIS_COUNT];
    int error;
};

static void oom(struct page *pg)
{
    if (!pg->error)
        pg->error = -ENOMEM;
}

/* Adds item to obj (or to an array when key is NULL); frees it on failure. */
static void add(struct page *pg, cJSON *obj, const char *key, cJSON *item)
{
    if (!item || !obj) {
        cJSON_Delete(item);
        oom(pg);
        return;
    }
    cJSON_bool ok = key ? cJSON_AddItemToObject(obj, key, item) : cJSON_AddItemToArray(obj, item);
    if (!ok) {
        cJSON_Delete(item);
        oom(pg);
    }
}

/* A number rounded to 4 significant decimals (the page stays small), or null. */
static cJSON *number(double v)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    return cJSON_CreateNumber(round(v * 1e4) / 1e4);
}

/* {"m": mean, "lo": .., "hi": .., "n": ..} divided by `div`, or null. */
static cJSON *point(struct page *pg, const struct results_values *v, double div)
{
    struct stats_summary s;
    if (report_summary(v, &s) < 0) {
        oom(pg);
        return cJSON_CreateNull();
    }
    if (s.n == 0)
        return cJSON_CreateNull();
    cJSON *p = cJSON_CreateObject();
    add(pg, p, "m", number(s.mean / div));
    add(pg, p, "lo", number(s.ci_lo / div));
    add(pg, p, "hi", number(s.ci_hi / div));
    add(pg, p, "n", cJSON_CreateNumber((double)s.n));
    return p;
}

/* The median of metric m over all of a level's requests (no CI: a
 * pooled p50), or null. */
static cJSON *pooled_p50(struct page *pg, const struct report_side *s, const char *level,
                         enum results_metric_id m)
{
    struct results_values v;
    double x = NAN;
    if (report_pool(s, level, m, &v) < 0 || stats_percentile(v.v, v.n, 50, &x) == -ENOMEM) {
        free(v.v);
        oom(pg);
        return cJSON_CreateNull();
    }
    free(v.v);
    if (!isfinite(x))
        return cJSON_CreateNull();
    cJSON *p = cJSON_CreateObject();
    add(pg, p, "m", number(x));
    return p;
}

static const struct results_values *cell_values(const struct report_side *s, const char *level,
                                                int turn_from_end, int turn,
                                                enum results_metric_id m)
{
    const struct results_agent *p = results_primary(s->run);
    if (!p)
        return NULL;
    const struct results_cell *c = results_cell(s->run, s->target->name, level, p->name,
                                                turn_from_end ? p->turns : turn);
    return c ? &c->m[m] : NULL;
}

static const struct results_values *level_values(const struct report_side *s, const char *level,
                                                 enum results_level_metric_id m)
{
    const struct results_level_cell *c = results_level_cell(s->run, s->target->name, level);
    return c ? &c->m[m] : NULL;
}

/* --- the series per side and level --- */

static void series(struct page *pg)
{
    const struct report_plan *plan = pg->plan;
    const struct results *axis = report_plan_axis(plan);
    cJSON *levels = cJSON_CreateArray();
    for (size_t i = 0; i < axis->n_levels; i++)
        add(pg, levels, NULL, cJSON_CreateString(axis->levels[i].name));
    add(pg, pg->data, "levels", levels);
    bool named = false;
    for (size_t i = 0; i < axis->n_levels; i++) {
        char c[32];
        snprintf(c, sizeof(c), "%g", axis->levels[i].concurrency);
        named = named || strcmp(c, axis->levels[i].name) != 0;
    }
    add(pg, pg->data, "level_axis",
        cJSON_CreateString(named ? "level" : "concurrency (agents at once)"));

    cJSON *sides = cJSON_CreateArray();
    for (size_t k = 0; k < plan->n_sides; k++) {
        const struct report_side *s = &plan->sides[k];
        cJSON *o = cJSON_CreateObject();
        cJSON *ttft = cJSON_CreateArray(), *total = cJSON_CreateArray();
        cJSON *out = cJSON_CreateArray(), *slot = cJSON_CreateArray();
        cJSON *wait = cJSON_CreateArray(), *prefill = cJSON_CreateArray();
        add(pg, o, "label", cJSON_CreateString(s->label));
        for (size_t i = 0; i < axis->n_levels; i++) {
            const char *l = axis->levels[i].name;
            bool has = report_side_level(s, l) != NULL;
            add(pg, ttft, NULL, has ? point(pg, cell_values(s, l, 0, 1, RESULTS_TTFT), 1) : cJSON_CreateNull());
            add(pg, total, NULL, has ? point(pg, level_values(s, l, RESULTS_PRIMARY_TOTAL), 1000) : cJSON_CreateNull());
            add(pg, out, NULL, has ? point(pg, level_values(s, l, RESULTS_OUTPUT_TPS), 1) : cJSON_CreateNull());
            add(pg, slot, NULL, has ? point(pg, cell_values(s, l, 1, 0, RESULTS_DECODE_TPS), 1) : cJSON_CreateNull());
            add(pg, wait, NULL, has ? pooled_p50(pg, s, l, RESULTS_SLOT_WAIT) : cJSON_CreateNull());
            add(pg, prefill, NULL, has ? pooled_p50(pg, s, l, RESULTS_PREFILL) : cJSON_CreateNull());
        }
        add(pg, o, "ttft", ttft);
        add(pg, o, "total", total);
        add(pg, o, "out_tps", out);
        add(pg, o, "slot_tps", slot);
        add(pg, o, "slot_wait", wait);
        add(pg, o, "prefill", prefill);
        add(pg, sides, NULL, o);
    }
    add(pg, pg->data, "sides", sides);
}

/* --- radar --- */

static double mean_of(const struct results_values *v)
{
    return v ? stats_mean(v->v, v->n) : NAN;
}

/* The raw value behind each axis for one side (NaN: cannot be filled). */
static void radar_raw(const struct report_side *s, double raw[AXIS_COUNT])
{
    const struct results *run = s->run;
    const struct results_level *low = report_level_low(run), *high = report_level_high(run);
    for (int a = 0; a < AXIS_COUNT; a++)
        raw[a] = NAN;
    if (!low)
        return;
    raw[AXIS_SPEED] = mean_of(cell_values(s, low->name, 1, 0, RESULTS_DECODE_TPS));
    raw[AXIS_LATENCY] = mean_of(cell_values(s, low->name, 0, 1, RESULTS_TTFT));

    double cv_sum = 0;
    int cv_n = 0;
    for (size_t i = 0; i < run->n_levels; i++) {
        const struct results_values *v = level_values(s, run->levels[i].name, RESULTS_PRIMARY_TOTAL);
        double sd = v ? stats_stddev(v->v, v->n) : NAN, m = mean_of(v);
        if (isfinite(sd) && m > 0) {
            cv_sum += sd / m;
            cv_n++;
        }
    }
    if (cv_n)
        raw[AXIS_STABILITY] = fmax(0, 100 * (1 - cv_sum / cv_n));

    long pass = 0, of = 0;
    for (size_t i = 0; i < run->n_cells; i++) {
        const struct results_cell *c = &run->cells[i];
        if (strcmp(c->target, s->target->name) == 0 && c->checked > 0) {
            pass += c->pass;
            of += c->checked + c->errors;
        }
    }
    if (of > 0)
        raw[AXIS_ACCURACY] = 100.0 * (double)pass / (double)of;

    if (high && high != low && low->concurrency > 0 && high->concurrency > low->concurrency) {
        double lo = mean_of(level_values(s, low->name, RESULTS_OUTPUT_TPS));
        double hi = mean_of(level_values(s, high->name, RESULTS_OUTPUT_TPS));
        if (lo > 0 && isfinite(hi))
            raw[AXIS_SCALING] =
                fmin(100, 100 * hi / (lo * high->concurrency / low->concurrency));
    }
    if (s->target->vram_gb > 0)
        raw[AXIS_VRAM] = raw[AXIS_SPEED] / s->target->vram_gb;
}

static void radar(struct page *pg)
{
    const struct report_plan *plan = pg->plan;
    double raw[REPORT_MAX_SIDES][AXIS_COUNT];
    double best[AXIS_COUNT];
    int used = 0;
    for (size_t k = 0; k < plan->n_sides; k++)
        radar_raw(&plan->sides[k], raw[k]);
    for (int a = 0; a < AXIS_COUNT; a++) {
        bool ok = plan->n_sides > 0;
        best[a] = NAN;
        for (size_t k = 0; k < plan->n_sides; k++) {
            double v = raw[k][a];
            ok = ok && isfinite(v) && v >= 0 && (a != AXIS_LATENCY || v > 0);
            if (isfinite(v) && (isnan(best[a]) || (a == AXIS_LATENCY ? v < best[a] : v > best[a])))
                best[a] = v;
        }
        /* Relative axes need a best value above 0 to divide by. */
        if ((a == AXIS_SPEED || a == AXIS_VRAM) && !(best[a] > 0))
            ok = false;
        pg->axis_used[a] = ok;
        used += ok;
    }
    if (used < 3) {
        memset(pg->axis_used, 0, sizeof(pg->axis_used));
        add(pg, pg->data, "radar", cJSON_CreateNull());
        return;
    }
    cJSON *r = cJSON_CreateObject(), *names = cJSON_CreateArray(), *values = cJSON_CreateArray();
    for (int a = 0; a < AXIS_COUNT; a++)
        if (pg->axis_used[a])
            add(pg, names, NULL, cJSON_CreateString(axes[a].name));
    for (size_t k = 0; k < plan->n_sides; k++) {
        cJSON *row = cJSON_CreateArray();
        for (int a = 0; a < AXIS_COUNT; a++) {
            if (!pg->axis_used[a])
                continue;
            double v = raw[k][a];
            if (a == AXIS_SPEED || a == AXIS_VRAM)
                v = 100 * v / best[a];
            else if (a == AXIS_LATENCY)
                v = 100 * best[a] / v;
            add(pg, row, NULL, cJSON_CreateNumber(round(v * 10) / 10));
        }
        add(pg, values, NULL, row);
    }
    add(pg, r, "axes", names);
    add(pg, r, "values", values);
    add(pg, pg->data, "radar", r);
}

/* --- side tasks at the highest level --- */

static void side_tasks(struct page *pg)
{
    const struct report_plan *plan = pg->plan;
    cJSON *bars = cJSON_CreateArray();
    const char *level_name = NULL;
    for (size_t k = 0; k < plan->n_sides; k++) {
        const struct report_side *s = &plan->sides[k];
        const struct results_level *high = report_level_high(s->run);
        if (!high)
            continue;
        if (!level_name)
            level_name = high->name;
        for (size_t j = 0; j < s->run->n_agents; j++) {
            const struct results_agent *a = &s->run->agents[j];
            struct report_side_task t;
            if (a->primary)
                continue;
            int rc = report_side_task(s, high->name, a, &t);
            if (rc == -ENOENT)
                continue;
            if (rc < 0) {
                oom(pg);
                continue;
            }
            char text[64];
            const char *verdict = t.of == 0 ? "none" : t.pass == t.of ? "pass" : "fail";
            if (t.of)
                snprintf(text, sizeof(text), "%s %d/%d", t.pass == t.of ? "PASS" : "FAIL", t.pass,
                         t.of);
            else
                snprintf(text, sizeof(text), "%d/%d ok", t.n - t.errors, t.n);
            cJSON *b = point(pg, &t.time, 1000);
            if (cJSON_IsNull(b)) {
                cJSON_Delete(b);
                b = cJSON_CreateObject();
                add(pg, b, "m", cJSON_CreateNull());
                add(pg, b, "lo", cJSON_CreateNull());
                add(pg, b, "hi", cJSON_CreateNull());
            }
            add(pg, b, "task", cJSON_CreateString(a->label));
            add(pg, b, "side", cJSON_CreateNumber((double)k));
            add(pg, b, "side_label", cJSON_CreateString(s->label));
            add(pg, b, "verdict", cJSON_CreateString(verdict));
            add(pg, b, "text", cJSON_CreateString(text));
            add(pg, bars, NULL, b);
            free(t.time.v);
        }
    }
    if (cJSON_GetArraySize(bars) == 0) {
        cJSON_Delete(bars);
        add(pg, pg->data, "side_tasks", cJSON_CreateNull());
        return;
    }
    cJSON *st = cJSON_CreateObject();
    add(pg, st, "level", cJSON_CreateString(level_name));
    add(pg, st, "bars", bars);
    add(pg, pg->data, "side_tasks", st);
}

/* --- per-request timeline at the highest level --- */

static const cJSON *get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The repetition to draw: the one with the median wall time (the lower
 * median), so the picture is a typical one. -1 when there are no requests. */
static long pick_repetition(struct page *pg, const struct report_side *s, const char *level)
{
    const struct results *run = s->run;
    long *reps = malloc((run->n_requests ? run->n_requests : 1) * sizeof(*reps));
    size_t n = 0;
    long pick = -1;
    if (!reps) {
        oom(pg);
        return -1;
    }
    for (size_t i = 0; i < run->n_requests; i++) {
        const struct results_request *q = &run->requests[i];
        if (strcmp(q->target, s->target->name) == 0 && strcmp(q->level, level) == 0)
            reps[n++] = q->repetition;
    }
    qsort(reps, n, sizeof(*reps), cmp_long);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        if (distinct == 0 || reps[i] != reps[distinct - 1])
            reps[distinct++] = reps[i];
    if (distinct == 0)
        goto done;
    pick = reps[0];
    /* wall_ms values are in repetition order: the i-th value is the i-th
     * repetition that made requests. */
    const struct results_values *wall = level_values(s, level, RESULTS_WALL);
    double median;
    if (wall && stats_percentile(wall->v, wall->n, 50, &median) == 0) {
        size_t best = 0;
        double best_d = INFINITY;
        for (size_t i = 0; i < wall->n && i < distinct; i++) {
            double d = fabs(wall->v[i] - median);
            if (!isnan(wall->v[i]) && (d < best_d || (d == best_d && wall->v[i] < wall->v[best]))) {
                best = i;
                best_d = d;
            }
        }
        pick = reps[best];
    }
done:
    free(reps);
    return pick;
}

static void lane(struct page *pg, cJSON *lanes, size_t side, const struct report_side *s,
                 const struct results_request *q, double t0_us)
{
    double start = (q->start_us - t0_us) / 1e6;
    double first = q->first_token_ms, end = q->end_ms;
    const struct results_agent *a = results_agent(s->run, q->agent);
    char label[256], user[32] = "";
    if (q->user > 0)
        snprintf(user, sizeof(user), " u%d", q->user);
    if (a && a->turns > 1)
        snprintf(label, sizeof(label), "%s ·%s %s t%d", s->label, user, a->label, q->turn);
    else
        snprintf(label, sizeof(label), "%s ·%s %s", s->label, user, a ? a->label : q->agent);
    if (isnan(end))
        end = q->last_token_ms;
    if (isnan(end))
        end = isnan(first) ? 0 : first;
    cJSON *o = cJSON_CreateObject(), *ticks = cJSON_CreateArray();
    add(pg, o, "label", cJSON_CreateString(label));
    add(pg, o, "side", cJSON_CreateNumber((double)side));
    add(pg, o, "start", number(start));
    add(pg, o, "first", number(isnan(first) ? NAN : start + first / 1000));
    add(pg, o, "end", number(start + end / 1000));
    add(pg, o, "error", cJSON_CreateBool(!q->ok || isnan(first)));
    double tokens = q->output_tokens;
    add(pg, o, "tokens", cJSON_CreateNumber(isnan(tokens) ? 0 : tokens));
    /* Token times from the gaps when the run kept them; else the first
     * token and the end. */
    size_t n = 0;
    if (!isnan(first)) {
        double at = first;
        add(pg, ticks, NULL, number(start + at / 1000));
        n++;
        for (size_t i = 0; i < q->n_gaps; i++) {
            if (n >= REPORT_HTML_MAX_TICKS || isnan(q->gaps_us[i]))
                break;
            at += q->gaps_us[i] / 1000;
            add(pg, ticks, NULL, number(start + at / 1000));
            n++;
        }
    }
    if (q->n_gaps == 0)
        add(pg, ticks, NULL, number(start + end / 1000));
    add(pg, o, "ticks", ticks);
    add(pg, lanes, NULL, o);
}

/* Lanes by start time; requests sent together in the scenario's agent
 * order (the primary first, as the scenario lists it). */
struct lane_ref {
    const struct results_request *q; /* borrowed */
    double start_us;
    size_t agent; /* index in the run's agents */
};

static int cmp_lane(const void *a, const void *b)
{
    const struct lane_ref *x = a, *y = b;
    if (x->start_us != y->start_us)
        return (x->start_us > y->start_us) - (x->start_us < y->start_us);
    if (x->agent != y->agent)
        return (x->agent > y->agent) - (x->agent < y->agent);
    return x->q->turn - y->q->turn;
}

static void timeline(struct page *pg)
{
    const struct report_plan *plan = pg->plan;
    cJSON *lanes = cJSON_CreateArray(), *picked = cJSON_CreateArray();
    size_t n_lanes = 0;
    bool gaps = false;
    for (size_t k = 0; k < plan->n_sides; k++) {
        const struct report_side *s = &plan->sides[k];
        const struct results *run = s->run;
        const struct results_level *high = report_level_high(run);
        long rep = high ? pick_repetition(pg, s, high->name) : -1;
        if (rep < 0)
            continue;
        struct lane_ref *qs = malloc(run->n_requests * sizeof(*qs));
        size_t n = 0;
        if (!qs) {
            oom(pg);
            continue;
        }
        for (size_t i = 0; i < run->n_requests; i++) {
            const struct results_request *q = &run->requests[i];
            double start = q->start_us;
            if (q->repetition != rep || isnan(start) || strcmp(q->target, s->target->name) != 0 ||
                strcmp(q->level, high->name) != 0)
                continue;
            const struct results_agent *a = results_agent(run, q->agent);
            qs[n++] = (struct lane_ref){
                .q = q, .start_us = start, .agent = a ? (size_t)(a - run->agents) : SIZE_MAX};
        }
        qsort(qs, n, sizeof(*qs), cmp_lane);
        double t0 = n ? qs[0].start_us : 0;
        for (size_t i = 0; i < n && n_lanes < REPORT_HTML_MAX_LANES; i++, n_lanes++) {
            lane(pg, lanes, k, s, qs[i].q, t0);
            gaps = gaps || qs[i].q->n_gaps > 0;
        }
        if (n) {
            cJSON *p = cJSON_CreateObject();
            add(pg, p, "side", cJSON_CreateString(s->label));
            add(pg, p, "level", cJSON_CreateString(high->name));
            add(pg, p, "repetition", cJSON_CreateNumber((double)rep));
            add(pg, picked, NULL, p);
        }
        free(qs);
    }
    if (n_lanes == 0) {
        cJSON_Delete(lanes);
        cJSON_Delete(picked);
        add(pg, pg->data, "timeline", cJSON_CreateNull());
        return;
    }
    cJSON *tl = cJSON_CreateObject();
    add(pg, tl, "lanes", lanes);
    add(pg, tl, "picked", picked);
    add(pg, tl, "gaps", cJSON_CreateBool(gaps));
    add(pg, pg->data, "timeline", tl);
}

/* --- capacity: each objective against the users, the limit drawn --- */

static void capacity(struct page *pg)
{
    const struct report_plan *plan = pg->plan;
    const struct results_capacity *c = NULL;
    for (size_t k = 0; k < plan->n_sides && !c; k++)
        if (plan->sides[k].run->capacity.present)
            c = &plan->sides[k].run->capacity;
    if (!c || c->n_objectives == 0) {
        add(pg, pg->data, "capacity", cJSON_CreateNull());
        return;
    }
    cJSON *o = cJSON_CreateObject(), *objs = cJSON_CreateArray(), *sides = cJSON_CreateArray();
    add(pg, o, "unit", cJSON_CreateString(c->unit ? c->unit : "users"));
    for (size_t i = 0; i < c->n_objectives; i++) {
        cJSON *x = cJSON_CreateObject();
        add(pg, x, "name", cJSON_CreateString(c->objectives[i].name));
        add(pg, x, "text", cJSON_CreateString(c->objectives[i].text));
        add(pg, x, "unit", cJSON_CreateString(c->objectives[i].unit ? c->objectives[i].unit : ""));
        add(pg, x, "limit", number(c->objectives[i].limit));
        add(pg, objs, NULL, x);
    }
    for (size_t k = 0; k < plan->n_sides; k++) {
        const struct report_side *s = &plan->sides[k];
        const struct results_capacity *sc = &s->run->capacity;
        const struct results_capacity_target *t =
            sc->present ? results_capacity_of(s->run, s->target->name) : NULL;
        cJSON *side = cJSON_CreateObject(), *points = cJSON_CreateArray();
        add(pg, side, "label", cJSON_CreateString(s->label));
        add(pg, side, "capacity", number(t ? t->capacity : NAN));
        for (size_t i = 0; t && i < t->n_points; i++) {
            const struct results_capacity_point *p = &t->points[i];
            cJSON *pt = cJSON_CreateObject(), *vals = cJSON_CreateArray();
            add(pg, pt, "x", number(p->users));
            for (size_t j = 0; j < c->n_objectives; j++) {
                /* The run's own objective of that name (compare: both ran one). */
                const struct results_judgement *jd = NULL;
                for (size_t q = 0; q < sc->n_objectives; q++)
                    if (strcmp(sc->objectives[q].name, c->objectives[j].name) == 0)
                        jd = &p->j[q];
                cJSON *v = cJSON_CreateObject();
                add(pg, v, "m", number(jd ? jd->value : NAN));
                add(pg, v, "lo", number(jd ? jd->lo : NAN));
                add(pg, v, "hi", number(jd ? jd->hi : NAN));
                add(pg, v, "pass", cJSON_CreateBool(jd && jd->pass == 1));
                add(pg, vals, NULL, v);
            }
            add(pg, pt, "v", vals);
            add(pg, points, NULL, pt);
        }
        add(pg, side, "points", points);
        add(pg, sides, NULL, side);
    }
    add(pg, o, "objectives", objs);
    add(pg, o, "sides", sides);
    add(pg, pg->data, "capacity", o);
}

/* --- the page --- */

static bool has(const struct page *pg, const char *key)
{
    const cJSON *v = get(pg->data, key);
    return v && !cJSON_IsNull(v);
}

/* Whether any side has a value for the series `key` at any level. */
static bool has_series(const struct page *pg, const char *key)
{
    const cJSON *side, *p;
    cJSON_ArrayForEach(side, get(pg->data, "sides"))
    {
        cJSON_ArrayForEach(p, get(side, key))
        {
            if (!cJSON_IsNull(p))
                return true;
        }
    }
    return false;
}

static void figure(struct evbuffer *out, const char *id, const char *caption, const char *small,
                   bool wide, int height)
{
    evbuffer_add_printf(out, "<figure%s><figcaption>", wide ? " class=\"wide\"" : "");
    report_doc_html_escape(out, caption);
    if (small) {
        EVBUFFER_ADD_LIT(out, " <small>");
        report_doc_html_escape(out, small);
        EVBUFFER_ADD_LIT(out, "</small>");
    }
    evbuffer_add_printf(out,
                        "</figcaption>\n<div class=\"chart\" style=\"height:%dpx\"><canvas "
                        "id=\"%s\"></canvas></div></figure>\n",
                        height, id);
}

static int charts(void *arg, struct evbuffer *out)
{
    struct page *pg = arg;
    char buf[512];
    EVBUFFER_ADD_LIT(out, "<section class=\"charts\">\n<h2 id=\"charts\">Charts</h2>\n"
                          "<div class=\"grid\">\n");
    const cJSON *cap = get(pg->data, "capacity"), *obj;
    int i = 0;
    cJSON_ArrayForEach(obj, get(cap, "objectives"))
    {
        char id[32], caption[160];
        snprintf(id, sizeof(id), "chart-capacity-%d", i++);
        snprintf(caption, sizeof(caption), "Capacity: %s", get(obj, "text")->valuestring);
        figure(out, id, caption,
               "each count of users tried: the objective's value with its 95% CI (hollow: the "
               "count broke it); dashed: the limit",
               false, 320);
    }
    if (has(pg, "radar"))
        figure(out, "chart-radar", "Overall profile",
               "0–100, higher is better; axes defined in the footnotes", false, 380);
    if (has_series(pg, "out_tps") || has_series(pg, "slot_tps"))
        figure(out, "chart-throughput", "Throughput by concurrency",
               "bars: output tok/s of all agents (95% CI); dashed: per-slot speed of the "
               "primary's last turn",
               false, 380);
    if (has_series(pg, "ttft"))
        figure(out, "chart-ttft", "TTFT degradation", "primary turn 1, mean and 95% CI", false,
               320);
    if (has_series(pg, "slot_wait"))
        figure(out, "chart-ttft-split", "Where TTFT goes",
               "p50 of all requests per level: waiting for a slot (the server's response head) + "
               "prefill (head to first token)",
               false, 320);
    if (has_series(pg, "total"))
        figure(out, "chart-total", "Total time degradation",
               "primary task, first request to last response, mean and 95% CI", false, 320);
    const cJSON *st = get(pg->data, "side_tasks");
    if (has(pg, "side_tasks")) {
        snprintf(buf, sizeof(buf),
                 "at level %s; green: all passed, red: some failed, grey: no checks; border: "
                 "target; whiskers: 95%% CI",
                 get(st, "level")->valuestring);
        figure(out, "chart-sidetasks", "Side tasks at full load", buf, true, 340);
    }
    const cJSON *tl = get(pg->data, "timeline");
    if (has(pg, "timeline")) {
        int lanes = cJSON_GetArraySize(get(tl, "lanes"));
        size_t n = (size_t)snprintf(buf, sizeof(buf), "%s; ",
                                    cJSON_IsTrue(get(tl, "gaps"))
                                        ? "ticks: every token's arrival"
                                        : "ticks: first token and end (the results kept no "
                                          "token gaps)");
        const cJSON *p;
        bool first = true;
        cJSON_ArrayForEach(p, get(tl, "picked"))
        {
            if (n >= sizeof(buf))
                break;
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s: level %s, repetition %g",
                                  first ? "" : "; ", get(p, "side")->valuestring,
                                  get(p, "level")->valuestring, get(p, "repetition")->valuedouble);
            first = false;
        }
        if (n < sizeof(buf))
            snprintf(buf + n, sizeof(buf) - n, " (median wall time)");
        figure(out, "chart-timeline", "Per-request timeline at the highest level", buf, true,
               90 + 24 * lanes);
    }
    EVBUFFER_ADD_LIT(out, "</div>\n</section>\n");
    return 0;
}

static void footnotes(const struct page *pg, struct evbuffer *out)
{
    EVBUFFER_ADD_LIT(out, "<h2 id=\"footnotes\">Footnotes</h2>\n<div class=\"footnotes\">\n"
                          "<p>Radar axes (each 0–100, higher is better):</p>\n<ol>\n");
    for (int a = 0; a < AXIS_COUNT; a++) {
        EVBUFFER_ADD_LIT(out, "<li><b>");
        report_doc_html_escape(out, axes[a].name);
        EVBUFFER_ADD_LIT(out, "</b>: ");
        report_doc_html_escape(out, axes[a].definition);
        if (!pg->axis_used[a]) {
            EVBUFFER_ADD_LIT(out, ". <i>Left out here: ");
            if (has(pg, "radar"))
                report_doc_html_escape(out, axes[a].missing);
            else
                EVBUFFER_ADD_LIT(out, "fewer than 3 axes could be filled, so there is no radar");
            EVBUFFER_ADD_LIT(out, ".</i>");
        }
        EVBUFFER_ADD_LIT(out, "</li>\n");
    }
    EVBUFFER_ADD_LIT(out, "</ol>\n<p>Relative axes (Speed, Latency, VRAM efficiency) compare the "
                          "targets of this page with each other: the best scores 100. Chart.js "
                          "3.9 is embedded in this page (MIT licence); the page loads nothing "
                          "from the network.</p>\n</div>\n");
}

/* The JSON for a <script> element: '<' only appears inside strings,
 * where \u003c means the same and cannot close the element. */
static void script_json(struct evbuffer *out, const char *json)
{
    const char *run = json;
    for (const char *p = json; *p; p++) {
        if (*p != '<')
            continue;
        evbuffer_add(out, run, (size_t)(p - run));
        EVBUFFER_ADD_LIT(out, "\\u003c");
        run = p + 1;
    }
    evbuffer_add(out, run, strlen(run));
}

int report_html_page(const struct report_plan *plan, const struct report_doc *doc,
                     struct evbuffer *out)
{
    struct page pg = {.plan = plan};
    char *json = NULL;
    int rc;
    if (doc->error)
        return doc->error;
    pg.data = cJSON_CreateObject();
    if (!pg.data)
        return -ENOMEM;
    series(&pg);
    radar(&pg);
    side_tasks(&pg);
    timeline(&pg);
    capacity(&pg);
    rc = pg.error;
    if (rc < 0)
        goto fail;
    json = cJSON_PrintUnformatted(pg.data);
    if (!json) {
        rc = -ENOMEM;
        goto fail;
    }
    const struct results *a = plan->runs[0];
    EVBUFFER_ADD_LIT(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                          "<meta name=\"generator\" content=\"tokentap " TOKENTAP_VERSION "\">\n"
                          "<title>");
    if (plan->compare)
        EVBUFFER_ADD_LIT(out, "tokentap compare");
    else
        EVBUFFER_ADD_LIT(out, "tokentap report: ");
    if (!plan->compare)
        report_doc_html_escape(out, a->scenario_name[0] ? a->scenario_name : "unnamed scenario");
    EVBUFFER_ADD_LIT(out, "</title>\n<style>\n");
    evbuffer_add(out, report_asset_css, report_asset_css_len);
    EVBUFFER_ADD_LIT(out, "</style>\n</head>\n<body>\n<main>\n");
    rc = report_doc_html(doc, out, charts, &pg);
    if (rc < 0)
        goto fail;
    footnotes(&pg, out);
    EVBUFFER_ADD_LIT(out, "<pre id=\"errors\" hidden></pre>\n</main>\n<script>\n");
    evbuffer_add(out, chartjs_min, chartjs_min_len);
    EVBUFFER_ADD_LIT(out, "\n</script>\n<script type=\"application/json\" id=\"report-data\">");
    script_json(out, json);
    EVBUFFER_ADD_LIT(out, "</script>\n<script>\n");
    evbuffer_add(out, report_asset_js, report_asset_js_len);
    EVBUFFER_ADD_LIT(out, "</script>\n</body>\n</html>\n");
    rc = 0;
fail:
    free(json);
    cJSON_Delete(pg.data);
    return rc;
}
