/* replay_cmd: the `tokentap replay` command around the replay engine
 * (replay.c): options, the target (an embedded sim or a URL), the rules,
 * the summary. */
#include "load/replay.h"
#include "load/replay_int.h"
#include "serve/ui.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/files.h"
#include "core/jsonw.h"
#include "load/agentic.h"
#include "load/loadgen.h"
#include "core/log.h"
#include "tap/metrics.h"
#include "wire/net.h"
#include "tap/reqlog.h"
#include "load/summary.h"

/* --- options --- */

enum {
    OPT_TARGET = 1,
    OPT_TIMING,
    OPT_SPEED,
    OPT_CONCURRENCY,
    OPT_RATE,
    OPT_ARRIVAL,
    OPT_DURATION,
    OPT_REQUESTS,
    OPT_HISTORY,
    OPT_LOG,
    OPT_LOG_GAPS,
    OPT_OUT,
    OPT_QUIET,
    OPT_ON_ERROR,
    OPT_SEED,
    OPT_RESPONSE_TIMEOUT,
    OPT_STREAM_TIMEOUT,
    OPT_SIM_SLOTS,
    OPT_SIM_DECODE,
    OPT_SIM_PREFILL,
    OPT_LOG_LEVEL,
    OPT_THINKING,
    OPT_CONFIG,
    OPT_UI,
    OPT_MAX_GAP,
    OPT_USERS,
    OPT_RAMP,
    OPT_RECYCLE,
    OPT_ISL_SCALE,
    OPT_OSL_SCALE,
    OPT_MAX_ISL,
    OPT_API,
    OPT_MODEL_MAP,
    OPT_CA_FILE,
    OPT_INSECURE,
};

static const struct cli_option replay_options[] = {
    {"target", 't', "URL|sim", "where to send: http://HOST:PORT, https://..., or 'sim' for the built-in simulator (default sim)", OPT_TARGET},
    CLI_OPTION_CA_FILE(OPT_CA_FILE),
    CLI_OPTION_INSECURE(OPT_INSECURE),
    {"timing", 0, "original|think|none", "original: each request at its recorded offset (default unless --concurrency or --rate); agentic traces also: think (the recorded think time after what it waits for), none (back to back)", OPT_TIMING},
    {"speed", 0, "X", "recorded offsets and waits divided by X (default 1)", OPT_SPEED},
    {"max-gap", 0, "DURATION", "agentic traces: no wait longer than this", OPT_MAX_GAP},
    {"concurrency", 'c', "N", "closed loop: keep N requests in flight", OPT_CONCURRENCY},
    {"rate", 'r', "R", "open loop: R requests per second", OPT_RATE},
    {"arrival", 0, "poisson|constant", "open loop arrivals (default poisson)", OPT_ARRIVAL},
    {"duration", 'd', "DURATION", "open loop, --recycle: stop sending after this long", OPT_DURATION},
    {"requests", 'n', "K", "open loop, --recycle: send K requests (default: the trace's size)", OPT_REQUESTS},
    {"users", 'u', "N", "agentic traces: N traces running at once, the next starting when one ends (default all)", OPT_USERS},
    {"ramp", 0, "DURATION", "agentic traces: spread the first N starts over this long", OPT_RAMP},
    {"recycle", 0, NULL, "agentic traces: start the traces over when all ran (needs --duration or --requests)", OPT_RECYCLE},
    {"isl-scale", 0, "F", "agentic traces: scale every input by F, blocks and all (default 1)", OPT_ISL_SCALE},
    {"osl-scale", 0, "F", "agentic traces: scale every output by F (default 1)", OPT_OSL_SCALE},
    {"max-isl", 0, "N", "agentic traces: drop requests of more than N (scaled) input tokens, and what waits for them", OPT_MAX_ISL},
    {"api", 0, "anthropic|openai", "agentic traces: send /v1/messages (default) or /v1/chat/completions", OPT_API},
    {"model-map", 0, "PATTERN=NAME,...", "agentic traces: send recorded models matching PATTERN as NAME (e.g. '*opus*=big,*haiku*=small')", OPT_MODEL_MAP},
    {"history", 0, "recorded|live", "later turns as recorded, or rebuilt from this run's answers (default recorded)", OPT_HISTORY},
    {"thinking", 0, "on|off|pass", "turn thinking on or off in every request, as serve's X-Tokentap-Thinking header does", OPT_THINKING},
    {"config", 0, "FILE", "apply the rewrite: rules of this serve config to every request", OPT_CONFIG},
    {"log", 0, "FILE", "one JSON line per request (the proxy's record schema), appended to FILE", OPT_LOG},
    {"log-gaps", 0, NULL, "include every inter-token gap in --log lines", OPT_LOG_GAPS},
    {"out", 'o', "FILE", "summary JSON: counts, outcomes, throughput, percentiles, send lag", OPT_OUT},
    {"quiet", 'q', NULL, "no progress lines (without a terminal they come every 5 s)", OPT_QUIET},
    {"on-error", 0, "skip|stop", "a malformed trace line: skip it (default) or stop", OPT_ON_ERROR},
    {"seed", 0, "N", "seed for Poisson arrivals (default 1)", OPT_SEED},
    {"response-timeout", 0, "DURATION", "wait for a response head (default 10m)", OPT_RESPONSE_TIMEOUT},
    {"stream-timeout", 0, "DURATION", "longest silence mid-response (default 5m)", OPT_STREAM_TIMEOUT},
    {"sim-slots", 0, "N", "with --target sim: slots (default 3)", OPT_SIM_SLOTS},
    {"sim-decode-tps", 0, "N", "with --target sim: tokens/s per slot (default 50)", OPT_SIM_DECODE},
    {"sim-prefill-tps", 0, "N", "with --target sim: prompt tokens/s per slot (default 1500)", OPT_SIM_PREFILL},
    {"ui", 0, "HOST:PORT", "serve the live dashboard of this run at http://HOST:PORT/tokentap/", OPT_UI},
    CLI_OPTION_LOG_LEVEL(OPT_LOG_LEVEL),
    {NULL, 0, NULL, NULL, 0},
};

static const struct cli_command replay_command = {
    .name = "replay",
    .usage = "tokentap replay TRACE [--target URL|sim] [--timing original [--speed X] | "
             "--concurrency N | --rate R [--duration D | --requests K]] [OPTIONS]\n"
             "       tokentap replay AGENTIC_TRACE|DIR [--timing original|think|none] [--users N] "
             "[--isl-scale F] [OPTIONS]",
    .summary =
        "Send a trace to a target and measure every streamed token. TRACE is a file written\n"
        "by 'tokentap serve --record', a JSONL of {\"messages\":[...]} or {\"prompt\":...}\n"
        "requests, or a length-only trace ({\"timestamp\",\"input_length\",\"output_length\"}).\n"
        "Requests of one session are sent in order, each after the previous one finished.\n"
        "Open-loop latency counts from the intended send time (no coordinated omission).\n"
        "An agentic trace (kv-cache-tester's format: a main agent and its sub-agents, with\n"
        "hash ids per prompt block), or a directory of them, replays its session graph with\n"
        "prompts that share exactly the recorded prefixes, and reports prompt-cache reuse.",
    .options = replay_options,
    .epilog = "See docs/replay.md for the trace format and the timing modes.\n",
};

/* Writes --out (if asked) and prints the summary. 0, or -errno when --out
 * cannot be written. */
static int write_summary(struct replay_run *run, usec_t end)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    char when[40];
    double secs = (double)(end - run->start) / 1e6;
    struct metrics_brief brief;
    metrics_brief(run->metrics, end, &brief);
    clock_format_wall(clock_wall() - (end - run->start), when, sizeof(when));
    evbuffer_add_printf(b, "{\"tokentap_version\":\"%s\",\"command\":\"replay\",\"trace\":", TOKENTAP_VERSION);
    jsonw_cstr(b, run->o.trace);
    evbuffer_add_printf(b, ",\"target\":");
    jsonw_cstr(b, run->target_url);
    const char *mode = run->o.sched.mode == ARRIVAL_CONCURRENCY ? "concurrency"
                       : run->o.sched.mode == ARRIVAL_RATE
                           ? "rate"
                           : agentic_timing_name(run->o.agentic.timing);
    evbuffer_add_printf(b, ",\"mode\":{\"timing\":\"%s\",\"speed\":", mode);
    jsonw_double(b, run->o.sched.speed);
    evbuffer_add_printf(b, ",\"concurrency\":%u,\"rate\":", run->o.sched.concurrency);
    jsonw_double(b, run->o.sched.rate);
    evbuffer_add_printf(b, ",\"arrival\":\"%s\",\"history\":\"%s\"},\"started\":\"%s\",\"duration_s\":",
                        run->o.sched.process == ARRIVAL_POISSON ? "poisson" : "constant",
                        run->o.history == REPLAY_HISTORY_LIVE ? "live" : "recorded", when);
    jsonw_double(b, secs);
    evbuffer_add_printf(b,
                        ",\"complete\":%s,\"requests_planned\":%llu,\"requests_sent\":%llu,"
                        "\"requests_finished\":%llu,\"trace_lines_skipped\":%u,\"throughput\":{"
                        "\"requests_per_s\":",
                        run->interrupted || run->failed ? "false" : "true",
                        (unsigned long long)run->total, (unsigned long long)run->sent,
                        (unsigned long long)run->finished, run->skipped_lines);
    jsonw_double(b, secs > 0 ? (double)run->finished / secs : 0);
    EVBUFFER_ADD_LIT(b, ",\"output_tokens_per_s\":");
    jsonw_double(b, secs > 0 ? (double)brief.output_tokens / secs : 0);
    EVBUFFER_ADD_LIT(b, "},");
    metrics_hist_json(b, "send_lag_ms", &run->send_lag);
    EVBUFFER_ADD_LIT(b, ",");
    metrics_hist_json(b, "ttft_uncorrected_ms", &run->ttft_uncorrected);
    EVBUFFER_ADD_LIT(b, ",\"stats\":");
    metrics_stats_json(run->metrics, b, end);
    if (run->ag)
        replay_agentic_summary(run, b);
    EVBUFFER_ADD_LIT(b, "}\n");

    size_t len = evbuffer_get_length(b);
    char *text = (char *)evbuffer_pullup(b, -1);
    int r = text ? 0 : -ENOMEM;
    if (text && run->o.out_path) {
        r = files_write_atomic(run->o.out_path, text, len);
        if (r < 0)
            log_error("cannot write %s: %s", run->o.out_path, strerror(-r));
    }
    cJSON *json = text ? cJSON_ParseWithLength(text, len) : NULL;
    if (json)
        summary_print(stdout, json);
    cJSON_Delete(json);
    evbuffer_free(b);
    return r;
}

/* Fails fast when the target does not answer at all. */
static int probe_target(struct replay_run *run)
{
    struct loadgen_req rq = {.method = "GET", .path = "/health", .thinking = -1};
    struct loadgen_fetched f;
    struct config_err err;
    int r = loadgen_fetch(run->base, run->target_url, &run->o.tls, &rq, 10 * USEC_PER_SEC, &f,
                          &err);
    if (r < 0) {
        fprintf(stderr, "tokentap replay: %s\n", r == -EINVAL ? err.msg : strerror(-r));
        return r;
    }
    free(f.body);
    if (f.outcome == RECORD_UPSTREAM_ERROR || f.outcome == RECORD_TIMEOUT || !f.status) {
        fprintf(stderr, "tokentap replay: target %s does not answer: %s\n", run->target_url,
                f.error[0] ? f.error : "no response");
        return -ECONNREFUSED;
    }
    return 0;
}

/* --timing, --concurrency, --rate: one mode, given once or repeated. */
static int parse_timing(struct cli_parser *p, int id, const char *v, struct replay_options *o,
                        bool *timing_set)
{
    static const enum arrival_mode modes[] = {[OPT_TIMING] = ARRIVAL_ORIGINAL,
                                              [OPT_CONCURRENCY] = ARRIVAL_CONCURRENCY,
                                              [OPT_RATE] = ARRIVAL_RATE};
    int r = 0;
    if (id == OPT_TIMING) {
        if (agentic_timing_parse(v, &o->agentic.timing) < 0)
            return cli_expected(p, "original, think or none", v);
        if (o->agentic.timing != AGENTIC_TIMING_ORIGINAL)
            o->agentic.used = true;
    }
    if (*timing_set && o->sched.mode != modes[id])
        return cli_usage(p, "choose one of --timing original, --concurrency N, --rate R");
    if (id == OPT_CONCURRENCY)
        r = cli_unsigned(p, v, 1, 100000, &o->sched.concurrency);
    else if (id == OPT_RATE)
        r = cli_double(p, v, 0.001, 1e6, &o->sched.rate);
    if (r == 0) {
        o->sched.mode = modes[id];
        *timing_set = true;
    }
    return r;
}

/* A value that must be one of names[] (NULL-terminated): its index. */
static int parse_choice(struct cli_parser *p, const char *v, const char *const *names,
                        bool any_case, const char *what, int *ret)
{
    for (int i = 0; names[i]; i++) {
        if ((any_case ? strcasecmp(v, names[i]) : strcmp(v, names[i])) == 0) {
            *ret = i;
            return 0;
        }
    }
    return cli_expected(p, what, v);
}

/* The options only agentic traces take. */
static int parse_agentic(struct cli_parser *p, int id, const char *v, struct replay_agentic_options *a)
{
    static const char *const apis[] = {"anthropic", "openai", NULL};
    struct config_err maperr;
    int i = 0, r = 0;
    a->used = true;
    switch (id) {
    case OPT_MAX_GAP: r = cli_duration(p, v, &a->max_gap); break;
    case OPT_USERS: r = cli_unsigned(p, v, 1, 100000, &a->users); break;
    case OPT_RAMP: r = cli_duration(p, v, &a->ramp); break;
    case OPT_RECYCLE: a->recycle = true; break;
    case OPT_ISL_SCALE: r = cli_double(p, v, 0.0001, 100, &a->isl_scale); break;
    case OPT_OSL_SCALE: r = cli_double(p, v, 0.0001, 100, &a->osl_scale); break;
    case OPT_MAX_ISL: r = cli_u64(p, v, 1, 100000000, &a->max_isl); break;
    case OPT_API:
        if ((r = parse_choice(p, v, apis, false, "anthropic or openai", &i)) == 0)
            a->api = i ? AGENTIC_API_OPENAI : AGENTIC_API_ANTHROPIC;
        break;
    case OPT_MODEL_MAP:
        if (agentic_model_map_check(v, &maperr) < 0)
            return cli_usage(p, "--model-map: %s", maperr.msg);
        a->model_map = v;
        break;
    }
    return r;
}

/* Any option but the timing mode. */
static int parse_option(struct cli_parser *p, int id, const char *v, struct replay_options *o)
{
    static const char *const histories[] = {"recorded", "live", NULL};
    static const char *const thinking[] = {"on", "off", "pass", NULL};
    static const enum rewrite_thinking thinking_values[] = {
        REWRITE_THINKING_ON, REWRITE_THINKING_OFF, REWRITE_THINKING_PASS};
    static const char *const on_error[] = {"skip", "stop", NULL};
    struct url_target t;
    struct config_err urlerr;
    uint64_t u;
    int i = 0, r = 0;
    switch (id) {
    case OPT_TARGET:
        if (strcmp(v, "sim") != 0 && url_parse(v, &t, &urlerr) < 0)
            return cli_usage(p, "--target: %s", urlerr.msg);
        o->target = v;
        break;
    case OPT_SPEED: r = cli_double(p, v, 0.001, 1e6, &o->sched.speed); break;
    case OPT_ARRIVAL:
        if (arrival_parse_process(v, &o->sched.process) < 0)
            return cli_expected(p, "poisson or constant", v);
        break;
    case OPT_DURATION: r = cli_duration(p, v, &o->duration); break;
    case OPT_REQUESTS: r = cli_u64(p, v, 1, 100000000, &o->requests); break;
    case OPT_HISTORY:
        if ((r = parse_choice(p, v, histories, false, "recorded or live", &i)) == 0)
            o->history = i ? REPLAY_HISTORY_LIVE : REPLAY_HISTORY_RECORDED;
        break;
    case OPT_THINKING:
        if ((r = parse_choice(p, v, thinking, true, "on, off or pass", &i)) == 0)
            o->thinking = thinking_values[i];
        break;
    case OPT_CONFIG: o->config = v; break;
    case OPT_CA_FILE: o->tls.ca_file = v; r = cli_readable(p, v); break;
    case OPT_INSECURE: o->tls.insecure = true; break;
    case OPT_LOG: o->log_path = v; break;
    case OPT_LOG_GAPS: o->log_gaps = true; break;
    case OPT_OUT: o->out_path = v; break;
    case OPT_QUIET: o->quiet = true; break;
    case OPT_ON_ERROR:
        if ((r = parse_choice(p, v, on_error, false, "skip or stop", &i)) == 0)
            o->stop_on_error = i == 1;
        break;
    case OPT_SEED:
        if ((r = cli_u64(p, v, 0, UINT64_MAX, &u)) == 0)
            o->sched.rng = u ? u : 1;
        break;
    case OPT_RESPONSE_TIMEOUT: r = cli_duration(p, v, &o->response_timeout); break;
    case OPT_STREAM_TIMEOUT: r = cli_duration(p, v, &o->stream_timeout); break;
    case OPT_SIM_SLOTS: r = cli_unsigned(p, v, 1, 100000, &o->sim.slots); break;
    case OPT_SIM_DECODE: r = cli_double(p, v, 0.001, 1e7, &o->sim.decode_tps); break;
    case OPT_SIM_PREFILL: r = cli_double(p, v, 0.001, 1e9, &o->sim.prefill_tps); break;
    case OPT_LOG_LEVEL: r = cli_log_level(p, v, &o->log_level); break;
    case OPT_UI: o->ui = v; break;
    default: return parse_agentic(p, id, v, &o->agentic);
    }
    return r;
}

static void settings_default(struct replay_options *o)
{
    memset(o, 0, sizeof(*o));
    o->thinking = REWRITE_THINKING_UNSET;
    arrival_init(&o->sched, ARRIVAL_ORIGINAL, 1);
    o->target = "sim";
    o->response_timeout = 600 * USEC_PER_SEC;
    o->stream_timeout = 300 * USEC_PER_SEC;
    sim_options_default(&o->sim);
    o->sim.listen = "127.0.0.1:0";
    o->sim.quiet = true;
    o->log_level = LOG_LEVEL_INFO;
    o->agentic.isl_scale = o->agentic.osl_scale = 1;
}

int replay_settings_parse(struct replay_options *o, int argc, char **argv, struct config_err *err)
{
    struct cli_parser p;
    const char *v;
    int id, r = 0;
    bool timing_set = false;
    settings_default(o);
    cli_init(&p, &replay_command, argc, argv, err);
    while (r == 0 && (id = cli_next(&p, &v)) != CLI_END) {
        if (id == CLI_HELP)
            return CLI_RUN_HELP;
        if (id == CLI_ERROR)
            return -EINVAL;
        if (id == CLI_POSITIONAL && o->trace)
            return cli_usage(&p, "one trace only (got '%s' and '%s')", o->trace, v);
        if (id == CLI_POSITIONAL)
            o->trace = v;
        else if (id == OPT_TIMING || id == OPT_CONCURRENCY || id == OPT_RATE)
            r = parse_timing(&p, id, v, o, &timing_set);
        else
            r = parse_option(&p, id, v, o);
    }
    if (r < 0)
        return r;
    if (!o->trace)
        return cli_usage(&p, "which trace? (tokentap replay TRACE ...)");
    if (o->sched.mode != ARRIVAL_RATE && !o->agentic.recycle && (o->duration || o->requests))
        return cli_usage(&p, "--duration and --requests go with --rate or --recycle");
    if (o->agentic.recycle && !o->duration && !o->requests)
        return cli_usage(&p, "--recycle runs until --duration D or --requests K: give one");
    if (o->agentic.used && o->sched.mode != ARRIVAL_ORIGINAL)
        return cli_usage(&p, "--concurrency and --rate do not go with agentic traces' options "
                             "(their graph sets the concurrency; use --users and --timing)");
    return 0;
}

static int load_rules(struct replay_run *run)
{
    struct config_doc *doc = NULL;
    struct config_err err;
    int r = 0;
    if (run->o.config)
        r = config_load_file(run->o.config, &doc, &err);
    if (r == 0)
        r = rewrite_rules_load(doc, doc ? cJSON_GetObjectItemCaseSensitive(config_root(doc), "rewrite") : NULL,
                               &run->rules, &err);
    if (r < 0)
        fprintf(stderr, "tokentap replay: %s\n", err.msg);
    config_free(doc);
    return r;
}

/* The target: the embedded simulator or the URL, probed. 0 or -errno (printed). */
static int start_target(struct replay_run *run)
{
    if (strcmp(run->o.target, "sim") == 0) {
        int r = sim_new(run->base, &run->o.sim, &run->sim);
        if (r < 0)
            return r;
        char addr[80];
        net_format(sim_address(run->sim), addr, sizeof(addr));
        snprintf(run->target_url, sizeof(run->target_url), "http://%s", addr);
    } else {
        snprintf(run->target_url, sizeof(run->target_url), "%s", run->o.target);
        if (run->o.tls.insecure && strncmp(run->target_url, "https:", 6) == 0)
            log_warn("%s: certificate checks are off (--insecure): anyone on the way can read "
                     "and change this traffic", run->target_url);
    }
    return probe_target(run);
}

/* The metrics, the request log and the load generator. 0 or -errno (printed). */
static int start_load(struct replay_run *run)
{
    struct metrics_options mo;
    metrics_options_default(&mo);
    mo.recent = 0;
    int r = metrics_new(&mo, clock_now(), &run->metrics);
    if (r < 0)
        return r;
    if (run->o.log_path && (r = reqlog_open(run->o.log_path, run->o.log_gaps, &run->log)) < 0) {
        fprintf(stderr, "tokentap replay: cannot open %s: %s\n", run->o.log_path, strerror(-r));
        return r;
    }
    struct loadgen_options lo;
    loadgen_options_default(&lo);
    lo.url = run->target_url;
    lo.label = strcmp(run->o.target, "sim") == 0 ? "sim" : run->target_url;
    lo.response_timeout = run->o.response_timeout;
    lo.stream_timeout = run->o.stream_timeout;
    lo.pool.tls = run->o.tls;
    lo.metrics = run->metrics;
    lo.log = run->log;
    lo.keep_text = run->o.history == REPLAY_HISTORY_LIVE; /* only live history reads answers */
    if (run->o.ui) {
        if ((r = ui_new(run->base, run->o.ui, "tokentap replay", run->metrics, &run->ui)) < 0) {
            fprintf(stderr, "tokentap replay: --ui %s: cannot listen there\n", run->o.ui);
            return r;
        }
        char url[128];
        ui_url(run->ui, url, sizeof(url));
        fprintf(stderr, "tokentap replay: dashboard at %s\n", url);
        lo.live = ui_live(run->ui);
    }
    struct config_err err;
    if ((r = loadgen_new(run->base, &lo, &run->lg, &err)) < 0)
        fprintf(stderr, "tokentap replay: %s\n", err.msg);
    return r;
}

/* Options that do not fit the trace's kind: true after printing why.
 * (Settings cannot tell: the kind is in the file.) */
static bool agentic_misuse(const struct replay_options *o, bool agentic)
{
    const char *why = NULL;
    if (!agentic && o->agentic.used)
        why = "--timing think|none, --max-gap, --users, --ramp, --recycle, --isl-scale, --osl-scale, "
              "--max-isl, --api and --model-map are for agentic traces, and this is a JSONL trace";
    else if (agentic && o->sched.mode != ARRIVAL_ORIGINAL)
        why = "an agentic trace runs its own session graph: --concurrency and --rate do not apply "
              "(use --timing original|think|none and --users)";
    else if (agentic && o->history == REPLAY_HISTORY_LIVE)
        why = "--history live does not apply to an agentic trace (its prompts are made from hash ids)";
    if (why)
        fprintf(stderr, "tokentap replay: %s: %s\n", o->trace, why);
    return why != NULL;
}

/* Reads the trace and the rules, sends, writes the summary; the exit status. */
static int replay_run(const struct replay_options *o)
{
    struct replay_run run;
    memset(&run, 0, sizeof(run));
    run.o = *o;
    int r, rc = 1;
    log_set_level(o->log_level);
    net_raise_fd_limit();
    run.base = net_event_base_new(NET_LOOP_PRECISE);
    if (!run.base)
        goto fail;
    if ((run.o.config || run.o.thinking != REWRITE_THINKING_UNSET) && load_rules(&run) < 0) {
        rc = 2;
        goto fail;
    }
    bool agentic = false;
    r = replay_agentic_detect(run.o.trace, &agentic);
    if (r == 0 && agentic_misuse(&run.o, agentic))
        r = -EINVAL;
    if (r == 0)
        r = agentic ? replay_agentic_load(&run) : replay_load_trace(&run);
    if (r < 0) {
        /* A trace that is not there or cannot be read is as wrong an
         * argument as one that does not parse. */
        rc = r == -EINVAL || r == -EBADMSG || r == -ENOENT || r == -EACCES || r == -EISDIR ? 2 : 1;
        goto fail;
    }
    if (start_target(&run) < 0 || start_load(&run) < 0 ||
        (agentic && replay_agentic_calibrate(&run) < 0) || replay_run_loop(&run) < 0)
        goto fail;
    usec_t end = clock_now();
    if (!run.o.quiet && run.tty)
        fprintf(stderr, "\n");
    if (run.interrupted || run.failed)
        fprintf(stderr, "tokentap replay: %s: results are partial (marked incomplete)\n",
                run.interrupted ? "interrupted" : "stopped");
    r = write_summary(&run, end);
    rc = run.interrupted ? 130 : run.failed || r < 0 ? 1 : 0;
fail:
    replay_run_free(&run);
    return rc;
}

int replay_main(int argc, char **argv)
{
    struct replay_options o;
    struct config_err err;
    int r = replay_settings_parse(&o, argc, argv, &err);
    if (r != 0)
        return cli_exit(&replay_command, r, &err);
    return replay_run(&o);
}
