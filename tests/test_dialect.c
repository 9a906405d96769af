/* Unit tests for the dialect module: every real llama-server capture (token
 * events, usage, timings, finish reason, end marker, text), the same with
 * the dialect guessed, non-streamed bodies, and hand-written streams for
 * what the tiny model never produced: reasoning, tool calls, thinking,
 * progress events, errors, truncation, garbage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "captures.h"
#include "check.h"
#include "tap/dialect.h"
#include "tap/record.h"
#include "tap/sse.h"

#define TEXT_MAX 4096

struct run {
    struct dialect d;
    int tokens;        /* sum of dialect_event() results >= 0 */
    int token_sse;     /* SSE events with at least one token */
    int bad;           /* dialect_event() results < 0 */
    int content_first; /* 1-based SSE event index of the first content token */
    int sse_events;
    char text[DIALECT_TOKEN_KINDS][TEXT_MAX];
    size_t text_len[DIALECT_TOKEN_KINDS];
    size_t pieces;
    bool no_repeats; /* read every event in full (dialect.c, "Repeats") */
};

static void on_token(void *ctx, enum dialect_token_kind kind, const char *text, size_t len)
{
    struct run *r = ctx;
    r->pieces++;
    if ((unsigned)kind >= DIALECT_TOKEN_KINDS || r->text_len[kind] + len >= TEXT_MAX)
        return;
    memcpy(r->text[kind] + r->text_len[kind], text, len);
    r->text_len[kind] += len;
    r->text[kind][r->text_len[kind]] = 0;
}

static int on_sse(void *ctx, const struct sse_event *ev)
{
    struct run *r = ctx;
    r->sse_events++;
    if (r->no_repeats)
        r->d.repeat.valid = false;
    int n = dialect_event(&r->d, ev, on_token, r);
    if (n < 0) {
        r->bad++;
        return 0;
    }
    r->tokens += n;
    if (n > 0)
        r->token_sse++;
    if ((r->d.last_kinds & (1u << DIALECT_TOKEN_CONTENT)) && !r->content_first)
        r->content_first = r->sse_events;
    CHECK((n > 0) == (r->d.last_kinds != 0));
    return 0;
}

/* Runs a stream through sse and dialect, fed in pieces of `step` bytes. */
static void run_stream_as(struct run *r, enum dialect_kind kind, const char *text, size_t len,
                          size_t step, bool no_repeats)
{
    memset(r, 0, sizeof(*r));
    r->no_repeats = no_repeats;
    dialect_init(&r->d, kind);
    struct sse_parser p;
    sse_parser_init(&p, 0);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        CHECK_INT(sse_feed(&p, text + off, n, on_sse, r), 0);
    }
    sse_parser_finish(&p);
    dialect_finish(&r->d);
    CHECK_INT(r->d.facts.events, r->sse_events);
    CHECK_INT(r->d.facts.bad_events, r->bad);
}

static void run_stream(struct run *r, enum dialect_kind kind, const char *text, size_t len,
                       size_t step)
{
    run_stream_as(r, kind, text, len, step, false);
}

static void run_text(struct run *r, enum dialect_kind kind, const char *text)
{
    run_stream(r, kind, text, strlen(text), strlen(text) + 1);
}

static void check_sums(const struct run *r)
{
    const struct dialect_facts *f = &r->d.facts;
    CHECK_INT(f->token_events[0] + f->token_events[1] + f->token_events[2], r->tokens);
    for (int k = 0; k < DIALECT_TOKEN_KINDS; k++)
        CHECK_INT(f->bytes[k], r->text_len[k]);
}

/* --- the captures --- */

struct expect {
    const char *file;
    enum dialect_kind kind;
    int events;  /* SSE events */
    int tokens;  /* token events, all content */
    const char *text;
    const char *finish;
    int64_t prompt_tokens, completion_tokens, cached_tokens;
    int64_t prompt_n, predicted_n, cache_n;
    double prompt_ms, predicted_ms;
    int64_t tokens_predicted, tokens_evaluated;
};

static const struct expect streams[] = {
    {"10_chat_stream.txt", DIALECT_OPENAI_CHAT, 27, 24,
     "At adventure, they went back to the isorthank", "length", -1, -1, -1, 92, 24, 0, 11.144,
     14.818, -1, -1},
    {"11_chat_stream_include_usage.txt", DIALECT_OPENAI_CHAT, 28, 24,
     "At adventure, they went back to the isorthank", "length", 92, 24, 91, 1, 24, 91, 1.003,
     16.89, -1, -1},
    {"12_chat_stream_thinking_false.txt", DIALECT_OPENAI_CHAT, 28, 24,
     "Lily started to catch the cat. She wonderfulgi", "length", 109, 24, 0, 109, 24, 0, 11.717,
     14.469, -1, -1},
    {"13_chat_stream_thinking_true.txt", DIALECT_OPENAI_CHAT, 28, 24,
     "At adventure, they went back to the isorthank", "length", 92, 24, 0, 92, 24, 0, 9.482,
     22.382, -1, -1},
    {"20_messages_stream.txt", DIALECT_ANTHROPIC, 29, 24,
     "He was so excited. He felt seelly and exp", "max_tokens", 92, 24, 91, -1, -1, -1, -1.0,
     -1.0, -1, -1},
    {"30_completion_stream.txt", DIALECT_LLAMA_COMPLETION, 25, 24,
     ", there was a little boy named Timmy. Timmy loved to play with his toys. He w", "limit",
     -1, -1, -1, 4, 24, 1, 1.514, 11.273, 24, 5},
    {"31_v1_completions_stream.txt", DIALECT_OPENAI_COMPLETIONS, 26, 24,
     ", there was a little boy named Timmy. Timmy loved to play with his toys. He w", "length",
     5, 24, 4, 1, 24, 4, 0.687, 9.805, -1, -1},
    {"32_v1_completions_stream_include_usage.txt", DIALECT_OPENAI_COMPLETIONS, 26, 24,
     ", there was a little boy named Timmy. Timmy loved to play with his toys. He w", "length",
     5, 24, 4, 1, 24, 4, 0.954, 12.601, -1, -1},
    {"35_v1_responses_stream.txt", DIALECT_RESPONSES, 16, 8, "\"Please, i", "completed", 56, 8,
     55, 1, 8, 55, 18.462, 2.404, -1, -1},
};

static void check_facts(const char *what, const struct expect *e, const struct dialect_facts *f)
{
    fprintf(stderr, "  %s (%s)\n", e->file, what);
    CHECK_STR(f->finish_reason, e->finish);
    CHECK(f->ended);
    CHECK(!f->error);
    CHECK_INT(f->prompt_tokens, e->prompt_tokens);
    CHECK_INT(f->completion_tokens, e->completion_tokens);
    CHECK_INT(f->cached_tokens, e->cached_tokens);
    CHECK_INT(f->prompt_n, e->prompt_n);
    CHECK_INT(f->predicted_n, e->predicted_n);
    CHECK_INT(f->cache_n, e->cache_n);
    CHECK(f->prompt_ms == e->prompt_ms); /* the same decimal text gives the same double */
    CHECK(f->predicted_ms == e->predicted_ms);
    CHECK_INT(f->tokens_predicted, e->tokens_predicted);
    CHECK_INT(f->tokens_evaluated, e->tokens_evaluated);
    CHECK_INT(f->draft_n, -1);
    CHECK_INT(f->draft_n_accepted, -1);
    CHECK_INT(f->bytes[DIALECT_TOKEN_CONTENT], strlen(e->text));
    CHECK_INT(f->bytes[DIALECT_TOKEN_REASONING], 0);
    CHECK_INT(f->bytes[DIALECT_TOKEN_TOOL], 0);
    CHECK_INT(dialect_output_tokens(f), e->tokens); /* the server agrees with our count */
}

static void test_streams(void)
{
    for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
        const struct expect *e = &streams[i];
        size_t len = 0;
        char *body = capture_body(e->file, &len);
        CHECK(body != NULL);
        if (!body)
            continue;
        struct run r;
        /* Declared dialect, guessed dialect, and byte-by-byte feeding all
         * give the same answer. */
        for (int pass = 0; pass < 3; pass++) {
            enum dialect_kind kind = pass == 1 ? DIALECT_UNKNOWN : e->kind;
            run_stream(&r, kind, body, len, pass == 2 ? 1 : len);
            check_facts(pass == 0 ? "declared" : pass == 1 ? "guessed" : "byte by byte", e,
                        &r.d.facts);
            CHECK_INT(r.sse_events, e->events);
            CHECK_INT(r.tokens, e->tokens);
            CHECK_INT(r.token_sse, e->tokens);
            CHECK_INT(r.d.facts.token_events[DIALECT_TOKEN_CONTENT], e->tokens);
            CHECK_INT(r.bad, 0);
            CHECK_STR(r.text[DIALECT_TOKEN_CONTENT], e->text);
            check_sums(&r);
        }
        /* The chat streams open with a role-only event: not a token. */
        if (e->kind == DIALECT_OPENAI_CHAT)
            CHECK_INT(r.content_first, 2);
        free(body);
    }
}

/* 18 keeps the chunked framing; 40_busy_* are two more chat streams. */
static void test_more_chat_streams(void)
{
    static const char *const files[] = {"40_busy_s1.txt", "40_busy_s4.txt"};
    for (size_t i = 0; i < 2; i++) {
        size_t len = 0;
        char *body = capture_body(files[i], &len);
        CHECK(body != NULL);
        if (!body)
            continue;
        struct run r;
        run_stream(&r, DIALECT_OPENAI_CHAT, body, len, 7);
        const struct dialect_facts *f = &r.d.facts;
        CHECK(f->ended);
        CHECK(r.tokens > 0);
        CHECK_INT(r.bad, 0);
        /* Every data line but the role-only one, the finish chunk, the
         * usage chunk (if any) and [DONE] is one token. */
        CHECK_INT(r.tokens, dialect_output_tokens(f));
        CHECK(f->finish_reason[0] != 0);
        fprintf(stderr, "  %s: %d tokens, finish %s\n", files[i], r.tokens, f->finish_reason);
        free(body);
    }
}

/* The Anthropic capture without its `event:` lines: the JSON type alone. */
static void test_anthropic_unnamed(void)
{
    size_t len = 0;
    char *body = capture_body("20_messages_stream.txt", &len);
    CHECK(body != NULL);
    if (!body)
        return;
    char *out = malloc(len + 1);
    size_t n = 0;
    for (const char *p = body; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) + 1 : strlen(p);
        if (strncmp(p, "event:", 6) != 0) {
            memcpy(out + n, p, l);
            n += l;
        }
        p += l;
    }
    struct run r;
    run_stream(&r, DIALECT_ANTHROPIC, out, n, n);
    CHECK_INT(r.tokens, 24);
    CHECK(r.d.facts.ended);
    CHECK_STR(r.d.facts.finish_reason, "max_tokens");
    CHECK_INT(r.d.facts.completion_tokens, 24);
    free(out);
    free(body);
}

static void test_truncated(void)
{
    size_t len = 0;
    char *body = capture_body("10_chat_stream.txt", &len);
    CHECK(body != NULL);
    if (!body)
        return;
    /* Cut in the middle of the 13th event: 11 tokens got through. */
    const char *p = body;
    for (int i = 0; i < 12; i++)
        p = strstr(p, "\n\n") + 2;
    size_t cut = (size_t)(p - body) + 40;
    struct run r;
    run_stream(&r, DIALECT_OPENAI_CHAT, body, cut, cut);
    CHECK_INT(r.tokens, 11);
    CHECK(!r.d.facts.ended);
    CHECK(!r.d.facts.error);
    CHECK_STR(r.d.facts.finish_reason, "");
    CHECK_INT(r.d.facts.predicted_n, -1);
    CHECK_INT(dialect_output_tokens(&r.d.facts), -1);
    /* Everything but [DONE]: all tokens, the finish reason, still not ended. */
    const char *done = strstr(body, "data: [DONE]");
    run_stream(&r, DIALECT_OPENAI_CHAT, body, (size_t)(done - body), len);
    CHECK_INT(r.tokens, 24);
    CHECK_STR(r.d.facts.finish_reason, "length");
    CHECK(!r.d.facts.ended);
    free(body);
}

/* --- bodies --- */

static void test_bodies(void)
{
    struct body_expect {
        const char *file;
        enum dialect_kind kind;
        size_t bytes;
        const char *finish;
        int64_t prompt_tokens, completion_tokens, cached_tokens, predicted_n;
        double predicted_ms;
        int64_t tokens_predicted;
    } const bodies[] = {
        {"14_chat_nonstream.txt", DIALECT_OPENAI_CHAT, 45, "length", 92, 24, 91, 24, 12.865, -1},
        {"21_messages_nonstream.txt", DIALECT_ANTHROPIC, 41, "max_tokens", 92, 24, 91, -1, -1.0,
         -1},
        {"33_completion_nonstream.txt", DIALECT_LLAMA_COMPLETION, 77, "limit", -1, -1, -1, 24,
         10.141, 24},
        {"34_v1_completions_nonstream.txt", DIALECT_OPENAI_COMPLETIONS, 77, "length", 5, 24, 4,
         24, 8.725, -1},
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        const struct body_expect *e = &bodies[i];
        size_t len = 0;
        char *body = capture_body(e->file, &len);
        CHECK(body != NULL);
        if (!body)
            continue;
        for (int pass = 0; pass < 2; pass++) {
            struct run r;
            memset(&r, 0, sizeof(r));
            dialect_init(&r.d, pass ? DIALECT_UNKNOWN : e->kind);
            CHECK_INT(dialect_body(&r.d, body, len, on_token, &r), 0);
            const struct dialect_facts *f = &r.d.facts;
            fprintf(stderr, "  %s (%s)\n", e->file, pass ? "guessed" : "declared");
            CHECK_INT(f->bytes[DIALECT_TOKEN_CONTENT], e->bytes);
            CHECK_INT(r.text_len[DIALECT_TOKEN_CONTENT], e->bytes);
            CHECK_INT(f->token_events[DIALECT_TOKEN_CONTENT], 0);
            CHECK_STR(f->finish_reason, e->finish);
            CHECK(f->ended);
            CHECK(!f->error);
            CHECK_INT(f->prompt_tokens, e->prompt_tokens);
            CHECK_INT(f->completion_tokens, e->completion_tokens);
            CHECK_INT(f->cached_tokens, e->cached_tokens);
            CHECK_INT(f->predicted_n, e->predicted_n);
            CHECK(f->predicted_ms == e->predicted_ms);
            CHECK_INT(f->tokens_predicted, e->tokens_predicted);
            CHECK_INT(dialect_output_tokens(f), 24);
        }
        free(body);
    }

    /* The error bodies llama-server sends even for stream:true requests. */
    static const char *const errs[] = {"54_prompt_exceeds_ctx_stream.txt",
                                       "54b_prompt_exceeds_ctx_messages_stream.txt",
                                       "53_missing_messages.txt"};
    for (size_t i = 0; i < 3; i++) {
        size_t len = 0;
        char *body = capture_body(errs[i], &len);
        CHECK(body != NULL);
        if (!body)
            continue;
        struct dialect d;
        dialect_init(&d, i == 1 ? DIALECT_ANTHROPIC : DIALECT_OPENAI_CHAT);
        CHECK_INT(dialect_body(&d, body, len, NULL, NULL), 0);
        CHECK(d.facts.error);
        CHECK(!d.facts.ended);
        CHECK(strstr(d.facts.error_message, i < 2 ? "exceeds the available context size"
                                                  : "'messages' is required") != NULL);
        free(body);
    }

    struct dialect d;
    dialect_init(&d, DIALECT_OPENAI_CHAT);
    CHECK_INT(dialect_body(&d, "not json", 8, NULL, NULL), -EINVAL);
    CHECK_INT(dialect_body(&d, "[1,2]", 5, NULL, NULL), -EINVAL);
    CHECK_INT(dialect_body(&d, "{\"a\":", 5, NULL, NULL), -EINVAL);
    CHECK_INT(dialect_body(&d, "", 0, NULL, NULL), -EINVAL);
    CHECK(!d.facts.ended);

    /* Hand-written bodies for what the captures lack. */
    struct run r;
    memset(&r, 0, sizeof(r));
    dialect_init(&r.d, DIALECT_ANTHROPIC);
    const char *anth =
        "{\"type\":\"message\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"Hmm\"},"
        "{\"type\":\"text\",\"text\":\"Hi\"},{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\","
        "\"input\":{\"x\":1}}],\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":3,"
        "\"cache_creation_input_tokens\":4,\"output_tokens\":9}}";
    CHECK_INT(dialect_body(&r.d, anth, strlen(anth), on_token, &r), 0);
    CHECK_STR(r.text[DIALECT_TOKEN_REASONING], "Hmm");
    CHECK_STR(r.text[DIALECT_TOKEN_CONTENT], "Hi");
    CHECK_STR(r.text[DIALECT_TOKEN_TOOL], "{\"x\":1}");
    CHECK_STR(r.d.facts.finish_reason, "tool_use");
    CHECK_INT(r.d.facts.prompt_tokens, 7);
    CHECK_INT(r.d.facts.cached_tokens, -1);
    CHECK_INT(r.d.facts.completion_tokens, 9);
    check_sums(&r);

    memset(&r, 0, sizeof(r));
    dialect_init(&r.d, DIALECT_RESPONSES);
    const char *resp =
        "{\"id\":\"r\",\"object\":\"response\",\"status\":\"completed\",\"output\":["
        "{\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"S\"}],"
        "\"content\":[{\"type\":\"reasoning_text\",\"text\":\"think\"}]},"
        "{\"type\":\"function_call\",\"name\":\"f\",\"arguments\":\"{}\"},"
        "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Done.\"}]}],"
        "\"usage\":{\"input_tokens\":10,\"output_tokens\":5,\"input_tokens_details\":"
        "{\"cached_tokens\":8},\"output_tokens_details\":{\"reasoning_tokens\":2}},"
        "\"timings\":{\"predicted_n\":5,\"predicted_ms\":1.5}}";
    CHECK_INT(dialect_body(&r.d, resp, strlen(resp), on_token, &r), 0);
    CHECK_STR(r.text[DIALECT_TOKEN_REASONING], "thinkS");
    CHECK_STR(r.text[DIALECT_TOKEN_CONTENT], "Done.");
    CHECK_STR(r.text[DIALECT_TOKEN_TOOL], "{}");
    CHECK_STR(r.d.facts.finish_reason, "completed");
    CHECK_INT(r.d.facts.prompt_tokens, 10);
    CHECK_INT(r.d.facts.cached_tokens, 8);
    CHECK_INT(r.d.facts.reasoning_tokens, 2);
    CHECK_INT(r.d.facts.predicted_n, 5);
    CHECK(r.d.facts.ended);
    check_sums(&r);
}

/* Reading in place (no tree): escaped text longer than the decoder's
 * buffer arrives whole in pieces, a type longer than any name equals none
 * of them even where it begins with one, text after the object makes the
 * event bad (cJSON used to read the first object and ignore the rest),
 * keys are found past the first 16 members and with escapes, and a
 * tool_use body's input is counted as compact JSON text. */
static void test_in_place(void)
{
    char text[TEXT_MAX];
    size_t n = (size_t)snprintf(text, sizeof(text), "data: {\"choices\":[{\"delta\":{\"content\":\"");
    for (int i = 0; i < 600; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "\\u00e9");
    snprintf(text + n, sizeof(text) - n, "\"}}]}\n\ndata: [DONE]\n\n");
    struct run r;
    run_text(&r, DIALECT_OPENAI_CHAT, text);
    CHECK_INT(r.tokens, 1);
    CHECK_INT(r.d.facts.bytes[DIALECT_TOKEN_CONTENT], 1200);
    CHECK_INT(r.text_len[DIALECT_TOKEN_CONTENT], 1200);
    CHECK(r.pieces > 1);
    bool all = true;
    for (size_t i = 0; i < 1200; i += 2)
        all &= memcmp(r.text[DIALECT_TOKEN_CONTENT] + i, "\xc3\xa9", 2) == 0;
    CHECK(all);

    n = (size_t)snprintf(text, sizeof(text), "event: error_ish\ndata: {\"type\":\"error");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "\xc3\xa9");
    snprintf(text + n, sizeof(text) - n, "\"}\n\n");
    run_text(&r, DIALECT_ANTHROPIC, text);
    CHECK(!r.d.facts.error);
    CHECK_INT(r.bad, 0);

    run_text(&r, DIALECT_OPENAI_CHAT,
             "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]} {\"x\":1}\n\n"
             "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n");
    CHECK_INT(r.bad, 1);
    CHECK_INT(r.tokens, 1);
    CHECK_STR(r.text[DIALECT_TOKEN_CONTENT], "b");

    /* Keys past the members a lookup remembers, and keys with escapes. */
    n = (size_t)snprintf(text, sizeof(text), "data: {");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "\"k%d\":%d,", i, i);
    snprintf(text + n, sizeof(text) - n,
             "\"\\u0063hoices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":"
             "{\"completion_tokens\":1},\"model\":\"m\\u00e9\"}\n\n");
    run_text(&r, DIALECT_UNKNOWN, text);
    CHECK_INT(r.tokens, 1);
    CHECK_INT(r.d.facts.completion_tokens, 1);
    CHECK_STR(r.d.facts.model, "m\xc3\xa9");

    /* Escaped keys among the members a lookup remembers; look-alikes of
     * the same length and first bytes; "finish_reason" differing past
     * the bytes a key's word holds. */
    run_text(&r, DIALECT_UNKNOWN,
             "data: {\"choicez\":[],\"\\u0063hoices\":[{\"finish_reasoX\":\"no\",\"d\\u0065lta\":"
             "{\"contenT\":\"no\",\"c\\u006fntent\":\"yes\"},\"finish_reason\":\"st\\u006fp\"}],"
             "\"usage\":{\"completion_t\\u006fkens\":7}}\n\n");
    CHECK_INT(r.tokens, 1);
    CHECK_STR(r.text[DIALECT_TOKEN_CONTENT], "yes");
    CHECK_STR(r.d.facts.finish_reason, "stop");
    CHECK_INT(r.d.facts.completion_tokens, 7);

    memset(&r, 0, sizeof(r));
    dialect_init(&r.d, DIALECT_ANTHROPIC);
    const char *anth = "{\"content\":[{\"type\":\"tool_use\",\"input\": {\"q\" : \"a b\\\" c\",\n"
                       "  \"n\": [1, 2]}}],\"stop_reason\":\"tool_use\"}";
    CHECK_INT(dialect_body(&r.d, anth, strlen(anth), on_token, &r), 0);
    CHECK_STR(r.text[DIALECT_TOKEN_TOOL], "{\"q\":\"a b\\\" c\",\"n\":[1,2]}");
    CHECK_INT(r.d.facts.bytes[DIALECT_TOKEN_TOOL], strlen(r.text[DIALECT_TOKEN_TOOL]));
}

/* --- hand-written streams --- */

static void test_chat_reasoning_tools(void)
{
    const char *text =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Let me\"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\" think\"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\\u00e9 \"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\","
        "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
        "{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
        "{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n"
        ": ping\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{}}],\"prompt_progress\":{\"total\":100,"
        "\"cache\":0,\"processed\":50,\"time_ms\":12.5}}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"x\",\"reasoning_content\":\"y\"}}]}\n\n"
        "data: {\"choices\":[{\"finish_reason\":\"tool_calls\",\"index\":0,\"delta\":{}}],"
        "\"usage\":null}\n\n"
        "data: {\"choices\":[],\"usage\":{\"completion_tokens\":9,\"prompt_tokens\":100,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":"
        "{\"reasoning_tokens\":2}},\"timings\":{\"prompt_n\":100,\"prompt_ms\":50.5,"
        "\"predicted_n\":9,\"predicted_ms\":90.25,\"cache_n\":0,\"draft_n\":12,"
        "\"draft_n_accepted\":7}}\n\n"
        "data: [DONE]\n\n";
    struct run r;
    run_text(&r, DIALECT_OPENAI_CHAT, text);
    const struct dialect_facts *f = &r.d.facts;
    CHECK_INT(r.tokens, 6);
    CHECK_INT(r.bad, 0);
    CHECK_INT(f->token_events[DIALECT_TOKEN_REASONING], 3);
    CHECK_INT(f->token_events[DIALECT_TOKEN_CONTENT], 1);
    CHECK_INT(f->token_events[DIALECT_TOKEN_TOOL], 2);
    CHECK_STR(r.text[DIALECT_TOKEN_REASONING], "Let me thinky"); /* reasoning_content wins */
    CHECK_STR(r.text[DIALECT_TOKEN_CONTENT], "caf\xc3\xa9 ");
    CHECK_INT(f->bytes[DIALECT_TOKEN_CONTENT], 6); /* decoded: é is 2 bytes */
    CHECK_STR(r.text[DIALECT_TOKEN_TOOL], "{\"city\":\"Paris\"}");
    CHECK_INT(r.content_first, 5);
    CHECK_STR(f->finish_reason, "tool_calls");
    CHECK_INT(f->completion_tokens, 9);
    CHECK_INT(f->prompt_tokens, 100);
    CHECK_INT(f->cached_tokens, 0);
    CHECK_INT(f->reasoning_tokens, 2);
    CHECK_INT(f->prompt_n, 100);
    CHECK(f->prompt_ms == 50.5);
    CHECK(f->predicted_ms == 90.25);
    CHECK_INT(f->draft_n, 12);
    CHECK_INT(f->draft_n_accepted, 7);
    CHECK(f->ended);
    CHECK(!f->error);
    check_sums(&r);

    /* Two kinds and two choices in one event count separately. */
    struct dialect d;
    dialect_init(&d, DIALECT_OPENAI_CHAT);
    const char *both = "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"a\","
                       "\"content\":\"b\"}},{\"index\":1,\"delta\":{\"content\":\"c\"}}]}";
    struct sse_event ev = {.data = both, .data_len = strlen(both)};
    CHECK_INT(dialect_event(&d, &ev, NULL, NULL), 3);
    CHECK_INT(d.last_kinds, (1u << DIALECT_TOKEN_CONTENT) | (1u << DIALECT_TOKEN_REASONING));
    CHECK_INT(d.facts.token_events[DIALECT_TOKEN_CONTENT], 2);
    dialect_finish(&d);
}

static void test_anthropic_thinking_tools(void)
{
    const char *text =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\","
        "\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":10,"
        "\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
        "\"thinking\",\"thinking\":\"\"}}\n\n"
        "event: ping\ndata: {\"type\": \"ping\"}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"thinking_delta\",\"thinking\":\"Hmm.\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"signature_delta\",\"signature\":\"abc\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
        "\"tool_use\",\"id\":\"t1\",\"name\":\"calc\",\"input\":{}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"{\\\"x\\\": 1}\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
        "\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    struct run r;
    run_text(&r, DIALECT_ANTHROPIC, text);
    const struct dialect_facts *f = &r.d.facts;
    CHECK_INT(r.sse_events, 12);
    CHECK_INT(r.tokens, 2);
    CHECK_INT(r.bad, 0);
    CHECK_STR(r.text[DIALECT_TOKEN_REASONING], "Hmm.");
    CHECK_STR(r.text[DIALECT_TOKEN_TOOL], "{\"x\": 1}");
    CHECK_INT(f->bytes[DIALECT_TOKEN_CONTENT], 0);
    CHECK_INT(f->prompt_tokens, 17);
    CHECK_INT(f->cached_tokens, 5);
    CHECK_INT(f->completion_tokens, 7);
    CHECK_STR(f->finish_reason, "tool_use");
    CHECK(f->ended);
    CHECK(!f->error);
    check_sums(&r);
}

static void test_errors(void)
{
    /* Anthropic API style error event mid-stream. */
    struct run r;
    run_text(&r, DIALECT_ANTHROPIC,
             "event: content_block_delta\n"
             "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
             "\"text_delta\",\"text\":\"Hi\"}}\n\n"
             "event: error\n"
             "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
             "\"message\":\"Overloaded\"}}\n\n");
    CHECK_INT(r.tokens, 1);
    CHECK(r.d.facts.error);
    CHECK_STR(r.d.facts.error_message, "Overloaded");
    CHECK(!r.d.facts.ended);

    /* llama-server's Anthropic error: the bare error object. The first
     * error's message is kept. */
    run_text(&r, DIALECT_ANTHROPIC,
             "event: error\ndata: {\"code\":500,\"message\":\"boom\",\"type\":\"server_error\"}\n\n"
             "event: error\ndata: {\"code\":500,\"message\":\"later\",\"type\":\"server_error\"}\n\n");
    CHECK(r.d.facts.error);
    CHECK_STR(r.d.facts.error_message, "boom");
    CHECK_INT(r.bad, 0);

    /* An error event whose data is not JSON. */
    run_text(&r, DIALECT_ANTHROPIC, "event: error\ndata: upstream exploded\n\n");
    CHECK(r.d.facts.error);
    CHECK_STR(r.d.facts.error_message, "upstream exploded");
    CHECK_INT(r.bad, 0);

    /* llama-server's OpenAI-style error in a data line. */
    run_text(&r, DIALECT_OPENAI_CHAT,
             "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\"}}]}\n\n"
             "data: {\"error\":{\"code\":500,\"message\":\"context shift is disabled\","
             "\"type\":\"server_error\"}}\n\n");
    CHECK_INT(r.tokens, 1);
    CHECK(r.d.facts.error);
    CHECK_STR(r.d.facts.error_message, "context shift is disabled");
    CHECK(!r.d.facts.ended);

    /* A long message is cut at a character boundary. */
    char big[600];
    int n = snprintf(big, sizeof(big), "data: {\"error\":\"");
    for (int i = 0; i < 200; i++)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "\xc3\xa9");
    snprintf(big + n, sizeof(big) - (size_t)n, "\"}\n\n");
    run_text(&r, DIALECT_OPENAI_CHAT, big);
    CHECK(r.d.facts.error);
    CHECK_INT(strlen(r.d.facts.error_message), DIALECT_ERROR_MAX - 2);
    /* ...and a record keeps all of it (it cut again at byte 159 before). */
    struct record rec;
    record_init(&rec);
    record_take_facts(&rec, &r.d.facts);
    CHECK_STR(rec.error, r.d.facts.error_message);
    record_finish(&rec);

    /* Responses: error event and a failed response. */
    run_text(&r, DIALECT_RESPONSES,
             "event: response.reasoning_text.delta\n"
             "data: {\"type\":\"response.reasoning_text.delta\",\"delta\":\"think\"}\n\n"
             "event: response.reasoning_summary_text.delta\n"
             "data: {\"type\":\"response.reasoning_summary_text.delta\",\"delta\":\"sum\"}\n\n"
             "event: response.output_text.delta\n"
             "data: {\"type\":\"response.output_text.delta\",\"delta\":\"\"}\n\n"
             "event: response.function_call_arguments.delta\n"
             "data: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{}\"}\n\n"
             "event: response.failed\n"
             "data: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\","
             "\"error\":{\"code\":\"server_error\",\"message\":\"bad\"}}}\n\n");
    CHECK_INT(r.tokens, 3);
    CHECK_STR(r.text[DIALECT_TOKEN_REASONING], "thinksum");
    CHECK_STR(r.text[DIALECT_TOKEN_TOOL], "{}");
    CHECK(r.d.facts.error);
    CHECK_STR(r.d.facts.error_message, "bad");
    CHECK_STR(r.d.facts.finish_reason, "failed");
    CHECK(r.d.facts.ended);

    run_text(&r, DIALECT_RESPONSES,
             "event: error\n"
             "data: {\"type\":\"error\",\"code\":\"rate_limit\",\"message\":\"slow down\"}\n\n");
    CHECK(r.d.facts.error);
    CHECK_STR(r.d.facts.error_message, "slow down");
}

static void test_native_progress(void)
{
    struct run r;
    run_text(&r, DIALECT_LLAMA_COMPLETION,
             "data: {\"content\":\"\",\"stop\":false,\"prompt_progress\":{\"total\":10,\"cache\":0,"
             "\"processed\":5,\"time_ms\":1.0}}\n\n"
             "data: {\"content\":\"\",\"stop\":false,\"prompt_progress\":{\"total\":10,\"cache\":0,"
             "\"processed\":10,\"time_ms\":2.0}}\n\n"
             "data: {\"content\":\"x\",\"stop\":false,\"tokens_predicted\":1}\n\n"
             "data: {\"content\":\"y\",\"stop\":false,\"tokens_predicted\":2}\n\n"
             "data: {\"content\":\"\",\"stop\":true,\"stop_type\":\"eos\",\"tokens_predicted\":2,"
             "\"tokens_evaluated\":10,\"timings\":{\"predicted_n\":2,\"predicted_ms\":3.25,"
             "\"draft_n\":4,\"draft_n_accepted\":1}}\n\n");
    CHECK_INT(r.tokens, 2);
    CHECK_STR(r.text[DIALECT_TOKEN_CONTENT], "xy");
    CHECK_INT(r.content_first, 3);
    CHECK(r.d.facts.ended);
    CHECK_STR(r.d.facts.finish_reason, "eos");
    CHECK_INT(r.d.facts.tokens_predicted, 2);
    CHECK_INT(r.d.facts.tokens_evaluated, 10);
    CHECK_INT(r.d.facts.draft_n, 4);
    CHECK_INT(r.d.facts.draft_n_accepted, 1);
    CHECK(r.d.facts.predicted_ms == 3.25);
}

static void test_garbage(void)
{
    struct run r;
    run_text(&r, DIALECT_OPENAI_CHAT,
             "data: not json\n\n"
             "data: {broken\n\n"
             "data: [1,2]\n\n"
             "data:\n\n"
             "data: {\"choices\":\"nope\",\"usage\":7,\"timings\":[1],\"error\":null}\n\n"
             "data: {\"choices\":[{\"delta\":{\"content\":5,\"tool_calls\":{\"a\":1}},"
             "\"finish_reason\":3}],\"usage\":{\"prompt_tokens\":\"x\",\"completion_tokens\":1e300}}\n\n"
             "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n");
    CHECK_INT(r.bad, 4);
    CHECK_INT(r.tokens, 1);
    CHECK_STR(r.text[DIALECT_TOKEN_CONTENT], "ok");
    CHECK(!r.d.facts.error);
    CHECK(!r.d.facts.ended);
    CHECK_STR(r.d.facts.finish_reason, "");
    CHECK_INT(r.d.facts.prompt_tokens, -1);
    CHECK_INT(r.d.facts.completion_tokens, -1);

    /* Every dialect survives every kind of junk, including deep nesting. */
    char deep[3000];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof(deep), "data: {\"a\":");
    for (int i = 0; i < 1200; i++)
        deep[n++] = '[';
    memcpy(deep + n, "\n\n", 3);
    for (int k = DIALECT_UNKNOWN; k <= DIALECT_RESPONSES; k++) {
        run_text(&r, (enum dialect_kind)k,
                 "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n"
                 "event: response.completed\ndata: {\"type\":\"response.completed\","
                 "\"response\":7}\n\n"
                 "event: message_start\ndata: {\"type\":\"message_start\",\"message\":[]}\n\n"
                 "data: {\"type\":7,\"stop\":\"yes\",\"content\":{}}\n\n"
                 "data: \x01\x02\n\n");
        CHECK_INT(r.bad, 1);
        CHECK_INT(r.tokens, 0);
        run_text(&r, (enum dialect_kind)k, deep);
        CHECK_INT(r.bad, 1);
    }
}

static void test_paths(void)
{
    static const struct {
        const char *path;
        enum dialect_kind kind;
    } cases[] = {
        {"/v1/chat/completions", DIALECT_OPENAI_CHAT},
        {"/chat/completions?x=1", DIALECT_OPENAI_CHAT},
        {"/v1/completions", DIALECT_OPENAI_COMPLETIONS},
        {"/completion", DIALECT_LLAMA_COMPLETION},
        {"/completions", DIALECT_LLAMA_COMPLETION},
        {"/v1/messages?beta=true", DIALECT_ANTHROPIC},
        {"/v1/messages/count_tokens", DIALECT_UNKNOWN},
        {"/v1/responses", DIALECT_RESPONSES},
        {"/responses", DIALECT_RESPONSES},
        {"/v1/chat/completions/", DIALECT_UNKNOWN},
        {"/v1/chat", DIALECT_UNKNOWN},
        {"", DIALECT_UNKNOWN},
        {"?", DIALECT_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_INT(dialect_from_path(cases[i].path, strlen(cases[i].path)), cases[i].kind);
    /* len bounds the path: no NUL needed. */
    CHECK_INT(dialect_from_path("/completionXYZ", 11), DIALECT_LLAMA_COMPLETION);

    CHECK_STR(dialect_name(DIALECT_OPENAI_CHAT), "openai-chat");
    CHECK_STR(dialect_name(DIALECT_OPENAI_COMPLETIONS), "openai-completions");
    CHECK_STR(dialect_name(DIALECT_LLAMA_COMPLETION), "llama-completion");
    CHECK_STR(dialect_name(DIALECT_ANTHROPIC), "anthropic");
    CHECK_STR(dialect_name(DIALECT_RESPONSES), "responses");
    CHECK_STR(dialect_name(DIALECT_UNKNOWN), "unknown");
    CHECK_STR(dialect_name((enum dialect_kind)99), "unknown");
    CHECK_STR(dialect_token_kind_name(DIALECT_TOKEN_CONTENT), "content");
    CHECK_STR(dialect_token_kind_name(DIALECT_TOKEN_REASONING), "reasoning");
    CHECK_STR(dialect_token_kind_name(DIALECT_TOKEN_TOOL), "tool");

    struct dialect d;
    dialect_init(&d, DIALECT_UNKNOWN);
    CHECK_INT(dialect_output_tokens(&d.facts), -1);
    d.facts.tokens_predicted = 3;
    CHECK_INT(dialect_output_tokens(&d.facts), 3);
    d.facts.predicted_n = 4;
    CHECK_INT(dialect_output_tokens(&d.facts), 4);
    d.facts.completion_tokens = 5;
    CHECK_INT(dialect_output_tokens(&d.facts), 5);
    dialect_finish(&d);
}

/* A stream read with repeats and read with every event in full gives the
 * same facts, counts and text; returns how many events were repeats. */
static int same_with_repeats(enum dialect_kind kind, const char *text, size_t len)
{
    static struct run a, b;
    run_stream_as(&a, kind, text, len, len + 1, false);
    run_stream_as(&b, kind, text, len, len + 1, true);
    CHECK(memcmp(&a.d.facts, &b.d.facts, sizeof(a.d.facts)) == 0);
    CHECK_INT(a.tokens, b.tokens);
    CHECK_INT(a.token_sse, b.token_sse);
    CHECK_INT(a.bad, b.bad);
    CHECK_INT(a.content_first, b.content_first);
    CHECK_INT(a.pieces, b.pieces);
    for (int k = 0; k < DIALECT_TOKEN_KINDS; k++)
        CHECK_STR(a.text[k], b.text[k]);
    CHECK_INT(b.d.repeat.hits, 0);
    return (int)a.d.repeat.hits;
}

static void test_repeats(void)
{
    /* The captures: after the first token event, llama-server's token
     * events repeat the one before but for their text. */
    for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
        size_t len = 0;
        char *body = capture_body(streams[i].file, &len);
        CHECK(body != NULL);
        if (!body)
            continue;
        int ready = same_with_repeats(streams[i].kind, body, len);
        same_with_repeats(DIALECT_UNKNOWN, body, len);
        fprintf(stderr, "  %s: %d of %d token events read as repeats\n", streams[i].file, ready,
                streams[i].tokens);
        if (streams[i].kind == DIALECT_LLAMA_COMPLETION) /* tokens_predicted counts up */
            CHECK_INT(ready, 0);
        else /* all but the first */
            CHECK_INT(ready, streams[i].tokens - 1);
        free(body);
    }
    /* Events that look like a repeat and are not, each after one that is:
     * an empty string (the reader then takes "reasoning"); another value
     * in the string's place; more JSON in it; a bad escape; a raw control
     * byte; another event name (error, ping, none); a finish reason that
     * changes and changes back. A repeat with an escape in its string. */
    static const char *const cases[] = {
        "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"a\",\"reasoning\":\"R\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"b\",\"reasoning\":\"R\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"\",\"reasoning\":\"R\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":17}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"c\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"x\",\"content\":\"y\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"d\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"x\",\"role\":\"y\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"e\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"\\q\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\tb\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"f\"}}]}\n\n"
        "event: error\ndata: {\"choices\":[{\"delta\":{\"content\":\"g\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"caf\\u00e9\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"h\"},\"finish_reason\":\"stop\"}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"i\"},\"finish_reason\":\"length\"}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"j\"},\"finish_reason\":\"stop\"}]}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"b\"}}\n\n"
        "event: ping\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"c\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"d\"}}\n\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"e\"}}\n\n",
    };
    static const int expect_ready[] = {1, 2, 1};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int k = 0; k < 6; k++) {
            int ready = same_with_repeats((enum dialect_kind)k, cases[i], strlen(cases[i]));
            if (k == DIALECT_UNKNOWN)
                CHECK_INT(ready, expect_ready[i]);
        }
    }
}

int main(void)
{
    test_streams();
    test_more_chat_streams();
    test_anthropic_unnamed();
    test_truncated();
    test_bodies();
    test_in_place();
    test_chat_reasoning_tools();
    test_anthropic_thinking_tools();
    test_errors();
    test_native_progress();
    test_garbage();
    test_paths();
    test_repeats();
    return check_done("test_dialect");
}
