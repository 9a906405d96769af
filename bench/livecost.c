/* livecost: the CPU the dashboard costs the proxy, per token event.
 *
 * Plays a load in simulated time through the calls the proxy makes (live_begin,
 * live_head, live_token, live_end; metrics next to them, as serve has it) and
 * builds what /tokentap/events sends one browser: a frame every 200 ms and the
 * level table once a second. STREAMS requests stay in flight (a new one starts
 * when one ends, each RATE token events/s, 200 events long), for SECONDS of
 * simulated time. Prints CPU time (CLOCK_PROCESS_CPUTIME_ID) per token event
 * for three things: metrics alone (what serve did before the dashboard), the
 * live view's updates (paid with or without a browser), and the frames for one
 * browser; and the bytes per second that browser gets. No I/O, no sockets: the
 * numbers are the dashboard's own, free of the machine's other load.
 *
 * Usage: livecost [STREAMS] [RATE] [SECONDS]   (defaults: 200 5 120: 1,000 events/s) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "tap/live.h"
#include "tap/metrics.h"
#include "tap/record.h"

#define EVENTS_PER_REQUEST 200

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct stream {
    struct record rec;
    usec_t next;      /* when its next event is due */
    unsigned tokens;
};

/* Runs the load once; with_live / frames say what besides metrics is on.
 * Returns CPU seconds; *ret_events the token events, *ret_bytes the frame bytes. */
static double run(unsigned streams, unsigned rate, unsigned seconds, bool with_live, bool frames,
                  uint64_t *ret_events, uint64_t *ret_bytes)
{
    const usec_t t0 = 1000 * USEC_PER_SEC, step = USEC_PER_SEC / rate, end = t0 + seconds * USEC_PER_SEC;
    struct metrics_options mo;
    metrics_options_default(&mo);
    struct metrics *m;
    struct live *l = NULL;
    struct live_options lo;
    live_options_default(&lo);
    if (metrics_new(&mo, t0, &m) < 0 || (with_live && live_new(&lo, t0, &l) < 0)) {
        fprintf(stderr, "livecost: out of memory\n");
        exit(1);
    }
    struct stream *s = calloc(streams, sizeof(*s));
    struct evbuffer *out = evbuffer_new();
    struct live_cursor cur = {0};
    static const uint64_t one[DIALECT_TOKEN_KINDS] = {1};
    static const char path[] = "/v1/chat/completions";
    uint64_t id = 0, events = 0, bytes = 0;
    usec_t next_frame = t0 + 200 * USEC_PER_MSEC, next_levels = t0 + USEC_PER_SEC;
    double start = cpu_now();
    for (unsigned i = 0; i < streams; i++)
        s[i].next = t0 + (usec_t)i * step / streams; /* phases spread over one interval */
    for (usec_t now = t0; now < end; now += step / streams ? step / streams : 1) {
        for (unsigned i = 0; i < streams; i++) {
            struct stream *x = &s[i];
            if (x->next > now)
                continue;
            struct record *r = &x->rec;
            if (x->tokens == 0) {
                record_begin(r, ++id, "POST", path, sizeof(path) - 1, now);
                r->t_start = now;
                snprintf(r->upstream, sizeof(r->upstream), "default");
                snprintf(r->model, sizeof(r->model), "qwen");
                snprintf(r->session, sizeof(r->session), "agent-%u", i % 8);
                metrics_begin(m, r, now);
                if (l)
                    live_begin(l, r, "127.0.0.1", now);
                r->stream = true;
                r->t_response_head = now;
                if (l)
                    live_head(l, r, now);
            }
            record_token(r, now, one);
            metrics_token(m, r, now);
            if (l)
                live_token(l, r, now);
            events++;
            x->next = now + step;
            if (++x->tokens == EVENTS_PER_REQUEST) {
                r->status = 200;
                r->outcome = RECORD_OK;
                r->t_end = now;
                metrics_end(m, r, now);
                if (l)
                    live_end(l, r, now);
                record_finish(r);
                x->tokens = 0;
            }
        }
        if (frames && now >= next_frame) {
            next_frame += 200 * USEC_PER_MSEC;
            if (live_changed(l, &cur, now))
                live_frame_json(l, &cur, out, now);
            if (now >= next_levels) {
                next_levels += USEC_PER_SEC;
                metrics_levels_json(m, out);
            }
            bytes += evbuffer_get_length(out);
            evbuffer_drain(out, evbuffer_get_length(out));
        }
    }
    double cpu = cpu_now() - start;
    for (unsigned i = 0; i < streams; i++)
        if (s[i].tokens)
            record_finish(&s[i].rec);
    free(s);
    evbuffer_free(out);
    live_free(l);
    metrics_free(m);
    *ret_events = events;
    *ret_bytes = bytes;
    return cpu;
}

int main(int argc, char **argv)
{
    unsigned streams = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 200;
    unsigned rate = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 5;
    unsigned seconds = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 120;
    if (!streams || !rate || !seconds || rate > 1000000) {
        fprintf(stderr, "usage: livecost [STREAMS] [RATE] [SECONDS]\n");
        return 2;
    }
    uint64_t ev, by;
    /* Each configuration three times; the fastest counts (the least
     * disturbed by the rest of the machine). */
    double best[3] = {1e9, 1e9, 1e9};
    uint64_t bytes = 0;
    for (int rep = 0; rep < 3; rep++)
        for (int k = 0; k < 3; k++) {
            double c = run(streams, rate, seconds, k >= 1, k == 2, &ev, &by);
            if (c < best[k])
                best[k] = c;
            if (k == 2)
                bytes = by;
        }
    double per[3];
    for (int k = 0; k < 3; k++)
        per[k] = best[k] / (double)ev * 1e6;
    printf("| load (simulated) | token events | metrics and the loop µs/event | + live view µs/event | + one browser's frames µs/event | frame bytes/s |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    printf("| %u streams × %u events/s, %u s | %llu | %.3f | %.3f | %.3f | %.0f |\n", streams, rate,
           seconds, (unsigned long long)ev, per[0], per[1] - per[0], per[2] - per[1],
           (double)bytes / seconds);
    return 0;
}
