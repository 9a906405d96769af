#include "rewrite.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "http.h"
#include "jsonedit.h"
#include "jsonscan.h"

_Static_assert(REWRITE_MAX_BODY_LIMIT <= JSONEDIT_MAX_BYTES, "max_body beyond jsonedit's limit");

/* --- Rule storage --- */

/* Every allocation of a rule set is one block on a list, so a half-loaded
 * set frees as simply as a whole one. */
struct block {
    struct block *next; /* owned */
    max_align_t data[];
};

/* Alternatives: a match list matches when one glob does; n == 0 means the
 * rule does not look at this property. */
struct globs {
    char **v; /* owned (arena) */
    size_t n;
};

struct header_match {
    char *name; /* owned (arena) */
    struct globs values;
};

struct drop {
    char *path;   /* owned (arena): JSON pointer to the array */
    char *prefix; /* owned (arena) */
    size_t prefix_len;
};

struct set_op {
    char *pointer; /* owned (arena) */
    char *value;   /* owned (arena): JSON text */
    size_t value_len;
};

struct rule {
    char *name; /* owned (arena) */
    struct globs route, method, model, upstream;
    struct header_match *headers; /* owned (arena) */
    size_t n_headers;

    /* Actions, applied in this order. */
    struct drop *drops; /* owned (arena) */
    size_t n_drops;
    char **deletes; /* owned (arena) */
    size_t n_deletes;
    struct set_op *sets; /* owned (arena) */
    size_t n_sets;
    char *merge; /* owned (arena): the patch as JSON text, NULL for none */
    size_t merge_len;
    enum rewrite_thinking thinking;
    char *model_name; /* owned (arena), NULL for none */
    char *model_json; /* owned (arena): model_name as a JSON string */
    size_t model_json_len;
    struct rewrite_header_edit *hedits; /* owned (arena); names and values too */
    size_t n_hedits;
};

struct rewrite_rules {
    struct block *blocks; /* owned: everything below */
    struct rule *rules;   /* owned (arena) */
    size_t n_rules;
    size_t max_body;
    bool anthropic_thinking_field;
    size_t n_hedits; /* in all rules: bounds a result's header edits */
};

static void *arena_alloc(struct rewrite_rules *rr, size_t n, size_t size)
{
    if (size && n > (SIZE_MAX - sizeof(struct block)) / size)
        return NULL;
    struct block *b = calloc(1, sizeof(*b) + n * size);
    if (!b)
        return NULL;
    b->next = rr->blocks;
    rr->blocks = b;
    return b->data;
}

static char *arena_memdup(struct rewrite_rules *rr, const char *s, size_t len)
{
    char *p = arena_alloc(rr, len + 1, 1);
    if (p)
        memcpy(p, s, len);
    return p;
}

void rewrite_rules_free(struct rewrite_rules *rr)
{
    if (!rr)
        return;
    while (rr->blocks) {
        struct block *b = rr->blocks;
        rr->blocks = b->next;
        free(b);
    }
    free(rr);
}

size_t rewrite_max_body(const struct rewrite_rules *rr)
{
    return rr->max_body;
}

size_t rewrite_rules_count(const struct rewrite_rules *rr)
{
    return rr->n_rules;
}

const char *rewrite_rule_name(const struct rewrite_rules *rr, size_t i)
{
    return i < rr->n_rules ? rr->rules[i].name : NULL;
}

/* --- Small text helpers --- */

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool caseeq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Header values without surrounding optional whitespace. */
static void trim(const char **p, size_t *len)
{
    while (*len && is_ows(**p)) {
        (*p)++;
        (*len)--;
    }
    while (*len && is_ows((*p)[*len - 1]))
        (*len)--;
}

bool rewrite_glob_match(const char *glob, const char *s, size_t len, bool fold_case)
{
    /* Greedy with one backtrack point: on a mismatch, the last '*' takes
     * one more byte. O(len * strlen(glob)) at worst, both bounded. */
    const char *g = glob, *star = NULL;
    size_t i = 0, star_i = 0;
    while (i < len) {
        if (*g == '*') {
            star = ++g;
            star_i = i;
            continue;
        }
        if (*g && (*g == '?' || *g == s[i] || (fold_case && lower(*g) == lower(s[i])))) {
            g++;
            i++;
            continue;
        }
        if (!star)
            return false;
        g = star;
        i = ++star_i;
    }
    while (*g == '*')
        g++;
    return *g == '\0';
}

static bool globs_match(const struct globs *gl, const char *s, size_t len, bool fold_case)
{
    for (size_t i = 0; i < gl->n; i++)
        if (rewrite_glob_match(gl->v[i], s, len, fold_case))
            return true;
    return false;
}

/* --- Loading --- */

struct loader {
    const struct config_doc *doc;
    struct config_err *err;
    struct rewrite_rules *rr;
};

static int oom(struct loader *ld)
{
    snprintf(ld->err->msg, sizeof(ld->err->msg), "%s: out of memory",
             ld->doc ? config_name(ld->doc) : "rewrite");
    return -ENOMEM;
}

static const cJSON *member(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* '[' and ']' would be character classes and '\' an escape in other glob
 * dialects; refusing them keeps a pattern from silently meaning less. */
static int check_glob(struct loader *ld, const cJSON *node, const char *what, bool route)
{
    if (!cJSON_IsString(node))
        return config_error(ld->doc, node, ld->err, "%s must be a string (a glob)", what);
    const char *s = node->valuestring;
    if (strlen(s) >= REWRITE_MAX_GLOB)
        return config_error(ld->doc, node, ld->err, "%s: glob longer than %d bytes", what,
                            REWRITE_MAX_GLOB - 1);
    for (const char *p = s; *p; p++) {
        if (*p == '[' || *p == ']' || *p == '\\')
            return config_error(ld->doc, node, ld->err,
                                "%s: bad glob '%s': only * and ? are special; '%c' is reserved",
                                what, s, *p);
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return config_error(ld->doc, node, ld->err, "%s: bad glob: control character", what);
    }
    if (route && s[0] != '/' && s[0] != '*')
        return config_error(ld->doc, node, ld->err,
                            "%s: bad glob '%s': a route starts with '/' (or '*')", what, s);
    return 0;
}

/* A glob or a list of globs (any of them matches). */
static int load_globs(struct loader *ld, const cJSON *node, const char *what, bool route,
                      struct globs *ret)
{
    size_t n = cJSON_IsArray(node) ? (size_t)cJSON_GetArraySize(node) : 1;
    if (cJSON_IsArray(node) && n == 0)
        return config_error(ld->doc, node, ld->err, "%s: empty list", what);
    if (n > REWRITE_MAX_GLOBS)
        return config_error(ld->doc, node, ld->err, "%s: more than %d globs", what,
                            REWRITE_MAX_GLOBS);
    char **v = arena_alloc(ld->rr, n, sizeof(*v));
    if (!v)
        return oom(ld);
    const cJSON *items = cJSON_IsArray(node) ? node->child : node;
    size_t i = 0;
    for (const cJSON *c = items; c && i < n; c = c->next, i++) {
        int r = check_glob(ld, c, what, route);
        if (r < 0)
            return r;
        v[i] = arena_memdup(ld->rr, c->valuestring, strlen(c->valuestring));
        if (!v[i])
            return oom(ld);
    }
    *ret = (struct globs){v, n};
    return 0;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int check_header_name(struct loader *ld, const cJSON *node, const char *name)
{
    if (!*name || strlen(name) > 128)
        return config_error(ld->doc, node, ld->err, "bad header name '%s'", name);
    for (const char *p = name; *p; p++)
        if (!is_tchar(*p))
            return config_error(ld->doc, node, ld->err, "bad header name '%s'", name);
    return 0;
}

static int load_match(struct loader *ld, const cJSON *m, struct rule *r)
{
    static const char *const keys[] = {"route", "method", "model", "headers", "upstream", NULL};
    int ret = config_check_keys(ld->doc, m, keys, ld->err);
    if (ret < 0)
        return ret;
    const cJSON *v;
    if ((v = member(m, "route")) && (ret = load_globs(ld, v, "'route'", true, &r->route)) < 0)
        return ret;
    if ((v = member(m, "method")) && (ret = load_globs(ld, v, "'method'", false, &r->method)) < 0)
        return ret;
    if ((v = member(m, "model")) && (ret = load_globs(ld, v, "'model'", false, &r->model)) < 0)
        return ret;
    if ((v = member(m, "upstream")) &&
        (ret = load_globs(ld, v, "'upstream'", false, &r->upstream)) < 0)
        return ret;
    const cJSON *h = member(m, "headers");
    if (!h)
        return 0;
    if (!cJSON_IsObject(h) || !h->child)
        return config_error(ld->doc, h, ld->err,
                            "'headers' must map header names to globs, e.g. user-agent: \"claude-cli/*\"");
    size_t n = (size_t)cJSON_GetArraySize(h);
    if (n > REWRITE_MAX_MATCH_HEADERS)
        return config_error(ld->doc, h, ld->err, "more than %d headers to match",
                            REWRITE_MAX_MATCH_HEADERS);
    r->headers = arena_alloc(ld->rr, n, sizeof(*r->headers));
    if (!r->headers)
        return oom(ld);
    for (const cJSON *c = h->child; c; c = c->next) {
        struct header_match *hm = &r->headers[r->n_headers++];
        if ((ret = check_header_name(ld, c, c->string)) < 0 ||
            (ret = load_globs(ld, c, "header glob", false, &hm->values)) < 0)
            return ret;
        hm->name = arena_memdup(ld->rr, c->string, strlen(c->string));
        if (!hm->name)
            return oom(ld);
    }
    return 0;
}

/* RFC 6901: empty (the whole document) is refused, since every action
 * edits a member or element; "~" only as "~0" or "~1". */
static int check_pointer(struct loader *ld, const cJSON *node, const char *p)
{
    if (p[0] != '/')
        return config_error(ld->doc, node, ld->err,
                            "bad JSON pointer '%s': it starts with '/', e.g. /chat_template_kwargs/enable_thinking",
                            p);
    if (strlen(p) > REWRITE_MAX_POINTER)
        return config_error(ld->doc, node, ld->err, "JSON pointer longer than %d bytes",
                            REWRITE_MAX_POINTER);
    for (const char *c = p; *c; c++)
        if (*c == '~' && c[1] != '0' && c[1] != '1')
            return config_error(ld->doc, node, ld->err,
                                "bad JSON pointer '%s': '~' must be '~0' or '~1'", p);
    return 0;
}

/* The YAML value as compact JSON text, copied into the rule set. */
static int to_json(struct loader *ld, const cJSON *node, const char *what, char **ret,
                   size_t *ret_len)
{
    char *text = cJSON_PrintUnformatted(node);
    if (!text)
        return oom(ld);
    size_t len = strlen(text);
    int r = 0;
    if (len > REWRITE_MAX_VALUE) {
        r = config_error(ld->doc, node, ld->err, "%s: larger than %d bytes as JSON", what,
                         REWRITE_MAX_VALUE);
        goto fail;
    }
    /* cJSON prints what it read from YAML; check it meets jsonedit's rules. */
    if (jsonedit_validate(text, len) != 0) {
        r = config_error(ld->doc, node, ld->err, "%s: not representable as JSON", what);
        goto fail;
    }
    *ret = arena_memdup(ld->rr, text, len);
    if (!*ret) {
        r = oom(ld);
        goto fail;
    }
    *ret_len = len;
fail:
    cJSON_free(text);
    return r;
}

static int load_thinking(struct loader *ld, const cJSON *v, enum rewrite_thinking *ret)
{
    if (cJSON_IsBool(v)) {
        *ret = cJSON_IsTrue(v) ? REWRITE_THINKING_ON : REWRITE_THINKING_OFF;
        return 0;
    }
    if (cJSON_IsString(v)) {
        static const struct {
            const char *s;
            enum rewrite_thinking t;
        } names[] = {{"off", REWRITE_THINKING_OFF},
                     {"on", REWRITE_THINKING_ON},
                     {"pass", REWRITE_THINKING_PASS}};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (strcmp(v->valuestring, names[i].s) == 0) {
                *ret = names[i].t;
                return 0;
            }
        }
    }
    return config_error(ld->doc, v, ld->err, "'thinking' must be off, on or pass");
}

static int load_drop(struct loader *ld, const cJSON *v, struct drop *d)
{
    static const char *const keys[] = {"path", "text_prefix", NULL};
    const char *path = NULL, *prefix = NULL;
    int r;
    if ((r = config_check_keys(ld->doc, v, keys, ld->err)) < 0 ||
        (r = config_get_string(ld->doc, v, "path", true, &path, ld->err)) < 0 ||
        (r = config_get_string(ld->doc, v, "text_prefix", true, &prefix, ld->err)) < 0 ||
        (r = check_pointer(ld, member(v, "path"), path)) < 0)
        return r;
    size_t plen = strlen(prefix);
    if (plen == 0 || plen >= REWRITE_MAX_GLOB)
        return config_error(ld->doc, member(v, "text_prefix"), ld->err,
                            "'text_prefix' must be 1 to %d bytes", REWRITE_MAX_GLOB - 1);
    d->path = arena_memdup(ld->rr, path, strlen(path));
    d->prefix = arena_memdup(ld->rr, prefix, plen);
    d->prefix_len = plen;
    return d->path && d->prefix ? 0 : oom(ld);
}

static int load_drops(struct loader *ld, const cJSON *v, struct rule *r)
{
    size_t n = cJSON_IsArray(v) ? (size_t)cJSON_GetArraySize(v) : 1;
    if (!cJSON_IsObject(v) && !(cJSON_IsArray(v) && n > 0))
        return config_error(ld->doc, v, ld->err,
                            "'drop_blocks' must be a mapping {path, text_prefix} or a list of them");
    if (n > REWRITE_MAX_EDITS)
        return config_error(ld->doc, v, ld->err, "more than %d drop_blocks", REWRITE_MAX_EDITS);
    r->drops = arena_alloc(ld->rr, n, sizeof(*r->drops));
    if (!r->drops)
        return oom(ld);
    const cJSON *items = cJSON_IsArray(v) ? v->child : v;
    for (const cJSON *c = items; c && r->n_drops < n; c = c->next) {
        int ret = load_drop(ld, c, &r->drops[r->n_drops++]);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int load_set(struct loader *ld, const cJSON *v, struct rule *r)
{
    if (!cJSON_IsObject(v) || !v->child)
        return config_error(ld->doc, v, ld->err,
                            "'set' must map JSON pointers to values, e.g. /temperature: 0.6");
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n > REWRITE_MAX_EDITS)
        return config_error(ld->doc, v, ld->err, "more than %d 'set' entries", REWRITE_MAX_EDITS);
    r->sets = arena_alloc(ld->rr, n, sizeof(*r->sets));
    if (!r->sets)
        return oom(ld);
    for (const cJSON *c = v->child; c; c = c->next) {
        struct set_op *s = &r->sets[r->n_sets++];
        int ret;
        if ((ret = check_pointer(ld, c, c->string)) < 0 ||
            (ret = to_json(ld, c, "'set' value", &s->value, &s->value_len)) < 0)
            return ret;
        s->pointer = arena_memdup(ld->rr, c->string, strlen(c->string));
        if (!s->pointer)
            return oom(ld);
    }
    return 0;
}

static int load_delete(struct loader *ld, const cJSON *v, struct rule *r)
{
    size_t n = cJSON_IsArray(v) ? (size_t)cJSON_GetArraySize(v) : 1;
    if (!cJSON_IsString(v) && !(cJSON_IsArray(v) && n > 0))
        return config_error(ld->doc, v, ld->err, "'delete' must be a list of JSON pointers");
    if (n > REWRITE_MAX_EDITS)
        return config_error(ld->doc, v, ld->err, "more than %d 'delete' entries",
                            REWRITE_MAX_EDITS);
    r->deletes = arena_alloc(ld->rr, n, sizeof(*r->deletes));
    if (!r->deletes)
        return oom(ld);
    const cJSON *items = cJSON_IsArray(v) ? v->child : v;
    for (const cJSON *c = items; c && r->n_deletes < n; c = c->next) {
        if (!cJSON_IsString(c))
            return config_error(ld->doc, c, ld->err, "'delete' entries must be JSON pointers");
        int ret = check_pointer(ld, c, c->valuestring);
        if (ret < 0)
            return ret;
        r->deletes[r->n_deletes] = arena_memdup(ld->rr, c->valuestring, strlen(c->valuestring));
        if (!r->deletes[r->n_deletes++])
            return oom(ld);
    }
    return 0;
}

static int load_merge(struct loader *ld, const cJSON *v, struct rule *r)
{
    if (!cJSON_IsObject(v))
        return config_error(ld->doc, v, ld->err,
                            "'merge' must be a mapping (an RFC 7386 merge patch)");
    int ret = to_json(ld, v, "'merge'", &r->merge, &r->merge_len);
    if (ret < 0)
        return ret;
    /* jsonedit's own checks of a patch (depth, repeated keys), on a dry run. */
    char *out = NULL;
    size_t out_len;
    ret = jsonedit_merge("{}", 2, r->merge, r->merge_len, &out, &out_len);
    free(out);
    if (ret == -ENOMEM)
        return oom(ld);
    if (ret < 0)
        return config_error(ld->doc, v, ld->err, "'merge' nests deeper than %d levels",
                            JSONEDIT_MAX_PATCH_DEPTH);
    return 0;
}

static int load_model(struct loader *ld, const cJSON *v, struct rule *r)
{
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= REWRITE_MAX_MODEL)
        return config_error(ld->doc, v, ld->err, "'model' must be a model name of 1 to %d bytes",
                            REWRITE_MAX_MODEL - 1);
    r->model_name = arena_memdup(ld->rr, v->valuestring, strlen(v->valuestring));
    if (!r->model_name)
        return oom(ld);
    return to_json(ld, v, "'model'", &r->model_json, &r->model_json_len);
}

/* Framing and hop-by-hop headers are the proxy's to write. */
static bool header_reserved(const char *name)
{
    static const char *const reserved[] = {
        "host", "content-length", "transfer-encoding", "connection", "keep-alive",
        "proxy-connection", "te", "trailer", "upgrade", "expect", REWRITE_THINKING_HEADER};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (caseeq(name, strlen(name), reserved[i]))
            return true;
    return false;
}

static int add_hedit(struct loader *ld, const cJSON *node, struct rule *r, const char *name,
                     const char *value)
{
    int ret = check_header_name(ld, node, name);
    if (ret < 0)
        return ret;
    if (header_reserved(name))
        return config_error(ld->doc, node, ld->err,
                            "header '%s' is managed by the proxy and cannot be edited", name);
    if (ld->rr->n_hedits == REWRITE_MAX_HEADER_EDITS)
        return config_error(ld->doc, node, ld->err, "more than %d header edits in all rules",
                            REWRITE_MAX_HEADER_EDITS);
    struct rewrite_header_edit *e = &r->hedits[r->n_hedits];
    e->name = arena_memdup(ld->rr, name, strlen(name));
    if (!e->name)
        return oom(ld);
    if (value) {
        size_t len = strlen(value);
        /* No CR or LF (header injection), nothing that is not field-content. */
        if (len > REWRITE_MAX_HEADER_VALUE)
            return config_error(ld->doc, node, ld->err, "header value longer than %d bytes",
                                REWRITE_MAX_HEADER_VALUE);
        for (size_t i = 0; i < len; i++)
            if (((unsigned char)value[i] < 0x20 && value[i] != '\t') || value[i] == 0x7f)
                return config_error(ld->doc, node, ld->err,
                                    "header '%s': control characters are not allowed", name);
        if (len && (is_ows(value[0]) || is_ows(value[len - 1])))
            return config_error(ld->doc, node, ld->err,
                                "header '%s': value has leading or trailing whitespace", name);
        e->value = arena_memdup(ld->rr, value, len);
        if (!e->value)
            return oom(ld);
    }
    r->n_hedits++;
    ld->rr->n_hedits++;
    return 0;
}

static int load_headers_action(struct loader *ld, const cJSON *v, struct rule *r)
{
    static const char *const keys[] = {"set", "remove", NULL};
    int ret = config_check_keys(ld->doc, v, keys, ld->err);
    if (ret < 0)
        return ret;
    const cJSON *set = member(v, "set"), *remove = member(v, "remove");
    if (!set && !remove)
        return config_error(ld->doc, v, ld->err, "'headers' needs 'set' or 'remove'");
    if (set && (!cJSON_IsObject(set) || !set->child))
        return config_error(ld->doc, set, ld->err, "'set' must map header names to values");
    if (remove && !cJSON_IsString(remove) && !(cJSON_IsArray(remove) && remove->child))
        return config_error(ld->doc, remove, ld->err, "'remove' must be a list of header names");
    size_t n = (set ? (size_t)cJSON_GetArraySize(set) : 0) +
               (cJSON_IsArray(remove) ? (size_t)cJSON_GetArraySize(remove) : remove ? 1 : 0);
    if (n > REWRITE_MAX_HEADER_EDITS)
        return config_error(ld->doc, v, ld->err, "more than %d header edits in all rules",
                            REWRITE_MAX_HEADER_EDITS);
    r->hedits = arena_alloc(ld->rr, n, sizeof(*r->hedits));
    if (!r->hedits)
        return oom(ld);
    /* Removals first, so a rule that removes and sets one name sets it. */
    const cJSON *items = cJSON_IsArray(remove) ? remove->child : remove;
    for (const cJSON *c = items; c; c = cJSON_IsArray(remove) ? c->next : NULL) {
        if (!cJSON_IsString(c))
            return config_error(ld->doc, c, ld->err, "'remove' entries must be header names");
        if ((ret = add_hedit(ld, c, r, c->valuestring, NULL)) < 0)
            return ret;
    }
    for (const cJSON *c = set ? set->child : NULL; c; c = c->next) {
        char num[64];
        const char *value = NULL;
        if (cJSON_IsString(c))
            value = c->valuestring;
        else if (cJSON_IsBool(c))
            value = cJSON_IsTrue(c) ? "true" : "false";
        else if (cJSON_IsNumber(c) && cJSON_PrintPreallocated((cJSON *)c, num, sizeof(num), 0))
            value = num;
        else
            return config_error(ld->doc, c, ld->err, "header '%s': the value must be a string",
                                c->string);
        if ((ret = add_hedit(ld, c, r, c->string, value)) < 0)
            return ret;
    }
    return 0;
}

/* Names go into comma-separated lists (result.rules, request logs, metrics
 * labels): a plain alphabet keeps those unambiguous. */
static int check_name(struct loader *ld, const cJSON *node, const char *name)
{
    size_t len = strlen(name);
    bool ok = len > 0 && len <= REWRITE_MAX_NAME;
    for (size_t i = 0; ok && i < len; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_' || c == '.';
    }
    if (!ok)
        return config_error(ld->doc, node, ld->err,
                            "bad rule name '%s': 1 to %d letters, digits, '-', '_' or '.'", name,
                            REWRITE_MAX_NAME);
    return 0;
}

static int load_rule(struct loader *ld, const cJSON *node, struct rule *r)
{
    static const char *const keys[] = {"name",  "match",       "thinking", "merge", "set",
                                       "delete", "model",      "drop_blocks", "headers", NULL};
    const char *name = NULL;
    const cJSON *v;
    int ret;

    r->thinking = REWRITE_THINKING_UNSET;
    if (!cJSON_IsObject(node))
        return config_error(ld->doc, node, ld->err, "a rule must be a mapping with a 'name'");
    if ((ret = config_check_keys(ld->doc, node, keys, ld->err)) < 0 ||
        (ret = config_get_string(ld->doc, node, "name", true, &name, ld->err)) < 0 ||
        (ret = check_name(ld, member(node, "name"), name)) < 0)
        return ret;
    for (size_t i = 0; i < ld->rr->n_rules; i++)
        if (strcmp(ld->rr->rules[i].name, name) == 0)
            return config_error(ld->doc, member(node, "name"), ld->err,
                                "two rules are named '%s'", name);
    r->name = arena_memdup(ld->rr, name, strlen(name));
    if (!r->name)
        return oom(ld);

    if ((v = member(node, "match")) && (ret = load_match(ld, v, r)) < 0)
        return ret;
    if ((v = member(node, "drop_blocks")) && (ret = load_drops(ld, v, r)) < 0)
        return ret;
    if ((v = member(node, "delete")) && (ret = load_delete(ld, v, r)) < 0)
        return ret;
    if ((v = member(node, "set")) && (ret = load_set(ld, v, r)) < 0)
        return ret;
    if ((v = member(node, "merge")) && (ret = load_merge(ld, v, r)) < 0)
        return ret;
    if ((v = member(node, "thinking")) && (ret = load_thinking(ld, v, &r->thinking)) < 0)
        return ret;
    if ((v = member(node, "model")) && (ret = load_model(ld, v, r)) < 0)
        return ret;
    if ((v = member(node, "headers")) && (ret = load_headers_action(ld, v, r)) < 0)
        return ret;
    if (!r->n_drops && !r->n_deletes && !r->n_sets && !r->merge &&
        r->thinking == REWRITE_THINKING_UNSET && !r->model_name && !r->n_hedits)
        return config_error(ld->doc, node, ld->err,
                            "rule '%s' has no action (thinking, merge, set, delete, model, "
                            "drop_blocks or headers)",
                            name);
    return 0;
}

int rewrite_rules_load(const struct config_doc *doc, const struct cJSON *node,
                       struct rewrite_rules **ret, struct config_err *err)
{
    static const char *const keys[] = {"max_body", "anthropic_thinking_field", "rules", NULL};
    struct rewrite_rules *rr = calloc(1, sizeof(*rr));
    struct loader ld = {doc, err, rr};
    int r;

    if (!rr)
        return oom(&ld);
    rr->max_body = REWRITE_MAX_BODY_DEFAULT;
    if (!node)
        goto done;
    if ((r = config_check_keys(doc, node, keys, err)) < 0)
        goto fail;
    uint64_t max_body = rr->max_body;
    if ((r = config_get_size(doc, node, "max_body", &max_body, err)) < 0 ||
        (r = config_get_bool(doc, node, "anthropic_thinking_field", &rr->anthropic_thinking_field,
                             err)) < 0)
        goto fail;
    if (max_body < 1024 || max_body > REWRITE_MAX_BODY_LIMIT) {
        r = config_error(doc, member(node, "max_body"), err, "'max_body' must be 1K to 256M");
        goto fail;
    }
    rr->max_body = (size_t)max_body;

    const cJSON *rules = member(node, "rules");
    if (rules && !cJSON_IsArray(rules)) {
        r = config_error(doc, rules, err, "'rules' must be a list of rules");
        goto fail;
    }
    size_t n = rules ? (size_t)cJSON_GetArraySize(rules) : 0;
    if (n > REWRITE_MAX_RULES) {
        r = config_error(doc, rules, err, "more than %d rules", REWRITE_MAX_RULES);
        goto fail;
    }
    rr->rules = arena_alloc(rr, n ? n : 1, sizeof(*rr->rules));
    if (!rr->rules) {
        r = oom(&ld);
        goto fail;
    }
    for (const cJSON *c = rules ? rules->child : NULL; c; c = c->next) {
        r = load_rule(&ld, c, &rr->rules[rr->n_rules]);
        if (r < 0)
            goto fail;
        rr->n_rules++;
    }
done:
    *ret = rr;
    return 0;
fail:
    rewrite_rules_free(rr);
    return r == -ENOMEM ? r : -EINVAL; /* config_get_string's -ENOENT too */
}

/* --- Reading request text --- */

int rewrite_thinking_override(const struct http_head *head, enum rewrite_thinking *ret)
{
    enum rewrite_thinking t = REWRITE_THINKING_UNSET;
    for (size_t i = 0; head && i < head->n_headers; i++) {
        const struct http_header *h = &head->headers[i];
        if (!caseeq(h->name.p, h->name.len, REWRITE_THINKING_HEADER))
            continue;
        const char *v = h->value.p;
        size_t len = h->value.len;
        trim(&v, &len);
        enum rewrite_thinking this = caseeq(v, len, "on")     ? REWRITE_THINKING_ON
                                     : caseeq(v, len, "off")  ? REWRITE_THINKING_OFF
                                     : caseeq(v, len, "pass") ? REWRITE_THINKING_PASS
                                                              : REWRITE_THINKING_UNSET;
        if (this == REWRITE_THINKING_UNSET || (t != REWRITE_THINKING_UNSET && t != this))
            return -EINVAL;
        t = this;
    }
    *ret = t;
    return 0;
}

/* JSON media types: application/json and any type/subtype+json (RFC 6839);
 * without a Content-Type, a body that looks like an object. */
static bool is_json_body(const struct http_head *head, const char *body, size_t len)
{
    for (size_t i = 0; head && i < head->n_headers; i++) {
        const struct http_header *h = &head->headers[i];
        if (!caseeq(h->name.p, h->name.len, "content-type"))
            continue;
        const char *v = h->value.p;
        size_t n = 0;
        while (n < h->value.len && v[n] != ';')
            n++;
        trim(&v, &n);
        if (caseeq(v, n, "application/json"))
            return true;
        if (n > 5 && memchr(v, '/', n) && caseeq(v + n - 5, 5, "+json"))
            return true;
        /* curl -d sends this type; llama-server reads the body as JSON
         * anyway, so a body that is a JSON object counts as one. */
        if (!caseeq(v, n, "application/x-www-form-urlencoded"))
            return false;
        break;
    }
    size_t i = jsonscan_skip_ws(body, len, 0);
    return i < len && body[i] == '{';
}

/* The span of the string value at d[start, end) (quotes included) as key
 * bytes, escapes decoded. */
static struct jsonscan_key string_bytes(const char *d, size_t start, size_t end)
{
    struct jsonscan_member m = {.key = start, .key_end = end};
    return jsonscan_key_member(d, &m);
}

/* True when the string value at d[start, end) decodes to lit (or, with
 * prefix, starts with it). */
static bool string_is(const char *d, size_t start, size_t end, const char *lit, size_t lit_len,
                      bool prefix)
{
    if (d[start] != '"')
        return false;
    struct jsonscan_key k = string_bytes(d, start, end);
    for (size_t i = 0; i < lit_len; i++)
        if (jsonscan_key_next(&k) != (unsigned char)lit[i])
            return false;
    return prefix || jsonscan_key_next(&k) < 0;
}

#define INDEX_INVALID SIZE_MAX

/* An array index token: digits without leading zeros ("-", the element
 * after the last, is never there to read). */
static size_t parse_index(const char *p, const char *end)
{
    size_t n = (size_t)(end - p), v = 0;
    if (n == 0 || n > 15 || (n > 1 && p[0] == '0'))
        return INDEX_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return INDEX_INVALID;
        v = v * 10 + (size_t)(p[i] - '0');
    }
    return v;
}

/* Finds the value at pointer in validated text d, following the last
 * occurrence of a repeated key (as jsonedit and llama-server do). Returns
 * 0 with its offset, -ENOENT when it is not there, -ENOTDIR when a scalar
 * (or a non-index into an array) is in the way. */
static int resolve(const char *d, size_t len, const char *pointer, size_t *ret)
{
    size_t cur = jsonscan_skip_ws(d, len, 0);
    const char *p = pointer;
    while (*p) {
        const char *end = strchr(p + 1, '/');
        if (!end)
            end = p + strlen(p);
        struct jsonscan_key t = jsonscan_key_token(p + 1, end);
        struct jsonscan_iter it;
        struct jsonscan_member m;
        size_t next = SIZE_MAX;
        if (d[cur] == '{') {
            jsonscan_iter_init(&it, d, len, cur);
            while (jsonscan_iter_next(&it, &m))
                if (jsonscan_key_eq(jsonscan_key_member(d, &m), t))
                    next = m.value;
        } else if (d[cur] == '[') {
            size_t idx = parse_index(p + 1, end), k = 0;
            if (idx == INDEX_INVALID)
                return (end - p == 2 && p[1] == '-') ? -ENOENT : -ENOTDIR;
            jsonscan_iter_init(&it, d, len, cur);
            while (next == SIZE_MAX && jsonscan_iter_next(&it, &m))
                if (k++ == idx)
                    next = m.value;
        } else {
            return -ENOTDIR;
        }
        if (next == SIZE_MAX)
            return -ENOENT;
        cur = next;
        p = end;
    }
    *ret = cur;
    return 0;
}

/* The "model" of validated object text, decoded into buf. */
static int model_of(const char *d, size_t len, char *buf, size_t cap)
{
    size_t v;
    if (resolve(d, len, "/model", &v) < 0 || d[v] != '"')
        return -ENOENT;
    size_t end = jsonscan_skip_value(d, len, v), n = 0;
    struct jsonscan_key k = string_bytes(d, v, end);
    int c;
    while ((c = jsonscan_key_next(&k)) >= 0) {
        if (c == 0)
            return -ENOENT; /* not representable as a C string */
        n++;
    }
    if (n >= cap)
        return -ENAMETOOLONG;
    k = string_bytes(d, v, end);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)jsonscan_key_next(&k);
    buf[n] = '\0';
    return 0;
}

int rewrite_body_model(const char *body, size_t len, char *buf, size_t cap)
{
    struct jsonscan_info info;
    int r = jsonscan_validate(body, len, JSONEDIT_MAX_DEPTH, &info);
    if (r < 0)
        return r;
    if (body[info.start] != '{')
        return -EINVAL;
    return model_of(body, len, buf, cap);
}

static bool chat_dialect(enum dialect_kind d)
{
    return d == DIALECT_OPENAI_CHAT || d == DIALECT_RESPONSES || d == DIALECT_ANTHROPIC;
}

/* llama-server reads chat_template_kwargs.enable_thinking (on every chat
 * route, /v1/messages included); Anthropic's own thinking field counts
 * only when the kwargs do not say. Validated object text. */
static int thinking_of(enum dialect_kind dk, const char *d, size_t len)
{
    size_t v;
    if (!chat_dialect(dk))
        return -1;
    if (resolve(d, len, "/chat_template_kwargs/enable_thinking", &v) == 0) {
        if (d[v] == 't')
            return 1;
        if (d[v] == 'f')
            return 0;
    }
    if (dk == DIALECT_ANTHROPIC && resolve(d, len, "/thinking/type", &v) == 0 &&
        string_is(d, v, jsonscan_skip_value(d, len, v), "enabled", 7, false))
        return 1;
    return -1;
}

int rewrite_body_thinking(enum dialect_kind d, const char *body, size_t len)
{
    struct jsonscan_info info;
    if (jsonscan_validate(body, len, JSONEDIT_MAX_DEPTH, &info) < 0 || body[info.start] != '{')
        return -1;
    return thinking_of(d, body, len);
}

/* --- Applying --- */

/* The body as edited so far. */
struct work {
    const char *doc; /* borrowed: the request's body, or == owned */
    size_t len;
    char *owned;     /* owned: the latest edited text, NULL before any edit */
    unsigned gen;    /* bumped on every change (for the model cache) */
};

/* Takes the outcome of one jsonedit call. `keep` is the text the current
 * rule started from: it stays alive for a rollback. */
static int step(struct work *w, int r, char *out, size_t out_len, const char *keep)
{
    if (r < 0)
        return r;
    if (r == JSONEDIT_UNCHANGED) {
        free(out);
        return 0;
    }
    if (w->owned != keep)
        free(w->owned);
    w->owned = out;
    w->doc = out;
    w->len = out_len;
    w->gen++;
    return 0;
}

/* Ends a group of edits that began at *saved: kept, or undone. */
static void work_end(struct work *w, const struct work *saved, bool keep)
{
    if (keep) {
        if (saved->owned != w->owned)
            free(saved->owned);
        return;
    }
    if (w->owned != saved->owned)
        free(w->owned);
    unsigned gen = w->gen;
    *w = *saved;
    w->gen = gen + 1;
}

/* Cuts doc[a, b) out of the copy being assembled in out. */
static void cut(const char *doc, char *out, size_t *n, size_t *pos, size_t a, size_t b)
{
    memcpy(out + *n, doc + *pos, a - *pos);
    *n += a - *pos;
    *pos = b;
}

static bool block_matches(const char *d, size_t len, size_t el, const struct drop *dr)
{
    if (d[el] != '{')
        return false;
    struct jsonscan_iter it;
    struct jsonscan_member m, text = {0};
    bool found = false;
    static const char text_key[] = "text";
    struct jsonscan_key key = jsonscan_key_token(text_key, text_key + 4);
    jsonscan_iter_init(&it, d, len, el);
    while (jsonscan_iter_next(&it, &m)) {
        if (jsonscan_key_eq(jsonscan_key_member(d, &m), key)) {
            text = m;
            found = true;
        }
    }
    return found &&
           string_is(d, text.value, text.value_end, dr->prefix, dr->prefix_len, true);
}

/* Removes the matching elements of the array at dr->path in one pass,
 * with the separators jsonedit_delete would remove: from a run of dropped
 * elements up to the next kept one, or, for a run at the end, from the
 * last kept element's end. A path that is missing or not an array has
 * nothing to drop. */
static int drop_blocks(struct work *w, const struct drop *dr, const char *keep)
{
    const char *d = w->doc;
    size_t arr, matches = 0;
    struct jsonscan_iter it;
    struct jsonscan_member m;
    if (resolve(d, w->len, dr->path, &arr) < 0 || d[arr] != '[')
        return 0;
    jsonscan_iter_init(&it, d, w->len, arr);
    while (jsonscan_iter_next(&it, &m))
        matches += block_matches(d, w->len, m.value, dr);
    if (!matches)
        return 0;

    char *out = malloc(w->len + 1);
    if (!out)
        return -ENOMEM;
    size_t n = 0, pos = 0, run = SIZE_MAX, run_end = 0, kept_end = SIZE_MAX;
    jsonscan_iter_init(&it, d, w->len, arr);
    while (jsonscan_iter_next(&it, &m)) {
        if (block_matches(d, w->len, m.value, dr)) {
            if (run == SIZE_MAX)
                run = m.value;
            run_end = m.value_end;
            continue;
        }
        if (run != SIZE_MAX)
            cut(d, out, &n, &pos, run, m.value);
        run = SIZE_MAX;
        kept_end = m.value_end;
    }
    if (run != SIZE_MAX)
        cut(d, out, &n, &pos, kept_end != SIZE_MAX ? kept_end : run, run_end);
    cut(d, out, &n, &pos, w->len, w->len);
    out[n] = '\0';
    return step(w, 0, out, n, keep);
}

static int apply_thinking(const struct rewrite_rules *rr, enum dialect_kind dk, struct work *w,
                          enum rewrite_thinking t, const char *keep, bool *unsupported)
{
    static const char off[] = "{\"chat_template_kwargs\":{\"enable_thinking\":false}}";
    static const char on[] = "{\"chat_template_kwargs\":{\"enable_thinking\":true}}";
    static const char disabled[] = "{\"type\":\"disabled\"}";
    char *out = NULL;
    size_t n = 0;
    int r;

    if (t != REWRITE_THINKING_ON && t != REWRITE_THINKING_OFF)
        return 0;
    if (!chat_dialect(dk)) {
        *unsupported = true;
        return 0;
    }
    /* A merge keeps the client's other kwargs and replaces a non-object. */
    const char *patch = t == REWRITE_THINKING_ON ? on : off;
    r = jsonedit_merge(w->doc, w->len, patch, strlen(patch), &out, &n);
    if ((r = step(w, r, out, n, keep)) < 0)
        return r;
    if (dk == DIALECT_ANTHROPIC && t == REWRITE_THINKING_OFF && rr->anthropic_thinking_field) {
        out = NULL;
        r = jsonedit_set(w->doc, w->len, "/thinking", disabled, strlen(disabled), &out, &n);
        r = step(w, r, out, n, keep);
    }
    return r;
}

/* Applies one rule's actions in their fixed order. Returns 0, -ENOMEM, or
 * another negative error for an action that could not apply (the caller
 * undoes the rule). */
static int apply_rule(const struct rewrite_rules *rr, const struct rule *ru,
                      const struct rewrite_request *q, bool thinking_frozen, struct work *w,
                      const char *keep, bool *unsupported)
{
    char *out;
    size_t n;
    int r;
    for (size_t i = 0; i < ru->n_drops; i++)
        if ((r = drop_blocks(w, &ru->drops[i], keep)) < 0)
            return r;
    for (size_t i = 0; i < ru->n_deletes; i++) {
        out = NULL;
        r = jsonedit_delete(w->doc, w->len, ru->deletes[i], &out, &n);
        /* A scalar on the path: there is nothing there to delete. */
        if (r == JSONEDIT_ERR_NOT_CONTAINER)
            continue;
        if ((r = step(w, r, out, n, keep)) < 0)
            return r;
    }
    for (size_t i = 0; i < ru->n_sets; i++) {
        out = NULL;
        r = jsonedit_set(w->doc, w->len, ru->sets[i].pointer, ru->sets[i].value,
                         ru->sets[i].value_len, &out, &n);
        if ((r = step(w, r, out, n, keep)) < 0)
            return r;
    }
    if (ru->merge) {
        out = NULL;
        r = jsonedit_merge(w->doc, w->len, ru->merge, ru->merge_len, &out, &n);
        if ((r = step(w, r, out, n, keep)) < 0)
            return r;
    }
    /* The override decides thinking instead of the rules; after a rule
     * said pass, later rules leave it too. */
    if (q->override == REWRITE_THINKING_UNSET && !thinking_frozen &&
        (r = apply_thinking(rr, q->dialect, w, ru->thinking, keep, unsupported)) < 0)
        return r;
    if (ru->model_name) {
        out = NULL;
        r = jsonedit_set(w->doc, w->len, "/model", ru->model_json, ru->model_json_len, &out, &n);
        if ((r = step(w, r, out, n, keep)) < 0)
            return r;
    }
    return 0;
}

/* A rule's match on everything the head tells; the model is the body's.
 * An unknown upstream matches when upstream_maybe (header phase). */
static bool match_head(const struct rule *ru, const struct rewrite_request *q, bool upstream_maybe)
{
    if (ru->method.n && (!q->method || !globs_match(&ru->method, q->method, strlen(q->method), false)))
        return false;
    if (ru->route.n) {
        size_t n = 0;
        while (q->path && n < q->path_len && q->path[n] != '?')
            n++;
        if (!q->path || !globs_match(&ru->route, q->path, n, false))
            return false;
    }
    for (size_t i = 0; i < ru->n_headers; i++) {
        const struct header_match *hm = &ru->headers[i];
        bool ok = false;
        for (size_t k = 0; !ok && q->head && k < q->head->n_headers; k++) {
            const struct http_header *h = &q->head->headers[k];
            const char *v = h->value.p;
            size_t vlen = h->value.len;
            trim(&v, &vlen);
            ok = caseeq(h->name.p, h->name.len, hm->name) &&
                 globs_match(&hm->values, v, vlen, false);
        }
        if (!ok)
            return false; /* a missing header does not match */
    }
    if (ru->upstream.n && !q->upstream)
        return upstream_maybe;
    if (ru->upstream.n && !globs_match(&ru->upstream, q->upstream, strlen(q->upstream), false))
        return false;
    return true;
}

bool rewrite_wants_body(const struct rewrite_rules *rr, const struct rewrite_request *q)
{
    if (q->override != REWRITE_THINKING_UNSET)
        return true;
    for (size_t i = 0; i < rr->n_rules; i++)
        if (match_head(&rr->rules[i], q, true))
            return true;
    return false;
}

/* Whether the rule would edit a body of this dialect. */
static bool edits_body(const struct rule *ru, enum dialect_kind dk)
{
    return ru->n_drops || ru->n_deletes || ru->n_sets || ru->merge || ru->model_name ||
           (chat_dialect(dk) &&
            (ru->thinking == REWRITE_THINKING_ON || ru->thinking == REWRITE_THINKING_OFF));
}

/* Appends a rule name to res->rules; once one does not fit, "..." ends
 * the list and later names are left out. */
static void add_name(struct rewrite_result *res, const char *name, bool *truncated)
{
    size_t used = strlen(res->rules), n = strlen(name);
    if (*truncated)
        return;
    if (used + (used ? 1 : 0) + n < sizeof(res->rules)) {
        snprintf(res->rules + used, sizeof(res->rules) - used, "%s%s", used ? "," : "", name);
        return;
    }
    *truncated = true;
    while (used + 4 >= sizeof(res->rules)) {
        char *comma = strrchr(res->rules, ',');
        used = comma ? (size_t)(comma - res->rules) : 0;
        res->rules[used] = '\0';
    }
    snprintf(res->rules + used, sizeof(res->rules) - used, "%s...", used ? "," : "");
}

static void add_applied(struct rewrite_result *res, const struct rule *ru, bool *truncated)
{
    add_name(res, ru->name, truncated);
    /* At most REWRITE_MAX_HEADER_EDITS in all rules (checked at load). */
    for (size_t i = 0; i < ru->n_hedits && res->n_headers < REWRITE_MAX_HEADER_EDITS; i++)
        res->headers[res->n_headers++] = ru->hedits[i];
    if (ru->model_name)
        res->model = ru->model_name;
}

/* Why the body cannot be edited, or REWRITE_SKIP_NONE. */
static enum rewrite_skip body_state(const struct rewrite_rules *rr,
                                    const struct rewrite_request *q, const char *body, size_t len)
{
    struct jsonscan_info info;
    if (len > rr->max_body)
        return REWRITE_SKIP_TOO_LARGE;
    if (!is_json_body(q->head, body, len))
        return REWRITE_SKIP_NOT_JSON;
    int r = jsonscan_validate(body, len, JSONEDIT_MAX_DEPTH, &info);
    if (r == JSONSCAN_ERR_TOO_DEEP)
        return REWRITE_SKIP_TOO_DEEP;
    if (r < 0)
        return REWRITE_SKIP_INVALID_JSON;
    if (body[info.start] != '{')
        return REWRITE_SKIP_NOT_OBJECT;
    return REWRITE_SKIP_NONE;
}

/* No body to edit (none, or unusable): rules that match without a model
 * still give their header edits. The skip reason is reported only when a
 * rule or the override wanted to edit the body. */
static void apply_headers_only(const struct rewrite_rules *rr, const struct rewrite_request *q,
                               enum rewrite_skip why, struct rewrite_result *res)
{
    bool wanted = chat_dialect(q->dialect) &&
                  (q->override == REWRITE_THINKING_ON || q->override == REWRITE_THINKING_OFF);
    bool truncated = false;
    for (size_t i = 0; i < rr->n_rules; i++) {
        const struct rule *ru = &rr->rules[i];
        if (!match_head(ru, q, false))
            continue;
        if (ru->model.n) {
            wanted = true; /* it needed the body to decide */
            continue;
        }
        wanted = wanted || edits_body(ru, q->dialect);
        if (ru->n_hedits)
            add_applied(res, ru, &truncated);
    }
    res->skip = wanted ? why : REWRITE_SKIP_NONE;
}

int rewrite_apply(const struct rewrite_rules *rr, const struct rewrite_request *q,
                  const char *body, size_t len, struct rewrite_result *ret)
{
    struct rewrite_result res;
    struct work w = {.doc = body, .len = len};
    char model[REWRITE_MAX_MODEL];
    unsigned model_gen = 0;
    bool have_model = false, model_read = false, truncated = false, thinking_frozen = false;
    int r = 0;

    if (!rr || !q || !ret || (!body && len <= rr->max_body && len))
        return -EINVAL;
    memset(&res, 0, sizeof(res));
    res.thinking = -1;
    if (len == 0) {
        apply_headers_only(rr, q, REWRITE_SKIP_NONE, &res);
        goto done;
    }
    enum rewrite_skip why = body_state(rr, q, body, len);
    if (why != REWRITE_SKIP_NONE) {
        apply_headers_only(rr, q, why, &res);
        goto done;
    }

    for (size_t i = 0; i < rr->n_rules; i++) {
        const struct rule *ru = &rr->rules[i];
        if (!match_head(ru, q, false))
            continue;
        if (ru->model.n) {
            /* Rules see the model as earlier rules left it. */
            if (!model_read || model_gen != w.gen) {
                have_model = model_of(w.doc, w.len, model, sizeof(model)) == 0;
                model_read = true;
                model_gen = w.gen;
            }
            if (!have_model || !globs_match(&ru->model, model, strlen(model), false))
                continue;
        }
        struct work saved = w;
        bool unsupported = false;
        r = apply_rule(rr, ru, q, thinking_frozen, &w, saved.owned, &unsupported);
        work_end(&w, &saved, r == 0);
        if (r == -ENOMEM)
            goto fail;
        if (r < 0) {
            if (!res.failed_rule)
                res.failed_rule = ru->name;
            res.skip = REWRITE_SKIP_RULE_FAILED;
            continue;
        }
        res.thinking_unsupported = res.thinking_unsupported || unsupported;
        thinking_frozen = thinking_frozen || ru->thinking == REWRITE_THINKING_PASS;
        add_applied(&res, ru, &truncated);
    }
    if (q->override != REWRITE_THINKING_UNSET) {
        struct work saved = w;
        r = apply_thinking(rr, q->dialect, &w, q->override, saved.owned, &res.thinking_unsupported);
        work_end(&w, &saved, r == 0);
        if (r == -ENOMEM)
            goto fail;
        if (r < 0) {
            if (!res.failed_rule)
                res.failed_rule = REWRITE_THINKING_HEADER;
            res.skip = REWRITE_SKIP_RULE_FAILED;
        }
    }
    res.thinking = thinking_of(q->dialect, w.doc, w.len);
    /* Edits that cancel out give the request's own bytes: no new body. */
    if (w.owned && w.len == len && memcmp(w.owned, body, len) == 0) {
        free(w.owned);
        w.owned = NULL;
    }
    res.body = w.owned;
    res.body_len = w.owned ? w.len : 0;
    res.changed = w.owned != NULL;
done:
    *ret = res;
    return 0;
fail:
    free(w.owned);
    return r;
}

void rewrite_result_finish(struct rewrite_result *res)
{
    if (!res)
        return;
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
    res->changed = false;
}

const char *rewrite_skip_name(enum rewrite_skip s)
{
    switch (s) {
    case REWRITE_SKIP_NONE:
        return "";
    case REWRITE_SKIP_NOT_JSON:
        return "not-json";
    case REWRITE_SKIP_INVALID_JSON:
        return "invalid-json";
    case REWRITE_SKIP_NOT_OBJECT:
        return "not-object";
    case REWRITE_SKIP_TOO_LARGE:
        return "too-large";
    case REWRITE_SKIP_TOO_DEEP:
        return "too-deep";
    case REWRITE_SKIP_RULE_FAILED:
        return "rule-failed";
    }
    return "";
}
