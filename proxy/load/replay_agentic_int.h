/* The insides of an agentic replay, shared by replay_agentic.c (loading,
 * calibration, sending) and replay_agentic_summary.c (the report). Not
 * for other modules. */
#ifndef TOKENTAP_REPLAY_AGENTIC_INT_H
#define TOKENTAP_REPLAY_AGENTIC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "load/agentic.h"
#include "load/agentic_plan.h"
#include "load/blocks.h"
#include "load/ideal.h"
#include "load/replay_int.h"
#include "tap/record.h"

/* Served models whose template is measured; more share the last's. */
#define AGENTIC_MAX_MODELS 16

/* What one request asked for and got. */
struct ag_result {
    uint64_t isl, osl;           /* scaled input and output tokens asked for */
    uint64_t ideal_blocks;       /* hash ids shared with an earlier request of the run */
    uint64_t ideal_tokens;       /* the same in scaled tokens */
    int64_t prompt_tokens, cached_tokens; /* the server's, -1 unknown */
    uint64_t output_tokens;
    int64_t ttft, slot_wait, prefill; /* µs, -1 undefined */
    enum record_outcome outcome; /* RECORD_IN_PROGRESS: not sent */
};

/* One run of one trace. */
struct ag_instance {
    size_t trace;                /* index into agentic_run.traces */
    unsigned serial;             /* 1, 2, ... in start order */
    unsigned round;              /* 0, then 1, 2, ... with --recycle */
    uint64_t salt;               /* keeps its block text apart from other runs' */
    char prefix[160];            /* its sessions' names start with it: "trace_0277", "trace_0277~2" */
    struct agentic_plan plan;
    struct ag_result **res;      /* owned: [session][request] */
    bool finished;
};

/* A served model and the tokens its chat template adds to a prompt. */
struct ag_model {
    char name[96];
    uint32_t overhead;
    bool measured;
};

struct agentic_run {
    struct agentic_trace *traces; /* owned */
    size_t n_traces;
    unsigned skipped_files;       /* a directory's files that are no agentic trace */
    struct ag_instance *inst;     /* owned: every instance started, in order */
    size_t n_inst, cap_inst;
    unsigned users;               /* instances running at once */
    unsigned active;              /* instances started and not finished */
    size_t next_trace;            /* the trace the next instance runs */
    unsigned round;
    bool closed;                  /* --duration or --requests reached: nothing more is sent */
    uint64_t dropped;             /* requests dropped by --max-isl */
    struct blocks_vocab vocab;
    char tokenizer_note[200];
    struct ag_model models[AGENTIC_MAX_MODELS];
    size_t n_models;
    struct ideal *ideal;          /* owned */
};

void replay_agentic_instance_free(struct ag_instance *in);

#endif
