/* sim_profile: a simulator profile, the timing settings a simulated bench
 * target runs with (slots, prefill_tps, decode_tps, batch_slowdown, jitter,
 * ctx_size, seed: docs/bench.md#targets), read from a YAML or JSON mapping
 * — inline in a scenario, or a file of its own, which is what `tokentap sim
 * --calibrate` writes (with a `calibration:` block saying what it was
 * fitted to) — and written back as YAML. Pure apart from reading a file. */
#ifndef TOKENTAP_SIM_PROFILE_H
#define TOKENTAP_SIM_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

struct cJSON;
struct config_doc;
struct config_err;
struct sim_options;

/* Where a calibrated profile's numbers came from. */
struct sim_profile_calibration {
    char from[512];   /* the measured files, ", "-separated */
    char target[65];  /* the bench target (or upstream) fitted, "" = all */
    char levels[256]; /* the bench levels fitted, ", "-separated, "" = all */
    unsigned requests; /* requests the fit used */
};

struct sim_profile {
    unsigned slots;
    double prefill_tps, decode_tps, batch_slowdown, jitter;
    uint32_t ctx_size;
    uint64_t seed;
    bool calibrated; /* the profile has a calibration block */
    struct sim_profile_calibration calibration;
};

/* The simulator's defaults (sim_defaults), not calibrated. */
void sim_profile_default(struct sim_profile *p);

/* Reads the keys of mapping obj (of doc) into p, which holds the values
 * of keys obj does not have. 0, or -EINVAL with "file:line: message" in
 * err (an unknown key, a value out of `tokentap sim`'s ranges). */
int sim_profile_parse(const struct config_doc *doc, const struct cJSON *obj, struct sim_profile *p,
                      struct config_err *err);

/* A profile file: p starts from the defaults. 0 or a negative errno with
 * the reason in err ("file:line: message", or why the file cannot be read). */
int sim_profile_load(const char *path, struct sim_profile *p, struct config_err *err);

/* The profile's settings into o (the rest of o is left alone). */
void sim_profile_apply(const struct sim_profile *p, struct sim_options *o);

/* The profile as YAML that sim_profile_load reads back: `header` (may be
 * NULL) first, each of its lines as a comment. Malloc'ed; NULL for want
 * of memory. */
char *sim_profile_yaml(const struct sim_profile *p, const char *header);

#endif
