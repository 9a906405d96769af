/* replay_agentic: `tokentap replay` of agentic traces. Reads one trace or
 * a directory of them (agentic.c), asks the target how its tokenizer and
 * chat template count (blocks.c), runs each trace's session graph
 * (agentic_plan.c) with --users of them at once, sends every request with
 * a prompt whose blocks repeat exactly where the recording's hash ids
 * repeat, and keeps what the server took from its cache next to what an
 * ideal cache would have (ideal.c). replay_agentic_summary.c reports. */
#include "load/replay_agentic_int.h"

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
#include "load/loadgen.h"
#include "rewrite/rewrite.h"
#include "tap/dialect.h"

/* One request in flight. */
struct sendctx {
    struct replay_run *run; /* borrowed */
    size_t inst, session, index;
};

/* --- reading the traces --- */

/* The first bytes of path into buf (NUL-terminated), or all of a file of
 * at most max bytes into a malloc'd *ret. 0 or -errno. */
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

int replay_agentic_detect(const char *path, bool *ret)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "tokentap replay: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    if (S_ISDIR(st.st_mode)) {
        *ret = true;
        return 0;
    }
    char *head;
    size_t len;
    int r = read_file(path, 65536, &head, &len);
    if (r < 0) {
        fprintf(stderr, "tokentap replay: %s: %s\n", path, strerror(-r));
        return r;
    }
    *ret = agentic_sniff(head, len);
    free(head);
    return 0;
}

/* Reads and parses one file into ag's traces; 1 when it is not an
 * agentic trace (a directory's other files), 0, or -errno (printed). */
static int load_one(struct agentic_run *ag, const char *path, bool must)
{
    char *text;
    size_t len;
    int r = read_file(path, AGENTIC_MAX_BYTES + 1, &text, &len);
    if (r < 0) {
        fprintf(stderr, "tokentap replay: %s: %s\n", path, strerror(-r));
        return r;
    }
    if (!must && !agentic_sniff(text, len)) {
        free(text);
        return 1;
    }
    struct agentic_trace *t = realloc(ag->traces, (ag->n_traces + 1) * sizeof(*t));
    if (!t) {
        free(text);
        return -ENOMEM;
    }
    ag->traces = t;
    struct config_err err;
    r = agentic_parse(path, text, len, &ag->traces[ag->n_traces], &err);
    free(text);
    if (r < 0) {
        fprintf(stderr, "tokentap replay: %s\n", err.msg);
        return r;
    }
    ag->n_traces++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int load_dir(struct agentic_run *ag, const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0) {
        fprintf(stderr, "tokentap replay: %s: %s\n", dir, strerror(errno));
        return -errno;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (rc == 0 && names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            int r = load_one(ag, path, false);
            if (r < 0)
                rc = r;
            else if (r == 1)
                ag->skipped_files++;
        }
        free(names[i]);
    }
    free(names);
    if (rc == 0 && ag->n_traces == 0) {
        fprintf(stderr, "tokentap replay: %s: no agentic traces in this directory\n", dir);
        rc = -EINVAL;
    }
    return rc;
}

int replay_agentic_load(struct replay_run *run)
{
    struct agentic_run *ag = calloc(1, sizeof(*ag));
    if (!ag)
        return -ENOMEM;
    run->ag = ag;
    blocks_vocab_builtin(&ag->vocab);
    snprintf(ag->tokenizer_note, sizeof(ag->tokenizer_note), "not asked");
    int r = ideal_new(&ag->ideal);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(run->o.trace, &st) == 0 && S_ISDIR(st.st_mode))
        r = load_dir(ag, run->o.trace);
    else
        r = load_one(ag, run->o.trace, true);
    if (r < 0)
        return r == -ENOMEM ? r : -EINVAL;
    /* What one pass over the traces sends: the planned total. */
    struct agentic_plan_options po = {.speed = 1, .isl_scale = run->o.agentic.isl_scale,
                                      .max_isl = run->o.agentic.max_isl};
    run->total = 0;
    for (size_t i = 0; i < ag->n_traces; i++) {
        struct agentic_plan p;
        if (agentic_plan_init(&p, &ag->traces[i], &po, 0) < 0)
            return -ENOMEM;
        run->total += p.left;
        agentic_plan_finish(&p);
    }
    if (run->o.agentic.recycle)
        run->total = run->o.requests ? run->o.requests : UINT64_MAX / 2;
    else if (run->o.requests && run->o.requests < run->total)
        run->total = run->o.requests;
    ag->users = run->o.agentic.users ? run->o.agentic.users : (unsigned)ag->n_traces;
    return 0;
}

/* --- the requests --- */

static const char *api_path(const struct replay_run *run)
{
    return run->o.agentic.api == REPLAY_API_OPENAI ? "/v1/chat/completions" : "/v1/messages";
}

/* The served model name of a recorded request. */
static const char *served_model(const struct replay_run *run, const struct agentic_request *r,
                                char *buf, size_t len)
{
    return agentic_model_map(run->o.agentic.model_map, r->model[0] ? r->model : "default", buf, len);
}

static uint32_t overhead_of(const struct agentic_run *ag, const char *model)
{
    for (size_t i = 0; i < ag->n_models; i++)
        if (strcmp(ag->models[i].name, model) == 0)
            return ag->models[i].overhead;
    return 0;
}

/* The body up to the prompt's text, and after it. Words are plain
 * letters and spaces: nothing to escape. */
static void body_head(const struct replay_run *run, struct evbuffer *b, const char *model,
                      uint64_t max_tokens, bool stream)
{
    EVBUFFER_ADD_LIT(b, "{\"model\":");
    jsonw_cstr(b, model);
    evbuffer_add_printf(b, ",\"max_tokens\":%llu,\"stream\":%s,", (unsigned long long)max_tokens,
                        stream ? "true" : "false");
    if (stream && run->o.agentic.api == REPLAY_API_OPENAI)
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
 * API path, with the rewrite rules applied as replay applies them to any
 * trace. 0 or -ENOMEM. */
static int prepare(struct replay_run *run, struct prepared *pr, const char *body, size_t len,
                   const char *model, const char *session)
{
    memset(pr, 0, sizeof(*pr));
    size_t nh = 0;
    const char *path = api_path(run);
    pr->hdrs[nh++] = (struct loadgen_header){"Content-Type", "application/json"};
    if (run->o.agentic.api == REPLAY_API_ANTHROPIC)
        pr->hdrs[nh++] = (struct loadgen_header){"anthropic-version", "2023-06-01"};
    if (session) /* serve in front names the session from it */
        pr->hdrs[nh++] = (struct loadgen_header){"X-Session-ID", session};
    pr->rq = (struct loadgen_req){.method = "POST", .path = path, .headers = pr->hdrs,
                                  .n_headers = nh, .body = body, .body_len = len,
                                  .session = session, .thinking = -1};
    snprintf(pr->model, sizeof(pr->model), "%s", model);
    pr->rq.model = pr->model;
    if (run->rules) {
        int r = replay_apply_rules(run, "POST", path, pr->hdrs, &nh, 8, body, len, &pr->rw);
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
static void prompt_text(const struct agentic_run *ag, const struct ag_instance *in,
                        const struct blocks_layout *l, size_t s, size_t k, struct evbuffer *b)
{
    const struct agentic_request *r = &ag->traces[in->trace].sessions[s].requests[k];
    uint64_t at = 0;
    for (size_t i = 0; i < r->n_hash; i++) {
        uint64_t next = blocks_before(l, i + 1);
        blocks_append(&ag->vocab, blocks_seed(in->salt, r->hash_ids[i]), next - at, b);
        at = next;
    }
    uint64_t total = blocks_total(l, r->in);
    if (total > at) {
        uint64_t seed = blocks_seed(in->salt ^ 0x7a11ull, ((uint64_t)in->serial << 40) ^ (s << 20) ^ k);
        blocks_append(&ag->vocab, seed, total - at, b);
    }
}

static void on_done(void *ctx, const struct loadgen_result *res);

static void session_name(const struct agentic_run *ag, const struct ag_instance *in, size_t s,
                         char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", in->prefix, ag->traces[in->trace].sessions[s].agent_id);
}

static int send_step(struct replay_run *run, size_t i, size_t s, size_t k, usec_t due)
{
    struct agentic_run *ag = run->ag;
    struct ag_instance *in = &ag->inst[i];
    const struct agentic_trace *t = &ag->traces[in->trace];
    const struct agentic_session *ts = &t->sessions[s];
    const struct agentic_request *r = &ts->requests[k];
    struct ag_result *res = &in->res[s][k];
    char model_buf[96], session[256], parent[256];
    const char *model = served_model(run, r, model_buf, sizeof(model_buf));
    struct blocks_layout l = {.block_size = t->block_size, .scale = run->o.agentic.isl_scale,
                              .overhead = overhead_of(ag, model)};
    res->isl = (uint64_t)llround(r->in * run->o.agentic.isl_scale);
    res->osl = (uint64_t)llround(r->out * run->o.agentic.osl_scale);
    if (res->osl == 0)
        res->osl = 1;
    size_t shared;
    if (ideal_add(ag->ideal, in->salt, r->hash_ids, r->n_hash, &shared) < 0)
        return -ENOMEM;
    res->ideal_blocks = shared;
    res->ideal_tokens = (uint64_t)llround((double)shared * t->block_size * run->o.agentic.isl_scale);

    struct evbuffer *b = evbuffer_new();
    struct sendctx *sc = calloc(1, sizeof(*sc));
    if (!b || !sc) {
        if (b)
            evbuffer_free(b);
        free(sc);
        return -ENOMEM;
    }
    *sc = (struct sendctx){run, i, s, k};
    body_head(run, b, model, res->osl, true);
    prompt_text(ag, in, &l, s, k, b);
    body_tail(b);
    size_t len = evbuffer_get_length(b);
    const char *body = (const char *)evbuffer_pullup(b, -1);
    session_name(ag, in, s, session, sizeof(session));
    if (ts->parent != SIZE_MAX)
        session_name(ag, in, ts->parent, parent, sizeof(parent));
    struct prepared pr;
    int rc = body ? prepare(run, &pr, body, len, model, session) : -ENOMEM;
    if (rc == 0) {
        pr.rq.intended = due;
        pr.rq.parent = ts->parent != SIZE_MAX ? parent : NULL;
        pr.rq.kind = ts->kind;
        rc = loadgen_send(run->lg, &pr.rq, on_done, sc);
        rewrite_result_finish(&pr.rw);
    }
    evbuffer_free(b);
    if (rc < 0) {
        free(sc);
        return rc;
    }
    agentic_plan_sent(&in->plan, s, k, clock_now());
    run->sent++;
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

static int fetch(struct replay_run *run, const struct loadgen_req *rq, struct loadgen_fetched *f)
{
    struct config_err err;
    int r = loadgen_fetch(run->base, run->target_url, &run->o.tls, rq, 60 * USEC_PER_SEC, f, &err);
    if (r == -EINVAL)
        fprintf(stderr, "tokentap replay: %s\n", err.msg);
    return r;
}

/* Which built-in words are one token on the target, checked on a sample. */
static int calibrate_words(struct replay_run *run)
{
    struct agentic_run *ag = run->ag;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    blocks_probe(b);
    struct loadgen_req rq = {.method = "POST", .path = "/tokenize", .thinking = -1};
    rq.body_len = evbuffer_get_length(b);
    rq.body = (const char *)evbuffer_pullup(b, -1);
    struct loadgen_fetched f;
    int r = fetch(run, &rq, &f);
    evbuffer_free(b);
    if (r < 0)
        return r;
    struct config_err err;
    if (f.status != 200 || !f.body) {
        snprintf(ag->tokenizer_note, sizeof(ag->tokenizer_note),
                 "the target has no /tokenize (status %d): one word taken as one token", f.status);
    } else if (blocks_vocab_from_tokens(&ag->vocab, f.body, f.body_len, &err) < 0) {
        snprintf(ag->tokenizer_note, sizeof(ag->tokenizer_note), "%.120s: one word taken as one token",
                 err.msg);
    }
    free(f.body);
    if (!ag->vocab.exact)
        return 0;
    /* The words in a row are as many tokens as words. */
    enum { SAMPLE = 512 };
    b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    EVBUFFER_ADD_LIT(b, "{\"content\":\"");
    blocks_append(&ag->vocab, 42, SAMPLE, b);
    EVBUFFER_ADD_LIT(b, "\"}");
    rq.body_len = evbuffer_get_length(b);
    rq.body = (const char *)evbuffer_pullup(b, -1);
    r = fetch(run, &rq, &f);
    evbuffer_free(b);
    if (r < 0)
        return r;
    long n = f.status == 200 && f.body ? blocks_count_tokens(f.body, f.body_len) : -1;
    free(f.body);
    if (n != SAMPLE) {
        ag->vocab.exact = false;
        snprintf(ag->tokenizer_note, sizeof(ag->tokenizer_note),
                 "%d words made %ld tokens on the target: sizes are an estimate", SAMPLE, n);
    } else {
        snprintf(ag->tokenizer_note, sizeof(ag->tokenizer_note),
                 "%u words of one token each, checked on the target's /tokenize", ag->vocab.n);
    }
    return 0;
}

/* The tokens the chat template adds around a prompt of each served model:
 * a one-token generation with WORDS words, its prompt tokens less WORDS. */
static int calibrate_template(struct replay_run *run, struct ag_model *m)
{
    enum { WORDS = 32 };
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    body_head(run, b, m->name, 1, false);
    blocks_append(&run->ag->vocab, 7, WORDS, b);
    body_tail(b);
    size_t len = evbuffer_get_length(b);
    const char *body = (const char *)evbuffer_pullup(b, -1);
    struct prepared pr;
    int r = body ? prepare(run, &pr, body, len, m->name, NULL) : -ENOMEM;
    struct loadgen_fetched f = {0};
    if (r == 0) {
        r = fetch(run, &pr.rq, &f);
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

int replay_agentic_calibrate(struct replay_run *run)
{
    struct agentic_run *ag = run->ag;
    int r = calibrate_words(run);
    for (size_t i = 0; r == 0 && i < ag->n_traces; i++) {
        const struct agentic_trace *t = &ag->traces[i];
        for (size_t s = 0; r == 0 && s < t->n_sessions; s++) {
            for (size_t k = 0; r == 0 && k < t->sessions[s].n; k++) {
                char buf[96];
                const char *name = served_model(run, &t->sessions[s].requests[k], buf, sizeof(buf));
                size_t j = 0;
                while (j < ag->n_models && strcmp(ag->models[j].name, name) != 0)
                    j++;
                if (j < ag->n_models || ag->n_models == AGENTIC_MAX_MODELS)
                    continue;
                struct ag_model *m = &ag->models[ag->n_models++];
                snprintf(m->name, sizeof(m->name), "%s", name);
                r = calibrate_template(run, m);
            }
        }
    }
    if (r == 0 && !run->o.quiet)
        fprintf(stderr, "tokentap replay: %zu agentic trace%s from %s to %s; prompt sizes: %s\n",
                ag->n_traces, ag->n_traces == 1 ? "" : "s", run->o.trace, run->target_url,
                ag->tokenizer_note);
    return r;
}

/* --- running --- */

static int start_instance(struct replay_run *run, size_t trace, usec_t base)
{
    struct agentic_run *ag = run->ag;
    if (ag->n_inst == ag->cap_inst) {
        size_t cap = ag->cap_inst ? ag->cap_inst * 2 : 8;
        struct ag_instance *p = realloc(ag->inst, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        ag->inst = p;
        ag->cap_inst = cap;
    }
    const struct agentic_trace *t = &ag->traces[trace];
    struct ag_instance *in = &ag->inst[ag->n_inst];
    memset(in, 0, sizeof(*in));
    in->trace = trace;
    in->serial = (unsigned)ag->n_inst + 1;
    in->round = ag->round;
    /* Local hash ids mean nothing outside their trace: each run of a trace
     * gets its own text. Global ones are shared by the traces of a round. */
    in->salt = t->global_ids ? ag->round : in->serial;
    if (ag->round)
        snprintf(in->prefix, sizeof(in->prefix), "%s~%u", t->id, ag->round + 1);
    else
        snprintf(in->prefix, sizeof(in->prefix), "%s", t->id);
    struct agentic_plan_options po = {
        .timing = run->o.agentic.timing,
        .speed = run->o.sched.speed,
        .max_gap = run->o.agentic.max_gap,
        .isl_scale = run->o.agentic.isl_scale,
        .max_isl = run->o.agentic.max_isl,
    };
    in->res = calloc(t->n_sessions, sizeof(*in->res));
    if (!in->res || agentic_plan_init(&in->plan, t, &po, base) < 0)
        goto fail;
    for (size_t s = 0; s < t->n_sessions; s++) {
        in->res[s] = calloc(t->sessions[s].n ? t->sessions[s].n : 1, sizeof(**in->res));
        if (!in->res[s])
            goto fail;
        for (size_t k = 0; k < t->sessions[s].n; k++)
            in->res[s][k] = (struct ag_result){.prompt_tokens = -1, .cached_tokens = -1,
                                               .ttft = -1, .slot_wait = -1, .prefill = -1,
                                               .outcome = RECORD_IN_PROGRESS};
    }
    ag->n_inst++;
    ag->dropped += in->plan.dropped;
    if (agentic_plan_finished(&in->plan))
        in->finished = true;
    else
        ag->active++;
    return 0;
fail:
    replay_agentic_instance_free(in);
    return -ENOMEM;
}

/* Keeps --users traces running: the next one (over again with
 * --recycle) when one ends; the first ones spread over --ramp. */
static int start_instances(struct replay_run *run, usec_t now)
{
    struct agentic_run *ag = run->ag;
    size_t empty = 0;
    while (ag->active < ag->users && !ag->closed) {
        if (ag->next_trace == ag->n_traces) {
            if (!run->o.agentic.recycle || empty >= ag->n_traces)
                break;
            ag->next_trace = 0;
            ag->round++;
        }
        usec_t base = now;
        if (ag->n_inst < ag->users && run->o.agentic.ramp)
            base = run->start + run->o.agentic.ramp * ag->n_inst / ag->users;
        int r = start_instance(run, ag->next_trace++, base);
        if (r < 0)
            return r;
        if (ag->inst[ag->n_inst - 1].finished)
            empty++; /* every request dropped: do not loop on it */
    }
    return 0;
}

void replay_agentic_dispatch(struct replay_run *run)
{
    struct agentic_run *ag = run->ag;
    usec_t now = clock_now(), wake = USEC_INFINITY;
    if (run->o.duration && now - run->start >= run->o.duration)
        ag->closed = true;
    int r = start_instances(run, now);
    for (size_t i = 0; r == 0 && i < ag->n_inst && !ag->closed; i++) {
        struct ag_instance *in = &ag->inst[i];
        while (!in->finished) {
            if (run->o.requests && run->sent >= run->o.requests) {
                ag->closed = true;
                break;
            }
            size_t s, k;
            usec_t due, w;
            if (!agentic_plan_next(&in->plan, now, &s, &k, &due, &w)) {
                if (w < wake)
                    wake = w;
                break;
            }
            if ((r = send_step(run, i, s, k, due)) < 0)
                break;
        }
    }
    if (r < 0) {
        replay_fail(run, r);
        return;
    }
    if (loadgen_in_flight(run->lg) == 0 && (ag->closed || ag->active == 0)) {
        event_base_loopexit(run->base, NULL);
        return;
    }
    if (run->o.duration && !ag->closed && run->start + run->o.duration < wake)
        wake = run->start + run->o.duration;
    if (wake != USEC_INFINITY && !ag->closed)
        replay_arm(run, wake);
}

static void on_done(void *ctx, const struct loadgen_result *lr)
{
    struct sendctx *sc = ctx;
    struct replay_run *run = sc->run;
    struct agentic_run *ag = run->ag;
    struct ag_instance *in = &ag->inst[sc->inst];
    const struct record *r = lr->rec;
    replay_count_done(run, r);
    struct ag_result *res = &in->res[sc->session][sc->index];
    res->outcome = r->outcome;
    res->prompt_tokens = r->prompt_tokens;
    res->cached_tokens = r->cached_tokens;
    res->output_tokens = record_output_tokens(r);
    res->ttft = r->outcome == RECORD_OK && r->t_first_token ? (int64_t)record_ttft(r) : -1;
    res->slot_wait = record_slot_wait(r);
    res->prefill = record_prefill(r);
    agentic_plan_done(&in->plan, sc->session, sc->index, r->t_end ? r->t_end : clock_now());
    if (agentic_plan_finished(&in->plan) && !in->finished) {
        in->finished = true;
        ag->active--;
    }
    free(sc);
    if (!run->stopping)
        replay_agentic_dispatch(run);
}

void replay_agentic_instance_free(struct ag_instance *in)
{
    if (in->res && in->plan.t)
        for (size_t s = 0; s < in->plan.t->n_sessions; s++)
            free(in->res[s]);
    free(in->res);
    agentic_plan_finish(&in->plan);
}

void replay_agentic_free(struct agentic_run *ag)
{
    if (!ag)
        return;
    for (size_t i = 0; i < ag->n_inst; i++)
        replay_agentic_instance_free(&ag->inst[i]);
    free(ag->inst);
    for (size_t i = 0; i < ag->n_traces; i++)
        agentic_trace_finish(&ag->traces[i]);
    free(ag->traces);
    ideal_free(ag->ideal);
    free(ag);
}
