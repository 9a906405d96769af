/* `tokentap sim`: runs the simulator standalone until SIGINT/SIGTERM. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "core/cli.h"
#include "core/log.h"
#include "wire/net.h"
#include "sim/sim.h"

enum {
    OPT_LISTEN = 1,
    OPT_SLOTS,
    OPT_PREFILL,
    OPT_DECODE,
    OPT_SLOWDOWN,
    OPT_JITTER,
    OPT_CTX,
    OPT_MODEL,
    OPT_SEED,
    OPT_THINKING,
    OPT_RESPONSES,
    OPT_FAULT,
    OPT_MAX_BODY,
    OPT_CREATED,
    OPT_LOG_LEVEL,
    OPT_STAMP,
    OPT_STAMP_LOG,
};

static const struct cli_option sim_options[] = {
    {"listen", 'l', "HOST:PORT", "address to listen on; port 0 picks a free one (default 127.0.0.1:8080)", OPT_LISTEN},
    {"slots", 0, "N", "parallel slots, like llama-server --parallel, up to 65536 (default 3)", OPT_SLOTS},
    {"prefill-tps", 0, "N", "prompt tokens per second per slot (default 1500)", OPT_PREFILL},
    {"decode-tps", 0, "N", "generated tokens per second per slot, alone (default 50)", OPT_DECODE},
    {"batch-slowdown", 0, "F", "extra step time per other busy slot, 0.05 = +5% (default 0.05)", OPT_SLOWDOWN},
    {"jitter", 0, "F", "random noise on step and prefill times, relative SD, 0.05 = 5% (default 0)", OPT_JITTER},
    {"ctx-size", 'c', "N", "context size per slot in tokens (default 131072)", OPT_CTX},
    {"model", 'm', "NAME", "model name to report (default tokentap-sim)", OPT_MODEL},
    {"seed", 0, "N", "seed for made-up answers when a request has none (default 42)", OPT_SEED},
    {"thinking", 0, "on|off", "reasoning tokens before the answer when a request does not set enable_thinking (default off)", OPT_THINKING},
    {"responses", 'r', "FILE", "canned answers: YAML/JSON list of {match, text, reasoning}", OPT_RESPONSES},
    {"fault", 0, "SPEC", "inject a fault into every generation (see below)", OPT_FAULT},
    {"max-body", 0, "SIZE", "largest request body; larger gets 413 (default 64M)", OPT_MAX_BODY},
    {"created", 0, "SECONDS", "fixed \"created\" time stamp for reproducible bodies (default: now)", OPT_CREATED},
    {"stamp", 0, NULL, "benchmarks: send an SSE comment ': t=<monotonic µs>' before each token event", OPT_STAMP},
    {"stamp-log", 0, "FILE", "benchmarks: each streamed request's token send times to FILE (JSONL, keyed by X-Request-Id)", OPT_STAMP_LOG},
    {"log-level", 0, "LEVEL", "error, warn, info or debug (default info)", OPT_LOG_LEVEL},
    {NULL, 0, NULL, NULL, 0},
};

static const struct cli_command sim_command = {
    .name = "sim",
    .usage = "tokentap sim [OPTIONS]",
    .summary =
        "Run a llama-server simulator: same routes, framing and JSON as llama.cpp's\n"
        "llama-server, with slots, a FIFO queue, prompt cache, and prefill/decode speeds\n"
        "you choose. Prints 'listening on HOST:PORT' when ready. Stops on SIGINT/SIGTERM.",
    .options = sim_options,
    .epilog =
        "Routes: GET /health /v1/health /models /v1/models /props /slots /metrics /;\n"
        "POST /v1/chat/completions /chat/completions /v1/completions /completion\n"
        "/completions /v1/messages /v1/messages/count_tokens /v1/responses /tokenize\n"
        "/apply-template. Simulator only: GET /sim/stats (connection counters).\n"
        "\n"
        "Faults (--fault, or per request with header X-Sim-Fault; join with ','):\n"
        "  status:503             answer generation requests with this status\n"
        "  disconnect:after=N     drop the connection after N token events\n"
        "  stall:ms=M:after=N     pause generation for M ms after N token events\n"
        "  garbage:after=N        send non-SSE bytes after N token events\n"
        "  slow-headers:ms=M      wait M ms before taking the request\n"
        "\n"
        "Timing model: a request waits (no bytes sent) until a slot is free; prefill takes\n"
        "prompt_n / prefill-tps; then one token per 1/decode-tps, each step slowed by\n"
        "batch-slowdown for every other busy slot. See docs/sim.md.\n",
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;
    event_base_loopexit(base, NULL);
}

int sim_main(int argc, char **argv)
{
    struct sim_options o;
    sim_options_default(&o);
    struct cli_parser p;
    cli_init(&p, &sim_command, argc, argv);
    const char *v;
    int id;
    uint64_t u;
    enum log_level level;
    const struct cli_command *cmd = &sim_command;

    while ((id = cli_next(&p, &v)) != CLI_END) {
        switch (id) {
        case CLI_HELP:
            return 0;
        case CLI_ERROR:
            return 2;
        case CLI_POSITIONAL:
            cli_usage_error(cmd, "unexpected argument '%s'", v);
            return 2;
        case OPT_LISTEN: {
            struct net_addr a;
            if (net_parse_hostport(v, &a) < 0) {
                cli_usage_error(cmd, "--listen: expected HOST:PORT, e.g. 127.0.0.1:8080, got '%s'", v);
                return 2;
            }
            o.listen = v;
            break;
        }
        case OPT_SLOTS:
            if (cli_parse_u64(cmd, "--slots", v, 1, SIM_MAX_SLOTS, &u) < 0)
                return 2;
            o.slots = (unsigned)u;
            break;
        case OPT_PREFILL:
            if (cli_parse_double(cmd, "--prefill-tps", v, 0.001, 1e9, &o.prefill_tps) < 0)
                return 2;
            break;
        case OPT_DECODE:
            if (cli_parse_double(cmd, "--decode-tps", v, 0.001, 1e7, &o.decode_tps) < 0)
                return 2;
            break;
        case OPT_SLOWDOWN:
            if (cli_parse_double(cmd, "--batch-slowdown", v, 0, 100, &o.batch_slowdown) < 0)
                return 2;
            break;
        case OPT_JITTER:
            if (cli_parse_double(cmd, "--jitter", v, 0, 1, &o.jitter) < 0)
                return 2;
            break;
        case OPT_CTX:
            if (cli_parse_u64(cmd, "--ctx-size", v, 16, 1u << 30, &u) < 0)
                return 2;
            o.n_ctx = (uint32_t)u;
            break;
        case OPT_MODEL:
            o.model = v;
            break;
        case OPT_SEED:
            if (cli_parse_u64(cmd, "--seed", v, 0, UINT32_MAX, &u) < 0)
                return 2;
            o.seed = u;
            break;
        case OPT_THINKING:
            if (cli_parse_onoff(cmd, "--thinking", v, &o.thinking) < 0)
                return 2;
            break;
        case OPT_RESPONSES:
            o.responses_file = v;
            break;
        case OPT_FAULT:
            if (sim_fault_parse(v, &o.fault) < 0) {
                cli_usage_error(cmd, "--fault: cannot parse '%s' (e.g. disconnect:after=5)", v);
                return 2;
            }
            break;
        case OPT_MAX_BODY:
            if (cli_parse_size(cmd, "--max-body", v, &o.max_body) < 0)
                return 2;
            break;
        case OPT_CREATED:
            if (cli_parse_u64(cmd, "--created", v, 1, 1ull << 40, &u) < 0)
                return 2;
            o.created = (long long)u;
            break;
        case OPT_STAMP:
            o.stamp = true;
            break;
        case OPT_STAMP_LOG:
            o.stamp_log = v;
            break;
        case OPT_LOG_LEVEL:
            if (log_parse_level(v, &level) < 0) {
                cli_usage_error(cmd, "--log-level: expected error, warn, info or debug, got '%s'", v);
                return 2;
            }
            log_set_level(level);
            break;
        }
    }

    net_raise_fd_limit(); /* one connection per slot, and queued requests hold theirs */
    int rc = 1;
    struct sim *sim = NULL;
    struct event *sigint = NULL, *sigterm = NULL;
    struct event_base *base = net_event_base_new();
    if (!base) {
        log_error("cannot create the event loop");
        return 1;
    }
    if (sim_new(base, &o, &sim) < 0)
        goto fail;
    sigint = evsignal_new(base, SIGINT, on_signal, base);
    sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    if (!sigint || !sigterm || evsignal_add(sigint, NULL) < 0 || evsignal_add(sigterm, NULL) < 0) {
        log_error("cannot install signal handlers");
        goto fail;
    }
    char addr[80];
    net_format(sim_address(sim), addr, sizeof(addr));
    printf("listening on %s\n", addr);
    fflush(stdout);
    event_base_dispatch(base);
    rc = 0;
fail:
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    sim_free(sim);
    event_base_free(base);
    return rc;
}
