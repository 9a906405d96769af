#include "tap/live.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/jsonw.h"

enum lane_state { LANE_WAIT, LANE_PREFILL, LANE_GEN, LANE_DONE };
static const char *const state_names[] = {"wait", "prefill", "gen", "done"};

/* A small log-linear histogram: 8 buckets per power of two (within 6.5 %
 * of the value at the bucket's middle), 1 µs to 50 days. The per-second
 * and per-session figures need percentiles, not hist's precision (26 KiB). */
#define SK_BUCKETS 320
struct sketch {
    uint64_t count;
    usec_t min, max; /* percentiles stay within them */
    uint32_t n[SK_BUCKETS];
};

static unsigned sk_index(usec_t v)
{
    if (v < 16)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 4 */
    unsigned idx = 16 + (e - 4) * 8 + (unsigned)((v >> (e - 3)) & 7);
    return idx < SK_BUCKETS ? idx : SK_BUCKETS - 1;
}

static usec_t sk_value(unsigned idx)
{
    if (idx < 16)
        return idx;
    unsigned e = 4 + (idx - 16) / 8, sub = (idx - 16) % 8;
    usec_t width = (usec_t)1 << (e - 3);
    return (8 + sub) * width + width / 2;
}

static void sk_add(struct sketch *s, usec_t v)
{
    s->n[sk_index(v)]++;
    if (s->count == 0 || v < s->min)
        s->min = v;
    if (v > s->max)
        s->max = v;
    s->count++;
}

/* Nearest-rank percentile p (0..100); 0 when empty. */
static usec_t sk_percentile(const struct sketch *s, double p)
{
    if (s->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)s->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    usec_t v = s->max;
    for (unsigned i = 0; i < SK_BUCKETS; i++) {
        seen += s->n[i];
        if (seen >= rank) {
            v = sk_value(i);
            break;
        }
    }
    return v < s->min ? s->min : v > s->max ? s->max : v;
}

struct tick {
    uint32_t ms;      /* since the live clock's start */
    uint32_t version; /* low bits of l->version when it came */
};

struct lane {
    uint64_t id;      /* the record's id; 0: a free lane */
    uint64_t key;     /* live's own serial: record ids repeat across load generators */
    uint64_t born;    /* l->version when it began */
    uint64_t version; /* l->version when it last changed */
    char group[96], model[96], upstream[64];
    bool by_session;  /* group is a session id, not a client */
    int thinking;
    enum lane_state state;
    enum record_outcome outcome;
    usec_t t_start, t_head, t_first, t_end;
    uint64_t tokens;  /* token events so far */
    struct tick ticks[LIVE_TICKS]; /* ring: the last ones */
    uint64_t n_ticks;
};

struct done {
    uint64_t version;
    uint64_t id, key;
    char group[96], model[96], upstream[64], route[96], rules[128], error[160], finish[32];
    bool by_session;
    int thinking, status;
    enum record_outcome outcome;
    usec_t t_start;                /* absolute */
    int64_t slot_wait, prefill;    /* µs; -1 unknown */
    usec_t ttft, e2e;              /* µs; ttft 0: no token */
    uint64_t tokens, events;
    int64_t prompt_tokens, cached_tokens;
    double decode_tps;
    unsigned level;
    uint32_t gaps[LIVE_GAP_BUCKETS];
};

struct session {
    char key[96];     /* "" = a free slot */
    bool by_session;
    uint64_t version;
    uint64_t requests, tokens, errors;
    unsigned in_flight;
    usec_t first_seen, last_seen, ttft_max;
    struct sketch ttft;
};

/* One second's figures. */
struct second {
    uint64_t sec;     /* 1-based seconds since the start; 0: none */
    uint32_t started, finished, errors, tokens, in_flight, queued;
    usec_t ttft[3], itl[3]; /* p50, p90, p99; 0: none */
};

struct series {
    char name[64];    /* "" for the total */
    unsigned in_flight, queued;
    struct second cur;
    struct sketch ttft, itl;
    struct second ring[LIVE_SECONDS];
};

struct live {
    struct live_options o;
    usec_t start;
    uint64_t version;
    uint64_t serial;           /* the last key given to a request */
    struct lane *lanes;        /* owned, o.max_lanes */
    unsigned lanes_in_flight;  /* lanes not done */
    struct done *done;         /* owned ring, o.recent */
    size_t done_next, done_n;
    struct session *sessions;  /* owned, o.max_sessions */
    struct series *series;     /* owned: [0] all, then upstreams */
    size_t n_series;
    uint64_t cur_sec;
};

void live_options_default(struct live_options *o)
{
    *o = (struct live_options){
        .max_lanes = 512,
        .recent = 1024,
        .max_sessions = 256,
        .linger = 5 * USEC_PER_SEC,
    };
}

int live_new(const struct live_options *o, usec_t now, struct live **ret)
{
    struct live *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->o = *o;
    if (!l->o.max_lanes)
        l->o.max_lanes = 1;
    if (!l->o.recent)
        l->o.recent = 1;
    if (!l->o.max_sessions)
        l->o.max_sessions = 1;
    l->start = now;
    l->cur_sec = 1;
    l->lanes = calloc(l->o.max_lanes, sizeof(*l->lanes));
    l->done = calloc(l->o.recent, sizeof(*l->done));
    l->sessions = calloc(l->o.max_sessions, sizeof(*l->sessions));
    l->series = calloc(1 + LIVE_MAX_UPSTREAMS, sizeof(*l->series));
    if (!l->lanes || !l->done || !l->sessions || !l->series) {
        live_free(l);
        return -ENOMEM;
    }
    l->n_series = 1;
    l->series[0].cur.sec = 1;
    *ret = l;
    return 0;
}

void live_free(struct live *l)
{
    if (!l)
        return;
    free(l->lanes);
    free(l->done);
    free(l->sessions);
    free(l->series);
    free(l);
}

static uint32_t ms_of(const struct live *l, usec_t t)
{
    return t > l->start ? (uint32_t)((t - l->start) / USEC_PER_MSEC) : 0;
}

/* --- the 1-second ring --- */

static void close_second(struct series *s)
{
    struct second *c = &s->cur;
    static const double ps[3] = {50, 90, 99};
    for (int i = 0; i < 3; i++) {
        c->ttft[i] = sk_percentile(&s->ttft, ps[i]);
        c->itl[i] = sk_percentile(&s->itl, ps[i]);
    }
    s->ring[c->sec % LIVE_SECONDS] = *c;
    if (s->ttft.count)
        memset(&s->ttft, 0, sizeof(s->ttft));
    if (s->itl.count)
        memset(&s->itl, 0, sizeof(s->itl));
}

static void open_second(struct series *s, uint64_t sec)
{
    s->cur = (struct second){.sec = sec, .in_flight = s->in_flight, .queued = s->queued};
}

/* Moves every series to the second of now, closing the ones passed. */
static void advance(struct live *l, usec_t now)
{
    uint64_t sec = (now > l->start ? (now - l->start) / USEC_PER_SEC : 0) + 1;
    if (sec <= l->cur_sec)
        return;
    for (size_t i = 0; i < l->n_series; i++) {
        struct series *s = &l->series[i];
        close_second(s);
        /* Quiet seconds in between: nothing happened, the counts held. */
        uint64_t from = sec - l->cur_sec > LIVE_SECONDS ? sec - LIVE_SECONDS : l->cur_sec + 1;
        for (uint64_t q = from; q < sec; q++) {
            open_second(s, q);
            s->ring[q % LIVE_SECONDS] = s->cur;
        }
        open_second(s, sec);
    }
    l->cur_sec = sec;
}

static struct series *series_for(struct live *l, const char *upstream)
{
    for (size_t i = 1; i < l->n_series; i++)
        if (strcmp(l->series[i].name, upstream) == 0)
            return &l->series[i];
    if (l->n_series == 1 + LIVE_MAX_UPSTREAMS)
        return &l->series[LIVE_MAX_UPSTREAMS];
    struct series *s = &l->series[l->n_series++];
    snprintf(s->name, sizeof(s->name), "%s", upstream);
    open_second(s, l->cur_sec);
    return s;
}

_Static_assert(1 + LIVE_MAX_UPSTREAMS < 256, "a record notes its series in a byte");

/* r's upstream's series: the one live_begin noted, else looked up by name. */
static struct series *series_of(struct live *l, const struct record *r)
{
    if (r->live_series)
        return &l->series[r->live_series - 1];
    return series_for(l, r->upstream);
}

/* Applies f to the total and to r's upstream. */
#define EACH_SERIES(l, r, s, body)                                                                 \
    do {                                                                                           \
        struct series *pair_[2] = {&(l)->series[0], series_of((l), (r))};                          \
        for (int k_ = 0; k_ < 2; k_++) {                                                           \
            struct series *s = pair_[k_];                                                          \
            body;                                                                                  \
        }                                                                                          \
    } while (0)

static void peak(struct series *s)
{
    if (s->in_flight > s->cur.in_flight)
        s->cur.in_flight = s->in_flight;
    if (s->queued > s->cur.queued)
        s->cur.queued = s->queued;
}

/* --- sessions --- */

static struct session *session_find(struct live *l, const char *key)
{
    for (unsigned i = 0; i < l->o.max_sessions; i++)
        if (l->sessions[i].key[0] && strcmp(l->sessions[i].key, key) == 0)
            return &l->sessions[i];
    return NULL;
}

/* key's session, made (replacing the least recently seen idle one, else
 * the least recently seen) when it is new. */
static struct session *session_get(struct live *l, const char *key, bool by_session, usec_t now)
{
    struct session *s = session_find(l, key), *victim = NULL;
    if (s)
        return s;
    for (unsigned i = 0; i < l->o.max_sessions; i++) {
        struct session *c = &l->sessions[i];
        if (!c->key[0]) {
            victim = c;
            break;
        }
        bool better = !victim || (c->in_flight == 0 && victim->in_flight > 0) ||
                      ((c->in_flight == 0) == (victim->in_flight == 0) && c->last_seen < victim->last_seen);
        if (better)
            victim = c;
    }
    if (!victim)
        victim = &l->sessions[0];
    memset(victim, 0, sizeof(*victim));
    snprintf(victim->key, sizeof(victim->key), "%s", key);
    victim->by_session = by_session;
    victim->first_seen = now;
    return victim;
}

/* --- requests --- */

/* r->live_lane for a request counted without a lane (all were busy). */
#define NO_LANE UINT32_MAX

static struct lane *lane_of(struct live *l, const struct record *r)
{
    if (r->live_lane == 0 || r->live_lane > l->o.max_lanes)
        return NULL;
    struct lane *ln = &l->lanes[r->live_lane - 1];
    return ln->id == r->id ? ln : NULL;
}

/* Frees lanes that finished more than linger ago. */
static void expire(struct live *l, usec_t now)
{
    for (unsigned i = 0; i < l->o.max_lanes; i++) {
        struct lane *ln = &l->lanes[i];
        if (ln->id && ln->state == LANE_DONE && clock_diff(now, ln->t_end) >= l->o.linger)
            ln->id = 0;
    }
}

/* A lane for a new request: a free one, else the one that finished
 * first; NULL when all are in flight. */
static struct lane *lane_new(struct live *l)
{
    struct lane *best = NULL;
    for (unsigned i = 0; i < l->o.max_lanes; i++) {
        struct lane *ln = &l->lanes[i];
        if (!ln->id)
            return ln;
        if (ln->state == LANE_DONE && (!best || ln->t_end < best->t_end))
            best = ln;
    }
    return best;
}

static void group_of(const struct record *r, const char *group, const char **ret, bool *by_session)
{
    *by_session = r->session[0] != 0;
    *ret = r->session[0] ? r->session : group && group[0] ? group : r->client;
}

void live_begin(struct live *l, struct record *r, const char *group, usec_t now)
{
    r->live_lane = 0;
    if (!record_is_generation(r))
        return;
    advance(l, now);
    l->version++;
    const char *key;
    bool by_session;
    group_of(r, group, &key, &by_session);
    r->live_series = (uint8_t)(series_for(l, r->upstream) - l->series + 1);
    EACH_SERIES(l, r, s, {
        s->in_flight++;
        s->queued++;
        s->cur.started++;
        peak(s);
    });
    struct lane *ln = lane_new(l);
    r->live_lane = NO_LANE;
    struct session *se = session_get(l, key, by_session, now);
    se->last_seen = now;
    se->version = l->version;
    if (!ln)
        return;
    se->in_flight++; /* ... and back at the end, which finds it by the lane's group */
    memset(ln, 0, offsetof(struct lane, ticks));
    ln->n_ticks = 0;
    ln->id = r->id;
    ln->key = ++l->serial;
    ln->born = ln->version = l->version;
    snprintf(ln->group, sizeof(ln->group), "%s", key);
    snprintf(ln->model, sizeof(ln->model), "%s", r->model);
    snprintf(ln->upstream, sizeof(ln->upstream), "%s", r->upstream);
    ln->by_session = by_session;
    ln->thinking = r->thinking;
    ln->state = LANE_WAIT;
    ln->outcome = RECORD_IN_PROGRESS;
    ln->t_start = r->t_start ? r->t_start : now;
    l->lanes_in_flight++;
    r->live_lane = (uint32_t)(ln - l->lanes) + 1;
}

void live_head(struct live *l, struct record *r, usec_t now)
{
    if (r->live_lane == 0)
        return;
    advance(l, now);
    l->version++;
    struct lane *ln = lane_of(l, r);
    if (ln && ln->state != LANE_WAIT)
        return;
    EACH_SERIES(l, r, s, {
        if (s->queued)
            s->queued--;
    });
    if (ln) {
        ln->state = LANE_PREFILL;
        ln->t_head = now;
        ln->version = l->version;
    }
}

void live_token(struct live *l, struct record *r, usec_t t)
{
    if (r->live_lane == 0)
        return;
    advance(l, t);
    l->version++;
    struct lane *ln = lane_of(l, r);
    bool first = r->token_events == 1;
    usec_t gap = 0;
    if (!first && r->n_gaps == r->token_events - 1 && r->n_gaps > 0)
        gap = r->gaps[r->n_gaps - 1];
    EACH_SERIES(l, r, s, {
        s->cur.tokens++;
        if (first && r->t_first_token >= r->t_start)
            sk_add(&s->ttft, r->t_first_token - r->t_start);
        if (gap)
            sk_add(&s->itl, gap);
    });
    if (!ln)
        return;
    if (ln->state == LANE_WAIT)
        live_head(l, r, t); /* tokens without a head: it had a slot */
    if (ln->state != LANE_GEN) {
        ln->state = LANE_GEN;
        ln->t_first = t;
    }
    ln->tokens = r->token_events;
    ln->version = l->version;
    ln->ticks[ln->n_ticks % LIVE_TICKS] = (struct tick){ms_of(l, t), (uint32_t)l->version};
    ln->n_ticks++;
}

static unsigned gap_bucket(uint32_t us)
{
    /* < 1 ms, < 2 ms, < 4 ms, ... the last one open. */
    unsigned b = 0;
    for (uint32_t lim = 1000; us >= lim && b < LIVE_GAP_BUCKETS - 1; lim *= 2)
        b++;
    return b;
}

static void done_add(struct live *l, const struct record *r, uint64_t serial, const char *key,
                     bool by_session)
{
    struct done *d = &l->done[l->done_next];
    memset(d, 0, sizeof(*d));
    l->done_next = (l->done_next + 1) % l->o.recent;
    if (l->done_n < l->o.recent)
        l->done_n++;
    d->version = l->version;
    d->id = r->id;
    d->key = serial;
    snprintf(d->group, sizeof(d->group), "%s", key);
    snprintf(d->model, sizeof(d->model), "%s", r->response_model[0] ? r->response_model : r->model);
    snprintf(d->upstream, sizeof(d->upstream), "%s", r->upstream);
    snprintf(d->route, sizeof(d->route), "%s", r->route);
    snprintf(d->rules, sizeof(d->rules), "%s", r->rules);
    snprintf(d->error, sizeof(d->error), "%s", r->error);
    snprintf(d->finish, sizeof(d->finish), "%s", r->finish_reason);
    d->by_session = by_session;
    d->thinking = r->thinking;
    d->status = r->status;
    d->outcome = r->outcome;
    d->t_start = r->t_start;
    d->slot_wait = record_slot_wait(r);
    d->prefill = record_prefill(r);
    d->ttft = record_ttft(r);
    d->e2e = record_e2e(r);
    d->tokens = record_output_tokens(r);
    d->events = r->token_events;
    d->prompt_tokens = r->prompt_tokens;
    d->cached_tokens = r->cached_tokens;
    d->decode_tps = record_decode_tps(r);
    d->level = r->concurrency;
    for (size_t i = 0; i < r->n_gaps; i++)
        d->gaps[gap_bucket(r->gaps[i])]++;
}

void live_end(struct live *l, struct record *r, usec_t now)
{
    if (r->live_lane == 0)
        return;
    advance(l, now);
    l->version++;
    struct lane *ln = lane_of(l, r);
    bool error = r->outcome != RECORD_OK;
    bool queued = ln ? ln->state == LANE_WAIT : r->t_response_head == 0;
    EACH_SERIES(l, r, s, {
        if (s->in_flight)
            s->in_flight--;
        if (queued && s->queued)
            s->queued--;
        s->cur.finished++;
        s->cur.errors += error;
    });
    const char *key;
    bool by_session;
    group_of(r, NULL, &key, &by_session);
    if (ln) {
        key = ln->group; /* the client address the begin was given */
        by_session = ln->by_session;
    }
    struct session *se = session_get(l, key, by_session, now);
    if (ln && se->in_flight)
        se->in_flight--;
    se->requests++;
    se->tokens += record_output_tokens(r);
    se->errors += error;
    se->last_seen = now;
    se->version = l->version;
    if (r->t_first_token && r->outcome == RECORD_OK) {
        usec_t t = record_ttft(r);
        sk_add(&se->ttft, t);
        if (t > se->ttft_max)
            se->ttft_max = t;
    }
    done_add(l, r, ln ? ln->key : ++l->serial, key, by_session);
    if (ln) {
        ln->state = LANE_DONE;
        ln->outcome = r->outcome;
        ln->t_end = now;
        ln->tokens = r->token_events;
        ln->version = l->version;
        if (l->lanes_in_flight)
            l->lanes_in_flight--;
    }
    r->live_lane = 0;
}

/* --- frames --- */

bool live_changed(struct live *l, const struct live_cursor *c, usec_t now)
{
    advance(l, now);
    return l->version != c->version || l->cur_sec - 1 > c->second;
}

/* v in decimal at the end of buf (24 bytes); returns where it starts.
 * Without printf: ticks are many. */
static const char *fmt_u64(char *buf, uint64_t v)
{
    char *p = buf + 24;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static void put_u64(struct evbuffer *out, uint64_t v)
{
    char buf[24];
    const char *p = fmt_u64(buf, v);
    evbuffer_add(out, p, (size_t)(buf + sizeof(buf) - p));
}

/* µs as milliseconds with three decimals, exactly. */
static void put_ms(struct evbuffer *out, usec_t us)
{
    evbuffer_add_printf(out, "%llu.%03llu", (unsigned long long)(us / 1000),
                        (unsigned long long)(us % 1000));
}

/* An absolute time as ms since the start, or null for 0. */
static void put_at(struct evbuffer *out, const struct live *l, usec_t t)
{
    if (t)
        put_u64(out, ms_of(l, t));
    else
        EVBUFFER_ADD_LIT(out, "null");
}

static bool newer(uint32_t v, uint64_t since)
{
    return (int32_t)(v - (uint32_t)since) > 0;
}

/* A lane update is written into a small buffer first, then added at
 * once: lanes change on every frame, and one evbuffer_add per number
 * would be most of a frame's cost. */
struct text {
    char buf[LIVE_TICKS * 12 + 256];
    size_t n;
};

static void text_lit(struct text *t, const char *s, size_t len)
{
    memcpy(t->buf + t->n, s, len);
    t->n += len;
}
#define TEXT_LIT(t, lit) text_lit((t), (lit), sizeof(lit) - 1)

static void text_u64(struct text *t, uint64_t v)
{
    char buf[24];
    const char *p = fmt_u64(buf, v);
    text_lit(t, p, (size_t)(buf + sizeof(buf) - p));
}

static void text_at(struct text *t, const struct live *l, usec_t at)
{
    if (at)
        text_u64(t, ms_of(l, at));
    else
        TEXT_LIT(t, "null");
}

static void text_flush(struct text *t, struct evbuffer *out)
{
    evbuffer_add(out, t->buf, t->n);
    t->n = 0;
}

static void lane_json(struct evbuffer *out, const struct live *l, const struct lane *ln,
                      const struct live_cursor *c)
{
    struct text t = {.n = 0};
    TEXT_LIT(&t, "{\"id\":");
    text_u64(&t, ln->key);
    TEXT_LIT(&t, ",\"rid\":");
    text_u64(&t, ln->id);
    if (ln->born > c->version) {
        text_flush(&t, out);
        EVBUFFER_ADD_LIT(out, ",\"g\":");
        jsonw_cstr(out, ln->group);
        evbuffer_add_printf(out, ",\"gs\":%s,\"m\":", ln->by_session ? "true" : "false");
        jsonw_cstr(out, ln->model);
        EVBUFFER_ADD_LIT(out, ",\"u\":");
        jsonw_cstr(out, ln->upstream);
        evbuffer_add_printf(out, ",\"th\":%d,\"t0\":", ln->thinking);
        put_at(out, l, ln->t_start);
    }
    TEXT_LIT(&t, ",\"st\":\"");
    text_lit(&t, state_names[ln->state], strlen(state_names[ln->state]));
    TEXT_LIT(&t, "\",\"h\":");
    text_at(&t, l, ln->t_head);
    TEXT_LIT(&t, ",\"f\":");
    text_at(&t, l, ln->t_first);
    TEXT_LIT(&t, ",\"e\":");
    text_at(&t, l, ln->t_end);
    if (ln->state == LANE_DONE) {
        const char *o = record_outcome_name(ln->outcome);
        TEXT_LIT(&t, ",\"o\":\"");
        text_lit(&t, o, strlen(o)); /* outcome names are short: within the 256 spare bytes */
        TEXT_LIT(&t, "\"");
    }
    TEXT_LIT(&t, ",\"n\":");
    text_u64(&t, ln->tokens);
    TEXT_LIT(&t, ",\"k\":[");
    uint64_t kept = ln->n_ticks < LIVE_TICKS ? ln->n_ticks : LIVE_TICKS;
    bool first = true;
    for (uint64_t i = ln->n_ticks - kept; i < ln->n_ticks; i++) {
        const struct tick *k = &ln->ticks[i % LIVE_TICKS];
        if (c->version && !newer(k->version, c->version))
            continue;
        if (!first)
            TEXT_LIT(&t, ",");
        first = false;
        text_u64(&t, k->ms); /* at most 11 bytes with its comma: LIVE_TICKS * 12 holds them */
    }
    TEXT_LIT(&t, "]}");
    text_flush(&t, out);
}

static void done_json(struct evbuffer *out, const struct live *l, const struct done *d)
{
    EVBUFFER_ADD_LIT(out, "{\"id\":");
    put_u64(out, d->key);
    EVBUFFER_ADD_LIT(out, ",\"rid\":");
    put_u64(out, d->id);
    EVBUFFER_ADD_LIT(out, ",\"g\":");
    jsonw_cstr(out, d->group);
    evbuffer_add_printf(out, ",\"gs\":%s,\"m\":", d->by_session ? "true" : "false");
    jsonw_cstr(out, d->model);
    EVBUFFER_ADD_LIT(out, ",\"u\":");
    jsonw_cstr(out, d->upstream);
    EVBUFFER_ADD_LIT(out, ",\"route\":");
    jsonw_cstr(out, d->route);
    EVBUFFER_ADD_LIT(out, ",\"rules\":");
    jsonw_cstr(out, d->rules);
    EVBUFFER_ADD_LIT(out, ",\"error\":");
    jsonw_cstr(out, d->error);
    EVBUFFER_ADD_LIT(out, ",\"finish\":");
    jsonw_cstr(out, d->finish);
    evbuffer_add_printf(out, ",\"th\":%d,\"status\":%d,\"o\":\"%s\",\"t0\":", d->thinking,
                        d->status, record_outcome_name(d->outcome));
    put_at(out, l, d->t_start);
    EVBUFFER_ADD_LIT(out, ",\"slot_wait\":");
    if (d->slot_wait >= 0)
        put_ms(out, (usec_t)d->slot_wait);
    else
        EVBUFFER_ADD_LIT(out, "null");
    EVBUFFER_ADD_LIT(out, ",\"prefill\":");
    if (d->prefill >= 0)
        put_ms(out, (usec_t)d->prefill);
    else
        EVBUFFER_ADD_LIT(out, "null");
    EVBUFFER_ADD_LIT(out, ",\"ttft\":");
    if (d->ttft)
        put_ms(out, d->ttft);
    else
        EVBUFFER_ADD_LIT(out, "null");
    EVBUFFER_ADD_LIT(out, ",\"e2e\":");
    put_ms(out, d->e2e);
    evbuffer_add_printf(out, ",\"tokens\":%llu,\"events\":%llu,\"prompt\":%lld,\"cached\":%lld,\"tps\":",
                        (unsigned long long)d->tokens, (unsigned long long)d->events,
                        (long long)d->prompt_tokens, (long long)d->cached_tokens);
    jsonw_double(out, d->decode_tps);
    evbuffer_add_printf(out, ",\"level\":%u,\"gaps\":[", d->level);
    for (int i = 0; i < LIVE_GAP_BUCKETS; i++) {
        if (i)
            EVBUFFER_ADD_LIT(out, ",");
        put_u64(out, d->gaps[i]);
    }
    EVBUFFER_ADD_LIT(out, "]}");
}

static void session_json(struct evbuffer *out, const struct live *l, const struct session *s)
{
    EVBUFFER_ADD_LIT(out, "{\"g\":");
    jsonw_cstr(out, s->key);
    evbuffer_add_printf(out, ",\"gs\":%s,\"requests\":%llu,\"tokens\":%llu,\"errors\":%llu,"
                        "\"in_flight\":%u,\"first\":",
                        s->by_session ? "true" : "false", (unsigned long long)s->requests,
                        (unsigned long long)s->tokens, (unsigned long long)s->errors, s->in_flight);
    put_at(out, l, s->first_seen);
    EVBUFFER_ADD_LIT(out, ",\"last\":");
    put_at(out, l, s->last_seen);
    EVBUFFER_ADD_LIT(out, ",\"ttft_p50\":");
    if (s->ttft.count)
        put_ms(out, sk_percentile(&s->ttft, 50));
    else
        EVBUFFER_ADD_LIT(out, "null");
    EVBUFFER_ADD_LIT(out, ",\"ttft_max\":");
    if (s->ttft.count)
        put_ms(out, s->ttft_max);
    else
        EVBUFFER_ADD_LIT(out, "null");
    EVBUFFER_ADD_LIT(out, "}");
}

static void second_json(struct evbuffer *out, size_t series, const struct second *s)
{
    evbuffer_add_printf(out, "[%zu,%llu,%u,%u,%u,%u,%u,%u", series, (unsigned long long)s->sec,
                        s->started, s->finished, s->errors, s->tokens, s->in_flight, s->queued);
    for (int i = 0; i < 3; i++) {
        EVBUFFER_ADD_LIT(out, ",");
        if (s->ttft[i])
            put_ms(out, s->ttft[i]);
        else
            EVBUFFER_ADD_LIT(out, "null");
    }
    for (int i = 0; i < 3; i++) {
        EVBUFFER_ADD_LIT(out, ",");
        if (s->itl[i])
            put_ms(out, s->itl[i]);
        else
            EVBUFFER_ADD_LIT(out, "null");
    }
    EVBUFFER_ADD_LIT(out, "]");
}

void live_frame_json(struct live *l, struct live_cursor *c, struct evbuffer *out, usec_t now)
{
    advance(l, now);
    expire(l, now);
    /* A reader so far behind that tick versions wrapped starts over. */
    if (l->version - c->version > UINT32_MAX / 2)
        *c = (struct live_cursor){0};
    unsigned in_flight = l->series[0].in_flight;
    evbuffer_add_printf(out, "{\"now\":%u,\"in_flight\":%u,\"queued\":%u,\"hidden\":%u,\"full\":%s",
                        ms_of(l, now), in_flight, l->series[0].queued,
                        in_flight > l->lanes_in_flight ? in_flight - l->lanes_in_flight : 0,
                        c->version == 0 ? "true" : "false");
    EVBUFFER_ADD_LIT(out, ",\"upstreams\":[");
    for (size_t i = 1; i < l->n_series; i++) {
        if (i > 1)
            EVBUFFER_ADD_LIT(out, ",");
        jsonw_cstr(out, l->series[i].name);
    }
    EVBUFFER_ADD_LIT(out, "],\"lanes\":[");
    bool first = true;
    for (unsigned i = 0; i < l->o.max_lanes; i++) {
        const struct lane *ln = &l->lanes[i];
        if (!ln->id || ln->version <= c->version)
            continue;
        if (!first)
            EVBUFFER_ADD_LIT(out, ",");
        first = false;
        lane_json(out, l, ln, c);
    }
    EVBUFFER_ADD_LIT(out, "],\"done\":[");
    first = true;
    for (size_t i = 0; i < l->done_n; i++) {
        const struct done *d = &l->done[(l->done_next + l->o.recent - l->done_n + i) % l->o.recent];
        if (d->version <= c->version)
            continue;
        if (!first)
            EVBUFFER_ADD_LIT(out, ",");
        first = false;
        done_json(out, l, d);
    }
    EVBUFFER_ADD_LIT(out, "],\"sessions\":[");
    first = true;
    for (unsigned i = 0; i < l->o.max_sessions; i++) {
        const struct session *s = &l->sessions[i];
        if (!s->key[0] || s->version <= c->version)
            continue;
        if (!first)
            EVBUFFER_ADD_LIT(out, ",");
        first = false;
        session_json(out, l, s);
    }
    /* Whole seconds only: the current one is still counting. */
    EVBUFFER_ADD_LIT(out, "],\"seconds\":[");
    first = true;
    uint64_t last = l->cur_sec - 1;
    uint64_t from = c->second + 1;
    if (last >= LIVE_SECONDS && from < last - LIVE_SECONDS + 1)
        from = last - LIVE_SECONDS + 1;
    for (uint64_t sec = from; sec <= last; sec++) {
        /* One series (the total) needs no repeat per upstream. */
        for (size_t i = 0; i < (l->n_series > 2 ? l->n_series : 1); i++) {
            const struct second *s = &l->series[i].ring[sec % LIVE_SECONDS];
            if (s->sec != sec)
                continue;
            if (!first)
                EVBUFFER_ADD_LIT(out, ",");
            first = false;
            second_json(out, i, s);
        }
    }
    EVBUFFER_ADD_LIT(out, "]}");
    c->version = l->version;
    c->second = last;
}
