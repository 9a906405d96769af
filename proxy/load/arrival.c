#include "load/arrival.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void arrival_init(struct arrival *s, enum arrival_mode mode, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    s->speed = 1.0;
    s->concurrency = 1;
    s->rate = 1.0;
    s->process = ARRIVAL_POISSON;
    s->rng = seed ? seed : 0x853c49e6748fea9bull;
}

usec_t arrival_original(const struct arrival *s, usec_t offset_us)
{
    double speed = s->speed > 0 ? s->speed : 1.0;
    return (usec_t)llround((double)offset_us / speed);
}

/* xorshift64*, uniform in (0, 1]. */
static double uniform(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    uint64_t r = x * 0x2545f4914f6cdd1dull;
    return ((double)(r >> 11) + 1.0) / 9007199254740992.0;
}

usec_t arrival_next_arrival(struct arrival *s)
{
    usec_t now = (usec_t)llround(s->next_us);
    double mean_gap = 1e6 / (s->rate > 0 ? s->rate : 1.0);
    /* Poisson process: exponential gaps with the same mean. */
    double gap = s->process == ARRIVAL_POISSON ? -log(uniform(&s->rng)) * mean_gap : mean_gap;
    s->next_us += gap;
    return now;
}

int arrival_parse_process(const char *str, enum arrival_process *ret)
{
    if (strcmp(str, "poisson") == 0) {
        *ret = ARRIVAL_POISSON;
        return 0;
    }
    if (strcmp(str, "constant") == 0) {
        *ret = ARRIVAL_CONSTANT;
        return 0;
    }
    return -EINVAL;
}
