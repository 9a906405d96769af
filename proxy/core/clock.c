#include "core/clock.h"

#include <stdio.h>
#include <time.h>

static usec_t timespec_usec(const struct timespec *ts)
{
    return (usec_t)ts->tv_sec * USEC_PER_SEC + (usec_t)ts->tv_nsec / 1000;
}

usec_t clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return timespec_usec(&ts);
}

usec_t clock_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return timespec_usec(&ts);
}

void clock_format_wall(usec_t wall, char *buf, unsigned len)
{
    time_t secs = (time_t)(wall / USEC_PER_SEC);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(wall % USEC_PER_SEC / 1000));
}
