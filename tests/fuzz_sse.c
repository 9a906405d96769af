/* libFuzzer target for the SSE parser (tap/sse). Input: a limit byte, a
 * split byte, then an event stream. The stream is parsed at once and in
 * pieces (the split byte seeds the piece lengths) with the same event
 * limit. Checks: no crash, leak or hang; events are views that hold no
 * line ends; both runs dispatch the same events (type, data, id), drop
 * the same oversized ones, count the same comments and end equally idle.
 * Built with -Dfuzz=true (clang). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "fuzz_util.h"
#include "tap/sse.h"

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct fuzz_log *l = ctx;
    FUZZ_ASSERT(ev->data != NULL);
    /* Line ends end fields: none may be inside one (data joins lines with \n). */
    FUZZ_ASSERT(!ev->event || !memchr(ev->event, '\n', ev->event_len));
    FUZZ_ASSERT(!ev->event || !memchr(ev->event, '\r', ev->event_len));
    FUZZ_ASSERT(!ev->id || !memchr(ev->id, '\n', ev->id_len));
    FUZZ_ASSERT(!memchr(ev->data, '\r', ev->data_len));
    fuzz_log_str(l, "\nE");
    if (ev->event)
        fuzz_log_add(l, ev->event, ev->event_len);
    fuzz_log_str(l, "\nD");
    fuzz_log_add(l, ev->data, ev->data_len);
    fuzz_log_str(l, "\nI");
    if (ev->id)
        fuzz_log_add(l, ev->id, ev->id_len);
    return 0;
}

static void parse(struct fuzz_log *l, size_t limit, const uint8_t *data, size_t size,
                  uint32_t split)
{
    struct sse_parser p;
    sse_parser_init(&p, limit);
    size_t off = 0;
    uint32_t state = split;
    while (off < size) {
        size_t n = split ? fuzz_piece(&state) : size;
        if (n > size - off)
            n = size - off;
        int r = sse_feed(&p, (const char *)data + off, n, on_event, l);
        FUZZ_ASSERT(r == 0 || r == -E2BIG);
        off += n;
    }
    fuzz_log_num(l, (long long)p.events);
    fuzz_log_num(l, (long long)p.comments);
    fuzz_log_num(l, (long long)p.oversized);
    fuzz_log_num(l, sse_parser_idle(&p));
    sse_parser_finish(&p);
    FUZZ_ASSERT(p.raw == NULL && p.join == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* 0: the default (4 MiB); else small limits that the input can pass. */
    size_t limit = data[0] == 0 ? 0 : (size_t)data[0] * 4;
    uint32_t split = data[1] ? data[1] : 1;
    data += 2;
    size -= 2;

    struct fuzz_log a = {0}, b = {0};
    parse(&a, limit, data, size, 0);
    parse(&b, limit, data, size, split);
    if (!fuzz_log_eq(&a, &b)) {
        fprintf(stderr, "at once:\n%.*s\n---\nin pieces:\n%.*s\n", (int)a.len, a.p, (int)b.len,
                b.p);
        FUZZ_ASSERT(!"feeding in pieces differs from feeding at once");
    }
    fuzz_log_free(&a);
    fuzz_log_free(&b);
    return 0;
}
