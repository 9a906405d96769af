/* agentic_write: recorded requests written as an agentic trace (the format
 * agentic.h reads), with no content: lengths, times, and hash ids that
 * tell which prompt blocks repeat. `tokentap trace export` feeds it what
 * serve --record kept. Pure. */
#ifndef TOKENTAP_AGENTIC_WRITE_H
#define TOKENTAP_AGENTIC_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

struct evbuffer;

/* One recorded request, as the writer needs it. */
struct agentic_rec {
    const char *session;    /* borrowed; "" or NULL: none */
    usec_t start, end;      /* monotonic µs; end 0: unknown */
    uint32_t in, out;       /* the server's prompt and output tokens */
    const char *model;      /* borrowed, may be NULL */
    bool stream;
    const char *stop;       /* borrowed: finish reason, may be NULL */
    const uint64_t *blocks; /* borrowed: agentic_block_hashes of the prompt's tokens */
    size_t n_blocks;
};

/* The hashes of the full blocks of a prompt's n tokens, each of the block
 * and every token before it, into ret (n / block_size of them, returned):
 * what agentic_write numbers as hash ids. */
size_t agentic_block_hashes(const uint64_t *tokens, size_t n, uint32_t block_size, uint64_t *ret);

/* Writes recs (in any order) as one agentic trace with this id: the
 * session that starts first is the main agent, and every other session a
 * sub-agent, placed after the main agent's last request that had ended
 * when it began. Each block hash becomes a hash id (1, 2, ... in order of
 * first appearance), at most in / block_size of them. 0 or -ENOMEM. */
int agentic_write(const struct agentic_rec *recs, size_t n, uint32_t block_size, const char *id,
                  struct evbuffer *out);

/* A finish reason in the format's words: "end_turn", "tool_use",
 * "max_tokens", or "" (anything else: the writer keeps no free text). */
const char *agentic_stop_name(const char *finish_reason);

#endif
