/* reqlog: the request log (--log FILE): one JSON line per finished request,
 * each written with a single write() to a file opened O_APPEND, so lines
 * never interleave or tear; reopened on SIGHUP for log rotation. */
#ifndef TOKENTAP_REQLOG_H
#define TOKENTAP_REQLOG_H

#include <stdbool.h>

#include "tap/record.h"

struct reqlog;

/* Opens (creates) path for appending. 0 or a negative errno. */
int reqlog_open(const char *path, bool with_gaps, struct reqlog **ret);

/* Appends r as one line. 0 or a negative errno (the line is lost). */
int reqlog_write(struct reqlog *l, const struct record *r);

/* Closes and opens the path again (after logrotate moved it). */
int reqlog_reopen(struct reqlog *l);

void reqlog_close(struct reqlog *l);

#endif
