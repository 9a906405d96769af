/* rewrite: the request filter. Rules from the config file's `rewrite:`
 * section say, per client (headers), route, method, model and upstream,
 * how to edit a JSON request body: drop blocks, delete, set, merge (RFC
 * 7386), turn thinking on or off in the way the route's API understands,
 * rename the model; and which upstream request headers to set or remove.
 * Body edits are jsonedit splices, so every byte no rule touches keeps the
 * client's spelling. docs/rewrite.md is the user's description.
 *
 * Two phases per request: at the head, rewrite_wants_body() says whether
 * the body must be held; with the whole body, rewrite_apply() edits it.
 * Pure: no I/O, no logging; rules are immutable after load and may be
 * shared by any number of requests. */
#ifndef TOKENTAP_REWRITE_H
#define TOKENTAP_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "tap/dialect.h"

struct cJSON;
struct config_doc;
struct config_err;
struct http_head;
struct rewrite_rules;

/* Limits, all checked at load (docs/rewrite.md, "Limits"). */
#define REWRITE_MAX_RULES 256
#define REWRITE_MAX_NAME 48           /* bytes of a rule name */
#define REWRITE_MAX_GLOB 256          /* bytes of one glob */
#define REWRITE_MAX_GLOBS 32          /* globs in one match list */
#define REWRITE_MAX_MATCH_HEADERS 16  /* header matches in one rule */
#define REWRITE_MAX_POINTER 1024      /* bytes of one JSON pointer */
#define REWRITE_MAX_EDITS 64          /* set, delete or drop_blocks entries in one rule */
#define REWRITE_MAX_VALUE (64 * 1024) /* bytes of one set value or merge patch, as JSON */
#define REWRITE_MAX_HEADER_EDITS 64   /* header set/remove entries in all rules together */
#define REWRITE_MAX_HEADER_VALUE 1024 /* bytes of one header value to set */
#define REWRITE_MAX_MODEL 256         /* bytes of a "model" a rule can match */
#define REWRITE_MAX_BODY_DEFAULT (8u * 1024 * 1024)
#define REWRITE_MAX_BODY_LIMIT (256u * 1024 * 1024) /* jsonedit's own limit */
#define REWRITE_RULES_LEN 128 /* result.rules, NUL included (record.rules) */

/* The per-request override of the thinking rules. */
#define REWRITE_THINKING_HEADER "X-Tokentap-Thinking"

/* A thinking setting: of a rule's action or of the override header. */
enum rewrite_thinking {
    REWRITE_THINKING_UNSET = -1, /* no thinking action / no override header */
    REWRITE_THINKING_OFF = 0,
    REWRITE_THINKING_ON = 1,
    /* Leave the body's thinking as the client sent it: as a rule's action,
     * later rules' thinking actions are skipped for the request; as the
     * override, every rule's are. */
    REWRITE_THINKING_PASS = 2,
};

/* Why a body was left alone although a rule or the override wanted to
 * edit it (the reason label of tokentap_rewrite_skipped_total). */
enum rewrite_skip {
    REWRITE_SKIP_NONE,
    REWRITE_SKIP_NOT_JSON,     /* Content-Type is not JSON */
    REWRITE_SKIP_INVALID_JSON, /* not valid JSON (RFC 8259, strict) */
    REWRITE_SKIP_NOT_OBJECT,   /* valid JSON, but not an object */
    REWRITE_SKIP_TOO_LARGE,    /* more than max_body bytes */
    REWRITE_SKIP_TOO_DEEP,     /* nested deeper than jsonedit edits (512) */
    REWRITE_SKIP_RULE_FAILED,  /* a rule's action could not apply: that rule was skipped */
};

/* What is known of a request at its head. */
struct rewrite_request {
    const char *method;           /* borrowed: "POST"; NULL matches no method glob */
    const char *path;             /* borrowed: the request target; a ?query is ignored */
    size_t path_len;
    enum dialect_kind dialect;    /* dialect_from_path(path) */
    const struct http_head *head; /* borrowed, may be NULL: headers to match, Content-Type */
    const char *upstream;         /* borrowed: the chosen upstream's name, NULL if not known */
    enum rewrite_thinking override; /* rewrite_thinking_override() of the head */
};

/* One edit of the upstream request's headers, applied in result order. */
struct rewrite_header_edit {
    const char *name;  /* borrowed from the rules */
    const char *value; /* borrowed: replace every `name` header by one with this
                        * value; NULL: remove every `name` header */
};

struct rewrite_result {
    char *body;       /* owned: the new body (NUL-terminated), NULL when unchanged */
    size_t body_len;
    bool changed;     /* body != NULL: the new bytes differ from the request's */
    enum rewrite_skip skip;
    const char *failed_rule; /* borrowed: the first rule that failed (skip == RULE_FAILED) */
    /* Names of the rules applied, in order, comma-separated; "" for none;
     * ends in "..." when they do not all fit. */
    char rules[REWRITE_RULES_LEN];
    /* The request's thinking after rewriting, as llama-server will read it:
     * -1 unknown (the body does not say, or it is not a chat route), 0 off, 1 on. */
    int thinking;
    /* A thinking action or the override met a route whose body cannot
     * carry the flag (completions: the prompt is already templated; routes
     * of no known dialect); the body was not changed for it. */
    bool thinking_unsupported;
    const char *model; /* borrowed from the rules: the last `model:` applied, or NULL */
    struct rewrite_header_edit headers[REWRITE_MAX_HEADER_EDITS];
    size_t n_headers;
};

/* Loads the `rewrite:` mapping (node; NULL gives an empty rule set, and
 * then doc may be NULL too) of doc.
 * Everything is checked here; errors read "file:line: message" in err.
 * Returns 0 and a new rule set in *ret (caller frees; it copies what it
 * needs, so doc may be freed first), -EINVAL, or -ENOMEM. */
int rewrite_rules_load(const struct config_doc *doc, const struct cJSON *node,
                       struct rewrite_rules **ret, struct config_err *err);

void rewrite_rules_free(struct rewrite_rules *rr);

/* The largest body rewrite_apply() edits (max_body; default 8 MiB). */
size_t rewrite_max_body(const struct rewrite_rules *rr);

/* Number of rules, and the name of rule i (borrowed), for logging. */
size_t rewrite_rules_count(const struct rewrite_rules *rr);
const char *rewrite_rule_name(const struct rewrite_rules *rr, size_t i);

/* Reads the X-Tokentap-Thinking header of head (NULL: none): 0 with *ret
 * (REWRITE_THINKING_UNSET when absent), or -EINVAL when a value is not on,
 * off or pass (any case), or repeated headers disagree. */
int rewrite_thinking_override(const struct http_head *head, enum rewrite_thinking *ret);

/* Header phase: true when some rule could apply to q judging by what the
 * head tells (a rule's model match and, when q->upstream is NULL, its
 * upstream match count as "maybe"), or when q carries an override. The
 * caller then holds the body and calls rewrite_apply(). */
bool rewrite_wants_body(const struct rewrite_rules *rr, const struct rewrite_request *q);

/* Body phase: evaluates the rules in order on body[0, len) (body may be
 * NULL with len 0 for a request without one, or with len above max_body
 * for a body the caller did not keep), then the override. Bad input is
 * never an error: it gives 0 with the body untouched and result.skip set.
 * Returns 0 and fills *ret (release it with rewrite_result_finish()), or
 * -ENOMEM (or -EINVAL for NULL arguments) with *ret untouched. */
int rewrite_apply(const struct rewrite_rules *rr, const struct rewrite_request *q,
                  const char *body, size_t len, struct rewrite_result *ret);

/* Frees res->body (a caller that took it sets it to NULL first). */
void rewrite_result_finish(struct rewrite_result *res);

/* "not-json", "invalid-json", ...; "" for REWRITE_SKIP_NONE. Never NULL. */
const char *rewrite_skip_name(enum rewrite_skip s);

/* The body's top-level "model" string (the last one if repeated), escapes
 * decoded, without building a tree. Returns 0 with the NUL-terminated name
 * in buf[0, cap); -ENOENT when there is no "model" string (or it contains
 * a NUL); -ENAMETOOLONG when it does not fit; -EBADMSG, -E2BIG or
 * -EMSGSIZE for text that is not valid JSON within jsonedit's limits;
 * -EINVAL when the root is not an object. buf is written only on success. */
int rewrite_body_model(const char *body, size_t len, char *buf, size_t cap);

/* The thinking state llama-server will read from a request body of dialect
 * d: 1 on, 0 off, -1 unknown (see rewrite_result.thinking). */
int rewrite_body_thinking(enum dialect_kind d, const char *body, size_t len);

/* True when subject[0, len) matches glob: '*' any bytes (also '/'), '?'
 * one byte, anything else itself; fold_case compares ASCII letters
 * case-insensitively. */
bool rewrite_glob_match(const char *glob, const char *subject, size_t len, bool fold_case);

#endif
