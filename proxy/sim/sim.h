/* sim: a llama-server imitation on the wire (routes, framing, JSON shapes,
 * errors, slots, queueing, timings), with a settable timing model. It runs
 * on a caller's event loop, so bench and replay can embed it; `tokentap
 * sim` (sim_cmd.c) runs it standalone. */
#ifndef TOKENTAP_SIM_H
#define TOKENTAP_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "wire/net.h"

struct event_base;
struct sim;
struct tls_server;

struct sim_fault {
    int status;              /* answer every generation with this status (0 = no) */
    long disconnect_after;   /* drop the connection after N token events (-1 = no) */
    long garbage_after;      /* send non-SSE bytes after N token events (-1 = no) */
    long stall_after;        /* pause generation after N token events (-1 = no) ... */
    usec_t stall_us;         /* ... for this long */
    usec_t slow_headers_us;  /* wait this long before taking the request */
};

/* Slots are cheap (a timer and a prompt cache each): load-generator
 * benchmarks run thousands of streams at once. */
#define SIM_MAX_SLOTS 65536

struct sim_options {
    const char *listen;       /* borrowed, "127.0.0.1:8080" */
    unsigned slots;
    double prefill_tps, decode_tps, batch_slowdown;
    double jitter;            /* relative SD of noise on step and prefill times */
    uint32_t n_ctx;           /* per slot */
    const char *model;        /* borrowed: model name reported */
    uint64_t seed;
    bool thinking;            /* default when a request does not say */
    const char *responses_file; /* borrowed, NULL = none */
    struct sim_fault fault;   /* applied to every generation request */
    uint64_t max_body;
    long long created;        /* fixed "created" seconds (0 = wall clock) */
    usec_t idle_timeout;      /* keep-alive idle timeout (llama-server: 5 s) */
    bool stamp;               /* benchmarks: an SSE comment ": t=<monotonic µs>" before each token */
    const char *stamp_log;    /* borrowed: benchmarks: each streamed request's token send
                                 times to this JSONL file (docs/sim.md), NULL = none */
    bool quiet;
    struct tls_server *tls;   /* borrowed: serve HTTPS, as llama-server --ssl-cert-file (NULL: HTTP) */
};

/* The simulator's defaults (docs/sim.md), as data: the scenario loader
 * reads a sim profile's defaults here without calling into the sim. */
extern const struct sim_options sim_defaults;

/* *o = sim_defaults. */
void sim_options_default(struct sim_options *o);

/* Parses a fault spec ("status:503", "disconnect:after=5",
 * "stall:ms=2000:after=3", "garbage:after=2", "slow-headers:ms=1500",
 * several joined with ','). 0 or -EINVAL. */
int sim_fault_parse(const char *spec, struct sim_fault *ret);
void sim_fault_none(struct sim_fault *f);

/* Starts a simulator on base. Logs and returns a negative errno on error
 * (bad responses file, port in use). */
int sim_new(struct event_base *base, const struct sim_options *o, struct sim **ret);
void sim_free(struct sim *sim);

/* The bound address (real port when 0 was asked). */
const struct net_addr *sim_address(const struct sim *sim);

/* `tokentap sim` */
int sim_main(int argc, char **argv);

#endif
