/* sim_text: what the simulator says. Pure and deterministic: the same seed
 * and request give the same pieces. A "piece" is one token event's text. */
#ifndef TOKENTAP_SIM_TEXT_H
#define TOKENTAP_SIM_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sim_piece_kind {
    SIM_PIECE_REASONING,
    SIM_PIECE_CONTENT,
};

struct sim_piece {
    uint32_t off, len; /* into sim_script.text */
    enum sim_piece_kind kind;
};

/* Everything one response will emit, prepared before the first token. */
struct sim_script {
    char *text;               /* owned: reasoning then content, back to back */
    size_t text_len;
    struct sim_piece *pieces; /* owned */
    size_t n_pieces;
    size_t n_reasoning;       /* pieces[0..n_reasoning) are reasoning */
    bool truncated;           /* cut by max_tokens: finish_reason "length" */
};

/* 64-bit FNV-1a, for seeding from request text. */
uint64_t sim_text_hash(const void *data, size_t len, uint64_t seed);

/* Prompt tokens the simulator charges for len bytes of rendered prompt
 * (about 4 bytes per token, at least 1). */
uint32_t sim_text_count_tokens(size_t len);

/* Builds a script from given reasoning/content texts (either may be NULL
 * or empty), cut at max_tokens pieces (0 = no limit). 0 or -ENOMEM. */
int sim_script_from_text(struct sim_script *s, const char *reasoning, const char *content,
                         size_t max_tokens);

/* Returns deterministic made-up text of about `tokens` pieces (malloc'd,
 * NULL on allocation failure): reasoning-like prose or code-like prose. */
char *sim_text_generate(uint64_t seed, size_t tokens, enum sim_piece_kind kind);

/* A natural answer length for seed: 48..431 tokens, like short coding replies. */
size_t sim_text_natural_length(uint64_t seed);

void sim_script_finish(struct sim_script *s);

/* Splits text into token-like pieces, calling cb for each; returns the
 * number of pieces. Pure, for sim_script and for /tokenize. */
size_t sim_text_split(const char *text, size_t len,
                      void (*cb)(void *ctx, size_t off, size_t len), void *ctx);

#endif
