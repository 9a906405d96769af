#include "sim/sim_fit.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/stats.h"

/* A request waits for a slot when its head comes this long after its
 * start, and 4 times the typical (25th percentile) wait: a server that
 * always takes a few ms to send its head has not queued anything. */
#define WAIT_MIN_US 2000.0
/* A busy count held for less than this is a race between two clients'
 * reads (one slot freed, the next request's head seen first), not a slot. */
#define BUSY_MIN_US 1000.0
/* batch_slowdown is searched between 0 and this. */
#define SLOWDOWN_MAX 10.0

static double bf(double b, int busy)
{
    return 1.0 + b * (double)(busy > 1 ? busy - 1 : 0);
}

/* --- one server's timeline: slots busy, prompts in prefill --- */

struct seg {
    double t;      /* from t on (until the next segment) */
    int busy, npf; /* slots busy (head to end), prompts in prefill (head to first token) */
};

struct timeline {
    struct seg *s; /* owned, by time */
    size_t n;
};

struct event {
    double t;
    int dbusy, dnpf;
};

static int cmp_event(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->t != y->t)
        return (x->t > y->t) - (x->t < y->t);
    /* Ends before starts at the same moment: one slot, not two. */
    int dx = x->dbusy + x->dnpf, dy = y->dbusy + y->dnpf;
    return (dx > dy) - (dx < dy);
}

/* The timeline of group g's requests that have a head and an end. */
static int timeline_build(const struct sim_fit_request *r, size_t n, unsigned g,
                          struct timeline *tl)
{
    size_t k = 0;
    struct event *ev = malloc((4 * n + 1) * sizeof(*ev));
    if (!ev)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (r[i].group != g || !r[i].head || !r[i].end || r[i].end < r[i].head)
            continue;
        usec_t pf_end = r[i].first && r[i].first <= r[i].end ? r[i].first : r[i].end;
        ev[k++] = (struct event){(double)r[i].head, 1, 0};
        ev[k++] = (struct event){(double)r[i].end, -1, 0};
        ev[k++] = (struct event){(double)r[i].head, 0, 1};
        ev[k++] = (struct event){(double)pf_end, 0, -1};
    }
    qsort(ev, k, sizeof(*ev), cmp_event);
    tl->s = malloc((k + 1) * sizeof(*tl->s));
    tl->n = 0;
    if (!tl->s) {
        free(ev);
        return -ENOMEM;
    }
    int busy = 0, npf = 0;
    for (size_t i = 0; i < k; i++) {
        busy += ev[i].dbusy;
        npf += ev[i].dnpf;
        if (i + 1 < k && ev[i + 1].t == ev[i].t)
            continue;
        tl->s[tl->n++] = (struct seg){ev[i].t, busy, npf};
    }
    free(ev);
    return 0;
}

/* The segment holding t, or -1 before the first. */
static long locate(const struct timeline *tl, double t)
{
    long lo = 0, hi = (long)tl->n - 1, at = -1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (tl->s[mid].t <= t) {
            at = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return at;
}

static int busy_at(const struct timeline *tl, double t)
{
    long i = locate(tl, t);
    return i < 0 ? 0 : tl->s[i].busy;
}

/* Calls fn(arg, seg, duration) for each piece of [a, b). */
typedef void piece_cb(void *arg, const struct seg *s, double dt);

static void walk(const struct timeline *tl, double a, double b, piece_cb *fn, void *arg)
{
    long i = locate(tl, a);
    struct seg before = {a, 0, 0};
    while (a < b) {
        const struct seg *s = i < 0 ? &before : &tl->s[i];
        double next = (size_t)(i + 1) < tl->n ? tl->s[i + 1].t : b;
        if (next > b)
            next = b;
        if (next > a)
            fn(arg, s, next - a);
        a = next;
        i++;
    }
}

/* --- decode: steps = decode_tps x sum over busy levels of time / factor --- */

struct tau {
    int k;     /* slots busy */
    double us; /* time spent decoding at k */
};

struct decode_obs {
    size_t first, n; /* its taus */
    double steps;
};

struct decode_set {
    struct decode_obs *o; /* owned */
    size_t n;
    struct tau *t;        /* owned */
    size_t nt, cap;
    double *acc;          /* scratch: time per busy level of one request */
    int kmax;
};

static void add_time(void *arg, const struct seg *s, double dt)
{
    struct decode_set *d = arg;
    int k = s->busy < 1 ? 1 : s->busy > d->kmax ? d->kmax : s->busy;
    d->acc[k] += dt;
}

/* One request's taus from d->acc (then cleared). */
static int flush_taus(struct decode_set *d, double steps)
{
    size_t first = d->nt;
    for (int k = 1; k <= d->kmax; k++) {
        if (d->acc[k] <= 0)
            continue;
        if (d->nt == d->cap) {
            size_t c = d->cap ? d->cap * 2 : 256;
            struct tau *t = realloc(d->t, c * sizeof(*t));
            if (!t)
                return -ENOMEM;
            d->t = t;
            d->cap = c;
        }
        d->t[d->nt++] = (struct tau){k, d->acc[k]};
        d->acc[k] = 0;
    }
    d->o[d->n++] = (struct decode_obs){first, d->nt - first, steps};
    return 0;
}

/* X = sum of time / batch factor, seconds. */
static double decode_x(const struct decode_set *d, const struct decode_obs *o, double b)
{
    double x = 0;
    for (size_t j = 0; j < o->n; j++)
        x += d->t[o->first + j].us / bf(b, d->t[o->first + j].k);
    return x / 1e6;
}

/* Least squares decode_tps for b, and the residual sum. */
static double decode_cost(const struct decode_set *d, double b, double *ret_tps)
{
    double sxx = 0, sxy = 0, syy = 0;
    for (size_t i = 0; i < d->n; i++) {
        double x = decode_x(d, &d->o[i], b), y = d->o[i].steps;
        sxx += x * x;
        sxy += x * y;
        syy += y * y;
    }
    double tps = sxx > 0 ? sxy / sxx : NAN;
    *ret_tps = tps;
    return syy - 2 * tps * sxy + tps * tps * sxx;
}

/* The batch_slowdown with the least residual: a scan on a log grid, then
 * golden sections between the best point's neighbours. */
static double search_slowdown(const struct decode_set *d)
{
    enum { GRID = 201 };
    double grid[GRID + 1], cost[GRID + 1], tps;
    grid[0] = 0;
    for (int i = 0; i < GRID; i++)
        grid[i + 1] = SLOWDOWN_MAX * pow(10, -4.0 + 4.0 * i / (GRID - 1));
    int best = 0;
    for (int i = 0; i <= GRID; i++) {
        cost[i] = decode_cost(d, grid[i], &tps);
        if (cost[i] < cost[best])
            best = i;
    }
    double lo = grid[best > 0 ? best - 1 : 0], hi = grid[best < GRID ? best + 1 : GRID];
    const double phi = (sqrt(5.0) - 1) / 2;
    double x1 = hi - phi * (hi - lo), x2 = lo + phi * (hi - lo);
    double f1 = decode_cost(d, x1, &tps), f2 = decode_cost(d, x2, &tps);
    for (int it = 0; it < 80 && hi - lo > 1e-9; it++) {
        if (f1 < f2) {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - phi * (hi - lo);
            f1 = decode_cost(d, x1, &tps);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + phi * (hi - lo);
            f2 = decode_cost(d, x2, &tps);
        }
    }
    double b = (lo + hi) / 2;
    return decode_cost(d, b, &tps) <= cost[best] ? b : grid[best];
}

/* --- prefill: prompt_n = prefill_tps x integral of dt / (npf x factor) --- */

struct prefill_acc {
    double b, x; /* x in seconds */
};

static void add_share(void *arg, const struct seg *s, double dt)
{
    struct prefill_acc *p = arg;
    int npf = s->npf < 1 ? 1 : s->npf;
    p->x += dt / 1e6 / ((double)npf * bf(p->b, s->busy));
}

/* --- slots --- */

struct busy_hist {
    double *us; /* time per busy level, kmax + 1 */
    int kmax;
};

static void add_busy(void *arg, const struct seg *s, double dt)
{
    struct busy_hist *h = arg;
    int k = s->busy < 0 ? 0 : s->busy > h->kmax ? h->kmax : s->busy;
    h->us[k] += dt;
}

/* --- the fit --- */

struct fit {
    const struct sim_fit_request *r; /* borrowed */
    size_t n;
    struct timeline *tl; /* owned: one per group */
    unsigned groups;
    int kmax;            /* the most slots busy anywhere */
};

static void fit_free(struct fit *f)
{
    for (unsigned g = 0; f->tl && g < f->groups; g++)
        free(f->tl[g].s);
    free(f->tl);
}

static bool usable(const struct sim_fit_request *r)
{
    return r->ok && r->start && r->head >= r->start && r->first >= r->head && r->end >= r->first;
}

static int build_timelines(struct fit *f)
{
    unsigned gmax = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->r[i].group > gmax)
            gmax = f->r[i].group;
    if (gmax >= SIM_FIT_MAX_REQUESTS)
        return -E2BIG;
    f->groups = gmax + 1;
    f->tl = calloc(f->groups, sizeof(*f->tl));
    if (!f->tl)
        return -ENOMEM;
    f->kmax = 1;
    for (unsigned g = 0; g < f->groups; g++) {
        int rc = timeline_build(f->r, f->n, g, &f->tl[g]);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < f->tl[g].n; i++)
            if (f->tl[g].s[i].busy > f->kmax)
                f->kmax = f->tl[g].s[i].busy;
    }
    return 0;
}

static int collect_decode(const struct fit *f, struct decode_set *d, size_t *ret_gaps)
{
    d->kmax = f->kmax;
    d->o = malloc((f->n ? f->n : 1) * sizeof(*d->o));
    d->acc = calloc((size_t)f->kmax + 2, sizeof(*d->acc));
    if (!d->o || !d->acc)
        return -ENOMEM;
    for (size_t i = 0; i < f->n; i++) {
        const struct sim_fit_request *r = &f->r[i];
        if (!usable(r) || r->output_tokens < 2 || r->last <= r->first)
            continue;
        const struct timeline *tl = &f->tl[r->group];
        if (r->gaps && r->n_gaps == r->output_tokens - 1) {
            /* Each step took its time at the busy count when it began. */
            double t = (double)r->first;
            for (size_t k = 0; k < r->n_gaps; k++) {
                int busy = busy_at(tl, t);
                struct seg s = {t, busy, 0};
                add_time(d, &s, (double)r->gaps[k]);
                t += (double)r->gaps[k];
            }
            *ret_gaps += r->n_gaps;
        } else {
            walk(tl, (double)r->first, (double)r->last, add_time, d);
        }
        if (flush_taus(d, (double)(r->output_tokens - 1)) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Whether some decode time was spent beside other busy slots (1 % of it
 * at least): only then does the data say anything about batch_slowdown. */
static bool slowdown_seen(const struct decode_set *d)
{
    double all = 0, shared = 0;
    for (size_t i = 0; i < d->nt; i++) {
        all += d->t[i].us;
        if (d->t[i].k > 1)
            shared += d->t[i].us;
    }
    return all > 0 && shared > 0.01 * all;
}

static double fit_prefill(const struct fit *f, double b, size_t *ret_n)
{
    double sxx = 0, sxy = 0;
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct sim_fit_request *r = &f->r[i];
        if (!usable(r) || !r->prompt_n || r->first <= r->head)
            continue;
        struct prefill_acc p = {b, 0};
        walk(&f->tl[r->group], (double)r->head, (double)r->first, add_share, &p);
        sxx += p.x * p.x;
        sxy += p.x * (double)r->prompt_n;
        n++;
    }
    *ret_n = n;
    return sxx > 0 ? sxy / sxx : NAN;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The slots: busy while requests waited for one, else the most seen busy. */
static int fit_slots(const struct fit *f, struct sim_fit_result *res)
{
    struct busy_hist h = {calloc((size_t)f->kmax + 1, sizeof(double)), f->kmax};
    double *waits = malloc((f->n ? f->n : 1) * sizeof(*waits));
    size_t nw = 0;
    if (!h.us || !waits) {
        free(h.us);
        free(waits);
        return -ENOMEM;
    }
    for (size_t i = 0; i < f->n; i++)
        if (f->r[i].head >= f->r[i].start && f->r[i].start)
            waits[nw++] = (double)(f->r[i].head - f->r[i].start);
    double threshold = WAIT_MIN_US;
    if (nw) {
        qsort(waits, nw, sizeof(*waits), cmp_double);
        if (4 * waits[nw / 4] > threshold)
            threshold = 4 * waits[nw / 4];
    }
    for (size_t i = 0; i < f->n; i++) {
        const struct sim_fit_request *r = &f->r[i];
        if (!r->start || r->head < r->start || (double)(r->head - r->start) < threshold)
            continue;
        res->n_waited++;
        walk(&f->tl[r->group], (double)r->start, (double)r->head, add_busy, &h);
    }
    int mode = 0;
    for (int k = 1; k <= f->kmax; k++)
        if (h.us[k] > h.us[mode])
            mode = k;
    /* The most slots busy for a while, over all the runs. */
    memset(h.us, 0, ((size_t)f->kmax + 1) * sizeof(double));
    for (unsigned g = 0; g < f->groups; g++)
        for (size_t i = 0; i + 1 < f->tl[g].n; i++)
            add_busy(&h, &f->tl[g].s[i], f->tl[g].s[i + 1].t - f->tl[g].s[i].t);
    res->busy_max = 1;
    for (int k = 1; k <= f->kmax; k++)
        if (h.us[k] >= BUSY_MIN_US)
            res->busy_max = (unsigned)k;
    if (res->n_waited && mode >= 1) {
        res->p.slots = (unsigned)mode;
        res->slots_from = SIM_FIT_SLOTS_QUEUE;
    } else {
        res->p.slots = res->busy_max;
        res->slots_from = SIM_FIT_SLOTS_SEEN;
    }
    free(h.us);
    free(waits);
    return 0;
}

/* --- the error: the requests replayed with the fitted numbers --- */

struct err_values {
    double *meas, *pred; /* owned, n of each */
    size_t n;
};

static void err_add(struct err_values *e, double meas, double pred)
{
    if (!isfinite(meas) || !isfinite(pred))
        return;
    e->meas[e->n] = meas;
    e->pred[e->n] = pred;
    e->n++;
}

static int err_summary(struct err_values *e, struct sim_fit_error *ret)
{
    *ret = (struct sim_fit_error){.n = e->n, .measured_p50 = NAN, .predicted_p50 = NAN,
                                  .p50_error = NAN, .median_abs = NAN};
    if (e->n == 0)
        return 0;
    double *d = malloc(e->n * sizeof(*d));
    if (!d)
        return -ENOMEM;
    for (size_t i = 0; i < e->n; i++)
        d[i] = fabs(e->pred[i] - e->meas[i]);
    int rc = stats_percentile(e->meas, e->n, 50, &ret->measured_p50);
    if (rc == 0)
        rc = stats_percentile(e->pred, e->n, 50, &ret->predicted_p50);
    if (rc == 0)
        rc = stats_percentile(d, e->n, 50, &ret->median_abs);
    free(d);
    if (rc < 0)
        return rc;
    if (ret->measured_p50 != 0)
        ret->p50_error = (ret->predicted_p50 - ret->measured_p50) / ret->measured_p50;
    return 0;
}

static double tps(uint32_t tokens, double first, double last)
{
    return tokens >= 2 && last > first ? (double)(tokens - 1) / ((last - first) / 1e6) : NAN;
}

static int fit_error(const struct fit *f, struct sim_fit_result *res)
{
    struct err_values e[SIM_FIT_METRICS] = {{0}};
    struct sim_fit_arrival *a = malloc((f->n ? f->n : 1) * sizeof(*a));
    struct sim_fit_times *t = malloc((f->n ? f->n : 1) * sizeof(*t));
    size_t *idx = malloc((f->n ? f->n : 1) * sizeof(*idx));
    int rc = a && t && idx ? 0 : -ENOMEM;
    for (int m = 0; m < SIM_FIT_METRICS && rc == 0; m++) {
        e[m].meas = malloc((f->n ? f->n : 1) * sizeof(double));
        e[m].pred = malloc((f->n ? f->n : 1) * sizeof(double));
        if (!e[m].meas || !e[m].pred)
            rc = -ENOMEM;
    }
    for (unsigned g = 0; g < f->groups && rc == 0; g++) {
        size_t k = 0;
        for (size_t i = 0; i < f->n; i++) {
            const struct sim_fit_request *r = &f->r[i];
            if (r->group != g || !usable(r) || !r->prompt_n || !r->output_tokens)
                continue;
            a[k] = (struct sim_fit_arrival){r->start, r->prompt_n, r->output_tokens};
            idx[k++] = i;
        }
        if (k == 0)
            continue;
        rc = sim_fit_replay(&res->p, a, k, t);
        for (size_t j = 0; j < k && rc == 0; j++) {
            const struct sim_fit_request *r = &f->r[idx[j]];
            double s = (double)r->start;
            err_add(&e[SIM_FIT_TTFT], (double)(r->first - r->start) / 1e3, (t[j].first - s) / 1e3);
            err_add(&e[SIM_FIT_SLOT_WAIT], (double)(r->head - r->start) / 1e3, (t[j].head - s) / 1e3);
            err_add(&e[SIM_FIT_PREFILL], (double)(r->first - r->head) / 1e3,
                    (t[j].first - t[j].head) / 1e3);
            err_add(&e[SIM_FIT_DECODE_TPS], tps(r->output_tokens, (double)r->first, (double)r->last),
                    tps(r->output_tokens, t[j].first, t[j].last));
            err_add(&e[SIM_FIT_E2E], (double)(r->end - r->start) / 1e3, (t[j].last - s) / 1e3);
        }
    }
    for (int m = 0; m < SIM_FIT_METRICS && rc == 0; m++)
        rc = err_summary(&e[m], &res->err[m]);
    for (int m = 0; m < SIM_FIT_METRICS; m++) {
        free(e[m].meas);
        free(e[m].pred);
    }
    free(a);
    free(t);
    free(idx);
    return rc;
}

int sim_fit(const struct sim_fit_request *reqs, size_t n, const struct sim_fit_options *o,
            struct sim_fit_result *ret)
{
    if (n > SIM_FIT_MAX_REQUESTS)
        return -E2BIG;
    struct fit f = {.r = reqs, .n = n};
    struct decode_set d = {0};
    struct sim_fit_result res = {.n_requests = n};
    int rc = build_timelines(&f);
    if (rc == 0)
        rc = collect_decode(&f, &d, &res.n_gaps);
    if (rc < 0)
        goto done;
    res.n_decode = d.n;
    res.slowdown_measured = slowdown_seen(&d);
    res.p.batch_slowdown = res.slowdown_measured ? search_slowdown(&d) : o->default_slowdown;
    decode_cost(&d, res.p.batch_slowdown, &res.p.decode_tps);
    res.p.prefill_tps = fit_prefill(&f, res.p.batch_slowdown, &res.n_prefill);
    if (!(res.p.decode_tps > 0) || !(res.p.prefill_tps > 0)) {
        rc = -ENODATA;
        goto done;
    }
    rc = fit_slots(&f, &res);
    if (rc < 0)
        goto done;
    if (o->slots) {
        res.p.slots = o->slots;
        res.slots_from = SIM_FIT_SLOTS_GIVEN;
    }
    for (size_t i = 0; i < n; i++) {
        if (!reqs[i].ok)
            continue;
        res.prompt_tokens += reqs[i].prompt_tokens;
        res.cached_tokens += reqs[i].cached_tokens;
        res.cache_hits += reqs[i].cached_tokens > 0;
    }
    rc = fit_error(&f, &res);
    if (rc == 0)
        *ret = res;
done:
    free(d.o);
    free(d.t);
    free(d.acc);
    fit_free(&f);
    return rc;
}

/* --- records in --- */

static const cJSON *get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static double num(const cJSON *j, const char *k)
{
    const cJSON *v = get(j, k);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

static uint32_t count(const cJSON *j, const char *k)
{
    double v = num(j, k);
    return v >= 0 && v <= UINT32_MAX ? (uint32_t)v : 0;
}

/* start + ms after it, µs; 0 when the offset is unknown. */
static usec_t at(usec_t start, const cJSON *t, const char *k)
{
    double ms = num(t, k);
    return ms >= 0 && ms < 1e12 ? start + (usec_t)llround(ms * 1000) : 0;
}

int sim_fit_input_add(struct sim_fit_input *in, const cJSON *rec, unsigned group)
{
    const cJSON *t = get(rec, "t");
    double start = num(t, "start_us");
    if (!cJSON_IsObject(rec) || !(start > 0) || start > 1e18) {
        in->skipped++;
        return 0;
    }
    if (in->n == SIM_FIT_MAX_REQUESTS)
        return -E2BIG;
    if (in->n == in->cap) {
        size_t c = in->cap ? in->cap * 2 : 256;
        struct sim_fit_request *r = realloc(in->reqs, c * sizeof(*r));
        if (!r)
            return -ENOMEM;
        in->reqs = r;
        in->cap = c;
    }
    struct sim_fit_request q = {.group = group, .start = (usec_t)start};
    const cJSON *outcome = get(rec, "outcome");
    q.ok = cJSON_IsString(outcome) && strcmp(outcome->valuestring, "ok") == 0 &&
           cJSON_IsTrue(get(rec, "stream"));
    q.head = at(q.start, t, "response_head");
    q.first = at(q.start, t, "first_token");
    q.last = at(q.start, t, "last_token");
    q.end = at(q.start, t, "end");
    q.prompt_tokens = count(rec, "prompt_tokens");
    q.cached_tokens = count(rec, "cached_tokens");
    q.prompt_n = count(rec, "server_prompt_n");
    if (!q.prompt_n && q.prompt_tokens > q.cached_tokens)
        q.prompt_n = q.prompt_tokens - q.cached_tokens;
    q.output_tokens = count(rec, "output_tokens");
    const cJSON *gaps = get(rec, "gaps_us");
    int ng = cJSON_IsArray(gaps) ? cJSON_GetArraySize(gaps) : 0;
    if (ng > 0 && ng <= SIM_FIT_MAX_GAPS) {
        q.gaps = malloc((size_t)ng * sizeof(*q.gaps));
        if (!q.gaps)
            return -ENOMEM;
        const cJSON *g;
        cJSON_ArrayForEach(g, gaps)
        {
            if (!cJSON_IsNumber(g) || !(g->valuedouble >= 0) || g->valuedouble > UINT32_MAX) {
                /* A gap that is not a number: the gaps cannot be lined up. */
                free(q.gaps);
                q.gaps = NULL;
                q.n_gaps = 0;
                break;
            }
            q.gaps[q.n_gaps++] = (uint32_t)g->valuedouble;
        }
    }
    in->reqs[in->n++] = q;
    return 0;
}

void sim_fit_input_finish(struct sim_fit_input *in)
{
    for (size_t i = 0; i < in->n; i++)
        free(in->reqs[i].gaps);
    free(in->reqs);
    *in = (struct sim_fit_input){0};
}
