#include "report/results.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"

static const char *const cell_metric_keys[RESULTS_CELL_METRICS] = {
    [RESULTS_TTFT] = "ttft_ms",
    [RESULTS_TTFC] = "ttfc_ms",
    [RESULTS_RESPONSE_TIME] = "response_time_ms",
    [RESULTS_TOKENS] = "tokens",
    [RESULTS_DECODE_TPS] = "decode_tps",
    [RESULTS_ITL_P50] = "itl_p50_ms",
    [RESULTS_SLOT_WAIT] = "slot_wait_ms",
    [RESULTS_PREFILL] = "prefill_ms",
};

static const char *const level_metric_keys[RESULTS_LEVEL_METRICS] = {
    [RESULTS_PRIMARY_TOTAL] = "primary_total_ms",
    [RESULTS_WALL] = "wall_ms",
    [RESULTS_OUTPUT_TPS] = "output_tokens_per_s",
};

static const cJSON *get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static const char *str(const cJSON *j, const char *k)
{
    const cJSON *v = get(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *j, const char *k)
{
    const cJSON *v = get(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Reads count field k of j into *ret: dflt when it is absent or not a
 * number, else it must lie in [lo, hi] (a crafted file must not make the
 * report loop or allocate without bound). sec[i] (sec alone when i < 0)
 * names the object in the error. 0 or -EINVAL. */
static int count(const cJSON *j, const char *k, int lo, int hi, int dflt, int *ret, const char *sec,
                 int i, struct config_err *err)
{
    const cJSON *v = get(j, k);
    if (!cJSON_IsNumber(v)) {
        *ret = dflt;
        return 0;
    }
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi)) {
        if (i >= 0)
            config_err_set(err, "%s[%d].%s is %g: expected %d to %d", sec, i, k, d, lo,
                            hi);
        else
            config_err_set(err, "%s.%s is %g: expected %d to %d", sec, k, d, lo, hi);
        return -EINVAL;
    }
    *ret = (int)d;
    return 0;
}

/* The bounds of counts: turns as a scenario allows them; repetitions,
 * requests, errors and checks per cell as results_values holds them. */
#define MAX_COUNT RESULTS_MAX_REPETITIONS

/* A section's array of objects; NULL (and a message) when the key holds
 * something else. A missing optional section is an empty array. */
static int section(const cJSON *root, const char *k, bool required, const cJSON **ret,
                   struct config_err *err)
{
    const cJSON *a = get(root, k);
    if (!a && !required) {
        *ret = NULL;
        return 0;
    }
    if (!cJSON_IsArray(a)) {
        config_err_set(err, "\"%s\" is %s, not an array", k,
                        a ? "something else" : "missing");
        return -EINVAL;
    }
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsObject(e)) {
            config_err_set(err, "%s[%d] is not an object", k, i);
            return -EINVAL;
        }
        i++;
    }
    *ret = a;
    return 0;
}

/* Reads {"values":[...]} (or a lone "mean" from a writer that kept no
 * values) into out. A missing metric is left empty. */
static int read_values(const cJSON *m, struct results_values *out)
{
    const cJSON *vals = get(m, "values");
    if (cJSON_IsArray(vals)) {
        int n = cJSON_GetArraySize(vals);
        if (n > RESULTS_MAX_REPETITIONS)
            return -EFBIG;
        if (n == 0)
            return 0;
        out->v = malloc((size_t)n * sizeof(*out->v));
        if (!out->v)
            return -ENOMEM;
        const cJSON *e;
        size_t i = 0;
        cJSON_ArrayForEach(e, vals)
            out->v[i++] = cJSON_IsNumber(e) && isfinite(e->valuedouble) ? e->valuedouble : NAN;
        out->n = i;
        return 0;
    }
    double mean = num(m, "mean");
    if (isfinite(mean)) {
        out->v = malloc(sizeof(*out->v));
        if (!out->v)
            return -ENOMEM;
        out->v[0] = mean;
        out->n = 1;
    }
    return 0;
}

/* Mutable lookups for building; the public ones below hand out const. */
static struct results_level *find_level(struct results *r, const char *name)
{
    for (size_t i = 0; i < r->n_levels; i++)
        if (strcmp(r->levels[i].name, name) == 0)
            return &r->levels[i];
    return NULL;
}

static struct results_agent *find_agent(struct results *r, const char *name)
{
    for (size_t i = 0; i < r->n_agents; i++)
        if (strcmp(r->agents[i].name, name) == 0)
            return &r->agents[i];
    return NULL;
}

static struct results_target *find_target(struct results *r, const char *name)
{
    for (size_t i = 0; i < r->n_targets; i++)
        if (strcmp(r->targets[i].name, name) == 0)
            return &r->targets[i];
    return NULL;
}

/* Appends `name` to the levels (or agents, targets) when it is not there
 * yet: a file whose scenario omits a level still shows it. */
static int add_level(struct results *r, const char *name, double concurrency)
{
    if (find_level(r, name))
        return 0;
    struct results_level *l = realloc(r->levels, (r->n_levels + 1) * sizeof(*l));
    if (!l)
        return -ENOMEM;
    r->levels = l;
    r->levels[r->n_levels++] = (struct results_level){.name = name, .concurrency = concurrency};
    return 0;
}

static int add_agent(struct results *r, const char *name, int turn)
{
    struct results_agent *a = find_agent(r, name);
    if (a) {
        if (turn > a->turns)
            a->turns = turn;
        return 0;
    }
    a = realloc(r->agents, (r->n_agents + 1) * sizeof(*a));
    if (!a)
        return -ENOMEM;
    r->agents = a;
    r->agents[r->n_agents++] =
        (struct results_agent){.name = name, .label = name, .primary = false, .turns = turn};
    return 0;
}

static int add_target(struct results *r, const char *name)
{
    if (find_target(r, name))
        return 0;
    struct results_target *t = realloc(r->targets, (r->n_targets + 1) * sizeof(*t));
    if (!t)
        return -ENOMEM;
    r->targets = t;
    r->targets[r->n_targets++] = (struct results_target){
        .name = name, .label = name, .thinking = -1, .vram_gb = NAN, .context = NAN};
    return 0;
}

/* A level's phases: each child's "kind" and its "agents" strings. */
static int read_phases(const cJSON *phases, struct results_level *l)
{
    size_t n = (size_t)cJSON_GetArraySize(phases);
    struct results_phase *ph = calloc(n ? n : 1, sizeof(*ph));
    if (!ph)
        return -ENOMEM;
    for (size_t i = 0; i < l->n_phases; i++)
        free(l->phases[i].agents);
    free(l->phases);
    l->phases = ph;
    l->n_phases = 0;
    const cJSON *p, *a;
    cJSON_ArrayForEach(p, phases)
    {
        struct results_phase *x = &l->phases[l->n_phases++];
        const cJSON *agents = get(p, "agents");
        size_t k = (size_t)cJSON_GetArraySize(agents);
        x->kind = str(p, "kind");
        x->agents = calloc(k ? k : 1, sizeof(*x->agents));
        if (!x->agents)
            return -ENOMEM;
        cJSON_ArrayForEach(a, agents)
            x->agents[x->n_agents++] = cJSON_IsString(a) ? a->valuestring : NULL;
    }
    return 0;
}

static int read_scenario(struct results *r, const cJSON *root, struct config_err *err)
{
    const cJSON *sc = get(root, "scenario");
    if (!cJSON_IsObject(sc)) {
        config_err_set(err, "no \"scenario\" object");
        return -EINVAL;
    }
    r->scenario_name = str(sc, "name") ? str(sc, "name") : "";
    r->description = str(sc, "description");
    r->scenario_file = str(sc, "file");
    r->warmup = num(sc, "warmup");
    int rc =
        count(sc, "repetitions", 0, MAX_COUNT, 0, &r->repetitions, "scenario", -1, err);
    if (rc < 0)
        return rc;
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, get(sc, "agents"))
    {
        const char *name = str(e, "name");
        if (!name) {
            config_err_set(err, "scenario.agents[%d] has no \"name\"", i);
            return -EINVAL;
        }
        int turns;
        rc = count(e, "turns", 1, RESULTS_MAX_TURNS, 1, &turns, "scenario.agents", i, err);
        if (rc == 0)
            rc = add_agent(r, name, turns);
        if (rc < 0)
            return rc;
        struct results_agent *a = find_agent(r, name);
        if (str(e, "label"))
            a->label = str(e, "label");
        const char *role = str(e, "role");
        a->primary = role && strcmp(role, "primary") == 0;
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(e, get(sc, "levels"))
    {
        const char *name = str(e, "name");
        if (!name) {
            config_err_set(err, "scenario.levels[%d] has no \"name\"", i);
            return -EINVAL;
        }
        rc = add_level(r, name, num(e, "concurrency"));
        if (rc == 0)
            rc = read_phases(get(e, "phases"), find_level(r, name));
        if (rc < 0)
            return rc;
        i++;
    }
    return 0;
}

/* The simulator profile's numbers, strings and booleans, in its order. */
static int read_sim(const cJSON *sim, struct results_target *t)
{
    size_t n = (size_t)cJSON_GetArraySize(sim);
    t->sim = calloc(n ? n : 1, sizeof(*t->sim));
    if (!t->sim)
        return -ENOMEM;
    t->on_sim = true;
    const cJSON *e;
    cJSON_ArrayForEach(e, sim)
    {
        struct results_setting *x = &t->sim[t->n_sim];
        if (cJSON_IsNumber(e))
            snprintf(x->value, sizeof(x->value), "%g", e->valuedouble);
        else if (cJSON_IsString(e))
            snprintf(x->value, sizeof(x->value), "%s", e->valuestring);
        else if (cJSON_IsBool(e))
            snprintf(x->value, sizeof(x->value), "%s", cJSON_IsTrue(e) ? "true" : "false");
        else
            continue;
        x->key = e->string;
        t->n_sim++;
    }
    return 0;
}

/* A calibrated profile's origin: {"from", "target", "levels": [...]}. */
static void read_calibration(const cJSON *c, struct results_target *t)
{
    t->calibrated = cJSON_IsObject(c);
    t->calibrated_from = str(c, "from");
    t->calibrated_target = str(c, "target");
    t->calibrated_levels[0] = '\0';
    size_t n = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, get(c, "levels"))
    {
        if (cJSON_IsString(l) && n < sizeof(t->calibrated_levels))
            n += (size_t)snprintf(t->calibrated_levels + n, sizeof(t->calibrated_levels) - n,
                                  "%s%s", n ? ", " : "", l->valuestring);
    }
}

static int read_targets(struct results *r, const cJSON *root, struct config_err *err)
{
    const cJSON *a, *e;
    int rc = section(root, "targets", true, &a, err);
    if (rc < 0)
        return rc;
    int i = 0;
    cJSON_ArrayForEach(e, a)
    {
        const char *name = str(e, "name");
        if (!name) {
            config_err_set(err, "targets[%d] has no \"name\"", i);
            return -EINVAL;
        }
        rc = add_target(r, name);
        if (rc < 0)
            return rc;
        struct results_target *t = find_target(r, name);
        if (str(e, "label"))
            t->label = str(e, "label");
        t->url = str(e, "url");
        free(t->sim);
        t->sim = NULL;
        t->n_sim = 0;
        t->on_sim = false;
        if (cJSON_IsObject(get(e, "sim")) && (rc = read_sim(get(e, "sim"), t)) < 0)
            return rc;
        t->profile = str(e, "profile");
        t->sweep_value = str(e, "sweep_value");
        read_calibration(get(e, "calibration"), t);
        t->model = str(e, "model");
        const cJSON *th = get(e, "thinking");
        t->thinking = cJSON_IsBool(th) ? cJSON_IsTrue(th) : -1;
        t->vram_gb = num(e, "vram_gb");
        t->context = num(e, "context");
        i++;
    }
    return 0;
}

/* Fields every cell, level cell and request names. */
static int where(const cJSON *e, const char *sec, int i, bool agent, struct config_err *err)
{
    static const char *const keys[] = {"target", "level", "agent"};
    for (size_t k = 0; k < (agent ? 3u : 2u); k++) {
        if (!str(e, keys[k])) {
            config_err_set(err, "%s[%d] has no \"%s\" string", sec, i, keys[k]);
            return -EINVAL;
        }
    }
    return 0;
}

static int read_cells(struct results *r, const cJSON *root, struct config_err *err)
{
    const cJSON *a, *e;
    int rc = section(root, "cells", true, &a, err);
    if (rc < 0)
        return rc;
    size_t n = (size_t)cJSON_GetArraySize(a);
    r->cells = calloc(n ? n : 1, sizeof(*r->cells));
    if (!r->cells)
        return -ENOMEM;
    int i = 0;
    cJSON_ArrayForEach(e, a)
    {
        rc = where(e, "cells", i, true, err);
        if (rc < 0)
            return rc;
        struct results_cell *c = &r->cells[r->n_cells++];
        c->target = str(e, "target");
        c->level = str(e, "level");
        c->agent = str(e, "agent");
        rc = count(e, "turn", 1, RESULTS_MAX_TURNS, 1, &c->turn, "cells", i, err);
        if (rc == 0)
            rc = count(e, "n", 0, MAX_COUNT, 0, &c->n, "cells", i, err);
        if (rc == 0)
            rc = count(e, "errors", 0, MAX_COUNT, 0, &c->errors, "cells", i, err);
        if (rc == 0)
            rc = count(e, "pass", 0, MAX_COUNT, 0, &c->pass, "cells", i, err);
        if (rc == 0)
            rc = count(e, "checked", 0, MAX_COUNT, 0, &c->checked, "cells", i, err);
        if (rc < 0)
            return rc;
        for (int m = 0; m < RESULTS_CELL_METRICS; m++) {
            rc = read_values(get(e, cell_metric_keys[m]), &c->m[m]);
            if (rc < 0) {
                if (rc == -EFBIG)
                    config_err_set(err, "cells[%d] has more than %d values per metric", i,
                                    RESULTS_MAX_REPETITIONS);
                return rc;
            }
        }
        if ((rc = add_target(r, c->target)) < 0 || (rc = add_level(r, c->level, NAN)) < 0 ||
            (rc = add_agent(r, c->agent, c->turn)) < 0)
            return rc;
        i++;
    }
    return 0;
}

static int read_level_cells(struct results *r, const cJSON *root, struct config_err *err)
{
    const cJSON *a, *e;
    int rc = section(root, "level_cells", true, &a, err);
    if (rc < 0)
        return rc;
    size_t n = (size_t)cJSON_GetArraySize(a);
    r->level_cells = calloc(n ? n : 1, sizeof(*r->level_cells));
    if (!r->level_cells)
        return -ENOMEM;
    int i = 0;
    cJSON_ArrayForEach(e, a)
    {
        rc = where(e, "level_cells", i, false, err);
        if (rc < 0)
            return rc;
        struct results_level_cell *c = &r->level_cells[r->n_level_cells++];
        c->target = str(e, "target");
        c->level = str(e, "level");
        c->concurrency = num(e, "concurrency");
        rc = count(e, "n", 0, MAX_COUNT, 0, &c->n, "level_cells", i, err);
        if (rc == 0)
            rc = count(e, "errors", 0, MAX_COUNT, 0, &c->errors, "level_cells", i, err);
        if (rc < 0)
            return rc;
        for (int m = 0; m < RESULTS_LEVEL_METRICS; m++) {
            rc = read_values(get(e, level_metric_keys[m]), &c->m[m]);
            if (rc < 0) {
                if (rc == -EFBIG)
                    config_err_set(err,
                                    "level_cells[%d] has more than %d values per metric", i,
                                    RESULTS_MAX_REPETITIONS);
                return rc;
            }
        }
        if ((rc = add_target(r, c->target)) < 0 || (rc = add_level(r, c->level, c->concurrency)) < 0)
            return rc;
        /* The scenario may omit a level's concurrency; the cell knows it. */
        struct results_level *l = find_level(r, c->level);
        if (isnan(l->concurrency))
            l->concurrency = c->concurrency;
        i++;
    }
    return 0;
}

/* A request's record: the timeline the report draws. */
static void read_record(struct results *r, const cJSON *rec, struct results_request *q)
{
    const cJSON *t = get(rec, "t"), *outcome = get(rec, "outcome"), *gaps = get(rec, "gaps_us");
    q->start_us = rec ? num(t, "start_us") : NAN;
    q->first_token_ms = num(t, "first_token");
    q->last_token_ms = num(t, "last_token");
    q->end_ms = num(t, "end");
    q->ok = !cJSON_IsString(outcome) || strcmp(outcome->valuestring, "ok") == 0;
    q->output_tokens = num(rec, "output_tokens");
    q->gaps_us = r->gaps + r->n_gaps;
    const cJSON *g;
    if (cJSON_IsArray(gaps))
        cJSON_ArrayForEach(g, gaps)
            r->gaps[r->n_gaps + q->n_gaps++] = cJSON_IsNumber(g) ? g->valuedouble : NAN;
    r->n_gaps += q->n_gaps;
}

static int read_requests(struct results *r, const cJSON *root, struct config_err *err)
{
    const cJSON *a, *e;
    int rc = section(root, "requests", false, &a, err);
    if (rc < 0 || !a)
        return rc;
    size_t n = (size_t)cJSON_GetArraySize(a), gaps = 0;
    cJSON_ArrayForEach(e, a)
    {
        const cJSON *g = get(get(e, "record"), "gaps_us");
        if (cJSON_IsArray(g))
            gaps += (size_t)cJSON_GetArraySize(g);
    }
    r->requests = calloc(n ? n : 1, sizeof(*r->requests));
    r->gaps = malloc((gaps ? gaps : 1) * sizeof(*r->gaps));
    if (!r->requests || !r->gaps)
        return -ENOMEM;
    int i = 0;
    cJSON_ArrayForEach(e, a)
    {
        rc = where(e, "requests", i, true, err);
        if (rc < 0)
            return rc;
        struct results_request *q = &r->requests[r->n_requests++];
        q->target = str(e, "target");
        q->level = str(e, "level");
        q->agent = str(e, "agent");
        double rep = num(e, "repetition");
        q->repetition = rep >= 0 && rep <= 1e9 ? (long)rep : 0;
        double user = num(e, "user");
        q->user = user >= 1 && user <= RESULTS_MAX_REPETITIONS ? (int)user : 0;
        rc = count(e, "turn", 1, RESULTS_MAX_TURNS, 1, &q->turn, "requests", i, err);
        if (rc < 0)
            return rc;
        const cJSON *check = get(e, "check");
        const cJSON *pass = get(check, "pass");
        q->check = cJSON_IsBool(pass) ? cJSON_IsTrue(pass) : -1;
        read_record(r, cJSON_IsObject(get(e, "record")) ? get(e, "record") : NULL, q);
        i++;
    }
    return 0;
}

/* --- capacity --- */

/* [lo, hi] of k, NaN each when absent. */
static void read_pair(const cJSON *j, const char *k, double *lo, double *hi)
{
    const cJSON *a = get(j, k);
    const cJSON *x = cJSON_GetArrayItem(a, 0), *y = cJSON_GetArrayItem(a, 1);
    *lo = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    *hi = cJSON_IsNumber(y) ? y->valuedouble : NAN;
}

static int tristate(const cJSON *j, const char *k)
{
    const cJSON *v = get(j, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

static int read_capacity_target(struct results_capacity *c, const cJSON *e,
                                struct results_capacity_target *t, int i, struct config_err *err)
{
    t->target = str(e, "target");
    t->bound = str(e, "bound");
    t->capacity = num(e, "capacity");
    read_pair(e, "ci95", &t->ci_lo, &t->ci_hi);
    t->broke = str(e, "broke");
    t->broke_at = num(e, "broke_at");
    if (!t->target) {
        config_err_set(err, "capacity.targets[%d] has no \"target\" string", i);
        return -EINVAL;
    }
    const cJSON *points = get(e, "points"), *p;
    int n = cJSON_GetArraySize(points);
    if (n > RESULTS_MAX_POINTS) {
        config_err_set(err, "capacity.targets[%d] has %d points: at most %d", i, n,
                       RESULTS_MAX_POINTS);
        return -EINVAL;
    }
    t->points = calloc(n > 0 ? (size_t)n : 1, sizeof(*t->points));
    if (!t->points)
        return -ENOMEM;
    cJSON_ArrayForEach(p, points)
    {
        struct results_capacity_point *x = &t->points[t->n_points++];
        x->users = num(p, "users");
        int rc = count(p, "repetitions", 0, MAX_COUNT, 0, &x->repetitions, "capacity points", i, err);
        if (rc < 0)
            return rc;
        x->pass = tristate(p, "pass");
        x->significant = tristate(p, "significant");
        for (size_t o = 0; o < c->n_objectives; o++) {
            const cJSON *v = get(get(p, "values"), c->objectives[o].name);
            struct results_judgement *j = &x->j[o];
            j->value = num(v, "value");
            read_pair(v, "ci95", &j->lo, &j->hi);
            j->pass = tristate(v, "pass");
            j->significant = tristate(v, "significant");
        }
    }
    return 0;
}

/* The optional "capacity" section (docs/results-format.md#capacity). */
static int read_capacity(struct results *r, const cJSON *root, struct config_err *err)
{
    const cJSON *cap = get(root, "capacity"), *e;
    struct results_capacity *c = &r->capacity;
    if (!cJSON_IsObject(cap))
        return 0;
    c->present = true;
    c->objective = str(cap, "objective");
    c->user_level = str(get(cap, "user"), "level");
    c->user_trace = str(get(cap, "user"), "trace");
    c->unit = str(cap, "unit");
    c->max_users = num(cap, "max_users");
    int i = 0;
    cJSON_ArrayForEach(e, get(cap, "objectives"))
    {
        if (c->n_objectives == RESULTS_MAX_OBJECTIVES) {
            config_err_set(err, "capacity has more than %d objectives", RESULTS_MAX_OBJECTIVES);
            return -EINVAL;
        }
        struct results_objective *o = &c->objectives[c->n_objectives++];
        o->name = str(e, "name");
        if (!o->name) {
            config_err_set(err, "capacity.objectives[%d] has no \"name\" string", i);
            return -EINVAL;
        }
        o->text = str(e, "text") ? str(e, "text") : o->name;
        o->op = str(e, "op");
        o->unit = str(e, "unit");
        o->limit = num(e, "limit");
        i++;
    }
    const cJSON *targets = get(cap, "targets");
    int n = cJSON_GetArraySize(targets);
    c->targets = calloc(n > 0 ? (size_t)n : 1, sizeof(*c->targets));
    if (!c->targets)
        return -ENOMEM;
    i = 0;
    cJSON_ArrayForEach(e, targets)
    {
        int rc = read_capacity_target(c, e, &c->targets[c->n_targets++], i++, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A copy of env's string k, NULL when absent; false for want of memory. */
static bool env_str(const cJSON *env, const char *k, char **ret)
{
    const char *v = str(env, k);
    *ret = v ? strdup(v) : NULL;
    return !v || *ret;
}

static int read_environment(struct results *r, const cJSON *root)
{
    const cJSON *env = get(root, "environment");
    struct results_environment *e = &r->env;
    e->cpus = num(env, "cpus");
    e->duration_s = num(env, "duration_s");
    r->has_environment = cJSON_IsObject(env);
    if (!env_str(env, "host", &e->host) || !env_str(env, "os", &e->os) ||
        !env_str(env, "started", &e->started) || !env_str(env, "finished", &e->finished) ||
        !env_str(env, "command", &e->command) || !env_str(env, "schedule", &e->schedule))
        return -ENOMEM;
    return 0;
}

int results_from_json(const cJSON *root, struct results **ret, struct config_err *err)
{
    struct results *r = NULL;
    int rc = -EINVAL;
    const char *format = str(root, "format");
    if (!cJSON_IsObject(root) || !format) {
        config_err_set(err, "not a tokentap results file (no \"format\": \"%s\")",
                        RESULTS_FORMAT);
        goto fail;
    }
    if (strcmp(format, RESULTS_FORMAT) != 0) {
        config_err_set(err,
                        "not a tokentap bench results file (format \"%.60s\", expected \"%s\")",
                        format, RESULTS_FORMAT);
        goto fail;
    }
    const cJSON *version = get(root, "version");
    if (!cJSON_IsNumber(version)) {
        config_err_set(err,
                        "results file without a format version (this tokentap reads version %d)",
                        RESULTS_VERSION);
        goto fail;
    }
    if (version->valuedouble != RESULTS_VERSION) {
        config_err_set(err,
            "results format version %g is not supported (this tokentap reads version %d)",
            version->valuedouble, RESULTS_VERSION);
        goto fail;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        rc = -ENOMEM;
        goto fail;
    }
    r->complete = cJSON_IsTrue(get(root, "complete"));
    r->sweep_key = str(root, "sweep");
    r->tokentap_version = str(root, "tokentap_version");
    if ((rc = read_environment(r, root)) < 0 || (rc = read_scenario(r, root, err)) < 0 ||
        (rc = read_targets(r, root, err)) < 0 ||
        (rc = read_cells(r, root, err)) < 0 ||
        (rc = read_level_cells(r, root, err)) < 0 ||
        (rc = read_requests(r, root, err)) < 0 || (rc = read_capacity(r, root, err)) < 0)
        goto fail;
    *ret = r;
    return 0;
fail:
    if (rc == -ENOMEM)
        config_err_set(err, "out of memory");
    results_free(r);
    return rc;
}

int results_parse(const char *text, size_t len, struct results **ret, struct config_err *err)
{
    cJSON *root = NULL;
    struct results *r = NULL;
    int rc;
    if (len > RESULTS_MAX_BYTES) {
        config_err_set(err, "larger than %zu MiB", RESULTS_MAX_BYTES >> 20);
        rc = -EFBIG;
        goto fail;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        config_err_set(err, "not valid JSON (error near byte %zu)", at);
        rc = -EINVAL;
        goto fail;
    }
    rc = results_from_json(root, &r, err);
    if (rc < 0)
        goto fail;
    r->owned_root = root;
    *ret = r;
    return 0;
fail:
    cJSON_Delete(root);
    return rc;
}

void results_free(struct results *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_cells; i++)
        for (int m = 0; m < RESULTS_CELL_METRICS; m++)
            free(r->cells[i].m[m].v);
    for (size_t i = 0; i < r->n_level_cells; i++)
        for (int m = 0; m < RESULTS_LEVEL_METRICS; m++)
            free(r->level_cells[i].m[m].v);
    for (size_t i = 0; i < r->n_levels; i++) {
        for (size_t p = 0; p < r->levels[i].n_phases; p++)
            free(r->levels[i].phases[p].agents);
        free(r->levels[i].phases);
    }
    for (size_t i = 0; i < r->n_targets; i++)
        free(r->targets[i].sim);
    for (size_t i = 0; i < r->capacity.n_targets; i++)
        free(r->capacity.targets[i].points);
    free(r->capacity.targets);
    struct results_environment *e = &r->env;
    free(e->host);
    free(e->os);
    free(e->started);
    free(e->finished);
    free(e->command);
    free(e->schedule);
    free(r->cells);
    free(r->level_cells);
    free(r->requests);
    free(r->gaps);
    free(r->agents);
    free(r->levels);
    free(r->targets);
    cJSON_Delete(r->owned_root);
    free(r);
}

const struct results_target *results_target(const struct results *r, const char *name)
{
    return find_target((struct results *)r, name);
}

const struct results_level *results_level(const struct results *r, const char *name)
{
    return find_level((struct results *)r, name);
}

const struct results_agent *results_agent(const struct results *r, const char *name)
{
    return find_agent((struct results *)r, name);
}

const struct results_cell *results_cell(const struct results *r, const char *target,
                                        const char *level, const char *agent, int turn)
{
    for (size_t i = 0; i < r->n_cells; i++) {
        const struct results_cell *c = &r->cells[i];
        if (c->turn == turn && strcmp(c->target, target) == 0 && strcmp(c->level, level) == 0 &&
            strcmp(c->agent, agent) == 0)
            return c;
    }
    return NULL;
}

const struct results_level_cell *results_level_cell(const struct results *r, const char *target,
                                                    const char *level)
{
    for (size_t i = 0; i < r->n_level_cells; i++) {
        const struct results_level_cell *c = &r->level_cells[i];
        if (strcmp(c->target, target) == 0 && strcmp(c->level, level) == 0)
            return c;
    }
    return NULL;
}

const struct results_capacity_target *results_capacity_of(const struct results *r,
                                                          const char *target)
{
    for (size_t i = 0; i < r->capacity.n_targets; i++)
        if (strcmp(r->capacity.targets[i].target, target) == 0)
            return &r->capacity.targets[i];
    return NULL;
}

const struct results_agent *results_primary(const struct results *r)
{
    for (size_t i = 0; i < r->n_agents; i++)
        if (r->agents[i].primary)
            return &r->agents[i];
    return NULL;
}

const char *results_metric_key(enum results_metric_id m)
{
    return cell_metric_keys[m];
}

const char *results_level_metric_key(enum results_level_metric_id m)
{
    return level_metric_keys[m];
}
