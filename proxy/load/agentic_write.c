#include "load/agentic_write.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/jsonw.h"
#include "core/splitmix.h"

struct sess {
    const char *name;
    size_t *recs;      /* owned: indexes into recs, by start */
    size_t n, cap;
    usec_t first, end; /* first start, last end (or start) */
    long after;        /* sub-agents: the main agent's request it follows, -1 before all */
};

/* Block prefix hash -> id, open addressing; 0 is the empty mark. */
struct ids {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap, n;
};

static int ids_grow(struct ids *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint64_t *keys = calloc(cap, sizeof(*keys));
    uint32_t *vals = calloc(cap, sizeof(*vals));
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = m->keys[i] & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

/* The id of key, a new one (n + 1) when first seen. 0 on -ENOMEM. */
static uint32_t ids_get(struct ids *m, uint64_t key)
{
    if ((m->n + 1) * 2 > m->cap && ids_grow(m) < 0)
        return 0;
    size_t j = key & (m->cap - 1);
    while (m->keys[j] && m->keys[j] != key)
        j = (j + 1) & (m->cap - 1);
    if (!m->keys[j]) {
        m->keys[j] = key;
        m->vals[j] = (uint32_t)++m->n;
    }
    return m->vals[j];
}

size_t agentic_block_hashes(const uint64_t *tokens, size_t n, uint32_t block_size, uint64_t *ret)
{
    uint64_t h = 0x84222325cbf29ce4ull;
    size_t nb = n / block_size;
    for (size_t k = 0; k < nb; k++) {
        for (size_t t = 0; t < block_size; t++)
            h = splitmix_hash(h ^ tokens[k * block_size + t]);
        ret[k] = h;
    }
    return nb;
}

const char *agentic_stop_name(const char *f)
{
    if (!f)
        return "";
    if (!strcmp(f, "stop") || !strcmp(f, "end_turn") || !strcmp(f, "stop_sequence") || !strcmp(f, "eos"))
        return "end_turn";
    if (!strcmp(f, "tool_calls") || !strcmp(f, "tool_use") || !strcmp(f, "function_call"))
        return "tool_use";
    if (!strcmp(f, "length") || !strcmp(f, "max_tokens") || !strcmp(f, "limit"))
        return "max_tokens";
    return "";
}

static int by_start(const void *a, const void *b, void *arg)
{
    const struct agentic_rec *recs = arg;
    const struct agentic_rec *x = &recs[*(const size_t *)a], *y = &recs[*(const size_t *)b];
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int add_rec(struct sess *s, size_t i, const struct agentic_rec *r)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        size_t *p = realloc(s->recs, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        s->recs = p;
        s->cap = cap;
    }
    if (s->n == 0)
        s->first = r->start;
    s->recs[s->n++] = i;
    usec_t end = r->end ? r->end : r->start;
    if (end > s->end)
        s->end = end;
    return 0;
}

static void seconds(struct evbuffer *b, const char *key, usec_t us)
{
    evbuffer_add_printf(b, "\"%s\":%.3f", key, (double)us / 1e6);
}

/* One request of session s, its t counted from `origin`. */
static void write_request(struct evbuffer *b, const struct agentic_rec *recs, const struct sess *s,
                          size_t k, usec_t origin, uint32_t *const *hash, const size_t *n_hash)
{
    size_t i = s->recs[k];
    const struct agentic_rec *r = &recs[i];
    EVBUFFER_ADD_LIT(b, "{");
    seconds(b, "t", r->start - origin);
    evbuffer_add_printf(b, ",\"type\":\"%s\",\"model\":", r->stream ? "s" : "n");
    jsonw_cstr(b, r->model ? r->model : "");
    evbuffer_add_printf(b, ",\"in\":%u,\"out\":%u,\"hash_ids\":[", r->in, r->out);
    for (size_t h = 0; h < n_hash[i]; h++)
        evbuffer_add_printf(b, h ? ",%u" : "%u", hash[i][h]);
    evbuffer_add_printf(b, "],\"stop\":\"%s\"", agentic_stop_name(r->stop));
    if (r->end > r->start) {
        EVBUFFER_ADD_LIT(b, ",");
        seconds(b, "api_time", r->end - r->start);
    }
    const struct agentic_rec *prev = k ? &recs[s->recs[k - 1]] : NULL;
    if (!prev || prev->end) {
        usec_t since = prev ? prev->end : r->start;
        EVBUFFER_ADD_LIT(b, ",");
        seconds(b, "think_time", r->start > since ? r->start - since : 0);
    }
    EVBUFFER_ADD_LIT(b, "}");
}

static void write_subagent(struct evbuffer *b, const struct agentic_rec *recs, const struct sess *s,
                           size_t number, usec_t origin, uint32_t *const *hash, const size_t *n_hash)
{
    /* t is when it returned, as in the traces Claude Code's recorder writes. */
    EVBUFFER_ADD_LIT(b, "{");
    seconds(b, "t", s->end - origin);
    evbuffer_add_printf(b, ",\"type\":\"subagent\",\"agent_id\":\"agent_%03zu\",\"subagent_type\":"
                           "\"session\",\"duration_ms\":%.0f,\"requests\":[",
                        number, (double)(s->end - s->first) / 1000.0);
    for (size_t k = 0; k < s->n; k++) {
        if (k)
            EVBUFFER_ADD_LIT(b, ",");
        write_request(b, recs, s, k, s->first, hash, n_hash);
    }
    EVBUFFER_ADD_LIT(b, "]}");
}

/* Every sub-agent that follows main request `after`, in start order. */
static void write_spawns(struct evbuffer *b, const struct agentic_rec *recs, const struct sess *ss,
                         size_t n_sess, long after, usec_t origin, uint32_t *const *hash,
                         const size_t *n_hash, bool *comma)
{
    for (size_t j = 1; j < n_sess; j++) {
        if (ss[j].after != after)
            continue;
        if (*comma)
            EVBUFFER_ADD_LIT(b, ",");
        write_subagent(b, recs, &ss[j], j, origin, hash, n_hash);
        *comma = true;
    }
}

int agentic_write(const struct agentic_rec *recs, size_t n, uint32_t block_size, const char *id,
                  struct evbuffer *out)
{
    size_t *order = malloc((n ? n : 1) * sizeof(*order));
    uint32_t **hash = calloc(n ? n : 1, sizeof(*hash));
    size_t *n_hash = calloc(n ? n : 1, sizeof(*n_hash));
    struct sess *ss = calloc(n ? n : 1, sizeof(*ss));
    struct ids ids = {0};
    size_t n_sess = 0;
    int rc = -ENOMEM;
    if (!order || !hash || !n_hash || !ss)
        goto out;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof(*order), by_start, (void *)recs);
    for (size_t o = 0; o < n; o++) {
        size_t i = order[o];
        const struct agentic_rec *r = &recs[i];
        const char *name = r->session ? r->session : "";
        size_t j = 0;
        while (j < n_sess && strcmp(ss[j].name, name) != 0)
            j++;
        if (j == n_sess)
            ss[n_sess++].name = name;
        if (add_rec(&ss[j], i, r) < 0)
            goto out;
        /* Hash ids, in start order so that ids count up through the trace. */
        size_t nb = r->in / block_size;
        if (r->n_blocks < nb)
            nb = r->n_blocks;
        hash[i] = malloc((nb ? nb : 1) * sizeof(**hash));
        if (!hash[i])
            goto out;
        for (size_t k = 0; k < nb; k++)
            if (!(hash[i][k] = ids_get(&ids, r->blocks[k])))
                goto out;
        n_hash[i] = nb;
    }
    /* A sub-agent follows the last main request that had ended when it
     * began (or had begun, when its end is unknown). */
    for (size_t j = 1; j < n_sess; j++) {
        ss[j].after = -1;
        for (size_t k = 0; k < ss[0].n; k++) {
            const struct agentic_rec *m = &recs[ss[0].recs[k]];
            if ((m->end ? m->end : m->start) <= ss[j].first)
                ss[j].after = (long)k;
        }
    }
    EVBUFFER_ADD_LIT(out, "{\"id\":");
    jsonw_cstr(out, id);
    EVBUFFER_ADD_LIT(out, ",\"models\":[");
    for (size_t o = 0, nm = 0; o < n; o++) {
        const char *m = recs[order[o]].model ? recs[order[o]].model : "";
        bool seen = false;
        for (size_t p = 0; p < o && !seen; p++)
            seen = strcmp(recs[order[p]].model ? recs[order[p]].model : "", m) == 0;
        if (seen)
            continue;
        if (nm++)
            EVBUFFER_ADD_LIT(out, ",");
        jsonw_cstr(out, m);
    }
    evbuffer_add_printf(out, "],\"block_size\":%u,\"hash_id_scope\":\"local\",\"requests\":[", block_size);
    bool comma = false;
    usec_t origin = n_sess ? ss[0].first : 0;
    write_spawns(out, recs, ss, n_sess, -1, origin, hash, n_hash, &comma);
    for (size_t k = 0; n_sess && k < ss[0].n; k++) {
        if (comma)
            EVBUFFER_ADD_LIT(out, ",");
        write_request(out, recs, &ss[0], k, origin, hash, n_hash);
        comma = true;
        write_spawns(out, recs, ss, n_sess, (long)k, origin, hash, n_hash, &comma);
    }
    EVBUFFER_ADD_LIT(out, "]}\n");
    rc = 0;
out:
    for (size_t i = 0; hash && i < n; i++)
        free(hash[i]);
    for (size_t j = 0; ss && j < n_sess; j++)
        free(ss[j].recs);
    free(hash);
    free(n_hash);
    free(ss);
    free(order);
    free(ids.keys);
    free(ids.vals);
    return rc;
}
