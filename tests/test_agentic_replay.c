/* Integration tests for agentic traces: tokentap replay of the real
 * trace_0277 (a main agent and four sub-agents) and of the synthetic one
 * against the built-in sim, checked against the session graph read here
 * from the file itself; the sim's slot cache seen through them; and
 * tokentap trace export of a recorded serve session, replayed again; and
 * --model-map through serve to two upstreams. */
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "itest.h"

static char tmpdir[64];
static char fixtures[512];

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static cJSON *read_json(const char *path)
{
    cJSON *j = itest_read_json(path);
    CHECK(j != NULL);
    return j;
}

/* --- the graph, read from the trace file here --- */

#define MAX_REQ 256

struct greq {
    char session[128];
    char model[64];       /* as recorded: claude-opus-..., claude-haiku-... */
    int index;
    double at;            /* recorded start, s from the trace's start */
    int in, out;
    int n_hash;
    const cJSON *hash;    /* borrowed from the parsed file */
    int prev;             /* the previous request of its session, -1 */
    int spawned_after;    /* a sub-agent's first request: the parent's request it follows, -1 */
    int joins[8], n_joins;/* the last requests of the sub-agents it waits for */
};

struct graph {
    cJSON *doc;
    struct greq r[MAX_REQ];
    int n;
};

/* Walks one session's entries; returns the index of its last request. */
static int walk(struct graph *g, const cJSON *reqs, const char *name, double start, int after)
{
    int prev = -1, pending[8], n_pending = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, reqs)
    {
        double t = itest_json_num(e, "t");
        if (strcmp(itest_json_str(e, "type"), "subagent") == 0) {
            char child[128];
            snprintf(child, sizeof(child), "trace_0277/%s", itest_json_str(e, "agent_id"));
            double spawn = t - itest_json_num(e, "duration_ms") / 1000.0;
            int last = walk(g, cJSON_GetObjectItem(e, "requests"), child, start + spawn, prev);
            if (n_pending < 8)
                pending[n_pending++] = last;
            continue;
        }
        struct greq *r = &g->r[g->n];
        snprintf(r->session, sizeof(r->session), "%s", name);
        snprintf(r->model, sizeof(r->model), "%s", itest_json_str(e, "model"));
        r->index = prev < 0 ? 0 : g->r[prev].index + 1;
        r->at = start + t;
        r->in = (int)itest_json_num(e, "in");
        r->out = (int)itest_json_num(e, "out");
        r->hash = cJSON_GetObjectItem(e, "hash_ids");
        r->n_hash = cJSON_GetArraySize(r->hash);
        r->prev = prev;
        r->spawned_after = prev < 0 ? after : -1;
        memcpy(r->joins, pending, sizeof(pending));
        r->n_joins = n_pending;
        n_pending = 0;
        prev = g->n++;
    }
    return prev;
}

static void graph_read(struct graph *g, const char *path)
{
    memset(g, 0, sizeof(*g));
    g->doc = read_json(path);
    walk(g, cJSON_GetObjectItem(g->doc, "requests"), "trace_0277/main", 0, -1);
}

/* The ideal hit ratio from the hash ids: each request's longest prefix of
 * ids shared with any request that started before it, over all input. */
static double ideal_from_file(const struct graph *g)
{
    double shared = 0, input = 0;
    for (int i = 0; i < g->n; i++) {
        int best = 0;
        for (int j = 0; j < g->n; j++) {
            if (j == i || g->r[j].at > g->r[i].at || (g->r[j].at == g->r[i].at && j > i))
                continue;
            int k = 0;
            while (k < g->r[i].n_hash && k < g->r[j].n_hash &&
                   cJSON_GetArrayItem(g->r[i].hash, k)->valuedouble ==
                       cJSON_GetArrayItem(g->r[j].hash, k)->valuedouble)
                k++;
            if (k > best)
                best = k;
        }
        shared += best * 64.0;
        input += g->r[i].in;
    }
    return shared / input;
}

/* The summary row of a request. */
static const cJSON *row(const cJSON *summary, const struct greq *r)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(summary, "requests"))
    {
        if (strcmp(itest_json_str(x, "session"), r->session) == 0 && itest_json_num(x, "index") == r->index)
            return x;
    }
    return NULL;
}

/* --- tests --- */

/* trace_0277 sped up 200 times, inputs and outputs at 5 %: every request
 * of the main agent and its four sub-agents goes, each after what the
 * graph says it waits for and at its recorded time when that is later; the
 * three Explore agents run at once; prompt and output sizes are the scaled
 * recording; the ideal hit ratio is the file's. */
static void test_graph(void)
{
    char trace[600], out_json[128], log[128], out[65536];
    snprintf(trace, sizeof(trace), "%s/agentic/trace_0277.json", fixtures);
    path_in(out_json, sizeof(out_json), "graph.json");
    path_in(log, sizeof(log), "graph.jsonl");
    const double speed = 200;
    CHECK_INT(itest_runf(out, sizeof(out),
                  "replay %s --target sim --speed 200 --isl-scale 0.05 --osl-scale 0.05 "
                  "--sim-decode-tps 20000 --sim-prefill-tps 1000000 --sim-slots 8 -o %s --log %s -q",
                  trace, out_json, log),
              0);
    CHECK(strstr(out, "53 requests") != NULL);
    CHECK(strstr(out, "prompt tokens served from cache: achieved") != NULL);
    struct graph g;
    graph_read(&g, trace);
    CHECK_INT(g.n, 53);
    cJSON *s = read_json(out_json);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(s, "requests")), 53);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(s, "sessions")), 5);
    CHECK_STR(itest_json_str(cJSON_GetObjectItem(s, "agentic"), "tokenizer"), "exact");
    for (int i = 0; i < g.n; i++) {
        const struct greq *r = &g.r[i];
        const cJSON *x = row(s, r);
        CHECK(x != NULL);
        if (!x)
            continue;
        CHECK_STR(itest_json_str(x, "state"), "ok");
        double sent = itest_json_num(x, "sent_ms"), due = itest_json_num(x, "due_ms"), ready = itest_json_num(x, "ready_ms");
        /* What it waits for ended before it went. */
        double waited = 0;
        if (r->prev >= 0)
            waited = itest_json_num(row(s, &g.r[r->prev]), "end_ms");
        if (r->spawned_after >= 0)
            waited = itest_json_num(row(s, &g.r[r->spawned_after]), "end_ms");
        for (int j = 0; j < r->n_joins; j++) {
            double e = itest_json_num(row(s, &g.r[r->joins[j]]), "end_ms");
            if (e > waited)
                waited = e;
        }
        CHECK(ready >= waited - 0.01);
        CHECK(sent >= waited);
        /* Original timing: intended at the recorded time, or when it may go. */
        double rec = r->at * 1000 / speed;
        CHECK(fabs(due - (rec > ready ? rec : ready)) < 0.01);
        CHECK(sent >= due - 0.01 && sent < due + 500);
        /* Sizes: the scaled recording, within one (3.2-token) block. */
        CHECK_INT(itest_json_num(x, "isl"), lround(r->in * 0.05));
        CHECK(fabs(itest_json_num(x, "prompt_tokens") - itest_json_num(x, "isl")) <= 3.2);
        long osl = lround(r->out * 0.05);
        CHECK_INT(itest_json_num(x, "output_tokens"), osl ? osl : 1);
        CHECK_STR(itest_json_str(x, "kind"), strcmp(r->session, "trace_0277/main") == 0 ? "main"
                                  : strcmp(r->session, "trace_0277/agent_004") == 0 ? "Plan"
                                                                                   : "Explore");
    }
    /* The three Explore agents overlap: each started before the others ended. */
    const char *explore[] = {"trace_0277/agent_001", "trace_0277/agent_002", "trace_0277/agent_003"};
    double first[3] = {0}, last[3] = {0};
    for (int i = 0; i < g.n; i++)
        for (int a = 0; a < 3; a++)
            if (strcmp(g.r[i].session, explore[a]) == 0) {
                const cJSON *x = row(s, &g.r[i]);
                if (g.r[i].index == 0)
                    first[a] = itest_json_num(x, "sent_ms");
                last[a] = itest_json_num(x, "end_ms");
            }
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            CHECK(first[a] < last[b]);
    /* The ideal hit ratio is the file's own. */
    CHECK_NEAR(itest_json_num(s, "cache.ideal_hit_ratio"), ideal_from_file(&g), 1e-9);
    CHECK(itest_json_num(s, "cache.achieved_hit_ratio") > 0.5);
    CHECK_INT(itest_json_num(s, "cache.main_after_fanout.requests"), 2);
    /* The request log names session, parent and kind. */
    size_t len;
    char *text = itest_read_file(log, &len);
    int lines = 0, with_parent = 0;
    for (char *p = text, *nl; p && (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        cJSON *j = cJSON_Parse(p);
        lines++;
        CHECK(strncmp(itest_json_str(j, "session"), "trace_0277/", 11) == 0);
        CHECK(itest_json_str(j, "kind")[0] != '\0');
        if (strcmp(itest_json_str(j, "parent"), "trace_0277/main") == 0)
            with_parent++;
        CHECK_STR(itest_json_str(j, "route"), "/v1/messages");
        cJSON_Delete(j);
    }
    free(text);
    CHECK_INT(lines, 53);
    CHECK_INT(with_parent, 44);
    cJSON_Delete(s);
    cJSON_Delete(g.doc);
}

/* The sim's slot cache through a trace with sub-agents: with one slot every
 * agent replaces the others' prompts, with eight each keeps its own. */
static void test_slots(void)
{
    char trace[600], out1[128], out8[128], out[65536];
    snprintf(trace, sizeof(trace), "%s/agentic/trace_0277.json", fixtures);
    path_in(out1, sizeof(out1), "slots1.json");
    path_in(out8, sizeof(out8), "slots8.json");
#define SLOTS_RUN "replay %s --target sim --timing none --isl-scale 0.05 --osl-scale 0.05 " \
                  "--sim-decode-tps 20000 --sim-prefill-tps 200000 --sim-slots %d -o %s -q"
    CHECK_INT(itest_runf(out, sizeof(out), SLOTS_RUN, trace, 1, out1), 0);
    CHECK_INT(itest_runf(out, sizeof(out), SLOTS_RUN, trace, 8, out8), 0);
    cJSON *s1 = read_json(out1), *s8 = read_json(out8);
    double a1 = itest_json_num(s1, "cache.achieved_hit_ratio"), a8 = itest_json_num(s8, "cache.achieved_hit_ratio");
    fprintf(stderr, "achieved hit ratio: 1 slot %.3f, 8 slots %.3f (ideal %.3f)\n", a1, a8,
            itest_json_num(s8, "cache.ideal_hit_ratio"));
    CHECK(a1 >= 0 && a8 > a1 + 0.2);
    CHECK(a8 > itest_json_num(s8, "cache.ideal_hit_ratio") - 0.05);
    /* The main agent's cache after its sub-agents: gone with one slot. */
    CHECK(itest_json_num(s1, "cache.main_after_fanout.achieved_hit_ratio") < 0.1);
    CHECK(itest_json_num(s8, "cache.main_after_fanout.achieved_hit_ratio") > 0.8);
    CHECK_NEAR(itest_json_num(s1, "cache.ideal_hit_ratio"), itest_json_num(s8, "cache.ideal_hit_ratio"), 1e-12);
    cJSON_Delete(s1);
    cJSON_Delete(s8);
}

/* A directory: files that are not agentic traces are skipped; --users 1
 * runs one trace after the other, each with its own text (local hash ids);
 * --recycle goes round until --requests. Options for agentic traces only
 * are refused for a JSONL trace, and the other way round. */
static void test_directory(void)
{
    char dir[128], a[300], b[300], other[300], synth[600], out_json[128], out[65536];
    path_in(dir, sizeof(dir), "traces");
    mkdir(dir, 0700);
    snprintf(synth, sizeof(synth), "%s/agentic-synthetic.json", fixtures);
    snprintf(a, sizeof(a), "%s/a.json", dir);
    snprintf(b, sizeof(b), "%s/b.json", dir);
    snprintf(other, sizeof(other), "%s/README", dir);
    CHECK(symlink(synth, a) == 0 && symlink(synth, b) == 0);
    FILE *f = fopen(other, "w");
    fprintf(f, "not a trace\n");
    fclose(f);
    path_in(out_json, sizeof(out_json), "dir.json");
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target sim --timing none --users 1 -o %s -q", dir, out_json), 0);
    cJSON *s = read_json(out_json);
    CHECK_INT(itest_json_num(s, "agentic.traces"), 2);
    CHECK_INT(itest_json_num(s, "agentic.files_skipped"), 1);
    CHECK_INT(itest_json_num(s, "requests_finished"), 16);
    /* One at a time: the second trace's main agent starts after the first
     * trace's last request ended. */
    double first_end = 0, second_start = 1e18;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(s, "sessions"))
    {
        if (strcmp(itest_json_str(x, "trace"), "synthetic") == 0 && itest_json_num(x, "end_ms") > first_end)
            first_end = itest_json_num(x, "end_ms");
        if (strcmp(itest_json_str(x, "trace"), "synthetic~2") == 0 || strcmp(itest_json_str(x, "session"), "synthetic/main") != 0)
            continue;
    }
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(s, "requests"))
    {
        if (strcmp(itest_json_str(x, "trace"), "synthetic") != 0 && itest_json_num(x, "sent_ms") < second_start)
            second_start = itest_json_num(x, "sent_ms");
    }
    CHECK(second_start >= first_end);
    /* Same trace twice, but its ids are its own: the second run shares
     * nothing with the first, so the ideal is each run's alone. */
    CHECK_NEAR(itest_json_num(s, "cache.ideal_hit_ratio"), 60.0 / 119.0, 1e-9);
    cJSON_Delete(s);

    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target sim --timing none --users 2 --recycle "
                  "--requests 20 -o %s -q", dir, out_json), 0);
    s = read_json(out_json);
    CHECK_INT(itest_json_num(s, "requests_sent"), 20);
    CHECK(itest_json_num(s, "agentic.runs") >= 3); /* a fourth may start before the 20th request goes */
    cJSON_Delete(s);

    /* Wrong options for the kind of trace. */
    char jsonl[128];
    path_in(jsonl, sizeof(jsonl), "plain.jsonl");
    f = fopen(jsonl, "w");
    fprintf(f, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}\n");
    fclose(f);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target sim --users 2 -q", jsonl), 2);
    CHECK(strstr(out, "are for agentic traces, and this is a JSONL trace") != NULL);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target sim --rate 5 -q", synth), 2);
    CHECK(strstr(out, "an agentic trace runs its own session graph") != NULL);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target sim --recycle -q", dir), 2);
    CHECK(strstr(out, "--recycle runs until --duration D or --requests K") != NULL);
    /* A broken agentic trace: the file and the place. */
    char bad[128];
    path_in(bad, sizeof(bad), "bad.json");
    f = fopen(bad, "w");
    fprintf(f, "{\"block_size\":64,\"requests\":[{\"t\":0,\"in\":5}]}\n");
    fclose(f);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target sim -q", bad), 2);
    CHECK(strstr(out, "bad.json: requests[0].out: missing") != NULL);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target sim -q", tmpdir), 2);
    CHECK(strstr(out, "bad.json: requests[0].out: missing") != NULL);
}

/* --max-isl drops requests over it with their dependants; --api openai,
 * --model-map and --thinking shape what goes out; sizes stay exact. */
static void test_options(void)
{
    char trace[600], out_json[128], log[128], out[65536];
    snprintf(trace, sizeof(trace), "%s/agentic/trace_0277.json", fixtures);
    path_in(out_json, sizeof(out_json), "options.json");
    path_in(log, sizeof(log), "options.jsonl");
    CHECK_INT(itest_runf(out, sizeof(out),
                  "replay %s --target sim --timing none --isl-scale 0.02 --osl-scale 0.02 --max-isl 1200 "
                  "--api openai --model-map '*opus*=big,*haiku*=small' --thinking off "
                  "--sim-decode-tps 20000 --sim-prefill-tps 1000000 -o %s --log %s -q",
                  trace, out_json, log),
              0);
    cJSON *s = read_json(out_json);
    /* Over 1200 tokens at 2 %: main's requests from 63096 tokens on (6),
     * the Plan agent spawned after one of them (11), and the last 3 and 7
     * requests of two Explore agents. */
    CHECK_INT(itest_json_num(s, "agentic.requests_dropped"), 6 + 11 + 3 + 7);
    CHECK_INT(itest_json_num(s, "requests_finished"), 53 - 27);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "agentic"), "template_tokens"), "big") != NULL);
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(s, "requests"))
    {
        if (strcmp(itest_json_str(x, "state"), "ok") != 0)
            continue;
        CHECK(fabs(itest_json_num(x, "prompt_tokens") - itest_json_num(x, "isl")) <= 1.3);
    }
    size_t len;
    char *text = itest_read_file(log, &len);
    CHECK(strstr(text, "\"route\":\"/v1/chat/completions\"") != NULL);
    CHECK(strstr(text, "\"model\":\"big\"") != NULL);
    CHECK(strstr(text, "\"model\":\"small\"") != NULL);
    CHECK(strstr(text, "\"thinking\":false") != NULL);
    CHECK(strstr(text, "claude") == NULL);
    free(text);
    cJSON_Delete(s);
}

/* Words that only the recorded prompts hold: the export must not. */
static const char *const secret_words[] = {"zebracorn", "quokkabyte", "hunter2x"};

/* n words of a recorded prompt, starting with the secret ones. */
static void words(char *buf, size_t len, unsigned seed, int n)
{
    static const char *const vocab[] = {"alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"};
    size_t used = (size_t)snprintf(buf, len, "%s %s %s", secret_words[0], secret_words[1], secret_words[2]);
    for (int i = 0; i < n && used + 12 < len; i++)
        used += (size_t)snprintf(buf + used, len - used, " %s", vocab[(seed * 7919u + (unsigned)i * 104729u) % 8]);
}

struct sent {
    const char *session, *route;
    char body[16384];
};

/* Records an agent's turns through serve (a main session of three turns,
 * the second and third repeating the first; a helper in between on the
 * Anthropic route, with cache_control markers that move), exports them
 * with the sim's tokenizer, and replays the export on a sim like the
 * recorded one: the same requests, lengths within a block, and the same
 * prefix sharing, with none of the recorded text in the file. */
static void test_export(void)
{
    struct itest_proc sim, serve;
    const char *sargs[] = {"sim", "--listen", "127.0.0.1:0", "--slots", "4", "--decode-tps", "5000",
                           "--prefill-tps", "1000000", NULL};
    itest_spawn(&sim, sargs);
    char url[64], dir[128], log[128], exported[128], out_json[128], out[65536];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sim.port);
    path_in(dir, sizeof(dir), "rec");
    path_in(log, sizeof(log), "rec.jsonl");
    const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--upstream", url, "--record", dir,
                          "--log", log, NULL};
    itest_spawn(&serve, args);
    static struct sent turns[5];
    char a[4096], b[4096], c[4096], h[4096];
    words(a, sizeof(a), 1, 700);
    words(b, sizeof(b), 2, 300);
    words(c, sizeof(c), 3, 200);
    words(h, sizeof(h), 4, 600);
    turns[0] = (struct sent){"main", "/v1/chat/completions", ""};
    snprintf(turns[0].body, sizeof(turns[0].body),
             "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"You help.\"},{\"role\":"
             "\"user\",\"content\":\"%s\"}],\"stream\":true,\"max_tokens\":40,\"stream_options\":"
             "{\"include_usage\":true}}", a);
    turns[1] = (struct sent){"helper", "/v1/messages", ""};
    snprintf(turns[1].body, sizeof(turns[1].body),
             "{\"model\":\"m\",\"max_tokens\":20,\"stream\":true,\"system\":[{\"type\":\"text\",\"text\":"
             "\"You look.\"}],\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
             "\"%s\",\"cache_control\":{\"type\":\"ephemeral\"}}]}]}", h);
    turns[2] = (struct sent){"helper", "/v1/messages", ""};
    snprintf(turns[2].body, sizeof(turns[2].body),
             "{\"model\":\"m\",\"max_tokens\":20,\"stream\":true,\"system\":[{\"type\":\"text\",\"text\":"
             "\"You look.\"}],\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
             "\"%s\"}]},{\"role\":\"assistant\",\"content\":\"looked\"},{\"role\":\"user\",\"content\":"
             "[{\"type\":\"text\",\"text\":\"%s\",\"cache_control\":{\"type\":\"ephemeral\"}}]}]}", h, c);
    turns[3] = (struct sent){"main", "/v1/chat/completions", ""};
    snprintf(turns[3].body, sizeof(turns[3].body),
             "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"You help.\"},{\"role\":"
             "\"user\",\"content\":\"%s\"},{\"role\":\"assistant\",\"content\":\"ok\"},{\"role\":\"user\","
             "\"content\":\"%s\"}],\"stream\":true,\"max_tokens\":30,\"stream_options\":{\"include_usage\":true}}",
             a, b);
    turns[4] = (struct sent){"main", "/v1/chat/completions", ""};
    snprintf(turns[4].body, sizeof(turns[4].body),
             "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"You help.\"},{\"role\":"
             "\"user\",\"content\":\"%s\"},{\"role\":\"assistant\",\"content\":\"ok\"},{\"role\":\"user\","
             "\"content\":\"%s\"},{\"role\":\"assistant\",\"content\":\"ok\"},{\"role\":\"user\",\"content\":"
             "\"%s\"}],\"stream\":true,\"max_tokens\":10,\"stream_options\":{\"include_usage\":true}}",
             a, b, c);
    for (int i = 0; i < 5; i++) {
        char hdr[128];
        snprintf(hdr, sizeof(hdr), "X-Session-ID: %s\r\n", turns[i].session);
        struct itest_resp r;
        itest_request(serve.port, "POST", turns[i].route, hdr, turns[i].body, strlen(turns[i].body), &r);
        CHECK_INT(r.status, 200);
        itest_resp_free(&r);
        itest_sleep_ms(50);
    }
    CHECK_INT(itest_stop(&serve), 0);

    path_in(exported, sizeof(exported), "export.json");
    CHECK_INT(itest_runf(out, sizeof(out), "trace export %s --format agentic -o %s --upstream %s", dir, exported, url), 0);
    CHECK(strstr(out, "5 requests in 2 sessions from 1 files") != NULL);
    size_t len;
    char *text = itest_read_file(exported, &len);
    CHECK(text != NULL);
    for (size_t i = 0; text && i < sizeof(secret_words) / sizeof(secret_words[0]); i++)
        CHECK(strstr(text, secret_words[i]) == NULL);
    CHECK(text && strstr(text, "alpha") == NULL && strstr(text, "You help") == NULL &&
          strstr(text, "looked") == NULL && strstr(text, "helper") == NULL);
    free(text);

    /* The recorded counts, by session in start order. */
    cJSON *rec[5] = {0};
    int n_rec = 0;
    text = itest_read_file(log, &len);
    for (char *p = text, *nl; p && (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        if (n_rec < 5)
            rec[n_rec++] = cJSON_Parse(p);
    }
    free(text);
    CHECK_INT(n_rec, 5);

    path_in(out_json, sizeof(out_json), "export-replay.json");
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target sim --timing none --sim-slots 4 "
                  "--sim-decode-tps 5000 --sim-prefill-tps 1000000 -o %s -q", exported, out_json), 0);
    cJSON *s = read_json(out_json);
    CHECK_INT(itest_json_num(s, "requests_finished"), 5);
    /* Recorded request i (log order = end order, one at a time here) and
     * its replay: the same session, place, input and sharing. */
    static const struct {
        const char *session;
        int index;
    } map[5] = {{"export/main", 0}, {"export/agent_001", 0}, {"export/agent_001", 1},
                {"export/main", 1}, {"export/main", 2}};
    for (int i = 0; i < n_rec; i++) {
        const cJSON *x = NULL, *y;
        cJSON_ArrayForEach(y, cJSON_GetObjectItem(s, "requests"))
        {
            if (strcmp(itest_json_str(y, "session"), map[i].session) == 0 && itest_json_num(y, "index") == map[i].index)
                x = y;
        }
        CHECK(x != NULL);
        if (!x)
            continue;
        CHECK_STR(itest_json_str(rec[i], "session"), i == 1 || i == 2 ? "helper" : "main");
        CHECK_INT(itest_json_num(x, "in"), itest_json_num(rec[i], "prompt_tokens"));
        CHECK(fabs(itest_json_num(x, "prompt_tokens") - itest_json_num(rec[i], "prompt_tokens")) <= 64);
        CHECK_INT(itest_json_num(x, "out"), itest_json_num(rec[i], "output_tokens"));
        double got = itest_json_num(x, "cached_tokens"), want = itest_json_num(rec[i], "cached_tokens");
        fprintf(stderr, "%s[%d]: prompt %g/%g cached %g/%g\n", map[i].session, map[i].index,
                itest_json_num(x, "prompt_tokens"), itest_json_num(rec[i], "prompt_tokens"), got, want);
        CHECK(fabs(got - want) <= 64 + 8);
        cJSON_Delete(rec[i]);
    }
    /* Later turns share their earlier turns' blocks, in the ideal too. */
    const cJSON *y;
    cJSON_ArrayForEach(y, cJSON_GetObjectItem(s, "requests"))
    {
        if (itest_json_num(y, "index") > 0)
            CHECK(itest_json_num(y, "ideal_blocks") > 5);
    }
    cJSON_Delete(s);

    /* Without --upstream, tokentap's own tokens; bad input says what to do. */
    CHECK_INT(itest_runf(out, sizeof(out), "trace export %s -o %s", dir, exported), 0);
    CHECK(strstr(out, "tokens from tokentap's estimate") != NULL);
    CHECK_INT(itest_runf(out, sizeof(out), "trace export %s", dir), 2);
    CHECK(strstr(out, "where to? (-o FILE)") != NULL);
    CHECK_INT(itest_runf(out, sizeof(out), "trace export %s -o %s --format csv", dir, exported), 2);
    CHECK_INT(itest_runf(out, sizeof(out), "trace export %s/none -o %s", dir, exported), 2);
    CHECK_INT(itest_runf(out, sizeof(out), "trace export %s -o %s --upstream http://127.0.0.1:1", dir, exported), 1);
    CHECK(strstr(out, "http://127.0.0.1:1/tokenize did not answer with tokens") != NULL);
    CHECK_INT(itest_runf(out, sizeof(out), "trace exprot %s", dir), 2);
    CHECK(strstr(out, "unknown subcommand 'exprot'") != NULL);
    CHECK_INT(itest_stop(&sim), 0);
}

/* --model-map through serve to two upstreams: the main agent and the Plan
 * sub-agent (Opus in the trace) go to the "big" sim, the Explore
 * sub-agents (Haiku) to the "small" one; serve rejects unknown models, so
 * a request the map missed would fail (404). */
static void test_model_map(void)
{
    struct itest_proc big, small, serve;
    const char *bargs[] = {"sim", "--listen", "127.0.0.1:0", "--model", "big", "--decode-tps", "20000",
                           "--prefill-tps", "1000000", NULL};
    const char *sargs[] = {"sim", "--listen", "127.0.0.1:0", "--model", "small", "--decode-tps", "20000",
                           "--prefill-tps", "1000000", NULL};
    itest_spawn(&big, bargs);
    itest_spawn(&small, sargs);
    char conf[128], log[128], trace[600], url[64], out[65536];
    path_in(conf, sizeof(conf), "two.yaml");
    path_in(log, sizeof(log), "two.jsonl");
    FILE *f = fopen(conf, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "upstreams:\n"
            "  - {name: big, url: 'http://127.0.0.1:%d', models: [big]}\n"
            "  - {name: small, url: 'http://127.0.0.1:%d', models: [small]}\n"
            "routing: {unknown_model: reject}\n",
            big.port, small.port);
    fclose(f);
    const char *args[] = {"serve", "-c", conf, "--listen", "127.0.0.1:0", "--log", log, NULL};
    itest_spawn(&serve, args);
    snprintf(trace, sizeof(trace), "%s/agentic/trace_0277.json", fixtures);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", serve.port);
    CHECK_INT(itest_runf(out, sizeof(out),
                         "replay %s --target %s --timing none --isl-scale 0.01 --osl-scale 0.05 "
                         "--model-map '*opus*=big,*haiku*=small' -q",
                         trace, url),
              0);
    itest_stop(&serve);
    itest_stop(&big);
    itest_stop(&small);

    /* Each record's upstream against its session's model in the file. */
    struct graph *g = calloc(1, sizeof(*g));
    graph_read(g, trace);
    int want_big = 0, want_small = 0, got_big = 0, got_small = 0, wrong = 0, failed = 0;
    for (int i = 0; i < g->n; i++)
        strstr(g->r[i].model, "haiku") ? want_small++ : want_big++;
    size_t len;
    char *text = itest_read_file(log, &len);
    for (char *p = text, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        cJSON *r = cJSON_Parse(p);
        const char *session = itest_json_str(r, "session");
        if (r && *session) {
            bool to_small = strcmp(itest_json_str(r, "upstream"), "small") == 0;
            const char *model = "";
            for (int i = 0; i < g->n && !*model; i++)
                if (strcmp(g->r[i].session, session) == 0)
                    model = g->r[i].model;
            to_small ? got_small++ : got_big++;
            wrong += (strstr(model, "haiku") != NULL) != to_small;
            failed += strcmp(itest_json_str(r, "outcome"), "ok") != 0;
        }
        cJSON_Delete(r);
    }
    free(text);
    fprintf(stderr, "model map: big %d of %d, small %d of %d\n", got_big, want_big, got_small, want_small);
    CHECK(want_big > 0 && want_small > 0);
    CHECK_INT(got_big, want_big);
    CHECK_INT(got_small, want_small);
    CHECK_INT(wrong, 0);
    CHECK_INT(failed, 0);
    cJSON_Delete(g->doc);
    free(g);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(fixtures, sizeof(fixtures), "%s", getenv("FIXTURES") ? getenv("FIXTURES") : "tests/fixtures");
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tokentap-agentic-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 99;
    ITEST_RUN(test_graph);
    ITEST_RUN(test_slots);
    ITEST_RUN(test_directory);
    ITEST_RUN(test_options);
    ITEST_RUN(test_export);
    ITEST_RUN(test_model_map);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done("test_agentic_replay");
}
