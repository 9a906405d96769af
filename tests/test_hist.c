/* Unit tests for the hist module: layout, accuracy against exact
 * percentiles of random data, merge, edges, count_le, the iterator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/hist.h"

/* Deterministic generator so failures reproduce. */
static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact percentile with the same rank rule as hist_percentile. */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double p)
{
    if (p <= 0)
        return sorted[0];
    if (p >= 100)
        return sorted[n - 1];
    double r = p / 100.0 * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void test_layout(void)
{
    /* Buckets tile 0..HIST_MAX_VALUE with no gaps and index() agrees. */
    usec_t expect_lo = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        usec_t lo, hi;
        hist_bucket_range(i, &lo, &hi);
        if (lo != expect_lo || hi < lo) {
            CHECK_INT(lo, expect_lo);
            break;
        }
        if (hist_bucket_index(lo) != i || hist_bucket_index(hi) != i) {
            CHECK_INT(hist_bucket_index(lo), i);
            CHECK_INT(hist_bucket_index(hi), i);
            break;
        }
        /* Width bound that gives the 0.4% midpoint error. */
        if (lo >= 2 * HIST_SUB_COUNT && (hi - lo + 1) * HIST_SUB_COUNT > lo) {
            CHECK(!"bucket too wide");
            break;
        }
        expect_lo = hi + 1;
    }
    usec_t lo, hi;
    hist_bucket_range(HIST_BUCKETS - 1, &lo, &hi);
    CHECK(lo <= HIST_MAX_VALUE && HIST_MAX_VALUE <= hi);
    CHECK_INT(hist_bucket_index(HIST_MAX_VALUE), HIST_BUCKETS - 1);
    CHECK_INT(hist_bucket_index(UINT64_MAX), HIST_BUCKETS - 1);
    CHECK_INT(hist_bucket_index(0), 0);
    CHECK_INT(hist_bucket_index(255), 255);
    CHECK(sizeof(struct hist) < 32 * 1024);
}

static void check_accuracy(const char *name, uint64_t *vals, size_t n)
{
    struct hist *h = calloc(1, sizeof(*h));
    uint64_t sum = 0, max = 0, min = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        hist_record(h, vals[i]);
        sum += vals[i];
        max = vals[i] > max ? vals[i] : max;
        min = vals[i] < min ? vals[i] : min;
    }
    qsort(vals, n, sizeof(*vals), cmp_u64);
    static const double ps[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        double want = (double)exact_percentile(vals, n, ps[i]);
        double got = (double)hist_percentile(h, ps[i]);
        double err = fabs(got - want);
        check_count++;
        /* Within 1% (in fact 0.4%); values below 256 are exact. */
        if (err > 0.01 * want || (want < 256 && err != 0)) {
            check_failures++;
            fprintf(stderr, "%s: p%g: got %.0f want %.0f\n", name, ps[i], got, want);
        }
    }
    CHECK_INT(hist_count(h), n);
    CHECK_INT(hist_sum(h), sum);
    CHECK_INT(hist_min(h), min);
    CHECK_INT(hist_max(h), max);
    CHECK(hist_mean(h) == (double)sum / (double)n);
    free(h);
}

static void test_accuracy(void)
{
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof(*v));

    for (size_t i = 0; i < N; i++) /* uniform over the whole range */
        v[i] = rng_next() % (HIST_MAX_VALUE + 1);
    check_accuracy("uniform", v, N);

    for (size_t i = 0; i < N; i++) /* uniform over a typical ITL range */
        v[i] = 5000 + rng_next() % 95000;
    check_accuracy("uniform-itl", v, N);

    for (size_t i = 0; i < N; i++) { /* log-normal-ish around 20 ms */
        double g = 0;
        for (int k = 0; k < 12; k++)
            g += rng_unit();
        g -= 6; /* approximately N(0,1) */
        v[i] = (uint64_t)exp(log(20000.0) + 1.5 * g);
    }
    check_accuracy("lognormal", v, N);

    for (size_t i = 0; i < N; i++) /* many duplicates, a few distinct values */
        v[i] = (uint64_t[]){
            0, 1, 17, 999, 1000, 1001, 250000, 250000, 250000, 3600000000u}[rng_next() % 10];
    check_accuracy("duplicates", v, N);

    for (size_t i = 0; i < N; i++) /* tiny values: all exact */
        v[i] = rng_next() % 300;
    check_accuracy("small", v, N);

    v[0] = 123456;
    check_accuracy("single", v, 1);
    free(v);
}

static void test_merge(void)
{
    struct hist *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    struct hist *all = calloc(1, sizeof(*all));
    for (int i = 0; i < 50000; i++) {
        uint64_t x = rng_next() % 100000000, y = (rng_next() % 5000) * 3;
        hist_record(a, x);
        hist_record(b, y);
        hist_record(all, x);
        hist_record(all, y);
    }
    hist_record_n(b, 7, 1000);
    hist_record_n(all, 7, 1000);
    hist_record(b, UINT64_MAX / 2); /* overflow survives a merge */
    hist_record(all, UINT64_MAX / 2);
    hist_merge(a, b);
    CHECK(memcmp(a, all, sizeof(*a)) == 0);
    CHECK_INT(hist_count(a), 101001);
    CHECK_INT(a->overflow, 1);

    /* Merging into an empty histogram copies; merging an empty one is a no-op. */
    struct hist *e = calloc(1, sizeof(*e));
    hist_merge(e, all);
    CHECK(memcmp(e, all, sizeof(*e)) == 0);
    hist_reset(b);
    hist_merge(e, b);
    CHECK(memcmp(e, all, sizeof(*e)) == 0);
    /* min from the source when it is lower. */
    hist_reset(a);
    hist_record(a, 500);
    hist_reset(b);
    hist_record(b, 3);
    hist_merge(a, b);
    CHECK_INT(hist_min(a), 3);
    CHECK_INT(hist_max(a), 500);
    free(a);
    free(b);
    free(all);
    free(e);
}

/* hist_record_u32 must leave exactly what one hist_record per value does,
 * into an empty histogram and into one holding lower and higher values. */
static void test_record_u32(void)
{
    enum { N = 20000 };
    uint32_t *v = malloc(N * sizeof(*v));
    struct hist *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    for (int i = 0; i < N; i++)
        v[i] = (uint32_t)(rng_next() % (i % 3 ? 2000 : 50000000));
    v[7] = 0;
    v[8] = UINT32_MAX; /* above HIST_MAX_VALUE: counted as overflow */
    v[9] = (uint32_t)HIST_MAX_VALUE;

    hist_record_u32(a, v, 0);
    CHECK(memcmp(a, b, sizeof(*a)) == 0); /* n = 0 changes nothing */
    hist_record_u32(a, v, N / 2);
    for (int i = 0; i < N / 2; i++)
        hist_record(b, v[i]);
    CHECK(memcmp(a, b, sizeof(*a)) == 0);
    CHECK_INT(a->overflow, 1);

    hist_record(a, 1); /* a lower minimum and a higher maximum already there */
    hist_record(b, 1);
    hist_record_u32(a, v + N / 2, N / 2);
    for (int i = N / 2; i < N; i++)
        hist_record(b, v[i]);
    CHECK(memcmp(a, b, sizeof(*a)) == 0);
    CHECK_INT(hist_count(a), N + 1);
    CHECK_INT(hist_min(a), 0);
    free(v);
    free(a);
    free(b);
}

static void test_edges(void)
{
    struct hist *h = calloc(1, sizeof(*h));
    /* Empty. */
    CHECK_INT(hist_count(h), 0);
    CHECK_INT(hist_min(h), 0);
    CHECK_INT(hist_max(h), 0);
    CHECK(hist_mean(h) == 0.0);
    CHECK_INT(hist_percentile(h, 50), 0);
    CHECK_INT(hist_count_le(h, 100), 0);
    struct hist_iter it = {0};
    struct hist_bucket bk;
    CHECK(!hist_iter_next(h, &it, &bk));

    /* Zero has its own bucket. */
    hist_record(h, 0);
    CHECK_INT(h->buckets[0], 1);
    CHECK_INT(hist_percentile(h, 50), 0);
    CHECK_INT(hist_max(h), 0);
    hist_record(h, 1);
    CHECK_INT(h->buckets[1], 1);
    CHECK_INT(hist_percentile(h, 100), 1);
    CHECK_INT(hist_percentile(h, 50), 0);
    CHECK_INT(hist_percentile(h, 50.0001), 1);

    /* One hour, in range. */
    hist_reset(h);
    hist_record(h, HIST_MAX_VALUE);
    CHECK_INT(h->overflow, 0);
    CHECK_INT(h->buckets[HIST_BUCKETS - 1], 1);
    CHECK_INT(hist_percentile(h, 50), HIST_MAX_VALUE);

    /* Above range: top bucket, overflow, exact max, sum and mean. */
    hist_record(h, HIST_MAX_VALUE + 1);
    hist_record(h, 10 * HIST_MAX_VALUE);
    CHECK_INT(h->overflow, 2);
    CHECK_INT(h->buckets[HIST_BUCKETS - 1], 3);
    CHECK_INT(hist_max(h), 10 * HIST_MAX_VALUE);
    CHECK_INT(hist_min(h), HIST_MAX_VALUE);
    CHECK(hist_mean(h) == (double)(12 * HIST_MAX_VALUE + 1) / 3.0);
    CHECK_INT(hist_percentile(h, 100), 10 * HIST_MAX_VALUE);
    /* The median sits in the top bucket: a value near one hour. */
    CHECK_NEAR((double)hist_percentile(h, 50), (double)HIST_MAX_VALUE, 0.01);
    CHECK_INT(hist_count_le(h, HIST_MAX_VALUE), 1);
    CHECK_INT(hist_count_le(h, 2 * HIST_MAX_VALUE), 1);
    CHECK_INT(hist_count_le(h, 10 * HIST_MAX_VALUE), 3);
    it = (struct hist_iter){0};
    CHECK(hist_iter_next(h, &it, &bk));
    CHECK_INT(bk.count, 3);
    CHECK(bk.hi == USEC_INFINITY);
    CHECK(!hist_iter_next(h, &it, &bk));

    /* Sum saturates instead of wrapping. */
    hist_reset(h);
    hist_record(h, UINT64_MAX);
    hist_record(h, 5);
    CHECK(hist_sum(h) == UINT64_MAX);
    hist_record_n(h, UINT64_MAX / 2, 3);
    CHECK(hist_sum(h) == UINT64_MAX);
    CHECK_INT(hist_count(h), 5);

    /* record_n with 0 is a no-op; p is clamped. */
    hist_reset(h);
    hist_record_n(h, 42, 0);
    CHECK_INT(hist_count(h), 0);
    hist_record_n(h, 1000, 4);
    hist_record(h, 2000);
    CHECK_INT(hist_count(h), 5);
    CHECK_INT(hist_percentile(h, -5), 1000);
    CHECK_INT(hist_percentile(h, NAN), 1000);
    CHECK_INT(hist_percentile(h, 250), 2000);
    /* 1000's bucket is [1000, 1003]: its midpoint is reported. */
    CHECK_INT(hist_percentile(h, 80), 1001);
    CHECK_INT(hist_percentile(h, 81), 2000);
    CHECK(hist_mean(h) == 1200.0);

    /* hist_init empties a dirty struct. */
    memset(h, 0xab, sizeof(*h));
    hist_init(h);
    CHECK_INT(hist_count(h), 0);
    CHECK_INT(h->buckets[100], 0);
    free(h);
}

static void test_count_le_and_iter(void)
{
    struct hist *h = calloc(1, sizeof(*h));
    static const uint64_t vals[] = {0, 5, 100, 1000, 1000, 2500, 5000, 10000, 250000, 1000000};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        hist_record(h, vals[i]);
    /* Prometheus-style "le" bounds at round numbers. */
    CHECK_INT(hist_count_le(h, 0), 1);
    CHECK_INT(hist_count_le(h, 4), 1);
    CHECK_INT(hist_count_le(h, 5), 2);
    CHECK_INT(hist_count_le(h, 1000), 5);
    CHECK_INT(hist_count_le(h, 2500), 6);
    /* 9999 and 10000 share the bucket [9984, 10047]: bucket resolution. */
    CHECK_INT(hist_count_le(h, 9983), 7);
    CHECK_INT(hist_count_le(h, 9999), 8);
    CHECK_INT(hist_count_le(h, 10000), 8);
    CHECK_INT(hist_count_le(h, 999423), 9);
    CHECK_INT(hist_count_le(h, 999999), 10);
    CHECK_INT(hist_count_le(h, 1000000), 10);
    CHECK_INT(hist_count_le(h, UINT64_MAX), 10);

    /* Against brute force on random data: never below the exact count,
     * and any excess lies within bound's bucket. */
    hist_reset(h);
    enum { N = 20000 };
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++) {
        v[i] = rng_next() % 5000000;
        hist_record(h, v[i]);
    }
    for (int k = 0; k < 200; k++) {
        usec_t bound = rng_next() % 6000000;
        usec_t lo, hi;
        hist_bucket_range(hist_bucket_index(bound), &lo, &hi);
        uint64_t exact = 0, exact_hi = 0;
        for (size_t i = 0; i < N; i++) {
            exact += v[i] <= bound;
            exact_hi += v[i] <= hi;
        }
        uint64_t got = hist_count_le(h, bound);
        if (got < exact || got > exact_hi) {
            CHECK_INT(got, exact);
            break;
        }
        /* Exact at a bucket's upper edge. */
        if (hist_count_le(h, hi) != exact_hi) {
            CHECK_INT(hist_count_le(h, hi), exact_hi);
            break;
        }
    }

    /* The iterator visits non-empty buckets in order; cumulative ends at count. */
    struct hist_iter it = {0};
    struct hist_bucket b;
    uint64_t total = 0, prev_hi = 0;
    size_t n = 0;
    bool ordered = true;
    while (hist_iter_next(h, &it, &b)) {
        total += b.count;
        ordered = ordered && b.count > 0 && b.cumulative == total && (n == 0 || b.lo > prev_hi);
        if (hist_count_le(h, b.hi) != b.cumulative)
            ordered = false;
        prev_hi = b.hi;
        n++;
    }
    CHECK(ordered);
    CHECK_INT(total, N);
    CHECK(n > 100);
    free(v);
    free(h);
}

int main(void)
{
    test_layout();
    test_accuracy();
    test_merge();
    test_record_u32();
    test_edges();
    test_count_le_and_iter();
    return check_done("test_hist");
}
