/* sim_internal: what sim.c (lifecycle, dispatch, generation) and
 * sim_routes.c (the other llama-server routes) share. Not for other
 * modules: they use sim.h. */
#ifndef TOKENTAP_SIM_INTERNAL_H
#define TOKENTAP_SIM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/server.h"
#include "sim/sim.h"
#include "sim/sim_engine.h"
#include "sim/sim_format.h"
#include "sim/sim_prompt.h"
#include "sim/sim_text.h"

/* llama-server's build, as the captures show it (system_fingerprint, build_info). */
#define SIM_FINGERPRINT "b10309-82bb485"

struct cJSON;
struct evbuffer;
struct event;
struct event_base;

struct canned {
    char *match;     /* owned: substring of the last user message */
    char *text;      /* owned */
    char *reasoning; /* owned, may be NULL */
};

struct exchange;

struct sim {
    struct event_base *base;   /* borrowed */
    struct sim_options o;      /* strings borrowed from the caller */
    struct server *server;     /* owned */
    struct sim_engine *engine; /* owned */
    struct canned *canned;     /* owned */
    size_t n_canned;
    struct exchange *exchanges; /* owned list of requests in progress */
    unsigned in_flight;        /* generation requests queued or running */
    uint64_t n_generations;
    usec_t start_wall;
    int stamp_fd;              /* owned: --stamp-log file, -1 = none */
    bool stamp_log_failed;     /* a write failed (logged once) */
};

enum route {
    ROUTE_UNKNOWN,
    ROUTE_ROOT,
    ROUTE_HEALTH,
    ROUTE_MODELS,
    ROUTE_PROPS,
    ROUTE_SLOTS,
    ROUTE_METRICS,
    ROUTE_SIM_STATS,
    ROUTE_GENERATE, /* api in exchange.api */
    ROUTE_COUNT_TOKENS,
    ROUTE_TOKENIZE,
    ROUTE_APPLY_TEMPLATE,
    ROUTE_EMBEDDINGS,
};

struct exchange {
    struct sim *sim;           /* borrowed */
    struct server_req *req;    /* borrowed; NULL once the connection is gone */
    struct exchange *prev, *next;
    enum route route;
    enum sim_api api;
    bool head_only;            /* HEAD: headers without the body */
    bool close;                /* answer with Connection: close */
    char origin[128];
    char query[128];
    struct evbuffer *body;     /* owned: the request body */
    struct evbuffer *scratch;  /* owned: bytes being formatted */
    struct sim_request rq;
    struct sim_script script;
    struct sim_reply reply;
    char *model;               /* owned: model name reported */
    struct sim_task *task;     /* engine handle while queued or running */
    struct sim_fault fault;
    usec_t first_token_at;     /* X-Sim-First-Token-At (0 = none) */
    struct event *delay;       /* owned: slow-headers timer */
    size_t sent;               /* token events sent */
    bool stream_head_sent;     /* the event stream's head went out (at slot assignment) */
    bool counted;              /* counts in sim->in_flight */
    char request_id[128];      /* X-Request-Id, for the stamp log ("" = none) */
    struct evbuffer *stamps;   /* owned: the stamp-log line being built, NULL until a token */
};

/* --- faults --- */

/* Appends a C string. */
void sim_add(struct evbuffer *b, const char *s);

/* A complete response with x->scratch as its body; finishes x. */
void sim_respond(struct exchange *x, int status, const char *content_type, const char *extra);
void sim_respond_json(struct exchange *x, int status);
/* llama-server's {"error":{"code","message","type"}}; finishes x. */
void sim_respond_error(struct exchange *x, int status, const char *type, const char *message);
/* The body as JSON, or NULL after answering llama-server's 500 parse error. */
struct cJSON *sim_parse_body(struct exchange *x);

/* The routes of sim_routes.c; each finishes x. */
void sim_route_health(struct exchange *x);
void sim_route_root(struct exchange *x);
void sim_route_models(struct exchange *x);
void sim_route_props(struct exchange *x);
void sim_route_slots(struct exchange *x);
void sim_route_metrics(struct exchange *x);
void sim_route_sim_stats(struct exchange *x);
void sim_route_tokenize(struct exchange *x);
/* count: /v1/messages/count_tokens, else /apply-template. */
void sim_route_render(struct exchange *x, bool count);
void sim_route_embeddings(struct exchange *x);

#endif
