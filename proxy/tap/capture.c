#include "tap/capture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/jsonw.h"
#include "tap/sse.h"
#include "tap/trace.h"

int capture_init(struct capture *c, const struct http_head *h, bool events)
{
    memset(c, 0, sizeof(*c));
    size_t bytes = 0;
    for (size_t i = 0; i < h->n_headers; i++)
        bytes += h->headers[i].name.len + h->headers[i].value.len + 2;
    c->headers = calloc(h->n_headers ? h->n_headers : 1, sizeof(*c->headers));
    c->strings = malloc(bytes ? bytes : 1);
    c->body = evbuffer_new();
    c->path = strndup(h->url.p, h->url.len);
    if (!c->headers || !c->strings || !c->body || !c->path)
        goto fail;
    for (int k = 0; k < DIALECT_TOKEN_KINDS; k++)
        if (!(c->text[k] = evbuffer_new()))
            goto fail;
    if (events && !(c->events = evbuffer_new()))
        goto fail;
    char *p = c->strings;
    for (size_t i = 0; i < h->n_headers; i++) {
        struct http_str n = h->headers[i].name, v = h->headers[i].value;
        memcpy(p, n.p, n.len);
        p[n.len] = '\0';
        c->headers[i].name = (struct http_str){p, n.len};
        p += n.len + 1;
        memcpy(p, v.p, v.len);
        p[v.len] = '\0';
        c->headers[i].value = (struct http_str){p, v.len};
        p += v.len + 1;
    }
    c->n_headers = h->n_headers;
    c->events_on = events;
    c->active = true;
    return 0;
fail:
    capture_finish(c);
    return -ENOMEM;
}

void capture_finish(struct capture *c)
{
    free(c->path);
    free(c->headers);
    free(c->strings);
    if (c->body)
        evbuffer_free(c->body);
    for (int k = 0; k < DIALECT_TOKEN_KINDS; k++)
        if (c->text[k])
            evbuffer_free(c->text[k]);
    if (c->events)
        evbuffer_free(c->events);
    memset(c, 0, sizeof(*c));
}

void capture_body(struct capture *c, const char *data, size_t len)
{
    if (!c->active || c->body_dropped)
        return;
    if (evbuffer_get_length(c->body) + len > CAPTURE_MAX_BODY) {
        c->body_dropped = true;
        evbuffer_drain(c->body, evbuffer_get_length(c->body));
        return;
    }
    evbuffer_add(c->body, data, len);
}

void capture_text(struct capture *c, enum dialect_token_kind kind, const char *text, size_t len)
{
    if (c->active && evbuffer_get_length(c->text[kind]) + len <= CAPTURE_MAX_TEXT)
        evbuffer_add(c->text[kind], text, len);
}

void capture_event(struct capture *c, const struct sse_event *ev, usec_t t, usec_t t_start)
{
    if (!c->active || !c->events_on || c->events_dropped)
        return;
    if (evbuffer_get_length(c->events) + ev->data_len + 16 > CAPTURE_MAX_EVENT_BYTES) {
        c->events_dropped = true;
        return;
    }
    uint64_t off = clock_diff(t, t_start);
    uint64_t len = ev->data_len;
    evbuffer_add(c->events, &off, sizeof(off));
    evbuffer_add(c->events, &len, sizeof(len));
    evbuffer_add(c->events, ev->data, ev->data_len);
    c->n_events++;
}

/* Unknown (negative) values are null. */
static void json_count(struct evbuffer *b, int64_t v)
{
    if (v < 0)
        EVBUFFER_ADD_LIT(b, "null");
    else
        evbuffer_add_printf(b, "%lld", (long long)v);
}

static void json_ms(struct evbuffer *b, double v)
{
    if (v < 0)
        EVBUFFER_ADD_LIT(b, "null");
    else
        jsonw_double(b, v);
}

static char *flat(struct evbuffer *b, size_t *len)
{
    *len = evbuffer_get_length(b);
    evbuffer_add(b, "", 1); /* a NUL after the bytes, not counted */
    return (char *)evbuffer_pullup(b, -1);
}

int capture_write(struct capture *c, struct trace_writer *w, const struct record *r)
{
    if (!c->active)
        return 0;
    int rc = -ENOMEM;
    struct trace_header *hdrs = calloc(c->n_headers ? c->n_headers : 1, sizeof(*hdrs));
    struct trace_event *events = NULL;
    struct evbuffer *usage = evbuffer_new(), *timings = evbuffer_new();
    if (!hdrs || !usage || !timings)
        goto fail;
    for (size_t i = 0; i < c->n_headers; i++)
        hdrs[i] = (struct trace_header){(char *)c->headers[i].name.p, (char *)c->headers[i].value.p};

    struct trace_entry e;
    trace_entry_init(&e);
    e.id = r->id;
    e.t_wall_us = r->wall_start;
    e.t_mono_us = r->t_start ? r->t_start : r->t_received;
    e.session = r->session[0] ? (char *)r->session : NULL;
    e.client = r->client[0] ? (char *)r->client : NULL;
    e.method = (char *)r->method;
    e.path = c->path;
    e.headers = hdrs;
    e.n_headers = c->n_headers;
    if (!c->body_dropped)
        e.body = flat(c->body, &e.body_len);
    e.status = r->status;
    e.content = flat(c->text[DIALECT_TOKEN_CONTENT], &e.content_len);
    e.reasoning = flat(c->text[DIALECT_TOKEN_REASONING], &e.reasoning_len);
    e.tools = flat(c->text[DIALECT_TOKEN_TOOL], &e.tools_len);
    e.finish_reason = r->finish_reason[0] ? (char *)r->finish_reason : NULL;
    /* usage and timings as the server reported them (in OpenAI's and
     * llama-server's names, whatever the dialect). */
    if (r->prompt_tokens >= 0 || r->server_output_tokens >= 0) {
        EVBUFFER_ADD_LIT(usage, "{\"prompt_tokens\":");
        json_count(usage, r->prompt_tokens);
        EVBUFFER_ADD_LIT(usage, ",\"completion_tokens\":");
        json_count(usage, r->server_output_tokens);
        EVBUFFER_ADD_LIT(usage, ",\"cached_tokens\":");
        json_count(usage, r->cached_tokens);
        EVBUFFER_ADD_LIT(usage, "}");
        size_t n;
        e.usage = flat(usage, &n);
    }
    if (r->server_prompt_n >= 0 || r->server_predicted_n >= 0) {
        EVBUFFER_ADD_LIT(timings, "{\"prompt_n\":");
        json_count(timings, r->server_prompt_n);
        EVBUFFER_ADD_LIT(timings, ",\"prompt_ms\":");
        json_ms(timings, r->server_prompt_ms);
        EVBUFFER_ADD_LIT(timings, ",\"predicted_n\":");
        json_count(timings, r->server_predicted_n);
        EVBUFFER_ADD_LIT(timings, ",\"predicted_ms\":");
        json_ms(timings, r->server_predicted_ms);
        EVBUFFER_ADD_LIT(timings, "}");
        size_t n;
        e.timings = flat(timings, &n);
    }
    if (c->events_on && c->n_events && !c->events_dropped) {
        events = calloc(c->n_events, sizeof(*events));
        if (!events)
            goto fail;
        size_t n;
        char *p = flat(c->events, &n);
        for (size_t i = 0; i < c->n_events; i++) {
            uint64_t off, len;
            memcpy(&off, p, sizeof(off));
            memcpy(&len, p + sizeof(off), sizeof(len));
            events[i] = (struct trace_event){off, p + 16, len};
            p += 16 + len;
        }
        e.events = events;
        e.n_events = c->n_events;
    }
    rc = trace_writer_add(w, &e);
fail:
    free(hdrs);
    free(events);
    if (usage)
        evbuffer_free(usage);
    if (timings)
        evbuffer_free(timings);
    return rc;
}
