/* report_build's capacity section: how many users each side holds within
 * the objective (with its CI and what broke first), side by side, and
 * every count the search tried with each objective's value. */
#include "report/report_build.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report/report_doc.h"

/* A side's capacity, or NULL when its run searched none. */
static const struct results_capacity_target *side_capacity(const struct report_side *s)
{
    return s->run->capacity.present ? results_capacity_of(s->run, s->target->name) : NULL;
}

/* "agent" or "agents" (or users), as n asks. */
static const char *noun(const struct results_capacity *c, double n)
{
    bool agents = c->unit && strcmp(c->unit, "agents") == 0;
    if (n == 1)
        return agents ? "agent" : "user";
    return agents ? "agents" : "users";
}

/* "3 agents (95 % CI 2–3)", "at least 16 agents", "0: one agent breaks it". */
static const char *holds(char *buf, size_t len, const struct results_capacity *c,
                         const struct results_capacity_target *t)
{
    const char *bound = t && t->bound ? t->bound : "none";
    if (!t || isnan(t->capacity) || strcmp(bound, "none") == 0)
        snprintf(buf, len, "—");
    else if (strcmp(bound, "at-least") == 0)
        snprintf(buf, len, "at least %g %s (the most tried)", t->capacity, noun(c, t->capacity));
    else if (strcmp(bound, "below-one") == 0)
        snprintf(buf, len, "0: one %s already breaks it", noun(c, 1));
    else
        snprintf(buf, len, "%g %s (95 %% CI %g–%g)", t->capacity, noun(c, t->capacity),
                 isnan(t->ci_lo) ? t->capacity : t->ci_lo, isnan(t->ci_hi) ? t->capacity : t->ci_hi);
    return buf;
}

static int objective_index(const struct results_capacity *c, const char *name)
{
    for (size_t i = 0; name && i < c->n_objectives; i++)
        if (strcmp(c->objectives[i].name, name) == 0)
            return (int)i;
    return -1;
}

static const struct results_capacity_point *point_at(const struct results_capacity_target *t,
                                                     double users)
{
    for (size_t i = 0; i < t->n_points; i++)
        if (t->points[i].users == users)
            return &t->points[i];
    return NULL;
}

/* "TTFT p95 < 60 ms: 128 ms at 4 agents" */
static const char *broke_text(char *buf, size_t len, const struct results_capacity *c,
                              const struct results_capacity_target *t)
{
    int o = t ? objective_index(c, t->broke) : -1;
    if (o < 0) {
        snprintf(buf, len, "—");
        return buf;
    }
    const struct results_capacity_point *p = point_at(t, t->broke_at);
    char v[64] = "";
    if (p)
        report_format_unit(v, sizeof(v), c->objectives[o].unit, p->j[o].value);
    snprintf(buf, len, "%s: %s at %g %s", c->objectives[o].text, v[0] ? v : "—", t->broke_at,
             noun(c, t->broke_at));
    return buf;
}

/* "Q4_K_XL holds 3 agents, Q3_K_XL 4, at TTFT p95 < 2 s." */
static void headline(struct report_doc *doc, const struct report_plan *plan)
{
    char text[REPORT_DOC_MAX_TEXT];
    size_t n = 0;
    const struct results_capacity *first = NULL;
    for (size_t i = 0; i < plan->n_sides && n < sizeof(text); i++) {
        const struct report_side *s = &plan->sides[i];
        const struct results_capacity_target *t = side_capacity(s);
        if (!t || isnan(t->capacity))
            continue;
        const struct results_capacity *c = &s->run->capacity;
        const char *at_least = strcmp(t->bound ? t->bound : "", "at-least") == 0 ? "at least " : "";
        if (!first)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s holds %s%g %s", s->label,
                                  at_least, t->capacity, noun(c, t->capacity));
        else
            n += (size_t)snprintf(text + n, sizeof(text) - n, ", %s %s%g", s->label, at_least,
                                  t->capacity);
        first = first ? first : c;
    }
    if (first && n < sizeof(text))
        report_doc_para(doc, "%s, at %s.", text, first->objective ? first->objective : "the objective");
}

/* The counts tried by one side, with each objective's value and CI. */
static void points_table(struct report_doc *doc, const struct report_side *s)
{
    const struct results_capacity *c = &s->run->capacity;
    const struct results_capacity_target *t = side_capacity(s);
    if (!t || t->n_points == 0)
        return;
    size_t cols = 3 + c->n_objectives;
    report_doc_heading(doc, 3, NULL, "%s: each count tried", s->label);
    report_doc_table(doc, cols, c->unit && strcmp(c->unit, "agents") == 0 ? "Agents" : "Users",
                     "Repetitions", NULL);
    for (size_t o = 0; o < c->n_objectives; o++)
        report_doc_head(doc, 2 + o, "%s", c->objectives[o].text);
    report_doc_head(doc, cols - 1, "Verdict");
    for (size_t i = 0; i < t->n_points; i++) {
        const struct results_capacity_point *p = &t->points[i];
        report_doc_row(doc);
        report_doc_cell(doc, REPORT_MARK_LABEL, "%g", p->users);
        report_doc_cell(doc, REPORT_MARK_NONE, "%d", p->repetitions);
        for (size_t o = 0; o < c->n_objectives; o++) {
            const struct results_judgement *j = &p->j[o];
            const char *unit = c->objectives[o].unit;
            char v[64], lo[64], hi[64];
            report_format_unit(v, sizeof(v), unit, j->value);
            enum report_mark m = j->pass == 1 ? REPORT_MARK_PASS : j->pass == 0 ? REPORT_MARK_FAIL
                                                                                : REPORT_MARK_NONE;
            report_format_unit(lo, sizeof(lo), unit, j->lo);
            report_format_unit(hi, sizeof(hi), unit, j->hi);
            /* The CI only where it says more than the value. */
            if (isnan(j->lo) || (strcmp(lo, v) == 0 && strcmp(hi, v) == 0))
                report_doc_cell(doc, m, "%s", v);
            else
                report_doc_cell(doc, m, "%s [%s–%s]", v, lo, hi);
        }
        report_doc_cell(doc, p->pass == 1 ? REPORT_MARK_PASS : REPORT_MARK_FAIL, "%s%s",
                        p->pass == 1 ? "holds" : "breaks",
                        p->significant == 1 ? "" : " (not sure: the CI crosses the limit)");
    }
}

void report_build_capacity(struct report_doc *doc, const struct report_plan *plan)
{
    const struct results_capacity *c = NULL;
    for (size_t i = 0; i < plan->n_sides && !c; i++)
        if (side_capacity(&plan->sides[i]))
            c = &plan->sides[i].run->capacity;
    if (!c)
        return;
    report_doc_heading(doc, 2, "capacity", "Capacity");
    char user[400];
    if (c->user_trace)
        snprintf(user, sizeof(user),
                 "one run of an agentic trace from `%s`, with prompt text of its own (the "
                 "kinds of its sessions are the agents)",
                 c->user_trace);
    else
        snprintf(user, sizeof(user), "one copy of level `%s`'s agents",
                 c->user_level ? c->user_level : "?");
    report_doc_para(doc,
                    "How many %s each target holds while %s. A user is %s; the search ran 1, 2, "
                    "4, ... users at once until the objective broke, bisected between the last "
                    "count that held and the first that broke, and repeated those two until the "
                    "95 %% bootstrap CI of each verdict lay on one side of the limit. The "
                    "capacity's CI comes from judging every count again on its repetitions "
                    "resampled.",
                    noun(c, 2), c->objective ? c->objective : "the objective", user);
    if (plan->compare && plan->runs[1]->capacity.present && c->objective &&
        plan->runs[1]->capacity.objective &&
        strcmp(plan->runs[0]->capacity.objective ? plan->runs[0]->capacity.objective : "",
               plan->runs[1]->capacity.objective) != 0)
        report_doc_warning(doc, "The two runs searched with different objectives: A at %s, B at %s.",
                           plan->runs[0]->capacity.objective ? plan->runs[0]->capacity.objective : "none",
                           plan->runs[1]->capacity.objective);
    for (size_t r = 0; r < (plan->compare ? 2u : 1u); r++)
        if (plan->runs[r]->capacity.present && !plan->runs[r]->complete)
            report_doc_warning(doc, "%s was stopped before its search ended: the capacity is what "
                                    "the counts tried so far say.",
                               plan->compare ? (r ? "Run B" : "Run A") : "The run");
    headline(doc, plan);
    report_doc_table(doc, 4, "Target", "Holds", "Broke first", "Counts tried", NULL);
    for (size_t i = 0; i < plan->n_sides; i++) {
        const struct report_side *s = &plan->sides[i];
        const struct results_capacity_target *t = side_capacity(s);
        const struct results_capacity *sc = &s->run->capacity;
        char h[160], b[256], tried[512];
        size_t n = 0;
        tried[0] = '\0';
        for (size_t k = 0; t && k < t->n_points && n < sizeof(tried); k++)
            n += (size_t)snprintf(tried + n, sizeof(tried) - n, "%s%g", k ? ", " : "",
                                  t->points[k].users);
        report_doc_row(doc);
        report_doc_cell(doc, REPORT_MARK_LABEL, "%s", s->label);
        report_doc_cell(doc, REPORT_MARK_NONE, "%s", t ? holds(h, sizeof(h), sc, t) : "no search");
        report_doc_cell(doc, REPORT_MARK_NONE, "%s", t ? broke_text(b, sizeof(b), sc, t) : "—");
        report_doc_cell(doc, REPORT_MARK_NONE, "%s", tried[0] ? tried : "—");
    }
    for (size_t i = 0; i < plan->n_sides; i++)
        points_table(doc, &plan->sides[i]);
}
