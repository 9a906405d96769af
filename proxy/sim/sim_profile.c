#include "sim/sim_profile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core/config.h"
#include "sim/sim.h"

void sim_profile_default(struct sim_profile *p)
{
    const struct sim_options *so = &sim_defaults;
    *p = (struct sim_profile){.slots = so->slots,
                              .prefill_tps = so->prefill_tps,
                              .decode_tps = so->decode_tps,
                              .batch_slowdown = so->batch_slowdown,
                              .jitter = so->jitter,
                              .ctx_size = so->n_ctx,
                              .seed = so->seed};
}

/* A list of strings (or one string) joined with ", " into buf. */
static int joined(const struct config_doc *doc, const cJSON *v, char *buf, size_t len,
                  struct config_err *err)
{
    if (!v)
        return 0;
    if (cJSON_IsString(v)) {
        snprintf(buf, len, "%s", v->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(v))
        return config_error(doc, v, err, "'%s' must be a string or a list of strings", v->string);
    size_t n = 0;
    const cJSON *e;
    buf[0] = '\0';
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e))
            return config_error(doc, e, err, "'%s' must be a list of strings", v->string);
        int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", e->valuestring);
        if (w < 0 || (size_t)w >= len - n)
            return config_error(doc, v, err, "'%s' is longer than %zu bytes", v->string, len - 1);
        n += (size_t)w;
    }
    return 0;
}

static int parse_calibration(const struct config_doc *doc, const cJSON *obj,
                             struct sim_profile_calibration *c, struct config_err *err)
{
    static const char *const keys[] = {"from", "target", "levels", "requests", NULL};
    const char *target = NULL;
    uint64_t requests = 0;
    if (!cJSON_IsObject(obj))
        return config_error(doc, obj, err, "'calibration' must be a mapping");
    int r = config_check_keys(doc, obj, keys, err);
    if (r == 0)
        r = joined(doc, cJSON_GetObjectItemCaseSensitive(obj, "from"), c->from, sizeof(c->from), err);
    if (r == 0)
        r = joined(doc, cJSON_GetObjectItemCaseSensitive(obj, "levels"), c->levels,
                   sizeof(c->levels), err);
    if (r == 0)
        r = config_get_string(doc, obj, "target", false, &target, err);
    if (r == 0)
        r = config_get_u64(doc, obj, "requests", 0, UINT32_MAX, &requests, err);
    if (r < 0)
        return r;
    snprintf(c->target, sizeof(c->target), "%s", target ? target : "");
    c->requests = (unsigned)requests;
    return 0;
}

int sim_profile_parse(const struct config_doc *doc, const cJSON *obj, struct sim_profile *p,
                      struct config_err *err)
{
    static const char *const keys[] = {"slots",    "prefill_tps", "decode_tps", "batch_slowdown",
                                       "jitter",   "seed",        "ctx_size",   "calibration",
                                       NULL};
    if (!cJSON_IsObject(obj))
        return config_error(doc, obj, err,
                            "a sim profile is a mapping (slots, prefill_tps, decode_tps, ...) or "
                            "the name of a profile file");
    /* The same ranges as `tokentap sim`'s options. */
    uint64_t slots = p->slots, ctx = p->ctx_size;
    int r = config_check_keys(doc, obj, keys, err);
    if (r == 0)
        r = config_get_u64(doc, obj, "slots", 1, 1024, &slots, err);
    if (r == 0)
        r = config_get_double(doc, obj, "prefill_tps", 0.001, 1e9, &p->prefill_tps, err);
    if (r == 0)
        r = config_get_double(doc, obj, "decode_tps", 0.001, 1e7, &p->decode_tps, err);
    if (r == 0)
        r = config_get_double(doc, obj, "batch_slowdown", 0, 100, &p->batch_slowdown, err);
    if (r == 0)
        r = config_get_double(doc, obj, "jitter", 0, 1, &p->jitter, err);
    if (r == 0)
        r = config_get_u64(doc, obj, "seed", 0, UINT32_MAX, &p->seed, err);
    if (r == 0)
        r = config_get_u64(doc, obj, "ctx_size", 16, 1u << 30, &ctx, err);
    const cJSON *cal = cJSON_GetObjectItemCaseSensitive(obj, "calibration");
    if (r == 0 && cal) {
        memset(&p->calibration, 0, sizeof(p->calibration));
        r = parse_calibration(doc, cal, &p->calibration, err);
        p->calibrated = r == 0;
    }
    if (r < 0)
        return r;
    p->slots = (unsigned)slots;
    p->ctx_size = (uint32_t)ctx;
    return 0;
}

int sim_profile_load(const char *path, struct sim_profile *p, struct config_err *err)
{
    struct config_doc *doc = NULL;
    sim_profile_default(p);
    int r = config_load_file(path, &doc, err);
    if (r < 0)
        return r;
    r = sim_profile_parse(doc, config_root(doc), p, err);
    config_free(doc);
    return r;
}

void sim_profile_apply(const struct sim_profile *p, struct sim_options *o)
{
    o->slots = p->slots;
    o->prefill_tps = p->prefill_tps;
    o->decode_tps = p->decode_tps;
    o->batch_slowdown = p->batch_slowdown;
    o->jitter = p->jitter;
    if (p->ctx_size)
        o->n_ctx = p->ctx_size;
    o->seed = p->seed;
}

/* A YAML double-quoted string (JSON's escapes are YAML's). */
static void quoted(struct evbuffer *b, const char *s)
{
    cJSON *str = cJSON_CreateString(s);
    char *text = str ? cJSON_PrintUnformatted(str) : NULL;
    evbuffer_add_printf(b, "%s", text ? text : "\"\"");
    free(text);
    cJSON_Delete(str);
}

/* "1, 2" as ["1", "2"]. */
static void quoted_list(struct evbuffer *b, const char *joined_text)
{
    const char *p = joined_text;
    evbuffer_add_printf(b, "[");
    while (*p) {
        const char *comma = strstr(p, ", ");
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char one[256];
        snprintf(one, sizeof(one), "%.*s", (int)n, p);
        if (p != joined_text)
            evbuffer_add_printf(b, ", ");
        quoted(b, one);
        p += n + (comma ? 2 : 0);
    }
    evbuffer_add_printf(b, "]");
}

char *sim_profile_yaml(const struct sim_profile *p, const char *header)
{
    struct evbuffer *b = evbuffer_new();
    char *text = NULL;
    if (!b)
        return NULL;
    for (const char *l = header; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        evbuffer_add_printf(b, "#%s%.*s\n", n ? " " : "", (int)n, l);
        l += n + (nl ? 1 : 0);
    }
    evbuffer_add_printf(b,
                        "slots: %u\nprefill_tps: %.6g\ndecode_tps: %.6g\nbatch_slowdown: %.6g\n"
                        "jitter: %.6g\nctx_size: %u\nseed: %llu\n",
                        p->slots, p->prefill_tps, p->decode_tps, p->batch_slowdown, p->jitter,
                        p->ctx_size, (unsigned long long)p->seed);
    if (p->calibrated) {
        const struct sim_profile_calibration *c = &p->calibration;
        evbuffer_add_printf(b, "calibration:\n  from: ");
        quoted_list(b, c->from);
        if (c->target[0]) {
            evbuffer_add_printf(b, "\n  target: ");
            quoted(b, c->target);
        }
        if (c->levels[0]) {
            evbuffer_add_printf(b, "\n  levels: ");
            quoted_list(b, c->levels);
        }
        evbuffer_add_printf(b, "\n  requests: %u\n", c->requests);
    }
    size_t len = evbuffer_get_length(b);
    text = malloc(len + 1);
    if (text) {
        evbuffer_remove(b, text, len);
        text[len] = '\0';
    }
    evbuffer_free(b);
    return text;
}
