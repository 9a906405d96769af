/* streamclient: the load and latency client of bench/overhead.
 *
 * Opens N connections to one 127.0.0.1 address (epoll, non-blocking), sends
 * one streaming chat request on each and reads the chunked SSE response.
 * `tokentap sim --stamp` puts a comment line ": t=<CLOCK_MONOTONIC µs>"
 * before every token event; for each stamped `data:` line the client
 * records (time of the read() that delivered the line's end) - stamp in a
 * histogram with 1 µs buckets below 100 ms. It can also sample CPU
 * (utime+stime from /proc/PID/stat) and RSS (/proc/PID/statm) of other
 * processes around and during the run, so that the window is exactly the
 * run. Results: one line of key=value pairs on stdout; diagnostics on
 * stderr. Exit status 0 only if every stream ended cleanly with the
 * expected number of token events. With --tls it speaks TLS (no
 * certificate check: loopback, and the client's cost is not measured).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define PREFIX_MAX 40    /* bytes of each SSE line we keep: enough for ": t=<20 digits>" */
#define HEAD_MAX 8192    /* response head limit */
#define EXACT_US 100000  /* 1 µs buckets below 100 ms ... */
#define COARSE_MS 600000 /* ... then 1 ms buckets up to 10 min */
#define MAX_WATCH 4
#define MAX_PIDS 8
#define SAMPLE_US 100000 /* RSS sampling period while all streams are open */

enum conn_state { C_WAIT, C_CONNECTING, C_HANDSHAKE, C_SENDING, C_HEAD, C_BODY, C_DONE, C_FAILED };
enum chunk_state {
    CH_SIZE,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER,
    CH_END
};

struct conn {
    int fd;
    SSL *ssl; /* --tls */
    enum conn_state state;
    enum chunk_state ch;
    uint64_t chunk_left;
    unsigned size_digits;
    bool trailer_line_empty;
    size_t sent; /* request bytes written */
    char *req;   /* owned until sent: this stream's request (--phase-grid), else NULL */
    char *head;  /* owned while C_HEAD */
    size_t head_len;
    char prefix[PREFIX_MAX]; /* start of the current SSE line */
    size_t plen;
    uint64_t stamp;
    bool has_stamp;
    bool got_done;
    uint32_t events;    /* stamped token events */
    uint32_t unstamped; /* data lines without a stamp (role line, final chunk) */
};

struct watch {
    char name[24];
    int pids[MAX_PIDS];
    int npids;
    uint64_t cpu0, cpu1;                             /* utime+stime, clock ticks */
    uint64_t sched0, sched1;                         /* /proc/PID/schedstat run time, ns */
    uint64_t runs0, runs1;                           /* /proc/PID/schedstat times run */
    uint64_t rss0, rss1, rss_open_max, rss_open_sum; /* KiB */
    unsigned rss_open_n;
};

static struct {
    struct sockaddr_in addr;
    char host[64];
    unsigned n;
    unsigned max_tokens;
    uint64_t ramp_us;
    uint64_t timeout_us;
    const char *path;
    const char *prompt;
    char *request;
    size_t request_len;
    size_t at_off;   /* --phase-grid: where the request's 20 first-token-time digits are */
    bool phase_grid;
    struct watch watch[MAX_WATCH];
    unsigned n_watch;
    bool quiet;
    const char *dump; /* --dump FILE: one line per event */
    const char *hist; /* --hist FILE: the latency histogram */
    SSL_CTX *tls;     /* --tls */
} opt = {.n = 1,
         .max_tokens = 100,
         .timeout_us = 120000000,
         .path = "/v1/chat/completions",
         .prompt = "bench: stream tokens"};

static struct conn *conns_base;
static uint32_t *hist_exact;  /* [EXACT_US] */
static uint32_t *hist_coarse; /* [COARSE_MS] */
static uint64_t n_lat, sum_lat, min_lat = UINT64_MAX, max_lat, n_negative;
static FILE *dump_f;
static uint64_t dump_t0;
static unsigned errors_logged;
static long page_kib;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void record(uint64_t arrival, uint64_t stamp, unsigned idx)
{
    if (dump_f)
        fprintf(dump_f, "%llu %lld %u\n", (unsigned long long)(stamp - dump_t0),
                (long long)arrival - (long long)stamp, idx);
    uint64_t d;
    if (arrival < stamp) {
        n_negative++;
        d = 0;
    } else {
        d = arrival - stamp;
    }
    if (d < EXACT_US)
        hist_exact[d]++;
    else if (d / 1000 < COARSE_MS)
        hist_coarse[d / 1000]++;
    else
        hist_coarse[COARSE_MS - 1]++;
    n_lat++;
    sum_lat += d;
    if (d < min_lat)
        min_lat = d;
    if (d > max_lat)
        max_lat = d;
}

/* The q-quantile (nearest rank) of the recorded latencies, in µs. */
static uint64_t quantile(double q)
{
    if (n_lat == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)n_lat);
    if (rank >= n_lat)
        rank = n_lat - 1;
    uint64_t seen = 0;
    for (uint64_t i = 0; i < EXACT_US; i++) {
        seen += hist_exact[i];
        if (seen > rank)
            return i;
    }
    for (uint64_t i = EXACT_US / 1000; i < COARSE_MS; i++) {
        seen += hist_coarse[i];
        if (seen > rank)
            return i * 1000 + 500;
    }
    return max_lat;
}

/* Closes the socket (which leaves the epoll set) and the TLS state. */
static void conn_close(struct conn *c)
{
    free(c->req);
    c->req = NULL;
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void conn_error(struct conn *c, unsigned idx, const char *what)
{
    if (errors_logged < 10) {
        fprintf(stderr, "streamclient: stream %u: %s (events %u)\n", idx, what, c->events);
        errors_logged++;
    }
    conn_close(c);
    free(c->head);
    c->head = NULL;
    c->state = C_FAILED;
}

/* --- SSE lines --- */

static void line_end(struct conn *c, uint64_t now)
{
    size_t n = c->plen;
    if (n > 0 && n < PREFIX_MAX && c->prefix[n - 1] == '\r')
        n--;
    if (n >= 4 && memcmp(c->prefix, ": t=", 4) == 0) {
        uint64_t v = 0;
        size_t i = 4;
        for (; i < n && c->prefix[i] >= '0' && c->prefix[i] <= '9'; i++)
            v = v * 10 + (uint64_t)(c->prefix[i] - '0');
        if (i > 4) {
            c->stamp = v;
            c->has_stamp = true;
        }
    } else if (n >= 5 && memcmp(c->prefix, "data:", 5) == 0) {
        if (n >= 12 && memcmp(c->prefix, "data: [DONE]", 12) == 0) {
            c->got_done = true;
        } else if (c->has_stamp) {
            record(now, c->stamp, (unsigned)(c - conns_base));
            c->events++;
            c->has_stamp = false;
        } else {
            c->unstamped++;
        }
    }
}

static void sse_feed(struct conn *c, const char *p, size_t n, uint64_t now)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (c->plen < PREFIX_MAX) {
            size_t k = PREFIX_MAX - c->plen;
            if (k > take)
                k = take;
            memcpy(c->prefix + c->plen, p, k);
            c->plen += k;
        }
        if (!nl)
            return;
        line_end(c, now);
        c->plen = 0;
        p = nl + 1;
        n -= take + 1;
    }
}

/* --- chunked framing; returns -1 on a framing error --- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int body_feed(struct conn *c, const char *p, size_t n, uint64_t now)
{
    size_t i = 0;
    while (i < n && c->ch != CH_END) {
        char ch = p[i];
        switch (c->ch) {
        case CH_SIZE: {
            int h = hexval(ch);
            if (h >= 0) {
                if (++c->size_digits > 15)
                    return -1;
                c->chunk_left = c->chunk_left * 16 + (uint64_t)h;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->ch = CH_EXT;
            } else if (ch == '\r') {
                c->ch = CH_SIZE_LF;
            } else if (ch == '\n') {
                goto size_done;
            } else {
                return -1;
            }
            i++;
            continue;
        }
        case CH_EXT:
            if (ch == '\n')
                goto size_done;
            i++;
            continue;
        case CH_SIZE_LF:
            if (ch != '\n')
                return -1;
            goto size_done;
        case CH_DATA: {
            size_t k = n - i;
            if (k > c->chunk_left)
                k = (size_t)c->chunk_left;
            sse_feed(c, p + i, k, now);
            c->chunk_left -= k;
            i += k;
            if (c->chunk_left == 0)
                c->ch = CH_DATA_CR;
            continue;
        }
        case CH_DATA_CR:
            if (ch == '\r')
                c->ch = CH_DATA_LF;
            else if (ch == '\n')
                c->ch = CH_SIZE;
            else
                return -1;
            i++;
            continue;
        case CH_DATA_LF:
            if (ch != '\n')
                return -1;
            c->ch = CH_SIZE;
            i++;
            continue;
        case CH_TRAILER:
            if (ch == '\n') {
                if (c->trailer_line_empty)
                    c->ch = CH_END;
                c->trailer_line_empty = true;
            } else if (ch != '\r') {
                c->trailer_line_empty = false;
            }
            i++;
            continue;
        case CH_END:
            break;
        }
        continue;
    size_done:
        i++;
        if (c->size_digits == 0)
            return -1;
        c->size_digits = 0;
        if (c->chunk_left == 0) {
            c->ch = CH_TRAILER;
            c->trailer_line_empty = true;
        } else {
            c->ch = CH_DATA;
        }
    }
    if (c->ch == CH_END && i < n)
        return -1; /* bytes after the response: we sent one request */
    return 0;
}

/* --- response head --- */

static bool head_has_chunked(const char *h, size_t len)
{
    const char *p = h;
    const char *end = h + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        size_t l = (size_t)(eol - p);
        if (l > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0) {
            for (size_t k = 18; k + 7 <= l; k++)
                if (strncasecmp(p + k, "chunked", 7) == 0)
                    return true;
        }
        p = eol + 1;
    }
    return false;
}

/* Returns 0 when more head bytes are needed, 1 when the body started
 * (rest fed), -1 on error (message in *err). */
static int head_feed(struct conn *c, const char *p, size_t n, uint64_t now, const char **err)
{
    if (!c->head) {
        c->head = malloc(HEAD_MAX);
        if (!c->head) {
            *err = "out of memory";
            return -1;
        }
        c->head_len = 0;
    }
    size_t k = n;
    if (k > HEAD_MAX - c->head_len)
        k = HEAD_MAX - c->head_len;
    memcpy(c->head + c->head_len, p, k);
    size_t old = c->head_len;
    c->head_len += k;
    /* Look for the blank line, starting a little before the new bytes. */
    size_t from = old > 3 ? old - 3 : 0;
    const char *h = c->head;
    size_t end = 0;
    for (size_t i = from; i + 3 < c->head_len; i++) {
        if (h[i] == '\r' && h[i + 1] == '\n' && h[i + 2] == '\r' && h[i + 3] == '\n') {
            end = i + 4;
            break;
        }
    }
    if (!end) {
        if (c->head_len == HEAD_MAX) {
            *err = "response head too large";
            return -1;
        }
        return 0;
    }
    int status = 0;
    if (c->head_len < 12 || strncmp(h, "HTTP/1.", 7) != 0 || sscanf(h + 9, "%3d", &status) != 1 ||
        status != 200) {
        *err = "response is not HTTP 200";
        if (errors_logged < 3)
            fprintf(stderr, "streamclient: head: %.*s\n", (int)(end > 200 ? 200 : end), h);
        return -1;
    }
    if (!head_has_chunked(h, end)) {
        *err = "response is not chunked";
        return -1;
    }
    /* The blank line ends inside p (it was not complete before): the
     * body starts at p + (end - old). */
    const char *rest = p + (end - old);
    size_t after = n - (end - old);
    free(c->head);
    c->head = NULL;
    c->state = C_BODY;
    c->ch = CH_SIZE;
    if (after && body_feed(c, rest, after, now) < 0) {
        *err = "malformed chunked framing";
        return -1;
    }
    return 1;
}

/* --- /proc sampling --- */

static bool read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t r = read(fd, buf, len - 1);
    close(fd);
    if (r <= 0)
        return false;
    buf[r] = '\0';
    return true;
}

static uint64_t pid_cpu_ticks(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (!read_file(path, buf, sizeof(buf)))
        return 0;
    const char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p += 2; /* field 3, state */
    unsigned long long ut = 0, st = 0;
    /* fields 3..13 skipped, then utime (14) and stime (15) */
    if (sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return ut + st;
}

/* Time on a CPU (ns) and how many times the process was put on one:
 * an event loop runs once per wake-up, so runs per event says how much
 * of its CPU goes to waking up. */
static void pid_sched(int pid, uint64_t *ret_ns, uint64_t *ret_runs)
{
    char path[64], buf[256];
    unsigned long long ns = 0, wait = 0, runs = 0;
    snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
    if (read_file(path, buf, sizeof(buf)))
        sscanf(buf, "%llu %llu %llu", &ns, &wait, &runs);
    *ret_ns = ns;
    *ret_runs = runs;
}

static uint64_t pid_rss_kib(int pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    if (!read_file(path, buf, sizeof(buf)))
        return 0;
    unsigned long long size = 0, res = 0;
    if (sscanf(buf, "%llu %llu", &size, &res) != 2)
        return 0;
    return res * (uint64_t)page_kib;
}

/* All CPUs' busy time (everything but idle and iowait), µs. */
static uint64_t system_busy_us(void)
{
    char buf[512];
    if (!read_file("/proc/stat", buf, sizeof(buf)))
        return 0;
    unsigned long long v[10] = {0};
    if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) < 8)
        return 0;
    /* user nice system idle iowait irq softirq steal (guest time is in user) */
    uint64_t busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return busy * 1000000ull / (uint64_t)sysconf(_SC_CLK_TCK);
}

static void watch_sample(struct watch *w, uint64_t *cpu, uint64_t *sched, uint64_t *runs,
                         uint64_t *rss)
{
    uint64_t c = 0, s = 0, n = 0, r = 0;
    for (int i = 0; i < w->npids; i++) {
        if (cpu)
            c += pid_cpu_ticks(w->pids[i]);
        if (sched) {
            uint64_t ns, k;
            pid_sched(w->pids[i], &ns, &k);
            s += ns;
            n += k;
        }
        if (rss)
            r += pid_rss_kib(w->pids[i]);
    }
    if (cpu)
        *cpu = c;
    if (sched) {
        *sched = s;
        *runs = n;
    }
    if (rss)
        *rss = r;
}

static int parse_watch(const char *arg)
{
    if (opt.n_watch == MAX_WATCH)
        return -1;
    struct watch *w = &opt.watch[opt.n_watch];
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(w->name))
        return -1;
    memcpy(w->name, arg, (size_t)(eq - arg));
    const char *p = eq + 1;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 4194304 || w->npids == MAX_PIDS)
            return -1;
        w->pids[w->npids++] = (int)v;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        p = end;
    }
    if (w->npids == 0)
        return -1;
    opt.n_watch++;
    return 0;
}

/* --- connections --- */

/* The I/O that waits: EPOLLIN or EPOLLOUT for this connection. */
static void conn_want(struct conn *c, int ep, unsigned idx, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = idx};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        conn_error(c, idx, strerror(errno));
}

/* --tls: goes on with the handshake; C_SENDING when it is done. */
static void conn_handshake(struct conn *c, int ep, unsigned idx)
{
    if (!c->ssl) {
        c->ssl = SSL_new(opt.tls);
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
            conn_error(c, idx, "cannot start TLS");
            return;
        }
        c->state = C_HANDSHAKE;
    }
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        c->state = C_SENDING;
        conn_want(c, ep, idx, EPOLLOUT);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        conn_want(c, ep, idx, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
        return;
    }
    unsigned long err = ERR_get_error();
    ERR_clear_error();
    conn_error(c, idx, err ? ERR_reason_error_string(err) : "TLS handshake failed");
}

/* start_at: when the stream was due to start (CLOCK_MONOTONIC µs). */
static int conn_start(struct conn *c, int ep, unsigned idx, uint64_t start_at)
{
    if (opt.phase_grid) {
        /* The sim puts the first token on the grid of decode steps from
         * start_at, so the stream's ticks keep the phase the client chose
         * however late its request gets through a proxy. */
        c->req = malloc(opt.request_len);
        if (!c->req) {
            c->fd = -1;
            conn_error(c, idx, "out of memory");
            return -1;
        }
        memcpy(c->req, opt.request, opt.request_len);
        char digits[21];
        snprintf(digits, sizeof(digits), "%020llu", (unsigned long long)start_at);
        memcpy(c->req + opt.at_off, digits, 20);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->fd = -1;
        conn_error(c, idx, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    int r = connect(fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr));
    if (r < 0 && errno != EINPROGRESS) {
        conn_error(c, idx, strerror(errno));
        return -1;
    }
    c->state = C_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = idx};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        conn_error(c, idx, strerror(errno));
        return -1;
    }
    return 0;
}

static void conn_send(struct conn *c, int ep, unsigned idx)
{
    const char *request = c->req ? c->req : opt.request;
    while (c->sent < opt.request_len) {
        ssize_t w;
        if (c->ssl) {
            int r = SSL_write(c->ssl, request + c->sent, (int)(opt.request_len - c->sent));
            w = r > 0 ? r : -1;
            int e = r > 0 ? 0 : SSL_get_error(c->ssl, r);
            errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : EPIPE;
        } else {
            w = write(c->fd, request + c->sent, opt.request_len - c->sent);
        }
        if (w < 0) {
            if (errno == EAGAIN)
                return; /* EPOLLOUT stays on */
            if (errno == EINTR)
                continue;
            conn_error(c, idx, strerror(errno));
            return;
        }
        c->sent += (size_t)w;
    }
    free(c->req);
    c->req = NULL;
    c->state = C_HEAD;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = idx};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        conn_error(c, idx, strerror(errno));
}

static char rbuf[65536];

/* Returns true when the connection reached a final state. */
static bool conn_read(struct conn *c, unsigned idx)
{
    for (;;) {
        ssize_t r;
        if (c->ssl) {
            int n = SSL_read(c->ssl, rbuf, (int)sizeof(rbuf));
            r = n;
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                ERR_clear_error();
                r = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
                errno = e == SSL_ERROR_WANT_READ ? EAGAIN : ECONNRESET;
            }
        } else {
            r = read(c->fd, rbuf, sizeof(rbuf));
        }
        uint64_t now = now_us();
        if (r < 0) {
            if (errno == EAGAIN)
                return false;
            if (errno == EINTR)
                continue;
            conn_error(c, idx, strerror(errno));
            return true;
        }
        if (r == 0) {
            conn_error(c, idx,
                       c->state == C_HEAD ? "closed before the response head"
                                          : "closed before the response ended");
            return true;
        }
        const char *err = NULL;
        if (c->state == C_HEAD) {
            if (head_feed(c, rbuf, (size_t)r, now, &err) < 0) {
                conn_error(c, idx, err);
                return true;
            }
        } else if (body_feed(c, rbuf, (size_t)r, now) < 0) {
            conn_error(c, idx, "malformed chunked framing");
            return true;
        }
        if (c->state == C_BODY && c->ch == CH_END) {
            conn_close(c); /* also removes it from the epoll set */
            c->state = C_DONE;
            return true;
        }
        /* Level-triggered: come back when there is more. TLS reads one
         * record at a time; go on until it would block. */
        if (!c->ssl && (size_t)r < sizeof(rbuf))
            return false;
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: streamclient --connect 127.0.0.1:PORT [-n STREAMS] [-m MAX_TOKENS] [OPTIONS]\n"
            "\n"
            "Opens STREAMS connections, sends one streaming chat request on each and\n"
            "measures, for every token event stamped by `tokentap sim --stamp`, the\n"
            "arrival time minus the stamp. Prints one line of key=value results.\n"
            "\n"
            "  -c, --connect HOST:PORT  target (127.0.0.0/8 only)\n"
            "  -n, --streams N          concurrent streams (default 1)\n"
            "  -m, --max-tokens M       max_tokens of each request (default 100)\n"
            "      --ramp-ms MS         spread the stream starts over MS milliseconds (default 0)\n"
            "      --phase-grid         ask `tokentap sim` (header X-Sim-First-Token-At) to put each\n"
            "                           stream's tokens on a grid from the time it was due to\n"
            "                           start, so the ticks do not depend on the path's delays\n"
            "      --timeout S          give up after S seconds (default 120)\n"
            "      --path PATH          request path (default /v1/chat/completions)\n"
            "  -w, --watch NAME=PID[,PID...]  sample CPU (utime+stime) of these processes\n"
            "                           before and after the run, and RSS at rest and while all\n"
            "                           streams are open (up to %d groups)\n"
            "      --dump FILE          write one line per token event: stamp (µs after start),\n"
            "                           latency (µs), stream index\n"
            "      --hist FILE          write the latency histogram: lines 'µs count' (1 µs\n"
            "                           buckets below 100 ms, then 1 ms buckets at their middle)\n"
            "      --tls                speak TLS (no certificate check)\n"
            "  -q, --quiet              no progress on stderr\n",
            MAX_WATCH);
}

static int parse_target(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(opt.host))
        return -1;
    memcpy(opt.host, s, (size_t)(colon - s));
    opt.host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return -1;
    opt.addr.sin_family = AF_INET;
    opt.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, opt.host, &opt.addr.sin_addr) != 1)
        return -1;
    /* Loopback only: this is a load generator. */
    if ((ntohl(opt.addr.sin_addr.s_addr) >> 24) != 127)
        return -1;
    return 0;
}

static int parse_uint(const char *s, unsigned long long lo, unsigned long long hi,
                      unsigned long long *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *ret = v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"streams", required_argument, NULL, 'n'},
        {"max-tokens", required_argument, NULL, 'm'},
        {"ramp-ms", required_argument, NULL, 'R'},
        {"timeout", required_argument, NULL, 'T'},
        {"path", required_argument, NULL, 'P'},
        {"watch", required_argument, NULL, 'w'},
        {"quiet", no_argument, NULL, 'q'},
        {"dump", required_argument, NULL, 'D'},
        {"hist", required_argument, NULL, 'H'},
        {"tls", no_argument, NULL, 'S'},
        {"phase-grid", no_argument, NULL, 'G'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool have_target = false;
    int o;
    unsigned long long v;
    while ((o = getopt_long(argc, argv, "c:n:m:w:qh", longopts, NULL)) != -1) {
        switch (o) {
        case 'c':
            if (parse_target(optarg) < 0) {
                fprintf(stderr, "streamclient: --connect: expected 127.x.x.x:PORT, got '%s'\n",
                        optarg);
                return 2;
            }
            have_target = true;
            break;
        case 'n':
            if (parse_uint(optarg, 1, 100000, &v) < 0)
                goto bad;
            opt.n = (unsigned)v;
            break;
        case 'm':
            if (parse_uint(optarg, 1, 100000000, &v) < 0)
                goto bad;
            opt.max_tokens = (unsigned)v;
            break;
        case 'R':
            if (parse_uint(optarg, 0, 3600000, &v) < 0)
                goto bad;
            opt.ramp_us = v * 1000;
            break;
        case 'T':
            if (parse_uint(optarg, 1, 86400, &v) < 0)
                goto bad;
            opt.timeout_us = v * 1000000;
            break;
        case 'P':
            opt.path = optarg;
            break;
        case 'w':
            if (parse_watch(optarg) < 0) {
                fprintf(stderr, "streamclient: --watch: expected NAME=PID[,PID...], got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'q':
            opt.quiet = true;
            break;
        case 'D':
            opt.dump = optarg;
            break;
        case 'H':
            opt.hist = optarg;
            break;
        case 'S':
            opt.tls = SSL_CTX_new(TLS_client_method());
            if (!opt.tls) {
                fprintf(stderr, "streamclient: cannot create a TLS context\n");
                return 1;
            }
            SSL_CTX_set_verify(opt.tls, SSL_VERIFY_NONE, NULL);
            break;
        case 'G':
            opt.phase_grid = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!have_target || optind != argc) {
        usage(stderr);
        return 2;
    }
    page_kib = sysconf(_SC_PAGESIZE) / 1024;

    /* Enough descriptors for every stream. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < opt.n + 64) {
        rl.rlim_cur =
            rl.rlim_max == RLIM_INFINITY || rl.rlim_max > opt.n + 64 ? opt.n + 64 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < opt.n + 64) {
            fprintf(stderr,
                    "streamclient: RLIMIT_NOFILE hard limit %llu is too low for %u streams\n",
                    (unsigned long long)rl.rlim_max, opt.n);
            return 1;
        }
    }

    char body[512];
    int bl = snprintf(
        body, sizeof(body),
        "{\"model\":\"tokentap-sim\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],"
        "\"stream\":true,\"max_tokens\":%u}",
        opt.prompt, opt.max_tokens);
    /* --phase-grid: 20 digits that conn_start fills in per stream. */
    static const char at_header[] = "X-Sim-First-Token-At: ";
    char req[1024];
    int rlen = snprintf(req, sizeof(req),
                        "POST %s HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: tokentap-streamclient\r\n"
                        "Accept: text/event-stream\r\nContent-Type: application/json\r\n"
                        "%s%s%sContent-Length: %d\r\n\r\n%s",
                        opt.path, opt.host, (unsigned)ntohs(opt.addr.sin_port),
                        opt.phase_grid ? at_header : "",
                        opt.phase_grid ? "00000000000000000000" : "", opt.phase_grid ? "\r\n" : "",
                        bl, body);
    if (bl < 0 || (size_t)bl >= sizeof(body) || rlen < 0 || (size_t)rlen >= sizeof(req)) {
        fprintf(stderr, "streamclient: request too long\n");
        return 2;
    }
    opt.request = req;
    opt.request_len = (size_t)rlen;
    if (opt.phase_grid)
        opt.at_off = (size_t)(strstr(req, at_header) - req) + sizeof(at_header) - 1;

    hist_exact = calloc(EXACT_US, sizeof(*hist_exact));
    hist_coarse = calloc(COARSE_MS, sizeof(*hist_coarse));
    struct conn *conns = calloc(opt.n, sizeof(*conns));
    struct epoll_event *evs = calloc(1024, sizeof(*evs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!hist_exact || !hist_coarse || !conns || !evs || ep < 0) {
        fprintf(stderr, "streamclient: out of memory\n");
        return 1;
    }
    conns_base = conns;
    if (opt.dump) {
        dump_f = fopen(opt.dump, "w");
        if (!dump_f) {
            fprintf(stderr, "streamclient: --dump %s: %s\n", opt.dump, strerror(errno));
            return 1;
        }
    }
    for (unsigned i = 0; i < opt.n; i++) {
        conns[i].fd = -1;
        conns[i].state = C_WAIT;
    }

    for (unsigned i = 0; i < opt.n_watch; i++) {
        struct watch *w = &opt.watch[i];
        watch_sample(w, &w->cpu0, &w->sched0, &w->runs0, &w->rss0);
    }
    struct rusage ru0, ru1;
    uint64_t busy0 = system_busy_us();
    getrusage(RUSAGE_SELF, &ru0);

    uint64_t t0 = now_us();
    dump_t0 = t0;
    uint64_t deadline = t0 + opt.timeout_us;
    unsigned started = 0, finished = 0, with_first = 0;
    uint64_t next_sample = 0;
    uint64_t all_open_at = 0;
    bool timed_out = false;

    while (finished < opt.n) {
        uint64_t now = now_us();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        /* Start the streams whose time has come. */
        while (started < opt.n && (opt.ramp_us == 0 || now >= t0 + opt.ramp_us * started / opt.n)) {
            if (conn_start(&conns[started], ep, started, t0 + opt.ramp_us * started / opt.n) < 0)
                finished++;
            started++;
        }
        /* RSS while every stream is open and has delivered a token. */
        if (opt.n_watch && with_first == opt.n && finished == 0 && now >= next_sample) {
            if (!all_open_at)
                all_open_at = now;
            for (unsigned i = 0; i < opt.n_watch; i++) {
                struct watch *w = &opt.watch[i];
                uint64_t rss;
                watch_sample(w, NULL, NULL, NULL, &rss);
                if (rss > w->rss_open_max)
                    w->rss_open_max = rss;
                w->rss_open_sum += rss;
                w->rss_open_n++;
            }
            next_sample = now + SAMPLE_US;
        }
        uint64_t wake = deadline;
        if (started < opt.n) {
            uint64_t t = t0 + opt.ramp_us * started / opt.n;
            if (t < wake)
                wake = t;
        }
        if (opt.n_watch && with_first == opt.n && finished == 0 && next_sample < wake)
            wake = next_sample;
        int timeout_ms = wake > now ? (int)((wake - now + 999) / 1000) : 0;
        int k = epoll_wait(ep, evs, 1024, timeout_ms);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            perror("streamclient: epoll_wait");
            return 1;
        }
        for (int e = 0; e < k; e++) {
            unsigned idx = evs[e].data.u32;
            struct conn *c = &conns[idx];
            if (c->state == C_DONE || c->state == C_FAILED)
                continue;
            if (c->state == C_CONNECTING) {
                int soerr = 0;
                socklen_t sl = sizeof(soerr);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                if (soerr) {
                    conn_error(c, idx, strerror(soerr));
                    finished++;
                    continue;
                }
                c->state = opt.tls ? C_HANDSHAKE : C_SENDING;
            }
            if (c->state == C_HANDSHAKE) {
                conn_handshake(c, ep, idx);
                if (c->state == C_FAILED)
                    finished++;
                if (c->state != C_SENDING)
                    continue;
            }
            if (c->state == C_SENDING) {
                conn_send(c, ep, idx);
                if (c->state == C_FAILED)
                    finished++;
                continue;
            }
            uint32_t before = c->events;
            bool end = conn_read(c, idx);
            if (before == 0 && c->events > 0)
                with_first++;
            if (end)
                finished++;
        }
    }
    uint64_t t1 = now_us();
    getrusage(RUSAGE_SELF, &ru1);
    uint64_t busy1 = system_busy_us();
    for (unsigned i = 0; i < opt.n_watch; i++) {
        struct watch *w = &opt.watch[i];
        watch_sample(w, &w->cpu1, &w->sched1, &w->runs1, &w->rss1);
    }

    unsigned ok = 0, failed = 0, short_streams = 0, no_done = 0;
    uint64_t events = 0, unstamped = 0;
    for (unsigned i = 0; i < opt.n; i++) {
        struct conn *c = &conns[i];
        events += c->events;
        unstamped += c->unstamped;
        if (c->state == C_DONE) {
            if (c->events != opt.max_tokens)
                short_streams++;
            else if (!c->got_done)
                no_done++;
            else
                ok++;
        } else {
            failed++;
            conn_close(c);
        }
    }
    double cpu_us = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 +
                    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                    (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 +
                    (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
    long tck = sysconf(_SC_CLK_TCK);

    printf("streams=%u max_tokens=%u ok=%u failed=%u short=%u no_done=%u timed_out=%d "
           "events=%llu expected=%llu unstamped=%llu negative=%llu wall_us=%llu "
           "min=%llu p50=%llu p90=%llu p99=%llu p999=%llu max=%llu mean=%.1f client_cpu_us=%.0f "
           "all_open_after_us=%llu system_busy_us=%llu ncpu=%ld",
           opt.n, opt.max_tokens, ok, failed, short_streams, no_done, timed_out ? 1 : 0,
           (unsigned long long)events, (unsigned long long)opt.n * opt.max_tokens,
           (unsigned long long)unstamped, (unsigned long long)n_negative,
           (unsigned long long)(t1 - t0), (unsigned long long)(n_lat ? min_lat : 0),
           (unsigned long long)quantile(0.50), (unsigned long long)quantile(0.90),
           (unsigned long long)quantile(0.99), (unsigned long long)quantile(0.999),
           (unsigned long long)max_lat, n_lat ? (double)sum_lat / (double)n_lat : 0.0, cpu_us,
           (unsigned long long)(all_open_at ? all_open_at - t0 : 0),
           (unsigned long long)(busy1 - busy0), sysconf(_SC_NPROCESSORS_ONLN));
    for (unsigned i = 0; i < opt.n_watch; i++) {
        struct watch *w = &opt.watch[i];
        printf(" %s_cpu_us=%llu %s_sched_us=%llu %s_runs=%llu %s_rss_rest_kib=%llu "
               "%s_rss_open_kib=%llu %s_rss_open_samples=%u %s_rss_after_kib=%llu",
               w->name, (unsigned long long)((w->cpu1 - w->cpu0) * 1000000ull / (uint64_t)tck),
               w->name, (unsigned long long)((w->sched1 - w->sched0) / 1000ull), w->name,
               (unsigned long long)(w->runs1 - w->runs0), w->name,
               (unsigned long long)w->rss0, w->name, (unsigned long long)w->rss_open_max, w->name,
               w->rss_open_n, w->name, (unsigned long long)w->rss1);
    }
    printf("\n");
    fflush(stdout);
    if (!opt.quiet && (failed || short_streams || no_done || timed_out))
        fprintf(stderr,
                "streamclient: %u of %u streams ok (%u failed, %u short, %u without [DONE]%s)\n",
                ok, opt.n, failed, short_streams, no_done, timed_out ? ", timed out" : "");
    if (dump_f)
        fclose(dump_f);
    if (opt.hist) {
        FILE *h = fopen(opt.hist, "w");
        if (!h) {
            fprintf(stderr, "streamclient: --hist %s: %s\n", opt.hist, strerror(errno));
            return 1;
        }
        for (uint64_t i = 0; i < EXACT_US; i++)
            if (hist_exact[i])
                fprintf(h, "%llu %u\n", (unsigned long long)i, hist_exact[i]);
        for (uint64_t i = EXACT_US / 1000; i < COARSE_MS; i++)
            if (hist_coarse[i])
                fprintf(h, "%llu %u\n", (unsigned long long)(i * 1000 + 500), hist_coarse[i]);
        fclose(h);
    }
    free(conns);
    free(evs);
    free(hist_exact);
    free(hist_coarse);
    close(ep);
    return ok == opt.n ? 0 : 1;
bad:
    fprintf(stderr, "streamclient: bad value '%s' for -%c\n", optarg, o);
    return 2;
}
