/* blocks: the text of a replayed agentic prompt. Every hash id of a trace
 * becomes one deterministic block of words, so equal ids give identical
 * bytes and a server's prompt cache sees the reuse the recording had.
 * A word is a space and three letters ("the", "and", ...): one token on
 * every BPE tokenizer we know and on the sim's, and words never merge
 * across a space, so a block of N words is N tokens. Which words are one
 * token is asked of the target's own tokenizer (its /tokenize answer to
 * blocks_probe); without one, the built-in list is an estimate. Pure. */
#ifndef TOKENTAP_BLOCKS_H
#define TOKENTAP_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct config_err;

/* Bytes of one word: a space and three letters. */
#define BLOCKS_WORD_BYTES 4
#define BLOCKS_MAX_WORDS 256
/* Fewer one-token words than this and the tokenizer is not used. */
#define BLOCKS_MIN_WORDS 32

struct blocks_vocab {
    char words[BLOCKS_MAX_WORDS][4]; /* three letters and a NUL */
    unsigned n;
    bool exact;                      /* checked on the target's tokenizer */
};

/* Every built-in word (not checked on any tokenizer). */
void blocks_vocab_builtin(struct blocks_vocab *v);

/* The /tokenize request body that asks which built-in words are one token. */
void blocks_probe(struct evbuffer *out);

/* Keeps the built-in words that the target's /tokenize answer to
 * blocks_probe shows as one token each (a piece " xyz"). 0 with v exact,
 * or -EINVAL (not such an answer, or fewer than BLOCKS_MIN_WORDS words:
 * err says which) with v unchanged. */
int blocks_vocab_from_tokens(struct blocks_vocab *v, const char *json, size_t len,
                             struct config_err *err);

/* Tokens in a /tokenize answer ({"tokens":[...]}), -1 if it is none. */
long blocks_count_tokens(const char *json, size_t len);

/* Appends n words (n tokens) chosen by seed: the same seed and vocabulary
 * give the same bytes. */
void blocks_append(const struct blocks_vocab *v, uint64_t seed, size_t n, struct evbuffer *out);

/* The seed of a block: its hash id within a trace (salt). */
uint64_t blocks_seed(uint64_t salt, uint64_t id);

/* How many tokens the blocks of a replayed prompt get. Inputs are scaled
 * by `scale` (--isl-scale), keeping their structure: the boundary after
 * block i falls at round(i * block_size * scale) tokens, so sizes add up
 * to the scaled input. `overhead` tokens (the chat template around the
 * text, measured on the target) are taken off the start, which every
 * prompt shares, so a prompt's tokens on the server are the scaled
 * input. */
struct blocks_layout {
    uint32_t block_size;
    double scale;
    uint32_t overhead;
};

/* Text tokens before block i (of any prompt). */
uint64_t blocks_before(const struct blocks_layout *l, size_t i);

/* Text tokens of a prompt of `in` recorded tokens. */
uint64_t blocks_total(const struct blocks_layout *l, uint64_t in);

#endif
