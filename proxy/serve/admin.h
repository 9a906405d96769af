/* admin: tokentap's own endpoints under /tokentap/ on the proxy port
 * (health, metrics, stats, recent requests). It reads the serving side
 * only through struct admin_source, filled by whoever routes requests to
 * it (serve), so it does not know the proxy. */
#ifndef TOKENTAP_ADMIN_H
#define TOKENTAP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/http.h"
#include "wire/server.h"
#include "wire/upstream.h"

struct metrics;
struct trace_writer;

/* One upstream as /tokentap/health shows it. */
struct admin_upstream {
    const char *name;          /* borrowed */
    const char *url;           /* borrowed */
    bool is_default;
    size_t n_models;
    const char *const *models; /* borrowed */
    unsigned in_flight;
    struct upstream_pool_stats pool;
};

/* What admin reads, at the moment it answers. */
struct admin_source {
    struct metrics *metrics;   /* borrowed */
    struct trace_writer *trace; /* borrowed: the recorder, NULL when not recording */
    void *ctx;                 /* borrowed: passed to the functions below */
    /* Requests in progress. */
    unsigned (*in_flight)(void *ctx);
    size_t (*n_upstreams)(void *ctx);
    /* Upstream i (< n_upstreams) into *ret, strings valid until return. */
    void (*upstream)(void *ctx, size_t i, struct admin_upstream *ret);
};

/* True for paths under the reserved prefix /tokentap/. */
bool admin_match(const struct http_head *h);

/* Answers an admin request completely. */
void admin_handle(const struct admin_source *src, struct server_req *req);

#endif
