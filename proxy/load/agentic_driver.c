/* agentic_driver: see agentic_driver.h. Reading traces, calibrating the
 * prompt text on the target, and the runs: each one's plan, its timer,
 * its requests' bodies and their results. */
#include "load/agentic_driver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "core/config.h"
#include "core/jsonw.h"
#include "load/ideal.h"
#include "rewrite/rewrite.h"
#include "tap/dialect.h"

/* One request in flight. */
struct sendctx {
    struct agentic_driver_run *run; /* borrowed */
    size_t session, index;
};

/* --- reading the traces --- */

/* The first bytes of path, at most max, into a malloc'd NUL-terminated
 * *ret. 0 or -errno. */
static int read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *buf = malloc(max + 1);
    size_t len = 0;
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0 && len < max) {
        ssize_t n = read(fd, buf + len, max - len);
        if (n < 0)
            rc = -errno;
        else if (n == 0)
            break;
        else
            len += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *ret = buf;
    *ret_len = len;
    return 0;
}

int agentic_driver_detect(const char *path, bool *ret, struct config_err *err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        config_err_set(err, "%s: %s", path, strerror(e));
        return -e;
    }
    if (S_ISDIR(st.st_mode)) {
        *ret = true;
        return 0;
    }
    char *head;
    size_t len;
    int r = read_file(path, 65536, &head, &len);
    if (r < 0) {
        config_err_set(err, "%s: %s", path, strerror(-r));
        return r;
    }
    *ret = agentic_sniff(head, len);
    free(head);
    return 0;
}

/* Reads and parses one file into ts; 1 when it is not an agentic trace
 * (a directory's other files), 0, or -EINVAL/-ENOMEM (err set). */
static int load_one(struct agentic_driver_traces *ts, const char *path, bool must,
                    struct config_err *err)
{
    char *text;
    size_t len;
    int r = read_file(path, AGENTIC_MAX_BYTES + 1, &text, &len);
    if (r < 0) {
        config_err_set(err, "%s: %s", path, strerror(-r));
        return r == -ENOMEM ? r : -EINVAL;
    }
    if (!must && !agentic_sniff(text, len)) {
        free(text);
        return 1;
    }
    struct agentic_trace *t = realloc(ts->t, (ts->n + 1) * sizeof(*t));
    if (!t) {
        free(text);
        config_err_set(err, "%s: out of memory", path);
        return -ENOMEM;
    }
    ts->t = t;
    r = agentic_parse(path, text, len, &ts->t[ts->n], err);
    free(text);
    if (r < 0)
        return r == -ENOMEM ? r : -EINVAL;
    ts->n++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int load_dir(struct agentic_driver_traces *ts, const char *dir, struct config_err *err)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0) {
        config_err_set(err, "%s: %s", dir, strerror(errno));
        return -EINVAL;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (rc == 0 && names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            int r = load_one(ts, path, false, err);
            if (r < 0)
                rc = r;
            else if (r == 1)
                ts->skipped_files++;
        }
        free(names[i]);
    }
    free(names);
    if (rc == 0 && ts->n == 0)
        rc = config_err_set(err, "%s: no agentic traces in this directory", dir);
    return rc;
}

int agentic_driver_load(const char *path, struct agentic_driver_traces *ret, struct config_err *err)
{
    struct stat st;
    memset(ret, 0, sizeof(*ret));
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return load_dir(ret, path, err);
    return load_one(ret, path, true, err);
}

void agentic_driver_traces_finish(struct agentic_driver_traces *ts)
{
    for (size_t i = 0; i < ts->n; i++)
        agentic_trace_finish(&ts->t[i]);
    free(ts->t);
    memset(ts, 0, sizeof(*ts));
}

/* --- the requests --- */

static const char *api_path(const struct agentic_driver *d)
{
    return d->o.api == AGENTIC_API_OPENAI ? "/v1/chat/completions" : "/v1/messages";
}

/* The served model name of a recorded request. */
static const char *served_model(const struct agentic_driver *d, const struct agentic_request *r,
                                char *buf, size_t len)
{
    if (d->o.model)
        return d->o.model;
    return agentic_model_map(d->o.model_map, r->model[0] ? r->model : "default", buf, len);
}

static uint32_t overhead_of(const struct agentic_driver *d, const char *model)
{
    for (size_t i = 0; i < d->n_models; i++)
        if (strcmp(d->models[i].name, model) == 0)
            return d->models[i].overhead;
    return 0;
}

/* The body up to the prompt's text, and after it. Words are plain
 * letters and spaces: nothing to escape. */
static void body_head(const struct agentic_driver *d, struct evbuffer *b, const char *model,
                      uint64_t max_tokens, bool stream)
{
    EVBUFFER_ADD_LIT(b, "{\"model\":");
    jsonw_cstr(b, model);
    evbuffer_add_printf(b, ",\"max_tokens\":%llu,\"stream\":%s,", (unsigned long long)max_tokens,
                        stream ? "true" : "false");
    if (stream && d->o.api == AGENTIC_API_OPENAI)
        EVBUFFER_ADD_LIT(b, "\"stream_options\":{\"include_usage\":true},");
    /* llama-server then writes the recorded number of tokens. */
    EVBUFFER_ADD_LIT(b, "\"ignore_eos\":true,\"messages\":[{\"role\":\"user\",\"content\":\"");
}

static void body_tail(struct evbuffer *b)
{
    EVBUFFER_ADD_LIT(b, "\"}]}");
}

/* A request ready for loadgen: headers, the rules' result, the body. */
struct prepared {
    struct loadgen_header hdrs[8];
    struct rewrite_result rw;
    struct loadgen_req rq;
    char model[96];
};

/* Fills pr->rq to send body (owned by the caller until the send) to the
 * API path, through the rules when there are any. 0 or -ENOMEM. */
static int prepare(struct agentic_driver *d, struct prepared *pr, const char *body, size_t len,
                   const char *model, const char *session)
{
    memset(pr, 0, sizeof(*pr));
    size_t nh = 0;
    const char *path = api_path(d);
    pr->hdrs[nh++] = (struct loadgen_header){"Content-Type", "application/json"};
    if (d->o.api == AGENTIC_API_ANTHROPIC)
        pr->hdrs[nh++] = (struct loadgen_header){"anthropic-version", "2023-06-01"};
    if (session) /* serve in front names the session from it */
        pr->hdrs[nh++] = (struct loadgen_header){"X-Session-ID", session};
    pr->rq = (struct loadgen_req){.method = "POST", .path = path, .headers = pr->hdrs,
                                  .n_headers = nh, .body = body, .body_len = len,
                                  .session = session, .thinking = -1};
    snprintf(pr->model, sizeof(pr->model), "%s", model);
    pr->rq.model = pr->model;
    if (d->o.rules) {
        int r = d->o.rules(d->o.rules_ctx, path, pr->hdrs, &nh, 8, body, len, &pr->rw);
        if (r < 0)
            return r;
        pr->rq.n_headers = nh;
        pr->rq.thinking = pr->rw.thinking;
        pr->rq.rules = pr->rw.rules;
        if (pr->rw.body) {
            pr->rq.body = pr->rw.body;
            pr->rq.body_len = pr->rw.body_len;
        }
    } else {
        pr->rq.thinking = rewrite_body_thinking(dialect_from_path(path, strlen(path)), body, len);
    }
    return 0;
}

/* The prompt's text: a block of words per hash id (its size from the
 * layout, its words from the id), then the request's own last tokens. */
static void prompt_text(const struct agentic_driver_run *run, const struct blocks_layout *l, size_t s,
                        size_t k, struct evbuffer *b)
{
    const struct agentic_driver *d = run->d;
    const struct agentic_request *r = &d->o.traces->t[run->trace].sessions[s].requests[k];
    uint64_t at = 0;
    for (size_t i = 0; i < r->n_hash; i++) {
        uint64_t next = blocks_before(l, i + 1);
        blocks_append(&d->vocab, blocks_seed(run->salt, r->hash_ids[i]), next - at, b);
        at = next;
    }
    uint64_t total = blocks_total(l, r->in);
    if (total > at) {
        uint64_t seed = blocks_seed(run->salt ^ 0x7a11ull, ((uint64_t)run->serial << 40) ^ (s << 20) ^ k);
        blocks_append(&d->vocab, seed, total - at, b);
    }
}

static void on_done(void *ctx, const struct loadgen_result *res);

static void session_name(const struct agentic_driver_run *run, size_t s, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", run->prefix, run->d->o.traces->t[run->trace].sessions[s].agent_id);
}

static int send_step(struct agentic_driver_run *run, size_t s, size_t k, usec_t due)
{
    struct agentic_driver *d = run->d;
    const struct agentic_trace *t = &d->o.traces->t[run->trace];
    const struct agentic_session *ts = &t->sessions[s];
    const struct agentic_request *r = &ts->requests[k];
    struct agentic_driver_result *res = &run->res[s][k];
    char model_buf[96], session[256], parent[256];
    const char *model = served_model(d, r, model_buf, sizeof(model_buf));
    struct blocks_layout l = {.block_size = t->block_size, .scale = d->o.isl_scale,
                              .overhead = overhead_of(d, model)};
    res->isl = (uint64_t)llround(r->in * d->o.isl_scale);
    res->osl = (uint64_t)llround(r->out * d->o.osl_scale);
    if (res->osl == 0)
        res->osl = 1;
    if (d->ideal) {
        size_t shared;
        if (ideal_add(d->ideal, run->salt, r->hash_ids, r->n_hash, &shared) < 0)
            return -ENOMEM;
        res->ideal_blocks = shared;
        res->ideal_tokens = (uint64_t)llround((double)shared * t->block_size * d->o.isl_scale);
    }

    struct evbuffer *b = evbuffer_new();
    struct sendctx *sc = calloc(1, sizeof(*sc));
    if (!b || !sc) {
        if (b)
            evbuffer_free(b);
        free(sc);
        return -ENOMEM;
    }
    *sc = (struct sendctx){run, s, k};
    body_head(d, b, model, res->osl, true);
    prompt_text(run, &l, s, k, b);
    body_tail(b);
    size_t len = evbuffer_get_length(b);
    const char *body = (const char *)evbuffer_pullup(b, -1);
    session_name(run, s, session, sizeof(session));
    if (ts->parent != SIZE_MAX)
        session_name(run, ts->parent, parent, sizeof(parent));
    struct prepared pr;
    int rc = body ? prepare(d, &pr, body, len, model, session) : -ENOMEM;
    if (rc == 0) {
        pr.rq.intended = due;
        pr.rq.parent = ts->parent != SIZE_MAX ? parent : NULL;
        pr.rq.kind = ts->kind;
        rc = loadgen_send(d->o.lg, &pr.rq, on_done, sc);
        rewrite_result_finish(&pr.rw);
    }
    evbuffer_free(b);
    if (rc < 0) {
        free(sc);
        return rc;
    }
    agentic_plan_sent(&run->plan, s, k, clock_now());
    run->in_flight++;
    d->sent++;
    return 0;
}

/* --- calibration: the target's tokenizer and template --- */

/* The prompt tokens a generation answer reports, -1 unknown. */
static long prompt_tokens_of(const char *json, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(json, len);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    long n = -1;
    const char *keys[] = {"prompt_tokens", "input_tokens", "cache_read_input_tokens",
                          "cache_creation_input_tokens"};
    for (size_t i = 0; i < 4 && cJSON_IsObject(u); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(u, keys[i]);
        if (cJSON_IsNumber(v) && (i != 1 || n < 0)) /* OpenAI's, or Anthropic's three */
            n = (n < 0 ? 0 : n) + (long)v->valuedouble;
        if (i == 0 && n >= 0)
            break;
    }
    cJSON_Delete(j);
    return n;
}

static int fetch(struct agentic_driver *d, const struct loadgen_req *rq, struct loadgen_fetched *f,
                 struct config_err *err)
{
    return loadgen_fetch(d->o.base, d->o.url, &d->o.tls, rq, 60 * USEC_PER_SEC, f, err);
}

/* Which built-in words are one token on the target, checked on a sample. */
static int calibrate_words(struct agentic_driver *d, struct config_err *err)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    blocks_probe(b);
    struct loadgen_req rq = {.method = "POST", .path = "/tokenize", .thinking = -1};
    rq.body_len = evbuffer_get_length(b);
    rq.body = (const char *)evbuffer_pullup(b, -1);
    struct loadgen_fetched f;
    int r = fetch(d, &rq, &f, err);
    evbuffer_free(b);
    if (r < 0)
        return r;
    struct config_err why;
    if (f.status != 200 || !f.body) {
        snprintf(d->tokenizer_note, sizeof(d->tokenizer_note),
                 "the target has no /tokenize (status %d): one word taken as one token", f.status);
    } else if (blocks_vocab_from_tokens(&d->vocab, f.body, f.body_len, &why) < 0) {
        snprintf(d->tokenizer_note, sizeof(d->tokenizer_note), "%.120s: one word taken as one token",
                 why.msg);
    }
    free(f.body);
    if (!d->vocab.exact)
        return 0;
    /* The words in a row are as many tokens as words. */
    enum { SAMPLE = 512 };
    b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    EVBUFFER_ADD_LIT(b, "{\"content\":\"");
    blocks_append(&d->vocab, 42, SAMPLE, b);
    EVBUFFER_ADD_LIT(b, "\"}");
    rq.body_len = evbuffer_get_length(b);
    rq.body = (const char *)evbuffer_pullup(b, -1);
    r = fetch(d, &rq, &f, err);
    evbuffer_free(b);
    if (r < 0)
        return r;
    long n = f.status == 200 && f.body ? blocks_count_tokens(f.body, f.body_len) : -1;
    free(f.body);
    if (n != SAMPLE) {
        d->vocab.exact = false;
        snprintf(d->tokenizer_note, sizeof(d->tokenizer_note),
                 "%d words made %ld tokens on the target: sizes are an estimate", SAMPLE, n);
    } else {
        snprintf(d->tokenizer_note, sizeof(d->tokenizer_note),
                 "%u words of one token each, checked on the target's /tokenize", d->vocab.n);
    }
    return 0;
}

/* The tokens the chat template adds around a prompt of each served model:
 * a one-token generation with WORDS words, its prompt tokens less WORDS. */
static int calibrate_template(struct agentic_driver *d, struct agentic_driver_model *m,
                              struct config_err *err)
{
    enum { WORDS = 32 };
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    body_head(d, b, m->name, 1, false);
    blocks_append(&d->vocab, 7, WORDS, b);
    body_tail(b);
    size_t len = evbuffer_get_length(b);
    const char *body = (const char *)evbuffer_pullup(b, -1);
    struct prepared pr;
    int r = body ? prepare(d, &pr, body, len, m->name, NULL) : -ENOMEM;
    struct loadgen_fetched f = {0};
    if (r == 0) {
        r = fetch(d, &pr.rq, &f, err);
        rewrite_result_finish(&pr.rw);
    }
    evbuffer_free(b);
    if (r < 0)
        return r;
    long n = f.status == 200 && f.body ? prompt_tokens_of(f.body, f.body_len) : -1;
    free(f.body);
    m->measured = n >= 0;
    m->overhead = n > WORDS ? (uint32_t)(n - WORDS) : 0;
    return 0;
}

int agentic_driver_calibrate(struct agentic_driver *d, struct config_err *err)
{
    const struct agentic_driver_traces *ts = d->o.traces;
    int r = calibrate_words(d, err);
    for (size_t i = 0; r == 0 && i < ts->n; i++) {
        const struct agentic_trace *t = &ts->t[i];
        for (size_t s = 0; r == 0 && s < t->n_sessions; s++) {
            for (size_t k = 0; r == 0 && k < t->sessions[s].n; k++) {
                char buf[96];
                const char *name = served_model(d, &t->sessions[s].requests[k], buf, sizeof(buf));
                size_t j = 0;
                while (j < d->n_models && strcmp(d->models[j].name, name) != 0)
                    j++;
                if (j < d->n_models || d->n_models == AGENTIC_DRIVER_MAX_MODELS)
                    continue;
                struct agentic_driver_model *m = &d->models[d->n_models++];
                snprintf(m->name, sizeof(m->name), "%s", name);
                r = calibrate_template(d, m, err);
            }
        }
    }
    return r;
}

/* --- runs --- */

/* Wakes the run at `at` (monotonic; now when it has passed). */
static void arm(struct agentic_driver_run *run, usec_t at)
{
    usec_t now = clock_now();
    usec_t wait = at > now ? at - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(wait / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(wait % USEC_PER_SEC)};
    evtimer_add(run->timer, &tv);
}

static void unlink_run(struct agentic_driver_run *run)
{
    if (run->prev)
        run->prev->next = run->next;
    else if (run->d->live == run)
        run->d->live = run->next;
    if (run->next)
        run->next->prev = run->prev;
    run->prev = run->next = NULL;
}

/* Whether the run is over: its plan done, or nothing more may be sent
 * and nothing is in flight. */
static bool over(const struct agentic_driver_run *run)
{
    return agentic_plan_finished(&run->plan) ||
           ((run->d->stopped || run->err) && run->in_flight == 0);
}

/* Sends what is due; arms the timer for what comes next, or for the end. */
static void dispatch(struct agentic_driver_run *run)
{
    struct agentic_driver *d = run->d;
    usec_t now = clock_now(), wake = USEC_INFINITY;
    while (!d->stopped && !run->err) {
        if (d->o.max_requests && d->sent >= d->o.max_requests) {
            agentic_driver_stop(d);
            break;
        }
        size_t s, k;
        usec_t due, w;
        if (!agentic_plan_next(&run->plan, now, &s, &k, &due, &w)) {
            wake = w;
            break;
        }
        int r = send_step(run, s, k, due);
        if (r < 0)
            run->err = r;
    }
    if (over(run))
        arm(run, now);
    else if (wake != USEC_INFINITY && !d->stopped && !run->err)
        arm(run, wake);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct agentic_driver_run *run = arg;
    if (run->ended)
        return;
    if (!over(run)) {
        dispatch(run);
        return;
    }
    run->ended = true;
    unlink_run(run);
    /* The owner may free the run in its callback: nothing after it. */
    run->cbs.end(run->cbs.ctx, run, run->err);
}

static void on_done(void *ctx, const struct loadgen_result *lr)
{
    struct sendctx *sc = ctx;
    struct agentic_driver_run *run = sc->run;
    size_t s = sc->session, k = sc->index;
    free(sc);
    const struct record *r = lr->rec;
    struct agentic_driver_result *res = &run->res[s][k];
    res->outcome = r->outcome;
    res->prompt_tokens = r->prompt_tokens;
    res->cached_tokens = r->cached_tokens;
    res->output_tokens = record_output_tokens(r);
    res->ttft = r->outcome == RECORD_OK && r->t_first_token ? (int64_t)record_ttft(r) : -1;
    res->slot_wait = record_slot_wait(r);
    res->prefill = record_prefill(r);
    agentic_plan_done(&run->plan, s, k, r->t_end ? r->t_end : clock_now());
    run->in_flight--;
    run->cbs.record(run->cbs.ctx, run, s, k, lr);
    dispatch(run);
}

int agentic_driver_start(struct agentic_driver *d, size_t trace, usec_t base, unsigned round,
                         const char *prefix, const struct agentic_driver_cbs *cbs,
                         struct agentic_driver_run **ret)
{
    const struct agentic_trace *t = &d->o.traces->t[trace];
    struct agentic_driver_run *run = calloc(1, sizeof(*run));
    if (!run)
        return -ENOMEM;
    run->d = d;
    run->trace = trace;
    run->serial = d->runs + 1;
    /* Local hash ids mean nothing outside their trace: each run of a trace
     * gets its own text. Global ones are shared by the runs of a round. */
    run->salt = t->global_ids ? round : run->serial;
    snprintf(run->prefix, sizeof(run->prefix), "%s", prefix);
    run->cbs = *cbs;
    struct agentic_plan_options po = {
        .timing = d->o.timing,
        .speed = d->o.speed,
        .max_gap = d->o.max_gap,
        .isl_scale = d->o.isl_scale,
        .max_isl = d->o.max_isl,
    };
    run->timer = evtimer_new(d->o.base, timer_cb, run);
    run->res = calloc(t->n_sessions, sizeof(*run->res));
    if (!run->timer || !run->res || agentic_plan_init(&run->plan, t, &po, base) < 0)
        goto fail;
    for (size_t s = 0; s < t->n_sessions; s++) {
        run->res[s] = calloc(t->sessions[s].n ? t->sessions[s].n : 1, sizeof(**run->res));
        if (!run->res[s])
            goto fail;
        for (size_t k = 0; k < t->sessions[s].n; k++)
            run->res[s][k] = (struct agentic_driver_result){
                .prompt_tokens = -1, .cached_tokens = -1, .ttft = -1, .slot_wait = -1,
                .prefill = -1, .outcome = RECORD_IN_PROGRESS};
    }
    d->runs++;
    d->dropped += run->plan.dropped;
    run->next = d->live;
    if (d->live)
        d->live->prev = run;
    d->live = run;
    /* Its first requests go from the loop, as every later one does. */
    arm(run, base);
    *ret = run;
    return 0;
fail:
    agentic_driver_run_free(run);
    return -ENOMEM;
}

void agentic_driver_stop(struct agentic_driver *d)
{
    if (d->stopped)
        return;
    d->stopped = true;
    /* A run waiting for its next due time ends now, if nothing is in flight. */
    for (struct agentic_driver_run *run = d->live; run; run = run->next)
        if (over(run))
            arm(run, 0);
}

void agentic_driver_run_free(struct agentic_driver_run *run)
{
    if (!run)
        return;
    if (!run->ended)
        unlink_run(run);
    if (run->res && run->plan.t)
        for (size_t s = 0; s < run->plan.t->n_sessions; s++)
            free(run->res[s]);
    free(run->res);
    agentic_plan_finish(&run->plan);
    if (run->timer)
        event_free(run->timer);
    free(run);
}

int agentic_driver_new(const struct agentic_driver_options *o, struct agentic_driver **ret)
{
    struct agentic_driver *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->o = *o;
    blocks_vocab_builtin(&d->vocab);
    snprintf(d->tokenizer_note, sizeof(d->tokenizer_note), "not asked");
    if (o->ideal && ideal_new(&d->ideal) < 0) {
        free(d);
        return -ENOMEM;
    }
    *ret = d;
    return 0;
}

void agentic_driver_free(struct agentic_driver *d)
{
    if (!d)
        return;
    ideal_free(d->ideal);
    free(d);
}
