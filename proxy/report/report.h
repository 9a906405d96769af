/* report: `tokentap report` and `tokentap compare` (report.md and
 * report.html from bench's results.json, docs/results-format.md), and the
 * entry point bench calls after a run. Edge module: it reads and writes
 * files and logs. The work is done by pure modules: results (parsing),
 * report_build (the tables), report_doc (Markdown/HTML), report_html (the
 * page and its charts), stats (means, CIs, significance). */
#ifndef TOKENTAP_REPORT_H
#define TOKENTAP_REPORT_H

#include <stddef.h>

struct config_err;
struct evbuffer;
struct results;

enum report_format {
    REPORT_FORMAT_MD = 1 << 0,
    REPORT_FORMAT_HTML = 1 << 1,
};

#define REPORT_MD_NAME "report.md"
#define REPORT_HTML_NAME "report.html"

/* Writes DIR/report.md and DIR/report.html for a run (bench's, next to
 * the DIR/results.json it wrote) and appends the Markdown to md (may be
 * NULL), so the caller can print what it wrote without reading it back.
 * Each file goes to a temporary name first and is renamed, so nobody sees
 * half a report. Logs the reason of a failure; 0 or -errno. */
int report_write_all(const struct results *run, const char *dir, struct evbuffer *md);

/* Renders one run's report in one format into out. source (the results
 * file's name for the header) may be NULL. 0 or -errno with the reason in
 * err (may be NULL). */
int report_render(const struct results *run, const char *source, enum report_format format,
                  struct evbuffer *out, struct config_err *err);

/* Renders the comparison of run b against run a (targets matched by name,
 * or the only target of each). -ENOENT when nothing pairs up. */
int report_render_compare(const struct results *a, const char *a_source, const struct results *b,
                          const char *b_source, enum report_format format, struct evbuffer *out,
                          struct config_err *err);

/* `tokentap report`'s settings; strings are borrowed from argv. */
struct report_settings {
    const char *results;  /* the results.json */
    const char *out_dir;  /* --out, NULL: the results file's directory */
    unsigned formats;     /* REPORT_FORMAT_* bits (both unless --md or --html) */
};

/* `tokentap compare`'s settings; strings are borrowed from argv. */
struct report_compare_settings {
    const char *paths[2];        /* A and B */
    const char *out;             /* --out, NULL: stdout */
    enum report_format format;
};

/* Parse argv (argv[0] is "report" or "compare") into s: 0, CLI_RUN_HELP
 * for --help, or -EINVAL with the usage error's line in err. They read no
 * file. */
int report_settings_parse(struct report_settings *s, int argc, char **argv, struct config_err *err);
int report_compare_settings_parse(struct report_compare_settings *s, int argc, char **argv,
                                  struct config_err *err);

/* The subcommands; exit status 0, 1 (runtime error) or 2 (usage error). */
int report_main(int argc, char **argv);
int report_compare_main(int argc, char **argv);

#endif
