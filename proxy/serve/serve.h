/* serve: `tokentap serve` — its settings (defaults, the config file, the
 * flags over it; parsed and validated with no side effect but reading the
 * file) and its run step: server, proxy and admin on one event loop, with
 * graceful drain. */
#ifndef TOKENTAP_SERVE_H
#define TOKENTAP_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/log.h"
#include "serve/admin.h"
#include "serve/proxy.h"
#include "tap/metrics.h"

struct cli_command;
struct config_doc;
struct config_err;
struct rewrite_rules;

#define SERVE_MAX_UPSTREAMS 64
#define SERVE_MAX_MODELS 64
#define SERVE_MAX_REDACT 32

/* Everything `serve` runs with, after defaults, the file and the flags.
 * Strings are borrowed from argv or from doc. */
struct serve_settings {
    const char *listen;
    const char *tls_cert, *tls_key; /* HTTPS listener: PEM files, both or neither */
    const char *upstream_url;     /* --upstream: the default upstream's URL */
    struct upstream_tls_options tls; /* --ca-file, --insecure: the default upstream's */
    struct proxy_upstream_config ups[SERVE_MAX_UPSTREAMS];
    const char *models[SERVE_MAX_UPSTREAMS][SERVE_MAX_MODELS];
    size_t n_ups;
    bool reject_unknown;
    uint64_t max_body, max_header;
    unsigned max_connections;
    unsigned upstream_connections; /* 0: as many as max_connections */
    unsigned upstream_min_idle;    /* connections opened ahead per upstream (0: none) */
    usec_t connect_timeout, response_timeout, stream_timeout, client_idle_timeout, drain_timeout;
    usec_t header_timeout, body_timeout; /* a client's whole head; silence in its body */
    const char *log_path;
    bool log_gaps;
    const char *session_header;
    unsigned concurrency_buckets;
    struct metrics_buckets slow_buckets, fast_buckets; /* n == 0: the defaults */
    const char *record_dir;
    bool record_events;
    uint64_t record_max_file;
    const char *redact[SERVE_MAX_REDACT];
    size_t n_redact;
    enum log_level log_level;
    /* The /tokentap/ endpoints: on the proxy port (admin_listen NULL;
     * loopback clients by default) or on a listener of their own (any
     * client that reaches it by default); a token when one is set. */
    const char *admin_listen;
    struct admin_access admin;
    int admin_allow_from;         /* 0: default; 1: admin.allow; 2: --admin-allow (replaces the file's) */
    char *admin_token;            /* owned: read from the token file, or a copy of admin.token */
    struct config_doc *doc;       /* owned: the config file, NULL without one */
    struct rewrite_rules *rules;  /* owned: its rewrite rules (empty without a file) */
};

/* Parses argv (argv[0] is "serve") and the config file it names into s:
 * 0, CLI_RUN_HELP for --help, -EINVAL with the usage error's line in err,
 * or -ENOMEM. Call serve_settings_finish(s) after it, whatever it returned. */
int serve_settings_parse(struct serve_settings *s, int argc, char **argv, struct config_err *err);

/* Frees what s owns. */
void serve_settings_finish(struct serve_settings *s);

int serve_main(int argc, char **argv);

/* The command's options and --help (serve_settings.c). */
extern const struct cli_command serve_command;

#endif
