#include "itest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "wire/http.h"

unsigned itest_read_delay_ms;

/* A connection: plain, or TLS over the same socket. */
struct io {
    int fd;
    SSL *ssl; /* borrowed, NULL for plain */
};

static void die(const char *what)
{
    fprintf(stderr, "itest: %s\n", what);
    exit(99);
}

void itest_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void itest_spawn(struct itest_proc *p, const char *const *args)
{
    const char *bin = getenv("TOKENTAP");
    if (!bin)
        die("TOKENTAP is not set (run through meson test)");
    int fds[2];
    if (pipe(fds) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        const char *argv[64];
        size_t n = 0;
        argv[n++] = bin;
        for (size_t i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    p->pid = pid;
    p->out_fd = fds[0];
    p->port = 0;

    char line[256];
    size_t len = 0;
    usec_t deadline = clock_now() + 10 * USEC_PER_SEC;
    while (clock_now() < deadline && len < sizeof(line) - 1) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(fds[0], line + len, 1);
        if (n <= 0)
            break;
        if (line[len] == '\n') {
            line[len] = '\0';
            const char *colon = strrchr(line, ':');
            if (strncmp(line, "listening on ", 13) == 0 && colon) {
                p->port = atoi(colon + 1);
                return;
            }
            len = 0;
            continue;
        }
        len++;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    die("the process did not print 'listening on HOST:PORT' within 10 s");
}

bool itest_read_line_after(struct itest_proc *p, const char *prefix, char *buf, size_t len)
{
    char acc[1024];
    size_t got = 0;
    for (int tries = 0; tries < 100 && got < sizeof(acc) - 1; tries++) {
        struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(p->out_fd, acc + got, sizeof(acc) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        acc[got] = '\0';
        const char *at = strstr(acc, prefix);
        const char *nl = at ? strchr(at, '\n') : NULL;
        if (nl) {
            snprintf(buf, len, "%.*s", (int)(nl - at - strlen(prefix)), at + strlen(prefix));
            return true;
        }
    }
    return false;
}

int itest_stop(struct itest_proc *p)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    int status = 0;
    usec_t deadline = clock_now() + 10 * USEC_PER_SEC;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (clock_now() > deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            break;
        }
        itest_sleep_ms(10);
    }
    close(p->out_fd);
    p->pid = 0;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int itest_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (itest_read_delay_ms) {
        /* A slow client's buffer fills soon. */
        int small = 32 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static bool io_write_all(struct io *io, const char *data, size_t len)
{
    if (!io->ssl)
        return write_all(io->fd, data, len);
    while (len > 0) {
        int n = SSL_write(io->ssl, data, (int)len);
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Waits up to ms for bytes (TLS: decrypted ones may already wait). */
static bool io_wait(struct io *io, int ms)
{
    if (io->ssl && SSL_has_pending(io->ssl))
        return true;
    struct pollfd pfd = {.fd = io->fd, .events = POLLIN};
    return poll(&pfd, 1, ms) > 0;
}

/* recv() or SSL_read(): >0 bytes, 0 at the end, -1 on an error (errno). */
static ssize_t io_read(struct io *io, char *buf, size_t len)
{
    if (!io->ssl)
        return recv(io->fd, buf, len, 0);
    int n = SSL_read(io->ssl, buf, (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(io->ssl, n);
    ERR_clear_error();
    errno = e == SSL_ERROR_WANT_READ ? EINTR : ECONNRESET;
    return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

struct collect {
    struct itest_resp *r;
    size_t cap;
    usec_t now;
    size_t scan;  /* where to look for the next "\n\n" */
};

static int on_body(void *ctx, const char *data, size_t len)
{
    struct collect *c = ctx;
    struct itest_resp *r = c->r;
    if (r->body_len + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 65536;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        r->body = realloc(r->body, cap);
        if (!r->body)
            die("out of memory");
        c->cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    /* Count events completed by these bytes. */
    while (c->scan + 1 < r->body_len) {
        char *p = memmem(r->body + c->scan, r->body_len - c->scan, "\n\n", 2);
        if (!p)
            break;
        if (r->n_events < ITEST_MAX_EVENTS)
            r->event_time[r->n_events] = c->now;
        r->n_events++;
        c->scan = (size_t)(p - r->body) + 2;
    }
    return 0;
}

static void append_raw(struct itest_resp *r, size_t *cap, const char *data, size_t len)
{
    if (r->raw_len + len + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 65536;
        while (c < r->raw_len + len + 1)
            c *= 2;
        r->raw = realloc(r->raw, c);
        if (!r->raw)
            die("out of memory");
        *cap = c;
    }
    memcpy(r->raw + r->raw_len, data, len);
    r->raw_len += len;
    r->raw[r->raw_len] = '\0';
}

static bool request_io(struct io *io, const char *method, const char *path,
                       const char *extra_headers, const char *body, size_t body_len,
                       struct itest_resp *r)
{
    memset(r, 0, sizeof(*r));
    char head[4096];
    int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, path,
                     extra_headers ? extra_headers : "");
    if (body)
        n += snprintf(head + n, sizeof(head) - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    if (!io_write_all(io, head, (size_t)n) || (body && !io_write_all(io, body, body_len)))
        return false;
    r->t_sent = clock_now();
    if (itest_read_delay_ms)
        itest_sleep_ms(itest_read_delay_ms);

    struct http_limits limits = {.max_head_bytes = 65536, .max_body_bytes = 0};
    struct collect c = {.r = r};
    struct http_parser *p = http_parser_new(HTTP_KIND_RESPONSE, &limits, on_body, &c);
    bool head_done = false, is_head = strcmp(method, "HEAD") == 0;
    size_t raw_cap = 0;
    char buf[65536];
    usec_t deadline = clock_now() + 30 * USEC_PER_SEC;
    while (!r->complete && clock_now() < deadline) {
        if (!io_wait(io, 200))
            continue;
        ssize_t got = io_read(io, buf, sizeof(buf));
        c.now = clock_now();
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            r->closed = true;
            if (head_done && http_parser_finish(p) == HTTP_STEP_DONE)
                r->complete = true;
            break;
        }
        if (!r->t_first_byte)
            r->t_first_byte = c.now;
        size_t off = 0;
        while (off < (size_t)got && !r->complete) {
            size_t used = 0;
            int step = http_parser_feed(p, buf + off, (size_t)got - off, &used);
            if (step < 0) {
                r->closed = true;
                goto out;
            }
            if (!head_done) {
                size_t h = used < sizeof(r->head) - r->head_len ? used : sizeof(r->head) - r->head_len - 1;
                memcpy(r->head + r->head_len, buf + off, h);
                r->head_len += h;
            } else {
                append_raw(r, &raw_cap, buf + off, used);
                if (used)
                    r->n_reads++;
            }
            off += used;
            if (step == HTTP_STEP_HEAD) {
                const struct http_head *hh = http_parser_head(p);
                if (hh->status == 100) {
                    /* Interim response: the real one follows. */
                    http_parser_resume(p, true);
                    http_parser_reset(p);
                    r->head_len = 0;
                    continue;
                }
                head_done = true;
                r->status = hh->status;
                step = http_parser_resume(p, is_head);
            }
            if (step == HTTP_STEP_DONE)
                r->complete = true;
        }
    }
out:
    r->t_end = clock_now();
    http_parser_free(p);
    /* Never NULL, so a failed request fails checks instead of crashing them. */
    if (!r->body)
        r->body = calloc(1, 1);
    if (!r->raw)
        r->raw = calloc(1, 1);
    return true;
}

bool itest_request_fd(int fd, const char *method, const char *path, const char *extra_headers,
                      const char *body, size_t body_len, struct itest_resp *r)
{
    struct io io = {.fd = fd};
    return request_io(&io, method, path, extra_headers, body, body_len, r);
}

struct itest_tls {
    int fd;
    SSL_CTX *ctx; /* owned */
    SSL *ssl;     /* owned */
};

struct itest_tls *itest_tls_connect(int port, const char *ca_file, const char *host, char *err,
                                    size_t errlen)
{
    struct itest_tls *t = calloc(1, sizeof(*t));
    if (!t)
        die("out of memory");
    t->fd = itest_connect(port);
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->fd < 0 || !t->ctx)
        die("tls connect");
    SSL_CTX_set_verify(t->ctx, ca_file ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (ca_file && SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1)
        die("cannot load the test CA");
    t->ssl = SSL_new(t->ctx);
    SSL_set_fd(t->ssl, t->fd);
    unsigned char ip[16];
    if (inet_pton(AF_INET, host, ip) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
    } else {
        SSL_set_tlsext_host_name(t->ssl, host);
        SSL_set1_host(t->ssl, host);
    }
    if (SSL_connect(t->ssl) != 1) {
        unsigned long e = ERR_peek_last_error();
        long v = SSL_get_verify_result(t->ssl);
        snprintf(err, errlen, "%s",
                 v != X509_V_OK ? X509_verify_cert_error_string(v)
                 : e            ? ERR_reason_error_string(e)
                                : "handshake failed");
        ERR_clear_error();
        itest_tls_close(t);
        return NULL;
    }
    return t;
}

bool itest_tls_request(struct itest_tls *t, const char *method, const char *path,
                       const char *extra_headers, const char *body, size_t body_len,
                       struct itest_resp *r)
{
    struct io io = {.fd = t->fd, .ssl = t->ssl};
    return request_io(&io, method, path, extra_headers, body, body_len, r);
}

const char *itest_tls_peer_cn(struct itest_tls *t, char *buf, size_t len)
{
    X509 *cert = SSL_get1_peer_certificate(t->ssl);
    buf[0] = '\0';
    if (cert) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, (int)len);
        X509_free(cert);
    }
    return buf;
}

const char *itest_tls_version(struct itest_tls *t)
{
    return SSL_get_version(t->ssl);
}

void itest_tls_close(struct itest_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

bool itest_request_tls(int port, const char *ca_file, const char *method, const char *path,
                       const char *extra_headers, const char *body, size_t body_len,
                       struct itest_resp *r)
{
    char err[160];
    struct itest_tls *t = itest_tls_connect(port, ca_file, "127.0.0.1", err, sizeof(err));
    if (!t) {
        fprintf(stderr, "itest: TLS to port %d: %s\n", port, err);
        memset(r, 0, sizeof(*r));
        r->closed = true;
        r->body = calloc(1, 1);
        r->raw = calloc(1, 1);
        return false;
    }
    bool ok = itest_tls_request(t, method, path, extra_headers, body, body_len, r);
    itest_tls_close(t);
    return ok;
}

void itest_request(int port, const char *method, const char *path, const char *extra_headers,
                   const char *body, size_t body_len, struct itest_resp *r)
{
    int fd = itest_connect(port);
    if (fd < 0) {
        memset(r, 0, sizeof(*r));
        r->closed = true;
        r->body = calloc(1, 1);
        r->raw = calloc(1, 1);
        return;
    }
    itest_request_fd(fd, method, path, extra_headers, body, body_len, r);
    close(fd);
}

char *itest_raw(int port, const char *data, size_t len, size_t *ret_len)
{
    int fd = itest_connect(port);
    if (fd < 0)
        die("connect");
    write_all(fd, data, len);
    size_t cap = 65536, got = 0;
    char *out = malloc(cap);
    usec_t deadline = clock_now() + 5 * USEC_PER_SEC;
    while (clock_now() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if (got + 4096 > cap)
            out = realloc(out, cap *= 2);
        ssize_t n = recv(fd, out + got, cap - got - 1, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    out[got] = '\0';
    *ret_len = got;
    return out;
}

/* Runs `tokentap ARGS` in dir (NULL: here), ended after timeout_s. */
static int run_in(char *out, size_t outlen, const char *dir, unsigned timeout_s, const char *args)
{
    char cmd[4800];
    snprintf(cmd, sizeof(cmd), "%s%s%stimeout %u %s %s 2>&1 </dev/null", dir ? "cd " : "",
             dir ? dir : "", dir ? " && " : "", timeout_s, getenv("TOKENTAP"), args);
    FILE *f = popen(cmd, "r");
    size_t got = f ? fread(out, 1, outlen - 1, f) : 0;
    out[got] = '\0';
    int st = f ? pclose(f) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int itest_run(char *out, size_t outlen, const char *args)
{
    /* A command that should have failed but serves instead ends after 20 s. */
    return run_in(out, outlen, NULL, 20, args);
}

void itest_resp_free(struct itest_resp *r)
{
    free(r->raw);
    free(r->body);
    r->raw = r->body = NULL;
}

const char *itest_header(const struct itest_resp *r, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    const char *p = r->head, *end = r->head + r->head_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = (size_t)(eol - v);
            if (vlen && v[vlen - 1] == '\r')
                vlen--;
            snprintf(buf, len, "%.*s", (int)vlen, v);
            return buf;
        }
        p = eol + 1;
    }
    return NULL;
}

char *itest_read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "itest: cannot open %s\n", path);
        exit(99);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n)
        die("read");
    s[n] = '\0';
    fclose(f);
    *ret_len = (size_t)n;
    return s;
}

cJSON *itest_read_json(const char *path)
{
    size_t len;
    char *text = itest_read_file(path, &len);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

double itest_json_num(const cJSON *j, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = j;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, k);
    return cJSON_IsNumber(cur) ? cur->valuedouble : -1;
}

const char *itest_json_str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

const char *itest_fixture(const char *name, char *buf, size_t len)
{
    const char *dir = getenv("FIXTURES");
    snprintf(buf, len, "%s/%s", dir ? dir : "tests/fixtures", name);
    return buf;
}

long itest_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static void *peer_thread(void *arg)
{
    struct itest_peer *p = arg;
    while (!p->stop) {
        struct pollfd pfd = {.fd = p->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int fd = accept(p->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        p->accepted++;
        char buf[65536];
        size_t have = 0;
        while (!p->stop) {
            struct pollfd cfd = {.fd = fd, .events = POLLIN};
            if (poll(&cfd, 1, 50) <= 0)
                continue;
            ssize_t n = recv(fd, buf + have, sizeof(buf) - have - 1, 0);
            if (n <= 0)
                break;
            have += (size_t)n;
            buf[have] = '\0';
            if (!strstr(buf, "\r\n\r\n") && have < sizeof(buf) - 1)
                continue;
            have = 0;
            if (++p->requests > (int)p->delay_after)
                itest_sleep_ms(p->delay_ms);
            bool ok = write_all(fd, p->response, p->response_len);
            if (p->body_delay_ms)
                itest_sleep_ms(p->body_delay_ms);
            for (size_t i = 0; i < p->body_repeat && ok && !p->stop; i++)
                ok = write_all(fd, p->body, p->body_len);
            if (p->tail && ok) {
                itest_sleep_ms(p->tail_delay_ms);
                ok = write_all(fd, p->tail, p->tail_len);
            }
            if (p->close_after || !ok)
                break;
        }
        close(fd);
    }
    return NULL;
}

void itest_peer_start(struct itest_peer *p)
{
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(p->listen_fd, 16) < 0)
        die("peer bind");
    socklen_t len = sizeof(sa);
    getsockname(p->listen_fd, (struct sockaddr *)&sa, &len);
    p->port = ntohs(sa.sin_port);
    p->stop = 0;
    pthread_t *th = malloc(sizeof(*th));
    if (!th || pthread_create(th, NULL, peer_thread, p) != 0)
        die("peer thread");
    p->thread = th;
}

void itest_peer_stop(struct itest_peer *p)
{
    p->stop = 1;
    pthread_join(*(pthread_t *)p->thread, NULL);
    free(p->thread);
    close(p->listen_fd);
}

int itest_runf(char *out, size_t outlen, const char *fmt, ...)
{
    char args[4000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    return itest_run(out, outlen, args);
}

int itest_runf_bench(char *out, size_t outlen, const char *fmt, ...)
{
    char args[4000], dir[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(dir, sizeof(dir), "%s/..", getenv("FIXTURES") ? getenv("FIXTURES") : "tests/fixtures");
    int st = run_in(out, outlen, dir, 300, args);
    if (st != 0)
        fprintf(stderr, "tokentap %s (exit %d):\n%s\n", args, st, out);
    return st;
}
