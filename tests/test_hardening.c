/* Integration tests for `tokentap serve` against misbehaving peers (issue
 * 13): upstreams that split their head or answer late, clients that
 * trickle, disks that fail. Real processes on 127.0.0.1; the upstream is
 * a scripted raw peer (itest_peer) or the sim. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    ITEST_RUN(test_split_upstream_head);
    ITEST_RUN(test_no_replay_after_timeout);
    return check_done("test_hardening");
}
