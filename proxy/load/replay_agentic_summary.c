/* replay_agentic_summary: the agentic parts of replay's summary JSON:
 * how the run was made ("agentic"), prompt tokens served from cache,
 * achieved against ideal ("cache"), per session kind ("by_kind"), and
 * every session and request with its place in the graph and its times
 * ("sessions", "requests"). docs/replay.md describes the keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/hist.h"
#include "core/jsonw.h"
#include "load/ideal.h"
#include "load/replay_agentic_int.h"
#include "tap/metrics.h"

/* Past this many rows, "requests" stops (and says so). */
#define MAX_ROWS 100000

/* Tokens of the requests that finished: recorded input and the ideal
 * cache's share of it; the server's prompt and cached tokens. */
struct tally {
    uint64_t requests, input, ideal, prompt, cached;
};

struct kind {
    char name[32];
    struct tally t;
    struct hist ttft, wait, prefill;
};

static void tally_add(struct tally *t, const struct agentic_trace *tr, const struct agentic_request *r,
                      const struct agentic_driver_result *res)
{
    t->requests++;
    t->input += r->in;
    t->ideal += res->ideal_blocks * tr->block_size;
    if (res->prompt_tokens >= 0 && res->cached_tokens >= 0) {
        t->prompt += (uint64_t)res->prompt_tokens;
        t->cached += (uint64_t)res->cached_tokens;
    }
}

static void ratio(struct evbuffer *b, const char *key, uint64_t num, uint64_t den)
{
    evbuffer_add_printf(b, "\"%s\":", key);
    if (den)
        jsonw_double(b, (double)num / (double)den);
    else
        EVBUFFER_ADD_LIT(b, "null");
}

static void tally_json(struct evbuffer *b, const struct tally *t)
{
    evbuffer_add_printf(b, "\"requests\":%llu,", (unsigned long long)t->requests);
    ratio(b, "ideal_hit_ratio", t->ideal, t->input);
    EVBUFFER_ADD_LIT(b, ",");
    ratio(b, "achieved_hit_ratio", t->cached, t->prompt);
    evbuffer_add_printf(b,
                        ",\"recorded_input_tokens\":%llu,\"recorded_ideal_cached_tokens\":%llu,"
                        "\"prompt_tokens\":%llu,\"cached_tokens\":%llu",
                        (unsigned long long)t->input, (unsigned long long)t->ideal,
                        (unsigned long long)t->prompt, (unsigned long long)t->cached);
}

static void ms(struct evbuffer *b, const char *key, usec_t t, usec_t start)
{
    evbuffer_add_printf(b, ",\"%s\":", key);
    if (t)
        jsonw_double(b, (double)(int64_t)(t - start) / 1000.0);
    else
        EVBUFFER_ADD_LIT(b, "null");
}

static void us_ms(struct evbuffer *b, const char *key, int64_t us)
{
    evbuffer_add_printf(b, ",\"%s\":", key);
    if (us >= 0)
        jsonw_double(b, (double)us / 1000.0);
    else
        EVBUFFER_ADD_LIT(b, "null");
}

static void i64(struct evbuffer *b, const char *key, int64_t v)
{
    if (v >= 0)
        evbuffer_add_printf(b, ",\"%s\":%lld", key, (long long)v);
    else
        evbuffer_add_printf(b, ",\"%s\":null", key);
}

static void name(struct evbuffer *b, const char *key, const struct agentic_run *ag,
                 const struct agentic_driver_run *in, size_t s)
{
    evbuffer_add_printf(b, ",\"%s\":", key);
    if (s == SIZE_MAX) {
        EVBUFFER_ADD_LIT(b, "null");
        return;
    }
    char buf[256];
    snprintf(buf, sizeof(buf), "%s/%s", in->prefix, ag->traces.t[in->trace].sessions[s].agent_id);
    jsonw_cstr(b, buf);
}

static void settings_json(struct replay_run *run, struct evbuffer *b, uint64_t not_sent)
{
    const struct agentic_run *ag = run->ag;
    const struct replay_agentic_options *o = &run->o.agentic;
    evbuffer_add_printf(b,
                        ",\"agentic\":{\"traces\":%zu,\"runs\":%zu,\"files_skipped\":%u,\"timing\":"
                        "\"%s\",\"speed\":",
                        ag->traces.n, ag->n_inst, ag->traces.skipped_files,
                        agentic_timing_name(o->timing));
    jsonw_double(b, run->o.sched.speed);
    evbuffer_add_printf(b, ",\"max_gap_ms\":");
    jsonw_double(b, (double)o->max_gap / 1000.0);
    evbuffer_add_printf(b, ",\"users\":%u,\"ramp_s\":", ag->users);
    jsonw_double(b, (double)o->ramp / 1e6);
    evbuffer_add_printf(b, ",\"recycle\":%s,\"isl_scale\":", o->recycle ? "true" : "false");
    jsonw_double(b, o->isl_scale);
    EVBUFFER_ADD_LIT(b, ",\"osl_scale\":");
    jsonw_double(b, o->osl_scale);
    evbuffer_add_printf(b, ",\"max_isl\":%llu,\"api\":\"%s\",\"requests_dropped\":%llu,"
                           "\"requests_not_sent\":%llu,\"tokenizer\":\"%s\",\"tokenizer_note\":",
                        (unsigned long long)o->max_isl,
                        o->api == AGENTIC_API_OPENAI ? "openai" : "anthropic",
                        (unsigned long long)ag->d->dropped, (unsigned long long)not_sent,
                        ag->d->vocab.exact ? "exact" : "estimate");
    jsonw_cstr(b, ag->d->tokenizer_note);
    EVBUFFER_ADD_LIT(b, ",\"template_tokens\":{");
    for (size_t i = 0; i < ag->d->n_models; i++) {
        if (i)
            EVBUFFER_ADD_LIT(b, ",");
        jsonw_cstr(b, ag->d->models[i].name);
        if (ag->d->models[i].measured)
            evbuffer_add_printf(b, ":%u", ag->d->models[i].overhead);
        else
            EVBUFFER_ADD_LIT(b, ":null");
    }
    evbuffer_add_printf(b, "},\"ideal_full\":%s}", ideal_full(ag->d->ideal) ? "true" : "false");
}

static struct kind *kind_of(struct kind *kinds, size_t *n, size_t cap, const char *k)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(kinds[i].name, k) == 0)
            return &kinds[i];
    if (*n == cap)
        return &kinds[cap - 1]; /* the last one takes the rest */
    struct kind *x = &kinds[(*n)++];
    snprintf(x->name, sizeof(x->name), "%s", k);
    return x;
}

static void request_json(struct evbuffer *b, struct replay_run *run, const struct agentic_driver_run *in,
                         size_t s, size_t k)
{
    const struct agentic_run *ag = run->ag;
    const struct agentic_session *ts = &ag->traces.t[in->trace].sessions[s];
    const struct agentic_request *r = &ts->requests[k];
    const struct agentic_step *st = &in->plan.s[s].steps[k];
    const struct agentic_driver_result *res = &in->res[s][k];
    EVBUFFER_ADD_LIT(b, "{\"trace\":");
    jsonw_cstr(b, in->prefix);
    name(b, "session", ag, in, s);
    name(b, "parent", ag, in, ts->parent);
    EVBUFFER_ADD_LIT(b, ",\"kind\":");
    jsonw_cstr(b, ts->kind);
    evbuffer_add_printf(b, ",\"index\":%zu,\"after_fanout\":%s,\"in\":%u,\"out\":%u,\"isl\":%llu,"
                           "\"osl\":%llu,\"state\":\"%s\"",
                        k, r->join_to > r->join_from ? "true" : "false", r->in, r->out,
                        (unsigned long long)res->isl, (unsigned long long)res->osl,
                        st->state == AGENTIC_STEP_DROPPED ? "dropped"
                        : st->state == AGENTIC_STEP_WAITING ? "not sent"
                        : res->outcome == RECORD_IN_PROGRESS ? "in flight"
                                                             : record_outcome_name(res->outcome));
    bool sent = st->state == AGENTIC_STEP_SENT || st->state == AGENTIC_STEP_DONE;
    ms(b, "ready_ms", sent ? st->ready : 0, run->start);
    ms(b, "due_ms", sent ? st->due : 0, run->start);
    ms(b, "sent_ms", st->sent, run->start);
    ms(b, "end_ms", st->end, run->start);
    i64(b, "prompt_tokens", res->prompt_tokens);
    i64(b, "cached_tokens", res->cached_tokens);
    evbuffer_add_printf(b, ",\"ideal_cached_tokens\":%llu,\"ideal_blocks\":%llu,\"output_tokens\":%llu",
                        (unsigned long long)res->ideal_tokens, (unsigned long long)res->ideal_blocks,
                        (unsigned long long)res->output_tokens);
    us_ms(b, "ttft_ms", res->ttft);
    us_ms(b, "slot_wait_ms", res->slot_wait);
    us_ms(b, "prefill_ms", res->prefill);
    EVBUFFER_ADD_LIT(b, "}");
}

static void session_json(struct evbuffer *b, struct replay_run *run, const struct agentic_driver_run *in, size_t s)
{
    const struct agentic_run *ag = run->ag;
    const struct agentic_session *ts = &ag->traces.t[in->trace].sessions[s];
    const struct agentic_plan_session *ps = &in->plan.s[s];
    EVBUFFER_ADD_LIT(b, "{\"trace\":");
    jsonw_cstr(b, in->prefix);
    name(b, "session", ag, in, s);
    name(b, "parent", ag, in, ts->parent);
    EVBUFFER_ADD_LIT(b, ",\"kind\":");
    jsonw_cstr(b, ts->kind);
    evbuffer_add_printf(b, ",\"requests\":%zu,\"dropped\":%zu", ts->n, ts->n - ps->keep);
    ms(b, "start_ms", ps->started ? ps->start : 0, run->start);
    ms(b, "end_ms", ps->finished && ps->started ? ps->end : 0, run->start);
    EVBUFFER_ADD_LIT(b, "}");
}

void replay_agentic_summary(struct replay_run *run, struct evbuffer *b)
{
    struct agentic_run *ag = run->ag;
    enum { MAX_KINDS = 16 };
    struct kind *kinds = calloc(MAX_KINDS, sizeof(*kinds));
    struct tally all = {0}, fanout = {0};
    size_t n_kinds = 0;
    uint64_t not_sent = 0;
    if (!kinds)
        return;
    for (size_t i = 0; i < ag->n_inst; i++) {
        const struct agentic_driver_run *in = ag->inst[i];
        const struct agentic_trace *t = &ag->traces.t[in->trace];
        for (size_t s = 0; s < t->n_sessions; s++) {
            for (size_t k = 0; k < t->sessions[s].n; k++) {
                const struct agentic_driver_result *res = &in->res[s][k];
                const struct agentic_request *r = &t->sessions[s].requests[k];
                if (in->plan.s[s].steps[k].state == AGENTIC_STEP_WAITING)
                    not_sent++;
                if (res->outcome == RECORD_IN_PROGRESS)
                    continue;
                struct kind *kd = kind_of(kinds, &n_kinds, MAX_KINDS, t->sessions[s].kind);
                tally_add(&all, t, r, res);
                tally_add(&kd->t, t, r, res);
                if (s == 0 && r->join_to > r->join_from)
                    tally_add(&fanout, t, r, res);
                if (res->ttft >= 0)
                    hist_record(&kd->ttft, (usec_t)res->ttft);
                if (res->slot_wait >= 0)
                    hist_record(&kd->wait, (usec_t)res->slot_wait);
                if (res->prefill >= 0)
                    hist_record(&kd->prefill, (usec_t)res->prefill);
            }
        }
    }
    settings_json(run, b, not_sent);
    EVBUFFER_ADD_LIT(b, ",\"cache\":{");
    tally_json(b, &all);
    EVBUFFER_ADD_LIT(b, ",\"main_after_fanout\":{");
    tally_json(b, &fanout);
    EVBUFFER_ADD_LIT(b, "}},\"by_kind\":[");
    for (size_t i = 0; i < n_kinds; i++) {
        if (i)
            EVBUFFER_ADD_LIT(b, ",");
        EVBUFFER_ADD_LIT(b, "{\"kind\":");
        jsonw_cstr(b, kinds[i].name);
        EVBUFFER_ADD_LIT(b, ",");
        tally_json(b, &kinds[i].t);
        EVBUFFER_ADD_LIT(b, ",");
        metrics_hist_json(b, "ttft_ms", &kinds[i].ttft);
        EVBUFFER_ADD_LIT(b, ",");
        metrics_hist_json(b, "slot_wait_ms", &kinds[i].wait);
        EVBUFFER_ADD_LIT(b, ",");
        metrics_hist_json(b, "prefill_ms", &kinds[i].prefill);
        EVBUFFER_ADD_LIT(b, "}");
    }
    free(kinds);
    EVBUFFER_ADD_LIT(b, "],\"sessions\":[");
    for (size_t i = 0, n = 0; i < ag->n_inst; i++)
        for (size_t s = 0; s < ag->traces.t[ag->inst[i]->trace].n_sessions; s++, n++) {
            if (n)
                EVBUFFER_ADD_LIT(b, ",");
            session_json(b, run, ag->inst[i], s);
        }
    EVBUFFER_ADD_LIT(b, "],\"requests\":[");
    size_t rows = 0;
    for (size_t i = 0; i < ag->n_inst; i++) {
        const struct agentic_trace *t = &ag->traces.t[ag->inst[i]->trace];
        for (size_t s = 0; s < t->n_sessions; s++)
            for (size_t k = 0; k < t->sessions[s].n && rows < MAX_ROWS; k++) {
                if (rows++)
                    EVBUFFER_ADD_LIT(b, ",");
                request_json(b, run, ag->inst[i], s, k);
            }
    }
    evbuffer_add_printf(b, "],\"requests_truncated\":%s", rows >= MAX_ROWS ? "true" : "false");
}
