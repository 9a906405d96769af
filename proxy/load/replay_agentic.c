/* replay_agentic: `tokentap replay` of agentic traces. Reads one trace or
 * a directory of them and has agentic_driver.c calibrate the prompt text
 * on the target and run them: --users runs at once, the next trace
 * starting when one ends (over again with --recycle), until --duration or
 * --requests. replay_agentic_summary.c reports. */
#include "load/replay_agentic_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/config.h"

int replay_agentic_detect(const char *path, bool *ret)
{
    struct config_err err;
    int r = agentic_driver_detect(path, ret, &err);
    if (r < 0)
        fprintf(stderr, "tokentap replay: %s\n", err.msg);
    return r;
}

int replay_agentic_load(struct replay_run *run)
{
    struct agentic_run *ag = calloc(1, sizeof(*ag));
    if (!ag)
        return -ENOMEM;
    run->ag = ag;
    struct config_err err;
    int r = agentic_driver_load(run->o.trace, &ag->traces, &err);
    if (r < 0) {
        fprintf(stderr, "tokentap replay: %s\n", err.msg);
        return r;
    }
    /* What one pass over the traces sends: the planned total. */
    struct agentic_plan_options po = {.speed = 1, .isl_scale = run->o.agentic.isl_scale,
                                      .max_isl = run->o.agentic.max_isl};
    run->total = 0;
    for (size_t i = 0; i < ag->traces.n; i++) {
        struct agentic_plan p;
        if (agentic_plan_init(&p, &ag->traces.t[i], &po, 0) < 0)
            return -ENOMEM;
        run->total += p.left;
        agentic_plan_finish(&p);
    }
    if (run->o.agentic.recycle)
        run->total = run->o.requests ? run->o.requests : UINT64_MAX / 2;
    else if (run->o.requests && run->o.requests < run->total)
        run->total = run->o.requests;
    ag->users = run->o.agentic.users ? run->o.agentic.users : (unsigned)ag->traces.n;
    return 0;
}

/* The rewrite rules (and --thinking), as on any replayed request. */
static int apply_rules(void *ctx, const char *path, struct loadgen_header *hdrs, size_t *nh,
                       size_t cap, const char *body, size_t len, struct rewrite_result *res)
{
    return replay_apply_rules(ctx, "POST", path, hdrs, nh, cap, body, len, res);
}

int replay_agentic_calibrate(struct replay_run *run)
{
    struct agentic_run *ag = run->ag;
    const struct replay_agentic_options *a = &run->o.agentic;
    struct agentic_driver_options o = {
        .base = run->base,
        .lg = run->lg,
        .url = run->target_url,
        .tls = run->o.tls,
        .traces = &ag->traces,
        .timing = a->timing,
        .speed = run->o.sched.speed,
        .max_gap = a->max_gap,
        .isl_scale = a->isl_scale,
        .osl_scale = a->osl_scale,
        .max_isl = a->max_isl,
        .api = a->api,
        .model_map = a->model_map,
        .max_requests = run->o.requests,
        .ideal = true,
        .rules = run->rules ? apply_rules : NULL,
        .rules_ctx = run,
    };
    struct config_err err;
    int r = agentic_driver_new(&o, &ag->d);
    if (r == 0)
        r = agentic_driver_calibrate(ag->d, &err);
    if (r == -EINVAL)
        fprintf(stderr, "tokentap replay: %s\n", err.msg);
    if (r == 0 && !run->o.quiet)
        fprintf(stderr, "tokentap replay: %zu agentic trace%s from %s to %s; prompt sizes: %s\n",
                ag->traces.n, ag->traces.n == 1 ? "" : "s", run->o.trace, run->target_url,
                ag->d->tokenizer_note);
    return r;
}

/* --- running --- */

/* A run all of whose requests were dropped (--max-isl): it sends nothing
 * and is not counted among the users. */
static bool empty_run(const struct agentic_driver_run *r)
{
    return r->plan.dropped == r->plan.t->n_requests;
}

static void on_record(void *ctx, struct agentic_driver_run *r, size_t session, size_t index,
                      const struct loadgen_result *res)
{
    struct replay_run *run = ctx;
    replay_count_done(run, res->rec);
    run->sent = run->ag->d->sent;
}

static void on_end(void *ctx, struct agentic_driver_run *r, int err)
{
    struct replay_run *run = ctx;
    if (!empty_run(r))
        run->ag->active--;
    if (err < 0)
        replay_fail(run, err);
    else if (!run->stopping)
        replay_agentic_dispatch(run);
}

static int start_instance(struct replay_run *run, size_t trace, usec_t base)
{
    struct agentic_run *ag = run->ag;
    if (ag->n_inst == ag->cap_inst) {
        size_t cap = ag->cap_inst ? ag->cap_inst * 2 : 8;
        struct agentic_driver_run **p = realloc(ag->inst, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        ag->inst = p;
        ag->cap_inst = cap;
    }
    const struct agentic_trace *t = &ag->traces.t[trace];
    char prefix[160];
    if (ag->round)
        snprintf(prefix, sizeof(prefix), "%s~%u", t->id, ag->round + 1);
    else
        snprintf(prefix, sizeof(prefix), "%s", t->id);
    struct agentic_driver_cbs cbs = {.record = on_record, .end = on_end, .ctx = run};
    int r = agentic_driver_start(ag->d, trace, base, ag->round, prefix, &cbs, &ag->inst[ag->n_inst]);
    if (r < 0)
        return r;
    if (!empty_run(ag->inst[ag->n_inst]))
        ag->active++;
    ag->n_inst++;
    return 0;
}

/* Keeps --users traces running: the next one (over again with
 * --recycle) when one ends; the first ones spread over --ramp. */
static int start_instances(struct replay_run *run, usec_t now)
{
    struct agentic_run *ag = run->ag;
    size_t empty = 0;
    while (ag->active < ag->users && !ag->closed) {
        if (ag->next_trace == ag->traces.n) {
            if (!run->o.agentic.recycle || empty >= ag->traces.n)
                break;
            ag->next_trace = 0;
            ag->round++;
        }
        usec_t base = now;
        if (ag->n_inst < ag->users && run->o.agentic.ramp)
            base = run->start + run->o.agentic.ramp * ag->n_inst / ag->users;
        int r = start_instance(run, ag->next_trace++, base);
        if (r < 0)
            return r;
        if (empty_run(ag->inst[ag->n_inst - 1]))
            empty++; /* every request dropped: do not loop on it */
    }
    return 0;
}

void replay_agentic_dispatch(struct replay_run *run)
{
    struct agentic_run *ag = run->ag;
    usec_t now = clock_now();
    if (run->o.duration && now - run->start >= run->o.duration)
        agentic_driver_stop(ag->d);
    /* --requests stops the driver too. */
    ag->closed = ag->closed || ag->d->stopped;
    int r = start_instances(run, now);
    if (r < 0) {
        replay_fail(run, r);
        return;
    }
    if (ag->active == 0) {
        event_base_loopexit(run->base, NULL);
        return;
    }
    if (run->o.duration && !ag->closed)
        replay_arm(run, run->start + run->o.duration);
}

void replay_agentic_stop(struct replay_run *run)
{
    if (run->ag && run->ag->d)
        agentic_driver_stop(run->ag->d);
}

void replay_agentic_free(struct agentic_run *ag)
{
    if (!ag)
        return;
    for (size_t i = 0; i < ag->n_inst; i++)
        agentic_driver_run_free(ag->inst[i]);
    free(ag->inst);
    agentic_driver_free(ag->d);
    agentic_driver_traces_finish(&ag->traces);
    free(ag);
}
