/* Unit tests for the stream tap and the record: the real llama-server
 * captures (fixtures/llama-server) read by a tap with synthetic times, one
 * table row per case: TTFT, inter-token gaps, time per output token, E2E,
 * slot wait and prefill, and the exchange's verdict (tap_outcome) for complete, truncated,
 * error-status, timed-out, refused and client-left exchanges; and
 * record_begin, the start every record shares; and tapq, which holds a
 * burst's bytes back from the taps and must change nothing they measure. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "captures.h"
#include "check.h"
#include "tap/record.h"
#include "tap/tap.h"
#include "tap/tapq.h"
#include "wire/http.h"
#include "wire/upstream.h"

/* Synthetic clock: the request's last byte at T0, the response head at
 * T0 + HEAD_AFTER, read i at T0 + FIRST_READ + i * STEP, every odd read
 * JITTER later (so gaps alternate STEP + JITTER and STEP - JITTER), and
 * the end END_AFTER after the last read. */
#define T0 ((usec_t)1000000)
#define HEAD_AFTER 3000
#define FIRST_READ 10000
#define STEP 1000
#define JITTER 300
#define END_AFTER 500

static usec_t read_time(size_t i)
{
    return T0 + FIRST_READ + i * STEP + (i % 2) * JITTER;
}

#define ALL SIZE_MAX
#define MAX_READS 64

/* How the capture's body reaches the tap. */
enum reads {
    BY_EVENT, /* a de-chunked capture: one read per SSE event (the whole body if not SSE) */
    BY_CHUNK, /* the raw wire (18_chat_stream_rawwire): one read per HTTP chunk */
};

struct tap_case {
    const char *capture;  /* NULL: no response head ever came */
    const char *path;     /* the request's path, for record_begin */
    enum reads reads;
    size_t n_reads;       /* reads fed before the end (ALL: every one) */
    int err;              /* how the upstream side ended */
    bool client_left;
    /* Expected. */
    enum record_outcome outcome;
    uint64_t token_events, output_tokens;
    usec_t ttft, tpot;    /* µs after T0; 0 = none */
    size_t n_gaps;
    uint32_t first_gap;   /* µs, 0 = none */
};

static const struct tap_case cases[] = {
    /* Complete streams: read 0 is the role-only delta; tokens in reads 1..24,
     * then the finish chunk (timings.predicted_n 24) and [DONE]. TTFT is
     * read 1 (11300), TPOT (34000 - 11300) / 23. */
    {"10_chat_stream.txt", "/v1/chat/completions?x=1", BY_EVENT, ALL, 0, false,
     RECORD_OK, 24, 24, 11300, 986, 23, 700},
    /* The same with a usage chunk (completion_tokens 24) before [DONE]. */
    {"11_chat_stream_include_usage.txt", "/v1/chat/completions", BY_EVENT, ALL, 0, false,
     RECORD_OK, 24, 24, 11300, 986, 23, 700},
    /* As it came off the socket: the first chunk holds the role line and the
     * first token, so the first token is read 0; 8 tokens in reads 0..7. */
    {"18_chat_stream_rawwire.txt", "/v1/chat/completions", BY_CHUNK, ALL, 0, false,
     RECORD_OK, 8, 8, 10000, 1042, 7, 1300},
    /* Anthropic: message_start, content_block_start, tokens in 2..25,
     * message_delta (output_tokens 24), message_stop. */
    {"20_messages_stream.txt", "/v1/messages", BY_EVENT, ALL, 0, false,
     RECORD_OK, 24, 24, 12000, 1013, 23, 1300},
    /* Native /completion: tokens from read 0, the stop:true event last. */
    {"30_completion_stream.txt", "/completion", BY_EVENT, ALL, 0, false,
     RECORD_OK, 24, 24, 10000, 1013, 23, 1300},
    {"31_v1_completions_stream.txt", "/v1/completions", BY_EVENT, ALL, 0, false,
     RECORD_OK, 24, 24, 10000, 1013, 23, 1300},
    /* Responses: four set-up events, 8 output_text deltas in 4..11. */
    {"35_v1_responses_stream.txt", "/v1/responses", BY_EVENT, ALL, 0, false,
     RECORD_OK, 8, 8, 14000, 1042, 7, 1300},
    /* Not streamed: the whole body is the first token; usage says 24. */
    {"14_chat_nonstream.txt", "/v1/chat/completions", BY_EVENT, ALL, 0, false,
     RECORD_OK, 0, 24, 10000, 0, 0, 0},

    /* Truncated: the body ended (cleanly, for HTTP) before [DONE]. */
    {"10_chat_stream.txt", "/v1/chat/completions", BY_EVENT, 12, 0, false,
     RECORD_TRUNCATED, 11, 11, 11300, 1000, 10, 700},
    /* The upstream closed mid-stream. */
    {"31_v1_completions_stream.txt", "/v1/completions", BY_EVENT, 10, UPSTREAM_ERR_CLOSED, false,
     RECORD_TRUNCATED, 10, 10, 10000, 1033, 9, 1300},
    /* The stream stalled and timed out. */
    {"30_completion_stream.txt", "/completion", BY_EVENT, 10, UPSTREAM_ERR_TIMEOUT, false,
     RECORD_TIMEOUT, 10, 10, 10000, 1033, 9, 1300},

    /* Error statuses, as plain JSON even when a stream was asked for. */
    {"54_prompt_exceeds_ctx_stream.txt", "/v1/chat/completions", BY_EVENT, ALL, 0, false,
     RECORD_HTTP_ERROR, 0, 0, 0, 0, 0, 0},
    {"50_invalid_json.txt", "/v1/chat/completions", BY_EVENT, ALL, 0, false,
     RECORD_HTTP_ERROR, 0, 0, 0, 0, 0, 0},

    /* The client left mid-stream. */
    {"30_completion_stream.txt", "/completion", BY_EVENT, 6, 0, true,
     RECORD_CLIENT_ABORT, 6, 6, 10000, 1060, 5, 1300},
    /* The client left after the final event (httpx closes after [DONE],
     * before the chunked terminator): the answer was whole, ok. */
    {"10_chat_stream.txt", "/v1/chat/completions", BY_EVENT, ALL, 0, true,
     RECORD_OK, 24, 24, 11300, 986, 23, 700},
    {"20_messages_stream.txt", "/v1/messages", BY_EVENT, ALL, 0, true,
     RECORD_OK, 24, 24, 12000, 1013, 23, 1300},
    {"30_completion_stream.txt", "/completion", BY_EVENT, ALL, 0, true,
     RECORD_OK, 24, 24, 10000, 1013, 23, 1300},
    {"35_v1_responses_stream.txt", "/v1/responses", BY_EVENT, ALL, 0, true,
     RECORD_OK, 8, 8, 14000, 1042, 7, 1300},
    /* ...but not one before it: the finish chunk came, [DONE] did not. */
    {"10_chat_stream.txt", "/v1/chat/completions", BY_EVENT, 26, 0, true,
     RECORD_CLIENT_ABORT, 24, 24, 11300, 986, 23, 700},

    /* No response head at all. */
    {NULL, "/v1/chat/completions", BY_EVENT, 0, UPSTREAM_ERR_REFUSED, false,
     RECORD_UPSTREAM_ERROR, 0, 0, 0, 0, 0, 0},
    {NULL, "/v1/chat/completions", BY_EVENT, 0, UPSTREAM_ERR_CLOSED, false,
     RECORD_UPSTREAM_ERROR, 0, 0, 0, 0, 0, 0},
    {NULL, "/v1/chat/completions", BY_EVENT, 0, UPSTREAM_ERR_CONNECT_TIMEOUT, false,
     RECORD_TIMEOUT, 0, 0, 0, 0, 0, 0},
    {NULL, "/v1/chat/completions", BY_EVENT, 0, UPSTREAM_ERR_QUEUE_FULL, false,
     RECORD_UPSTREAM_ERROR, 0, 0, 0, 0, 0, 0},
};

struct response {
    char *text;           /* owned: the whole capture */
    struct http_parser *parser; /* owned: holds the head */
    const struct http_head *head; /* borrowed from parser */
    const char *read_p[MAX_READS];
    size_t read_len[MAX_READS];
    size_t n_reads;
};

static int on_chunk(void *ctx, const char *data, size_t len)
{
    struct response *res = ctx;
    if (res->n_reads == MAX_READS)
        return -ENOBUFS;
    res->read_p[res->n_reads] = data;
    res->read_len[res->n_reads++] = len;
    return 0;
}

/* Reads capture name: its head, and its body cut into reads. 0 or -1. */
static int load(struct response *res, const char *name, enum reads how)
{
    char dir[1024], path[2048];
    size_t len = 0, used = 0;
    memset(res, 0, sizeof(*res));
    snprintf(path, sizeof(path), "%s/%s", capture_dir(dir, sizeof(dir)), name);
    res->text = capture_read_file(path, &len);
    const char *sep = res->text ? strstr(res->text, "\r\n\r\n") : NULL;
    struct http_limits limits = {.max_head_bytes = 65536};
    res->parser = http_parser_new(HTTP_KIND_RESPONSE, &limits, on_chunk, res);
    if (!sep || !res->parser)
        return -1;
    size_t head_len = (size_t)(sep + 4 - res->text);
    if (http_parser_feed(res->parser, res->text, head_len, &used) != HTTP_STEP_HEAD)
        return -1;
    res->head = http_parser_head(res->parser);
    const char *body = res->text + head_len;
    size_t body_len = len - head_len;
    if (how == BY_CHUNK) {
        /* The parser de-chunks; each chunk arrives as one view. */
        if (http_parser_resume(res->parser, false) != HTTP_STEP_MORE ||
            http_parser_feed(res->parser, body, body_len, &used) != HTTP_STEP_DONE)
            return -1;
        return 0;
    }
    while (body_len > 0 && res->n_reads < MAX_READS) {
        const char *end = strstr(body, "\n\n");
        size_t n = end ? (size_t)(end + 2 - body) : body_len;
        on_chunk(res, body, n);
        body += n;
        body_len -= n;
    }
    return body_len == 0 ? 0 : -1;
}

static void unload(struct response *res)
{
    http_parser_free(res->parser);
    free(res->text);
}

static void run_case(const struct tap_case *c)
{
    struct response res = {0};
    if (c->capture && load(&res, c->capture, c->reads) < 0) {
        fprintf(stderr, "cannot read capture %s\n", c->capture);
        CHECK(false);
        unload(&res);
        return;
    }
    struct record r;
    record_begin(&r, 1, "POST", c->path, strlen(c->path), T0 - 2000);
    r.t_start = T0;
    struct tap t;
    tap_init(&t, &r, r.dialect);
    usec_t end = T0 + HEAD_AFTER + END_AFTER;
    if (c->capture) {
        tap_head(&t, res.head, T0 + HEAD_AFTER);
        size_t n = c->n_reads < res.n_reads ? c->n_reads : res.n_reads;
        for (size_t i = 0; i < n; i++) {
            tap_body(&t, res.read_p[i], res.read_len[i], read_time(i));
            end = read_time(i) + END_AFTER;
        }
        CHECK_INT(r.status, res.head->status);
    }
    tap_end(&t, end);

    int failures = check_failures;
    CHECK_STR(record_outcome_name(tap_outcome(&t, c->err, c->client_left)),
              record_outcome_name(c->outcome));
    CHECK_INT(r.token_events, c->token_events);
    CHECK_INT(record_output_tokens(&r), c->output_tokens);
    CHECK_INT(record_ttft(&r), c->ttft);
    CHECK_INT(record_tpot(&r), c->tpot);
    CHECK_INT(record_e2e(&r), end - T0);
    CHECK_INT(r.n_gaps, c->n_gaps);
    CHECK_INT(r.n_gaps ? r.gaps[0] : 0, c->first_gap);
    /* Each gap is the schedule's, and together they span first to last. */
    uint64_t sum = 0;
    for (size_t i = 0; i < r.n_gaps; i++) {
        CHECK(r.gaps[i] == STEP + JITTER || r.gaps[i] == STEP - JITTER);
        sum += r.gaps[i];
    }
    CHECK_INT(sum, r.t_last_token - r.t_first_token);
    if (c->ttft && c->token_events)
        CHECK_INT(record_ttfc(&r), c->ttft); /* the tiny model never reasons */
    /* Slot wait and prefill split TTFT at the head, for streams only. */
    CHECK_INT(record_slot_wait(&r), r.stream ? HEAD_AFTER : -1);
    CHECK_INT(record_prefill(&r), r.stream && c->ttft ? (int64_t)c->ttft - HEAD_AFTER : -1);
    if (check_failures > failures)
        fprintf(stderr, "  in the case %s %s, %zu reads, err %d%s\n",
                c->capture ? c->capture : "(no response)", c->path,
                c->n_reads == ALL ? res.n_reads : c->n_reads, c->err,
                c->client_left ? ", client left" : "");

    tap_finish(&t);
    record_finish(&r);
    unload(&res);
}

/* What every exchange knows before it is sent. */
static void test_record_begin(void)
{
    struct record r;
    record_begin(&r, 42, "POST", "/v1/messages?beta=true", 22, 777);
    CHECK_INT(r.id, 42);
    CHECK_STR(r.method, "POST");
    CHECK_STR(r.route, "/v1/messages");
    CHECK_INT(r.dialect, DIALECT_ANTHROPIC);
    CHECK_INT(r.t_received, 777);
    CHECK(r.wall_start > 0);
    CHECK_INT(r.t_start, 0);
    CHECK_INT(r.outcome, RECORD_IN_PROGRESS);
    CHECK_INT(r.server_output_tokens, -1);
    CHECK_INT(r.thinking, -1);
    CHECK(r.measured);

    /* Only path_len bytes are read; the route is cut to its field. */
    record_begin(&r, 1, "GET", "/completionXYZ", 11, 1);
    CHECK_STR(r.route, "/completion");
    CHECK_INT(r.dialect, DIALECT_LLAMA_COMPLETION);
    char long_path[300], long_method[64];
    memset(long_path, 'a', sizeof(long_path));
    long_path[0] = '/';
    memset(long_method, 'M', sizeof(long_method) - 1);
    long_method[sizeof(long_method) - 1] = '\0';
    record_begin(&r, 2, long_method, long_path, sizeof(long_path), 1);
    CHECK_INT(strlen(r.route), sizeof(r.route) - 1);
    CHECK_INT(strlen(r.method), sizeof(r.method) - 1);
    CHECK_INT(r.dialect, DIALECT_UNKNOWN);
    record_finish(&r);
}

/* Two streams whose reads interleave, fed through a small tapq the way
 * the proxy does (a full queue is flushed), read what one stream fed
 * directly reads: the same events, times and gaps. A piece larger than
 * the queue is refused whole. */
static void test_tapq(void)
{
    struct response res;
    if (load(&res, "10_chat_stream.txt", BY_EVENT) < 0) {
        CHECK(false);
        unload(&res);
        return;
    }
    struct record direct, rq[2];
    struct tap td, tq[2];
    record_begin(&direct, 1, "POST", "/v1/chat/completions", 20, T0);
    tap_init(&td, &direct, direct.dialect);
    tap_head(&td, res.head, T0 + HEAD_AFTER);
    for (int k = 0; k < 2; k++) {
        record_begin(&rq[k], 2 + k, "POST", "/v1/chat/completions", 20, T0);
        tap_init(&tq[k], &rq[k], rq[k].dialect);
        tap_head(&tq[k], res.head, T0 + HEAD_AFTER);
    }
    struct tapq q;
    /* Room for about two reads of both streams: a flush feeds pieces of
     * different times. */
    CHECK_INT(tapq_init(&q, 1024, 8), 0);
    size_t flushes = 0;
    for (size_t i = 0; i < res.n_reads; i++) {
        tap_body(&td, res.read_p[i], res.read_len[i], read_time(i));
        for (int k = 0; k < 2; k++) {
            /* A read handed on in two views is one piece. */
            size_t half = res.read_len[i] / 2;
            const char *p[2] = {res.read_p[i], res.read_p[i] + half};
            size_t len[2] = {half, res.read_len[i] - half};
            for (int v = 0; v < 2; v++) {
                if (tapq_push(&q, &tq[k], p[v], len[v], read_time(i)))
                    continue;
                tapq_flush(&q);
                CHECK(tapq_empty(&q));
                CHECK(tapq_push(&q, &tq[k], p[v], len[v], read_time(i)));
                flushes++;
            }
        }
    }
    tapq_flush(&q);
    CHECK(flushes > 10); /* the queue filled up again and again */
    /* What does not fit is refused whole (the caller flushes, or feeds
     * it itself); what is queued is dropped at tapq_finish. */
    struct tapq small;
    char bytes[17] = {0};
    CHECK_INT(tapq_init(&small, 16, 1), 0);
    CHECK(!tapq_push(&small, &tq[0], bytes, 17, 1));
    CHECK(tapq_empty(&small));
    CHECK(tapq_push(&small, &tq[0], bytes, 8, 1));
    CHECK(tapq_push(&small, &tq[0], bytes, 8, 1)); /* the same read: one piece */
    CHECK(!tapq_push(&small, &tq[0], bytes, 1, 1));
    CHECK_INT(small.n_pieces, 1);
    tapq_finish(&small);
    usec_t end = read_time(res.n_reads - 1) + END_AFTER;
    tap_end(&td, end);
    for (int k = 0; k < 2; k++) {
        tap_end(&tq[k], end);
        CHECK_INT(rq[k].token_events, direct.token_events);
        CHECK_INT(record_ttft(&rq[k]), record_ttft(&direct));
        CHECK_INT(record_tpot(&rq[k]), record_tpot(&direct));
        CHECK_INT(rq[k].n_gaps, direct.n_gaps);
        for (size_t i = 0; i < direct.n_gaps && i < rq[k].n_gaps; i++)
            CHECK_INT(rq[k].gaps[i], direct.gaps[i]);
        CHECK_INT(tap_outcome(&tq[k], 0, false), RECORD_OK);
        tap_finish(&tq[k]);
        record_finish(&rq[k]);
    }
    CHECK_INT(direct.token_events, 24);
    tap_finish(&td);
    record_finish(&direct);
    tapq_finish(&q);
    unload(&res);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
    test_record_begin();
    test_tapq();
    return check_done("test_tap");
}
