/* Unit tests for the sse module: the llama-server captures fed whole, split
 * at every byte boundary and byte by byte, in LF, CRLF and CR flavours;
 * comments, multi-line data, fields, limits and resync, callback stop. */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "captures.h"
#include "check.h"
#include "wire/http.h"
#include "tap/sse.h"

/* --- recording and comparing events --- */

struct rec_event {
    char *event, *id, *data; /* owned; event and id NULL when absent */
    size_t event_len, id_len, data_len;
};

/* Either records events (ref == NULL) or checks them against ref. */
struct rec {
    struct rec_event *ev; /* owned */
    size_t n, cap;
    const struct rec *ref; /* borrowed */
    size_t mismatches;
    int stop_after; /* return 7 from the callback after this many events (0 = never) */
    const char *feed_lo, *feed_hi; /* borrowed: the buffer being fed, for view checks */
    size_t views;   /* events whose data pointed into the fed buffer */
};

static char *dup_mem(const char *p, size_t n)
{
    if (!p)
        return NULL;
    char *d = malloc(n + 1);
    if (!d)
        abort();
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

static bool same(const char *a, size_t alen, const char *b, size_t blen)
{
    if (!a || !b)
        return !a && !b;
    return alen == blen && memcmp(a, b, alen) == 0;
}

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct rec *r = ctx;
    if (!ev->data)
        r->mismatches++;
    if (r->feed_lo && ev->data >= r->feed_lo && ev->data < r->feed_hi)
        r->views++;
    if (r->ref) {
        const struct rec_event *e = r->n < r->ref->n ? &r->ref->ev[r->n] : NULL;
        if (!e || !same(e->event, e->event_len, ev->event, ev->event_len) ||
            !same(e->id, e->id_len, ev->id, ev->id_len) ||
            !same(e->data, e->data_len, ev->data, ev->data_len))
            r->mismatches++;
        r->n++;
    } else {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 16;
            r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
            if (!r->ev)
                abort();
        }
        r->ev[r->n++] = (struct rec_event){
            dup_mem(ev->event, ev->event_len), dup_mem(ev->id, ev->id_len),
            dup_mem(ev->data, ev->data_len), ev->event_len, ev->id_len, ev->data_len};
    }
    if (r->stop_after && (int)r->n == r->stop_after)
        return 7;
    return 0;
}

static void rec_free(struct rec *r)
{
    for (size_t i = 0; i < r->n && !r->ref; i++) {
        free(r->ev[i].event);
        free(r->ev[i].id);
        free(r->ev[i].data);
    }
    free(r->ev);
    memset(r, 0, sizeof(*r));
}

/* Feeds text in the given pieces (cut offsets, ascending); returns the
 * first nonzero feed result. Counters are copied to *ret_p if given. */
static int feed_cuts(const char *text, size_t len, const size_t *cuts, size_t n_cuts, size_t limit,
                     struct rec *r, struct sse_parser *ret_p)
{
    struct sse_parser p;
    sse_parser_init(&p, limit);
    size_t off = 0;
    int first = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? cuts[i] : len;
        /* Copy each piece so views into a previous piece would be caught
         * by ASan once it is freed. */
        char *piece = dup_mem(text + off, to - off);
        int rc = sse_feed(&p, piece, to - off, on_event, r);
        free(piece);
        if (rc && !first)
            first = rc;
        off = to;
    }
    if (ret_p)
        *ret_p = p;
    sse_parser_finish(&p);
    if (ret_p) {
        ret_p->raw = NULL;
        ret_p->join = NULL;
    }
    return first;
}

/* Checks that every split into two pieces and the byte-at-a-time feed give
 * the same events and feed result as the reference. */
static void check_splits(const char *name, const char *text, size_t len, size_t limit,
                         const struct rec *ref, int ref_rc)
{
    size_t bad = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        struct rec r = {.ref = ref};
        int rc = feed_cuts(text, len, &cut, 1, limit, &r, NULL);
        if (r.mismatches || r.n != ref->n || rc != ref_rc)
            bad++;
    }
    if (bad)
        fprintf(stderr, "%s: %zu of %zu two-piece splits differ\n", name, bad, len + 1);
    CHECK_INT(bad, 0);

    size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    struct rec r = {.ref = ref};
    struct sse_parser st;
    int rc = feed_cuts(text, len, cuts, len ? len - 1 : 0, limit, &r, &st);
    free(cuts);
    CHECK_INT(r.mismatches, 0);
    CHECK_INT(r.n, ref->n);
    CHECK_INT(rc, ref_rc);
}

/* --- captures --- */

struct body {
    char *data;
    size_t len;
};

static int on_body(void *ctx, const char *data, size_t len)
{
    struct body *b = ctx;
    b->data = realloc(b->data, b->len + len + 1);
    if (!b->data)
        return -ENOMEM;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* The response body of a capture: after the head, de-chunked with our http
 * parser when the file keeps the chunked framing. */
static char *load_body(const char *path, bool chunked, size_t *ret_len)
{
    size_t len = 0;
    char *text = capture_read_file(path, &len);
    if (!text)
        return NULL;
    char *out = NULL;
    if (chunked) {
        struct http_limits lim = {.max_head_bytes = 8192};
        struct body b = {0};
        struct http_parser *hp = http_parser_new(HTTP_KIND_RESPONSE, &lim, on_body, &b);
        size_t off = 0, used = 0;
        int r = http_parser_feed(hp, text, len, &used);
        off += used;
        if (r == HTTP_STEP_HEAD)
            r = http_parser_resume(hp, false);
        while (r == HTTP_STEP_MORE && off < len) {
            r = http_parser_feed(hp, text + off, len - off, &used);
            off += used;
        }
        CHECK_INT(r, HTTP_STEP_DONE);
        http_parser_free(hp);
        out = b.data;
        *ret_len = b.len;
    } else {
        const char *sep = strstr(text, "\r\n\r\n");
        if (sep) {
            sep += 4;
            *ret_len = len - (size_t)(sep - text);
            out = dup_mem(sep, *ret_len);
        }
    }
    free(text);
    return out;
}

/* Replaces every LF with `nl`. */
static char *convert_lf(const char *text, size_t len, const char *nl, size_t *ret_len)
{
    size_t nl_len = strlen(nl), n = 0;
    char *out = malloc(len * nl_len + 1);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            memcpy(out + n, nl, nl_len);
            n += nl_len;
        } else {
            out[n++] = text[i];
        }
    }
    *ret_len = n;
    return out;
}

/* Puts ": ping" comment lines before every event and after every field
 * line that is followed by another field line. */
static char *add_comments(const char *text, size_t len, size_t *ret_len, size_t *ret_added)
{
    char *out = malloc(len * 8 + 16);
    size_t n = 0, added = 0;
    bool at_event_start = true;
    for (size_t i = 0; i < len; i++) {
        if (at_event_start && text[i] != '\n') {
            memcpy(out + n, ": ping\n", 7);
            n += 7;
            added++;
            at_event_start = false;
        }
        out[n++] = text[i];
        if (text[i] == '\n') {
            if (i + 1 < len && text[i + 1] == '\n') {
                at_event_start = true;
            } else if (i + 1 < len && !at_event_start) {
                memcpy(out + n, ":\n", 2);
                n += 2;
                added++;
            }
        }
    }
    *ret_len = n;
    *ret_added = added;
    return out;
}

static size_t count_str(const char *text, size_t len, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; i++)
        if (memcmp(text + i, needle, nl) == 0)
            n++;
    return n;
}

static void test_capture(const char *dir, const char *file)
{
    char path[2048];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return;
    bool chunked = strstr(file, "rawwire") != NULL;
    size_t len = 0;
    char *body = load_body(path, chunked, &len);
    CHECK(body != NULL);
    if (!body)
        return;

    /* One feed: every data line of these captures is its own event, and
     * no copy is needed for any of them. */
    struct rec ref = {0};
    struct sse_parser st;
    ref.feed_lo = body;
    ref.feed_hi = body + len;
    struct sse_parser p;
    sse_parser_init(&p, 0);
    int rc = sse_feed(&p, body, len, on_event, &ref);
    CHECK_INT(rc, 0);
    bool is_sse = strncmp(body, "data:", 5) == 0 || strncmp(body, "event:", 6) == 0;
    if (is_sse)
        CHECK(p.raw == NULL); /* nothing spanned a feed: no allocation */
    CHECK(p.join == NULL);
    st = p;
    sse_parser_finish(&p);
    size_t data_lines = count_str(body, len, "data:");
    CHECK_INT(ref.n, data_lines);
    CHECK_INT(ref.views, ref.n);
    CHECK_INT(st.events, ref.n);
    CHECK_INT(st.comments, 0);
    CHECK(sse_parser_idle(&st) == is_sse); /* the error captures are bare JSON, no line end */
    if (is_sse)
        CHECK(ref.n > 0);
    fprintf(stderr, "  %s: %zu events\n", file, ref.n);

    check_splits(file, body, len, 0, &ref, 0);

    size_t clen;
    char *crlf = convert_lf(body, len, "\r\n", &clen);
    check_splits("crlf", crlf, clen, 0, &ref, 0);
    free(crlf);
    char *cr = convert_lf(body, len, "\r", &clen);
    check_splits("cr", cr, clen, 0, &ref, 0);
    free(cr);

    if (is_sse) {
        size_t added = 0;
        char *pinged = add_comments(body, len, &clen, &added);
        struct rec r = {.ref = &ref};
        rc = feed_cuts(pinged, clen, NULL, 0, 0, &r, &st);
        CHECK_INT(rc, 0);
        CHECK_INT(r.mismatches, 0);
        CHECK_INT(r.n, ref.n);
        CHECK_INT(st.comments, added);
        CHECK(added >= ref.n);
        check_splits("pinged", pinged, clen, 0, &ref, 0);
        free(pinged);
    }

    rec_free(&ref);
    free(body);
}

static void test_captures(void)
{
    char path[1024];
    capture_dir(path, sizeof(path));
    DIR *d = opendir(path);
    CHECK(d != NULL);
    if (!d)
        return;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (fnmatch("*_stream*.txt", de->d_name, 0) != 0)
            continue;
        test_capture(path, de->d_name);
        n++;
    }
    closedir(d);
    CHECK(n >= 12);
}

/* --- hand-written streams --- */

/* Feeds text whole and at every split; returns the reference events. */
static struct rec run(const char *text, size_t limit, int want_rc)
{
    struct rec ref = {0};
    size_t len = strlen(text);
    int rc = feed_cuts(text, len, NULL, 0, limit, &ref, NULL);
    CHECK_INT(rc, want_rc);
    check_splits(text, text, len, limit, &ref, want_rc);
    return ref;
}

#define CHECK_EV_DATA(r, i, s) CHECK_MEM((r).ev[i].data, (r).ev[i].data_len, s, strlen(s))

static void test_fields(void)
{
    struct rec r = run("id: 42\nevent: message_start\ndata: {\"a\":1}\n\n"
                       "event:ping\nid\ndata:x\n\n"
                       "data\n\n"
                       "data:  two spaces\nevent\n\n",
                       0, 0);
    CHECK_INT(r.n, 4);
    if (r.n == 4) {
        CHECK_STR(r.ev[0].id, "42");
        CHECK_STR(r.ev[0].event, "message_start");
        CHECK_STR(r.ev[0].data, "{\"a\":1}");
        CHECK_STR(r.ev[1].event, "ping");
        CHECK_STR(r.ev[1].id, ""); /* `id` without colon: empty value */
        CHECK_STR(r.ev[1].data, "x");
        CHECK(r.ev[2].event == NULL);
        CHECK(r.ev[2].id == NULL);
        CHECK_INT(r.ev[2].data_len, 0); /* `data` alone: one empty line */
        CHECK_STR(r.ev[3].data, " two spaces"); /* only one space is stripped */
        CHECK(r.ev[3].event == NULL);           /* empty type is the default */
    }
    rec_free(&r);

    /* Last value wins; unknown fields and retry are ignored; an id with NUL
     * is ignored. */
    const char nul_id[] = "id: a\0b\ndata: y\n\n";
    struct rec n = {0};
    CHECK_INT(feed_cuts(nul_id, sizeof(nul_id) - 1, NULL, 0, 0, &n, NULL), 0);
    CHECK_INT(n.n, 1);
    if (n.n == 1)
        CHECK(n.ev[0].id == NULL);
    rec_free(&n);

    r = run("event: a\nevent: b\nretry: 100\nfoo: bar\nid: 1\nid: 2\ndata: z\n\n", 0, 0);
    CHECK_INT(r.n, 1);
    if (r.n == 1) {
        CHECK_STR(r.ev[0].event, "b");
        CHECK_STR(r.ev[0].id, "2");
        CHECK_STR(r.ev[0].data, "z");
    }
    rec_free(&r);
}

static void test_multiline(void)
{
    struct rec r = run("data: a\ndata: b\ndata:\ndata:c\nevent: e\ndata: {\"x\": 1}\n\n"
                       "data: single\n\n",
                       0, 0);
    CHECK_INT(r.n, 2);
    if (r.n == 2) {
        CHECK_EV_DATA(r, 0, "a\nb\n\nc\n{\"x\": 1}");
        CHECK_STR(r.ev[0].event, "e");
        CHECK_EV_DATA(r, 1, "single");
    }
    rec_free(&r);

    /* A trailing empty data line keeps its newline ... except the last one,
     * which the spec strips: "data: a\ndata:\n" is "a\n". */
    r = run("data: a\ndata:\n\n", 0, 0);
    CHECK_INT(r.n, 1);
    if (r.n == 1)
        CHECK_EV_DATA(r, 0, "a\n");
    rec_free(&r);
}

static void test_line_ends(void)
{
    /* Mixed endings in one stream, a CR-only blank line, CRLF blank line. */
    struct rec r = run("data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\rdata: e\n\n", 0, 0);
    CHECK_INT(r.n, 3);
    if (r.n == 3) {
        CHECK_EV_DATA(r, 0, "a\nb\nc");
        CHECK_EV_DATA(r, 1, "d");
        CHECK_EV_DATA(r, 2, "e");
    }
    rec_free(&r);

    /* CR at the end of one feed and LF at the start of the next are one
     * line end, not a line end plus a blank line. */
    struct rec got = {0};
    struct sse_parser p;
    sse_parser_init(&p, 0);
    CHECK_INT(sse_feed(&p, "data: a\r", 8, on_event, &got), 0);
    CHECK_INT(sse_feed(&p, "\ndata: b\r", 9, on_event, &got), 0);
    CHECK_INT(got.n, 0);
    CHECK_INT(sse_feed(&p, "\n", 1, on_event, &got), 0);
    CHECK_INT(got.n, 0);
    CHECK(!sse_parser_idle(&p));
    CHECK_INT(sse_feed(&p, "\r", 1, on_event, &got), 0);
    CHECK_INT(got.n, 1);
    CHECK(sse_parser_idle(&p));
    CHECK_INT(sse_feed(&p, "\n", 1, on_event, &got), 0); /* LF of that CRLF blank line */
    CHECK_INT(sse_feed(&p, "data: c\n\n", 9, on_event, &got), 0);
    CHECK_INT(got.n, 2);
    if (got.n == 2) {
        CHECK_EV_DATA(got, 0, "a\nb");
        CHECK_EV_DATA(got, 1, "c");
    }
    CHECK_INT(p.events, 2);
    sse_parser_finish(&p);
    rec_free(&got);
}

static void test_no_data(void)
{
    struct rec r = run("event: foo\nid: 1\n\n: just a comment\n\nretry: 5\n\n\n\n", 0, 0);
    CHECK_INT(r.n, 0);
    rec_free(&r);

    /* The type of an undispatched event does not leak into the next. */
    r = run("event: foo\n\ndata: x\n\n", 0, 0);
    CHECK_INT(r.n, 1);
    if (r.n == 1)
        CHECK(r.ev[0].event == NULL);
    rec_free(&r);

    /* A stream that ends inside an event loses it. */
    struct rec got = {0};
    struct sse_parser p;
    sse_parser_init(&p, 0);
    const char *cut = "data: done\n\ndata: cut";
    CHECK_INT(sse_feed(&p, cut, strlen(cut), on_event, &got), 0);
    CHECK_INT(got.n, 1);
    CHECK(!sse_parser_idle(&p));
    sse_parser_finish(&p);
    CHECK(sse_parser_idle(&p));
    CHECK_INT(p.events, 1); /* counters survive finish */
    rec_free(&got);
}

static void test_comments(void)
{
    struct sse_parser st;
    struct rec r = {0};
    const char *text = ": hello\n:\n: ping\n\ndata: a\n: inside\ndata: b\n\n:x";
    CHECK_INT(feed_cuts(text, strlen(text), NULL, 0, 0, &r, &st), 0);
    CHECK_INT(st.comments, 5);
    CHECK_INT(r.n, 1);
    if (r.n == 1)
        CHECK_EV_DATA(r, 0, "a\nb");
    rec_free(&r);
    r = run(text, 0, 0);
    rec_free(&r);
}

static void test_bom(void)
{
    struct rec r = run("\xef\xbb\xbf"
                       "data: x\n\n",
                       0, 0);
    CHECK_INT(r.n, 1);
    if (r.n == 1)
        CHECK_EV_DATA(r, 0, "x");
    rec_free(&r);
    /* Only at the very start. */
    r = run("data: x\n\n\xef\xbb\xbf"
            "data: y\n\n",
            0, 0);
    CHECK_INT(r.n, 1);
    rec_free(&r);
}

static void test_limit(void)
{
    char big[200];
    memset(big, 'x', sizeof(big));
    char text[600];
    /* 64-byte limit: a 107-byte event, then a good event, a comment, one
     * made big by many lines, and a last good one. */
    snprintf(text, sizeof(text),
             "data: %.100s\n\ndata: ok\n\n: c\n\n"
             "data: 1234567890\ndata: 1234567890\ndata: 1234567890\ndata: 1234567890\n\n"
             "event: e\ndata: fine\n\n",
             big);
    struct sse_parser st;
    struct rec r = {0};
    int rc = feed_cuts(text, strlen(text), NULL, 0, 64, &r, &st);
    CHECK_INT(rc, -E2BIG);
    CHECK_INT(st.oversized, 2);
    CHECK_INT(st.events, 2);
    CHECK_INT(st.comments, 1);
    CHECK_INT(r.n, 2);
    if (r.n == 2) {
        CHECK_EV_DATA(r, 0, "ok");
        CHECK_EV_DATA(r, 1, "fine");
        CHECK_STR(r.ev[1].event, "e");
    }
    rec_free(&r);

    /* The same at every split: one feed reports -E2BIG, the rest 0. */
    r = run(text, 64, -E2BIG);
    CHECK_INT(r.n, 2);
    rec_free(&r);

    /* Exactly at the limit passes: "data: 12\n" is 9 bytes. */
    r = run("data: 12\n\n", 9, 0);
    CHECK_INT(r.n, 1);
    rec_free(&r);
    r = run("data: 123\n\n", 9, -E2BIG);
    CHECK_INT(r.n, 0);
    rec_free(&r);
    /* The LF of a CRLF counts too, whichever feed it comes in. */
    r = run("data: 12\r\n\r\ndata: 1\r\n\r\n", 9, -E2BIG);
    CHECK_INT(r.n, 1);
    if (r.n == 1)
        CHECK_EV_DATA(r, 0, "1");
    rec_free(&r);

    /* A huge line fed in small pieces never grows the buffer past the
     * limit, and the stream resyncs at the blank line. */
    struct sse_parser p;
    sse_parser_init(&p, 1000);
    struct rec got = {0};
    int first = 0;
    rc = sse_feed(&p, "data: ", 6, on_event, &got);
    for (int i = 0; i < 1000; i++) {
        rc = sse_feed(&p, big, 100, on_event, &got);
        if (rc && !first)
            first = rc;
        CHECK(p.raw_cap <= 1000);
    }
    CHECK_INT(first, -E2BIG);
    CHECK_INT(p.oversized, 1);
    CHECK_INT(sse_feed(&p, "\n\ndata: after\n\n", 15, on_event, &got), 0);
    CHECK_INT(got.n, 1);
    if (got.n == 1)
        CHECK_EV_DATA(got, 0, "after");
    sse_parser_finish(&p);
    rec_free(&got);
}

static void test_spanning_views(void)
{
    /* An event split across feeds is still delivered whole, from the
     * parser's buffer; a whole one from the caller's. */
    struct sse_parser p;
    sse_parser_init(&p, 0);
    const char *a = "event: x\nda", *b = "ta: hello\n\ndata: whole\n\n";
    struct rec got = {.feed_lo = b, .feed_hi = b + strlen(b)};
    CHECK_INT(sse_feed(&p, a, strlen(a), on_event, &got), 0);
    CHECK_INT(got.n, 0);
    CHECK_INT(sse_feed(&p, b, strlen(b), on_event, &got), 0);
    CHECK_INT(got.n, 2);
    CHECK_INT(got.views, 1);
    if (got.n == 2) {
        CHECK_STR(got.ev[0].event, "x");
        CHECK_EV_DATA(got, 0, "hello");
        CHECK_EV_DATA(got, 1, "whole");
    }
    sse_parser_finish(&p);
    rec_free(&got);
}

static void test_stop(void)
{
    struct sse_parser p;
    sse_parser_init(&p, 0);
    struct rec got = {.stop_after = 1};
    const char *text = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    CHECK_INT(sse_feed(&p, text, strlen(text), on_event, &got), 7);
    CHECK_INT(got.n, 1);
    CHECK(sse_parser_idle(&p));
    /* The parser is between events: a new feed goes on normally. */
    got.stop_after = 0;
    CHECK_INT(sse_feed(&p, "data: 4\n\n", 9, on_event, &got), 0);
    CHECK_INT(got.n, 2);
    if (got.n == 2)
        CHECK_EV_DATA(got, 1, "4");
    /* A NULL callback just counts; a zeroed parser is ready. */
    struct sse_parser z;
    memset(&z, 0, sizeof(z));
    CHECK_INT(sse_feed(&z, text, strlen(text), NULL, NULL), 0);
    CHECK_INT(z.events, 3);
    CHECK_INT(sse_feed(&z, NULL, 0, NULL, NULL), 0);
    sse_parser_finish(&z);
    sse_parser_finish(&p);
    rec_free(&got);
}

/* --- differential: a plain whole-buffer reading of the spec --- */

/* The WHATWG algorithm written the obvious way, on a whole stream: split
 * into lines, then apply them. Records into r like on_event. */
static void reference(const char *s, size_t len, struct rec *r, uint64_t *ret_comments)
{
    char data[512], type[512], id[512];
    size_t dl = 0, tl = 0, il = 0;
    bool has_data = false, has_id = false;
    uint64_t comments = 0;
    size_t i = 0;
    if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        i = 3;
    while (i < len) {
        size_t start = i;
        while (i < len && s[i] != '\r' && s[i] != '\n')
            i++;
        if (i == len) { /* no line end: never applied */
            if (s[start] == ':')
                comments++;
            break;
        }
        size_t n = i - start;
        i += (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
        const char *l = s + start;
        if (n == 0) {
            if (has_data) {
                struct sse_event ev = {.event = tl ? type : NULL, .event_len = tl,
                                       .data = data, .data_len = dl,
                                       .id = has_id ? id : NULL, .id_len = il};
                on_event(r, &ev);
            }
            dl = tl = 0;
            has_data = has_id = false;
            continue;
        }
        if (l[0] == ':') {
            comments++;
            continue;
        }
        const char *colon = memchr(l, ':', n);
        size_t k = colon ? (size_t)(colon - l) : n, v = colon ? k + 1 : n;
        if (v < n && l[v] == ' ')
            v++;
        if (k == 4 && memcmp(l, "data", 4) == 0) {
            if (has_data)
                data[dl++] = '\n';
            memcpy(data + dl, l + v, n - v);
            dl += n - v;
            has_data = true;
        } else if (k == 5 && memcmp(l, "event", 5) == 0) {
            memcpy(type, l + v, n - v);
            tl = n - v;
        } else if (k == 2 && memcmp(l, "id", 2) == 0 && !memchr(l + v, 0, n - v)) {
            memcpy(id, l + v, n - v);
            il = n - v;
            has_id = true;
        }
    }
    *ret_comments = comments;
}

static void test_differential(void)
{
    static const char *const atoms[] = {"data", "event", "id", "retry", ":", " ", "\r", "\n",
                                        "\r\n", "x", "yz", "da", "ta", "\xef\xbb\xbf"};
    static const char nul_atom[] = "\0";
    uint64_t seed = 42;
    size_t bad = 0;
    for (int t = 0; t < 4000; t++) {
        char text[400];
        size_t len = 0;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int atoms_n = (int)((seed >> 33) % 80);
        if ((seed >> 20) % 4 == 0) {
            memcpy(text, "\xef\xbb\xbf", 3);
            len = 3;
        }
        for (int a = 0; a < atoms_n; a++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t which = (seed >> 33) % 15;
            const char *at = which == 14 ? nul_atom : atoms[which];
            size_t al = which == 14 ? 1 : strlen(at);
            memcpy(text + len, at, al);
            len += al;
        }
        struct rec want = {0};
        uint64_t want_comments = 0;
        reference(text, len, &want, &want_comments);

        size_t cuts[400], n_cuts = 0;
        for (size_t off = 0; off < len;) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            off += 1 + (seed >> 33) % 9;
            if (off < len)
                cuts[n_cuts++] = off;
        }
        struct rec got = {.ref = &want};
        struct sse_parser st;
        int rc = feed_cuts(text, len, cuts, n_cuts, 0, &got, &st);
        if (rc || got.mismatches || got.n != want.n || st.comments != want_comments)
            bad++;
        rec_free(&want);
    }
    CHECK_INT(bad, 0);
}

int main(void)
{
    test_fields();
    test_multiline();
    test_line_ends();
    test_no_data();
    test_comments();
    test_bom();
    test_limit();
    test_spanning_views();
    test_stop();
    test_differential();
    test_captures();
    return check_done("test_sse");
}
