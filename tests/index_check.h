/* Checks a jsonscan_index against jsonscan's walker, for test_jsonscan and
 * fuzz_jsonedit. Header-only: each includer is one program. */
#ifndef TOKENTAP_TESTS_INDEX_CHECK_H
#define TOKENTAP_TESTS_INDEX_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/jsonscan.h"

/* What an entry's word must be: the key's jsonscan_word, 0 if escaped. */
static uint64_t word_of_key(const char *t, const struct jsonscan_member *m)
{
    size_t n = m->key_end - m->key - 2;
    return memchr(t + m->key + 1, '\\', n) ? 0 : jsonscan_word(t + m->key + 1, n);
}

/* True when every object at or inside the value at t[at] that the index
 * says is whole has exactly the walker's members, in order, with their
 * keys' words; counts those objects into *ret_whole. t must be valid JSON. */
static bool index_matches(const char *t, size_t len, size_t at, const struct jsonscan_index *ix,
                          unsigned *ret_whole)
{
    if (t[at] != '{' && t[at] != '[')
        return true;
    struct jsonscan_iter it;
    struct jsonscan_member w;
    bool whole = t[at] == '{' && jsonscan_index_whole(ix, jsonscan_skip_value(t, len, at));
    size_t e = 0;
    jsonscan_iter_init(&it, t, len, at);
    while (jsonscan_iter_next(&it, &w)) {
        if (whole) {
            while (e < ix->n && ix->entries[e].object != at)
                e++;
            if (e == ix->n)
                return false;
            const struct jsonscan_member *m = &ix->entries[e].m;
            if (m->key != w.key || m->key_end != w.key_end || m->value != w.value ||
                m->value_end != w.value_end || ix->entries[e++].word != word_of_key(t, &w))
                return false;
        }
        if (!index_matches(t, len, w.value, ix, ret_whole))
            return false;
    }
    if (whole) {
        while (e < ix->n && ix->entries[e].object != at)
            e++;
        if (e != ix->n) /* a member the walker did not find */
            return false;
        (*ret_whole)++;
    }
    return true;
}

#endif
