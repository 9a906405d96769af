/* `tokentap sim`: runs the simulator standalone until SIGINT/SIGTERM. */
#include "sim/sim_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "wire/loop.h"
#include "wire/net.h"
#include "wire/tls.h"

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
    OPT_SSL_CERT,
    OPT_SSL_KEY,
    OPT_CALIBRATE,
    OPT_LEVELS,
    OPT_TARGET,
    OPT_OUT,
};

static const struct cli_option sim_options[] = {
    CLI_OPTION_LISTEN(OPT_LISTEN),
    {"slots", 0, "N", "parallel slots, like llama-server --parallel, up to 65536 (default 3); with --calibrate: the measured server's", OPT_SLOTS},
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
    {"ssl-cert-file", 0, "FILE", "serve HTTPS with this PEM certificate (chain), as llama-server does", OPT_SSL_CERT},
    {"ssl-key-file", 0, "FILE", "the certificate's PEM private key", OPT_SSL_KEY},
    {"stamp-log", 0, "FILE", "benchmarks: each streamed request's token send times to FILE (JSONL, keyed by X-Request-Id)", OPT_STAMP_LOG},
    {"calibrate", 0, NULL, "fit the timing model to measured requests (FILE...: bench results.json, replay or serve --log) and write a profile", OPT_CALIBRATE},
    {"levels", 0, "L1,L2", "with --calibrate: only these bench levels", OPT_LEVELS},
    {"target", 0, "NAME", "with --calibrate: the bench target (or the log's upstream) to fit", OPT_TARGET},
    {"out", 'o', "FILE", "with --calibrate: write the profile here (default stdout)", OPT_OUT},
    CLI_OPTION_LOG_LEVEL(OPT_LOG_LEVEL),
    {NULL, 0, NULL, NULL, 0},
};

static const struct cli_command sim_command = {
    .name = "sim",
    .usage = "tokentap sim [OPTIONS]\n       tokentap sim --calibrate FILE... [--levels L1,L2] [--target NAME] [--slots N] [--out PROFILE.yaml]",
    .summary =
        "Run a llama-server simulator: same routes, framing and JSON as llama.cpp's\n"
        "llama-server, with slots, a FIFO queue, prompt cache, and prefill/decode speeds\n"
        "you choose. Prints 'listening on HOST:PORT' when ready. Stops on SIGINT/SIGTERM.",
    .options = sim_options,
    .epilog =
        "Routes: GET /health /v1/health /models /v1/models /props /slots /metrics /;\n"
        "POST /v1/chat/completions /chat/completions /v1/completions /completion\n"
        "/completions /v1/messages /v1/messages/count_tokens /v1/responses /responses\n"
        "/tokenize /apply-template; /v1/embeddings and /embeddings answer 501, as\n"
        "llama-server without --embeddings. Simulator only: GET /sim/stats (connection\n"
        "counters).\n"
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
        "batch-slowdown for every other busy slot. See docs/sim.md. Benchmarks: header\n"
        "X-Sim-First-Token-At: T (CLOCK_MONOTONIC µs) sends the first token at T, or at\n"
        "the first T + k/decode-tps after the prefill, so a stream keeps its tick phase.\n"
        "\n"
        "Calibration: --calibrate reads measured requests (bench's results.json, replay's\n"
        "or serve's --log with timings per request) and fits slots, prefill-tps,\n"
        "decode-tps and batch-slowdown to them; the profile it writes is a bench target's\n"
        "sim: (or --target NAME=PROFILE.yaml). It prints the fit and its error per metric.\n",
};

void sim_settings_default(struct sim_settings *s)
{
    *s = (struct sim_settings){0};
    sim_options_default(&s->sim);
    s->log_level = LOG_LEVEL_INFO;
}

/* One option's value into s; 0 or -EINVAL with the usage error in p. */
static int parse_option(struct cli_parser *p, int id, const char *v, struct sim_settings *s)
{
    struct sim_options *o = &s->sim;
    struct net_addr addr;
    uint64_t u;
    int r = 0;
    switch (id) {
    case OPT_LISTEN:
        if (net_parse_hostport(v, &addr) < 0)
            return cli_expected(p, CLI_LISTEN_FORMAT, v);
        o->listen = v;
        break;
    case OPT_SLOTS:
        r = cli_unsigned(p, v, 1, SIM_MAX_SLOTS, &o->slots);
        s->calibrate.slots = o->slots;
        break;
    case OPT_PREFILL: r = cli_double(p, v, 0.001, 1e9, &o->prefill_tps); break;
    case OPT_DECODE: r = cli_double(p, v, 0.001, 1e7, &o->decode_tps); break;
    case OPT_SLOWDOWN: r = cli_double(p, v, 0, 100, &o->batch_slowdown); break;
    case OPT_JITTER: r = cli_double(p, v, 0, 1, &o->jitter); break;
    case OPT_CTX:
        if ((r = cli_u64(p, v, 16, 1u << 30, &u)) == 0)
            o->n_ctx = (uint32_t)u;
        break;
    case OPT_MODEL: o->model = v; break;
    case OPT_SEED: r = cli_u64(p, v, 0, UINT32_MAX, &o->seed); break;
    case OPT_THINKING: r = cli_onoff(p, v, &o->thinking); break;
    case OPT_RESPONSES: o->responses_file = v; break;
    case OPT_FAULT:
        if (sim_fault_parse(v, &o->fault) < 0)
            return cli_usage(p, "--fault: cannot parse '%s' (e.g. disconnect:after=5)", v);
        break;
    case OPT_MAX_BODY: r = cli_size(p, v, &o->max_body); break;
    case OPT_CREATED:
        if ((r = cli_u64(p, v, 1, 1ull << 40, &u)) == 0)
            o->created = (long long)u;
        break;
    case OPT_STAMP: o->stamp = true; break;
    case OPT_STAMP_LOG: o->stamp_log = v; break;
    case OPT_SSL_CERT: s->ssl_cert = v; r = cli_readable(p, v); break;
    case OPT_SSL_KEY: s->ssl_key = v; r = cli_readable(p, v); break;
    case OPT_LOG_LEVEL: r = cli_log_level(p, v, &s->log_level); break;
    case OPT_CALIBRATE: s->calibrate.on = true; break;
    case OPT_LEVELS: s->calibrate.levels = v; break;
    case OPT_TARGET: s->calibrate.target = v; break;
    case OPT_OUT: s->calibrate.out = v; break;
    }
    return r;
}

int sim_settings_parse(struct sim_settings *s, int argc, char **argv, struct config_err *err)
{
    struct cli_parser p;
    const char *v;
    int id, r;
    sim_settings_default(s);
    cli_init(&p, &sim_command, argc, argv, err);
    while ((id = cli_next(&p, &v)) != CLI_END) {
        if (id == CLI_HELP)
            return CLI_RUN_HELP;
        if (id == CLI_ERROR)
            return -EINVAL;
        if (id == CLI_POSITIONAL) {
            if (s->calibrate.n_files == SIM_CALIBRATE_MAX_FILES)
                return cli_usage(&p, "at most %d files to calibrate on", SIM_CALIBRATE_MAX_FILES);
            s->calibrate.files[s->calibrate.n_files++] = v;
            continue;
        }
        if ((r = parse_option(&p, id, v, s)) < 0)
            return r;
    }
    const struct sim_calibrate_settings *c = &s->calibrate;
    if (c->n_files && !c->on)
        return cli_usage(&p, "unexpected argument '%s' (files are for --calibrate)", c->files[0]);
    if (!c->on && (c->levels || c->target || c->out))
        return cli_usage(&p, "--%s is an option of --calibrate",
                         c->levels ? "levels" : c->target ? "target" : "out");
    if (c->on && !c->n_files)
        return cli_usage(&p, "--calibrate needs the measured files, e.g. tokentap sim --calibrate "
                             "results/run/results.json");
    if (!s->ssl_cert != !s->ssl_key)
        return cli_usage(&p, "HTTPS needs both --ssl-cert-file and --ssl-key-file");
    return 0;
}

/* Runs the simulator until SIGINT or SIGTERM; the exit status. */
static int sim_run(const struct sim_settings *s)
{
    int rc = 1;
    struct sim *sim = NULL;
    struct tls_server *tls = NULL;
    struct loop loop = {0};
    struct sim_options o = s->sim;
    log_set_level(s->log_level);
    net_raise_fd_limit(); /* one connection per slot, and queued requests hold theirs */
    struct event_base *base = net_event_base_new(NET_LOOP_PRECISE);
    if (!base) {
        log_error("cannot create the event loop");
        return 1;
    }
    if (s->ssl_cert) {
        struct config_err err;
        if (tls_server_new(s->ssl_cert, s->ssl_key, &tls, &err) < 0) {
            log_error("%s", err.msg);
            goto fail;
        }
        o.tls = tls;
    }
    if (sim_new(base, &o, &sim) < 0)
        goto fail;
    if (loop_init(&loop, base, NULL, NULL, NULL) < 0) {
        log_error("cannot install signal handlers");
        goto fail;
    }
    char addr[80];
    net_format(sim_address(sim), addr, sizeof(addr));
    printf("listening on %s\n", addr);
    fflush(stdout);
    loop_run(&loop);
    rc = 0;
fail:
    loop_finish(&loop);
    sim_free(sim);
    tls_server_free(tls);
    event_base_free(base);
    return rc;
}

int sim_main(int argc, char **argv)
{
    struct sim_settings s;
    struct config_err err;
    int r = sim_settings_parse(&s, argc, argv, &err);
    if (r != 0)
        return cli_exit(&sim_command, r, &err);
    if (s.calibrate.on)
        return sim_calibrate_run(&s.calibrate);
    return sim_run(&s);
}
