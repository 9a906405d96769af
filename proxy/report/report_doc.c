#include "report/report_doc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/jsonw.h"

static void fail(struct report_doc *doc, int err)
{
    if (!doc->error)
        doc->error = err;
}

void report_doc_utf8_trim(char *s)
{
    size_t n = strlen(s), i = n;
    /* Back over continuation bytes to the lead byte of the last sequence. */
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (i - 1) < want)
        s[i - 1] = '\0';
}

/* A malloc'ed formatted string, NULL (and the doc's error set) on failure. */
static __attribute__((format(printf, 2, 0))) char *vformat(struct report_doc *doc,
                                                           const char *fmt, va_list ap)
{
    char buf[REPORT_DOC_MAX_TEXT];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n < 0) {
        fail(doc, -EINVAL);
        return NULL;
    }
    /* Texts are labels and numbers; a longer one (a runaway label in the
     * results) is cut rather than failing the whole report. */
    if ((size_t)n >= sizeof(buf))
        report_doc_utf8_trim(buf);
    char *s = strdup(buf);
    if (!s)
        fail(doc, -ENOMEM);
    return s;
}

static struct report_block *add_block(struct report_doc *doc, enum report_block_kind kind)
{
    if (doc->error)
        return NULL;
    if (doc->n_blocks >= REPORT_DOC_MAX_BLOCKS) {
        fail(doc, -E2BIG);
        return NULL;
    }
    if (doc->n_blocks == doc->cap_blocks) {
        size_t cap = doc->cap_blocks ? doc->cap_blocks * 2 : 32;
        struct report_block *b = realloc(doc->blocks, cap * sizeof(*b));
        if (!b) {
            fail(doc, -ENOMEM);
            return NULL;
        }
        doc->blocks = b;
        doc->cap_blocks = cap;
    }
    struct report_block *b = &doc->blocks[doc->n_blocks++];
    memset(b, 0, sizeof(*b));
    b->kind = kind;
    return b;
}

static void free_block(struct report_block *b)
{
    free(b->text);
    free(b->id);
    for (size_t i = 0; b->head && i < b->n_cols; i++)
        free(b->head[i]);
    free(b->head);
    size_t cells = b->kind == REPORT_BLOCK_TABLE ? b->n_rows * b->n_cols : b->n_rows;
    for (size_t i = 0; i < cells; i++)
        free(b->cells[i].text);
    free(b->cells);
}

void report_doc_finish(struct report_doc *doc)
{
    for (size_t i = 0; i < doc->n_blocks; i++)
        free_block(&doc->blocks[i]);
    free(doc->blocks);
    memset(doc, 0, sizeof(*doc));
}

void report_doc_heading(struct report_doc *doc, int level, const char *id, const char *fmt, ...)
{
    struct report_block *b = add_block(doc, REPORT_BLOCK_HEADING);
    if (!b)
        return;
    b->level = level < 1 ? 1 : level > 4 ? 4 : level;
    va_list ap;
    va_start(ap, fmt);
    b->text = vformat(doc, fmt, ap);
    va_end(ap);
    if (id) {
        b->id = strdup(id);
        if (!b->id)
            fail(doc, -ENOMEM);
    }
}

static __attribute__((format(printf, 3, 0))) void para(struct report_doc *doc,
                                                       enum report_block_kind kind,
                                                       const char *fmt, va_list ap)
{
    struct report_block *b = add_block(doc, kind);
    if (b)
        b->text = vformat(doc, fmt, ap);
}

void report_doc_para(struct report_doc *doc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    para(doc, REPORT_BLOCK_PARA, fmt, ap);
    va_end(ap);
}

void report_doc_warning(struct report_doc *doc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    para(doc, REPORT_BLOCK_WARNING, fmt, ap);
    va_end(ap);
}

void report_doc_list(struct report_doc *doc)
{
    add_block(doc, REPORT_BLOCK_LIST);
}

void report_doc_charts(struct report_doc *doc)
{
    add_block(doc, REPORT_BLOCK_CHARTS);
}

/* The last block if it is of this kind; else records a usage error. */
static struct report_block *last(struct report_doc *doc, enum report_block_kind kind)
{
    if (doc->error)
        return NULL;
    if (doc->n_blocks == 0 || doc->blocks[doc->n_blocks - 1].kind != kind) {
        fail(doc, -EINVAL);
        return NULL;
    }
    return &doc->blocks[doc->n_blocks - 1];
}

/* Room for one more cell in b. */
static int grow_cells(struct report_doc *doc, struct report_block *b, size_t need)
{
    if (need <= b->cap_cells)
        return 0;
    size_t cap = b->cap_cells ? b->cap_cells * 2 : 16;
    while (cap < need)
        cap *= 2;
    struct report_cell *c = realloc(b->cells, cap * sizeof(*c));
    if (!c) {
        fail(doc, -ENOMEM);
        return -ENOMEM;
    }
    b->cells = c;
    b->cap_cells = cap;
    return 0;
}

void report_doc_item(struct report_doc *doc, const char *fmt, ...)
{
    struct report_block *b = last(doc, REPORT_BLOCK_LIST);
    if (!b || grow_cells(doc, b, b->n_rows + 1) < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(doc, fmt, ap);
    va_end(ap);
    if (!s)
        return;
    b->cells[b->n_rows++] = (struct report_cell){.text = s};
}

void report_doc_table(struct report_doc *doc, size_t n_cols, ...)
{
    if (n_cols == 0 || n_cols > REPORT_DOC_MAX_COLS) {
        fail(doc, -EINVAL);
        return;
    }
    struct report_block *b = add_block(doc, REPORT_BLOCK_TABLE);
    if (!b)
        return;
    b->head = calloc(n_cols, sizeof(*b->head));
    if (!b->head) {
        fail(doc, -ENOMEM);
        return;
    }
    b->n_cols = n_cols;
    va_list ap;
    va_start(ap, n_cols);
    for (size_t i = 0; i < n_cols; i++) {
        const char *h = va_arg(ap, const char *);
        if (!h)
            break;
        b->head[i] = strdup(h);
        if (!b->head[i]) {
            fail(doc, -ENOMEM);
            break;
        }
    }
    va_end(ap);
}

void report_doc_head(struct report_doc *doc, size_t i, const char *fmt, ...)
{
    struct report_block *b = last(doc, REPORT_BLOCK_TABLE);
    if (!b)
        return;
    if (i >= b->n_cols) {
        fail(doc, -EINVAL);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(doc, fmt, ap);
    va_end(ap);
    if (!s)
        return;
    free(b->head[i]);
    b->head[i] = s;
}

/* Cells filled in the current (last) row. */
static size_t filled(const struct report_block *b, size_t *ret_row_start)
{
    size_t start = (b->n_rows - 1) * b->n_cols;
    size_t k = 0;
    while (k < b->n_cols && b->cells[start + k].text)
        k++;
    *ret_row_start = start;
    return k;
}

void report_doc_row(struct report_doc *doc)
{
    struct report_block *b = last(doc, REPORT_BLOCK_TABLE);
    if (!b)
        return;
    if (b->n_rows >= REPORT_DOC_MAX_ROWS) {
        fail(doc, -E2BIG);
        return;
    }
    if (grow_cells(doc, b, (b->n_rows + 1) * b->n_cols) < 0)
        return;
    memset(&b->cells[b->n_rows * b->n_cols], 0, b->n_cols * sizeof(*b->cells));
    b->n_rows++;
}

void report_doc_cell(struct report_doc *doc, enum report_mark mark, const char *fmt, ...)
{
    struct report_block *b = last(doc, REPORT_BLOCK_TABLE);
    if (!b)
        return;
    size_t start;
    if (b->n_rows == 0 || filled(b, &start) >= b->n_cols) {
        fail(doc, -EINVAL);
        return;
    }
    size_t k = filled(b, &start);
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(doc, fmt, ap);
    va_end(ap);
    if (!s)
        return;
    b->cells[start + k] = (struct report_cell){.text = s, .mark = mark};
}

size_t report_doc_rows(const struct report_doc *doc)
{
    return doc->n_blocks ? doc->blocks[doc->n_blocks - 1].n_rows : 0;
}

void report_doc_drop(struct report_doc *doc)
{
    if (doc->n_blocks == 0)
        return;
    free_block(&doc->blocks[--doc->n_blocks]);
}

/* Numbers go right, text left: a column is numeric when every cell in it
 * starts like a number (digit, sign, or the em dash of a missing value). */
static bool numeric_col(const struct report_block *b, size_t col)
{
    if (col == 0)
        return false;
    for (size_t r = 0; r < b->n_rows; r++) {
        const char *t = b->cells[r * b->n_cols + col].text;
        if (!t || !t[0])
            continue;
        if (!strchr("0123456789+-", t[0]) && strncmp(t, "—", strlen("—")) != 0)
            return false;
    }
    return true;
}

/* --- Markdown --- */

/* A table cell's text: pipes escaped, line breaks flattened. */
static void md_cell(struct evbuffer *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            EVBUFFER_ADD_LIT(out, "\\|");
        else if (*s == '\n' || *s == '\r')
            evbuffer_add(out, " ", 1);
        else
            evbuffer_add(out, s, 1);
    }
}

static void md_table(struct evbuffer *out, const struct report_block *b)
{
    EVBUFFER_ADD_LIT(out, "|");
    for (size_t i = 0; i < b->n_cols; i++) {
        EVBUFFER_ADD_LIT(out, " ");
        md_cell(out, b->head[i]);
        EVBUFFER_ADD_LIT(out, " |");
    }
    EVBUFFER_ADD_LIT(out, "\n|");
    for (size_t i = 0; i < b->n_cols; i++)
        evbuffer_add_printf(out, "%s|", numeric_col(b, i) ? "---:" : ":---");
    EVBUFFER_ADD_LIT(out, "\n");
    for (size_t r = 0; r < b->n_rows; r++) {
        EVBUFFER_ADD_LIT(out, "|");
        for (size_t i = 0; i < b->n_cols; i++) {
            const struct report_cell *c = &b->cells[r * b->n_cols + i];
            EVBUFFER_ADD_LIT(out, " ");
            md_cell(out, c->text ? c->text : "");
            EVBUFFER_ADD_LIT(out, " |");
        }
        EVBUFFER_ADD_LIT(out, "\n");
    }
    EVBUFFER_ADD_LIT(out, "\n");
}

int report_doc_markdown(const struct report_doc *doc, struct evbuffer *out)
{
    if (doc->error)
        return doc->error;
    for (size_t i = 0; i < doc->n_blocks; i++) {
        const struct report_block *b = &doc->blocks[i];
        switch (b->kind) {
        case REPORT_BLOCK_HEADING:
            evbuffer_add_printf(out, "%.*s %s\n\n", b->level, "####", b->text);
            break;
        case REPORT_BLOCK_PARA:
            evbuffer_add_printf(out, "%s\n\n", b->text);
            break;
        case REPORT_BLOCK_WARNING:
            evbuffer_add_printf(out, "> **%s**\n\n", b->text);
            break;
        case REPORT_BLOCK_LIST:
            for (size_t r = 0; r < b->n_rows; r++)
                evbuffer_add_printf(out, "- %s\n", b->cells[r].text);
            EVBUFFER_ADD_LIT(out, "\n");
            break;
        case REPORT_BLOCK_TABLE:
            md_table(out, b);
            break;
        case REPORT_BLOCK_CHARTS:
            break;
        }
    }
    return 0;
}

/* --- HTML --- */

void report_doc_html_escape(struct evbuffer *out, const char *s)
{
    const char *run = s;
    for (; s && *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        evbuffer_add(out, run, (size_t)(s - run));
        evbuffer_add(out, rep, strlen(rep));
        run = s + 1;
    }
    if (run)
        evbuffer_add(out, run, strlen(run));
}

/* Escaped text with `code` spans. */
static void html_text(struct evbuffer *out, const char *s)
{
    bool code = false;
    while (s && *s) {
        const char *tick = strchr(s, '`');
        size_t len = tick ? (size_t)(tick - s) : strlen(s);
        char chunk[REPORT_DOC_MAX_TEXT];
        snprintf(chunk, sizeof(chunk), "%.*s", (int)len, s);
        report_doc_html_escape(out, chunk);
        if (!tick)
            break;
        if (code)
            EVBUFFER_ADD_LIT(out, "</code>");
        else
            EVBUFFER_ADD_LIT(out, "<code>");
        code = !code;
        s = tick + 1;
    }
    if (code)
        EVBUFFER_ADD_LIT(out, "</code>");
}

static const char *mark_class(enum report_mark m)
{
    switch (m) {
    case REPORT_MARK_SIG: return "sig";
    case REPORT_MARK_NS: return "ns";
    case REPORT_MARK_PASS: return "pass";
    case REPORT_MARK_FAIL: return "fail";
    case REPORT_MARK_LABEL: return "label";
    case REPORT_MARK_NONE: break;
    }
    return NULL;
}

static void html_table(struct evbuffer *out, const struct report_block *b)
{
    bool numeric[REPORT_DOC_MAX_COLS];
    for (size_t i = 0; i < b->n_cols; i++)
        numeric[i] = numeric_col(b, i);
    EVBUFFER_ADD_LIT(out, "<table>\n<thead><tr>");
    for (size_t i = 0; i < b->n_cols; i++) {
        EVBUFFER_ADD_LIT(out, "<th>");
        html_text(out, b->head[i]);
        EVBUFFER_ADD_LIT(out, "</th>");
    }
    EVBUFFER_ADD_LIT(out, "</tr></thead>\n<tbody>\n");
    for (size_t r = 0; r < b->n_rows; r++) {
        EVBUFFER_ADD_LIT(out, "<tr>");
        for (size_t i = 0; i < b->n_cols; i++) {
            const struct report_cell *c = &b->cells[r * b->n_cols + i];
            const char *cls = mark_class(c->mark);
            if (i == 0)
                EVBUFFER_ADD_LIT(out, "<th scope=\"row\"");
            else
                EVBUFFER_ADD_LIT(out, "<td");
            if (cls || (i > 0 && !numeric[i]))
                evbuffer_add_printf(out, " class=\"%s%s%s\"", cls ? cls : "",
                                    cls && i > 0 && !numeric[i] ? " " : "",
                                    i > 0 && !numeric[i] ? "text" : "");
            EVBUFFER_ADD_LIT(out, ">");
            html_text(out, c->text);
            if (i == 0)
                EVBUFFER_ADD_LIT(out, "</th>");
            else
                EVBUFFER_ADD_LIT(out, "</td>");
        }
        EVBUFFER_ADD_LIT(out, "</tr>\n");
    }
    EVBUFFER_ADD_LIT(out, "</tbody>\n</table>\n");
}

int report_doc_html(const struct report_doc *doc, struct evbuffer *out,
                    report_doc_charts_cb *charts, void *arg)
{
    if (doc->error)
        return doc->error;
    for (size_t i = 0; i < doc->n_blocks; i++) {
        const struct report_block *b = &doc->blocks[i];
        int rc;
        switch (b->kind) {
        case REPORT_BLOCK_HEADING:
            evbuffer_add_printf(out, "<h%d", b->level);
            if (b->id) {
                EVBUFFER_ADD_LIT(out, " id=\"");
                report_doc_html_escape(out, b->id);
                EVBUFFER_ADD_LIT(out, "\"");
            }
            EVBUFFER_ADD_LIT(out, ">");
            html_text(out, b->text);
            evbuffer_add_printf(out, "</h%d>\n", b->level);
            break;
        case REPORT_BLOCK_PARA:
        case REPORT_BLOCK_WARNING:
            EVBUFFER_ADD_LIT(out, "<p");
            if (b->kind == REPORT_BLOCK_WARNING)
                EVBUFFER_ADD_LIT(out, " class=\"warning\"");
            EVBUFFER_ADD_LIT(out, ">");
            html_text(out, b->text);
            EVBUFFER_ADD_LIT(out, "</p>\n");
            break;
        case REPORT_BLOCK_LIST:
            EVBUFFER_ADD_LIT(out, "<ul>\n");
            for (size_t r = 0; r < b->n_rows; r++) {
                EVBUFFER_ADD_LIT(out, "<li>");
                html_text(out, b->cells[r].text);
                EVBUFFER_ADD_LIT(out, "</li>\n");
            }
            EVBUFFER_ADD_LIT(out, "</ul>\n");
            break;
        case REPORT_BLOCK_TABLE:
            html_table(out, b);
            break;
        case REPORT_BLOCK_CHARTS:
            if (charts) {
                rc = charts(arg, out);
                if (rc < 0)
                    return rc;
            }
            break;
        }
    }
    return 0;
}
