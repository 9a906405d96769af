#include "study/bench_results.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/stats.h"


static const cJSON *get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static double numf(const cJSON *j, const char *k)
{
    const cJSON *v = get(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static bool same(const cJSON *e, const char *target, const char *level)
{
    return strcmp(cJSON_GetStringValue(get(e, "target")), target) == 0 &&
           strcmp(cJSON_GetStringValue(get(e, "level")), level) == 0;
}

/* {"values":[...],"mean","p50","p90","min","max","ci95"} */
static cJSON *metric(const double *v, size_t n)
{
    cJSON *m = cJSON_CreateObject();
    cJSON *vals = cJSON_AddArrayToObject(m, "values");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(vals, isnan(v[i]) ? cJSON_CreateNull() : cJSON_CreateNumber(v[i]));
    struct stats_summary s;
    if (stats_summarize(v, n, &s) < 0)
        memset(&s, 0, sizeof(s));
#define NUM(key, x) cJSON_AddItemToObject(m, key, isnan(x) || s.n == 0 ? cJSON_CreateNull() : cJSON_CreateNumber(x))
    NUM("mean", s.mean);
    NUM("p50", s.p50);
    NUM("p90", s.p90);
    NUM("min", s.min);
    NUM("max", s.max);
#undef NUM
    if (s.n >= 2 && !isnan(s.ci_lo)) {
        cJSON *ci = cJSON_AddArrayToObject(m, "ci95");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(s.ci_lo));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(s.ci_hi));
    } else {
        cJSON_AddNullToObject(m, "ci95");
    }
    return m;
}

/* The median gap of a request, from its gap list. */
static double itl_p50(const cJSON *rec)
{
    const cJSON *gaps = get(rec, "gaps_us");
    size_t n = (size_t)cJSON_GetArraySize(gaps);
    if (n == 0)
        return NAN;
    double *v = malloc(n * sizeof(*v));
    if (!v)
        return NAN;
    size_t i = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, gaps) v[i++] = g->valuedouble / 1000.0;
    double p = NAN;
    stats_percentile(v, n, 50, &p);
    free(v);
    return p;
}

static void build_cells(const struct bench_results_in *b, cJSON *cells, cJSON *level_cells)
{
    const struct scenario *s = b->s;
    unsigned reps = s->repetitions;
    double *v[6];
    for (int k = 0; k < 6; k++)
        v[k] = malloc(reps * sizeof(double));
    double *wall = malloc(reps * sizeof(double)), *total = malloc(reps * sizeof(double)),
           *otps = malloc(reps * sizeof(double));
    if (!v[0] || !v[1] || !v[2] || !v[3] || !v[4] || !v[5] || !wall || !total || !otps)
        goto out;
    for (size_t ti = 0; ti < s->n_targets; ti++) {
        const char *tname = s->targets[ti].name;
        for (size_t li = 0; li < s->n_levels; li++) {
            const struct scenario_level *lv = &s->levels[li];
            /* Which agents run in this level. */
            for (size_t ai = 0; ai < s->n_agents; ai++) {
                bool in = false;
                for (size_t p = 0; p < lv->n_phases; p++)
                    for (size_t k = 0; k < lv->phases[p].n_agents; k++)
                        in = in || lv->phases[p].agents[k] == ai;
                if (!in)
                    continue;
                const struct scenario_agent *ag = &s->agents[ai];
                for (size_t turn = 1; turn <= ag->n_turns; turn++) {
                    for (unsigned r = 0; r < reps; r++)
                        for (int k = 0; k < 6; k++)
                            v[k][r] = NAN;
                    unsigned n = 0, errors = 0, pass = 0, checked = 0;
                    const cJSON *e;
                    cJSON_ArrayForEach(e, b->requests)
                    {
                        if (!same(e, tname, lv->name) || strcmp(cJSON_GetStringValue(get(e, "agent")), ag->name) != 0 ||
                            numf(e, "turn") != (double)turn)
                            continue;
                        int r = (int)numf(e, "repetition") - 1;
                        if (r < 0 || (unsigned)r >= reps)
                            continue;
                        n++;
                        const cJSON *rec = get(e, "record");
                        if (strcmp(cJSON_GetStringValue(get(rec, "outcome")), "ok") != 0) {
                            errors++;
                        } else {
                            v[0][r] = numf(rec, "ttft_ms");
                            v[1][r] = numf(rec, "ttfc_ms");
                            v[2][r] = numf(rec, "e2e_ms");
                            v[3][r] = numf(rec, "output_tokens");
                            v[4][r] = numf(rec, "decode_tps");
                            v[5][r] = itl_p50(rec);
                        }
                        const cJSON *c = get(e, "check");
                        if (cJSON_IsObject(c)) {
                            checked++;
                            pass += cJSON_IsTrue(get(c, "pass"));
                        }
                    }
                    cJSON *cell = cJSON_CreateObject();
                    cJSON_AddStringToObject(cell, "target", tname);
                    cJSON_AddStringToObject(cell, "level", lv->name);
                    cJSON_AddStringToObject(cell, "agent", ag->name);
                    cJSON_AddNumberToObject(cell, "turn", (double)turn);
                    cJSON_AddNumberToObject(cell, "n", n);
                    cJSON_AddNumberToObject(cell, "errors", errors);
                    static const char *const keys[] = {"ttft_ms", "ttfc_ms", "response_time_ms",
                                                       "tokens", "decode_tps", "itl_p50_ms"};
                    for (int k = 0; k < 6; k++)
                        cJSON_AddItemToObject(cell, keys[k], metric(v[k], reps));
                    cJSON_AddNumberToObject(cell, "pass", pass);
                    cJSON_AddNumberToObject(cell, "checked", checked);
                    cJSON_AddItemToArray(cells, cell);
                }
            }
            /* Level totals per repetition. */
            unsigned n = 0, errors = 0;
            for (unsigned r = 0; r < reps; r++)
                wall[r] = total[r] = otps[r] = NAN;
            const cJSON *lr;
            cJSON_ArrayForEach(lr, b->level_runs)
            {
                if (!same(lr, tname, lv->name))
                    continue;
                int r = (int)numf(lr, "repetition") - 1;
                if (r < 0 || (unsigned)r >= reps)
                    continue;
                n++;
                wall[r] = numf(lr, "wall_ms");
                double first = INFINITY, last = 0, tokens = 0;
                bool bad = false;
                const cJSON *e;
                cJSON_ArrayForEach(e, b->requests)
                {
                    if (!same(e, tname, lv->name) || numf(e, "repetition") != r + 1)
                        continue;
                    const cJSON *rec = get(e, "record");
                    bad = bad || strcmp(cJSON_GetStringValue(get(rec, "outcome")), "ok") != 0;
                    tokens += numf(rec, "output_tokens");
                    const struct scenario_agent *ag = scenario_find_agent(s, cJSON_GetStringValue(get(e, "agent")));
                    if (!ag || ag->role != SCENARIO_ROLE_PRIMARY)
                        continue;
                    const cJSON *t = get(rec, "t");
                    double st = numf(t, "start_us") / 1000.0, end = st + numf(t, "end");
                    if (st < first)
                        first = st;
                    if (end > last)
                        last = end;
                }
                if (bad)
                    errors++;
                if (last > 0 && !bad)
                    total[r] = last - first;
                if (!isnan(wall[r]) && wall[r] > 0)
                    otps[r] = tokens / (wall[r] / 1000.0);
            }
            cJSON *lc = cJSON_CreateObject();
            cJSON_AddStringToObject(lc, "target", tname);
            cJSON_AddStringToObject(lc, "level", lv->name);
            cJSON_AddNumberToObject(lc, "concurrency", lv->concurrency);
            cJSON_AddNumberToObject(lc, "n", n);
            cJSON_AddNumberToObject(lc, "errors", errors);
            cJSON_AddItemToObject(lc, "primary_total_ms", metric(total, reps));
            cJSON_AddItemToObject(lc, "wall_ms", metric(wall, reps));
            cJSON_AddItemToObject(lc, "output_tokens_per_s", metric(otps, reps));
            cJSON_AddItemToArray(level_cells, lc);
        }
    }
out:
    for (int k = 0; k < 6; k++)
        free(v[k]);
    free(wall);
    free(total);
    free(otps);
}

static cJSON *scenario_json(const struct scenario *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", s->name);
    cJSON_AddStringToObject(j, "description", s->description);
    cJSON_AddStringToObject(j, "file", s->path);
    cJSON_AddNumberToObject(j, "repetitions", s->repetitions);
    cJSON_AddNumberToObject(j, "warmup", s->warmup);
    cJSON *agents = cJSON_AddArrayToObject(j, "agents");
    for (size_t i = 0; i < s->n_agents; i++) {
        const struct scenario_agent *a = &s->agents[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", a->name);
        cJSON_AddStringToObject(o, "label", a->label);
        cJSON_AddStringToObject(o, "role", scenario_role_name(a->role));
        cJSON_AddStringToObject(o, "api", scenario_api_name(a->api));
        cJSON_AddNumberToObject(o, "turns", (double)a->n_turns);
        cJSON_AddItemToArray(agents, o);
    }
    cJSON *levels = cJSON_AddArrayToObject(j, "levels");
    for (size_t i = 0; i < s->n_levels; i++) {
        const struct scenario_level *l = &s->levels[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", l->name);
        cJSON_AddNumberToObject(o, "concurrency", l->concurrency);
        cJSON *phases = cJSON_AddArrayToObject(o, "phases");
        for (size_t p = 0; p < l->n_phases; p++) {
            cJSON *ph = cJSON_CreateObject();
            cJSON_AddStringToObject(ph, "kind", scenario_phase_kind_name(l->phases[p].kind));
            cJSON *names = cJSON_AddArrayToObject(ph, "agents");
            for (size_t k = 0; k < l->phases[p].n_agents; k++)
                cJSON_AddItemToArray(names, cJSON_CreateString(s->agents[l->phases[p].agents[k]].name));
            cJSON_AddItemToArray(phases, ph);
        }
        cJSON_AddItemToArray(levels, o);
    }
    return j;
}

static cJSON *targets_json(const struct bench_results_in *b)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < b->n_targets; i++) {
        const struct scenario_target *t = b->targets[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "label", t->label);
        if (t->url) {
            cJSON_AddStringToObject(o, "url", t->url);
            cJSON_AddNullToObject(o, "sim");
        } else {
            cJSON_AddNullToObject(o, "url");
            cJSON *sim = cJSON_AddObjectToObject(o, "sim");
            cJSON_AddNumberToObject(sim, "slots", t->sim.slots);
            cJSON_AddNumberToObject(sim, "prefill_tps", t->sim.prefill_tps);
            cJSON_AddNumberToObject(sim, "decode_tps", t->sim.decode_tps);
            cJSON_AddNumberToObject(sim, "batch_slowdown", t->sim.batch_slowdown);
            cJSON_AddNumberToObject(sim, "jitter", t->sim.jitter);
        }
        if (t->model)
            cJSON_AddStringToObject(o, "model", t->model);
        else
            cJSON_AddNullToObject(o, "model");
        int thinking = b->thinking_override >= 0 ? b->thinking_override : t->thinking;
        if (thinking == SCENARIO_THINKING_UNSET)
            cJSON_AddNullToObject(o, "thinking");
        else
            cJSON_AddBoolToObject(o, "thinking", thinking == 1);
        if (t->vram_gb > 0)
            cJSON_AddNumberToObject(o, "vram_gb", t->vram_gb);
        else
            cJSON_AddNullToObject(o, "vram_gb");
        if (t->context)
            cJSON_AddNumberToObject(o, "context", (double)t->context);
        else
            cJSON_AddNullToObject(o, "context");
        cJSON_AddItemToObject(o, "props", b->props[i] ? cJSON_Duplicate(b->props[i], true)
                                                       : cJSON_CreateNull());
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *environment_json(const struct bench_results_in *b)
{
    cJSON *o = cJSON_CreateObject();
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    cJSON_AddStringToObject(o, "host", host);
    struct utsname u;
    char os[200] = "";
    if (uname(&u) == 0)
        snprintf(os, sizeof(os), "%s %s %s", u.sysname, u.release, u.machine);
    cJSON_AddStringToObject(o, "os", os);
    cJSON_AddNumberToObject(o, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
    char when[40];
    clock_format_wall(b->start_wall, when, sizeof(when));
    cJSON_AddStringToObject(o, "started", when);
    clock_format_wall(b->start_wall + b->duration, when, sizeof(when));
    cJSON_AddStringToObject(o, "finished", when);
    cJSON_AddNumberToObject(o, "duration_s", (double)b->duration / 1e6);
    cJSON_AddStringToObject(o, "command", b->command);
    /* How targets shared the time: simulated ones ran side by side; real
     * servers one at a time, the order rotating each repetition. */
    cJSON_AddStringToObject(o, "schedule", b->interleaved ? "interleaved" : "side-by-side");
    return o;
}

cJSON *bench_results_build(const struct bench_results_in *in)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON_AddStringToObject(root, "format", "tokentap-bench");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "tokentap_version", TOKENTAP_VERSION);
    cJSON_AddBoolToObject(root, "complete", in->complete);
    cJSON_AddItemToObject(root, "scenario", scenario_json(in->s));
    cJSON_AddItemToObject(root, "targets", targets_json(in));
    cJSON_AddItemToObject(root, "environment", environment_json(in));
    cJSON *cells = cJSON_CreateArray(), *level_cells = cJSON_CreateArray();
    build_cells(in, cells, level_cells);
    cJSON_AddItemReferenceToObject(root, "requests", (cJSON *)in->requests);
    cJSON_AddItemToObject(root, "cells", cells);
    cJSON_AddItemToObject(root, "level_cells", level_cells);
    return root;
}
