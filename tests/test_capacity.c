/* Integration tests for what bench answers beyond its levels: calibrating
 * the simulator on a run against a separate `tokentap sim` with hidden
 * settings (they come back within 5 %), predicting the levels it was not
 * calibrated on (within 10 % of measured TTFT p50 and decode tok/s), the
 * capacity search on a simulator whose answer is known (with users that
 * are a scenario's agents, or runs of an agentic trace), and sweeps. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/config.h"
#include "itest.h"
#include "sim/sim_profile.h"

static char tmp[64];

/* Runs `tokentap ARGS` in tests/ (the fixtures' scenarios name files
 * beside them) and returns its exit status; out gets stdout and stderr. */
static const cJSON *get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of a record field over a level's requests in results.json. */
static double level_p50(const cJSON *results, const char *level, const char *field)
{
    double v[512];
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, get(results, "requests"))
    {
        const cJSON *x = get(get(e, "record"), field);
        if (strcmp(cJSON_GetStringValue(get(e, "level")), level) == 0 && cJSON_IsNumber(x) &&
            n < 512)
            v[n++] = x->valuedouble;
    }
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The "real" server: a simulator in its own process, with settings the
 * calibration does not see (it reads the run's records and /props'
 * total_slots, as it would of llama-server). */
#define HIDDEN_SLOTS 3
#define HIDDEN_PREFILL 2500.0
#define HIDDEN_DECODE 100.0
#define HIDDEN_SLOWDOWN 0.12

static bool measured;

/* Levels 1-5 of the predict scenario against the hidden server, once. */
static void measure(void)
{
    static char out[1 << 16];
    if (measured)
        return;
    struct itest_proc sim;
    const char *args[] = {"sim", "--listen", "127.0.0.1:0", "--slots", "3", "--prefill-tps", "2500",
                          "--decode-tps", "100", "--batch-slowdown", "0.12", NULL};
    itest_spawn(&sim, args);
    CHECK_INT(
        itest_runf_bench(out, sizeof(out),
                         "bench fixtures/scenario-predict.yaml --target real=http://127.0.0.1:%d "
                         "--repetitions 2 --out %s/measured -q",
                         sim.port, tmp),
        0);
    CHECK_INT(itest_stop(&sim), 0);
    measured = true;
}

static void check_profile(const char *path, unsigned slots, double tolerance)
{
    struct sim_profile p;
    struct config_err err;
    int r = sim_profile_load(path, &p, &err);
    CHECK_INT(r, 0);
    if (r < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_INT(p.slots, slots);
    CHECK_NEAR(p.prefill_tps, HIDDEN_PREFILL, tolerance);
    CHECK_NEAR(p.decode_tps, HIDDEN_DECODE, tolerance);
    CHECK_NEAR(p.batch_slowdown, HIDDEN_SLOWDOWN, tolerance);
    CHECK(p.calibrated);
    fprintf(stderr, "calibrated %s: slots %u, prefill_tps %.1f, decode_tps %.2f, batch_slowdown %.4f\n",
            path, p.slots, p.prefill_tps, p.decode_tps, p.batch_slowdown);
}

static void test_calibrate(void)
{
    static char out[1 << 16];
    char path[160];
    measure();
    /* Every level of the run: the numbers come back within 5 %. */
    snprintf(path, sizeof(path), "%s/all.yaml", tmp);
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "sim --calibrate %s/measured/results.json --out %s", tmp, path),
              0);
    CHECK(strstr(out, "slots           3         the server's /props (total_slots)") != NULL);
    CHECK(strstr(out, "fit error") != NULL);
    check_profile(path, HIDDEN_SLOTS, 0.05);

    /* The same records as a request log (serve --log's lines): no /props,
     * so the slots come from the requests that waited for one at levels 4
     * and 5. Without --out the profile goes to stdout. */
    snprintf(path, sizeof(path), "%s/measured/results.json", tmp);
    cJSON *r = itest_read_json(path);
    snprintf(path, sizeof(path), "%s/requests.jsonl", tmp);
    FILE *f = fopen(path, "w");
    const cJSON *e;
    cJSON_ArrayForEach(e, get(r, "requests"))
    {
        char *line = cJSON_PrintUnformatted(get(e, "record"));
        fprintf(f, "%s\n", line);
        free(line);
    }
    fclose(f);
    cJSON_Delete(r);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "sim --calibrate %s --out %s/log.yaml", path, tmp),
              0);
    CHECK(strstr(out, "busy while requests waited for a slot") != NULL);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "sim --calibrate %s 2>/dev/null", path), 0);
    CHECK(strstr(out, "\nslots: 3\nprefill_tps: ") != NULL);
    CHECK(strstr(out, "calibration:\n  from: [") != NULL);
    snprintf(path, sizeof(path), "%s/log.yaml", tmp);
    check_profile(path, HIDDEN_SLOTS, 0.05);

    /* Bad input: one line each, nothing written. */
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "sim --calibrate %s/measured/results.json --levels 9", tmp),
              2);
    CHECK(strstr(out, "has no level '9' (levels: 1, 2, 3, 4, 5)") != NULL);
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "sim --calibrate %s/measured/results.json --target q4", tmp),
              2);
    CHECK(strstr(out, "has no target 'q4' (targets: real)") != NULL);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "sim --calibrate fixtures/scenario-predict.yaml"),
              2);
    CHECK(strstr(out, "scenario-predict.yaml:1: not a request record") != NULL);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "sim --calibrate %s/nothing.json", tmp), 1);
    CHECK(strstr(out, "cannot read") != NULL);
}

static void test_predict(void)
{
    static char out[1 << 18];
    char path[160];
    measure();
    /* Calibrated on levels 1 and 2 only, it predicts 3 to 5. */
    CHECK_INT(itest_runf_bench(
                  out, sizeof(out),
                  "sim --calibrate %s/measured/results.json --levels 1,2 --out %s/fit12.yaml", tmp,
                  tmp),
              0);
    CHECK_INT(itest_runf_bench(
                  out, sizeof(out),
                  "bench fixtures/scenario-predict.yaml --target real=%s/fit12.yaml --levels 3,4,5 "
                  "--repetitions 2 --out %s/predicted -q",
                  tmp, tmp),
              0);
    snprintf(path, sizeof(path), "%s/measured/results.json", tmp);
    cJSON *m = itest_read_json(path);
    snprintf(path, sizeof(path), "%s/predicted/results.json", tmp);
    cJSON *p = itest_read_json(path);
    const char *levels[] = {"3", "4", "5"};
    for (int i = 0; i < 3; i++) {
        double mt = level_p50(m, levels[i], "ttft_ms"), pt = level_p50(p, levels[i], "ttft_ms");
        double md = level_p50(m, levels[i], "decode_tps"), pd = level_p50(p, levels[i], "decode_tps");
        fprintf(stderr, "level %s: TTFT p50 %.1f predicted %.1f ms; decode %.2f predicted %.2f tok/s\n",
                levels[i], mt, pt, md, pd);
        CHECK_NEAR(pt, mt, 0.10);
        CHECK_NEAR(pd, md, 0.10);
    }
    /* The predicted target says what it is. */
    const cJSON *cal = get(cJSON_GetArrayItem(get(p, "targets"), 0), "calibration");
    CHECK(cJSON_IsObject(cal));
    CHECK(cJSON_IsArray(get(cal, "levels")) && cJSON_GetArraySize(get(cal, "levels")) == 2);
    cJSON_Delete(m);
    cJSON_Delete(p);
    /* compare puts predicted next to measured, per level and metric. */
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "compare %s/measured/results.json %s/predicted/results.json", tmp,
                               tmp),
              0);
    CHECK(strstr(out, "### Prediction check: B: real predicts A: real") != NULL);
    CHECK(strstr(out, "| 4 | TTFT p50 |") != NULL);
    CHECK(strstr(out, "At the levels it was not fitted on, the largest error") != NULL);
}

/* The capacity a results.json found for its only target. */
static const cJSON *capacity_of(const cJSON *results)
{
    return cJSON_GetArrayItem(get(get(results, "capacity"), "targets"), 0);
}

static void test_capacity(void)
{
    static char out[1 << 18];
    char path[160];
    /* 3 slots, a TTFT objective a queued request breaks: 3 agents. */
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "bench fixtures/scenario-capacity.yaml --capacity --out %s/cap3 -q",
                               tmp),
              0);
    CHECK(strstr(out, "3 slots holds 3 agents, at TTFT p95 < 120 ms, errors < 1 %.") != NULL);
    CHECK(strstr(out, "| 3 slots | 3 agents (95 % CI 3–3) | TTFT p95 < 120 ms: ") != NULL);
    snprintf(path, sizeof(path), "%s/cap3/results.json", tmp);
    cJSON *r = itest_read_json(path);
    const cJSON *c = capacity_of(r);
    CHECK_INT(cJSON_GetNumberValue(get(c, "capacity")), 3);
    CHECK_STR(cJSON_GetStringValue(get(c, "bound")), "found");
    CHECK_STR(cJSON_GetStringValue(get(c, "broke")), "ttft_p95");
    CHECK_INT(cJSON_GetNumberValue(get(c, "broke_at")), 4);
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetArrayItem(get(c, "ci95"), 0)), 3);
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetArrayItem(get(c, "ci95"), 1)), 3);
    /* Tried 1, 2, 4 (broke), then 3; the levels are the counts, in order. */
    const cJSON *points = get(c, "points");
    CHECK_INT(cJSON_GetArraySize(points), 4);
    CHECK_INT(cJSON_GetNumberValue(get(cJSON_GetArrayItem(points, 2), "users")), 3);
    CHECK(cJSON_IsTrue(get(cJSON_GetArrayItem(points, 2), "pass")));
    CHECK(cJSON_IsFalse(get(cJSON_GetArrayItem(points, 3), "pass")));
    CHECK(cJSON_GetNumberValue(get(cJSON_GetArrayItem(points, 3), "repetitions")) >= 3);
    const cJSON *levels = get(get(r, "scenario"), "levels");
    CHECK_INT(cJSON_GetArraySize(levels), 4);
    CHECK_INT(cJSON_GetNumberValue(get(cJSON_GetArrayItem(levels, 3), "users")), 4);
    /* 4 users x 3 repetitions at level 4, each request saying which user. */
    int at4 = 0, users = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, get(r, "requests"))
    {
        if (strcmp(cJSON_GetStringValue(get(e, "level")), "4") == 0) {
            at4++;
            users |= 1 << (int)cJSON_GetNumberValue(get(e, "user"));
        }
    }
    CHECK_INT(at4, 4 * (int)cJSON_GetNumberValue(get(cJSON_GetArrayItem(points, 3), "repetitions")));
    CHECK_INT(users, 0x1e);
    cJSON_Delete(r);

    /* The same user on 2 slots: 2 agents. */
    snprintf(path, sizeof(path), "%s/two-slots.yaml", tmp);
    FILE *f = fopen(path, "w");
    fputs("slots: 2\nprefill_tps: 50000\ndecode_tps: 100\nbatch_slowdown: 0.05\n", f);
    fclose(f);
    CHECK_INT(
        itest_runf_bench(
            out, sizeof(out),
            "bench fixtures/scenario-capacity.yaml --capacity --target three=%s --out %s/cap2 -q",
            path, tmp),
        0);
    snprintf(path, sizeof(path), "%s/cap2/results.json", tmp);
    r = itest_read_json(path);
    CHECK_INT(cJSON_GetNumberValue(get(capacity_of(r), "capacity")), 2);
    cJSON_Delete(r);
    /* compare puts the two capacities side by side. */
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "compare %s/cap3/results.json %s/cap2/results.json", tmp, tmp),
              0);
    CHECK(strstr(out, "A: 3 slots holds 3 agents, B: 3 slots 2, at TTFT p95 < 120 ms, errors < 1 %.") !=
          NULL);

    /* A sweep over the slots: each copy of the target has its own search,
     * and the answers follow the slots. */
    CHECK_INT(
        itest_runf_bench(
            out, sizeof(out),
            "bench fixtures/scenario-capacity.yaml --capacity --sweep slots=2,4 --out %s/sweep -q",
            tmp),
        0);
    CHECK(strstr(out, "3 slots (slots=2) holds 2 agents, 3 slots (slots=4) 4, at TTFT p95 < 120 ms") !=
          NULL);
    CHECK(strstr(out, "- Sweep: `slots` over 2, 4") != NULL);
    snprintf(path, sizeof(path), "%s/sweep/results.json", tmp);
    r = itest_read_json(path);
    CHECK_STR(cJSON_GetStringValue(get(r, "sweep")), "slots");
    CHECK_STR(cJSON_GetStringValue(get(cJSON_GetArrayItem(get(r, "targets"), 1), "sweep_value")), "4");
    cJSON_Delete(r);

    /* An objective is needed, and must parse. */
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "bench fixtures/scenario-predict.yaml --capacity --out %s/x -q",
                               tmp),
              2);
    CHECK(strstr(out, "--capacity needs an objective: --slo") != NULL);
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "bench fixtures/scenario-capacity.yaml --capacity --slo 'ttft<1h'"),
              2);
    CHECK(strstr(out, "--slo: objective 'ttft<1h': the limit of ttft is a time like 2s or 500ms") !=
          NULL);
}

/* Users that are runs of an agentic trace (trace_0277, 53 requests each,
 * scaled down) against a `tokentap sim` of one slot: the search finds at
 * least one user, and every request of every user of every repetition is
 * in the results, ok, under its level (the count), its user and its
 * session's kind, in sessions of that user's own. */
static void test_capacity_trace(void)
{
    static char out[1 << 18];
    char path[160];
    struct itest_proc sim;
    const char *args[] = {"sim",  "--listen",         "127.0.0.1:0", "--slots",
                          "1",    "--prefill-tps",    "1000000",     "--decode-tps",
                          "5000", "--batch-slowdown", "0.05",        NULL};
    itest_spawn(&sim, args);
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "bench fixtures/scenario-capacity-trace.yaml --capacity --target "
                               "one=http://127.0.0.1:%d --out %s/trace -q",
                               sim.port, tmp),
              0);
    CHECK_INT(itest_stop(&sim), 0);
    CHECK(strstr(out, "A user is one run of an agentic trace from "
                      "`fixtures/agentic/trace_0277.json`") != NULL);
    snprintf(path, sizeof(path), "%s/trace/results.json", tmp);
    cJSON *r = itest_read_json(path);
    const cJSON *cap = get(r, "capacity"), *c = capacity_of(r), *e;
    CHECK_STR(cJSON_GetStringValue(get(cap, "unit")), "users");
    CHECK_STR(cJSON_GetStringValue(get(get(cap, "user"), "trace")),
              "fixtures/agentic/trace_0277.json");
    const cJSON *agents = get(get(cap, "user"), "agents");
    CHECK_INT(cJSON_GetArraySize(agents), 3);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(agents, 0)), "main");
    double found = cJSON_GetNumberValue(get(c, "capacity"));
    const char *bound = cJSON_GetStringValue(get(c, "bound"));
    CHECK(found >= 1);
    CHECK(bound && (strcmp(bound, "found") == 0 || strcmp(bound, "at-least") == 0));
    char line[200];
    snprintf(line, sizeof(line), "1 slot holds %g user%s, at TTFT p95 < 50 ms", found,
             found == 1 ? "" : "s");
    CHECK(strstr(out, line) != NULL);
    /* Every user of every repetition: 53 requests, all ok, in its own
     * sessions ("trace_0277 L<count>.<rep> u<user>/..."). */
    int want = 0;
    cJSON_ArrayForEach(e, get(c, "points")) want +=
        53 * (int)cJSON_GetNumberValue(get(e, "users")) *
        (int)cJSON_GetNumberValue(get(e, "repetitions"));
    CHECK(want >= 53 * 3);
    int n = 0, ok = 0, placed = 0;
    unsigned seen[5][11] = {{0}}; /* [users][rep]: a bit per user seen */
    cJSON_ArrayForEach(e, get(r, "requests"))
    {
        const cJSON *rec = get(e, "record");
        const char *level = cJSON_GetStringValue(get(e, "level"));
        int users = level ? atoi(level) : 0, rep = (int)cJSON_GetNumberValue(get(e, "repetition"));
        int user = (int)cJSON_GetNumberValue(get(e, "user"));
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "trace_0277 L%d.%d u%d/", users, rep, user);
        const char *session = cJSON_GetStringValue(get(rec, "session"));
        const char *kind = cJSON_GetStringValue(get(rec, "kind"));
        n++;
        ok += strcmp(cJSON_GetStringValue(get(rec, "outcome")), "ok") == 0;
        if (users >= 1 && users <= 4 && rep >= 1 && rep <= 10 && user >= 1 && user <= users &&
            session && strncmp(session, prefix, strlen(prefix)) == 0 && kind &&
            strcmp(kind, cJSON_GetStringValue(get(e, "agent"))) == 0) {
            placed++;
            seen[users][rep] |= 1u << user;
        }
    }
    CHECK_INT(n, want);
    CHECK_INT(ok, want);
    CHECK_INT(placed, want);
    cJSON_ArrayForEach(e, get(c, "points"))
    {
        int users = (int)cJSON_GetNumberValue(get(e, "users"));
        for (int rep = 1; users <= 4 && rep <= (int)cJSON_GetNumberValue(get(e, "repetitions"));
             rep++)
            CHECK_INT(seen[users][rep], ((1u << (users + 1)) - 2));
    }
    cJSON_Delete(r);
    /* compare shows the answer as it does a level's. */
    CHECK_INT(itest_runf_bench(out, sizeof(out),
                               "compare %s/trace/results.json %s/trace/results.json", tmp, tmp),
              0);
    snprintf(line, sizeof(line), "A: 1 slot holds %g user%s, B: 1 slot %g, at TTFT p95 < 50 ms",
             found, found == 1 ? "" : "s", found);
    CHECK(strstr(out, line) != NULL);

    /* A trace user is no level: --levels and a run without --capacity say
     * so; a trace that is not there is named. */
    CHECK_INT(
        itest_runf_bench(out, sizeof(out),
                         "bench fixtures/scenario-capacity-trace.yaml --capacity --levels 1 -q"),
        2);
    CHECK(strstr(out, "--levels: the capacity user of fixtures/scenario-capacity-trace.yaml is a "
                      "trace, not a level") != NULL);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "bench fixtures/scenario-capacity-trace.yaml -q"),
              2);
    CHECK(strstr(out, "has no levels: its capacity user is a trace, so it runs with --capacity") !=
          NULL);
    snprintf(path, sizeof(path), "%s/missing.yaml", tmp);
    FILE *f = fopen(path, "w");
    fputs("name: missing\ntargets:\n  one: {sim: {slots: 1}}\ncapacity:\n  slo: \"errors<1%\"\n"
          "  user: {trace: nothing.json}\n",
          f);
    fclose(f);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "bench %s --capacity -q", path), 2);
    CHECK(strstr(out, "capacity.user.trace: ") != NULL && strstr(out, "nothing.json") != NULL);
}

int main(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/tokentap-capacity-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    ITEST_RUN(test_calibrate);
    ITEST_RUN(test_predict);
    ITEST_RUN(test_capacity);
    ITEST_RUN(test_capacity_trace);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp);
    return check_done("test_capacity");
}
