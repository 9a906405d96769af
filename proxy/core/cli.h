/* cli: table-driven argv parsing and --help text for the subcommands.
 * Part of the argv edge: it prints usage errors to stderr itself. */
#ifndef TOKENTAP_CLI_H
#define TOKENTAP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

struct cli_option {
    const char *name;  /* long name, without "--" */
    char short_name;   /* 0 when none */
    const char *arg;   /* metavar ("N", "HOST:PORT"), NULL for a flag */
    const char *help;  /* one line; "(default ...)" belongs here */
    int id;            /* what cli_next returns for it; must be > 0 */
};

struct cli_command {
    const char *name;                 /* "sim" */
    const char *usage;                /* "tokentap sim [OPTIONS]" */
    const char *summary;              /* paragraph printed under the usage line */
    const struct cli_option *options; /* terminated by an entry with name == NULL */
    const char *epilog;               /* printed after the options, may be NULL */
};

enum {
    CLI_END = 0,       /* no options left */
    CLI_HELP = -1,     /* --help was given and printed */
    CLI_ERROR = -2,    /* a usage error was printed */
    CLI_POSITIONAL = -3, /* *ret_value is a positional argument */
};

struct cli_parser {
    const struct cli_command *cmd; /* borrowed */
    int argc;
    char **argv; /* borrowed; argv[0] is the subcommand name */
    int index;
    bool only_positionals; /* after "--" */
};

void cli_init(struct cli_parser *p, const struct cli_command *cmd, int argc, char **argv);

/* Returns the next option's id with its value in *ret_value (NULL for
 * flags), CLI_POSITIONAL, CLI_END, CLI_HELP or CLI_ERROR. */
int cli_next(struct cli_parser *p, const char **ret_value);

/* Prints the command's --help text to stdout. */
void cli_print_help(const struct cli_command *cmd);

/* Prints "tokentap NAME: MESSAGE" and a hint to use --help, to stderr. */
void cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Value parsers: print a usage error naming the option and return -EINVAL
 * on bad input; the result is written only on success. */
int cli_parse_u64(const struct cli_command *cmd, const char *opt, const char *s, uint64_t min,
                  uint64_t max, uint64_t *ret);
int cli_parse_double(const struct cli_command *cmd, const char *opt, const char *s, double min,
                     double max, double *ret);
int cli_parse_onoff(const struct cli_command *cmd, const char *opt, const char *s, bool *ret);
/* Accepts "10ms", "2s", "1.5s", "500us", "3m" or a bare number of seconds. */
int cli_parse_duration(const struct cli_command *cmd, const char *opt, const char *s,
                       usec_t *ret);
/* Accepts "64M", "8MiB", "512K", "1G" or bytes. */
int cli_parse_size(const struct cli_command *cmd, const char *opt, const char *s, uint64_t *ret);

/* Parses a size or duration without printing; 0 or -EINVAL. Shared with config. */
int cli_size_value(const char *s, uint64_t *ret);
int cli_duration_value(const char *s, usec_t *ret);

#endif
