/* Helpers shared by the libFuzzer targets: a checked assertion, a
 * growable byte log to compare two runs, and a deterministic split of the
 * input into pieces (to check that feeding in pieces equals feeding at
 * once). Test code only. */
#ifndef TOKENTAP_FUZZ_UTIL_H
#define TOKENTAP_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* What a run saw, byte for byte. */
struct fuzz_log {
    char *p; /* owned */
    size_t len, cap;
};

static inline void fuzz_log_add(struct fuzz_log *l, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + n)
            cap *= 2;
        l->p = realloc(l->p, cap);
        FUZZ_ASSERT(l->p != NULL);
        l->cap = cap;
    }
    memcpy(l->p + l->len, p, n);
    l->len += n;
}

static inline void fuzz_log_str(struct fuzz_log *l, const char *s)
{
    fuzz_log_add(l, s, strlen(s));
}

static inline void fuzz_log_num(struct fuzz_log *l, long long v)
{
    char b[32];
    int n = snprintf(b, sizeof(b), "<%lld>", v);
    fuzz_log_add(l, b, (size_t)n);
}

static inline void fuzz_log_free(struct fuzz_log *l)
{
    free(l->p);
    memset(l, 0, sizeof(*l));
}

static inline int fuzz_log_eq(const struct fuzz_log *a, const struct fuzz_log *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* Piece lengths from a seed: 1..16 bytes mostly, sometimes up to 256, and
 * sometimes an empty piece (feeds of zero bytes must be harmless). */
static inline size_t fuzz_piece(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    uint32_t r = *state >> 16;
    if (r % 13 == 0)
        return 0;
    return r % 7 == 0 ? 1 + r % 256 : 1 + r % 16;
}

#endif
