/* trace, the reading half: one entry per line from v1 lines, simple
 * request lines and length-only lines (see trace.h, docs/trace-format.md). */
#include "tap/trace.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/chatml.h"
#include "core/jsonedit.h"
#include "core/jsonscan.h"
#include "core/jsonw.h"

#define READ_CHUNK 65536

/* base64 (RFC 4648, padded), as the writer's body_b64. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes in place (the output is shorter). Returns the length or -1. */
static ssize_t b64_decode(char *s, size_t n)
{
    if (n % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        bool last = i + 4 == n;
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)s[i + j];
            v[j] = c == '=' && last && j >= 2 ? 0 : b64_value(c);
            if (v[j] < 0)
                return -1;
        }
        if (last && s[i + 2] == '=' && s[i + 3] != '=')
            return -1;
        unsigned x = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        s[o++] = (char)(x >> 16);
        if (!last || s[i + 2] != '=')
            s[o++] = (char)(x >> 8 & 255);
        if (!last || s[i + 3] != '=')
            s[o++] = (char)(x & 255);
    }
    return (ssize_t)o;
}

struct trace_reader {
    char *path;       /* owned */
    int fd;
    char *buf;        /* owned: [pos, end) read but not consumed */
    size_t cap, pos, end;
    size_t max_line;
    bool eof;
    uint64_t line;    /* lines consumed so far */
    bool have_base;
    usec_t base_mono; /* t_mono_us of the first entry */
    usec_t last_mono; /* of the previous entry, for lines without a time */
};

int trace_reader_open(const char *path, struct trace_reader **ret, struct trace_error *err)
{
    struct trace_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err->msg, sizeof(err->msg), "%s: out of memory", path);
        return -ENOMEM;
    }
    r->max_line = TRACE_MAX_LINE;
    r->path = strdup(path);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0 || !r->path) {
        int e = r->fd < 0 ? errno : ENOMEM;
        snprintf(err->msg, sizeof(err->msg), "%s: %s", path, strerror(e));
        trace_reader_close(r);
        return -e;
    }
    *ret = r;
    return 0;
}

void trace_reader_set_max_line(struct trace_reader *r, size_t max)
{
    r->max_line = max ? max : TRACE_MAX_LINE;
}

void trace_reader_close(struct trace_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r->path);
    free(r);
}

enum line_kind {
    LINE_END,        /* no more input */
    LINE_WHOLE,      /* a line ended by a newline */
    LINE_NO_NEWLINE, /* the last bytes of the file, without a newline */
    LINE_TOO_LONG,   /* longer than max_line: skipped up to its newline */
};

/* Reads more input after end, making room first. 0, -ENOMEM or read's -errno. */
static int fill(struct trace_reader *r)
{
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->end -= r->pos;
        r->pos = 0;
    }
    if (r->end == r->cap) {
        size_t limit = r->max_line + 1; /* a whole line and its newline */
        size_t cap = r->cap ? r->cap * 2 : READ_CHUNK;
        if (cap > limit)
            cap = limit > r->cap ? limit : r->cap + READ_CHUNK;
        char *b = realloc(r->buf, cap);
        if (!b)
            return -ENOMEM;
        r->buf = b;
        r->cap = cap;
    }
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            r->eof = true;
        r->end += (size_t)n;
        return 0;
    }
}

/* Drops input up to and including the next newline (or to the end). */
static int skip_line(struct trace_reader *r)
{
    for (;;) {
        char *nl = r->end > r->pos ? memchr(r->buf + r->pos, '\n', r->end - r->pos) : NULL;
        if (nl) {
            r->pos = (size_t)(nl - r->buf) + 1;
            return 0;
        }
        r->pos = r->end = 0;
        if (r->eof)
            return 0;
        int e = fill(r);
        if (e < 0)
            return e;
    }
}

/* The next line as a view into buf (valid until the next call). */
static int next_line(struct trace_reader *r, enum line_kind *kind, const char **ret,
                     size_t *ret_len)
{
    size_t scan = r->pos;
    for (;;) {
        char *nl = r->end > scan ? memchr(r->buf + scan, '\n', r->end - scan) : NULL;
        if (nl) {
            *ret = r->buf + r->pos;
            *ret_len = (size_t)(nl - r->buf) - r->pos;
            r->pos = (size_t)(nl - r->buf) + 1;
            *kind = *ret_len > r->max_line ? LINE_TOO_LONG : LINE_WHOLE;
            return 0;
        }
        if (r->end - r->pos > r->max_line) {
            *kind = LINE_TOO_LONG;
            return skip_line(r);
        }
        if (r->eof) {
            *kind = r->pos == r->end ? LINE_END : LINE_NO_NEWLINE;
            *ret = r->buf + r->pos;
            *ret_len = r->end - r->pos;
            r->pos = r->end;
            return 0;
        }
        scan = r->end - r->pos; /* fill moves the data to the front */
        int e = fill(r);
        if (e < 0)
            return e;
    }
}

static int line_error(const struct trace_reader *r, struct trace_error *err, int code,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int line_error(const struct trace_reader *r, struct trace_error *err, int code,
                      const char *fmt, ...)
{
    int n = snprintf(err->msg, sizeof(err->msg), "%s:%" PRIu64 ": ", r->path, r->line);
    if (n < 0 || (size_t)n >= sizeof(err->msg))
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

/* What a line's parser needs: the validated text and where errors go. */
struct line_ctx {
    const struct trace_reader *r; /* borrowed */
    struct trace_error *err;      /* borrowed */
    const char *d;                /* borrowed: the line */
    size_t len;
};

#define BAD(c, ...) line_error((c)->r, (c)->err, -EBADMSG, __VA_ARGS__)

static bool key_is(const char *d, const struct jsonscan_member *m, const char *lit)
{
    return jsonscan_key_eq(jsonscan_key_member(d, m), jsonscan_key_token(lit, lit + strlen(lit)));
}

/* Looks up a top-level member (the last of duplicates, as jsonedit reads). */
static bool find_member(const struct line_ctx *c, size_t open, const char *key,
                        struct jsonscan_member *ret)
{
    struct jsonscan_iter it;
    struct jsonscan_member m;
    bool found = false;
    jsonscan_iter_init(&it, c->d, c->len, open);
    while (jsonscan_iter_next(&it, &m)) {
        if (key_is(c->d, &m, key)) {
            *ret = m;
            found = true;
        }
    }
    return found;
}

static bool is_null(const char *d, const struct jsonscan_member *m)
{
    return d[m->value] == 'n';
}

/* A JSON string value, decoded, as a new NUL-terminated buffer. */
static int get_string(const struct line_ctx *c, const struct jsonscan_member *m, const char *name,
                      char **ret, size_t *ret_len)
{
    if (c->d[m->value] != '"')
        return BAD(c, "\"%s\" must be a string", name);
    struct jsonscan_member sm = {.key = m->value, .key_end = m->value_end};
    struct jsonscan_key k = jsonscan_key_member(c->d, &sm);
    char *s = malloc(m->value_end - m->value); /* the decoded text is shorter */
    if (!s)
        return line_error(c->r, c->err, -ENOMEM, "out of memory");
    size_t n = 0;
    int ch;
    while ((ch = jsonscan_key_next(&k)) >= 0)
        s[n++] = (char)ch;
    s[n] = '\0';
    *ret = s;
    if (ret_len)
        *ret_len = n;
    return 0;
}

static int get_string_or_null(const struct line_ctx *c, const struct jsonscan_member *m,
                              const char *name, char **ret)
{
    if (is_null(c->d, m)) {
        *ret = NULL;
        return 0;
    }
    return get_string(c, m, name, ret, NULL);
}

/* A non-negative JSON integer (no fraction or exponent) up to max. */
static int get_uint(const struct line_ctx *c, const struct jsonscan_member *m, const char *name,
                    uint64_t max, uint64_t *ret)
{
    uint64_t v = 0;
    for (size_t i = m->value; i < m->value_end; i++) {
        char ch = c->d[i];
        if (ch < '0' || ch > '9' || v > (max - (uint64_t)(ch - '0')) / 10)
            return BAD(c, "\"%s\" must be an integer from 0 to %" PRIu64, name, max);
        v = v * 10 + (uint64_t)(ch - '0');
    }
    *ret = v;
    return 0;
}

static int dup_bytes(const struct line_ctx *c, const char *s, size_t n, char **ret)
{
    char *p = malloc(n + 1);
    if (!p)
        return line_error(c->r, c->err, -ENOMEM, "out of memory");
    memcpy(p, s, n);
    p[n] = '\0';
    *ret = p;
    return 0;
}

static int get_raw_or_null(const struct line_ctx *c, const struct jsonscan_member *m, char **ret)
{
    if (is_null(c->d, m)) {
        *ret = NULL;
        return 0;
    }
    return dup_bytes(c, c->d + m->value, m->value_end - m->value, ret);
}

/* An array member's elements, counted, and room for that many items of
 * size bytes (at least one) in *ret. */
static int alloc_elements(const struct line_ctx *c, const struct jsonscan_member *m, size_t size,
                          void **ret)
{
    struct jsonscan_iter it;
    struct jsonscan_member el;
    size_t n = 0;
    jsonscan_iter_init(&it, c->d, c->len, m->value);
    while (jsonscan_iter_next(&it, &el))
        n++;
    *ret = calloc(n ? n : 1, size);
    return *ret ? 0 : line_error(c->r, c->err, -ENOMEM, "out of memory");
}

/* The two elements of a [first, second] array; false when el is not one. */
static bool get_pair(const struct line_ctx *c, const struct jsonscan_member *el,
                     struct jsonscan_member *first, struct jsonscan_member *second)
{
    struct jsonscan_iter pi;
    struct jsonscan_member extra;
    if (c->d[el->value] != '[')
        return false;
    jsonscan_iter_init(&pi, c->d, c->len, el->value);
    return jsonscan_iter_next(&pi, first) && jsonscan_iter_next(&pi, second) &&
           !jsonscan_iter_next(&pi, &extra);
}

static int get_headers(const struct line_ctx *c, const struct jsonscan_member *m,
                       struct trace_entry *e)
{
    static const char shape[] = "\"headers\" must be an array of [name, value] pairs";
    if (c->d[m->value] != '[')
        return BAD(c, "%s", shape);
    void *mem;
    int r = alloc_elements(c, m, sizeof(*e->headers), &mem);
    if (r < 0)
        return r;
    e->headers = mem;
    struct jsonscan_iter it;
    struct jsonscan_member el, name, value;
    jsonscan_iter_init(&it, c->d, c->len, m->value);
    while (jsonscan_iter_next(&it, &el)) {
        if (!get_pair(c, &el, &name, &value))
            return BAD(c, "%s", shape);
        struct trace_header *h = &e->headers[e->n_headers];
        r = get_string(c, &name, "header name", &h->name, NULL);
        if (r < 0)
            return r;
        r = get_string(c, &value, "header value", &h->value, NULL);
        if (r < 0) {
            free(h->name);
            h->name = NULL;
            return r;
        }
        e->n_headers++;
    }
    return 0;
}

static int get_events(const struct line_ctx *c, const struct jsonscan_member *m,
                      struct trace_entry *e)
{
    static const char shape[] = "\"events\" must be an array of [offset_us, data] pairs";
    if (c->d[m->value] != '[')
        return BAD(c, "%s", shape);
    void *mem;
    int r = alloc_elements(c, m, sizeof(*e->events), &mem);
    if (r < 0)
        return r;
    e->events = mem;
    struct jsonscan_iter it;
    struct jsonscan_member el, off, data;
    jsonscan_iter_init(&it, c->d, c->len, m->value);
    while (jsonscan_iter_next(&it, &el)) {
        if (!get_pair(c, &el, &off, &data))
            return BAD(c, "%s", shape);
        struct trace_event *ev = &e->events[e->n_events];
        uint64_t o;
        r = get_uint(c, &off, "event offset", INT64_MAX, &o);
        if (r < 0)
            return r;
        r = get_string(c, &data, "event data", &ev->data, &ev->len);
        if (r < 0)
            return r;
        ev->offset_us = o;
        e->n_events++;
    }
    return 0;
}

static int get_response(const struct line_ctx *c, const struct jsonscan_member *m,
                        struct trace_entry *e)
{
    if (c->d[m->value] != '{')
        return BAD(c, "\"response\" must be an object");
    struct jsonscan_iter it;
    struct jsonscan_member f;
    jsonscan_iter_init(&it, c->d, c->len, m->value);
    int r = 0;
    while (r == 0 && jsonscan_iter_next(&it, &f)) {
        char **text = NULL;
        size_t *text_len = NULL;
        char **raw = NULL;
        if (key_is(c->d, &f, "content"))
            text = &e->content, text_len = &e->content_len;
        else if (key_is(c->d, &f, "reasoning"))
            text = &e->reasoning, text_len = &e->reasoning_len;
        else if (key_is(c->d, &f, "tools"))
            text = &e->tools, text_len = &e->tools_len;
        else if (key_is(c->d, &f, "usage"))
            raw = &e->usage;
        else if (key_is(c->d, &f, "timings"))
            raw = &e->timings;
        if (text) {
            free(*text);
            *text = NULL;
            r = get_string(c, &f, "response text", text, text_len);
        } else if (raw) {
            free(*raw);
            *raw = NULL;
            r = get_raw_or_null(c, &f, raw);
        } else if (key_is(c->d, &f, "finish_reason")) {
            free(e->finish_reason);
            e->finish_reason = NULL;
            r = get_string_or_null(c, &f, "finish_reason", &e->finish_reason);
        }
    }
    return r;
}

/* The body: a raw JSON value lifted verbatim, or base64. */
static int get_body(const struct line_ctx *c, const struct jsonscan_member *m, bool b64,
                    struct trace_entry *e)
{
    free(e->body);
    e->body = NULL;
    e->body_len = 0;
    if (!b64) {
        int r = dup_bytes(c, c->d + m->value, m->value_end - m->value, &e->body);
        if (r == 0)
            e->body_len = m->value_end - m->value;
        return r;
    }
    size_t n;
    int r = get_string(c, m, "body_b64", &e->body, &n);
    if (r < 0)
        return r;
    ssize_t dn = b64_decode(e->body, n);
    if (dn < 0)
        return BAD(c, "\"body_b64\" is not valid base64");
    e->body[dn] = '\0';
    e->body_len = (size_t)dn;
    return 0;
}

static int empty_texts(const struct line_ctx *c, struct trace_entry *e)
{
    char **f[] = {&e->content, &e->reasoning, &e->tools, &e->body};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (!*f[i] && dup_bytes(c, "", 0, f[i]) < 0)
            return -ENOMEM;
    return 0;
}

/* A method: letters, digits and RFC 9110 token marks. */
static bool is_token_text(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

/* A request target: no spaces, no control bytes. */
static bool is_target_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

static int parse_v1(const struct line_ctx *c, struct trace_entry *e)
{
    struct jsonscan_iter it;
    struct jsonscan_member m;
    bool have_body = false, have_b64 = false;
    int r = 0;
    jsonscan_iter_init(&it, c->d, c->len, 0);
    while (r == 0 && jsonscan_iter_next(&it, &m)) {
        const char *d = c->d;
        uint64_t v;
        if (key_is(d, &m, "id")) {
            r = get_uint(c, &m, "id", UINT64_MAX, &e->id);
        } else if (key_is(d, &m, "t_wall_us")) {
            r = get_uint(c, &m, "t_wall_us", INT64_MAX, &v);
            e->t_wall_us = v;
        } else if (key_is(d, &m, "t_mono_us")) {
            r = get_uint(c, &m, "t_mono_us", INT64_MAX, &v);
            e->t_mono_us = v;
        } else if (key_is(d, &m, "session")) {
            free(e->session);
            e->session = NULL;
            r = get_string_or_null(c, &m, "session", &e->session);
        } else if (key_is(d, &m, "client")) {
            free(e->client);
            e->client = NULL;
            r = get_string_or_null(c, &m, "client", &e->client);
        } else if (key_is(d, &m, "method")) {
            free(e->method);
            e->method = NULL;
            r = get_string(c, &m, "method", &e->method, NULL);
        } else if (key_is(d, &m, "path")) {
            free(e->path);
            e->path = NULL;
            r = get_string(c, &m, "path", &e->path, NULL);
        } else if (key_is(d, &m, "headers")) {
            if (e->headers)
                return BAD(c, "\"headers\" appears twice");
            r = get_headers(c, &m, e);
        } else if (key_is(d, &m, "body")) {
            have_body = true;
            r = get_body(c, &m, false, e);
        } else if (key_is(d, &m, "body_b64")) {
            have_b64 = true;
            r = get_body(c, &m, true, e);
        } else if (key_is(d, &m, "status")) {
            e->status = 0;
            if (!is_null(d, &m)) {
                r = get_uint(c, &m, "status", 999, &v);
                e->status = (int)v;
            }
        } else if (key_is(d, &m, "response")) {
            r = get_response(c, &m, e);
        } else if (key_is(d, &m, "events")) {
            if (e->events)
                return BAD(c, "\"events\" appears twice");
            r = get_events(c, &m, e);
        }
        /* Other keys are ignored: a v1 reader reads v1 lines that gained fields. */
    }
    if (r < 0)
        return r;
    if (have_body && have_b64)
        return BAD(c, "both \"body\" and \"body_b64\"");
    if (!e->method || !e->path)
        return BAD(c, "a v1 line needs \"method\" and \"path\"");
    /* Replayed as "METHOD PATH HTTP/1.1": an empty one (or one with a
     * space or control byte) would make a broken request line. */
    if (!is_token_text(e->method))
        return BAD(c, "\"method\" must be a word like GET or POST");
    if (e->path[0] != '/' || !is_target_text(e->path))
        return BAD(c, "\"path\" must start with / and hold no spaces or control characters");
    return empty_texts(c, e);
}

/* A JSON number of milliseconds, to µs. */
static int get_ms(const struct line_ctx *c, const struct jsonscan_member *m, usec_t *ret)
{
    char buf[64];
    size_t n = m->value_end - m->value;
    char ch = c->d[m->value];
    if ((ch != '-' && (ch < '0' || ch > '9')) || n >= sizeof(buf))
        return BAD(c, "\"timestamp\" must be a number of milliseconds");
    memcpy(buf, c->d + m->value, n);
    buf[n] = '\0';
    double ms = strtod(buf, NULL);
    if (!(ms >= 0 && ms < 1e15))
        return BAD(c, "\"timestamp\" must be from 0 to 1e15 milliseconds");
    *ret = (usec_t)llround(ms * 1000.0);
    return 0;
}

/* "timestamp" and "session" of an imported line. */
static int get_import_common(const struct line_ctx *c, struct trace_entry *e, bool *has_ts,
                             bool *has_session)
{
    struct jsonscan_member m;
    *has_ts = find_member(c, 0, "timestamp", &m);
    if (*has_ts) {
        int r = get_ms(c, &m, &e->t_mono_us);
        if (r < 0)
            return r;
    } else {
        e->t_mono_us = c->r->last_mono; /* keeps its place after the previous entry */
    }
    *has_session = find_member(c, 0, "session", &m);
    if (*has_session && !is_null(c->d, &m)) {
        char ch = c->d[m.value];
        if (ch == '"')
            return get_string(c, &m, "session", &e->session, NULL);
        if (ch == '-' || (ch >= '0' && ch <= '9'))
            return dup_bytes(c, c->d + m.value, m.value_end - m.value, &e->session);
        return BAD(c, "\"session\" must be a string or a number");
    }
    return 0;
}

static int import_head(const struct line_ctx *c, struct trace_entry *e, const char *path)
{
    e->headers = calloc(1, sizeof(*e->headers));
    if (!e->headers || dup_bytes(c, "POST", 4, &e->method) < 0 ||
        dup_bytes(c, path, strlen(path), &e->path) < 0 ||
        dup_bytes(c, "Content-Type", 12, &e->headers[0].name) < 0)
        return -ENOMEM;
    e->n_headers = 1;
    if (dup_bytes(c, "application/json", 16, &e->headers[0].value) < 0)
        return -ENOMEM;
    return empty_texts(c, e);
}

/* Replaces *doc by an edit's output. */
static int edit_step(const struct line_ctx *c, char **doc, size_t *len, int r, char *out,
                     size_t out_len)
{
    if (r < 0)
        return line_error(c->r, c->err, r == -ENOMEM ? -ENOMEM : -EBADMSG,
                          "cannot edit the request body (%s)", strerror(-r));
    free(*doc);
    *doc = out;
    *len = out_len;
    return 0;
}

/* {"messages":...} or {"prompt":...}: the line is the body, minus the
 * trace's own "timestamp" and "session" (a server would reject or misread
 * them), plus "stream":true when "stream" is absent (tokentap measures
 * streams; an explicit "stream":false is kept). */
static int parse_request(const struct line_ctx *c, bool chat, struct trace_entry *e)
{
    bool has_ts, has_session;
    int r = get_import_common(c, e, &has_ts, &has_session);
    if (r < 0)
        return r;
    struct jsonscan_member m;
    find_member(c, 0, chat ? "messages" : "prompt", &m);
    if (chat ? c->d[m.value] != '[' : (c->d[m.value] != '"' && c->d[m.value] != '['))
        return BAD(c, chat ? "\"messages\" must be an array" : "\"prompt\" must be a string or an array");
    bool has_stream = find_member(c, 0, "stream", &m);

    char *doc = NULL, *out;
    size_t len = c->len, out_len;
    r = dup_bytes(c, c->d, len, &doc);
    if (r < 0)
        return r;
    if (has_ts) {
        int er = jsonedit_delete(doc, len, "/timestamp", &out, &out_len);
        r = edit_step(c, &doc, &len, er, out, out_len);
    }
    if (r == 0 && has_session) {
        int er = jsonedit_delete(doc, len, "/session", &out, &out_len);
        r = edit_step(c, &doc, &len, er, out, out_len);
    }
    if (r == 0 && !has_stream) {
        int er = jsonedit_set(doc, len, "/stream", "true", 4, &out, &out_len);
        r = edit_step(c, &doc, &len, er, out, out_len);
    }
    if (r < 0) {
        free(doc);
        return r;
    }
    e->body = doc;
    e->body_len = len;
    return import_head(c, e, chat ? "/v1/chat/completions" : "/v1/completions");
}

/* What the simulator's template (core/chatml.h) puts around a chat
 * request's only user message with thinking off. The simulator charges one
 * token per 4 rendered bytes, rounded up; real tokenizers differ (about
 * 3-4.5 bytes per token for English and code), so a synthesized prompt is
 * input_length tokens exactly for tokentap's sim only. */
#define SYNTH_BEFORE CHATML_START "user\n"
#define SYNTH_AFTER CHATML_END CHATML_ASSISTANT CHATML_THINK_OFF
#define SYNTH_OVERHEAD (sizeof(SYNTH_BEFORE) - 1 + sizeof(SYNTH_AFTER) - 1)

static const char *const synth_words[] = {
    "the", "function", "returns", "a", "buffer", "of", "tokens", "when", "request",
    "server", "stream", "value", "index", "error", "check", "length", "cache", "slot",
    "prompt", "queue", "parse", "event", "state", "write", "read", "file", "line",
    "model", "latency", "agent", "task", "result",
};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Appends exactly n bytes of plain ASCII words (nothing JSON escapes),
 * starting with the line number and seeded by it, so two lines' prompts
 * differ from their first bytes and no prefix cache hits by accident. */
static void synth_text(struct evbuffer *b, size_t n, uint64_t line, usec_t t)
{
    char tag[64];
    int k = snprintf(tag, sizeof(tag), "[trace line %" PRIu64 "] ", line);
    size_t tl = (size_t)k < n ? (size_t)k : n;
    evbuffer_add(b, tag, tl);
    n -= tl;
    uint64_t seed = line * 0x100000001b3ull ^ t;
    while (n > 0) {
        const char *w = synth_words[splitmix64(&seed) % (sizeof(synth_words) / sizeof(synth_words[0]))];
        size_t wl = strlen(w);
        if (wl > n)
            wl = n;
        evbuffer_add(b, w, wl);
        n -= wl;
        if (n > 0) {
            evbuffer_add(b, " ", 1);
            n--;
        }
    }
}

/* {"timestamp":ms,"input_length":N,"output_length":M,...}: a streamed
 * chat request with a synthesized prompt of N sim tokens. */
static int parse_lengths(const struct line_ctx *c, struct trace_entry *e)
{
    bool has_ts, has_session;
    int r = get_import_common(c, e, &has_ts, &has_session);
    if (r < 0)
        return r;
    struct jsonscan_member m;
    uint64_t in, out;
    find_member(c, 0, "input_length", &m);
    r = get_uint(c, &m, "input_length", TRACE_MAX_SYNTH_TOKENS, &in);
    if (r < 0)
        return r;
    if (!find_member(c, 0, "output_length", &m))
        return BAD(c, "a length-only line needs \"output_length\"");
    r = get_uint(c, &m, "output_length", TRACE_MAX_SYNTH_TOKENS, &out);
    if (r < 0)
        return r;

    /* ceil((overhead + text) / 4) == N: text = 4N - overhead bytes, which
     * needs N >= 18; smaller inputs get an empty text (18 tokens). */
    size_t text = 4 * in > SYNTH_OVERHEAD ? 4 * in - SYNTH_OVERHEAD : 0;
    struct evbuffer *b = evbuffer_new();
    if (!b || evbuffer_expand(b, text + 256) < 0) {
        if (b)
            evbuffer_free(b);
        return line_error(c->r, c->err, -ENOMEM, "out of memory");
    }
    EVBUFFER_ADD_LIT(b, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    synth_text(b, text, c->r->line, e->t_mono_us);
    evbuffer_add_printf(b,
                        "\"}],\"max_tokens\":%" PRIu64 ",\"stream\":true,\"ignore_eos\":true,"
                        "\"chat_template_kwargs\":{\"enable_thinking\":false}}",
                        out);
    size_t n = evbuffer_get_length(b);
    e->body = malloc(n + 1);
    if (e->body) {
        evbuffer_remove(b, e->body, n);
        e->body[n] = '\0';
        e->body_len = n;
    }
    evbuffer_free(b);
    if (!e->body)
        return line_error(c->r, c->err, -ENOMEM, "out of memory");
    e->max_tokens = (int64_t)out;
    return import_head(c, e, "/v1/chat/completions");
}

/* Detects the line's format and fills e (a fresh entry). */
static int parse_line(struct trace_reader *r, const char *d, size_t len, enum line_kind kind,
                      struct trace_entry *e, struct trace_error *err)
{
    struct line_ctx c = {.r = r, .err = err, .d = d, .len = len};
    struct jsonscan_info info;
    int v = jsonscan_validate(d, len, JSONSCAN_MAX_DEPTH, &info);
    if (v < 0 && kind == LINE_NO_NEWLINE)
        return BAD(&c, "incomplete last line (%zu bytes, no newline): the file was cut while "
                       "being written",
                   len);
    if (v == JSONSCAN_ERR_TOO_DEEP)
        return BAD(&c, "JSON nested deeper than %d levels", JSONSCAN_MAX_DEPTH);
    if (v < 0)
        return BAD(&c, "not valid JSON");
    if (d[info.start] != '{')
        return BAD(&c, "not a JSON object");

    /* From here on, member offsets count from the object's first byte. */
    c.d = d + info.start;
    c.len = info.end - info.start;
    struct jsonscan_member m;
    if (find_member(&c, 0, "v", &m)) {
        uint64_t ver;
        size_t vlen = m.value_end - m.value;
        if (get_uint(&c, &m, "v", UINT64_MAX, &ver) < 0 || ver == 0)
            return BAD(&c, "bad trace format version %.*s", (int)(vlen > 40 ? 40 : vlen),
                       c.d + m.value);
        if (ver > TRACE_FORMAT_VERSION)
            return BAD(&c, "trace format version %" PRIu64
                           " is newer than this tokentap understands (%d)",
                       ver, TRACE_FORMAT_VERSION);
        e->source = TRACE_SOURCE_V1;
        return parse_v1(&c, e);
    }
    if (find_member(&c, 0, "messages", &m)) {
        e->source = TRACE_SOURCE_REQUEST;
        return parse_request(&c, true, e);
    }
    if (find_member(&c, 0, "prompt", &m)) {
        e->source = TRACE_SOURCE_REQUEST;
        return parse_request(&c, false, e);
    }
    if (find_member(&c, 0, "input_length", &m)) {
        e->source = TRACE_SOURCE_LENGTHS;
        return parse_lengths(&c, e);
    }
    return BAD(&c, "not a trace line: no \"v\", \"messages\", \"prompt\" or \"input_length\"");
}

int trace_reader_next(struct trace_reader *r, struct trace_entry *ret, struct trace_error *err)
{
    for (;;) {
        enum line_kind kind;
        const char *d = NULL;
        size_t len = 0;
        int e = next_line(r, &kind, &d, &len);
        if (e < 0) {
            r->line++;
            return line_error(r, err, e, "%s", e == -ENOMEM ? "out of memory" : strerror(-e));
        }
        if (kind == LINE_END)
            return 0;
        r->line++;
        if (kind == LINE_TOO_LONG)
            return line_error(r, err, -EMSGSIZE, "line longer than %zu bytes", r->max_line);
        if (jsonscan_skip_ws(d, len, 0) == len)
            continue; /* blank */

        struct trace_entry en;
        trace_entry_init(&en);
        en.line = r->line;
        e = parse_line(r, d, len, kind, &en, err);
        if (e < 0) {
            trace_entry_finish(&en);
            return e;
        }
        if (!r->have_base) {
            r->have_base = true;
            r->base_mono = en.t_mono_us;
        }
        en.offset_us = (int64_t)en.t_mono_us - (int64_t)r->base_mono;
        r->last_mono = en.t_mono_us;
        *ret = en;
        return 1;
    }
}
