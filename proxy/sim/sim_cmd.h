/* sim_cmd: `tokentap sim` (its main is in sim.h): the settings, parsed and
 * validated from argv without side effects, and the run step that serves
 * them until SIGINT/SIGTERM. */
#ifndef TOKENTAP_SIM_CMD_H
#define TOKENTAP_SIM_CMD_H

#include "core/log.h"
#include "sim/sim.h"

struct config_err;

/* Files --calibrate reads at once. */
#define SIM_CALIBRATE_MAX_FILES 64

/* `tokentap sim --calibrate RESULTS...`: fit the timing model to measured
 * requests and write a profile (docs/sim.md#calibration). Strings are
 * borrowed from argv. */
struct sim_calibrate_settings {
    bool on;                                     /* --calibrate */
    const char *files[SIM_CALIBRATE_MAX_FILES];  /* results.json or JSONL request logs */
    size_t n_files;
    const char *levels; /* --levels: bench levels to fit, NULL = all */
    const char *target; /* --target: the bench target or upstream to fit, NULL = the only one */
    const char *out;    /* --out: the profile's file, NULL = stdout */
    unsigned slots;     /* --slots: the server's slots, 0 = from the records */
};

struct sim_settings {
    struct sim_options sim; /* its strings are borrowed from argv */
    const char *ssl_cert, *ssl_key; /* HTTPS: PEM files (llama-server's flags), both or neither */
    enum log_level log_level;
    struct sim_calibrate_settings calibrate;
};

/* The settings with no options given. */
void sim_settings_default(struct sim_settings *s);

/* Parses argv (argv[0] is "sim") into s: 0, CLI_RUN_HELP for --help, or
 * -EINVAL with the usage error's line in err. */
int sim_settings_parse(struct sim_settings *s, int argc, char **argv, struct config_err *err);

/* The calibration run step: the exit status (0; 1 when the files cannot
 * be read or hold nothing to fit; 2 for a file that is not one of the
 * three kinds, or names that are not in it). */
int sim_calibrate_run(const struct sim_calibrate_settings *c);

#endif
