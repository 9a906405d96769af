/* cli: the command kit every subcommand is built from. A command is a
 * table of options (struct cli_command), a pure settings parser that walks
 * argv with cli_next and the value parsers below, and a run step; its main
 * is parse, then cli_exit (help or a usage error) or run. Parsing prints
 * nothing: a usage error is one line in a struct config_err, ready to
 * print, so the parsers are unit-tested on the exact lines. */
#ifndef TOKENTAP_CLI_H
#define TOKENTAP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/log.h"

struct config_err;

struct cli_option {
    const char *name;  /* long name, without "--" */
    char short_name;   /* 0 when none */
    const char *arg;   /* metavar ("N", "HOST:PORT"), NULL for a flag */
    const char *help;  /* one line; "(default ...)" belongs here */
    int id;            /* what cli_next returns for it; must be > 0 */
};

/* Option fragments shared by several commands: same name, same help. */
#define CLI_OPTION_LOG_LEVEL(id) \
    {"log-level", 0, "LEVEL", "error, warn, info or debug (default info)", (id)}
#define CLI_OPTION_LISTEN(id)                                                                 \
    {"listen", 'l', "HOST:PORT",                                                              \
     "address to listen on; port 0 picks a free one (default 127.0.0.1:8080)", (id)}
/* What a --listen value must look like (the address is parsed by net). */
#define CLI_LISTEN_FORMAT "HOST:PORT like 127.0.0.1:8080"
/* Certificate checks of https targets (upstreams, replay and bench targets). */
#define CLI_OPTION_CA_FILE(id) \
    {"ca-file", 0, "FILE", "https: trust the CAs in this PEM file instead of the system's", (id)}
#define CLI_OPTION_INSECURE(id) \
    {"insecure", 0, NULL, "https: do not check certificates at all (a warning says so)", (id)}

struct cli_command {
    const char *name;                 /* "sim" */
    const char *usage;                /* "tokentap sim [OPTIONS]" */
    const char *summary;              /* paragraph printed under the usage line */
    const struct cli_option *options; /* terminated by an entry with name == NULL */
    const char *epilog;               /* printed after the options, may be NULL */
};

enum {
    CLI_END = 0,       /* no options left */
    CLI_HELP = -1,     /* --help or -h was given */
    CLI_ERROR = -2,    /* a usage error is in the parser's err */
    CLI_POSITIONAL = -3, /* *ret_value is a positional argument */
};

/* What a command's settings parser returns: 0 to run, CLI_RUN_HELP when
 * --help was asked, or a negative errno (-EINVAL: a usage error) with the
 * line to print in its struct config_err. */
#define CLI_RUN_HELP 1

struct cli_parser {
    const struct cli_command *cmd; /* borrowed */
    int argc;
    char **argv; /* borrowed; argv[0] is the subcommand name */
    int index;
    bool only_positionals; /* after "--" */
    const struct cli_option *opt; /* borrowed: the option cli_next returned last */
    struct config_err *err;       /* borrowed: where a usage error goes */
};

void cli_init(struct cli_parser *p, const struct cli_command *cmd, int argc, char **argv,
              struct config_err *err);

/* Returns the next option's id with its value in *ret_value (NULL for
 * flags), CLI_POSITIONAL, CLI_END, CLI_HELP or CLI_ERROR. */
int cli_next(struct cli_parser *p, const char **ret_value);

/* Writes the usage error "tokentap NAME: MESSAGE; try 'tokentap NAME
 * --help'" into p's err; returns -EINVAL. */
int cli_usage(struct cli_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes "tokentap NAME: MESSAGE" (an error in a file the command line
 * named, which says itself what is wrong) into p's err; returns -EINVAL. */
int cli_error(struct cli_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The usage error for a bad value of the current option: "--OPT: expected
 * WHAT, got 'VALUE'". Returns -EINVAL. */
int cli_expected(struct cli_parser *p, const char *what, const char *value);

/* Value parsers for the current option's value: the result is written only
 * on success; on bad input a usage error naming the option goes to p's err
 * and they return -EINVAL. */
int cli_u64(struct cli_parser *p, const char *s, uint64_t min, uint64_t max, uint64_t *ret);
int cli_unsigned(struct cli_parser *p, const char *s, unsigned min, unsigned max, unsigned *ret);
int cli_double(struct cli_parser *p, const char *s, double min, double max, double *ret);
/* "on"/"true" or "off"/"false". */
int cli_onoff(struct cli_parser *p, const char *s, bool *ret);
/* Accepts "10ms", "2s", "1.5s", "500us", "3m" or a bare number of seconds. */
int cli_duration(struct cli_parser *p, const char *s, usec_t *ret);
/* Accepts "64M", "8MiB", "512K", "1G" or bytes. */
int cli_size(struct cli_parser *p, const char *s, uint64_t *ret);
/* A file the command will read: "--OPT: cannot read 'PATH': REASON" when
 * it cannot. */
int cli_readable(struct cli_parser *p, const char *path);
/* "error", "warn", "info" or "debug". */
int cli_log_level(struct cli_parser *p, const char *s, enum log_level *ret);

/* Prints the command's --help text to stdout. */
void cli_print_help(const struct cli_command *cmd);

/* The end of a main whose settings parser returned r != 0: prints the help
 * (r == CLI_RUN_HELP, exit status 0) or err's line to stderr (exit status 2
 * for a usage error, 1 for anything else). */
int cli_exit(const struct cli_command *cmd, int r, const struct config_err *err);

/* Parses a size or duration without a parser; 0 or -EINVAL. Shared with config. */
int cli_size_value(const char *s, uint64_t *ret);
int cli_duration_value(const char *s, usec_t *ret);

#endif
