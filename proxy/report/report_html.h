/* report_html: the self-contained report.html page: the report's tables
 * (from report_doc), the chart data as JSON, and Chart.js, the chart code
 * and the style inlined from the binary (report_assets). Nothing on the
 * page loads from the network. Pure. */
#ifndef TOKENTAP_REPORT_HTML_H
#define TOKENTAP_REPORT_HTML_H

struct evbuffer;
struct report_doc;
struct report_plan;

/* Lanes of the per-request timeline, and token ticks per lane: beyond
 * them the page would be slow to draw and no more readable. */
#define REPORT_HTML_MAX_LANES 300
#define REPORT_HTML_MAX_TICKS 20000

/* Writes the whole page for a plan and the doc report_build made from it.
 * 0, the doc's error, or -ENOMEM. */
int report_html_page(const struct report_plan *plan, const struct report_doc *doc,
                     struct evbuffer *out);

#endif
