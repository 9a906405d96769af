/* Unit tests for sched: original timing, constant and Poisson arrivals. */
#include <math.h>

#include "check.h"
#include "load/arrival.h"

int main(void)
{
    struct arrival s;
    arrival_init(&s, ARRIVAL_ORIGINAL, 1);
    s.speed = 10;
    CHECK_INT(arrival_original(&s, 5000000), 500000);
    s.speed = 1;
    CHECK_INT(arrival_original(&s, 1234), 1234);

    arrival_init(&s, ARRIVAL_RATE, 1);
    s.rate = 4;
    s.process = ARRIVAL_CONSTANT;
    CHECK_INT(arrival_next_arrival(&s), 0);
    CHECK_INT(arrival_next_arrival(&s), 250000);
    CHECK_INT(arrival_next_arrival(&s), 500000);

    /* Poisson: mean gap 1/rate, coefficient of variation 1. */
    arrival_init(&s, ARRIVAL_RATE, 42);
    s.rate = 50;
    s.process = ARRIVAL_POISSON;
    const int n = 200000;
    usec_t prev = arrival_next_arrival(&s);
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        usec_t t = arrival_next_arrival(&s);
        double gap = (double)(t - prev);
        sum += gap;
        sum2 += gap * gap;
        prev = t;
    }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    CHECK_NEAR(mean, 20000.0, 0.01);
    CHECK_NEAR(sd / mean, 1.0, 0.02);
    /* Same seed, same arrivals. */
    struct arrival a, b;
    arrival_init(&a, ARRIVAL_RATE, 7);
    arrival_init(&b, ARRIVAL_RATE, 7);
    for (int i = 0; i < 100; i++)
        CHECK_INT(arrival_next_arrival(&a), arrival_next_arrival(&b));
    return check_done("test_arrival");
}
