#include "rewrite/rewrite_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "wire/http.h"
#include "core/jsonedit.h"
#include "core/jsonscan.h"

_Static_assert(REWRITE_MAX_BODY_LIMIT <= JSONEDIT_MAX_BYTES, "max_body beyond jsonedit's limit");

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

/* Header values without surrounding optional whitespace. */
static void trim(const char **p, size_t *len)
{
    while (*len && rewrite_is_ows(**p)) {
        (*p)++;
        (*len)--;
    }
    while (*len && rewrite_is_ows((*p)[*len - 1]))
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

/* --- Reading request text --- */

int rewrite_thinking_override(const struct http_head *head, enum rewrite_thinking *ret)
{
    enum rewrite_thinking t = REWRITE_THINKING_UNSET;
    for (size_t i = 0; head && i < head->n_headers; i++) {
        const struct http_header *h = &head->headers[i];
        if (!rewrite_caseeq(h->name.p, h->name.len, REWRITE_THINKING_HEADER))
            continue;
        const char *v = h->value.p;
        size_t len = h->value.len;
        trim(&v, &len);
        enum rewrite_thinking this = rewrite_caseeq(v, len, "on")     ? REWRITE_THINKING_ON
                                     : rewrite_caseeq(v, len, "off")  ? REWRITE_THINKING_OFF
                                     : rewrite_caseeq(v, len, "pass") ? REWRITE_THINKING_PASS
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
        if (!rewrite_caseeq(h->name.p, h->name.len, "content-type"))
            continue;
        const char *v = h->value.p;
        size_t n = 0;
        while (n < h->value.len && v[n] != ';')
            n++;
        trim(&v, &n);
        if (rewrite_caseeq(v, n, "application/json"))
            return true;
        if (n > 5 && memchr(v, '/', n) && rewrite_caseeq(v + n - 5, 5, "+json"))
            return true;
        /* curl -d sends this type; llama-server reads the body as JSON
         * anyway, so a body that is a JSON object counts as one. */
        if (!rewrite_caseeq(v, n, "application/x-www-form-urlencoded"))
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
            ok = rewrite_caseeq(h->name.p, h->name.len, hm->name) &&
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

/* A rule whose one action is the thinking flag. */
static bool thinking_only(const struct rule *ru)
{
    return ru->thinking != REWRITE_THINKING_UNSET && !ru->n_drops && !ru->n_deletes && !ru->n_sets &&
           !ru->merge && !ru->model_name && !ru->n_hedits;
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
        /* A rule that only sets thinking did nothing when the header
         * decided it: the record must not name it. */
        if (!(q->override != REWRITE_THINKING_UNSET && thinking_only(ru)))
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
