/* metrics: the Prometheus text exposition (version 0.0.4) of the
 * aggregates. */
#include "tap/metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/jsonw.h"
#include "tap/metrics_int.h"


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
    label(out, "thinking", metrics_thinking_name(g->thinking), false);
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
        metrics_account(u, now);
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
            prom_double(out, metrics_rate(&m->ups[i], now, windows[w]));
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

