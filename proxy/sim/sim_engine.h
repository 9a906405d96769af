/* sim_engine: the simulator's timing model. Parallel slots, a FIFO queue
 * in front of them, a per-slot prompt cache, prefill at prefill_tps and
 * decode at decode_tps per slot, both slowed by batch_slowdown for every
 * other busy slot. It schedules token events on the event loop and tells
 * the front end (sim.c) when a slot starts, when each token is due and
 * when generation ends. It writes no bytes. */
#ifndef TOKENTAP_SIM_ENGINE_H
#define TOKENTAP_SIM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

struct event_base;
struct sim_engine;
struct sim_task;

struct sim_engine_options {
    unsigned slots;
    double prefill_tps;    /* prompt tokens per second per slot */
    double decode_tps;     /* generated tokens per second per slot, alone */
    double batch_slowdown; /* each other busy slot adds this fraction to step times */
    double jitter;         /* relative SD of random noise on step and prefill times (0 = none) */
    uint64_t seed;         /* for the noise */
    uint32_t n_ctx;        /* context per slot, in tokens */
};

/* What the engine did for one task: timings reports these. */
struct sim_timings {
    uint32_t prompt_tokens; /* whole prompt */
    uint32_t prompt_n;      /* evaluated (prompt_tokens - cache_n) */
    uint32_t cache_n;       /* reused from the slot's cache */
    uint32_t predicted_n;
    usec_t prompt_us;       /* slot start to first token */
    usec_t predicted_us;    /* first token to last token */
};

struct sim_task_params {
    const char *prompt;  /* rendered prompt; copied into the slot cache */
    size_t prompt_len;
    bool cache_prompt;   /* reuse the slot's cache (llama-server's cache_prompt) */
    size_t n_tokens;     /* token events to produce */
    const char *output;  /* generated text, appended to the slot cache at the end; borrowed until on_done */
    size_t output_len;
    size_t stall_after;  /* fault: pause after this many tokens ... */
    usec_t stall_us;     /* ... for this long (0 = none) */
    /* Benchmarks (0 = none): the first token at this clock_now() time, or,
     * if the prefill ends later, at the first decode step from it after
     * that (steps of 1/decode_tps). */
    usec_t first_token_at;
    /* For /slots: */
    int64_t seed;
    int64_t n_predict;
    bool stream;
};

struct sim_task_cb {
    /* Slot `slot` took the task and prefill begins; t holds the prompt
     * counts (prompt_tokens, prompt_n, cache_n). */
    void (*on_start)(void *ctx, unsigned slot, const struct sim_timings *t);
    /* Token `index` (0-based) is due now. */
    void (*on_token)(void *ctx, size_t index);
    /* All tokens were produced; the slot is free again after this returns. */
    void (*on_done)(void *ctx, const struct sim_timings *t);
};

/* Slot state for /slots. */
struct sim_slot_info {
    unsigned id;
    bool processing;
    bool used;          /* ever ran a task */
    uint64_t id_task;
    uint32_t n_prompt_tokens, n_prompt_tokens_processed, n_prompt_tokens_cache;
    uint32_t n_decoded;
    int64_t n_remain;
    int64_t seed, n_predict;
    bool stream;
};

/* Counters for /metrics, llama-server's names. */
struct sim_metrics {
    uint64_t prompt_tokens_total;
    double prompt_seconds_total;
    uint64_t tokens_predicted_total;
    double tokens_predicted_seconds_total;
    uint64_t n_decode_total;
    uint64_t n_tokens_max;
    uint64_t busy_slots_sum; /* over decode steps, for n_busy_slots_per_decode */
    unsigned requests_processing;
    unsigned requests_deferred;
};

/* Returns 0 or -ENOMEM; options are copied. */
int sim_engine_new(struct event_base *base, const struct sim_engine_options *opts,
                   struct sim_engine **ret);
void sim_engine_free(struct sim_engine *e);

/* Queues a task (or starts it on a free slot at once: on_start may be
 * called before this returns). The task belongs to the engine; *ret is a
 * handle for sim_engine_cancel, valid until on_done. */
int sim_engine_submit(struct sim_engine *e, const struct sim_task_params *p,
                      const struct sim_task_cb *cb, void *ctx, struct sim_task **ret);

/* Drops a queued or running task without further callbacks; its slot is
 * free at once. Safe inside the task's own callbacks. */
void sim_engine_cancel(struct sim_engine *e, struct sim_task *t);

unsigned sim_engine_slots(const struct sim_engine *e);
unsigned sim_engine_free_slots(const struct sim_engine *e);
uint32_t sim_engine_n_ctx(const struct sim_engine *e);
void sim_engine_slot_info(const struct sim_engine *e, unsigned i, struct sim_slot_info *ret);
void sim_engine_metrics(const struct sim_engine *e, struct sim_metrics *ret);

#endif
