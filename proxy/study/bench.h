/* bench: `tokentap bench SCENARIO` — runs a multi-agent scenario across
 * its levels, repetitions and targets (built-in simulator profiles or real
 * servers), measures every request through loadgen, checks the answers,
 * and writes results.json (docs/results-format.md), report.md and
 * report.html. */
#ifndef TOKENTAP_BENCH_H
#define TOKENTAP_BENCH_H

int bench_main(int argc, char **argv);

#endif
