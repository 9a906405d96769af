/* sim_fit's replay: arrivals through the timing model, as sim_engine runs
 * them (a FIFO queue, shared prefill, batched decode) but in simulated
 * time, without an event loop. sim_fit uses it for the fit's error; the
 * unit test uses it to make requests from known numbers. Pure. */
#include "sim/sim_fit.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* The batch factor with `busy` slots working (sim_engine's). */
static double bf(double b, int busy)
{
    return 1.0 + b * (double)(busy > 1 ? busy - 1 : 0);
}

enum rstate { R_WAIT, R_PREFILL, R_DECODE, R_DONE };

struct rtask {
    enum rstate state;
    double remaining, rate, last_update, due;
    uint32_t produced;
};

struct replay {
    const struct sim_fit_params *p;      /* borrowed */
    const struct sim_fit_arrival *a;     /* borrowed */
    struct sim_fit_times *out;           /* borrowed */
    struct rtask *t;                     /* owned */
    size_t *order;                       /* owned: arrivals by start */
    long *slot;                          /* owned: task per slot, -1 free */
    size_t next, queued;                 /* order[queued..next): arrived, waiting */
    int busy, npf;
};

static double replay_step(const struct replay *r)
{
    return 1e6 / r->p->decode_tps * bf(r->p->batch_slowdown, r->busy);
}

/* Brings every prefill's progress to now at its old rate, then sets the
 * rate the current slots give. */
static void replay_prefills(struct replay *r, double now)
{
    double rate = r->npf ? r->p->prefill_tps / r->npf / bf(r->p->batch_slowdown, r->busy) : 0;
    for (unsigned s = 0; s < r->p->slots; s++) {
        if (r->slot[s] < 0)
            continue;
        struct rtask *t = &r->t[r->slot[s]];
        if (t->state != R_PREFILL)
            continue;
        t->remaining -= t->rate * (now - t->last_update) / 1e6;
        if (t->remaining < 0)
            t->remaining = 0;
        t->last_update = now;
        t->rate = rate;
    }
}

static void replay_dequeue(struct replay *r, double now)
{
    for (unsigned s = 0; s < r->p->slots && r->queued < r->next; s++) {
        if (r->slot[s] >= 0)
            continue;
        size_t i = r->order[r->queued++];
        struct rtask *t = &r->t[i];
        r->slot[s] = (long)i;
        replay_prefills(r, now);
        t->state = R_PREFILL;
        t->remaining = r->a[i].prompt_n ? r->a[i].prompt_n : 1;
        t->last_update = now;
        r->out[i].head = now;
        r->busy++;
        r->npf++;
        replay_prefills(r, now);
    }
}

static void replay_token(struct replay *r, unsigned s, double now)
{
    size_t i = (size_t)r->slot[s];
    struct rtask *t = &r->t[i];
    t->produced++;
    r->out[i].last = now;
    if (t->produced < (r->a[i].output_tokens ? r->a[i].output_tokens : 1)) {
        t->due = now + replay_step(r);
        return;
    }
    t->state = R_DONE;
    r->slot[s] = -1;
    replay_prefills(r, now);
    r->busy--;
    replay_prefills(r, now);
    replay_dequeue(r, now);
}

struct by_start {
    usec_t start;
    size_t i;
};

static int cmp_by_start(const void *x, const void *y)
{
    const struct by_start *p = x, *q = y;
    if (p->start != q->start)
        return (p->start > q->start) - (p->start < q->start);
    return (p->i > q->i) - (p->i < q->i);
}

/* The arrivals' indexes by start (ties in the given order). */
static int sort_order(size_t *order, size_t n, const struct sim_fit_arrival *a)
{
    struct by_start *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        v[i] = (struct by_start){a[i].start, i};
    qsort(v, n, sizeof(*v), cmp_by_start);
    for (size_t i = 0; i < n; i++)
        order[i] = v[i].i;
    free(v);
    return 0;
}

int sim_fit_replay(const struct sim_fit_params *p, const struct sim_fit_arrival *a, size_t n,
                   struct sim_fit_times *ret)
{
    if (!p->slots || !(p->prefill_tps > 0) || !(p->decode_tps > 0) || !(p->batch_slowdown >= 0))
        return -EINVAL;
    struct replay r = {.p = p, .a = a, .out = ret};
    r.t = calloc(n ? n : 1, sizeof(*r.t));
    r.order = malloc((n ? n : 1) * sizeof(*r.order));
    r.slot = malloc(p->slots * sizeof(*r.slot));
    int rc = -ENOMEM;
    if (!r.t || !r.order || !r.slot)
        goto done;
    if (sort_order(r.order, n, a) < 0)
        goto done;
    for (unsigned s = 0; s < p->slots; s++)
        r.slot[s] = -1;
    for (;;) {
        /* The next event: an arrival, the end of a prefill, a token. */
        double now = r.next < n ? (double)a[r.order[r.next]].start : INFINITY;
        int kind = r.next < n ? 0 : -1;
        unsigned at = 0;
        for (unsigned s = 0; s < p->slots; s++) {
            if (r.slot[s] < 0)
                continue;
            const struct rtask *t = &r.t[r.slot[s]];
            double when = t->state == R_PREFILL
                              ? (t->rate > 0 ? t->last_update + t->remaining / t->rate * 1e6 : INFINITY)
                              : t->due;
            if (when < now || (when == now && kind == 0)) {
                now = when;
                kind = t->state == R_PREFILL ? 1 : 2;
                at = s;
            }
        }
        if (kind < 0)
            break;
        if (kind == 0) {
            r.next++;
            replay_dequeue(&r, now);
        } else if (kind == 1) {
            struct rtask *t = &r.t[r.slot[at]];
            replay_prefills(&r, now);
            t->state = R_DECODE;
            r.out[r.slot[at]].first = now;
            r.npf--;
            replay_prefills(&r, now);
            t->produced = 0;
            replay_token(&r, at, now);
        } else {
            replay_token(&r, at, now);
        }
    }
    rc = 0;
done:
    free(r.t);
    free(r.order);
    free(r.slot);
    return rc;
}

