/* libFuzzer target for the dialect decoder (tap/dialect). Input: a mode
 * byte, then a response body. The mode picks the dialect (the five APIs
 * and the per-event guess) and whether the body is an event stream (cut
 * into events by the SSE parser, as the tap does) or one JSON body.
 * Checks: no crash, leak or hang; an event gives a token count or
 * -EINVAL; the counts returned add up to facts.token_events, the text
 * handed to the callback to facts.bytes; events and bad_events count what
 * was fed; the fact strings stay NUL-terminated; a second decoder that
 * reads every event in full (no repeats, dialect.c) returns the same
 * counts, the same text and the same facts. Built with -Dfuzz=true
 * (clang). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "fuzz_util.h"
#include "tap/dialect.h"
#include "tap/sse.h"

struct run {
    struct dialect d;
    uint64_t bytes[DIALECT_TOKEN_KINDS];
    uint64_t tokens, events, bad;
    uint64_t hash[DIALECT_TOKEN_KINDS]; /* FNV-1a of the text per kind */
    struct run *plain; /* owned: the same input with every event read in full */
};

static void on_text(void *ctx, enum dialect_token_kind kind, const char *text, size_t len)
{
    struct run *r = ctx;
    for (size_t i = 0; i < len; i++)
        r->hash[kind] = (r->hash[kind] ^ (unsigned char)text[i]) * 0x100000001b3ull;
    FUZZ_ASSERT((unsigned)kind < DIALECT_TOKEN_KINDS);
    FUZZ_ASSERT(text != NULL || len == 0);
    if (len) { /* the whole view must be readable (ASan checks) */
        volatile char c = text[0];
        c = text[len - 1];
        (void)c;
    }
    r->bytes[kind] += len;
}

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct run *r = ctx;
    int n = dialect_event(&r->d, ev, on_text, r);
    FUZZ_ASSERT(n >= 0 || n == -EINVAL);
    if (r->plain) {
        r->plain->d.repeat.valid = false;
        FUZZ_ASSERT(dialect_event(&r->plain->d, ev, on_text, r->plain) == n);
    }
    r->events++;
    if (n < 0)
        r->bad++;
    else
        r->tokens += (uint64_t)n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const enum dialect_kind kinds[6] = {
        DIALECT_UNKNOWN,          DIALECT_OPENAI_CHAT, DIALECT_OPENAI_COMPLETIONS,
        DIALECT_LLAMA_COMPLETION, DIALECT_ANTHROPIC,   DIALECT_RESPONSES,
    };
    enum dialect_kind kind = kinds[(data[0] & 0x7f) % 6];
    bool body = data[0] & 0x80;
    const char *p = (const char *)data + 1;
    size_t len = size - 1;

    static struct run r, plain;
    memset(&r, 0, sizeof(r));
    memset(&plain, 0, sizeof(plain));
    dialect_init(&r.d, kind);
    dialect_init(&plain.d, kind);
    r.plain = body ? NULL : &plain;
    const struct dialect_facts *f = &r.d.facts;
    if (body) {
        int e = dialect_body(&r.d, p, len, on_text, &r);
        FUZZ_ASSERT(e == 0 || e == -EINVAL);
        FUZZ_ASSERT(f->events == 0);
    } else {
        struct sse_parser sse;
        sse_parser_init(&sse, 64 * 1024);
        (void)sse_feed(&sse, p, len, on_event, &r);
        sse_parser_finish(&sse);
        FUZZ_ASSERT(f->events == r.events);
        FUZZ_ASSERT(f->bad_events == r.bad);
        uint64_t sum = 0;
        for (int k = 0; k < DIALECT_TOKEN_KINDS; k++)
            sum += f->token_events[k];
        FUZZ_ASSERT(sum == r.tokens);
    }
    for (int k = 0; k < DIALECT_TOKEN_KINDS; k++)
        FUZZ_ASSERT(f->bytes[k] == r.bytes[k]);
    if (r.plain) {
        FUZZ_ASSERT(memcmp(f, &plain.d.facts, sizeof(*f)) == 0);
        FUZZ_ASSERT(memcmp(r.hash, plain.hash, sizeof(r.hash)) == 0);
    }
    FUZZ_ASSERT(memchr(f->finish_reason, '\0', sizeof(f->finish_reason)) != NULL);
    FUZZ_ASSERT(memchr(f->error_message, '\0', sizeof(f->error_message)) != NULL);
    FUZZ_ASSERT(f->error || f->error_message[0] == '\0');
    (void)dialect_output_tokens(f);
    (void)dialect_name(r.d.kind);
    dialect_finish(&r.d);
    return 0;
}
