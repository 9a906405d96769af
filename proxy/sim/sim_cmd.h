/* sim_cmd: `tokentap sim` (its main is in sim.h): the settings, parsed and
 * validated from argv without side effects, and the run step that serves
 * them until SIGINT/SIGTERM. */
#ifndef TOKENTAP_SIM_CMD_H
#define TOKENTAP_SIM_CMD_H

#include "core/log.h"
#include "sim/sim.h"

struct config_err;

struct sim_settings {
    struct sim_options sim; /* its strings are borrowed from argv */
    enum log_level log_level;
};

/* The settings with no options given. */
void sim_settings_default(struct sim_settings *s);

/* Parses argv (argv[0] is "sim") into s: 0, CLI_RUN_HELP for --help, or
 * -EINVAL with the usage error's line in err. */
int sim_settings_parse(struct sim_settings *s, int argc, char **argv, struct config_err *err);

#endif
