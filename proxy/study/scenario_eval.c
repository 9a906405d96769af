/* scenario: what the bench driver uses around a run: the reference
 * syntax and prompt expansion, lookups, and the command-line overrides
 * applied before it. */
#include "study/scenario.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "study/scenario_int.h"
#include "wire/url.h"

/* ---- references ---- */

bool scenario_ref_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Reads a name at p (up to end); 0 or -EINVAL. */
static int read_name(const char **p, const char *end, char *name)
{
    size_t n = 0;
    while (*p < end && scenario_ref_name_char(**p)) {
        if (n == SCENARIO_MAX_NAME)
            return -EINVAL;
        name[n++] = *(*p)++;
    }
    name[n] = '\0';
    return n ? 0 : -EINVAL;
}

static bool word(const char **p, const char *end, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(end - *p) < n || memcmp(*p, w, n) != 0)
        return false;
    *p += n;
    return true;
}

int scenario_ref_next(const char *text, size_t *pos, struct scenario_ref *ret, char *why,
                      size_t whylen)
{
    const char *open = strstr(text + *pos, "{{");
    if (!open)
        return 0;
    /* Every "{{" is a reference, so a typo cannot pass as literal text; a
     * literal "{{" can live in a var ({{vars.NAME}} is not re-expanded). */
    const char *close = strstr(open + 2, "}}");
    if (!close) {
        snprintf(why, whylen, "unclosed '{{' in '%.40s'", open);
        return -EINVAL;
    }
    struct scenario_ref r = {.start = open, .len = (size_t)(close + 2 - open)};
    const char *p = open + 2, *end = close;
    while (p < end && *p == ' ')
        p++;
    while (end > p && end[-1] == ' ')
        end--;
    bool ok = false;
    if (word(&p, end, "vars.")) {
        r.kind = SCENARIO_REF_VAR;
        ok = read_name(&p, end, r.name) == 0 && p == end;
    } else if (word(&p, end, "agents.")) {
        r.kind = SCENARIO_REF_AGENT;
        ok = read_name(&p, end, r.name) == 0 && word(&p, end, ".");
        if (ok && word(&p, end, "last")) {
            snprintf(r.which, sizeof(r.which), "last");
        } else if (ok && word(&p, end, "all")) {
            snprintf(r.which, sizeof(r.which), "all");
        } else if (ok && word(&p, end, "turn") && p < end && *p >= '1' && *p <= '9' &&
                   end - p <= 3) {
            while (p < end && *p >= '0' && *p <= '9')
                r.turn = r.turn * 10 + (unsigned)(*p++ - '0');
            snprintf(r.which, sizeof(r.which), "turn%u", r.turn);
        } else {
            ok = false;
        }
        ok = ok && p == end;
    }
    if (!ok) {
        snprintf(why, whylen,
                 "bad reference '%.*s' (expected {{vars.NAME}} or "
                 "{{agents.NAME.last}}, .all or .turnN)",
                 r.len > 80 ? 80 : (int)r.len, open);
        return -EINVAL;
    }
    *pos = (size_t)(close + 2 - text);
    *ret = r;
    return 1;
}

/* ---- expansion ---- */

struct buf {
    char *data; /* owned */
    size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (n > SCENARIO_MAX_EXPANDED - b->len)
        return -E2BIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int scenario_expand(const char *text, const struct scenario *s, scenario_lookup_cb lookup,
                    void *ctx, char **ret)
{
    struct buf b = {0};
    struct scenario_ref ref;
    size_t pos = 0, done = 0;
    char why[160];
    int r = buf_add(&b, "", 0); /* an empty template still gives a string */
    while (r == 0) {
        r = scenario_ref_next(text, &pos, &ref, why, sizeof(why));
        if (r <= 0)
            break;
        r = buf_add(&b, text + done, (size_t)(ref.start - (text + done)));
        done = pos;
        if (r < 0)
            break;
        const char *value = NULL;
        if (ref.kind == SCENARIO_REF_VAR) {
            const struct scenario_var *v = scenario_find_var(s, ref.name);
            if (!v) {
                r = -EINVAL;
                break;
            }
            value = v->value;
        } else if (!scenario_find_agent(s, ref.name)) {
            r = -EINVAL;
            break;
        } else if (lookup) {
            value = lookup(ctx, ref.name, ref.which);
        }
        if (value)
            r = buf_add(&b, value, strlen(value));
    }
    if (r == 0)
        r = buf_add(&b, text + done, strlen(text + done));
    if (r < 0)
        goto fail;
    *ret = b.data;
    return 0;
fail:
    free(b.data);
    return r;
}

/* ---- lookups and names ---- */

const struct scenario_target *scenario_find_target(const struct scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_targets; i++)
        if (strcmp(s->targets[i].name, name) == 0)
            return &s->targets[i];
    return NULL;
}

const struct scenario_agent *scenario_find_agent(const struct scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_agents; i++)
        if (strcmp(s->agents[i].name, name) == 0)
            return &s->agents[i];
    return NULL;
}

const struct scenario_level *scenario_find_level(const struct scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_levels; i++)
        if (strcmp(s->levels[i].name, name) == 0)
            return &s->levels[i];
    return NULL;
}

const struct scenario_var *scenario_find_var(const struct scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_vars; i++)
        if (strcmp(s->vars[i].name, name) == 0)
            return &s->vars[i];
    return NULL;
}

int scenario_thinking(const struct scenario_turn *t, const struct scenario_target *target)
{
    return t->thinking != SCENARIO_THINKING_UNSET ? t->thinking : target->thinking;
}

const char *scenario_api_name(enum scenario_api api)
{
    return api == SCENARIO_API_ANTHROPIC ? "anthropic" : "openai-chat";
}

const char *scenario_role_name(enum scenario_role role)
{
    return role == SCENARIO_ROLE_PRIMARY ? "primary" : "side";
}

const char *scenario_phase_kind_name(enum scenario_phase_kind kind)
{
    return kind == SCENARIO_PHASE_SEQUENTIAL ? "sequential" : "parallel";
}

/* ---- overrides ---- */

static int fail_msg(struct config_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail_msg(struct config_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Overrides pick levels and targets by name; the two lists differ only
 * in where the names are. */
static size_t n_named(const struct scenario *s, bool levels)
{
    return levels ? s->n_levels : s->n_targets;
}

static const char *name_at(const struct scenario *s, bool levels, size_t i)
{
    return levels ? s->levels[i].name : s->targets[i].name;
}

/* The index of the level or target called name[0..len), or n_named. */
static size_t find_named(const struct scenario *s, bool levels, const char *name, size_t len)
{
    size_t i;
    for (i = 0; i < n_named(s, levels); i++)
        if (strlen(name_at(s, levels, i)) == len && memcmp(name_at(s, levels, i), name, len) == 0)
            break;
    return i;
}

/* "unknown level 'x' (levels: 1, 2, 3)", the list bounded. */
static int unknown_name(const struct scenario *s, bool levels, const char *name, size_t len,
                        struct config_err *err)
{
    char known[300];
    size_t used = 0;
    known[0] = '\0';
    for (size_t i = 0; i < n_named(s, levels); i++) {
        int w = snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "",
                         name_at(s, levels, i));
        if (w < 0 || (size_t)w >= sizeof(known) - used)
            break;
        used += (size_t)w;
    }
    const char *what = levels ? "level" : "target";
    return fail_msg(err, "unknown %s '%.*s' (%ss: %s)", what, (int)(len > 80 ? 80 : len), name,
                    what, known);
}

/* Marks the levels (or targets) named in a comma-separated list. */
static int pick(const struct scenario *s, bool levels, const char *list, bool *keep,
                struct config_err *err)
{
    size_t picked = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *q = p, *e = p + n;
        while (q < e && *q == ' ')
            q++;
        while (e > q && e[-1] == ' ')
            e--;
        if (e > q) {
            size_t i = find_named(s, levels, q, (size_t)(e - q));
            if (i == n_named(s, levels))
                return unknown_name(s, levels, q, (size_t)(e - q), err);
            if (!keep[i])
                picked++;
            keep[i] = true;
        }
        p += comma ? n + 1 : n;
    }
    if (!picked)
        return fail_msg(err, "no %s named in '%.80s'", levels ? "level" : "target", list);
    return 0;
}

/* NAME=FILE.yaml (or .yml, .json) is a simulator profile, not a URL. */
static bool is_profile(const char *v)
{
    size_t n = strlen(v);
    if (strstr(v, "://"))
        return false;
    return (n > 5 && strcmp(v + n - 5, ".yaml") == 0) || (n > 4 && strcmp(v + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(v + n - 5, ".json") == 0);
}

int scenario_apply_overrides(struct scenario *s, const struct scenario_overrides *o,
                             struct config_err *err)
{
    bool keep_level[SCENARIO_MAX_LEVELS] = {0}, keep_target[SCENARIO_MAX_TARGETS] = {0};
    char *urls[SCENARIO_MAX_TARGETS] = {0}; /* owned until committed */
    char *profiles[SCENARIO_MAX_TARGETS] = {0}; /* owned until committed: profile files */
    struct sim_profile sims[SCENARIO_MAX_TARGETS];
    int r = 0;

    /* Check everything first, so a bad override leaves s as it was. */
    if (o->repetitions > 10000) {
        r = fail_msg(err, "repetitions must be from 1 to 10000");
        goto fail;
    }
    if (o->levels) {
        r = pick(s, true, o->levels, keep_level, err);
        if (r < 0)
            goto fail;
    }
    if (o->only_targets) {
        r = pick(s, false, o->only_targets, keep_target, err);
        if (r < 0)
            goto fail;
    }
    for (size_t i = 0; i < o->n_targets; i++) {
        const char *spec = o->targets[i];
        const char *eq = strchr(spec, '=');
        if (!eq || eq == spec) {
            r = fail_msg(err, "--target expects NAME=URL or NAME=PROFILE.yaml, got '%.200s'", spec);
            goto fail;
        }
        size_t t = find_named(s, false, spec, (size_t)(eq - spec));
        if (t == s->n_targets) {
            r = unknown_name(s, false, spec, (size_t)(eq - spec), err);
            goto fail;
        }
        struct url_target ut;
        struct config_err why;
        char *u = NULL;
        /* The last NAME=... for a target wins. */
        free(urls[t]);
        free(profiles[t]);
        urls[t] = profiles[t] = NULL;
        if (is_profile(eq + 1)) {
            if (sim_profile_load(eq + 1, &sims[t], &why) < 0) {
                r = fail_msg(err, "target '%s': %s", s->targets[t].name, why.msg);
                goto fail;
            }
            u = profiles[t] = strdup(eq + 1);
        } else {
            if (url_parse(eq + 1, &ut, &why) < 0) {
                r = fail_msg(err, "target '%s': bad url %s", s->targets[t].name, why.msg);
                goto fail;
            }
            u = urls[t] = strdup(ut.url);
        }
        if (!u) {
            fail_msg(err, "out of memory");
            r = -ENOMEM;
            goto fail;
        }
    }

    if (o->repetitions)
        s->repetitions = o->repetitions;
    for (size_t a = 0; o->max_tokens && a < s->n_agents; a++)
        for (size_t t = 0; t < s->agents[a].n_turns; t++)
            if (s->agents[a].turns[t].max_tokens > o->max_tokens)
                s->agents[a].turns[t].max_tokens = o->max_tokens;
    for (size_t t = 0; t < s->n_targets; t++) {
        if (urls[t]) {
            free(s->targets[t].url);
            s->targets[t].url = urls[t];
            urls[t] = NULL;
        }
        if (profiles[t]) {
            /* The simulator with this profile, whatever the file said. */
            free(s->targets[t].url);
            free(s->targets[t].profile);
            s->targets[t].url = NULL;
            s->targets[t].profile = profiles[t];
            s->targets[t].sim = sims[t];
            profiles[t] = NULL;
        }
    }
    if (o->levels) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_levels; i++) {
            if (keep_level[i])
                s->levels[n++] = s->levels[i];
            else
                scenario_level_finish(&s->levels[i]);
        }
        s->n_levels = n;
    }
    if (o->only_targets) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_targets; i++) {
            if (keep_target[i])
                s->targets[n++] = s->targets[i];
            else
                scenario_target_finish(&s->targets[i]);
        }
        s->n_targets = n;
    }
    return 0;
fail:
    for (size_t t = 0; t < SCENARIO_MAX_TARGETS; t++) {
        free(urls[t]);
        free(profiles[t]);
    }
    return r;
}

/* --- capacity runs: levels of n users --- */

int scenario_capacity_begin(struct scenario *s, const char *user, struct config_err *err)
{
    const struct scenario_level *l = user ? scenario_find_level(s, user) : &s->levels[0];
    if (!l) {
        size_t n = strlen(user);
        return unknown_name(s, true, user, n, err);
    }
    struct scenario_level *tmpl = malloc(sizeof(*tmpl));
    struct scenario_level *levels = calloc(SCENARIO_MAX_LEVELS, sizeof(*levels));
    if (!tmpl || !levels) {
        free(tmpl);
        free(levels);
        fail_msg(err, "out of memory");
        return -ENOMEM;
    }
    *tmpl = *l;
    for (size_t i = 0; i < s->n_levels; i++)
        if (&s->levels[i] != l)
            scenario_level_finish(&s->levels[i]);
    free(s->levels);
    s->levels = levels;
    s->n_levels = 0;
    s->user_level = tmpl;
    return 0;
}

int scenario_users_level(struct scenario *s, unsigned users, size_t *ret)
{
    for (size_t i = 0; i < s->n_levels; i++) {
        if (s->levels[i].users == users) {
            *ret = i;
            return 0;
        }
    }
    if (!s->user_level || s->n_levels == SCENARIO_MAX_LEVELS)
        return -E2BIG;
    const struct scenario_level *t = s->user_level;
    struct scenario_level l = {.users = users, .concurrency = users * t->concurrency};
    char name[16];
    snprintf(name, sizeof(name), "%u", users);
    l.name = strdup(name);
    l.phases = calloc(t->n_phases, sizeof(*l.phases));
    if (!l.name || !l.phases)
        goto fail;
    for (size_t p = 0; p < t->n_phases; p++, l.n_phases++) {
        struct scenario_phase *ph = &l.phases[p];
        ph->kind = t->phases[p].kind;
        ph->agents = malloc(t->phases[p].n_agents * sizeof(*ph->agents));
        if (!ph->agents)
            goto fail;
        memcpy(ph->agents, t->phases[p].agents, t->phases[p].n_agents * sizeof(*ph->agents));
        ph->n_agents = t->phases[p].n_agents;
    }
    s->levels[s->n_levels] = l;
    *ret = s->n_levels++;
    return 0;
fail:
    scenario_level_finish(&l);
    return -ENOMEM;
}

void scenario_sort_levels(struct scenario *s, size_t map[SCENARIO_MAX_LEVELS])
{
    struct scenario_level sorted[SCENARIO_MAX_LEVELS];
    bool taken[SCENARIO_MAX_LEVELS] = {0};
    for (size_t k = 0; k < s->n_levels; k++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < s->n_levels; i++)
            if (!taken[i] && (best == SIZE_MAX || s->levels[i].users < s->levels[best].users))
                best = i;
        taken[best] = true;
        map[best] = k;
        sorted[k] = s->levels[best];
    }
    memcpy(s->levels, sorted, s->n_levels * sizeof(*sorted));
}
