/* ui: the dashboard on a port of its own, for load that tokentap makes
 * itself (replay --ui, bench --ui): a live view the load generator feeds
 * (loadgen_options.live = ui_live()), the page and its event stream, and
 * admin's other /tokentap/ endpoints over the caller's metrics. */
#ifndef TOKENTAP_UI_H
#define TOKENTAP_UI_H

#include <stddef.h>

struct event_base;
struct live;
struct metrics;
struct ui;

/* Listens on `listen` (HOST:PORT) on base. title names the page (e.g.
 * "tokentap bench"); metrics (borrowed, may be NULL) feed the level
 * table, /tokentap/stats and /tokentap/metrics. 0, or a negative errno
 * (the server logs why it could not listen). */
int ui_new(struct event_base *base, const char *listen, const char *title, struct metrics *metrics,
           struct ui **ret);

/* Closes the port and the browsers' streams. NULL is a no-op. */
void ui_free(struct ui *u);

/* The live view to hand the load generator. */
struct live *ui_live(struct ui *u);

/* "http://HOST:PORT/tokentap/" into buf. */
void ui_url(const struct ui *u, char *buf, size_t len);

#endif
