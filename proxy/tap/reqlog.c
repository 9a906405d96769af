#include "tap/reqlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/jsonw.h"

struct reqlog {
    char *path;            /* owned */
    int fd;
    bool with_gaps;
    struct evbuffer *line; /* owned: reused for each line */
};

int reqlog_open(const char *path, bool with_gaps, struct reqlog **ret)
{
    struct reqlog *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->fd = -1;
    l->with_gaps = with_gaps;
    l->path = strdup(path);
    l->line = evbuffer_new();
    if (!l->path || !l->line) {
        reqlog_close(l);
        return -ENOMEM;
    }
    int r = reqlog_reopen(l);
    if (r < 0) {
        reqlog_close(l);
        return r;
    }
    *ret = l;
    return 0;
}

int reqlog_reopen(struct reqlog *l)
{
    int fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (l->fd >= 0)
        close(l->fd);
    l->fd = fd;
    return 0;
}

int reqlog_write(struct reqlog *l, const struct record *r)
{
    evbuffer_drain(l->line, evbuffer_get_length(l->line));
    record_to_json(r, l->line, l->with_gaps);
    EVBUFFER_ADD_LIT(l->line, "\n");
    size_t len = evbuffer_get_length(l->line);
    const char *p = (const char *)evbuffer_pullup(l->line, -1);
    /* One write per line: O_APPEND makes it land whole at the end. A short
     * write (disk full) is finished off so the file stays line-aligned. */
    size_t done = 0;
    while (p && done < len) {
        ssize_t n = write(l->fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return p ? 0 : -ENOMEM;
}

void reqlog_close(struct reqlog *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    if (l->line)
        evbuffer_free(l->line);
    free(l->path);
    free(l);
}
