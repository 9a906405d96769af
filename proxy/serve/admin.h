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
#include "wire/net.h"
#include "wire/server.h"
#include "wire/upstream.h"

struct dash;
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

#define ADMIN_MAX_ALLOW 16

/* Who may ask. The endpoints show every session's ids, clients, models
 * and errors, so by default only loopback clients may. */
struct admin_access {
    struct net_cidr allow[ADMIN_MAX_ALLOW]; /* client addresses that may ask */
    size_t n_allow;            /* 0: any client that reaches the listener */
    const char *token;         /* borrowed: required as "Authorization: Bearer T" or
                                * ?token=T (a browser's EventSource sends no header); NULL: none */
};

/* Loopback only (127.0.0.0/8, ::1), no token: the default on the proxy port. */
void admin_access_loopback(struct admin_access *a);

/* What admin reads, at the moment it answers. */
struct admin_source {
    const struct admin_access *access; /* borrowed; NULL: anyone */
    struct metrics *metrics;   /* borrowed */
    struct trace_writer *trace; /* borrowed: the recorder, NULL when not recording */
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
 * admin_source that outlives them. Every request is answered in on_head
 * (403 for a client outside access->allow, 401 without the token), except
 * the dashboard's event stream, which lasts until on_abort. A path
 * outside /tokentap/ (on a listener that is only admin: --admin-listen,
 * --ui) gets / redirected to /tokentap/, anything else 404. */
const struct server_handler *admin_handler(void);

#endif
