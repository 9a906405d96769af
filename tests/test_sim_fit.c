/* Unit tests for sim_fit: the model replayed on a case worked out by hand;
 * the fit recovering known numbers from requests the model produced (slots
 * from the queue, from what was seen, batch_slowdown left alone when
 * nothing decoded side by side); records read from JSON. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "sim/sim_fit.h"

/* 2 slots, 1000 prompt tok/s, 100 tok/s, +50 % per extra busy slot; three
 * requests at once, the third queued:
 *   0 ms     A and B take the slots and share the prefill: 1000 / 2 / 1.5
 *            = 333 tok/s each, 100 tokens: both first tokens at 300 ms;
 *   315, 330 their next tokens (10 ms x 1.5); A ends at 330 and C (50
 *            tokens) takes its slot, then B ends at 330 too;
 *   330      C alone: 50 tokens at 1000 tok/s, first token at 380 ms, its
 *            second (last) 10 ms later. */
static void replay_by_hand(void)
{
    struct sim_fit_params p = {2, 1000, 100, 0.5};
    struct sim_fit_arrival a[] = {{1000000, 100, 3}, {1000000, 100, 3}, {1000000, 50, 2}};
    struct sim_fit_times t[3];
    CHECK_INT(sim_fit_replay(&p, a, 3, t), 0);
    double base = 1000000;
    CHECK_NEAR(t[0].head - base + 1, 1, 1e-9);
    CHECK_NEAR(t[0].first - base, 300000, 1e-6);
    CHECK_NEAR(t[1].first - base, 300000, 1e-6);
    CHECK_NEAR(t[0].last - base, 330000, 1e-6);
    CHECK_NEAR(t[1].last - base, 330000, 1e-6);
    CHECK_NEAR(t[2].head - base, 330000, 1e-6);
    CHECK_NEAR(t[2].first - base, 380000, 1e-6);
    CHECK_NEAR(t[2].last - base, 390000, 1e-6);
    struct sim_fit_params bad = {0, 1000, 100, 0.5};
    CHECK_INT(sim_fit_replay(&bad, a, 3, t), -EINVAL);
}

/* Waves of requests sent together, `sizes[w % n_sizes]` at a time, 10 s
 * apart (each wave is over long before the next), as the model answers
 * them: the records a bench run would have made. */
static size_t synth(const struct sim_fit_params *p, const unsigned *sizes, size_t n_sizes,
                    size_t waves, struct sim_fit_request *r, size_t cap)
{
    struct sim_fit_arrival a[512];
    struct sim_fit_times t[512];
    size_t n = 0;
    for (size_t w = 0; w < waves; w++)
        for (unsigned k = 0; k < sizes[w % n_sizes] && n < cap && n < 512; k++, n++)
            a[n] = (struct sim_fit_arrival){.start = 1000000 + w * 10000000,
                                            .prompt_n = (uint32_t)(100 + (37 * n) % 500),
                                            .output_tokens = (uint32_t)(20 + (13 * n) % 60)};
    CHECK_INT(sim_fit_replay(p, a, n, t), 0);
    for (size_t i = 0; i < n; i++)
        r[i] = (struct sim_fit_request){
            .ok = true, .start = a[i].start, .head = (usec_t)llround(t[i].head),
            .first = (usec_t)llround(t[i].first), .last = (usec_t)llround(t[i].last),
            .end = (usec_t)llround(t[i].last), .prompt_tokens = a[i].prompt_n + 10,
            .cached_tokens = 10, .prompt_n = a[i].prompt_n, .output_tokens = a[i].output_tokens};
    return n;
}

static void recovers(void)
{
    struct sim_fit_params p = {3, 1500, 50, 0.1};
    struct sim_fit_request r[256];
    struct sim_fit_options o = {.default_slowdown = 0.05};
    struct sim_fit_result res;

    /* 1 to 5 at a time on 3 slots: waits tell the slots. */
    const unsigned all[] = {1, 2, 3, 4, 5};
    size_t n = synth(&p, all, 5, 30, r, 256);
    CHECK_INT(n, 90);
    CHECK_INT(sim_fit(r, n, &o, &res), 0);
    CHECK_INT(res.p.slots, 3);
    CHECK_INT(res.slots_from, SIM_FIT_SLOTS_QUEUE);
    CHECK(res.n_waited > 0);
    CHECK_NEAR(res.p.prefill_tps, 1500, 0.01);
    CHECK_NEAR(res.p.decode_tps, 50, 0.01);
    CHECK_NEAR(res.p.batch_slowdown, 0.1, 0.02);
    CHECK(res.slowdown_measured);
    CHECK_INT(res.n_decode, 90);
    CHECK_INT(res.n_prefill, 90);
    CHECK_INT(res.cache_hits, 90);
    CHECK_INT(res.cached_tokens, 900);
    /* Replayed with what it found, the model says what was measured. */
    for (int m = 0; m < SIM_FIT_METRICS; m++) {
        CHECK_INT(res.err[m].n, 90);
        if (m != SIM_FIT_SLOT_WAIT)
            CHECK(fabs(res.err[m].p50_error) < 0.01);
    }
    CHECK(res.err[SIM_FIT_TTFT].median_abs < 1.0); /* ms */

    /* A slot count given wins over the records. */
    o.slots = 4;
    CHECK_INT(sim_fit(r, n, &o, &res), 0);
    CHECK_INT(res.p.slots, 4);
    CHECK_INT(res.slots_from, SIM_FIT_SLOTS_GIVEN);
    o.slots = 0;

    /* One or two at a time: nobody waits, so the slots are "at least 2";
     * the slowdown still shows (two decode side by side). */
    const unsigned low[] = {1, 2};
    n = synth(&p, low, 2, 40, r, 256);
    CHECK_INT(sim_fit(r, n, &o, &res), 0);
    CHECK_INT(res.p.slots, 2);
    CHECK_INT(res.slots_from, SIM_FIT_SLOTS_SEEN);
    CHECK_INT(res.n_waited, 0);
    CHECK_NEAR(res.p.decode_tps, 50, 0.01);
    CHECK_NEAR(res.p.batch_slowdown, 0.1, 0.03);
    CHECK_NEAR(res.p.prefill_tps, 1500, 0.01);

    /* One at a time: nothing says how a batch slows; the default stays. */
    const unsigned one[] = {1};
    n = synth(&p, one, 1, 20, r, 256);
    CHECK_INT(sim_fit(r, n, &o, &res), 0);
    CHECK(!res.slowdown_measured);
    CHECK_NEAR(res.p.batch_slowdown, 0.05, 0);
    CHECK_NEAR(res.p.decode_tps, 50, 0.01);
    CHECK_NEAR(res.p.prefill_tps, 1500, 0.01);
    CHECK_INT(res.p.slots, 1);

    /* Nothing usable: failed requests only. */
    for (size_t i = 0; i < n; i++)
        r[i].ok = false;
    CHECK_INT(sim_fit(r, n, &o, &res), -ENODATA);
}

/* Gaps, when kept, are placed one by one: the same numbers come out. */
static void gaps(void)
{
    /* Two requests on one server: A alone (busy 1) for 10 steps of 20 ms,
     * then B joins (busy 2) for 10 steps of 24 ms each (b = 0.2); B's own
     * 10 steps are at busy 2 too. decode_tps 50, batch_slowdown 0.2. */
    uint32_t ga[20], gb[10];
    for (int i = 0; i < 20; i++)
        ga[i] = i < 10 ? 20000 : 24000;
    for (int i = 0; i < 10; i++)
        gb[i] = 24000;
    struct sim_fit_request r[2] = {
        {.ok = true, .start = 1000000, .head = 1000000, .first = 1010000,
         .last = 1010000 + 10 * 20000 + 10 * 24000, .end = 1010000 + 440000 + 1,
         .prompt_n = 15, .output_tokens = 21, .gaps = ga, .n_gaps = 20},
        {.ok = true, .start = 1200000, .head = 1200000, .first = 1210000,
         .last = 1210000 + 10 * 24000, .end = 1210000 + 240000 + 1, .prompt_n = 12,
         .output_tokens = 11, .gaps = gb, .n_gaps = 10},
    };
    struct sim_fit_options o = {.default_slowdown = 0.05};
    struct sim_fit_result res;
    CHECK_INT(sim_fit(r, 2, &o, &res), 0);
    CHECK_INT(res.n_gaps, 30);
    CHECK_NEAR(res.p.decode_tps, 50, 1e-3);
    CHECK_NEAR(res.p.batch_slowdown, 0.2, 1e-3);
}

static void records(void)
{
    const char *text =
        "{\"outcome\":\"ok\",\"stream\":true,\"prompt_tokens\":29,\"cached_tokens\":15,"
        "\"server_prompt_n\":14,\"output_tokens\":4,"
        "\"t\":{\"start_us\":1968122942,\"response_head\":860.436,\"first_token\":880.24,"
        "\"last_token\":1699.38,\"end\":1699.5},\"gaps_us\":[100,200,300]}";
    cJSON *rec = cJSON_Parse(text);
    struct sim_fit_input in = {0};
    CHECK_INT(sim_fit_input_add(&in, rec, 7), 0);
    CHECK_INT(in.n, 1);
    const struct sim_fit_request *q = &in.reqs[0];
    CHECK(q->ok);
    CHECK_INT(q->group, 7);
    CHECK_INT(q->start, 1968122942);
    CHECK_INT(q->head, 1968122942 + 860436);
    CHECK_INT(q->first, 1968122942 + 880240);
    CHECK_INT(q->last, 1968122942 + 1699380);
    CHECK_INT(q->end, 1968122942 + 1699500);
    CHECK_INT(q->prompt_n, 14);
    CHECK_INT(q->cached_tokens, 15);
    CHECK_INT(q->output_tokens, 4);
    CHECK_INT(q->n_gaps, 3);
    CHECK_INT(q->gaps[2], 300);
    cJSON_Delete(rec);
    /* Without server_prompt_n: prompt - cached. Not a stream: not ok. */
    rec = cJSON_Parse("{\"outcome\":\"ok\",\"stream\":false,\"prompt_tokens\":29,"
                      "\"cached_tokens\":15,\"t\":{\"start_us\":5}}");
    CHECK_INT(sim_fit_input_add(&in, rec, 0), 0);
    CHECK_INT(in.reqs[1].prompt_n, 14);
    CHECK(!in.reqs[1].ok);
    CHECK_INT(in.reqs[1].head, 0);
    cJSON_Delete(rec);
    /* No start: skipped. */
    rec = cJSON_Parse("{\"outcome\":\"ok\"}");
    CHECK_INT(sim_fit_input_add(&in, rec, 0), 0);
    CHECK_INT(in.n, 2);
    CHECK_INT(in.skipped, 1);
    cJSON_Delete(rec);
    sim_fit_input_finish(&in);
    CHECK_INT(in.n, 0);
}

int main(void)
{
    replay_by_hand();
    recovers();
    gaps();
    records();
    return check_done("test_sim_fit");
}
