/* Integration tests for recording and replay: serve --record in front of
 * the sim, then tokentap replay against the sim, with every timing mode. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "itest.h"

static char tmpdir[64];

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* The one .jsonl file written into dir. */
static void trace_file(const char *dir, char *buf, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    buf[0] = '\0';
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".jsonl"))
            snprintf(buf, len, "%.120s/%.120s", dir, e->d_name);
    if (d)
        closedir(d);
}

/* Parses a JSONL file into an array. */
static cJSON *read_jsonl(const char *path)
{
    size_t len;
    char *text = itest_read_file(path, &len);
    cJSON *arr = cJSON_CreateArray();
    for (char *p = text, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        cJSON *j = cJSON_Parse(p);
        if (j)
            cJSON_AddItemToArray(arr, j);
    }
    free(text);
    return arr;
}

/* Record a small workload through serve: two sessions of two turns and
 * two single requests, spaced out in time. */
static void record_workload(int sim_port, const char *dir)
{
    struct itest_proc serve;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sim_port);
    const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--upstream", url, "--record", dir, NULL};
    itest_spawn(&serve, args);
    static const struct {
        const char *session, *body;
        unsigned sleep_ms;
    } reqs[] = {
        {"alpha", "{\"messages\":[{\"role\":\"user\",\"content\":\"alpha one\"}],\"stream\":true,\"max_tokens\":8}", 0},
        {"beta", "{\"messages\":[{\"role\":\"user\",\"content\":\"beta one\"}],\"stream\":true,\"max_tokens\":8}", 300},
        {NULL, "{\"messages\":[{\"role\":\"user\",\"content\":\"solo\"}],\"stream\":true,\"max_tokens\":8}", 300},
        {"alpha", "{\"messages\":[{\"role\":\"user\",\"content\":\"alpha one\"},{\"role\":\"assistant\","
                  "\"content\":\"RECORDED ANSWER\"},{\"role\":\"user\",\"content\":\"alpha two\"}],"
                  "\"stream\":true,\"max_tokens\":8}", 300},
        {"beta", "{\"messages\":[{\"role\":\"user\",\"content\":\"beta two\"}],\"stream\":true,\"max_tokens\":8}", 300},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        itest_sleep_ms(reqs[i].sleep_ms);
        char hdr[256];
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer sk-TOPSECRET\r\n%s%s%s",
                 reqs[i].session ? "X-Session-ID: " : "", reqs[i].session ? reqs[i].session : "",
                 reqs[i].session ? "\r\n" : "");
        struct itest_resp r;
        itest_request(serve.port, "POST", "/v1/chat/completions", hdr, reqs[i].body,
                      strlen(reqs[i].body), &r);
        CHECK_INT(r.status, 200);
        itest_resp_free(&r);
    }
    CHECK_INT(itest_stop(&serve), 0);
}

static void test_record_and_replay(void)
{
    struct itest_proc sim;
    const char *sargs[] = {"sim", "--listen", "127.0.0.1:0", "--decode-tps", "200", NULL};
    itest_spawn(&sim, sargs);
    char dir[128], trace[256], log1[128], out1[128], log10[128], out[65536];
    path_in(dir, sizeof(dir), "rec");
    record_workload(sim.port, dir);
    trace_file(dir, trace, sizeof(trace));
    CHECK(trace[0] != '\0');

    /* Secrets never reach disk. */
    size_t len;
    char *text = itest_read_file(trace, &len);
    CHECK(strstr(text, "TOPSECRET") == NULL);
    CHECK(strstr(text, "<redacted>") != NULL);
    free(text);
    cJSON *recorded = read_jsonl(trace);
    CHECK_INT(cJSON_GetArraySize(recorded), 5);

    /* Replay at speed 1 and 10 against the sim. */
    path_in(log1, sizeof(log1), "replay1.jsonl");
    path_in(out1, sizeof(out1), "replay1.json");
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target http://127.0.0.1:%d --log %s --out %s -q",
                  trace, sim.port, log1, out1),
              0);
    CHECK(strstr(out, "5 requests") != NULL);
    path_in(log10, sizeof(log10), "replay10.jsonl");
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target http://127.0.0.1:%d --speed 10 --log %s -q",
                  trace, sim.port, log10),
              0);

    cJSON *r1 = read_jsonl(log1), *r10 = read_jsonl(log10);
    CHECK_INT(cJSON_GetArraySize(r1), 5);
    CHECK_INT(cJSON_GetArraySize(r10), 5);
    /* Offsets: recorded starts vs replayed intended starts. */
    double rec_first = 1e30, rep_first = 1e30, rep10_first = 1e30;
    const cJSON *e;
    cJSON_ArrayForEach(e, recorded) if (itest_json_num(e, "t_mono_us") < rec_first) rec_first = itest_json_num(e, "t_mono_us");
    cJSON_ArrayForEach(e, r1) if (itest_json_num(e, "t.start_us") < rep_first) rep_first = itest_json_num(e, "t.start_us");
    cJSON_ArrayForEach(e, r10) if (itest_json_num(e, "t.start_us") < rep10_first) rep10_first = itest_json_num(e, "t.start_us");
    double rec_span = 0, rep_span = 0, rep10_span = 0;
    cJSON_ArrayForEach(e, recorded) if (itest_json_num(e, "t_mono_us") - rec_first > rec_span) rec_span = itest_json_num(e, "t_mono_us") - rec_first;
    cJSON_ArrayForEach(e, r1) if (itest_json_num(e, "t.start_us") - rep_first > rep_span) rep_span = itest_json_num(e, "t.start_us") - rep_first;
    cJSON_ArrayForEach(e, r10) if (itest_json_num(e, "t.start_us") - rep10_first > rep10_span) rep10_span = itest_json_num(e, "t.start_us") - rep10_first;
    CHECK(rec_span > 1000000); /* the four 300 ms pauses and the requests */
    CHECK_NEAR(rep_span, rec_span, 0.15);
    CHECK(rep10_span < rec_span / 5);
    /* Every replayed request was ok and sessions kept their order: a
     * session's second turn started after its first ended. */
    cJSON_ArrayForEach(e, r1)
    {
        CHECK_STR(itest_json_str(e, "outcome"), "ok");
        if (strcmp(itest_json_str(e, "session"), "alpha") != 0)
            continue;
    }
    double alpha_end[2] = {0}, alpha_start[2] = {0};
    int k = 0;
    cJSON_ArrayForEach(e, r10)
    {
        if (strcmp(itest_json_str(e, "session"), "alpha") == 0 && k < 2) {
            alpha_start[k] = itest_json_num(e, "t.start_us") + itest_json_num(e, "t.sent") * 1000;
            alpha_end[k] = itest_json_num(e, "t.start_us") + itest_json_num(e, "t.end") * 1000;
            k++;
        }
    }
    CHECK_INT(k, 2);
    /* Log lines come in finishing order: the first alpha line is turn 1. */
    CHECK(alpha_start[1] >= alpha_end[0]);
    cJSON *summary = NULL;
    text = itest_read_file(out1, &len);
    summary = cJSON_Parse(text);
    free(text);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(summary, "complete")));
    CHECK_INT(itest_json_num(summary, "requests_finished"), 5);
    CHECK(itest_json_num(summary, "stats.overall.ttft_ms.count") == 5);
    CHECK(itest_json_num(summary, "send_lag_ms.count") == 5);
    cJSON_Delete(summary);
    cJSON_Delete(r1);
    cJSON_Delete(r10);

    /* --history live: the second alpha turn carries this run's answer,
     * seen by a recording proxy in front of the sim. */
    char dir2[128], trace2[256];
    path_in(dir2, sizeof(dir2), "rec2");
    struct itest_proc serve;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sim.port);
    const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--upstream", url, "--record", dir2, NULL};
    itest_spawn(&serve, args);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target http://127.0.0.1:%d --speed 20 --history live -q",
                  trace, serve.port),
              0);
    CHECK_INT(itest_stop(&serve), 0);
    trace_file(dir2, trace2, sizeof(trace2));
    cJSON *live = read_jsonl(trace2);
    /* 5 requests, and replay's GET /health probe before the run. */
    CHECK_INT(cJSON_GetArraySize(live), 6);
    int found = 0;
    cJSON_ArrayForEach(e, live)
    {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "body"), "messages");
        if (cJSON_GetArraySize(msgs) != 3)
            continue;
        const char *answer = itest_json_str(cJSON_GetArrayItem(msgs, 1), "content");
        CHECK(strcmp(answer, "RECORDED ANSWER") != 0);
        CHECK(strlen(answer) > 0);
        found++;
    }
    CHECK_INT(found, 1);
    cJSON_Delete(live);
    cJSON_Delete(recorded);
    itest_stop(&sim);
}

/* --history live pairs answers with assistant messages from the end: the
 * last assistant message is the previous turn's answer; one from before
 * the recording began stays. A message with many "role" keys counts once. */
static void test_live_history(void)
{
    struct itest_proc sim, serve;
    const char *sargs[] = {"sim", "--listen", "127.0.0.1:0", "--decode-tps", "2000", NULL};
    itest_spawn(&sim, sargs);
    char dir[128], url[64], trace[128], recorded[256], out[65536];
    path_in(dir, sizeof(dir), "rec-live");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sim.port);
    const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--upstream",
                          url,     "--record", dir,           NULL};
    itest_spawn(&serve, args);
    path_in(trace, sizeof(trace), "live.jsonl");
    FILE *f = fopen(trace, "w");
    fprintf(f,
            "{\"session\":\"s\",\"timestamp\":0,\"max_tokens\":4,\"stream\":true,\"messages\":["
            "{\"role\":\"user\",\"content\":\"u0\"},{\"role\":\"assistant\",\"content\":\"OLD0\"},"
            "{\"role\":\"user\",\"content\":\"u1\"}]}\n");
    fprintf(f,
            "{\"session\":\"s\",\"timestamp\":10,\"max_tokens\":4,\"stream\":true,\"messages\":["
            "{\"role\":\"user\",\"content\":\"u0\"},{\"role\":\"assistant\",\"content\":\"OLD0\"},"
            "{\"role\":\"user\",\"content\":\"u1\"},{\"role\":\"assistant\",\"content\":\"REC1\"},"
            "{\"role\":\"user\",\"content\":\"u2\"}]}\n");
    fprintf(f, "{\"session\":\"d\",\"timestamp\":0,\"max_tokens\":4,\"stream\":true,\"messages\":["
               "{\"role\":\"user\",\"content\":\"d0\"}]}\n");
    fprintf(f, "{\"session\":\"d\",\"timestamp\":10,\"max_tokens\":4,\"stream\":true,\"messages\":["
               "{\"role\":\"user\",\"content\":\"d0\"},{");
    for (int i = 0; i < 300; i++)
        fprintf(f, "\"role\":\"assistant\",");
    fprintf(f, "\"content\":\"RECD\"},{\"role\":\"user\",\"content\":\"d1\"}]}\n");
    fclose(f);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target http://127.0.0.1:%d --history live -q",
                  trace, serve.port),
              0);
    CHECK_INT(itest_stop(&serve), 0);
    itest_stop(&sim);
    trace_file(dir, recorded, sizeof(recorded));
    cJSON *live = read_jsonl(recorded);
    int seen = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, live)
    {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(e, "body"), "messages");
        const char *last = itest_json_str(cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1), "content");
        if (strcmp(last, "u2") == 0) {
            CHECK_STR(itest_json_str(cJSON_GetArrayItem(msgs, 1), "content"), "OLD0");
            const char *answer = itest_json_str(cJSON_GetArrayItem(msgs, 3), "content");
            CHECK(strcmp(answer, "REC1") != 0 && strlen(answer) > 0);
            seen++;
        } else if (strcmp(last, "d1") == 0) {
            const char *answer = itest_json_str(cJSON_GetArrayItem(msgs, 1), "content");
            CHECK(strcmp(answer, "RECD") != 0 && strlen(answer) > 0);
            seen++;
        }
    }
    CHECK_INT(seen, 2);
    cJSON_Delete(live);
}

/* Closed loop: never more than N in flight, and N is reached. Open loop:
 * Poisson arrivals at the asked mean rate. Length-only traces: prompts of
 * the stated size. */
static void test_modes(void)
{
    char trace[128], log[128], out[65536];
    path_in(trace, sizeof(trace), "lengths.jsonl");
    FILE *f = fopen(trace, "w");
    for (int i = 0; i < 30; i++)
        fprintf(f, "{\"timestamp\":%d,\"input_length\":%d,\"output_length\":%d}\n", i * 10, 100 + i * 20, 20);
    fclose(f);

    path_in(log, sizeof(log), "conc.jsonl");
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --concurrency 4 --sim-slots 8 --sim-decode-tps 400 --sim-prefill-tps 20000 --log %s -q",
                  trace, log),
              0);
    cJSON *recs = read_jsonl(log);
    CHECK_INT(cJSON_GetArraySize(recs), 30);
    int max_c = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, recs)
    {
        int c = (int)itest_json_num(e, "concurrency");
        if (c > max_c)
            max_c = c;
        CHECK_INT(itest_json_num(e, "output_tokens"), 20);
        /* The sim charged exactly the stated input length. */
        CHECK_INT(itest_json_num(e, "prompt_tokens") - 100 >= 0 && ((int)itest_json_num(e, "prompt_tokens") - 100) % 20 == 0, 1);
    }
    CHECK_INT(max_c, 4);
    cJSON_Delete(recs);

    path_in(log, sizeof(log), "rate.jsonl");
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --rate 40 --requests 120 --seed 3 --sim-slots 64 --sim-decode-tps 2000 --sim-prefill-tps 200000 --log %s -q",
                  trace, log),
              0);
    recs = read_jsonl(log);
    CHECK_INT(cJSON_GetArraySize(recs), 120);
    double first = 1e30, last = 0;
    cJSON_ArrayForEach(e, recs)
    {
        double t = itest_json_num(e, "t.start_us");
        if (t < first)
            first = t;
        if (t > last)
            last = t;
    }
    /* 119 gaps at a mean of 25 ms: about 3 s (a Poisson sum; wide margin). */
    double mean_gap_ms = (last - first) / 119 / 1000;
    CHECK(mean_gap_ms > 18 && mean_gap_ms < 33);
    cJSON_Delete(recs);

    /* --rate R --duration D sends R x D requests: the end is not included. */
    path_in(log, sizeof(log), "window.jsonl");
    CHECK_INT(itest_runf(out, sizeof(out),
                  "replay %s --rate 5 --duration 2s --arrival constant --sim-decode-tps 5000 --log %s -q",
                  trace, log),
              0);
    recs = read_jsonl(log);
    CHECK_INT(cJSON_GetArraySize(recs), 10);
    cJSON_Delete(recs);

    /* The open loop repeats the trace in start order, not file order. */
    path_in(trace, sizeof(trace), "unordered.jsonl");
    f = fopen(trace, "w");
    static const int stamps[] = {20, 0, 10};
    for (int i = 0; i < 3; i++)
        fprintf(f,
                "{\"timestamp\":%d,\"session\":\"s%d\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"x\"}],"
                "\"max_tokens\":2,\"stream\":true}\n",
                stamps[i], stamps[i] / 10);
    fclose(f);
    path_in(log, sizeof(log), "repeat.jsonl");
    CHECK_INT(
        itest_runf(out, sizeof(out),
            "replay %s --rate 20 --arrival constant --requests 6 --sim-decode-tps 5000 --log %s -q",
            trace, log),
        0);
    recs = read_jsonl(log);
    CHECK_INT(cJSON_GetArraySize(recs), 6);
    char order[8] = "";
    for (int k = 0; k < 6; k++) {
        /* The k-th request sent: the k-th smallest start time. */
        const cJSON *best = NULL;
        cJSON_ArrayForEach(e, recs)
        {
            int rank = 0;
            const cJSON *o;
            cJSON_ArrayForEach(o, recs) if (itest_json_num(o, "t.start_us") < itest_json_num(e, "t.start_us")) rank++;
            if (rank == k)
                best = e;
        }
        order[k] = best ? itest_json_str(best, "session")[1] : '?';
    }
    CHECK_STR(order, "012012");
    cJSON_Delete(recs);
}

/* Closed loop: --concurrency N keeps exactly N requests in flight until
 * the trace runs out. Seen from the sim (requests_processing sampled
 * while the run goes) and from the records' concurrency. */
/* Runs tokentap with argv (no program name) in the background, output
 * discarded; returns its pid. */
static pid_t spawn_quiet(const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        const char *args[32] = {getenv("TOKENTAP")};
        for (size_t i = 0; argv[i] && i < 30; i++)
            args[i + 1] = argv[i];
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    return pid;
}

static long sim_processing(int port)
{
    struct itest_resp r;
    itest_request(port, "GET", "/metrics", NULL, NULL, 0, &r);
    const char *key = "\nllamacpp:requests_processing ";
    const char *p = r.body ? strstr(r.body, key) : NULL;
    long v = p ? strtol(p + strlen(key), NULL, 10) : -1;
    itest_resp_free(&r);
    return v;
}

static void test_closed_loop(void)
{
    static const int levels[] = {1, 2, 4, 16};
    const char *sargs[] = {"sim", "--listen", "127.0.0.1:0", "--slots", "32", "--decode-tps", "100",
                           "--prefill-tps", "100000", NULL};
    struct itest_proc sim;
    itest_spawn(&sim, sargs);
    for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
        int n = levels[li], total = 4 * n + 2;
        char trace[128], log[128];
        path_in(trace, sizeof(trace), "closed.jsonl");
        path_in(log, sizeof(log), "closed-log.jsonl");
        unlink(log);
        FILE *f = fopen(trace, "w");
        for (int i = 0; i < total; i++)
            fprintf(f, "{\"messages\":[{\"role\":\"user\",\"content\":\"closed loop %d\"}],"
                       "\"max_tokens\":15,\"stream\":true}\n", i);
        fclose(f);
        /* 4 waves of 150 ms each: the sampler sees each level many times. */
        char target[64], conc[16];
        snprintf(target, sizeof(target), "http://127.0.0.1:%d", sim.port);
        snprintf(conc, sizeof(conc), "%d", n);
        const char *rargs[] = {"replay", trace, "--target", target, "--concurrency", conc,
                               "--log", log, "-q", NULL};
        pid_t pid = spawn_quiet(rargs);
        long hist[64] = {0};
        int samples = 0, status = -1;
        /* Bounded: a replay that stalls is killed after about 20 s. */
        for (int k = 0; k < 2000; k++) {
            if (waitpid(pid, &status, WNOHANG) == pid)
                break;
            long v = sim_processing(sim.port);
            if (v > 0 && v < 64) {
                hist[v]++;
                samples++;
            }
            itest_sleep_ms(5);
        }
        if (waitpid(pid, &status, WNOHANG) == 0) {
            fprintf(stderr, "closed loop %d: replay still running after 20 s: killed\n", n);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        long most = 0, mode = 0, max = 0;
        for (long v = 1; v < 64; v++) {
            if (hist[v] > most) {
                most = hist[v];
                mode = v;
            }
            if (hist[v])
                max = v;
        }
        /* Most of the time exactly n are running, never more. */
        CHECK_INT(mode, n);
        CHECK_INT(max, n);
        CHECK(samples > 10 && hist[n] * 2 > samples);
        cJSON *recs = read_jsonl(log);
        CHECK_INT(cJSON_GetArraySize(recs), total);
        const cJSON *e;
        int at_n = 0;
        /* After the first wave, each request starts while the n - 1
         * others run. */
        cJSON_ArrayForEach(e, recs) if (itest_json_num(e, "id") <= n || (int)itest_json_num(e, "concurrency") == n) at_n++;
        CHECK_INT(at_n, total);
        if (at_n != total || mode != n)
            fprintf(stderr, "closed loop %d: mode %ld max %ld, %d/%d records at level %d\n", n, mode,
                    max, at_n, total, n);
        cJSON_Delete(recs);
    }
    itest_stop(&sim);
}

/* The rewrite rules of a serve config and --thinking apply to replayed
 * requests: the sim then answers with or without reasoning. */
static void test_rewrite(void)
{
    char trace[128], conf[128], log[128], out[65536];
    path_in(trace, sizeof(trace), "think.jsonl");
    FILE *f = fopen(trace, "w");
    for (int i = 0; i < 3; i++)
        fprintf(f, "{\"messages\":[{\"role\":\"user\",\"content\":\"q %d\"}],\"stream\":true,\"max_tokens\":30,"
                   "\"chat_template_kwargs\":{\"enable_thinking\":true,\"keep\":1}}\n", i);
    fclose(f);
    path_in(conf, sizeof(conf), "think.yaml");
    f = fopen(conf, "w");
    fprintf(f, "rewrite:\n  rules:\n    - name: quiet\n      match: {route: \"/v1/chat/*\"}\n      thinking: off\n");
    fclose(f);

    static const struct {
        bool config;
        const char *thinking_arg;
        const char *rules;
        int thinking;
    } cases[] = {
        {false, "", "", 1},                  /* as recorded */
        {true, "", "quiet", 0},              /* the rule */
        {true, "--thinking on", "", 1},      /* the override wins (the rule did nothing), as in serve */
        {false, "--thinking off", "", 0},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char extra[256];
        snprintf(extra, sizeof(extra), "%s%s %s", cases[c].config ? "--config " : "", cases[c].config ? conf : "",
                 cases[c].thinking_arg);
        path_in(log, sizeof(log), "think-log.jsonl");
        unlink(log);
        CHECK_INT(itest_runf(out, sizeof(out), "replay %s %s --concurrency 3 --sim-decode-tps 1000 --log %s -q", trace,
                      extra, log),
                  0);
        cJSON *recs = read_jsonl(log);
        CHECK_INT(cJSON_GetArraySize(recs), 3);
        const cJSON *e;
        cJSON_ArrayForEach(e, recs)
        {
            const cJSON *th = cJSON_GetObjectItemCaseSensitive(e, "thinking");
            CHECK_INT(cJSON_IsTrue(th), cases[c].thinking);
            CHECK_INT(itest_json_num(e, "pieces.reasoning") > 0, cases[c].thinking);
            CHECK_STR(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "rules")) ? itest_json_str(e, "rules") : "",
                      cases[c].rules);
        }
        cJSON_Delete(recs);
    }
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --thinking maybe -q", trace), 2);
    CHECK(strstr(out, "expected on, off or pass") != NULL);
    f = fopen(conf, "w");
    fprintf(f, "rewrite:\n  rules:\n    - name: bad\n      thinkin: off\n");
    fclose(f);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --config %s -q", trace, conf), 2);
    char want[200];
    snprintf(want, sizeof(want), "%s:4: unknown key 'thinkin'", conf);
    CHECK(strstr(out, want) != NULL);
}

/* A proxy killed mid-record leaves a trace that replays up to its last
 * whole line; bad lines are reported with file:line. */
static void test_bad_traces(void)
{
    struct itest_proc sim;
    const char *sargs[] = {"sim", "--listen", "127.0.0.1:0", "--decode-tps", "100", NULL};
    itest_spawn(&sim, sargs);
    char dir[128], trace[256], out[65536];
    path_in(dir, sizeof(dir), "killed");
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sim.port);
    struct itest_proc serve;
    const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--upstream", url, "--record", dir, NULL};
    itest_spawn(&serve, args);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"k\"}],\"stream\":true,\"max_tokens\":5}";
    for (int i = 0; i < 3; i++) {
        struct itest_resp r;
        itest_request(serve.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
        itest_resp_free(&r);
    }
    itest_sleep_ms(200); /* the writer thread's turn */
    kill(serve.pid, SIGKILL);
    itest_stop(&serve);
    trace_file(dir, trace, sizeof(trace));
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target %s --speed 100 -q", trace, url), 0);
    CHECK(strstr(out, "3 requests") != NULL);

    /* A torn last line and garbage: skipped with file:line, or stop. */
    FILE *f = fopen(trace, "a");
    fprintf(f, "not json at all\n{\"v\":1,\"method\":\"POST\",\"pa");
    fclose(f);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target %s --speed 100 -q", trace, url), 0);
    char want[300];
    snprintf(want, sizeof(want), "%s:4:", trace);
    CHECK(strstr(out, want) != NULL);
    snprintf(want, sizeof(want), "%s:5:", trace);
    CHECK(strstr(out, want) != NULL);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target %s --on-error stop -q", trace, url), 2);
    /* A trace that is not there: a bad argument, exit 2 with its name. */
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s/none.jsonl --target %s -q", dir, url), 2);
    CHECK(strstr(out, "none.jsonl: No such file or directory") != NULL);

    char v9[128];
    path_in(v9, sizeof(v9), "v9.jsonl");
    f = fopen(v9, "w");
    fprintf(f, "{\"v\":9,\"method\":\"POST\",\"path\":\"/v1/chat/completions\"}\n");
    fclose(f);
    itest_runf(out, sizeof(out), "replay %s --target %s -q", v9, url);
    CHECK(strstr(out, "newer than this tokentap understands") != NULL);

    /* An unreachable target fails before the run. */
    itest_stop(&sim);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target %s -q", trace, url), 1);
    CHECK(strstr(out, "does not answer") != NULL);
}

/* SIGINT: in-flight requests are aborted, partial results written and
 * marked incomplete. */
static void test_interrupt(void)
{
    char trace[128], outfile[128];
    path_in(trace, sizeof(trace), "slow.jsonl");
    path_in(outfile, sizeof(outfile), "partial.json");
    FILE *f = fopen(trace, "w");
    for (int i = 0; i < 20; i++)
        fprintf(f, "{\"messages\":[{\"role\":\"user\",\"content\":\"slow %d\"}],\"max_tokens\":400}\n", i);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(getenv("TOKENTAP"), "tokentap", "replay", trace, "--concurrency", "2", "--sim-decode-tps", "50",
              "--out", outfile, "-q", (char *)NULL);
        _exit(127);
    }
    itest_sleep_ms(1500);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 130);
    size_t len;
    char *text = itest_read_file(outfile, &len);
    cJSON *s = cJSON_Parse(text);
    free(text);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(s, "complete")));
    CHECK(itest_json_num(s, "requests_finished") >= 2);
    CHECK(itest_json_num(s, "requests_finished") < 20);
    CHECK(itest_json_num(s, "stats.overall.outcomes.client-abort") >= 1);
    cJSON_Delete(s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tokentap-replay-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 99;
    ITEST_RUN(test_record_and_replay);
    ITEST_RUN(test_live_history);
    ITEST_RUN(test_modes);
    ITEST_RUN(test_closed_loop);
    ITEST_RUN(test_rewrite);
    ITEST_RUN(test_bad_traces);
    ITEST_RUN(test_interrupt);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done("test_replay");
}
