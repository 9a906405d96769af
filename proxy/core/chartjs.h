/* chartjs: Chart.js 3.9 (Debian's libjs-chart.js, chart.min.js, MIT
 * licence), embedded into the binary at build time by proxy/embed.py (see
 * proxy/meson.build) for the pages tokentap writes or serves (report.html,
 * the dashboard): they load nothing from the network. */
#ifndef TOKENTAP_CHARTJS_H
#define TOKENTAP_CHARTJS_H

#include <stddef.h>

/* The file's bytes and a NUL that chartjs_min_len does not count. */
extern const unsigned char chartjs_min[];
extern const size_t chartjs_min_len;

#endif
