/* live: what is happening right now, for the dashboard. The proxy and the
 * load generator tell it when a generation request begins, gets its
 * response head (it has a slot), gets a token and ends; it keeps a bounded
 * picture: a lane per request in flight (state, the last token times),
 * finished lanes for a few seconds, the last finished requests, recent
 * sessions, and a 15-minute ring of 1-second figures (TTFT and ITL
 * percentiles, tokens, in flight, queued, errors) overall and per
 * upstream. Readers take JSON frames of what changed since their cursor,
 * so a reader that falls behind gets one coalesced frame, never a queue.
 * Memory is fixed at live_new. Pure: no I/O, the caller passes the time.
 * In frames, "id" is live's own serial for a request (record ids repeat
 * across load generators) and "rid" the record's id. */
#ifndef TOKENTAP_LIVE_H
#define TOKENTAP_LIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "tap/record.h"

struct evbuffer;
struct live;

#define LIVE_TICKS 64            /* token times kept per lane */
#define LIVE_SECONDS 900         /* the ring of 1-second figures: 15 minutes */
#define LIVE_MAX_UPSTREAMS 8     /* upstreams with a series of their own; later ones join the last */
#define LIVE_GAP_BUCKETS 16      /* token gap histogram per finished request: < 1 ms, then x2 */

struct live_options {
    unsigned max_lanes;    /* lanes (in flight + lingering), default 512; more in flight are counted, not shown */
    unsigned recent;       /* finished requests kept, default 1024 */
    unsigned max_sessions; /* sessions kept, least recently seen dropped, default 256 */
    usec_t linger;         /* a finished lane stays this long, default 5 s */
};

void live_options_default(struct live_options *o);

/* A reader's position: what it has already been sent. Zeroed = nothing. */
struct live_cursor {
    uint64_t version;      /* changes up to this one */
    uint64_t second;       /* 1-second figures up to this one (1-based) */
};

/* 0 or -ENOMEM. now: the start of the live clock (frames count ms from it). */
int live_new(const struct live_options *o, usec_t now, struct live **ret);
void live_free(struct live *l);

/* A generation request (others are ignored) was sent at r->t_start;
 * group is what its lane is grouped by when r->session is empty (the
 * client's address; NULL: the User-Agent). r->live_lane is set. */
void live_begin(struct live *l, struct record *r, const char *group, usec_t now);

/* r's response head arrived (after tap_head): it has a slot. */
void live_head(struct live *l, struct record *r, usec_t now);

/* A token event of r arrived at t (after record_token). */
void live_token(struct live *l, struct record *r, usec_t t);

/* r finished (its outcome set). */
void live_end(struct live *l, struct record *r, usec_t now);

/* True when something changed since c (or a second passed). */
bool live_changed(struct live *l, const struct live_cursor *c, usec_t now);

/* Appends one JSON object with everything that changed since *c
 * (everything, for a zeroed cursor) and moves *c to now. Its size is
 * bounded by the options (lanes × LIVE_TICKS, recent, sessions, seconds). */
void live_frame_json(struct live *l, struct live_cursor *c, struct evbuffer *out, usec_t now);

#endif
