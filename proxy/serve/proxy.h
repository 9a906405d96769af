/* proxy: the exchange between a client request (from server) and an
 * upstream (from upstream). Picks the upstream by the request's model,
 * forwards the request with hop-by-hop headers handled (RFC 9110), passes
 * the response through with its framing as bytes arrive, applies
 * backpressure both ways, and maps failures to llama-server-style errors.
 * Every request it is handed goes upstream: serve keeps /tokentap/ for
 * admin. */
#ifndef TOKENTAP_PROXY_H
#define TOKENTAP_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/clock.h"
#include "wire/server.h"
#include "wire/upstream.h"

struct config_err;
struct event_base;
struct live;
struct metrics;
struct proxy;
struct reqlog;
struct rewrite_rules;
struct trace_writer;

struct proxy_upstream_config {
    const char *name;          /* borrowed */
    const char *url;           /* borrowed */
    const char *const *models; /* borrowed: names and aliases it serves */
    size_t n_models;
    bool is_default;
    unsigned max_connections;  /* 0 = pool default */
    int min_idle;              /* connections opened ahead; -1 = pool default */
    struct upstream_tls_options tls; /* https: how its certificate is checked */
};

struct proxy_config {
    const struct proxy_upstream_config *upstreams; /* borrowed */
    size_t n_upstreams;
    bool reject_unknown_models;  /* 404 instead of the default upstream */
    usec_t response_timeout;     /* until the response head */
    usec_t stream_timeout;       /* longest silence mid-response */
    size_t route_body_limit;     /* bytes buffered to read "model" */
    struct upstream_pool_options pool;
    struct metrics *metrics;     /* borrowed: every finished request is added */
    struct reqlog *log;          /* borrowed, may be NULL */
    struct live *live;           /* borrowed, may be NULL: what the dashboard shows */
    const char *session_header;  /* borrowed: extra header naming the session, may be NULL */
    const struct rewrite_rules *rules; /* borrowed: request rewrite rules (may be empty, not NULL) */
    struct trace_writer *trace;  /* borrowed, may be NULL: record every exchange */
    bool trace_events;           /* ...with every response event */
};

/* Upstream state, for the start-up log and /tokentap/health. */
struct proxy_upstream_info {
    const char *name;
    const char *url;
    bool is_default;
    size_t n_models;
    const char *const *models;
    unsigned in_flight;
    struct upstream_pool_stats pool;
};

/* Builds the proxy (pools are created, nothing connects yet). Returns 0 or
 * a negative errno with a message in err. */
int proxy_new(struct event_base *base, const struct proxy_config *cfg, struct proxy **ret,
              struct config_err *err);
/* Cancels exchanges in progress and closes every upstream connection. */
void proxy_free(struct proxy *p);

/* The server handler; pass the proxy as its ctx. */
const struct server_handler *proxy_handler(void);

/* Requests in progress (client side). */
unsigned proxy_in_flight(const struct proxy *p);

size_t proxy_upstream_count(const struct proxy *p);
void proxy_upstream_info(const struct proxy *p, size_t i, struct proxy_upstream_info *ret);

#endif
