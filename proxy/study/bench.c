#include "study/bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/files.h"
#include "load/agentic_driver.h"
#include "load/loadgen.h"
#include "core/log.h"
#include "wire/loop.h"
#include "wire/net.h"
#include "study/bench_results.h"
#include "tap/record.h"
#include "report/report.h"
#include "report/report_doc.h"
#include "report/results.h"
#include "study/capacity.h"
#include "study/scenario.h"
#include "sim/sim.h"
#include "core/stats.h"
#include "serve/ui.h"
#include "tap/metrics.h"

struct bench;
struct trace_user;

struct target_run {
    struct bench *b;                 /* borrowed */
    const struct scenario_target *t; /* borrowed from the scenario */
    size_t index;
    struct sim *sim;                 /* owned: this target's simulator, if it has no URL */
    struct loadgen *lg;              /* owned */
    struct metrics *metrics;         /* owned: counts in-flight requests, for each record's level */
    char url[300];
    cJSON *props;                    /* owned: its GET /props, NULL when it has none */
    /* Capacity runs: the target's search, and the users of the
     * repetition in progress (each one copy of the user level, or one run
     * of the user trace). */
    struct capacity_search *search;  /* owned */
    struct level_run **users;        /* owned: n_users runs, each owned (NULL for trace users) */
    struct trace_user *tusers;       /* owned: n_users trace users (NULL for level copies) */
    struct agentic_driver *ag;       /* owned: runs trace users (NULL without) */
    unsigned rounds;                 /* passes over the traces started (trace text of their own) */
    unsigned n_users, users_left;
    size_t level;                    /* the count in progress: an index into scenario.levels */
    unsigned reps[SCENARIO_MAX_LEVELS]; /* repetitions run of each level */
    struct event *pause;             /* owned: the pause before a new count */
    bool started, searched;
};

/* One agent's conversation inside one level repetition. */
struct agent_run {
    struct level_run *lr;            /* borrowed */
    size_t agent;                    /* index into scenario.agents */
    size_t phase;                    /* the phase it runs in */
    size_t turn;                     /* the turn in flight or next */
    char **users;                    /* owned: expanded user text per turn sent */
    char **answers;                  /* owned: answer content per finished turn */
    size_t n_answers;
    char *system;                    /* owned: expanded system prompt, NULL = none */
    char *joined;                    /* owned: the last {{agents.X.all}} text handed out */
    bool running, done;
};

/* A capacity user that is one run of the scenario's trace. */
struct trace_user {
    struct target_run *tr;          /* borrowed */
    struct agentic_driver_run *run; /* owned */
    size_t level;                   /* index into scenario.levels */
    unsigned rep, user;             /* 1-based */
    usec_t start, end;              /* its start, its last answer */
};

/* One target running one level once. */
struct level_run {
    struct bench *b;                 /* borrowed */
    struct target_run *tr;           /* borrowed */
    size_t level;                    /* index into scenario.levels */
    unsigned rep;                    /* 1-based */
    unsigned user;                   /* 1-based: which copy of the level (capacity runs) */
    size_t phase;                    /* the phase in progress */
    size_t seq_next;                 /* sequential phase: next member */
    size_t active;                   /* agents of this phase not done yet */
    struct agent_run *agents;        /* owned: one per scenario agent */
    usec_t start, end;
    bool done;
    bool lookup_failed;              /* lookup() ran out of memory in this expansion */
};

struct bench {
    struct scenario *s;              /* owned */
    struct event_base *base;         /* owned */
    struct target_run targets[SCENARIO_MAX_TARGETS];
    size_t n_targets;
    char out_dir[BENCH_MAX_OUT_DIR + 1];
    bool quiet, tty, all_sim, interrupted, failed;
    int thinking_override;           /* -1 none */
    /* Progress through the plan: level, repetition, group of targets. */
    size_t level;
    unsigned rep;
    size_t group;                    /* sim-only runs: 0; else the target slot of this rep */
    struct level_run *running[SCENARIO_MAX_TARGETS]; /* owned */
    size_t n_running;
    size_t warmups_left;
    struct bench_request *requests;  /* owned: every measured request */
    size_t n_requests, cap_requests;
    struct bench_level_run *level_runs; /* owned: each level repetition's wall time */
    size_t n_level_runs, cap_level_runs;
    uint64_t sent, done, errors;
    uint64_t checks_failed;          /* measured turns whose answer check failed */
    bool allow_failures;
    struct upstream_tls_options tls; /* https targets (strings borrowed from argv) */
    usec_t start_mono, start_wall;
    struct event *pause, *tick;      /* owned */
    struct loop loop;                /* the signal rules while the plan runs */
    char last_step[160];
    char **argv;                     /* borrowed from main: the command line, for results.json */
    int argc;
    const char *ui_listen;           /* borrowed: --ui HOST:PORT, NULL: no dashboard */
    struct metrics *metrics;         /* owned: --ui's level table, shared by the targets (NULL without) */
    struct ui *ui;                   /* owned: --ui */
    /* --capacity: each target's search for the most users the objective holds. */
    bool capacity;
    struct agentic_driver_traces traces; /* owned: the user trace(s); n == 0 without */
    struct capacity_slo slo;
    struct capacity_settings search;
};

static void step(struct bench *b);
static void cap_user_done(struct target_run *tr);
static void level_agent_done(struct level_run *lr);

/* Nothing more goes from the trace users (before aborting what is in flight). */
static void stop_traces(struct bench *b)
{
    for (size_t i = 0; i < b->n_targets; i++)
        if (b->targets[i].ag)
            agentic_driver_stop(b->targets[i].ag);
}

/* Ends the run early: the results so far are written, marked incomplete. */
static void stop_failed(struct bench *b)
{
    b->failed = true;
    stop_traces(b);
    event_base_loopexit(b->base, NULL);
}

/* --- requests --- */

static const char *lookup(void *ctx, const char *agent, const char *which)
{
    struct level_run *lr = ctx;
    const struct scenario_agent *a = scenario_find_agent(lr->b->s, agent);
    if (!a)
        return NULL;
    struct agent_run *ar = &lr->agents[a - lr->b->s->agents];
    if (ar->n_answers == 0)
        return NULL;
    if (strcmp(which, "last") == 0)
        return ar->answers[ar->n_answers - 1];
    if (strncmp(which, "turn", 4) == 0) {
        long n = strtol(which + 4, NULL, 10);
        return n >= 1 && (size_t)n <= ar->n_answers ? ar->answers[n - 1] : NULL;
    }
    /* "all": the answers joined, kept until the next such lookup. */
    size_t len = 0;
    for (size_t i = 0; i < ar->n_answers; i++)
        len += strlen(ar->answers[i]) + 2;
    char *all = malloc(len + 1);
    if (!all) {
        lr->lookup_failed = true;
        return NULL;
    }
    size_t off = 0;
    for (size_t i = 0; i < ar->n_answers; i++)
        off += (size_t)snprintf(all + off, len + 1 - off, "%s%s", i ? "\n\n" : "", ar->answers[i]);
    free(ar->joined);
    ar->joined = all;
    return all;
}

/* Appends {"role": role, "content": content} to msgs; false for want of
 * memory. */
static bool add_message(cJSON *msgs, const char *role, const char *content)
{
    cJSON *m = cJSON_CreateObject();
    if (!cJSON_AddStringToObject(m, "role", role) ||
        !cJSON_AddStringToObject(m, "content", content) || !cJSON_AddItemToArray(msgs, m)) {
        cJSON_Delete(m);
        return false;
    }
    return true;
}

/* The request body for the agent's current turn: system, then every
 * earlier turn with this run's own answers, then the new user text. NULL
 * for want of memory. */
static char *build_body(struct level_run *lr, struct agent_run *ar, const struct scenario_turn *turn)
{
    const struct scenario_agent *a = &lr->b->s->agents[ar->agent];
    const struct scenario_target *t = lr->tr->t;
    if (ar->n_answers < ar->turn)
        return NULL; /* an earlier answer was not kept */
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && t->model)
        ok = cJSON_AddStringToObject(root, "model", t->model) != NULL;
    if (ok && a->api == SCENARIO_API_ANTHROPIC && ar->system)
        ok = cJSON_AddStringToObject(root, "system", ar->system) != NULL;
    cJSON *msgs = ok ? cJSON_AddArrayToObject(root, "messages") : NULL;
    ok = msgs != NULL;
    if (ok && a->api != SCENARIO_API_ANTHROPIC && ar->system)
        ok = add_message(msgs, "system", ar->system);
    for (size_t i = 0; ok && i <= ar->turn; i++) {
        ok = add_message(msgs, "user", ar->users[i]);
        if (ok && i < ar->turn)
            ok = add_message(msgs, "assistant", ar->answers[i]);
    }
    ok = ok && cJSON_AddNumberToObject(root, "max_tokens", scenario_max_tokens(turn, t)) != NULL;
    if (ok && turn->has_temperature)
        ok = cJSON_AddNumberToObject(root, "temperature", turn->temperature) != NULL;
    if (ok && lr->b->s->has_seed)
        ok = cJSON_AddNumberToObject(root, "seed", (double)lr->b->s->seed) != NULL;
    ok = ok && cJSON_AddBoolToObject(root, "stream", true) != NULL;
    if (ok && a->api == SCENARIO_API_OPENAI_CHAT) {
        cJSON *so = cJSON_AddObjectToObject(root, "stream_options");
        ok = cJSON_AddBoolToObject(so, "include_usage", true) != NULL;
    }
    int thinking = lr->b->thinking_override >= 0 ? lr->b->thinking_override : scenario_thinking(turn, t);
    if (ok && thinking != SCENARIO_THINKING_UNSET) {
        cJSON *kw = cJSON_AddObjectToObject(root, "chat_template_kwargs");
        ok = cJSON_AddBoolToObject(kw, "enable_thinking", thinking == 1) != NULL;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

static void agent_next(struct agent_run *ar);

/* A row of n more in *rows (cap the room it has), grown by doubling: NULL
 * for want of memory. */
static void *grow(void *rows, size_t size, size_t n, size_t *cap)
{
    if (n < *cap)
        return rows;
    size_t c = *cap ? *cap * 2 : 64;
    void *p = realloc(rows, c * size);
    if (p)
        *cap = c;
    return p;
}

/* A finished request becomes a row of the results: where (the record and
 * the preview from res). 0 or -ENOMEM. */
static int keep_request(struct bench *b, const struct bench_request *where,
                        const struct loadgen_result *res)
{
    struct bench_request *rows =
        grow(b->requests, sizeof(*rows), b->n_requests, &b->cap_requests);
    if (!rows)
        return -ENOMEM;
    b->requests = rows;
    struct bench_request *q = &rows[b->n_requests];
    *q = *where;
    if (record_copy(&q->rec, res->rec, true) < 0)
        return -ENOMEM;
    /* The first BENCH_PREVIEW_CHARS characters, and at most the bytes
     * they take as UTF-8 (the answer need not be valid UTF-8); never half
     * a sequence. */
    size_t n = 0, chars = 0;
    const char *content = res->content ? res->content : "";
    for (const unsigned char *p = (const unsigned char *)content; *p && n < sizeof(q->preview) - 1;
         p++) {
        if ((*p & 0xc0) != 0x80 && chars++ == BENCH_PREVIEW_CHARS)
            break;
        q->preview[n++] = (char)*p;
    }
    q->preview[n] = '\0';
    report_doc_utf8_trim(q->preview);
    b->n_requests++;
    return 0;
}

static void turn_done(void *ctx, const struct loadgen_result *res)
{
    struct agent_run *ar = ctx;
    struct level_run *lr = ar->lr;
    struct bench *b = lr->b;
    const struct scenario_turn *turn = &b->s->agents[ar->agent].turns[ar->turn];
    b->done++;
    if (res->rec->outcome != RECORD_OK)
        b->errors++;
    struct scenario_check_result cr;
    memset(&cr, 0, sizeof(cr));
    if (turn->check)
        scenario_check(turn->check, res->content, res->reasoning, &cr);
    if (turn->check && !cr.pass && !b->interrupted)
        b->checks_failed++;
    struct bench_request where = {
        .target = lr->tr->index,
        .level = lr->level,
        .agent = ar->agent,
        .repetition = lr->rep,
        .user = lr->user,
        .turn = ar->turn + 1,
        .phase = ar->phase,
        .checked = turn->check != NULL,
        .check = cr,
    };
    int r = b->interrupted ? 0 : keep_request(b, &where, res);
    /* Later turns carry every earlier answer: without it the agent cannot
     * go on (build_body refuses). */
    char *answer = r == 0 ? strdup(res->content ? res->content : "") : NULL;
    char **a = answer ? realloc(ar->answers, (ar->n_answers + 1) * sizeof(*a)) : NULL;
    if (a) {
        ar->answers = a;
        ar->answers[ar->n_answers++] = answer;
    }
    lr->end = clock_now();
    ar->turn++;
    ar->running = false;
    if (!a) {
        free(answer);
        log_error("out of memory");
        stop_failed(b);
        return;
    }
    if (b->interrupted)
        return;
    agent_next(ar);
}

/* Prefixes the conversation's first message with "[run L<level>.<rep>] ". */
static bool tag_first_message(struct level_run *lr, struct agent_run *ar)
{
    char **first = ar->system ? &ar->system : &ar->users[0];
    if (!*first)
        return false;
    size_t n = strlen(*first) + 64;
    char *tagged = malloc(n);
    if (!tagged)
        return false;
    const struct scenario_level *l = &lr->b->s->levels[lr->level];
    if (l->users)
        /* Users of one repetition do not share a cache either. */
        snprintf(tagged, n, "[run L%s.%u u%u] %s", l->name, lr->rep, lr->user, *first);
    else
        snprintf(tagged, n, "[run L%s.%u] %s", l->name, lr->rep, *first);
    free(*first);
    *first = tagged;
    return true;
}

/* Expands template text for ar's turn: 0 with a malloc'd *ret, -E2BIG
 * past SCENARIO_MAX_EXPANDED, -ENOMEM (a lookup's too). */
static int expand(struct agent_run *ar, const char *text, char **ret)
{
    struct level_run *lr = ar->lr;
    char *out = NULL;
    lr->lookup_failed = false;
    int r = scenario_expand(text, lr->b->s, lookup, lr, &out);
    if (r == 0 && lr->lookup_failed) {
        free(out);
        r = -ENOMEM;
    }
    if (r == 0)
        *ret = out;
    return r;
}

/* Sends the agent's next turn, or marks it done. A turn that cannot be
 * sent (its prompt does not expand, no memory) stops the run: the
 * conversation cannot go on without it. */
static void agent_next(struct agent_run *ar)
{
    struct level_run *lr = ar->lr;
    struct bench *b = lr->b;
    const struct scenario_agent *a = &b->s->agents[ar->agent];
    if (b->failed)
        return; /* the loop is ending */
    if (ar->turn == a->n_turns) {
        ar->done = true;
        level_agent_done(lr);
        return;
    }
    const struct scenario_turn *turn = &a->turns[ar->turn];
    const char *what = "system";
    char *body = NULL;
    int r = 0;
    if (ar->turn == 0 && a->system && !ar->system)
        r = expand(ar, a->system, &ar->system);
    if (r < 0)
        goto fail;
    what = "user";
    char **u = realloc(ar->users, (ar->turn + 1) * sizeof(*u));
    if (!u) {
        r = -ENOMEM;
        goto fail;
    }
    ar->users = u;
    r = expand(ar, turn->user, &ar->users[ar->turn]);
    if (r < 0)
        goto fail;
    ar->running = true; /* users[turn] is set (level_run_free frees it) */
    /* Each level repetition starts with its own tag, so it cannot reuse
     * an earlier repetition's prompt cache (turns of one conversation
     * still do, as in real use). */
    r = -ENOMEM;
    if (ar->turn == 0 && !tag_first_message(lr, ar))
        goto fail;
    body = build_body(lr, ar, turn);
    if (!body)
        goto fail;
    int thinking = b->thinking_override >= 0 ? b->thinking_override : scenario_thinking(turn, lr->tr->t);
    struct loadgen_req rq = {
        .method = "POST",
        .path = a->api == SCENARIO_API_ANTHROPIC ? "/v1/messages" : "/v1/chat/completions",
        .body = body,
        .body_len = strlen(body),
        .session = a->name,
        .model = lr->tr->t->model,
        .thinking = thinking == SCENARIO_THINKING_UNSET ? -1 : thinking,
    };
    r = loadgen_send(lr->tr->lg, &rq, turn_done, ar);
    if (r < 0)
        goto fail;
    free(body);
    b->sent++;
    snprintf(b->last_step, sizeof(b->last_step), "%s level %s rep %u/%u: %s turn %zu", lr->tr->t->name,
             b->s->levels[lr->level].name, lr->rep, b->s->repetitions, a->name, ar->turn + 1);
    return;
fail:
    free(body);
    if (r == -E2BIG)
        log_error(
            "target %s, level %s, repetition %u: agent %s, turn %zu: the %s prompt expands to more "
            "than %u MiB; stopping (the results so far are written, marked incomplete)",
            lr->tr->t->name, b->s->levels[lr->level].name, lr->rep, a->name, ar->turn + 1, what,
            SCENARIO_MAX_EXPANDED >> 20);
    else
        log_error("out of memory");
    stop_failed(b);
}

/* --- levels and phases --- */

static void phase_start(struct level_run *lr);

static void level_agent_done(struct level_run *lr)
{
    struct bench *b = lr->b;
    const struct scenario_phase *ph = &b->s->levels[lr->level].phases[lr->phase];
    if (ph->kind == SCENARIO_PHASE_SEQUENTIAL && lr->seq_next < ph->n_agents) {
        struct agent_run *ar = &lr->agents[ph->agents[lr->seq_next++]];
        ar->phase = lr->phase;
        agent_next(ar);
        return;
    }
    if (ph->kind == SCENARIO_PHASE_PARALLEL && --lr->active > 0)
        return;
    lr->phase++;
    if (lr->phase < b->s->levels[lr->level].n_phases) {
        phase_start(lr);
        return;
    }
    lr->done = true;
    lr->end = clock_now();
    if (b->capacity) {
        cap_user_done(lr->tr);
        return;
    }
    for (size_t i = 0; i < b->n_running; i++)
        if (!b->running[i]->done)
            return;
    step(b);
}

static void phase_start(struct level_run *lr)
{
    const struct scenario_phase *ph = &lr->b->s->levels[lr->level].phases[lr->phase];
    if (ph->kind == SCENARIO_PHASE_SEQUENTIAL) {
        lr->seq_next = 1;
        struct agent_run *ar = &lr->agents[ph->agents[0]];
        ar->phase = lr->phase;
        agent_next(ar);
        return;
    }
    lr->active = ph->n_agents;
    for (size_t i = 0; i < ph->n_agents; i++) {
        struct agent_run *ar = &lr->agents[ph->agents[i]];
        ar->phase = lr->phase;
        agent_next(ar);
    }
}

static void level_run_free(struct level_run *lr)
{
    if (!lr)
        return;
    for (size_t i = 0; lr->agents && i < lr->b->s->n_agents; i++) {
        struct agent_run *ar = &lr->agents[i];
        for (size_t k = 0; k < ar->turn && ar->users; k++)
            free(ar->users[k]);
        if (ar->users && ar->running)
            free(ar->users[ar->turn]);
        free(ar->users);
        for (size_t k = 0; k < ar->n_answers; k++)
            free(ar->answers[k]);
        free(ar->answers);
        free(ar->system);
        free(ar->joined);
    }
    free(lr->agents);
    free(lr);
}

static struct level_run *level_run_new(struct bench *b, struct target_run *tr, size_t level,
                                       unsigned rep, unsigned user)
{
    struct level_run *lr = calloc(1, sizeof(*lr));
    if (!lr)
        return NULL;
    lr->b = b;
    lr->tr = tr;
    lr->level = level;
    lr->rep = rep;
    lr->user = user;
    lr->agents = calloc(b->s->n_agents, sizeof(*lr->agents));
    if (!lr->agents) {
        free(lr);
        return NULL;
    }
    for (size_t i = 0; i < b->s->n_agents; i++) {
        lr->agents[i].lr = lr;
        lr->agents[i].agent = i;
    }
    lr->start = clock_now();
    return lr;
}

/* --- the plan: level by level, repetition by repetition --- */

/* A level run's (or a trace user's) wall time goes into results. */
static void keep_wall(struct bench *b, const struct bench_level_run *row)
{
    struct bench_level_run *rows =
        grow(b->level_runs, sizeof(*rows), b->n_level_runs, &b->cap_level_runs);
    if (rows) {
        b->level_runs = rows;
        rows[b->n_level_runs++] = *row;
    } else {
        log_error("out of memory");
        stop_failed(b);
    }
}

/* The level's wall time goes into results; the run itself is done (freed). */
static void keep_level_run(struct bench *b, struct level_run *lr)
{
    keep_wall(b, &(struct bench_level_run){.target = lr->tr->index,
                                           .level = lr->level,
                                           .repetition = lr->rep,
                                           .user = lr->user,
                                           .start = lr->start,
                                           .wall = clock_diff(lr->end, lr->start)});
    level_run_free(lr);
}

static void clear_users(struct target_run *tr);

static void clear_running(struct bench *b)
{
    for (size_t i = 0; i < b->n_running; i++)
        keep_level_run(b, b->running[i]);
    b->n_running = 0;
    for (size_t i = 0; i < b->n_targets; i++)
        clear_users(&b->targets[i]);
}

static void start_group(struct bench *b)
{
    /* Sim targets run side by side (they share nothing but the CPU);
     * real servers one at a time, rotating the order each repetition so
     * drift does not favour one target. */
    size_t first = 0, count = b->n_targets;
    if (!b->all_sim) {
        first = (b->group + b->rep - 1) % b->n_targets;
        count = 1;
    }
    for (size_t k = 0; k < count; k++) {
        struct target_run *tr = &b->targets[(first + k) % b->n_targets];
        struct level_run *lr = level_run_new(b, tr, b->level, b->rep, 1);
        if (!lr) {
            log_error("out of memory");
            stop_failed(b);
            return;
        }
        b->running[b->n_running++] = lr;
    }
    for (size_t k = 0; k < count; k++)
        phase_start(b->running[k]);
}

static void pause_cb(evutil_socket_t fd, short what, void *arg)
{
    start_group(arg);
}

/* Called when the running group finished: moves on through the plan. */
static void step(struct bench *b)
{
    clear_running(b);
    bool level_changed = false;
    if (b->all_sim || ++b->group == b->n_targets) {
        b->group = 0;
        if (++b->rep > b->s->repetitions) {
            b->rep = 1;
            b->level++;
            level_changed = true;
        }
    }
    if (b->level == b->s->n_levels) {
        event_base_loopexit(b->base, NULL);
        return;
    }
    if (level_changed && b->s->pause) {
        struct timeval tv = {.tv_sec = (time_t)(b->s->pause / USEC_PER_SEC),
                             .tv_usec = (suseconds_t)(b->s->pause % USEC_PER_SEC)};
        evtimer_add(b->pause, &tv);
        return;
    }
    start_group(b);
}

/* --- capacity: each target's search, one repetition of n users at a time --- */

static void cap_step(struct target_run *tr);

static void clear_users(struct target_run *tr)
{
    for (unsigned u = 0; u < tr->n_users && tr->users; u++)
        keep_level_run(tr->b, tr->users[u]);
    for (unsigned u = 0; u < tr->n_users && tr->tusers; u++) {
        struct trace_user *tu = &tr->tusers[u];
        keep_wall(tr->b, &(struct bench_level_run){.target = tr->index,
                                                   .level = tu->level,
                                                   .repetition = tu->rep,
                                                   .user = tu->user,
                                                   .start = tu->start,
                                                   .wall = clock_diff(tu->end, tu->start)});
        agentic_driver_run_free(tu->run);
    }
    free(tr->users);
    free(tr->tusers);
    tr->users = NULL;
    tr->tusers = NULL;
    tr->n_users = 0;
}

/* A trace user's request finished: a row of the results, in the agent of
 * its session's kind, turn 1. */
static void trace_record(void *ctx, struct agentic_driver_run *run, size_t session, size_t index,
                         const struct loadgen_result *res)
{
    struct trace_user *tu = ctx;
    struct bench *b = tu->tr->b;
    b->done++;
    if (res->rec->outcome != RECORD_OK)
        b->errors++;
    tu->end = clock_now();
    if (b->interrupted)
        return;
    const char *kind = b->traces.t[run->trace].sessions[session].kind;
    const struct scenario_agent *a = scenario_find_agent(b->s, kind);
    struct bench_request where = {
        .target = tu->tr->index,
        .level = tu->level,
        .agent = a ? (size_t)(a - b->s->agents) : b->s->n_agents - 1, /* the last takes the rest */
        .repetition = tu->rep,
        .user = tu->user,
        .turn = 1,
    };
    if (keep_request(b, &where, res) < 0) {
        log_error("out of memory");
        stop_failed(b);
    }
}

static void trace_end(void *ctx, struct agentic_driver_run *run, int err)
{
    struct trace_user *tu = ctx;
    if (err < 0) {
        log_error("out of memory");
        stop_failed(tu->tr->b);
        return;
    }
    cap_user_done(tu->tr);
}

/* Starts one repetition of n trace users: user u (from 1) runs trace
 * (u-1) mod n_traces, each with prompts of its own. Users 1..n_traces are
 * one pass, like one of replay's rounds: only global hash ids (the same
 * text in every trace) are shared within a pass. */
static void cap_run_traces(struct target_run *tr, unsigned users, unsigned rep)
{
    struct bench *b = tr->b;
    usec_t now = clock_now();
    unsigned first = tr->rounds + 1;
    tr->rounds += (unsigned)((users + b->traces.n - 1) / b->traces.n);
    tr->tusers = calloc(users, sizeof(*tr->tusers));
    if (!tr->tusers)
        goto fail;
    tr->users_left = users;
    for (unsigned u = 0; u < users; u++) {
        struct trace_user *tu = &tr->tusers[u];
        size_t trace = u % b->traces.n;
        *tu = (struct trace_user){
            .tr = tr, .level = tr->level, .rep = rep, .user = u + 1, .start = now, .end = now};
        char prefix[160];
        snprintf(prefix, sizeof(prefix), "%s L%s.%u u%u", b->traces.t[trace].id,
                 b->s->levels[tr->level].name, rep, u + 1);
        struct agentic_driver_cbs cbs = {.record = trace_record, .end = trace_end, .ctx = tu};
        unsigned round = first + (unsigned)(u / b->traces.n);
        if (agentic_driver_start(tr->ag, trace, now, round, prefix, &cbs, &tu->run) < 0)
            goto fail;
        tr->n_users++;
    }
    return;
fail:
    log_error("out of memory");
    stop_failed(b);
}

/* Starts one repetition of the count in progress: that many copies of
 * the user level at once, each its own conversations. */
static void cap_run(struct target_run *tr)
{
    struct bench *b = tr->b;
    unsigned users = b->s->levels[tr->level].users;
    unsigned rep = ++tr->reps[tr->level];
    if (tr->ag) {
        cap_run_traces(tr, users, rep);
        return;
    }
    tr->users = calloc(users, sizeof(*tr->users));
    if (!tr->users)
        goto fail;
    for (unsigned u = 0; u < users; u++) {
        tr->users[u] = level_run_new(b, tr, tr->level, rep, u + 1);
        if (!tr->users[u])
            goto fail;
        tr->n_users++;
    }
    tr->users_left = users;
    for (unsigned u = 0; u < users && !b->failed; u++)
        phase_start(tr->users[u]);
    return;
fail:
    log_error("out of memory");
    stop_failed(b);
}

static void cap_pause_cb(evutil_socket_t fd, short what, void *arg)
{
    cap_run(arg);
}

/* The next target to search (real servers one at a time), or the end. */
static void cap_next_target(struct bench *b)
{
    for (size_t i = 0; i < b->n_targets; i++) {
        struct target_run *tr = &b->targets[i];
        if (tr->searched)
            continue;
        if (!tr->started) {
            tr->started = true;
            cap_step(tr);
        }
        return;
    }
    event_base_loopexit(b->base, NULL);
}

/* Asks the target's search what to run next and runs it. */
static void cap_step(struct target_run *tr)
{
    struct bench *b = tr->b;
    unsigned users;
    size_t level;
    int r = capacity_next(tr->search, &users);
    if (r == 0) {
        tr->searched = true;
        cap_next_target(b);
        return;
    }
    if (r > 0)
        r = scenario_users_level(b->s, users, &level);
    if (r < 0) {
        if (r == -E2BIG)
            log_error("target %s: the capacity search tried more than %d counts; stopping",
                      tr->t->name, SCENARIO_MAX_LEVELS);
        else
            log_error("out of memory");
        stop_failed(b);
        return;
    }
    bool new_count = level != tr->level;
    tr->level = level;
    snprintf(b->last_step, sizeof(b->last_step), "%s: %u users, repetition %u", tr->t->name, users,
             tr->reps[level] + 1);
    if (new_count && b->s->pause) {
        struct timeval tv = {.tv_sec = (time_t)(b->s->pause / USEC_PER_SEC),
                             .tv_usec = (suseconds_t)(b->s->pause % USEC_PER_SEC)};
        evtimer_add(tr->pause, &tv);
        return;
    }
    cap_run(tr);
}

/* A user (level run or trace run) finished; when the repetition's last
 * one does, its values go to the search and the next step runs. */
static void cap_user_done(struct target_run *tr)
{
    struct bench *b = tr->b;
    if (--tr->users_left > 0)
        return;
    size_t level = tr->level;
    unsigned rep = tr->reps[level];
    clear_users(tr);
    if (b->failed || b->interrupted)
        return;
    struct bench_results_in in = {.s = b->s,
                                  .requests = b->requests,
                                  .n_requests = b->n_requests,
                                  .level_runs = b->level_runs,
                                  .n_level_runs = b->n_level_runs};
    double *values[CAPACITY_MAX_OBJECTIVES];
    size_t n[CAPACITY_MAX_OBJECTIVES];
    int r = bench_results_capacity_values(&in, tr->index, level, rep, &b->slo, values, n);
    if (r == 0) {
        r = capacity_add(tr->search, b->s->levels[level].users, (const double *const *)values, n);
        for (size_t o = 0; o < b->slo.n; o++)
            free(values[o]);
    }
    if (r < 0) {
        log_error(r == -E2BIG ? "the capacity search ran out of room" : "out of memory");
        stop_failed(b);
        return;
    }
    cap_step(tr);
}

/* --- warmup --- */

/* The measured part: the levels in order, or the capacity searches
 * (simulated targets side by side, real servers one after the other). */
static void begin(struct bench *b)
{
    b->level = 0;
    b->rep = 1;
    b->group = 0;
    if (!b->capacity) {
        start_group(b);
        return;
    }
    for (size_t i = 0; i < b->n_targets; i++) {
        if (b->all_sim || i == 0) {
            b->targets[i].started = true;
            cap_step(&b->targets[i]);
        }
    }
}

static void warmup_done(void *ctx, const struct loadgen_result *res)
{
    struct bench *b = ctx;
    if (--b->warmups_left == 0 && !b->interrupted)
        begin(b);
}

/* A short request that loads the model and warms its caches (built as
 * build_body builds, so any model name is escaped). NULL for want of
 * memory. */
static char *warmup_body(const struct scenario_target *t, unsigned w)
{
    char text[64];
    snprintf(text, sizeof(text), "warm up %u: reply OK", w);
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && t->model)
        ok = cJSON_AddStringToObject(root, "model", t->model) != NULL;
    cJSON *msgs = ok ? cJSON_AddArrayToObject(root, "messages") : NULL;
    ok = msgs && add_message(msgs, "user", text) &&
         cJSON_AddNumberToObject(root, "max_tokens", 4) != NULL &&
         cJSON_AddBoolToObject(root, "stream", true) != NULL;
    char *body = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return body;
}

static void start(struct bench *b)
{
    b->warmups_left = b->s->warmup * b->n_targets;
    if (b->warmups_left == 0) {
        begin(b);
        return;
    }
    for (size_t i = 0; i < b->n_targets; i++) {
        for (unsigned w = 0; w < b->s->warmup; w++) {
            char *body = warmup_body(b->targets[i].t, w);
            struct loadgen_req rq = {.method = "POST",
                                     .path = "/v1/chat/completions",
                                     .body = body,
                                     .body_len = body ? strlen(body) : 0,
                                     .thinking = -1};
            int r = body ? loadgen_send(b->targets[i].lg, &rq, warmup_done, b) : -ENOMEM;
            free(body);
            if (r < 0) {
                /* warmups_left would never reach 0: the run could not start. */
                log_error("out of memory");
                stop_failed(b);
                return;
            }
        }
    }
}

/* --- results --- */

/* The run as results: in memory for the report, and results.json. */
static int build_results(struct bench *b, usec_t end, struct results **ret)
{
    struct bench_results_in in = {
        .s = b->s,
        .requests = b->requests,
        .n_requests = b->n_requests,
        .level_runs = b->level_runs,
        .n_level_runs = b->n_level_runs,
        .n_targets = b->n_targets,
        .thinking_override = b->thinking_override,
        .start_wall = b->start_wall,
        .duration = clock_diff(end, b->start_mono),
        .interleaved = !b->all_sim,
        .complete = !b->interrupted && !b->failed && b->level >= b->s->n_levels,
    };
    struct capacity_answer answers[SCENARIO_MAX_TARGETS];
    size_t n_answers = 0;
    if (b->capacity) {
        /* The counts in order of users, as the tables show them. */
        size_t map[SCENARIO_MAX_LEVELS];
        scenario_sort_levels(b->s, map);
        for (size_t i = 0; i < b->n_requests; i++)
            b->requests[i].level = map[b->requests[i].level];
        for (size_t i = 0; i < b->n_level_runs; i++)
            b->level_runs[i].level = map[b->level_runs[i].level];
        in.capacity = true;
        in.slo = &b->slo;
        in.search = &b->search;
        in.complete = !b->interrupted && !b->failed;
        for (size_t t = 0; t < b->n_targets; t++) {
            struct target_run *tr = &b->targets[t];
            in.complete = in.complete && tr->searched;
            for (size_t l = 0; l < b->s->n_levels; l++)
                in.reps[t][map[l]] = tr->reps[l];
            if (capacity_answer(tr->search, &answers[t]) < 0)
                goto oom;
            in.answers[t] = &answers[n_answers++];
        }
    }
    char *p = in.command;
    size_t left = sizeof(in.command);
    int n = snprintf(p, left, "tokentap");
    for (int i = 0; i < b->argc && n > 0 && (size_t)n < left; i++) {
        p += n;
        left -= (size_t)n;
        n = snprintf(p, left, " %s", b->argv[i]);
    }
    for (size_t i = 0; i < b->n_targets; i++) {
        in.targets[i] = b->targets[i].t;
        in.props[i] = b->targets[i].props;
    }
    char path[600];
    snprintf(path, sizeof(path), "%s/results.json", b->out_dir);
    struct results *run = NULL;
    char *text = NULL;
    int r = bench_results_build(&in, &run);
    if (r == 0) {
        text = bench_results_json(&in, run);
        r = text ? files_write_atomic(path, text, strlen(text)) : -ENOMEM;
    }
    free(text);
    /* The answers' points are copied into run. */
    for (size_t t = 0; t < n_answers; t++)
        capacity_answer_finish(&answers[t]);
    if (r < 0) {
        log_error("cannot write %s: %s", path, strerror(-r));
        results_free(run);
        return r;
    }
    *ret = run;
    return 0;
oom:
    for (size_t t = 0; t < n_answers; t++)
        capacity_answer_finish(&answers[t]);
    log_error("out of memory");
    return -ENOMEM;
}

/* --- targets --- */

struct fetch {
    struct event_base *base; /* borrowed */
    int status;
    enum record_outcome outcome;
    char error[160];
    char *body;       /* owned */
};

static void fetch_done(void *ctx, const struct loadgen_result *res)
{
    struct fetch *f = ctx;
    f->status = res->rec->status;
    f->outcome = res->rec->outcome;
    snprintf(f->error, sizeof(f->error), "%s", res->rec->error);
    if (res->body)
        f->body = strdup(res->body);
    event_base_loopexit(f->base, NULL);
}

/* GET /props: proves the target answers and says what it runs. */
static int probe(struct bench *b, struct target_run *tr)
{
    struct fetch f = {.base = b->base};
    struct loadgen_req rq = {.method = "GET", .path = "/props", .thinking = -1};
    if (loadgen_send(tr->lg, &rq, fetch_done, &f) < 0)
        return -ENOMEM;
    event_base_dispatch(b->base);
    if (f.outcome == RECORD_UPSTREAM_ERROR || f.outcome == RECORD_TIMEOUT) {
        fprintf(stderr, "tokentap bench: target '%s' (%s) does not answer: %s\n", tr->t->name,
                tr->url, f.error[0] ? f.error : "no response");
        free(f.body);
        return -ECONNREFUSED;
    }
    if (f.status == 200 && f.body)
        tr->props = cJSON_Parse(f.body);
    free(f.body);
    return 0;
}

/* Trace users: their prompt text calibrated on the target's tokenizer
 * and template, as replay does. 0 or -1 (printed). */
static int setup_traces(struct bench *b, struct target_run *tr)
{
    const struct scenario_trace_user *u = &b->s->capacity.trace;
    struct agentic_driver_options o = {
        .base = b->base,
        .lg = tr->lg,
        .url = tr->url,
        .tls = b->tls,
        .traces = &b->traces,
        .timing = u->timing,
        .speed = u->speed,
        .isl_scale = u->isl_scale,
        .osl_scale = u->osl_scale,
        .max_isl = u->max_isl,
        .api = u->api == SCENARIO_API_OPENAI_CHAT ? AGENTIC_API_OPENAI : AGENTIC_API_ANTHROPIC,
        .model = tr->t->model,
    };
    struct config_err err;
    int r = agentic_driver_new(&o, &tr->ag);
    if (r == 0)
        r = agentic_driver_calibrate(tr->ag, &err);
    if (r == -EINVAL)
        fprintf(stderr, "tokentap bench: target '%s': %s\n", tr->t->name, err.msg);
    else if (r < 0)
        log_error("out of memory");
    else if (!b->quiet)
        fprintf(stderr, "tokentap bench: target '%s': trace prompt sizes: %s\n", tr->t->name,
                tr->ag->tokenizer_note);
    return r < 0 ? -1 : 0;
}

static int setup_target(struct bench *b, struct target_run *tr, const struct scenario_target *t,
                        size_t index)
{
    tr->b = b;
    tr->t = t;
    tr->index = index;
    tr->level = SIZE_MAX;
    if (b->capacity) {
        tr->pause = evtimer_new(b->base, cap_pause_cb, tr);
        if (!tr->pause || capacity_search_new(&b->slo, &b->search, &tr->search) < 0)
            return -ENOMEM;
    }
    if (!t->url) {
        struct sim_options so;
        sim_options_default(&so);
        so.listen = "127.0.0.1:0";
        sim_profile_apply(&t->sim, &so);
        so.responses_file = b->s->responses;
        so.quiet = true;
        if (t->model)
            so.model = t->model;
        if (sim_new(b->base, &so, &tr->sim) < 0)
            return -EINVAL;
        char addr[80];
        net_format(sim_address(tr->sim), addr, sizeof(addr));
        snprintf(tr->url, sizeof(tr->url), "http://%s", addr);
    } else {
        snprintf(tr->url, sizeof(tr->url), "%s", t->url);
        if (b->tls.insecure && strncmp(tr->url, "https:", 6) == 0)
            log_warn("target '%s' (%s): certificate checks are off (--insecure): anyone on the "
                     "way can read and change this traffic", t->name, tr->url);
    }
    /* The records' levels: the most requests in flight to this target
     * between a request's start and its first token, as serve counts them.
     * With --ui every target shares the dashboard's metrics (levels are
     * kept per upstream, i.e. per target, either way). */
    struct metrics_options mo;
    metrics_options_default(&mo);
    mo.recent = 0;
    if (!b->metrics && metrics_new(&mo, clock_now(), &tr->metrics) < 0)
        return -ENOMEM;
    struct loadgen_options lo;
    loadgen_options_default(&lo);
    lo.url = tr->url;
    lo.label = t->name;
    lo.metrics = b->metrics ? b->metrics : tr->metrics;
    lo.response_timeout = b->s->timeout;
    lo.stream_timeout = b->s->timeout;
    lo.pool.tls = b->tls;
    lo.live = b->ui ? ui_live(b->ui) : NULL;
    lo.keep_text = b->traces.n == 0; /* trace users' answers are not read */
    struct config_err err;
    if (loadgen_new(b->base, &lo, &tr->lg, &err) < 0) {
        fprintf(stderr, "tokentap bench: target '%s': %s\n", t->name, err.msg);
        return -EINVAL;
    }
    int r = probe(b, tr);
    return r == 0 && b->traces.n ? setup_traces(b, tr) : r;
}

/* --- progress and signals --- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    double elapsed = (double)clock_diff(clock_now(), b->start_mono) / 1e6;
    char line[256];
    snprintf(line, sizeof(line), "%s | %llu requests, %llu errors | %.1fs", b->last_step,
             (unsigned long long)b->done, (unsigned long long)b->errors, elapsed);
    if (b->tty)
        fprintf(stderr, "\r\033[K%s", line);
    else
        fprintf(stderr, "%s\n", line);
    struct timeval tv = {b->tty ? 0 : 10, b->tty ? 250000 : 0};
    evtimer_add(b->tick, &tv);
}

/* The first SIGINT/SIGTERM (the loop ends on a second one). */
static void on_stop(void *arg)
{
    struct bench *b = arg;
    b->interrupted = true;
    stop_traces(b);
    for (size_t i = 0; i < b->n_targets; i++)
        if (b->targets[i].lg)
            loadgen_abort_all(b->targets[i].lg);
    event_base_loopexit(b->base, NULL);
}

/* The output directory: --out, else results/<scenario>-<time> (a scenario
 * name is short: it fits). */
static void make_out_dir(struct bench *b, const char *given)
{
    if (given) {
        snprintf(b->out_dir, sizeof(b->out_dir), "%s", given);
    } else {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
        snprintf(b->out_dir, sizeof(b->out_dir), "results/%s-%s", b->s->name, stamp);
    }
}

/* A user that is a trace: its traces read, and the scenario's agents made
 * of their kinds of session ("main" first), whose cells hold the trace
 * users' requests. 0, -EINVAL or -ENOMEM. */
static int plan_trace_users(struct bench *b, struct config_err *err)
{
    struct config_err why;
    int r = agentic_driver_load(b->s->capacity.trace.path, &b->traces, &why);
    if (r < 0) {
        config_err_set(err, "%s: capacity.user.trace: %s", b->s->path, why.msg);
        return r;
    }
    const char *kinds[SCENARIO_MAX_AGENTS] = {"main"};
    size_t n = 1;
    for (size_t i = 0; i < b->traces.n; i++) {
        const struct agentic_trace *t = &b->traces.t[i];
        for (size_t k = 0; k < t->n_sessions && n < SCENARIO_MAX_AGENTS; k++) {
            size_t j = 0;
            while (j < n && strcmp(kinds[j], t->sessions[k].kind) != 0)
                j++;
            if (j == n)
                kinds[n++] = t->sessions[k].kind;
        }
    }
    return scenario_capacity_trace(b->s, kinds, n, err);
}

/* --capacity: the objective (--slo, else the scenario's), the search's
 * limits, and the level whose agents are one user (--levels, else the
 * scenario's capacity.user, else the first level). 0 or -EINVAL. */
static int plan_capacity(struct bench *b, const struct bench_settings *set, struct config_err *err)
{
    const struct scenario_capacity *c = &b->s->capacity;
    const char *slo = set->slo ? set->slo : c->slo;
    if (!slo)
        return config_err_set(err, "--capacity needs an objective: --slo \"ttft_p95<2s,errors<1%%\", "
                                   "or capacity: {slo: ...} in the scenario");
    int r = capacity_slo_parse(slo, &b->slo, err);
    if (r < 0)
        return r;
    b->capacity = true;
    b->search = (struct capacity_settings){
        .max_users = set->max_users ? set->max_users : c->max_users ? c->max_users : 64,
        .search_reps = set->repetitions ? set->repetitions : c->repetitions ? c->repetitions : 2,
        .max_reps = c->max_repetitions ? c->max_repetitions : 10,
    };
    if (b->search.max_reps < b->search.search_reps)
        b->search.max_reps = b->search.search_reps;
    if (b->search.max_reps > CAPACITY_MAX_REPS)
        return config_err_set(err, "--capacity: at most %d repetitions of a count", CAPACITY_MAX_REPS);
    b->search.boundary_reps = b->search.search_reps > 3 ? b->search.search_reps : 3;
    /* results.json's repetitions: of every count tried. */
    b->s->repetitions = b->search.search_reps;
    if (b->search.boundary_reps > b->search.max_reps)
        b->search.boundary_reps = b->search.max_reps;
    if (c->trace.path)
        return plan_trace_users(b, err);
    /* --levels has kept the one level asked for. */
    const char *user = set->levels ? b->s->levels[0].name : c->user;
    return scenario_capacity_begin(b->s, user, err);
}

/* The scenario with the command line's overrides, and the output
 * directory. 0, -EINVAL (a scenario or usage error) or -errno; printed. */
static int load_plan(struct bench *b, const struct bench_settings *set)
{
    struct config_err err;
    int r = scenario_load(set->scenario, &b->s, &err);
    if (r == 0 && set->capacity && set->levels && b->s->capacity.trace.path)
        r = config_err_set(&err, "--levels: the capacity user of %s is a trace, not a level",
                           b->s->path);
    if (r == 0) {
        struct scenario_overrides ov = {.repetitions = set->repetitions, .levels = set->levels,
                                        .targets = set->targets, .n_targets = set->n_targets,
                                        .only_targets = set->only, .max_tokens = set->max_tokens};
        r = scenario_apply_overrides(b->s, &ov, &err);
    }
    if (r == 0 && set->sweep)
        r = scenario_apply_sweep(b->s, set->sweep, &err);
    if (r == 0 && set->capacity)
        r = plan_capacity(b, set, &err);
    if (r == 0 && b->s->n_levels == 0 && !set->capacity)
        r = config_err_set(&err,
                           "%s has no levels: its capacity user is a trace, so it runs with "
                           "--capacity",
                           b->s->path);
    if (r < 0) {
        fprintf(stderr, "tokentap bench: %s\n", err.msg);
        return -EINVAL;
    }
    make_out_dir(b, set->out);
    /* 0755: results are for sharing (the files are 0644); traces, which
     * are not, go in 0700 directories. */
    r = files_make_dirs(b->out_dir, 0755);
    if (r < 0)
        fprintf(stderr, "tokentap bench: cannot create %s: %s\n", b->out_dir, strerror(-r));
    return r;
}

/* The loop, the targets (started or probed) and the timers. 0 or -1. */
static int prepare(struct bench *b)
{
    b->base = net_event_base_new(NET_LOOP_PRECISE);
    if (!b->base)
        return -1;
    if (b->ui_listen) {
        struct metrics_options mo;
        metrics_options_default(&mo);
        if (metrics_new(&mo, clock_now(), &b->metrics) < 0)
            return -1;
        if (ui_new(b->base, b->ui_listen, "tokentap bench", b->metrics, &b->ui) < 0) {
            fprintf(stderr, "tokentap bench: --ui %s: cannot listen there\n", b->ui_listen);
            return -1;
        }
        char url[128];
        ui_url(b->ui, url, sizeof(url));
        fprintf(stderr, "tokentap bench: dashboard at %s\n", url);
    }
    b->all_sim = true;
    for (size_t i = 0; i < b->s->n_targets; i++) {
        b->all_sim = b->all_sim && !b->s->targets[i].url;
        b->n_targets = i + 1;
        if (setup_target(b, &b->targets[i], &b->s->targets[i], i) < 0)
            return -1;
    }
    b->pause = evtimer_new(b->base, pause_cb, b);
    b->tick = evtimer_new(b->base, tick_cb, b);
    if (!b->pause || !b->tick || loop_init(&b->loop, b->base, on_stop, NULL, b) < 0)
        return -1;
    return 0;
}

/* Runs the plan until it is done or stopped. */
static void run_plan(struct bench *b)
{
    b->tty = isatty(STDERR_FILENO);
    if (!b->quiet && b->capacity) {
        char user[300];
        if (b->traces.n)
            snprintf(user, sizeof(user), "one run of %s", b->s->capacity.trace.path);
        else
            snprintf(user, sizeof(user), "level %s", b->s->user_level->name);
        fprintf(stderr,
                "tokentap bench: %s: capacity of %zu target%s at %s, a user being %s, "
                "up to %u users%s -> %s/\n",
                b->s->name, b->n_targets, b->n_targets == 1 ? "" : "s", b->slo.text, user,
                b->search.max_users,
                b->all_sim ? " (simulated targets side by side)" : " (one target after another)",
                b->out_dir);
    } else if (!b->quiet) {
        fprintf(stderr, "tokentap bench: %s: %zu targets x %zu levels x %u repetitions%s -> %s/\n",
                b->s->name, b->n_targets, b->s->n_levels, b->s->repetitions,
                b->all_sim ? " (simulated targets side by side)" : " (targets interleaved)", b->out_dir);
    }
    if (!b->quiet) {
        struct timeval tv = {0, 250000};
        evtimer_add(b->tick, &tv);
    }
    b->start_mono = clock_now();
    b->start_wall = clock_wall();
    b->level = 0;
    b->rep = 1;
    start(b);
    loop_run(&b->loop);
}

/* After the run: results.json, report.md (printed) and report.html; the
 * exit status. */
static int finish(struct bench *b)
{
    struct results *run = NULL;
    struct evbuffer *md = NULL;
    int r, rc = 1;
    usec_t end = clock_now();
    if (!b->quiet && b->tty)
        fprintf(stderr, "\n");
    if (b->interrupted)
        fprintf(stderr, "tokentap bench: interrupted: writing the results so far (marked incomplete)\n");
    clear_running(b);
    if (build_results(b, end, &run) < 0)
        goto fail;
    md = evbuffer_new();
    r = md ? report_write_all(run, b->out_dir, md) : -ENOMEM;
    if (r < 0) {
        fprintf(stderr, "tokentap bench: cannot write the report: %s\n", strerror(-r));
    } else {
        /* The seed-style tables, as report.md has them. */
        size_t len = evbuffer_get_length(md);
        const unsigned char *text = evbuffer_pullup(md, -1);
        if (text)
            fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    fprintf(stderr, "tokentap bench: wrote %s/results.json, report.md, report.html\n", b->out_dir);
    char why[160];
    rc = bench_exit_status(b->errors, b->checks_failed, b->allow_failures, why, sizeof(why));
    if (why[0])
        fprintf(stderr, "tokentap bench: %s\n", why);
    if (b->interrupted || b->failed)
        rc = b->interrupted ? 130 : 1;
fail:
    if (md)
        evbuffer_free(md);
    results_free(run);
    return rc;
}

static void bench_free(struct bench *b)
{
    for (size_t i = 0; i < b->n_targets; i++) {
        agentic_driver_free(b->targets[i].ag);
        loadgen_free(b->targets[i].lg);
        metrics_free(b->targets[i].metrics);
        sim_free(b->targets[i].sim);
        cJSON_Delete(b->targets[i].props);
        capacity_search_free(b->targets[i].search);
        if (b->targets[i].pause)
            event_free(b->targets[i].pause);
    }
    for (size_t i = 0; i < b->n_requests; i++)
        record_finish(&b->requests[i].rec);
    free(b->requests);
    free(b->level_runs);
    agentic_driver_traces_finish(&b->traces);
    if (b->pause)
        event_free(b->pause);
    if (b->tick)
        event_free(b->tick);
    ui_free(b->ui);
    metrics_free(b->metrics);
    loop_finish(&b->loop);
    if (b->base)
        event_base_free(b->base);
    scenario_free(b->s);
}

/* Loads the scenario, runs it, writes what was measured; the exit status. */
static int bench_run(const struct bench_settings *set)
{
    struct bench b;
    memset(&b, 0, sizeof(b));
    b.thinking_override = set->thinking;
    b.quiet = set->quiet;
    b.argc = set->argc;
    b.argv = set->argv;
    b.allow_failures = set->allow_failures;
    b.tls = set->tls;
    b.ui_listen = set->ui;
    int r, rc = 1;
    log_set_level(set->log_level);
    if (set->list)
        return bench_list_scenarios();
    if ((r = load_plan(&b, set)) < 0) {
        rc = r == -EINVAL ? 2 : 1;
        goto fail;
    }
    if (prepare(&b) < 0)
        goto fail;
    run_plan(&b);
    rc = finish(&b);
fail:
    bench_free(&b);
    return rc;
}

int bench_main(int argc, char **argv)
{
    struct bench_settings s;
    struct config_err err;
    int r = bench_settings_parse(&s, argc, argv, &err);
    if (r != 0)
        return cli_exit(&bench_command, r, &err);
    return bench_run(&s);
}
