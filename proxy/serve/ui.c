#include "serve/ui.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "serve/admin.h"
#include "serve/dash.h"
#include "tap/live.h"
#include "tap/metrics.h"
#include "wire/net.h"
#include "wire/server.h"

struct ui {
    struct live *live;          /* owned */
    struct dash *dash;          /* owned */
    struct server *server;      /* owned */
    struct admin_source admin;  /* the server's ctx */
};

/* /tokentap/health: the requests in flight are what live counts. */
static unsigned ui_in_flight(void *ctx)
{
    const struct ui *u = ctx;
    return u->admin.metrics ? metrics_in_flight(u->admin.metrics) : 0;
}

int ui_new(struct event_base *base, const char *listen, const char *title, struct metrics *metrics,
           struct ui **ret)
{
    int r = -ENOMEM;
    struct ui *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    struct live_options lo;
    live_options_default(&lo);
    if (live_new(&lo, clock_now(), &u->live) < 0)
        goto fail;
    struct dash_options d = {.live = u->live, .metrics = metrics, .title = title};
    if (dash_new(base, &d, &u->dash) < 0)
        goto fail;
    u->admin = (struct admin_source){
        .metrics = metrics,
        .dash = u->dash,
        .ctx = u,
        .in_flight = ui_in_flight,
    };
    struct server_options so;
    server_options_default(&so);
    so.max_connections = 64;
    so.quiet = true;
    if ((r = server_new(base, listen, &so, admin_handler(), &u->admin, &u->server)) < 0)
        goto fail;
    *ret = u;
    return 0;
fail:
    ui_free(u);
    return r;
}

void ui_free(struct ui *u)
{
    if (!u)
        return;
    dash_free(u->dash);
    server_free(u->server);
    live_free(u->live);
    free(u);
}

struct live *ui_live(struct ui *u)
{
    return u->live;
}

void ui_url(const struct ui *u, char *buf, size_t len)
{
    char addr[80];
    net_format(server_address(u->server), addr, sizeof(addr));
    snprintf(buf, len, "http://%s/tokentap/", addr);
}
