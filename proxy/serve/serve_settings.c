/* serve's settings: the defaults, the config file and the flags over it,
 * parsed and validated with no side effect but reading the files named
 * (the config, the admin token). serve.c runs them. */
#include "serve/serve.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "wire/net.h"
#include "wire/tls.h"
#include "tap/metrics.h"
#include "rewrite/rewrite.h"
#include "serve/admin.h"

enum {
    OPT_CONFIG = 1,
    OPT_LISTEN,
    OPT_UPSTREAM,
    OPT_REJECT_UNKNOWN,
    OPT_MAX_BODY,
    OPT_MAX_HEADER,
    OPT_MAX_CONNECTIONS,
    OPT_UPSTREAM_CONNECTIONS,
    OPT_UPSTREAM_MIN_IDLE,
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
    OPT_HEADER_TIMEOUT,
    OPT_BODY_TIMEOUT,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_CA_FILE,
    OPT_INSECURE,
    OPT_ADMIN_LISTEN,
    OPT_ADMIN_ALLOW,
    OPT_ADMIN_TOKEN_FILE,
};

static const struct cli_option serve_options[] = {
    {"config", 'c', "FILE", "config file (YAML or JSON): upstreams, models, limits, timeouts", OPT_CONFIG},
    CLI_OPTION_LISTEN(OPT_LISTEN),
    {"tls-cert", 0, "FILE", "serve HTTPS (TLS 1.2+): PEM certificate chain, with --tls-key; reread on SIGHUP", OPT_TLS_CERT},
    {"tls-key", 0, "FILE", "the certificate's PEM private key", OPT_TLS_KEY},
    {"upstream", 'u', "URL", "the default upstream, e.g. http://127.0.0.1:7080 or https://... (default as in the file, else that)", OPT_UPSTREAM},
    {"ca-file", 0, "FILE", "https default upstream: trust the CAs in this PEM file instead of the system's", OPT_CA_FILE},
    {"insecure", 0, NULL, "https default upstream: do not check its certificate at all (a warning says so)", OPT_INSECURE},
    {"reject-unknown-models", 0, NULL, "answer 404 for a model no upstream lists (default: send it to the default upstream)", OPT_REJECT_UNKNOWN},
    {"max-body", 0, "SIZE", "largest request body; larger gets 413 (default 64M)", OPT_MAX_BODY},
    {"max-header", 0, "SIZE", "largest request header block; larger gets 431 (default 64K)", OPT_MAX_HEADER},
    {"max-connections", 0, "N", "client connections open at once (default 4096)", OPT_MAX_CONNECTIONS},
    {"upstream-connections", 0, "N", "connections per upstream; more requests wait (default: --max-connections)", OPT_UPSTREAM_CONNECTIONS},
    {"upstream-min-idle", 0, "N", "connections per upstream opened ahead and kept idle, for bursts (default 0; each holds one of llama-server's HTTP threads)", OPT_UPSTREAM_MIN_IDLE},
    {"connect-timeout", 0, "DURATION", "upstream connect timeout; then 504 (default 5s)", OPT_CONNECT_TIMEOUT},
    {"response-timeout", 0, "DURATION", "wait for the upstream's response head, queueing and prefill included; then 504 (default 10m)", OPT_RESPONSE_TIMEOUT},
    {"stream-timeout", 0, "DURATION", "longest silence inside a streamed response; then the stream is cut (default 5m)", OPT_STREAM_TIMEOUT},
    {"idle-timeout", 0, "DURATION", "close idle client connections after this (default 60s)", OPT_IDLE_TIMEOUT},
    {"header-timeout", 0, "DURATION", "a client's whole request head, from its first byte; then 408 (default 60s)", OPT_HEADER_TIMEOUT},
    {"body-timeout", 0, "DURATION", "longest silence inside a client's request body; then 408 (default 60s)", OPT_BODY_TIMEOUT},
    {"drain-timeout", 0, "DURATION", "on SIGINT/SIGTERM, let streams finish this long (default 30s)", OPT_DRAIN_TIMEOUT},
    {"log", 0, "FILE", "append one JSON line per finished request (reopened on SIGHUP)", OPT_LOG},
    {"log-gaps", 0, NULL, "include every inter-token gap in --log lines", OPT_LOG_GAPS},
    {"session-header", 0, "NAME", "header naming the session (besides X-Claude-Code-Session-Id, X-Session-ID)", OPT_SESSION_HEADER},
    {"concurrency-buckets", 0, "N", "concurrency levels 1..N-1 kept apart, N and above together (default 16)", OPT_CONCURRENCY_BUCKETS},
    {"record", 0, "DIR", "record every exchange as a replayable trace (JSONL files in DIR)", OPT_RECORD},
    {"record-events", 0, NULL, "also record every response event with its arrival time", OPT_RECORD_EVENTS},
    {"record-max-file", 0, "SIZE", "start a new trace file beyond this size (default 256M)", OPT_RECORD_MAX_FILE},
    {"redact", 0, "HEADER", "also redact this header in traces (repeatable; authorization, x-api-key, cookie... always)", OPT_REDACT},
    {"admin-listen", 0, "HOST:PORT", "serve /tokentap/ on a listener of its own (default: on the proxy port, to loopback clients)", OPT_ADMIN_LISTEN},
    {"admin-allow", 0, "CIDR", "client addresses that may use /tokentap/ (repeatable; default 127.0.0.0/8 and ::1 on the proxy port)", OPT_ADMIN_ALLOW},
    {"admin-token-file", 0, "FILE", "/tokentap/ asks for this token: Authorization: Bearer TOKEN, or ?token=TOKEN", OPT_ADMIN_TOKEN_FILE},
    CLI_OPTION_LOG_LEVEL(OPT_LOG_LEVEL),
    {NULL, 0, NULL, NULL, 0},
};

const struct cli_command serve_command = {
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
    s->log_level = LOG_LEVEL_INFO;
    s->listen = "127.0.0.1:8080";
    s->max_body = 64ull * 1024 * 1024;
    s->max_header = 64 * 1024;
    s->max_connections = 4096;
    s->connect_timeout = 5 * USEC_PER_SEC;
    s->response_timeout = 600 * USEC_PER_SEC;
    s->stream_timeout = 300 * USEC_PER_SEC;
    s->client_idle_timeout = 60 * USEC_PER_SEC;
    s->header_timeout = 60 * USEC_PER_SEC;
    s->body_timeout = 60 * USEC_PER_SEC;
    s->drain_timeout = 30 * USEC_PER_SEC;
    s->concurrency_buckets = 16;
}

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

/* The file's upstreams: names, URLs, models (each listed once), one default. */
static int load_upstreams(struct config_doc *doc, const cJSON *ups, struct serve_settings *s,
                          struct config_err *err)
{
    static const char *const up_keys[] = {"name", "url", "models", "default", "max_connections",
                                          "min_idle", "ca_file", "insecure", NULL};
    int r;
    if (ups && !cJSON_IsArray(ups))
        return config_error(doc, ups, err, "'upstreams' must be a list");
    if (ups && cJSON_GetArraySize(ups) == 0)
        return config_error(doc, ups, err, "'upstreams' is empty: list at least one, or leave it "
                                           "out and give --upstream URL");
    const cJSON *u;
    cJSON_ArrayForEach(u, ups)
    {
        if (s->n_ups == SERVE_MAX_UPSTREAMS)
            return config_error(doc, u, err, "more than %d upstreams", SERVE_MAX_UPSTREAMS);
        struct proxy_upstream_config *pc = &s->ups[s->n_ups];
        memset(pc, 0, sizeof(*pc));
        if ((r = config_check_keys(doc, u, up_keys, err)) < 0 ||
            (r = config_get_string(doc, u, "url", true, &pc->url, err)) < 0 ||
            (r = config_get_string(doc, u, "name", false, &pc->name, err)) < 0 ||
            (r = config_get_bool(doc, u, "default", &pc->is_default, err)) < 0 ||
            (r = config_get_string(doc, u, "ca_file", false, &pc->tls.ca_file, err)) < 0 ||
            (r = config_get_bool(doc, u, "insecure", &pc->tls.insecure, err)) < 0)
            return r;
        if (pc->tls.ca_file && access(pc->tls.ca_file, R_OK) < 0)
            return config_error(doc, cJSON_GetObjectItemCaseSensitive(u, "ca_file"), err,
                                "cannot read ca_file '%s': %s", pc->tls.ca_file, strerror(errno));
        uint64_t mc = 0;
        if ((r = config_get_u64(doc, u, "max_connections", 1, 65536, &mc, err)) < 0)
            return r;
        pc->max_connections = (unsigned)mc;
        uint64_t mi = UINT64_MAX;
        if ((r = config_get_u64(doc, u, "min_idle", 0, 65536, &mi, err)) < 0)
            return r;
        pc->min_idle = mi == UINT64_MAX ? -1 : (int)mi;
        struct config_err urlerr;
        struct url_target t;
        if (url_parse(pc->url, &t, &urlerr) < 0)
            return config_error(doc, cJSON_GetObjectItemCaseSensitive(u, "url"), err, "%s",
                                urlerr.msg);
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
            if (pc->n_models == SERVE_MAX_MODELS)
                return config_error(doc, m, err, "more than %d models for one upstream", SERVE_MAX_MODELS);
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
    return 0;
}

/* The file's record: section (traces). */
static int load_record(struct config_doc *doc, const cJSON *record, struct serve_settings *s,
                       struct config_err *err)
{
    static const char *const record_keys[] = {"dir", "events", "max_file", "redact", NULL};
    int r;
    if (!record)
        return 0;
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
        if (!cJSON_IsString(h) || s->n_redact == SERVE_MAX_REDACT)
            return config_error(doc, h, err, "'redact' takes up to %d header names",
                                SERVE_MAX_REDACT);
        s->redact[s->n_redact++] = h->valuestring;
    }
    return 0;
}

/* The file's tls: section (the HTTPS listener). */
static int load_tls(struct config_doc *doc, const cJSON *tls, struct serve_settings *s,
                    struct config_err *err)
{
    static const char *const tls_keys[] = {"cert", "key", NULL};
    int r;
    if (!tls)
        return 0;
    if ((r = config_check_keys(doc, tls, tls_keys, err)) < 0 ||
        (r = config_get_string(doc, tls, "cert", true, &s->tls_cert, err)) < 0 ||
        (r = config_get_string(doc, tls, "key", true, &s->tls_key, err)) < 0)
        return r;
    const char *const names[] = {"cert", "key"};
    const char *const files[] = {s->tls_cert, s->tls_key};
    for (size_t i = 0; i < 2; i++)
        if (access(files[i], R_OK) < 0)
            return config_error(doc, cJSON_GetObjectItemCaseSensitive(tls, names[i]), err,
                                "cannot read '%s': %s", files[i], strerror(errno));
    return 0;
}

/* Reads the config file into s; strings stay owned by doc. */
/* A token file's first line; NULL (errno) when it cannot be read or is empty. */
static char *read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[512];
    char *t = fgets(line, sizeof(line), f) ? line : NULL;
    fclose(f);
    if (t)
        t[strcspn(t, "\r\n")] = '\0';
    if (!t || !t[0]) {
        errno = EINVAL;
        return NULL;
    }
    return strdup(t);
}

/* One more allowed block, from the file (1) or a flag (2): the first
 * from a source replaces what came before. */
static int admin_allow(struct serve_settings *s, const char *cidr, int from)
{
    if (s->admin_allow_from != from) {
        s->admin.n_allow = 0;
        s->admin_allow_from = from;
    }
    if (s->admin.n_allow == ADMIN_MAX_ALLOW)
        return -ENOSPC;
    return net_parse_cidr(cidr, &s->admin.allow[s->admin.n_allow++]) < 0 ? -EINVAL : 0;
}

/* admin: {listen, allow: [CIDR...], token | token_file}. */
static int load_admin(struct config_doc *doc, const cJSON *a, struct serve_settings *s,
                      struct config_err *err)
{
    static const char *const keys[] = {"listen", "allow", "token", "token_file", NULL};
    const char *token = NULL, *file = NULL;
    int r;
    if (!a)
        return 0;
    struct net_addr addr;
    if ((r = config_check_keys(doc, a, keys, err)) < 0 ||
        (r = config_get_string(doc, a, "listen", false, &s->admin_listen, err)) < 0 ||
        (r = config_get_string(doc, a, "token", false, &token, err)) < 0 ||
        (r = config_get_string(doc, a, "token_file", false, &file, err)) < 0)
        return r;
    if (s->admin_listen && net_parse_hostport(s->admin_listen, &addr) < 0)
        return config_error(doc, cJSON_GetObjectItemCaseSensitive(a, "listen"), err,
                            "'listen' must be %s", CLI_LISTEN_FORMAT);
    const cJSON *allow = cJSON_GetObjectItemCaseSensitive(a, "allow"), *e;
    if (allow && !cJSON_IsArray(allow))
        return config_error(doc, allow, err, "'allow' must be a list of addresses like 10.0.0.0/8");
    cJSON_ArrayForEach(e, allow)
    {
        if (!cJSON_IsString(e) || admin_allow(s, e->valuestring, 1) < 0)
            return config_error(doc, e, err, "'allow': an address or block like 10.0.0.0/8 or ::1 "
                                             "(at most %d)", ADMIN_MAX_ALLOW);
    }
    if (token && file)
        return config_error(doc, a, err, "'token' or 'token_file', not both");
    free(s->admin_token);
    s->admin_token = token ? strdup(token) : file ? read_token(file) : NULL;
    if ((token || file) && !s->admin_token)
        return config_error(doc, cJSON_GetObjectItemCaseSensitive(a, file ? "token_file" : "token"),
                            err, "cannot read the admin token%s%s: %s", file ? " from " : "",
                            file ? file : "", errno == EINVAL ? "empty" : strerror(errno));
    return 0;
}

static int load_file(struct config_doc *doc, struct serve_settings *s, struct config_err *err)
{
    static const char *const top[] = {"listen", "tls", "upstreams", "routing", "limits",
                                      "timeouts", "log", "metrics", "record", "rewrite", "admin",
                                      NULL};
    static const char *const log_keys[] = {"file", "gaps", NULL};
    static const char *const metrics_keys[] = {"session_header", "concurrency_buckets", "buckets", NULL};
    static const char *const routing_keys[] = {"unknown_model", NULL};
    static const char *const limit_keys[] = {"max_body", "max_header", "max_connections",
                                             "upstream_connections", "upstream_min_idle", NULL};
    static const char *const timeout_keys[] = {"connect",     "response",      "stream",
                                               "client_idle", "client_header", "client_body",
                                               "drain",       NULL};
    const cJSON *root = config_root(doc);
    int r = config_check_keys(doc, root, top, err);
    if (r < 0)
        return r;
    if ((r = config_get_string(doc, root, "listen", false, &s->listen, err)) < 0)
        return r;
    struct net_addr addr;
    if (net_parse_hostport(s->listen, &addr) < 0)
        return config_error(doc, cJSON_GetObjectItemCaseSensitive(root, "listen"), err,
                            "'listen' must be %s", CLI_LISTEN_FORMAT);
    if ((r = load_tls(doc, cJSON_GetObjectItemCaseSensitive(root, "tls"), s, err)) < 0 ||
        (r = load_upstreams(doc, cJSON_GetObjectItemCaseSensitive(root, "upstreams"), s, err)) < 0 ||
        (r = load_admin(doc, cJSON_GetObjectItemCaseSensitive(root, "admin"), s, err)) < 0)
        return r;
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
        v = s->upstream_min_idle;
        if ((r = config_get_u64(doc, limits, "upstream_min_idle", 0, 65536, &v, err)) < 0)
            return r;
        s->upstream_min_idle = (unsigned)v;
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
    if ((r = load_record(doc, cJSON_GetObjectItemCaseSensitive(root, "record"), s, err)) < 0)
        return r;
    const cJSON *timeouts = cJSON_GetObjectItemCaseSensitive(root, "timeouts");
    if (timeouts) {
        if ((r = config_check_keys(doc, timeouts, timeout_keys, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "connect", &s->connect_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "response", &s->response_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "stream", &s->stream_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "client_idle", &s->client_idle_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "drain", &s->drain_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "client_header", &s->header_timeout, err)) < 0 ||
            (r = config_get_duration(doc, timeouts, "client_body", &s->body_timeout, err)) < 0)
            return r;
    }
    return 0;
}

/* The first pass: --help, usage errors and the config file's path. */
static int first_pass(struct cli_parser *p, const char **ret_config)
{
    const char *v;
    int id;
    while ((id = cli_next(p, &v)) != CLI_END) {
        if (id == CLI_HELP)
            return CLI_RUN_HELP;
        if (id == CLI_ERROR)
            return -EINVAL;
        if (id == CLI_POSITIONAL)
            return cli_usage(p, "unexpected argument '%s'", v);
        if (id == OPT_CONFIG)
            *ret_config = v;
    }
    return 0;
}

/* The config file (if any) and its rewrite rules into s. 0, -EINVAL (a
 * bad or missing file) or -ENOMEM, with the line in p's err. */
static int load_config(struct cli_parser *p, const char *path, struct serve_settings *s)
{
    struct config_err cerr;
    int r = 0;
    if (path)
        r = config_load_file(path, &s->doc, &cerr);
    if (path && r == 0)
        r = load_file(s->doc, s, &cerr);
    /* Without a file there are no rules, but the X-Tokentap-Thinking
     * header still works. */
    if (r == 0)
        r = rewrite_rules_load(s->doc,
                               s->doc ? cJSON_GetObjectItemCaseSensitive(config_root(s->doc), "rewrite")
                                      : NULL,
                               &s->rules, &cerr);
    if (r < 0) {
        cli_error(p, "%s", cerr.msg);
        return r == -ENOMEM ? r : -EINVAL;
    }
    return 0;
}

/* One flag's value into s, over the file's. */
static int parse_option(struct cli_parser *p, int id, const char *v, struct serve_settings *s)
{
    struct net_addr addr;
    struct url_target t;
    struct config_err urlerr;
    switch (id) {
    case OPT_LISTEN:
        if (net_parse_hostport(v, &addr) < 0)
            return cli_expected(p, CLI_LISTEN_FORMAT, v);
        s->listen = v;
        return 0;
    case OPT_UPSTREAM:
        if (url_parse(v, &t, &urlerr) < 0)
            return cli_usage(p, "--upstream: %s", urlerr.msg);
        s->upstream_url = v;
        return 0;
    case OPT_TLS_CERT: s->tls_cert = v; return cli_readable(p, v);
    case OPT_TLS_KEY: s->tls_key = v; return cli_readable(p, v);
    case OPT_CA_FILE: s->tls.ca_file = v; return cli_readable(p, v);
    case OPT_INSECURE: s->tls.insecure = true; return 0;
    case OPT_REJECT_UNKNOWN: s->reject_unknown = true; return 0;
    case OPT_MAX_BODY: return cli_size(p, v, &s->max_body);
    case OPT_MAX_HEADER: return cli_size(p, v, &s->max_header);
    case OPT_MAX_CONNECTIONS: return cli_unsigned(p, v, 1, 1000000, &s->max_connections);
    case OPT_UPSTREAM_CONNECTIONS: return cli_unsigned(p, v, 1, 65536, &s->upstream_connections);
    case OPT_UPSTREAM_MIN_IDLE: return cli_unsigned(p, v, 0, 65536, &s->upstream_min_idle);
    case OPT_CONNECT_TIMEOUT: return cli_duration(p, v, &s->connect_timeout);
    case OPT_RESPONSE_TIMEOUT: return cli_duration(p, v, &s->response_timeout);
    case OPT_STREAM_TIMEOUT: return cli_duration(p, v, &s->stream_timeout);
    case OPT_IDLE_TIMEOUT: return cli_duration(p, v, &s->client_idle_timeout);
    case OPT_DRAIN_TIMEOUT: return cli_duration(p, v, &s->drain_timeout);
    case OPT_HEADER_TIMEOUT: return cli_duration(p, v, &s->header_timeout);
    case OPT_BODY_TIMEOUT: return cli_duration(p, v, &s->body_timeout);
    case OPT_LOG: s->log_path = v; return 0;
    case OPT_RECORD: s->record_dir = v; return 0;
    case OPT_RECORD_EVENTS: s->record_events = true; return 0;
    case OPT_RECORD_MAX_FILE: return cli_size(p, v, &s->record_max_file);
    case OPT_REDACT:
        if (s->n_redact == SERVE_MAX_REDACT)
            return cli_usage(p, "--redact: at most %d headers", SERVE_MAX_REDACT);
        s->redact[s->n_redact++] = v;
        return 0;
    case OPT_LOG_GAPS: s->log_gaps = true; return 0;
    case OPT_SESSION_HEADER: s->session_header = v; return 0;
    case OPT_CONCURRENCY_BUCKETS: return cli_unsigned(p, v, 2, 1024, &s->concurrency_buckets);
    case OPT_LOG_LEVEL: return cli_log_level(p, v, &s->log_level);
    case OPT_ADMIN_LISTEN:
        if (net_parse_hostport(v, &addr) < 0)
            return cli_expected(p, CLI_LISTEN_FORMAT, v);
        s->admin_listen = v;
        return 0;
    case OPT_ADMIN_ALLOW:
        if (admin_allow(s, v, 2) < 0)
            return cli_usage(p, "--admin-allow: an address or block like 10.0.0.0/8 or ::1 (at most %d), "
                                "got '%s'", ADMIN_MAX_ALLOW, v);
        return 0;
    case OPT_ADMIN_TOKEN_FILE:
        free(s->admin_token);
        s->admin_token = read_token(v);
        if (!s->admin_token)
            return cli_usage(p, "--admin-token-file %s: %s", v,
                             errno == EINVAL ? "empty" : strerror(errno));
        return 0;
    default: return 0; /* --config: read in the first pass */
    }
}

/* --upstream replaces the default upstream's URL, or is the only one;
 * --ca-file and --insecure are the default upstream's. */
static void settle_upstreams(struct serve_settings *s)
{
    size_t d = 0;
    for (size_t i = 0; i < s->n_ups; i++)
        if (s->ups[i].is_default)
            d = i;
    if (s->n_ups == 0) {
        s->ups[0] = (struct proxy_upstream_config){
            .name = "default", .url = "http://127.0.0.1:7080", .is_default = true, .min_idle = -1};
        s->n_ups = 1;
    }
    if (s->upstream_url)
        s->ups[d].url = s->upstream_url;
    if (s->tls.ca_file)
        s->ups[d].tls.ca_file = s->tls.ca_file;
    if (s->tls.insecure)
        s->ups[d].tls.insecure = true;
}

int serve_settings_parse(struct serve_settings *s, int argc, char **argv, struct config_err *err)
{
    struct cli_parser p;
    const char *v, *config_path = NULL;
    int id, r;
    settings_default(s);
    /* Two passes: the file first, then flags over it. */
    cli_init(&p, &serve_command, argc, argv, err);
    if ((r = first_pass(&p, &config_path)) != 0 || (r = load_config(&p, config_path, s)) < 0)
        return r;
    cli_init(&p, &serve_command, argc, argv, err);
    while ((id = cli_next(&p, &v)) != CLI_END)
        if ((r = parse_option(&p, id, v, s)) < 0)
            return r;
    if (s->max_header == 0)
        return cli_usage(&p, "--max-header (limits.max_header) must be more than 0, e.g. 64K");
    if (!s->tls_cert != !s->tls_key)
        return cli_usage(&p, "HTTPS needs both a certificate and its key: --tls-cert FILE "
                             "--tls-key FILE (or tls: {cert, key} in the config)");
    settle_upstreams(s);
    /* Loopback clients only on the proxy port, unless said otherwise; a
     * listener of its own answers whoever reaches it. */
    if (!s->admin_allow_from && !s->admin_listen)
        admin_access_loopback(&s->admin);
    s->admin.token = s->admin_token;
    return 0;
}

void serve_settings_finish(struct serve_settings *s)
{
    rewrite_rules_free(s->rules);
    s->rules = NULL;
    config_free(s->doc);
    s->doc = NULL;
    free(s->admin_token);
    s->admin_token = NULL;
}

