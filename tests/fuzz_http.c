/* libFuzzer target for the HTTP parser wrapper (wire/http). Input: a mode
 * byte, a split byte, then the bytes of a connection. The mode picks
 * request or response parsing, the head and body limits and how often the
 * body callback pauses. The connection is parsed twice, at once and in
 * pieces (the split byte seeds the piece lengths), as the proxy does with
 * its reads: every head is taken up, every message reset, pipelined ones
 * go on. Checks: no crash, leak or hang; consumed never passes the input;
 * a head respects the limits; the body never passes max_body_bytes; and
 * both runs see the same heads, body bytes and ends, and both fail or
 * neither. Built with -Dfuzz=true (clang). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "wire/http.h"

struct run {
    struct fuzz_log log;
    unsigned pause_every; /* the body callback pauses every Nth call; 0 = never */
    unsigned calls;
    uint64_t body; /* body bytes of the message now parsed */
    uint64_t max_body;
};

static int on_body(void *ctx, const char *data, size_t len)
{
    struct run *r = ctx;
    FUZZ_ASSERT(len > 0);
    r->body += len;
    FUZZ_ASSERT(r->max_body == 0 || r->body <= r->max_body);
    fuzz_log_add(&r->log, data, len);
    r->calls++;
    return r->pause_every && r->calls % r->pause_every == 0 ? HTTP_BODY_PAUSE : 0;
}

static void log_head(struct run *r, const struct http_head *h, const struct http_limits *lim)
{
    size_t bytes = h->url.len + h->reason.len;
    FUZZ_ASSERT(h->n_headers <= HTTP_MAX_HEADERS);
    FUZZ_ASSERT(h->content_length >= -1);
    FUZZ_ASSERT(memchr(h->method, '\0', sizeof(h->method)) != NULL);
    fuzz_log_str(&r->log, "\nHEAD ");
    fuzz_log_str(&r->log, h->method);
    fuzz_log_num(&r->log, h->status);
    fuzz_log_add(&r->log, h->url.p, h->url.len);
    fuzz_log_add(&r->log, h->reason.p, h->reason.len);
    fuzz_log_num(&r->log, h->content_length);
    fuzz_log_num(&r->log, h->chunked * 8 + h->keep_alive * 4 + h->expect_continue * 2 + h->upgrade);
    for (size_t i = 0; i < h->n_headers; i++) {
        bytes += h->headers[i].name.len + h->headers[i].value.len;
        fuzz_log_add(&r->log, h->headers[i].name.p, h->headers[i].name.len);
        fuzz_log_str(&r->log, ":");
        fuzz_log_add(&r->log, h->headers[i].value.p, h->headers[i].value.len);
        fuzz_log_str(&r->log, "\n");
    }
    FUZZ_ASSERT(bytes <= lim->max_head_bytes);
    /* The lookups the proxy makes must work on any head. */
    (void)http_head_get(h, "content-type");
    (void)http_head_has_token(h, "connection", "close");
    (void)http_head_has_token(h, "transfer-encoding", "chunked");
}

/* Parses data in pieces (split 0: at once). Returns true when it failed. */
static bool parse(struct run *r, enum http_kind kind, const struct http_limits *lim,
                  const uint8_t *data, size_t size, uint32_t split)
{
    struct http_parser *p = http_parser_new(kind, lim, on_body, r);
    FUZZ_ASSERT(p != NULL);
    bool failed = false;
    size_t off = 0, steps = 0;
    uint32_t state = split;
    while (off < size && !failed) {
        size_t n = split ? fuzz_piece(&state) : size;
        if (n > size - off)
            n = size - off;
        size_t pos = 0;
        for (;;) {
            /* Every step but MORE consumes or ends something: a bound on
             * steps catches a parser that stops making progress. */
            FUZZ_ASSERT(++steps <= 4 * size + 64);
            size_t used = SIZE_MAX;
            int s = http_parser_feed(p, (const char *)data + off + pos, n - pos, &used);
            if (s < 0) {
                FUZZ_ASSERT(http_parser_error(p) != NULL);
                failed = true;
                break;
            }
            FUZZ_ASSERT(used <= n - pos);
            pos += used;
            if (s == HTTP_STEP_MORE) {
                FUZZ_ASSERT(pos == n);
                break;
            }
            if (s == HTTP_STEP_HEAD) {
                log_head(r, http_parser_head(p), lim);
                r->body = 0;
                s = http_parser_resume(p, false);
                if (s < 0) {
                    failed = true;
                    break;
                }
            }
            if (s == HTTP_STEP_DONE) {
                fuzz_log_str(&r->log, "\nDONE");
                r->body = 0;
                http_parser_reset(p);
            }
        }
        off += n;
    }
    if (!failed) {
        int s = http_parser_finish(p);
        failed = s < 0;
        if (s == HTTP_STEP_DONE)
            fuzz_log_str(&r->log, "\nEND");
    }
    http_parser_free(p);
    return failed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    uint32_t split = data[1] ? data[1] : 1;
    data += 2;
    size -= 2;

    enum http_kind kind = mode & 1 ? HTTP_KIND_RESPONSE : HTTP_KIND_REQUEST;
    static const size_t heads[4] = {64 * 1024, 1024, 200, 40};
    static const uint64_t bodies[4] = {0, 1000, 16, 1};
    struct http_limits lim = {.max_head_bytes = heads[(mode >> 1) & 3],
                              .max_body_bytes = bodies[(mode >> 3) & 3]};
    unsigned pause = (mode >> 5) & 3;

    struct run a = {.pause_every = pause, .max_body = lim.max_body_bytes};
    struct run b = {.pause_every = pause ? pause + 1 : 0, .max_body = lim.max_body_bytes};
    bool fa = parse(&a, kind, &lim, data, size, 0);
    bool fb = parse(&b, kind, &lim, data, size, split);
    FUZZ_ASSERT(fa == fb);
    if (!fa && !fuzz_log_eq(&a.log, &b.log)) {
        fprintf(stderr, "at once:\n%.*s\n---\nin pieces:\n%.*s\n", (int)a.log.len, a.log.p,
                (int)b.log.len, b.log.p);
        FUZZ_ASSERT(!"feeding in pieces differs from feeding at once");
    }
    fuzz_log_free(&a.log);
    fuzz_log_free(&b.log);
    return 0;
}
