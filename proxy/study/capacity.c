#include "study/capacity.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/stats.h"

/* --- the objective --- */

static const struct {
    const char *key, *label;
    enum capacity_unit unit;
} metrics[CAPACITY_METRICS] = {
    [CAPACITY_TTFT] = {"ttft", "TTFT", CAPACITY_UNIT_MS},
    [CAPACITY_TTFC] = {"ttfc", "TTFC", CAPACITY_UNIT_MS},
    [CAPACITY_E2E] = {"e2e", "turn time", CAPACITY_UNIT_MS},
    [CAPACITY_TOKENS] = {"tokens", "output tokens", CAPACITY_UNIT_COUNT},
    [CAPACITY_DECODE_TPS] = {"decode_tps", "decode tok/s", CAPACITY_UNIT_TPS},
    [CAPACITY_ITL] = {"itl", "ITL", CAPACITY_UNIT_MS},
    [CAPACITY_SLOT_WAIT] = {"slot_wait", "slot wait", CAPACITY_UNIT_MS},
    [CAPACITY_PREFILL] = {"prefill", "prefill", CAPACITY_UNIT_MS},
    [CAPACITY_ERRORS] = {"errors", "errors", CAPACITY_UNIT_SHARE},
    [CAPACITY_PASS] = {"pass", "checks passed", CAPACITY_UNIT_SHARE},
    [CAPACITY_OUTPUT_TPS] = {"output_tps", "output tok/s", CAPACITY_UNIT_TPS},
    [CAPACITY_WALL] = {"wall", "wall time", CAPACITY_UNIT_MS},
    [CAPACITY_TOTAL] = {"total", "total time", CAPACITY_UNIT_MS},
};

static const struct {
    const char *key;
    double p; /* percentile; < 0 for the others */
} stats[] = {
    [CAPACITY_P50] = {"p50", 50}, [CAPACITY_P90] = {"p90", 90}, [CAPACITY_P95] = {"p95", 95},
    [CAPACITY_P99] = {"p99", 99}, [CAPACITY_MEAN] = {"mean", -1}, [CAPACITY_MIN] = {"min", -1},
    [CAPACITY_MAX] = {"max", -1},
};
#define N_STATS (sizeof(stats) / sizeof(stats[0]))

static const char *const ops[] = {[CAPACITY_LT] = "<", [CAPACITY_LE] = "<=",
                                  [CAPACITY_GT] = ">", [CAPACITY_GE] = ">="};

const char *capacity_metric_key(enum capacity_metric m)
{
    return metrics[m].key;
}

const char *capacity_metric_label(enum capacity_metric m)
{
    return metrics[m].label;
}

enum capacity_unit capacity_metric_unit(enum capacity_metric m)
{
    return metrics[m].unit;
}

bool capacity_meets(const struct capacity_objective *o, double v)
{
    if (isnan(v))
        return false;
    switch (o->op) {
    case CAPACITY_LT: return v < o->limit;
    case CAPACITY_LE: return v <= o->limit;
    case CAPACITY_GT: return v > o->limit;
    case CAPACITY_GE: return v >= o->limit;
    }
    return false;
}

/* "2 s", "500 ms", "20 tok/s", "1 %". */
static void format_limit(const struct capacity_objective *o, char *buf, size_t len)
{
    switch (metrics[o->metric].unit) {
    case CAPACITY_UNIT_MS:
        if (o->limit >= 1000)
            snprintf(buf, len, "%g s", o->limit / 1000);
        else
            snprintf(buf, len, "%g ms", o->limit);
        return;
    case CAPACITY_UNIT_TPS: snprintf(buf, len, "%g tok/s", o->limit); return;
    case CAPACITY_UNIT_COUNT: snprintf(buf, len, "%g", o->limit); return;
    case CAPACITY_UNIT_SHARE: snprintf(buf, len, "%g %%", o->limit * 100); return;
    }
}

/* "2s" → 2000 (ms) for a time, "1%" → 0.01 for a share. */
static int parse_limit(const char *v, enum capacity_unit unit, double *ret)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || !isfinite(x) || x < 0)
        return -EINVAL;
    while (*end == ' ')
        end++;
    switch (unit) {
    case CAPACITY_UNIT_MS:
        /* A bare number could be seconds or milliseconds: say which. */
        if (strcmp(end, "s") == 0)
            x *= 1000;
        else if (strcmp(end, "us") == 0)
            x /= 1000;
        else if (strcmp(end, "ms") != 0)
            return -EINVAL;
        break;
    case CAPACITY_UNIT_SHARE:
        if (strcmp(end, "%") == 0)
            x /= 100;
        else if (*end || x > 1)
            return -EINVAL;
        break;
    case CAPACITY_UNIT_TPS:
        if (*end && strcmp(end, "tok/s") != 0)
            return -EINVAL;
        break;
    case CAPACITY_UNIT_COUNT:
        if (*end)
            return -EINVAL;
        break;
    }
    *ret = x;
    return 0;
}

static const char *const units_help[] = {
    [CAPACITY_UNIT_MS] = "a time like 2s or 500ms",
    [CAPACITY_UNIT_TPS] = "tokens per second like 20",
    [CAPACITY_UNIT_COUNT] = "a number",
    [CAPACITY_UNIT_SHARE] = "a share like 1% (or 0.01)",
};

/* "ttft_p95" into metric and stat; a bare metric is its mean. */
static bool parse_name(const char *s, size_t len, enum capacity_metric *m, enum capacity_stat *st)
{
    for (int i = 0; i < CAPACITY_METRICS; i++) {
        size_t k = strlen(metrics[i].key);
        if (len < k || strncmp(s, metrics[i].key, k) != 0)
            continue;
        if (len == k) {
            *m = (enum capacity_metric)i;
            *st = CAPACITY_MEAN;
            return true;
        }
        for (size_t j = 0; s[k] == '_' && j < N_STATS; j++) {
            if (len - k - 1 == strlen(stats[j].key) && strncmp(s + k + 1, stats[j].key, len - k - 1) == 0) {
                *m = (enum capacity_metric)i;
                *st = (enum capacity_stat)j;
                return true;
            }
        }
    }
    return false;
}

static int parse_objective(const char *part, struct capacity_objective *o, struct config_err *err)
{
    static const char *const known = "ttft, ttfc, e2e, tokens, decode_tps, itl, slot_wait, "
                                     "prefill, errors, pass, output_tps, wall, total";
    const char *op = strpbrk(part, "<>");
    if (!op)
        return config_err_set(err, "objective '%s': expected METRIC<LIMIT or METRIC>LIMIT, e.g. "
                                   "ttft_p95<2s",
                              part);
    size_t nlen = (size_t)(op - part);
    while (nlen && part[nlen - 1] == ' ')
        nlen--;
    if (!parse_name(part, nlen, &o->metric, &o->stat))
        return config_err_set(err,
                              "objective '%s': unknown metric '%.*s' (metrics: %s; add _p50, "
                              "_p90, _p95, _p99, _mean, _min or _max)",
                              part, (int)nlen, part, known);
    bool eq = op[1] == '=';
    o->op = op[0] == '<' ? (eq ? CAPACITY_LE : CAPACITY_LT) : (eq ? CAPACITY_GE : CAPACITY_GT);
    const char *v = op + 1 + eq;
    while (*v == ' ')
        v++;
    enum capacity_unit unit = metrics[o->metric].unit;
    if (parse_limit(v, unit, &o->limit) < 0)
        return config_err_set(err, "objective '%s': the limit of %s is %s, not '%s'", part,
                              metrics[o->metric].key, units_help[unit], v);
    snprintf(o->name, sizeof(o->name), "%.*s", (int)nlen, part);
    char lim[32];
    format_limit(o, lim, sizeof(lim));
    if (o->stat == CAPACITY_MEAN && (unit == CAPACITY_UNIT_SHARE || strlen(o->name) ==
                                                                        strlen(metrics[o->metric].key)))
        snprintf(o->text, sizeof(o->text), "%s %s %s", metrics[o->metric].label, ops[o->op], lim);
    else
        snprintf(o->text, sizeof(o->text), "%s %s %s %s", metrics[o->metric].label,
                 stats[o->stat].key, ops[o->op], lim);
    return 0;
}

int capacity_slo_parse(const char *text, struct capacity_slo *ret, struct config_err *err)
{
    struct capacity_slo slo;
    memset(&slo, 0, sizeof(slo));
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (len == 0)
            return config_err_set(err, "an empty objective in '%s' (e.g. \"ttft_p95<2s, "
                                       "errors<1%%\")",
                                  text);
        if (slo.n == CAPACITY_MAX_OBJECTIVES)
            return config_err_set(err, "more than %d objectives in '%s'", CAPACITY_MAX_OBJECTIVES,
                                  text);
        char part[128];
        if (len >= sizeof(part))
            return config_err_set(err, "objective '%.40s...' is too long", p);
        snprintf(part, sizeof(part), "%.*s", (int)len, p);
        int r = parse_objective(part, &slo.o[slo.n], err);
        if (r < 0)
            return r;
        size_t used = strlen(slo.text);
        snprintf(slo.text + used, sizeof(slo.text) - used, "%s%s", slo.n ? ", " : "",
                 slo.o[slo.n].text);
        slo.n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *ret = slo;
    return 0;
}

/* --- the search --- */

/* One repetition's values of one objective. */
struct sample {
    double *v; /* owned */
    size_t n;
};

struct point {
    unsigned users;
    struct sample *reps;  /* owned: n_reps x n objectives, repetition-major */
    size_t n_reps;
    bool judged;          /* r is up to date */
    struct capacity_point_result r;
};

struct capacity_search {
    const struct capacity_slo *slo; /* borrowed */
    struct capacity_settings set;
    struct point *points;           /* owned: by users */
    size_t n;
};

int capacity_search_new(const struct capacity_slo *slo, const struct capacity_settings *set,
                        struct capacity_search **ret)
{
    if (set->max_users < 1 || set->max_users > CAPACITY_MAX_USERS || set->search_reps < 1 ||
        set->max_reps < set->search_reps || set->max_reps > CAPACITY_MAX_REPS || slo->n == 0)
        return -EINVAL;
    struct capacity_search *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->points = calloc(CAPACITY_MAX_POINTS, sizeof(*s->points));
    if (!s->points) {
        free(s);
        return -ENOMEM;
    }
    s->slo = slo;
    s->set = *set;
    *ret = s;
    return 0;
}

void capacity_search_free(struct capacity_search *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        for (size_t k = 0; k < s->points[i].n_reps * s->slo->n; k++)
            free(s->points[i].reps[k].v);
        free(s->points[i].reps);
    }
    free(s->points);
    free(s);
}

static struct point *find(const struct capacity_search *s, unsigned users)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->points[i].users == users)
            return &s->points[i];
    return NULL;
}

int capacity_add(struct capacity_search *s, unsigned users, const double *const *values,
                 const size_t *n)
{
    size_t no = s->slo->n;
    struct point *p = find(s, users);
    if (!p) {
        if (s->n == CAPACITY_MAX_POINTS)
            return -E2BIG;
        size_t at = 0;
        while (at < s->n && s->points[at].users < users)
            at++;
        memmove(&s->points[at + 1], &s->points[at], (s->n - at) * sizeof(*p));
        p = &s->points[at];
        *p = (struct point){.users = users};
        s->n++;
    }
    if (p->n_reps == CAPACITY_MAX_REPS)
        return -E2BIG;
    struct sample *reps = realloc(p->reps, (p->n_reps + 1) * no * sizeof(*reps));
    if (!reps)
        return -ENOMEM;
    p->reps = reps;
    struct sample *row = &reps[p->n_reps * no];
    for (size_t i = 0; i < no; i++) {
        row[i].n = n[i];
        row[i].v = malloc((n[i] ? n[i] : 1) * sizeof(double));
        if (!row[i].v) {
            for (size_t k = 0; k < i; k++)
                free(row[k].v);
            return -ENOMEM;
        }
        if (n[i])
            memcpy(row[i].v, values[i], n[i] * sizeof(double));
    }
    p->n_reps++;
    p->judged = false;
    return 0;
}

/* --- judging a count --- */

/* The objective's statistic over the values of the chosen repetitions
 * (pick[0..k), indexes into p's repetitions); NaN when there are none. */
static double statistic(const struct capacity_search *s, const struct point *p, size_t obj,
                        const size_t *pick, size_t k, double *scratch)
{
    size_t no = s->slo->n, n = 0;
    for (size_t j = 0; j < k; j++) {
        const struct sample *x = &p->reps[pick[j] * no + obj];
        memcpy(scratch + n, x->v, x->n * sizeof(double));
        n += x->n;
    }
    if (n == 0)
        return NAN;
    const struct capacity_objective *o = &s->slo->o[obj];
    double v = NAN;
    switch (o->stat) {
    case CAPACITY_MEAN: return stats_mean(scratch, n);
    case CAPACITY_MIN: return stats_min(scratch, n);
    case CAPACITY_MAX: return stats_max(scratch, n);
    default:
        /* (-ENOMEM leaves v NaN: the count does not pass on it) */
        stats_percentile(scratch, n, stats[o->stat].p, &v);
        return v;
    }
}

/* Every repetition's values could be picked at once, each of them. */
static size_t scratch_size(const struct capacity_search *s, const struct point *p)
{
    size_t most = 0, no = s->slo->n;
    for (size_t j = 0; j < p->n_reps * no; j++)
        if (p->reps[j].n > most)
            most = p->reps[j].n;
    return (most ? most : 1) * p->n_reps;
}

static int judge(const struct capacity_search *s, struct point *p)
{
    if (p->judged)
        return 0;
    size_t no = s->slo->n, k = p->n_reps;
    double *scratch = malloc(scratch_size(s, p) * sizeof(double));
    double *dist = malloc(CAPACITY_RESAMPLES * sizeof(double));
    size_t *pick = malloc((k ? k : 1) * sizeof(size_t));
    if (!scratch || !dist || !pick) {
        free(scratch);
        free(dist);
        free(pick);
        return -ENOMEM;
    }
    struct capacity_point_result *r = &p->r;
    *r = (struct capacity_point_result){.users = p->users, .reps = k, .pass = true};
    bool all_sure = true, failed_sure = false;
    for (size_t o = 0; o < no; o++) {
        struct capacity_judgement *j = &r->j[o];
        const struct capacity_objective *obj = &s->slo->o[o];
        for (size_t i = 0; i < k; i++)
            pick[i] = i;
        j->value = statistic(s, p, o, pick, k, scratch);
        j->pass = capacity_meets(obj, j->value);
        j->lo = j->hi = NAN;
        if (k >= 2) {
            struct stats_rng g = {STATS_BOOTSTRAP_SEED + o};
            for (size_t b = 0; b < CAPACITY_RESAMPLES; b++) {
                for (size_t i = 0; i < k; i++)
                    pick[i] = stats_rng_below(&g, k);
                dist[b] = statistic(s, p, o, pick, k, scratch);
            }
            stats_percentile(dist, CAPACITY_RESAMPLES, 2.5, &j->lo);
            stats_percentile(dist, CAPACITY_RESAMPLES, 97.5, &j->hi);
            /* A NaN resample (a repetition without values) counts as
             * failing: both ends must agree with the verdict. */
            bool lo_ok = capacity_meets(obj, j->lo), hi_ok = capacity_meets(obj, j->hi);
            j->significant = !isnan(j->lo) && lo_ok == j->pass && hi_ok == j->pass;
        }
        r->pass = r->pass && j->pass;
        all_sure = all_sure && j->significant;
        failed_sure = failed_sure || (!j->pass && j->significant);
    }
    /* Holding is sure when every objective surely holds; breaking, when
     * one surely breaks. */
    r->significant = r->pass ? all_sure : failed_sure;
    p->judged = true;
    free(scratch);
    free(dist);
    free(pick);
    return 0;
}

static int judge_all(const struct capacity_search *s)
{
    for (size_t i = 0; i < s->n; i++) {
        int r = judge(s, &s->points[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The lowest count that broke, and the highest that held below it (-1
 * each when none). */
static void boundary(const struct capacity_search *s, long *ret_bad, long *ret_good)
{
    long bad = -1, good = -1;
    for (size_t i = 0; i < s->n && bad < 0; i++) {
        if (!s->points[i].r.pass)
            bad = (long)i;
        else
            good = (long)i;
    }
    *ret_bad = bad;
    *ret_good = good;
}

/* A boundary count needs more repetitions: too few for a CI, or a verdict
 * its CI does not back yet. */
static bool needs_more(const struct capacity_search *s, const struct point *p)
{
    if (p->n_reps >= s->set.max_reps)
        return false;
    return p->n_reps < s->set.boundary_reps || !p->r.significant;
}

int capacity_next(struct capacity_search *s, unsigned *ret_users)
{
    /* Every count gets its first repetitions before it is judged. */
    for (size_t i = 0; i < s->n; i++) {
        if (s->points[i].n_reps < s->set.search_reps) {
            *ret_users = s->points[i].users;
            return 1;
        }
    }
    if (s->n == 0) {
        *ret_users = 1;
        return 1;
    }
    int r = judge_all(s);
    if (r < 0)
        return r;
    long bad, good;
    boundary(s, &bad, &good);
    if (bad < 0) {
        /* Never broke: double, up to the limit. */
        unsigned top = s->points[s->n - 1].users;
        if (top < s->set.max_users) {
            *ret_users = top * 2 < s->set.max_users ? top * 2 : s->set.max_users;
            return 1;
        }
        if (needs_more(s, &s->points[s->n - 1])) {
            *ret_users = top;
            return 1;
        }
        return 0;
    }
    unsigned hi = s->points[bad].users, lo = good >= 0 ? s->points[good].users : 0;
    if (hi - lo > 1) {
        *ret_users = lo + (hi - lo) / 2;
        return 1;
    }
    const struct point *edge[2] = {good >= 0 ? &s->points[good] : NULL, &s->points[bad]};
    for (int e = 0; e < 2; e++) {
        if (edge[e] && needs_more(s, edge[e])) {
            *ret_users = edge[e]->users;
            return 1;
        }
    }
    return 0;
}

/* --- the answer --- */

/* The capacity the judgements say: the count below the first that broke. */
static unsigned capacity_of(const bool *pass, const unsigned *users, size_t n)
{
    unsigned cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (!pass[i])
            return cap;
        cap = users[i];
    }
    return cap;
}

/* Resamples every count's repetitions and judges again, CAPACITY_RESAMPLES
 * times: the spread of the capacity this gives is its CI. */
static int capacity_ci(const struct capacity_search *s, unsigned *ret_lo, unsigned *ret_hi)
{
    size_t no = s->slo->n, most = 1;
    for (size_t i = 0; i < s->n; i++) {
        size_t need = scratch_size(s, &s->points[i]);
        most = need > most ? need : most;
    }
    double *scratch = malloc(most * sizeof(double));
    double *caps = malloc(CAPACITY_RESAMPLES * sizeof(double));
    size_t *pick = malloc(CAPACITY_MAX_REPS * sizeof(size_t));
    bool pass[CAPACITY_MAX_POINTS];
    unsigned users[CAPACITY_MAX_POINTS];
    int rc = -ENOMEM;
    if (!scratch || !caps || !pick)
        goto done;
    struct stats_rng g = {STATS_BOOTSTRAP_SEED};
    for (size_t i = 0; i < s->n; i++)
        users[i] = s->points[i].users;
    for (size_t b = 0; b < CAPACITY_RESAMPLES; b++) {
        size_t i;
        for (i = 0; i < s->n; i++) {
            const struct point *p = &s->points[i];
            for (size_t k = 0; k < p->n_reps; k++)
                pick[k] = stats_rng_below(&g, p->n_reps);
            pass[i] = true;
            for (size_t o = 0; o < no && pass[i]; o++)
                pass[i] = capacity_meets(&s->slo->o[o],
                                         statistic(s, p, o, pick, p->n_reps, scratch));
            if (!pass[i])
                break; /* counts above the first that broke do not matter */
        }
        caps[b] = capacity_of(pass, users, i < s->n ? i + 1 : s->n);
    }
    double lo, hi;
    stats_percentile(caps, CAPACITY_RESAMPLES, 2.5, &lo);
    stats_percentile(caps, CAPACITY_RESAMPLES, 97.5, &hi);
    /* Counts are whole: the interval covers the counts it touches. */
    *ret_lo = (unsigned)floor(lo);
    *ret_hi = (unsigned)ceil(hi);
    rc = 0;
done:
    free(scratch);
    free(caps);
    free(pick);
    return rc;
}

int capacity_answer(const struct capacity_search *s, struct capacity_answer *ret)
{
    struct capacity_answer a = {.bound = CAPACITY_NONE, .broke = -1};
    int rc = judge_all(s);
    if (rc < 0)
        return rc;
    a.points = calloc(s->n ? s->n : 1, sizeof(*a.points));
    if (!a.points)
        return -ENOMEM;
    for (size_t i = 0; i < s->n; i++)
        a.points[a.n_points++] = s->points[i].r;
    long bad, good;
    boundary(s, &bad, &good);
    if (s->n == 0)
        goto done;
    if (bad < 0) {
        a.bound = CAPACITY_AT_LEAST;
        a.capacity = s->points[s->n - 1].users;
    } else {
        a.bound = good >= 0 ? CAPACITY_FOUND : CAPACITY_BELOW_ONE;
        a.capacity = good >= 0 ? s->points[good].users : 0;
        a.broke_at = s->points[bad].users;
        /* The objective furthest past its limit broke first. */
        double worst = -1;
        for (size_t o = 0; o < s->slo->n; o++) {
            const struct capacity_judgement *j = &s->points[bad].r.j[o];
            double lim = s->slo->o[o].limit;
            double by = isnan(j->value) ? INFINITY : fabs(j->value - lim) / (lim != 0 ? fabs(lim) : 1);
            if (!j->pass && by > worst) {
                worst = by;
                a.broke = (int)o;
            }
        }
    }
    rc = capacity_ci(s, &a.ci_lo, &a.ci_hi);
    if (rc < 0) {
        free(a.points);
        return rc;
    }
done:
    *ret = a;
    return 0;
}

void capacity_answer_finish(struct capacity_answer *a)
{
    free(a->points);
    a->points = NULL;
    a->n_points = 0;
}
