/* summary: the human table a run prints on stdout, read from the run's
 * summary JSON (so the table and the file always agree). */
#ifndef TOKENTAP_SUMMARY_H
#define TOKENTAP_SUMMARY_H

#include <stdio.h>

struct cJSON;

/* Prints a replay summary (the --out JSON) as tables. */
void summary_print(FILE *out, const struct cJSON *summary);

/* Prints the percentile rows of one stats object ({"ttft_ms":{...},...}). */
void summary_print_latencies(FILE *out, const struct cJSON *row, const struct cJSON *extra_send_lag);

/* Prints the per-concurrency-level table of a stats object. */
void summary_print_levels(FILE *out, const struct cJSON *stats);

#endif
