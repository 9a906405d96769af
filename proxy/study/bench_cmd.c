/* bench's command line: options, --help, the settings parsed and checked
 * from argv alone, --list, and the exit status a run ends with. bench.c
 * runs the settings. */
#include "study/bench.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "study/capacity.h"
#include "study/scenario.h"


enum {
    OPT_TARGET = 1,
    OPT_OUT,
    OPT_REPETITIONS,
    OPT_LEVELS,
    OPT_THINKING,
    OPT_ONLY,
    OPT_QUIET,
    OPT_LOG_LEVEL,
    OPT_MAX_TOKENS,
    OPT_ALLOW_FAILURES,
    OPT_LIST,
    OPT_CA_FILE,
    OPT_INSECURE,
    OPT_UI,
    OPT_CAPACITY,
    OPT_SLO,
    OPT_MAX_USERS,
    OPT_SWEEP,
};

static const struct cli_option bench_options[] = {
    {"target", 't', "NAME=URL", "run target NAME on a real server instead of its sim profile (repeatable)", OPT_TARGET},
    CLI_OPTION_CA_FILE(OPT_CA_FILE),
    CLI_OPTION_INSECURE(OPT_INSECURE),
    {"out", 'o', "DIR", "where results.json, report.md and report.html go (default results/<scenario>-<time>/)", OPT_OUT},
    {"repetitions", 'n', "N", "repetitions per level (default: the scenario's, else 5)", OPT_REPETITIONS},
    {"levels", 'l', "L1,L2", "run only these levels (by name, e.g. 1,3)", OPT_LEVELS},
    {"thinking", 0, "on|off", "set enable_thinking on every request, whatever the scenario says", OPT_THINKING},
    {"only", 0, "T1,T2", "run only these targets (one GPU holds one quant: run each, then compare)", OPT_ONLY},
    {"max-tokens", 0, "N", "no turn asks for more than N output tokens (fit a small test model's context)", OPT_MAX_TOKENS},
    {"allow-failures", 0, NULL, "exit 0 even when requests fail or answer checks fail", OPT_ALLOW_FAILURES},
    {"list", 0, NULL, "list the scenarios that come with tokentap, then exit", OPT_LIST},
    {"capacity", 0, NULL, "find how many users (copies of one level's agents) each target holds within the objective", OPT_CAPACITY},
    {"slo", 0, "OBJECTIVE", "with --capacity: e.g. \"ttft_p95<2s,decode_tps_p50>20,errors<1%\" (default: the scenario's capacity.slo)", OPT_SLO},
    {"max-users", 0, "N", "with --capacity: try at most N users (default: the scenario's, else 64)", OPT_MAX_USERS},
    {"sweep", 0, "KEY=V1,V2", "run each target once per value of KEY (thinking, max_tokens, a sim setting such as slots, or target) and compare them", OPT_SWEEP},
    {"quiet", 'q', NULL, "no progress line (without a terminal: a line every 10 s)", OPT_QUIET},
    {"ui", 0, "HOST:PORT", "serve the live dashboard of the run at http://HOST:PORT/tokentap/", OPT_UI},
    CLI_OPTION_LOG_LEVEL(OPT_LOG_LEVEL),
    {NULL, 0, NULL, NULL, 0},
};

const struct cli_command bench_command = {
    .name = "bench",
    .usage = "tokentap bench SCENARIO [--target NAME=URL ...] [--out DIR] [--repetitions N] "
             "[--levels 1,2,3] [--only T1,T2] [--thinking on|off] [OPTIONS]",
    .summary =
        "Run a multi-agent scenario across its concurrency levels and targets, several\n"
        "times, measuring every streamed token: TTFT, TTFC, ITL, decode tok/s (the\n"
        "server's token counts), turn and total times, answer checks. Targets without a\n"
        "URL run on the built-in simulator, so this works without a GPU. Writes\n"
        "results.json, report.md (printed) and report.html (charts, offline).",
    .options = bench_options,
    .epilog = "Scenarios: config/scenarios/*.yaml (--list); the language is in docs/bench.md.\n"
              "Exit status: 0; 1 when a request failed or an answer check failed (the last\n"
              "line says which; --allow-failures exits 0), or the run could not go on; 2 for\n"
              "a usage or scenario error; 130 when interrupted (results so far are written).\n",
};

/* One option's value into s. */
static int parse_option(struct cli_parser *p, int id, const char *v, struct bench_settings *s)
{
    bool on;
    switch (id) {
    case OPT_TARGET:
        if (s->n_targets == SCENARIO_MAX_TARGETS)
            return cli_usage(p, "--target: at most %d", SCENARIO_MAX_TARGETS);
        s->targets[s->n_targets++] = v;
        return 0;
    case OPT_OUT:
        if (strlen(v) > BENCH_MAX_OUT_DIR)
            return cli_usage(p, "--out: at most %d bytes", BENCH_MAX_OUT_DIR);
        s->out = v;
        return 0;
    case OPT_REPETITIONS: return cli_unsigned(p, v, 1, 1000, &s->repetitions);
    case OPT_LEVELS: s->levels = v; return 0;
    case OPT_ONLY: s->only = v; return 0;
    case OPT_THINKING:
        if (cli_onoff(p, v, &on) < 0)
            return -EINVAL;
        s->thinking = on;
        return 0;
    case OPT_QUIET: s->quiet = true; return 0;
    case OPT_MAX_TOKENS: return cli_unsigned(p, v, 1, 1000000, &s->max_tokens);
    case OPT_ALLOW_FAILURES: s->allow_failures = true; return 0;
    case OPT_LIST: s->list = true; return 0;
    case OPT_CA_FILE: s->tls.ca_file = v; return cli_readable(p, v);
    case OPT_INSECURE: s->tls.insecure = true; return 0;
    case OPT_CAPACITY: s->capacity = true; return 0;
    case OPT_SLO: s->slo = v; return 0;
    case OPT_MAX_USERS: return cli_unsigned(p, v, 1, CAPACITY_MAX_USERS, &s->max_users);
    case OPT_SWEEP:
        if (!strchr(v, '='))
            return cli_expected(p, "KEY=V1,V2 (e.g. slots=2,3,4)", v);
        s->sweep = v;
        return 0;
    case OPT_LOG_LEVEL: return cli_log_level(p, v, &s->log_level);
    case OPT_UI: s->ui = v; return 0;
    }
    return 0;
}

int bench_settings_parse(struct bench_settings *s, int argc, char **argv, struct config_err *err)
{
    struct cli_parser p;
    const char *v;
    int id, r;
    *s = (struct bench_settings){.thinking = -1, .log_level = LOG_LEVEL_INFO, .argc = argc,
                                 .argv = argv};
    cli_init(&p, &bench_command, argc, argv, err);
    while ((id = cli_next(&p, &v)) != CLI_END) {
        if (id == CLI_HELP)
            return CLI_RUN_HELP;
        if (id == CLI_ERROR)
            return -EINVAL;
        if (id == CLI_POSITIONAL && s->scenario)
            return cli_usage(&p, "one scenario at a time (got '%s' and '%s')", s->scenario, v);
        if (id == CLI_POSITIONAL)
            s->scenario = v;
        else if ((r = parse_option(&p, id, v, s)) < 0)
            return r;
    }
    if (!s->scenario && !s->list)
        return cli_usage(&p, "which scenario? e.g. tokentap bench config/scenarios/quant-comparison.yaml "
                             "(--list shows them)");
    if (!s->capacity && (s->slo || s->max_users))
        return cli_usage(&p, "--%s is an option of --capacity", s->slo ? "slo" : "max-users");
    if (s->slo) {
        struct capacity_slo slo;
        struct config_err why;
        if (capacity_slo_parse(s->slo, &slo, &why) < 0)
            return cli_usage(&p, "--slo: %s", why.msg);
    }
    if (s->sweep && s->thinking >= 0 && strncmp(s->sweep, "thinking=", 9) == 0)
        return cli_usage(&p, "--thinking sets every request; --sweep thinking=... varies it: one "
                             "or the other");
    if (s->capacity && s->levels && strchr(s->levels, ','))
        return cli_usage(&p, "--capacity runs copies of one level's agents: name one level with "
                             "--levels (e.g. --levels 1)");
    return 0;
}

int bench_exit_status(uint64_t failed_requests, uint64_t failed_checks, bool allow_failures,
                      char *why, size_t len)
{
    why[0] = '\0';
    if (!failed_requests && !failed_checks)
        return 0;
    snprintf(why, len, "%llu request%s failed, %llu answer check%s failed%s",
             (unsigned long long)failed_requests, failed_requests == 1 ? "" : "s",
             (unsigned long long)failed_checks, failed_checks == 1 ? "" : "s",
             allow_failures ? " (--allow-failures: exit 0)" : ": exit 1 (--allow-failures to exit 0)");
    return allow_failures ? 0 : 1;
}

/* Where the shipped scenarios are: config/scenarios under the working
 * directory (a checkout), else beside the binary's build directory. */
static DIR *open_scenarios(char *dir, size_t len)
{
    snprintf(dir, len, "config/scenarios");
    DIR *d = opendir(dir);
    if (d)
        return d;
    char exe[400];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(dir, len, "%s/../config/scenarios", exe);
    return opendir(dir);
}

/* --list: each shipped scenario's file, name and description. */
int bench_list_scenarios(void)
{
    char dir[512];
    DIR *d = open_scenarios(dir, sizeof(dir));
    if (!d) {
        fprintf(stderr, "tokentap bench: no config/scenarios here or beside the binary: run from "
                        "the tokentap checkout\n");
        return 1;
    }
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        size_t l = strlen(e->d_name);
        /* Scenario files, not their .responses.yaml companions. */
        if (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0 && !strstr(e->d_name, ".responses."))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && names[j - 1] && names[j] && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        if (!names[i])
            continue;
        char path[800];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        struct scenario *s = NULL;
        struct config_err err;
        if (scenario_load(path, &s, &err) == 0) {
            size_t dl = strlen(s->description);
            while (dl > 0 && (s->description[dl - 1] == '\n' || s->description[dl - 1] == ' '))
                dl--;
            if (s->capacity.trace.path && s->n_levels == 0)
                printf("%s\n    %s: agentic-trace users (--capacity), %zu target%s. %.*s\n", path,
                       s->name, s->n_targets, s->n_targets == 1 ? "" : "s", (int)dl, s->description);
            else
                printf("%s\n    %s: %zu agents, %zu levels, %zu target%s. %.*s\n", path, s->name,
                       s->n_agents, s->n_levels, s->n_targets, s->n_targets == 1 ? "" : "s", (int)dl,
                       s->description);
            scenario_free(s);
        } else {
            printf("%s\n    (does not load: %s)\n", path, err.msg);
        }
        free(names[i]);
    }
    return 0;
}

