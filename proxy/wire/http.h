/* http: a thin incremental wrapper around llhttp for HTTP/1.x request and
 * response heads, with limits. Pure: bytes in, head and body views out. */
#ifndef TOKENTAP_HTTP_H
#define TOKENTAP_HTTP_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 128

enum http_kind {
    HTTP_KIND_REQUEST,
    HTTP_KIND_RESPONSE,
};

/* A view into a head's storage; not NUL-terminated. */
struct http_str {
    const char *p;
    size_t len;
};

struct http_header {
    struct http_str name;
    struct http_str value;
};

struct http_head {
    enum http_kind kind;
    char method[24];       /* requests: "GET", "POST", ... */
    int status;            /* responses */
    struct http_str url;   /* requests: path with query */
    struct http_str reason;/* responses */
    unsigned version_major, version_minor;
    int64_t content_length; /* -1 when absent */
    bool chunked;
    bool keep_alive;        /* llhttp_should_keep_alive after the head */
    bool expect_continue;
    bool upgrade;
    size_t n_headers;
    const struct http_header *headers; /* borrowed: n_headers entries */
};

struct http_limits {
    size_t max_head_bytes; /* request line/status line + all headers */
    uint64_t max_body_bytes; /* 0 = unlimited */
};

enum http_step {
    HTTP_STEP_MORE = 0, /* all input consumed, message not finished */
    HTTP_STEP_HEAD = 1, /* head complete: see http_parser_head(); call http_parser_resume() */
    HTTP_STEP_DONE = 2, /* message complete; call http_parser_reset() for the next one */
    HTTP_STEP_BODY = 3, /* the body callback asked to stop: feed the rest (even none) again */
};

/* Errors from http_parser_feed(). */
#define HTTP_ERR_MALFORMED (-EBADMSG)     /* 400 */
#define HTTP_ERR_HEAD_TOO_LARGE (-E2BIG)   /* 431 */
#define HTTP_ERR_BODY_TOO_LARGE (-EMSGSIZE) /* 413 */
#define HTTP_ERR_UNSUPPORTED (-ENOTSUP)     /* 501: a transfer coding other than chunked */

/* Called with de-chunked body bytes (a view into the fed buffer). Return 0
 * to go on, HTTP_BODY_PAUSE to have feed() stop right after these bytes
 * (it returns HTTP_STEP_BODY; the next feed goes on), or a negative errno
 * to abort parsing (feed returns it). */
#define HTTP_BODY_PAUSE 1
typedef int (*http_body_cb)(void *ctx, const char *data, size_t len);

struct http_parser;

/* Returns a new parser or NULL on allocation failure. */
struct http_parser *http_parser_new(enum http_kind kind, const struct http_limits *limits,
                                    http_body_cb on_body, void *ctx);
void http_parser_free(struct http_parser *p);

/* Hints that p is about to be fed (its state's lines): nothing changes. */
void http_parser_prefetch(const struct http_parser *p);

/* Parses up to len bytes. Stops after the head (HTTP_STEP_HEAD), after
 * the message (HTTP_STEP_DONE) and where the body callback paused
 * (HTTP_STEP_BODY); *ret_consumed says how many bytes were used, the
 * caller keeps the rest. Returns a step or a negative error (then
 * *ret_consumed is how much came before the bad byte). */
int http_parser_feed(struct http_parser *p, const char *data, size_t len, size_t *ret_consumed);

/* Continues after HTTP_STEP_HEAD. For a response to HEAD (or any message
 * the caller knows has no body), pass no_body = true. Returns
 * HTTP_STEP_DONE when the message has no body and is already complete,
 * HTTP_STEP_MORE when body bytes are to come, or a negative error. */
int http_parser_resume(struct http_parser *p, bool no_body);

/* Prepares for the next message on the same connection. */
void http_parser_reset(struct http_parser *p);

/* Signals end of input: returns HTTP_STEP_DONE if a read-until-close body
 * just ended, else HTTP_ERR_MALFORMED (truncated message). */
int http_parser_finish(struct http_parser *p);

/* The parsed head, valid from HTTP_STEP_HEAD until the next reset. */
const struct http_head *http_parser_head(const struct http_parser *p);

/* True while inside a message (some bytes of it were parsed). */
bool http_parser_in_message(const struct http_parser *p);

/* Human-readable reason of the last error, never NULL. */
const char *http_parser_error(const struct http_parser *p);

/* Case-insensitive lookup; returns the first value or NULL. */
const struct http_str *http_head_get(const struct http_head *h, const char *name);

/* True if header `name` (possibly repeated, comma-separated) lists token. */
bool http_head_has_token(const struct http_head *h, const char *name, const char *token);

bool http_str_eq(struct http_str s, const char *lit);
bool http_str_caseeq(struct http_str s, const char *lit);

/* Reason phrase of a status code ("Not Found"). */
const char *http_status_reason(int status);

#endif
