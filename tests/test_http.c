/* Unit tests for the http module: heads, bodies, framing, limits,
 * smuggling, pauses, split input at every byte boundary. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "wire/http.h"

struct body {
    char data[4096];
    size_t len;
};

static int on_body(void *ctx, const char *data, size_t len)
{
    struct body *b = ctx;
    if (b->len + len > sizeof(b->data))
        return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static const struct http_limits limits = {.max_head_bytes = 1024, .max_body_bytes = 100};

/* Feeds all of text in pieces of `step` bytes; returns the last step or
 * error and the number of bytes consumed. */
static int feed_all(struct http_parser *p, const char *text, size_t len, size_t step,
                    int *ret_heads, size_t *ret_used)
{
    size_t off = 0;
    int last = HTTP_STEP_MORE;
    *ret_heads = 0;
    while (off < len) {
        size_t n = len - off < step ? len - off : step, used = 0;
        int r = http_parser_feed(p, text + off, n, &used);
        if (r < 0) {
            *ret_used = off;
            return r;
        }
        off += used;
        last = r;
        if (r == HTTP_STEP_HEAD) {
            (*ret_heads)++;
            r = http_parser_resume(p, false);
            if (r < 0)
                return r;
            last = r;
        }
        if (r == HTTP_STEP_DONE)
            break;
    }
    *ret_used = off;
    return last;
}

static void test_request_split(void)
{
    const char req[] = "POST /v1/chat/completions?beta=true HTTP/1.1\r\n"
                       "Host: x\r\nContent-Type: application/json\r\n"
                       "X-Multi: a\r\nConnection: keep-alive, Upgrade-Insecure\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                       "GET /next HTTP/1.1\r\n\r\n";
    size_t first_len = strstr(req, "GET /next") - req;
    for (size_t step = 1; step <= sizeof(req); step++) {
        struct body b = {0};
        struct http_parser *p = http_parser_new(HTTP_KIND_REQUEST, &limits, on_body, &b);
        int heads = 0;
        size_t used = 0;
        int r = feed_all(p, req, sizeof(req) - 1, step, &heads, &used);
        CHECK_INT(r, HTTP_STEP_DONE);
        CHECK_INT(heads, 1);
        CHECK_INT(used, first_len);
        CHECK_MEM(b.data, b.len, "hello world", 11);
        const struct http_head *h = http_parser_head(p);
        CHECK_STR(h->method, "POST");
        CHECK(http_str_eq(h->url, "/v1/chat/completions?beta=true"));
        CHECK(h->chunked);
        CHECK_INT(h->content_length, -1);
        CHECK_INT(h->n_headers, 5);
        CHECK(http_head_has_token(h, "connection", "upgrade-insecure"));
        CHECK(http_head_has_token(h, "CONNECTION", "keep-alive"));
        CHECK(!http_head_has_token(h, "connection", "close"));
        const struct http_str *ct = http_head_get(h, "content-type");
        CHECK(ct && http_str_eq(*ct, "application/json"));

        /* The next pipelined request parses after a reset. */
        http_parser_reset(p);
        r = feed_all(p, req + used, sizeof(req) - 1 - used, step, &heads, &used);
        CHECK_INT(r, HTTP_STEP_DONE);
        CHECK(http_str_eq(http_parser_head(p)->url, "/next"));
        http_parser_free(p);
    }
}

static int parse_one(const char *text, struct body *b)
{
    struct http_parser *p = http_parser_new(HTTP_KIND_REQUEST, &limits, on_body, b);
    int heads;
    size_t used;
    int r = feed_all(p, text, strlen(text), strlen(text), &heads, &used);
    http_parser_free(p);
    return r;
}

static void test_errors(void)
{
    struct body b = {0};
    /* Request smuggling: both framings, or two lengths. */
    CHECK_INT(parse_one("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "0\r\n\r\n",
                        &b),
              HTTP_ERR_MALFORMED);
    CHECK_INT(parse_one("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", &b),
              HTTP_ERR_MALFORMED);
    CHECK_INT(parse_one("GARBAGE\r\n\r\n", &b), HTTP_ERR_MALFORMED);
    /* Limits. */
    CHECK_INT(parse_one("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", &b),
              HTTP_ERR_BODY_TOO_LARGE);
    b.len = 0;
    char big[2048];
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Big: %01100d\r\n\r\n", 0);
    CHECK_INT(parse_one(big, &b), HTTP_ERR_HEAD_TOO_LARGE);
    /* Chunked body over the limit is caught while streaming. */
    b.len = 0;
    CHECK_INT(parse_one("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n"
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n",
                        &b),
              HTTP_ERR_BODY_TOO_LARGE);
    /* Expect: 100-continue and HTTP/1.0 keep-alive defaults. */
    struct http_parser *p = http_parser_new(HTTP_KIND_REQUEST, &limits, on_body, &b);
    const char *e = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    size_t used;
    CHECK_INT(http_parser_feed(p, e, strlen(e), &used), HTTP_STEP_HEAD);
    CHECK(http_parser_head(p)->expect_continue);
    CHECK(http_parser_head(p)->keep_alive);
    http_parser_free(p);
    p = http_parser_new(HTTP_KIND_REQUEST, &limits, on_body, &b);
    e = "GET / HTTP/1.0\r\n\r\n";
    CHECK_INT(http_parser_feed(p, e, strlen(e), &used), HTTP_STEP_HEAD);
    CHECK(!http_parser_head(p)->keep_alive);
    http_parser_free(p);
}

static void test_response(void)
{
    struct body b = {0};
    struct http_parser *p = http_parser_new(HTTP_KIND_RESPONSE, &limits, on_body, &b);
    const char *r1 = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    size_t used;
    /* HEAD response: Content-Length without a body. */
    CHECK_INT(http_parser_feed(p, r1, strlen(r1), &used), HTTP_STEP_HEAD);
    CHECK_INT(http_parser_head(p)->status, 200);
    CHECK_INT(http_parser_head(p)->content_length, 5);
    CHECK_INT(http_parser_resume(p, true), HTTP_STEP_DONE);
    http_parser_reset(p);
    /* Read-until-close body ends at finish(). */
    const char *r2 = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc";
    CHECK_INT(http_parser_feed(p, r2, strlen(r2), &used), HTTP_STEP_HEAD);
    CHECK(!http_parser_head(p)->keep_alive);
    CHECK_INT(http_parser_resume(p, false), HTTP_STEP_MORE);
    size_t rest = strlen(r2) - used;
    CHECK_INT(http_parser_feed(p, r2 + used, rest, &used), HTTP_STEP_MORE);
    CHECK_INT(http_parser_finish(p), HTTP_STEP_DONE);
    CHECK_MEM(b.data, b.len, "abc", 3);
    http_parser_free(p);
    /* A chunked response cut short is an error at finish(). */
    b.len = 0;
    p = http_parser_new(HTTP_KIND_RESPONSE, &limits, on_body, &b);
    const char *r3 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
    CHECK_INT(http_parser_feed(p, r3, strlen(r3), &used), HTTP_STEP_HEAD);
    CHECK_INT(http_parser_resume(p, false), HTTP_STEP_MORE);
    CHECK_INT(http_parser_feed(p, r3 + used, strlen(r3) - used, &used), HTTP_STEP_MORE);
    CHECK_INT(http_parser_finish(p), HTTP_ERR_MALFORMED);
    http_parser_free(p);
}

/* A body callback that asks to stop after every piece: each feed ends
 * right after one chunk's data (HTTP_STEP_BODY), the next goes on, and
 * the message still ends, also with a Content-Length body whose last
 * piece is the end of the input. */
static int on_body_pause(void *ctx, const char *data, size_t len)
{
    int r = on_body(ctx, data, len);
    return r < 0 ? r : HTTP_BODY_PAUSE;
}

static void test_body_pause(void)
{
    struct body b = {0};
    struct http_parser *p = http_parser_new(HTTP_KIND_RESPONSE, &limits, on_body_pause, &b);
    const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n";
    size_t len = strlen(r), off = 0, used;
    CHECK_INT(http_parser_feed(p, r, len, &used), HTTP_STEP_HEAD);
    off += used;
    CHECK_INT(http_parser_resume(p, false), HTTP_STEP_MORE);
    int steps = 0, step;
    do {
        step = http_parser_feed(p, r + off, len - off, &used);
        off += used;
        steps++;
    } while (step == HTTP_STEP_BODY && steps < 10);
    CHECK_INT(step, HTTP_STEP_DONE);
    CHECK_INT(steps, 4); /* three pauses, then the end */
    CHECK_INT(off, len);
    CHECK_MEM(b.data, b.len, "abcdef", 6);
    http_parser_reset(p);

    b.len = 0;
    const char *r2 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    CHECK_INT(http_parser_feed(p, r2, strlen(r2), &used), HTTP_STEP_HEAD);
    off = used;
    CHECK_INT(http_parser_resume(p, false), HTTP_STEP_MORE);
    CHECK_INT(http_parser_feed(p, r2 + off, strlen(r2) - off, &used), HTTP_STEP_BODY);
    CHECK_INT(off + used, strlen(r2));
    CHECK_INT(http_parser_feed(p, "", 0, &used), HTTP_STEP_DONE);
    CHECK_MEM(b.data, b.len, "ok", 2);
    http_parser_free(p);
}

/* A request with n headers "X-H<i>: v<i>", in buf. */
static size_t many_headers(char *buf, size_t cap, int n)
{
    size_t len = (size_t)snprintf(buf, cap, "GET /h HTTP/1.1\r\n");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "X-H%d: v%d\r\n", i, i);
    len += (size_t)snprintf(buf + len, cap - len, "\r\n");
    return len;
}

/* Header arrays grow as headers arrive, up to HTTP_MAX_HEADERS; a reused
 * parser keeps what it grew to. */
static void test_many_headers(void)
{
    static const struct http_limits wide = {.max_head_bytes = 64 * 1024};
    static char req[8192];
    for (size_t step = 7; step <= 7000; step += 6993) {
        struct http_parser *p = http_parser_new(HTTP_KIND_REQUEST, &wide, NULL, NULL);
        size_t len = many_headers(req, sizeof(req), HTTP_MAX_HEADERS), used;
        int heads = 0;
        CHECK_INT(feed_all(p, req, len, step, &heads, &used), HTTP_STEP_DONE);
        const struct http_head *h = http_parser_head(p);
        CHECK_INT(h->n_headers, HTTP_MAX_HEADERS);
        const struct http_str *v = http_head_get(h, "x-h16");
        CHECK(v && http_str_eq(*v, "v16"));
        CHECK(http_str_eq(h->headers[HTTP_MAX_HEADERS - 1].name, "X-H127"));
        CHECK(http_str_eq(h->headers[HTTP_MAX_HEADERS - 1].value, "v127"));

        http_parser_reset(p);
        len = many_headers(req, sizeof(req), 3);
        CHECK_INT(feed_all(p, req, len, step, &heads, &used), HTTP_STEP_DONE);
        CHECK_INT(http_parser_head(p)->n_headers, 3);
        CHECK(http_str_eq(http_parser_head(p)->headers[2].value, "v2"));
        http_parser_free(p);

        p = http_parser_new(HTTP_KIND_REQUEST, &wide, NULL, NULL);
        len = many_headers(req, sizeof(req), HTTP_MAX_HEADERS + 1);
        CHECK_INT(feed_all(p, req, len, step, &heads, &used), HTTP_ERR_HEAD_TOO_LARGE);
        http_parser_free(p);
    }
}

/* What llhttp lets through and the proxy must not pass on (issue 13). */
static void test_strict(void)
{
    struct body b = {0};
    CHECK_INT(parse_one("GET / HTTP/1.1\r\nFoo Bar: x\r\n\r\n", &b), HTTP_ERR_MALFORMED);
    CHECK_INT(parse_one("GET / HTTP/1.1\r\nFoo : x\r\n\r\n", &b), HTTP_ERR_MALFORMED);
    CHECK_INT(parse_one("GET / HTTP/1.1\r\n: x\r\n\r\n", &b), HTTP_ERR_MALFORMED);
    CHECK_INT(parse_one("GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", &b), HTTP_ERR_MALFORMED);
    CHECK_INT(parse_one("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                        "0\r\n\r\n",
                        &b),
              HTTP_ERR_UNSUPPORTED);
    CHECK_INT(parse_one("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                        "Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
                        &b),
              HTTP_ERR_MALFORMED); /* llhttp: chunked not last */
    CHECK_INT(parse_one("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", &b),
              HTTP_STEP_DONE);
    CHECK_INT(parse_one("GET /ok!$&'()*+,;=:@%20?a=b HTTP/1.1\r\nX-A_b.c~1: v\r\n\r\n", &b),
              HTTP_STEP_DONE);
    /* Chunk extensions count against the body limit (100 here). */
    char ext[512];
    snprintf(ext, sizeof(ext),
             "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;e=%0120d\r\nx\r\n0\r\n\r\n",
             0);
    b.len = 0;
    CHECK_INT(parse_one(ext, &b), HTTP_ERR_BODY_TOO_LARGE);
    b.len = 0;
    CHECK_INT(parse_one("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;e=v\r\nx\r\n"
                        "0\r\n\r\n",
                        &b),
              HTTP_STEP_DONE);
    CHECK_MEM(b.data, b.len, "x", 1);

    /* A length past INT64_MAX (llhttp takes up to UINT64_MAX) is refused,
     * never read as "no body" (fuzz_http found it). */
    struct http_limits unlimited = {.max_head_bytes = 1024, .max_body_bytes = 0};
    struct http_parser *big = http_parser_new(HTTP_KIND_REQUEST, &unlimited, on_body, &b);
    const char cl[] = "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
    size_t bused;
    CHECK_INT(http_parser_feed(big, cl, sizeof(cl) - 1, &bused), HTTP_ERR_BODY_TOO_LARGE);
    http_parser_free(big);
    big = http_parser_new(HTTP_KIND_RESPONSE, &unlimited, on_body, &b);
    const char rl[] = "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
    CHECK_INT(http_parser_feed(big, rl, sizeof(rl) - 1, &bused), HTTP_ERR_BODY_TOO_LARGE);
    http_parser_free(big);
    big = http_parser_new(HTTP_KIND_REQUEST, &unlimited, on_body, &b);
    const char ok[] = "POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n";
    CHECK_INT(http_parser_feed(big, ok, sizeof(ok) - 1, &bused), HTTP_STEP_HEAD);
    CHECK(http_parser_head(big)->content_length == INT64_MAX);
    http_parser_free(big);

    /* Upgrade (curl --http2 over cleartext): no switch; the next request
     * on the connection is parsed as HTTP/1.1. */
    const char up[] = "GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                      "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
                      "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
    struct http_parser *p = http_parser_new(HTTP_KIND_REQUEST, &limits, on_body, &b);
    size_t used = 0, off = 0;
    CHECK_INT(http_parser_feed(p, up, sizeof(up) - 1, &used), HTTP_STEP_HEAD);
    off += used;
    CHECK(http_parser_head(p)->upgrade);
    CHECK(http_parser_head(p)->keep_alive);
    CHECK_INT(http_parser_resume(p, false), HTTP_STEP_DONE);
    http_parser_reset(p);
    CHECK_INT(http_parser_feed(p, up + off, sizeof(up) - 1 - off, &used), HTTP_STEP_HEAD);
    CHECK(http_str_eq(http_parser_head(p)->url, "/next"));
    http_parser_free(p);

    /* An empty reason phrase and an empty header name: the first bytes
     * stored are an empty span, into a parser that owns no block yet
     * (NULL + 0 and memcpy(NULL, p, 0): clang's UBSan stops there). */
    p = http_parser_new(HTTP_KIND_RESPONSE, &limits, on_body, &b);
    const char *r204 = "HTTP/1.1 204\r\n: v\r\n\r\n";
    CHECK_INT(http_parser_feed(p, r204, strlen(r204), &used), HTTP_ERR_MALFORMED);
    http_parser_free(p);
}

int main(void)
{
    test_request_split();
    test_errors();
    test_response();
    test_body_pause();
    test_many_headers();
    test_strict();
    return check_done("test_http");
}
