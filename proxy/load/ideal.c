#include "load/ideal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/splitmix.h"

/* An open-addressing set of 64-bit keys, one per prefix: key(i) chains
 * key(i - 1) with id i, so equal keys mean equal prefixes (up to a 2^-64
 * chance). 0 is the empty mark (a key of 0 is stored as 1). */
struct ideal {
    uint64_t *keys; /* owned, cap entries */
    size_t cap, n;
    int full;
};

int ideal_new(struct ideal **ret)
{
    struct ideal *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cap = 4096;
    c->keys = calloc(c->cap, sizeof(*c->keys));
    if (!c->keys) {
        free(c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}

void ideal_free(struct ideal *c)
{
    if (!c)
        return;
    free(c->keys);
    free(c);
}

static bool has(const struct ideal *c, uint64_t k)
{
    for (size_t i = k & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        if (c->keys[i] == k)
            return true;
        if (c->keys[i] == 0)
            return false;
    }
}

static void put(uint64_t *keys, size_t cap, uint64_t k)
{
    size_t i = k & (cap - 1);
    while (keys[i] != 0 && keys[i] != k)
        i = (i + 1) & (cap - 1);
    keys[i] = k;
}

/* Room for `more` keys at a load of at most 1/2. */
static int reserve(struct ideal *c, size_t more)
{
    if ((c->n + more) * 2 <= c->cap)
        return 0;
    size_t cap = c->cap;
    while ((c->n + more) * 2 > cap)
        cap *= 2;
    uint64_t *keys = calloc(cap, sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    for (size_t i = 0; i < c->cap; i++)
        if (c->keys[i])
            put(keys, cap, c->keys[i]);
    free(c->keys);
    c->keys = keys;
    c->cap = cap;
    return 0;
}

int ideal_add(struct ideal *c, uint64_t salt, const uint64_t *ids, size_t n, size_t *ret_shared)
{
    size_t add = n;
    if (c->n + add > IDEAL_MAX_PREFIXES) {
        add = c->n < IDEAL_MAX_PREFIXES ? IDEAL_MAX_PREFIXES - c->n : 0;
        c->full = 1;
    }
    if (reserve(c, add) < 0)
        return -ENOMEM;
    /* Every prefix of a remembered prompt is remembered, so the shared
     * ones are a run from the start. */
    uint64_t k = splitmix_hash(salt);
    size_t shared = 0;
    bool hit = true;
    for (size_t i = 0; i < n; i++) {
        k = splitmix_hash(k ^ splitmix_hash(ids[i]));
        if (hit && has(c, k)) {
            shared = i + 1;
            continue;
        }
        hit = false;
        if (add == 0)
            break;
        put(c->keys, c->cap, k);
        c->n++;
        add--;
    }
    *ret_shared = shared;
    return 0;
}

int ideal_full(const struct ideal *c)
{
    return c->full;
}
