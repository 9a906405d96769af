/* trace, the writing half: entries, line formatting in the caller's
 * thread, and the writer thread (see trace.h, docs/trace-format.md). */
#include "tap/trace.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/files.h"
#include "core/jsonscan.h"
#include "core/jsonw.h"

/* Raw JSON values in a line sit one level below the line object (body) or
 * two (usage, timings): keep them shallow enough that the line validates. */
#define BODY_MAX_DEPTH (JSONSCAN_MAX_DEPTH - 1)
#define RAW_MAX_DEPTH 64
#define MAX_PREFIX 64

static const char *const default_redacted[] = {
    "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie",
};

void trace_entry_init(struct trace_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->max_tokens = -1;
}

void trace_entry_finish(struct trace_entry *e)
{
    free(e->session);
    free(e->client);
    free(e->method);
    free(e->path);
    for (size_t i = 0; i < e->n_headers; i++) {
        free(e->headers[i].name);
        free(e->headers[i].value);
    }
    free(e->headers);
    free(e->body);
    free(e->content);
    free(e->reasoning);
    free(e->tools);
    free(e->finish_reason);
    free(e->usage);
    free(e->timings);
    for (size_t i = 0; i < e->n_events; i++)
        free(e->events[i].data);
    free(e->events);
    trace_entry_init(e);
}

/* ---- base64 (RFC 4648, padded) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

static void b64_encode(struct evbuffer *out, const unsigned char *s, size_t n)
{
    char chunk[4096]; /* a multiple of 4: encoded in pieces, no big temporary */
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        chunk[k++] = b64_alphabet[v >> 18 & 63];
        chunk[k++] = b64_alphabet[v >> 12 & 63];
        chunk[k++] = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
        chunk[k++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
        if (k == sizeof(chunk)) {
            evbuffer_add(out, chunk, k);
            k = 0;
        }
    }
    evbuffer_add(out, chunk, k);
}

/* ---- writer: formatting (caller's thread) ---- */

/* Strict UTF-8 (no overlongs, surrogates or values past U+10FFFF): an
 * inline body must be JSON that every reader accepts, not only ours. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* Bodies are mostly ASCII: eight bytes per step while they are. */
        if (n - i >= 8) {
            uint64_t word;
            memcpy(&word, s + i, 8);
            if ((word & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
            return false;
        i += k + 1;
    }
    return true;
}

/* A body goes inline when the line can hold it verbatim and the reader can
 * lift it back byte for byte: one valid JSON value with nothing around it
 * (the value's span excludes whitespace), no raw line breaks (JSONL), and
 * valid UTF-8. Anything else is base64. */
static bool body_inline(const char *b, size_t len)
{
    struct jsonscan_info info;
    if (len == 0 || memchr(b, '\n', len) || memchr(b, '\r', len))
        return false;
    if (jsonscan_validate(b, len, BODY_MAX_DEPTH, &info) < 0)
        return false;
    return info.start == 0 && info.end == len && utf8_valid((const unsigned char *)b, len);
}

/* Bytes jsonw_str writes for s: only an estimate for the line's single
 * allocation, so a mismatch costs a copy, never correctness. */
static size_t str_len(const char *s, size_t n)
{
    size_t t = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        t += c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' ||
                     c == '\f'
                 ? 2
             : c < 0x20 ? 6
                        : 1;
    }
    return t;
}

static size_t cstr_len(const char *s)
{
    return s ? str_len(s, strlen(s)) : 4;
}

/* Appends validated raw JSON without whitespace outside strings, so a
 * pretty-printed usage object cannot break the line. */
static void add_compact(struct evbuffer *out, const char *s, size_t n)
{
    bool in_str = false;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++, run++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            evbuffer_add(out, s + i - run, run);
            run = 0;
            continue;
        }
        run++;
    }
    evbuffer_add(out, s + n - run, run);
}

static int add_raw_or_null(struct evbuffer *out, const char *raw)
{
    if (!raw) {
        EVBUFFER_ADD_LIT(out, "null");
        return 0;
    }
    struct jsonscan_info info;
    size_t n = strlen(raw);
    if (jsonscan_validate(raw, n, RAW_MAX_DEPTH, &info) < 0)
        return -EINVAL;
    add_compact(out, raw + info.start, info.end - info.start);
    return 0;
}

struct trace_item {
    struct trace_item *next; /* owned: the rest of the queue */
    struct evbuffer *line;   /* owned: one whole line, newline included */
    size_t len;
};

struct trace_writer {
    char *dir, *prefix;      /* owned */
    char **redact;           /* owned: extra names, each owned */
    size_t n_redact;
    uint64_t max_file_bytes, queue_bytes;
    bool events;

    pthread_mutex_t mu;      /* guards the queue, stats, cur_path and stopping */
    pthread_cond_t cv;
    bool mu_init, cv_init, thread_started, stopping;
    pthread_t thread;
    struct trace_item *head, *tail; /* owned: lines waiting for the disk */
    struct trace_writer_stats st;
    char *cur_path;          /* owned: the file being written */

    /* The writer thread's own (and open/close's, when it is not running). */
    int fd;
    uint64_t file_bytes;
    unsigned seq;            /* the NNN of the next file name */
};

static bool redacted(const struct trace_writer *w, const char *name)
{
    for (size_t i = 0; i < sizeof(default_redacted) / sizeof(default_redacted[0]); i++)
        if (strcasecmp(name, default_redacted[i]) == 0)
            return true;
    for (size_t i = 0; i < w->n_redact; i++)
        if (strcasecmp(name, w->redact[i]) == 0)
            return true;
    return false;
}

static size_t line_estimate(const struct trace_writer *w, const struct trace_entry *e,
                            bool inline_body)
{
    size_t n = 512 + cstr_len(e->session) + cstr_len(e->client) + cstr_len(e->method) +
               cstr_len(e->path) + cstr_len(e->finish_reason);
    for (size_t i = 0; i < e->n_headers; i++)
        n += 6 + cstr_len(e->headers[i].name) + cstr_len(e->headers[i].value);
    n += inline_body ? e->body_len : b64_len(e->body_len) + 2;
    n += str_len(e->content ? e->content : "", e->content_len);
    n += str_len(e->reasoning ? e->reasoning : "", e->reasoning_len);
    n += str_len(e->tools ? e->tools : "", e->tools_len);
    n += (e->usage ? strlen(e->usage) : 4) + (e->timings ? strlen(e->timings) : 4);
    if (w->events)
        for (size_t i = 0; i < e->n_events; i++)
            n += 24 + str_len(e->events[i].data ? e->events[i].data : "", e->events[i].len);
    return n;
}

static void add_text(struct evbuffer *out, const char *s, size_t len)
{
    jsonw_str(out, s ? s : "", s ? len : 0);
}

/* Formats e into a new evbuffer that holds the line in one chain (sized up
 * front), so the writer thread's pullup does not copy. */
static int format_line(const struct trace_writer *w, const struct trace_entry *e,
                       struct evbuffer **ret)
{
    if (!e->method || !e->path || (e->body_len && !e->body))
        return -EINVAL;
    if (e->body_len > TRACE_MAX_LINE)
        return -EMSGSIZE;
    bool inl = body_inline(e->body, e->body_len);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    int r = -ENOMEM;
    if (evbuffer_expand(b, line_estimate(w, e, inl)) < 0)
        goto fail;

    evbuffer_add_printf(b, "{\"v\":%d,\"id\":%" PRIu64 ",\"t_wall_us\":%" PRIu64
                           ",\"t_mono_us\":%" PRIu64 ",\"session\":",
                        TRACE_FORMAT_VERSION, e->id, (uint64_t)e->t_wall_us,
                        (uint64_t)e->t_mono_us);
    jsonw_cstr(b, e->session);
    EVBUFFER_ADD_LIT(b, ",\"client\":");
    jsonw_cstr(b, e->client);
    EVBUFFER_ADD_LIT(b, ",\"method\":");
    jsonw_cstr(b, e->method);
    EVBUFFER_ADD_LIT(b, ",\"path\":");
    jsonw_cstr(b, e->path);
    EVBUFFER_ADD_LIT(b, ",\"headers\":[");
    for (size_t i = 0; i < e->n_headers; i++) {
        const char *name = e->headers[i].name ? e->headers[i].name : "";
        const char *value = e->headers[i].value ? e->headers[i].value : "";
        if (i)
            EVBUFFER_ADD_LIT(b, ",");
        EVBUFFER_ADD_LIT(b, "[");
        jsonw_cstr(b, name);
        EVBUFFER_ADD_LIT(b, ",");
        jsonw_cstr(b, redacted(w, name) ? TRACE_REDACTED : value);
        EVBUFFER_ADD_LIT(b, "]");
    }
    if (inl) {
        EVBUFFER_ADD_LIT(b, "],\"body\":");
        evbuffer_add(b, e->body, e->body_len);
    } else {
        EVBUFFER_ADD_LIT(b, "],\"body_b64\":\"");
        b64_encode(b, (const unsigned char *)e->body, e->body_len);
        EVBUFFER_ADD_LIT(b, "\"");
    }
    if (e->status > 0)
        evbuffer_add_printf(b, ",\"status\":%d", e->status);
    else
        EVBUFFER_ADD_LIT(b, ",\"status\":null");
    EVBUFFER_ADD_LIT(b, ",\"response\":{\"content\":");
    add_text(b, e->content, e->content_len);
    EVBUFFER_ADD_LIT(b, ",\"reasoning\":");
    add_text(b, e->reasoning, e->reasoning_len);
    EVBUFFER_ADD_LIT(b, ",\"tools\":");
    add_text(b, e->tools, e->tools_len);
    EVBUFFER_ADD_LIT(b, ",\"finish_reason\":");
    jsonw_cstr(b, e->finish_reason);
    EVBUFFER_ADD_LIT(b, ",\"usage\":");
    r = add_raw_or_null(b, e->usage);
    if (r < 0)
        goto fail;
    EVBUFFER_ADD_LIT(b, ",\"timings\":");
    r = add_raw_or_null(b, e->timings);
    if (r < 0)
        goto fail;
    EVBUFFER_ADD_LIT(b, "}");
    if (w->events) {
        EVBUFFER_ADD_LIT(b, ",\"events\":[");
        for (size_t i = 0; i < e->n_events; i++) {
            evbuffer_add_printf(b, "%s[%" PRIu64 ",", i ? "," : "", (uint64_t)e->events[i].offset_us);
            add_text(b, e->events[i].data, e->events[i].len);
            EVBUFFER_ADD_LIT(b, "]");
        }
        EVBUFFER_ADD_LIT(b, "]");
    }
    EVBUFFER_ADD_LIT(b, "}\n");
    r = -EMSGSIZE;
    if (evbuffer_get_length(b) - 1 > TRACE_MAX_LINE)
        goto fail;
    *ret = b;
    return 0;
fail:
    evbuffer_free(b);
    return r;
}

/* ---- writer: files and the thread ---- */

/* Opens a new file named prefix-YYYYmmdd-HHMMSS-NNN.jsonl (UTC, so names
 * sort by time; NNN counts files, so two in one second still sort). */
static int open_next_file(struct trace_writer *w, int *ret_fd, char **ret_path)
{
    size_t cap = strlen(w->dir) + strlen(w->prefix) + 48;
    char *path = malloc(cap);
    if (!path)
        return -ENOMEM;
    int r = -EEXIST;
    for (int tries = 0; tries < 1000; tries++) {
        time_t now = (time_t)(clock_wall() / USEC_PER_SEC);
        struct tm tm;
        char stamp[32];
        if (!gmtime_r(&now, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm) == 0) {
            r = -EINVAL;
            break;
        }
        snprintf(path, cap, "%s/%s-%s-%03u.jsonl", w->dir, w->prefix, stamp, w->seq++);
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            *ret_fd = fd;
            *ret_path = path;
            return 0;
        }
        r = -errno;
        if (errno != EEXIST)
            break;
    }
    free(path);
    return r;
}

/* Switches to a new file; on failure the old one stays open. */
static int rotate(struct trace_writer *w)
{
    int fd;
    char *path;
    int r = open_next_file(w, &fd, &path);
    if (r < 0)
        return r;
    close(w->fd);
    w->fd = fd;
    w->file_bytes = 0;
    pthread_mutex_lock(&w->mu);
    free(w->cur_path);
    w->cur_path = path;
    w->st.files++;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* One write() per line, so a killed process leaves whole lines and at most
 * a torn last one. A short write (disk full) is finished off or, failing
 * that, cut back so the next line starts on a line boundary. */
static int write_line(struct trace_writer *w, const struct trace_item *it)
{
    /* A file that cannot be opened does not cost the line: it goes to the
     * old file, and the next line tries again. */
    if (w->file_bytes > 0 && w->file_bytes + it->len > w->max_file_bytes && rotate(w) < 0) {
        pthread_mutex_lock(&w->mu);
        w->st.rotate_errors++;
        pthread_mutex_unlock(&w->mu);
    }
    const char *p = (const char *)evbuffer_pullup(it->line, -1);
    if (!p)
        return -ENOMEM;
    size_t done = 0;
    while (done < it->len) {
        ssize_t n = write(w->fd, p + done, it->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int r = n < 0 ? -errno : -EIO;
            if (done > 0 && ftruncate(w->fd, (off_t)w->file_bytes) < 0)
                w->file_bytes += done; /* cannot cut it: at least size the file right */
            return r;
        }
        done += (size_t)n;
    }
    w->file_bytes += it->len;
    return 0;
}

static void *writer_main(void *arg)
{
    struct trace_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        struct trace_item *list = w->head;
        if (!list)
            break; /* stopping, and everything is written */
        w->head = w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        while (list) {
            struct trace_item *it = list;
            list = it->next;
            int r = write_line(w, it);
            pthread_mutex_lock(&w->mu);
            if (r < 0) {
                w->st.write_errors++;
                w->st.last_write_error = r;
            } else {
                w->st.lines_written++;
                w->st.bytes_written += it->len;
            }
            /* Counted until written: the limit bounds memory, not queue length. */
            assert(w->st.queued_lines > 0 && w->st.queued_bytes >= it->len);
            w->st.queued_lines--;
            w->st.queued_bytes -= it->len;
            pthread_mutex_unlock(&w->mu);
            evbuffer_free(it->line);
            free(it);
        }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int trace_writer_open(const struct trace_writer_options *o, struct trace_writer **ret)
{
    const char *prefix = o->prefix ? o->prefix : TRACE_DEFAULT_PREFIX;
    if (!o->dir || !o->dir[0] || !prefix[0] || strchr(prefix, '/') || strlen(prefix) > MAX_PREFIX)
        return -EINVAL;
    if (strlen(o->dir) > (size_t)(PATH_MAX - MAX_PREFIX - 48))
        return -ENAMETOOLONG;
    for (size_t i = 0; i < o->n_redact_headers; i++)
        if (!o->redact_headers[i])
            return -EINVAL;
    struct trace_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    int r = -ENOMEM;
    w->fd = -1;
    w->events = o->events;
    w->max_file_bytes = o->max_file_bytes ? o->max_file_bytes : TRACE_DEFAULT_MAX_FILE_BYTES;
    w->queue_bytes = o->queue_bytes ? o->queue_bytes : TRACE_DEFAULT_QUEUE_BYTES;
    w->dir = strdup(o->dir);
    w->prefix = strdup(prefix);
    if (!w->dir || !w->prefix)
        goto fail;
    if (o->n_redact_headers) {
        w->redact = calloc(o->n_redact_headers, sizeof(*w->redact));
        if (!w->redact)
            goto fail;
        for (; w->n_redact < o->n_redact_headers; w->n_redact++) {
            w->redact[w->n_redact] = strdup(o->redact_headers[w->n_redact]);
            if (!w->redact[w->n_redact])
                goto fail;
        }
    }
    r = -pthread_mutex_init(&w->mu, NULL);
    if (r < 0)
        goto fail;
    w->mu_init = true;
    r = -pthread_cond_init(&w->cv, NULL);
    if (r < 0)
        goto fail;
    w->cv_init = true;
    r = files_make_dirs(w->dir, 0700); /* traces hold prompts: the directories are private */
    if (r < 0)
        goto fail;
    r = open_next_file(w, &w->fd, &w->cur_path);
    if (r < 0)
        goto fail;
    w->st.files = 1;

    /* The thread takes no signals: they stay with the event loop's thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = -pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0)
        goto fail;
    w->thread_started = true;
    *ret = w;
    return 0;
fail:
    trace_writer_close(w, NULL);
    return r;
}

int trace_writer_add(struct trace_writer *w, const struct trace_entry *e)
{
    struct evbuffer *line = NULL;
    struct trace_item *it = NULL;
    int r = format_line(w, e, &line);
    if (r == 0) {
        it = calloc(1, sizeof(*it));
        r = it ? 0 : -ENOMEM;
    }
    pthread_mutex_lock(&w->mu);
    w->st.lines_added++;
    if (r == 0) {
        it->line = line;
        it->len = evbuffer_get_length(line);
        if (w->st.queued_bytes + it->len > w->queue_bytes) {
            r = -ENOBUFS;
            w->st.dropped_queue_full++;
        }
    }
    if (r == 0) {
        if (w->tail)
            w->tail->next = it;
        else
            w->head = it;
        w->tail = it;
        w->st.queued_lines++;
        w->st.queued_bytes += it->len;
        pthread_cond_signal(&w->cv);
    } else {
        w->st.lines_dropped++;
    }
    pthread_mutex_unlock(&w->mu);
    if (r < 0) {
        if (line)
            evbuffer_free(line);
        free(it);
    }
    return r;
}

void trace_writer_stats(struct trace_writer *w, struct trace_writer_stats *ret)
{
    pthread_mutex_lock(&w->mu);
    *ret = w->st;
    pthread_mutex_unlock(&w->mu);
}

void trace_writer_current_file(struct trace_writer *w, char *buf, size_t len)
{
    pthread_mutex_lock(&w->mu);
    snprintf(buf, len, "%s", w->cur_path ? w->cur_path : "");
    pthread_mutex_unlock(&w->mu);
}

void trace_writer_close(struct trace_writer *w, struct trace_writer_stats *ret_stats)
{
    if (!w)
        return;
    if (w->thread_started) {
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    if (ret_stats)
        *ret_stats = w->st;
    if (w->fd >= 0)
        close(w->fd);
    if (w->cv_init)
        pthread_cond_destroy(&w->cv);
    if (w->mu_init)
        pthread_mutex_destroy(&w->mu);
    for (size_t i = 0; i < w->n_redact; i++)
        free(w->redact[i]);
    free(w->redact);
    free(w->cur_path);
    free(w->dir);
    free(w->prefix);
    free(w);
}
