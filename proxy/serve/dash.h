/* dash: the live dashboard under admin's prefix. GET /tokentap/ is one
 * self-contained page (Chart.js, its code and style compiled in; it loads
 * nothing else), GET /tokentap/events feeds it by Server-Sent Events:
 * frames of what changed in live since the browser's last one, and the
 * per-level table from metrics once a second. A frame goes to a browser
 * only when everything sent before has left for its socket: one that
 * reads slowly or not at all misses frames and gets one coalesced frame
 * later, so the proxy holds at most one frame per browser. */
#ifndef TOKENTAP_DASH_H
#define TOKENTAP_DASH_H

#include "core/clock.h"
#include "wire/server.h"

struct event_base;
struct dash;
struct live;
struct metrics;

/* Browsers connected at once; more get 503. */
#define DASH_MAX_CLIENTS 32

struct dash_options {
    struct live *live;        /* borrowed */
    struct metrics *metrics;  /* borrowed, may be NULL: no level table */
    const char *title;        /* borrowed: what the page's header says, e.g. "tokentap serve" */
    usec_t interval;          /* between frames (default 200 ms) */
};

/* 0 or -ENOMEM. */
int dash_new(struct event_base *base, const struct dash_options *o, struct dash **ret);

/* Frees the dashboard; streams still open are ended. NULL is a no-op. */
void dash_free(struct dash *d);

/* Answers GET /tokentap/ with the page. */
void dash_page(struct dash *d, struct server_req *req);

/* Answers GET /tokentap/events: an event stream that dash keeps (its
 * data pointer) until the connection dies and dash_abort is called. */
void dash_events(struct dash *d, struct server_req *req);

/* on_abort for a request dash_events took: it is forgotten. */
void dash_abort(struct dash *d, struct server_req *req);

/* Browsers connected now. */
unsigned dash_clients(const struct dash *d);

#endif
