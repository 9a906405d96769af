#include "core/hist.h"

#include <string.h>

/* Layout: index v for v < 2 * HIST_SUB_COUNT (width-1 buckets, exact);
 * above that, values in [2^e, 2^(e+1)) with shift = e - HIST_SUB_BITS go
 * to HIST_SUB_COUNT * (1 + shift) + (v >> shift) - HIST_SUB_COUNT, i.e.
 * HIST_SUB_COUNT buckets of width 2^shift per power of two. */
#define TOP_EXP 31 /* 2^31 <= HIST_MAX_VALUE < 2^32 */
_Static_assert((HIST_MAX_VALUE >> TOP_EXP) == 1, "HIST_MAX_VALUE must lie in [2^31, 2^32)");
_Static_assert(HIST_BUCKETS == HIST_SUB_COUNT * (1 + (TOP_EXP - HIST_SUB_BITS)) +
                                   (HIST_MAX_VALUE >> (TOP_EXP - HIST_SUB_BITS)) - HIST_SUB_COUNT +
                                   1,
               "HIST_BUCKETS must be the index of HIST_MAX_VALUE + 1");
_Static_assert(sizeof(struct hist) <= 32 * 1024, "struct hist should stay under 32 KiB");

static unsigned log2_floor(uint64_t v)
{
    /* v > 0; __builtin_clzll is in both gcc and clang. */
    return 63u - (unsigned)__builtin_clzll(v);
}

size_t hist_bucket_index(usec_t v)
{
    if (v > HIST_MAX_VALUE)
        v = HIST_MAX_VALUE;
    if (v < HIST_SUB_COUNT)
        return (size_t)v;
    unsigned shift = log2_floor(v) - HIST_SUB_BITS;
    return (size_t)HIST_SUB_COUNT * (1 + shift) + (size_t)(v >> shift) - HIST_SUB_COUNT;
}

void hist_bucket_range(size_t i, usec_t *ret_lo, usec_t *ret_hi)
{
    if (i < HIST_SUB_COUNT) {
        *ret_lo = *ret_hi = i;
        return;
    }
    unsigned shift = (unsigned)(i / HIST_SUB_COUNT) - 1;
    usec_t lo = (usec_t)(HIST_SUB_COUNT + i % HIST_SUB_COUNT) << shift;
    *ret_lo = lo;
    *ret_hi = lo + ((usec_t)1 << shift) - 1;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

void hist_reset(struct hist *h)
{
    hist_init(h);
}

void hist_record_n(struct hist *h, usec_t v, uint64_t count)
{
    if (count == 0)
        return;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (h->count == 0 || v > h->max)
        h->max = v;
    h->count += count;
    if (v > HIST_MAX_VALUE)
        h->overflow += count;
    uint64_t add = (v != 0 && count > UINT64_MAX / v) ? UINT64_MAX : v * count;
    h->sum = add_sat(h->sum, add);
    h->buckets[hist_bucket_index(v)] += count;
}

void hist_record(struct hist *h, usec_t v)
{
    hist_record_n(h, v, 1);
}

void hist_record_u32(struct hist *h, const uint32_t *v, size_t n)
{
    if (n == 0)
        return;
    /* n values below 2^32 sum below 2^64 while n < 2^32; a request keeps
     * far fewer gaps (RECORD_MAX_GAPS). */
    uint64_t sum = 0, over = 0;
    uint32_t lo = v[0], hi = v[0];
    for (size_t i = 0; i < n; i++) {
        uint32_t x = v[i];
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
        sum += x;
        over += x > HIST_MAX_VALUE;
        h->buckets[hist_bucket_index(x)]++;
    }
    if (h->count == 0 || lo < h->min)
        h->min = lo;
    if (h->count == 0 || hi > h->max)
        h->max = hi;
    h->count += n;
    h->overflow += over;
    h->sum = add_sat(h->sum, sum);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (dst->count == 0 || src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->overflow += src->overflow;
    dst->sum = add_sat(dst->sum, src->sum);
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
}

uint64_t hist_count(const struct hist *h)
{
    return h->count;
}

usec_t hist_min(const struct hist *h)
{
    return h->count ? h->min : 0;
}

usec_t hist_max(const struct hist *h)
{
    return h->count ? h->max : 0;
}

uint64_t hist_sum(const struct hist *h)
{
    return h->sum;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}

usec_t hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    /* !(p > 0) also catches NaN. */
    if (!(p > 0))
        return h->min;
    if (p >= 100)
        return h->max;
    double r = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    size_t i = 0;
    for (; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank)
            break;
    }
    if (i == HIST_BUCKETS) /* unreachable while counts are consistent */
        return h->max;
    usec_t lo, hi;
    hist_bucket_range(i, &lo, &hi);
    usec_t mid = lo + (hi - lo) / 2;
    if (mid < h->min)
        mid = h->min;
    if (mid > h->max)
        mid = h->max;
    return mid;
}

uint64_t hist_count_le(const struct hist *h, usec_t bound)
{
    if (h->count == 0 || bound < h->min)
        return 0;
    if (bound >= h->max)
        return h->count;
    size_t top = hist_bucket_index(bound);
    uint64_t n = 0;
    for (size_t i = 0; i <= top; i++)
        n += h->buckets[i];
    /* bound < max here, and nothing says an overflow value is <= bound. */
    if (top == HIST_BUCKETS - 1)
        n -= h->overflow;
    return n;
}

bool hist_iter_next(const struct hist *h, struct hist_iter *it, struct hist_bucket *ret)
{
    while (it->next < HIST_BUCKETS && h->buckets[it->next] == 0)
        it->next++;
    if (it->next >= HIST_BUCKETS)
        return false;
    size_t i = it->next++;
    it->cumulative += h->buckets[i];
    hist_bucket_range(i, &ret->lo, &ret->hi);
    if (i == HIST_BUCKETS - 1)
        ret->hi = USEC_INFINITY;
    ret->count = h->buckets[i];
    ret->cumulative = it->cumulative;
    return true;
}
