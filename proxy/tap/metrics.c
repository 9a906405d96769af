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

#include "tap/metrics_int.h"

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

_Static_assert(MAX_UPSTREAMS < 256, "a record notes an upstream's slot in a byte");

/* r's upstream: the slot metrics_begin noted, else looked up by name. */
static struct upstate *upstate_of(struct metrics *m, const struct record *r, usec_t now)
{
    if (r->metrics_upstream)
        return &m->ups[r->metrics_upstream - 1];
    return upstate(m, r->upstream, now);
}

void metrics_account(struct upstate *u, usec_t now)
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
double metrics_rate(struct upstate *u, usec_t now, unsigned seconds)
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
    r->metrics_upstream = (uint8_t)(u - m->ups + 1);
    metrics_account(u, now);
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
    struct upstate *u = upstate_of(m, r, now);
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
    hist_record_u32(&g->h[H_ITL], r->gaps, r->n_gaps);
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
        struct upstate *u = upstate_of(m, r, now);
        /* Only what metrics_begin counted leaves the count. */
        if (r->concurrency_mark) {
            if (!r->t_first_token)
                r->concurrency = rise_max_since(u, r->concurrency_mark);
            metrics_account(u, now);
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

const char *metrics_thinking_name(int t)
{
    return t < 0 ? "unknown" : t ? "on" : "off";
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
        evbuffer_add_printf(out, "%s{\"thinking\":\"%s\",", i ? "," : "", metrics_thinking_name(rows[i].thinking));
        group_json(out, &rows[i]);
        EVBUFFER_ADD_LIT(out, "}");
    }
    free_rows(rows, n);

    EVBUFFER_ADD_LIT(out, "],\"upstreams\":[");
    for (size_t i = 0; i < m->n_ups; i++) {
        struct upstate *u = &m->ups[i];
        metrics_account(u, now);
        usec_t span = clock_diff(now, m->start);
        evbuffer_add_printf(out, "%s{\"upstream\":", i ? "," : "");
        jsonw_cstr(out, u->name);
        evbuffer_add_printf(out, ",\"in_flight\":%u,\"concurrency_peak\":%u,\"concurrency_mean\":",
                            u->in_flight, u->peak);
        jsonw_double(out, span ? u->area / (double)span : 0);
        evbuffer_add_printf(out, ",\"token_events\":%llu,\"token_events_per_s_10s\":",
                            (unsigned long long)u->tokens);
        jsonw_double(out, metrics_rate(u, now, 10));
        EVBUFFER_ADD_LIT(out, ",\"token_events_per_s_60s\":");
        jsonw_double(out, metrics_rate(u, now, 60));
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
        b.token_events_per_s += metrics_rate(&m->ups[i], now, 10);
        b.token_events += m->ups[i].tokens;
    }
    *ret = b;
}
