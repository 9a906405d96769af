/* Integration tests for tokentap bench on simulated targets: the results
 * structure, level membership and repetitions, live answers in later
 * prompts, checks passing and failing on purpose, report files, compare,
 * and bad scenarios failing before any request. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "itest.h"

static char tmp[64];

static const char *str(const cJSON *j, const char *k)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, k));
    return s ? s : "";
}

static double num(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_tiny(void)
{
    static char out[1 << 20];
    char dir[128], path[160];
    snprintf(dir, sizeof(dir), "%s/tiny", tmp);
    /* The side agent's check fails on purpose: exit 1, and the last line
     * says why. */
    CHECK_INT(
        itest_runf_bench(out, sizeof(out), "bench fixtures/scenario-tiny.yaml --out %s -q", dir),
        1);
    CHECK(strstr(out, "tokentap bench: 0 requests failed, 4 answer checks failed: exit 1 "
                      "(--allow-failures to exit 0)\n") != NULL);
    /* The seed-style tables on stdout. */
    CHECK(strstr(out, "Primary task performance") != NULL);
    CHECK(strstr(out, "Side task results") != NULL);
    CHECK(strstr(out, "TTFT degradation") != NULL);

    snprintf(path, sizeof(path), "%s/results.json", dir);
    cJSON *r = itest_read_json(path);
    CHECK(r != NULL);
    CHECK_STR(str(r, "format"), "tokentap-bench");
    CHECK_INT(num(r, "version"), 1);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "complete")));
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(r, "requests");
    /* Per target and repetition: level 1 = primary's 2 turns; level 2 =
     * primary 2 + side 1 + reviewer 1. 2 targets x 2 repetitions x 6. */
    CHECK_INT(cJSON_GetArraySize(reqs), 24);
    int per[2][3][3] = {{{0}}}; /* [level-1][rep][agent] */
    int reviewer_pass = 0, side_fail = 0, primary_pass = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, reqs)
    {
        int level = atoi(str(e, "level")), rep = (int)num(e, "repetition");
        const char *agent = str(e, "agent");
        int a = strcmp(agent, "primary") == 0 ? 0 : strcmp(agent, "side") == 0 ? 1 : 2;
        CHECK(level >= 1 && level <= 2 && rep >= 1 && rep <= 2);
        if (level >= 1 && level <= 2 && rep >= 1 && rep <= 2)
            per[level - 1][rep][a]++;
        const cJSON *check = cJSON_GetObjectItemCaseSensitive(e, "check");
        bool pass = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(check, "pass"));
        if (a == 2 && pass)
            reviewer_pass++;
        if (a == 1 && !pass) {
            side_fail++;
            const cJSON *missing = cJSON_GetObjectItemCaseSensitive(check, "missing");
            CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(missing, 0)), "WORD-NOT-IN-THE-ANSWER");
        }
        if (a == 0 && pass)
            primary_pass++;
        const cJSON *rec = cJSON_GetObjectItemCaseSensitive(e, "record");
        CHECK_STR(str(rec, "outcome"), "ok");
        /* Every record has its level, counted as serve counts it: at
         * level 2 three agents may run at once, at level 1 one. */
        CHECK(num(rec, "concurrency") >= 1 && num(rec, "concurrency") <= (level == 1 ? 1 : 3));
        /* Seed-compatible fields. */
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "ttft_ms")));
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "tokens_generated")));
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "content_preview")));
        /* The second primary turn carries the first answer: its prompt is
         * longer than the first prompt plus that answer. */
        if (a == 0 && num(e, "turn") == 2)
            CHECK(num(rec, "prompt_tokens") > 46 + 20);
    }
    for (int rep = 1; rep <= 2; rep++) {
        CHECK_INT(per[0][rep][0], 4); /* 2 targets x 2 turns */
        CHECK_INT(per[0][rep][1], 0);
        CHECK_INT(per[0][rep][2], 0);
        CHECK_INT(per[1][rep][0], 4);
        CHECK_INT(per[1][rep][1], 2);
        CHECK_INT(per[1][rep][2], 2);
    }
    /* The reviewer's prompt quoted the primary's live answer (its canned
     * answer only matches when it does). */
    CHECK_INT(reviewer_pass, 4);
    CHECK_INT(side_fail, 4);
    CHECK_INT(primary_pass, 16);
    const cJSON *cells = cJSON_GetObjectItemCaseSensitive(r, "cells");
    CHECK_INT(cJSON_GetArraySize(cells), 2 * (2 + 4)); /* per target: L1 primary x2; L2 primary x2, side, reviewer */
    const cJSON *c;
    cJSON_ArrayForEach(c, cells)
    {
        CHECK_INT(num(c, "n"), 2);
        const cJSON *ttft = cJSON_GetObjectItemCaseSensitive(c, "ttft_ms");
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ttft, "values")), 2);
        CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(ttft, "ci95")));
    }
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "level_cells")), 4);
    cJSON_Delete(r);

    snprintf(path, sizeof(path), "%s/report.html", dir);
    size_t len;
    char *html = itest_read_file(path, &len);
    CHECK(strstr(html, "<canvas") != NULL);
    CHECK(strstr(html, "src=\"http") == NULL);
    free(html);
    snprintf(path, sizeof(path), "%s/report.md", dir);
    char *md = itest_read_file(path, &len);
    CHECK(strstr(md, "| 2 | FAIL 0/2") != NULL);
    /* What bench printed is report.md, and bench's in-memory results
     * meet the file's: tokentap report on results.json writes the same
     * report.md and report.html. */
    CHECK(strncmp(out, md, len) == 0);
    CHECK(strncmp(out + strlen(md), "tokentap bench: wrote ", 22) == 0);
    char again[160], cmd[600];
    snprintf(again, sizeof(again), "%s/again", tmp);
    snprintf(cmd, sizeof(cmd), "mkdir %s && cd %s && %s report results.json --out %s >/dev/null",
             again, dir, getenv("TOKENTAP"), again);
    CHECK_INT(system(cmd), 0);
    static const char *const names[] = {"report.md", "report.html"};
    for (size_t i = 0; i < 2; i++) {
        char file[200];
        size_t a_len, b_len;
        snprintf(file, sizeof(file), "%s/%s", dir, names[i]);
        char *a = itest_read_file(file, &a_len);
        snprintf(file, sizeof(file), "%s/%s", again, names[i]);
        char *b = itest_read_file(file, &b_len);
        CHECK(a && b && a_len == b_len && memcmp(a, b, a_len) == 0);
        free(a);
        free(b);
    }
    free(md);
}

/* One run per target, then compare them (what a user does with one GPU). */
static void test_compare(void)
{
    static char out[1 << 20];
    char a[128], b[128];
    snprintf(a, sizeof(a), "%s/a", tmp);
    snprintf(b, sizeof(b), "%s/b", tmp);
    CHECK_INT(
        itest_runf_bench(out, sizeof(out),
                         "bench fixtures/scenario-tiny.yaml --only fast --out %s -q --levels 1", a),
        0);
    CHECK_INT(
        itest_runf_bench(out, sizeof(out),
                         "bench fixtures/scenario-tiny.yaml --only slow --out %s -q --levels 1", b),
        0);
    CHECK_INT(
        itest_runf_bench(out, sizeof(out), "compare %s/results.json %s/results.json --md", a, b),
        0);
    CHECK(strstr(out, "TTFT degradation") != NULL || strstr(out, "Total time") != NULL);
    /* The slow target really is slower: turn time differs significantly. */
    CHECK(strstr(out, "*") != NULL);
}

/* --allow-failures, --max-tokens, --list. */
static void test_options(void)
{
    static char out[1 << 20];
    char dir[128], path[160];
    snprintf(dir, sizeof(dir), "%s/opts", tmp);
    CHECK_INT(itest_runf_bench(
                  out, sizeof(out),
                  "bench fixtures/scenario-tiny.yaml --only fast --levels 2 -n 1 --max-tokens 3 "
                  "--allow-failures --out %s -q",
                  dir),
              0);
    CHECK(strstr(out, " failed (--allow-failures: exit 0)\n") != NULL);
    snprintf(path, sizeof(path), "%s/results.json", dir);
    cJSON *r = itest_read_json(path);
    const cJSON *e;
    int n = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "requests"))
    {
        const cJSON *rec = cJSON_GetObjectItemCaseSensitive(e, "record");
        CHECK(num(rec, "output_tokens") >= 1 && num(rec, "output_tokens") <= 3);
        n++;
    }
    CHECK_INT(n, 4);
    cJSON_Delete(r);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "bench --list"), 0);
    CHECK(strstr(out, "config/scenarios/quant-comparison.yaml\n    quant-comparison: 3 agents, 3 levels, 2 targets.") != NULL);
    CHECK(strstr(out, ".responses.yaml") == NULL);
}

static void test_bad_scenarios(void)
{
    static char out[65536];
    char path[160];
    snprintf(path, sizeof(path), "%s/bad.yaml", tmp);
    FILE *f = fopen(path, "w");
    fprintf(f, "name: bad\ntargets:\n  t: {sim: {slots: 1}}\nagents:\n  a: {user: hi}\n"
               "levels:\n  - agents: [a, nobody]\n");
    fclose(f);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "bench %s -q", path), 2);
    char want[200];
    snprintf(want, sizeof(want), "%s:7:", path);
    CHECK(strstr(out, want) != NULL);
    CHECK(strstr(out, "nobody") != NULL);
    CHECK_INT(
        itest_runf_bench(
            out, sizeof(out),
            "bench fixtures/scenario-tiny.yaml --target fast=http://127.0.0.1:1 -q --out %s/x",
            tmp),
        1);
    CHECK(strstr(out, "does not answer") != NULL);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "bench fixtures/scenario-tiny.yaml --levels 9 -q"),
              2);
    /* An --out that does not fit is an error, not a shorter directory. */
    char longdir[700];
    memset(longdir, 'd', sizeof(longdir) - 1);
    longdir[sizeof(longdir) - 1] = '\0';
    CHECK_INT(itest_runf_bench(out, sizeof(out), "bench fixtures/scenario-tiny.yaml -q --out %s/%s",
                               tmp, longdir),
              2);
    CHECK(strstr(out, "--out: at most 511 bytes") != NULL);
}

/* A real target whose answer is 5000 bytes that are not UTF-8: the
 * preview in results.json stays within its bound. */
static void test_invalid_utf8_answer(void)
{
    static char out[1 << 16];
    static char content[5000];
    memset(content, 0x80, sizeof(content));
    char events[6000], response[6200];
    int n = snprintf(events, sizeof(events),
                     "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%.*s\"}}]}\n\n"
                     "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
                     "\"usage\":{\"completion_tokens\":1,\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n",
                     (int)sizeof(content), content);
    int m = snprintf(
        response, sizeof(response),
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s", n,
        events);
    struct itest_peer peer = {.response = response, .response_len = (size_t)m};
    itest_peer_start(&peer);
    char path[256], dir[128];
    snprintf(path, sizeof(path), "%s/utf8.yaml", tmp);
    snprintf(dir, sizeof(dir), "%s/utf8", tmp);
    FILE *f = fopen(path, "w");
    fprintf(
        f,
        "name: utf8\nrepetitions: 1\nwarmup: 0\ntargets:\n  real: {url: \"http://127.0.0.1:%d\"}\n"
        "agents:\n  a: {user: hi}\nlevels:\n  - agents: [a]\n",
        peer.port);
    fclose(f);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "bench %s --out %s -q", path, dir), 0);
    itest_peer_stop(&peer);
    snprintf(path, sizeof(path), "%s/results.json", dir);
    cJSON *r = itest_read_json(path);
    CHECK(r != NULL);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "requests"), 0);
    const char *preview = str(e, "content_preview");
    CHECK(strlen(preview) > 0 && strlen(preview) <= 800);
    cJSON_Delete(r);
}

/* A prompt that expands past the limit stops the run with a clear error
 * (it used to be sent unexpanded, silently). */
static void test_prompt_too_big(void)
{
    static char out[1 << 16];
    char path[256], dir[128];
    snprintf(path, sizeof(path), "%s/big.yaml", tmp);
    snprintf(dir, sizeof(dir), "%s/big", tmp);
    FILE *f = fopen(path, "w");
    fprintf(f, "name: big\nrepetitions: 1\nwarmup: 0\ntargets:\n  t: {sim: {decode_tps: "
               "5000}}\nvars:\n  big: \"");
    for (int i = 0; i < 200000; i++)
        fputc('x', f);
    fprintf(f,
            "\"\nagents:\n  a:\n    turns:\n      - {user: hi, max_tokens: 4}\n      - user: \"");
    for (int i = 0; i < 50; i++)
        fprintf(f, "{{vars.big}}");
    fprintf(f, "\"\nlevels:\n  - agents: [a]\n");
    fclose(f);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "bench %s --out %s -q", path, dir), 1);
    CHECK(strstr(out, "agent a, turn 2: the user prompt expands to more than 8 MiB; stopping") !=
          NULL);
    snprintf(path, sizeof(path), "%s/results.json", dir);
    cJSON *r = itest_read_json(path);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "complete")));
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "requests")), 1);
    cJSON_Delete(r);
}

/* The warmup request is JSON whatever the model is called (it was built
 * with snprintf and an unescaped name): a recording proxy in front of the
 * sim sees it. */
static void test_warmup_model_name(void)
{
    static char out[1 << 16];
    struct itest_proc sim, serve;
    const char *sargs[] = {"sim", "--listen", "127.0.0.1:0", "--decode-tps", "5000", NULL};
    itest_spawn(&sim, sargs);
    char url[64], rec[128], path[256], dir[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sim.port);
    snprintf(rec, sizeof(rec), "%s/warm-rec", tmp);
    const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--upstream",
                          url,     "--record", rec,           NULL};
    itest_spawn(&serve, args);
    snprintf(path, sizeof(path), "%s/warm.yaml", tmp);
    snprintf(dir, sizeof(dir), "%s/warm", tmp);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "name: warm\nrepetitions: 1\nwarmup: 1\ntargets:\n  t: {url: \"http://127.0.0.1:%d\", "
            "model: 'a \"quoted\" model'}\nagents:\n  a: {user: hi, max_tokens: 4}\nlevels:\n  - "
            "agents: [a]\n",
            serve.port);
    fclose(f);
    CHECK_INT(itest_runf_bench(out, sizeof(out), "bench %s --out %s -q", path, dir), 0);
    CHECK_INT(itest_stop(&serve), 0);
    itest_stop(&sim);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "cat %s/*.jsonl", rec);
    FILE *p = popen(cmd, "r");
    static char line[1 << 16];
    int warmups = 0;
    while (p && fgets(line, sizeof(line), p)) {
        cJSON *e = cJSON_Parse(line);
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(e, "body");
        const cJSON *msg =
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(body, "messages"), 0);
        if (strncmp(str(msg, "content"), "warm up 0", 9) == 0) {
            CHECK_STR(str(body, "model"), "a \"quoted\" model");
            warmups++;
        }
        cJSON_Delete(e);
    }
    if (p)
        pclose(p);
    CHECK_INT(warmups, 1);
}

/* SIGTERM stops a run as Ctrl-C does: partial results, exit 130. */
static void test_sigterm(void)
{
    char path[256], dir[128];
    snprintf(path, sizeof(path), "%s/slow.yaml", tmp);
    snprintf(dir, sizeof(dir), "%s/slow", tmp);
    FILE *f = fopen(path, "w");
    fprintf(f, "name: slow\nrepetitions: 100\nwarmup: 0\npause: 0s\ntargets:\n  t: {sim: "
               "{decode_tps: 50}}\n"
               "agents:\n  a: {user: hi, max_tokens: 20}\nlevels:\n  - agents: [a]\n");
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(getenv("TOKENTAP"), "tokentap", "bench", path, "--out", dir, "-q", (char *)NULL);
        _exit(127);
    }
    itest_sleep_ms(1500);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 130);
    snprintf(path, sizeof(path), "%s/results.json", dir);
    cJSON *r = itest_read_json(path);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "complete")));
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "requests"));
    CHECK(n >= 1 && n < 100);
    cJSON_Delete(r);
}

int main(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/tokentap-bench-XXXXXX");
    if (!mkdtemp(tmp))
        return 99;
    ITEST_RUN(test_tiny);
    ITEST_RUN(test_compare);
    ITEST_RUN(test_options);
    ITEST_RUN(test_bad_scenarios);
    ITEST_RUN(test_invalid_utf8_answer);
    ITEST_RUN(test_prompt_too_big);
    ITEST_RUN(test_warmup_model_name);
    ITEST_RUN(test_sigterm);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    if (system(cmd) != 0)
        return 99;
    return check_done("test_bench");
}
