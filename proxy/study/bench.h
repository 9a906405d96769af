/* bench: `tokentap bench SCENARIO` — runs a multi-agent scenario across
 * its levels, repetitions and targets (built-in simulator profiles or real
 * servers), measures every request through loadgen, checks the answers,
 * and writes results.json (docs/results-format.md), report.md and
 * report.html. Its settings are parsed and validated from argv alone
 * (bench_settings_parse); the run step loads the scenario and runs it. */
#ifndef TOKENTAP_BENCH_H
#define TOKENTAP_BENCH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/log.h"
#include "study/scenario.h"
#include "wire/upstream.h"

struct cli_command;
struct config_err;

/* Bytes in an output directory's name. */
#define BENCH_MAX_OUT_DIR 511

/* The command line; strings are borrowed from argv. */
struct bench_settings {
    const char *scenario;        /* the scenario file */
    const char *out;             /* --out, NULL: results/<scenario>-<time> */
    const char *levels;          /* --levels, NULL: all */
    const char *only;            /* --only, NULL: every target */
    const char *targets[SCENARIO_MAX_TARGETS]; /* --target NAME=URL, checked against the scenario */
    size_t n_targets;
    struct upstream_tls_options tls; /* https targets: how their certificates are checked */
    unsigned repetitions;        /* 0: the scenario's */
    unsigned max_tokens;         /* --max-tokens: 0 as the scenario says, else a cap per turn */
    bool allow_failures;         /* exit 0 even when requests or checks failed */
    bool capacity;               /* --capacity: search each target's capacity */
    const char *slo;             /* --slo: its objective, NULL: the scenario's */
    unsigned max_users;          /* --max-users, 0: the scenario's, else 64 */
    const char *sweep;           /* --sweep KEY=V1,V2: each target once per value, NULL: none */
    bool list;                   /* --list: the scenarios shipped, then exit */
    int thinking;                /* --thinking: 0 or 1, -1 as the scenario says */
    bool quiet;
    const char *ui;              /* --ui HOST:PORT: serve the dashboard there, NULL: none */
    enum log_level log_level;
    int argc;
    char **argv;                 /* borrowed: the command line, for results.json */
};

/* Parses argv (argv[0] is "bench") into s: 0, CLI_RUN_HELP for --help, or
 * -EINVAL with the usage error's line in err. Reads no file. */
int bench_settings_parse(struct bench_settings *s, int argc, char **argv, struct config_err *err);

int bench_main(int argc, char **argv);

/* The command's options and --help (bench_cmd.c). */
extern const struct cli_command bench_command;

/* --list: each shipped scenario's file, name and description on stdout;
 * the exit status. */
int bench_list_scenarios(void);

/* The exit status of a finished run: 0, or 1 when requests failed or
 * answer checks failed (unless allow_failures), with the line saying why
 * in why[len] ("" for 0). */
int bench_exit_status(uint64_t failed_requests, uint64_t failed_checks, bool allow_failures,
                      char *why, size_t len);

#endif
