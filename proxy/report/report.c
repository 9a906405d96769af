#include "report/report.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/files.h"
#include "core/log.h"
#include "report/report_build.h"
#include "report/report_doc.h"
#include "report/report_html.h"
#include "report/results.h"

/* --- rendering --- */

static int render(const struct report_plan *plan, enum report_format format, struct evbuffer *out,
                  struct config_err *err)
{
    struct report_doc doc = {0};
    int rc;
    report_build(&doc, plan);
    if (format == REPORT_FORMAT_HTML)
        rc = report_html_page(plan, &doc, out);
    else
        rc = report_doc_markdown(&doc, out);
    if (rc < 0 && err)
        config_err_set(err, "cannot render the report: %s", strerror(-rc));
    report_doc_finish(&doc);
    return rc;
}

int report_render(const struct results *run, const char *source, enum report_format format,
                  struct evbuffer *out, struct config_err *err)
{
    /* The plan holds REPORT_MAX_SIDES sides: too big for a small stack. */
    struct report_plan *plan = malloc(sizeof(*plan));
    int rc;
    if (!plan) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = report_plan_run(plan, run, source, err);
    if (rc < 0)
        goto fail;
    rc = render(plan, format, out, err);
fail:
    if (rc == -ENOMEM && err)
        config_err_set(err, "out of memory");
    free(plan);
    return rc;
}

int report_render_compare(const struct results *a, const char *a_source, const struct results *b,
                          const char *b_source, enum report_format format, struct evbuffer *out,
                          struct config_err *err)
{
    struct report_plan *plan = malloc(sizeof(*plan));
    int rc;
    if (!plan) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = report_plan_compare(plan, a, a_source, b, b_source, err);
    if (rc < 0)
        goto fail;
    rc = render(plan, format, out, err);
fail:
    if (rc == -ENOMEM && err)
        config_err_set(err, "out of memory");
    free(plan);
    return rc;
}

/* --- files --- */

/* Writes out's bytes to path (files_write_atomic). 0 or -errno. */
static int write_file(const char *path, struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out);
    const void *data = len ? (const void *)evbuffer_pullup(out, -1) : (const void *)"";
    if (!data)
        return -ENOMEM;
    return files_write_atomic(path, data, len);
}

static int write_to(FILE *f, struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out);
    const unsigned char *p = evbuffer_pullup(out, -1);
    if (len && !p)
        return -ENOMEM;
    if (len && fwrite(p, 1, len, f) != len)
        return -EIO;
    return fflush(f) == 0 ? 0 : -EIO;
}

/* Renders plan's formats into DIR/report.{md,html}; prints each path written
 * when verbose; moves the Markdown written into md (may be NULL). Logs
 * failures as "report: ...". */
static int write_reports(const struct results *run, const char *source, const char *dir,
                         unsigned formats, bool verbose, struct evbuffer *md)
{
    static const struct {
        enum report_format format;
        const char *name;
    } files[] = {{REPORT_FORMAT_MD, REPORT_MD_NAME}, {REPORT_FORMAT_HTML, REPORT_HTML_NAME}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (!(formats & files[i].format))
            continue;
        char path[4096];
        struct config_err err = {""};
        struct evbuffer *out = evbuffer_new();
        int rc;
        int n = snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
        if (!out)
            return -ENOMEM;
        if (n < 0 || (size_t)n >= sizeof(path)) {
            rc = -ENAMETOOLONG;
            log_error("report: %s/%s: %s", dir, files[i].name, strerror(-rc));
            evbuffer_free(out);
            return rc;
        }
        rc = report_render(run, source, files[i].format, out, &err);
        if (rc < 0) {
            log_error("report: %s", err.msg[0] ? err.msg : strerror(-rc));
        } else {
            rc = write_file(path, out);
            if (rc < 0)
                log_error("report: cannot write %s: %s", path, strerror(-rc));
            else if (verbose)
                printf("%s\n", path);
            if (rc == 0 && md && files[i].format == REPORT_FORMAT_MD &&
                evbuffer_add_buffer(md, out) < 0)
                rc = -ENOMEM;
        }
        evbuffer_free(out);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int report_write_all(const struct results *run, const char *dir, struct evbuffer *md)
{
    return write_reports(run, "results.json", dir, REPORT_FORMAT_MD | REPORT_FORMAT_HTML, false,
                         md);
}

/* Reads and parses a results file; prints "tokentap CMD: PATH: reason". */
static int load(const char *cmd, const char *path, struct results **ret)
{
    char *text = NULL;
    struct config_err err = {""};
    size_t len = 0;
    int rc = files_read(path, RESULTS_MAX_BYTES, &text, &len);
    if (rc < 0) {
        if (rc == -EFBIG)
            fprintf(stderr, "tokentap %s: %s: larger than %zu MiB; not a results file?\n", cmd,
                    path, RESULTS_MAX_BYTES >> 20);
        else
            fprintf(stderr, "tokentap %s: cannot read %s: %s\n", cmd, path, strerror(-rc));
        return rc;
    }
    rc = results_parse(text, len, ret, &err);
    if (rc < 0)
        fprintf(stderr, "tokentap %s: %s: %s\n", cmd, path, err.msg);
    free(text);
    return rc;
}

/* --- tokentap report --- */

enum {
    OPT_OUT = 1,
    OPT_MD,
    OPT_HTML,
};

static const struct cli_option report_options[] = {
    {"out", 'o', "DIR", "write the reports into DIR (default: next to RESULTS.json)", OPT_OUT},
    {"md", 0, NULL, "write report.md only", OPT_MD},
    {"html", 0, NULL, "write report.html only", OPT_HTML},
    {NULL, 0, NULL, NULL, 0},
};

static const struct cli_command report_command = {
    .name = "report",
    .usage = "tokentap report RESULTS.json [--out DIR] [--md|--html]",
    .summary =
        "Regenerate report.md (tables) and report.html (the same tables and charts, one\n"
        "self-contained file) from the results.json that 'tokentap bench' wrote. Every\n"
        "number is a mean over repetitions with its 95% bootstrap confidence interval;\n"
        "differences between targets are marked significant (*) or not (n.s.).",
    .options = report_options,
    .epilog = "Prints the paths it wrote. See docs/results-format.md for the input.\n",
};

static const char *dir_of(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return ".";
    if (slash == path)
        return "/";
    snprintf(buf, len, "%.*s", (int)(slash - path), path);
    return buf;
}

int report_settings_parse(struct report_settings *s, int argc, char **argv, struct config_err *err)
{
    struct cli_parser p;
    const char *v;
    int id;
    *s = (struct report_settings){0};
    cli_init(&p, &report_command, argc, argv, err);
    while ((id = cli_next(&p, &v)) != CLI_END) {
        switch (id) {
        case CLI_HELP:
            return CLI_RUN_HELP;
        case CLI_ERROR:
            return -EINVAL;
        case CLI_POSITIONAL:
            if (s->results)
                return cli_usage(&p, "one results file only (got '%s' and '%s')", s->results, v);
            s->results = v;
            break;
        case OPT_OUT: s->out_dir = v; break;
        case OPT_MD: s->formats |= REPORT_FORMAT_MD; break;
        case OPT_HTML: s->formats |= REPORT_FORMAT_HTML; break;
        }
    }
    if (!s->results)
        return cli_usage(&p, "which results file? (e.g. tokentap report runs/x/results.json)");
    if (!s->formats)
        s->formats = REPORT_FORMAT_MD | REPORT_FORMAT_HTML;
    return 0;
}

/* Writes the reports; the exit status. */
static int report_run(const struct report_settings *s)
{
    struct results *run = NULL;
    char dirbuf[4096];
    const char *out_dir = s->out_dir ? s->out_dir : dir_of(s->results, dirbuf, sizeof(dirbuf));
    if (load(report_command.name, s->results, &run) < 0)
        return 1;
    /* As bench --out does: the directory is made with its parents. */
    int rc = files_make_dirs(out_dir, 0755);
    if (rc < 0)
        fprintf(stderr, "tokentap report: cannot create %s: %s\n", out_dir, strerror(-rc));
    else
        rc = write_reports(run, s->results, out_dir, s->formats, true, NULL);
    results_free(run);
    return rc < 0 ? 1 : 0;
}

int report_main(int argc, char **argv)
{
    struct report_settings s;
    struct config_err err;
    int r = report_settings_parse(&s, argc, argv, &err);
    if (r != 0)
        return cli_exit(&report_command, r, &err);
    return report_run(&s);
}

/* --- tokentap compare --- */

static const struct cli_option compare_options[] = {
    {"md", 0, NULL, "Markdown (the default)", OPT_MD},
    {"html", 0, NULL, "one self-contained HTML page with charts", OPT_HTML},
    {"out", 'o', "FILE", "write to FILE instead of stdout", OPT_OUT},
    {NULL, 0, NULL, NULL, 0},
};

static const struct cli_command compare_command = {
    .name = "compare",
    .usage = "tokentap compare A/results.json B/results.json [--md|--html] [--out FILE]",
    .summary =
        "Put two benchmark runs side by side (e.g. yesterday's Q4 run and today's Q3 run):\n"
        "targets are matched by name (or, when each run has one target, those two),\n"
        "levels by name. Differences are B - A, each marked significant (*) when the 95%\n"
        "bootstrap confidence interval of the difference of means excludes 0, else n.s.",
    .options = compare_options,
    .epilog = NULL,
};

int report_compare_settings_parse(struct report_compare_settings *s, int argc, char **argv,
                                  struct config_err *err)
{
    struct cli_parser p;
    const char *v;
    int id;
    unsigned formats = 0;
    *s = (struct report_compare_settings){.format = REPORT_FORMAT_MD};
    cli_init(&p, &compare_command, argc, argv, err);
    while ((id = cli_next(&p, &v)) != CLI_END) {
        switch (id) {
        case CLI_HELP:
            return CLI_RUN_HELP;
        case CLI_ERROR:
            return -EINVAL;
        case CLI_POSITIONAL:
            if (s->paths[1])
                return cli_usage(&p, "two results files only (a third: '%s')", v);
            s->paths[s->paths[0] ? 1 : 0] = v;
            break;
        case OPT_OUT: s->out = v; break;
        case OPT_MD: formats |= REPORT_FORMAT_MD; break;
        case OPT_HTML: formats |= REPORT_FORMAT_HTML; break;
        }
    }
    if (!s->paths[1])
        return cli_usage(&p, "needs two results files, A and B");
    if (formats == (REPORT_FORMAT_MD | REPORT_FORMAT_HTML))
        return cli_usage(&p, "--md or --html, not both");
    if (formats == REPORT_FORMAT_HTML)
        s->format = REPORT_FORMAT_HTML;
    return 0;
}

/* Renders the comparison to the file or stdout; the exit status. */
static int compare_run(const struct report_compare_settings *s)
{
    const char *name = compare_command.name;
    struct results *a = NULL, *b = NULL;
    struct evbuffer *out = NULL;
    struct config_err err = {""};
    int status = 1;
    if (load(name, s->paths[0], &a) < 0 || load(name, s->paths[1], &b) < 0)
        goto fail;
    out = evbuffer_new();
    if (!out) {
        fprintf(stderr, "tokentap compare: out of memory\n");
        goto fail;
    }
    int rc = report_render_compare(a, s->paths[0], b, s->paths[1], s->format, out, &err);
    if (rc < 0) {
        fprintf(stderr, "tokentap compare: %s\n", err.msg[0] ? err.msg : strerror(-rc));
        goto fail;
    }
    rc = s->out ? write_file(s->out, out) : write_to(stdout, out);
    if (rc < 0) {
        fprintf(stderr, "tokentap compare: cannot write %s: %s\n", s->out ? s->out : "stdout",
                strerror(-rc));
        goto fail;
    }
    status = 0;
fail:
    if (out)
        evbuffer_free(out);
    results_free(b);
    results_free(a);
    return status;
}

int report_compare_main(int argc, char **argv)
{
    struct report_compare_settings s;
    struct config_err err;
    int r = report_compare_settings_parse(&s, argc, argv, &err);
    if (r != 0)
        return cli_exit(&compare_command, r, &err);
    return compare_run(&s);
}
