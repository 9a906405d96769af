/* jsonref: reference implementations on cJSON trees, for checking
 * jsonedit's splices against the plain tree algorithms (tests and fuzz). */
#ifndef TOKENTAP_JSONREF_H
#define TOKENTAP_JSONREF_H

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/jsonedit.h"

/* RFC 7386 MergePatch(target, patch); returns the new target (which may
 * be a fresh node, replacing target, which is then freed). */
static inline cJSON *ref_merge(cJSON *target, const cJSON *patch)
{
    if (!cJSON_IsObject(patch)) {
        cJSON_Delete(target);
        return cJSON_Duplicate(patch, 1);
    }
    if (!cJSON_IsObject(target)) {
        cJSON_Delete(target);
        target = cJSON_CreateObject();
    }
    for (const cJSON *p = patch->child; p; p = p->next) {
        if (cJSON_IsNull(p)) {
            cJSON_DeleteItemFromObjectCaseSensitive(target, p->string);
            continue;
        }
        cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(target, p->string);
        cJSON *merged = ref_merge(old, p);
        cJSON_AddItemToObject(target, p->string, merged);
    }
    return target;
}

/* True when some object in the tree repeats a key (cJSON's lookups would
 * then disagree with jsonedit's every-occurrence rule). */
static inline bool ref_has_dup_keys(const cJSON *n)
{
    for (const cJSON *c = n ? n->child : NULL; c; c = c->next) {
        if (cJSON_IsObject(n))
            for (const cJSON *d = c->next; d; d = d->next)
                if (c->string && d->string && strcmp(c->string, d->string) == 0)
                    return true;
        if (ref_has_dup_keys(c))
            return true;
    }
    return false;
}

/* True when some string or key holds a NUL (cJSON truncates them, so
 * comparisons through cJSON would be unreliable). */
static inline bool ref_has_nul_escape(const char *text, size_t len)
{
    for (size_t i = 0; i + 5 < len; i++)
        if (text[i] == '\\' && memcmp(text + i + 1, "u0000", 5) == 0)
            return true;
    return false;
}

/* Structural equality in linear time (cJSON_Compare recurses both ways
 * at every level: exponential in depth). Numbers compare exactly, as both
 * sides parse the same spellings; objects must not repeat keys. */
static inline bool ref_equal(const cJSON *a, const cJSON *b)
{
    if (!a || !b)
        return a == b;
    if ((a->type & 0xff) != (b->type & 0xff))
        return false;
    if (cJSON_IsNumber(a))
        return a->valuedouble == b->valuedouble || (isnan(a->valuedouble) && isnan(b->valuedouble));
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0;
    if (cJSON_IsArray(a)) {
        const cJSON *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next)
            if (!ref_equal(x, y))
                return false;
        return !x && !y;
    }
    if (cJSON_IsObject(a)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
            return false;
        for (const cJSON *x = a->child; x; x = x->next)
            if (!ref_equal(x, cJSON_GetObjectItemCaseSensitive(b, x->string)))
                return false;
    }
    return true;
}

/* True when cJSON can stand in for jsonedit's view of text: it parses the
 * same, has no duplicate keys, no \u0000 (cJSON truncates at it), and
 * nothing after the value. Returns the tree (caller frees) or NULL. */
static inline cJSON *ref_parse(const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *t = cJSON_ParseWithLengthOpts(text, len, &end, false);
    while (t && end < text + len && strchr(" \t\r\n", *end) && *end)
        end++;
    if (!t || end != text + len || ref_has_dup_keys(t) || ref_has_nul_escape(text, len)) {
        cJSON_Delete(t);
        return NULL;
    }
    return t;
}

/* Decodes the pointer token after the '/' at *p and advances *p past it;
 * returns a malloc'd string. */
static inline char *ref_token(const char **p)
{
    const char *s = *p + 1, *e = strchr(s, '/');
    if (!e)
        e = s + strlen(s);
    char *t = malloc((size_t)(e - s) + 1);
    size_t n = 0;
    for (const char *q = s; q < e; q++) {
        if (*q == '~') {
            t[n++] = q[1] == '0' ? '~' : '/';
            q++;
        } else {
            t[n++] = *q;
        }
    }
    t[n] = '\0';
    *p = e;
    return t;
}

/* An array index: >= 0, -1 for "-", -2 when not an index (as jsonedit:
 * digits without leading zeros, at most 15 of them). */
static inline long long ref_index(const char *t)
{
    size_t n = strlen(t);
    if (strcmp(t, "-") == 0)
        return -1;
    if (n == 0 || n > 15 || (n > 1 && t[0] == '0') || strspn(t, "0123456789") != n)
        return -2;
    return strtoll(t, NULL, 10);
}

/* jsonedit_set on a tree: 0 or the error jsonedit must give. Takes value. */
static inline int ref_set(cJSON *root, const char *pointer, cJSON *value)
{
    cJSON *cur = root;
    const char *p = pointer;
    int r = 0;
    while (*p) {
        char *t = ref_token(&p);
        bool last = *p == '\0';
        if (cJSON_IsObject(cur)) {
            cJSON *child = cJSON_GetObjectItemCaseSensitive(cur, t);
            if (last && child) {
                cJSON_ReplaceItemInObjectCaseSensitive(cur, t, value);
                value = NULL;
            } else if (last) {
                cJSON_AddItemToObject(cur, t, value);
                value = NULL;
            } else if (!child) {
                child = cJSON_CreateObject();
                cJSON_AddItemToObject(cur, t, child);
            }
            cur = child;
        } else if (cJSON_IsArray(cur)) {
            long long i = ref_index(t), n = cJSON_GetArraySize(cur);
            if (i == -2) {
                r = JSONEDIT_ERR_NOT_CONTAINER;
            } else if (last && i == -1) {
                cJSON_AddItemToArray(cur, value);
                value = NULL;
            } else if (i < 0 || i >= n) {
                r = JSONEDIT_ERR_NO_ELEMENT;
            } else if (last) {
                cJSON_ReplaceItemInArray(cur, (int)i, value);
                value = NULL;
            } else {
                cur = cJSON_GetArrayItem(cur, (int)i);
            }
        } else {
            r = JSONEDIT_ERR_NOT_CONTAINER;
        }
        free(t);
        if (r || last)
            break;
    }
    cJSON_Delete(value);
    return r;
}

/* jsonedit_delete on a tree: 0, JSONEDIT_UNCHANGED or the error. */
static inline int ref_delete(cJSON *root, const char *pointer)
{
    cJSON *cur = root;
    const char *p = pointer;
    int r = JSONEDIT_UNCHANGED;
    while (*p && r == JSONEDIT_UNCHANGED) {
        char *t = ref_token(&p);
        bool last = *p == '\0';
        cJSON *child = NULL;
        if (cJSON_IsObject(cur)) {
            child = cJSON_GetObjectItemCaseSensitive(cur, t);
            if (last && child) {
                cJSON_DeleteItemFromObjectCaseSensitive(cur, t);
                r = 0;
            }
        } else if (cJSON_IsArray(cur)) {
            long long i = ref_index(t), n = cJSON_GetArraySize(cur);
            if (i == -2)
                r = JSONEDIT_ERR_NOT_CONTAINER;
            else if (i >= 0 && i < n)
                child = cJSON_GetArrayItem(cur, (int)i);
            if (last && child) {
                cJSON_DeleteItemFromArray(cur, (int)i);
                r = 0;
            }
        } else {
            r = JSONEDIT_ERR_NOT_CONTAINER;
        }
        free(t);
        if (!child || last)
            break;
        cur = child;
    }
    return r;
}

#endif
