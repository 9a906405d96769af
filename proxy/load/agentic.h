/* agentic: agentic coding traces in kv-cache-tester's format (the "Weka
 * traces" of AIPerf, the AgentX benchmark's input): one JSON object per
 * file, a main agent's requests with `subagent` entries that hold their
 * own requests. This module reads one into a session graph: who runs
 * when, after what, and which prompt blocks each request shares (hash ids,
 * one per block of block_size tokens). Pure: text in, structs out. */
#ifndef TOKENTAP_AGENTIC_H
#define TOKENTAP_AGENTIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

struct config_err;

/* Limits: a trace file, the nesting of sub-agents, requests in a trace,
 * and one request's counts. */
#define AGENTIC_MAX_BYTES (64u << 20)
#define AGENTIC_MAX_DEPTH 8
#define AGENTIC_MAX_REQUESTS 1000000
#define AGENTIC_MAX_TOKENS 10000000

struct agentic_request {
    usec_t t;               /* recorded start, from its session's start */
    usec_t at;              /* recorded start, from the trace's start */
    int64_t think_us;       /* think_time: the client's wait before it, -1 absent */
    int64_t api_us;         /* api_time: how long the API took, -1 absent */
    uint32_t in, out;       /* input and output tokens */
    uint64_t *hash_ids;     /* owned: one per full block of the input */
    size_t n_hash;
    char model[96];
    bool stream;            /* type "s" */
    /* Its session's children it waits for: children[join_from, join_to)
     * of its session (those spawned after the request before it). */
    size_t join_from, join_to;
};

struct agentic_session {
    size_t parent;          /* index into trace.sessions; SIZE_MAX for the main agent */
    size_t after;           /* the parent's request it was spawned after, SIZE_MAX: before any */
    size_t joined_by;       /* the parent's request that waits for it, SIZE_MAX: runs in the background */
    usec_t spawn;           /* recorded spawn, from the parent's start */
    usec_t at;              /* recorded spawn, from the trace's start */
    usec_t duration;        /* duration_ms, 0 unknown */
    int depth;              /* 0 for the main agent */
    char kind[32];          /* "main", or the subagent_type (Explore, Plan, ...) */
    char agent_id[64];      /* "main", or the agent_id (agent_001, ...) */
    struct agentic_request *requests; /* owned, in order */
    size_t n;
    size_t *children;       /* owned: session indexes, in spawn order */
    size_t n_children;
};

struct agentic_trace {
    char id[128];
    uint32_t block_size;     /* tokens per hash id (64) */
    bool global_ids;         /* hash_id_scope "global": ids mean the same in every trace */
    struct agentic_session *sessions; /* owned: [0] is the main agent, children after their parents */
    size_t n_sessions;
    size_t n_requests;       /* over all sessions */
};

/* Whether text looks like an agentic trace (a JSON object whose keys
 * include "requests" and "block_size"), so that replay can tell it from a
 * JSONL trace by content. Cheap: looks at the first 64 KiB. */
bool agentic_sniff(const char *text, size_t len);

/* Parses a whole trace file's text. name (the file) starts every error
 * message. 0, -EINVAL (err says what and where: "name: requests[3].in:
 * ..."), or -ENOMEM. On success *ret owns its arrays. */
int agentic_parse(const char *name, const char *text, size_t len, struct agentic_trace *ret,
                  struct config_err *err);

/* Frees what t owns; t may be zeroed. */
void agentic_trace_finish(struct agentic_trace *t);

/* --model-map: "PATTERN=NAME,..." maps recorded models (shell patterns,
 * "*opus*") to served names, the first match winning. */
#define AGENTIC_MAX_MAPS 16

/* 0 when spec is a model map, else -EINVAL with what is wrong in err. */
int agentic_model_map_check(const char *spec, struct config_err *err);

/* The name to send for recorded `model`: the first matching pattern's
 * NAME (written to buf), or model itself when none matches or spec is NULL. */
const char *agentic_model_map(const char *spec, const char *model, char *buf, size_t len);

/* The recorded end of a request (at + api_time), or of a session (its
 * spawn + duration, else its last request's end); the start when unknown. */
usec_t agentic_request_end(const struct agentic_request *r);
usec_t agentic_session_end(const struct agentic_session *s);

#endif
