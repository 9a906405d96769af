/* replay: `tokentap replay TRACE` — sends a recorded (or imported) trace
 * to a target with original timing, fixed concurrency or an open-loop
 * rate, keeps sessions in order, optionally rebuilds conversations from
 * the live answers, and reports through the shared metrics. Its settings
 * are parsed and validated from argv alone (replay_settings_parse); the
 * run step reads the trace and the rules and sends. */
#ifndef TOKENTAP_REPLAY_H
#define TOKENTAP_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/log.h"
#include "load/agentic_driver.h"
#include "load/arrival.h"
#include "rewrite/rewrite.h"
#include "sim/sim.h"
#include "wire/upstream.h"

struct config_err;

enum replay_history {
    REPLAY_HISTORY_RECORDED,
    REPLAY_HISTORY_LIVE,
};

/* Agentic traces (a directory of them, or one file, told by content). */
struct replay_agentic_options {
    enum agentic_timing timing;  /* --timing original|think|none */
    usec_t max_gap;              /* --max-gap: the longest wait (0 = no cap) */
    unsigned users;              /* --users: traces running at once (0 = all) */
    usec_t ramp;                 /* --ramp: their starts spread over this */
    bool recycle;                /* --recycle: the next trace (again) when one ends */
    double isl_scale, osl_scale; /* --isl-scale, --osl-scale */
    uint64_t max_isl;            /* --max-isl: drop longer requests (0 = none) */
    enum agentic_api api;        /* --api */
    const char *model_map;       /* --model-map PATTERN=NAME,..., NULL = recorded names */
    bool used;                   /* an option above that only agentic traces take was given */
};

/* The settings: the command line; strings are borrowed from argv. */
struct replay_options {
    const char *trace;
    const char *target;          /* URL or "sim" */
    struct upstream_tls_options tls; /* https target: how its certificate is checked */
    struct arrival sched;
    usec_t duration;             /* rate mode, --recycle: stop sending after this */
    uint64_t requests;           /* rate mode, --recycle: stop after this many (0 = trace size) */
    struct replay_agentic_options agentic;
    enum replay_history history;
    const char *log_path;
    bool log_gaps;
    const char *out_path;
    bool quiet;
    bool stop_on_error;
    usec_t response_timeout, stream_timeout;
    struct sim_options sim;
    const char *config;          /* its rewrite: rules apply to every request */
    enum rewrite_thinking thinking; /* --thinking: the X-Tokentap-Thinking override */
    enum log_level log_level;
    const char *ui;              /* --ui HOST:PORT: serve the dashboard there, NULL: none */
};

/* Parses argv (argv[0] is "replay") into o: 0, CLI_RUN_HELP for --help,
 * or -EINVAL with the usage error's line in err. Reads no file. */
int replay_settings_parse(struct replay_options *o, int argc, char **argv, struct config_err *err);

int replay_main(int argc, char **argv);

#endif
