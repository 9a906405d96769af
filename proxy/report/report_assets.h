/* report_assets: files embedded into the binary at build time by
 * proxy/embed.py (see proxy/meson.build), so report.html is one
 * self-contained file and tokentap needs no data files at run time. Each
 * array holds the bytes and a NUL that _len does not count. */
#ifndef TOKENTAP_REPORT_ASSETS_H
#define TOKENTAP_REPORT_ASSETS_H

#include <stddef.h>

/* Chart.js itself is core/chartjs.h, shared with the dashboard. */

/* proxy/report/report.js: draws the charts from the page's JSON. */
extern const unsigned char report_asset_js[];
extern const size_t report_asset_js_len;

/* proxy/report/report.css: the page's style. */
extern const unsigned char report_asset_css[];
extern const size_t report_asset_css_len;

#endif
