/* jsonref: reference implementations on cJSON trees, for checking
 * jsonedit's splices against the plain tree algorithms (tests and fuzz). */
#ifndef TOKENTAP_JSONREF_H
#define TOKENTAP_JSONREF_H

#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

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

#endif
