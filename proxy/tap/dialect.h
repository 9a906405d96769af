/* dialect: turns the SSE events (or the JSON body) of one response into
 * token events and final facts, per API: OpenAI chat and completions,
 * llama-server's native /completion, Anthropic messages, OpenAI Responses.
 * Pure: no I/O and no allocation; JSON is read in place with core/jsonscan.
 *
 * A token event is an SSE event piece that carries generated output
 * (docs/design.md, "What a token is"): non-empty content, reasoning or
 * tool-call argument text. Role-only and empty deltas, progress, usage and
 * timings chunks, and end markers are not token events, but usage,
 * timings, finish reasons, errors and the end marker are read. */
#ifndef TOKENTAP_DIALECT_H
#define TOKENTAP_DIALECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sse_event;

enum dialect_kind {
    DIALECT_UNKNOWN, /* guessed per event from the JSON's shape */
    DIALECT_OPENAI_CHAT,
    DIALECT_OPENAI_COMPLETIONS,
    DIALECT_LLAMA_COMPLETION,
    DIALECT_ANTHROPIC,
    DIALECT_RESPONSES,
};

enum dialect_token_kind {
    DIALECT_TOKEN_CONTENT,
    DIALECT_TOKEN_REASONING,
    DIALECT_TOKEN_TOOL, /* tool-call arguments */
};
#define DIALECT_TOKEN_KINDS 3

/* Room for an error message here and in a record (tap/record.h): cut once,
 * at a character boundary, and copied whole. */
#define DIALECT_ERROR_MAX 160

/* What one response said about itself. Counts are -1 and times -1.0 until
 * the server reports them; later reports overwrite earlier ones. */
struct dialect_facts {
    /* Usage. prompt_tokens includes cached ones in every dialect (for
     * Anthropic it is input_tokens + cache_read_input_tokens +
     * cache_creation_input_tokens); cached_tokens is the cache-read part. */
    int64_t prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens;

    /* llama-server `timings`. The *_ms values are the server's own floats,
     * kept as printed: they are not our clock, so not usec_t. */
    int64_t prompt_n, predicted_n, cache_n, draft_n, draft_n_accepted;
    double prompt_ms, predicted_ms;

    /* Native /completion counters. */
    int64_t tokens_predicted, tokens_evaluated;

    /* OpenAI finish_reason, Anthropic stop_reason, native stop_type or
     * Responses status; "" until seen; truncated to fit. */
    char finish_reason[32];
    char model[96];   /* the model the server says answered; "" until seen */
    bool ended;  /* the API's own end marker arrived ([DONE], message_stop, ...) */
    bool error;  /* an error event or error object was seen */
    char error_message[DIALECT_ERROR_MAX]; /* the first error's message, cut at a character boundary */

    /* Per dialect_token_kind: decoded UTF-8 text bytes, and token events
     * (streams only). */
    uint64_t bytes[DIALECT_TOKEN_KINDS];
    uint64_t token_events[DIALECT_TOKEN_KINDS];
    uint64_t events;     /* SSE events given to dialect_event() */
    uint64_t bad_events; /* ...of which unparsable */
};

/* Receives each piece of generated text, decoded to UTF-8 (len bytes;
 * text is borrowed and valid only during the call). A piece with escapes
 * may come in several consecutive calls: append, do not count calls. */
typedef void (*dialect_token_cb)(void *ctx, enum dialect_token_kind kind, const char *text,
                                 size_t len);

/* Bytes of an event kept around its token string (dialect.c, "Repeats"):
 * a llama-server chunk keeps about 220. */
#define DIALECT_REPEAT_MAX 384
#define DIALECT_REPEAT_NAME 32

struct dialect {
    enum dialect_kind kind;
    struct dialect_facts facts;
    unsigned last_kinds; /* bit (1u << kind) per token kind in the last dialect_event() */
    /* Private: Anthropic reports the prompt in parts, possibly across events. */
    int64_t anth_input, anth_cache_read, anth_cache_create;
    /* Private: the last event read in full, when all it did was one token
     * string: its text before and after that string, and its name. */
    struct {
        bool valid;
        bool named;                   /* it had an event name */
        unsigned char kind;           /* enum dialect_token_kind of its token */
        unsigned char name_len;
        uint16_t head, tail;          /* text[0, head): before the string; text[head, head + tail): after */
        char name[DIALECT_REPEAT_NAME];
        char text[DIALECT_REPEAT_MAX];
        uint64_t hits; /* events read as repeats (tests, bench/tapcost) */
    } repeat;
};

/* The API a request path speaks (a ?query is ignored); DIALECT_UNKNOWN for
 * other paths. Follows llama-server's routes: "/completions" (no /v1) is
 * its native format, not OpenAI's. */
enum dialect_kind dialect_from_path(const char *path, size_t len);

/* The path as a metric label from a fixed set: llama-server's routes
 * ("/v1/chat/completions", "/health", ...; a ?query is ignored), else
 * "other", so that no client can create new label values. Static. */
const char *dialect_route_label(const char *path, size_t len);

/* Stable name of a kind ("openai-chat", ...); never NULL. */
const char *dialect_name(enum dialect_kind k);

/* Stable name of a token kind ("content", "reasoning", "tool"); never NULL. */
const char *dialect_token_kind_name(enum dialect_token_kind k);

/* Prepares d for one response in the given dialect. */
void dialect_init(struct dialect *d, enum dialect_kind kind);

/* Releases d's resources (none today; call it anyway). Facts stay readable. */
void dialect_finish(struct dialect *d);

/* Reads one SSE event. Calls cb (may be NULL) with each token's text and
 * returns how many token events the event carries (0 or more: several
 * choices or kinds in one event count separately), or -EINVAL for an
 * unparsable event (counted in facts.bad_events; the stream goes on). */
int dialect_event(struct dialect *d, const struct sse_event *ev, dialect_token_cb cb, void *ctx);

/* Reads a whole non-streamed JSON response body into d->facts, calling cb
 * with the output text per kind (bytes are counted, token events are not).
 * An error body sets facts.error and returns 0; returns -EINVAL if the
 * body is not a JSON object. */
int dialect_body(struct dialect *d, const char *json, size_t len, dialect_token_cb cb, void *ctx);

/* The server's count of output tokens: usage, else timings.predicted_n,
 * else native tokens_predicted; -1 when the server gave none. */
int64_t dialect_output_tokens(const struct dialect_facts *f);

#endif
