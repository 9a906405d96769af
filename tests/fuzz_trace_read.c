/* libFuzzer target for the trace reader (tap/trace_read). Input: a limit
 * byte, then a trace file. The file is put in a memfd and read to its end
 * through /proc/self/fd, with the longest line from the limit byte (0:
 * the default). Checks: no crash, leak or hang; every call gives an
 * entry, the end, or an error with a message naming the file, and the
 * reader goes on after an error; entries own the fields the header
 * promises (never NULL), line numbers grow, bytes are readable to their
 * lengths. Built with -Dfuzz=true (clang). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "tap/trace.h"

static void readable(const char *p, size_t len)
{
    FUZZ_ASSERT(p != NULL);
    volatile char c = p[len]; /* the NUL after the bytes, which the reader adds */
    (void)c;
    FUZZ_ASSERT(p[len] == '\0');
}

static void check_entry(const struct trace_entry *e, uint64_t prev_line)
{
    FUZZ_ASSERT(e->line > prev_line);
    FUZZ_ASSERT(e->method && e->method[0]);
    FUZZ_ASSERT(e->path && e->path[0]);
    readable(e->body, e->body_len);
    readable(e->content, e->content_len);
    readable(e->reasoning, e->reasoning_len);
    readable(e->tools, e->tools_len);
    FUZZ_ASSERT(e->n_headers == 0 || e->headers != NULL);
    for (size_t i = 0; i < e->n_headers; i++)
        FUZZ_ASSERT(e->headers[i].name && e->headers[i].value);
    FUZZ_ASSERT(e->n_events == 0 || e->events != NULL);
    for (size_t i = 0; i < e->n_events; i++)
        readable(e->events[i].data, e->events[i].len);
    FUZZ_ASSERT(e->source == TRACE_SOURCE_V1 || e->source == TRACE_SOURCE_REQUEST ||
                e->source == TRACE_SOURCE_LENGTHS);
    FUZZ_ASSERT(e->source == TRACE_SOURCE_LENGTHS || e->max_tokens == -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (size < 1)
        return 0;
    if (fd < 0) {
        fd = memfd_create("fuzz_trace", MFD_CLOEXEC);
        FUZZ_ASSERT(fd >= 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    FUZZ_ASSERT(ftruncate(fd, 0) == 0);
    if (size > 1)
        FUZZ_ASSERT(pwrite(fd, data + 1, size - 1, 0) == (ssize_t)(size - 1));

    struct trace_reader *r = NULL;
    struct trace_error err;
    FUZZ_ASSERT(trace_reader_open(path, &r, &err) == 0);
    /* Small limits make lines too long and the buffer refill mid-line. */
    if (data[0])
        trace_reader_set_max_line(r, (size_t)data[0] * 8);
    size_t newlines = 0;
    for (size_t i = 1; i < size; i++)
        newlines += data[i] == '\n';
    uint64_t prev = 0;
    size_t calls = 0;
    for (;;) {
        FUZZ_ASSERT(++calls <= newlines + 2); /* each call takes a line or ends */
        struct trace_entry e;
        trace_entry_init(&e);
        err.msg[0] = '\0';
        int n = trace_reader_next(r, &e, &err);
        if (n == 0)
            break;
        if (n < 0) {
            FUZZ_ASSERT(n == -EBADMSG || n == -EMSGSIZE);
            FUZZ_ASSERT(strncmp(err.msg, path, strlen(path)) == 0);
            continue;
        }
        FUZZ_ASSERT(n == 1);
        check_entry(&e, prev);
        prev = e.line;
        trace_entry_finish(&e);
    }
    trace_reader_close(r);
    return 0;
}
