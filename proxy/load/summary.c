#include "load/summary.h"

#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

static const cJSON *get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static double num(const cJSON *j, const char *k, double dflt)
{
    const cJSON *v = get(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void cell(FILE *out, const cJSON *v)
{
    if (cJSON_IsNumber(v))
        fprintf(out, " %9.1f", v->valuedouble);
    else
        fprintf(out, " %9s", "-");
}

static void latency_row(FILE *out, const char *name, const cJSON *h)
{
    if (!h || num(h, "count", 0) == 0)
        return;
    fprintf(out, "  %-12s", name);
    cell(out, get(h, "p50"));
    cell(out, get(h, "p90"));
    cell(out, get(h, "p99"));
    cell(out, get(h, "max"));
    fprintf(out, " %9.0f\n", num(h, "count", 0));
}

void summary_print_latencies(FILE *out, const cJSON *row, const cJSON *send_lag)
{
    fprintf(out, "  %-12s %9s %9s %9s %9s %9s\n", "ms", "p50", "p90", "p99", "max", "count");
    latency_row(out, "TTFT", get(row, "ttft_ms"));
    latency_row(out, " slot wait", get(row, "slot_wait_ms"));
    latency_row(out, " prefill", get(row, "prefill_ms"));
    latency_row(out, "TTFC", get(row, "ttfc_ms"));
    latency_row(out, "ITL", get(row, "itl_ms"));
    latency_row(out, "TPOT", get(row, "tpot_ms"));
    latency_row(out, "E2E", get(row, "e2e_ms"));
    latency_row(out, "queue est.", get(row, "queue_ms"));
    latency_row(out, "send lag", send_lag);
    const cJSON *tps = get(row, "decode_tps");
    if (tps && cJSON_IsNumber(get(tps, "p50")))
        fprintf(out, "  decode tok/s: p50 %.1f, p10 %.1f, p90 %.1f\n", num(tps, "p50", 0),
                num(tps, "p10", 0), num(tps, "p90", 0));
}

void summary_print_levels(FILE *out, const cJSON *stats)
{
    const cJSON *levels = get(stats, "by_concurrency");
    if (cJSON_GetArraySize(levels) == 0)
        return;
    fprintf(out, "\n  %-11s %8s %10s %9s %9s %9s %9s %12s %10s\n", "concurrency", "requests", "TTFT p50",
            "wait p50", "prefill", "ITL p50", "ITL p99", "tok/s p50", "E2E p50");
    const cJSON *row;
    cJSON_ArrayForEach(row, levels)
    {
        const cJSON *c = get(row, "concurrency");
        char level[16];
        if (cJSON_IsString(c))
            snprintf(level, sizeof(level), "%s", c->valuestring);
        else
            snprintf(level, sizeof(level), "%.0f", num(row, "concurrency", 0));
        fprintf(out, "  %-11s %8.0f", level, num(row, "requests", 0));
        cell(out, get(get(row, "ttft_ms"), "p50"));
        cell(out, get(get(row, "slot_wait_ms"), "p50"));
        cell(out, get(get(row, "prefill_ms"), "p50"));
        cell(out, get(get(row, "itl_ms"), "p50"));
        cell(out, get(get(row, "itl_ms"), "p99"));
        fprintf(out, "   ");
        cell(out, get(get(row, "decode_tps"), "p50"));
        fprintf(out, " ");
        cell(out, get(get(row, "e2e_ms"), "p50"));
        fprintf(out, "\n");
    }
}

/* A ratio as a percentage, in a table column or (width 0) in a sentence. */
static void percent(FILE *out, const cJSON *v, int width)
{
    if (cJSON_IsNumber(v))
        fprintf(out, " %*.1f%%", width ? width - 1 : 0, v->valuedouble * 100);
    else
        fprintf(out, " %*s", width, "-");
}

/* An agentic replay: prompt tokens from cache, achieved against ideal,
 * and the latencies per kind of session. */
static void print_agentic(FILE *out, const cJSON *s)
{
    const cJSON *cache = get(s, "cache"), *fan = get(cache, "main_after_fanout"), *ag = get(s, "agentic");
    fprintf(out, "\nprompt tokens served from cache: achieved");
    percent(out, get(cache, "achieved_hit_ratio"), 0);
    fprintf(out, " vs ideal");
    percent(out, get(cache, "ideal_hit_ratio"), 0);
    if (num(fan, "requests", 0) > 0) {
        fprintf(out, "\n  main agent after a fan-out (%.0f requests): achieved", num(fan, "requests", 0));
        percent(out, get(fan, "achieved_hit_ratio"), 0);
        fprintf(out, " vs ideal");
        percent(out, get(fan, "ideal_hit_ratio"), 0);
    }
    fprintf(out, "\nprompt sizes: %s", cJSON_GetStringValue(get(ag, "tokenizer_note")));
    const cJSON *m;
    cJSON_ArrayForEach(m, get(ag, "template_tokens"))
    {
        if (cJSON_IsNumber(m))
            fprintf(out, "; %s's template %.0f tokens", m->string, m->valuedouble);
    }
    if (num(ag, "requests_dropped", 0) > 0)
        fprintf(out, "\n%.0f requests over --max-isl dropped, with what waits for them",
                num(ag, "requests_dropped", 0));
    if (num(ag, "requests_not_sent", 0) > 0)
        fprintf(out, "\n%.0f requests not sent", num(ag, "requests_not_sent", 0));
    fprintf(out, "\n\n  %-16s %8s %9s %9s %9s %9s %8s %8s\n", "kind", "requests", "TTFT p50",
            "TTFT p90", "wait p50", "wait p90", "cache", "ideal");
    const cJSON *k;
    cJSON_ArrayForEach(k, get(s, "by_kind"))
    {
        fprintf(out, "  %-16.16s %8.0f", cJSON_GetStringValue(get(k, "kind")), num(k, "requests", 0));
        cell(out, get(get(k, "ttft_ms"), "p50"));
        cell(out, get(get(k, "ttft_ms"), "p90"));
        cell(out, get(get(k, "slot_wait_ms"), "p50"));
        cell(out, get(get(k, "slot_wait_ms"), "p90"));
        percent(out, get(k, "achieved_hit_ratio"), 8);
        percent(out, get(k, "ideal_hit_ratio"), 8);
        fprintf(out, "\n");
    }
}

void summary_print(FILE *out, const cJSON *s)
{
    const cJSON *stats = get(s, "stats");
    const cJSON *overall = get(stats, "overall");
    const cJSON *mode = get(s, "mode");
    const cJSON *timing = get(mode, "timing");
    const char *t = cJSON_IsString(timing) ? timing->valuestring : "?";
    fprintf(out, "\nreplay of %s -> %s (", cJSON_GetStringValue(get(s, "trace")),
            cJSON_GetStringValue(get(s, "target")));
    const cJSON *ag = get(s, "agentic");
    if (ag)
        fprintf(out, "agentic, %s timing, speed %g, inputs x%g, outputs x%g, %s", t,
                num(mode, "speed", 1), num(ag, "isl_scale", 1), num(ag, "osl_scale", 1),
                cJSON_GetStringValue(get(ag, "api")));
    else if (strcmp(t, "original") == 0)
        fprintf(out, "original timing, speed %g", num(mode, "speed", 1));
    else if (strcmp(t, "concurrency") == 0)
        fprintf(out, "concurrency %.0f", num(mode, "concurrency", 1));
    else
        fprintf(out, "%s arrivals at %g/s", cJSON_GetStringValue(get(mode, "arrival")),
                num(mode, "rate", 0));
    if (!ag)
        fprintf(out, ", history %s", cJSON_GetStringValue(get(mode, "history")));
    fprintf(out, ")%s\n", cJSON_IsFalse(get(s, "complete")) ? " INCOMPLETE" : "");
    fprintf(out, "%.0f requests in %.1f s:", num(s, "requests_finished", 0), num(s, "duration_s", 0));
    const cJSON *o;
    bool first = true;
    cJSON_ArrayForEach(o, get(overall, "outcomes"))
    {
        fprintf(out, "%s %.0f %s", first ? "" : ",", o->valuedouble, o->string);
        first = false;
    }
    const cJSON *tp = get(s, "throughput");
    fprintf(out, "; %.2f req/s, %.1f output tok/s\n\n", num(tp, "requests_per_s", 0),
            num(tp, "output_tokens_per_s", 0));
    summary_print_latencies(out, overall, get(s, "send_lag_ms"));
    summary_print_levels(out, stats);
    if (ag)
        print_agentic(out, s);
}
