#include "core/stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/splitmix.h"

size_t stats_count(const double *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            k++;
    return k;
}

double stats_mean(const double *v, size_t n)
{
    double sum = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i]))
            continue;
        sum += v[i];
        k++;
    }
    return k ? sum / (double)k : NAN;
}

double stats_min(const double *v, size_t n)
{
    double m = NAN;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]) && (isnan(m) || v[i] < m))
            m = v[i];
    return m;
}

double stats_max(const double *v, size_t n)
{
    double m = NAN;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]) && (isnan(m) || v[i] > m))
            m = v[i];
    return m;
}

double stats_stddev(const double *v, size_t n)
{
    size_t k = stats_count(v, n);
    if (k < 2)
        return NAN;
    double mean = stats_mean(v, n), ss = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            ss += (v[i] - mean) * (v[i] - mean);
    return sqrt(ss / (double)(k - 1));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile p of k sorted values, linear interpolation between ranks. */
static double sorted_percentile(const double *s, size_t k, double p)
{
    double h = (double)(k - 1) * p / 100.0;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= k)
        return s[k - 1];
    return s[lo] + (h - (double)lo) * (s[lo + 1] - s[lo]);
}

/* A malloc'ed copy of the non-NaN values (*ret_k of them); NULL with
 * *ret_k == 0 when there are none. 0, -EINVAL or -ENOMEM. */
static int compact(const double *v, size_t n, double **ret_vals, size_t *ret_k)
{
    if (n > STATS_MAX_VALUES)
        return -EINVAL;
    size_t k = stats_count(v, n);
    double *c = NULL;
    if (k) {
        c = malloc(k * sizeof(*c));
        if (!c)
            return -ENOMEM;
        size_t j = 0;
        for (size_t i = 0; i < n; i++)
            if (!isnan(v[i]))
                c[j++] = v[i];
    }
    *ret_vals = c;
    *ret_k = k;
    return 0;
}

int stats_percentile(const double *v, size_t n, double p, double *ret_value)
{
    double *s = NULL;
    size_t k;
    int r;
    if (!(p >= 0 && p <= 100))
        return -EINVAL;
    r = compact(v, n, &s, &k);
    if (r < 0)
        goto fail;
    if (k == 0) {
        r = -ENODATA;
        goto fail;
    }
    qsort(s, k, sizeof(*s), cmp_double);
    *ret_value = sorted_percentile(s, k, p);
    r = 0;
fail:
    free(s);
    return r;
}

uint64_t stats_rng_next(struct stats_rng *g)
{
    return splitmix_next(&g->state);
}

/* Rejects the short top range: no modulo bias. */
size_t stats_rng_below(struct stats_rng *g, size_t n)
{
    uint64_t bound = (uint64_t)n;
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = stats_rng_next(g);
        if (x >= threshold)
            return (size_t)(x % bound);
    }
}

static double resample_mean(struct stats_rng *g, const double *s, size_t k)
{
    double sum = 0;
    for (size_t i = 0; i < k; i++)
        sum += s[stats_rng_below(g, k)];
    return sum / (double)k;
}

/* The central `confidence` interval of the bootstrap distribution. */
static void interval(double *dist, double confidence, double *ret_lo, double *ret_hi)
{
    qsort(dist, STATS_BOOTSTRAP_RESAMPLES, sizeof(*dist), cmp_double);
    double tail = (1 - confidence) / 2 * 100;
    *ret_lo = sorted_percentile(dist, STATS_BOOTSTRAP_RESAMPLES, tail);
    *ret_hi = sorted_percentile(dist, STATS_BOOTSTRAP_RESAMPLES, 100 - tail);
}

int stats_bootstrap_ci(const double *v, size_t n, double confidence, double *ret_lo,
                       double *ret_hi)
{
    double *s = NULL, *dist = NULL;
    size_t k;
    int r;
    if (!(confidence > 0 && confidence < 1))
        return -EINVAL;
    r = compact(v, n, &s, &k);
    if (r < 0)
        goto fail;
    if (k < 2) {
        r = -ENODATA;
        goto fail;
    }
    dist = malloc(STATS_BOOTSTRAP_RESAMPLES * sizeof(*dist));
    if (!dist) {
        r = -ENOMEM;
        goto fail;
    }
    struct stats_rng g = {STATS_BOOTSTRAP_SEED};
    for (size_t i = 0; i < STATS_BOOTSTRAP_RESAMPLES; i++)
        dist[i] = resample_mean(&g, s, k);
    interval(dist, confidence, ret_lo, ret_hi);
    r = 0;
fail:
    free(dist);
    free(s);
    return r;
}

int stats_summarize(const double *v, size_t n, struct stats_summary *ret)
{
    struct stats_summary out = {
        .n = 0, .mean = NAN, .p50 = NAN, .p90 = NAN, .min = NAN, .max = NAN,
        .ci_lo = NAN, .ci_hi = NAN,
    };
    if (n > STATS_MAX_VALUES)
        return -EINVAL;
    out.n = stats_count(v, n);
    if (out.n > 0) {
        int r;
        out.mean = stats_mean(v, n);
        out.min = stats_min(v, n);
        out.max = stats_max(v, n);
        r = stats_percentile(v, n, 50, &out.p50);
        if (r == 0)
            r = stats_percentile(v, n, 90, &out.p90);
        if (r == 0 && out.n >= 2)
            r = stats_bootstrap_ci(v, n, 0.95, &out.ci_lo, &out.ci_hi);
        if (r < 0)
            return r;
    }
    *ret = out;
    return 0;
}

int stats_bootstrap_diff(const double *a, size_t n_a, const double *b, size_t n_b,
                         struct stats_diff *ret)
{
    double *sa = NULL, *sb = NULL, *dist = NULL;
    size_t ka = 0, kb = 0;
    struct stats_diff d = {.ci_lo = NAN, .ci_hi = NAN};
    int r = compact(a, n_a, &sa, &ka);
    if (r < 0)
        goto fail;
    r = compact(b, n_b, &sb, &kb);
    if (r < 0)
        goto fail;
    if (ka == 0 || kb == 0) {
        r = -ENODATA;
        goto fail;
    }
    d.n_a = ka;
    d.n_b = kb;
    d.mean_a = stats_mean(sa, ka);
    d.mean_b = stats_mean(sb, kb);
    d.diff = d.mean_b - d.mean_a;
    d.rel = d.mean_a != 0 ? d.diff / d.mean_a : NAN;
    if (ka >= 2 && kb >= 2) {
        dist = malloc(STATS_BOOTSTRAP_RESAMPLES * sizeof(*dist));
        if (!dist) {
            r = -ENOMEM;
            goto fail;
        }
        /* One stream for both sides: each resample draws a's values, then
         * b's, so the pair is reproducible as a whole. */
        struct stats_rng g = {STATS_BOOTSTRAP_SEED};
        for (size_t i = 0; i < STATS_BOOTSTRAP_RESAMPLES; i++) {
            double ma = resample_mean(&g, sa, ka);
            double mb = resample_mean(&g, sb, kb);
            dist[i] = mb - ma;
        }
        interval(dist, 0.95, &d.ci_lo, &d.ci_hi);
        d.significant = d.ci_lo > 0 || d.ci_hi < 0;
    }
    *ret = d;
    r = 0;
fail:
    free(dist);
    free(sb);
    free(sa);
    return r;
}
