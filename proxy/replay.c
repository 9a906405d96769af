#include "replay.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "cli.h"
#include "hist.h"
#include "jsonedit.h"
#include "jsonscan.h"
#include "jsonw.h"
#include "loadgen.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "reqlog.h"
#include "arrival.h"
#include "sim.h"
#include "summary.h"
#include "trace.h"

enum history {
    HISTORY_RECORDED,
    HISTORY_LIVE,
};

struct options {
    const char *trace;
    const char *target;          /* URL or "sim" */
    struct arrival sched;
    usec_t duration;             /* rate mode: stop sending after this */
    uint64_t requests;           /* rate mode: stop after this many (0 = trace size) */
    enum history history;
    const char *log_path;
    bool log_gaps;
    const char *out_path;
    bool quiet;
    bool stop_on_error;
    usec_t response_timeout, stream_timeout;
    struct sim_options sim;
};

enum item_state {
    ITEM_PENDING,
    ITEM_WAITING,   /* due, but its session's previous turn is still running */
    ITEM_IN_FLIGHT,
    ITEM_DONE,
};

struct item {
    struct trace_entry e;        /* owned */
    size_t session;              /* index into sessions, SIZE_MAX for none */
    size_t turn;                 /* its place in the session */
    usec_t due;                  /* µs after start */
    usec_t recorded_duration;    /* from the recorded events, 0 unknown */
    enum item_state state;
};

struct session {
    char *id;                    /* owned */
    size_t *items;               /* owned: item indexes in turn order */
    size_t n, cap;
    bool busy;
    usec_t last_done;            /* when its last turn finished (monotonic) */
    char **answers;              /* owned: live answers, one per finished turn */
    size_t n_answers;
};

struct sendctx {
    struct run *run;             /* borrowed */
    size_t item;                 /* SIZE_MAX: a rate-mode repeat with no state */
};

struct run {
    struct options o;
    struct event_base *base;     /* owned */
    struct sim *sim;             /* owned: the embedded simulator, if any */
    struct loadgen *lg;          /* owned */
    struct metrics *metrics;     /* owned */
    struct reqlog *log;          /* owned */
    struct item *items;          /* owned */
    size_t n_items;
    size_t *order;               /* owned: items by due time */
    size_t next;                 /* next in order to dispatch */
    struct session *sessions;    /* owned */
    size_t n_sessions;
    char target_url[300];
    usec_t start;
    uint64_t total;              /* requests this run will send */
    uint64_t sent, finished;
    struct hist send_lag;        /* t_sent - intended */
    struct hist ttft_uncorrected;/* first token - actual send */
    struct event *timer, *progress, *sigint, *sigterm;
    bool interrupted, stopping;
    bool tty;
    unsigned skipped_lines;
};

/* --- options --- */

enum {
    OPT_TARGET = 1,
    OPT_TIMING,
    OPT_SPEED,
    OPT_CONCURRENCY,
    OPT_RATE,
    OPT_ARRIVAL,
    OPT_DURATION,
    OPT_REQUESTS,
    OPT_HISTORY,
    OPT_LOG,
    OPT_LOG_GAPS,
    OPT_OUT,
    OPT_QUIET,
    OPT_ON_ERROR,
    OPT_SEED,
    OPT_RESPONSE_TIMEOUT,
    OPT_STREAM_TIMEOUT,
    OPT_SIM_SLOTS,
    OPT_SIM_DECODE,
    OPT_SIM_PREFILL,
    OPT_LOG_LEVEL,
};

static const struct cli_option replay_options[] = {
    {"target", 't', "URL|sim", "where to send: http://HOST:PORT, or 'sim' for the built-in simulator (default sim)", OPT_TARGET},
    {"timing", 0, "original", "send each request at its recorded offset (default unless --concurrency or --rate)", OPT_TIMING},
    {"speed", 0, "X", "original timing: offsets divided by X (default 1)", OPT_SPEED},
    {"concurrency", 'c', "N", "closed loop: keep N requests in flight", OPT_CONCURRENCY},
    {"rate", 'r', "R", "open loop: R requests per second", OPT_RATE},
    {"arrival", 0, "poisson|constant", "open loop arrivals (default poisson)", OPT_ARRIVAL},
    {"duration", 'd', "DURATION", "open loop: stop sending after this long", OPT_DURATION},
    {"requests", 'n', "K", "open loop: send K requests (default: the trace's size)", OPT_REQUESTS},
    {"history", 0, "recorded|live", "later turns as recorded, or rebuilt from this run's answers (default recorded)", OPT_HISTORY},
    {"log", 0, "FILE", "one JSON line per request (the proxy's record schema)", OPT_LOG},
    {"log-gaps", 0, NULL, "include every inter-token gap in --log lines", OPT_LOG_GAPS},
    {"out", 'o', "FILE", "summary JSON: counts, outcomes, throughput, percentiles, send lag", OPT_OUT},
    {"quiet", 'q', NULL, "no progress lines", OPT_QUIET},
    {"on-error", 0, "skip|stop", "a malformed trace line: skip it (default) or stop", OPT_ON_ERROR},
    {"seed", 0, "N", "seed for Poisson arrivals (default 1)", OPT_SEED},
    {"response-timeout", 0, "DURATION", "wait for a response head (default 10m)", OPT_RESPONSE_TIMEOUT},
    {"stream-timeout", 0, "DURATION", "longest silence mid-response (default 5m)", OPT_STREAM_TIMEOUT},
    {"sim-slots", 0, "N", "with --target sim: slots (default 3)", OPT_SIM_SLOTS},
    {"sim-decode-tps", 0, "N", "with --target sim: tokens/s per slot (default 50)", OPT_SIM_DECODE},
    {"sim-prefill-tps", 0, "N", "with --target sim: prompt tokens/s per slot (default 1500)", OPT_SIM_PREFILL},
    {"log-level", 0, "LEVEL", "error, warn, info or debug (default info)", OPT_LOG_LEVEL},
    {NULL, 0, NULL, NULL, 0},
};

static const struct cli_command replay_command = {
    .name = "replay",
    .usage = "tokentap replay TRACE [--target URL|sim] [--timing original [--speed X] | "
             "--concurrency N | --rate R [--duration D | --requests K]] [OPTIONS]",
    .summary =
        "Send a trace to a target and measure every streamed token. TRACE is a file written\n"
        "by 'tokentap serve --record', a JSONL of {\"messages\":[...]} or {\"prompt\":...}\n"
        "requests, or a length-only trace ({\"timestamp\",\"input_length\",\"output_length\"}).\n"
        "Requests of one session are sent in order, each after the previous one finished.\n"
        "Open-loop latency counts from the intended send time (no coordinated omission).",
    .options = replay_options,
    .epilog = "See docs/replay.md for the trace format and the timing modes.\n",
};

/* --- trace loading --- */

static size_t session_index(struct run *run, const char *id)
{
    for (size_t i = 0; i < run->n_sessions; i++)
        if (strcmp(run->sessions[i].id, id) == 0)
            return i;
    struct session *s = realloc(run->sessions, (run->n_sessions + 1) * sizeof(*s));
    if (!s)
        return SIZE_MAX;
    run->sessions = s;
    memset(&s[run->n_sessions], 0, sizeof(*s));
    s[run->n_sessions].id = strdup(id);
    return run->n_sessions++;
}

static int add_turn(struct session *s, size_t item)
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
    const struct item *items = arg;
    const struct item *x = &items[*(const size_t *)a], *y = &items[*(const size_t *)b];
    if (x->e.offset_us != y->e.offset_us)
        return x->e.offset_us < y->e.offset_us ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int load_trace(struct run *run)
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
            struct item *p = realloc(run->items, cap * sizeof(*p));
            if (!p) {
                rc = -ENOMEM;
                goto fail;
            }
            run->items = p;
        }
        struct item *it = &run->items[run->n_items];
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
        struct item *it = &run->items[run->order[k]];
        it->e.offset_us -= base;
        it->due = arrival_original(&run->o.sched, (usec_t)it->e.offset_us);
        if (it->e.n_events)
            it->recorded_duration = it->e.events[it->e.n_events - 1].offset_us;
        it->session = SIZE_MAX;
        if (it->e.session && it->e.session[0]) {
            it->session = session_index(run, it->e.session);
            if (it->session == SIZE_MAX)
                return -ENOMEM;
            struct session *s = &run->sessions[it->session];
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

/* Replaces the content of the j-th assistant message in the body with the
 * j-th live answer (keeps every other byte). */
static int apply_history(struct run *run, struct item *it, char **ret_body, size_t *ret_len)
{
    struct session *s = &run->sessions[it->session];
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
        struct jsonscan_key want = jsonscan_key_token("messages", "messages" + 8);
        if (jsonscan_key_eq(k, want) && body[m.value] == '[')
            msgs = m.value;
    }
    if (msgs == SIZE_MAX)
        return 0;
    size_t idx[256], n = 0, i = 0;
    struct jsonscan_iter arr;
    jsonscan_iter_init(&arr, body, len, msgs);
    while (jsonscan_iter_next(&arr, &m) && n < 256) {
        if (body[m.value] == '{') {
            struct jsonscan_iter fields;
            struct jsonscan_member f;
            jsonscan_iter_init(&fields, body, len, m.value);
            while (jsonscan_iter_next(&fields, &f)) {
                struct jsonscan_key k = jsonscan_key_member(body, &f);
                struct jsonscan_key want = jsonscan_key_token("role", "role" + 4);
                if (jsonscan_key_eq(k, want) && f.value_end - f.value == 11 &&
                    memcmp(body + f.value, "\"assistant\"", 11) == 0)
                    idx[n++] = i;
            }
        }
        i++;
    }
    struct evbuffer *v = evbuffer_new();
    if (!v)
        return -ENOMEM;
    const char *doc = body;
    size_t doc_len = len;
    for (size_t j = 0; j < n && j < s->n_answers; j++) {
        char pointer[64];
        snprintf(pointer, sizeof(pointer), "/messages/%zu/content", idx[j]);
        evbuffer_drain(v, evbuffer_get_length(v));
        jsonw_cstr(v, s->answers[j]);
        size_t vlen = evbuffer_get_length(v);
        char *out = NULL;
        size_t out_len = 0;
        int r = jsonedit_set(doc, doc_len, pointer, (const char *)evbuffer_pullup(v, -1), vlen, &out,
                             &out_len);
        if (r < 0)
            continue;
        free(cur);
        cur = out;
        doc = cur;
        doc_len = out_len;
    }
    evbuffer_free(v);
    *ret_body = cur;
    *ret_len = doc_len;
    return 0;
}

/* --- sending --- */

static void dispatch(struct run *run);
static void finish_run(struct run *run);

static void on_done(void *ctx, const struct loadgen_result *res)
{
    struct sendctx *sc = ctx;
    struct run *run = sc->run;
    const struct record *r = res->rec;
    run->finished++;
    if (r->t_sent >= r->t_start)
        hist_record(&run->send_lag, r->t_sent - r->t_start);
    if (r->outcome == RECORD_OK && r->t_first_token && r->t_sent)
        hist_record(&run->ttft_uncorrected, clock_diff(r->t_first_token, r->t_sent));
    if (sc->item != SIZE_MAX) {
        struct item *it = &run->items[sc->item];
        it->state = ITEM_DONE;
        if (it->session != SIZE_MAX) {
            struct session *s = &run->sessions[it->session];
            s->busy = false;
            s->last_done = clock_now();
            char **a = realloc(s->answers, (s->n_answers + 1) * sizeof(*a));
            if (a) {
                s->answers = a;
                s->answers[s->n_answers] = strdup(res->content ? res->content : "");
                if (s->answers[s->n_answers])
                    s->n_answers++;
            }
        }
    }
    free(sc);
    if (!run->stopping)
        dispatch(run);
    if (run->finished >= run->total && run->sent >= run->total)
        finish_run(run);
}

static int send_item(struct run *run, size_t index, usec_t intended)
{
    struct item *it = index != SIZE_MAX ? &run->items[index] : NULL;
    struct sendctx *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return -ENOMEM;
    sc->run = run;
    sc->item = index;
    struct trace_entry *e = it ? &it->e : &run->items[run->sent % run->n_items].e;
    char *body = NULL;
    size_t body_len = e->body_len;
    if (it && run->o.history == HISTORY_LIVE && it->session != SIZE_MAX)
        apply_history(run, it, &body, &body_len);
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
    int r = loadgen_send(run->lg, &rq, on_done, sc);
    free(body);
    if (r < 0) {
        free(sc);
        return r;
    }
    if (it) {
        it->state = ITEM_IN_FLIGHT;
        if (it->session != SIZE_MAX)
            run->sessions[it->session].busy = true;
    }
    run->sent++;
    return 0;
}

/* The earliest time session s's turn `it` may go: after the previous turn
 * ended, plus the think time the recording shows. */
static usec_t session_ready(struct run *run, const struct item *it)
{
    if (it->session == SIZE_MAX || it->turn == 0)
        return 0;
    const struct session *s = &run->sessions[it->session];
    const struct item *prev = &run->items[s->items[it->turn - 1]];
    if (prev->state != ITEM_DONE)
        return USEC_INFINITY;
    usec_t think = 0;
    if (prev->recorded_duration && it->e.offset_us > prev->e.offset_us) {
        usec_t gap = (usec_t)(it->e.offset_us - prev->e.offset_us);
        if (gap > prev->recorded_duration)
            think = arrival_original(&run->o.sched, gap - prev->recorded_duration);
    }
    return s->last_done + think;
}

static void arm(struct run *run, usec_t at)
{
    usec_t now = clock_now();
    usec_t wait = at > now ? at - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(wait / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(wait % USEC_PER_SEC)};
    evtimer_add(run->timer, &tv);
}

static void dispatch(struct run *run)
{
    usec_t now = clock_now();
    struct arrival *sc = &run->o.sched;
    if (sc->mode == ARRIVAL_CONCURRENCY) {
        /* Closed loop: fill up to N with the first requests whose session
         * is free; intended time is now. */
        for (size_t k = run->next; k < run->n_items && loadgen_in_flight(run->lg) < sc->concurrency; k++) {
            size_t i = run->order[k];
            struct item *it = &run->items[i];
            if (it->state != ITEM_PENDING)
                continue;
            if (session_ready(run, it) == USEC_INFINITY)
                continue;
            send_item(run, i, 0);
        }
        while (run->next < run->n_items && run->items[run->order[run->next]].state != ITEM_PENDING)
            run->next++;
        return;
    }
    if (sc->mode == ARRIVAL_RATE) {
        while (run->sent < run->total) {
            usec_t at = run->start + sc->next_us;
            if (run->o.duration && at - run->start > run->o.duration) {
                run->total = run->sent;
                break;
            }
            if (at > now) {
                arm(run, at);
                return;
            }
            arrival_next_arrival(sc);
            size_t i = run->sent < run->n_items ? run->order[run->sent] : SIZE_MAX;
            send_item(run, i, at);
        }
        return;
    }
    /* Original timing: every request at its offset; a session's turn also
     * waits for the previous turn (then it is sent as soon as it may). */
    usec_t next_wake = USEC_INFINITY;
    for (size_t k = run->next; k < run->n_items; k++) {
        size_t i = run->order[k];
        struct item *it = &run->items[i];
        if (it->state == ITEM_IN_FLIGHT || it->state == ITEM_DONE)
            continue;
        usec_t due = run->start + it->due;
        if (due > now) {
            if (due < next_wake)
                next_wake = due;
            break; /* ordered by due: the rest is later */
        }
        usec_t ready = session_ready(run, it);
        if (ready == USEC_INFINITY) {
            it->state = ITEM_WAITING;
            continue;
        }
        if (ready > now) {
            if (ready < next_wake)
                next_wake = ready;
            it->state = ITEM_WAITING;
            continue;
        }
        send_item(run, i, due > ready ? due : ready);
    }
    while (run->next < run->n_items &&
           (run->items[run->order[run->next]].state == ITEM_IN_FLIGHT ||
            run->items[run->order[run->next]].state == ITEM_DONE))
        run->next++;
    if (next_wake != USEC_INFINITY)
        arm(run, next_wake);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *run = arg;
    if (!run->stopping)
        dispatch(run);
    if (run->o.sched.mode == ARRIVAL_RATE && run->sent >= run->total && run->finished >= run->total)
        finish_run(run);
}

/* --- progress and the end --- */

static void progress_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *run = arg;
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

static void finish_run(struct run *run)
{
    event_base_loopexit(run->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct run *run = arg;
    if (run->interrupted) {
        event_base_loopexit(run->base, NULL);
        return;
    }
    /* Stop sending; abort what is in flight; write what we have. */
    run->interrupted = true;
    run->stopping = true;
    evtimer_del(run->timer);
    loadgen_abort_all(run->lg);
    event_base_loopexit(run->base, NULL);
}

static void write_summary(struct run *run, usec_t end)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    char when[40];
    double secs = (double)(end - run->start) / 1e6;
    struct metrics_brief brief;
    metrics_brief(run->metrics, end, &brief);
    clock_format_wall(clock_wall() - (end - run->start), when, sizeof(when));
    evbuffer_add_printf(b, "{\"tokentap_version\":\"%s\",\"command\":\"replay\",\"trace\":", TOKENTAP_VERSION);
    jsonw_cstr(b, run->o.trace);
    evbuffer_add_printf(b, ",\"target\":");
    jsonw_cstr(b, run->target_url);
    const char *mode = run->o.sched.mode == ARRIVAL_ORIGINAL  ? "original"
                       : run->o.sched.mode == ARRIVAL_CONCURRENCY ? "concurrency"
                                                               : "rate";
    evbuffer_add_printf(b, ",\"mode\":{\"timing\":\"%s\",\"speed\":", mode);
    jsonw_double(b, run->o.sched.speed);
    evbuffer_add_printf(b, ",\"concurrency\":%u,\"rate\":", run->o.sched.concurrency);
    jsonw_double(b, run->o.sched.rate);
    evbuffer_add_printf(b, ",\"arrival\":\"%s\",\"history\":\"%s\"},\"started\":\"%s\",\"duration_s\":",
                        run->o.sched.process == ARRIVAL_POISSON ? "poisson" : "constant",
                        run->o.history == HISTORY_LIVE ? "live" : "recorded", when);
    jsonw_double(b, secs);
    evbuffer_add_printf(b,
                        ",\"complete\":%s,\"requests_planned\":%llu,\"requests_sent\":%llu,"
                        "\"requests_finished\":%llu,\"trace_lines_skipped\":%u,\"throughput\":{"
                        "\"requests_per_s\":",
                        run->interrupted ? "false" : "true", (unsigned long long)run->total,
                        (unsigned long long)run->sent, (unsigned long long)run->finished,
                        run->skipped_lines);
    jsonw_double(b, secs > 0 ? (double)run->finished / secs : 0);
    EVBUFFER_ADD_LIT(b, ",\"output_tokens_per_s\":");
    jsonw_double(b, secs > 0 ? (double)brief.output_tokens / secs : 0);
    EVBUFFER_ADD_LIT(b, "},");
    metrics_hist_json(b, "send_lag_ms", &run->send_lag);
    EVBUFFER_ADD_LIT(b, ",");
    metrics_hist_json(b, "ttft_uncorrected_ms", &run->ttft_uncorrected);
    EVBUFFER_ADD_LIT(b, ",\"stats\":");
    metrics_stats_json(run->metrics, b, end);
    EVBUFFER_ADD_LIT(b, "}\n");

    size_t len = evbuffer_get_length(b);
    char *text = (char *)evbuffer_pullup(b, -1);
    if (run->o.out_path) {
        FILE *f = fopen(run->o.out_path, "w");
        if (!f || fwrite(text, 1, len, f) != len)
            log_error("cannot write %s: %s", run->o.out_path, strerror(errno));
        if (f)
            fclose(f);
    }
    cJSON *json = cJSON_ParseWithLength(text, len);
    if (json)
        summary_print(stdout, json);
    cJSON_Delete(json);
    evbuffer_free(b);
}

/* Fails fast when the target does not answer at all. */
struct probe {
    struct event_base *base;
    int outcome;
    char error[160];
};

static void probe_done(void *ctx, const struct loadgen_result *res)
{
    struct probe *p = ctx;
    p->outcome = res->rec->outcome;
    snprintf(p->error, sizeof(p->error), "%s", res->rec->error);
    event_base_loopexit(p->base, NULL);
}

static int probe_target(struct run *run)
{
    struct loadgen_options o;
    loadgen_options_default(&o);
    o.url = run->target_url;
    o.response_timeout = 10 * USEC_PER_SEC;
    struct loadgen *lg = NULL;
    char err[256];
    if (loadgen_new(run->base, &o, &lg, err, sizeof(err)) < 0) {
        fprintf(stderr, "tokentap replay: --target %s\n", err);
        return -EINVAL;
    }
    struct probe p = {.base = run->base, .outcome = -1};
    struct loadgen_req rq = {.method = "GET", .path = "/health", .thinking = -1};
    loadgen_send(lg, &rq, probe_done, &p);
    event_base_dispatch(run->base);
    loadgen_free(lg);
    if (p.outcome == RECORD_UPSTREAM_ERROR || p.outcome == RECORD_TIMEOUT || p.outcome < 0) {
        fprintf(stderr, "tokentap replay: target %s does not answer: %s\n", run->target_url,
                p.error[0] ? p.error : "no response");
        return -ECONNREFUSED;
    }
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    const struct cli_command *cmd = &replay_command;
    struct cli_parser p;
    const char *v;
    int id;
    uint64_t u;
    enum log_level level;
    bool timing_set = false;
    memset(o, 0, sizeof(*o));
    arrival_init(&o->sched, ARRIVAL_ORIGINAL, 1);
    o->target = "sim";
    o->response_timeout = 600 * USEC_PER_SEC;
    o->stream_timeout = 300 * USEC_PER_SEC;
    sim_options_default(&o->sim);
    o->sim.listen = "127.0.0.1:0";
    o->sim.quiet = true;
    cli_init(&p, cmd, argc, argv);
    while ((id = cli_next(&p, &v)) != CLI_END) {
        switch (id) {
        case CLI_HELP:
            return 1;
        case CLI_ERROR:
            return -EINVAL;
        case CLI_POSITIONAL:
            if (o->trace) {
                cli_usage_error(cmd, "one trace only (got '%s' and '%s')", o->trace, v);
                return -EINVAL;
            }
            o->trace = v;
            break;
        case OPT_TARGET: o->target = v; break;
        case OPT_TIMING:
            if (strcmp(v, "original") != 0) {
                cli_usage_error(cmd, "--timing: only 'original' (use --concurrency or --rate for the others)");
                return -EINVAL;
            }
            if (timing_set && o->sched.mode != ARRIVAL_ORIGINAL)
                goto conflict;
            timing_set = true;
            break;
        case OPT_SPEED:
            if (cli_parse_double(cmd, "--speed", v, 0.001, 1e6, &o->sched.speed) < 0)
                return -EINVAL;
            break;
        case OPT_CONCURRENCY:
            if (timing_set && o->sched.mode != ARRIVAL_CONCURRENCY)
                goto conflict;
            if (cli_parse_u64(cmd, "--concurrency", v, 1, 100000, &u) < 0)
                return -EINVAL;
            o->sched.mode = ARRIVAL_CONCURRENCY;
            o->sched.concurrency = (unsigned)u;
            timing_set = true;
            break;
        case OPT_RATE:
            if (timing_set && o->sched.mode != ARRIVAL_RATE)
                goto conflict;
            if (cli_parse_double(cmd, "--rate", v, 0.001, 1e6, &o->sched.rate) < 0)
                return -EINVAL;
            o->sched.mode = ARRIVAL_RATE;
            timing_set = true;
            break;
        case OPT_ARRIVAL:
            if (arrival_parse_process(v, &o->sched.process) < 0) {
                cli_usage_error(cmd, "--arrival: expected poisson or constant, got '%s'", v);
                return -EINVAL;
            }
            break;
        case OPT_DURATION:
            if (cli_parse_duration(cmd, "--duration", v, &o->duration) < 0)
                return -EINVAL;
            break;
        case OPT_REQUESTS:
            if (cli_parse_u64(cmd, "--requests", v, 1, 100000000, &o->requests) < 0)
                return -EINVAL;
            break;
        case OPT_HISTORY:
            if (strcmp(v, "live") == 0)
                o->history = HISTORY_LIVE;
            else if (strcmp(v, "recorded") == 0)
                o->history = HISTORY_RECORDED;
            else {
                cli_usage_error(cmd, "--history: expected recorded or live, got '%s'", v);
                return -EINVAL;
            }
            break;
        case OPT_LOG: o->log_path = v; break;
        case OPT_LOG_GAPS: o->log_gaps = true; break;
        case OPT_OUT: o->out_path = v; break;
        case OPT_QUIET: o->quiet = true; break;
        case OPT_ON_ERROR:
            if (strcmp(v, "skip") == 0)
                o->stop_on_error = false;
            else if (strcmp(v, "stop") == 0)
                o->stop_on_error = true;
            else {
                cli_usage_error(cmd, "--on-error: expected skip or stop, got '%s'", v);
                return -EINVAL;
            }
            break;
        case OPT_SEED:
            if (cli_parse_u64(cmd, "--seed", v, 0, UINT64_MAX, &u) < 0)
                return -EINVAL;
            o->sched.rng = u ? u : 1;
            break;
        case OPT_RESPONSE_TIMEOUT:
            if (cli_parse_duration(cmd, "--response-timeout", v, &o->response_timeout) < 0)
                return -EINVAL;
            break;
        case OPT_STREAM_TIMEOUT:
            if (cli_parse_duration(cmd, "--stream-timeout", v, &o->stream_timeout) < 0)
                return -EINVAL;
            break;
        case OPT_SIM_SLOTS:
            if (cli_parse_u64(cmd, "--sim-slots", v, 1, 100000, &u) < 0)
                return -EINVAL;
            o->sim.slots = (unsigned)u;
            break;
        case OPT_SIM_DECODE:
            if (cli_parse_double(cmd, "--sim-decode-tps", v, 0.001, 1e7, &o->sim.decode_tps) < 0)
                return -EINVAL;
            break;
        case OPT_SIM_PREFILL:
            if (cli_parse_double(cmd, "--sim-prefill-tps", v, 0.001, 1e9, &o->sim.prefill_tps) < 0)
                return -EINVAL;
            break;
        case OPT_LOG_LEVEL:
            if (log_parse_level(v, &level) < 0) {
                cli_usage_error(cmd, "--log-level: expected error, warn, info or debug, got '%s'", v);
                return -EINVAL;
            }
            log_set_level(level);
            break;
        }
    }
    if (!o->trace) {
        cli_usage_error(cmd, "which trace? (tokentap replay TRACE ...)");
        return -EINVAL;
    }
    if (o->sched.mode != ARRIVAL_RATE && (o->duration || o->requests)) {
        cli_usage_error(cmd, "--duration and --requests go with --rate");
        return -EINVAL;
    }
    return 0;
conflict:
    cli_usage_error(cmd, "choose one of --timing original, --concurrency N, --rate R");
    return -EINVAL;
}

static void run_free(struct run *run)
{
    loadgen_free(run->lg);
    sim_free(run->sim);
    for (size_t i = 0; i < run->n_items; i++)
        trace_entry_finish(&run->items[i].e);
    free(run->items);
    free(run->order);
    for (size_t i = 0; i < run->n_sessions; i++) {
        struct session *s = &run->sessions[i];
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
    if (run->sigint)
        event_free(run->sigint);
    if (run->sigterm)
        event_free(run->sigterm);
    metrics_free(run->metrics);
    reqlog_close(run->log);
    if (run->base)
        event_base_free(run->base);
}

int replay_main(int argc, char **argv)
{
    struct run run;
    memset(&run, 0, sizeof(run));
    int r = parse_options(argc, argv, &run.o);
    if (r != 0)
        return r > 0 ? 0 : 2;
    int rc = 1;
    net_raise_fd_limit();
    run.base = net_event_base_new();
    if (!run.base)
        goto fail;
    r = load_trace(&run);
    if (r < 0) {
        rc = r == -EINVAL || r == -EBADMSG ? 2 : 1;
        goto fail;
    }
    if (strcmp(run.o.target, "sim") == 0) {
        if (sim_new(run.base, &run.o.sim, &run.sim) < 0)
            goto fail;
        char addr[80];
        net_format(sim_address(run.sim), addr, sizeof(addr));
        snprintf(run.target_url, sizeof(run.target_url), "http://%s", addr);
    } else {
        snprintf(run.target_url, sizeof(run.target_url), "%s", run.o.target);
    }
    if (probe_target(&run) < 0)
        goto fail;

    struct metrics_options mo;
    metrics_options_default(&mo);
    mo.recent = 0;
    if (metrics_new(&mo, clock_now(), &run.metrics) < 0)
        goto fail;
    if (run.o.log_path && (r = reqlog_open(run.o.log_path, run.o.log_gaps, &run.log)) < 0) {
        fprintf(stderr, "tokentap replay: cannot open %s: %s\n", run.o.log_path, strerror(-r));
        goto fail;
    }
    struct loadgen_options lo;
    loadgen_options_default(&lo);
    lo.url = run.target_url;
    lo.label = strcmp(run.o.target, "sim") == 0 ? "sim" : run.target_url;
    lo.response_timeout = run.o.response_timeout;
    lo.stream_timeout = run.o.stream_timeout;
    lo.metrics = run.metrics;
    lo.log = run.log;
    char err[256];
    if (loadgen_new(run.base, &lo, &run.lg, err, sizeof(err)) < 0) {
        fprintf(stderr, "tokentap replay: %s\n", err);
        goto fail;
    }
    run.timer = evtimer_new(run.base, timer_cb, &run);
    run.progress = evtimer_new(run.base, progress_cb, &run);
    run.sigint = evsignal_new(run.base, SIGINT, on_signal, &run);
    run.sigterm = evsignal_new(run.base, SIGTERM, on_signal, &run);
    if (!run.timer || !run.progress || !run.sigint || !run.sigterm)
        goto fail;
    evsignal_add(run.sigint, NULL);
    evsignal_add(run.sigterm, NULL);

    run.total = run.n_items;
    if (run.o.sched.mode == ARRIVAL_RATE) {
        run.total = run.o.requests ? run.o.requests : run.n_items;
        if (run.o.duration && !run.o.requests)
            run.total = UINT64_MAX / 2; /* until the duration is over */
    }
    run.tty = isatty(STDERR_FILENO);
    if (!run.o.quiet) {
        fprintf(stderr, "tokentap replay: %zu requests from %s to %s%s\n", run.n_items, run.o.trace,
                run.target_url, run.skipped_lines ? " (bad lines skipped)" : "");
        struct timeval tv = {0, 250000};
        evtimer_add(run.progress, &tv);
    }
    run.start = clock_now();
    run.o.sched.next_us = 0;
    dispatch(&run);
    event_base_dispatch(run.base);
    usec_t end = clock_now();
    if (!run.o.quiet && run.tty)
        fprintf(stderr, "\n");
    if (run.interrupted)
        fprintf(stderr, "tokentap replay: interrupted: results are partial (marked incomplete)\n");
    write_summary(&run, end);
    rc = run.interrupted ? 130 : 0;
fail:
    run_free(&run);
    return rc;
}
