#include "tap/sse.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How it works: the pending event is tracked as offsets from its first
 * byte. While that byte is in the buffer being fed, the offsets point into
 * the caller's bytes and nothing is copied. If the feed ends inside an
 * event, its bytes so far move to p->raw (verbatim, so the offsets still
 * hold) and every later byte of it is appended there. Multi-line data is
 * joined into p->join as the lines arrive. */

static size_t limit_of(const struct sse_parser *p)
{
    return p->max_event_bytes ? p->max_event_bytes : SSE_DEFAULT_MAX_EVENT_BYTES;
}

void sse_parser_init(struct sse_parser *p, size_t max_event_bytes)
{
    memset(p, 0, sizeof(*p));
    p->max_event_bytes = max_event_bytes;
}

void sse_parser_finish(struct sse_parser *p)
{
    size_t max = p->max_event_bytes;
    uint64_t events = p->events, comments = p->comments, oversized = p->oversized;

    free(p->raw);
    free(p->join);
    memset(p, 0, sizeof(*p));
    p->max_event_bytes = max;
    p->events = events;
    p->comments = comments;
    p->oversized = oversized;
}

bool sse_parser_idle(const struct sse_parser *p)
{
    return !p->ev_active;
}

/* Grows *buf to hold need bytes (need <= limit), doubling from 1 KiB so an
 * event that trickles in byte by byte does not realloc per byte. */
static int reserve(char **buf, size_t *cap, size_t need, size_t limit)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need && c <= limit / 2)
        c *= 2;
    if (c < need || c > limit)
        c = need > limit ? need : limit;
    char *b = realloc(*buf, c);
    if (!b)
        return -ENOMEM;
    *buf = b;
    *cap = c;
    return 0;
}

static void reset_event(struct sse_parser *p)
{
    p->ev_len = 0;
    p->line_off = 0;
    p->data_lines = 0;
    p->join_len = 0;
    p->has_type = false;
    p->has_id = false;
    p->ev_active = false;
    p->ev_spilled = false;
}

/* Drops the pending event and skips input up to the next blank line, the
 * only safe place to resume. Returns err. */
static int drop_event(struct sse_parser *p, int err)
{
    if (err == -E2BIG)
        p->oversized++;
    reset_event(p);
    p->discarding = true;
    p->line_stored = false;
    p->cr_stored = false;
    return err;
}

/* Adds n bytes (part of a line, or a line end) to the pending event:
 * counts them against the limit and, once the event spans feeds, copies
 * them. Returns 0, or a negative errno after dropping the event. */
static int ev_add(struct sse_parser *p, const char *src, size_t n)
{
    size_t limit = limit_of(p);
    assert(p->ev_len <= limit); /* so the subtraction below cannot wrap */
    if (n > limit - p->ev_len)
        return drop_event(p, -E2BIG);
    if (p->ev_spilled) {
        int r = reserve(&p->raw, &p->raw_cap, p->ev_len + n, limit);
        if (r < 0)
            return drop_event(p, r);
        memcpy(p->raw + p->ev_len, src, n);
    }
    p->ev_len += n;
    return 0;
}

static int add_data(struct sse_parser *p, const char *base, size_t off, size_t len)
{
    if (p->data_lines == 0) {
        p->data_off = off;
        p->data_len = len;
        p->data_lines = 1;
        return 0;
    }
    /* A second line: from here on the data lives joined in p->join. The
     * joined data is shorter than the raw event, so the limit holds. */
    size_t have = p->data_lines == 1 ? p->data_len : p->join_len;
    int r = reserve(&p->join, &p->join_cap, have + 1 + len, limit_of(p));
    if (r < 0)
        return drop_event(p, r);
    if (p->data_lines == 1) {
        memcpy(p->join, base + p->data_off, p->data_len);
        p->join_len = p->data_len;
    }
    p->join[p->join_len++] = '\n';
    memcpy(p->join + p->join_len, base + off, len);
    p->join_len += len;
    if (p->data_lines < UINT32_MAX)
        p->data_lines++;
    return 0;
}

/* Applies one complete line of the pending event: len bytes (line end
 * excluded) at base + p->line_off, base being the event's first byte. */
static int field_line(struct sse_parser *p, const char *base, size_t len)
{
    const char *line = base + p->line_off;
    if (line[0] == ':')
        return 0; /* a comment inside an event, counted when it started */

    /* data lines are nearly all of them: no search for their colon. */
    if (len >= 5 && memcmp(line, "data:", 5) == 0) {
        size_t v = len > 5 && line[5] == ' ' ? 6 : 5;
        return add_data(p, base, p->line_off + v, len - v);
    }
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    size_t v = colon ? name_len + 1 : len;
    if (v < len && line[v] == ' ')
        v++;
    size_t off = p->line_off + v, vlen = len - v;

    if (name_len == 4 && memcmp(line, "data", 4) == 0)
        return add_data(p, base, off, vlen);
    if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        p->has_type = true;
        p->type_off = off;
        p->type_len = vlen;
    } else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
        /* The spec ignores ids holding NUL. */
        if (!memchr(base + off, '\0', vlen)) {
            p->has_id = true;
            p->id_off = off;
            p->id_len = vlen;
        }
    }
    /* retry: and unknown fields are ignored; unknown ones are counted. */
    else if (!(name_len == 5 && memcmp(line, "retry", 5) == 0)) {
        if (p->unknown_fields++ == 0)
            p->first_unknown_at = p->line_at;
    }
    return 0;
}

/* The blank line ending the pending event: hands it to cb if it has data
 * (the spec drops data-less events). Returns cb's value. */
static int dispatch(struct sse_parser *p, const char *base, sse_event_cb cb, void *ctx)
{
    if (p->data_lines == 0) {
        reset_event(p);
        return 0;
    }
    struct sse_event ev = {
        .data = p->data_lines == 1 ? base + p->data_off : p->join,
        .data_len = p->data_lines == 1 ? p->data_len : p->join_len,
        .event = p->has_type && p->type_len ? base + p->type_off : NULL,
        .event_len = p->has_type ? p->type_len : 0,
        .id = p->has_id ? base + p->id_off : NULL,
        .id_len = p->has_id ? p->id_len : 0,
    };
    p->events++;
    p->event_at = p->ev_at;
    /* Reset first: the views stay valid (buffers are kept), and the parser
     * is between events if cb stops the feed. */
    reset_event(p);
    return cb ? cb(ctx, &ev) : 0;
}

/* The first CR or LF in [s, end) (s < end), or NULL. A blank line is
 * answered without a call; a feed holding no CR (has_cr false, the usual
 * case) needs one memchr per line, else a second one scans up to the LF. */
static const char *find_eol(const char *s, const char *end, bool has_cr)
{
    if (*s == '\n')
        return s;
    const char *lf = memchr(s, '\n', (size_t)(end - s));
    if (!has_cr)
        return lf;
    const char *cr = memchr(s, '\r', (size_t)((lf ? lf : end) - s));
    return cr ? cr : lf;
}

int sse_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_cb cb, void *ctx)
{
    static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};
    const char *s = buf, *end = buf + len;
    const char *ev_base = NULL; /* the pending event's first byte while it lies in buf */
    int ret = 0, r;

    if (len == 0)
        return 0;

    /* A UTF-8 BOM may open the stream. A partial match followed by other
     * bytes is dropped: it could only be invalid UTF-8. */
    while (!p->bom_done && s < end) {
        if ((unsigned char)*s != bom[p->bom_matched]) {
            p->bom_done = true;
            break;
        }
        s++;
        if (++p->bom_matched == 3)
            p->bom_done = true;
    }

    if (p->cr_pending && s < end) {
        p->cr_pending = false;
        if (*s == '\n') {
            if (p->cr_stored) {
                r = ev_add(p, s, 1);
                if (r < 0 && !ret)
                    ret = r;
            }
            s++;
        }
    }

    /* One look for CR per feed instead of one per line. */
    bool has_cr = s < end && memchr(s, '\r', (size_t)(end - s)) != NULL;
    while (s < end) {
        const char *eol = find_eol(s, end, has_cr);

        if (!p->in_line) {
            if (eol == s) {
                /* A blank line: the end of an event. */
                bool crlf = *s == '\r' && s + 1 < end && s[1] == '\n';
                if (*s == '\r' && s + 1 == end) {
                    p->cr_pending = true;
                    p->cr_stored = false;
                }
                s += crlf ? 2 : 1;
                if (p->discarding) {
                    p->discarding = false;
                } else if (p->ev_active) {
                    r = dispatch(p, p->ev_spilled ? p->raw : ev_base, cb, ctx);
                    if (r) {
                        p->fed += len;
                        return r;
                    }
                }
                continue;
            }
            if (*s == ':')
                p->comments++;
            p->line_at = p->fed + (uint64_t)(s - buf);
            if (p->discarding || (!p->ev_active && *s == ':')) {
                /* Comments between events and dropped lines are skipped
                 * without being stored, so they need no limit. */
                p->line_stored = false;
            } else {
                if (!p->ev_active) {
                    p->ev_active = true;
                    ev_base = s;
                    p->ev_at = p->line_at;
                }
                p->line_stored = true;
                p->line_off = p->ev_len;
            }
            p->in_line = true;
        }

        if (!eol) {
            /* The line goes on in the next feed. */
            if (p->line_stored) {
                r = ev_add(p, s, (size_t)(end - s));
                if (r < 0 && !ret)
                    ret = r;
            }
            s = end;
            break;
        }

        size_t term = (*eol == '\r' && eol + 1 < end && eol[1] == '\n') ? 2 : 1;
        if (p->line_stored) {
            r = ev_add(p, s, (size_t)(eol - s) + term);
            if (r == 0)
                r = field_line(p, p->ev_spilled ? p->raw : ev_base,
                               p->ev_len - term - p->line_off);
            if (r < 0 && !ret)
                ret = r;
        }
        if (*eol == '\r' && eol + 1 == end) {
            p->cr_pending = true;
            p->cr_stored = p->line_stored;
        }
        p->in_line = false;
        s = eol + term;
    }

    /* The feed ends inside an event: keep its bytes, the caller's go away. */
    if (p->ev_active && !p->ev_spilled) {
        r = reserve(&p->raw, &p->raw_cap, p->ev_len, limit_of(p));
        if (r < 0) {
            drop_event(p, r);
            if (!ret)
                ret = r;
        } else {
            memcpy(p->raw, ev_base, p->ev_len);
            p->ev_spilled = true;
        }
    }
    p->fed += len;
    return ret;
}
