/* sim_prompt: reads a generation request body (OpenAI chat, completions,
 * llama /completion, Anthropic messages, Responses) the way llama-server
 * does: renders the prompt with a ChatML (Qwen-style) template, applies
 * enable_thinking, and extracts stream/usage/limit options. Pure. */
#ifndef TOKENTAP_SIM_PROMPT_H
#define TOKENTAP_SIM_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/sim_format.h"

struct cJSON;

struct sim_request {
    enum sim_api api;
    bool stream;
    bool include_usage;
    bool thinking;      /* effective: request kwargs, else the server default */
    bool cache_prompt;
    bool ignore_eos;    /* llama-server's ignore_eos: generate until max_tokens */
    int64_t max_tokens; /* -1: until the answer ends */
    bool has_seed;
    int64_t seed;
    double temperature;
    char *model;        /* owned, NULL when absent */
    char *prompt;       /* owned: the rendered prompt */
    size_t prompt_len;
    char *last_user;    /* owned: text of the last user message (canned matching) */
};

/* A client error to answer with llama-server's error JSON. */
struct sim_request_error {
    int status;
    const char *type;
    char message[256];
};

/* Parses body for api. Returns 0, -EINVAL with *err filled for a client
 * error, or -ENOMEM. */
int sim_request_parse(enum sim_api api, const struct cJSON *body, bool default_thinking,
                      struct sim_request *ret, struct sim_request_error *err);

void sim_request_finish(struct sim_request *r);

/* Renders only the prompt (for /apply-template and count_tokens). Returns
 * 0, -EINVAL (with err) or -ENOMEM. *ret is malloc'd. */
int sim_request_render(enum sim_api api, const struct cJSON *body, bool thinking, char **ret,
                       size_t *ret_len, struct sim_request_error *err);

#endif
