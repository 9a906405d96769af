/* admin: tokentap's own endpoints under /tokentap/ on the proxy port
 * (health, metrics, stats, recent requests, and the dashboard: the page
 * and its event stream, through dash). It reads the serving side only
 * through struct admin_source, filled by whoever routes requests to it
 * (serve; replay and bench for --ui), so it does not know the proxy or the
 * load generator. Every /tokentap/ path goes through admin_handler, so
 * access rules added here hold for all of them. */
#ifndef TOKENTAP_ADMIN_H
#define TOKENTAP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/http.h"
#include "wire/server.h"
#include "wire/upstream.h"

struct dash;
struct metrics;

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
    struct dash *dash;         /* borrowed, may be NULL: no dashboard */
    void *ctx;                 /* borrowed: passed to the functions below */
    /* Requests in progress. */
    unsigned (*in_flight)(void *ctx);
    /* Upstreams for /tokentap/health (NULL: none). */
    size_t (*n_upstreams)(void *ctx);
    /* Upstream i (< n_upstreams) into *ret, strings valid until return. */
    void (*upstream)(void *ctx, size_t i, struct admin_upstream *ret);
};

/* True for paths under the reserved prefix /tokentap/. */
bool admin_match(const struct http_head *h);

/* The server handler for admin's requests; its ctx is a const struct
 * admin_source that outlives them. Requests are answered in on_head,
 * except the dashboard's event stream, which lasts until on_abort. A
 * path outside /tokentap/ (a server that is only admin, as with --ui)
 * gets / redirected to /tokentap/, anything else 404. */
const struct server_handler *admin_handler(void);

#endif
