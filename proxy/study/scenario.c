/* scenario: loading and validation. Everything a run could trip over is
 * rejected here, with the line of the offending node. scenario_check.c
 * parses and judges answer checks; scenario_eval.c expands prompts and
 * applies command-line overrides. */
#include "study/scenario.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "wire/url.h"

#include "study/capacity.h"
#include "study/scenario_int.h"

struct loader {
    struct config_doc *doc; /* owned */
    struct config_err *err; /* borrowed */
    struct scenario *s;     /* borrowed: being built */
    /* The `defaults:` block, resolved into every turn. */
    enum scenario_api api;
    uint32_t max_tokens;
    bool has_temperature;
    double temperature;
    int thinking;
    const char *primary; /* borrowed: the primary agent's name, NULL = none yet */
    int primary_line;
};

static int oom(struct loader *L)
{
    snprintf(L->err->msg, sizeof(L->err->msg), "%s: out of memory", config_name(L->doc));
    return -ENOMEM;
}

/* An error at a line we remembered (the node may be gone from view). */
static int err_line(struct loader *L, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int err_line(struct loader *L, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(L->err->msg, sizeof(L->err->msg), "%s:%d: %s", config_name(L->doc), line, msg);
    else
        snprintf(L->err->msg, sizeof(L->err->msg), "%s: %s", config_name(L->doc), msg);
    return -EINVAL;
}

static int dup_into(struct loader *L, const char *s, char **ret)
{
    char *d = strdup(s);
    if (!d)
        return oom(L);
    *ret = d;
    return 0;
}

static const cJSON *member(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* Names end up in references ({{agents.NAME.last}}), file names and
 * command lines, so they stay plain. */
static bool plain_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SCENARIO_MAX_NAME)
        return false;
    for (const char *p = s; *p; p++)
        if (!scenario_ref_name_char(*p))
            return false;
    return true;
}

static int check_name(struct loader *L, const cJSON *node, const char *what, const char *name)
{
    if (!plain_name(name))
        return config_error(L->doc, node, L->err,
                            "%s name '%.80s' must be 1 to %d letters, digits, '_' or '-'", what,
                            name, SCENARIO_MAX_NAME);
    return 0;
}

static int get_nonempty(struct loader *L, const cJSON *obj, const char *key, bool required,
                        const char **ret)
{
    const char *v = NULL;
    int r = config_get_string(L->doc, obj, key, required, &v, L->err);
    if (r < 0)
        return -EINVAL; /* a missing key is bad content, like any other (not ENOENT) */
    if (v && !v[0])
        return config_error(L->doc, member(obj, key), L->err, "'%s' must not be empty", key);
    if (v)
        *ret = v;
    return 0;
}

/* "a, b, c" (bounded) for "unknown X (known: ...)" messages. */
static void name_list(char *buf, size_t len, const char *(*name_at)(const void *arr, size_t i),
                      const void *arr, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", name_at(arr, i));
        if (w < 0 || (size_t)w >= len - used) {
            if (len > 4)
                snprintf(buf + (used < len - 4 ? used : len - 4), 4, "...");
            return;
        }
        used += (size_t)w;
    }
}

static const char *var_name_at(const void *arr, size_t i)
{
    return ((const struct scenario_var *)arr)[i].name;
}

static const char *agent_name_at(const void *arr, size_t i)
{
    return ((const struct scenario_agent *)arr)[i].name;
}

static int parse_api(struct loader *L, const cJSON *obj, enum scenario_api *ret)
{
    const char *v = NULL;
    int r = config_get_string(L->doc, obj, "api", false, &v, L->err);
    if (r < 0 || !v)
        return r;
    if (strcmp(v, "openai-chat") == 0)
        *ret = SCENARIO_API_OPENAI_CHAT;
    else if (strcmp(v, "anthropic") == 0)
        *ret = SCENARIO_API_ANTHROPIC;
    else
        return config_error(L->doc, member(obj, "api"), L->err,
                            "'api' must be openai-chat or anthropic, not '%.80s'", v);
    return 0;
}

static int parse_thinking(struct loader *L, const cJSON *obj, int *ret)
{
    if (!member(obj, "thinking"))
        return 0;
    bool on = false;
    int r = config_get_onoff(L->doc, obj, "thinking", &on, L->err);
    if (r < 0)
        return r;
    *ret = on ? 1 : 0;
    return 0;
}

/* max_tokens, temperature, thinking: each level (defaults, agent, turn)
 * may set them; the nearest wins. */
struct request_settings {
    uint32_t max_tokens;
    bool has_temperature;
    double temperature;
    int thinking;
};

static int parse_settings(struct loader *L, const cJSON *obj, struct request_settings *rs)
{
    uint64_t mt = rs->max_tokens;
    /* llama-server caps n_predict by the context anyway; 1M is "any". */
    int r = config_get_u64(L->doc, obj, "max_tokens", 1, 1000000, &mt, L->err);
    if (r < 0)
        return r;
    rs->max_tokens = (uint32_t)mt;
    if (member(obj, "temperature")) {
        r = config_get_double(L->doc, obj, "temperature", 0, 2, &rs->temperature, L->err);
        if (r < 0)
            return r;
        rs->has_temperature = true;
    }
    return parse_thinking(L, obj, &rs->thinking);
}

/* ---- top level, vars, defaults ---- */

/* A file the scenario names, relative to the scenario file, so the
 * scenario runs from any directory. */
static int resolve(struct loader *L, const char *name, char **ret)
{
    const char *slash = strrchr(L->s->path, '/');
    size_t dirlen = (name[0] == '/' || !slash) ? 0 : (size_t)(slash - L->s->path) + 1;
    size_t len = dirlen + strlen(name) + 1;
    char *path = malloc(len);
    if (!path)
        return oom(L);
    snprintf(path, len, "%.*s%s", (int)dirlen, L->s->path, name);
    *ret = path;
    return 0;
}

static int parse_top(struct loader *L, const cJSON *root)
{
    struct scenario *s = L->s;
    const char *name = NULL, *description = "", *responses = NULL;
    uint64_t u;
    int r = get_nonempty(L, root, "name", true, &name);
    /* It names the output directory (results/<name>-<time>/): no "../". */
    if (r == 0)
        r = check_name(L, member(root, "name"), "scenario", name);
    if (r == 0)
        r = config_get_string(L->doc, root, "description", false, &description, L->err);
    if (r == 0)
        r = dup_into(L, name, &s->name);
    if (r == 0)
        r = dup_into(L, description, &s->description);
    if (r < 0)
        return r;
    u = s->repetitions;
    r = config_get_u64(L->doc, root, "repetitions", 1, 10000, &u, L->err);
    if (r < 0)
        return r;
    s->repetitions = (unsigned)u;
    u = s->warmup;
    r = config_get_u64(L->doc, root, "warmup", 0, 100, &u, L->err);
    if (r < 0)
        return r;
    s->warmup = (unsigned)u;
    r = config_get_duration(L->doc, root, "pause", &s->pause, L->err);
    if (r < 0)
        return r;
    if (s->pause > 3600 * USEC_PER_SEC)
        return config_error(L->doc, member(root, "pause"), L->err, "'pause' must be at most 1h");
    r = config_get_duration(L->doc, root, "timeout", &s->timeout, L->err);
    if (r < 0)
        return r;
    if (s->timeout < USEC_PER_MSEC || s->timeout > 24 * 3600 * USEC_PER_SEC)
        return config_error(L->doc, member(root, "timeout"), L->err,
                            "'timeout' must be from 1ms to 24h");
    if (member(root, "seed")) {
        /* llama-server's sampling seed is 32 bits. */
        r = config_get_u64(L->doc, root, "seed", 0, UINT32_MAX, &s->seed, L->err);
        if (r < 0)
            return r;
        s->has_seed = true;
    }
    r = get_nonempty(L, root, "responses", false, &responses);
    if (r < 0 || !responses)
        return r;
    r = resolve(L, responses, &s->responses);
    if (r < 0)
        return r;
    /* Parse it now: a broken responses file should stop the run before it starts. */
    struct config_doc *rdoc = NULL;
    struct config_err rerr;
    r = config_load_file(s->responses, &rdoc, &rerr);
    config_free(rdoc);
    if (r == -ENOMEM)
        return oom(L);
    if (r < 0)
        return config_error(L->doc, member(root, "responses"), L->err, "responses: %s", rerr.msg);
    return 0;
}

static int parse_vars(struct loader *L, const cJSON *vars)
{
    struct scenario *s = L->s;
    if (!vars)
        return 0;
    if (!cJSON_IsObject(vars))
        return config_error(L->doc, vars, L->err, "'vars' must be a mapping of name: text");
    size_t n = (size_t)cJSON_GetArraySize(vars);
    if (n > SCENARIO_MAX_VARS)
        return config_error(L->doc, vars, L->err, "more than %d vars", SCENARIO_MAX_VARS);
    s->vars = calloc(n ? n : 1, sizeof(*s->vars));
    if (!s->vars)
        return oom(L);
    for (const cJSON *v = vars->child; v; v = v->next) {
        int r = check_name(L, v, "var", v->string);
        if (r < 0)
            return r;
        if (!cJSON_IsString(v))
            return config_error(L->doc, v, L->err, "var '%s' must be text", v->string);
        struct scenario_var *sv = &s->vars[s->n_vars++];
        r = dup_into(L, v->string, &sv->name);
        if (r == 0)
            r = dup_into(L, v->valuestring, &sv->value);
        if (r < 0)
            return r;
    }
    return 0;
}

static int parse_defaults(struct loader *L, const cJSON *d)
{
    if (!d)
        return 0;
    static const char *const keys[] = {"api", "max_tokens", "temperature", "thinking", NULL};
    int r = config_check_keys(L->doc, d, keys, L->err);
    if (r == 0)
        r = parse_api(L, d, &L->api);
    if (r < 0)
        return r;
    struct request_settings rs = {L->max_tokens, L->has_temperature, L->temperature, L->thinking};
    r = parse_settings(L, d, &rs);
    if (r < 0)
        return r;
    L->max_tokens = rs.max_tokens;
    L->has_temperature = rs.has_temperature;
    L->temperature = rs.temperature;
    L->thinking = rs.thinking;
    return 0;
}

/* ---- targets ---- */

/* A target's `sim:`, a mapping or the name of a profile file (relative
 * to the scenario's directory, as `responses` is). */
static int parse_sim(struct loader *L, const cJSON *obj, struct scenario_target *t)
{
    if (!cJSON_IsString(obj))
        return sim_profile_parse(L->doc, obj, &t->sim, L->err);
    int r = resolve(L, obj->valuestring, &t->profile);
    if (r < 0)
        return r;
    struct config_err why;
    if (sim_profile_load(t->profile, &t->sim, &why) < 0)
        return config_error(L->doc, obj, L->err, "sim profile: %s", why.msg);
    return 0;
}

static int parse_target(struct loader *L, const cJSON *obj, struct scenario_target *t)
{
    static const char *const keys[] = {"label",    "url",     "sim",     "model",
                                       "thinking", "vram_gb", "context", NULL};
    const char *label = obj->string, *url = NULL, *model = NULL;
    int r = check_name(L, obj, "target", obj->string);
    if (r == 0)
        r = config_check_keys(L->doc, obj, keys, L->err);
    if (r == 0)
        r = get_nonempty(L, obj, "label", false, &label);
    if (r == 0)
        r = get_nonempty(L, obj, "url", false, &url);
    if (r == 0)
        r = get_nonempty(L, obj, "model", false, &model);
    if (r == 0)
        r = dup_into(L, obj->string, &t->name);
    if (r == 0)
        r = dup_into(L, label, &t->label);
    if (r == 0 && model)
        r = dup_into(L, model, &t->model);
    if (r < 0)
        return r;

    sim_profile_default(&t->sim);
    t->thinking_forced = SCENARIO_THINKING_UNSET;
    const cJSON *sim = member(obj, "sim");
    if (url && sim)
        /* One meaning per target: a real server or a simulated one. To try
         * a real server, keep the sim profile and pass --target NAME=URL. */
        return config_error(L->doc, sim, L->err,
                            "target '%s' has both 'url' and 'sim': a target is a real server "
                            "(url) or the simulator (sim)",
                            t->name);
    if (sim) {
        r = parse_sim(L, sim, t);
        if (r < 0)
            return r;
    }
    if (url) {
        struct url_target ut;
        struct config_err why;
        if (url_parse(url, &ut, &why) < 0)
            return config_error(L->doc, member(obj, "url"), L->err, "bad url %s", why.msg);
        r = dup_into(L, ut.url, &t->url);
        if (r < 0)
            return r;
    }
    t->thinking = SCENARIO_THINKING_UNSET;
    r = parse_thinking(L, obj, &t->thinking);
    if (r == 0)
        r = config_get_double(L->doc, obj, "vram_gb", 0.001, 1e6, &t->vram_gb, L->err);
    if (r == 0)
        r = config_get_u64(L->doc, obj, "context", 1, 1ull << 32, &t->context, L->err);
    return r;
}

static int parse_targets(struct loader *L, const cJSON *targets)
{
    struct scenario *s = L->s;
    if (!cJSON_IsObject(targets))
        return config_error(L->doc, targets, L->err, "'targets' must be a mapping of name: target");
    size_t n = (size_t)cJSON_GetArraySize(targets);
    if (n == 0)
        return config_error(L->doc, targets, L->err, "'targets' needs at least one target");
    if (n > SCENARIO_MAX_TARGETS)
        return config_error(L->doc, targets, L->err, "more than %d targets", SCENARIO_MAX_TARGETS);
    s->targets = calloc(n, sizeof(*s->targets));
    if (!s->targets)
        return oom(L);
    for (const cJSON *t = targets->child; t; t = t->next) {
        int r = parse_target(L, t, &s->targets[s->n_targets++]);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- agents ---- */

static int parse_turn(struct loader *L, const cJSON *obj, const struct request_settings *agent_rs,
                      struct scenario_turn *t)
{
    struct request_settings rs = *agent_rs;
    const char *user = NULL;
    int r;
    if (cJSON_IsString(obj)) {
        /* A bare string is a turn with only a user prompt. */
        user = obj->valuestring;
        t->line = config_line(L->doc, obj);
    } else {
        static const char *const keys[] = {"user",     "max_tokens", "temperature",
                                           "thinking", "checks",     NULL};
        r = config_check_keys(L->doc, obj, keys, L->err);
        if (r == 0)
            r = get_nonempty(L, obj, "user", true, &user);
        if (r == 0)
            r = parse_settings(L, obj, &rs);
        if (r == 0 && member(obj, "checks"))
            r = scenario_check_parse(L->doc, member(obj, "checks"), &t->check, L->err);
        if (r < 0)
            return r;
        t->line = config_line(L->doc, member(obj, "user"));
    }
    if (!user[0])
        return config_error(L->doc, obj, L->err, "a turn's user prompt must not be empty");
    t->max_tokens = rs.max_tokens;
    t->has_temperature = rs.has_temperature;
    t->temperature = rs.temperature;
    t->thinking = rs.thinking;
    return dup_into(L, user, &t->user);
}

static int parse_agent(struct loader *L, const cJSON *obj, struct scenario_agent *a)
{
    static const char *const keys[] = {"label",       "role",     "api",    "system",
                                       "turns",       "user",     "checks", "max_tokens",
                                       "temperature", "thinking", NULL};
    const char *label = obj->string, *role = NULL, *system = NULL;
    int r = check_name(L, obj, "agent", obj->string);
    if (r == 0)
        r = config_check_keys(L->doc, obj, keys, L->err);
    if (r == 0)
        r = get_nonempty(L, obj, "label", false, &label);
    if (r == 0)
        r = config_get_string(L->doc, obj, "role", false, &role, L->err);
    if (r == 0)
        r = get_nonempty(L, obj, "system", false, &system);
    if (r == 0)
        r = dup_into(L, obj->string, &a->name);
    if (r == 0)
        r = dup_into(L, label, &a->label);
    if (r < 0)
        return r;
    a->role = SCENARIO_ROLE_SIDE;
    if (role && strcmp(role, "primary") == 0) {
        if (L->primary)
            return config_error(L->doc, member(obj, "role"), L->err,
                                "only one agent can be primary; '%s' (line %d) already is",
                                L->primary, L->primary_line);
        a->role = SCENARIO_ROLE_PRIMARY;
        L->primary = a->name;
        L->primary_line = config_line(L->doc, member(obj, "role"));
    } else if (role && strcmp(role, "side") != 0) {
        return config_error(L->doc, member(obj, "role"), L->err,
                            "'role' must be primary or side, not '%.80s'", role);
    }
    a->api = L->api;
    r = parse_api(L, obj, &a->api);
    if (r < 0)
        return r;
    if (system) {
        r = dup_into(L, system, &a->system);
        if (r < 0)
            return r;
        a->system_line = config_line(L->doc, member(obj, "system"));
    }
    struct request_settings rs = {L->max_tokens, L->has_temperature, L->temperature, L->thinking};
    r = parse_settings(L, obj, &rs);
    if (r < 0)
        return r;

    const cJSON *turns = member(obj, "turns"), *user = member(obj, "user");
    const cJSON *checks = member(obj, "checks");
    if (turns && user)
        return config_error(L->doc, user, L->err,
                            "agent '%s' has both 'turns' and 'user': 'user' is the shorthand "
                            "for a single turn",
                            a->name);
    if (!turns && !user)
        return config_error(L->doc, obj, L->err, "agent '%s' needs 'turns' or 'user'", a->name);
    if (turns) {
        if (checks)
            return config_error(L->doc, checks, L->err,
                                "agent '%s' has 'turns': put 'checks' in each turn", a->name);
        if (!cJSON_IsArray(turns) || cJSON_GetArraySize(turns) == 0)
            return config_error(L->doc, turns, L->err, "'turns' must be a non-empty list");
        size_t n = (size_t)cJSON_GetArraySize(turns);
        if (n > SCENARIO_MAX_TURNS)
            return config_error(L->doc, turns, L->err, "more than %d turns", SCENARIO_MAX_TURNS);
        a->turns = calloc(n, sizeof(*a->turns));
        if (!a->turns)
            return oom(L);
        for (const cJSON *t = turns->child; t; t = t->next) {
            r = parse_turn(L, t, &rs, &a->turns[a->n_turns++]);
            if (r < 0)
                return r;
        }
        return 0;
    }
    /* Shorthand: user (+ checks) is one turn with the agent's settings. */
    if (!cJSON_IsString(user))
        return config_error(L->doc, user, L->err, "'user' must be a string");
    a->turns = calloc(1, sizeof(*a->turns));
    if (!a->turns)
        return oom(L);
    struct scenario_turn *t = &a->turns[a->n_turns++];
    r = parse_turn(L, user, &rs, t);
    if (r == 0 && checks)
        r = scenario_check_parse(L->doc, checks, &t->check, L->err);
    return r;
}

static int parse_agents(struct loader *L, const cJSON *agents)
{
    struct scenario *s = L->s;
    if (!cJSON_IsObject(agents))
        return config_error(L->doc, agents, L->err, "'agents' must be a mapping of name: agent");
    size_t n = (size_t)cJSON_GetArraySize(agents);
    if (n == 0)
        return config_error(L->doc, agents, L->err, "'agents' needs at least one agent");
    if (n > SCENARIO_MAX_AGENTS)
        return config_error(L->doc, agents, L->err, "more than %d agents", SCENARIO_MAX_AGENTS);
    s->agents = calloc(n, sizeof(*s->agents));
    if (!s->agents)
        return oom(L);
    for (const cJSON *a = agents->child; a; a = a->next) {
        int r = parse_agent(L, a, &s->agents[s->n_agents++]);
        if (r < 0)
            return r;
    }
    return 0;
}

static long agent_index(const struct scenario *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n_agents; i++)
        if (strlen(s->agents[i].name) == len && memcmp(s->agents[i].name, name, len) == 0)
            return (long)i;
    return -1;
}

/* Every reference in a template must resolve: known vars, known agents
 * other than the template's own, existing turns. */
static int check_template(struct loader *L, const struct scenario_agent *self, const char *text,
                          int line)
{
    struct scenario_ref ref;
    size_t pos = 0;
    char why[200], list[200];
    for (;;) {
        int r = scenario_ref_next(text, &pos, &ref, why, sizeof(why));
        if (r < 0)
            return err_line(L, line, "%s", why);
        if (r == 0)
            return 0;
        int rl = (int)ref.len;
        if (ref.kind == SCENARIO_REF_VAR) {
            if (scenario_find_var(L->s, ref.name))
                continue;
            name_list(list, sizeof(list), var_name_at, L->s->vars, L->s->n_vars);
            return err_line(L, line, "unknown var '%s' in %.*s (%s%s)", ref.name, rl, ref.start,
                            L->s->n_vars ? "vars: " : "no vars are defined", list);
        }
        long i = agent_index(L->s, ref.name, strlen(ref.name));
        if (i < 0) {
            name_list(list, sizeof(list), agent_name_at, L->s->agents, L->s->n_agents);
            return err_line(L, line, "unknown agent '%s' in %.*s (agents: %s)", ref.name, rl,
                            ref.start, list);
        }
        if (&L->s->agents[i] == self)
            /* Its earlier turns are already in its own conversation. */
            return err_line(L, line,
                            "agent '%s' cannot reference its own answers (%.*s): earlier turns "
                            "are already part of its conversation",
                            self->name, rl, ref.start);
        if (ref.turn > L->s->agents[i].n_turns)
            return err_line(L, line, "%.*s: agent '%s' has %zu turn%s", rl, ref.start, ref.name,
                            L->s->agents[i].n_turns, L->s->agents[i].n_turns == 1 ? "" : "s");
    }
}

static int check_templates(struct loader *L)
{
    for (size_t i = 0; i < L->s->n_agents; i++) {
        const struct scenario_agent *a = &L->s->agents[i];
        int r = a->system ? check_template(L, a, a->system, a->system_line) : 0;
        for (size_t t = 0; r == 0 && t < a->n_turns; t++)
            r = check_template(L, a, a->turns[t].user, a->turns[t].line);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- levels ---- */

/* Where each agent runs within one level: phase and position, -1 = not in it. */
struct slot_pos {
    int phase;
    int index;
};

/* An agent's prompts may only use answers that exist when it starts:
 * from an earlier phase, or from earlier in its own sequential phase. */
static int check_order(struct loader *L, const struct scenario_level *lv,
                       const struct slot_pos *pos, size_t ai, const cJSON *node)
{
    const struct scenario_agent *a = &L->s->agents[ai];
    for (size_t t = 0; t <= a->n_turns; t++) {
        const char *text = t == 0 ? a->system : a->turns[t - 1].user;
        struct scenario_ref ref;
        size_t p = 0;
        char why[200];
        while (text && scenario_ref_next(text, &p, &ref, why, sizeof(why)) > 0) {
            long bi = agent_index(L->s, ref.name, strlen(ref.name));
            if (ref.kind != SCENARIO_REF_AGENT || bi < 0)
                continue; /* check_templates has vetted the rest */
            const struct slot_pos *me = &pos[ai], *it = &pos[bi];
            const char *problem = NULL;
            if (it->phase < 0)
                problem = "does not run in this level";
            else if (it->phase > me->phase ||
                     (it->phase == me->phase && it->index > me->index &&
                      lv->phases[me->phase].kind == SCENARIO_PHASE_SEQUENTIAL))
                problem = "runs after it";
            else if (it->phase == me->phase &&
                     lv->phases[me->phase].kind == SCENARIO_PHASE_PARALLEL)
                problem = "runs in parallel with it (same phase)";
            if (problem)
                return config_error(L->doc, node, L->err,
                                    "level '%s': agent '%s' uses %.*s, but '%s' %s", lv->name,
                                    a->name, (int)ref.len, ref.start, ref.name, problem);
        }
    }
    return 0;
}

/* A list of agent names, or one name. */
static int parse_phase(struct loader *L, const cJSON *list, enum scenario_phase_kind kind,
                       struct scenario_level *lv, struct slot_pos *pos, const cJSON **nodes)
{
    int pi = (int)lv->n_phases;
    struct scenario_phase *ph = &lv->phases[lv->n_phases++];
    ph->kind = kind;
    if (!cJSON_IsString(list) && (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0))
        return config_error(L->doc, list, L->err, "expected a non-empty list of agent names");
    size_t n = cJSON_IsString(list) ? 1 : (size_t)cJSON_GetArraySize(list);
    if (n > SCENARIO_MAX_AGENTS)
        return config_error(L->doc, list, L->err, "more than %d agents", SCENARIO_MAX_AGENTS);
    ph->agents = calloc(n, sizeof(*ph->agents));
    if (!ph->agents)
        return oom(L);
    const cJSON *item = cJSON_IsString(list) ? list : list->child;
    for (; item && ph->n_agents < n; item = item->next) {
        if (!cJSON_IsString(item))
            return config_error(L->doc, item, L->err, "expected an agent name");
        long i = agent_index(L->s, item->valuestring, strlen(item->valuestring));
        if (i < 0) {
            char names[200];
            name_list(names, sizeof(names), agent_name_at, L->s->agents, L->s->n_agents);
            return config_error(L->doc, item, L->err, "unknown agent '%.80s' (agents: %s)",
                                item->valuestring, names);
        }
        if (pos[i].phase >= 0)
            return config_error(L->doc, item, L->err, "agent '%s' appears twice in this level",
                                item->valuestring);
        pos[i] = (struct slot_pos){pi, (int)ph->n_agents};
        nodes[i] = item;
        ph->agents[ph->n_agents++] = (size_t)i;
    }
    return 0;
}

static int parse_level(struct loader *L, const cJSON *obj, struct scenario_level *lv)
{
    static const char *const keys[] = {"concurrency", "name", "agents", "phases", NULL};
    struct slot_pos pos[SCENARIO_MAX_AGENTS];
    const cJSON *nodes[SCENARIO_MAX_AGENTS] = {0};
    for (size_t i = 0; i < SCENARIO_MAX_AGENTS; i++)
        pos[i] = (struct slot_pos){-1, -1};
    int r = config_check_keys(L->doc, obj, keys, L->err);
    if (r < 0)
        return r;
    const cJSON *agents = member(obj, "agents"), *phases = member(obj, "phases");
    if (agents && phases)
        return config_error(L->doc, phases, L->err,
                            "a level has 'agents' or 'phases', not both ('agents: [a, b]' is "
                            "'phases: [{parallel: [a, b]}]')");
    if (!agents && !phases)
        return config_error(L->doc, obj, L->err, "a level needs 'agents' or 'phases'");
    if (agents) {
        lv->phases = calloc(1, sizeof(*lv->phases));
        if (!lv->phases)
            return oom(L);
        r = parse_phase(L, agents, SCENARIO_PHASE_PARALLEL, lv, pos, nodes);
    } else {
        if (!cJSON_IsArray(phases) || cJSON_GetArraySize(phases) == 0)
            return config_error(L->doc, phases, L->err, "'phases' must be a non-empty list");
        size_t n = (size_t)cJSON_GetArraySize(phases);
        if (n > SCENARIO_MAX_PHASES)
            return config_error(L->doc, phases, L->err, "more than %d phases", SCENARIO_MAX_PHASES);
        lv->phases = calloc(n, sizeof(*lv->phases));
        if (!lv->phases)
            return oom(L);
        for (const cJSON *ph = phases->child; r == 0 && ph; ph = ph->next) {
            static const char *const pkeys[] = {"parallel", "sequential", NULL};
            r = config_check_keys(L->doc, ph, pkeys, L->err);
            if (r < 0)
                break;
            const cJSON *par = member(ph, "parallel"), *seq = member(ph, "sequential");
            if ((par != NULL) == (seq != NULL))
                return config_error(L->doc, ph, L->err,
                                    "a phase is either 'parallel: [...]' or 'sequential: [...]'");
            r = parse_phase(L, par ? par : seq,
                            par ? SCENARIO_PHASE_PARALLEL : SCENARIO_PHASE_SEQUENTIAL, lv, pos,
                            nodes);
        }
    }
    if (r < 0)
        return r;

    /* The table label: by default as many agents as ever run at once. */
    unsigned widest = 1;
    for (size_t i = 0; i < lv->n_phases; i++)
        if (lv->phases[i].kind == SCENARIO_PHASE_PARALLEL && lv->phases[i].n_agents > widest)
            widest = (unsigned)lv->phases[i].n_agents;
    uint64_t conc = widest;
    r = config_get_u64(L->doc, obj, "concurrency", 1, 1024, &conc, L->err);
    if (r < 0)
        return r;
    lv->concurrency = (unsigned)conc;

    /* YAML reads `name: 1` as a number; a level's name is text either way. */
    char name[SCENARIO_MAX_NAME + 1];
    const cJSON *nm = member(obj, "name");
    if (!nm) {
        snprintf(name, sizeof(name), "%u", lv->concurrency);
    } else if (cJSON_IsNumber(nm) && nm->valuedouble >= 0 && nm->valuedouble < 1e15 &&
               nm->valuedouble == (double)(long long)nm->valuedouble) {
        snprintf(name, sizeof(name), "%lld", (long long)nm->valuedouble);
    } else if (cJSON_IsString(nm) && nm->valuestring[0] &&
               strlen(nm->valuestring) <= SCENARIO_MAX_NAME && !strchr(nm->valuestring, ',')) {
        snprintf(name, sizeof(name), "%s", nm->valuestring);
    } else {
        /* Commas separate names in --levels. */
        return config_error(L->doc, nm, L->err,
                            "a level's 'name' must be 1 to %d characters without ','",
                            SCENARIO_MAX_NAME);
    }
    for (const struct scenario_level *o = L->s->levels; o < lv; o++)
        if (strcmp(o->name, name) == 0)
            return config_error(L->doc, nm ? nm : obj, L->err, "two levels are named '%s'%s", name,
                                nm ? "" : " (set 'name' to tell them apart)");
    r = dup_into(L, name, &lv->name);
    if (r < 0)
        return r;

    for (size_t i = 0; i < L->s->n_agents; i++) {
        if (pos[i].phase < 0)
            continue;
        r = check_order(L, lv, pos, i, nodes[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int parse_levels(struct loader *L, const cJSON *levels)
{
    struct scenario *s = L->s;
    if (!cJSON_IsArray(levels) || cJSON_GetArraySize(levels) == 0)
        return config_error(L->doc, levels, L->err, "'levels' must be a non-empty list");
    size_t n = (size_t)cJSON_GetArraySize(levels);
    if (n > SCENARIO_MAX_LEVELS)
        return config_error(L->doc, levels, L->err, "more than %d levels", SCENARIO_MAX_LEVELS);
    s->levels = calloc(n, sizeof(*s->levels));
    if (!s->levels)
        return oom(L);
    for (const cJSON *lv = levels->child; lv; lv = lv->next) {
        int r = parse_level(L, lv, &s->levels[s->n_levels++]);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- the whole file ---- */

static int require(struct loader *L, const cJSON *root, const char *key, const cJSON **ret)
{
    const cJSON *v = member(root, key);
    if (!v)
        return config_error(L->doc, root, L->err, "missing required key '%s'", key);
    *ret = v;
    return 0;
}

/* capacity.user as a mapping: a user is one run of an agentic trace. The
 * trace itself is read by bench (this module reads no trace). */
static int parse_trace_user(struct loader *L, const cJSON *u)
{
    static const char *const keys[] = {"trace",     "timing",  "speed", "isl_scale",
                                       "osl_scale", "max_isl", "api",   NULL};
    struct scenario_trace_user *t = &L->s->capacity.trace;
    const char *path = NULL, *timing = NULL;
    *t = (struct scenario_trace_user){.timing = AGENTIC_TIMING_THINK,
                                      .speed = 1,
                                      .isl_scale = 1,
                                      .osl_scale = 1,
                                      .api = SCENARIO_API_ANTHROPIC};
    int r = config_check_keys(L->doc, u, keys, L->err);
    if (r == 0)
        r = get_nonempty(L, u, "trace", true, &path);
    if (r == 0)
        r = config_get_string(L->doc, u, "timing", false, &timing, L->err);
    if (r == 0)
        r = config_get_double(L->doc, u, "speed", 0.001, 1e6, &t->speed, L->err);
    if (r == 0)
        r = config_get_double(L->doc, u, "isl_scale", 0.0001, 100, &t->isl_scale, L->err);
    if (r == 0)
        r = config_get_double(L->doc, u, "osl_scale", 0.0001, 100, &t->osl_scale, L->err);
    if (r == 0)
        r = config_get_u64(L->doc, u, "max_isl", 1, 100000000, &t->max_isl, L->err);
    if (r == 0)
        r = parse_api(L, u, &t->api);
    if (r < 0)
        return r;
    if (timing && agentic_timing_parse(timing, &t->timing) < 0)
        return config_error(L->doc, member(u, "timing"), L->err,
                            "'timing' must be original, think or none, not '%.80s'", timing);
    return resolve(L, path, &t->path);
}

/* `capacity:`: the objective (parsed now, so a typo stops the load), the
 * user (a level, or a trace), the search's limits. */
static int parse_capacity(struct loader *L, const cJSON *c)
{
    static const char *const keys[] = {"slo", "user", "max_users", "repetitions",
                                       "max_repetitions", NULL};
    struct scenario_capacity *cap = &L->s->capacity;
    const char *slo = NULL, *user = NULL;
    uint64_t max_users = 0, reps = 0, max_reps = 0;
    if (!c)
        return 0;
    if (!cJSON_IsObject(c))
        return config_error(L->doc, c, L->err, "'capacity' must be a mapping (slo, user, ...)");
    int r = config_check_keys(L->doc, c, keys, L->err);
    if (r == 0)
        r = get_nonempty(L, c, "slo", false, &slo);
    if (r == 0 && cJSON_IsObject(member(c, "user")))
        r = parse_trace_user(L, member(c, "user"));
    else if (r == 0)
        r = get_nonempty(L, c, "user", false, &user);
    if (r == 0)
        r = config_get_u64(L->doc, c, "max_users", 1, CAPACITY_MAX_USERS, &max_users, L->err);
    if (r == 0)
        r = config_get_u64(L->doc, c, "repetitions", 1, CAPACITY_MAX_REPS, &reps, L->err);
    if (r == 0)
        r = config_get_u64(L->doc, c, "max_repetitions", 1, CAPACITY_MAX_REPS, &max_reps, L->err);
    if (r < 0)
        return r;
    if (slo) {
        struct capacity_slo parsed;
        struct config_err why;
        if (capacity_slo_parse(slo, &parsed, &why) < 0)
            return config_error(L->doc, member(c, "slo"), L->err, "%s", why.msg);
        r = dup_into(L, slo, &cap->slo);
    }
    if (r == 0 && user) {
        if (!scenario_find_level(L->s, user))
            return config_error(L->doc, member(c, "user"), L->err, "capacity: no level '%s'",
                                user);
        r = dup_into(L, user, &cap->user);
    }
    if (r == 0 && reps && max_reps && max_reps < reps)
        return config_error(L->doc, member(c, "max_repetitions"), L->err,
                            "'max_repetitions' must be at least 'repetitions'");
    cap->max_users = (unsigned)max_users;
    cap->repetitions = (unsigned)reps;
    cap->max_repetitions = (unsigned)max_reps;
    return r;
}

int scenario_load(const char *path, struct scenario **ret, struct config_err *err)
{
    static const char *const keys[] = {
        "name",      "description", "repetitions", "warmup",  "pause",  "timeout", "seed",
        "responses", "vars",        "defaults",    "targets", "agents", "levels",  "capacity",
        NULL};
    struct loader L = {
        .err = err,
        .api = SCENARIO_API_OPENAI_CHAT,
        .max_tokens = SCENARIO_DEFAULT_MAX_TOKENS,
        .thinking = SCENARIO_THINKING_UNSET,
    };
    const cJSON *root, *targets = NULL, *agents = NULL, *levels = NULL, *cap;
    bool trace_user;
    struct scenario *s = calloc(1, sizeof(*s));
    int r = -ENOMEM;
    if (!s || !(s->path = strdup(path))) {
        snprintf(err->msg, sizeof(err->msg), "%s: out of memory", path);
        goto fail;
    }
    s->repetitions = SCENARIO_DEFAULT_REPETITIONS;
    s->warmup = SCENARIO_DEFAULT_WARMUP;
    s->pause = SCENARIO_DEFAULT_PAUSE;
    s->timeout = SCENARIO_DEFAULT_TIMEOUT;
    L.s = s;
    r = config_load_file(path, &L.doc, err);
    if (r < 0)
        goto fail;
    root = config_root(L.doc);
    /* A scenario whose capacity user is a trace needs no agents or levels. */
    cap = member(root, "capacity");
    trace_user = cJSON_IsObject(cap) && cJSON_IsObject(member(cap, "user"));
    agents = member(root, "agents");
    levels = member(root, "levels");
    r = config_check_keys(L.doc, root, keys, err);
    if (r == 0)
        r = parse_top(&L, root);
    if (r == 0)
        r = require(&L, root, "targets", &targets);
    if (r == 0 && !trace_user)
        r = require(&L, root, "agents", &agents);
    if (r == 0 && !trace_user)
        r = require(&L, root, "levels", &levels);
    if (r == 0)
        r = parse_vars(&L, member(root, "vars"));
    if (r == 0)
        r = parse_defaults(&L, member(root, "defaults"));
    if (r == 0)
        r = parse_targets(&L, targets);
    if (r == 0 && agents)
        r = parse_agents(&L, agents);
    if (r == 0)
        r = check_templates(&L);
    if (r == 0 && levels)
        r = parse_levels(&L, levels);
    if (r == 0)
        r = parse_capacity(&L, cap);
    if (r < 0)
        goto fail;
    config_free(L.doc);
    *ret = s;
    return 0;
fail:
    config_free(L.doc);
    scenario_free(s);
    return r;
}

void scenario_target_finish(struct scenario_target *t)
{
    free(t->name);
    free(t->label);
    free(t->url);
    free(t->profile);
    free(t->model);
    free(t->sweep_value);
}

void scenario_agent_finish(struct scenario_agent *a)
{
    free(a->name);
    free(a->label);
    free(a->system);
    for (size_t t = 0; t < a->n_turns; t++) {
        free(a->turns[t].user);
        scenario_check_free(a->turns[t].check);
    }
    free(a->turns);
}

void scenario_level_finish(struct scenario_level *lv)
{
    free(lv->name);
    for (size_t p = 0; p < lv->n_phases; p++)
        free(lv->phases[p].agents);
    free(lv->phases);
}

void scenario_free(struct scenario *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_vars; i++) {
        free(s->vars[i].name);
        free(s->vars[i].value);
    }
    for (size_t i = 0; i < s->n_targets; i++)
        scenario_target_finish(&s->targets[i]);
    for (size_t i = 0; i < s->n_agents; i++)
        scenario_agent_finish(&s->agents[i]);
    for (size_t i = 0; i < s->n_levels; i++)
        scenario_level_finish(&s->levels[i]);
    if (s->user_level)
        scenario_level_finish(s->user_level);
    free(s->user_level);
    free(s->capacity.slo);
    free(s->capacity.user);
    free(s->capacity.trace.path);
    free(s->sweep_key);
    free(s->vars);
    free(s->targets);
    free(s->agents);
    free(s->levels);
    free(s->path);
    free(s->name);
    free(s->description);
    free(s->responses);
    free(s);
}
