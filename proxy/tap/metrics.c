#include "tap/metrics.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/hist.h"
#include "core/jsonw.h"

enum {
    H_TTFT,
    H_TTFC,
    H_ITL,
    H_TPOT,
    H_E2E,
    H_QUEUE,
    H_SLOT_WAIT,
    H_PREFILL,
    H_COUNT,
};

#define WINDOW_SECONDS 64
#define MAX_UPSTREAMS 64
#define MAX_SKIP_REASONS 16
#define MAX_ROUTE_STATS 128
#define MODEL_LEN 96

struct group {
    char upstream[64], model[MODEL_LEN];
    const char *route; /* static: dialect_route_label() */
    unsigned level;   /* 1..concurrency_buckets; the last means "N+" */
    int thinking;     /* -1 unknown, 0 off, 1 on */
    struct hist *h;   /* owned: H_COUNT histograms, allocated at the first ok request */
    uint64_t requests;
    uint64_t outcomes[RECORD_OUTCOMES];
    uint64_t output_tokens, prompt_tokens, cached_tokens, token_events;
    double decode_tps_sum;
    uint64_t decode_n;
};

/* A rise of the in-flight count: the n-th start brought it to value. */
struct rise {
    uint64_t n;
    unsigned value;
};

struct upstate {
    char name[64];
    unsigned in_flight, peak;
    /* The highest in-flight count since any past start, for levels: rises
     * with strictly falling values (a rise hides every lower one before
     * it), so at most `peak` of them. */
    struct rise *rises;  /* owned */
    size_t n_rises, cap_rises;
    uint64_t starts;
    usec_t last_change;
    double area;      /* ∫ in_flight dt, in µs */
    uint64_t tokens;  /* token events delivered */
    uint64_t per_second[WINDOW_SECONDS]; /* token events by second (ring) */
    uint64_t second;  /* the second per_second[second % W] holds */
};

struct session {
    char id[96];
    uint64_t requests, errors, output_tokens, ttft_n;
    usec_t ttft_sum, ttft_max, e2e_sum, last_seen;
};

struct skip {
    char reason[48];
    uint64_t n;
};

/* Requests on routes that generate nothing (/health, /v1/models, ...). */
struct route_stat {
    const char *route; /* static: dialect_route_label() */
    int status;
    uint64_t n;
    struct hist *duration; /* owned */
};

struct metrics {
    struct metrics_options o;
    usec_t start;
    struct group *groups;       /* owned */
    size_t n_groups;
    /* The same requests by level alone (index level - 1), kept as they end:
     * the level table (/tokentap/stats, the dashboard each second) then
     * merges nothing. */
    struct group *levels;       /* owned, o.concurrency_buckets */
    struct upstate ups[MAX_UPSTREAMS];
    size_t n_ups;
    struct session *sessions;   /* owned, o.max_sessions */
    size_t n_sessions;
    struct record *recent;      /* owned ring of o.recent records (with their gaps) */
    size_t recent_next, recent_n;
    struct skip skips[MAX_SKIP_REASONS];
    size_t n_skips;
    struct route_stat routes[MAX_ROUTE_STATS];
    size_t n_routes;
    char (*models)[MODEL_LEN];  /* owned, o.max_models: the model label values */
    size_t n_models;
    uint64_t requests;
};

void metrics_options_default(struct metrics_options *o)
{
    *o = (struct metrics_options){
        .concurrency_buckets = 16,
        .max_groups = 1024,
        .max_sessions = 256,
        .recent = 256,
        .max_models = 64,
    };
    metrics_buckets_log(&o->slow, 1000, 300 * USEC_PER_SEC, 20);
    metrics_buckets_log(&o->fast, 100, 10 * USEC_PER_SEC, 20);
}

int metrics_buckets_log(struct metrics_buckets *b, usec_t min, usec_t max, unsigned per_decade)
{
    if (min == 0 || max < min || per_decade == 0 || per_decade > 100)
        return -EINVAL;
    struct metrics_buckets out = {0};
    for (unsigned k = 0;; k++) {
        double v = (double)min * pow(10.0, (double)k / per_decade);
        /* Three significant digits: bounds people can read. */
        double scale = pow(10.0, floor(log10(v)) - 2);
        usec_t le = (usec_t)(round(v / scale) * scale);
        if (out.n == METRICS_MAX_BUCKETS)
            return -EINVAL;
        if (out.n == 0 || le > out.le[out.n - 1])
            out.le[out.n++] = le;
        if (le >= max) /* the last bound reaches max */
            break;
    }
    *b = out;
    return 0;
}

int metrics_new(const struct metrics_options *o, usec_t now, struct metrics **ret)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->o = *o;
    if (m->o.concurrency_buckets < 2)
        m->o.concurrency_buckets = 2;
    m->start = now;
    m->groups = calloc(o->max_groups ? o->max_groups : 1, sizeof(*m->groups));
    m->levels = calloc(m->o.concurrency_buckets, sizeof(*m->levels));
    m->sessions = calloc(o->max_sessions ? o->max_sessions : 1, sizeof(*m->sessions));
    m->recent = calloc(o->recent ? o->recent : 1, sizeof(*m->recent));
    m->models = calloc(o->max_models ? o->max_models : 1, sizeof(*m->models));
    if (!m->groups || !m->levels || !m->sessions || !m->recent || !m->models) {
        metrics_free(m);
        return -ENOMEM;
    }
    *ret = m;
    return 0;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    if (m->groups)
        for (size_t i = 0; i < m->n_groups; i++)
            free(m->groups[i].h);
    if (m->levels)
        for (unsigned i = 0; i < m->o.concurrency_buckets; i++)
            free(m->levels[i].h);
    free(m->levels);
    if (m->recent)
        for (size_t i = 0; i < m->recent_n; i++)
            record_finish(&m->recent[i]);
    for (size_t i = 0; i < m->n_routes; i++)
        free(m->routes[i].duration);
    for (size_t i = 0; i < m->n_ups; i++)
        free(m->ups[i].rises);
    free(m->groups);
    free(m->sessions);
    free(m->recent);
    free(m->models);
    free(m);
}

/* --- upstreams: in flight, concurrency, throughput --- */

static struct upstate *upstate(struct metrics *m, const char *name, usec_t now)
{
    for (size_t i = 0; i < m->n_ups; i++)
        if (strcmp(m->ups[i].name, name) == 0)
            return &m->ups[i];
    if (m->n_ups == MAX_UPSTREAMS)
        return &m->ups[MAX_UPSTREAMS - 1];
    struct upstate *u = &m->ups[m->n_ups++];
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->last_change = now;
    return u;
}

static void account(struct upstate *u, usec_t now)
{
    u->area += (double)u->in_flight * (double)clock_diff(now, u->last_change);
    u->last_change = now;
}

/* Moves the per-second ring forward to now, clearing skipped seconds. */
static void advance(struct upstate *u, uint64_t sec)
{
    if (sec <= u->second)
        return;
    uint64_t steps = sec - u->second;
    if (steps > WINDOW_SECONDS)
        steps = WINDOW_SECONDS;
    for (uint64_t i = 1; i <= steps; i++)
        u->per_second[(u->second + i) % WINDOW_SECONDS] = 0;
    u->second = sec;
}

/* Token events per second over the last `seconds` whole seconds. */
static double rate(struct upstate *u, usec_t now, unsigned seconds)
{
    uint64_t sec = now / USEC_PER_SEC;
    advance(u, sec);
    uint64_t sum = 0;
    for (unsigned i = 1; i <= seconds; i++)
        sum += u->per_second[(sec - i) % WINDOW_SECONDS];
    return (double)sum / seconds;
}

unsigned metrics_in_flight(const struct metrics *m)
{
    unsigned n = 0;
    for (size_t i = 0; i < m->n_ups; i++)
        n += m->ups[i].in_flight;
    return n;
}

/* The count rose to u->in_flight at start number u->starts. */
static void rise_push(struct upstate *u)
{
    while (u->n_rises > 0 && u->rises[u->n_rises - 1].value <= u->in_flight)
        u->n_rises--;
    if (u->n_rises == u->cap_rises) {
        size_t cap = u->cap_rises ? u->cap_rises * 2 : 16;
        struct rise *r = realloc(u->rises, cap * sizeof(*r));
        if (!r)
            return; /* levels read a little low rather than fail */
        u->rises = r;
        u->cap_rises = cap;
    }
    u->rises[u->n_rises++] = (struct rise){u->starts, u->in_flight};
}

/* The most in flight at any moment since start number `since`: the
 * oldest rise from then on (values fall with age). */
static unsigned rise_max_since(const struct upstate *u, uint64_t since)
{
    size_t lo = 0, hi = u->n_rises;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u->rises[mid].n < since)
            lo = mid + 1;
        else
            hi = mid;
    }
    unsigned v = lo < u->n_rises ? u->rises[lo].value : 0;
    return v > u->in_flight ? v : u->in_flight;
}

void metrics_begin(struct metrics *m, struct record *r, usec_t now)
{
    if (!record_is_generation(r))
        return;
    struct upstate *u = upstate(m, r->upstream, now);
    account(u, now);
    u->in_flight++;
    u->starts++;
    if (u->in_flight > u->peak)
        u->peak = u->in_flight;
    rise_push(u);
    r->concurrency_mark = u->starts;
    r->concurrency_start = r->concurrency = u->in_flight;
}

void metrics_token(struct metrics *m, struct record *r, usec_t now)
{
    struct upstate *u = upstate(m, r->upstream, now);
    if (r->token_events == 1 && r->concurrency_mark) {
        r->concurrency_first_token = u->in_flight;
        r->concurrency = rise_max_since(u, r->concurrency_mark);
    }
    advance(u, now / USEC_PER_SEC);
    u->per_second[u->second % WINDOW_SECONDS]++;
    u->tokens++;
}

/* --- groups --- */

static unsigned level_of(const struct metrics *m, unsigned concurrency)
{
    if (concurrency == 0)
        concurrency = 1;
    return concurrency < m->o.concurrency_buckets ? concurrency : m->o.concurrency_buckets;
}

/* A known model name's label slot, or NULL. */
static const char *known_model(const struct metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n_models; i++)
        if (strcmp(m->models[i], name) == 0)
            return m->models[i];
    return NULL;
}

int metrics_add_model(struct metrics *m, const char *name)
{
    if (!name[0] || known_model(m, name))
        return 0;
    if (m->n_models == m->o.max_models)
        return -ENOSPC;
    snprintf(m->models[m->n_models++], MODEL_LEN, "%s", name);
    return 0;
}

/* The model label: a client may name any model, so only names the
 * configuration gave or an upstream answered with (up to max_models) are
 * labels of their own; the rest is "other", no name "". */
static const char *model_label(struct metrics *m, const struct record *r)
{
    if (r->response_model[0])
        metrics_add_model(m, r->response_model);
    const char *known = known_model(m, r->model);
    if (!known && r->response_model[0])
        known = known_model(m, r->response_model);
    if (known)
        return known;
    return r->model[0] || r->response_model[0] ? "other" : "";
}

static struct group *group_for(struct metrics *m, const struct record *r)
{
    unsigned level = level_of(m, r->concurrency);
    const char *model = model_label(m, r);
    const char *route = dialect_route_label(r->route, strlen(r->route));
    for (size_t i = 0; i < m->n_groups; i++) {
        struct group *g = &m->groups[i];
        if (g->level == level && g->thinking == r->thinking && g->route == route &&
            strcmp(g->upstream, r->upstream) == 0 && strcmp(g->model, model) == 0)
            return g;
    }
    /* Beyond the cap, the last group takes everything else. */
    if (m->n_groups == m->o.max_groups)
        return &m->groups[m->n_groups - 1];
    struct group *g = &m->groups[m->n_groups++];
    snprintf(g->upstream, sizeof(g->upstream), "%s", r->upstream);
    snprintf(g->model, sizeof(g->model), "%s", model);
    g->route = route;
    g->level = level;
    g->thinking = r->thinking;
    return g;
}

static void group_add(struct group *g, const struct record *r)
{
    g->requests++;
    g->outcomes[r->outcome]++;
    g->output_tokens += record_output_tokens(r);
    g->token_events += r->token_events;
    if (r->prompt_tokens > 0)
        g->prompt_tokens += (uint64_t)r->prompt_tokens;
    if (r->cached_tokens > 0)
        g->cached_tokens += (uint64_t)r->cached_tokens;
    if (r->outcome != RECORD_OK)
        return;
    if (!g->h) {
        g->h = calloc(H_COUNT, sizeof(struct hist));
        if (!g->h)
            return;
    }
    if (r->t_first_token)
        hist_record(&g->h[H_TTFT], record_ttft(r));
    if (r->t_first_content)
        hist_record(&g->h[H_TTFC], record_ttfc(r));
    for (size_t i = 0; i < r->n_gaps; i++)
        hist_record(&g->h[H_ITL], r->gaps[i]);
    if (record_tpot(r))
        hist_record(&g->h[H_TPOT], record_tpot(r));
    hist_record(&g->h[H_E2E], record_e2e(r));
    int64_t q = record_queue_estimate(r);
    if (q >= 0)
        hist_record(&g->h[H_QUEUE], (usec_t)q);
    int64_t w = record_slot_wait(r), p = record_prefill(r);
    if (w >= 0 && p >= 0) {
        hist_record(&g->h[H_SLOT_WAIT], (usec_t)w);
        hist_record(&g->h[H_PREFILL], (usec_t)p);
    }
    double tps = record_decode_tps(r);
    if (tps > 0) {
        g->decode_tps_sum += tps;
        g->decode_n++;
    }
}

/* Adds src's numbers into dst (for aggregated views). */
static int group_merge(struct group *dst, const struct group *src)
{
    dst->requests += src->requests;
    for (int i = 0; i < RECORD_OUTCOMES; i++)
        dst->outcomes[i] += src->outcomes[i];
    dst->output_tokens += src->output_tokens;
    dst->prompt_tokens += src->prompt_tokens;
    dst->cached_tokens += src->cached_tokens;
    dst->token_events += src->token_events;
    dst->decode_tps_sum += src->decode_tps_sum;
    dst->decode_n += src->decode_n;
    if (!src->h)
        return 0;
    if (!dst->h) {
        dst->h = calloc(H_COUNT, sizeof(struct hist));
        if (!dst->h)
            return -ENOMEM;
    }
    for (int i = 0; i < H_COUNT; i++)
        hist_merge(&dst->h[i], &src->h[i]);
    return 0;
}

/* --- sessions and recent records --- */

static void session_add(struct metrics *m, const struct record *r, usec_t now)
{
    if (!r->session[0] || m->o.max_sessions == 0)
        return;
    struct session *s = NULL, *oldest = NULL;
    for (size_t i = 0; i < m->n_sessions; i++) {
        if (strcmp(m->sessions[i].id, r->session) == 0)
            s = &m->sessions[i];
        if (!oldest || m->sessions[i].last_seen < oldest->last_seen)
            oldest = &m->sessions[i];
    }
    if (!s) {
        s = m->n_sessions < m->o.max_sessions ? &m->sessions[m->n_sessions++] : oldest;
        memset(s, 0, sizeof(*s));
        snprintf(s->id, sizeof(s->id), "%s", r->session);
    }
    s->last_seen = now;
    s->requests++;
    s->output_tokens += record_output_tokens(r);
    if (r->outcome != RECORD_OK) {
        s->errors++;
        return;
    }
    if (r->t_first_token) {
        usec_t t = record_ttft(r);
        s->ttft_sum += t;
        s->ttft_n++;
        if (t > s->ttft_max)
            s->ttft_max = t;
    }
    s->e2e_sum += record_e2e(r);
}

static void recent_add(struct metrics *m, const struct record *r)
{
    if (m->o.recent == 0)
        return;
    struct record *slot = &m->recent[m->recent_next];
    if (m->recent_n == m->o.recent)
        record_finish(slot);
    else
        m->recent_n++;
    if (record_copy(slot, r, true) < 0)
        record_copy(slot, r, false);
    m->recent_next = (m->recent_next + 1) % m->o.recent;
}

/* Counts a request on a route that generates nothing. */
static void route_add(struct metrics *m, const struct record *r)
{
    const char *route = dialect_route_label(r->route, strlen(r->route));
    struct route_stat *st = NULL;
    for (size_t i = 0; i < m->n_routes && !st; i++)
        if (m->routes[i].route == route && m->routes[i].status == r->status)
            st = &m->routes[i];
    if (!st) {
        /* Statuses are three digits and routes a fixed set: the cap is
         * only a guard; past it the last entry takes the rest. */
        st = m->n_routes < MAX_ROUTE_STATS ? &m->routes[m->n_routes++] : &m->routes[MAX_ROUTE_STATS - 1];
        if (!st->route) {
            st->route = route;
            st->status = r->status;
        }
    }
    st->n++;
    if (!st->duration)
        st->duration = calloc(1, sizeof(*st->duration));
    if (st->duration && r->t_end)
        hist_record(st->duration, record_e2e(r));
}

void metrics_end(struct metrics *m, struct record *r, usec_t now)
{
    m->requests++;
    if (record_is_generation(r)) {
        struct upstate *u = upstate(m, r->upstream, now);
        /* Only what metrics_begin counted leaves the count. */
        if (r->concurrency_mark) {
            if (!r->t_first_token)
                r->concurrency = rise_max_since(u, r->concurrency_mark);
            account(u, now);
            assert(u->in_flight > 0);
            u->in_flight--;
        }
        group_add(group_for(m, r), r);
        struct group *lv = &m->levels[level_of(m, r->concurrency) - 1];
        lv->level = level_of(m, r->concurrency);
        group_add(lv, r);
        session_add(m, r, now);
    } else {
        route_add(m, r);
    }
    recent_add(m, r);
}

void metrics_rewrite_skipped(struct metrics *m, const char *reason)
{
    for (size_t i = 0; i < m->n_skips; i++) {
        if (strcmp(m->skips[i].reason, reason) == 0) {
            m->skips[i].n++;
            return;
        }
    }
    if (m->n_skips == MAX_SKIP_REASONS)
        return;
    snprintf(m->skips[m->n_skips].reason, sizeof(m->skips[0].reason), "%s", reason);
    m->skips[m->n_skips++].n = 1;
}

/* --- Prometheus --- */

static const struct {
    const char *name, *help;
    int hist;
} hist_families[] = {
    {"tokentap_time_to_first_token_seconds", "Time from the last request byte to the first token event.", H_TTFT},
    {"tokentap_time_to_first_content_token_seconds", "Time from the last request byte to the first content (not reasoning) token.", H_TTFC},
    {"tokentap_inter_token_latency_seconds", "Gaps between consecutive token events.", H_ITL},
    {"tokentap_time_per_output_token_seconds", "(last token - first token) / (output tokens - 1), per request.", H_TPOT},
    {"tokentap_request_duration_seconds", "Time from the last request byte to the end of the response.", H_E2E},
    {"tokentap_queue_estimate_seconds", "Time to first token minus the server's prompt_ms: time not spent in prefill.", H_QUEUE},
    {"tokentap_slot_wait_seconds", "Time from the last request byte to the response head: llama-server sends the head when the request gets a slot.", H_SLOT_WAIT},
    {"tokentap_prefill_seconds", "Time from the response head to the first token event: prompt processing.", H_PREFILL},
};

/* Prometheus label values escape \, " and newline. */
static void label(struct evbuffer *out, const char *name, const char *value, bool first)
{
    evbuffer_add_printf(out, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            evbuffer_add_printf(out, "\\%c", *p);
        else if (*p == '\n')
            EVBUFFER_ADD_LIT(out, "\\n");
        else
            evbuffer_add(out, p, 1);
    }
    EVBUFFER_ADD_LIT(out, "\"");
}

static const char *thinking_name(int t)
{
    return t < 0 ? "unknown" : t ? "on" : "off";
}

static void group_labels(const struct metrics *m, struct evbuffer *out, const struct group *g)
{
    char level[16];
    if (g->level >= m->o.concurrency_buckets)
        snprintf(level, sizeof(level), "%u+", g->level);
    else
        snprintf(level, sizeof(level), "%u", g->level);
    label(out, "upstream", g->upstream, true);
    label(out, "model", g->model[0] ? g->model : "unknown", false);
    label(out, "route", g->route ? g->route : "other", false);
    label(out, "concurrency", level, false);
    label(out, "thinking", thinking_name(g->thinking), false);
}

static void prom_double(struct evbuffer *out, double v)
{
    char buf[40];
    snprintf(buf, sizeof(buf), "%.9g", v);
    evbuffer_add(out, buf, strlen(buf));
}

static void route_labels(struct evbuffer *out, const struct route_stat *st)
{
    char status[16];
    snprintf(status, sizeof(status), "%d", st->status);
    label(out, "route", st->route, true);
    label(out, "status", status, false);
}

/* One histogram's _bucket, _sum and _count lines; labels is the label
 * list without braces. */
static void prom_hist(struct evbuffer *out, const char *name, struct evbuffer *labels,
                      const struct hist *h, const struct metrics_buckets *b)
{
    size_t ll = evbuffer_get_length(labels);
    const char *l = (const char *)evbuffer_pullup(labels, -1);
    for (size_t i = 0; i < b->n; i++) {
        evbuffer_add_printf(out, "%s_bucket{%.*s,le=\"", name, (int)ll, l);
        prom_double(out, (double)b->le[i] / 1e6);
        evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)hist_count_le(h, b->le[i]));
    }
    evbuffer_add_printf(out, "%s_bucket{%.*s,le=\"+Inf\"} %llu\n%s_sum{%.*s} ", name, (int)ll, l,
                        (unsigned long long)hist_count(h), name, (int)ll, l);
    prom_double(out, (double)hist_sum(h) / 1e6);
    evbuffer_add_printf(out, "\n%s_count{%.*s} %llu\n", name, (int)ll, l,
                        (unsigned long long)hist_count(h));
}

void metrics_prometheus(struct metrics *m, struct evbuffer *out, usec_t now)
{
    for (size_t f = 0; f < sizeof(hist_families) / sizeof(hist_families[0]); f++) {
        int hi = hist_families[f].hist;
        bool fast = hi == H_ITL || hi == H_TPOT;
        const char *name = hist_families[f].name;
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, hist_families[f].help,
                            name);
        for (size_t i = 0; i < m->n_groups; i++) {
            const struct group *g = &m->groups[i];
            if (!g->h)
                continue;
            struct evbuffer *labels = evbuffer_new();
            if (!labels)
                return;
            group_labels(m, labels, g);
            prom_hist(out, name, labels, &g->h[hi], fast ? &m->o.fast : &m->o.slow);
            evbuffer_free(labels);
        }
    }

    evbuffer_add_printf(out, "# HELP tokentap_http_requests_total Requests on routes that generate nothing, by route and status.\n"
                             "# TYPE tokentap_http_requests_total counter\n");
    for (size_t i = 0; i < m->n_routes; i++) {
        EVBUFFER_ADD_LIT(out, "tokentap_http_requests_total{");
        route_labels(out, &m->routes[i]);
        evbuffer_add_printf(out, "} %llu\n", (unsigned long long)m->routes[i].n);
    }
    static const char dur[] = "tokentap_http_request_duration_seconds";
    evbuffer_add_printf(out, "# HELP %s Duration of requests on routes that generate nothing.\n"
                             "# TYPE %s histogram\n", dur, dur);
    for (size_t i = 0; i < m->n_routes; i++) {
        struct evbuffer *labels = evbuffer_new();
        if (!labels)
            return;
        route_labels(labels, &m->routes[i]);
        if (m->routes[i].duration)
            prom_hist(out, dur, labels, m->routes[i].duration, &m->o.slow);
        evbuffer_free(labels);
    }

    evbuffer_add_printf(out, "# HELP tokentap_requests_total Finished requests by outcome.\n"
                             "# TYPE tokentap_requests_total counter\n");
    for (size_t i = 0; i < m->n_groups; i++)
        for (int o = 0; o < RECORD_OUTCOMES; o++) {
            if (!m->groups[i].outcomes[o])
                continue;
            EVBUFFER_ADD_LIT(out, "tokentap_requests_total{");
            group_labels(m, out, &m->groups[i]);
            label(out, "outcome", record_outcome_name((enum record_outcome)o), false);
            evbuffer_add_printf(out, "} %llu\n", (unsigned long long)m->groups[i].outcomes[o]);
        }

    static const struct {
        const char *name, *help;
        size_t offset;
    } counters[] = {
        {"tokentap_output_tokens_total", "Output tokens (the server's count when given, else token events).", offsetof(struct group, output_tokens)},
        {"tokentap_prompt_tokens_total", "Prompt tokens as the server reported them.", offsetof(struct group, prompt_tokens)},
        {"tokentap_cached_prompt_tokens_total", "Prompt tokens served from the server's cache.", offsetof(struct group, cached_tokens)},
        {"tokentap_token_events_total", "Streamed events that carried output.", offsetof(struct group, token_events)},
    };
    for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name, counters[c].help,
                            counters[c].name);
        for (size_t i = 0; i < m->n_groups; i++) {
            const struct group *g = &m->groups[i];
            evbuffer_add_printf(out, "%s{", counters[c].name);
            group_labels(m, out, g);
            evbuffer_add_printf(out, "} %llu\n",
                                (unsigned long long)*(const uint64_t *)((const char *)g + counters[c].offset));
        }
    }

    evbuffer_add_printf(out, "# HELP tokentap_requests_in_flight Requests in progress per upstream.\n"
                             "# TYPE tokentap_requests_in_flight gauge\n");
    for (size_t i = 0; i < m->n_ups; i++) {
        EVBUFFER_ADD_LIT(out, "tokentap_requests_in_flight{");
        label(out, "upstream", m->ups[i].name, true);
        evbuffer_add_printf(out, "} %u\n", m->ups[i].in_flight);
    }
    evbuffer_add_printf(out, "# HELP tokentap_concurrency_peak Most requests in flight at once per upstream.\n"
                             "# TYPE tokentap_concurrency_peak gauge\n");
    for (size_t i = 0; i < m->n_ups; i++) {
        EVBUFFER_ADD_LIT(out, "tokentap_concurrency_peak{");
        label(out, "upstream", m->ups[i].name, true);
        evbuffer_add_printf(out, "} %u\n", m->ups[i].peak);
    }
    evbuffer_add_printf(out, "# HELP tokentap_concurrency_mean Time-weighted mean of requests in flight since start.\n"
                             "# TYPE tokentap_concurrency_mean gauge\n");
    for (size_t i = 0; i < m->n_ups; i++) {
        struct upstate *u = &m->ups[i];
        account(u, now);
        usec_t span = clock_diff(now, m->start);
        EVBUFFER_ADD_LIT(out, "tokentap_concurrency_mean{");
        label(out, "upstream", u->name, true);
        EVBUFFER_ADD_LIT(out, "} ");
        prom_double(out, span ? u->area / (double)span : 0);
        EVBUFFER_ADD_LIT(out, "\n");
    }
    evbuffer_add_printf(out, "# HELP tokentap_token_events_per_second Token events delivered per second over a sliding window.\n"
                             "# TYPE tokentap_token_events_per_second gauge\n");
    for (size_t i = 0; i < m->n_ups; i++) {
        static const unsigned windows[] = {10, 60};
        for (size_t w = 0; w < 2; w++) {
            char win[8];
            snprintf(win, sizeof(win), "%us", windows[w]);
            EVBUFFER_ADD_LIT(out, "tokentap_token_events_per_second{");
            label(out, "upstream", m->ups[i].name, true);
            label(out, "window", win, false);
            EVBUFFER_ADD_LIT(out, "} ");
            prom_double(out, rate(&m->ups[i], now, windows[w]));
            EVBUFFER_ADD_LIT(out, "\n");
        }
    }
    evbuffer_add_printf(out, "# HELP tokentap_rewrite_skipped_total Request bodies the rewrite rules left unchanged, by reason.\n"
                             "# TYPE tokentap_rewrite_skipped_total counter\n");
    for (size_t i = 0; i < m->n_skips; i++) {
        EVBUFFER_ADD_LIT(out, "tokentap_rewrite_skipped_total{");
        label(out, "reason", m->skips[i].reason, true);
        evbuffer_add_printf(out, "} %llu\n", (unsigned long long)m->skips[i].n);
    }
}

/* --- JSON statistics --- */

void metrics_hist_json(struct evbuffer *out, const char *key, const struct hist *h)
{
    evbuffer_add_printf(out, "\"%s\":{\"count\":%llu", key, (unsigned long long)hist_count(h));
    if (hist_count(h)) {
        static const struct {
            const char *k;
            double p;
        } ps[] = {{"p50", 50}, {"p90", 90}, {"p95", 95}, {"p99", 99}};
        for (size_t i = 0; i < 4; i++) {
            evbuffer_add_printf(out, ",\"%s\":", ps[i].k);
            jsonw_double(out, (double)hist_percentile(h, ps[i].p) / 1000.0);
        }
        EVBUFFER_ADD_LIT(out, ",\"min\":");
        jsonw_double(out, (double)hist_min(h) / 1000.0);
        EVBUFFER_ADD_LIT(out, ",\"max\":");
        jsonw_double(out, (double)hist_max(h) / 1000.0);
        EVBUFFER_ADD_LIT(out, ",\"mean\":");
        jsonw_double(out, hist_mean(h) / 1000.0);
    }
    EVBUFFER_ADD_LIT(out, "}");
}

static void tps_from(struct evbuffer *out, const struct hist *tpot, usec_t us)
{
    if (us)
        jsonw_double(out, 1e6 / (double)us);
    else
        EVBUFFER_ADD_LIT(out, "null");
    (void)tpot;
}

static void group_json(struct evbuffer *out, const struct group *g)
{
    static const struct hist empty;
    const struct hist *h = g->h;
    evbuffer_add_printf(out, "\"requests\":%llu,\"outcomes\":{", (unsigned long long)g->requests);
    bool first = true;
    for (int o = 0; o < RECORD_OUTCOMES; o++) {
        if (!g->outcomes[o])
            continue;
        evbuffer_add_printf(out, "%s\"%s\":%llu", first ? "" : ",",
                            record_outcome_name((enum record_outcome)o),
                            (unsigned long long)g->outcomes[o]);
        first = false;
    }
    EVBUFFER_ADD_LIT(out, "},");
    metrics_hist_json(out, "ttft_ms", h ? &h[H_TTFT] : &empty);
    EVBUFFER_ADD_LIT(out, ",");
    metrics_hist_json(out, "ttfc_ms", h ? &h[H_TTFC] : &empty);
    EVBUFFER_ADD_LIT(out, ",");
    metrics_hist_json(out, "itl_ms", h ? &h[H_ITL] : &empty);
    EVBUFFER_ADD_LIT(out, ",");
    metrics_hist_json(out, "tpot_ms", h ? &h[H_TPOT] : &empty);
    EVBUFFER_ADD_LIT(out, ",");
    metrics_hist_json(out, "e2e_ms", h ? &h[H_E2E] : &empty);
    EVBUFFER_ADD_LIT(out, ",");
    metrics_hist_json(out, "queue_ms", h ? &h[H_QUEUE] : &empty);
    EVBUFFER_ADD_LIT(out, ",");
    metrics_hist_json(out, "slot_wait_ms", h ? &h[H_SLOT_WAIT] : &empty);
    EVBUFFER_ADD_LIT(out, ",");
    metrics_hist_json(out, "prefill_ms", h ? &h[H_PREFILL] : &empty);
    /* Decode speed: the inverse of TPOT (a slow TPOT percentile is a slow
     * tokens/s percentile), and the mean of per-request rates. */
    const struct hist *tpot = h ? &h[H_TPOT] : &empty;
    EVBUFFER_ADD_LIT(out, ",\"decode_tps\":{\"p50\":");
    tps_from(out, tpot, hist_count(tpot) ? hist_percentile(tpot, 50) : 0);
    EVBUFFER_ADD_LIT(out, ",\"p10\":");
    tps_from(out, tpot, hist_count(tpot) ? hist_percentile(tpot, 90) : 0);
    EVBUFFER_ADD_LIT(out, ",\"p90\":");
    tps_from(out, tpot, hist_count(tpot) ? hist_percentile(tpot, 10) : 0);
    EVBUFFER_ADD_LIT(out, ",\"mean\":");
    if (g->decode_n)
        jsonw_double(out, g->decode_tps_sum / (double)g->decode_n);
    else
        EVBUFFER_ADD_LIT(out, "null");
    evbuffer_add_printf(out,
                        "},\"output_tokens\":%llu,\"prompt_tokens\":%llu,\"cached_tokens\":%llu,"
                        "\"token_events\":%llu",
                        (unsigned long long)g->output_tokens, (unsigned long long)g->prompt_tokens,
                        (unsigned long long)g->cached_tokens, (unsigned long long)g->token_events);
}

enum view {
    VIEW_ALL,
    VIEW_GROUP,   /* upstream, model, route */
    VIEW_THINKING,
};

static bool same_key(enum view v, const struct group *a, const struct group *b)
{
    switch (v) {
    case VIEW_ALL:
        return true;
    case VIEW_GROUP:
        return strcmp(a->upstream, b->upstream) == 0 && strcmp(a->model, b->model) == 0 &&
               a->route == b->route;
    case VIEW_THINKING:
        return a->thinking == b->thinking;
    }
    return false;
}

/* Merges the groups by view into rows (caller frees rows and their hists). */
static size_t aggregate(const struct metrics *m, enum view v, struct group **ret)
{
    struct group *rows = calloc(m->n_groups ? m->n_groups : 1, sizeof(*rows));
    size_t n = 0;
    if (!rows) {
        *ret = NULL;
        return 0;
    }
    for (size_t i = 0; i < m->n_groups; i++) {
        const struct group *g = &m->groups[i];
        size_t r = 0;
        while (r < n && !same_key(v, &rows[r], g))
            r++;
        if (r == n) {
            rows[n] = *g;
            rows[n].h = NULL;
            memset(rows[n].outcomes, 0, sizeof(rows[n].outcomes));
            rows[n].requests = rows[n].output_tokens = rows[n].prompt_tokens = 0;
            rows[n].cached_tokens = rows[n].token_events = rows[n].decode_n = 0;
            rows[n].decode_tps_sum = 0;
            n++;
        }
        group_merge(&rows[r], g);
    }
    *ret = rows;
    return n;
}

static void free_rows(struct group *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i].h);
    free(rows);
}

void metrics_levels_json(const struct metrics *m, struct evbuffer *out)
{
    EVBUFFER_ADD_LIT(out, "[");
    bool first = true;
    for (unsigned i = 0; i < m->o.concurrency_buckets; i++) {
        const struct group *g = &m->levels[i];
        if (!g->requests)
            continue;
        if (g->level >= m->o.concurrency_buckets)
            evbuffer_add_printf(out, "%s{\"concurrency\":\"%u+\",", first ? "" : ",", g->level);
        else
            evbuffer_add_printf(out, "%s{\"concurrency\":%u,", first ? "" : ",", g->level);
        group_json(out, g);
        EVBUFFER_ADD_LIT(out, "}");
        first = false;
    }
    EVBUFFER_ADD_LIT(out, "]");
}

void metrics_stats_json(struct metrics *m, struct evbuffer *out, usec_t now)
{
    evbuffer_add_printf(out, "{\"uptime_s\":");
    jsonw_double(out, (double)clock_diff(now, m->start) / 1e6);
    evbuffer_add_printf(out, ",\"requests\":%llu,\"in_flight\":%u,\"overall\":{",
                        (unsigned long long)m->requests, metrics_in_flight(m));
    struct group *rows;
    size_t n = aggregate(m, VIEW_ALL, &rows);
    if (n)
        group_json(out, &rows[0]);
    else
        EVBUFFER_ADD_LIT(out, "\"requests\":0");
    free_rows(rows, n);

    EVBUFFER_ADD_LIT(out, "},\"by_concurrency\":");
    metrics_levels_json(m, out);

    EVBUFFER_ADD_LIT(out, ",\"by_group\":[");
    n = aggregate(m, VIEW_GROUP, &rows);
    for (size_t i = 0; i < n; i++) {
        evbuffer_add_printf(out, "%s{\"upstream\":", i ? "," : "");
        jsonw_cstr(out, rows[i].upstream);
        EVBUFFER_ADD_LIT(out, ",\"model\":");
        jsonw_cstr(out, rows[i].model);
        EVBUFFER_ADD_LIT(out, ",\"route\":");
        jsonw_cstr(out, rows[i].route ? rows[i].route : "other");
        EVBUFFER_ADD_LIT(out, ",");
        group_json(out, &rows[i]);
        EVBUFFER_ADD_LIT(out, "}");
    }
    free_rows(rows, n);

    EVBUFFER_ADD_LIT(out, "],\"by_thinking\":[");
    n = aggregate(m, VIEW_THINKING, &rows);
    for (size_t i = 0; i < n; i++) {
        evbuffer_add_printf(out, "%s{\"thinking\":\"%s\",", i ? "," : "", thinking_name(rows[i].thinking));
        group_json(out, &rows[i]);
        EVBUFFER_ADD_LIT(out, "}");
    }
    free_rows(rows, n);

    EVBUFFER_ADD_LIT(out, "],\"upstreams\":[");
    for (size_t i = 0; i < m->n_ups; i++) {
        struct upstate *u = &m->ups[i];
        account(u, now);
        usec_t span = clock_diff(now, m->start);
        evbuffer_add_printf(out, "%s{\"upstream\":", i ? "," : "");
        jsonw_cstr(out, u->name);
        evbuffer_add_printf(out, ",\"in_flight\":%u,\"concurrency_peak\":%u,\"concurrency_mean\":",
                            u->in_flight, u->peak);
        jsonw_double(out, span ? u->area / (double)span : 0);
        evbuffer_add_printf(out, ",\"token_events\":%llu,\"token_events_per_s_10s\":",
                            (unsigned long long)u->tokens);
        jsonw_double(out, rate(u, now, 10));
        EVBUFFER_ADD_LIT(out, ",\"token_events_per_s_60s\":");
        jsonw_double(out, rate(u, now, 60));
        EVBUFFER_ADD_LIT(out, "}");
    }

    EVBUFFER_ADD_LIT(out, "],\"sessions\":[");
    for (size_t i = 0; i < m->n_sessions; i++) {
        const struct session *s = &m->sessions[i];
        evbuffer_add_printf(out, "%s{\"session\":", i ? "," : "");
        jsonw_cstr(out, s->id);
        evbuffer_add_printf(out, ",\"requests\":%llu,\"errors\":%llu,\"output_tokens\":%llu,\"ttft_mean_ms\":",
                            (unsigned long long)s->requests, (unsigned long long)s->errors,
                            (unsigned long long)s->output_tokens);
        if (s->ttft_n)
            jsonw_double(out, (double)s->ttft_sum / (double)s->ttft_n / 1000.0);
        else
            EVBUFFER_ADD_LIT(out, "null");
        EVBUFFER_ADD_LIT(out, ",\"ttft_max_ms\":");
        jsonw_double(out, (double)s->ttft_max / 1000.0);
        EVBUFFER_ADD_LIT(out, "}");
    }
    EVBUFFER_ADD_LIT(out, "],\"other_routes\":[");
    for (size_t i = 0; i < m->n_routes; i++) {
        const struct route_stat *st = &m->routes[i];
        static const struct hist empty;
        evbuffer_add_printf(out, "%s{\"route\":", i ? "," : "");
        jsonw_cstr(out, st->route);
        evbuffer_add_printf(out, ",\"status\":%d,\"requests\":%llu,", st->status,
                            (unsigned long long)st->n);
        metrics_hist_json(out, "duration_ms", st->duration ? st->duration : &empty);
        EVBUFFER_ADD_LIT(out, "}");
    }
    EVBUFFER_ADD_LIT(out, "],\"rewrite_skipped\":{");
    for (size_t i = 0; i < m->n_skips; i++) {
        evbuffer_add_printf(out, "%s", i ? "," : "");
        jsonw_cstr(out, m->skips[i].reason);
        evbuffer_add_printf(out, ":%llu", (unsigned long long)m->skips[i].n);
    }
    EVBUFFER_ADD_LIT(out, "}}");
}

void metrics_recent_json(const struct metrics *m, struct evbuffer *out, size_t limit, bool with_gaps)
{
    EVBUFFER_ADD_LIT(out, "[");
    size_t n = limit < m->recent_n ? limit : m->recent_n;
    for (size_t i = 0; i < n; i++) {
        size_t idx = (m->recent_next + m->o.recent - 1 - i) % m->o.recent;
        if (i)
            EVBUFFER_ADD_LIT(out, ",");
        record_to_json(&m->recent[idx], out, with_gaps);
    }
    EVBUFFER_ADD_LIT(out, "]");
}

void metrics_brief(struct metrics *m, usec_t now, struct metrics_brief *ret)
{
    struct metrics_brief b = {0};
    struct hist *ttft = calloc(1, sizeof(*ttft));
    for (size_t i = 0; i < m->n_groups; i++) {
        const struct group *g = &m->groups[i];
        b.finished += g->requests;
        b.ok += g->outcomes[RECORD_OK];
        b.output_tokens += g->output_tokens;
        if (g->h && ttft)
            hist_merge(ttft, &g->h[H_TTFT]);
    }
    b.errors = b.finished - b.ok;
    if (ttft && hist_count(ttft))
        b.ttft_p50 = hist_percentile(ttft, 50);
    free(ttft);
    for (size_t i = 0; i < m->n_ups; i++) {
        b.token_events_per_s += rate(&m->ups[i], now, 10);
        b.token_events += m->ups[i].tokens;
    }
    *ret = b;
}
