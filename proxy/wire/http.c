#include "wire/http.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "core/prefetch.h"

struct span {
    size_t off, len;
};

struct header_spans {
    struct span name, value;
};

/* Header arrays start this small and double up to HTTP_MAX_HEADERS: a
 * parser lives as long as its connection, and most messages carry a
 * dozen headers, not 128. */
#define HEADERS_FIRST_CAP 16

struct http_parser {
    llhttp_t ll;
    enum http_kind kind;
    struct http_limits limits;
    http_body_cb on_body;
    void *ctx; /* borrowed */

    char *block; /* owned: url, reason and header bytes, up to max_head_bytes */
    size_t block_len, block_cap;
    struct span url, reason;
    struct header_spans *spans;  /* owned: where each header is in block */
    struct http_header *headers; /* owned: the head's views of them */
    size_t n_headers, cap_headers;
    bool in_value;   /* last header callback was a value */
    bool in_message;
    bool no_body_next; /* set by resume(no_body) before llhttp continues */
    bool body_paused;  /* llhttp paused at the body callback's request */
    uint64_t body_bytes;
    int error;       /* our own error code when a callback failed */
    const char *error_reason;
    struct http_head head;
};

void http_parser_prefetch(const struct http_parser *p)
{
    /* The head and its header views are not read again during a body. */
    prefetch_range(p, offsetof(struct http_parser, head));
}

static void clear_head(struct http_head *h)
{
    memset(h, 0, sizeof(*h));
}

static struct http_parser *from_ll(llhttp_t *ll)
{
    return (struct http_parser *)ll->data;
}

static int append(struct http_parser *p, struct span *s, const char *at, size_t len)
{
    /* llhttp reports empty spans where a feed ends; the block may still be
     * NULL then, and memcpy(NULL, at, 0) is undefined. */
    if (len == 0)
        return 0;
    if (p->block_len + len > p->limits.max_head_bytes) {
        p->error = HTTP_ERR_HEAD_TOO_LARGE;
        p->error_reason = "header block too large";
        return -1;
    }
    if (p->block_len + len > p->block_cap) {
        size_t cap = p->block_cap ? p->block_cap : 1024;
        while (cap < p->block_len + len)
            cap *= 2;
        if (cap > p->limits.max_head_bytes)
            cap = p->limits.max_head_bytes;
        char *b = realloc(p->block, cap);
        if (!b) {
            p->error = -ENOMEM;
            p->error_reason = "out of memory";
            return -1;
        }
        p->block = b;
        p->block_cap = cap;
    }
    if (s->len == 0)
        s->off = p->block_len;
    memcpy(p->block + p->block_len, at, len);
    p->block_len += len;
    s->len += len;
    return 0;
}

static int on_message_begin(llhttp_t *ll)
{
    from_ll(ll)->in_message = true;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = from_ll(ll);
    return append(p, &p->url, at, len);
}

static int on_status(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = from_ll(ll);
    return append(p, &p->reason, at, len);
}

static int grow_headers(struct http_parser *p)
{
    size_t cap = p->cap_headers ? p->cap_headers * 2 : HEADERS_FIRST_CAP;
    if (cap > HTTP_MAX_HEADERS)
        cap = HTTP_MAX_HEADERS;
    struct header_spans *s = realloc(p->spans, cap * sizeof(*s));
    if (s)
        p->spans = s;
    struct http_header *h = s ? realloc(p->headers, cap * sizeof(*h)) : NULL;
    if (!h) {
        p->error = -ENOMEM;
        p->error_reason = "out of memory";
        return -1;
    }
    p->headers = h;
    p->cap_headers = cap;
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = from_ll(ll);
    if (p->in_value || p->n_headers == 0) {
        if (p->n_headers == HTTP_MAX_HEADERS) {
            p->error = HTTP_ERR_HEAD_TOO_LARGE;
            p->error_reason = "too many headers";
            return -1;
        }
        if (p->n_headers == p->cap_headers && grow_headers(p) < 0)
            return -1;
        p->spans[p->n_headers++] = (struct header_spans){{0, 0}, {0, 0}};
        p->in_value = false;
    }
    return append(p, &p->spans[p->n_headers - 1].name, at, len);
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = from_ll(ll);
    p->in_value = true;
    return append(p, &p->spans[p->n_headers - 1].value, at, len);
}

static struct http_str view(const struct http_parser *p, struct span s)
{
    return (struct http_str){s.len ? p->block + s.off : "", s.len};
}

/* RFC 9110 5.6.2 token characters: what a header name is made of. */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(struct http_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.p[i]))
            return false;
    return true;
}

/* What llhttp lets through and a proxy must not: header names that are
 * not tokens ("Foo Bar", "Foo ", ""), control bytes (a TAB) in the
 * request target, and transfer codings other than chunked, which a
 * de-chunking proxy would silently drop (RFC 9112 6.1: 501). */
static int check_head(struct http_parser *p, const struct http_head *h)
{
    for (size_t i = 0; i < h->n_headers; i++) {
        if (!is_token(h->headers[i].name)) {
            p->error = HTTP_ERR_MALFORMED;
            p->error_reason = h->headers[i].name.len ? "header name is not a token"
                                                     : "empty header name";
            return -1;
        }
    }
    for (size_t i = 0; i < h->url.len; i++) {
        unsigned char c = (unsigned char)h->url.p[i];
        if (c <= ' ' || c == 0x7f) {
            p->error = HTTP_ERR_MALFORMED;
            p->error_reason = "control character in the request target";
            return -1;
        }
    }
    for (size_t i = 0; i < h->n_headers; i++) {
        if (!http_str_caseeq(h->headers[i].name, "transfer-encoding"))
            continue;
        const char *s = h->headers[i].value.p, *end = s + h->headers[i].value.len;
        while (s < end) {
            while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
                s++;
            const char *start = s;
            while (s < end && *s != ',')
                s++;
            const char *stop = s;
            while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
                stop--;
            if (stop > start && !http_str_caseeq((struct http_str){start, (size_t)(stop - start)},
                                                 "chunked")) {
                p->error = HTTP_ERR_UNSUPPORTED;
                p->error_reason = "transfer coding other than chunked";
                return -1;
            }
        }
    }
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    struct http_parser *p = from_ll(ll);
    struct http_head *h = &p->head;

    clear_head(h);
    h->kind = p->kind;
    h->version_major = ll->http_major;
    h->version_minor = ll->http_minor;
    if (p->kind == HTTP_KIND_REQUEST) {
        const char *m = llhttp_method_name((llhttp_method_t)ll->method);
        size_t n = strlen(m);
        if (n >= sizeof(h->method))
            n = sizeof(h->method) - 1;
        memcpy(h->method, m, n);
        h->url = view(p, p->url);
    } else {
        h->status = ll->status_code;
        h->reason = view(p, p->reason);
    }
    h->n_headers = p->n_headers;
    h->headers = p->headers;
    for (size_t i = 0; i < p->n_headers; i++) {
        p->headers[i].name = view(p, p->spans[i].name);
        p->headers[i].value = view(p, p->spans[i].value);
    }
    h->chunked = (ll->flags & F_CHUNKED) != 0;
    /* llhttp takes lengths up to UINT64_MAX; one past INT64_MAX would turn
     * negative here, read as "no body" while llhttp waits for one: the
     * body would pass unframed (found by fuzz_http). */
    if ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > (uint64_t)INT64_MAX) {
        p->error = HTTP_ERR_BODY_TOO_LARGE;
        p->error_reason = "Content-Length too large";
        return -1;
    }
    h->content_length = (ll->flags & F_CONTENT_LENGTH) ? (int64_t)ll->content_length : -1;
    h->keep_alive = llhttp_should_keep_alive(ll) != 0;
    h->upgrade = ll->upgrade != 0;
    h->expect_continue = http_head_has_token(h, "expect", "100-continue");
    /* We never switch protocols (the proxy drops Upgrade): the request is
     * an ordinary one and the connection goes on in HTTP/1.1. Left set,
     * llhttp would take every later byte as the new protocol's. */
    if (p->kind == HTTP_KIND_REQUEST)
        ll->upgrade = 0;
    if (check_head(p, h) < 0)
        return -1;

    if (p->limits.max_body_bytes && h->content_length > 0 &&
        (uint64_t)h->content_length > p->limits.max_body_bytes) {
        p->error = HTTP_ERR_BODY_TOO_LARGE;
        p->error_reason = "body larger than the limit";
        return -1;
    }
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = from_ll(ll);
    if (len == 0)
        return 0; /* an empty span where a feed ended: nothing to hand on */
    p->body_bytes += len;
    if (p->limits.max_body_bytes && p->body_bytes > p->limits.max_body_bytes) {
        p->error = HTTP_ERR_BODY_TOO_LARGE;
        p->error_reason = "body larger than the limit";
        return -1;
    }
    if (p->on_body) {
        int r = p->on_body(p->ctx, at, len);
        if (r < 0) {
            p->error = r;
            p->error_reason = "body consumer failed";
            return -1;
        }
        if (r == HTTP_BODY_PAUSE) {
            /* llhttp resumes after this span: these bytes are taken. */
            p->body_paused = true;
            return HPE_PAUSED;
        }
    }
    return 0;
}

/* Chunk extensions are parsed and dropped; their bytes count against the
 * body limit so that they cannot go on without end. */
static int on_chunk_extension(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = from_ll(ll);
    p->body_bytes += len;
    if (p->limits.max_body_bytes && p->body_bytes > p->limits.max_body_bytes) {
        p->error = HTTP_ERR_BODY_TOO_LARGE;
        p->error_reason = "body (with chunk extensions) larger than the limit";
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    struct http_parser *p = from_ll(ll);
    p->in_message = false;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_message_complete = on_message_complete,
};

struct http_parser *http_parser_new(enum http_kind kind, const struct http_limits *limits,
                                    http_body_cb on_body_cb, void *ctx)
{
    struct http_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->kind = kind;
    p->limits = *limits;
    p->on_body = on_body_cb;
    p->ctx = ctx;
    llhttp_init(&p->ll, kind == HTTP_KIND_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    p->ll.data = p;
    return p;
}

void http_parser_free(struct http_parser *p)
{
    if (!p)
        return;
    free(p->block);
    free(p->spans);
    free(p->headers);
    free(p);
}

static void clear_message(struct http_parser *p)
{
    p->block_len = 0;
    p->url = p->reason = (struct span){0, 0};
    p->n_headers = 0;
    p->in_value = false;
    p->body_bytes = 0;
    clear_head(&p->head);
}

void http_parser_reset(struct http_parser *p)
{
    clear_message(p);
    p->in_message = false;
    p->body_paused = false;
    /* llhttp paused in on_message_complete: resuming continues with the
     * next message on the connection. */
    if (llhttp_get_errno(&p->ll) == HPE_PAUSED)
        llhttp_resume(&p->ll);
    else if (llhttp_get_errno(&p->ll) == HPE_PAUSED_UPGRADE)
        llhttp_resume_after_upgrade(&p->ll);
}

int http_parser_resume(struct http_parser *p, bool no_body)
{
    if (p->error)
        return p->error;
    if (no_body)
        p->ll.flags |= F_SKIPBODY;
    if (llhttp_get_errno(&p->ll) == HPE_PAUSED)
        llhttp_resume(&p->ll);
    /* llhttp ends a bodiless message only when it runs again: run it on no
     * input so the caller learns now. */
    size_t consumed;
    int r = http_parser_feed(p, "", 0, &consumed);
    return r == HTTP_STEP_HEAD ? HTTP_STEP_MORE : r;
}

int http_parser_feed(struct http_parser *p, const char *data, size_t len, size_t *ret_consumed)
{
    if (p->error)
        return p->error;
    if (p->body_paused) {
        p->body_paused = false;
        llhttp_resume(&p->ll);
    }
    llhttp_errno_t e = llhttp_execute(&p->ll, data, len);
    if (e == HPE_OK) {
        *ret_consumed = len;
        return HTTP_STEP_MORE;
    }
    if (e == HPE_PAUSED) {
        *ret_consumed = (size_t)(llhttp_get_error_pos(&p->ll) - data);
        if (p->body_paused)
            return HTTP_STEP_BODY;
        return p->in_message ? HTTP_STEP_HEAD : HTTP_STEP_DONE;
    }
    /* On an error, what came before the bad byte was parsed (and body
     * bytes in it were handed out): say how much. */
    const char *pos = llhttp_get_error_pos(&p->ll);
    *ret_consumed = pos >= data && pos <= data + len ? (size_t)(pos - data) : 0;
    if (p->error)
        return p->error;
    if (e == HPE_PAUSED_UPGRADE) {
        /* We do not switch protocols: the message ends here. */
        *ret_consumed = (size_t)(llhttp_get_error_pos(&p->ll) - data);
        p->in_message = false;
        return HTTP_STEP_DONE;
    }
    p->error = HTTP_ERR_MALFORMED;
    p->error_reason = llhttp_get_error_reason(&p->ll);
    if (!p->error_reason)
        p->error_reason = llhttp_errno_name(e);
    return p->error;
}

int http_parser_finish(struct http_parser *p)
{
    if (p->error)
        return p->error;
    if (!p->in_message)
        return HTTP_STEP_DONE;
    llhttp_errno_t e = llhttp_finish(&p->ll);
    if ((e == HPE_OK || e == HPE_PAUSED) && !p->in_message)
        return HTTP_STEP_DONE;
    p->error = HTTP_ERR_MALFORMED;
    p->error_reason = "connection closed before the message ended";
    return p->error;
}

const struct http_head *http_parser_head(const struct http_parser *p)
{
    return &p->head;
}

bool http_parser_in_message(const struct http_parser *p)
{
    return p->in_message;
}

const char *http_parser_error(const struct http_parser *p)
{
    return p->error_reason ? p->error_reason : "no error";
}

bool http_str_eq(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

bool http_str_caseeq(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

const struct http_str *http_head_get(const struct http_head *h, const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++)
        if (http_str_caseeq(h->headers[i].name, name))
            return &h->headers[i].value;
    return NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool http_head_has_token(const struct http_head *h, const char *name, const char *token)
{
    size_t tlen = strlen(token);
    for (size_t i = 0; i < h->n_headers; i++) {
        if (!http_str_caseeq(h->headers[i].name, name))
            continue;
        const char *s = h->headers[i].value.p, *end = s + h->headers[i].value.len;
        while (s < end) {
            while (s < end && (is_ows(*s) || *s == ','))
                s++;
            const char *start = s;
            while (s < end && *s != ',')
                s++;
            const char *stop = s;
            while (stop > start && is_ows(stop[-1]))
                stop--;
            if ((size_t)(stop - start) == tlen && strncasecmp(start, token, tlen) == 0)
                return true;
        }
    }
    return false;
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}
