/* arrival: when generated requests are due (the scheduler; not named
 * sched.h, which would shadow the system header). Original timing (a trace's own
 * offsets, sped up), closed-loop concurrency (a new request when one
 * finishes: no schedule), or an open-loop rate with constant or Poisson
 * arrivals. Open-loop times are the *intended* send times: latency is
 * measured from them, so a late sender cannot hide queueing
 * (coordinated omission, as wrk2 avoids it). Pure. */
#ifndef TOKENTAP_ARRIVAL_H
#define TOKENTAP_ARRIVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"

enum arrival_mode {
    ARRIVAL_ORIGINAL,    /* recorded offsets divided by speed */
    ARRIVAL_CONCURRENCY, /* closed loop: N in flight */
    ARRIVAL_RATE,        /* open loop: rate per second */
};

enum arrival_process {
    ARRIVAL_CONSTANT,
    ARRIVAL_POISSON,
};

struct arrival {
    enum arrival_mode mode;
    double speed;          /* original: offsets / speed */
    unsigned concurrency;  /* closed loop */
    double rate;           /* open loop: requests per second */
    enum arrival_process process;
    uint64_t rng;          /* Poisson draws */
    double next_us;        /* open loop: the next arrival, µs after start */
};

/* Prepares a schedule; seed makes Poisson arrivals repeatable. */
void arrival_init(struct arrival *s, enum arrival_mode mode, uint64_t seed);

/* Original timing: when a request recorded at offset_us is due (µs after start). */
usec_t arrival_original(const struct arrival *s, usec_t offset_us);

/* Open loop: the next arrival time (µs after start); each call advances. */
usec_t arrival_next_arrival(struct arrival *s);

/* Parses "poisson" or "constant". 0 or -EINVAL. */
int arrival_parse_process(const char *s, enum arrival_process *ret);

#endif
