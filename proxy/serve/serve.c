#include "serve/serve.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "wire/net.h"
#include "tap/metrics.h"
#include "serve/admin.h"
#include "serve/dash.h"
#include "serve/proxy.h"
#include "tap/live.h"
#include "tap/reqlog.h"
#include "rewrite/rewrite.h"
#include "wire/server.h"
#include "tap/trace.h"

#define MAX_UPSTREAMS 64
#define MAX_MODELS 64

/* Everything `serve` runs with, after defaults, the file and the flags. */
struct serve_settings {
    const char *listen;
    const char *upstream_url;     /* --upstream: the default upstream's URL */
    struct proxy_upstream_config ups[MAX_UPSTREAMS];
    const char *models[MAX_UPSTREAMS][MAX_MODELS];
    size_t n_ups;
    bool reject_unknown;
    uint64_t max_body, max_header;
    unsigned max_connections;
    unsigned upstream_connections;
    usec_t connect_timeout, response_timeout, stream_timeout, client_idle_timeout, drain_timeout;
    const char *log_path;
    bool log_gaps;
    const char *session_header;
    unsigned concurrency_buckets;
    struct metrics_buckets slow_buckets, fast_buckets; /* n == 0: the defaults */
    const char *record_dir;
    bool record_events;
    uint64_t record_max_file;
    const char *redact[32];
    size_t n_redact;
};

enum {
    OPT_CONFIG = 1,
    OPT_LISTEN,
    OPT_UPSTREAM,
    OPT_REJECT_UNKNOWN,
    OPT_MAX_BODY,
    OPT_MAX_HEADER,
    OPT_MAX_CONNECTIONS,
    OPT_UPSTREAM_CONNECTIONS,
    OPT_CONNECT_TIMEOUT,
    OPT_RESPONSE_TIMEOUT,
    OPT_STREAM_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_DRAIN_TIMEOUT,
    OPT_LOG_LEVEL,
    OPT_LOG,
    OPT_LOG_GAPS,
    OPT_SESSION_HEADER,
    OPT_CONCURRENCY_BUCKETS,
    OPT_RECORD,
    OPT_RECORD_EVENTS,
    OPT_RECORD_MAX_FILE,
    OPT_REDACT,
};

static const struct cli_option serve_options[] = {
    {"config", 'c', "FILE", "config file (YAML or JSON): upstreams, models, limits, timeouts", OPT_CONFIG},
    {"listen", 'l', "HOST:PORT", "address to listen on; port 0 picks a free one (default 127.0.0.1:8080)", OPT_LISTEN},
    {"upstream", 'u', "URL", "the default upstream, e.g. http://127.0.0.1:7080 (default as in the file, else that)", OPT_UPSTREAM},
    {"reject-unknown-models", 0, NULL, "answer 404 for a model no upstream lists (default: send it to the default upstream)", OPT_REJECT_UNKNOWN},
    {"max-body", 0, "SIZE", "largest request body; larger gets 413 (default 64M)", OPT_MAX_BODY},
    {"max-header", 0, "SIZE", "largest request header block; larger gets 431 (default 64K)", OPT_MAX_HEADER},
    {"max-connections", 0, "N", "client connections open at once (default 4096)", OPT_MAX_CONNECTIONS},
    {"upstream-connections", 0, "N", "connections per upstream; more requests wait (default: --max-connections)", OPT_UPSTREAM_CONNECTIONS},
    {"connect-timeout", 0, "DURATION", "upstream connect timeout; then 504 (default 5s)", OPT_CONNECT_TIMEOUT},
    {"response-timeout", 0, "DURATION", "wait for the upstream's response head, queueing and prefill included; then 504 (default 10m)", OPT_RESPONSE_TIMEOUT},
    {"stream-timeout", 0, "DURATION", "longest silence inside a streamed response; then the stream is cut (default 5m)", OPT_STREAM_TIMEOUT},
    {"idle-timeout", 0, "DURATION", "close idle client connections after this (default 60s)", OPT_IDLE_TIMEOUT},
    {"drain-timeout", 0, "DURATION", "on SIGINT/SIGTERM, let streams finish this long (default 30s)", OPT_DRAIN_TIMEOUT},
    {"log", 0, "FILE", "append one JSON line per finished request (reopened on SIGHUP)", OPT_LOG},
    {"log-gaps", 0, NULL, "include every inter-token gap in --log lines", OPT_LOG_GAPS},
    {"session-header", 0, "NAME", "header naming the session (besides X-Claude-Code-Session-Id, X-Session-ID)", OPT_SESSION_HEADER},
    {"concurrency-buckets", 0, "N", "concurrency levels 1..N-1 kept apart, N and above together (default 16)", OPT_CONCURRENCY_BUCKETS},
    {"record", 0, "DIR", "record every exchange as a replayable trace (JSONL files in DIR)", OPT_RECORD},
    {"record-events", 0, NULL, "also record every response event with its arrival time", OPT_RECORD_EVENTS},
    {"record-max-file", 0, "SIZE", "start a new trace file beyond this size (default 256M)", OPT_RECORD_MAX_FILE},
    {"redact", 0, "HEADER", "also redact this header in traces (repeatable; authorization, x-api-key, cookie... always)", OPT_REDACT},
    {"log-level", 0, "LEVEL", "error, warn, info or debug (default info)", OPT_LOG_LEVEL},
    {NULL, 0, NULL, NULL, 0},
};

static const struct cli_command serve_command = {
    .name = "serve",
    .usage = "tokentap serve [-c FILE] [--listen HOST:PORT] [--upstream URL] [OPTIONS]",
    .summary =
        "Run the streaming reverse proxy in front of llama-server. Point clients at it\n"
        "(Claude Code: ANTHROPIC_BASE_URL=http://127.0.0.1:8080; OpenAI SDKs: base_url\n"
        "http://127.0.0.1:8080/v1). Every route passes through; a request's \"model\" picks\n"
        "the upstream when several are configured. Every streamed token is time-stamped:\n"
        "the live dashboard is at http://HOST:PORT/tokentap/; GET /tokentap/stats (JSON,\n"
        "per concurrency level), /tokentap/metrics (Prometheus), /tokentap/requests?limit=N,\n"
        "/tokentap/health. Prints 'listening on HOST:PORT'.",
    .options = serve_options,
    .epilog = "Flags override the config file. See docs/serve.md and config/serve.yaml.\n",
};

static void settings_default(struct serve_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->listen = "127.0.0.1:8080";
    s->max_body = 64ull * 1024 * 1024;
    s->max_header = 64 * 1024;
    s->max_connections = 4096;
    s->connect_timeout = 5 * USEC_PER_SEC;
    s->response_timeout = 600 * USEC_PER_SEC;
    s->stream_timeout = 300 * USEC_PER_SEC;
    s->client_idle_timeout = 60 * USEC_PER_SEC;
    s->drain_timeout = 30 * USEC_PER_SEC;
    s->concurrency_buckets = 16;
}

/* Reads the config file into s; strings stay owned by doc. */
/* metrics.buckets.slow/fast: a list of bounds (durations, ascending) or
 * {min, max, per_decade} for log-spaced ones. */
static int load_buckets(struct config_doc *doc, const cJSON *node, struct metrics_buckets *ret,
                        struct config_err *err)
{
    if (!node)
        return 0;
    struct metrics_buckets b = {0};
    if (cJSON_IsArray(node)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, node)
        {
            usec_t v;
            bool ok = (cJSON_IsNumber(e) && e->valuedouble > 0 && e->valuedouble < 1e6 &&
                       (v = (usec_t)llround(e->valuedouble * 1e6)) > 0) ||
                      (cJSON_IsString(e) && cli_duration_value(e->valuestring, &v) == 0 && v > 0);
            if (!ok)
                return config_error(doc, e, err, "a bucket bound must be a duration like 5ms or 0.005");
            if (b.n == METRICS_MAX_BUCKETS)
                return config_error(doc, e, err, "more than %d buckets", METRICS_MAX_BUCKETS);
            if (b.n && v <= b.le[b.n - 1])
                return config_error(doc, e, err, "bucket bounds must go up");
            b.le[b.n++] = v;
        }
        if (b.n == 0)
            return config_error(doc, node, err, "an empty list of buckets");
    } else if (cJSON_IsObject(node)) {
        static const char *const keys[] = {"min", "max", "per_decade", NULL};
        usec_t min = 0, max = 0;
        uint64_t per = 10;
        int r;
        if ((r = config_check_keys(doc, node, keys, err)) < 0 ||
            (r = config_get_duration(doc, node, "min", &min, err)) < 0 ||
            (r = config_get_duration(doc, node, "max", &max, err)) < 0 ||
            (r = config_get_u64(doc, node, "per_decade", 1, 100, &per, err)) < 0)
            return r;
        if (metrics_buckets_log(&b, min, max, (unsigned)per) < 0)
            return config_error(doc, node, err, "buckets: need 0 < min <= max and at most %d bounds",
                                METRICS_MAX_BUCKETS);
    } else {
        return config_error(doc, node, err, "buckets: a list of bounds or {min, max, per_decade}");
    }
    *ret = b;
    return 0;
}

static int load_file(struct config_doc *doc, struct serve_settings *s, struct config_err *err)
{
    static const char *const top[] = {"listen", "upstreams", "routing", "limits", "timeouts",
                                      "log", "metrics", "record", "rewrite", NULL};
    static const char *const record_keys[] = {"dir", "events", "max_file", "redact", NULL};
    static const char *const log_keys[] = {"file", "gaps", NULL};
    static const char *const metrics_keys[] = {"session_header", "concurrency_buckets", "buckets", NULL};
    static const char *const up_keys[] = {"name", "url", "models", "default", "max_connections", NULL};
    static const char *const routing_keys[] = {"unknown_model", NULL};
    static const char *const limit_keys[] = {"max_body", "max_header", "max_connections",
                                             "upstream_connections", NULL};
    static const char *const timeout_keys[] = {"connect", "response", "stream", "client_idle",
                                               "drain", NULL};
    const cJSON *root = config_root(doc);
    int r = config_check_keys(doc, root, top, err);
    if (r < 0)
        return r;
    if ((r = config_get_string(doc, root, "listen", false, &s->listen, err)) < 0)
        return r;

    const cJSON *ups = cJSON_GetObjectItemCaseSensitive(root, "upstreams");
    if (ups && !cJSON_IsArray(ups))
        return config_error(doc, ups, err, "'upstreams' must be a list");
    const cJSON *u;
    cJSON_ArrayForEach(u, ups)
    {
        if (s->n_ups == MAX_UPSTREAMS)
            return config_error(doc, u, err, "more than %d upstreams", MAX_UPSTREAMS);
        struct proxy_upstream_config *pc = &s->ups[s->n_ups];
        memset(pc, 0, sizeof(*pc));
        if ((r = config_check_keys(doc, u, up_keys, err)) < 0 ||
            (r = config_get_string(doc, u, "url", true, &pc->url, err)) < 0 ||
            (r = config_get_string(doc, u, "name", false, &pc->name, err)) < 0 ||
            (r = config_get_bool(doc, u, "default", &pc->is_default, err)) < 0)
            return r;
        uint64_t mc = 0;
        if ((r = config_get_u64(doc, u, "max_connections", 1, 65536, &mc, err)) < 0)
            return r;
        pc->max_connections = (unsigned)mc;
        char urlerr[256];
        struct url_target t;
        if (url_parse(pc->url, &t, urlerr, sizeof(urlerr)) < 0)
            return config_error(doc, cJSON_GetObjectItemCaseSensitive(u, "url"), err, "%s", urlerr);
        if (!pc->name)
            pc->name = pc->url;
        for (size_t i = 0; i < s->n_ups; i++)
            if (strcmp(s->ups[i].name, pc->name) == 0)
                return config_error(doc, u, err, "two upstreams are named '%s'", pc->name);
        const cJSON *models = cJSON_GetObjectItemCaseSensitive(u, "models");
        if (models && !cJSON_IsArray(models))
            return config_error(doc, models, err, "'models' must be a list of names");
        const cJSON *m;
        cJSON_ArrayForEach(m, models)
        {
            if (!cJSON_IsString(m))
                return config_error(doc, m, err, "model names must be strings");
            if (pc->n_models == MAX_MODELS)
                return config_error(doc, m, err, "more than %d models for one upstream", MAX_MODELS);
            for (size_t i = 0; i < s->n_ups; i++)
                for (size_t k = 0; k < s->ups[i].n_models; k++)
                    if (strcmp(s->models[i][k], m->valuestring) == 0)
                        return config_error(doc, m, err,
                                            "model '%s' is listed by upstreams '%s' and '%s'",
                                            m->valuestring, s->ups[i].name, pc->name);
            s->models[s->n_ups][pc->n_models++] = m->valuestring;
        }
        pc->models = s->models[s->n_ups];
        s->n_ups++;
    }
    size_t defaults = 0;
    for (size_t i = 0; i < s->n_ups; i++)
        defaults += s->ups[i].is_default;
    if (defaults > 1)
        return config_error(doc, ups, err, "more than one upstream has 'default: true'");

    const cJSON *routing = cJSON_GetObjectItemCaseSensitive(root, "routing");
    if (routing) {
        const char *unknown = NULL;
        if ((r = config_check_keys(doc, routing, routing_keys, err)) < 0 ||
            (r = config_get_string(doc, routing, "unknown_model", false, &unknown, err)) < 0)
            return r;
        if (unknown && strcmp(unknown, "reject") == 0)
            s->reject_unknown = true;
        else if (unknown && strcmp(unknown, "default") != 0)
            return config_error(doc, cJSON_GetObjectItemCaseSensitive(routing, "unknown_model"), err,
                                "'unknown_model' must be 'default' or 'reject'");
    }
    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(root, "limits");
    if (limits) {
        uint64_t v;
        if ((r = config_check_keys(doc, limits, limit_keys, err)) < 0 ||
            (r = config_get_size(doc, limits, "max_body", &s->max_body, err)) < 0 ||
            (r = config_get_size(doc, limits, "max_header", &s->max_header, err)) < 0)
            return r;
        v = s->max_connections;
        if ((r = config_get_u64(doc, limits, "max_connections", 1, 1000000, &v, err)) < 0)
            return r;
        s->max_connections = (unsigned)v;
        v = s->upstream_connections;
        if ((r = config_get_u64(doc, limits, "upstream_connections", 1, 65536, &v, err)) < 0)
            return r;
        s->upstream_connections = (unsigned)v;
    }
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(root, "log");
    if (log) {
        if ((r = config_check_keys(doc, log, log_keys, err)) < 0 ||
            (r = config_get_string(doc, log, "file", false, &s->log_path, err)) < 0 ||
            (r = config_get_bool(doc, log, "gaps", &s->log_gaps, err)) < 0)
            return r;
    }
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    if (metrics) {
        uint64_t v = s->concurrency_buckets;
        if ((r = config_check_keys(doc, metrics, metrics_keys, err)) < 0 ||
            (r = config_get_string(doc, metrics, "session_header", false, &s->session_header, err)) < 0 ||
            (r = config_get_u64(doc, metrics, "concurrency_buckets", 2, 1024, &v, err)) < 0)
            return r;
        s->concurrency_buckets = (unsigned)v;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(metrics, "buckets");
        static const char *const bucket_keys[] = {"slow", "fast", NULL};
        if (b && (r = config_check_keys(doc, b, bucket_keys, err)) < 0)
            return r;
        if (b && ((r = load_buckets(doc, cJSON_GetObjectItemCaseSensitive(b, "slow"), &s->slow_buckets, err)) < 0 ||
                  (r = load_buckets(doc, cJSON_GetObjectItemCaseSensitive(b, "fast"), &s->fast_buckets, err)) < 0))
            return r;
    }
    const cJSON *record = cJSON_GetObjectItemCaseSensitive(root, "record");
    if (record) {
        if ((r = config_check_keys(doc, record, record_keys, err)) < 0 ||
            (r = config_get_string(doc, record, "dir", true, &s->record_dir, err)) < 0 ||
            (r = config_get_bool(doc, record, "events", &s->record_events, err)) < 0 ||
            (r = config_get_size(doc, record, "max_file", &s->record_max_file, err)) < 0)
            return r;
        const cJSON *redact = cJSON_GetObjectItemCaseSensitive(record, "redact");
        if (redact && !cJSON_IsArray(redact))
            return config_error(doc, redact, err, "'redact' must be a list of header names");
        const cJSON *h;
        cJSON_ArrayForEach(h, redact)
        {
            if (!cJSON_IsString(h) || s->n_redact == 32)
                return config_error(doc, h, err, "'redact' takes up to 32 header names");
            s->redact[s->n_redact++] = h->valuestring;
        }
    }
    const cJSON *timeouts = cJSON_GetObjectItemCaseSensitive(root, "timeouts");
    if (timeouts) {
        if ((r = config_check_keys(doc, timeouts, timeout_keys, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "connect", &s->connect_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "response", &s->response_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "stream", &s->stream_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "client_idle", &s->client_idle_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "drain", &s->drain_timeout, err)) < 0)
            return r;
    }
    return 0;
}

struct serve_run {
    struct event_base *base;
    struct server *server;
    struct proxy *proxy;
    struct metrics *metrics;
    struct live *live;
    struct dash *dash;
    struct admin_source admin;
    struct reqlog *log;
    struct trace_writer *trace;
    struct event *drain_timer;
    usec_t drain_timeout;
    usec_t drain_deadline;
    bool draining;
};

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct serve_run *run = arg;
    unsigned left = proxy_in_flight(run->proxy);
    if (left == 0 || clock_now() >= run->drain_deadline) {
        if (left)
            log_warn("drain timeout: closing %u streams still in progress", left);
        event_base_loopexit(run->base, NULL);
        return;
    }
    struct timeval tv = {0, 100000};
    evtimer_add(run->drain_timer, &tv);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct serve_run *run = arg;
    if (run->log && reqlog_reopen(run->log) < 0)
        log_error("cannot reopen the request log: %s", strerror(errno));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct serve_run *run = arg;
    if (run->draining) {
        /* A second signal: stop now. */
        event_base_loopexit(run->base, NULL);
        return;
    }
    run->draining = true;
    run->drain_deadline = clock_now() + run->drain_timeout;
    log_info("stopping: no new connections; waiting for %u requests in progress",
             proxy_in_flight(run->proxy));
    server_shutdown(run->server);
    drain_check(-1, 0, run);
}

/* --- the router: /tokentap/ to admin, everything else to the proxy --- */

static unsigned admin_in_flight(void *ctx)
{
    const struct serve_run *run = ctx;
    return proxy_in_flight(run->proxy);
}

static size_t admin_n_upstreams(void *ctx)
{
    const struct serve_run *run = ctx;
    return proxy_upstream_count(run->proxy);
}

static void admin_upstream(void *ctx, size_t i, struct admin_upstream *ret)
{
    const struct serve_run *run = ctx;
    struct proxy_upstream_info u;
    proxy_upstream_info(run->proxy, i, &u);
    *ret = (struct admin_upstream){
        .name = u.name,
        .url = u.url,
        .is_default = u.is_default,
        .n_models = u.n_models,
        .models = u.models,
        .in_flight = u.in_flight,
        .pool = u.pool,
    };
}

/* Every callback of a /tokentap/ request goes to admin, the rest to the
 * proxy (the dashboard's event stream is admin's until it aborts). */
static bool to_admin(struct server_req *req)
{
    return admin_match(server_req_head(req));
}

static void route_head(void *ctx, struct server_req *req)
{
    struct serve_run *run = ctx;
    if (to_admin(req))
        admin_handler()->on_head(&run->admin, req);
    else
        proxy_handler()->on_head(run->proxy, req);
}

/* Admin answers in on_head and reads no bodies. */
static void route_body(void *ctx, struct server_req *req, const char *data, size_t len)
{
    struct serve_run *run = ctx;
    if (!to_admin(req))
        proxy_handler()->on_body(run->proxy, req, data, len);
}

static void route_end(void *ctx, struct server_req *req)
{
    struct serve_run *run = ctx;
    if (!to_admin(req))
        proxy_handler()->on_end(run->proxy, req);
}

static void route_drain(void *ctx, struct server_req *req)
{
    struct serve_run *run = ctx;
    if (!to_admin(req))
        proxy_handler()->on_drain(run->proxy, req);
}

static void route_abort(void *ctx, struct server_req *req)
{
    struct serve_run *run = ctx;
    if (to_admin(req))
        admin_handler()->on_abort(&run->admin, req);
    else
        proxy_handler()->on_abort(run->proxy, req);
}

static const struct server_handler router = {
    .on_head = route_head,
    .on_body = route_body,
    .on_end = route_end,
    .on_drain = route_drain,
    .on_abort = route_abort,
};

int serve_main(int argc, char **argv)
{
    struct serve_settings s;
    settings_default(&s);
    const struct cli_command *cmd = &serve_command;
    struct cli_parser p;
    const char *v, *config_path = NULL;
    int id, rc = 1;
    uint64_t u;
    enum log_level level;
    struct config_doc *doc = NULL;
    struct rewrite_rules *rules = NULL;

    /* Two passes: the file first, then flags over it. */
    cli_init(&p, cmd, argc, argv);
    while ((id = cli_next(&p, &v)) != CLI_END) {
        if (id == CLI_HELP)
            return 0;
        if (id == CLI_ERROR)
            return 2;
        if (id == CLI_POSITIONAL) {
            cli_usage_error(cmd, "unexpected argument '%s'", v);
            return 2;
        }
        if (id == OPT_CONFIG)
            config_path = v;
    }
    if (config_path) {
        struct config_err err;
        if (config_load_file(config_path, &doc, &err) < 0 || load_file(doc, &s, &err) < 0 ||
            rewrite_rules_load(doc, cJSON_GetObjectItemCaseSensitive(config_root(doc), "rewrite"),
                               &rules, &err) < 0) {
            fprintf(stderr, "tokentap serve: %s\n", err.msg);
            config_free(doc);
            return 2;
        }
    } else {
        /* No rules, but the X-Tokentap-Thinking header still works. */
        struct config_err err;
        if (rewrite_rules_load(NULL, NULL, &rules, &err) < 0) {
            fprintf(stderr, "tokentap serve: %s\n", err.msg);
            return 1;
        }
    }
    cli_init(&p, cmd, argc, argv);
    while ((id = cli_next(&p, &v)) != CLI_END) {
        switch (id) {
        case OPT_LISTEN: s.listen = v; break;
        case OPT_UPSTREAM: s.upstream_url = v; break;
        case OPT_REJECT_UNKNOWN: s.reject_unknown = true; break;
        case OPT_MAX_BODY:
            if (cli_parse_size(cmd, "--max-body", v, &s.max_body) < 0)
                goto usage;
            break;
        case OPT_MAX_HEADER:
            if (cli_parse_size(cmd, "--max-header", v, &s.max_header) < 0)
                goto usage;
            break;
        case OPT_MAX_CONNECTIONS:
            if (cli_parse_u64(cmd, "--max-connections", v, 1, 1000000, &u) < 0)
                goto usage;
            s.max_connections = (unsigned)u;
            break;
        case OPT_UPSTREAM_CONNECTIONS:
            if (cli_parse_u64(cmd, "--upstream-connections", v, 1, 65536, &u) < 0)
                goto usage;
            s.upstream_connections = (unsigned)u;
            break;
        case OPT_CONNECT_TIMEOUT:
            if (cli_parse_duration(cmd, "--connect-timeout", v, &s.connect_timeout) < 0)
                goto usage;
            break;
        case OPT_RESPONSE_TIMEOUT:
            if (cli_parse_duration(cmd, "--response-timeout", v, &s.response_timeout) < 0)
                goto usage;
            break;
        case OPT_STREAM_TIMEOUT:
            if (cli_parse_duration(cmd, "--stream-timeout", v, &s.stream_timeout) < 0)
                goto usage;
            break;
        case OPT_IDLE_TIMEOUT:
            if (cli_parse_duration(cmd, "--idle-timeout", v, &s.client_idle_timeout) < 0)
                goto usage;
            break;
        case OPT_DRAIN_TIMEOUT:
            if (cli_parse_duration(cmd, "--drain-timeout", v, &s.drain_timeout) < 0)
                goto usage;
            break;
        case OPT_LOG: s.log_path = v; break;
        case OPT_RECORD: s.record_dir = v; break;
        case OPT_RECORD_EVENTS: s.record_events = true; break;
        case OPT_RECORD_MAX_FILE:
            if (cli_parse_size(cmd, "--record-max-file", v, &s.record_max_file) < 0)
                goto usage;
            break;
        case OPT_REDACT:
            if (s.n_redact == 32) {
                cli_usage_error(cmd, "--redact: at most 32 headers");
                goto usage;
            }
            s.redact[s.n_redact++] = v;
            break;
        case OPT_LOG_GAPS: s.log_gaps = true; break;
        case OPT_SESSION_HEADER: s.session_header = v; break;
        case OPT_CONCURRENCY_BUCKETS:
            if (cli_parse_u64(cmd, "--concurrency-buckets", v, 2, 1024, &u) < 0)
                goto usage;
            s.concurrency_buckets = (unsigned)u;
            break;
        case OPT_LOG_LEVEL:
            if (log_parse_level(v, &level) < 0) {
                cli_usage_error(cmd, "--log-level: expected error, warn, info or debug, got '%s'", v);
                goto usage;
            }
            log_set_level(level);
            break;
        default:
            break;
        }
    }

    /* --upstream replaces the default upstream's URL, or is the only one. */
    if (s.upstream_url) {
        size_t d = 0;
        for (size_t i = 0; i < s.n_ups; i++)
            if (s.ups[i].is_default)
                d = i;
        if (s.n_ups == 0) {
            s.ups[0] = (struct proxy_upstream_config){.name = "default", .is_default = true};
            s.n_ups = 1;
        }
        s.ups[d].url = s.upstream_url;
    } else if (s.n_ups == 0) {
        s.ups[0] = (struct proxy_upstream_config){
            .name = "default", .url = "http://127.0.0.1:7080", .is_default = true};
        s.n_ups = 1;
    }

    struct proxy_config pc = {
        .upstreams = s.ups,
        .n_upstreams = s.n_ups,
        .reject_unknown_models = s.reject_unknown,
        .response_timeout = s.response_timeout,
        .stream_timeout = s.stream_timeout,
        .route_body_limit = 8 * 1024 * 1024,
        .rules = rules,
    };
    if (rewrite_max_body(rules) > pc.route_body_limit)
        pc.route_body_limit = rewrite_max_body(rules);
    upstream_pool_options_default(&pc.pool);
    pc.pool.connect_timeout = s.connect_timeout;
    /* As many as clients by default: a request waiting in our queue for a
     * connection is a surprise; one waiting in llama-server's is expected. */
    pc.pool.max_connections = s.upstream_connections ? s.upstream_connections : s.max_connections;

    struct serve_run run = {0};
    struct event *sigint = NULL, *sigterm = NULL, *sighup = NULL;
    char err[512];
    run.base = net_event_base_new();
    if (!run.base) {
        log_error("cannot create the event loop");
        goto fail;
    }
    struct metrics_options mo;
    metrics_options_default(&mo);
    mo.concurrency_buckets = s.concurrency_buckets;
    if (s.slow_buckets.n)
        mo.slow = s.slow_buckets;
    if (s.fast_buckets.n)
        mo.fast = s.fast_buckets;
    if (metrics_new(&mo, clock_now(), &run.metrics) < 0) {
        log_error("out of memory");
        goto fail;
    }
    struct live_options lvo;
    live_options_default(&lvo);
    if (live_new(&lvo, clock_now(), &run.live) < 0) {
        log_error("out of memory");
        goto fail;
    }
    struct dash_options dso = {.live = run.live, .metrics = run.metrics, .title = "tokentap serve"};
    if (dash_new(run.base, &dso, &run.dash) < 0) {
        log_error("out of memory");
        goto fail;
    }
    /* The configured names are model labels of their own. */
    for (size_t i = 0; i < s.n_ups; i++)
        for (size_t k = 0; k < s.ups[i].n_models; k++)
            metrics_add_model(run.metrics, s.models[i][k]);
    if (s.log_path) {
        int r = reqlog_open(s.log_path, s.log_gaps, &run.log);
        if (r < 0) {
            fprintf(stderr, "tokentap serve: cannot open the request log %s: %s\n", s.log_path,
                    strerror(-r));
            goto fail;
        }
    }
    if (s.record_dir) {
        struct trace_writer_options to = {
            .dir = s.record_dir,
            .max_file_bytes = s.record_max_file,
            .redact_headers = s.redact,
            .n_redact_headers = s.n_redact,
            .events = s.record_events,
        };
        int r = trace_writer_open(&to, &run.trace);
        if (r < 0) {
            fprintf(stderr, "tokentap serve: cannot record into %s: %s\n", s.record_dir, strerror(-r));
            goto fail;
        }
        char file[512];
        trace_writer_current_file(run.trace, file, sizeof(file));
        log_info("recording every exchange to %s", file);
    }
    pc.trace = run.trace;
    pc.trace_events = s.record_events;
    pc.metrics = run.metrics;
    pc.log = run.log;
    pc.live = run.live;
    pc.session_header = s.session_header;
    if (proxy_new(run.base, &pc, &run.proxy, err, sizeof(err)) < 0) {
        fprintf(stderr, "tokentap serve: %s\n", err);
        rc = 2;
        goto fail;
    }
    struct server_options so;
    server_options_default(&so);
    so.limits.max_body_bytes = s.max_body;
    so.limits.max_head_bytes = s.max_header;
    so.idle_timeout = s.client_idle_timeout;
    so.max_connections = s.max_connections;
    run.admin = (struct admin_source){
        .metrics = run.metrics,
        .dash = run.dash,
        .ctx = &run,
        .in_flight = admin_in_flight,
        .n_upstreams = admin_n_upstreams,
        .upstream = admin_upstream,
    };
    if (server_new(run.base, s.listen, &so, &router, &run, &run.server) < 0)
        goto fail;
    run.drain_timer = evtimer_new(run.base, drain_check, &run);
    sigint = evsignal_new(run.base, SIGINT, on_signal, &run);
    sigterm = evsignal_new(run.base, SIGTERM, on_signal, &run);
    sighup = evsignal_new(run.base, SIGHUP, on_sighup, &run);
    if (!run.drain_timer || !sigint || !sigterm || !sighup || evsignal_add(sigint, NULL) < 0 ||
        evsignal_add(sigterm, NULL) < 0 || evsignal_add(sighup, NULL) < 0) {
        log_error("cannot set up signal handling");
        goto fail;
    }
    run.drain_timeout = s.drain_timeout;

    char addr[80];
    net_format(server_address(run.server), addr, sizeof(addr));
    if (rewrite_rules_count(rules))
        log_info("%zu rewrite rules", rewrite_rules_count(rules));
    for (size_t i = 0; i < proxy_upstream_count(run.proxy); i++) {
        struct proxy_upstream_info info;
        proxy_upstream_info(run.proxy, i, &info);
        log_info("upstream '%s' %s%s (%zu models)", info.name, info.url,
                 info.is_default ? " [default]" : "", info.n_models);
    }
    printf("listening on %s\n", addr);
    fflush(stdout);
    event_base_dispatch(run.base);
    rc = 0;
fail:
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (sighup)
        event_free(sighup);
    if (run.drain_timer)
        event_free(run.drain_timer);
    proxy_free(run.proxy);
    dash_free(run.dash);
    server_free(run.server);
    if (run.trace) {
        struct trace_writer_stats ts;
        trace_writer_close(run.trace, &ts);
        log_info("trace: %llu requests recorded, %llu dropped, %llu write errors",
                 (unsigned long long)ts.lines_written, (unsigned long long)ts.lines_dropped,
                 (unsigned long long)ts.write_errors);
    }
    reqlog_close(run.log);
    metrics_free(run.metrics);
    live_free(run.live);
    rewrite_rules_free(rules);
    if (run.base)
        event_base_free(run.base);
    config_free(doc);
    return rc;
usage:
    config_free(doc);
    rewrite_rules_free(rules);
    return 2;
}
