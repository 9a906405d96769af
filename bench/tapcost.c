/* tapcost: the CPU cost of measuring one token event.
 *
 * Feeds the bodies of real llama-server streams (tests/fixtures/llama-server)
 * through the stream tap (sse + dialect + record, the code serve and replay
 * run on every response byte) and prints the CPU time per token event and
 * how many token events the decoder read as repeats of the event before
 * (tap/dialect.c: the captures repeat all but their token's text). Three
 * ways of arriving: one event per read (a live stream: the server flushes
 * every token), the whole body in one read (a burst), and a thousand
 * streams' events one at a time in turn (their taps' state out of the
 * nearest caches). No I/O and no
 * clock reads in the measured loop besides the tap's own.
 *
 * Usage: tapcost [FIXTURES_DIR] [EVENTS]   (defaults: tests/fixtures/llama-server, 2000000) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap/tap.h"

struct capture {
    const char *file;
    const char *what;
    enum dialect_kind dialect;
};

static const struct capture captures[] = {
    {"10_chat_stream.txt", "OpenAI chat", DIALECT_OPENAI_CHAT},
    {"13_chat_stream_thinking_true.txt", "OpenAI chat, thinking", DIALECT_OPENAI_CHAT},
    {"20_messages_stream.txt", "Anthropic messages", DIALECT_ANTHROPIC},
    {"31_v1_completions_stream.txt", "OpenAI completions", DIALECT_OPENAI_COMPLETIONS},
    {"35_v1_responses_stream.txt", "OpenAI Responses", DIALECT_RESPONSES},
};

/* The body of a captured response: everything after the blank line. */
static char *read_body(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    size_t skip = 4;
    if (!body) {
        body = strstr(buf, "\n\n");
        skip = 2;
    }
    if (!body)
        return NULL;
    body += skip;
    *ret_len = n - (size_t)(body - buf);
    return strndup(body, *ret_len);
}

/* The head of an event-stream response, as llama-server sends it. */
static const char ctype[] = "Content-Type", sse[] = "text/event-stream";
static const struct http_header ct = {{ctype, sizeof(ctype) - 1}, {sse, sizeof(sse) - 1}};
static const struct http_head head = {.kind = HTTP_KIND_RESPONSE, .status = 200,
                                      .content_length = -1, .n_headers = 1, .headers = &ct};

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define MAX_EVENTS 4096

/* Events split at their blank lines: [off[i], off[i + 1]) is event i; past
 * max events the rest of the body is the last piece (still all fed). */
static size_t split_events(const char *body, size_t len, size_t *off, size_t max)
{
    size_t n = 0;
    for (const char *p = body, *end = body + len; p < end && n < max;) {
        off[n++] = (size_t)(p - body);
        const char *sep = strstr(p, "\n\n");
        p = sep ? sep + 2 : end;
    }
    off[n] = len;
    return n;
}

/* Runs the tap over body until at least want token events were seen;
 * per_event: one tap_body() call per SSE event, else one per body.
 * Returns the token events, the CPU seconds in *ret_cpu and the events
 * the decoder read as repeats of the one before (tap/dialect.c) in
 * *ret_repeats. */
static uint64_t run(const struct capture *c, const char *body, size_t len, bool per_event, uint64_t want,
                    double *ret_cpu, uint64_t *ret_repeats)
{
    static size_t off[MAX_EVENTS + 1];
    size_t n_ev = split_events(body, len, off, MAX_EVENTS);
    uint64_t events = 0, repeats = 0;
    usec_t now = 1;
    double t0 = cpu_seconds();
    while (events < want) {
        struct record rec;
        record_init(&rec);
        struct tap t;
        tap_init(&t, &rec, c->dialect);
        tap_head(&t, &head, now);
        if (per_event) {
            for (size_t i = 0; i < n_ev; i++)
                tap_body(&t, body + off[i], off[i + 1] - off[i], ++now);
        } else {
            tap_body(&t, body, len, ++now);
        }
        tap_end(&t, ++now);
        repeats += t.dialect.repeat.hits;
        tap_finish(&t);
        uint64_t n = rec.token_events;
        record_finish(&rec);
        if (n == 0) {
            fprintf(stderr, "tapcost: %s: no token events: is it a stream capture?\n", c->file);
            exit(1);
        }
        events += n;
    }
    *ret_cpu = cpu_seconds() - t0;
    *ret_repeats = repeats;
    return events;
}

/* As one event per read, but STREAMS taps at once, fed one event each in
 * turn (as a proxy reads a thousand streams' tokens): every event finds
 * its tap's state out of the nearest caches, as serve does at that load. */
#define STREAMS 1000
static uint64_t run_many(const struct capture *c, const char *body, size_t len, uint64_t want,
                         double *ret_cpu)
{
    static size_t off[MAX_EVENTS + 1];
    size_t n_ev = split_events(body, len, off, MAX_EVENTS);
    struct record *recs = calloc(STREAMS, sizeof(*recs));
    struct tap *taps = calloc(STREAMS, sizeof(*taps));
    if (!recs || !taps) {
        fprintf(stderr, "tapcost: out of memory\n");
        exit(1);
    }
    uint64_t events = 0;
    usec_t now = 1;
    double cpu = 0;
    while (events < want) {
        for (size_t k = 0; k < STREAMS; k++) {
            record_init(&recs[k]);
            tap_init(&taps[k], &recs[k], c->dialect);
            tap_head(&taps[k], &head, now);
        }
        double t0 = cpu_seconds();
        for (size_t i = 0; i < n_ev; i++)
            for (size_t k = 0; k < STREAMS; k++)
                tap_body(&taps[k], body + off[i], off[i + 1] - off[i], ++now);
        cpu += cpu_seconds() - t0;
        for (size_t k = 0; k < STREAMS; k++) {
            tap_end(&taps[k], ++now);
            tap_finish(&taps[k]);
            events += recs[k].token_events;
            record_finish(&recs[k]);
        }
    }
    free(recs);
    free(taps);
    *ret_cpu = cpu;
    return events;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures/llama-server";
    uint64_t want = argc > 2 ? strtoull(argv[2], NULL, 10) : 2000000;
    if (argc > 3 || !want || strcmp(dir, "--help") == 0 || strcmp(dir, "-h") == 0) {
        fprintf(stderr, "usage: tapcost [FIXTURES_DIR] [EVENTS]\n");
        return 2;
    }
    printf("| stream (real llama-server capture) | bytes/event | ns/event, one event per read | ns/event, whole body in one read | ns/event, %d streams in turn | token events read as repeats |\n", STREAMS);
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof(captures) / sizeof(captures[0]); i++) {
        const struct capture *c = &captures[i];
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, c->file);
        size_t len;
        char *body = read_body(path, &len);
        if (!body) {
            fprintf(stderr, "tapcost: cannot read %s: %s\n", path, errno ? strerror(errno) : "no body");
            return 1;
        }
        double cpu_read, cpu_burst, cpu_many, cpu;
        uint64_t rep_read, rep_burst, rep;
        uint64_t n_read = run(c, body, len, true, want, &cpu_read, &rep_read);
        uint64_t n_burst = run(c, body, len, false, want, &cpu_burst, &rep_burst);
        uint64_t n_many = run_many(c, body, len, want, &cpu_many);
        double bytes_per_event = (double)len / (double)run(c, body, len, false, 1, &cpu, &rep);
        printf("| %s | %.0f | %.0f | %.0f | %.0f | %.0f %% |\n", c->what, bytes_per_event,
               cpu_read / (double)n_read * 1e9, cpu_burst / (double)n_burst * 1e9,
               cpu_many / (double)n_many * 1e9, 100.0 * (double)rep_read / (double)n_read);
        free(body);
    }
    return 0;
}
