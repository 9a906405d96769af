/* sim_format: the bytes llama-server puts on the wire for each API, built
 * from a script and timings. Pure: appends to an evbuffer, no I/O. Keys
 * appear in llama-server's order (see ../shared/llama-server captures). */
#ifndef TOKENTAP_SIM_FORMAT_H
#define TOKENTAP_SIM_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/sim_engine.h"
#include "sim/sim_text.h"

struct evbuffer;

enum sim_api {
    SIM_API_CHAT,        /* /v1/chat/completions */
    SIM_API_COMPLETIONS, /* /v1/completions */
    SIM_API_NATIVE,      /* /completion */
    SIM_API_ANTHROPIC,   /* /v1/messages */
    SIM_API_RESPONSES,   /* /v1/responses */
};

/* One response's identity, options and streaming state. */
struct sim_reply {
    enum sim_api api;
    bool stream;
    bool include_usage;  /* stream_options.include_usage */
    char id[48];         /* chatcmpl-... / resp_... */
    char msg_id[48];     /* Responses message item */
    char rs_id[48];      /* Responses reasoning item */
    const char *model;   /* borrowed */
    const char *fingerprint; /* borrowed: system_fingerprint */
    long long created;   /* seconds */
    const char *prompt;  /* borrowed: rendered prompt (native "prompt" field) */
    size_t prompt_len;
    int slot;            /* slot id (native id_slot) */
    int64_t seed, n_predict;
    double temperature;
    uint32_t prompt_tokens, prompt_n, cache_n; /* known once a slot took the request */
    /* streaming state */
    bool started;
    bool in_text;        /* the text block/item has started */
    unsigned blocks;     /* Anthropic content blocks opened */
};

/* Events sent with the first token: role line, message_start, response.created... */
void sim_format_stream_start(struct evbuffer *out, struct sim_reply *r);

/* One token event; index is the piece index within the script. */
void sim_format_stream_token(struct evbuffer *out, struct sim_reply *r, const struct sim_script *s,
                             size_t index);

/* Everything after the last token: finish chunk, usage, timings, [DONE]
 * or the closing events. produced = token events sent. */
void sim_format_stream_end(struct evbuffer *out, struct sim_reply *r, const struct sim_script *s,
                           size_t produced, const struct sim_timings *t);

/* The whole non-streamed JSON body. */
void sim_format_body(struct evbuffer *out, struct sim_reply *r, const struct sim_script *s,
                     size_t produced, const struct sim_timings *t);

/* Fills buf with prefix + 32 deterministic alphanumerics from seed. */
void sim_format_id(char *buf, size_t len, const char *prefix, uint64_t seed);

#endif
