/* check: tiny assertion helpers for the unit tests. A failed check prints
 * file:line and the values, counts the failure, and the test continues;
 * check_done() returns the exit status (a failure also when no check ran). */
#ifndef TOKENTAP_CHECK_H
#define TOKENTAP_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        check_count++;                                                                             \
        if (check_a_ != check_b_) {                                                                \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    check_a_, check_b_);                                                           \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                               \
        check_count++;                                                                             \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                           \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");           \
        }                                                                                          \
    } while (0)

#define CHECK_MEM(a, alen, b, blen)                                                                \
    do {                                                                                           \
        size_t check_al_ = (alen), check_bl_ = (blen);                                             \
        check_count++;                                                                             \
        if (check_al_ != check_bl_ || memcmp((a), (b), check_al_) != 0) {                          \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%.*s\" != \"%.*s\"\n", __FILE__, __LINE__, \
                    #a, #b, (int)check_al_, (const char *)(a), (int)check_bl_,                     \
                    (const char *)(b));                                                            \
        }                                                                                          \
    } while (0)

/* Relative closeness of two doubles. */
#define CHECK_NEAR(a, b, rel)                                                                      \
    do {                                                                                           \
        double check_a_ = (a), check_b_ = (b);                                                     \
        double check_d_ = check_a_ > check_b_ ? check_a_ - check_b_ : check_b_ - check_a_;         \
        double check_m_ = check_b_ < 0 ? -check_b_ : check_b_;                                     \
        check_count++;                                                                             \
        if (check_d_ > (rel) * check_m_) {                                                         \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s ~ %s failed: %g vs %g (rel %g)\n", __FILE__, __LINE__, #a,  \
                    #b, check_a_, check_b_, (double)(rel));                                        \
        }                                                                                          \
    } while (0)

/* The exit status: 1 when a check failed, or when none ran (a test that
 * checked nothing, or $ITEST_ONLY naming no test, proves nothing). */
static inline int check_done(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, check_count, check_failures);
    if (check_count == 0) {
        fprintf(stderr, "%s: no check ran\n", name);
        return 1;
    }
    return check_failures ? 1 : 0;
}

#endif
