/* hist: a mergeable log-linear histogram of µs values (HdrHistogram-like).
 * Values below 256 µs get exact buckets; above, every power of two is cut
 * into 128 equal sub-buckets, so a bucket is at most 1/128 of its lower
 * edge wide and its midpoint is within 0.4% of any value in it. The range
 * is 0 .. HIST_MAX_VALUE (1 hour); larger values land in the top bucket and
 * are counted as overflow. Fixed size (~26 KiB), no allocation, pure. A
 * zero-initialised struct hist is an empty histogram. */
#ifndef TOKENTAP_HIST_H
#define TOKENTAP_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

#define HIST_SUB_BITS 7
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS) /* sub-buckets per power of two */
#define HIST_MAX_VALUE ((usec_t)3600 * USEC_PER_SEC)
/* Index of HIST_MAX_VALUE's bucket + 1; hist.c checks it at compile time. */
#define HIST_BUCKETS 3287

struct hist {
    uint64_t count;    /* values recorded, overflow included */
    uint64_t overflow; /* values above HIST_MAX_VALUE (they sit in the top bucket) */
    usec_t min, max;   /* exact; meaningful only when count > 0 */
    uint64_t sum;      /* exact sum of values, saturating at UINT64_MAX */
    uint64_t buckets[HIST_BUCKETS];
};

/* One non-empty bucket, as the iterator reports it. */
struct hist_bucket {
    usec_t lo, hi;       /* inclusive value range; the top bucket's hi is USEC_INFINITY */
    uint64_t count;      /* values in this bucket */
    uint64_t cumulative; /* values in this bucket and all below it */
};

/* Iterator state over non-empty buckets, lowest first; zero it to start. */
struct hist_iter {
    size_t next;
    uint64_t cumulative;
};

/* Empties h (same as zero-initialising it). */
void hist_init(struct hist *h);

/* Empties h again. */
void hist_reset(struct hist *h);

/* Records one value v. */
void hist_record(struct hist *h, usec_t v);

/* Records value v `count` times (count 0 is a no-op). */
void hist_record_n(struct hist *h, usec_t v, uint64_t count);

/* Records the n values v[0..n) (a request's inter-token gaps): the same as
 * n calls of hist_record, in one pass. */
void hist_record_u32(struct hist *h, const uint32_t *v, size_t n);

/* Adds all of src into dst; the result equals recording both streams into one. */
void hist_merge(struct hist *dst, const struct hist *src);

/* Number of values recorded. */
uint64_t hist_count(const struct hist *h);

/* Exact smallest value recorded, 0 when empty. */
usec_t hist_min(const struct hist *h);

/* Exact largest value recorded (above-range values too), 0 when empty. */
usec_t hist_max(const struct hist *h);

/* Exact sum of the values recorded (saturating), for Prometheus _sum. */
uint64_t hist_sum(const struct hist *h);

/* Exact arithmetic mean of the values recorded, 0 when empty. */
double hist_mean(const struct hist *h);

/* The p-th percentile (p in 0..100, clamped): the value of rank
 * ceil(p/100 * count) is located, and its bucket's midpoint, clamped to
 * [min, max], is returned (within 0.4% of the true value in range).
 * p <= 0 gives min, p >= 100 gives max, an empty histogram gives 0. */
usec_t hist_percentile(const struct hist *h, double p);

/* Number of values <= bound, to bucket resolution: every value in bound's
 * bucket counts as <= bound (exact when bound + 1 starts a bucket, and for
 * bound < min or bound >= max). Above-range values count only when
 * bound >= max. For Prometheus "le" buckets chosen by the caller. */
uint64_t hist_count_le(const struct hist *h, usec_t bound);

/* Steps to the next non-empty bucket: fills *ret and returns true, or
 * returns false when there are no more. */
bool hist_iter_next(const struct hist *h, struct hist_iter *it, struct hist_bucket *ret);

/* The bucket index of v (v above range maps to the top bucket). */
size_t hist_bucket_index(usec_t v);

/* The inclusive value range of bucket i (< HIST_BUCKETS), as the data
 * layout defines it (the top bucket's natural hi, not USEC_INFINITY). */
void hist_bucket_range(size_t i, usec_t *ret_lo, usec_t *ret_hi);

#endif
