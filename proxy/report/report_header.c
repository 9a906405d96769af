/* report_build's header and footer: what was run (scenario, targets,
 * levels, environment) and how to read the numbers. */
#include "report/report_build.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "report/report_doc.h"
#include "core/stats.h"

/* "sim (slots 3, decode_tps 53.2, ...)" or the URL. */
static const char *endpoint(char *buf, size_t len, const struct results_target *t)
{
    if (t->url) {
        snprintf(buf, len, "%s", t->url);
        return buf;
    }
    if (!t->on_sim) {
        snprintf(buf, len, "—");
        return buf;
    }
    size_t n = (size_t)snprintf(buf, len, "sim (");
    for (size_t i = 0; i < t->n_sim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s %s", i ? ", " : "", t->sim[i].key,
                              t->sim[i].value);
    if (n < len)
        snprintf(buf + n, len - n, ")");
    return buf;
}

static void targets_table(struct report_doc *doc, const struct report_plan *plan)
{
    size_t runs = plan->compare ? 2 : 1;
    report_doc_heading(doc, 2, "targets", "Targets");
    /* A run column only when there are two runs. */
    if (plan->compare)
        report_doc_table(doc, 8, "Run", "Target", "Label", "Endpoint", "Model", "Thinking",
                         "VRAM", "Context", NULL);
    else
        report_doc_table(doc, 7, "Target", "Label", "Endpoint", "Model", "Thinking", "VRAM",
                         "Context", NULL);
    for (size_t r = 0; r < runs; r++) {
        const struct results *run = plan->runs[r];
        for (size_t i = 0; i < run->n_targets; i++) {
            const struct results_target *t = &run->targets[i];
            char ep[512], vram[32], ctx[32];
            report_doc_row(doc);
            if (plan->compare)
                report_doc_cell(doc, REPORT_MARK_LABEL, "%s", r ? "B" : "A");
            report_doc_cell(doc, plan->compare ? REPORT_MARK_NONE : REPORT_MARK_LABEL, "`%s`",
                            t->name);
            report_doc_cell(doc, REPORT_MARK_NONE, "%s", t->label);
            report_doc_cell(doc, REPORT_MARK_NONE, "%s", endpoint(ep, sizeof(ep), t));
            report_doc_cell(doc, REPORT_MARK_NONE, "%s", t->model ? t->model : "—");
            report_doc_cell(doc, REPORT_MARK_NONE, "%s",
                            t->thinking < 0 ? "not set" : t->thinking ? "on" : "off");
            snprintf(vram, sizeof(vram), isnan(t->vram_gb) ? "—" : "%g GB", t->vram_gb);
            snprintf(ctx, sizeof(ctx), isnan(t->context) ? "—" : "%g", t->context);
            report_doc_cell(doc, REPORT_MARK_NONE, "%s", vram);
            report_doc_cell(doc, REPORT_MARK_NONE, "%s", ctx);
        }
    }
}

/* "parallel: primary, docstring; then sequential: x" */
static const char *phases_text(char *buf, size_t len, const struct results_level *l)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t p = 0; p < l->n_phases; p++) {
        const struct results_phase *ph = &l->phases[p];
        if (n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%s:", n ? "; then " : "",
                                  ph->kind ? ph->kind : "?");
        for (size_t k = 0; k < ph->n_agents; k++)
            if (n < len && ph->agents[k])
                n += (size_t)snprintf(buf + n, len - n, "%s %s", k ? "," : "", ph->agents[k]);
    }
    if (!buf[0])
        snprintf(buf, len, "—");
    return buf;
}

static void scenario_tables(struct report_doc *doc, const struct results *run)
{
    char buf[512], lab[96];
    report_doc_heading(doc, 2, "scenario", "Scenario");
    report_doc_table(doc, 4, "Agent", "Label", "Role", "Turns", NULL);
    for (size_t i = 0; i < run->n_agents; i++) {
        const struct results_agent *a = &run->agents[i];
        report_doc_row(doc);
        report_doc_cell(doc, REPORT_MARK_LABEL, "`%s`", a->name);
        report_doc_cell(doc, REPORT_MARK_NONE, "%s", a->label);
        report_doc_cell(doc, REPORT_MARK_NONE, "%s", a->primary ? "primary" : "side task");
        report_doc_cell(doc, REPORT_MARK_NONE, "%d", a->turns);
    }
    report_doc_table(doc, 3, "Level", "Concurrency", "Phases", NULL);
    for (size_t i = 0; i < run->n_levels; i++) {
        const struct results_level *l = &run->levels[i];
        report_doc_row(doc);
        report_doc_cell(doc, REPORT_MARK_LABEL, "%s", report_level_label(lab, sizeof(lab), l));
        if (isnan(l->concurrency))
            report_doc_cell(doc, REPORT_MARK_NONE, "—");
        else
            report_doc_cell(doc, REPORT_MARK_NONE, "%g", l->concurrency);
        report_doc_cell(doc, REPORT_MARK_NONE, "%s", phases_text(buf, sizeof(buf), l));
    }
}

/* The facts of one run, as list items. */
static void run_items(struct report_doc *doc, const struct results *run, const char *source)
{
    const struct results_environment *env = &run->env;
    const char *file = run->scenario_file;
    report_doc_item(doc, "Scenario: %s%s%s%s", run->scenario_name[0] ? run->scenario_name : "—",
                    file ? " (`" : "", file ? file : "", file ? "`)" : "");
    if (source)
        report_doc_item(doc, "Results: `%s`", source);
    const char *started = env->started, *finished = env->finished;
    double dur = env->duration_s;
    char d[48] = "";
    if (!isnan(dur))
        snprintf(d, sizeof(d), " (%.1f s)", dur);
    report_doc_item(doc, "Date: %s%s%s%s", started ? started : "unknown",
                    finished ? " to " : "", finished ? finished : "", d);
    double warm = run->warmup;
    char w[48] = "";
    if (warm > 0)
        snprintf(w, sizeof(w), ", after %g warm-up run%s", warm, warm == 1 ? "" : "s");
    if (run->sweep_key) {
        char values[512];
        size_t n = 0;
        values[0] = '\0';
        for (size_t i = 0; i < run->n_targets && n < sizeof(values); i++)
            if (run->targets[i].sweep_value && !strstr(values, run->targets[i].sweep_value))
                n += (size_t)snprintf(values + n, sizeof(values) - n, "%s%s", n ? ", " : "",
                                      run->targets[i].sweep_value);
        report_doc_item(doc, "Sweep: `%s` over %s (each target once per value; the comparisons "
                             "set the values side by side)",
                        run->sweep_key, values);
    }
    if (run->capacity.present)
        report_doc_item(doc, "Repetitions: %d per count of users tried, more at the two counts "
                             "at the edge (see Capacity)%s",
                        run->repetitions, w);
    else
        report_doc_item(doc, "Repetitions: %d per cell%s", run->repetitions, w);
    report_doc_item(doc, "Complete: %s",
                    run->complete ? "yes" : "no (interrupted, or a target failed)");
    if (run->has_environment) {
        const char *host = env->host, *os = env->os;
        double cpus = env->cpus;
        const char *sched = env->schedule;
        char c[32] = "";
        if (!isnan(cpus))
            snprintf(c, sizeof(c), ", %g CPUs", cpus);
        report_doc_item(doc, "Environment: %s, %s%s%s", host ? host : "unknown host",
                        os ? os : "unknown OS", c,
                        !sched                              ? ""
                        : strcmp(sched, "side-by-side") == 0 ? "; simulated targets ran side by side"
                                                             : "; targets ran one at a time, the order rotating each repetition");
        const char *cmd = env->command;
        if (cmd)
            report_doc_item(doc, "Command: `%s`", cmd);
    }
    if (run->tokentap_version)
        report_doc_item(doc, "tokentap %s", run->tokentap_version);
}

void report_build_header(struct report_doc *doc, const struct report_plan *plan)
{
    const struct results *a = plan->runs[0], *b = plan->runs[1];
    if (!plan->compare) {
        report_doc_heading(doc, 1, NULL, "tokentap bench report: %s",
                           a->scenario_name[0] ? a->scenario_name : "unnamed scenario");
        if (!a->complete)
            report_doc_warning(doc, "Incomplete run: the bench was interrupted or a target "
                                    "failed. The tables show what was measured.");
        const char *desc = a->description;
        if (desc)
            report_doc_para(doc, "%s", desc);
        report_doc_list(doc);
        run_items(doc, a, plan->source[0]);
        targets_table(doc, plan);
        scenario_tables(doc, a);
        return;
    }
    report_doc_heading(doc, 1, NULL, "tokentap compare: %s vs %s",
                       plan->source[0] ? plan->source[0] : "A",
                       plan->source[1] ? plan->source[1] : "B");
    for (int r = 0; r < 2; r++)
        if (!plan->runs[r]->complete)
            report_doc_warning(doc, "Run %c is incomplete: the bench was interrupted or a target "
                                    "failed. Its tables show what was measured.",
                               r ? 'B' : 'A');
    for (int r = 0; r < 2; r++) {
        report_doc_heading(doc, 2, NULL, "Run %c", r ? 'B' : 'A');
        report_doc_list(doc);
        run_items(doc, plan->runs[r], plan->source[r]);
    }
    targets_table(doc, plan);
    const struct report_side *s0 = &plan->sides[0], *s1 = &plan->sides[1];
    if (plan->n_pairs == 1 && strcmp(s0->target->name, s1->target->name) != 0)
        report_doc_para(doc, "Each run has one target: A's `%s` is compared with B's `%s`.",
                        s0->target->name, s1->target->name);
    else
        report_doc_para(doc, "Targets are matched by name; levels by name (%s has %zu, %s has "
                             "%zu).",
                        "A", a->n_levels, "B", b->n_levels);
}

void report_build_how_to_read(struct report_doc *doc, const struct report_plan *plan)
{
    report_doc_heading(doc, 2, "how-to-read", "How to read this");
    report_doc_list(doc);
    if (plan->runs[0]->capacity.present)
        report_doc_item(doc, "Every number is the mean over its cell: one value per repetition "
                             "and user (a count of users is a level here); a request that "
                             "failed is left out and counted as an error.");
    else
        report_doc_item(doc, "Every number is the mean over the repetitions of its cell (%d per cell "
                             "in %s); a repetition whose request failed is left out and counted "
                             "as an error.",
                        plan->runs[0]->repetitions, plan->compare ? "run A" : "this run");
    report_doc_item(doc, "`±x` is half the width of the 95 %% confidence interval of the mean: "
                         "a bootstrap over the repetitions (percentile method, %d resamples, "
                         "fixed seed, so the same results give the same interval).",
                    STATS_BOOTSTRAP_RESAMPLES);
    report_doc_item(doc, "A difference is significant (`*`) when the 95 %% bootstrap CI of the "
                         "difference of means (both sides resampled) excludes 0; `n.s.` means "
                         "it does not, and with fewer than 2 values on a side nothing is "
                         "called significant. Pass-rate differences are in percentage points "
                         "(pp). About 1 in 20 comparisons of two equal things comes out "
                         "significant by chance: trust differences that hold across levels.");
    report_doc_item(doc, "TTFT: from sending the request to the first streamed token. Turn "
                         "time: the whole response. Total time: from the primary agent's first "
                         "request to its last response's end. Wall time: the whole "
                         "repetition, all agents.");
    report_doc_item(doc, "Token counts and tok/s are the server's token counts (`usage`, "
                         "`timings`), not words. Decode tok/s = (output tokens − 1) / (last "
                         "token − first token); per-slot speed is that of the primary's last "
                         "turn; output tok/s is every output token of a repetition over its "
                         "wall time.");
    report_doc_item(doc, "PASS k/n: the answer had the scenario's expected keywords in k of n "
                         "repetitions (errors count as failures). Percentiles interpolate "
                         "linearly; ITL p50 is the median of the per-request ITL medians.");
}
