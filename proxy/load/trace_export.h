/* trace_export: `tokentap trace export TRACE_DIR --format agentic -o FILE`
 * turns traffic recorded by `serve --record` into an agentic trace with no
 * content (agentic_write.h): lengths from the server's counts, times from
 * the recording, sessions from the session header, and hash ids from
 * blocks of each prompt's tokens (the upstream's /tokenize, or tokentap's
 * own estimate). A trace of one's own agents that holds no code and no
 * secrets, to share and replay anywhere. */
#ifndef TOKENTAP_TRACE_EXPORT_H
#define TOKENTAP_TRACE_EXPORT_H

#include <stdint.h>

#include "core/log.h"

struct config_err;

/* The settings: the command line; strings are borrowed from argv. */
struct trace_export_options {
    const char *input;       /* a directory of recorded .jsonl files, or one file */
    const char *out_path;    /* -o */
    const char *upstream;    /* --upstream URL: its /tokenize cuts prompts; NULL: built-in */
    const char *id;          /* --id: the trace's id (default "export") */
    uint32_t block_size;     /* --block-size (default 64) */
    enum log_level log_level;
};

/* Parses argv (argv[0] is "export") into o: 0, CLI_RUN_HELP for --help,
 * or -EINVAL with the usage error's line in err. Reads no file. */
int trace_export_settings_parse(struct trace_export_options *o, int argc, char **argv,
                                struct config_err *err);

/* `tokentap trace SUBCOMMAND ...` (argv[0] is "trace"). */
int trace_main(int argc, char **argv);

#endif
