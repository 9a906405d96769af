/* Unit tests for capacity: objectives parsed (and refused with the
 * reason), and the search driven against made-up servers whose answer is
 * known: it doubles, bisects, repeats the boundary until the verdicts are
 * sure, and answers with a CI and the objective that broke first. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "core/config.h"
#include "study/capacity.h"

static void slo(void)
{
    struct capacity_slo s;
    struct config_err err = {""};
    CHECK_INT(capacity_slo_parse("ttft_p95<2s, decode_tps_p50>20,errors<1%", &s, &err), 0);
    CHECK_INT(s.n, 3);
    CHECK_INT(s.o[0].metric, CAPACITY_TTFT);
    CHECK_INT(s.o[0].stat, CAPACITY_P95);
    CHECK_INT(s.o[0].op, CAPACITY_LT);
    CHECK_NEAR(s.o[0].limit, 2000, 1e-12);
    CHECK_STR(s.o[0].name, "ttft_p95");
    CHECK_STR(s.o[0].text, "TTFT p95 < 2 s");
    CHECK_INT(s.o[1].metric, CAPACITY_DECODE_TPS);
    CHECK_INT(s.o[1].op, CAPACITY_GT);
    CHECK_NEAR(s.o[1].limit, 20, 1e-12);
    CHECK_STR(s.o[1].text, "decode tok/s p50 > 20 tok/s");
    CHECK_INT(s.o[2].metric, CAPACITY_ERRORS);
    CHECK_INT(s.o[2].stat, CAPACITY_MEAN);
    CHECK_NEAR(s.o[2].limit, 0.01, 1e-12);
    CHECK_STR(s.o[2].text, "errors < 1 %");
    CHECK_STR(s.text, "TTFT p95 < 2 s, decode tok/s p50 > 20 tok/s, errors < 1 %");
    CHECK_INT(capacity_slo_parse("slot_wait_max <= 250ms, pass>=0.95, output_tps>100", &s, &err), 0);
    CHECK_INT(s.o[0].metric, CAPACITY_SLOT_WAIT);
    CHECK_INT(s.o[0].stat, CAPACITY_MAX);
    CHECK_INT(s.o[0].op, CAPACITY_LE);
    CHECK_NEAR(s.o[0].limit, 250, 1e-12);
    CHECK_INT(s.o[1].op, CAPACITY_GE);
    CHECK_NEAR(s.o[1].limit, 0.95, 1e-12);
    CHECK_STR(s.o[2].text, "output tok/s > 100 tok/s");
    CHECK(capacity_meets(&s.o[0], 250) && !capacity_meets(&s.o[0], 251) &&
          !capacity_meets(&s.o[0], NAN));

    CHECK_INT(capacity_slo_parse("ttft_p42<2s", &s, &err), -EINVAL);
    CHECK_STR(err.msg, "objective 'ttft_p42<2s': unknown metric 'ttft_p42' (metrics: ttft, ttfc, "
                       "e2e, tokens, decode_tps, itl, slot_wait, prefill, errors, pass, output_tps, "
                       "wall, total; add _p50, _p90, _p95, _p99, _mean, _min or _max)");
    CHECK_INT(capacity_slo_parse("errors<2", &s, &err), -EINVAL);
    CHECK_STR(err.msg, "objective 'errors<2': the limit of errors is a share like 1% (or 0.01), "
                       "not '2'");
    CHECK_INT(capacity_slo_parse("ttft_p95<2 hours", &s, &err), -EINVAL);
    CHECK_INT(capacity_slo_parse("ttft_p95", &s, &err), -EINVAL);
    CHECK_STR(err.msg, "objective 'ttft_p95': expected METRIC<LIMIT or METRIC>LIMIT, e.g. "
                       "ttft_p95<2s");
    CHECK_INT(capacity_slo_parse("ttft<1s,,errors<1%", &s, &err), -EINVAL);
    CHECK_INT(capacity_slo_parse("", &s, &err), -EINVAL);
}

/* A made-up server: `per_rep` requests per user, TTFT 100 ms while users
 * fit its `slots`, then a whole answer (400 ms) more per user past them,
 * with noise of +-`noise` (relative) from a fixed sequence. */
struct server {
    unsigned slots;
    double noise;
    uint64_t state;
    unsigned runs;
};

static double rnd(struct server *sv)
{
    sv->state = sv->state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(sv->state >> 11) / 9007199254740992.0;
}

static void run_rep(struct server *sv, struct capacity_search *s, unsigned users)
{
    double ttft[CAPACITY_MAX_USERS], errors[CAPACITY_MAX_USERS];
    for (unsigned u = 0; u < users; u++) {
        double base = u < sv->slots ? 100 : 100 + 400 * (double)(u / sv->slots);
        ttft[u] = base * (1 + sv->noise * (2 * rnd(sv) - 1));
        errors[u] = 0;
    }
    const double *values[2] = {ttft, errors};
    size_t n[2] = {users, users};
    CHECK_INT(capacity_add(s, users, values, n), 0);
    sv->runs++;
}

/* Runs the search to its end (at most `limit` repetitions). */
static void search(struct server *sv, struct capacity_search *s, unsigned limit)
{
    unsigned users;
    int r;
    while ((r = capacity_next(s, &users)) == 1 && sv->runs < limit)
        run_rep(sv, s, users);
    CHECK_INT(r, 0);
}

static void finds_the_slots(void)
{
    struct capacity_slo slo;
    struct config_err err;
    CHECK_INT(capacity_slo_parse("ttft_max<300ms, errors<1%", &slo, &err), 0);
    struct capacity_settings set = {.max_users = 64, .search_reps = 2, .boundary_reps = 3,
                                    .max_reps = 10};
    struct capacity_search *s = NULL;
    CHECK_INT(capacity_search_new(&slo, &set, &s), 0);
    struct server sv = {.slots = 3, .noise = 0.05, .state = 1};
    search(&sv, s, 200);
    struct capacity_answer a;
    CHECK_INT(capacity_answer(s, &a), 0);
    CHECK_INT(a.bound, CAPACITY_FOUND);
    CHECK_INT(a.capacity, 3);
    CHECK_INT(a.ci_lo, 3);
    CHECK_INT(a.ci_hi, 3);
    CHECK_INT(a.broke, 0);
    CHECK_INT(a.broke_at, 4);
    /* 1, 2, 4 doubling, then 3 between 2 and 4; the two boundary counts
     * repeated to 3 (their verdicts are sure by then), the others 2. */
    CHECK_INT(a.n_points, 4);
    unsigned want[] = {1, 2, 3, 4};
    size_t reps[] = {2, 2, 3, 3};
    for (size_t i = 0; i < a.n_points && i < 4; i++) {
        CHECK_INT(a.points[i].users, want[i]);
        CHECK_INT(a.points[i].reps, reps[i]);
        CHECK(a.points[i].significant);
        CHECK_INT(a.points[i].pass, i < 3);
    }
    CHECK_INT(sv.runs, 10);
    CHECK(a.points[3].j[0].value > 450 && a.points[3].j[0].lo <= a.points[3].j[0].value &&
          a.points[3].j[0].hi >= a.points[3].j[0].value);
    CHECK(a.points[2].j[1].pass && a.points[2].j[1].value == 0);
    capacity_answer_finish(&a);
    capacity_search_free(s);
}

static void at_least_and_below_one(void)
{
    struct capacity_slo slo;
    struct config_err err;
    struct capacity_settings set = {.max_users = 8, .search_reps = 1, .boundary_reps = 2,
                                    .max_reps = 4};
    struct capacity_search *s = NULL;
    struct capacity_answer a;
    /* Nothing breaks it up to 8: at least 8. */
    CHECK_INT(capacity_slo_parse("ttft_p50<10s", &slo, &err), 0);
    CHECK_INT(capacity_search_new(&slo, &set, &s), 0);
    struct server sv = {.slots = 3, .noise = 0.01, .state = 7};
    unsigned users;
    int r;
    while ((r = capacity_next(s, &users)) == 1 && sv.runs < 50) {
        double ttft[8], *v = ttft;
        for (unsigned u = 0; u < users; u++)
            ttft[u] = 100;
        size_t n = users;
        CHECK_INT(capacity_add(s, users, (const double *const *)&v, &n), 0);
        sv.runs++;
    }
    CHECK_INT(capacity_answer(s, &a), 0);
    CHECK_INT(a.bound, CAPACITY_AT_LEAST);
    CHECK_INT(a.capacity, 8);
    CHECK_INT(a.broke, -1);
    CHECK_INT(a.n_points, 4); /* 1, 2, 4, 8 */
    CHECK_INT(a.points[3].reps, 2);
    capacity_answer_finish(&a);
    capacity_search_free(s);

    /* One user already breaks it. */
    CHECK_INT(capacity_slo_parse("ttft_p50<10ms", &slo, &err), 0);
    CHECK_INT(capacity_search_new(&slo, &set, &s), 0);
    sv.runs = 0;
    while ((r = capacity_next(s, &users)) == 1 && sv.runs < 50) {
        double ttft[8] = {100}, *v = ttft;
        size_t n = 1;
        CHECK_INT(capacity_add(s, users, (const double *const *)&v, &n), 0);
        sv.runs++;
    }
    CHECK_INT(capacity_answer(s, &a), 0);
    CHECK_INT(a.bound, CAPACITY_BELOW_ONE);
    CHECK_INT(a.capacity, 0);
    CHECK_INT(a.broke_at, 1);
    CHECK_INT(a.n_points, 1);
    capacity_answer_finish(&a);
    capacity_search_free(s);

    /* Settings out of range. */
    set.max_users = 0;
    CHECK_INT(capacity_search_new(&slo, &set, &s), -EINVAL);
}

/* A limit the values straddle: more repetitions cannot make the verdict
 * sure, so the boundary is repeated to the cap and the CI says so. */
static void unsure(void)
{
    struct capacity_slo slo;
    struct config_err err;
    CHECK_INT(capacity_slo_parse("ttft_p50<500ms", &slo, &err), 0);
    struct capacity_settings set = {.max_users = 16, .search_reps = 2, .boundary_reps = 3,
                                    .max_reps = 8};
    struct capacity_search *s = NULL;
    CHECK_INT(capacity_search_new(&slo, &set, &s), 0);
    /* p50 of 4 users: 100 ms + 400 x (users / 3); at 4 users half are past
     * the slots (100, 100, 100, 500): p50 100; at 6: 100,100,100,500,500,500
     * → 300; at 8: 500 ± noise, which straddles 500. */
    struct server sv = {.slots = 3, .noise = 0.3, .state = 3};
    search(&sv, s, 300);
    struct capacity_answer a;
    CHECK_INT(capacity_answer(s, &a), 0);
    CHECK(a.bound == CAPACITY_FOUND);
    CHECK(a.ci_lo <= a.capacity && a.capacity <= a.ci_hi);
    /* Each boundary count has its verdict backed, or the cap of 8. */
    for (size_t i = 0; i < a.n_points; i++)
        if (a.points[i].users == a.capacity || a.points[i].users == a.broke_at)
            CHECK(a.points[i].significant || a.points[i].reps == 8);
    CHECK(sv.runs <= 8 * a.n_points);
    capacity_answer_finish(&a);
    capacity_search_free(s);
}

int main(void)
{
    slo();
    finds_the_slots();
    at_least_and_below_one();
    unsure();
    return check_done("test_capacity_search");
}
