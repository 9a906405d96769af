#include "core/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

void cli_init(struct cli_parser *p, const struct cli_command *cmd, int argc, char **argv,
              struct config_err *err)
{
    *p = (struct cli_parser){.cmd = cmd, .argc = argc, .argv = argv, .index = 1, .err = err};
}

static __attribute__((format(printf, 3, 0))) int vformat(struct cli_parser *p, bool hint,
                                                          const char *fmt, va_list ap)
{
    char msg[400];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (hint)
        snprintf(p->err->msg, sizeof(p->err->msg), "tokentap %s: %s; try 'tokentap %s --help'",
                 p->cmd->name, msg, p->cmd->name);
    else
        snprintf(p->err->msg, sizeof(p->err->msg), "tokentap %s: %s", p->cmd->name, msg);
    return -EINVAL;
}

int cli_usage(struct cli_parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vformat(p, true, fmt, ap);
    va_end(ap);
    return r;
}

int cli_error(struct cli_parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vformat(p, false, fmt, ap);
    va_end(ap);
    return r;
}

int cli_expected(struct cli_parser *p, const char *what, const char *value)
{
    return cli_usage(p, "--%s: expected %s, got '%s'", p->opt ? p->opt->name : "?", what, value);
}

static const struct cli_option *find_long(const struct cli_command *cmd, const char *name,
                                          size_t len)
{
    for (const struct cli_option *o = cmd->options; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static const struct cli_option *find_short(const struct cli_command *cmd, char c)
{
    for (const struct cli_option *o = cmd->options; o && o->name; o++)
        if (o->short_name == c)
            return o;
    return NULL;
}

int cli_next(struct cli_parser *p, const char **ret_value)
{
    if (p->index >= p->argc)
        return CLI_END;
    const char *a = p->argv[p->index++];

    if (p->only_positionals || a[0] != '-' || a[1] == '\0') {
        *ret_value = a;
        return CLI_POSITIONAL;
    }
    if (strcmp(a, "--") == 0) {
        p->only_positionals = true;
        return cli_next(p, ret_value);
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        return CLI_HELP;

    const struct cli_option *o;
    const char *inline_value = NULL;
    if (a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        o = find_long(p->cmd, name, len);
        if (eq)
            inline_value = eq + 1;
    } else {
        o = a[2] == '\0' ? find_short(p->cmd, a[1]) : NULL;
    }
    if (!o) {
        cli_usage(p, "unknown option '%s'", a);
        return CLI_ERROR;
    }
    p->opt = o;
    if (!o->arg) {
        if (inline_value) {
            cli_usage(p, "option '--%s' takes no value", o->name);
            return CLI_ERROR;
        }
        *ret_value = NULL;
        return o->id;
    }
    if (inline_value) {
        *ret_value = inline_value;
        return o->id;
    }
    if (p->index >= p->argc) {
        cli_usage(p, "option '--%s' needs a value (%s)", o->name, o->arg);
        return CLI_ERROR;
    }
    *ret_value = p->argv[p->index++];
    return o->id;
}

void cli_print_help(const struct cli_command *cmd)
{
    printf("Usage: %s\n\n%s\n", cmd->usage, cmd->summary);
    if (cmd->options && cmd->options->name) {
        printf("\nOptions:\n");
        for (const struct cli_option *o = cmd->options; o->name; o++) {
            char left[64];
            if (o->short_name)
                snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name,
                         o->arg ? " " : "", o->arg ? o->arg : "");
            else
                snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->arg ? " " : "",
                         o->arg ? o->arg : "");
            if (strlen(left) <= 28)
                printf("  %-28s %s\n", left, o->help);
            else
                printf("  %s\n  %-28s %s\n", left, "", o->help);
        }
        printf("  %-28s %s\n", "-h, --help", "show this help and exit");
    }
    if (cmd->epilog)
        printf("\n%s", cmd->epilog);
}

int cli_exit(const struct cli_command *cmd, int r, const struct config_err *err)
{
    if (r == CLI_RUN_HELP) {
        cli_print_help(cmd);
        return 0;
    }
    fprintf(stderr, "%s\n", err->msg);
    return r == -EINVAL ? 2 : 1;
}

int cli_u64(struct cli_parser *p, const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] == '-' || s[0] == '\0' || errno || *end != '\0' || v < min || v > max) {
        char what[80];
        snprintf(what, sizeof(what), "an integer from %llu to %llu", (unsigned long long)min,
                 (unsigned long long)max);
        return cli_expected(p, what, s);
    }
    *ret = v;
    return 0;
}

int cli_unsigned(struct cli_parser *p, const char *s, unsigned min, unsigned max, unsigned *ret)
{
    uint64_t v;
    int r = cli_u64(p, s, min, max, &v);
    if (r == 0)
        *ret = (unsigned)v;
    return r;
}

int cli_double(struct cli_parser *p, const char *s, double min, double max, double *ret)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || errno || *end != '\0' || !isfinite(v) || v < min || v > max) {
        char what[80];
        snprintf(what, sizeof(what), "a number from %g to %g", min, max);
        return cli_expected(p, what, s);
    }
    *ret = v;
    return 0;
}

int cli_onoff(struct cli_parser *p, const char *s, bool *ret)
{
    if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0) {
        *ret = true;
        return 0;
    }
    if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0) {
        *ret = false;
        return 0;
    }
    return cli_expected(p, "'on' or 'off'", s);
}

int cli_log_level(struct cli_parser *p, const char *s, enum log_level *ret)
{
    if (log_parse_level(s, ret) < 0)
        return cli_expected(p, "error, warn, info or debug", s);
    return 0;
}

/* Splits "1.5ms" into 1.5 and "ms". */
static int number_suffix(const char *s, double *ret_num, const char **ret_suffix)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0)
        return -EINVAL;
    *ret_num = v;
    *ret_suffix = end;
    return 0;
}

int cli_duration_value(const char *s, usec_t *ret)
{
    static const struct {
        const char *suffix;
        double usec;
    } units[] = {{"", 1e6}, {"s", 1e6}, {"ms", 1e3}, {"us", 1}, {"m", 60e6}, {"h", 3600e6}};
    double v;
    const char *suffix;
    if (number_suffix(s, &v, &suffix) < 0)
        return -EINVAL;
    for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(suffix, units[i].suffix) == 0) {
            double us = v * units[i].usec;
            if (us > 1e15)
                return -EINVAL;
            *ret = (usec_t)llround(us);
            return 0;
        }
    }
    return -EINVAL;
}

int cli_size_value(const char *s, uint64_t *ret)
{
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {{"", 1},           {"B", 1},           {"K", 1024},      {"KiB", 1024},
                 {"k", 1024},       {"M", 1048576.0},   {"MiB", 1048576.0}, {"G", 1073741824.0},
                 {"GiB", 1073741824.0}};
    double v;
    const char *suffix;
    if (number_suffix(s, &v, &suffix) < 0)
        return -EINVAL;
    for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(suffix, units[i].suffix) == 0) {
            double b = v * units[i].mult;
            if (b > 1e15)
                return -EINVAL;
            *ret = (uint64_t)llround(b);
            return 0;
        }
    }
    return -EINVAL;
}

int cli_duration(struct cli_parser *p, const char *s, usec_t *ret)
{
    if (cli_duration_value(s, ret) < 0)
        return cli_expected(p, "a duration like 500ms, 2s or 1m", s);
    return 0;
}

int cli_size(struct cli_parser *p, const char *s, uint64_t *ret)
{
    if (cli_size_value(s, ret) < 0)
        return cli_expected(p, "a size like 512K, 64M or 1G", s);
    return 0;
}

int cli_readable(struct cli_parser *p, const char *path)
{
    if (access(path, R_OK) < 0)
        return cli_usage(p, "--%s: cannot read '%s': %s", p->opt ? p->opt->name : "?", path,
                         strerror(errno));
    return 0;
}
