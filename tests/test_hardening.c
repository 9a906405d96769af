/* Integration tests for `tokentap serve` against misbehaving peers (issue
 * 13): upstreams that split their head or answer late, clients that
 * trickle, disks that fail. Real processes on 127.0.0.1; the upstream is
 * a scripted raw peer (itest_peer) or the sim. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "itest.h"

static void start_serve(struct itest_proc *serve, int upstream_port, const char *const *extra)
{
    static char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", upstream_port);
    const char *args[40] = {"serve", "--listen", "127.0.0.1:0", "--upstream", url};
    size_t n = 5;
    for (size_t i = 0; extra && extra[i] && n < 39; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    itest_spawn(serve, args);
}

static size_t count(const char *hay, size_t len, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (const char *p = hay; hay && (p = memmem(p, len - (size_t)(p - hay), needle, nl)); p += nl)
        n++;
    return n;
}

/* A head that arrives in two writes, 200 ms apart: the client gets one
 * head (ours) and the body, nothing of the upstream's raw head. An 80 KB
 * head is a clean 502. */
static void test_split_upstream_head(void)
{
    struct itest_peer peer = {
        .response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
        .tail = "Content-Length: 2\r\n\r\nok",
        .tail_delay_ms = 200,
    };
    peer.response_len = strlen(peer.response);
    peer.tail_len = strlen(peer.tail);
    itest_peer_start(&peer);
    struct itest_proc serve;
    start_serve(&serve, peer.port, NULL);
    for (int round = 0; round < 2; round++) { /* a new and a reused upstream connection */
        struct itest_resp r;
        itest_request(serve.port, "GET", "/v1/models", NULL, NULL, 0, &r);
        CHECK_INT(r.status, 200);
        CHECK(r.complete);
        CHECK_MEM(r.body, r.body_len, "ok", 2);
        CHECK_INT(count(r.head, r.head_len, "HTTP/1.1"), 1);
        itest_resp_free(&r);
    }
    itest_stop(&serve);
    itest_peer_stop(&peer);

    /* 80 KB of headers (over the 64 KiB response head limit). */
    static const char line[] = "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                               "aaaaaaaaaaaaaaaaaaaa\r\n";
    struct itest_peer big = {
        .response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
        .body = line,
        .body_len = sizeof(line) - 1,
        .body_repeat = 80 * 1024 / (sizeof(line) - 1),
        .tail = "Content-Length: 2\r\n\r\nok",
        .tail_delay_ms = 100,
        .close_after = true,
    };
    big.response_len = strlen(big.response);
    big.tail_len = strlen(big.tail);
    itest_peer_start(&big);
    start_serve(&serve, big.port, NULL);
    struct itest_resp r;
    itest_request(serve.port, "GET", "/v1/models", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 502);
    CHECK(r.complete);
    CHECK_INT(count(r.head, r.head_len, "HTTP/1.1"), 1);
    CHECK(r.body && strstr(r.body, "malformed") != NULL);
    CHECK(r.body && !memmem(r.body, r.body_len, "X-Pad", 5));
    CHECK(r.raw_len < 1024);
    itest_resp_free(&r);
    itest_stop(&serve);
    itest_peer_stop(&big);
}

/* --response-timeout on a reused upstream connection: one 504, and the
 * upstream saw the request once (it was sent again on a fresh connection,
 * so the server ran the generation twice). */
static void test_no_replay_after_timeout(void)
{
    struct itest_peer peer = {
        .response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        .delay_ms = 2000,
        .delay_after = 1, /* the first request makes the connection a reused one */
    };
    peer.response_len = strlen(peer.response);
    itest_peer_start(&peer);
    struct itest_proc serve;
    const char *extra[] = {"--response-timeout", "1s", NULL};
    start_serve(&serve, peer.port, extra);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    struct itest_resp r;
    itest_request(serve.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
    CHECK_INT(r.status, 200);
    itest_resp_free(&r);
    itest_request(serve.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
    CHECK_INT(r.status, 504);
    itest_resp_free(&r);
    /* A request sent again would reach the peer once it is done sleeping
     * on the first (2 s after it came): wait past that. */
    itest_sleep_ms(2500);
    CHECK_INT(peer.requests, 2);
    itest_stop(&serve);
    itest_peer_stop(&peer);
}

static void send_str(int fd, const char *s)
{
    (void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* Reads what the server sends until it closes or ms pass; returns the
 * bytes (NUL-terminated, at most cap - 1) and whether it closed. */
static bool read_until_close(int fd, unsigned ms, char *buf, size_t cap)
{
    size_t got = 0;
    usec_t deadline = clock_now() + (usec_t)ms * 1000;
    bool closed = false;
    while (clock_now() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0) {
            closed = true;
            break;
        }
        got += (size_t)n;
        if (got == cap - 1)
            break;
    }
    buf[got] = '\0';
    return closed;
}

/* The request log of a serve process (GET /tokentap/requests). */
static char *requests_json(int port)
{
    struct itest_resp r;
    itest_request(port, "GET", "/tokentap/requests?limit=10", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    char *body = r.body;
    r.body = NULL;
    itest_resp_free(&r);
    return body ? body : strdup("");
}

/* A head that trickles in one byte every 100 ms is cut by
 * --header-timeout (408), although each byte restarts --idle-timeout. */
static void test_header_deadline(void)
{
    struct itest_peer peer = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
    peer.response_len = strlen(peer.response);
    itest_peer_start(&peer);
    struct itest_proc serve;
    const char *extra[] = {"--header-timeout", "1s", "--idle-timeout", "30s", NULL};
    start_serve(&serve, peer.port, extra);
    int fd = itest_connect(serve.port);
    CHECK(fd >= 0);
    send_str(fd, "GET /v1/models HTTP/1.1\r\n");
    usec_t t0 = clock_now();
    char buf[4096] = "";
    bool closed = false;
    /* Bytes until 0.8 s (each restarts the 30 s idle timeout), then quiet:
     * a byte crossing the 408 would make the kernel reset the connection
     * and drop the answer before it is read. */
    for (int i = 0; i < 40 && !closed; i++) { /* up to 4 s */
        if (i < 8)
            send_str(fd, "X");
        closed = read_until_close(fd, 100, buf, sizeof(buf)) || buf[0];
    }
    usec_t took = clock_now() - t0;
    CHECK(closed);
    CHECK(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
    CHECK(took < 3 * USEC_PER_SEC); /* the deadline is 1 s; without it, never */
    close(fd);
    CHECK_INT(peer.requests, 0);
    /* A normal request still passes. */
    struct itest_resp r;
    itest_request(serve.port, "GET", "/v1/models", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    itest_resp_free(&r);
    itest_stop(&serve);
    itest_peer_stop(&peer);
}

/* A body that stalls: 408 after --body-timeout on a buffered route (the
 * upstream never hears of it) and on a streamed route (the head went
 * upstream, which has not answered); both are recorded. */
static void test_body_deadline(void)
{
    struct itest_peer peer = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
                              .delay_ms = 5000};
    peer.response_len = strlen(peer.response);
    itest_peer_start(&peer);
    struct itest_proc serve;
    const char *extra[] = {"--body-timeout", "1s", NULL};
    start_serve(&serve, peer.port, extra);
    static const char *const heads[] = {
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n{\"messages\":",
        "POST /other HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789",
    };
    for (size_t i = 0; i < 2; i++) {
        int fd = itest_connect(serve.port);
        usec_t t0 = clock_now();
        send_str(fd, heads[i]);
        char buf[4096];
        bool closed = read_until_close(fd, 4000, buf, sizeof(buf));
        CHECK(closed);
        CHECK(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
        CHECK(strstr(buf, "body-timeout") != NULL);
        CHECK(clock_now() - t0 < 3 * USEC_PER_SEC);
        close(fd);
    }
    char *log = requests_json(serve.port);
    CHECK_INT(count(log, strlen(log), "\"status\":408"), 2);
    CHECK(strstr(log, "\"route\":\"/other\"") != NULL);
    free(log);
    itest_stop(&serve);
    itest_peer_stop(&peer);
}

/* At --max-connections, idle keep-alive connections and then slow heads
 * give way to a new connection; busy ones do not. */
static void test_connection_cap(void)
{
    struct itest_peer peer = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
    peer.response_len = strlen(peer.response);
    itest_peer_start(&peer);
    struct itest_proc serve;
    const char *extra[] = {"--max-connections", "4", NULL};
    start_serve(&serve, peer.port, extra);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = itest_connect(serve.port);
        struct itest_resp r;
        CHECK(itest_request_fd(fds[i], "GET", "/v1/models", NULL, NULL, 0, &r));
        CHECK_INT(r.status, 200);
        itest_resp_free(&r);
    }
    /* Four idle keep-alive connections hold the cap. */
    struct itest_resp r;
    itest_request(serve.port, "GET", "/v1/models", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK(r.t_end - r.t_sent < 2 * USEC_PER_SEC);
    itest_resp_free(&r);
    /* The oldest idle one gave way. */
    char buf[256];
    CHECK(read_until_close(fds[0], 1000, buf, sizeof(buf)));
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    itest_sleep_ms(100);
    /* Four slow heads hold the cap. */
    for (int i = 0; i < 4; i++) {
        fds[i] = itest_connect(serve.port);
        send_str(fds[i], "GET /v1/models HTTP/1.1\r\nX-Slow: ");
    }
    itest_sleep_ms(100);
    itest_request(serve.port, "GET", "/v1/models", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK(r.t_end - r.t_sent < 2 * USEC_PER_SEC);
    itest_resp_free(&r);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    itest_stop(&serve);
    itest_peer_stop(&peer);
}

/* A body error after the head went upstream (a bad chunk size; a chunked
 * body over --max-body) is answered (400, 413) and recorded. */
static void test_body_error_answered(void)
{
    struct itest_peer peer = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
                              .delay_ms = 3000};
    peer.response_len = strlen(peer.response);
    itest_peer_start(&peer);
    struct itest_proc serve;
    const char *extra[] = {"--max-body", "100", NULL};
    start_serve(&serve, peer.port, extra);
    size_t len;
    const char bad[] = "POST /other HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n";
    char *out = itest_raw(serve.port, bad, sizeof(bad) - 1, &len);
    CHECK(strncmp(out, "HTTP/1.1 400 ", 13) == 0);
    free(out);
    char big[512];
    snprintf(big, sizeof(big),
             "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             "40\r\n%064d\r\n40\r\n%064d\r\n0\r\n\r\n", 0, 0);
    out = itest_raw(serve.port, big, strlen(big), &len);
    CHECK(strncmp(out, "HTTP/1.1 413 ", 13) == 0);
    free(out);
    char *log = requests_json(serve.port);
    CHECK(strstr(log, "\"status\":400") != NULL);
    CHECK(strstr(log, "\"status\":413") != NULL);
    free(log);
    itest_stop(&serve);
    itest_peer_stop(&peer);
}

/* Requests that llhttp accepts and a proxy must not pass on; and an
 * Upgrade request (curl --http2 over cleartext) that must not leave the
 * connection stuck. */
static void test_bad_heads_and_upgrade(void)
{
    struct itest_peer peer = {.response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
    peer.response_len = strlen(peer.response);
    itest_peer_start(&peer);
    struct itest_proc serve;
    start_serve(&serve, peer.port, NULL);
    static const struct {
        const char *req;
        const char *status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nFoo Bar: x\r\n\r\n", "400"},
        {"GET / HTTP/1.1\r\n: x\r\n\r\n", "400"},
        {"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "501"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *out = itest_raw(serve.port, cases[i].req, strlen(cases[i].req), &len);
        CHECK(len > 13 && strncmp(out + 9, cases[i].status, 3) == 0);
        if (len <= 13 || strncmp(out + 9, cases[i].status, 3) != 0)
            fprintf(stderr, "case %zu: %.80s\n", i, out);
        free(out);
    }
    CHECK_INT(peer.requests, 0);

    /* A Content-Length past INT64_MAX read as "no body" sent the head on
     * bodiless and the next bytes, a request of the client's making,
     * unframed after it (fuzz_http found it). */
    static const char smuggle[] = "POST /other HTTP/1.1\r\nContent-Length: 9223372036854775809\r\n\r\n"
                                  "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t slen;
    char *sout = itest_raw(serve.port, smuggle, sizeof(smuggle) - 1, &slen);
    CHECK(slen > 13 && strncmp(sout, "HTTP/1.1 413 ", 13) == 0);
    free(sout);
    CHECK_INT(peer.requests, 0);

    int fd = itest_connect(serve.port);
    for (int i = 0; i < 3; i++) {
        struct itest_resp r;
        CHECK(itest_request_fd(fd, "GET", "/v1/models",
                               "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                               "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
                               NULL, 0, &r));
        CHECK_INT(r.status, 200);
        CHECK(r.complete && !r.closed);
        itest_resp_free(&r);
    }
    close(fd);
    CHECK_INT(peer.requests, 3);
    itest_stop(&serve);
    itest_peer_stop(&peer);
}

/* One upstream read holds a valid event and then bad chunk framing: the
 * event reaches the client (and the tap), then the stream is cut. */
static void test_valid_event_before_bad_framing(void)
{
    static const char ev[] = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";
    char resp[512];
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
             "%zx\r\n%s\r\nzz\r\n",
             sizeof(ev) - 1, ev);
    struct itest_peer peer = {.response = resp, .response_len = strlen(resp), .close_after = true};
    itest_peer_start(&peer);
    struct itest_proc serve;
    start_serve(&serve, peer.port, NULL);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}";
    struct itest_resp r;
    itest_request(serve.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
    CHECK_INT(r.status, 200);
    CHECK(!r.complete);
    CHECK_MEM(r.body, r.body_len, ev, sizeof(ev) - 1);
    itest_resp_free(&r);
    char *log = requests_json(serve.port);
    CHECK(strstr(log, "\"token_events\":1,") != NULL);
    CHECK(strstr(log, "\"outcome\":\"truncated\"") != NULL);
    free(log);
    itest_stop(&serve);
    itest_peer_stop(&peer);
}

/* --stream-timeout bounds the wait for the next bytes, not the stream:
 * 30 tokens 50 ms apart (1.5 s) under a 300 ms timeout arrive whole, and
 * so does a second request on the kept-alive connection. */
static void test_stream_outlives_timeout(void)
{
    const char *sargs[] = {"sim", "--listen", "127.0.0.1:0", "--decode-tps", "20", NULL};
    struct itest_proc sim, serve;
    itest_spawn(&sim, sargs);
    const char *extra[] = {"--stream-timeout", "300ms", "--response-timeout", "300ms", NULL};
    start_serve(&serve, sim.port, extra);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true,"
                       "\"max_tokens\":30}";
    for (int i = 0; i < 2; i++) {
        struct itest_resp r;
        itest_request(serve.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
        CHECK_INT(r.status, 200);
        CHECK(r.complete);
        CHECK(r.body && strstr(r.body, "data: [DONE]") != NULL);
        CHECK(r.body && strstr(r.body, "\"finish_reason\":\"length\"") != NULL);
        itest_resp_free(&r);
    }
    char *log = requests_json(serve.port);
    CHECK(strstr(log, "stalled") == NULL);
    CHECK_INT(count(log, strlen(log), "\"outcome\":\"ok\""), 2);
    free(log);
    itest_stop(&serve);
    itest_stop(&sim);
}

/* A stream cut by --stream-timeout says so (not "waiting for the
 * response"); one cut by the drain timeout at shutdown is not a client
 * abort. */
static void test_cuts_named(void)
{
    static const char head[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        "31\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\r\n";
    struct itest_peer peer = {.response = head, .response_len = sizeof(head) - 1,
                              .tail = "0\r\n\r\n", .tail_len = 5, .tail_delay_ms = 3000};
    itest_peer_start(&peer);
    struct itest_proc serve;
    char log_path[64];
    snprintf(log_path, sizeof(log_path), "/tmp/tokentap-hardening-%d.jsonl", (int)getpid());
    unlink(log_path);
    const char *extra[] = {"--stream-timeout", "500ms", "--drain-timeout", "300ms", "--log", log_path,
                           NULL};
    start_serve(&serve, peer.port, extra);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}";
    struct itest_resp r;
    itest_request(serve.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
    CHECK_INT(r.status, 200);
    CHECK(!r.complete);
    itest_resp_free(&r);
    char *log = requests_json(serve.port);
    CHECK(strstr(log, "stream stalled") != NULL);
    CHECK(strstr(log, "waiting for the response") == NULL);
    free(log);
    itest_stop(&serve);

    const char *extra2[] = {"--drain-timeout", "300ms", "--log", log_path, NULL};
    unlink(log_path);
    start_serve(&serve, peer.port, extra2);
    int fd = itest_connect(serve.port);
    char req[512];
    snprintf(req, sizeof(req),
             "POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    send_str(fd, req);
    itest_sleep_ms(300); /* the head and the first event are through */
    CHECK_INT(itest_stop(&serve), 0);
    char buf[4096];
    read_until_close(fd, 1000, buf, sizeof(buf));
    close(fd);
    size_t len;
    char *line = itest_read_file(log_path, &len);
    CHECK(strstr(line, "\"outcome\":\"truncated\"") != NULL);
    CHECK(strstr(line, "cut at shutdown") != NULL);
    free(line);
    unlink(log_path);
    itest_peer_stop(&peer);
}

/* Command lines and configs that must be refused (exit 2, one line). */
static void test_usage_errors(void)
{
    char out[4096];
    CHECK_INT(itest_run(out, sizeof(out), "serve --listen bad"), 2);
    CHECK(strstr(out, "--listen") != NULL);
    CHECK_INT(itest_run(out, sizeof(out), "sim --listen 127.0.0.1"), 2);
    CHECK_INT(itest_run(out, sizeof(out), "serve --listen 127.0.0.1:0 --max-header 0"), 2);
    CHECK(strstr(out, "--max-header") != NULL);
    CHECK_INT(itest_run(out, sizeof(out),
                        "serve --listen 127.0.0.1:0 --upstream 'http://127.0.0.1:7080/a b'"),
              2);
    CHECK(strstr(out, "spaces") != NULL);
    char path[64];
    snprintf(path, sizeof(path), "/tmp/tokentap-hardening-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("upstreams: []\n", f);
    fclose(f);
    char args[128];
    snprintf(args, sizeof(args), "serve --listen 127.0.0.1:0 -c %s", path);
    CHECK_INT(itest_run(out, sizeof(out), args), 2);
    CHECK(strstr(out, "empty") != NULL);
    unlink(path);
}

/* Recording onto a "full disk": every trace write past 8 KiB fails (a
 * file size limit, which works as root and not; SIGXFSZ ignored, so the
 * write fails with EFBIG instead of killing). Requests are still proxied,
 * /tokentap/health and /tokentap/metrics count the lost records, and a
 * warning is logged at the first loss. */
static void test_trace_loss(void)
{
    struct itest_peer peer = {.response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                          "Content-Length: 2\r\n\r\n{}"};
    peer.response_len = strlen(peer.response);
    itest_peer_start(&peer);
    char dir[64], errlog[80];
    snprintf(dir, sizeof(dir), "/tmp/tokentap-hardening-rec-%d", (int)getpid());
    snprintf(errlog, sizeof(errlog), "%s.stderr", dir);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);

    /* The child inherits the limit, the ignored signal and stderr. */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 8192;
    int saved_err = dup(2), logfd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(saved_err >= 0 && logfd >= 0);
    dup2(logfd, 2);
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    struct itest_proc serve;
    const char *extra[] = {"--record", dir, NULL};
    start_serve(&serve, peer.port, extra);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    dup2(saved_err, 2);
    close(saved_err);
    close(logfd);

    char body[2048];
    snprintf(body, sizeof(body), "{\"messages\":[{\"role\":\"user\",\"content\":\"%01500d\"}]}", 0);
    for (int i = 0; i < 20; i++) {
        struct itest_resp r;
        itest_request(serve.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
        CHECK_INT(r.status, 200);
        itest_resp_free(&r);
    }
    /* The writer thread writes behind the requests: wait until it has
     * nothing queued (then the counts stay put). */
    long lost = 0, queued = 1;
    for (int i = 0; i < 50 && (lost < 10 || queued); i++) {
        struct itest_resp r;
        itest_request(serve.port, "GET", "/tokentap/health", NULL, NULL, 0, &r);
        const char *l = r.body ? strstr(r.body, "\"lost\":") : NULL;
        const char *q = r.body ? strstr(r.body, "\"queued\":") : NULL;
        lost = l ? atol(l + 7) : 0;
        queued = q ? atol(q + 9) : 1;
        if (lost < 10 || queued)
            itest_sleep_ms(100);
        else
            CHECK(strstr(r.body, "File too large") != NULL);
        itest_resp_free(&r);
    }
    CHECK(lost >= 10); /* 20 lines of ~2 KB into 8 KiB */
    struct itest_resp r;
    itest_request(serve.port, "GET", "/tokentap/metrics", NULL, NULL, 0, &r);
    char want[80];
    snprintf(want, sizeof(want), "tokentap_trace_records_total{result=\"lost\"} %ld\n", lost);
    CHECK(r.body && strstr(r.body, want) != NULL);
    itest_resp_free(&r);
    itest_sleep_ms(1200); /* the watch looks once a second */
    itest_stop(&serve);
    size_t len;
    char *text = itest_read_file(errlog, &len);
    CHECK(strstr(text, "warn: trace: ") != NULL && strstr(text, "records lost") != NULL);
    CHECK_INT(count(text, len, "records lost"), 1); /* once, not per record */
    free(text);
    unlink(errlog);
    CHECK_INT(system(cmd), 0);
    itest_peer_stop(&peer);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    ITEST_RUN(test_split_upstream_head);
    ITEST_RUN(test_no_replay_after_timeout);
    ITEST_RUN(test_stream_outlives_timeout);
    ITEST_RUN(test_header_deadline);
    ITEST_RUN(test_body_deadline);
    ITEST_RUN(test_connection_cap);
    ITEST_RUN(test_body_error_answered);
    ITEST_RUN(test_bad_heads_and_upgrade);
    ITEST_RUN(test_valid_event_before_bad_framing);
    ITEST_RUN(test_cuts_named);
    ITEST_RUN(test_usage_errors);
    ITEST_RUN(test_trace_loss);
    return check_done("test_hardening");
}
