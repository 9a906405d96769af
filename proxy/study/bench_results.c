#include "study/bench_results.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core/stats.h"
#include "report/results.h"
#include "study/bench_results_int.h"

/* The simulator profile as results.json lists it. */
#define SIM_SETTINGS 5
static const char *const sim_keys[SIM_SETTINGS] = {"slots", "prefill_tps", "decode_tps",
                                                   "batch_slowdown", "jitter"};

static void sim_values(const struct sim_profile *sim, double v[SIM_SETTINGS])
{
    v[0] = sim->slots;
    v[1] = sim->prefill_tps;
    v[2] = sim->decode_tps;
    v[3] = sim->batch_slowdown;
    v[4] = sim->jitter;
}

/* --- a request's numbers, as its record's JSON has them --- */

/* results.json cannot hold what is not finite: it is null there. */
static double as_json(double v)
{
    return isfinite(v) ? v : NAN;
}

static double ms(usec_t us, bool defined)
{
    return defined ? (double)us / 1000.0 : NAN;
}

/* ms from base to t, as the record's "t" object has it. */
static double rel_ms(usec_t t, usec_t base)
{
    return ms(clock_diff(t, base), t != 0 && base != 0);
}

/* The median gap of a request, ms. */
static double itl_p50(const struct record *r)
{
    if (r->n_gaps == 0)
        return NAN;
    double *v = malloc(r->n_gaps * sizeof(*v));
    if (!v)
        return NAN;
    for (size_t i = 0; i < r->n_gaps; i++)
        v[i] = r->gaps[i] / 1000.0;
    double p = NAN;
    stats_percentile(v, r->n_gaps, 50, &p);
    free(v);
    return p;
}

/* The per-turn metrics of a request that went well. */
void bench_results_request_metrics(const struct record *r, double v[RESULTS_CELL_METRICS])
{
    double tps = record_decode_tps(r);
    v[RESULTS_TTFT] = ms(record_ttft(r), r->t_first_token != 0);
    v[RESULTS_TTFC] = ms(record_ttfc(r), r->t_first_content != 0);
    v[RESULTS_RESPONSE_TIME] = ms(record_e2e(r), r->t_end != 0);
    v[RESULTS_TOKENS] = (double)record_output_tokens(r);
    v[RESULTS_DECODE_TPS] = tps > 0 ? tps : NAN;
    v[RESULTS_ITL_P50] = itl_p50(r);
    int64_t w = record_slot_wait(r), p = record_prefill(r);
    v[RESULTS_SLOT_WAIT] = w >= 0 ? (double)w / 1000.0 : NAN;
    v[RESULTS_PREFILL] = p >= 0 ? (double)p / 1000.0 : NAN;
}

/* --- cells: each metric over the repetitions --- */

/* n values, all missing until a repetition fills its own. */
static int values_init(struct results_values *v, size_t n)
{
    if (n == 0)
        return 0;
    v->v = malloc(n * sizeof(*v->v));
    if (!v->v)
        return -ENOMEM;
    v->n = n;
    for (size_t i = 0; i < n; i++)
        v->v[i] = NAN;
    return 0;
}

/* Once per metric, for results.json and the report alike. */
static int summarize(struct results_values *v)
{
    int rc = stats_summarize(v->v, v->n, &v->sum);
    v->summarized = rc == 0;
    return rc;
}

static bool runs_in(const struct scenario_level *lv, size_t agent)
{
    for (size_t p = 0; p < lv->n_phases; p++)
        for (size_t k = 0; k < lv->phases[p].n_agents; k++)
            if (lv->phases[p].agents[k] == agent)
                return true;
    return false;
}

/* Repetitions of level li on target ti, and the users of each. */
static unsigned reps_of(const struct bench_results_in *in, size_t ti, size_t li)
{
    return in->capacity ? in->reps[ti][li] : in->s->repetitions;
}

unsigned bench_results_users_of(const struct bench_results_in *in, size_t li)
{
    return in->s->levels[li].users ? in->s->levels[li].users : 1;
}

/* Where a row's value goes: repetition by repetition, user by user in
 * each; -1 outside the cell. */
static long slot_of(unsigned rep, unsigned user, unsigned reps, unsigned users)
{
    user = user ? user : 1;
    if (rep < 1 || rep > reps || user > users)
        return -1;
    return (long)(rep - 1) * users + (user - 1);
}

/* One target x level x agent x turn. */
static int turn_cell(const struct bench_results_in *in, size_t ti, size_t li, size_t ai,
                     size_t turn, struct results_cell *c)
{
    const struct scenario *s = in->s;
    unsigned reps = reps_of(in, ti, li), users = bench_results_users_of(in, li);
    c->target = s->targets[ti].name;
    c->level = s->levels[li].name;
    c->agent = s->agents[ai].name;
    c->turn = (int)turn;
    for (int m = 0; m < RESULTS_CELL_METRICS; m++)
        if (values_init(&c->m[m], (size_t)reps * users) < 0)
            return -ENOMEM;
    for (size_t i = 0; i < in->n_requests; i++) {
        const struct bench_request *q = &in->requests[i];
        long at = slot_of(q->repetition, q->user, reps, users);
        if (q->target != ti || q->level != li || q->agent != ai || q->turn != turn || at < 0)
            continue;
        c->n++;
        if (q->rec.outcome != RECORD_OK) {
            c->errors++;
        } else {
            double v[RESULTS_CELL_METRICS];
            bench_results_request_metrics(&q->rec, v);
            for (int m = 0; m < RESULTS_CELL_METRICS; m++)
                c->m[m].v[at] = as_json(v[m]);
        }
        if (q->checked) {
            c->checked++;
            c->pass += q->check.pass;
        }
    }
    for (int m = 0; m < RESULTS_CELL_METRICS; m++)
        if (summarize(&c->m[m]) < 0)
            return -ENOMEM;
    return 0;
}

struct bench_rep_facts bench_results_rep_facts(const struct bench_results_in *in, size_t ti, size_t li,
                                  unsigned rep)
{
    struct bench_rep_facts f = {.wall = NAN};
    usec_t first = 0, last = 0;
    for (size_t k = 0; k < in->n_level_runs; k++) {
        const struct bench_level_run *lr = &in->level_runs[k];
        if (lr->target != ti || lr->level != li || lr->repetition != rep)
            continue;
        if (!first || lr->start < first)
            first = lr->start;
        if (lr->start + lr->wall > last)
            last = lr->start + lr->wall;
    }
    if (first)
        f.wall = (double)(last - first) / 1000.0;
    for (size_t i = 0; i < in->n_requests; i++) {
        const struct bench_request *q = &in->requests[i];
        if (q->target != ti || q->level != li || q->repetition != rep)
            continue;
        f.bad = f.bad || q->rec.outcome != RECORD_OK;
        f.tokens += (double)record_output_tokens(&q->rec);
    }
    return f;
}

double bench_results_primary_total(const struct bench_results_in *in, size_t ti, size_t li, unsigned rep,
                            unsigned user)
{
    double first = INFINITY, last = 0;
    for (size_t i = 0; i < in->n_requests; i++) {
        const struct bench_request *q = &in->requests[i];
        if (q->target != ti || q->level != li || q->repetition != rep ||
            (q->user ? q->user : 1) != user)
            continue;
        if (q->rec.outcome != RECORD_OK)
            return NAN;
        if (in->s->agents[q->agent].role != SCENARIO_ROLE_PRIMARY)
            continue;
        double st = (double)q->rec.t_start / 1000.0;
        double end = st + rel_ms(q->rec.t_end, q->rec.t_start);
        if (st < first)
            first = st;
        if (end > last)
            last = end;
    }
    return last > 0 ? last - first : NAN;
}

/* One target x level: the primary's total (per user), the wall time and
 * the output rate of each repetition. */
static int level_cell(const struct bench_results_in *in, size_t ti, size_t li,
                      struct results_level_cell *lc)
{
    const struct scenario *s = in->s;
    unsigned reps = reps_of(in, ti, li), users = bench_results_users_of(in, li);
    lc->target = s->targets[ti].name;
    lc->level = s->levels[li].name;
    lc->concurrency = s->levels[li].concurrency;
    if (values_init(&lc->m[RESULTS_PRIMARY_TOTAL], (size_t)reps * users) < 0 ||
        values_init(&lc->m[RESULTS_WALL], reps) < 0 || values_init(&lc->m[RESULTS_OUTPUT_TPS], reps) < 0)
        return -ENOMEM;
    for (unsigned rep = 1; rep <= reps; rep++) {
        struct bench_rep_facts f = bench_results_rep_facts(in, ti, li, rep);
        if (isnan(f.wall))
            continue;
        lc->n++;
        if (f.bad)
            lc->errors++;
        lc->m[RESULTS_WALL].v[rep - 1] = as_json(f.wall);
        if (f.wall > 0)
            lc->m[RESULTS_OUTPUT_TPS].v[rep - 1] = as_json(f.tokens / (f.wall / 1000.0));
        for (unsigned u = 1; u <= users; u++)
            lc->m[RESULTS_PRIMARY_TOTAL].v[slot_of(rep, u, reps, users)] =
                as_json(bench_results_primary_total(in, ti, li, rep, u));
    }
    for (int m = 0; m < RESULTS_LEVEL_METRICS; m++)
        if (summarize(&lc->m[m]) < 0)
            return -ENOMEM;
    return 0;
}

static int build_cells(const struct bench_results_in *in, struct results *run)
{
    const struct scenario *s = in->s;
    size_t n = 0;
    for (size_t li = 0; li < s->n_levels; li++)
        for (size_t ai = 0; ai < s->n_agents; ai++)
            if (runs_in(&s->levels[li], ai))
                n += s->agents[ai].n_turns;
    n *= s->n_targets;
    run->cells = calloc(n ? n : 1, sizeof(*run->cells));
    run->level_cells = calloc(s->n_targets * s->n_levels + 1, sizeof(*run->level_cells));
    if (!run->cells || !run->level_cells)
        return -ENOMEM;
    for (size_t ti = 0; ti < s->n_targets; ti++) {
        for (size_t li = 0; li < s->n_levels; li++) {
            /* A capacity search tries its own counts: no cells for the others. */
            if (in->capacity && reps_of(in, ti, li) == 0)
                continue;
            for (size_t ai = 0; ai < s->n_agents; ai++) {
                if (!runs_in(&s->levels[li], ai))
                    continue;
                for (size_t turn = 1; turn <= s->agents[ai].n_turns; turn++)
                    if (turn_cell(in, ti, li, ai, turn, &run->cells[run->n_cells++]) < 0)
                        return -ENOMEM;
            }
            if (level_cell(in, ti, li, &run->level_cells[run->n_level_cells++]) < 0)
                return -ENOMEM;
        }
    }
    return 0;
}

/* --- the rest of the run, as results.json would give it --- */

static int build_scenario(const struct scenario *s, struct results *run)
{
    run->scenario_name = s->name ? s->name : "";
    run->sweep_key = s->sweep_key;
    run->description = s->description;
    run->scenario_file = s->path;
    run->warmup = s->warmup;
    run->repetitions = (int)s->repetitions;
    run->agents = calloc(s->n_agents, sizeof(*run->agents));
    run->levels = calloc(s->n_levels, sizeof(*run->levels));
    if (!run->agents || !run->levels)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_agents; i++) {
        const struct scenario_agent *a = &s->agents[i];
        run->agents[run->n_agents++] = (struct results_agent){
            .name = a->name,
            .label = a->label ? a->label : a->name,
            .primary = a->role == SCENARIO_ROLE_PRIMARY,
            .turns = (int)a->n_turns,
        };
    }
    for (size_t i = 0; i < s->n_levels; i++) {
        const struct scenario_level *l = &s->levels[i];
        struct results_level *rl = &run->levels[run->n_levels++];
        rl->name = l->name;
        rl->concurrency = l->concurrency;
        rl->phases = calloc(l->n_phases, sizeof(*rl->phases));
        if (!rl->phases)
            return -ENOMEM;
        for (size_t p = 0; p < l->n_phases; p++) {
            struct results_phase *ph = &rl->phases[rl->n_phases++];
            ph->kind = scenario_phase_kind_name(l->phases[p].kind);
            ph->agents = calloc(l->phases[p].n_agents, sizeof(*ph->agents));
            if (!ph->agents)
                return -ENOMEM;
            for (size_t k = 0; k < l->phases[p].n_agents; k++)
                ph->agents[ph->n_agents++] = s->agents[l->phases[p].agents[k]].name;
        }
    }
    return 0;
}

/* The thinking a target's requests carried: -1 (not set), 0 or 1. */
static int target_thinking(const struct bench_results_in *in, const struct scenario_target *t)
{
    int thinking = in->thinking_override >= 0                       ? in->thinking_override
                   : t->thinking_forced != SCENARIO_THINKING_UNSET ? t->thinking_forced
                                                                   : t->thinking;
    return thinking == SCENARIO_THINKING_UNSET ? -1 : thinking == 1;
}

static int build_targets(const struct bench_results_in *in, struct results *run)
{
    run->targets = calloc(in->n_targets ? in->n_targets : 1, sizeof(*run->targets));
    if (!run->targets)
        return -ENOMEM;
    for (size_t i = 0; i < in->n_targets; i++) {
        const struct scenario_target *t = in->targets[i];
        struct results_target *rt = &run->targets[run->n_targets++];
        rt->name = t->name;
        rt->label = t->label ? t->label : t->name;
        rt->url = t->url;
        rt->model = t->model;
        rt->thinking = target_thinking(in, t);
        rt->vram_gb = t->vram_gb > 0 ? t->vram_gb : NAN;
        rt->context = t->context ? (double)t->context : NAN;
        rt->sweep_value = t->sweep_value;
        if (t->url)
            continue;
        rt->profile = t->profile;
        rt->calibrated = t->sim.calibrated;
        if (rt->calibrated) {
            const struct sim_profile_calibration *c = &t->sim.calibration;
            rt->calibrated_from = c->from;
            rt->calibrated_target = c->target[0] ? c->target : NULL;
            snprintf(rt->calibrated_levels, sizeof(rt->calibrated_levels), "%s", c->levels);
        }
        double v[SIM_SETTINGS];
        sim_values(&t->sim, v);
        rt->on_sim = true;
        rt->sim = calloc(SIM_SETTINGS, sizeof(*rt->sim));
        if (!rt->sim)
            return -ENOMEM;
        for (size_t k = 0; k < SIM_SETTINGS; k++) {
            rt->sim[k].key = sim_keys[k];
            snprintf(rt->sim[k].value, sizeof(rt->sim[k].value), "%g", v[k]);
        }
        rt->n_sim = SIM_SETTINGS;
    }
    return 0;
}

static char *dup_wall(usec_t wall)
{
    char when[40];
    clock_format_wall(wall, when, sizeof(when));
    return strdup(when);
}

static int build_environment(const struct bench_results_in *in, struct results *run)
{
    struct results_environment *e = &run->env;
    char host[256] = "", os[200] = "";
    gethostname(host, sizeof(host) - 1);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(os, sizeof(os), "%s %s %s", u.sysname, u.release, u.machine);
    run->has_environment = true;
    e->cpus = (double)sysconf(_SC_NPROCESSORS_ONLN);
    e->duration_s = (double)in->duration / 1e6;
    e->host = strdup(host);
    e->os = strdup(os);
    e->started = dup_wall(in->start_wall);
    e->finished = dup_wall(in->start_wall + in->duration);
    e->command = strdup(in->command);
    /* How targets shared the time: simulated ones ran side by side; real
     * servers one at a time, the order rotating each repetition. */
    e->schedule = strdup(in->interleaved ? "interleaved" : "side-by-side");
    if (!e->host || !e->os || !e->started || !e->finished || !e->command || !e->schedule)
        return -ENOMEM;
    return 0;
}

static int build_requests(const struct bench_results_in *in, struct results *run)
{
    const struct scenario *s = in->s;
    size_t gaps = 0;
    for (size_t i = 0; i < in->n_requests; i++)
        gaps += in->requests[i].rec.n_gaps;
    run->requests = calloc(in->n_requests ? in->n_requests : 1, sizeof(*run->requests));
    run->gaps = malloc((gaps ? gaps : 1) * sizeof(*run->gaps));
    if (!run->requests || !run->gaps)
        return -ENOMEM;
    for (size_t i = 0; i < in->n_requests; i++) {
        const struct bench_request *q = &in->requests[i];
        const struct record *r = &q->rec;
        struct results_request *x = &run->requests[run->n_requests++];
        x->target = s->targets[q->target].name;
        x->level = s->levels[q->level].name;
        x->agent = s->agents[q->agent].name;
        x->repetition = q->repetition;
        x->user = s->levels[q->level].users ? (int)q->user : 0;
        x->turn = (int)q->turn;
        x->check = q->checked ? q->check.pass : -1;
        x->ok = r->outcome == RECORD_OK;
        x->start_us = (double)r->t_start;
        x->first_token_ms = rel_ms(r->t_first_token, r->t_start);
        x->last_token_ms = rel_ms(r->t_last_token, r->t_start);
        x->end_ms = rel_ms(r->t_end, r->t_start);
        x->output_tokens = (double)record_output_tokens(r);
        x->gaps_us = run->gaps + run->n_gaps;
        for (size_t k = 0; k < r->n_gaps; k++)
            run->gaps[run->n_gaps++] = r->gaps[k];
        x->n_gaps = r->n_gaps;
    }
    return 0;
}

int bench_results_build(const struct bench_results_in *in, struct results **ret)
{
    struct results *run = calloc(1, sizeof(*run));
    if (!run)
        return -ENOMEM;
    int rc;
    run->complete = in->complete;
    run->tokentap_version = TOKENTAP_VERSION;
    if ((rc = build_environment(in, run)) < 0 || (rc = build_scenario(in->s, run)) < 0 ||
        (rc = build_targets(in, run)) < 0 || (rc = build_cells(in, run)) < 0 ||
        (rc = build_requests(in, run)) < 0 || (rc = bench_capacity_build(in, run)) < 0)
        goto fail;
    *ret = run;
    return 0;
fail:
    results_free(run);
    return rc;
}

/* --- results.json --- */

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
        if (l->users)
            cJSON_AddNumberToObject(o, "users", l->users);
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

/* {"values":[...],"mean","p50","p90","min","max","ci95"} from the values
 * and their summary. */
static cJSON *metric_json(const struct results_values *v)
{
    cJSON *m = cJSON_CreateObject();
    cJSON *vals = cJSON_AddArrayToObject(m, "values");
    for (size_t i = 0; i < v->n; i++)
        cJSON_AddItemToArray(vals, isnan(v->v[i]) ? cJSON_CreateNull()
                                                  : cJSON_CreateNumber(v->v[i]));
    const struct stats_summary s = v->sum;
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

static cJSON *cells_json(const struct results *run)
{
    cJSON *cells = cJSON_CreateArray();
    for (size_t i = 0; i < run->n_cells; i++) {
        const struct results_cell *c = &run->cells[i];
        cJSON *cell = cJSON_CreateObject();
        cJSON_AddStringToObject(cell, "target", c->target);
        cJSON_AddStringToObject(cell, "level", c->level);
        cJSON_AddStringToObject(cell, "agent", c->agent);
        cJSON_AddNumberToObject(cell, "turn", c->turn);
        cJSON_AddNumberToObject(cell, "n", c->n);
        cJSON_AddNumberToObject(cell, "errors", c->errors);
        for (int m = 0; m < RESULTS_CELL_METRICS; m++)
            cJSON_AddItemToObject(cell, results_metric_key(m), metric_json(&c->m[m]));
        cJSON_AddNumberToObject(cell, "pass", c->pass);
        cJSON_AddNumberToObject(cell, "checked", c->checked);
        cJSON_AddItemToArray(cells, cell);
    }
    return cells;
}

static cJSON *level_cells_json(const struct results *run)
{
    cJSON *cells = cJSON_CreateArray();
    for (size_t i = 0; i < run->n_level_cells; i++) {
        const struct results_level_cell *c = &run->level_cells[i];
        cJSON *lc = cJSON_CreateObject();
        cJSON_AddStringToObject(lc, "target", c->target);
        cJSON_AddStringToObject(lc, "level", c->level);
        cJSON_AddNumberToObject(lc, "concurrency", c->concurrency);
        cJSON_AddNumberToObject(lc, "n", c->n);
        cJSON_AddNumberToObject(lc, "errors", c->errors);
        for (int m = 0; m < RESULTS_LEVEL_METRICS; m++)
            cJSON_AddItemToObject(lc, results_level_metric_key(m), metric_json(&c->m[m]));
        cJSON_AddItemToArray(cells, lc);
    }
    return cells;
}

/* {"from", "target", "levels": [...], "requests"} of a calibrated profile, else null. */
static cJSON *calibration_json(const struct scenario_target *t)
{
    if (t->url || !t->sim.calibrated)
        return cJSON_CreateNull();
    const struct sim_profile_calibration *c = &t->sim.calibration;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "from", c->from);
    if (c->target[0])
        cJSON_AddStringToObject(o, "target", c->target);
    else
        cJSON_AddNullToObject(o, "target");
    cJSON *levels = cJSON_AddArrayToObject(o, "levels");
    for (const char *p = c->levels; *p;) {
        const char *comma = strstr(p, ", ");
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char one[SCENARIO_MAX_NAME + 1];
        snprintf(one, sizeof(one), "%.*s", (int)n, p);
        cJSON_AddItemToArray(levels, cJSON_CreateString(one));
        p += n + (comma ? 2 : 0);
    }
    cJSON_AddNumberToObject(o, "requests", c->requests);
    return o;
}

static cJSON *targets_json(const struct bench_results_in *in)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < in->n_targets; i++) {
        const struct scenario_target *t = in->targets[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "label", t->label);
        if (t->url) {
            cJSON_AddStringToObject(o, "url", t->url);
            cJSON_AddNullToObject(o, "sim");
        } else {
            cJSON_AddNullToObject(o, "url");
            cJSON *sim = cJSON_AddObjectToObject(o, "sim");
            double v[SIM_SETTINGS];
            sim_values(&t->sim, v);
            for (size_t k = 0; k < SIM_SETTINGS; k++)
                cJSON_AddNumberToObject(sim, sim_keys[k], v[k]);
        }
        if (t->profile)
            cJSON_AddStringToObject(o, "profile", t->profile);
        else
            cJSON_AddNullToObject(o, "profile");
        cJSON_AddItemToObject(o, "calibration", calibration_json(t));
        if (t->model)
            cJSON_AddStringToObject(o, "model", t->model);
        else
            cJSON_AddNullToObject(o, "model");
        int thinking = target_thinking(in, t);
        if (thinking < 0)
            cJSON_AddNullToObject(o, "thinking");
        else
            cJSON_AddBoolToObject(o, "thinking", thinking);
        if (t->vram_gb > 0)
            cJSON_AddNumberToObject(o, "vram_gb", t->vram_gb);
        else
            cJSON_AddNullToObject(o, "vram_gb");
        if (t->context)
            cJSON_AddNumberToObject(o, "context", (double)t->context);
        else
            cJSON_AddNullToObject(o, "context");
        if (t->sweep_value)
            cJSON_AddStringToObject(o, "sweep_value", t->sweep_value);
        else
            cJSON_AddNullToObject(o, "sweep_value");
        cJSON_AddItemToObject(o, "props", in->props[i] ? cJSON_Duplicate(in->props[i], true)
                                                        : cJSON_CreateNull());
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *environment_json(const struct results_environment *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "host", e->host);
    cJSON_AddStringToObject(o, "os", e->os);
    cJSON_AddNumberToObject(o, "cpus", e->cpus);
    cJSON_AddStringToObject(o, "started", e->started);
    cJSON_AddStringToObject(o, "finished", e->finished);
    cJSON_AddNumberToObject(o, "duration_s", e->duration_s);
    cJSON_AddStringToObject(o, "command", e->command);
    cJSON_AddStringToObject(o, "schedule", e->schedule);
    return o;
}

static cJSON *string_list(const char *const *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

/* The record's own JSON (record_to_json), to go into the tree as it is. */
static cJSON *record_raw(const struct record *r)
{
    struct evbuffer *eb = evbuffer_new();
    if (!eb)
        return NULL;
    record_to_json(r, eb, true);
    cJSON *raw = NULL;
    const char *text = evbuffer_add(eb, "", 1) == 0 ? (const char *)evbuffer_pullup(eb, -1) : NULL;
    if (text)
        raw = cJSON_CreateRaw(text);
    evbuffer_free(eb);
    return raw;
}

/* A request entry: where it belongs, its record and check, and the seed
 * script's own fields for old tooling. NULL for want of memory. */
static cJSON *request_json(const struct scenario *s, const struct bench_request *q)
{
    const struct record *r = &q->rec;
    const struct scenario_check_result *cr = &q->check;
    cJSON *e = cJSON_CreateObject();
    cJSON *rec = record_raw(r);
    if (!e || !rec || !cJSON_AddItemToObject(e, "record", rec)) {
        cJSON_Delete(e);
        cJSON_Delete(rec);
        return NULL;
    }
    if (!cJSON_AddStringToObject(e, "target", s->targets[q->target].name) ||
        !cJSON_AddStringToObject(e, "level", s->levels[q->level].name) ||
        !cJSON_AddNumberToObject(e, "repetition", q->repetition) ||
        (s->levels[q->level].users && !cJSON_AddNumberToObject(e, "user", q->user)) ||
        !cJSON_AddStringToObject(e, "agent", s->agents[q->agent].name) ||
        !cJSON_AddNumberToObject(e, "turn", (double)q->turn) ||
        !cJSON_AddNumberToObject(e, "phase", (double)q->phase))
        goto fail;
    if (q->checked) {
        cJSON *c = cJSON_AddObjectToObject(e, "check");
        cJSON_AddBoolToObject(c, "pass", cr->pass);
        cJSON_AddItemToObject(c, "found", string_list(cr->found, cr->n_found));
        cJSON_AddItemToObject(c, "missing", string_list(cr->missing, cr->n_missing));
        if (cr->reason[0])
            cJSON_AddStringToObject(c, "reason", cr->reason);
        else
            cJSON_AddNullToObject(c, "reason");
    } else {
        cJSON_AddNullToObject(e, "check");
    }
    bool ok = r->outcome == RECORD_OK;
    if (ok && r->t_first_token)
        cJSON_AddNumberToObject(e, "ttft_ms", (double)record_ttft(r) / 1000.0);
    else
        cJSON_AddNullToObject(e, "ttft_ms");
    if (r->t_end)
        cJSON_AddNumberToObject(e, "response_time_ms", (double)record_e2e(r) / 1000.0);
    else
        cJSON_AddNullToObject(e, "response_time_ms");
    cJSON_AddNumberToObject(e, "tokens_generated", (double)record_output_tokens(r));
    double tps = record_decode_tps(r);
    if (tps > 0)
        cJSON_AddNumberToObject(e, "tokens_per_sec", tps);
    else
        cJSON_AddNullToObject(e, "tokens_per_sec");
    if (q->checked) {
        cJSON_AddBoolToObject(e, "verified", cr->pass);
        cJSON_AddItemToObject(e, "keywords_found", string_list(cr->found, cr->n_found));
        cJSON_AddItemToObject(e, "keywords_missing", string_list(cr->missing, cr->n_missing));
    } else {
        cJSON_AddNullToObject(e, "verified");
        cJSON_AddItemToObject(e, "keywords_found", cJSON_CreateArray());
        cJSON_AddItemToObject(e, "keywords_missing", cJSON_CreateArray());
    }
    if (!cJSON_AddStringToObject(e, "content_preview", q->preview))
        goto fail;
    return e;
fail:
    cJSON_Delete(e);
    return NULL;
}

char *bench_results_json(const struct bench_results_in *in, const struct results *run)
{
    cJSON *root = cJSON_CreateObject(), *requests = cJSON_CreateArray();
    char *text = NULL;
    if (!root || !requests)
        goto fail;
    cJSON_AddStringToObject(root, "format", RESULTS_FORMAT);
    cJSON_AddNumberToObject(root, "version", RESULTS_VERSION);
    cJSON_AddStringToObject(root, "tokentap_version", TOKENTAP_VERSION);
    cJSON_AddBoolToObject(root, "complete", in->complete);
    cJSON_AddItemToObject(root, "scenario", scenario_json(in->s));
    if (in->s->sweep_key)
        cJSON_AddStringToObject(root, "sweep", in->s->sweep_key);
    cJSON_AddItemToObject(root, "targets", targets_json(in));
    cJSON_AddItemToObject(root, "environment", environment_json(&run->env));
    for (size_t i = 0; i < in->n_requests; i++) {
        cJSON *e = request_json(in->s, &in->requests[i]);
        if (!e || !cJSON_AddItemToArray(requests, e)) {
            cJSON_Delete(e);
            goto fail;
        }
    }
    cJSON_AddItemToObject(root, "requests", requests);
    requests = NULL;
    cJSON_AddItemToObject(root, "cells", cells_json(run));
    cJSON_AddItemToObject(root, "level_cells", level_cells_json(run));
    if (run->capacity.present)
        cJSON_AddItemToObject(root, "capacity", bench_capacity_json(in, &run->capacity));
    text = cJSON_Print(root);
fail:
    cJSON_Delete(requests);
    cJSON_Delete(root);
    return text;
}
