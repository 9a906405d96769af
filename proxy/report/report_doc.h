/* report_doc: the report as a list of blocks (headings, paragraphs, lists,
 * tables), built once and rendered as Markdown or as HTML, so report.md
 * and report.html always hold the same tables. Pure.
 *
 * Building never fails half-way in the caller's face: the first error
 * (out of memory, a limit) is kept in the doc, later calls are no-ops, and
 * the renderers return it. */
#ifndef TOKENTAP_REPORT_DOC_H
#define TOKENTAP_REPORT_DOC_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* Limits: a report is a few dozen tables of a few dozen rows. */
#define REPORT_DOC_MAX_BLOCKS 10000
#define REPORT_DOC_MAX_COLS 128 /* the primary table has a column per turn, plus 4 */
#define REPORT_DOC_MAX_ROWS 100000
#define REPORT_DOC_MAX_TEXT 4096 /* bytes of one formatted text; longer ones are cut */

enum report_block_kind {
    REPORT_BLOCK_HEADING,
    REPORT_BLOCK_PARA,
    REPORT_BLOCK_WARNING, /* a paragraph that must not be missed */
    REPORT_BLOCK_LIST,    /* bullet list: one item per row */
    REPORT_BLOCK_TABLE,
    REPORT_BLOCK_CHARTS,  /* where the HTML page puts its charts; nothing in Markdown */
};

/* How a table cell is to be shown besides its text (HTML colours it). */
enum report_mark {
    REPORT_MARK_NONE,
    REPORT_MARK_SIG,   /* a significant difference */
    REPORT_MARK_NS,    /* a difference that is not significant */
    REPORT_MARK_PASS,
    REPORT_MARK_FAIL,
    REPORT_MARK_LABEL, /* a row label (first column) */
};

struct report_cell {
    char *text; /* owned */
    enum report_mark mark;
};

struct report_block {
    enum report_block_kind kind;
    int level;   /* heading level 1..4 */
    char *text;  /* owned: heading, paragraph or table caption (may be NULL) */
    char *id;    /* owned: HTML anchor of a heading, may be NULL */
    size_t n_cols;
    char **head; /* owned: n_cols column titles (tables) */
    struct report_cell *cells; /* owned: n_rows * n_cols (tables), n_rows (lists) */
    size_t n_rows, cap_cells;
};

struct report_doc {
    struct report_block *blocks; /* owned */
    size_t n_blocks, cap_blocks;
    int error;                   /* first error (negative errno), 0 when none */
};

/* A zeroed struct is an empty doc; report_doc_finish frees its contents. */
void report_doc_finish(struct report_doc *doc);

/* Appends a heading ("## text" in Markdown). id may be NULL. */
void report_doc_heading(struct report_doc *doc, int level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends a paragraph, or a warning paragraph. Text between backticks is
 * code (kept in Markdown, <code> in HTML). */
void report_doc_para(struct report_doc *doc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void report_doc_warning(struct report_doc *doc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Starts a bullet list; items go in with report_doc_item. */
void report_doc_list(struct report_doc *doc);
void report_doc_item(struct report_doc *doc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Starts a table with n_cols columns titled by the NULL-terminated
 * varargs; rows go in with report_doc_row and report_doc_cell. */
void report_doc_table(struct report_doc *doc, size_t n_cols, ...);
/* Sets the last table's column i title afterwards. */
void report_doc_head(struct report_doc *doc, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void report_doc_row(struct report_doc *doc);
/* Fills the next cell of the current row (extra cells are an error). */
void report_doc_cell(struct report_doc *doc, enum report_mark mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Marks where the HTML page draws its charts. */
void report_doc_charts(struct report_doc *doc);

/* Rows of the last block (for callers that drop an empty table). */
size_t report_doc_rows(const struct report_doc *doc);
/* Removes the last block. */
void report_doc_drop(struct report_doc *doc);

/* Renders the doc as Markdown into out; 0 or the doc's error (or -ENOMEM). */
int report_doc_markdown(const struct report_doc *doc, struct evbuffer *out);

/* Writes the charts section into out at the CHARTS block; 0 or -errno. */
typedef int report_doc_charts_cb(void *arg, struct evbuffer *out);

/* Renders the doc as an HTML fragment (escaped text, `code` spans, tables
 * with class names per mark); calls charts(arg, out) at the CHARTS block
 * (charts may be NULL). 0 or the doc's (or charts') error. */
int report_doc_html(const struct report_doc *doc, struct evbuffer *out,
                    report_doc_charts_cb *charts, void *arg);

/* Cuts a UTF-8 sequence that a truncation left incomplete at the end of s. */
void report_doc_utf8_trim(char *s);

/* Appends s HTML-escaped (& < > " '). */
void report_doc_html_escape(struct evbuffer *out, const char *s);

#endif
