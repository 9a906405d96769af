/* Unit tests for scenario: the shipped scenarios load and their canned
 * answers pass every check (matched the way the simulator matches them),
 * every validation rule reports the right file:line, references expand,
 * checks find and miss the right keywords, overrides apply all or
 * nothing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "core/config.h"
#include "study/scenario.h"

static char tmpdir[512];
static int file_no;

/* Writes text to a fresh file in tmpdir; returns its path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
    static char path[1024];
    if (name)
        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    else
        snprintf(path, sizeof(path), "%s/s%d.yaml", tmpdir, ++file_no);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static struct scenario *load_text(const char *text)
{
    struct scenario *s = NULL;
    struct config_err err;
    const char *path = write_file(NULL, text);
    int r = scenario_load(path, &s, &err);
    if (r < 0)
        fprintf(stderr, "unexpected error: %s\n", err.msg);
    CHECK_INT(r, 0);
    return s;
}

/* Loads text and expects "PATH:line: ..." containing want. */
#define EXPECT_ERROR(text, line, want) expect_error(__LINE__, text, line, want)
static void expect_error(int at, const char *text, int line, const char *want)
{
    struct scenario *s = (struct scenario *)1;
    struct config_err err = {{0}};
    char path[1024];
    snprintf(path, sizeof(path), "%s", write_file(NULL, text));
    int r = scenario_load(path, &s, &err);
    char prefix[1100];
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    check_count++;
    if (r != -EINVAL || s != (struct scenario *)1 ||
        strncmp(err.msg, prefix, strlen(prefix)) != 0 || !strstr(err.msg, want)) {
        check_failures++;
        fprintf(stderr, "test_scenario.c:%d: expected r=-EINVAL and '%s...%s', got r=%d '%s'\n", at,
                prefix, want, r, err.msg);
    }
}

/* A valid scenario's common parts; tests append agents and levels. */
#define HEAD                                                                                       \
    "name: t\n"                                                                                    \
    "targets:\n"                                                                                   \
    "  a: {}\n"

/* ---- the shipped scenarios ---- */

struct answers {
    const struct scenario *s;
    /* answers[agent][turn], NULL = not yet */
    const char *text[SCENARIO_MAX_AGENTS][SCENARIO_MAX_TURNS];
    char joined[SCENARIO_MAX_AGENTS][8192];
};

static const char *lookup(void *ctx, const char *agent, const char *which)
{
    struct answers *a = ctx;
    const struct scenario_agent *ag = scenario_find_agent(a->s, agent);
    if (!ag)
        return NULL;
    size_t i = (size_t)(ag - a->s->agents);
    if (strcmp(which, "last") == 0) {
        const char *last = NULL;
        for (size_t t = 0; t < ag->n_turns; t++)
            if (a->text[i][t])
                last = a->text[i][t];
        return last;
    }
    if (strcmp(which, "all") == 0) {
        size_t used = 0;
        a->joined[i][0] = '\0';
        for (size_t t = 0; t < ag->n_turns; t++) {
            if (!a->text[i][t])
                continue;
            int w = snprintf(a->joined[i] + used, sizeof(a->joined[i]) - used, "%s%s",
                             used ? "\n\n" : "", a->text[i][t]);
            if (w > 0)
                used += (size_t)w;
        }
        return used ? a->joined[i] : NULL;
    }
    unsigned n = 0;
    if (sscanf(which, "turn%u", &n) == 1 && n >= 1 && n <= ag->n_turns)
        return a->text[i][n - 1];
    return NULL;
}

/* The simulator's rule: the first entry whose match is a substring of the
 * last user message. */
static const cJSON *find_answer(const cJSON *list, const char *user, int *ret_index)
{
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "match");
        if (cJSON_IsString(m) && strstr(user, m->valuestring)) {
            *ret_index = i;
            return e;
        }
        i++;
    }
    return NULL;
}

/* Runs every level the way bench orders it (phases in order, agents of a
 * phase in order, turns in order), answering from the canned responses,
 * and checks every turn. Returns the number of checked turns. */
static int run_canned(const char *file)
{
    char path[1024];
    const char *dir = getenv("SCENARIOS");
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "config/scenarios", file);
    struct scenario *s = NULL;
    struct config_err err;
    int r = scenario_load(path, &s, &err);
    if (r < 0)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_INT(r, 0);
    if (r < 0)
        return 0;
    CHECK(s->responses != NULL);
    struct config_doc *doc = NULL;
    r = config_load_file(s->responses, &doc, &err);
    CHECK_INT(r, 0);
    if (r < 0) {
        scenario_free(s);
        return 0;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(config_root(doc), "responses");
    bool used[64] = {0};
    int checked = 0;
    for (size_t l = 0; l < s->n_levels; l++) {
        const struct scenario_level *lv = &s->levels[l];
        struct answers *ans = calloc(1, sizeof(*ans));
        ans->s = s;
        for (size_t p = 0; p < lv->n_phases; p++) {
            for (size_t k = 0; k < lv->phases[p].n_agents; k++) {
                size_t ai = lv->phases[p].agents[k];
                const struct scenario_agent *a = &s->agents[ai];
                if (a->system) {
                    char *sys = NULL;
                    CHECK_INT(scenario_expand(a->system, s, lookup, ans, &sys), 0);
                    CHECK(sys && !strstr(sys, "{{"));
                    free(sys);
                }
                for (size_t t = 0; t < a->n_turns; t++) {
                    char *user = NULL;
                    CHECK_INT(scenario_expand(a->turns[t].user, s, lookup, ans, &user), 0);
                    if (!user)
                        continue;
                    CHECK(!strstr(user, "{{"));
                    int idx = -1;
                    const cJSON *e = find_answer(list, user, &idx);
                    if (!e) {
                        check_failures++;
                        fprintf(stderr, "%s: level %s, %s turn %zu: no canned answer matches\n",
                                file, lv->name, a->name, t + 1);
                        free(user);
                        continue;
                    }
                    if (idx >= 0 && idx < 64)
                        used[idx] = true;
                    const char *text = cJSON_GetObjectItemCaseSensitive(e, "text")->valuestring;
                    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(e, "reasoning");
                    ans->text[ai][t] = text;
                    if (a->turns[t].check) {
                        struct scenario_check_result res;
                        scenario_check(a->turns[t].check, text,
                                       cJSON_IsString(rs) ? rs->valuestring : NULL, &res);
                        check_count++;
                        if (!res.pass) {
                            check_failures++;
                            fprintf(stderr,
                                    "%s: level %s, %s turn %zu fails: missing %zu (%s) %s\n", file,
                                    lv->name, a->name, t + 1, res.n_missing,
                                    res.n_missing ? res.missing[0] : "", res.reason);
                        }
                        checked++;
                    }
                    free(user);
                }
            }
        }
        free(ans);
    }
    /* Every canned answer is some turn's answer. */
    for (int i = 0; i < cJSON_GetArraySize(list) && i < 64; i++) {
        check_count++;
        if (!used[i]) {
            check_failures++;
            fprintf(stderr, "%s: canned answer %d is never used\n", file, i);
        }
    }
    config_free(doc);
    scenario_free(s);
    return checked;
}

static void test_shipped(void)
{
    const char *dir = getenv("SCENARIOS");
    char path[1024];
    snprintf(path, sizeof(path), "%s/quant-comparison.yaml", dir ? dir : "config/scenarios");
    struct scenario *s = NULL;
    struct config_err err;
    int r = scenario_load(path, &s, &err);
    if (r < 0)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_INT(r, 0);
    if (s) {
        CHECK_STR(s->name, "quant-comparison");
        CHECK_INT(s->repetitions, 5);
        CHECK_INT(s->warmup, 1);
        CHECK_INT(s->pause, USEC_PER_SEC);
        CHECK_INT(s->timeout, 120 * USEC_PER_SEC);
        CHECK_INT(s->n_targets, 2);
        CHECK_STR(s->targets[0].name, "q4");
        CHECK_STR(s->targets[1].name, "q3");
        CHECK_STR(s->targets[0].label, "Q4_K_XL");
        CHECK(s->targets[0].url == NULL && s->targets[1].url == NULL);
        CHECK_INT(s->targets[0].sim.slots, 3);
        CHECK_NEAR(s->targets[0].sim.decode_tps, 53.2, 1e-9);
        CHECK_NEAR(s->targets[1].sim.decode_tps, 51.9, 1e-9);
        CHECK_INT(s->targets[0].thinking, 0);
        CHECK_NEAR(s->targets[1].vram_gb, 18, 1e-9);
        CHECK_INT(s->targets[1].context, 40960);
        CHECK_STR(s->targets[0].model, "qwen35-35b-multi");
        CHECK_INT(s->n_levels, 3);
        for (size_t i = 0; i < s->n_levels && i < 3; i++) {
            char name[8];
            snprintf(name, sizeof(name), "%zu", i + 1);
            CHECK_STR(s->levels[i].name, name);
            CHECK_INT(s->levels[i].concurrency, i + 1);
            CHECK_INT(s->levels[i].n_phases, 1);
            CHECK_INT(s->levels[i].phases[0].kind, SCENARIO_PHASE_PARALLEL);
            CHECK_INT(s->levels[i].phases[0].n_agents, i + 1);
        }
        const struct scenario_agent *p = scenario_find_agent(s, "primary");
        CHECK(p && p->role == SCENARIO_ROLE_PRIMARY && p->n_turns == 3);
        if (p && p->n_turns == 3) {
            CHECK_INT(p->turns[0].max_tokens, 700);
            CHECK_INT(p->turns[1].max_tokens, 512);
            CHECK(p->turns[1].has_temperature);
            CHECK_NEAR(p->turns[1].temperature, 0.2, 1e-12);
            CHECK_INT(p->turns[2].thinking, 0);
            CHECK(p->turns[0].check && p->turns[0].check->re);
        }
        const struct scenario_agent *d = scenario_find_agent(s, "docstring");
        CHECK(d && d->role == SCENARIO_ROLE_SIDE && d->n_turns == 1 && d->turns[0].check);
        CHECK(s->responses && strstr(s->responses, "/quant-comparison.responses.yaml"));
        scenario_free(s);
    }
    CHECK_INT(run_canned("quant-comparison.yaml"), 3 + (3 + 1) + (3 + 1 + 1));

    snprintf(path, sizeof(path), "%s/code-review-panel.yaml", dir ? dir : "config/scenarios");
    s = NULL;
    r = scenario_load(path, &s, &err);
    if (r < 0)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_INT(r, 0);
    if (s) {
        const struct scenario_level *panel = scenario_find_level(s, "5");
        CHECK(panel != NULL);
        if (panel) {
            CHECK_INT(panel->concurrency, 5);
            CHECK(panel->n_phases >= 3);
            CHECK_INT(panel->phases[0].kind, SCENARIO_PHASE_PARALLEL);
            CHECK_INT(panel->phases[0].n_agents, 5);
            CHECK_INT(panel->phases[1].kind, SCENARIO_PHASE_SEQUENTIAL);
        }
        CHECK_INT(s->n_targets, 1);
        CHECK(scenario_find_var(s, "snippet") != NULL);
        scenario_free(s);
    }
    CHECK(run_canned("code-review-panel.yaml") >= 8);
}

/* ---- validation: one rule per case ---- */

static void test_errors(void)
{
    /* Unknown keys, everywhere. */
    EXPECT_ERROR(HEAD "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\nrepetiton: 3\n", 6,
                 "unknown key 'repetiton'");
    EXPECT_ERROR("name: t\ntargets:\n  a:\n    urll: http://127.0.0.1:1\n"
                 "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 4, "unknown key 'urll'");
    EXPECT_ERROR("name: t\ntargets:\n  a:\n    sim: {slots: 2, decode: 5}\n"
                 "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 4, "unknown key 'decode'");
    EXPECT_ERROR(HEAD
                 "defaults:\n  max_token: 5\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 5, "unknown key 'max_token'");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n    sytem: be brief\nlevels: [{agents: [x]}]\n",
                 7, "unknown key 'sytem'");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    turns:\n      - user: hi\n        check: {all: [a]}\n"
                      "levels: [{agents: [x]}]\n",
                 8, "unknown key 'check'");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n    checks:\n      al: [a]\n"
                      "levels: [{agents: [x]}]\n",
                 8, "unknown key 'al'");
    EXPECT_ERROR(HEAD "agents: {x: {user: hi}}\nlevels:\n  - agents: [x]\n    concurency: 2\n", 7,
                 "unknown key 'concurency'");
    EXPECT_ERROR(HEAD "agents: {x: {user: hi}}\nlevels:\n  - phases:\n      - paralel: [x]\n", 7,
                 "unknown key 'paralel'");

    /* Required keys and the three non-empty sections. */
    EXPECT_ERROR("targets: {a: {}}\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n", 1,
                 "missing required key 'name'");
    EXPECT_ERROR("name: t\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n", 1,
                 "missing required key 'targets'");
    /* The name becomes a directory under results/: it must stay there. */
    EXPECT_ERROR("name: ../x\ntargets: {a: {}}\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 1, "scenario name '../x' must be 1 to 64 letters, digits, '_' or '-'");
    EXPECT_ERROR(HEAD "levels: [{agents: [x]}]\n", 1, "missing required key 'agents'");
    EXPECT_ERROR(HEAD "agents: {x: {user: hi}}\n", 1, "missing required key 'levels'");
    EXPECT_ERROR("name: t\ntargets: {}\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n", 2,
                 "at least one target");
    EXPECT_ERROR(HEAD "agents: {}\nlevels: [{agents: [x]}]\n", 4, "at least one agent");
    EXPECT_ERROR(HEAD "agents: {x: {user: hi}}\nlevels: []\n", 5, "non-empty list");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    turns:\n      - max_tokens: 5\nlevels: [{agents: [x]}]\n",
                 7, "missing required key 'user'");

    /* Types and ranges. */
    EXPECT_ERROR(HEAD "repetitions: 0\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n", 4,
                 "'repetitions' must be an integer from 1 to 10000");
    EXPECT_ERROR(HEAD "pause: soon\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n", 4,
                 "'pause' must be a duration");
    EXPECT_ERROR(HEAD "timeout: 0s\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n", 4,
                 "'timeout' must be from 1ms to 24h");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n    temperature: 3\nlevels: [{agents: [x]}]\n",
                 7, "'temperature' must be a number from 0 to 2");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n    thinking: maybe\nlevels: [{agents: [x]}]\n",
                 7, "'thinking' must be on or off");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n    api: grpc\nlevels: [{agents: [x]}]\n", 7,
                 "'api' must be openai-chat or anthropic");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n    role: boss\nlevels: [{agents: [x]}]\n", 7,
                 "'role' must be primary or side");
    EXPECT_ERROR(HEAD
                 "agents:\n  x:\n    user: hi\n    checks: {read: both}\nlevels: [{agents: [x]}]\n",
                 7, "'read' must be content or all");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n    checks:\n      min_length: 10\n"
                      "      max_length: 5\nlevels: [{agents: [x]}]\n",
                 9, "'max_length' (5) is below 'min_length' (10)");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n    checks:\n      all: [ok, 404]\n"
                      "levels: [{agents: [x]}]\n",
                 8, "keywords must be strings");
    EXPECT_ERROR("name: t\ntargets:\n  a:\n    sim: {slots: 0}\n"
                 "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 4, "'slots' must be an integer from 1 to 1024");
    EXPECT_ERROR("name: t\ntargets:\n  a b: {}\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 3, "target name 'a b' must be");
    EXPECT_ERROR(HEAD "agents: {x: {user: hi}}\nlevels:\n  - agents: [x]\n    name: \"a,b\"\n", 7,
                 "without ','");

    /* Targets: url shape, url or sim. */
    EXPECT_ERROR("name: t\ntargets:\n  a:\n    url: localhost:8080\n"
                 "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 4, "expected http://HOST:PORT");
    EXPECT_ERROR("name: t\ntargets:\n  a:\n    url: http://127.0.0.1:8080\n    sim: {slots: 2}\n"
                 "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 5, "has both 'url' and 'sim'");

    /* Agents: turns or user; one primary. */
    EXPECT_ERROR(HEAD "agents:\n  x:\n    label: X\nlevels: [{agents: [x]}]\n", 6,
                 "agent 'x' needs 'turns' or 'user'");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    turns: [hi]\n    user: hello\nlevels: [{agents: [x]}]\n",
                 7, "has both 'turns' and 'user'");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    turns: [hi]\n    checks: {all: [a]}\n"
                      "levels: [{agents: [x]}]\n",
                 7, "put 'checks' in each turn");
    EXPECT_ERROR(HEAD
                 "agents:\n  x: {user: hi, role: primary}\n  y:\n    user: hi\n    role: primary\n"
                 "levels: [{agents: [x]}]\n",
                 8, "only one agent can be primary; 'x' (line 5) already is");

    /* Bad regex (POSIX ERE). */
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n    checks:\n      regex: \"def (\"\n"
                      "levels: [{agents: [x]}]\n",
                 8, "bad regex 'def ('");

    /* Levels: defined agents, none twice, agents or phases. */
    EXPECT_ERROR(HEAD "agents: {x: {user: hi}}\nlevels:\n  - agents: [x, y]\n", 6,
                 "unknown agent 'y' (agents: x)");
    EXPECT_ERROR(HEAD "agents: {x: {user: hi}}\nlevels:\n  - phases:\n      - parallel: [x]\n"
                      "      - sequential: [x]\n",
                 8, "agent 'x' appears twice in this level");
    EXPECT_ERROR(
        HEAD "agents: {x: {user: hi}}\nlevels:\n  - agents: [x]\n    phases: [{parallel: [x]}]\n",
        7, "'agents' or 'phases', not both");
    EXPECT_ERROR(
        HEAD
        "agents: {x: {user: hi}}\nlevels:\n  - phases:\n      - {parallel: [x], sequential: [x]}\n",
        7, "either 'parallel: [...]' or 'sequential: [...]'");
    EXPECT_ERROR(HEAD "agents: {x: {user: hi}, y: {user: yo}}\nlevels:\n  - agents: [x]\n"
                      "  - agents: [y]\n",
                 7, "two levels are named '1'");

    /* References: unknown var, unknown agent, syntax, self, turn range. */
    EXPECT_ERROR(HEAD "vars: {a: A}\nagents:\n  x:\n    user: \"see {{vars.b}}\"\n"
                      "levels: [{agents: [x]}]\n",
                 7, "unknown var 'b' in {{vars.b}} (vars: a)");
    EXPECT_ERROR(
        HEAD "agents:\n  x:\n    user: hi\n  y:\n    system: \"{{agents.z.last}}\"\n    user: hi\n"
             "levels: [{agents: [x]}]\n",
        8, "unknown agent 'z' in {{agents.z.last}} (agents: x, y)");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n  y:\n    user: \"{{agents.x.first}}\"\n"
                      "levels: [{agents: [x]}]\n",
                 8, "bad reference '{{agents.x.first}}'");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: \"a {{vars.b\"\nlevels: [{agents: [x]}]\n", 6,
                 "unclosed '{{'");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    turns:\n      - hi\n      - \"{{agents.x.turn1}}\"\n"
                      "levels: [{agents: [x]}]\n",
                 8, "agent 'x' cannot reference its own answers");
    EXPECT_ERROR(HEAD "agents:\n  x:\n    user: hi\n  y:\n    user: \"{{agents.x.turn2}}\"\n"
                      "levels: [{agents: [x]}]\n",
                 8, "{{agents.x.turn2}}: agent 'x' has 1 turn");

    /* References must point at agents that run earlier in the same level. */
    const char *agents_xy =
        HEAD "agents:\n  x:\n    user: hi\n  y:\n    user: \"after {{agents.x.last}}\"\n";
    char buf[2048];
    snprintf(buf, sizeof(buf), "%slevels:\n  - agents: [x, y]\n", agents_xy);
    EXPECT_ERROR(buf, 10,
                 "level '2': agent 'y' uses {{agents.x.last}}, but 'x' runs in parallel "
                 "with it (same phase)");
    snprintf(buf, sizeof(buf),
             "%slevels:\n  - phases:\n      - parallel: [y]\n      - parallel: [x]\n", agents_xy);
    EXPECT_ERROR(buf, 11, "level '1': agent 'y' uses {{agents.x.last}}, but 'x' runs after it");
    snprintf(buf, sizeof(buf), "%slevels:\n  - phases:\n      - sequential: [y, x]\n", agents_xy);
    EXPECT_ERROR(buf, 11, "but 'x' runs after it");
    snprintf(buf, sizeof(buf), "%slevels:\n  - agents: [x]\n  - name: solo\n    agents: [y]\n",
             agents_xy);
    EXPECT_ERROR(buf, 12,
                 "level 'solo': agent 'y' uses {{agents.x.last}}, but 'x' does not run in "
                 "this level");
    /* ... and these orders are fine. */
    snprintf(buf, sizeof(buf),
             "%slevels:\n  - phases:\n      - sequential: [x, y]\n"
             "  - name: two\n    phases:\n      - parallel: [x]\n      - parallel: [y]\n",
             agents_xy);
    scenario_free(load_text(buf));

    /* The responses file must exist and parse. */
    EXPECT_ERROR(HEAD "responses: nowhere.yaml\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 4, "responses: ");
    write_file("bad-responses.yaml", "responses:\n  - match: x\n    text: [unclosed\n");
    EXPECT_ERROR(
        HEAD "responses: bad-responses.yaml\nagents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n", 4,
        "bad-responses.yaml:");

    /* A file that is not there. */
    struct scenario *s = NULL;
    struct config_err err;
    CHECK_INT(scenario_load("/nonexistent/x.yaml", &s, &err), -ENOENT);
    CHECK(s == NULL);
}

/* ---- settings resolution, defaults, JSON ---- */

static void test_settings(void)
{
    struct scenario *s =
        load_text("name: t\n"
                  "defaults: {max_tokens: 100, temperature: 0.5, thinking: on, api: anthropic}\n"
                  "targets:\n"
                  "  real: {url: \"http://127.0.0.1:9/\", thinking: off}\n"
                  "  simmed: {sim: {decode_tps: 20}}\n"
                  "agents:\n"
                  "  x:\n"
                  "    max_tokens: 50\n"
                  "    turns:\n"
                  "      - plain string turn\n"
                  "      - {user: hi, max_tokens: 7, thinking: off}\n"
                  "  y: {user: yo, api: openai-chat}\n"
                  "levels:\n"
                  "  - agents: [x, y]\n"
                  "  - name: 7\n"
                  "    concurrency: 4\n"
                  "    phases: [{sequential: [y]}, {parallel: x}]\n");
    if (!s)
        return;
    CHECK_INT(s->repetitions, SCENARIO_DEFAULT_REPETITIONS);
    CHECK_INT(s->warmup, SCENARIO_DEFAULT_WARMUP);
    CHECK_INT(s->pause, SCENARIO_DEFAULT_PAUSE);
    CHECK_INT(s->timeout, SCENARIO_DEFAULT_TIMEOUT);
    CHECK(!s->has_seed);
    CHECK(s->responses == NULL);
    CHECK_STR(s->description, "");
    const struct scenario_target *real = scenario_find_target(s, "real");
    const struct scenario_target *simmed = scenario_find_target(s, "simmed");
    CHECK(real && simmed && !scenario_find_target(s, "nope"));
    if (!real || !simmed)
        goto out;
    CHECK_STR(real->url, "http://127.0.0.1:9");
    CHECK_STR(real->label, "real");
    CHECK(simmed->url == NULL);
    CHECK_INT(simmed->sim.slots, 3); /* the simulator's defaults */
    CHECK_NEAR(simmed->sim.prefill_tps, 1500, 1e-9);
    CHECK_NEAR(simmed->sim.decode_tps, 20, 1e-9);
    CHECK_INT(simmed->sim.ctx_size, 131072);
    CHECK_INT(simmed->thinking, SCENARIO_THINKING_UNSET);
    CHECK(simmed->model == NULL);
    const struct scenario_agent *x = scenario_find_agent(s, "x"), *y = scenario_find_agent(s, "y");
    CHECK(x && y);
    if (!x || !y)
        goto out;
    CHECK_INT(x->api, SCENARIO_API_ANTHROPIC);
    CHECK_INT(y->api, SCENARIO_API_OPENAI_CHAT);
    CHECK_STR(x->label, "x");
    CHECK_STR(x->turns[0].user, "plain string turn");
    CHECK_INT(x->turns[0].max_tokens, 50);
    CHECK_INT(x->turns[1].max_tokens, 7);
    CHECK_INT(y->turns[0].max_tokens, 100);
    CHECK(x->turns[0].has_temperature);
    CHECK_NEAR(x->turns[0].temperature, 0.5, 1e-12);
    CHECK_INT(x->turns[0].thinking, 1);
    CHECK_INT(x->turns[1].thinking, 0);
    CHECK_INT(scenario_thinking(&x->turns[0], real), 1); /* the turn's setting wins */
    CHECK_INT(x->turns[0].check == NULL, 1);
    CHECK_STR(s->levels[0].name, "2"); /* widest parallel phase */
    CHECK_INT(s->levels[0].concurrency, 2);
    CHECK_STR(s->levels[1].name, "7"); /* a number as a name */
    CHECK_INT(s->levels[1].concurrency, 4);
    CHECK_INT(s->levels[1].phases[0].kind, SCENARIO_PHASE_SEQUENTIAL);
    CHECK_INT(s->levels[1].phases[1].agents[0], 0); /* a single name for a list */
    CHECK(scenario_find_level(s, "7") == &s->levels[1]);
    CHECK_STR(scenario_phase_kind_name(SCENARIO_PHASE_SEQUENTIAL), "sequential");
    CHECK_STR(scenario_role_name(y->role), "side");
    CHECK_STR(scenario_api_name(x->api), "anthropic");
out:
    scenario_free(s);

    /* No thinking anywhere in the scenario: the target decides. */
    s = load_text(HEAD "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n");
    if (s) {
        struct scenario_target t = s->targets[0];
        CHECK_INT(scenario_thinking(&s->agents[0].turns[0], &t), SCENARIO_THINKING_UNSET);
        t.thinking = 1;
        CHECK_INT(scenario_thinking(&s->agents[0].turns[0], &t), 1);
    }
    scenario_free(s);

    /* JSON is YAML too. */
    s = load_text(
        "{\"name\": \"j\", \"targets\": {\"a\": {}}, \"agents\": {\"x\": {\"user\": \"hi\"}},"
        " \"levels\": [{\"agents\": [\"x\"]}]}");
    if (s)
        CHECK_STR(s->name, "j");
    scenario_free(s);
}

/* ---- expansion ---- */

static const char *fixed_lookup(void *ctx, const char *agent, const char *which)
{
    static char buf[128];
    if (strcmp(agent, "y") == 0)
        return NULL; /* no answer yet */
    snprintf(buf, sizeof(buf), "<%s.%s>", agent, which);
    return buf;
}

static const char *big_lookup(void *ctx, const char *agent, const char *which)
{
    return ctx;
}

static void test_expand(void)
{
    struct scenario *s = load_text(HEAD "vars:\n  v: \"value\"\n  braces: \"{{literal}}\"\n"
                                        "agents:\n  x: {turns: [a, b, c]}\n  y: {user: hi}\n"
                                        "levels: [{agents: [x]}]\n");
    if (!s)
        return;
    char *out = NULL;
    CHECK_INT(scenario_expand("plain", s, fixed_lookup, NULL, &out), 0);
    CHECK_STR(out, "plain");
    free(out);
    CHECK_INT(scenario_expand("", s, fixed_lookup, NULL, &out), 0);
    CHECK_STR(out, "");
    free(out);
    CHECK_INT(
        scenario_expand("[{{vars.v}}|{{ vars.v }}|{{vars.braces}}]", s, fixed_lookup, NULL, &out),
        0);
    CHECK_STR(out, "[value|value|{{literal}}]");
    free(out);
    CHECK_INT(scenario_expand("{{agents.x.last}} {{agents.x.all}} {{agents.x.turn2}} "
                              "({{agents.y.last}})",
                              s, fixed_lookup, NULL, &out),
              0);
    CHECK_STR(out, "<x.last> <x.all> <x.turn2> ()");
    free(out);
    /* Without a callback, answers expand to nothing. */
    CHECK_INT(scenario_expand("a{{agents.x.turn3}}b", s, NULL, NULL, &out), 0);
    CHECK_STR(out, "ab");
    free(out);
    out = (char *)1;
    CHECK_INT(scenario_expand("{{vars.nope}}", s, fixed_lookup, NULL, &out), -EINVAL);
    CHECK_INT(scenario_expand("{{agents.nope.last}}", s, fixed_lookup, NULL, &out), -EINVAL);
    CHECK_INT(scenario_expand("{{agents.x.turn0}}", s, fixed_lookup, NULL, &out), -EINVAL);
    CHECK_INT(scenario_expand("{{ agents.x }}", s, fixed_lookup, NULL, &out), -EINVAL);
    CHECK_INT(scenario_expand("x {{vars.v", s, fixed_lookup, NULL, &out), -EINVAL);
    CHECK(out == (char *)1); /* untouched on error */
    /* Bounded. */
    size_t n = SCENARIO_MAX_EXPANDED;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    CHECK_INT(scenario_expand("{{agents.x.last}}", s, big_lookup, big, &out), 0);
    CHECK_INT(strlen(out), n);
    free(out);
    out = (char *)1;
    CHECK_INT(scenario_expand("!{{agents.x.last}}", s, big_lookup, big, &out), -E2BIG);
    CHECK(out == (char *)1);
    free(big);
    scenario_free(s);
}

/* ---- checks ---- */

static struct scenario *load_check(const char *checks)
{
    char buf[2048];
    snprintf(buf, sizeof(buf),
             HEAD "agents:\n  x:\n    user: hi\n    checks: %s\n"
                  "levels: [{agents: [x]}]\n",
             checks);
    return load_text(buf);
}

static void test_checks(void)
{
    struct scenario_check_result res;
    struct scenario *s =
        load_check("{all: [FastAPI, \"@app.post\", pydantic], any: [pytest, unittest]}");
    if (s) {
        const struct scenario_check *c = s->agents[0].turns[0].check;
        scenario_check(c, "from fastapi import FastAPI\n@APP.POST('/x')\nimport unittest", NULL,
                       &res);
        CHECK(!res.pass);
        CHECK_INT(res.n_found, 3);
        CHECK_STR(res.found[0], "FastAPI");
        CHECK_STR(res.found[1], "@app.post");
        CHECK_STR(res.found[2], "unittest");
        CHECK_INT(res.n_missing, 1);
        CHECK_STR(res.missing[0], "pydantic");
        CHECK_STR(res.reason, "");
        /* None of any: all of them are missing. */
        scenario_check(c, "fastapi pydantic @app.post", NULL, &res);
        CHECK(!res.pass);
        CHECK_INT(res.n_found, 3);
        CHECK_INT(res.n_missing, 2);
        CHECK_STR(res.missing[0], "pytest");
        CHECK_STR(res.missing[1], "unittest");
        scenario_check(c, "FASTAPI PYDANTIC @App.Post PyTest", NULL, &res);
        CHECK(res.pass);
        CHECK_INT(res.n_missing, 0);
        /* NULL content is empty. */
        scenario_check(c, NULL, NULL, &res);
        CHECK(!res.pass);
        CHECK_INT(res.n_missing, 5);
        scenario_free(s);
    }

    s = load_check("{none: [flask, django], regex: \"def [a-z_]+\\\\(\"}");
    if (s) {
        const struct scenario_check *c = s->agents[0].turns[0].check;
        scenario_check(c, "def add(x): pass", NULL, &res);
        CHECK(res.pass);
        CHECK_STR(res.reason, "");
        scenario_check(c, "from flask import Flask\nDEF index(): ...", NULL, &res);
        CHECK(!res.pass);
        CHECK_STR(res.reason, "unwanted keyword 'flask' found");
        scenario_check(c, "Django: class View: ...", NULL, &res);
        CHECK(!res.pass);
        CHECK_STR(res.reason,
                  "unwanted keyword 'django' found; no match for regex 'def [a-z_]+\\('");
        CHECK_INT(res.n_found + res.n_missing, 0);
        scenario_free(s);
    }

    /* Lengths count characters, not bytes. */
    s = load_check("{min_length: 3, max_length: 4}");
    if (s) {
        const struct scenario_check *c = s->agents[0].turns[0].check;
        scenario_check(c, "h\xc3\xa9h", NULL, &res); /* 3 characters, 4 bytes */
        CHECK(res.pass);
        scenario_check(c, "\xc3\xa9\xc3\xa9", NULL, &res);
        CHECK(!res.pass);
        CHECK_STR(res.reason, "2 characters, fewer than min_length 3");
        scenario_check(c, "abcde", NULL, &res);
        CHECK(!res.pass);
        CHECK_STR(res.reason, "5 characters, more than max_length 4");
        scenario_free(s);
    }

    /* read: content ignores the reasoning; read: all uses it for
     * keywords, regex and length. */
    s = load_check("{all: [secret], regex: \"^because\", min_length: 10}");
    if (s) {
        const struct scenario_check *c = s->agents[0].turns[0].check;
        CHECK_INT(c->read, SCENARIO_READ_CONTENT);
        scenario_check(c, "answer", "because the secret", &res);
        CHECK(!res.pass);
        CHECK_INT(res.n_missing, 1);
        scenario_free(s);
    }
    s = load_check("{all: [secret], regex: \"^because\", min_length: 10, read: all}");
    if (s) {
        const struct scenario_check *c = s->agents[0].turns[0].check;
        scenario_check(c, "answer", "because the secret", &res);
        CHECK(res.pass);
        CHECK_INT(res.n_found, 1);
        scenario_check(c, "answer", NULL, &res);
        CHECK(!res.pass);
        scenario_free(s);
    }

    /* A single keyword without brackets; an empty mapping is no checks. */
    s = load_check("{all: FastAPI}");
    if (s) {
        CHECK_INT(s->agents[0].turns[0].check->n_all, 1);
        scenario_free(s);
    }
    s = load_check("{}");
    if (s) {
        CHECK(s->agents[0].turns[0].check == NULL);
        scenario_free(s);
    }
}

/* ---- overrides ---- */

static void test_overrides(void)
{
    struct scenario *s = load_text("name: t\ntargets:\n  q4: {}\n  q3: {}\n"
                                   "agents: {x: {user: hi}, y: {user: yo}, z: {user: zz}}\n"
                                   "levels:\n  - agents: [x]\n  - agents: [x, y]\n"
                                   "  - agents: [x, y, z]\n");
    if (!s)
        return;
    struct config_err err;
    struct scenario_overrides o = {0};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), 0);
    CHECK_INT(s->n_levels, 3);

    /* Errors leave s unchanged. */
    const char *bad_target[] = {"q3=http://127.0.0.1:7081", "q5=http://127.0.0.1:1"};
    o = (struct scenario_overrides){
        .repetitions = 2, .levels = "3,1", .targets = bad_target, .n_targets = 2};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), -EINVAL);
    CHECK_STR(err.msg, "unknown target 'q5' (targets: q4, q3)");
    CHECK_INT(s->repetitions, 5);
    CHECK_INT(s->n_levels, 3);
    CHECK(s->targets[1].url == NULL);
    o = (struct scenario_overrides){.levels = "1, 4"};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), -EINVAL);
    CHECK_STR(err.msg, "unknown level '4' (levels: 1, 2, 3)");
    const char *no_eq[] = {"q4"};
    o = (struct scenario_overrides){.targets = no_eq, .n_targets = 1};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), -EINVAL);
    CHECK_STR(err.msg, "--target expects NAME=URL or NAME=PROFILE.yaml, got 'q4'");
    const char *bad_url[] = {"q4=127.0.0.1:7080"};
    o = (struct scenario_overrides){.targets = bad_url, .n_targets = 1};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), -EINVAL);
    CHECK(strstr(err.msg, "target 'q4': bad url") != NULL);
    o = (struct scenario_overrides){.levels = " , "};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), -EINVAL);
    o = (struct scenario_overrides){.repetitions = 10001};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), -EINVAL);
    CHECK(s->targets[0].url == NULL);

    /* Applied: repetitions, levels kept in file order, URLs (the last
     * NAME=URL for a target wins). */
    const char *targets[] = {"q3=http://127.0.0.1:7081/", "q4=http://127.0.0.1:1",
                             "q4=http://127.0.0.1:7080"};
    o = (struct scenario_overrides){
        .repetitions = 2, .levels = "3,1", .targets = targets, .n_targets = 3};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), 0);
    CHECK_INT(s->repetitions, 2);
    CHECK_INT(s->n_levels, 2);
    CHECK_STR(s->levels[0].name, "1");
    CHECK_STR(s->levels[1].name, "3");
    CHECK_INT(s->levels[1].phases[0].n_agents, 3);
    CHECK(scenario_find_level(s, "2") == NULL);
    CHECK_STR(s->targets[0].url, "http://127.0.0.1:7080");
    CHECK_STR(s->targets[1].url, "http://127.0.0.1:7081");

    /* Keeping one target (a real server per run); NAME=URL applies first. */
    o = (struct scenario_overrides){.only_targets = "q9"};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), -EINVAL);
    CHECK_STR(err.msg, "unknown target 'q9' (targets: q4, q3)");
    CHECK_INT(s->n_targets, 2);
    const char *q3url[] = {"q3=http://127.0.0.1:7090"};
    o = (struct scenario_overrides){.only_targets = "q3", .targets = q3url, .n_targets = 1};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), 0);
    CHECK_INT(s->n_targets, 1);
    CHECK_STR(s->targets[0].name, "q3");
    CHECK_STR(s->targets[0].url, "http://127.0.0.1:7090");
    CHECK(scenario_find_target(s, "q4") == NULL);

    /* NAME=PROFILE.yaml: back on the simulator, with that profile. */
    char prof[1100];
    snprintf(prof, sizeof(prof), "q3=%s", write_file("fitted.yaml", "slots: 2\ndecode_tps: 33\n"
                                                                   "calibration: {from: a.json}\n"));
    const char *to_profile[] = {prof};
    o = (struct scenario_overrides){.targets = to_profile, .n_targets = 1};
    CHECK_INT(scenario_apply_overrides(s, &o, &err), 0);
    CHECK(s->targets[0].url == NULL);
    CHECK_INT(s->targets[0].sim.slots, 2);
    CHECK_NEAR(s->targets[0].sim.decode_tps, 33, 1e-9);
    CHECK_NEAR(s->targets[0].sim.prefill_tps, 1500, 1e-9); /* the default */
    CHECK(s->targets[0].sim.calibrated);
    CHECK_STR(s->targets[0].profile, prof + 3);
    snprintf(prof, sizeof(prof), "q3=%s", write_file("broken.yaml", "slots: 0\n"));
    CHECK_INT(scenario_apply_overrides(s, &o, &err), -EINVAL);
    CHECK(strstr(err.msg, "target 'q3': ") && strstr(err.msg, "broken.yaml:1: 'slots' must be"));
    scenario_free(s);
}

/* A target's sim: names a profile file, beside the scenario. */
static void test_profile_file(void)
{
    write_file("q4.yaml", "# fitted\nslots: 4\nprefill_tps: 900\nbatch_slowdown: 0.2\n"
                          "calibration:\n  from: [m/results.json]\n  target: real\n"
                          "  levels: [\"1\", \"2\"]\n  requests: 12\n");
    struct scenario *s = load_text("name: t\ntargets:\n  q4: {sim: q4.yaml}\n  q3: {sim: {slots: 2}}\n"
                                   "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n");
    if (!s)
        return;
    const struct sim_profile *p = &s->targets[0].sim;
    CHECK_INT(p->slots, 4);
    CHECK_NEAR(p->prefill_tps, 900, 1e-9);
    CHECK_NEAR(p->decode_tps, 50, 1e-9);
    CHECK_NEAR(p->batch_slowdown, 0.2, 1e-9);
    CHECK(p->calibrated);
    CHECK_STR(p->calibration.from, "m/results.json");
    CHECK_STR(p->calibration.target, "real");
    CHECK_STR(p->calibration.levels, "1, 2");
    CHECK_INT(p->calibration.requests, 12);
    CHECK(strstr(s->targets[0].profile, "/q4.yaml") != NULL);
    CHECK(!s->targets[1].sim.calibrated && !s->targets[1].profile);
    /* The profile writes back what it read. */
    char *yaml = sim_profile_yaml(p, "made\nby hand");
    CHECK(yaml && strstr(yaml, "# made\n# by hand\nslots: 4\nprefill_tps: 900\n"));
    CHECK(yaml && strstr(yaml, "calibration:\n  from: [\"m/results.json\"]\n  target: \"real\"\n"
                               "  levels: [\"1\", \"2\"]\n  requests: 12\n"));
    const char *again = write_file("again.yaml", yaml ? yaml : "");
    struct sim_profile q;
    struct config_err err;
    CHECK_INT(sim_profile_load(again, &q, &err), 0);
    CHECK(q.slots == 4 && q.prefill_tps == 900 && q.batch_slowdown == 0.2 && q.calibrated);
    free(yaml);
    scenario_free(s);

    EXPECT_ERROR("name: t\ntargets:\n  a: {sim: nowhere.yaml}\n"
                 "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 3, "sim profile: ");
    write_file("bad-profile.yaml", "slots: 2\nspeed: 3\n");
    EXPECT_ERROR("name: t\ntargets:\n  a: {sim: bad-profile.yaml}\n"
                 "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n",
                 3, "bad-profile.yaml:2: unknown key 'speed'");
}

/* ---- sweeps ---- */

static void test_sweep(void)
{
    const char *text = "name: t\ntargets:\n  q4: {label: Q4, sim: {slots: 3}}\n"
                       "  real: {url: http://127.0.0.1:9}\n"
                       "agents: {x: {user: hi, thinking: off, max_tokens: 9}}\nlevels: [{agents: [x]}]\n";
    struct scenario *s = load_text(text);
    if (!s)
        return;
    struct config_err err;
    /* Refused whole, s unchanged. */
    CHECK_INT(scenario_apply_sweep(s, "slots=2,4", &err), -EINVAL);
    CHECK_STR(err.msg, "--sweep slots: target 'real' is a real server; slots is a simulator setting");
    CHECK_INT(s->n_targets, 2);
    CHECK_INT(scenario_apply_sweep(s, "speed=1,2", &err), -EINVAL);
    CHECK(strstr(err.msg, "--sweep: unknown setting 'speed' (settings: thinking, max_tokens, slots"));
    CHECK_INT(scenario_apply_sweep(s, "thinking=on,maybe", &err), -EINVAL);
    CHECK_STR(err.msg, "--sweep thinking: expected on or off, got 'maybe'");
    CHECK_INT(scenario_apply_sweep(s, "max_tokens=8,", &err), -EINVAL);
    CHECK_INT(scenario_apply_sweep(s, "max_tokens", &err), -EINVAL);
    CHECK_INT(scenario_apply_sweep(s, "max_tokens=8,8", &err), -EINVAL);
    CHECK(strstr(err.msg, "'8' twice"));
    CHECK_INT(scenario_apply_sweep(s, "target=q4,nope", &err), -EINVAL);
    CHECK_STR(err.msg, "unknown target 'nope' (targets: q4, real)");
    CHECK_INT(s->n_targets, 2);
    CHECK(s->sweep_key == NULL);

    /* thinking: a copy per value, and the value wins over the turn's. */
    CHECK_INT(scenario_apply_sweep(s, "thinking=on,off", &err), 0);
    CHECK_INT(s->n_targets, 4);
    CHECK_STR(s->sweep_key, "thinking");
    CHECK_STR(s->targets[0].name, "q4-on");
    CHECK_STR(s->targets[0].label, "Q4 (thinking=on)");
    CHECK_STR(s->targets[3].name, "real-off");
    CHECK_STR(s->targets[3].url, "http://127.0.0.1:9");
    CHECK_STR(s->targets[1].sweep_value, "off");
    CHECK_INT(scenario_thinking(&s->agents[0].turns[0], &s->targets[0]), 1);
    CHECK_INT(scenario_thinking(&s->agents[0].turns[0], &s->targets[1]), 0);
    CHECK_INT(scenario_max_tokens(&s->agents[0].turns[0], &s->targets[0]), 9);
    scenario_free(s);

    /* A simulator setting, max_tokens, and values that are not names. */
    s = load_text("name: t\ntargets:\n  q4: {sim: {slots: 3}}\n"
                  "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n");
    if (!s)
        return;
    CHECK_INT(scenario_apply_sweep(s, "batch_slowdown=0.05, 0.2", &err), 0);
    CHECK_INT(s->n_targets, 2);
    CHECK_STR(s->targets[1].name, "q4-0_2");
    CHECK_STR(s->targets[1].label, "q4 (batch_slowdown=0.2)");
    CHECK_NEAR(s->targets[1].sim.batch_slowdown, 0.2, 1e-12);
    CHECK_INT(s->targets[1].sim.slots, 3);
    scenario_free(s);
    s = load_text("name: t\ntargets:\n  q4: {}\n  q3: {}\n"
                  "agents: {x: {user: hi}}\nlevels: [{agents: [x]}]\n");
    if (!s)
        return;
    CHECK_INT(scenario_apply_sweep(s, "max_tokens=64,1000001", &err), -EINVAL);
    CHECK_INT(scenario_apply_sweep(s, "target=q3,q4", &err), 0);
    CHECK_STR(s->targets[0].name, "q3");
    CHECK_STR(s->targets[0].sweep_value, "q3");
    CHECK_INT(scenario_apply_sweep(s, "max_tokens=64", &err), 0);
    CHECK_INT(scenario_max_tokens(&s->agents[0].turns[0], &s->targets[1]), 64);
    scenario_free(s);
}

/* capacity.user as a trace: its settings (replay's defaults but for the
 * think timing), a scenario without agents or levels, and the agents and
 * user level bench makes of the trace's kinds of session. */
static void test_trace_user(void)
{
    struct scenario *s =
        load_text(HEAD "capacity:\n  slo: \"errors<1%\"\n"
                       "  user: {trace: traces/t.json, speed: 20, osl_scale: 0.1}\n");
    if (!s)
        return;
    const struct scenario_trace_user *u = &s->capacity.trace;
    char want[1100];
    snprintf(want, sizeof(want), "%s/traces/t.json", tmpdir);
    CHECK_STR(u->path, want);
    CHECK_INT(u->timing, AGENTIC_TIMING_THINK);
    CHECK_NEAR(u->speed, 20, 1e-12);
    CHECK_NEAR(u->isl_scale, 1, 1e-12);
    CHECK_NEAR(u->osl_scale, 0.1, 1e-12);
    CHECK_INT(u->max_isl, 0);
    CHECK_INT(u->api, SCENARIO_API_ANTHROPIC);
    CHECK_INT(s->n_agents, 0);
    CHECK_INT(s->n_levels, 0);
    struct config_err err;
    const char *const kinds[] = {"main", "Explore", "Plan"};
    CHECK_INT(scenario_capacity_trace(s, kinds, 0, &err), -EINVAL);
    CHECK_INT(scenario_capacity_trace(s, kinds, 3, &err), 0);
    CHECK_INT(s->n_agents, 3);
    CHECK_STR(s->agents[1].name, "Explore");
    CHECK_INT(s->agents[0].role, SCENARIO_ROLE_PRIMARY);
    CHECK_INT(s->agents[2].role, SCENARIO_ROLE_SIDE);
    CHECK_INT(s->agents[2].n_turns, 1);
    CHECK(s->user_level && s->user_level->n_phases == 1 && s->user_level->phases[0].n_agents == 3);
    size_t level = 9;
    CHECK_INT(scenario_users_level(s, 4, &level), 0);
    CHECK_INT(level, 0);
    CHECK_INT(s->levels[0].users, 4);
    CHECK_STR(s->levels[0].name, "4");
    scenario_free(s);

    s = load_text(HEAD "capacity:\n  user: {trace: /t.json, timing: none, max_isl: 8000, api: "
                       "openai-chat}\n");
    if (s) {
        CHECK_STR(s->capacity.trace.path, "/t.json");
        CHECK_INT(s->capacity.trace.timing, AGENTIC_TIMING_NONE);
        CHECK_INT(s->capacity.trace.max_isl, 8000);
        CHECK_INT(s->capacity.trace.api, SCENARIO_API_OPENAI_CHAT);
        scenario_free(s);
    }
    EXPECT_ERROR(HEAD "capacity:\n  user: {trace: t.json, timing: later}\n", 5,
                 "'timing' must be original, think or none, not 'later'");
    EXPECT_ERROR(HEAD "capacity:\n  user: {speed: 2}\n", 5, "'trace'");
    EXPECT_ERROR(HEAD "capacity:\n  user: {trace: t.json, sped: 2}\n", 5, "unknown key 'sped'");
    /* A level user still needs agents and levels. */
    EXPECT_ERROR(HEAD "capacity:\n  user: \"1\"\n", 1, "'agents'");
}

static void remove_tmpdir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/tokentap-scenario-XXXXXX",
             base && base[0] ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    scenario_free(NULL);
    test_shipped();
    test_errors();
    test_settings();
    test_expand();
    test_checks();
    test_overrides();
    test_profile_file();
    test_sweep();
    test_trace_user();
    remove_tmpdir();
    return check_done("test_scenario");
}
