/* scenario: multi-agent benchmark scenarios (docs/bench.md). A scenario
 * file (YAML or JSON) names targets (real servers or simulator profiles),
 * agents (a system prompt and one or more user turns with answer checks)
 * and levels (which agents run together, in parallel and sequential
 * phases). scenario_load reads and validates it completely, so a run never
 * fails half-way on a typo: every error is "file:line: message".
 *
 * Pure: besides reading the scenario file (and parsing its responses file,
 * to report a broken one before the run) there is no I/O and no logging.
 * A loaded scenario is plain data; only scenario_apply_overrides changes
 * it, before the run. The bench driver expands prompts with
 * scenario_expand and judges answers with scenario_check. */
#ifndef TOKENTAP_SCENARIO_H
#define TOKENTAP_SCENARIO_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "load/agentic_plan.h"
#include "report/results.h"
#include "sim/sim_profile.h"

struct config_err;

/* Limits: a scenario is written by hand, so these are generous for that
 * and keep every loop and every result list bounded. */
#define SCENARIO_MAX_TARGETS 32
#define SCENARIO_MAX_AGENTS 64
#define SCENARIO_MAX_LEVELS 64
#define SCENARIO_MAX_PHASES 32     /* per level */
#define SCENARIO_MAX_TURNS RESULTS_MAX_TURNS /* per agent */
#define SCENARIO_MAX_VARS 256
#define SCENARIO_MAX_NAME 64       /* bytes in a target, agent, var or level name */
#define SCENARIO_MAX_KEYWORDS 32   /* per check, all + any together; none separately */
#define SCENARIO_MAX_KEYWORD 256   /* bytes in one keyword */
#define SCENARIO_MAX_REGEX 1024    /* bytes in a check's regex */
#define SCENARIO_MAX_EXPANDED (8u * 1024 * 1024) /* bytes of one expanded prompt */

#define SCENARIO_DEFAULT_REPETITIONS 5
#define SCENARIO_DEFAULT_WARMUP 1
#define SCENARIO_DEFAULT_PAUSE (1 * USEC_PER_SEC)
#define SCENARIO_DEFAULT_TIMEOUT (120 * USEC_PER_SEC)
#define SCENARIO_DEFAULT_MAX_TOKENS 512

enum scenario_api {
    SCENARIO_API_OPENAI_CHAT, /* POST /v1/chat/completions */
    SCENARIO_API_ANTHROPIC,   /* POST /v1/messages */
};

enum scenario_role {
    SCENARIO_ROLE_SIDE,    /* side-task results table */
    SCENARIO_ROLE_PRIMARY, /* primary task performance table (at most one agent) */
};

/* What a check reads. */
enum scenario_read {
    SCENARIO_READ_CONTENT, /* the answer's content only */
    SCENARIO_READ_ALL,     /* content and reasoning */
};

enum scenario_phase_kind {
    SCENARIO_PHASE_PARALLEL,   /* all agents start together */
    SCENARIO_PHASE_SEQUENTIAL, /* one agent after the other */
};

/* Thinking, as a tri-state: -1 not set, 0 off, 1 on. */
#define SCENARIO_THINKING_UNSET (-1)

/* Checks on one answer. Keywords match case-insensitively as substrings. */
struct scenario_check {
    char **all;            /* owned (and each string): every one must appear */
    size_t n_all;
    char **any;            /* owned: at least one must appear (when n_any > 0) */
    size_t n_any;
    char **none;           /* owned: none may appear */
    size_t n_none;
    char *regex;           /* owned: the pattern as written, NULL = none */
    regex_t *re;           /* owned: compiled (REG_EXTENDED|REG_ICASE|REG_NOSUB), NULL = none */
    size_t min_length;     /* in characters (UTF-8 code points); 0 = no minimum */
    size_t max_length;     /* in characters; 0 = no maximum */
    enum scenario_read read;
};

/* The verdict on one answer. */
struct scenario_check_result {
    bool pass;
    /* Keywords of all/any that appeared, and those of all (and of any,
     * when none of them did) that did not: borrowed from the check, in
     * the check's order. The load limit makes these never overflow. */
    const char *found[SCENARIO_MAX_KEYWORDS];
    size_t n_found;
    const char *missing[SCENARIO_MAX_KEYWORDS];
    size_t n_missing;
    /* Why it failed besides missing keywords (a forbidden keyword, the
     * regex, the length), "; "-separated; "" when nothing else failed. */
    char reason[256];
};

/* One user turn of an agent; request settings are resolved at load
 * (turn, else agent, else defaults). */
struct scenario_turn {
    char *user;            /* owned: the prompt template ({{...}} references) */
    uint32_t max_tokens;
    bool has_temperature;
    double temperature;    /* sent only when has_temperature */
    int thinking;          /* SCENARIO_THINKING_UNSET: the target's setting */
    struct scenario_check *check; /* owned, NULL = the turn has no checks */
    int line;              /* where the turn's user text is, for messages */
};

struct scenario_agent {
    char *name;            /* owned */
    char *label;           /* owned: defaults to the name */
    enum scenario_role role;
    enum scenario_api api;
    char *system;          /* owned: template, NULL = no system prompt */
    int system_line;
    struct scenario_turn *turns; /* owned, n_turns >= 1 */
    size_t n_turns;
};

struct scenario_phase {
    enum scenario_phase_kind kind;
    size_t *agents;        /* owned: indexes into scenario.agents */
    size_t n_agents;
};

struct scenario_level {
    char *name;            /* owned: defaults to the concurrency as text */
    unsigned concurrency;  /* table label; defaults to the widest parallel phase */
    unsigned users;        /* capacity runs: copies of the user level run at once; 0 = a level of the file */
    struct scenario_phase *phases; /* owned, n_phases >= 1 */
    size_t n_phases;
};

struct scenario_target {
    char *name;            /* owned */
    char *label;           /* owned: defaults to the name */
    char *url;             /* owned: a real server; NULL = the simulator with `sim` */
    struct sim_profile sim; /* meaningful when url is NULL (docs/sim.md) */
    char *profile;         /* owned: the profile file `sim` was read from, NULL = inline */
    char *model;           /* owned: the request's "model", NULL = not set */
    int thinking;          /* SCENARIO_THINKING_UNSET, 0 or 1 */
    /* A sweep's value for this copy of a target (scenario_apply_sweep). */
    char *sweep_value;     /* owned: the value, NULL = not swept */
    int thinking_forced;   /* thinking on every turn, whatever it says; UNSET = no */
    uint32_t max_tokens;   /* every turn's max_tokens; 0 = the turns' */
    double vram_gb;        /* metadata, 0 = not given */
    uint64_t context;      /* metadata (tokens), 0 = not given */
};

/* capacity.user as a mapping: a user is one run of an agentic trace
 * (docs/bench.md#trace-users). */
struct scenario_trace_user {
    char *path;            /* owned: a trace or a directory of them, resolved against
                            * the scenario's directory; NULL = the user is a level */
    enum agentic_timing timing;
    double speed, isl_scale, osl_scale; /* as replay's --speed, --isl-scale, --osl-scale */
    uint64_t max_isl;      /* 0 = no limit */
    enum scenario_api api;
};

/* The `capacity:` block: what `bench --capacity` searches (docs/bench.md#capacity). */
struct scenario_capacity {
    char *slo;             /* owned: the objective's text (checked at load), NULL = none */
    char *user;            /* owned: the level whose agents are one user, NULL = the first */
    struct scenario_trace_user trace; /* or a trace, when trace.path */
    unsigned max_users;    /* 0 = bench's default */
    unsigned repetitions;  /* of every count tried; 0 = bench's default */
    unsigned max_repetitions; /* of the boundary counts; 0 = bench's default */
};

struct scenario_var {
    char *name;            /* owned */
    char *value;           /* owned */
};

struct scenario {
    char *path;            /* owned: the file as given to scenario_load */
    char *name;            /* owned */
    char *description;     /* owned, "" when not given */
    unsigned repetitions;
    unsigned warmup;       /* unrecorded requests per target before measuring */
    usec_t pause;          /* between levels */
    usec_t timeout;        /* per request */
    bool has_seed;
    uint64_t seed;         /* the requests' sampling seed, when has_seed */
    char *responses;       /* owned: canned answers for sim targets, resolved
                            * against the scenario's directory; NULL = none */
    struct scenario_var *vars;       /* owned */
    size_t n_vars;
    struct scenario_target *targets; /* owned, file order, n_targets >= 1 */
    size_t n_targets;
    struct scenario_agent *agents;   /* owned, file order, n_agents >= 1 (0 when the
                                      * capacity user is a trace and none are given) */
    size_t n_agents;
    struct scenario_level *levels;   /* owned, file order, n_levels >= 1 (capacity runs:
                                      * the counts tried, 0 at first; 0 when the capacity
                                      * user is a trace and none are given) */
    size_t n_levels;
    struct scenario_capacity capacity;
    struct scenario_level *user_level; /* owned: capacity runs' template, NULL otherwise */
    char *sweep_key;       /* owned: what --sweep varies, NULL = no sweep */
};

/* Reads and validates the scenario at path. 0, or a negative errno with
 * "file:line: message" in err. The caller owns *ret (scenario_free). */
int scenario_load(const char *path, struct scenario **ret, struct config_err *err);

/* Frees s and everything it owns; NULL is a no-op. */
void scenario_free(struct scenario *s);

/* Lookups by name: borrowed from s, NULL when there is none. */
const struct scenario_target *scenario_find_target(const struct scenario *s, const char *name);
const struct scenario_agent *scenario_find_agent(const struct scenario *s, const char *name);
const struct scenario_level *scenario_find_level(const struct scenario *s, const char *name);
const struct scenario_var *scenario_find_var(const struct scenario *s, const char *name);

/* The thinking setting a turn's requests to target carry: a sweep's
 * value, else the turn's (from the turn, agent or defaults), else the
 * target's; may be SCENARIO_THINKING_UNSET (send nothing: the server
 * decides). */
int scenario_thinking(const struct scenario_turn *t, const struct scenario_target *target);

/* The max_tokens a turn's requests to target ask for: a sweep's value,
 * else the turn's. */
uint32_t scenario_max_tokens(const struct scenario_turn *t, const struct scenario_target *target);

/* Names used in results.json: "openai-chat"/"anthropic",
 * "primary"/"side", "parallel"/"sequential". */
const char *scenario_api_name(enum scenario_api api);
const char *scenario_role_name(enum scenario_role role);
const char *scenario_phase_kind_name(enum scenario_phase_kind kind);

/* Gives the text of an earlier answer: agent is an agent's name, which is
 * "last", "all" (its answers joined with blank lines) or "turnN" (N from
 * 1). Returns a string borrowed until scenario_expand returns, or NULL
 * when there is no such answer yet (it expands to ""). */
typedef const char *(*scenario_lookup_cb)(void *ctx, const char *agent, const char *which);

/* Expands the {{vars.NAME}} and {{agents.NAME.last|all|turnN}} references
 * of text (a system or user template). 0 with a malloc'd string in *ret;
 * -EINVAL for a malformed or unknown reference (load has already rejected
 * those in the scenario's own templates); -E2BIG past
 * SCENARIO_MAX_EXPANDED bytes; -ENOMEM. */
int scenario_expand(const char *text, const struct scenario *s, scenario_lookup_cb lookup,
                    void *ctx, char **ret);

/* Judges one answer against c (a turn's non-NULL check): content (NULL =
 * "") and reasoning (NULL = none; read only with read: all). Always fills
 * *ret; its keyword pointers borrow from c. */
void scenario_check(const struct scenario_check *c, const char *content, const char *reasoning,
                    struct scenario_check_result *ret);

/* Command-line changes, applied after load. Every field is optional. */
struct scenario_overrides {
    unsigned repetitions;          /* 0 = keep the file's */
    const char *levels;            /* borrowed: "1,3" keeps these levels (by name, in the
                                    * file's order); NULL = all */
    const char *const *targets;    /* borrowed: n_targets "NAME=URL" strings: that target
                                    * becomes a real server (its sim profile goes unused);
                                    * "NAME=FILE.yaml": the simulator with that profile */
    size_t n_targets;
    /* borrowed: "q4" keeps only these targets (by name, in the file's
     * order); NULL = all. One 24 GB GPU holds one quant at a time, so
     * comparing real servers takes one run per target (then compare). */
    const char *only_targets;
    uint32_t max_tokens;           /* 0 = keep; else no turn asks for more (small test models) */
};

/* Applies o to s: all or nothing. 0, or -EINVAL with a message in err
 * (an unknown level or target name lists the known ones; a bad URL says
 * why), or -ENOMEM; on error s is unchanged. NAME=URL applies before
 * only_targets, so both may name the same target. */
int scenario_apply_overrides(struct scenario *s, const struct scenario_overrides *o,
                             struct config_err *err);

/* Values one sweep takes. */
#define SCENARIO_MAX_SWEEP 16

/* --sweep KEY=V1,V2,...: every target becomes one copy per value (named
 * NAME-V, labelled "LABEL (KEY=V)"), so the run compares the values as it
 * compares targets. KEY is thinking (on/off), max_tokens, a simulator
 * setting (slots, prefill_tps, decode_tps, batch_slowdown, jitter,
 * ctx_size: every target must be simulated) or target (the values name
 * targets: those run, in that order). 0, or -EINVAL with the reason in err
 * (s is then unchanged), or -ENOMEM. */
int scenario_apply_sweep(struct scenario *s, const char *sweep, struct config_err *err);

/* Capacity runs: the level named user (NULL = the first) becomes the
 * template of one user, and the levels are emptied; scenario_users_level
 * makes them as the search goes. 0, or -EINVAL (no such level) with the
 * known names in err. */
int scenario_capacity_begin(struct scenario *s, const char *user, struct config_err *err);

/* Capacity runs whose user is a trace: the agents become the n kinds of
 * its sessions, each of one turn (kinds[0], the main agent, primary; the
 * sub-agent types side tasks), the user level one parallel phase of them
 * all, and the levels are emptied. The caller puts each request of a
 * trace user in its kind's agent, turn 1. 0, or -EINVAL (n is 0 or more
 * than SCENARIO_MAX_AGENTS) or -ENOMEM with the reason in err. */
int scenario_capacity_trace(struct scenario *s, const char *const *kinds, size_t n,
                            struct config_err *err);

/* The index of the level of `users` copies of the user level (named by
 * the count), made when it is new. 0, -E2BIG past SCENARIO_MAX_LEVELS or
 * -ENOMEM. */
int scenario_users_level(struct scenario *s, unsigned users, size_t *ret);

/* Orders the levels by users (capacity runs make them in the order the
 * search tries them); map[old index] = new index. */
void scenario_sort_levels(struct scenario *s, size_t map[SCENARIO_MAX_LEVELS]);

#endif
