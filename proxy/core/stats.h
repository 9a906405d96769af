/* stats: descriptive statistics and bootstrap confidence intervals over
 * small arrays of doubles (per-repetition values of a benchmark cell).
 * NaN marks a missing value (a failed repetition) and is skipped
 * everywhere. Pure and deterministic: the bootstrap uses its own PRNG with
 * a fixed seed, restarted on every call, so the same values always give
 * the same interval, whoever computes it (bench filling ci95, report
 * judging significance). */
#ifndef TOKENTAP_STATS_H
#define TOKENTAP_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_BOOTSTRAP_RESAMPLES 2000
#define STATS_BOOTSTRAP_SEED UINT64_C(0x746f6b656e746170) /* "tokentap" */
/* Bound on the values one call takes (a cell has one per repetition); the
 * bootstrap costs RESAMPLES x n draws. */
#define STATS_MAX_VALUES 1000000

/* The bootstrap's PRNG, splitmix64: tiny, fast, and the same sequence on
 * every platform, which is all a reproducible bootstrap needs. Start it
 * with {STATS_BOOTSTRAP_SEED} (or any seed) for other resampling. */
struct stats_rng {
    uint64_t state;
};

/* The next 64 random bits. */
uint64_t stats_rng_next(struct stats_rng *g);
/* Uniform in [0, n), n > 0. */
size_t stats_rng_below(struct stats_rng *g, size_t n);

/* Everything a results cell shows for one metric. */
struct stats_summary {
    size_t n;            /* non-missing values */
    double mean, p50, p90, min, max; /* NaN when n == 0 */
    double ci_lo, ci_hi; /* 95 % bootstrap CI of the mean; NaN when n < 2 */
};

/* The difference of two means, b - a, and whether it is significant. */
struct stats_diff {
    size_t n_a, n_b;     /* non-missing values on each side */
    double mean_a, mean_b;
    double diff;         /* mean_b - mean_a */
    double rel;          /* diff / mean_a; NaN when mean_a is 0 */
    double ci_lo, ci_hi; /* 95 % bootstrap CI of diff; NaN when n_a or n_b < 2 */
    bool significant;    /* the CI excludes 0 (never with fewer than 2 values a side) */
};

/* Number of non-NaN values in v[0..n). */
size_t stats_count(const double *v, size_t n);

/* Mean, minimum, maximum of the non-NaN values; NaN when there are none. */
double stats_mean(const double *v, size_t n);
double stats_min(const double *v, size_t n);
double stats_max(const double *v, size_t n);

/* Sample standard deviation (n - 1 in the denominator) of the non-NaN
 * values; NaN with fewer than 2. */
double stats_stddev(const double *v, size_t n);

/* Percentile p (0..100) of the non-NaN values with linear interpolation
 * between closest ranks (NumPy's default, Excel's PERCENTILE.INC).
 * 0, -EINVAL (p out of range, n too large), -ENODATA (no values) or
 * -ENOMEM. */
int stats_percentile(const double *v, size_t n, double p, double *ret_value);

/* Bootstrap confidence interval of the mean (percentile method,
 * STATS_BOOTSTRAP_RESAMPLES resamples, fixed seed) at `confidence`
 * (0.95 for 95 %). 0, -ENODATA (fewer than 2 values), -EINVAL or -ENOMEM. */
int stats_bootstrap_ci(const double *v, size_t n, double confidence, double *ret_lo,
                       double *ret_hi);

/* Fills *ret with n, mean, p50, p90, min, max and the 95 % CI. Values that
 * do not exist are NaN. 0, -EINVAL or -ENOMEM. */
int stats_summarize(const double *v, size_t n, struct stats_summary *ret);

/* Compares b against a: the difference of means and its 95 % bootstrap CI
 * (both sides resampled independently, same resample count and seed).
 * 0 when both sides have at least one value (with fewer than 2 on a side
 * the CI is NaN and the verdict "not significant"), -ENODATA when a side
 * has none, -EINVAL or -ENOMEM. */
int stats_bootstrap_diff(const double *a, size_t n_a, const double *b, size_t n_b,
                         struct stats_diff *ret);

#endif
