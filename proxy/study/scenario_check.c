/* scenario: answer checks, parsed from a `checks:` mapping and judged
 * against an answer. Keywords are case-insensitive substrings; the regex
 * is POSIX extended, case-insensitive; lengths count characters. */
#include "study/scenario.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "study/scenario_int.h"

static int oom(const struct config_doc *doc, struct config_err *err)
{
    snprintf(err->msg, sizeof(err->msg), "%s: out of memory", config_name(doc));
    return -ENOMEM;
}

/* ---- parsing ---- */

static int get_keywords(const struct config_doc *doc, const cJSON *obj, const char *key,
                        char ***ret, size_t *ret_n, struct config_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    /* A single keyword may be written without brackets. */
    size_t n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? (size_t)cJSON_GetArraySize(v) : 0;
    if (!cJSON_IsString(v) && !cJSON_IsArray(v))
        return config_error(doc, v, err, "'%s' must be a list of keywords", key);
    if (n > SCENARIO_MAX_KEYWORDS)
        return config_error(doc, v, err, "'%s' has more than %d keywords", key,
                            SCENARIO_MAX_KEYWORDS);
    char **list = calloc(n ? n : 1, sizeof(*list));
    if (!list)
        return oom(doc, err);
    size_t got = 0;
    int r = 0;
    const cJSON *item = cJSON_IsString(v) ? v : v->child;
    for (; item && got < n; item = item->next) {
        if (!cJSON_IsString(item)) {
            r = config_error(doc, item, err, "keywords must be strings (quote numbers: \"404\")");
            goto fail;
        }
        size_t len = strlen(item->valuestring);
        if (len == 0 || len > SCENARIO_MAX_KEYWORD) {
            r = config_error(doc, item, err, "a keyword must be 1 to %d bytes",
                             SCENARIO_MAX_KEYWORD);
            goto fail;
        }
        list[got] = strdup(item->valuestring);
        if (!list[got]) {
            r = oom(doc, err);
            goto fail;
        }
        got++;
    }
    *ret = list;
    *ret_n = got;
    return 0;
fail:
    for (size_t i = 0; i < got; i++)
        free(list[i]);
    free(list);
    return r;
}

void scenario_check_free(struct scenario_check *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_all; i++)
        free(c->all[i]);
    for (size_t i = 0; i < c->n_any; i++)
        free(c->any[i]);
    for (size_t i = 0; i < c->n_none; i++)
        free(c->none[i]);
    free(c->all);
    free(c->any);
    free(c->none);
    free(c->regex);
    if (c->re)
        regfree(c->re);
    free(c->re);
    free(c);
}

int scenario_check_parse(const struct config_doc *doc, const cJSON *obj,
                         struct scenario_check **ret, struct config_err *err)
{
    static const char *const keys[] = {"all",        "any",        "none", "regex",
                                       "min_length", "max_length", "read", NULL};
    int r = config_check_keys(doc, obj, keys, err);
    if (r < 0)
        return r;
    if (!obj->child) {
        *ret = NULL;
        return 0;
    }
    struct scenario_check *c = calloc(1, sizeof(*c));
    if (!c)
        return oom(doc, err);
    r = get_keywords(doc, obj, "all", &c->all, &c->n_all, err);
    if (r == 0)
        r = get_keywords(doc, obj, "any", &c->any, &c->n_any, err);
    if (r == 0)
        r = get_keywords(doc, obj, "none", &c->none, &c->n_none, err);
    if (r < 0)
        goto fail;
    if (c->n_all + c->n_any > SCENARIO_MAX_KEYWORDS) {
        r = config_error(doc, obj, err, "'all' and 'any' have more than %d keywords together",
                         SCENARIO_MAX_KEYWORDS);
        goto fail;
    }
    const char *regex = NULL;
    r = config_get_string(doc, obj, "regex", false, &regex, err);
    if (r < 0)
        goto fail;
    if (regex) {
        const cJSON *node = cJSON_GetObjectItemCaseSensitive(obj, "regex");
        if (!regex[0] || strlen(regex) > SCENARIO_MAX_REGEX) {
            r = config_error(doc, node, err, "'regex' must be 1 to %d bytes", SCENARIO_MAX_REGEX);
            goto fail;
        }
        c->regex = strdup(regex);
        c->re = calloc(1, sizeof(*c->re));
        if (!c->regex || !c->re) {
            r = oom(doc, err);
            goto fail;
        }
        int rc = regcomp(c->re, regex, REG_EXTENDED | REG_ICASE | REG_NOSUB);
        if (rc != 0) {
            char why[160];
            regerror(rc, c->re, why, sizeof(why));
            free(c->re); /* regcomp failed: nothing to regfree */
            c->re = NULL;
            r = config_error(doc, node, err, "bad regex '%.80s': %s", regex, why);
            goto fail;
        }
    }
    uint64_t min = 0, max = 0;
    r = config_get_u64(doc, obj, "min_length", 0, 1000000000, &min, err);
    if (r == 0)
        r = config_get_u64(doc, obj, "max_length", 1, 1000000000, &max, err);
    if (r < 0)
        goto fail;
    if (max && min > max) {
        r = config_error(doc, cJSON_GetObjectItemCaseSensitive(obj, "max_length"), err,
                         "'max_length' (%llu) is below 'min_length' (%llu)",
                         (unsigned long long)max, (unsigned long long)min);
        goto fail;
    }
    c->min_length = (size_t)min;
    c->max_length = (size_t)max;
    const char *read = NULL;
    r = config_get_string(doc, obj, "read", false, &read, err);
    if (r < 0)
        goto fail;
    if (read && strcmp(read, "content") == 0) {
        c->read = SCENARIO_READ_CONTENT;
    } else if (read && strcmp(read, "all") == 0) {
        c->read = SCENARIO_READ_ALL;
    } else if (read) {
        r = config_error(doc, cJSON_GetObjectItemCaseSensitive(obj, "read"), err,
                         "'read' must be content or all, not '%.80s'", read);
        goto fail;
    }
    *ret = c;
    return 0;
fail:
    scenario_check_free(c);
    return r;
}

/* ---- judging ---- */

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

static void add_reason(struct scenario_check_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_reason(struct scenario_check_result *res, const char *fmt, ...)
{
    size_t used = strlen(res->reason);
    if (used && used + 2 < sizeof(res->reason)) {
        memcpy(res->reason + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason + used, sizeof(res->reason) - used, fmt, ap);
    va_end(ap);
}

struct texts {
    const char *content;
    const char *reasoning; /* NULL unless read: all */
};

/* strcasestr (glibc, two-way: linear in the answer's length) folds ASCII
 * case; other bytes compare as they are. */
static bool contains(const struct texts *t, const char *kw)
{
    return strcasestr(t->content, kw) || (t->reasoning && strcasestr(t->reasoning, kw));
}

void scenario_check(const struct scenario_check *c, const char *content, const char *reasoning,
                    struct scenario_check_result *ret)
{
    struct scenario_check_result *res = ret;
    memset(res, 0, sizeof(*res));
    res->pass = true;
    struct texts t = {content ? content : "", c->read == SCENARIO_READ_ALL ? reasoning : NULL};

    for (size_t i = 0; i < c->n_all; i++) {
        if (contains(&t, c->all[i])) {
            res->found[res->n_found++] = c->all[i];
        } else {
            res->missing[res->n_missing++] = c->all[i];
            res->pass = false;
        }
    }
    size_t any_found = 0;
    for (size_t i = 0; i < c->n_any; i++) {
        if (contains(&t, c->any[i])) {
            res->found[res->n_found++] = c->any[i];
            any_found++;
        }
    }
    if (c->n_any && !any_found) {
        for (size_t i = 0; i < c->n_any; i++)
            res->missing[res->n_missing++] = c->any[i];
        res->pass = false;
    }
    for (size_t i = 0; i < c->n_none; i++) {
        if (contains(&t, c->none[i])) {
            add_reason(res, "unwanted keyword '%s' found", c->none[i]);
            res->pass = false;
        }
    }
    if (c->re && regexec(c->re, t.content, 0, NULL, 0) != 0 &&
        !(t.reasoning && regexec(c->re, t.reasoning, 0, NULL, 0) == 0)) {
        add_reason(res, "no match for regex '%s'", c->regex);
        res->pass = false;
    }
    if (c->min_length || c->max_length) {
        size_t n = utf8_chars(t.content) + (t.reasoning ? utf8_chars(t.reasoning) : 0);
        if (n < c->min_length) {
            add_reason(res, "%zu characters, fewer than min_length %zu", n, c->min_length);
            res->pass = false;
        }
        if (c->max_length && n > c->max_length) {
            add_reason(res, "%zu characters, more than max_length %zu", n, c->max_length);
            res->pass = false;
        }
    }
}
