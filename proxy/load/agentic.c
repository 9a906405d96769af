#include "load/agentic.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"

/* What a parse needs on its way down: the file's name for messages, the
 * trace being built, and the path of the entry being read
 * ("requests[3].requests[2]"). */
struct parser {
    const char *name;
    struct agentic_trace *t;
    struct config_err *err;
    char path[256];
};

/* Whether text[k] starts the key `key` of an object: a quoted name
 * after '{' or ',' and before ':' (so not the same words inside a string,
 * whose quotes are escaped). */
static bool key_at(const char *text, size_t n, size_t k, const char *key)
{
    size_t len = strlen(key);
    if (k + len + 2 > n || text[k] != '"' || memcmp(text + k + 1, key, len) != 0 || text[k + 1 + len] != '"')
        return false;
    size_t before = k, after = k + len + 2;
    while (before > 0 && strchr(" \t\r\n", text[before - 1]))
        before--;
    while (after < n && strchr(" \t\r\n", text[after]))
        after++;
    return before > 0 && (text[before - 1] == '{' || text[before - 1] == ',') && after < n &&
           text[after] == ':';
}

bool agentic_sniff(const char *text, size_t len)
{
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        i = 3;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    if (i >= len || text[i] != '{')
        return false;
    /* A JSONL trace's first line is one object too: an agentic trace is
     * the object with the keys "requests" and "block_size". They come
     * early in the real files; look at the first 64 KiB. */
    size_t n = len - i < 65536 ? len - i : 65536;
    const char *p = text + i;
    bool requests = false, blocks = false, in_string = false, escaped = false;
    int depth = 0;
    for (size_t k = 0; k < n; k++) {
        char c = p[k];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
            /* Keys of the top object only: a recorded body may hold the
             * same names deeper (a tool's schema, say). */
            if (depth == 1) {
                requests = requests || key_at(p, n, k, "requests");
                blocks = blocks || key_at(p, n, k, "block_size");
            }
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return requests && blocks;
}

static int bad(struct parser *p, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(struct parser *p, const char *key, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return config_err_set(p->err, "%s: %s%s%s: %s", p->name, p->path, p->path[0] && key ? "." : "",
                          key ? key : "", what);
}

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* An optional number of seconds, >= 0, as µs; -1 when absent. */
static int seconds(struct parser *p, const cJSON *o, const char *k, bool required, int64_t *ret)
{
    const cJSON *v = get(o, k);
    if (!v && !required) {
        *ret = -1;
        return 0;
    }
    if (!v)
        return bad(p, k, "missing (a number of seconds)");
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 1e9)
        return bad(p, k, "must be a number of seconds from 0 to 1e9");
    *ret = (int64_t)llround(v->valuedouble * 1e6);
    return 0;
}

static int count(struct parser *p, const cJSON *o, const char *k, uint32_t *ret)
{
    const cJSON *v = get(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > AGENTIC_MAX_TOKENS ||
        v->valuedouble != floor(v->valuedouble))
        return bad(p, k, "%s an integer from 0 to %u", v ? "must be" : "missing:", AGENTIC_MAX_TOKENS);
    *ret = (uint32_t)v->valuedouble;
    return 0;
}

static void text(const cJSON *o, const char *k, char *buf, size_t len, const char *dflt)
{
    const cJSON *v = get(o, k);
    snprintf(buf, len, "%s", cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : dflt);
}

static int add_session(struct agentic_trace *t, size_t *ret)
{
    struct agentic_session *s = realloc(t->sessions, (t->n_sessions + 1) * sizeof(*s));
    if (!s)
        return -ENOMEM;
    t->sessions = s;
    memset(&s[t->n_sessions], 0, sizeof(*s));
    *ret = t->n_sessions++;
    return 0;
}

static int read_hash_ids(struct parser *p, const cJSON *o, struct agentic_request *r)
{
    const cJSON *ids = get(o, "hash_ids");
    if (!ids)
        return 0;
    if (!cJSON_IsArray(ids))
        return bad(p, "hash_ids", "must be an array of integers");
    size_t n = (size_t)cJSON_GetArraySize(ids);
    /* One id per full block; a partial last block may have one too. */
    if (n > r->in / p->t->block_size + 1)
        return bad(p, "hash_ids", "%zu ids for %u input tokens: more than one per %u-token block", n,
                   r->in, p->t->block_size);
    r->hash_ids = malloc((n ? n : 1) * sizeof(*r->hash_ids));
    if (!r->hash_ids)
        return -ENOMEM;
    const cJSON *v;
    cJSON_ArrayForEach(v, ids)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
            v->valuedouble != floor(v->valuedouble))
            return bad(p, "hash_ids", "item %zu must be an integer from 0 to 2^53", r->n_hash);
        r->hash_ids[r->n_hash++] = (uint64_t)v->valuedouble;
    }
    return 0;
}

static int read_request(struct parser *p, const cJSON *o, struct agentic_request *r)
{
    int64_t t;
    int rc = seconds(p, o, "t", true, &t);
    if (rc == 0)
        rc = seconds(p, o, "think_time", false, &r->think_us);
    if (rc == 0)
        rc = seconds(p, o, "api_time", false, &r->api_us);
    if (rc == 0)
        rc = count(p, o, "in", &r->in);
    if (rc == 0)
        rc = count(p, o, "out", &r->out);
    if (rc == 0)
        rc = read_hash_ids(p, o, r);
    if (rc < 0)
        return rc;
    r->t = (usec_t)t;
    const cJSON *type = get(o, "type");
    r->stream = cJSON_IsString(type) && strcmp(type->valuestring, "s") == 0;
    text(o, "model", r->model, sizeof(r->model), "");
    return 0;
}

static int read_session(struct parser *p, const cJSON *requests, size_t si, int depth);

/* A "subagent" entry of session si, after its request `after`. */
static int read_subagent(struct parser *p, const cJSON *o, size_t si, size_t after, int depth)
{
    if (depth >= AGENTIC_MAX_DEPTH)
        return bad(p, NULL, "sub-agents nested deeper than %d", AGENTIC_MAX_DEPTH);
    int64_t t, duration = 0;
    int rc = seconds(p, o, "t", true, &t);
    if (rc == 0) {
        const cJSON *d = get(o, "duration_ms");
        duration = cJSON_IsNumber(d) && d->valuedouble >= 0 && d->valuedouble < 1e12
                       ? (int64_t)llround(d->valuedouble * 1000)
                       : 0;
    }
    const cJSON *reqs = get(o, "requests");
    if (rc == 0 && !cJSON_IsArray(reqs))
        rc = bad(p, "requests", "a subagent entry needs a \"requests\" array");
    if (rc < 0)
        return rc;
    size_t ci;
    if (add_session(p->t, &ci) < 0)
        return -ENOMEM;
    struct agentic_session *parent = &p->t->sessions[si];
    size_t *ch = realloc(parent->children, (parent->n_children + 1) * sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    parent->children = ch;
    ch[parent->n_children++] = ci;
    struct agentic_session *c = &p->t->sessions[ci];
    c->parent = si;
    c->after = after;
    c->joined_by = SIZE_MAX;
    c->depth = depth + 1;
    c->duration = (usec_t)duration;
    /* The entry is written when the sub-agent returns: its t is the end
     * (in the real traces t - duration_ms falls just after the request
     * that spawned it ended, the same for agents started together). */
    c->spawn = duration > 0 && duration <= t ? (usec_t)(t - duration) : (usec_t)t;
    c->at = parent->at + c->spawn;
    text(o, "subagent_type", c->kind, sizeof(c->kind), "subagent");
    text(o, "agent_id", c->agent_id, sizeof(c->agent_id), "");
    if (!c->agent_id[0])
        snprintf(c->agent_id, sizeof(c->agent_id), "agent_%03zu", ci);
    size_t plen = strlen(p->path);
    snprintf(p->path + plen, sizeof(p->path) - plen, ".requests");
    rc = read_session(p, reqs, ci, depth + 1);
    p->path[plen] = '\0';
    return rc;
}

static int read_session(struct parser *p, const cJSON *requests, size_t si, int depth)
{
    size_t n = (size_t)cJSON_GetArraySize(requests), k = 0, plen = strlen(p->path);
    struct agentic_request *reqs = calloc(n ? n : 1, sizeof(*reqs));
    if (!reqs)
        return -ENOMEM;
    p->t->sessions[si].requests = reqs;
    size_t joined = 0; /* children before this index are joined */
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const cJSON *o = cJSON_GetArrayItem(requests, (int)i);
        snprintf(p->path + plen, sizeof(p->path) - plen, "[%zu]", i);
        if (!cJSON_IsObject(o)) {
            rc = bad(p, NULL, "must be an object");
            break;
        }
        const cJSON *type = get(o, "type");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "subagent") == 0) {
            rc = read_subagent(p, o, si, k ? k - 1 : SIZE_MAX, depth);
            continue;
        }
        if (p->t->n_requests >= AGENTIC_MAX_REQUESTS) {
            rc = bad(p, NULL, "more than %u requests", AGENTIC_MAX_REQUESTS);
            break;
        }
        struct agentic_session *s = &p->t->sessions[si]; /* read_subagent may move it */
        struct agentic_request *r = &s->requests[k];
        rc = read_request(p, o, r);
        if (rc < 0) {
            free(r->hash_ids); /* not counted in s->n yet: finish would miss it */
            r->hash_ids = NULL;
            break;
        }
        r->at = s->at + r->t;
        r->join_from = joined;
        r->join_to = s->n_children;
        for (size_t c = joined; c < s->n_children; c++)
            p->t->sessions[s->children[c]].joined_by = k;
        joined = s->n_children;
        s->n = ++k;
        p->t->n_requests++;
    }
    p->path[plen] = '\0';
    return rc;
}

int agentic_parse(const char *name, const char *text_, size_t len, struct agentic_trace *ret,
                  struct config_err *err)
{
    struct agentic_trace t = {.block_size = 64};
    struct parser p = {.name = name, .t = &t, .err = err};
    int rc = 0;
    cJSON *root = len <= AGENTIC_MAX_BYTES ? cJSON_ParseWithLength(text_, len) : NULL;
    if (!root) {
        if (len > AGENTIC_MAX_BYTES)
            return config_err_set(err, "%s: larger than %u MiB", name, AGENTIC_MAX_BYTES >> 20);
        return config_err_set(err, "%s: not valid JSON (an agentic trace is one JSON object)", name);
    }
    const cJSON *requests = get(root, "requests");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(requests)) {
        rc = config_err_set(err, "%s: an agentic trace is a JSON object with a \"requests\" array", name);
        goto out;
    }
    const cJSON *bs = get(root, "block_size");
    if (bs && (!cJSON_IsNumber(bs) || bs->valuedouble < 1 || bs->valuedouble > 65536 ||
               bs->valuedouble != floor(bs->valuedouble))) {
        rc = bad(&p, "block_size", "must be an integer from 1 to 65536");
        goto out;
    }
    if (bs)
        t.block_size = (uint32_t)bs->valuedouble;
    text(root, "id", t.id, sizeof(t.id), "");
    if (!t.id[0]) {
        /* The file's name without directory and extension. */
        const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
        snprintf(t.id, sizeof(t.id), "%.*s", (int)strcspn(base, "."), base);
    }
    const cJSON *scope = get(root, "hash_id_scope");
    t.global_ids = cJSON_IsString(scope) && strcmp(scope->valuestring, "global") == 0;
    size_t main_index;
    if ((rc = add_session(&t, &main_index)) < 0)
        goto out;
    t.sessions[0].parent = t.sessions[0].after = t.sessions[0].joined_by = SIZE_MAX;
    snprintf(t.sessions[0].kind, sizeof(t.sessions[0].kind), "main");
    snprintf(t.sessions[0].agent_id, sizeof(t.sessions[0].agent_id), "main");
    snprintf(p.path, sizeof(p.path), "requests");
    rc = read_session(&p, requests, 0, 0);
    if (rc == 0 && t.n_requests == 0)
        rc = config_err_set(err, "%s: no requests", name);
out:
    cJSON_Delete(root);
    if (rc < 0) {
        if (rc == -ENOMEM)
            config_err_set(err, "%s: out of memory", name);
        agentic_trace_finish(&t);
        return rc;
    }
    *ret = t;
    return 0;
}

void agentic_trace_finish(struct agentic_trace *t)
{
    for (size_t i = 0; i < t->n_sessions; i++) {
        struct agentic_session *s = &t->sessions[i];
        for (size_t k = 0; k < s->n; k++)
            free(s->requests[k].hash_ids);
        free(s->requests);
        free(s->children);
    }
    free(t->sessions);
    memset(t, 0, sizeof(*t));
}

usec_t agentic_request_end(const struct agentic_request *r)
{
    return r->at + (r->api_us > 0 ? (usec_t)r->api_us : 0);
}

usec_t agentic_session_end(const struct agentic_session *s)
{
    if (s->duration)
        return s->at + s->duration;
    return s->n ? agentic_request_end(&s->requests[s->n - 1]) : s->at;
}

/* Walks spec's items: each PATTERN=NAME as pointers and lengths. */
struct map_item {
    const char *pat, *name;
    size_t pat_len, name_len;
};

static bool next_item(const char **cur, struct map_item *it)
{
    const char *p = *cur;
    if (!*p)
        return false;
    size_t n = strcspn(p, ",");
    const char *eq = memchr(p, '=', n);
    it->pat = p;
    it->pat_len = eq ? (size_t)(eq - p) : n;
    it->name = eq ? eq + 1 : p + n;
    it->name_len = eq ? (size_t)(p + n - eq - 1) : 0;
    *cur = p[n] ? p + n + 1 : p + n;
    return true;
}

int agentic_model_map_check(const char *spec, struct config_err *err)
{
    struct map_item it;
    const char *cur = spec;
    int n = 0;
    if (!*spec)
        return config_err_set(err, "expected PATTERN=NAME,... (e.g. '*opus*=qwen3-32b,*haiku*=qwen3-8b')");
    while (next_item(&cur, &it)) {
        if (it.pat_len == 0 || it.name_len == 0 || it.pat + it.pat_len == it.name)
            return config_err_set(err, "'%.*s' is not PATTERN=NAME",
                                  (int)(it.name + it.name_len - it.pat), it.pat);
        if (it.pat_len > 95 || it.name_len > 95)
            return config_err_set(err, "'%.*s': a pattern or name is at most 95 bytes",
                                  (int)(it.name + it.name_len - it.pat), it.pat);
        if (++n > AGENTIC_MAX_MAPS)
            return config_err_set(err, "at most %d PATTERN=NAME pairs", AGENTIC_MAX_MAPS);
    }
    return 0;
}

const char *agentic_model_map(const char *spec, const char *model, char *buf, size_t len)
{
    struct map_item it;
    const char *cur = spec ? spec : "";
    while (next_item(&cur, &it)) {
        char pat[96];
        if (it.pat_len >= sizeof(pat) || it.name_len == 0)
            continue;
        memcpy(pat, it.pat, it.pat_len);
        pat[it.pat_len] = '\0';
        if (fnmatch(pat, model, 0) == 0) {
            snprintf(buf, len, "%.*s", (int)it.name_len, it.name);
            return buf;
        }
    }
    return model;
}
