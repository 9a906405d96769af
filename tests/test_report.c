/* Unit tests for results, report_build, report_doc and report_html: the
 * fixtures in tests/fixtures/results-*.json (written by gen_results.py)
 * rendered to Markdown and HTML in memory and checked for structure, known
 * values and significance marks; compare of two runs; bad inputs. */
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "check.h"
#include "core/config.h"
#include "report/report.h"
#include "report/results.h"
#include "study/scenario.h"
#include "core/stats.h"

static char *slurp(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    buf[n] = '\0';
    fclose(f);
    if (ret_len)
        *ret_len = (size_t)n;
    return buf;
}

static struct results *load(const char *name)
{
    char path[1024];
    struct config_err err = {""};
    const char *dir = getenv("FIXTURES");
    size_t len;
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/fixtures", name);
    char *text = slurp(path, &len);
    struct results *r = NULL;
    int rc = results_parse(text, len, &r, &err);
    free(text);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        exit(1);
    }
    return r;
}

/* The rendered text, NUL-terminated and malloc'ed. */
static char *render(const struct results *r, enum report_format f)
{
    struct evbuffer *out = evbuffer_new();
    struct config_err err = {""};
    CHECK_INT(report_render(r, "results.json", f, out, &err), 0);
    size_t n = evbuffer_get_length(out);
    char *s = malloc(n + 1);
    evbuffer_remove(out, s, n);
    s[n] = '\0';
    evbuffer_free(out);
    return s;
}

static char *render_compare(const struct results *a, const struct results *b, enum report_format f,
                            int want_rc, struct config_err *err)
{
    struct evbuffer *out = evbuffer_new();
    CHECK_INT(report_render_compare(a, "A/results.json", b, "B/results.json", f, out, err),
              want_rc);
    size_t n = evbuffer_get_length(out);
    char *s = malloc(n + 1);
    evbuffer_remove(out, s, n);
    s[n] = '\0';
    evbuffer_free(out);
    return s;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + strlen(needle), needle))
        n++;
    return n;
}

/* Rows of the first Markdown table after `heading` (header and separator
 * not counted); -1 when the heading is missing. */
static int table_rows(const char *md, const char *heading)
{
    const char *h = strstr(md, heading);
    if (!h)
        return -1;
    const char *p = strstr(h, "\n|");
    int lines = 0;
    while (p && p[1] == '|') {
        lines++;
        p = strchr(p + 1, '\n');
    }
    return lines - 2;
}

/* The row of the first table after `heading` whose first cell is `label`. */
static char *table_row(const char *md, const char *heading, const char *label)
{
    static char row[1024];
    char prefix[64];
    const char *h = strstr(md, heading);
    const char *start = h ? strstr(h, "\n|") : NULL;
    if (!start)
        return NULL;
    const char *end = strstr(start, "\n\n");
    snprintf(prefix, sizeof(prefix), "\n| %s |", label);
    const char *p = strstr(start, prefix);
    if (!p || (end && p > end))
        return NULL;
    const char *nl = strchr(p + 1, '\n');
    snprintf(row, sizeof(row), "%.*s", (int)(nl - p - 1), p + 1);
    return row;
}

/* From `heading` to the next heading (malloc'ed; "" when missing). */
static char *section(const char *md, const char *heading)
{
    const char *h = strstr(md, heading);
    if (!h)
        return strdup("");
    const char *end = strstr(h + 1, "\n#");
    size_t n = end ? (size_t)(end - h) : strlen(h);
    char *s = malloc(n + 1);
    memcpy(s, h, n);
    s[n] = '\0';
    return s;
}

/* Cell `col` (0-based) of a Markdown table row. */
static char *row_cell(const char *row, int col)
{
    static char cell[256];
    const char *p = row;
    for (int i = 0; p && i < col; i++)
        p = strchr(p + 1, '|');
    if (!p)
        return NULL;
    const char *q = strchr(p + 1, '|');
    if (!q)
        return NULL;
    snprintf(cell, sizeof(cell), "%.*s", (int)(q - p - 3), p + 2);
    return cell;
}

static void markdown(const struct results *r)
{
    char *md = render(r, REPORT_FORMAT_MD);

    /* Header. */
    CHECK(strncmp(md, "# tokentap bench report: quant-comparison\n", 42) == 0);
    CHECK(strstr(md, "- Repetitions: 5 per cell, after 1 warm-up run\n"));
    CHECK(strstr(md, "- Complete: yes\n"));
    CHECK(strstr(md, "- Environment: bench-host, Linux 6.1.0-28-amd64, 16 CPUs"));
    CHECK(strstr(md, "| `q4` | Q4_K_XL | sim (slots 3, prefill_tps 1500, decode_tps 53.2, "
                     "batch_slowdown 0.09) | qwen35-35b-a3b | off | 22 GB | 32768 |"));
    CHECK(!strstr(md, "Incomplete run"));

    /* One section per target, each with its three tables. */
    CHECK_INT(count(md, "\n## Q4_K_XL (`q4`)\n"), 1);
    CHECK_INT(count(md, "\n## Q3_K_XL (`q3`)\n"), 1);
    CHECK_INT(count(md, "\n### Primary task performance: Primary (FastAPI app)\n"), 2);
    CHECK_INT(count(md, "\n### Side task results\n"), 2);
    CHECK_INT(count(md, "\n### Per-level summary\n"), 2);
    CHECK(strstr(md, "| Concurrency | Turn 1 TTFT | Turn 1 time | Turn 2 time | Turn 3 time | "
                     "Turn 3 tok/s | Total time |\n"));
    CHECK_INT(table_rows(md, "## Q4_K_XL"), 3);
    CHECK_INT(table_rows(md, "## Q3_K_XL"), 3);
    const char *q3 = strstr(md, "## Q3_K_XL");
    CHECK_INT(table_rows(q3, "### Side task results"), 2);
    CHECK_INT(table_rows(q3, "### Per-level summary"), 3);

    /* A known row, formatted like the seed report (plus the CI half-width). */
    CHECK_STR(table_row(md, "## Q4_K_XL", "1"),
              "| 1 | 101 ms ±1 | 1.1 s ±0.01 | 2.0 s ±0.02 | 3.1 s ±0.03 | 53.7 ±0.6 | 6.2 s ±0.1 |");
    /* ... and the same mean recomputed here from the fixture's values. */
    const struct results_cell *c = results_cell(r, "q4", "3", "primary", 1);
    CHECK(c != NULL);
    char want[64];
    snprintf(want, sizeof(want), "%.0f ms", stats_mean(c->m[RESULTS_TTFT].v, c->m[RESULTS_TTFT].n));
    const char *row3 = table_row(md, "## Q4_K_XL", "3");
    CHECK(row3 && strncmp(row_cell(row3, 1), want, strlen(want)) == 0);

    /* Side tasks: passes over repetitions, an error counted as a failure. */
    CHECK_STR(table_row(q3, "### Side task results", "3"),
              "| 3 | PASS 5/5 (3.6 s) | FAIL 1/5 (4.9 s), 1 error |");
    CHECK_STR(table_row(q3, "### Side task results", "2"), "| 2 | PASS 5/5 (3.0 s) | — |");
    CHECK(strstr(q3, "| 3 | 25 | 1 |")); /* per-level summary: 25 requests, 1 error */

    /* The comparison: Q3 against Q4, with significance. */
    const char *cmp = strstr(md, "\n## Comparison: Q3_K_XL vs Q4_K_XL\n");
    CHECK(cmp != NULL);
    if (cmp) {
        CHECK_INT(table_rows(cmp, "### TTFT degradation (primary turn 1)"), 3);
        CHECK_INT(table_rows(cmp, "### Total time (primary task)"), 3);
        CHECK_INT(table_rows(cmp, "### Per-slot speed (turn 3 tok/s)"), 3);
        CHECK_INT(table_rows(cmp, "### Aggregate throughput"), 3);
        CHECK_INT(table_rows(cmp, "### Side-task pass rate"), 3);
        /* TTFT: the same prefill speed, so no significant difference; the
         * degradation from level 1 in %. */
        CHECK_STR(table_row(cmp, "### TTFT degradation", "2"),
                  "| 2 | 202 ms ±2 (+101%) | 200 ms ±3 (+100%) | -2.8 ms (-1.4%) n.s. |");
        char *ttft = section(cmp, "### TTFT degradation");
        CHECK_INT(count(ttft, " n.s. |"), 3);
        CHECK_INT(count(ttft, " * |"), 0);
        free(ttft);
        /* Per-slot speed: Q3 decodes ~9 % faster, clearly. */
        CHECK_STR(table_row(cmp, "### Per-slot speed", "1"),
                  "| 1 | 53.7 ±0.6 | 58.3 ±1.4 | +4.6 (+8.5%) * |");
        CHECK_STR(table_row(cmp, "### Total time", "1"),
                  "| 1 | 6.2 s ±0.1 | 5.8 s ±0.1 | -426 ms (-6.9%) * |");
        /* Pass rates: 5/5 vs 1/5 is significant, 5/5 vs 5/5 is not. */
        CHECK(strstr(cmp, "| 3 | S2 Unit Tests | 5/5 (100%) | 1/5 (20%) | -80 pp * |"));
        CHECK(strstr(cmp, "| 3 | S1 Docstring | 5/5 (100%) | 5/5 (100%) | 0 pp n.s. |"));
    }
    CHECK(strstr(md, "\n## How to read this\n"));
    CHECK(strstr(md, "2000 resamples"));
    CHECK(strstr(md, "not words"));
    /* Numbers right-aligned, text left. */
    CHECK(strstr(md, "| Concurrency | Task |"));
    CHECK(strstr(md, "|:---|:---|---:|---:|---:|\n"));
    free(md);
}

static void html(const struct results *r)
{
    char *page = render(r, REPORT_FORMAT_HTML);
    size_t cj_len = 0;
    const char *cj_path = getenv("CHARTJS");
    char *chartjs = slurp(cj_path ? cj_path : "/usr/share/javascript/chart.js/chart.min.js", &cj_len);

    CHECK(strncmp(page, "<!DOCTYPE html>", 15) == 0);
    CHECK(strstr(page, "</html>\n"));
    /* Chart.js inlined byte for byte, in its own <script>. */
    char *at = strstr(page, chartjs);
    CHECK(at != NULL);
    CHECK(at && strncmp(at - 9, "<script>\n", 9) == 0);
    CHECK(strstr(chartjs, "Chart.js v3.9"));

    /* Self-contained: outside Chart.js's own text, no URL at all, and no
     * element that loads anything. */
    if (at) {
        memset(at, ' ', cj_len);
        CHECK(!strstr(page, "http://"));
        CHECK(!strstr(page, "https://"));
        CHECK(!strstr(page, "<script src"));
        CHECK(!strstr(page, " src="));
        CHECK(!strstr(page, "<link"));
        CHECK(!strstr(page, "@import"));
        CHECK(!strstr(page, "url("));
        CHECK(!strstr(page, "<iframe"));
        CHECK(!strstr(page, "<img"));
    }

    /* One canvas per chart. */
    static const char *const canvases[] = {"chart-radar", "chart-throughput", "chart-ttft",
                                           "chart-total", "chart-sidetasks", "chart-timeline"};
    CHECK_INT(count(page, "<canvas "), 6);
    for (size_t i = 0; i < 6; i++) {
        char id[64];
        snprintf(id, sizeof(id), "<canvas id=\"%s\">", canvases[i]);
        CHECK_INT(count(page, id), 1);
    }
    CHECK(strstr(page, "<pre id=\"errors\" hidden></pre>"));

    /* The same tables as the Markdown, with the marks as classes. */
    CHECK(strstr(page, "<h2>Comparison: Q3_K_XL vs Q4_K_XL</h2>"));
    CHECK(strstr(page, "<td class=\"sig\">+4.6 (+8.5%) *</td>"));
    CHECK(strstr(page, "<td class=\"ns\">-2.8 ms (-1.4%) n.s.</td>"));
    CHECK(strstr(page, "<td class=\"fail text\">FAIL 1/5 (4.9 s), 1 error</td>"));
    /* targets, agents, levels; 3 per target; 5 comparisons */
    CHECK_INT(count(page, "<table>"), 3 + 2 * 3 + 5);

    /* The chart data: JSON in a script element, with the radar's axes. */
    const char *tag = "<script type=\"application/json\" id=\"report-data\">";
    const char *js = strstr(page, tag);
    CHECK(js != NULL);
    if (js) {
        js += strlen(tag);
        const char *end = strstr(js, "</script>");
        cJSON *data = cJSON_ParseWithLength(js, (size_t)(end - js));
        CHECK(data != NULL);
        const cJSON *radar = cJSON_GetObjectItem(data, "radar");
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(radar, "axes")), 6);
        const cJSON *values = cJSON_GetObjectItem(radar, "values");
        CHECK_INT(cJSON_GetArraySize(values), 2);
        /* Q3 decodes faster: Speed 100 for Q3, less for Q4. */
        CHECK(cJSON_GetArrayItem(cJSON_GetArrayItem(values, 1), 0)->valuedouble == 100);
        CHECK(cJSON_GetArrayItem(cJSON_GetArrayItem(values, 0), 0)->valuedouble < 100);
        const cJSON *sides = cJSON_GetObjectItem(data, "sides");
        CHECK_INT(cJSON_GetArraySize(sides), 2);
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(sides, 0), "ttft")), 3);
        const cJSON *st = cJSON_GetObjectItem(data, "side_tasks");
        CHECK_STR(cJSON_GetObjectItem(st, "level")->valuestring, "3");
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(st, "bars")), 4);
        const cJSON *tl = cJSON_GetObjectItem(data, "timeline");
        /* Level 3: 5 requests per target in one repetition, with token ticks. */
        const cJSON *lanes = cJSON_GetObjectItem(tl, "lanes");
        CHECK_INT(cJSON_GetArraySize(lanes), 10);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(tl, "gaps")));
        const cJSON *lane0 = cJSON_GetArrayItem(lanes, 0);
        int ticks = cJSON_GetArraySize(cJSON_GetObjectItem(lane0, "ticks"));
        double tokens = cJSON_GetObjectItem(lane0, "tokens")->valuedouble;
        CHECK_INT(ticks, (int)tokens);
        cJSON_Delete(data);
    }
    /* Radar footnotes: every axis defined. */
    CHECK(strstr(page, "<h2 id=\"footnotes\">Footnotes</h2>"));
    CHECK(strstr(page, "<b>VRAM efficiency</b>"));
    CHECK(!strstr(page, "Left out here"));
    free(chartjs);
    free(page);
}

/* No VRAM figures, one repetition short of nothing: the radar drops the
 * VRAM axis and says so; no gaps_us: ticks are the first token and end. */
static void html_missing_metadata(void)
{
    struct results *r = load("results-single-a.json");
    char *page = render(r, REPORT_FORMAT_HTML);
    const char *tag = "<script type=\"application/json\" id=\"report-data\">";
    const char *js = strstr(page, tag);
    CHECK(js != NULL);
    if (js) {
        js += strlen(tag);
        cJSON *data = cJSON_ParseWithLength(js, (size_t)(strstr(js, "</script>") - js));
        const cJSON *axes = cJSON_GetObjectItem(cJSON_GetObjectItem(data, "radar"), "axes");
        CHECK_INT(cJSON_GetArraySize(axes), 5);
        for (int i = 0; i < cJSON_GetArraySize(axes); i++)
            CHECK(strcmp(cJSON_GetArrayItem(axes, i)->valuestring, "VRAM efficiency") != 0);
        const cJSON *tl = cJSON_GetObjectItem(data, "timeline");
        CHECK(cJSON_IsFalse(cJSON_GetObjectItem(tl, "gaps")));
        const cJSON *lane0 = cJSON_GetArrayItem(cJSON_GetObjectItem(tl, "lanes"), 0);
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(lane0, "ticks")), 2);
        cJSON_Delete(data);
    }
    CHECK(strstr(page, "Left out here: a target has no vram_gb in the results"));
    CHECK(strstr(page, "ticks: first token and end"));
    free(page);
    results_free(r);
}

static void compare(void)
{
    struct results *a = load("results-quant.json"), *b = load("results-quant-b.json");
    struct results *sa = load("results-single-a.json"), *sb = load("results-single-b.json");
    struct config_err err = {""};

    /* Same targets by name: one comparison per target. */
    char *md = render_compare(a, b, REPORT_FORMAT_MD, 0, &err);
    CHECK(strncmp(md, "# tokentap compare: A/results.json vs B/results.json\n", 52) == 0);
    CHECK(strstr(md, "> **Run B is incomplete"));
    CHECK(strstr(md, "Targets are matched by name"));
    CHECK_INT(count(md, "\n## Comparison: "), 2);
    const char *q3 = strstr(md, "\n## Comparison: B: Q3_K_XL vs A: Q3_K_XL\n");
    CHECK(q3 != NULL);
    CHECK(strstr(md, "\n## Comparison: B: Q4_K_XL vs A: Q4_K_XL\n"));
    CHECK(!strstr(md, "### Primary task performance")); /* comparisons only */
    if (q3) {
        /* Today's Q3 decodes ~8 % faster: significant at every level. */
        CHECK_INT(table_rows(q3, "### Per-slot speed (turn 3 tok/s)"), 3);
        char *speed = section(q3, "### Per-slot speed");
        CHECK_INT(count(speed, " * |"), 3);
        free(speed);
        CHECK(strstr(q3, "| Concurrency | A: Q3_K_XL | B: Q3_K_XL | Difference (B: Q3_K_XL − "
                         "A: Q3_K_XL) |"));
    }
    free(md);

    /* One target each, different names: paired anyway. */
    md = render_compare(sa, sb, REPORT_FORMAT_MD, 0, &err);
    CHECK(strstr(md, "Each run has one target: A's `base` is compared with B's `new`."));
    CHECK(strstr(md, "\n## Comparison: B: llama.cpp b4100 vs A: llama.cpp b4000\n"));
    CHECK_INT(table_rows(md, "### TTFT degradation"), 2);
    free(md);

    /* HTML compare: the charts get one series per side. */
    md = render_compare(sa, sb, REPORT_FORMAT_HTML, 0, &err);
    CHECK(strstr(md, "<canvas id=\"chart-timeline\">"));
    CHECK(strstr(md, "<title>tokentap compare</title>"));
    free(md);

    /* Nothing to pair: two targets against one of another name. */
    md = render_compare(a, sb, REPORT_FORMAT_MD, -ENOENT, &err);
    CHECK(strstr(err.msg, "no target of the first run"));
    CHECK_INT(strlen(md), 0);
    free(md);

    results_free(a);
    results_free(b);
    results_free(sa);
    results_free(sb);
}

static int parse_err(const char *text, struct config_err *err)
{
    struct results *r = (struct results *)1;
    int rc = results_parse(text, strlen(text), &r, err);
    CHECK(r == (struct results *)1); /* untouched on failure */
    return rc;
}

static void bad_input(void)
{
    struct config_err err;
    CHECK_INT(parse_err("{\"format\": \"tokentap-bench\", ", &err), -EINVAL);
    CHECK(strstr(err.msg, "not valid JSON"));
    CHECK_INT(parse_err("{\"foo\": 1}", &err), -EINVAL);
    CHECK_STR(err.msg, "not a tokentap results file (no \"format\": \"tokentap-bench\")");
    CHECK_INT(parse_err("[1, 2]", &err), -EINVAL);
    CHECK(strstr(err.msg, "not a tokentap results file"));
    CHECK_INT(parse_err("{\"format\": \"tokentap-trace\", \"version\": 1}", &err), -EINVAL);
    CHECK(strstr(err.msg, "format \"tokentap-trace\""));
    CHECK_INT(parse_err("{\"format\": \"tokentap-bench\", \"version\": 2}", &err), -EINVAL);
    CHECK_STR(err.msg, "results format version 2 is not supported (this tokentap reads version 1)");
    CHECK_INT(parse_err("{\"format\": \"tokentap-bench\"}", &err), -EINVAL);
    CHECK(strstr(err.msg, "without a format version"));
    CHECK_INT(parse_err("{\"format\": \"tokentap-bench\", \"version\": 1}", &err), -EINVAL);
    CHECK_STR(err.msg, "no \"scenario\" object");
    CHECK_INT(parse_err("{\"format\": \"tokentap-bench\", \"version\": 1, \"scenario\": {}, "
                        "\"targets\": [], \"cells\": [{\"target\": \"x\"}], \"level_cells\": []}",
                        &err),
              -EINVAL);
    CHECK_STR(err.msg, "cells[0] has no \"level\" string");
    CHECK_INT(parse_err("{\"format\": \"tokentap-bench\", \"version\": 1, \"scenario\": {}, "
                        "\"targets\": {}, \"cells\": [], \"level_cells\": []}",
                        &err),
              -EINVAL);
    CHECK_STR(err.msg, "\"targets\" is something else, not an array");
    /* Counts that would make the report loop or allocate without bound. */
    CHECK_INT(
        parse_err("{\"format\": \"tokentap-bench\", \"version\": 1, \"scenario\": {\"agents\": "
                  "[{\"name\": \"p\", \"role\": \"primary\", \"turns\": 1000000000}]}, "
                  "\"targets\": [], \"cells\": [], \"level_cells\": []}",
                  &err),
        -EINVAL);
    CHECK_STR(err.msg, "scenario.agents[0].turns is 1e+09: expected 1 to 64");
    CHECK_INT(
        parse_err("{\"format\": \"tokentap-bench\", \"version\": 1, \"scenario\": {}, "
                  "\"targets\": [], \"cells\": [{\"target\": \"t\", \"level\": \"1\", "
                  "\"agent\": \"a\", \"n\": 2, \"checked\": 1000000000}], \"level_cells\": []}",
                  &err),
        -EINVAL);
    CHECK_STR(err.msg, "cells[0].checked is 1e+09: expected 0 to 100000");
    CHECK_INT(parse_err("{\"format\": \"tokentap-bench\", \"version\": 1, \"scenario\": {}, "
                        "\"targets\": [], \"cells\": [{\"target\": \"t\", \"level\": \"1\", "
                        "\"agent\": \"a\", \"turn\": 65}], \"level_cells\": []}",
                        &err),
              -EINVAL);
    CHECK_STR(err.msg, "cells[0].turn is 65: expected 1 to 64");
    CHECK_INT(parse_err("{\"format\": \"tokentap-bench\", \"version\": 1, \"scenario\": {}, "
                        "\"targets\": [], \"cells\": [], \"level_cells\": [{\"target\": \"t\", "
                        "\"level\": \"1\", \"errors\": -1}]}",
                        &err),
              -EINVAL);
    CHECK_STR(err.msg, "level_cells[0].errors is -1: expected 0 to 100000");

    /* The least a file can hold renders: headings, no tables to speak of. */
    const char *minimal = "{\"format\": \"tokentap-bench\", \"version\": 1, \"complete\": false, "
                          "\"scenario\": {\"name\": \"bare|bones\"}, \"targets\": [{\"name\": "
                          "\"t\"}], \"cells\": [], \"level_cells\": []}";
    struct results *r = NULL;
    CHECK_INT(results_parse(minimal, strlen(minimal), &r, &err), 0);
    if (r) {
        char *md = render(r, REPORT_FORMAT_MD);
        CHECK(strstr(md, "# tokentap bench report: bare|bones\n"));
        CHECK(strstr(md, "> **Incomplete run"));
        CHECK(strstr(md, "| `t` | t | — | — | not set | — | — |"));
        free(md);
        char *page = render(r, REPORT_FORMAT_HTML);
        CHECK(strstr(page, "<title>tokentap report: bare|bones</title>"));
        CHECK(!strstr(page, "<canvas id=\"chart-radar\">")); /* nothing to draw it from */
        CHECK(!strstr(page, "<canvas id=\"chart-sidetasks\">"));
        CHECK(!strstr(page, "<canvas id=\"chart-ttft\">"));
        CHECK(!strstr(page, "<canvas "));
        free(page);
        results_free(r);
    }

    /* Labels with Markdown and HTML specials are escaped. */
    const char *odd = "{\"format\": \"tokentap-bench\", \"version\": 1, \"complete\": true, "
                      "\"scenario\": {\"name\": \"s\", \"levels\": [{\"name\": \"1\", "
                      "\"concurrency\": 1}]}, \"targets\": [{\"name\": \"a\", \"label\": "
                      "\"<b>x|y</b></script>\"}], \"cells\": [], \"level_cells\": []}";
    CHECK_INT(results_parse(odd, strlen(odd), &r, &err), 0);
    if (r) {
        char *md = render(r, REPORT_FORMAT_MD);
        CHECK(strstr(md, "| `a` | <b>x\\|y</b></script> |"));
        free(md);
        char *page = render(r, REPORT_FORMAT_HTML);
        CHECK(strstr(page, "&lt;b&gt;x|y&lt;/b&gt;&lt;/script&gt;"));
        CHECK_INT(count(page, "</script>"), 3); /* Chart.js, data, charts: none early */
        CHECK(strstr(page, "\\u003c/script>"));
        free(page);
        results_free(r);
    }
}

/* Whether s is well-formed UTF-8 (enough for cut-off sequences). */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : *p >= 0xC0 ? 1 : -1;
        if (n < 0)
            return false;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return false;
    }
    return true;
}

/* A runaway label is cut at a character boundary, not fatal. */
static void long_label(void)
{
    size_t n = 3000;
    char *label = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(label + 2 * i, "é", 2);
    label[2 * n] = '\0';
    cJSON *root = cJSON_Parse("{\"format\": \"tokentap-bench\", \"version\": 1, \"complete\": "
                              "true, \"scenario\": {}, \"targets\": [], \"cells\": [], "
                              "\"level_cells\": []}");
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", "x");
    cJSON_AddStringToObject(t, "label", label);
    cJSON_AddItemToArray(cJSON_GetObjectItem(root, "targets"), t);
    struct results *r = NULL;
    struct config_err err;
    CHECK_INT(results_from_json(root, &r, &err), 0);
    if (r) {
        char *md = render(r, REPORT_FORMAT_MD);
        CHECK(utf8_ok(md));
        CHECK(strstr(md, "ééé"));
        free(md);
        char *page = render(r, REPORT_FORMAT_HTML);
        CHECK(utf8_ok(page));
        free(page);
        results_free(r);
    }
    cJSON_Delete(root);
    free(label);
}

/* A primary agent with as many turns as a scenario allows gets its whole
 * table: a column per turn. */
static void many_turns(void)
{
    char path[1024];
    struct config_err err = {""};
    const char *dir = getenv("FIXTURES");
    snprintf(path, sizeof(path), "%s/results-single-a.json", dir ? dir : "tests/fixtures");
    char *text = slurp(path, NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    CHECK(root != NULL);
    cJSON *agents = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "scenario"), "agents");
    cJSON_SetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(agents, 0), "turns"),
                         SCENARIO_MAX_TURNS);
    cJSON *cells = cJSON_GetObjectItem(root, "cells");
    cJSON *first = cJSON_GetArrayItem(cells, 0);
    CHECK_INT(cJSON_GetObjectItem(first, "turn")->valueint, 1);
    for (int t = 4; t <= SCENARIO_MAX_TURNS; t++) {
        cJSON *c = cJSON_Duplicate(first, true);
        cJSON_SetNumberValue(cJSON_GetObjectItem(c, "turn"), t);
        cJSON_AddItemToArray(cells, c);
    }
    struct results *r = NULL;
    CHECK_INT(results_from_json(root, &r, &err), 0);
    if (r) {
        char *md = render(r, REPORT_FORMAT_MD);
        char head[64];
        snprintf(head, sizeof(head), "Turn %d time", SCENARIO_MAX_TURNS);
        CHECK(md && strstr(md, head));
        free(md);
        results_free(r);
    }
    cJSON_Delete(root);
}

int main(void)
{
    struct results *r = load("results-quant.json");
    CHECK_INT(r->n_targets, 2);
    CHECK_INT(r->n_levels, 3);
    CHECK_INT(r->n_agents, 3);
    CHECK_INT(r->repetitions, 5);
    CHECK_INT(r->n_cells, 2 * (3 + 4 + 5));
    CHECK_INT(r->n_level_cells, 6);
    CHECK_INT(r->n_requests, 2 * 5 * (3 + 4 + 5));
    CHECK(results_primary(r) == results_agent(r, "primary"));
    const struct results_cell *c = results_cell(r, "q3", "3", "unit_tests", 1);
    CHECK(c && c->errors == 1 && c->pass == 1 && c->checked == 4);
    CHECK(c && c->m[RESULTS_TTFT].n == 5 && isnan(c->m[RESULTS_TTFT].v[4]));

    markdown(r);
    html(r);
    results_free(r);
    html_missing_metadata();
    compare();
    bad_input();
    long_label();
    many_turns();
    return check_done("test_report");
}
