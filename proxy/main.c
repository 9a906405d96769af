/* main: argv[1] picks the subcommand; exit codes 0 ok, 1 runtime error,
 * 2 usage error. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "study/bench.h"
#include "load/replay.h"
#include "load/trace_export.h"
#include "report/report.h"
#include "serve/serve.h"
#include "sim/sim.h"

struct subcommand {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* NULL: not built yet */
};

static const struct subcommand subcommands[] = {
    {"serve", "streaming reverse proxy that measures every token", serve_main},
    {"replay", "replay a recorded or imported trace against a target", replay_main},
    {"trace", "export a recording as an agentic trace without its content", trace_main},
    {"bench", "run a multi-agent scenario across concurrency levels", bench_main},
    {"report", "regenerate report.md / report.html from results.json", report_main},
    {"compare", "put two benchmark runs side by side", report_compare_main},
    {"sim", "llama-server simulator (slots, queueing, prefill/decode speeds)", sim_main},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: tokentap COMMAND [OPTIONS]\n\n"
                 "Measure time to first token, inter-token latency and tokens/s of\n"
                 "llama-server under multi-agent load.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
        fprintf(out, "  %-9s %s%s\n", subcommands[i].name, subcommands[i].summary,
                subcommands[i].run ? "" : " (not built yet)");
    fprintf(out, "\nRun 'tokentap COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    /* A peer that closes mid-write must give EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("tokentap %s\n", TOKENTAP_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        if (strcmp(name, subcommands[i].name) != 0)
            continue;
        if (!subcommands[i].run) {
            fprintf(stderr, "tokentap %s: not built yet in this version; try 'tokentap sim'\n",
                    name);
            return 2;
        }
        return subcommands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "tokentap: unknown command '%s'; run 'tokentap --help' for the list\n", name);
    return 2;
}
