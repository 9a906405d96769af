/* Unit tests for stats: descriptive statistics against hand-computed
 * values, and the bootstrap against an independent re-implementation of
 * the same algorithm (splitmix64, rejection sampling, 2000 resamples,
 * linear-interpolation percentiles; values from a 30-line Python script). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "core/stats.h"

static void descriptive(void)
{
    /* 93 96 99 101 104 with two missing values in between. */
    const double v[] = {96, NAN, 101, 93, 99, NAN, 104};
    const size_t n = sizeof(v) / sizeof(v[0]);
    double p;
    CHECK_INT(stats_count(v, n), 5);
    CHECK_NEAR(stats_mean(v, n), 98.6, 1e-12);
    CHECK_NEAR(stats_min(v, n), 93, 0);
    CHECK_NEAR(stats_max(v, n), 104, 0);
    CHECK_INT(stats_percentile(v, n, 50, &p), 0);
    CHECK_NEAR(p, 99, 0);
    /* h = 4 * 0.9 = 3.6: 101 + 0.6 * (104 - 101) */
    CHECK_INT(stats_percentile(v, n, 90, &p), 0);
    CHECK_NEAR(p, 102.8, 1e-12);
    CHECK_INT(stats_percentile(v, n, 25, &p), 0);
    CHECK_NEAR(p, 96, 0);
    /* deviations -2.6 2.4 -5.6 0.4 5.4: squares sum to 73.2, / (5 - 1) = 18.3 */
    CHECK_NEAR(stats_stddev(v, n), sqrt(18.3), 1e-12);
    CHECK(isnan(stats_stddev(v, 1)));
    CHECK_INT(stats_percentile(v, n, 0, &p), 0);
    CHECK_NEAR(p, 93, 0);
    CHECK_INT(stats_percentile(v, n, 100, &p), 0);
    CHECK_NEAR(p, 104, 0);
    /* Two values: p50 halfway, p90 at 90 % of the way. */
    const double two[] = {10, 20};
    CHECK_INT(stats_percentile(two, 2, 50, &p), 0);
    CHECK_NEAR(p, 15, 1e-12);
    CHECK_INT(stats_percentile(two, 2, 90, &p), 0);
    CHECK_NEAR(p, 19, 1e-12);
    const double one[] = {7};
    CHECK_INT(stats_percentile(one, 1, 90, &p), 0);
    CHECK_NEAR(p, 7, 0);

    /* Nothing there: NaN, -ENODATA, and p is left alone. */
    const double none[] = {NAN, NAN};
    CHECK(isnan(stats_mean(none, 2)));
    CHECK(isnan(stats_min(none, 2)));
    CHECK(isnan(stats_max(none, 2)));
    CHECK(isnan(stats_mean(NULL, 0)));
    p = 42;
    CHECK_INT(stats_percentile(none, 2, 50, &p), -ENODATA);
    CHECK_NEAR(p, 42, 0);
    CHECK_INT(stats_percentile(v, n, 101, &p), -EINVAL);
    CHECK_INT(stats_percentile(v, n, NAN, &p), -EINVAL);
}

static void bootstrap(void)
{
    double lo = 0, hi = 0;
    const double ttft[] = {96, 101, 93, 99, 104};
    CHECK_INT(stats_bootstrap_ci(ttft, 5, 0.95, &lo, &hi), 0);
    CHECK_NEAR(lo, 95.395, 1e-9);
    CHECK_NEAR(hi, 102, 1e-9);
    /* Same input, same interval: the seed restarts on every call. */
    double lo2, hi2;
    CHECK_INT(stats_bootstrap_ci(ttft, 5, 0.95, &lo2, &hi2), 0);
    CHECK(lo == lo2 && hi == hi2);
    /* Missing values are skipped, not resampled. */
    const double gappy[] = {NAN, 96, 101, NAN, 93, 99, 104};
    CHECK_INT(stats_bootstrap_ci(gappy, 7, 0.95, &lo2, &hi2), 0);
    CHECK(lo == lo2 && hi == hi2);

    const double skewed[] = {1, 2, 3, 4, 10};
    CHECK_INT(stats_bootstrap_ci(skewed, 5, 0.95, &lo, &hi), 0);
    CHECK_NEAR(lo, 1.8, 1e-9);
    CHECK_NEAR(hi, 7.2, 1e-9);

    /* {0, 1}: resample means 0, 0.5, 1 with p = 1/4, 1/2, 1/4, so the
     * 2.5 % and 97.5 % points are the extremes. */
    const double coin[] = {0, 1};
    CHECK_INT(stats_bootstrap_ci(coin, 2, 0.95, &lo, &hi), 0);
    CHECK_NEAR(lo, 0, 0);
    CHECK_NEAR(hi, 1, 0);

    const double same[] = {5, 5, 5, 5};
    CHECK_INT(stats_bootstrap_ci(same, 4, 0.95, &lo, &hi), 0);
    CHECK_NEAR(lo, 5, 0);
    CHECK_NEAR(hi, 5, 0);

    lo = hi = 42;
    const double single[] = {5, NAN};
    CHECK_INT(stats_bootstrap_ci(single, 2, 0.95, &lo, &hi), -ENODATA);
    CHECK_NEAR(lo, 42, 0);
    CHECK_INT(stats_bootstrap_ci(ttft, 5, 1.0, &lo, &hi), -EINVAL);

    /* Many values: the percentile interval approaches mean +- 1.96 sd/sqrt(n). */
    enum { N = 400 };
    static double big[N];
    for (int i = 0; i < N; i++)
        big[i] = (double)(i % 20); /* sd = 5.766 */
    CHECK_INT(stats_bootstrap_ci(big, N, 0.95, &lo, &hi), 0);
    CHECK_NEAR(hi - lo, 2 * 1.96 * 5.766 / 20, 0.1);
    CHECK_NEAR((lo + hi) / 2, 9.5, 0.01);
}

static void summarize(void)
{
    const double v[] = {96, NAN, 101, 93, 99, 104};
    struct stats_summary s;
    CHECK_INT(stats_summarize(v, 6, &s), 0);
    CHECK_INT(s.n, 5);
    CHECK_NEAR(s.mean, 98.6, 1e-12);
    CHECK_NEAR(s.p50, 99, 0);
    CHECK_NEAR(s.p90, 102.8, 1e-12);
    CHECK_NEAR(s.min, 93, 0);
    CHECK_NEAR(s.max, 104, 0);
    CHECK_NEAR(s.ci_lo, 95.395, 1e-9);
    CHECK_NEAR(s.ci_hi, 102, 1e-9);

    const double one[] = {NAN, 3};
    CHECK_INT(stats_summarize(one, 2, &s), 0);
    CHECK_INT(s.n, 1);
    CHECK_NEAR(s.mean, 3, 0);
    CHECK_NEAR(s.p90, 3, 0);
    CHECK(isnan(s.ci_lo) && isnan(s.ci_hi));

    CHECK_INT(stats_summarize(NULL, 0, &s), 0);
    CHECK_INT(s.n, 0);
    CHECK(isnan(s.mean) && isnan(s.p50) && isnan(s.min) && isnan(s.ci_lo));
}

static void difference(void)
{
    struct stats_diff d;
    /* Per-slot speed Q4 vs Q3: a clear difference. */
    const double q4[] = {53.2, 52.8, 53.9, 53.1, 52.6};
    const double q3[] = {58.1, 57.4, 58.9, 57.7, 58.3};
    CHECK_INT(stats_bootstrap_diff(q4, 5, q3, 5, &d), 0);
    CHECK_INT(d.n_a, 5);
    CHECK_INT(d.n_b, 5);
    CHECK_NEAR(d.mean_a, 53.12, 1e-12);
    CHECK_NEAR(d.mean_b, 58.08, 1e-12);
    CHECK_NEAR(d.diff, 4.96, 1e-9);
    CHECK_NEAR(d.rel, 4.96 / 53.12, 1e-9);
    CHECK_NEAR(d.ci_lo, 4.38, 1e-9);
    CHECK_NEAR(d.ci_hi, 5.56, 1e-9);
    CHECK(d.significant);

    /* TTFT at level 2: +1 ms of noise, not significant. */
    const double a[] = {265, 271, 259, 268, 262};
    const double b[] = {266, 260, 274, 263, 270};
    CHECK_INT(stats_bootstrap_diff(a, 5, b, 5, &d), 0);
    CHECK_NEAR(d.diff, 1.6, 1e-9);
    CHECK_NEAR(d.ci_lo, -3.8, 1e-9);
    CHECK_NEAR(d.ci_hi, 7.6, 1e-9);
    CHECK(!d.significant);

    /* Opposite direction: the sign follows b - a. */
    CHECK_INT(stats_bootstrap_diff(q3, 5, q4, 5, &d), 0);
    CHECK(d.diff < 0 && d.ci_hi < 0 && d.significant);

    /* Constant sides: a degenerate interval that excludes 0 ... */
    const double ones[] = {1, 1, 1}, twos[] = {2, 2, NAN, 2};
    CHECK_INT(stats_bootstrap_diff(ones, 3, twos, 4, &d), 0);
    CHECK_NEAR(d.ci_lo, 1, 0);
    CHECK_NEAR(d.ci_hi, 1, 0);
    CHECK(d.significant);
    /* ... or is exactly 0. */
    CHECK_INT(stats_bootstrap_diff(ones, 3, ones, 3, &d), 0);
    CHECK(!d.significant);

    /* One value on a side: a difference, but no interval and no verdict. */
    const double lone[] = {NAN, 100};
    CHECK_INT(stats_bootstrap_diff(lone, 2, q3, 5, &d), 0);
    CHECK_INT(d.n_a, 1);
    CHECK_NEAR(d.diff, -41.92, 1e-9);
    CHECK(isnan(d.ci_lo) && isnan(d.ci_hi));
    CHECK(!d.significant);

    /* A zero reference mean has no relative difference. */
    const double zeros[] = {0, 0};
    CHECK_INT(stats_bootstrap_diff(zeros, 2, ones, 3, &d), 0);
    CHECK(isnan(d.rel));
    CHECK(d.significant);

    const double none[] = {NAN};
    CHECK_INT(stats_bootstrap_diff(none, 1, q3, 5, &d), -ENODATA);
    CHECK_INT(stats_bootstrap_diff(q3, 5, NULL, 0, &d), -ENODATA);
}

int main(void)
{
    descriptive();
    bootstrap();
    summarize();
    difference();
    return check_done("test_stats");
}
