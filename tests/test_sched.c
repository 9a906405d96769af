/* Unit tests for sched: original timing, constant and Poisson arrivals. */
#include <math.h>

#include "check.h"
#include "sched.h"

int main(void)
{
    struct sched s;
    sched_init(&s, SCHED_ORIGINAL, 1);
    s.speed = 10;
    CHECK_INT(sched_original(&s, 5000000), 500000);
    s.speed = 1;
    CHECK_INT(sched_original(&s, 1234), 1234);

    sched_init(&s, SCHED_RATE, 1);
    s.rate = 4;
    s.arrival = SCHED_CONSTANT;
    CHECK_INT(sched_next_arrival(&s), 0);
    CHECK_INT(sched_next_arrival(&s), 250000);
    CHECK_INT(sched_next_arrival(&s), 500000);

    /* Poisson: mean gap 1/rate, coefficient of variation 1. */
    sched_init(&s, SCHED_RATE, 42);
    s.rate = 50;
    s.arrival = SCHED_POISSON;
    const int n = 200000;
    usec_t prev = sched_next_arrival(&s);
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        usec_t t = sched_next_arrival(&s);
        double gap = (double)(t - prev);
        sum += gap;
        sum2 += gap * gap;
        prev = t;
    }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    CHECK_NEAR(mean, 20000.0, 0.01);
    CHECK_NEAR(sd / mean, 1.0, 0.02);
    /* Same seed, same arrivals. */
    struct sched a, b;
    sched_init(&a, SCHED_RATE, 7);
    sched_init(&b, SCHED_RATE, 7);
    for (int i = 0; i < 100; i++)
        CHECK_INT(sched_next_arrival(&a), sched_next_arrival(&b));
    return check_done("test_sched");
}
