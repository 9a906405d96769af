/* fidelity: checks that a JSON edit left every byte outside its own span
 * as the input had it (tests of jsonedit and rewrite). Include after
 * check.h: it counts in check.h's counters. */
#ifndef TOKENTAP_FIDELITY_H
#define TOKENTAP_FIDELITY_H

#include <stdio.h>
#include <string.h>

/* Outside the edited spans the output is the input: everything before the
 * first differing byte and after the last is identical, at most
 * max_replaced input bytes lie between, and each fragment (an untouched
 * member) appears verbatim. */
static inline void check_fidelity(int line, const char *in, size_t len, const char *out, size_t out_len,
                                  size_t max_replaced, const char *const *fragments)
{
    size_t p = 0, s = 0;
    while (p < len && p < out_len && in[p] == out[p])
        p++;
    while (s < len - p && s < out_len - p && in[len - 1 - s] == out[out_len - 1 - s])
        s++;
    check_count++;
    if (len - p - s > max_replaced) {
        check_failures++;
        fprintf(stderr, "line %d: %zu input bytes replaced (max %zu): \"%.*s\"\n", line,
                len - p - s, max_replaced, (int)(len - p - s), in + p);
    }
    for (size_t i = 0; fragments && fragments[i]; i++) {
        check_count++;
        if (!memmem(out, out_len, fragments[i], strlen(fragments[i]))) {
            check_failures++;
            fprintf(stderr, "line %d: fragment not verbatim in the output: %s\n", line,
                    fragments[i]);
        }
    }
}

#endif
