/* scenario: what the bench driver uses around a run: the reference
 * syntax and prompt expansion, lookups, and the command-line overrides
 * applied before it. */
#include "study/scenario.h"

#include <errno.h>
#include <math.h>
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
    if (target->thinking_forced != SCENARIO_THINKING_UNSET)
        return target->thinking_forced;
    return t->thinking != SCENARIO_THINKING_UNSET ? t->thinking : target->thinking;
}

uint32_t scenario_max_tokens(const struct scenario_turn *t, const struct scenario_target *target)
{
    return target->max_tokens ? target->max_tokens : t->max_tokens;
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

/* --- sweeps: a copy of every target per value --- */

static const char *const sweep_keys = "thinking, max_tokens, slots, prefill_tps, decode_tps, "
                                      "batch_slowdown, jitter, ctx_size, target";

/* Sets value v of key on target t (a copy of the target called name); 0
 * or -EINVAL with the reason. */
static int sweep_set(struct scenario_target *t, const char *name, const char *key, const char *v,
                     struct config_err *err)
{
    static const struct {
        const char *key;
        double min, max;
    } sims[] = {{"slots", 1, 1024},           {"prefill_tps", 0.001, 1e9},
                {"decode_tps", 0.001, 1e7},   {"batch_slowdown", 0, 100},
                {"jitter", 0, 1},             {"ctx_size", 16, 1u << 30}};
    char *end;
    if (strcmp(key, "thinking") == 0) {
        if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0)
            t->thinking_forced = 1;
        else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0)
            t->thinking_forced = 0;
        else
            return fail_msg(err, "--sweep thinking: expected on or off, got '%s'", v);
        return 0;
    }
    double x = strtod(v, &end);
    if (end == v || *end)
        return fail_msg(err, "--sweep %s: expected a number, got '%s'", key, v);
    if (strcmp(key, "max_tokens") == 0) {
        if (!(x >= 1 && x <= 1000000) || x != floor(x))
            return fail_msg(err, "--sweep max_tokens: expected an integer from 1 to 1000000, got '%s'", v);
        t->max_tokens = (uint32_t)x;
        return 0;
    }
    for (size_t i = 0; i < sizeof(sims) / sizeof(sims[0]); i++) {
        if (strcmp(key, sims[i].key) != 0)
            continue;
        if (t->url)
            return fail_msg(err, "--sweep %s: target '%s' is a real server; %s is a simulator "
                                 "setting",
                            key, name, key);
        if (!(x >= sims[i].min && x <= sims[i].max) ||
            ((i == 0 || i == 5) && x != floor(x)))
            return fail_msg(err, "--sweep %s: '%s' is out of range (%g to %g)", key, v,
                            sims[i].min, sims[i].max);
        switch (i) {
        case 0: t->sim.slots = (unsigned)x; break;
        case 1: t->sim.prefill_tps = x; break;
        case 2: t->sim.decode_tps = x; break;
        case 3: t->sim.batch_slowdown = x; break;
        case 4: t->sim.jitter = x; break;
        default: t->sim.ctx_size = (uint32_t)x; break;
        }
        return 0;
    }
    return fail_msg(err, "--sweep: unknown setting '%s' (settings: %s)", key, sweep_keys);
}

/* A copy of t for value v: its own strings, named NAME-V (V made plain). */
static int sweep_copy(const struct scenario_target *t, const char *key, const char *v,
                      struct scenario_target *ret, struct config_err *err)
{
    struct scenario_target c = *t;
    char name[2 * SCENARIO_MAX_NAME + 2];
    /* NAME-V within the name limit: the end of NAME gives way. */
    size_t lv = strlen(v), ln = strlen(t->name);
    if (ln + 1 + lv > SCENARIO_MAX_NAME)
        ln = SCENARIO_MAX_NAME - 1 - lv;
    snprintf(name, sizeof(name), "%.*s-%s", (int)ln, t->name, v);
    for (char *p = name; *p; p++)
        if (!scenario_ref_name_char(*p))
            *p = '_';
    const char *base = t->label ? t->label : t->name;
    size_t len = strlen(base) + strlen(key) + lv + 5;
    c.name = strdup(name);
    c.label = malloc(len);
    if (c.label)
        snprintf(c.label, len, "%s (%s=%s)", base, key, v);
    c.url = t->url ? strdup(t->url) : NULL;
    c.profile = t->profile ? strdup(t->profile) : NULL;
    c.model = t->model ? strdup(t->model) : NULL;
    c.sweep_value = strdup(v);
    if (!c.name || !c.label || !c.sweep_value || (t->url && !c.url) ||
        (t->profile && !c.profile) || (t->model && !c.model)) {
        scenario_target_finish(&c);
        fail_msg(err, "out of memory");
        return -ENOMEM;
    }
    int r = sweep_set(&c, t->name, key, v, err);
    if (r < 0) {
        scenario_target_finish(&c);
        return r;
    }
    *ret = c;
    return 0;
}

int scenario_apply_sweep(struct scenario *s, const char *sweep, struct config_err *err)
{
    char key[32], values[SCENARIO_MAX_SWEEP][SCENARIO_MAX_NAME + 1];
    size_t nv = 0;
    const char *eq = strchr(sweep, '=');
    if (!eq || eq == sweep || (size_t)(eq - sweep) >= sizeof(key) || !eq[1])
        return fail_msg(err, "--sweep expects KEY=V1,V2,... (e.g. slots=2,3,4), got '%.100s'", sweep);
    snprintf(key, sizeof(key), "%.*s", (int)(eq - sweep), sweep);
    for (const char *p = eq + 1; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n == 0 || n > SCENARIO_MAX_NAME)
            return fail_msg(err, "--sweep %s: values are 1 to %d characters, comma-separated", key,
                            SCENARIO_MAX_NAME);
        if (nv == SCENARIO_MAX_SWEEP)
            return fail_msg(err, "--sweep %s: at most %d values", key, SCENARIO_MAX_SWEEP);
        snprintf(values[nv++], sizeof(values[0]), "%.*s", (int)n, p);
        p = comma ? comma + 1 : p + strlen(p);
        if (comma && !*p)
            return fail_msg(err, "--sweep %s: a value is missing after the last ','", key);
    }
    if (strcmp(key, "target") == 0) {
        /* The values are targets: those run, in the sweep's order. */
        char list[SCENARIO_MAX_SWEEP * (SCENARIO_MAX_NAME + 1)];
        size_t n = 0;
        for (size_t i = 0; i < nv; i++)
            n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? "," : "", values[i]);
        bool keep[SCENARIO_MAX_TARGETS] = {0};
        int r = pick(s, false, list, keep, err);
        if (r < 0)
            return r;
        struct scenario_target kept[SCENARIO_MAX_TARGETS];
        size_t k = 0;
        for (size_t i = 0; i < nv; i++) {
            size_t t = find_named(s, false, values[i], strlen(values[i]));
            if (!keep[t])
                return fail_msg(err, "--sweep target: '%s' twice", values[i]);
            keep[t] = false;
            kept[k++] = s->targets[t];
        }
        char *names[SCENARIO_MAX_TARGETS];
        for (size_t i = 0; i < k; i++) {
            names[i] = strdup(kept[i].name);
            if (!names[i]) {
                while (i > 0)
                    free(names[--i]);
                fail_msg(err, "out of memory");
                return -ENOMEM;
            }
        }
        for (size_t i = 0; i < k; i++) {
            free(kept[i].sweep_value);
            kept[i].sweep_value = names[i];
        }
        for (size_t i = 0; i < s->n_targets; i++) {
            bool used = false;
            for (size_t j = 0; j < k; j++)
                used = used || kept[j].name == s->targets[i].name;
            if (!used)
                scenario_target_finish(&s->targets[i]);
        }
        memcpy(s->targets, kept, k * sizeof(*kept));
        s->n_targets = k;
    } else {
        if (s->n_targets * nv > SCENARIO_MAX_TARGETS)
            return fail_msg(err, "--sweep %s: %zu targets x %zu values is more than %d targets",
                            key, s->n_targets, nv, SCENARIO_MAX_TARGETS);
        struct scenario_target *copies = calloc(s->n_targets * nv, sizeof(*copies));
        if (!copies) {
            fail_msg(err, "out of memory");
            return -ENOMEM;
        }
        size_t n = 0;
        int r = 0;
        for (size_t t = 0; t < s->n_targets && r == 0; t++)
            for (size_t v = 0; v < nv && r == 0; v++) {
                r = sweep_copy(&s->targets[t], key, values[v], &copies[n], err);
                for (size_t j = 0; r == 0 && j < n; j++)
                    if (strcmp(copies[j].name, copies[n].name) == 0) {
                        scenario_target_finish(&copies[n]);
                        r = fail_msg(err, "--sweep %s: '%s' twice (or two values that read the "
                                          "same in a target's name)", key, values[v]);
                    }
                if (r == 0)
                    n++;
            }
        if (r < 0) {
            for (size_t j = 0; j < n; j++)
                scenario_target_finish(&copies[j]);
            free(copies);
            return r;
        }
        for (size_t t = 0; t < s->n_targets; t++)
            scenario_target_finish(&s->targets[t]);
        free(s->targets);
        s->targets = copies;
        s->n_targets = n;
    }
    free(s->sweep_key);
    s->sweep_key = strdup(key);
    if (!s->sweep_key) {
        fail_msg(err, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* --- capacity runs: levels of n users --- */

/* The user level becomes *tmpl (taking what it owns), the levels are
 * freed, but for `keep` (whose insides tmpl took), and room is made for
 * the counts the search tries. 0 or -ENOMEM (nothing changed). */
static int make_user_level(struct scenario *s, const struct scenario_level *tmpl,
                           const struct scenario_level *keep, struct config_err *err)
{
    struct scenario_level *user = malloc(sizeof(*user));
    struct scenario_level *levels = calloc(SCENARIO_MAX_LEVELS, sizeof(*levels));
    if (!user || !levels) {
        free(user);
        free(levels);
        fail_msg(err, "out of memory");
        return -ENOMEM;
    }
    *user = *tmpl;
    for (size_t i = 0; i < s->n_levels; i++)
        if (&s->levels[i] != keep)
            scenario_level_finish(&s->levels[i]);
    free(s->levels);
    s->levels = levels;
    s->n_levels = 0;
    s->user_level = user;
    return 0;
}

int scenario_capacity_begin(struct scenario *s, const char *user, struct config_err *err)
{
    const struct scenario_level *l = user ? scenario_find_level(s, user) : &s->levels[0];
    if (!l) {
        size_t n = strlen(user);
        return unknown_name(s, true, user, n, err);
    }
    return make_user_level(s, l, l, err);
}

int scenario_capacity_trace(struct scenario *s, const char *const *kinds, size_t n,
                            struct config_err *err)
{
    if (n == 0 || n > SCENARIO_MAX_AGENTS)
        return fail_msg(err, "a trace user has 1 to %d kinds of session, not %zu",
                        SCENARIO_MAX_AGENTS, n);
    struct scenario_agent *agents = calloc(n, sizeof(*agents));
    struct scenario_level l = {.concurrency = 1, .name = strdup("user")};
    l.phases = calloc(1, sizeof(*l.phases));
    if (l.phases)
        l.phases[l.n_phases++] = (struct scenario_phase){.kind = SCENARIO_PHASE_PARALLEL,
                                                         .agents = calloc(n, sizeof(size_t))};
    bool ok = agents && l.name && l.phases && l.phases[0].agents;
    for (size_t i = 0; ok && i < n; i++) {
        /* One turn, never sent: it holds the kind's cells (turn 1). */
        struct scenario_agent *a = &agents[i];
        a->role = i == 0 ? SCENARIO_ROLE_PRIMARY : SCENARIO_ROLE_SIDE;
        a->api = s->capacity.trace.api;
        a->name = strdup(kinds[i]);
        a->label = strdup(kinds[i]);
        a->turns = calloc(1, sizeof(*a->turns));
        ok = a->name && a->label && a->turns;
        if (ok)
            a->turns[a->n_turns++].thinking = SCENARIO_THINKING_UNSET;
        l.phases[0].agents[l.phases[0].n_agents++] = i;
    }
    if (!ok)
        fail_msg(err, "out of memory");
    if (ok && make_user_level(s, &l, NULL, err) == 0) {
        for (size_t i = 0; i < s->n_agents; i++)
            scenario_agent_finish(&s->agents[i]);
        free(s->agents);
        s->agents = agents;
        s->n_agents = n;
        return 0;
    }
    for (size_t i = 0; agents && i < n; i++)
        scenario_agent_finish(&agents[i]);
    free(agents);
    scenario_level_finish(&l);
    return -ENOMEM;
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
