/* `tokentap sim --calibrate FILE...`: reads measured requests (bench's
 * results.json, or the JSONL request log of replay --log and serve --log),
 * fits the timing model to them (sim_fit) and writes a simulator profile
 * (sim_profile), printing the fit and its error on stderr. Edge module: it
 * reads and writes files and prints. */
#include "sim/sim_cmd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/files.h"
#include "sim/sim_fit.h"
#include "sim/sim_profile.h"

/* Bench results are at most this large (report/results.h says so too);
 * request logs may be larger, but a fit has to hold them anyway. */
#define CALIBRATE_MAX_BYTES ((size_t)1 << 30)
/* Upstreams one request log may name. */
#define CALIBRATE_MAX_UPSTREAMS 64

struct calib {
    const struct sim_calibrate_settings *c; /* borrowed */
    struct sim_fit_input in;
    unsigned groups;
    unsigned props_slots;  /* the bench target's /props total_slots, 0 = none */
    uint32_t props_ctx;    /* its per-slot context, 0 = none */
    char fitted[65];       /* the target or upstream fitted */
};

static const cJSON *get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static const char *str(const cJSON *j, const char *k)
{
    return cJSON_GetStringValue(get(j, k));
}

/* Whether name is one of the comma-separated list's entries. */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (comma ? 1 : 0);
    }
    return false;
}

/* "a, b, c" of the array's objects' "name" strings. */
static void names(const cJSON *arr, char *buf, size_t len)
{
    size_t n = 0;
    const cJSON *e;
    buf[0] = '\0';
    cJSON_ArrayForEach(e, arr)
    {
        const char *name = str(e, "name");
        if (name && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", name);
    }
}

/* --- bench results --- */

static int add_results(struct calib *k, const char *path, const cJSON *root)
{
    const struct sim_calibrate_settings *c = k->c;
    const cJSON *targets = get(root, "targets"), *levels = get(get(root, "scenario"), "levels");
    const cJSON *target = NULL, *e;
    char known[512];
    int n_targets = cJSON_GetArraySize(targets);
    cJSON_ArrayForEach(e, targets)
    {
        const char *name = str(e, "name");
        if (name && (c->target ? strcmp(name, c->target) == 0 : n_targets == 1))
            target = e;
    }
    names(targets, known, sizeof(known));
    if (!target) {
        if (c->target)
            fprintf(stderr, "tokentap sim: %s has no target '%s' (targets: %s)\n", path,
                    c->target, known);
        else
            fprintf(stderr, "tokentap sim: %s has %d targets (%s): choose one with --target\n",
                    path, n_targets, known);
        return -EINVAL;
    }
    const char *tname = str(target, "name");
    /* Every level asked for must be in the run. */
    for (const char *p = c->levels; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        bool found = false;
        cJSON_ArrayForEach(e, levels)
        {
            const char *name = str(e, "name");
            found = found || (name && strlen(name) == len && strncmp(name, p, len) == 0);
        }
        if (!found) {
            names(levels, known, sizeof(known));
            fprintf(stderr, "tokentap sim: %s has no level '%.*s' (levels: %s)\n", path, (int)len,
                    p, known);
            return -EINVAL;
        }
        p += len + (comma ? 1 : 0);
    }
    /* What the server says of itself, as llama-server's /props has it
     * (the simulator's own tokentap_sim block is not read: a fit must
     * find what a real server would not tell). */
    const cJSON *props = get(target, "props");
    const cJSON *slots = get(props, "total_slots");
    const cJSON *ctx = get(get(props, "default_generation_settings"), "n_ctx");
    if (cJSON_IsNumber(slots) && slots->valuedouble >= 1 && slots->valuedouble <= 1024)
        k->props_slots = (unsigned)slots->valuedouble;
    if (cJSON_IsNumber(ctx) && ctx->valuedouble >= 16 && ctx->valuedouble <= (1u << 30))
        k->props_ctx = (uint32_t)ctx->valuedouble;
    snprintf(k->fitted, sizeof(k->fitted), "%s", tname);
    unsigned group = k->groups++;
    cJSON_ArrayForEach(e, get(root, "requests"))
    {
        const char *t = str(e, "target"), *l = str(e, "level");
        if (!t || strcmp(t, tname) != 0 || (c->levels && (!l || !listed(c->levels, l))))
            continue;
        int r = sim_fit_input_add(&k->in, get(e, "record"), group);
        if (r < 0)
            return r;
    }
    return 0;
}

/* --- request logs: one record per line --- */

static int add_log(struct calib *k, const char *path, char *text)
{
    const struct sim_calibrate_settings *c = k->c;
    char ups[CALIBRATE_MAX_UPSTREAMS][65];
    unsigned group[CALIBRATE_MAX_UPSTREAMS];
    size_t n_ups = 0;
    int line = 0, rc = 0;
    if (c->levels) {
        fprintf(stderr, "tokentap sim: %s is a request log: --levels is for bench results\n", path);
        return -EINVAL;
    }
    for (char *p = text; *p && rc == 0;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        line++;
        char *l = p;
        p = nl ? nl + 1 : p + strlen(p);
        while (*l == ' ' || *l == '\t' || *l == '\r')
            l++;
        if (!*l)
            continue;
        cJSON *rec = cJSON_Parse(l);
        if (!cJSON_IsObject(rec)) {
            fprintf(stderr, "tokentap sim: %s:%d: not a request record (a JSON object per line)\n",
                    path, line);
            cJSON_Delete(rec);
            return -EINVAL;
        }
        const char *up = str(rec, "upstream");
        up = up ? up : "";
        if (c->target && strcmp(up, c->target) != 0) {
            cJSON_Delete(rec);
            continue;
        }
        size_t u = 0;
        while (u < n_ups && strncmp(ups[u], up, sizeof(ups[u]) - 1) != 0)
            u++;
        if (u == n_ups && n_ups < CALIBRATE_MAX_UPSTREAMS) {
            snprintf(ups[n_ups], sizeof(ups[n_ups]), "%s", up);
            group[n_ups] = k->groups++;
            n_ups++;
        }
        if (u < n_ups) {
            snprintf(k->fitted, sizeof(k->fitted), "%s", up);
            rc = sim_fit_input_add(&k->in, rec, group[u]);
        }
        cJSON_Delete(rec);
    }
    if (n_ups > 1 && !c->target) {
        fprintf(stderr, "tokentap sim: %s has requests to %zu upstreams: choose one with --target\n",
                path, n_ups);
        return -EINVAL;
    }
    return rc;
}

static int add_file(struct calib *k, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int r = files_read(path, CALIBRATE_MAX_BYTES, &text, &len);
    if (r < 0) {
        fprintf(stderr, "tokentap sim: cannot read %s: %s\n", path, strerror(-r));
        return r == -EINVAL ? -EIO : r;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    const char *format = str(root, "format");
    if (format && strcmp(format, "tokentap-bench") == 0)
        r = add_results(k, path, root);
    else if (cJSON_IsObject(root) && !get(root, "t")) {
        fprintf(stderr, "tokentap sim: %s is neither bench results nor a request log\n", path);
        r = -EINVAL;
    } else {
        r = add_log(k, path, text);
    }
    cJSON_Delete(root);
    free(text);
    return r;
}

/* --- what it says --- */

static const char *const label[SIM_FIT_METRICS] = {"TTFT", "slot wait", "prefill", "decode tok/s",
                                                   "E2E"};

/* A relative error says something when the measured p50 is not ~0 (a
 * slot wait of 0.2 ms "predicted" as 0 is not a 100 % error). */
static bool relative(const struct sim_fit_error *e)
{
    return e->n && isfinite(e->p50_error) && fabs(e->measured_p50) >= 1.0;
}

static void print_fit(const struct calib *k, const struct sim_fit_result *res, const char *slots_why,
                      const char *levels)
{
    const struct sim_calibrate_settings *c = k->c;
    fprintf(stderr, "tokentap sim: calibrated on %zu requests", res->n_decode);
    if (k->fitted[0])
        fprintf(stderr, " of '%s'", k->fitted);
    if (levels[0])
        fprintf(stderr, " (levels %s)", levels);
    fprintf(stderr, " in %zu file%s\n", c->n_files, c->n_files == 1 ? "" : "s");
    fprintf(stderr, "  slots           %-9u %s\n", res->p.slots, slots_why);
    fprintf(stderr, "  prefill_tps     %-9.5g from %zu prefills\n", res->p.prefill_tps, res->n_prefill);
    if (res->n_gaps)
        fprintf(stderr, "  decode_tps      %-9.5g from %zu gaps between tokens\n", res->p.decode_tps,
                res->n_gaps);
    else
        fprintf(stderr, "  decode_tps      %-9.5g from %zu decodes (no gaps kept)\n",
                res->p.decode_tps, res->n_decode);
    if (res->slowdown_measured)
        fprintf(stderr, "  batch_slowdown  %-9.4g decodes beside up to %u busy slots\n",
                res->p.batch_slowdown, res->busy_max);
    else
        fprintf(stderr, "  batch_slowdown  %-9.4g not measured: no request decoded beside another "
                        "(the simulator's default)\n", res->p.batch_slowdown);
    if (res->prompt_tokens)
        fprintf(stderr, "  prompt cache    %.0f %% of prompt tokens came from the cache (%zu "
                        "requests reused some)\n",
                100.0 * (double)res->cached_tokens / (double)res->prompt_tokens, res->cache_hits);
    fprintf(stderr, "fit error: the model replaying these requests' arrivals\n"
                    "  metric          measured p50  predicted p50  error     per request (median |error|)\n");
    for (int m = 0; m < SIM_FIT_METRICS; m++) {
        const struct sim_fit_error *e = &res->err[m];
        const char *unit = m == SIM_FIT_DECODE_TPS ? "" : " ms";
        char err[32] = "—";
        if (!e->n)
            continue;
        if (relative(e))
            snprintf(err, sizeof(err), "%+.1f %%", 100 * e->p50_error);
        fprintf(stderr, "  %-15s %9.1f%-3s %10.1f%-3s  %-9s %.1f%s\n", label[m], e->measured_p50,
                unit, e->predicted_p50, unit, err, e->median_abs, unit);
    }
}

/* The profile's header: what it is, how it was made, how well it fits. */
static void header(const struct sim_fit_result *res, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len,
                                "tokentap sim profile, calibrated on %zu measured requests "
                                "(docs/sim.md#calibration).\n"
                                "Use it as a bench target: `sim: THIS.yaml`, or --target NAME=THIS.yaml.\n"
                                "Fit error, the model replaying those requests (p50, predicted vs "
                                "measured):",
                                res->n_decode);
    bool first = true;
    for (int m = 0; m < SIM_FIT_METRICS && n < len; m++) {
        if (!relative(&res->err[m]))
            continue;
        n += (size_t)snprintf(buf + n, len - n, "%s %s %+.1f %%", first ? "" : ",", label[m],
                              100 * res->err[m].p50_error);
        first = false;
    }
}

/* The profile fitted: the numbers, what the server said of itself, and
 * where they came from. */
static void make_profile(const struct calib *k, const struct sim_fit_result *res,
                         struct sim_profile *ret)
{
    const struct sim_calibrate_settings *c = k->c;
    struct sim_profile p;
    sim_profile_default(&p);
    p.slots = res->p.slots > 1024 ? 1024 : res->p.slots;
    p.prefill_tps = res->p.prefill_tps;
    p.decode_tps = res->p.decode_tps;
    p.batch_slowdown = res->p.batch_slowdown;
    if (k->props_ctx)
        p.ctx_size = k->props_ctx;
    p.calibrated = true;
    size_t n = 0;
    for (size_t i = 0; i < c->n_files && n < sizeof(p.calibration.from); i++)
        n += (size_t)snprintf(p.calibration.from + n, sizeof(p.calibration.from) - n, "%s%s",
                              i ? ", " : "", c->files[i]);
    snprintf(p.calibration.target, sizeof(p.calibration.target), "%s", k->fitted);
    n = 0;
    for (const char *l = c->levels; l && *l && n < sizeof(p.calibration.levels);) {
        const char *comma = strchr(l, ',');
        size_t len = comma ? (size_t)(comma - l) : strlen(l);
        n += (size_t)snprintf(p.calibration.levels + n, sizeof(p.calibration.levels) - n, "%s%.*s",
                              n ? ", " : "", (int)len, l);
        l += len + (comma ? 1 : 0);
    }
    p.calibration.requests = (unsigned)res->n_decode;
    *ret = p;
}

static int write_profile(const struct calib *k, const struct sim_profile *p,
                         const struct sim_fit_result *res)
{
    const struct sim_calibrate_settings *c = k->c;
    char head[1024];
    header(res, head, sizeof(head));
    char *text = sim_profile_yaml(p, head);
    if (!text) {
        fprintf(stderr, "tokentap sim: out of memory\n");
        return 1;
    }
    int rc = 0;
    if (c->out) {
        int r = files_write_atomic(c->out, text, strlen(text));
        if (r < 0) {
            fprintf(stderr, "tokentap sim: cannot write %s: %s\n", c->out, strerror(-r));
            rc = 1;
        } else {
            fprintf(stderr, "tokentap sim: wrote %s\n", c->out);
        }
    } else {
        fputs(text, stdout);
        fflush(stdout);
    }
    free(text);
    return rc;
}

int sim_calibrate_run(const struct sim_calibrate_settings *c)
{
    struct calib k = {.c = c};
    struct sim_fit_result res;
    int rc = 1, r = 0;
    for (size_t i = 0; i < c->n_files && r == 0; i++)
        r = add_file(&k, c->files[i]);
    if (r < 0) {
        if (r == -ENOMEM)
            fprintf(stderr, "tokentap sim: out of memory\n");
        if (r == -E2BIG)
            fprintf(stderr, "tokentap sim: more than %d requests\n", SIM_FIT_MAX_REQUESTS);
        rc = r == -EINVAL ? 2 : 1;
        goto done;
    }
    const char *slots_why = "the most busy at once, and nobody waited: the server may have more "
                            "(give --slots)";
    struct sim_fit_options o = {.slots = c->slots ? c->slots : k.props_slots,
                                .default_slowdown = sim_defaults.batch_slowdown};
    r = sim_fit(k.in.reqs, k.in.n, &o, &res);
    if (r == -ENODATA) {
        fprintf(stderr, "tokentap sim: nothing to fit: no whole streamed answer with its times "
                        "among %zu requests (%zu records without times)\n",
                k.in.n, k.in.skipped);
        goto done;
    }
    if (r < 0) {
        fprintf(stderr, "tokentap sim: cannot fit: %s\n", strerror(-r));
        goto done;
    }
    if (c->slots)
        slots_why = "given (--slots)";
    else if (k.props_slots)
        slots_why = "the server's /props (total_slots)";
    else if (res.slots_from == SIM_FIT_SLOTS_QUEUE)
        slots_why = "busy while requests waited for a slot";
    struct sim_profile p;
    make_profile(&k, &res, &p);
    print_fit(&k, &res, slots_why, p.calibration.levels);
    rc = write_profile(&k, &p, &res);
done:
    sim_fit_input_finish(&k.in);
    return rc;
}
