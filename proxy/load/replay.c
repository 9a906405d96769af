/* replay: the engine of `tokentap replay`. Sends a trace's requests in
 * one of three timing modes, keeps each session's turns in order (and
 * rebuilds their history from live answers when asked), applies rewrite
 * rules, and hands every request to the load generator, whose records
 * feed the metrics. replay_cmd.c is the command around it. */
#include "load/replay.h"
#include "load/replay_int.h"
#include "serve/ui.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "tap/dialect.h"
#include "core/jsonedit.h"
#include "core/jsonscan.h"
#include "core/jsonw.h"
#include "load/loadgen.h"
#include "tap/metrics.h"
#include "tap/reqlog.h"

/* One request in flight: what on_done needs to know. */
struct sendctx {
    struct replay_run *run;      /* borrowed */
    size_t item;                 /* SIZE_MAX: a rate-mode repeat with no state */
};

/* --- trace loading --- */

static size_t session_index(struct replay_run *run, const char *id)
{
    for (size_t i = 0; i < run->n_sessions; i++)
        if (strcmp(run->sessions[i].id, id) == 0)
            return i;
    struct replay_session *s = realloc(run->sessions, (run->n_sessions + 1) * sizeof(*s));
    if (!s)
        return SIZE_MAX;
    run->sessions = s;
    memset(&s[run->n_sessions], 0, sizeof(*s));
    s[run->n_sessions].id = strdup(id);
    if (!s[run->n_sessions].id)
        return SIZE_MAX;
    return run->n_sessions++;
}

static int add_turn(struct replay_session *s, size_t item)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        size_t *p = realloc(s->items, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        s->items = p;
        s->cap = cap;
    }
    s->items[s->n++] = item;
    return 0;
}

static int cmp_due(const void *a, const void *b, void *arg)
{
    const struct replay_item *items = arg;
    const struct replay_item *x = &items[*(const size_t *)a], *y = &items[*(const size_t *)b];
    if (x->e.offset_us != y->e.offset_us)
        return x->e.offset_us < y->e.offset_us ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

int replay_load_trace(struct replay_run *run)
{
    struct trace_reader *r = NULL;
    struct trace_error err;
    int rc = trace_reader_open(run->o.trace, &r, &err);
    if (rc < 0) {
        fprintf(stderr, "tokentap replay: %s\n", err.msg);
        return rc;
    }
    size_t cap = 0;
    for (;;) {
        if (run->n_items == cap) {
            cap = cap ? cap * 2 : 256;
            struct replay_item *p = realloc(run->items, cap * sizeof(*p));
            if (!p) {
                rc = -ENOMEM;
                goto fail;
            }
            run->items = p;
        }
        struct replay_item *it = &run->items[run->n_items];
        memset(it, 0, sizeof(*it));
        trace_entry_init(&it->e);
        rc = trace_reader_next(r, &it->e, &err);
        if (rc == 0)
            break;
        if (rc < 0) {
            trace_entry_finish(&it->e);
            fprintf(stderr, "tokentap replay: %s\n", err.msg);
            if (run->o.stop_on_error || rc == -ENOMEM || rc == -EIO)
                goto fail;
            run->skipped_lines++;
            continue;
        }
        run->n_items++;
    }
    trace_reader_close(r);
    r = NULL;
    if (run->n_items == 0) {
        fprintf(stderr, "tokentap replay: %s: no requests in the trace\n", run->o.trace);
        return -EINVAL;
    }
    /* The proxy writes a line when a response ends: order by start. */
    run->order = malloc(run->n_items * sizeof(*run->order));
    if (!run->order)
        return -ENOMEM;
    for (size_t i = 0; i < run->n_items; i++)
        run->order[i] = i;
    qsort_r(run->order, run->n_items, sizeof(*run->order), cmp_due, run->items);
    int64_t base = run->items[run->order[0]].e.offset_us;
    for (size_t k = 0; k < run->n_items; k++) {
        struct replay_item *it = &run->items[run->order[k]];
        it->e.offset_us -= base;
        it->due = arrival_original(&run->o.sched, (usec_t)it->e.offset_us);
        if (it->e.n_events)
            it->recorded_duration = it->e.events[it->e.n_events - 1].offset_us;
        it->session = SIZE_MAX;
        if (it->e.session && it->e.session[0]) {
            it->session = session_index(run, it->e.session);
            if (it->session == SIZE_MAX)
                return -ENOMEM;
            struct replay_session *s = &run->sessions[it->session];
            it->turn = s->n;
            if (add_turn(s, run->order[k]) < 0)
                return -ENOMEM;
        }
    }
    return 0;
fail:
    trace_reader_close(r);
    return rc;
}

/* --- live history --- */

/* Assistant messages remembered per body: later turns pair from the end,
 * so only the last ones are needed. */
#define HISTORY_MAX_PAIRS 256

/* Replaces the content of the body's assistant messages with this run's
 * answers, pairing from the end: the last assistant message is the
 * previous turn's answer, the one before it the turn before, and so on
 * (earlier assistant messages, from before the recording began, stay).
 * Keeps every other byte. 0 with *ret_body NULL when nothing changed, or
 * a malloc'd body; -ENOMEM. */
static int apply_history(struct replay_run *run, struct replay_item *it, char **ret_body, size_t *ret_len)
{
    struct replay_session *s = &run->sessions[it->session];
    const char *body = it->e.body;
    size_t len = it->e.body_len;
    char *cur = NULL;
    struct jsonscan_info info;
    if (s->n_answers == 0 || jsonscan_validate(body, len, JSONSCAN_MAX_DEPTH, &info) < 0 ||
        body[info.start] != '{')
        return 0;
    /* Find "messages" (chat, Anthropic) and its assistant entries. */
    struct jsonscan_iter top;
    struct jsonscan_member m;
    size_t msgs = SIZE_MAX;
    jsonscan_iter_init(&top, body, len, info.start);
    while (jsonscan_iter_next(&top, &m)) {
        struct jsonscan_key k = jsonscan_key_member(body, &m);
        struct jsonscan_key want = jsonscan_key_token("messages", &"messages"[8]);
        if (jsonscan_key_eq(k, want) && body[m.value] == '[')
            msgs = m.value;
    }
    if (msgs == SIZE_MAX)
        return 0;
    /* idx is a ring of the last HISTORY_MAX_PAIRS assistant positions. */
    size_t idx[HISTORY_MAX_PAIRS], n = 0, i = 0;
    struct jsonscan_iter arr;
    jsonscan_iter_init(&arr, body, len, msgs);
    while (jsonscan_iter_next(&arr, &m)) {
        if (body[m.value] == '{') {
            struct jsonscan_iter fields;
            struct jsonscan_member f;
            jsonscan_iter_init(&fields, body, len, m.value);
            while (jsonscan_iter_next(&fields, &f)) {
                struct jsonscan_key k = jsonscan_key_member(body, &f);
                struct jsonscan_key want = jsonscan_key_token("role", &"role"[4]);
                if (jsonscan_key_eq(k, want) && f.value_end - f.value == 11 &&
                    memcmp(body + f.value, "\"assistant\"", 11) == 0) {
                    idx[n++ % HISTORY_MAX_PAIRS] = i;
                    break; /* one entry per message, however many "role" keys */
                }
            }
        }
        i++;
    }
    size_t pairs = n < s->n_answers ? n : s->n_answers;
    if (pairs > HISTORY_MAX_PAIRS)
        pairs = HISTORY_MAX_PAIRS;
    struct evbuffer *v = evbuffer_new();
    if (!v)
        return -ENOMEM;
    const char *doc = body;
    size_t doc_len = len;
    int rc = 0;
    for (size_t t = 0; t < pairs; t++) {
        size_t msg = idx[(n - 1 - t) % HISTORY_MAX_PAIRS];
        const char *answer = s->answers[s->n_answers - 1 - t];
        char pointer[64];
        snprintf(pointer, sizeof(pointer), "/messages/%zu/content", msg);
        evbuffer_drain(v, evbuffer_get_length(v));
        jsonw_cstr(v, answer);
        size_t vlen = evbuffer_get_length(v);
        const char *value = (const char *)evbuffer_pullup(v, -1);
        if (!value) {
            rc = -ENOMEM;
            break;
        }
        char *out = NULL;
        size_t out_len = 0;
        int r = jsonedit_set(doc, doc_len, pointer, value, vlen, &out, &out_len);
        if (r == -ENOMEM) {
            rc = r;
            break;
        }
        if (r < 0)
            continue;
        free(cur);
        cur = out;
        doc = cur;
        doc_len = out_len;
    }
    evbuffer_free(v);
    if (rc < 0) {
        free(cur);
        return rc;
    }
    *ret_body = cur;
    *ret_len = doc_len;
    return 0;
}

/* --- sending --- */

static void dispatch(struct replay_run *run);
static void finish_run(struct replay_run *run);

/* Ends the run early (a request could not be sent or its answer kept:
 * only -ENOMEM): nothing more is sent and the loop ends after this pass;
 * replay_run_loop then aborts what is in flight. It frees nothing, so it
 * is safe inside a loadgen callback. */
void replay_fail(struct replay_run *run, int err)
{
    if (!run->failed)
        fprintf(stderr, "tokentap replay: %s: stopping\n", strerror(-err));
    run->failed = true;
    run->stopping = true;
    replay_agentic_stop(run);
    evtimer_del(run->timer);
    event_base_loopexit(run->base, NULL);
}

void replay_count_done(struct replay_run *run, const struct record *r)
{
    run->finished++;
    if (r->t_sent >= r->t_start)
        hist_record(&run->send_lag, r->t_sent - r->t_start);
    if (r->outcome == RECORD_OK && r->t_first_token && r->t_sent)
        hist_record(&run->ttft_uncorrected, clock_diff(r->t_first_token, r->t_sent));
}

static void on_done(void *ctx, const struct loadgen_result *res)
{
    struct sendctx *sc = ctx;
    struct replay_run *run = sc->run;
    replay_count_done(run, res->rec);
    if (sc->item != SIZE_MAX) {
        struct replay_item *it = &run->items[sc->item];
        it->state = REPLAY_ITEM_DONE;
        if (it->session != SIZE_MAX) {
            struct replay_session *s = &run->sessions[it->session];
            s->busy = false;
            s->last_done = clock_now();
            /* Live history pairs answers with turns: a missing one would
             * put the others in the wrong places. */
            char *answer = strdup(res->content ? res->content : "");
            char **a = answer ? realloc(s->answers, (s->n_answers + 1) * sizeof(*a)) : NULL;
            if (a) {
                s->answers = a;
                s->answers[s->n_answers++] = answer;
            } else {
                free(answer);
                replay_fail(run, -ENOMEM);
            }
        }
    }
    free(sc);
    if (!run->stopping)
        dispatch(run);
    if (run->finished >= run->total && run->sent >= run->total)
        finish_run(run);
}

/* Runs the rewrite rules (and --thinking) on a request as serve would on
 * its way to an upstream: hdrs and *body are updated in place; res keeps
 * the new body and the header edits' strings alive until the send. */
int replay_apply_rules(struct replay_run *run, const char *method, const char *path,
                       struct loadgen_header *hdrs, size_t *nh, size_t cap, const char *body,
                       size_t body_len, struct rewrite_result *res)
{
    struct http_header views[HTTP_MAX_HEADERS];
    struct http_head head = {.kind = HTTP_KIND_REQUEST, .content_length = -1, .headers = views};
    for (size_t i = 0; i < *nh && i < HTTP_MAX_HEADERS; i++)
        views[head.n_headers++] = (struct http_header){
            {hdrs[i].name, strlen(hdrs[i].name)}, {hdrs[i].value, strlen(hdrs[i].value)}};
    const char *qm = strchr(path, '?');
    struct rewrite_request q = {
        .method = method,
        .path = path,
        .path_len = qm ? (size_t)(qm - path) : strlen(path),
        .dialect = dialect_from_path(path, strlen(path)),
        .head = &head,
        .override = run->o.thinking,
    };
    int r = rewrite_apply(run->rules, &q, body, body_len, res);
    if (r < 0)
        return r;
    for (size_t k = 0; k < res->n_headers; k++) {
        const struct rewrite_header_edit *ed = &res->headers[k];
        size_t j = 0;
        for (size_t i = 0; i < *nh; i++)
            if (strcasecmp(hdrs[i].name, ed->name) != 0)
                hdrs[j++] = hdrs[i];
        *nh = j;
        if (ed->value && *nh < cap)
            hdrs[(*nh)++] = (struct loadgen_header){ed->name, ed->value};
    }
    return 0;
}

static int send_item(struct replay_run *run, size_t index, usec_t intended)
{
    struct replay_item *it = index != SIZE_MAX ? &run->items[index] : NULL;
    struct sendctx *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return -ENOMEM;
    sc->run = run;
    sc->item = index;
    /* A rate-mode repeat goes through the trace again in start order, as
     * the first pass did. */
    struct trace_entry *e = it ? &it->e : &run->items[run->order[run->sent % run->n_items]].e;
    char *body = NULL;
    size_t body_len = e->body_len;
    if (it && run->o.history == REPLAY_HISTORY_LIVE && it->session != SIZE_MAX) {
        int r = apply_history(run, it, &body, &body_len);
        if (r < 0) {
            free(sc);
            return r;
        }
    }
    struct loadgen_header hdrs[64];
    size_t nh = 0;
    for (size_t i = 0; i < e->n_headers && nh < 64; i++) {
        const char *n = e->headers[i].name;
        /* Framing and hop-by-hop headers are the load generator's own. */
        if (!strcasecmp(n, "host") || !strcasecmp(n, "content-length") ||
            !strcasecmp(n, "transfer-encoding") || !strcasecmp(n, "connection") ||
            !strcasecmp(n, "accept-encoding") || !strcasecmp(n, "user-agent") ||
            !strcmp(e->headers[i].value, TRACE_REDACTED))
            continue;
        hdrs[nh++] = (struct loadgen_header){n, e->headers[i].value};
    }
    struct loadgen_req rq = {
        .method = e->method,
        .path = e->path,
        .headers = hdrs,
        .n_headers = nh,
        .body = body ? body : e->body,
        .body_len = body_len,
        .intended = intended,
        .session = e->session,
        .thinking = -1,
    };
    if (!e->body_len && !body)
        rq.body = NULL;
    struct rewrite_result rw = {0};
    char model[96];
    if (run->rules) {
        int r = replay_apply_rules(run, e->method, e->path, hdrs, &nh, 64, rq.body,
                                   rq.body ? rq.body_len : 0, &rw);
        if (r < 0) {
            free(body);
            free(sc);
            return r;
        }
        rq.n_headers = nh;
        rq.thinking = rw.thinking;
        rq.rules = rw.rules;
        if (rw.body) {
            rq.body = rw.body;
            rq.body_len = rw.body_len;
        }
    }
    /* What the record says, as the proxy would have read it. */
    if (!run->rules && rq.body)
        rq.thinking = rewrite_body_thinking(dialect_from_path(e->path, strlen(e->path)), rq.body, rq.body_len);
    if (rq.body && rewrite_body_model(rq.body, rq.body_len, model, sizeof(model)) == 0)
        rq.model = model;
    int r = loadgen_send(run->lg, &rq, on_done, sc);
    rewrite_result_finish(&rw);
    free(body);
    if (r < 0) {
        free(sc);
        return r;
    }
    if (it) {
        it->state = REPLAY_ITEM_IN_FLIGHT;
        if (it->session != SIZE_MAX)
            run->sessions[it->session].busy = true;
    }
    run->sent++;
    return 0;
}

/* The earliest time session s's turn `it` may go: after the previous turn
 * ended, plus the think time the recording shows. USEC_INFINITY while the
 * previous turn runs. (The closed loop uses only that: its turns go as
 * soon as the previous one finished, without think time.) */
static usec_t session_ready(struct replay_run *run, const struct replay_item *it)
{
    if (it->session == SIZE_MAX || it->turn == 0)
        return 0;
    const struct replay_session *s = &run->sessions[it->session];
    const struct replay_item *prev = &run->items[s->items[it->turn - 1]];
    if (prev->state != REPLAY_ITEM_DONE)
        return USEC_INFINITY;
    usec_t think = 0;
    if (prev->recorded_duration && it->e.offset_us > prev->e.offset_us) {
        usec_t gap = (usec_t)(it->e.offset_us - prev->e.offset_us);
        if (gap > prev->recorded_duration)
            think = arrival_original(&run->o.sched, gap - prev->recorded_duration);
    }
    return s->last_done + think;
}

void replay_arm(struct replay_run *run, usec_t at)
{
    usec_t now = clock_now();
    usec_t wait = at > now ? at - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(wait / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(wait % USEC_PER_SEC)};
    evtimer_add(run->timer, &tv);
}

static void dispatch(struct replay_run *run)
{
    if (run->ag) {
        replay_agentic_dispatch(run);
        return;
    }
    usec_t now = clock_now();
    struct arrival *sc = &run->o.sched;
    if (sc->mode == ARRIVAL_CONCURRENCY) {
        /* Closed loop: fill up to N with the first requests whose session
         * is free; intended time is now. */
        for (size_t k = run->next; k < run->n_items && loadgen_in_flight(run->lg) < sc->concurrency; k++) {
            size_t i = run->order[k];
            struct replay_item *it = &run->items[i];
            if (it->state != REPLAY_ITEM_PENDING)
                continue;
            if (session_ready(run, it) == USEC_INFINITY)
                continue;
            int r = send_item(run, i, 0);
            if (r < 0) {
                replay_fail(run, r);
                return;
            }
        }
        while (run->next < run->n_items && run->items[run->order[run->next]].state != REPLAY_ITEM_PENDING)
            run->next++;
        return;
    }
    if (sc->mode == ARRIVAL_RATE) {
        while (run->sent < run->total) {
            usec_t at = run->start + sc->next_us;
            /* The window is [start, start + duration): R per second
             * for D seconds is R x D requests. */
            if (run->o.duration && at - run->start >= run->o.duration) {
                run->total = run->sent;
                break;
            }
            if (at > now) {
                replay_arm(run, at);
                return;
            }
            arrival_next_arrival(sc);
            size_t i = run->sent < run->n_items ? run->order[run->sent] : SIZE_MAX;
            int r = send_item(run, i, at);
            if (r < 0) {
                replay_fail(run, r);
                return;
            }
        }
        return;
    }
    /* Original timing: every request at its offset; a session's turn also
     * waits for the previous turn (then it is sent as soon as it may). */
    usec_t next_wake = USEC_INFINITY;
    for (size_t k = run->next; k < run->n_items; k++) {
        size_t i = run->order[k];
        struct replay_item *it = &run->items[i];
        if (it->state == REPLAY_ITEM_IN_FLIGHT || it->state == REPLAY_ITEM_DONE)
            continue;
        usec_t due = run->start + it->due;
        if (due > now) {
            if (due < next_wake)
                next_wake = due;
            break; /* ordered by due: the rest is later */
        }
        usec_t ready = session_ready(run, it);
        if (ready == USEC_INFINITY) {
            it->state = REPLAY_ITEM_WAITING;
            continue;
        }
        if (ready > now) {
            if (ready < next_wake)
                next_wake = ready;
            it->state = REPLAY_ITEM_WAITING;
            continue;
        }
        int r = send_item(run, i, due > ready ? due : ready);
        if (r < 0) {
            replay_fail(run, r);
            return;
        }
    }
    while (run->next < run->n_items &&
           (run->items[run->order[run->next]].state == REPLAY_ITEM_IN_FLIGHT ||
            run->items[run->order[run->next]].state == REPLAY_ITEM_DONE))
        run->next++;
    if (next_wake != USEC_INFINITY)
        replay_arm(run, next_wake);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct replay_run *run = arg;
    if (!run->stopping)
        dispatch(run);
    if (run->o.sched.mode == ARRIVAL_RATE && run->sent >= run->total && run->finished >= run->total)
        finish_run(run);
}

/* --- progress and the end --- */

static void progress_cb(evutil_socket_t fd, short what, void *arg)
{
    struct replay_run *run = arg;
    usec_t now = clock_now();
    struct metrics_brief b;
    metrics_brief(run->metrics, now, &b);
    double elapsed = (double)(now - run->start) / 1e6;
    double eta = run->finished ? elapsed * (double)(run->total - run->finished) / (double)run->finished : 0;
    char line[256];
    snprintf(line, sizeof(line),
             "[%llu/%llu] in flight %u  errors %llu  TTFT p50 %.0f ms  %.1f tok/s  %.1fs, ETA %.0fs",
             (unsigned long long)run->finished, (unsigned long long)run->total,
             loadgen_in_flight(run->lg), (unsigned long long)b.errors, (double)b.ttft_p50 / 1000.0,
             elapsed >= 10 ? b.token_events_per_s : elapsed > 0 ? (double)b.token_events / elapsed : 0,
             elapsed, eta);
    if (run->tty)
        fprintf(stderr, "\r\033[K%s", line);
    else
        fprintf(stderr, "%s\n", line);
    struct timeval tv = {run->tty ? 0 : 5, run->tty ? 250000 : 0};
    evtimer_add(run->progress, &tv);
}

static void finish_run(struct replay_run *run)
{
    event_base_loopexit(run->base, NULL);
}

/* The first SIGINT/SIGTERM (the loop ends on a second one). */
static void on_stop(void *arg)
{
    struct replay_run *run = arg;
    /* Stop sending; abort what is in flight; write what we have. */
    run->interrupted = true;
    run->stopping = true;
    replay_agentic_stop(run);
    evtimer_del(run->timer);
    loadgen_abort_all(run->lg);
    event_base_loopexit(run->base, NULL);
}

int replay_run_loop(struct replay_run *run)
{
    run->timer = evtimer_new(run->base, timer_cb, run);
    run->progress = evtimer_new(run->base, progress_cb, run);
    if (!run->timer || !run->progress || loop_init(&run->loop, run->base, on_stop, NULL, run) < 0)
        return -ENOMEM;

    if (!run->ag)
        run->total = run->n_items;
    if (run->o.sched.mode == ARRIVAL_RATE) {
        run->total = run->o.requests ? run->o.requests : run->n_items;
        if (run->o.duration && !run->o.requests)
            run->total = UINT64_MAX / 2; /* until the duration is over */
    }
    run->tty = isatty(STDERR_FILENO);
    if (!run->o.quiet) {
        if (!run->ag)
            fprintf(stderr, "tokentap replay: %zu requests from %s to %s%s\n", run->n_items,
                    run->o.trace, run->target_url, run->skipped_lines ? " (bad lines skipped)" : "");
        struct timeval tv = {0, 250000};
        evtimer_add(run->progress, &tv);
    }
    run->start = clock_now();
    run->o.sched.next_us = 0;
    dispatch(run);
    loop_run(&run->loop);
    /* After a failure, what is still in flight ends as aborted (their
     * callbacks free their contexts). */
    if (run->failed)
        loadgen_abort_all(run->lg);
    return 0;
}

void replay_run_free(struct replay_run *run)
{
    loadgen_free(run->lg);
    replay_agentic_free(run->ag);
    ui_free(run->ui);
    sim_free(run->sim);
    for (size_t i = 0; i < run->n_items; i++)
        trace_entry_finish(&run->items[i].e);
    free(run->items);
    free(run->order);
    for (size_t i = 0; i < run->n_sessions; i++) {
        struct replay_session *s = &run->sessions[i];
        for (size_t j = 0; j < s->n_answers; j++)
            free(s->answers[j]);
        free(s->answers);
        free(s->items);
        free(s->id);
    }
    free(run->sessions);
    if (run->timer)
        event_free(run->timer);
    if (run->progress)
        event_free(run->progress);
    loop_finish(&run->loop);
    metrics_free(run->metrics);
    reqlog_close(run->log);
    rewrite_rules_free(run->rules);
    if (run->base)
        event_base_free(run->base);
}
