#include "serve/dash.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/chartjs.h"
#include "core/jsonw.h"
#include "serve/dash_assets.h"
#include "tap/live.h"
#include "tap/metrics.h"

/* The level table goes out at most this often (it merges histograms). */
#define LEVELS_EVERY (1 * USEC_PER_SEC)
/* A comment line after this much silence keeps intermediaries from
 * closing an idle stream. */
#define KEEPALIVE_EVERY (15 * USEC_PER_SEC)

struct dash_client {
    struct dash *d;                 /* borrowed */
    struct server_req *req;         /* borrowed until dash_abort */
    struct dash_client *prev, *next;
    struct live_cursor cur;
    uint64_t levels_version;        /* live's version when levels were last sent */
    usec_t levels_at, sent_at;
};

struct dash {
    struct event_base *base;        /* borrowed */
    struct dash_options o;
    char title[128];
    struct event *timer;            /* owned: runs while clients are connected */
    struct dash_client *clients;    /* owned list */
    unsigned n_clients;
    struct evbuffer *scratch;       /* owned: one frame being built */
};

static void on_timer(evutil_socket_t fd, short what, void *arg);

int dash_new(struct event_base *base, const struct dash_options *o, struct dash **ret)
{
    struct dash *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->base = base;
    d->o = *o;
    if (!d->o.interval)
        d->o.interval = 200 * USEC_PER_MSEC;
    snprintf(d->title, sizeof(d->title), "%s", o->title ? o->title : "tokentap");
    d->o.title = NULL;
    d->timer = event_new(base, -1, EV_PERSIST, on_timer, d);
    d->scratch = evbuffer_new();
    if (!d->timer || !d->scratch) {
        dash_free(d);
        return -ENOMEM;
    }
    *ret = d;
    return 0;
}

static void client_free(struct dash_client *c)
{
    struct dash *d = c->d;
    assert(d->n_clients > 0 && (c->prev ? c->prev->next == c : d->clients == c));
    if (c->prev)
        c->prev->next = c->next;
    else
        d->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    d->n_clients--;
    if (d->n_clients == 0)
        event_del(d->timer);
    free(c);
}

void dash_free(struct dash *d)
{
    if (!d)
        return;
    while (d->clients) {
        struct server_req *req = d->clients->req;
        server_req_set_data(req, NULL);
        client_free(d->clients);
        server_req_abort(req);
    }
    if (d->timer)
        event_free(d->timer);
    if (d->scratch)
        evbuffer_free(d->scratch);
    free(d);
}

unsigned dash_clients(const struct dash *d)
{
    return d->n_clients;
}

void dash_page(struct dash *d, struct server_req *req)
{
    struct evbuffer *b = d->scratch;
    evbuffer_drain(b, evbuffer_get_length(b));
    EVBUFFER_ADD_LIT(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                        /* No favicon request: the page asks the proxy for nothing else. */
                        "<link rel=\"icon\" href=\"data:,\">\n"
                        "<title>");
    /* The title is ours (the command's name): plain text, no markup. */
    evbuffer_add(b, d->title, strlen(d->title));
    EVBUFFER_ADD_LIT(b, "</title>\n<style>\n");
    evbuffer_add(b, dash_asset_css, dash_asset_css_len);
    EVBUFFER_ADD_LIT(b, "</style>\n</head>\n");
    evbuffer_add(b, dash_asset_html, dash_asset_html_len);
    EVBUFFER_ADD_LIT(b, "<script>\n");
    evbuffer_add(b, chartjs_min, chartjs_min_len);
    EVBUFFER_ADD_LIT(b, "</script>\n<script>\n");
    evbuffer_add(b, dash_asset_js, dash_asset_js_len);
    EVBUFFER_ADD_LIT(b, "</script>\n</html>\n");
    size_t len = evbuffer_get_length(b);
    const char *body = (const char *)evbuffer_pullup(b, -1);
    server_req_respond(req, 200, "text/html; charset=utf-8", body ? body : "", body ? len : 0);
    evbuffer_drain(b, evbuffer_get_length(b));
}

/* Sends what b holds to c's browser. */
static void send_buffer(struct dash_client *c, struct evbuffer *b, usec_t now)
{
    size_t len = evbuffer_get_length(b);
    const char *p = (const char *)evbuffer_pullup(b, -1);
    if (p && len)
        server_req_write(c->req, p, len);
    evbuffer_drain(b, len);
    c->sent_at = now;
}

/* One frame for c if anything changed; a keep-alive comment after long
 * silence. Only called when c's output queue is empty. */
static void feed(struct dash *d, struct dash_client *c, usec_t now)
{
    struct evbuffer *b = d->scratch;
    evbuffer_drain(b, evbuffer_get_length(b));
    uint64_t version = c->cur.version;
    if (live_changed(d->o.live, &c->cur, now)) {
        EVBUFFER_ADD_LIT(b, "event: frame\ndata: ");
        live_frame_json(d->o.live, &c->cur, b, now);
        EVBUFFER_ADD_LIT(b, "\n\n");
    }
    /* The level table changes only when requests end, which live sees. */
    if (d->o.metrics && (c->levels_at == 0 || (clock_diff(now, c->levels_at) >= LEVELS_EVERY &&
                                                c->levels_version != version))) {
        EVBUFFER_ADD_LIT(b, "event: levels\ndata: ");
        metrics_levels_json(d->o.metrics, b);
        EVBUFFER_ADD_LIT(b, "\n\n");
        c->levels_at = now;
        c->levels_version = version;
    }
    if (evbuffer_get_length(b) == 0 && clock_diff(now, c->sent_at) >= KEEPALIVE_EVERY)
        EVBUFFER_ADD_LIT(b, ": keep-alive\n\n");
    if (evbuffer_get_length(b))
        send_buffer(c, b, now);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dash *d = arg;
    usec_t now = clock_now();
    for (struct dash_client *c = d->clients; c; c = c->next) {
        /* A browser that has not taken the last frame gets none now: it
         * will get everything since in one frame once it has. */
        if (server_req_output_pending(c->req) == 0)
            feed(d, c, now);
    }
}

void dash_events(struct dash *d, struct server_req *req)
{
    if (d->n_clients >= DASH_MAX_CLIENTS) {
        server_req_error(req, 503, "unavailable_error",
                         "too many dashboards are connected; close one and reload");
        return;
    }
    struct dash_client *c = calloc(1, sizeof(*c));
    if (!c) {
        server_req_error(req, 500, "server_error", "out of memory");
        return;
    }
    c->d = d;
    c->req = req;
    c->next = d->clients;
    if (d->clients)
        d->clients->prev = c;
    d->clients = c;
    d->n_clients++;
    server_req_set_data(req, c);
    /* The stream ends when the connection does: no length, no chunks. */
    server_req_printf(req, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                           "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n"
                           "Connection: close\r\n\r\nretry: 2000\n\nevent: hello\ndata: {\"title\":");
    struct evbuffer *b = d->scratch;
    evbuffer_drain(b, evbuffer_get_length(b));
    jsonw_cstr(b, d->title);
    evbuffer_add_printf(b, ",\"version\":\"%s\",\"interval_ms\":%llu}\n\n", TOKENTAP_VERSION,
                        (unsigned long long)(d->o.interval / USEC_PER_MSEC));
    usec_t now = clock_now();
    send_buffer(c, b, now);
    if (d->n_clients == 1) {
        struct timeval tv = {(time_t)(d->o.interval / USEC_PER_SEC),
                             (suseconds_t)(d->o.interval % USEC_PER_SEC)};
        event_add(d->timer, &tv);
    }
}

void dash_abort(struct dash *d, struct server_req *req)
{
    struct dash_client *c = server_req_data(req);
    if (!c)
        return;
    assert(c->d == d && c->req == req);
    server_req_set_data(req, NULL);
    client_free(c);
}
