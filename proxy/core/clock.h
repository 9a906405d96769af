/* clock: microsecond time stamps. All durations in tokentap are usec_t. */
#ifndef TOKENTAP_CLOCK_H
#define TOKENTAP_CLOCK_H

#include <stdint.h>

typedef uint64_t usec_t;

#define USEC_PER_MSEC ((usec_t)1000)
#define USEC_PER_SEC ((usec_t)1000000)
#define USEC_INFINITY UINT64_MAX

/* Monotonic time (CLOCK_MONOTONIC) in µs; for measuring intervals. */
usec_t clock_now(void);

/* Wall-clock time (CLOCK_REALTIME) in µs since the Unix epoch; for labels only. */
usec_t clock_wall(void);

/* Formats a wall-clock stamp as ISO 8601 UTC with milliseconds into buf. */
void clock_format_wall(usec_t wall, char *buf, unsigned len);

/* a - b, or 0 when b is later than a (or either is unset, 0). */
static inline usec_t clock_diff(usec_t a, usec_t b)
{
    return (a == 0 || b == 0 || a < b) ? 0 : a - b;
}

#endif
