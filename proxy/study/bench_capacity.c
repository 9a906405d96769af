/* bench_results' capacity part: what the capacity search judges one
 * repetition by, and the answer in struct results and results.json
 * (docs/results-format.md#capacity). Pure. */
#include "study/bench_results.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "report/results.h"
#include "study/bench_results_int.h"
#include "study/capacity.h"

_Static_assert(CAPACITY_MAX_OBJECTIVES <= RESULTS_MAX_OBJECTIVES, "objectives do not fit results");
_Static_assert(CAPACITY_MAX_POINTS <= RESULTS_MAX_POINTS, "counts do not fit results");

/* results.json cannot hold what is not finite: it is null there. */
static double as_json(double v)
{
    return isfinite(v) ? v : NAN;
}

/* --- what the capacity search judges a repetition by --- */

/* The metric of the cells a capacity metric is, or -1. */
static int cell_metric_of(enum capacity_metric m)
{
    switch (m) {
    case CAPACITY_TTFT: return RESULTS_TTFT;
    case CAPACITY_TTFC: return RESULTS_TTFC;
    case CAPACITY_E2E: return RESULTS_RESPONSE_TIME;
    case CAPACITY_TOKENS: return RESULTS_TOKENS;
    case CAPACITY_DECODE_TPS: return RESULTS_DECODE_TPS;
    case CAPACITY_ITL: return RESULTS_ITL_P50;
    case CAPACITY_SLOT_WAIT: return RESULTS_SLOT_WAIT;
    case CAPACITY_PREFILL: return RESULTS_PREFILL;
    default: return -1;
    }
}

static void put(double *v, size_t *n, double x)
{
    if (isfinite(x))
        v[(*n)++] = x;
}

int bench_results_capacity_values(const struct bench_results_in *in, size_t target, size_t level,
                                  unsigned rep, const struct capacity_slo *slo, double **values,
                                  size_t *n)
{
    unsigned users = bench_results_users_of(in, level);
    size_t rows = 0;
    for (size_t i = 0; i < in->n_requests; i++) {
        const struct bench_request *q = &in->requests[i];
        rows += q->target == target && q->level == level && q->repetition == rep;
    }
    for (size_t o = 0; o < slo->n; o++) {
        values[o] = malloc((rows + users + 1) * sizeof(double));
        n[o] = 0;
        if (!values[o]) {
            for (size_t k = 0; k < o; k++)
                free(values[k]);
            return -ENOMEM;
        }
    }
    struct bench_rep_facts f = bench_results_rep_facts(in, target, level, rep);
    for (size_t o = 0; o < slo->n; o++) {
        enum capacity_metric m = slo->o[o].metric;
        double *v = values[o];
        int cm = cell_metric_of(m);
        if (m == CAPACITY_WALL) {
            put(v, &n[o], f.wall);
            continue;
        }
        if (m == CAPACITY_OUTPUT_TPS) {
            put(v, &n[o], f.wall > 0 ? f.tokens / (f.wall / 1000.0) : NAN);
            continue;
        }
        if (m == CAPACITY_TOTAL) {
            for (unsigned u = 1; u <= users; u++)
                put(v, &n[o], bench_results_primary_total(in, target, level, rep, u));
            continue;
        }
        for (size_t i = 0; i < in->n_requests; i++) {
            const struct bench_request *q = &in->requests[i];
            if (q->target != target || q->level != level || q->repetition != rep)
                continue;
            bool ok = q->rec.outcome == RECORD_OK;
            if (m == CAPACITY_ERRORS) {
                put(v, &n[o], ok ? 0 : 1);
            } else if (m == CAPACITY_PASS) {
                if (q->checked)
                    put(v, &n[o], ok && q->check.pass ? 1 : 0);
            } else if (ok && cm >= 0) {
                double x[RESULTS_CELL_METRICS];
                bench_results_request_metrics(&q->rec, x);
                put(v, &n[o], x[cm]);
            }
        }
    }
    return 0;
}

/* --- the answer, as results and as results.json --- */

static const char *const bound_names[] = {
    [CAPACITY_NONE] = "none",
    [CAPACITY_FOUND] = "found",
    [CAPACITY_AT_LEAST] = "at-least",
    [CAPACITY_BELOW_ONE] = "below-one",
};

static const char *const unit_names[] = {
    [CAPACITY_UNIT_MS] = "ms",
    [CAPACITY_UNIT_TPS] = "tok/s",
    [CAPACITY_UNIT_COUNT] = "tokens",
    [CAPACITY_UNIT_SHARE] = "share",
};

static const char *const op_names[] = {[CAPACITY_LT] = "<", [CAPACITY_LE] = "<=",
                                       [CAPACITY_GT] = ">", [CAPACITY_GE] = ">="};

/* A user is one agent when the user level runs one agent (a trace's run
 * is a user, whatever its sessions). */
static const char *user_unit(const struct scenario *s)
{
    if (s->capacity.trace.path)
        return "users";
    size_t agents = 0;
    for (size_t p = 0; s->user_level && p < s->user_level->n_phases; p++)
        agents += s->user_level->phases[p].n_agents;
    return agents == 1 ? "agents" : "users";
}

int bench_capacity_build(const struct bench_results_in *in, struct results *run)
{
    struct results_capacity *c = &run->capacity;
    const struct capacity_slo *slo = in->slo;
    if (!in->capacity || !slo)
        return 0;
    c->present = true;
    c->objective = slo->text;
    c->n_objectives = slo->n;
    for (size_t o = 0; o < slo->n; o++)
        c->objectives[o] = (struct results_objective){
            .name = slo->o[o].name,
            .text = slo->o[o].text,
            .op = op_names[slo->o[o].op],
            .unit = unit_names[capacity_metric_unit(slo->o[o].metric)],
            .limit = slo->o[o].limit,
        };
    c->user_trace = in->s->capacity.trace.path;
    c->user_level = in->s->user_level && !c->user_trace ? in->s->user_level->name : NULL;
    c->unit = user_unit(in->s);
    c->max_users = in->search ? (double)in->search->max_users : NAN;
    c->targets = calloc(in->n_targets ? in->n_targets : 1, sizeof(*c->targets));
    if (!c->targets)
        return -ENOMEM;
    for (size_t t = 0; t < in->n_targets; t++) {
        const struct capacity_answer *a = in->answers[t];
        struct results_capacity_target *ct = &c->targets[c->n_targets++];
        ct->target = in->targets[t]->name;
        ct->bound = bound_names[a ? a->bound : CAPACITY_NONE];
        ct->capacity = ct->ci_lo = ct->ci_hi = ct->broke_at = NAN;
        if (!a)
            continue;
        if (a->bound != CAPACITY_NONE) {
            ct->capacity = a->capacity;
            ct->ci_lo = a->ci_lo;
            ct->ci_hi = a->ci_hi;
        }
        if (a->broke >= 0) {
            ct->broke = slo->o[a->broke].name;
            ct->broke_at = a->broke_at;
        }
        ct->points = calloc(a->n_points ? a->n_points : 1, sizeof(*ct->points));
        if (!ct->points)
            return -ENOMEM;
        for (size_t i = 0; i < a->n_points; i++) {
            const struct capacity_point_result *p = &a->points[i];
            struct results_capacity_point *rp = &ct->points[ct->n_points++];
            rp->users = p->users;
            rp->repetitions = (int)p->reps;
            rp->pass = p->pass;
            rp->significant = p->significant;
            for (size_t o = 0; o < slo->n; o++)
                rp->j[o] = (struct results_judgement){
                    .value = as_json(p->j[o].value), .lo = as_json(p->j[o].lo),
                    .hi = as_json(p->j[o].hi), .pass = p->j[o].pass,
                    .significant = p->j[o].significant};
        }
    }
    return 0;
}

/* A number, or null for NaN. */
static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *pair_or_null(double lo, double hi)
{
    if (!isfinite(lo) || !isfinite(hi))
        return cJSON_CreateNull();
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(lo));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(hi));
    return a;
}

cJSON *bench_capacity_json(const struct bench_results_in *in, const struct results_capacity *c)
{
    const struct scenario *s = in->s;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "objective", c->objective);
    cJSON *objs = cJSON_AddArrayToObject(o, "objectives");
    for (size_t i = 0; i < c->n_objectives; i++) {
        const struct results_objective *ob = &c->objectives[i];
        const struct capacity_objective *co = &in->slo->o[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", ob->name);
        cJSON_AddStringToObject(x, "metric", capacity_metric_key(co->metric));
        cJSON_AddStringToObject(x, "op", ob->op);
        cJSON_AddNumberToObject(x, "limit", ob->limit);
        cJSON_AddStringToObject(x, "unit", ob->unit);
        cJSON_AddStringToObject(x, "text", ob->text);
        cJSON_AddItemToArray(objs, x);
    }
    cJSON *user = cJSON_AddObjectToObject(o, "user");
    if (c->user_trace)
        cJSON_AddStringToObject(user, "trace", c->user_trace);
    else
        cJSON_AddStringToObject(user, "level", c->user_level ? c->user_level : "");
    cJSON *agents = cJSON_AddArrayToObject(user, "agents");
    for (size_t p = 0; s->user_level && p < s->user_level->n_phases; p++)
        for (size_t k = 0; k < s->user_level->phases[p].n_agents; k++)
            cJSON_AddItemToArray(
                agents, cJSON_CreateString(s->agents[s->user_level->phases[p].agents[k]].name));
    cJSON_AddStringToObject(o, "unit", c->unit);
    if (in->search) {
        cJSON_AddNumberToObject(o, "max_users", in->search->max_users);
        cJSON_AddNumberToObject(o, "repetitions", in->search->search_reps);
        cJSON_AddNumberToObject(o, "boundary_repetitions", in->search->boundary_reps);
        cJSON_AddNumberToObject(o, "max_repetitions", in->search->max_reps);
    }
    cJSON *targets = cJSON_AddArrayToObject(o, "targets");
    for (size_t t = 0; t < c->n_targets; t++) {
        const struct results_capacity_target *ct = &c->targets[t];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "target", ct->target);
        cJSON_AddStringToObject(x, "bound", ct->bound);
        cJSON_AddItemToObject(x, "capacity", num_or_null(ct->capacity));
        cJSON_AddItemToObject(x, "ci95", pair_or_null(ct->ci_lo, ct->ci_hi));
        if (ct->broke)
            cJSON_AddStringToObject(x, "broke", ct->broke);
        else
            cJSON_AddNullToObject(x, "broke");
        cJSON_AddItemToObject(x, "broke_at", num_or_null(ct->broke_at));
        cJSON *points = cJSON_AddArrayToObject(x, "points");
        for (size_t i = 0; i < ct->n_points; i++) {
            const struct results_capacity_point *p = &ct->points[i];
            cJSON *pt = cJSON_CreateObject();
            cJSON_AddNumberToObject(pt, "users", p->users);
            cJSON_AddNumberToObject(pt, "repetitions", p->repetitions);
            cJSON_AddBoolToObject(pt, "pass", p->pass == 1);
            cJSON_AddBoolToObject(pt, "significant", p->significant == 1);
            cJSON *vals = cJSON_AddObjectToObject(pt, "values");
            for (size_t k = 0; k < c->n_objectives; k++) {
                const struct results_judgement *j = &p->j[k];
                cJSON *v = cJSON_CreateObject();
                cJSON_AddItemToObject(v, "value", num_or_null(j->value));
                cJSON_AddItemToObject(v, "ci95", pair_or_null(j->lo, j->hi));
                cJSON_AddBoolToObject(v, "pass", j->pass == 1);
                cJSON_AddBoolToObject(v, "significant", j->significant == 1);
                cJSON_AddItemToObject(vals, c->objectives[k].name, v);
            }
            cJSON_AddItemToArray(points, pt);
        }
        cJSON_AddItemToArray(targets, x);
    }
    return o;
}
