#include "serve/serve.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "wire/loop.h"
#include "wire/net.h"
#include "wire/server.h"
#include "wire/tls.h"
#include "tap/live.h"
#include "tap/metrics.h"
#include "tap/reqlog.h"
#include "tap/trace.h"
#include "rewrite/rewrite.h"
#include "serve/admin.h"
#include "serve/dash.h"
#include "serve/proxy.h"

/* --- the run step --- */

struct serve_run {
    struct event_base *base;   /* owned */
    struct loop loop;
    struct server *server;     /* owned */
    struct server *admin_server; /* owned: --admin-listen, NULL: admin on the proxy port */
    struct tls_server *tls;    /* owned: the HTTPS listener's certificate, NULL for HTTP */
    const char *tls_cert;      /* borrowed: its file, for the log */
    struct proxy *proxy;       /* owned */
    struct metrics *metrics;   /* owned */
    struct live *live;         /* owned: what the dashboard shows */
    struct dash *dash;         /* owned */
    struct admin_source admin_src; /* what admin reads (either listener); its ctx is this run */
    struct reqlog *log;        /* owned, NULL without --log */
    struct trace_writer *trace; /* owned, NULL without --record */
    struct event *drain_timer; /* owned */
    struct event *trace_timer; /* owned: watches the recorder for lost records */
    uint64_t trace_lost;       /* lost records when last looked at */
    uint64_t trace_warned;     /* ...and when last warned about */
    usec_t trace_warned_at;
    usec_t drain_timeout;
    usec_t drain_deadline;
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

/* Trace loss is logged at the first lost record and then once a minute
 * while records keep being lost; proxying goes on either way. The counts
 * are in /tokentap/health and /tokentap/metrics. */
static void trace_watch(evutil_socket_t fd, short what, void *arg)
{
    struct serve_run *run = arg;
    struct trace_writer_stats ts;
    trace_writer_stats(run->trace, &ts);
    uint64_t lost = ts.lines_dropped + ts.write_errors;
    usec_t now = clock_now();
    if (lost > run->trace_lost &&
        (run->trace_warned == 0 || now - run->trace_warned_at >= 60 * USEC_PER_SEC)) {
        char file[512];
        trace_writer_current_file(run->trace, file, sizeof(file));
        log_warn("trace: %llu records lost (%llu since the last warning) writing %s: %s; "
                 "requests are still proxied",
                 (unsigned long long)lost, (unsigned long long)(lost - run->trace_warned), file,
                 ts.last_write_error ? strerror(-ts.last_write_error)
                                     : "the recording queue is full or a record was too large");
        run->trace_warned = lost;
        run->trace_warned_at = now;
    }
    run->trace_lost = lost;
}

static void on_sighup(void *arg)
{
    struct serve_run *run = arg;
    if (run->log && reqlog_reopen(run->log) < 0)
        log_error("cannot reopen the request log: %s", strerror(errno));
    if (run->tls) {
        struct config_err err;
        if (tls_server_reload(run->tls, &err) < 0)
            log_error("%s; still serving the previous certificate", err.msg);
        else
            log_info("TLS certificate reloaded from %s", run->tls_cert);
    }
}

/* The first SIGINT/SIGTERM: no new connections, streams finish (a second
 * one stops at once: the loop's rule). */
static void on_stop(void *arg)
{
    struct serve_run *run = arg;
    run->drain_deadline = clock_now() + run->drain_timeout;
    log_info("stopping: no new connections; waiting for %u requests in progress",
             proxy_in_flight(run->proxy));
    server_shutdown(run->server);
    if (run->admin_server)
        server_shutdown(run->admin_server);
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
    if (!to_admin(req))
        proxy_handler()->on_head(run->proxy, req);
    else if (run->admin_server)
        server_req_error(req, 404, "not_found_error",
                         "the /tokentap/ endpoints are on the admin listener (--admin-listen)");
    else
        admin_handler()->on_head(&run->admin_src, req);
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
        admin_handler()->on_abort(&run->admin_src, req);
    else
        proxy_handler()->on_abort(run->proxy, req);
}

static void route_error(void *ctx, struct server_req *req, int status, const char *message)
{
    struct serve_run *run = ctx;
    if (to_admin(req))
        admin_handler()->on_error(&run->admin_src, req, status, message);
    else
        proxy_handler()->on_error(run->proxy, req, status, message);
}

static const struct server_handler router = {
    .on_head = route_head,
    .on_body = route_body,
    .on_end = route_end,
    .on_drain = route_drain,
    .on_abort = route_abort,
    .on_error = route_error,
};

/* Metrics, the dashboard's live view, the request log and the trace
 * recorder. 0 or -errno (printed). */
static int open_outputs(struct serve_run *run, const struct serve_settings *s)
{
    struct metrics_options mo;
    metrics_options_default(&mo);
    mo.concurrency_buckets = s->concurrency_buckets;
    if (s->slow_buckets.n)
        mo.slow = s->slow_buckets;
    if (s->fast_buckets.n)
        mo.fast = s->fast_buckets;
    if (metrics_new(&mo, clock_now(), &run->metrics) < 0) {
        log_error("out of memory");
        return -ENOMEM;
    }
    struct live_options lvo;
    live_options_default(&lvo);
    if (live_new(&lvo, clock_now(), &run->live) < 0) {
        log_error("out of memory");
        return -ENOMEM;
    }
    struct dash_options dso = {.live = run->live, .metrics = run->metrics, .title = "tokentap serve"};
    if (dash_new(run->base, &dso, &run->dash) < 0) {
        log_error("out of memory");
        return -ENOMEM;
    }
    /* The configured names are model labels of their own. */
    for (size_t i = 0; i < s->n_ups; i++)
        for (size_t k = 0; k < s->ups[i].n_models; k++)
            metrics_add_model(run->metrics, s->models[i][k]);
    int r;
    if (s->log_path && (r = reqlog_open(s->log_path, s->log_gaps, &run->log)) < 0) {
        fprintf(stderr, "tokentap serve: cannot open the request log %s: %s\n", s->log_path,
                strerror(-r));
        return r;
    }
    if (s->record_dir) {
        struct trace_writer_options to = {
            .dir = s->record_dir,
            .max_file_bytes = s->record_max_file,
            .redact_headers = s->redact,
            .n_redact_headers = s->n_redact,
            .events = s->record_events,
        };
        if ((r = trace_writer_open(&to, &run->trace)) < 0) {
            fprintf(stderr, "tokentap serve: cannot record into %s: %s\n", s->record_dir,
                    strerror(-r));
            return r;
        }
        char file[512];
        trace_writer_current_file(run->trace, file, sizeof(file));
        log_info("recording every exchange to %s", file);
    }
    return 0;
}

/* The proxy behind the listener, and the drain timer. 0 or -errno
 * (printed). */
static int start_proxy(struct serve_run *run, const struct serve_settings *s)
{
    struct proxy_config pc = {
        .upstreams = s->ups,
        .n_upstreams = s->n_ups,
        .reject_unknown_models = s->reject_unknown,
        .response_timeout = s->response_timeout,
        .stream_timeout = s->stream_timeout,
        .route_body_limit = 8 * 1024 * 1024,
        .rules = s->rules,
        .trace = run->trace,
        .trace_events = s->record_events,
        .metrics = run->metrics,
        .log = run->log,
        .live = run->live,
        .session_header = s->session_header,
    };
    if (rewrite_max_body(s->rules) > pc.route_body_limit)
        pc.route_body_limit = rewrite_max_body(s->rules);
    upstream_pool_options_default(&pc.pool);
    pc.pool.connect_timeout = s->connect_timeout;
    /* As many as clients by default: a request waiting in our queue for a
     * connection is a surprise; one waiting in llama-server's is expected. */
    pc.pool.max_connections = s->upstream_connections ? s->upstream_connections : s->max_connections;
    pc.pool.min_idle = s->upstream_min_idle;
    struct config_err err;
    int r = proxy_new(run->base, &pc, &run->proxy, &err);
    if (r < 0) {
        fprintf(stderr, "tokentap serve: %s\n", err.msg);
        return r;
    }
    struct server_options so;
    server_options_default(&so);
    so.limits.max_body_bytes = s->max_body;
    so.limits.max_head_bytes = s->max_header;
    so.idle_timeout = s->client_idle_timeout;
    so.header_timeout = s->header_timeout;
    so.body_timeout = s->body_timeout;
    so.max_connections = s->max_connections;
    /* A burst of clients is let in one at a time, between the bytes of
     * streams in progress (the loop's priorities, wire/net.h): streams
     * accepted together reach the upstream together and then tick
     * together for their whole life (docs/performance.md, issue 18). */
    so.accept_batch = 1;
    run->admin_src = (struct admin_source){
        .access = &s->admin,
        .metrics = run->metrics,
        .trace = run->trace,
        .dash = run->dash,
        .ctx = run,
        .in_flight = admin_in_flight,
        .n_upstreams = admin_n_upstreams,
        .upstream = admin_upstream,
    };
    if (s->tls_cert) {
        if ((r = tls_server_new(s->tls_cert, s->tls_key, &run->tls, &err)) < 0) {
            fprintf(stderr, "tokentap serve: %s\n", err.msg);
            return r;
        }
        run->tls_cert = s->tls_cert;
        so.tls = run->tls;
    }
    if ((r = server_new(run->base, s->listen, &so, &router, run, &run->server)) < 0)
        return r;
    /* The admin listener has the proxy port's rules, TLS included. */
    if (s->admin_listen && (r = server_new(run->base, s->admin_listen, &so, admin_handler(),
                                           &run->admin_src, &run->admin_server)) < 0)
        return r;
    run->drain_timer = evtimer_new(run->base, drain_check, run);
    if (!run->drain_timer)
        return -ENOMEM;
    if (run->trace) {
        struct timeval every = {1, 0};
        run->trace_timer = event_new(run->base, -1, EV_PERSIST, trace_watch, run);
        if (!run->trace_timer || evtimer_add(run->trace_timer, &every) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* "listening on HOST:PORT" on stdout (what scripts wait for), the rest logged. */
static void announce(const struct serve_run *run, const struct serve_settings *s)
{
    char addr[80];
    net_format(server_address(run->server), addr, sizeof(addr));
    if (rewrite_rules_count(s->rules))
        log_info("%zu rewrite rules", rewrite_rules_count(s->rules));
    for (size_t i = 0; i < proxy_upstream_count(run->proxy); i++) {
        struct proxy_upstream_info info;
        proxy_upstream_info(run->proxy, i, &info);
        log_info("upstream '%s' %s%s (%zu models)", info.name, info.url,
                 info.is_default ? " [default]" : "", info.n_models);
    }
    for (size_t i = 0; i < s->n_ups; i++)
        if (s->ups[i].tls.insecure && strncmp(s->ups[i].url, "https:", 6) == 0)
            log_warn("upstream '%s' (%s): certificate checks are off (insecure): anyone on the "
                     "way can read and change this traffic",
                     s->ups[i].name, s->ups[i].url);
    if (run->tls)
        log_info("serving HTTPS with %s", run->tls_cert);
    printf("listening on %s\n", addr);
    if (run->admin_server) {
        net_format(server_address(run->admin_server), addr, sizeof(addr));
        printf("admin listening on %s\n", addr);
    }
    if (s->admin.token)
        log_info("/tokentap/ asks for the admin token");
    else if (s->admin.n_allow == 0)
        log_warn("/tokentap/ answers any client that reaches %s, without a token: it shows every "
                 "session's requests (see docs/serve.md, admin)", run->admin_server ? "the admin listener"
                                                                                      : "the proxy port");
    fflush(stdout);
}

static void run_finish(struct serve_run *run)
{
    loop_finish(&run->loop);
    if (run->drain_timer)
        event_free(run->drain_timer);
    if (run->trace_timer)
        event_free(run->trace_timer);
    proxy_free(run->proxy);
    dash_free(run->dash);
    server_free(run->server);
    server_free(run->admin_server);
    tls_server_free(run->tls);
    if (run->trace) {
        struct trace_writer_stats ts;
        trace_writer_close(run->trace, &ts);
        log_info("trace: %llu requests recorded, %llu dropped, %llu write errors",
                 (unsigned long long)ts.lines_written, (unsigned long long)ts.lines_dropped,
                 (unsigned long long)ts.write_errors);
    }
    reqlog_close(run->log);
    metrics_free(run->metrics);
    live_free(run->live);
    if (run->base)
        event_base_free(run->base);
}

/* Serves s until SIGINT/SIGTERM and the drain; the exit status. */
static int serve_run(const struct serve_settings *s)
{
    struct serve_run run = {.drain_timeout = s->drain_timeout};
    int rc = 1;
    log_set_level(s->log_level);
    run.base = net_event_base_new(NET_LOOP_PRIORITIES);
    if (!run.base) {
        log_error("cannot create the event loop");
        goto fail;
    }
    if (open_outputs(&run, s) < 0 || start_proxy(&run, s) < 0)
        goto fail;
    if (loop_init(&run.loop, run.base, on_stop, on_sighup, &run) < 0) {
        log_error("cannot set up signal handling");
        goto fail;
    }
    announce(&run, s);
    loop_run(&run.loop);
    rc = 0;
fail:
    run_finish(&run);
    return rc;
}

int serve_main(int argc, char **argv)
{
    struct serve_settings s;
    struct config_err err;
    int r = serve_settings_parse(&s, argc, argv, &err);
    int rc = r != 0 ? cli_exit(&serve_command, r, &err) : serve_run(&s);
    serve_settings_finish(&s);
    return rc;
}
