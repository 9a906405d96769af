/* agentic_plan: when each request of one running agentic trace may go.
 * The session graph (agentic.h) says what a request waits for: the
 * previous request of its session, and the sub-agents its session spawned
 * since then; a sub-agent starts after the request it was spawned after.
 * The timing mode says how long after that: the recorded time (original),
 * the recorded think time (think), or not at all (none). Pure: the caller
 * says what it sent and what finished, and when; the plan answers what is
 * due. Times are the caller's clock (µs). */
#ifndef TOKENTAP_AGENTIC_PLAN_H
#define TOKENTAP_AGENTIC_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "load/agentic.h"

enum agentic_timing {
    AGENTIC_TIMING_ORIGINAL, /* the recorded start, divided by speed */
    AGENTIC_TIMING_THINK,    /* the recorded think time after what it waits for ended */
    AGENTIC_TIMING_NONE,     /* as soon as what it waits for ended */
};

/* "original", "think" or "none". */
const char *agentic_timing_name(enum agentic_timing t);
/* The timing named s into *ret: 0, or -EINVAL when s names none. */
int agentic_timing_parse(const char *s, enum agentic_timing *ret);

struct agentic_plan_options {
    enum agentic_timing timing;
    double speed;      /* recorded times and waits are divided by it */
    usec_t max_gap;    /* no wait after a request may go is longer (0: no cap) */
    double isl_scale;  /* inputs are scaled by it ... */
    uint64_t max_isl;  /* ... and a request above this many tokens is dropped with
                        * what depends on it (0: none is) */
};

enum agentic_step_state {
    AGENTIC_STEP_WAITING,
    AGENTIC_STEP_SENT,
    AGENTIC_STEP_DONE,
    AGENTIC_STEP_DROPPED,
};

struct agentic_step {
    enum agentic_step_state state;
    usec_t ready; /* when everything it waits for had ended */
    usec_t due;   /* its intended send time (>= ready) */
    usec_t sent, end;
};

struct agentic_plan_session {
    bool started, finished, dropped;
    usec_t start, end;
    size_t next;                /* its next request */
    size_t keep;                /* requests kept; the rest are dropped */
    struct agentic_step *steps; /* owned: one per request */
};

struct agentic_plan {
    const struct agentic_trace *t;       /* borrowed */
    struct agentic_plan_options o;
    usec_t base;                         /* the trace's start */
    struct agentic_plan_session *s;      /* owned: one per session */
    size_t left;                         /* requests neither done nor dropped */
    size_t dropped;                      /* requests dropped by max_isl */
};

/* A plan for t starting at base. 0 or -ENOMEM. */
int agentic_plan_init(struct agentic_plan *p, const struct agentic_trace *t,
                      const struct agentic_plan_options *o, usec_t base);
void agentic_plan_finish(struct agentic_plan *p);

/* The next request that may be sent at `now`: 1 with its session, index
 * and intended send time (<= now); else 0 with *ret_wake the earliest time
 * one will be (USEC_INFINITY: after answers now awaited). Mark it with
 * agentic_plan_sent before asking again. */
int agentic_plan_next(struct agentic_plan *p, usec_t now, size_t *ret_session, size_t *ret_index,
                      usec_t *ret_due, usec_t *ret_wake);

void agentic_plan_sent(struct agentic_plan *p, size_t session, size_t index, usec_t t);
/* The request's answer ended at t (whatever its outcome). */
void agentic_plan_done(struct agentic_plan *p, size_t session, size_t index, usec_t t);

/* Every request done or dropped. */
bool agentic_plan_finished(const struct agentic_plan *p);

/* Whether the request waits for sub-agents (it follows a fan-out). */
bool agentic_plan_after_fanout(const struct agentic_plan *p, size_t session, size_t index);

#endif
