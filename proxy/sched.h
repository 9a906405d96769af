/* sched: when generated requests are due. Original timing (a trace's own
 * offsets, sped up), closed-loop concurrency (a new request when one
 * finishes: no schedule), or an open-loop rate with constant or Poisson
 * arrivals. Open-loop times are the *intended* send times: latency is
 * measured from them, so a late sender cannot hide queueing
 * (coordinated omission, as wrk2 avoids it). Pure. */
#ifndef TOKENTAP_SCHED_H
#define TOKENTAP_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"

enum sched_mode {
    SCHED_ORIGINAL,    /* recorded offsets divided by speed */
    SCHED_CONCURRENCY, /* closed loop: N in flight */
    SCHED_RATE,        /* open loop: rate per second */
};

enum sched_arrival {
    SCHED_CONSTANT,
    SCHED_POISSON,
};

struct sched {
    enum sched_mode mode;
    double speed;          /* original: offsets / speed */
    unsigned concurrency;  /* closed loop */
    double rate;           /* open loop: requests per second */
    enum sched_arrival arrival;
    uint64_t rng;          /* Poisson draws */
    double next_us;        /* open loop: the next arrival, µs after start */
};

/* Prepares a schedule; seed makes Poisson arrivals repeatable. */
void sched_init(struct sched *s, enum sched_mode mode, uint64_t seed);

/* Original timing: when a request recorded at offset_us is due (µs after start). */
usec_t sched_original(const struct sched *s, usec_t offset_us);

/* Open loop: the next arrival time (µs after start); each call advances. */
usec_t sched_next_arrival(struct sched *s);

/* Parses "poisson" or "constant". 0 or -EINVAL. */
int sched_parse_arrival(const char *s, enum sched_arrival *ret);

#endif
