/* Unit tests for agentic traces: the reader (agentic.c) on a real trace
 * (tests/fixtures/agentic/trace_0277.json, Claude Code with four
 * sub-agents) and a synthetic one with every kind of edge, and the plan
 * (agentic_plan.c) run on a simulated clock in each timing mode. With
 * $AGENTIC_TRACES naming a directory of more traces (the six of
 * kv-cache-tester, say), each of them is read and run too. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "captures.h"
#include "check.h"
#include "core/config.h"
#include "load/agentic.h"
#include "load/agentic_plan.h"
#include "load/agentic_write.h"

#include <event2/buffer.h>

static int load(const char *path, struct agentic_trace *t)
{
    size_t len;
    char *text = capture_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        CHECK(text != NULL);
        return -1;
    }
    struct config_err err;
    CHECK(agentic_sniff(text, len));
    int r = agentic_parse(path, text, len, t, &err);
    if (r < 0)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_INT(r, 0);
    free(text);
    return r;
}

static int load_fixture(const char *name, struct agentic_trace *t)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", getenv("FIXTURES") ? getenv("FIXTURES") : "tests/fixtures",
             name);
    return load(path, t);
}

static const struct agentic_session *by_agent(const struct agentic_trace *t, const char *id)
{
    for (size_t i = 0; i < t->n_sessions; i++)
        if (strcmp(t->sessions[i].agent_id, id) == 0)
            return &t->sessions[i];
    return NULL;
}

static void test_real_trace(void)
{
    struct agentic_trace t;
    if (load_fixture("agentic/trace_0277.json", &t) < 0)
        return;
    CHECK_STR(t.id, "trace_0277");
    CHECK_INT(t.block_size, 64);
    CHECK(!t.global_ids);
    CHECK_INT(t.n_sessions, 5);
    CHECK_INT(t.n_requests, 53);
    const struct agentic_session *m = &t.sessions[0];
    CHECK_STR(m->kind, "main");
    CHECK_INT(m->n, 9);
    CHECK_INT(m->n_children, 4);
    CHECK_INT(m->requests[0].in, 19560);
    CHECK_INT(m->requests[0].out, 1017);
    CHECK_INT(m->requests[0].n_hash, 305);
    CHECK_INT(m->requests[0].api_us, 18780000);
    CHECK_STR(m->requests[0].model, "claude-opus-4-5-20251101");
    /* The three Explore agents were spawned together right after the first
     * request ended (18.78 s): t - duration_ms is 19.47 s for each, and the
     * main agent's next request (t = 228 s) waits for all three. */
    const char *explore[] = {"agent_001", "agent_002", "agent_003"};
    for (int i = 0; i < 3; i++) {
        const struct agentic_session *s = by_agent(&t, explore[i]);
        CHECK(s != NULL);
        if (!s)
            continue;
        CHECK_STR(s->kind, "Explore");
        CHECK_INT(s->parent, 0);
        CHECK_INT(s->after, 0);
        CHECK_INT(s->joined_by, 1);
        CHECK(s->at > 19400000 && s->at < 19500000);
        CHECK_INT(s->requests[0].at, s->at);
    }
    CHECK_INT(m->requests[1].join_from, 0);
    CHECK_INT(m->requests[1].join_to, 3);
    CHECK_INT(m->requests[1].at, 228000000);
    const struct agentic_session *plan = by_agent(&t, "agent_004");
    CHECK(plan && strcmp(plan->kind, "Plan") == 0);
    CHECK(plan && plan->after == 6 && plan->joined_by == 7 && plan->n == 11);
    /* 723.533 s - 337.933 s, just after the main agent's request at 347 s
     * ended (384.63 s). */
    CHECK(plan && plan->at == 385600000);
    CHECK_INT(agentic_session_end(plan), 723533000);
    agentic_trace_finish(&t);
}

static void test_synthetic(void)
{
    struct agentic_trace t;
    if (load_fixture("agentic-synthetic.json", &t) < 0)
        return;
    CHECK_INT(t.block_size, 4);
    CHECK_INT(t.n_sessions, 5);
    CHECK_INT(t.n_requests, 8);
    const struct agentic_session *a = by_agent(&t, "agent_a"), *b = by_agent(&t, "agent_b"),
                                 *c = by_agent(&t, "agent_c");
    CHECK(a && b && c);
    if (!a || !b || !c)
        goto out;
    CHECK_INT(a->at, 2500000);
    CHECK_INT(b->at, 2500000);
    CHECK_INT(c->parent, (size_t)(b - t.sessions));
    CHECK_INT(c->after, 0);
    CHECK_INT(c->joined_by, SIZE_MAX); /* nothing of B after it: background */
    CHECK_INT(c->at, 5000000);         /* B's clock: 3.5 - 1.0 s after B's start */
    CHECK_INT(c->depth, 2);
    const struct agentic_session *d = &t.sessions[t.n_sessions - 1];
    CHECK_STR(d->kind, "general-purpose");
    CHECK_INT(d->after, 2);
    CHECK_INT(d->joined_by, SIZE_MAX);
    CHECK(strncmp(d->agent_id, "agent_", 6) == 0); /* made up when missing */
    CHECK_INT(t.sessions[0].requests[1].join_to - t.sessions[0].requests[1].join_from, 2);
    CHECK_INT(t.sessions[0].requests[2].join_to - t.sessions[0].requests[2].join_from, 0);
    CHECK(!t.sessions[0].requests[1].stream && t.sessions[0].requests[0].stream);
out:
    agentic_trace_finish(&t);
}

/* Runs a plan on a simulated clock where every request takes its
 * recorded api_time / speed (or 1 ms); *ret_sent[session][k] gets each
 * request's send time. Returns the requests sent. */
struct sim_done {
    size_t s, k;
    usec_t at;
};

static size_t simulate(const struct agentic_trace *t, const struct agentic_plan_options *o,
                       struct agentic_plan *p)
{
    CHECK_INT(agentic_plan_init(p, t, o, 1000000), 0);
    struct sim_done *running = calloc(t->n_requests + 1, sizeof(*running));
    size_t n_running = 0, sent = 0;
    usec_t now = 1000000;
    for (int guard = 0; guard < 100000 && !agentic_plan_finished(p); guard++) {
        size_t s, k;
        usec_t due, wake = USEC_INFINITY;
        if (agentic_plan_next(p, now, &s, &k, &due, &wake)) {
            CHECK(due <= now);
            agentic_plan_sent(p, s, k, now);
            const struct agentic_request *r = &t->sessions[s].requests[k];
            usec_t d = r->api_us > 0 ? (usec_t)((double)r->api_us / o->speed) : 1000;
            running[n_running++] = (struct sim_done){s, k, now + d};
            sent++;
            continue;
        }
        /* Nothing may go now: the next event is an answer or the wake-up. */
        size_t first = SIZE_MAX;
        for (size_t i = 0; i < n_running; i++)
            if (first == SIZE_MAX || running[i].at < running[first].at)
                first = i;
        if (first != SIZE_MAX && running[first].at <= wake) {
            now = running[first].at > now ? running[first].at : now;
            agentic_plan_done(p, running[first].s, running[first].k, now);
            running[first] = running[--n_running];
        } else {
            CHECK(wake != USEC_INFINITY);
            if (wake == USEC_INFINITY)
                break;
            now = wake;
        }
    }
    free(running);
    CHECK(agentic_plan_finished(p));
    return sent;
}

static usec_t sent_at(const struct agentic_plan *p, const struct agentic_trace *t, const char *agent, size_t k)
{
    for (size_t i = 0; i < t->n_sessions; i++)
        if (strcmp(t->sessions[i].agent_id, agent) == 0)
            return p->s[i].steps[k].sent - p->base;
    return 0;
}

static void test_plan_synthetic(void)
{
    struct agentic_trace t;
    if (load_fixture("agentic-synthetic.json", &t) < 0)
        return;
    struct agentic_plan p;
    /* Original timing with the recorded durations gives back every
     * recorded start: the graph is the recording's. */
    struct agentic_plan_options o = {.timing = AGENTIC_TIMING_ORIGINAL, .speed = 1, .isl_scale = 1};
    CHECK_INT(simulate(&t, &o, &p), 8);
    static const struct {
        const char *agent;
        size_t k;
        usec_t original, think, none;
    } want[] = {
        {"main", 0, 0, 0, 0},
        {"agent_a", 0, 2500000, 2500000, 2000000},
        {"agent_a", 1, 4500000, 4500000, 3000000},
        {"agent_b", 0, 2500000, 2500000, 2000000},
        {"agent_c", 0, 5000000, 5000000, 3000000},
        {"main", 1, 9000000, 7000000, 4000000},
        {"main", 2, 11000000, 9000000, 5000000},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_INT(sent_at(&p, &t, want[i].agent, want[i].k), want[i].original);
    CHECK_INT(p.s[t.n_sessions - 1].steps[0].sent - p.base, 12500000);
    CHECK(agentic_plan_after_fanout(&p, 0, 1));
    CHECK(!agentic_plan_after_fanout(&p, 0, 2));
    agentic_plan_finish(&p);

    /* Think timing: waits count from the end of what a request waits for;
     * main's think time of 7 s counted from its first request's end, of
     * which its sub-agents ran 5.5 s in the recording (to 7.5 s): 1.5 s
     * after they end here (5.5 s). */
    o.timing = AGENTIC_TIMING_THINK;
    CHECK_INT(simulate(&t, &o, &p), 8);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_INT(sent_at(&p, &t, want[i].agent, want[i].k), want[i].think);
    CHECK_INT(p.s[t.n_sessions - 1].steps[0].sent - p.base, 10500000);
    agentic_plan_finish(&p);

    o.timing = AGENTIC_TIMING_NONE;
    CHECK_INT(simulate(&t, &o, &p), 8);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_INT(sent_at(&p, &t, want[i].agent, want[i].k), want[i].none);
    agentic_plan_finish(&p);

    /* --speed divides recorded times; --max-gap caps a wait. */
    o = (struct agentic_plan_options){.timing = AGENTIC_TIMING_ORIGINAL, .speed = 2, .isl_scale = 1};
    simulate(&t, &o, &p);
    CHECK_INT(sent_at(&p, &t, "main", 1), 4500000);
    agentic_plan_finish(&p);
    o.max_gap = 500000;
    simulate(&t, &o, &p);
    /* main 1 may go when agent_a ends (2.75 s) and goes 0.5 s later. */
    CHECK_INT(sent_at(&p, &t, "main", 1), 3250000);
    agentic_plan_finish(&p);

    /* --max-isl 20 drops main's requests of 25 and 30 tokens and what
     * depends on them (the sub-agent spawned after the last one). */
    o = (struct agentic_plan_options){.timing = AGENTIC_TIMING_NONE, .speed = 1, .isl_scale = 1, .max_isl = 20};
    CHECK_INT(simulate(&t, &o, &p), 5);
    CHECK_INT(p.dropped, 3);
    CHECK(p.s[t.n_sessions - 1].dropped);
    CHECK_INT(p.s[0].steps[1].state, AGENTIC_STEP_DROPPED);
    agentic_plan_finish(&p);
    /* Scaled inputs count: at 0.5 every request fits. */
    o.isl_scale = 0.5;
    CHECK_INT(simulate(&t, &o, &p), 8);
    CHECK_INT(p.dropped, 0);
    agentic_plan_finish(&p);
    agentic_trace_finish(&t);
}

/* On a real trace: with the recorded durations, original timing sends
 * every request at its recorded start (the sub-agents' recorded ends come
 * after their last request's, so nothing waits longer than recorded). */
static void check_reproduces(const struct agentic_trace *t)
{
    struct agentic_plan p;
    struct agentic_plan_options o = {.timing = AGENTIC_TIMING_ORIGINAL, .speed = 1, .isl_scale = 1};
    CHECK_INT(simulate(t, &o, &p), t->n_requests);
    size_t exact = 0;
    for (size_t i = 0; i < t->n_sessions; i++)
        for (size_t k = 0; k < t->sessions[i].n; k++)
            if (p.s[i].steps[k].sent - p.base == t->sessions[i].requests[k].at)
                exact++;
    CHECK_INT(exact, t->n_requests);
    agentic_plan_finish(&p);
}

static void test_plan_real(void)
{
    struct agentic_trace t;
    if (load_fixture("agentic/trace_0277.json", &t) < 0)
        return;
    check_reproduces(&t);
    /* Think timing, no waits at all: the sub-agents of one fan-out overlap. */
    struct agentic_plan p;
    struct agentic_plan_options o = {.timing = AGENTIC_TIMING_NONE, .speed = 1, .isl_scale = 1};
    simulate(&t, &o, &p);
    for (size_t i = 2; i <= 3; i++)
        CHECK_INT(p.s[i].steps[0].sent, p.s[1].steps[0].sent);
    CHECK(p.s[0].steps[1].sent >= p.s[3].end);
    agentic_plan_finish(&p);
    agentic_trace_finish(&t);
}

static void test_more_traces(void)
{
    const char *dir = getenv("AGENTIC_TRACES");
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        if (!strstr(e->d_name, ".json"))
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct agentic_trace t;
        if (load(path, &t) < 0)
            continue;
        check_reproduces(&t);
        fprintf(stderr, "%s: %zu sessions, %zu requests\n", e->d_name, t.n_sessions, t.n_requests);
        agentic_trace_finish(&t);
        n++;
    }
    if (d)
        closedir(d);
    if (dir)
        CHECK(n > 0);
}

static void bad(const char *text, const char *want)
{
    struct agentic_trace t;
    struct config_err err;
    CHECK_INT(agentic_parse("t.json", text, strlen(text), &t, &err), -EINVAL);
    CHECK_STR(err.msg, want);
}

static void test_errors(void)
{
    bad("[1,2]", "t.json: an agentic trace is a JSON object with a \"requests\" array");
    bad("{\"requests\":", "t.json: not valid JSON (an agentic trace is one JSON object)");
    bad("{\"requests\":[]}", "t.json: no requests");
    bad("{\"requests\":[{\"in\":5,\"out\":1}]}", "t.json: requests[0].t: missing (a number of seconds)");
    bad("{\"requests\":[{\"t\":0,\"in\":-5,\"out\":1}]}",
        "t.json: requests[0].in: must be an integer from 0 to 10000000");
    bad("{\"requests\":[{\"t\":0,\"in\":5}]}", "t.json: requests[0].out: missing: an integer from 0 to 10000000");
    bad("{\"block_size\":0,\"requests\":[{\"t\":0,\"in\":5,\"out\":1}]}",
        "t.json: block_size: must be an integer from 1 to 65536");
    bad("{\"block_size\":4,\"requests\":[{\"t\":0,\"in\":5,\"out\":1,\"hash_ids\":[1,2,3]}]}",
        "t.json: requests[0].hash_ids: 3 ids for 5 input tokens: more than one per 4-token block");
    bad("{\"requests\":[{\"t\":0,\"in\":500,\"out\":1,\"hash_ids\":[1,\"x\"]}]}",
        "t.json: requests[0].hash_ids: item 1 must be an integer from 0 to 2^53");
    bad("{\"requests\":[{\"t\":0,\"in\":5,\"out\":1},{\"t\":3,\"type\":\"subagent\",\"requests\":[{\"t\":0,\"in\":1}]}]}",
        "t.json: requests[1].requests[0].out: missing: an integer from 0 to 10000000");
    bad("{\"requests\":[{\"t\":3,\"type\":\"subagent\"}]}",
        "t.json: requests[0].requests: a subagent entry needs a \"requests\" array");
    /* Nesting is bounded. */
    char deep[2048] = "{\"requests\":[";
    for (int i = 0; i < AGENTIC_MAX_DEPTH + 1; i++)
        strcat(deep, "{\"t\":0,\"type\":\"subagent\",\"requests\":[");
    strcat(deep, "{\"t\":0,\"in\":1,\"out\":1}");
    for (int i = 0; i < AGENTIC_MAX_DEPTH + 1; i++)
        strcat(deep, "]}");
    strcat(deep, "]}");
    struct agentic_trace t;
    struct config_err err;
    CHECK_INT(agentic_parse("t.json", deep, strlen(deep), &t, &err), -EINVAL);
    CHECK(strstr(err.msg, "sub-agents nested deeper than 8") != NULL);
}

static void test_sniff(void)
{
    const char *jsonl = "{\"v\":1,\"id\":1,\"method\":\"POST\",\"path\":\"/v1/chat/completions\"}\n";
    const char *lengths = "{\"timestamp\": 27482, \"input_length\": 6955, \"output_length\": 52, \"hash_ids\": [46]}\n";
    const char *simple = "{\"messages\":[{\"role\":\"user\",\"content\":\"requests\"}]}\n";
    CHECK(!agentic_sniff(jsonl, strlen(jsonl)));
    CHECK(!agentic_sniff(lengths, strlen(lengths)));
    CHECK(!agentic_sniff(simple, strlen(simple)));
    CHECK(!agentic_sniff("", 0));
    /* A recorded request whose tool schema has the same keys is still JSONL. */
    const char *talk = "{\"v\":1,\"body\":{\"tools\":[{\"input_schema\":{\"requests\":[],"
                       "\"block_size\":64}}],\"messages\":[]}}\n";
    CHECK(!agentic_sniff(talk, strlen(talk)));
    const char *ok = "\xef\xbb\xbf  {\"id\":\"x\",\"block_size\" : 64,\n \"requests\":[]}";
    CHECK(agentic_sniff(ok, strlen(ok)));
}

static void test_model_map(void)
{
    struct config_err err;
    char buf[96];
    const char *spec = "*opus*=qwen3-32b,*haiku*=qwen3-8b,claude-*=small";
    CHECK_INT(agentic_model_map_check(spec, &err), 0);
    CHECK_STR(agentic_model_map(spec, "claude-opus-4-5-20251101", buf, sizeof(buf)), "qwen3-32b");
    CHECK_STR(agentic_model_map(spec, "claude-haiku-4-5-20251001", buf, sizeof(buf)), "qwen3-8b");
    CHECK_STR(agentic_model_map(spec, "claude-sonnet-4", buf, sizeof(buf)), "small");
    CHECK_STR(agentic_model_map(spec, "gpt-4o", buf, sizeof(buf)), "gpt-4o");
    CHECK_STR(agentic_model_map(NULL, "gpt-4o", buf, sizeof(buf)), "gpt-4o");
    CHECK_INT(agentic_model_map_check("*opus*", &err), -EINVAL);
    CHECK_STR(err.msg, "'*opus*' is not PATTERN=NAME");
    CHECK_INT(agentic_model_map_check("a=b,=c", &err), -EINVAL);
    CHECK_STR(err.msg, "'=c' is not PATTERN=NAME");
    CHECK_INT(agentic_model_map_check("a=", &err), -EINVAL);
    CHECK_INT(agentic_model_map_check("", &err), -EINVAL);
    CHECK_STR(err.msg, "expected PATTERN=NAME,... (e.g. '*opus*=qwen3-32b,*haiku*=qwen3-8b')");
}

/* The writer's output read back: sessions, placement, times, and hash
 * ids that repeat exactly where the token blocks do. */
static void test_write(void)
{
    uint64_t a[300], b[400], h[200];
    for (int i = 0; i < 400; i++) {
        if (i < 300)
            a[i] = 1000 + (uint64_t)i;
        b[i] = i < 300 ? a[i] : 5000 + (uint64_t)i; /* a turn later: a, then more */
        if (i < 200)
            h[i] = i < 10 ? a[i] : 9000 + (uint64_t)i; /* a helper sharing 10 tokens only */
    }
    uint64_t ha[300 / 64], hb[400 / 64], hh[200 / 64];
    CHECK_INT(agentic_block_hashes(a, 300, 64, ha), 4);
    CHECK_INT(agentic_block_hashes(b, 400, 64, hb), 6);
    CHECK_INT(agentic_block_hashes(h, 200, 64, hh), 3);
    struct agentic_rec recs[] = {
        /* Out of order, as a recording is (written when each ended). */
        {.session = "main", .start = 5000000, .end = 5500000, .in = 410, .out = 7, .model = "m1",
         .stream = true, .stop = "stop", .blocks = hb, .n_blocks = 6},
        {.session = "main", .start = 1000000, .end = 2000000, .in = 300, .out = 5, .model = "m1",
         .stream = true, .stop = "tool_calls", .blocks = ha, .n_blocks = 4},
        {.session = "helper", .start = 2500000, .end = 4000000, .in = 200, .out = 3, .model = "m2",
         .stop = "weird free text", .blocks = hh, .n_blocks = 3},
    };
    struct evbuffer *out = evbuffer_new();
    CHECK_INT(agentic_write(recs, 3, 64, "mine", out), 0);
    size_t len = evbuffer_get_length(out);
    char *text = (char *)evbuffer_pullup(out, -1);
    CHECK(strstr(text, "weird") == NULL);
    struct agentic_trace t;
    struct config_err err;
    CHECK(agentic_sniff(text, len));
    CHECK_INT(agentic_parse("w.json", text, len, &t, &err), 0);
    CHECK_STR(t.id, "mine");
    CHECK_INT(t.n_sessions, 2);
    const struct agentic_session *m = &t.sessions[0], *hs = &t.sessions[1];
    CHECK_INT(m->n, 2);
    CHECK_INT(hs->n, 1);
    CHECK_INT(hs->after, 0);     /* main's first request had ended */
    CHECK_INT(hs->joined_by, 1); /* and main's next one began after it */
    CHECK_INT(hs->at, 1500000);
    CHECK_INT(hs->duration, 1500000);
    CHECK_INT(m->requests[1].at, 4000000);
    CHECK_INT(m->requests[0].api_us, 1000000);
    CHECK_INT(m->requests[1].think_us, 3000000);
    CHECK_INT(m->requests[0].in, 300);
    CHECK_INT(m->requests[0].n_hash, 4);  /* 300 / 64 */
    CHECK_INT(m->requests[1].n_hash, 6);  /* 400 tokens: 6 full blocks */
    for (size_t i = 0; i < 4; i++)
        CHECK_INT(m->requests[1].hash_ids[i], m->requests[0].hash_ids[i]);
    CHECK(m->requests[1].hash_ids[4] != m->requests[0].hash_ids[3]);
    CHECK_INT(m->requests[0].hash_ids[0], 1);
    CHECK(hs->requests[0].hash_ids[0] != m->requests[0].hash_ids[0]); /* 10 tokens: no full block */
    CHECK_STR(hs->requests[0].model, "m2");
    CHECK(!hs->requests[0].stream && m->requests[0].stream);
    CHECK_STR(agentic_stop_name("tool_calls"), "tool_use");
    CHECK_STR(agentic_stop_name("length"), "max_tokens");
    CHECK_STR(agentic_stop_name("stop"), "end_turn");
    CHECK_STR(agentic_stop_name("anything"), "");
    agentic_trace_finish(&t);
    evbuffer_free(out);
}

int main(void)
{
    test_model_map();
    test_real_trace();
    test_synthetic();
    test_plan_synthetic();
    test_plan_real();
    test_more_traces();
    test_errors();
    test_sniff();
    test_write();
    return check_done("test_agentic");
}
