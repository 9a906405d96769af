#include "load/agentic_plan.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const timing_names[] = {[AGENTIC_TIMING_ORIGINAL] = "original",
                                           [AGENTIC_TIMING_THINK] = "think",
                                           [AGENTIC_TIMING_NONE] = "none"};

const char *agentic_timing_name(enum agentic_timing t)
{
    return timing_names[t];
}

int agentic_timing_parse(const char *s, enum agentic_timing *ret)
{
    for (size_t i = 0; i < sizeof(timing_names) / sizeof(timing_names[0]); i++)
        if (strcmp(s, timing_names[i]) == 0) {
            *ret = (enum agentic_timing)i;
            return 0;
        }
    return -EINVAL;
}

int agentic_plan_init(struct agentic_plan *p, const struct agentic_trace *t,
                      const struct agentic_plan_options *o, usec_t base)
{
    memset(p, 0, sizeof(*p));
    p->t = t;
    p->o = *o;
    if (!(p->o.speed > 0))
        p->o.speed = 1;
    p->base = base;
    p->s = calloc(t->n_sessions, sizeof(*p->s));
    if (!p->s)
        return -ENOMEM;
    /* Parents come before their children in t->sessions. */
    for (size_t i = 0; i < t->n_sessions; i++) {
        const struct agentic_session *ts = &t->sessions[i];
        struct agentic_plan_session *s = &p->s[i];
        s->steps = calloc(ts->n ? ts->n : 1, sizeof(*s->steps));
        if (!s->steps) {
            agentic_plan_finish(p);
            return -ENOMEM;
        }
        s->keep = ts->n;
        for (size_t k = 0; k < ts->n && o->max_isl; k++) {
            if ((uint64_t)llround(ts->requests[k].in * o->isl_scale) > o->max_isl) {
                s->keep = k;
                break;
            }
        }
        /* A sub-agent spawned after a dropped request never starts. */
        if (ts->parent != SIZE_MAX) {
            const struct agentic_plan_session *ps = &p->s[ts->parent];
            if (ps->dropped || (ts->after != SIZE_MAX && ts->after >= ps->keep)) {
                s->dropped = s->finished = true;
                s->keep = 0;
            }
        }
        for (size_t k = s->keep; k < ts->n; k++)
            s->steps[k].state = AGENTIC_STEP_DROPPED;
        p->dropped += ts->n - s->keep;
        p->left += s->keep;
    }
    return 0;
}

void agentic_plan_finish(struct agentic_plan *p)
{
    if (p->s)
        for (size_t i = 0; i < p->t->n_sessions; i++)
            free(p->s[i].steps);
    free(p->s);
    p->s = NULL;
}

/* A recorded duration on the replay's clock. */
static usec_t scaled(const struct agentic_plan *p, usec_t d)
{
    return (usec_t)llround((double)d / p->o.speed);
}

/* When something that may go at `ready` goes: at its recorded time
 * (original) or `gap` after ready (think), never later than max_gap
 * after ready. */
static usec_t when(const struct agentic_plan *p, usec_t ready, usec_t at, usec_t gap)
{
    usec_t due = ready;
    if (p->o.timing == AGENTIC_TIMING_ORIGINAL) {
        usec_t rec = p->base + scaled(p, at);
        if (rec > due)
            due = rec;
    } else if (p->o.timing == AGENTIC_TIMING_THINK) {
        due = ready + scaled(p, gap);
    }
    if (p->o.max_gap && due > ready + p->o.max_gap)
        due = ready + p->o.max_gap;
    return due;
}

static usec_t diff(usec_t a, usec_t b)
{
    return a > b ? a - b : 0;
}

/* The recorded wait of a sub-agent's start: from the end of the request
 * it follows (or its parent's start). */
static usec_t spawn_gap(const struct agentic_trace *t, const struct agentic_session *ts)
{
    if (ts->after == SIZE_MAX)
        return ts->spawn;
    return diff(ts->at, agentic_request_end(&t->sessions[ts->parent].requests[ts->after]));
}

/* The recorded wait of request k: its think time, less the part of it
 * its sub-agents ran (think_time counts from the previous request's end,
 * sub-agents or not); without think_time, the gap from the end of what it
 * waited for. */
static usec_t think_gap(const struct agentic_trace *t, const struct agentic_session *ts, size_t k)
{
    const struct agentic_request *r = &ts->requests[k];
    if (k == 0)
        return r->t;
    const struct agentic_request *prev = &ts->requests[k - 1];
    usec_t prev_end = agentic_request_end(prev), kids_end = 0;
    for (size_t c = r->join_from; c < r->join_to; c++) {
        usec_t e = agentic_session_end(&t->sessions[ts->children[c]]);
        if (e > kids_end)
            kids_end = e;
    }
    if (r->think_us >= 0 && (r->join_from == r->join_to || prev->api_us >= 0))
        return diff((usec_t)r->think_us, diff(kids_end, prev_end));
    return diff(r->at, prev_end > kids_end ? prev_end : kids_end);
}

/* Starts session i if it may start by now; else notes when it may. */
static void try_start(struct agentic_plan *p, size_t i, usec_t now, usec_t *wake)
{
    const struct agentic_session *ts = &p->t->sessions[i];
    struct agentic_plan_session *s = &p->s[i];
    usec_t ready = p->base, due = p->base;
    if (ts->parent != SIZE_MAX) {
        const struct agentic_plan_session *ps = &p->s[ts->parent];
        if (!ps->started)
            return;
        ready = ps->start;
        if (ts->after != SIZE_MAX) {
            if (ps->steps[ts->after].state != AGENTIC_STEP_DONE)
                return;
            ready = ps->steps[ts->after].end;
        }
        due = when(p, ready, ts->at, spawn_gap(p->t, ts));
    }
    if (due > now) {
        if (due < *wake)
            *wake = due;
        return;
    }
    s->started = true;
    s->start = due;
    if (s->keep == 0) {
        s->finished = true;
        s->end = due;
    }
}

int agentic_plan_next(struct agentic_plan *p, usec_t now, size_t *ret_session, size_t *ret_index,
                      usec_t *ret_due, usec_t *ret_wake)
{
    usec_t wake = USEC_INFINITY;
    for (size_t i = 0; i < p->t->n_sessions; i++) {
        const struct agentic_session *ts = &p->t->sessions[i];
        struct agentic_plan_session *s = &p->s[i];
        if (!s->started && !s->finished)
            try_start(p, i, now, &wake);
        if (!s->started || s->finished || s->next >= s->keep)
            continue;
        size_t k = s->next;
        struct agentic_step *st = &s->steps[k];
        if (st->state != AGENTIC_STEP_WAITING)
            continue;
        usec_t ready = s->start;
        if (k > 0) {
            if (s->steps[k - 1].state != AGENTIC_STEP_DONE)
                continue;
            ready = s->steps[k - 1].end;
        }
        const struct agentic_request *r = &ts->requests[k];
        bool waiting = false;
        for (size_t c = r->join_from; c < r->join_to; c++) {
            const struct agentic_plan_session *cs = &p->s[ts->children[c]];
            if (!cs->finished)
                waiting = true;
            else if (cs->end > ready)
                ready = cs->end;
        }
        if (waiting)
            continue;
        st->ready = ready;
        st->due = when(p, ready, r->at, think_gap(p->t, ts, k));
        if (st->due > now) {
            if (st->due < wake)
                wake = st->due;
            continue;
        }
        *ret_session = i;
        *ret_index = k;
        *ret_due = st->due;
        return 1;
    }
    *ret_wake = wake;
    return 0;
}

void agentic_plan_sent(struct agentic_plan *p, size_t session, size_t index, usec_t t)
{
    struct agentic_plan_session *s = &p->s[session];
    s->steps[index].state = AGENTIC_STEP_SENT;
    s->steps[index].sent = t;
    s->next = index + 1;
}

void agentic_plan_done(struct agentic_plan *p, size_t session, size_t index, usec_t t)
{
    struct agentic_plan_session *s = &p->s[session];
    s->steps[index].state = AGENTIC_STEP_DONE;
    s->steps[index].end = t;
    p->left--;
    if (index + 1 == s->keep) {
        s->finished = true;
        s->end = t;
    }
}

bool agentic_plan_finished(const struct agentic_plan *p)
{
    return p->left == 0;
}

bool agentic_plan_after_fanout(const struct agentic_plan *p, size_t session, size_t index)
{
    const struct agentic_request *r = &p->t->sessions[session].requests[index];
    return r->join_to > r->join_from;
}
