/* rewrite_load: builds a rule set from the config's `rewrite:` section,
 * checking everything once so that applying never meets a bad rule.
 * Errors read "file:line: message" (docs/rewrite.md is the language). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/jsonedit.h"
#include "rewrite/rewrite_int.h"

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
        if (rewrite_caseeq(name, strlen(name), reserved[i]))
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
        if (len && (rewrite_is_ows(value[0]) || rewrite_is_ows(value[len - 1])))
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
