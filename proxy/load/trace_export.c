/* trace_export: the `tokentap trace` command and its `export` run step:
 * recorded lines in, an agentic trace out (agentic_write.c). */
#include "load/trace_export.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/files.h"
#include "core/jsonw.h"
#include "load/agentic_write.h"
#include "load/loadgen.h"
#include "sim/sim_text.h"
#include "tap/dialect.h"
#include "tap/trace.h"
#include "wire/net.h"
#include "wire/url.h"

enum {
    OPT_FORMAT = 1,
    OPT_OUT,
    OPT_UPSTREAM,
    OPT_ID,
    OPT_BLOCK_SIZE,
    OPT_LOG_LEVEL,
};

static const struct cli_option export_options[] = {
    {"format", 0, "agentic", "the output format (default agentic: kv-cache-tester's, as replay reads it)", OPT_FORMAT},
    {"out", 'o', "FILE", "where to write the trace (required)", OPT_OUT},
    {"upstream", 0, "URL", "the llama-server (or sim) whose /tokenize cuts prompts into tokens (default: tokentap's own estimate)", OPT_UPSTREAM},
    {"id", 0, "ID", "the trace's id (default export)", OPT_ID},
    {"block-size", 0, "N", "tokens per hash id (default 64)", OPT_BLOCK_SIZE},
    CLI_OPTION_LOG_LEVEL(OPT_LOG_LEVEL),
    {NULL, 0, NULL, NULL, 0},
};

static const struct cli_command export_command = {
    .name = "trace export",
    .usage = "tokentap trace export TRACE_DIR --format agentic -o FILE [--upstream URL] [OPTIONS]",
    .summary =
        "Write the traffic 'tokentap serve --record' kept in TRACE_DIR (or one of its files) as\n"
        "an agentic trace that holds no content: per request its session, start, duration,\n"
        "think time, the server's prompt and output tokens, and hash ids for blocks of its\n"
        "prompt (equal ids: equal text and everything before it). 'tokentap replay FILE'\n"
        "sends it again, with made-up prompts that share what the recorded ones shared.",
    .options = export_options,
    .epilog = "See docs/trace-format.md for the format.\n",
};

static void settings_default(struct trace_export_options *o)
{
    memset(o, 0, sizeof(*o));
    o->block_size = 64;
    o->id = "export";
    o->log_level = LOG_LEVEL_INFO;
}

int trace_export_settings_parse(struct trace_export_options *o, int argc, char **argv,
                                struct config_err *err)
{
    struct cli_parser p;
    const char *v;
    int id, r = 0;
    unsigned bs;
    struct url_target t;
    struct config_err urlerr;
    settings_default(o);
    cli_init(&p, &export_command, argc, argv, err);
    while (r == 0 && (id = cli_next(&p, &v)) != CLI_END) {
        switch (id) {
        case CLI_HELP: return CLI_RUN_HELP;
        case CLI_ERROR: return -EINVAL;
        case CLI_POSITIONAL:
            if (o->input)
                return cli_usage(&p, "one trace directory only (got '%s' and '%s')", o->input, v);
            o->input = v;
            break;
        case OPT_FORMAT:
            if (strcmp(v, "agentic") != 0)
                return cli_expected(&p, "agentic", v);
            break;
        case OPT_OUT: o->out_path = v; break;
        case OPT_UPSTREAM:
            if (url_parse(v, &t, &urlerr) < 0)
                return cli_usage(&p, "--upstream: %s", urlerr.msg);
            o->upstream = v;
            break;
        case OPT_ID: o->id = v; break;
        case OPT_BLOCK_SIZE:
            if ((r = cli_unsigned(&p, v, 1, 65536, &bs)) == 0)
                o->block_size = bs;
            break;
        case OPT_LOG_LEVEL: r = cli_log_level(&p, v, &o->log_level); break;
        }
    }
    if (r < 0)
        return r;
    if (!o->input)
        return cli_usage(&p, "which recording? (tokentap trace export TRACE_DIR -o FILE)");
    if (!o->out_path)
        return cli_usage(&p, "where to? (-o FILE)");
    return 0;
}

/* --- reading the recording --- */

/* A recorded request, with what the writer needs: no text. */
struct rec {
    char *session;      /* owned, NULL none */
    char *model;        /* owned, NULL none */
    char *stop;         /* owned, NULL none */
    struct agentic_rec r;
    uint64_t *blocks;   /* owned: the prompt's block hashes */
};

struct export {
    struct trace_export_options o;
    struct rec *recs;   /* owned */
    size_t n, cap;
    unsigned files, skipped;
    struct event_base *base; /* owned, with --upstream */
};

/* The text a template makes a prompt from, in order: instructions,
 * system prompt, tools, then the messages (or prompt, or input): every
 * string with its key, without Anthropic's cache_control markers, which
 * move from turn to turn and reach no template. */
static void canon(struct evbuffer *b, const cJSON *v)
{
    if (cJSON_IsString(v)) {
        evbuffer_add(b, v->valuestring, strlen(v->valuestring));
        EVBUFFER_ADD_LIT(b, "\n");
    } else if (cJSON_IsNumber(v) || cJSON_IsBool(v)) {
        char *s = cJSON_PrintUnformatted(v);
        if (s)
            evbuffer_add_printf(b, "%s\n", s);
        free(s);
    } else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, v)
        {
            if (c->string && strcmp(c->string, "cache_control") == 0)
                continue;
            if (c->string)
                evbuffer_add_printf(b, "%s: ", c->string);
            canon(b, c);
        }
    }
}

static char *prompt_text(const char *body, size_t len)
{
    static const char *const parts[] = {"instructions", "system", "tools", "messages", "input", "prompt"};
    cJSON *j = cJSON_ParseWithLength(body, len);
    struct evbuffer *b = evbuffer_new();
    char *text = NULL;
    if (j && b) {
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
            canon(b, cJSON_GetObjectItemCaseSensitive(j, parts[i]));
        size_t n = evbuffer_get_length(b);
        text = malloc(n + 1);
        if (text) {
            evbuffer_remove(b, text, n);
            text[n] = '\0';
        }
    }
    if (b)
        evbuffer_free(b);
    cJSON_Delete(j);
    return text;
}

static long count_of(const char *json, const char *const *keys)
{
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    long n = -1;
    for (size_t i = 0; keys[i] && n < 0; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        if (cJSON_IsNumber(v) && v->valuedouble >= 0)
            n = (long)v->valuedouble;
    }
    cJSON_Delete(j);
    return n;
}

static double ms_of(const char *json, const char *key)
{
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    double ms = cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : 0;
    cJSON_Delete(j);
    return ms;
}

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

/* --- tokens --- */

struct pieces {
    const char *text;
    uint64_t *ids;
    size_t n;
};

static void on_piece(void *ctx, size_t off, size_t len)
{
    struct pieces *p = ctx;
    p->ids[p->n++] = sim_text_hash(p->text + off, len, 0);
}

/* Without an upstream: tokentap's own word pieces (the sim's tokenizer). */
static int tokenize_builtin(const char *text, uint64_t **ret, size_t *ret_n)
{
    size_t len = strlen(text), n = sim_text_split(text, len, NULL, NULL);
    struct pieces p = {.text = text, .ids = malloc((n ? n : 1) * sizeof(uint64_t))};
    if (!p.ids)
        return -ENOMEM;
    sim_text_split(text, len, on_piece, &p);
    *ret = p.ids;
    *ret_n = p.n;
    return 0;
}

static int tokenize_upstream(struct export *x, const char *text, uint64_t **ret, size_t *ret_n)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    EVBUFFER_ADD_LIT(b, "{\"content\":");
    jsonw_cstr(b, text);
    EVBUFFER_ADD_LIT(b, "}");
    struct loadgen_req rq = {.method = "POST", .path = "/tokenize", .thinking = -1};
    rq.body_len = evbuffer_get_length(b);
    rq.body = (const char *)evbuffer_pullup(b, -1);
    struct loadgen_fetched f;
    struct config_err err;
    int rc = rq.body ? loadgen_fetch(x->base, x->o.upstream, NULL, &rq, 60 * USEC_PER_SEC, &f, &err) : -ENOMEM;
    evbuffer_free(b);
    if (rc < 0)
        return rc;
    cJSON *j = f.body ? cJSON_ParseWithLength(f.body, f.body_len) : NULL;
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(j, "tokens");
    if (f.status != 200 || !cJSON_IsArray(tokens)) {
        fprintf(stderr, "tokentap trace export: %s/tokenize did not answer with tokens (status %d%s%s)\n",
                x->o.upstream, f.status, f.error[0] ? ": " : "", f.error);
        rc = -EIO;
    } else {
        size_t n = 0;
        uint64_t *ids = malloc(((size_t)cJSON_GetArraySize(tokens) + 1) * sizeof(uint64_t));
        const cJSON *t;
        cJSON_ArrayForEach(t, tokens)
        {
            if (ids)
                ids[n++] = cJSON_IsNumber(t) ? (uint64_t)t->valuedouble : 0;
        }
        rc = ids ? 0 : -ENOMEM;
        *ret = ids;
        *ret_n = n;
    }
    cJSON_Delete(j);
    free(f.body);
    return rc;
}

/* The prompt's block hashes into r; its text and tokens are dropped here. */
static int hash_prompt(struct export *x, struct rec *r, const char *body, size_t len)
{
    char *text = prompt_text(body, len);
    uint64_t *tokens = NULL;
    size_t n = 0;
    int rc = !text                ? -ENOMEM
             : x->o.upstream      ? tokenize_upstream(x, text, &tokens, &n)
                                  : tokenize_builtin(text, &tokens, &n);
    free(text);
    if (rc == 0) {
        r->blocks = malloc((n / x->o.block_size + 1) * sizeof(uint64_t));
        if (r->blocks)
            r->r.n_blocks = agentic_block_hashes(tokens, n, x->o.block_size, r->blocks);
        else
            rc = -ENOMEM;
    }
    free(tokens);
    return rc;
}

/* Keeps e if it is a generation that was answered, with the server's counts. */
static int keep(struct export *x, const struct trace_entry *e)
{
    static const char *const in_keys[] = {"prompt_tokens", NULL};
    static const char *const out_keys[] = {"completion_tokens", NULL};
    static const char *const prompt_n[] = {"prompt_n", NULL};
    static const char *const predicted_n[] = {"predicted_n", NULL};
    long in = count_of(e->usage, in_keys), out = count_of(e->usage, out_keys);
    if (in < 0)
        in = count_of(e->timings, prompt_n);
    if (out < 0)
        out = count_of(e->timings, predicted_n);
    if (e->source != TRACE_SOURCE_V1 || e->status < 200 || e->status > 299 || !e->body ||
        dialect_from_path(e->path, strlen(e->path)) == DIALECT_UNKNOWN || in < 0 || out < 0) {
        x->skipped++;
        return 0;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        struct rec *p = realloc(x->recs, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        x->recs = p;
        x->cap = cap;
    }
    struct rec *r = &x->recs[x->n];
    memset(r, 0, sizeof(*r));
    x->n++; /* from here on, export_free frees what it holds */
    int rc = hash_prompt(x, r, e->body, e->body_len);
    if (rc < 0)
        return rc;
    cJSON *body = cJSON_ParseWithLength(e->body, e->body_len);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    r->model = dup_or_null(cJSON_IsString(model) ? model->valuestring : NULL);
    r->r.stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"));
    cJSON_Delete(body);
    r->session = dup_or_null(e->session);
    r->stop = dup_or_null(e->finish_reason);
    r->r.start = e->t_mono_us;
    /* The end: the last event's arrival, else the server's own times. */
    if (e->n_events)
        r->r.end = e->t_mono_us + e->events[e->n_events - 1].offset_us;
    else if (e->timings)
        r->r.end = e->t_mono_us + (usec_t)((ms_of(e->timings, "prompt_ms") + ms_of(e->timings, "predicted_ms")) * 1000);
    r->r.in = (uint32_t)in;
    r->r.out = (uint32_t)out;
    return 0;
}

static int read_file(struct export *x, const char *path)
{
    struct trace_reader *rd = NULL;
    struct trace_error err;
    int r = trace_reader_open(path, &rd, &err);
    if (r < 0) {
        fprintf(stderr, "tokentap trace export: %s\n", err.msg);
        return r;
    }
    x->files++;
    int rc = 0;
    bool end = false;
    while (!end && rc == 0) {
        struct trace_entry e;
        trace_entry_init(&e);
        r = trace_reader_next(rd, &e, &err);
        if (r > 0) {
            rc = keep(x, &e); /* -errno: memory, or the upstream's tokenizer */
        } else if (r == 0) {
            end = true;
        } else if (r == -ENOMEM || r == -EIO) {
            fprintf(stderr, "tokentap trace export: %s\n", err.msg);
            rc = r;
        } else {
            fprintf(stderr, "tokentap trace export: %s (skipped)\n", err.msg);
            x->skipped++;
        }
        trace_entry_finish(&e);
    }
    trace_reader_close(rd);
    return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int read_input(struct export *x)
{
    struct stat st;
    if (stat(x->o.input, &st) < 0) {
        fprintf(stderr, "tokentap trace export: %s: %s\n", x->o.input, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode))
        return read_file(x, x->o.input);
    struct dirent **names = NULL;
    int n = scandir(x->o.input, &names, NULL, by_name), r = 0;
    if (n < 0) {
        fprintf(stderr, "tokentap trace export: %s: %s\n", x->o.input, strerror(errno));
        return -errno;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name);
        if (r == 0 && len > 6 && strcmp(names[i]->d_name + len - 6, ".jsonl") == 0) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", x->o.input, names[i]->d_name);
            r = read_file(x, path);
        }
        free(names[i]);
    }
    free(names);
    return r;
}

static void export_free(struct export *x)
{
    for (size_t i = 0; i < x->n; i++) {
        free(x->recs[i].session);
        free(x->recs[i].model);
        free(x->recs[i].stop);
        free(x->recs[i].blocks);
    }
    free(x->recs);
    if (x->base)
        event_base_free(x->base);
}

static int export_run(const struct trace_export_options *o)
{
    struct export x = {.o = *o};
    struct evbuffer *out = NULL;
    int r, rc = 1;
    log_set_level(o->log_level);
    if (o->upstream && !(x.base = net_event_base_new(NET_LOOP_PRECISE)))
        goto done;
    r = read_input(&x);
    if (r < 0) {
        rc = r == -ENOMEM || r == -EIO || r == -ECONNREFUSED ? 1 : 2;
        goto done;
    }
    if (x.n == 0) {
        fprintf(stderr, "tokentap trace export: %s: no answered generation requests with the server's "
                        "token counts (%u lines skipped)\n", o->input, x.skipped);
        rc = 2;
        goto done;
    }
    struct agentic_rec *recs = calloc(x.n, sizeof(*recs));
    out = evbuffer_new();
    if (!recs || !out) {
        free(recs);
        goto done;
    }
    size_t sessions = 0;
    for (size_t i = 0; i < x.n; i++) {
        struct rec *e = &x.recs[i];
        recs[i] = e->r;
        recs[i].session = e->session;
        recs[i].model = e->model;
        recs[i].stop = e->stop;
        recs[i].blocks = e->blocks;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(e->session ? e->session : "", x.recs[j].session ? x.recs[j].session : "") == 0;
        sessions += !seen;
    }
    r = agentic_write(recs, x.n, o->block_size, o->id, out);
    free(recs);
    size_t len = evbuffer_get_length(out);
    const char *text = r == 0 ? (const char *)evbuffer_pullup(out, -1) : NULL;
    if (!text)
        goto done;
    r = files_write_atomic(o->out_path, text, len);
    if (r < 0) {
        fprintf(stderr, "tokentap trace export: cannot write %s: %s\n", o->out_path, strerror(-r));
        goto done;
    }
    fprintf(stderr, "tokentap trace export: %zu requests in %zu sessions from %u files -> %s "
                    "(%u lines skipped; tokens from %s)\n",
            x.n, sessions, x.files, o->out_path, x.skipped, o->upstream ? o->upstream : "tokentap's estimate");
    rc = 0;
done:
    if (out)
        evbuffer_free(out);
    export_free(&x);
    return rc;
}

static int export_main(int argc, char **argv)
{
    struct trace_export_options o;
    struct config_err err;
    int r = trace_export_settings_parse(&o, argc, argv, &err);
    if (r != 0)
        return cli_exit(&export_command, r, &err);
    return export_run(&o);
}

int trace_main(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (sub && strcmp(sub, "export") == 0)
        return export_main(argc - 1, argv + 1);
    bool help = sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0);
    FILE *f = help ? stdout : stderr;
    if (sub && !help) {
        fprintf(f, "tokentap trace: unknown subcommand '%s'; try 'tokentap trace --help'\n", sub);
        return 2;
    }
    fprintf(f, "Usage: tokentap trace export TRACE_DIR --format agentic -o FILE [OPTIONS]\n\n"
               "Work with recorded traces. Subcommands:\n"
               "  export   write a recording as an agentic trace that holds no content\n\n"
               "Run 'tokentap trace export --help' for its options.\n");
    return help ? 0 : 2;
}
