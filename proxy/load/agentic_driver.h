/* agentic_driver: runs agentic traces (agentic.h) on a load generator,
 * for `tokentap replay` (--users of them) and `tokentap bench --capacity`
 * (a user is one run of a trace). It reads the traces of a file or a
 * directory; asks one target how its tokenizer and chat template count
 * (blocks.h); then starts runs: each run of a trace follows its session
 * graph (agentic_plan.h) on a timer of its own, sends every request with a
 * prompt whose blocks repeat exactly where the recording's hash ids
 * repeat, and hands each finished request and its own end to the caller. */
#ifndef TOKENTAP_AGENTIC_DRIVER_H
#define TOKENTAP_AGENTIC_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "load/agentic.h"
#include "load/agentic_plan.h"
#include "load/blocks.h"
#include "load/loadgen.h"
#include "tap/record.h"

struct config_err;
struct event;
struct event_base;
struct ideal;
struct rewrite_result;

/* Served models whose template is measured; more share the last's. */
#define AGENTIC_DRIVER_MAX_MODELS 16

/* What the requests are sent as. */
enum agentic_api {
    AGENTIC_API_ANTHROPIC, /* /v1/messages, as Claude Code sends */
    AGENTIC_API_OPENAI,    /* /v1/chat/completions */
};

/* The traces of one file, or of every agentic trace in a directory (in
 * name order). */
struct agentic_driver_traces {
    struct agentic_trace *t;  /* owned: n of them */
    size_t n;
    unsigned skipped_files;   /* a directory's files that are no agentic trace */
};

/* Whether path is an agentic trace (by content) or a directory (of them).
 * 0, or -errno with "PATH: reason" in err. */
int agentic_driver_detect(const char *path, bool *ret, struct config_err *err);

/* Reads the trace at path, or every agentic trace in the directory path.
 * 0, or -EINVAL (err says what and where; also for a file that cannot be
 * read or a directory without traces) or -ENOMEM. *ret is then
 * agentic_driver_traces_finish'ed by the caller either way. */
int agentic_driver_load(const char *path, struct agentic_driver_traces *ret,
                        struct config_err *err);
void agentic_driver_traces_finish(struct agentic_driver_traces *ts);

/* Edits a request before it goes (replay's rewrite rules): headers in
 * place, a new body in res (kept alive until the send). 0 or -ENOMEM. */
typedef int (*agentic_driver_rules_cb)(void *ctx, const char *path, struct loadgen_header *hdrs,
                                       size_t *nh, size_t cap, const char *body, size_t len,
                                       struct rewrite_result *res);

struct agentic_driver_options {
    struct event_base *base;     /* borrowed */
    struct loadgen *lg;          /* borrowed: where the requests go */
    const char *url;             /* borrowed: the same target, asked for calibration */
    struct upstream_tls_options tls; /* an https url: how its certificate is checked */
    const struct agentic_driver_traces *traces; /* borrowed */
    enum agentic_timing timing;
    double speed;                /* recorded times are divided by it */
    usec_t max_gap;              /* the longest wait (0: no cap) */
    double isl_scale, osl_scale; /* inputs and outputs are scaled by them */
    uint64_t max_isl;            /* requests of more scaled input tokens are dropped (0: none) */
    enum agentic_api api;
    const char *model;           /* borrowed: every request names it; NULL: the recorded model */
    const char *model_map;       /* borrowed: recorded -> served names (agentic_model_map), NULL */
    uint64_t max_requests;       /* the driver stops after sending this many (0: no cap) */
    bool ideal;                  /* keep what an ideal prompt cache would serve (ideal.h) */
    agentic_driver_rules_cb rules; /* NULL: requests go as made */
    void *rules_ctx;
};

/* What one request asked for and got. */
struct agentic_driver_result {
    uint64_t isl, osl;           /* scaled input and output tokens asked for */
    uint64_t ideal_blocks;       /* hash ids shared with an earlier request (o.ideal) */
    uint64_t ideal_tokens;       /* the same in scaled tokens */
    int64_t prompt_tokens, cached_tokens; /* the server's, -1 unknown */
    uint64_t output_tokens;
    int64_t ttft, slot_wait, prefill; /* µs, -1 undefined */
    enum record_outcome outcome; /* RECORD_IN_PROGRESS: not sent (or not finished) */
};

/* A served model and the tokens its chat template adds to a prompt. */
struct agentic_driver_model {
    char name[96];
    uint32_t overhead;
    bool measured;
};

struct agentic_driver_run;

/* What a run tells its owner. */
struct agentic_driver_cbs {
    /* Request `index` of `session` finished, whatever its outcome; res is
     * valid during the call. */
    void (*record)(void *ctx, struct agentic_driver_run *run, size_t session, size_t index,
                   const struct loadgen_result *res);
    /* The run is over: every request done or dropped, or the driver
     * stopped and nothing of the run is in flight (err 0); or a request
     * could not be sent (err -ENOMEM). Called from the run's timer; it is
     * the run's last call, and the owner may free the run in it. */
    void (*end)(void *ctx, struct agentic_driver_run *run, int err);
    void *ctx;
};

/* Prompt text and calibration for one target; the runs started on it. */
struct agentic_driver {
    struct agentic_driver_options o;
    struct blocks_vocab vocab;
    char tokenizer_note[200];    /* how prompt sizes were made ("not asked" before calibration) */
    struct agentic_driver_model models[AGENTIC_DRIVER_MAX_MODELS];
    size_t n_models;
    struct ideal *ideal;         /* owned; NULL without o.ideal */
    uint64_t sent;               /* requests sent by all runs */
    uint64_t dropped;            /* requests the runs started dropped (max_isl) */
    unsigned runs;               /* runs started */
    bool stopped;                /* agentic_driver_stop, or max_requests sent */
    struct agentic_driver_run *live; /* borrowed: the runs not ended yet (a list) */
};

/* One run of one trace. Read-only for the owner. */
struct agentic_driver_run {
    struct agentic_driver *d;    /* borrowed */
    size_t trace;                /* index into the traces */
    unsigned serial;             /* 1, 2, ... in start order */
    uint64_t salt;               /* keeps its block text apart from other runs' */
    char prefix[160];            /* its sessions' names start with it */
    struct agentic_plan plan;
    struct agentic_driver_result **res; /* owned: [session][request] */
    struct agentic_driver_cbs cbs;
    unsigned in_flight;
    bool ended;                  /* end was called */
    int err;
    struct event *timer;         /* owned: due requests, and the end */
    struct agentic_driver_run *prev, *next; /* in d->live while not ended */
};

/* A driver for the target o->url, reached through o->lg. 0 or -ENOMEM. */
int agentic_driver_new(const struct agentic_driver_options *o, struct agentic_driver **ret);

/* Frees d; its runs must have been freed. NULL is a no-op. */
void agentic_driver_free(struct agentic_driver *d);

/* Asks the target which words are one token (/tokenize) and how many
 * tokens each served model's template adds; runs o.base until the
 * answers are in. A target that cannot tell leaves an estimate
 * (tokenizer_note says so). 0, -EINVAL (a bad URL or CA file: err says
 * why) or -ENOMEM. */
int agentic_driver_calibrate(struct agentic_driver *d, struct config_err *err);

/* Starts a run of traces[trace] at base (monotonic; its first requests go
 * then, or later as its timing says). Its sessions are named
 * "PREFIX/agent_id"; runs of traces with global hash ids share their block
 * text when they have the same round, other runs never do. 0 with the
 * run in *ret (the caller frees it), or -ENOMEM. */
int agentic_driver_start(struct agentic_driver *d, size_t trace, usec_t base, unsigned round,
                         const char *prefix, const struct agentic_driver_cbs *cbs,
                         struct agentic_driver_run **ret);

/* Nothing more is sent by any run of d; each ends (from the loop) once its
 * requests in flight finished. Safe inside callbacks; call it before
 * aborting the load generator. */
void agentic_driver_stop(struct agentic_driver *d);

/* Frees a run with nothing in flight (after its end, or after its load
 * generator aborted everything). NULL is a no-op. */
void agentic_driver_run_free(struct agentic_driver_run *run);

#endif
