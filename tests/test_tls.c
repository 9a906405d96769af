/* Integration tests for TLS: certificates made by the openssl command in
 * a temp dir (a CA; a server certificate for 127.0.0.1 and localhost, and
 * a second one; one for another host; an expired one), serve with an
 * HTTPS listener in front of the sim and a second serve whose upstream is
 * the first over https, the certificate errors each proxy and client
 * reports, session resumption, certificate reload on SIGHUP, and replay
 * and bench against the HTTPS listener. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "itest.h"

static char tmp[64];
static char ca[128]; /* the test CA */

/* A file in tmp. */
static const char *in_tmp(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmp, name);
    return buf;
}

/* The certificates, made once: NAME.crt and NAME.key for server,
 * server2 (another common name), wronghost (elsewhere.example only) and
 * expired (valid names, but ended yesterday), all signed by ca.crt. */
static void make_certs(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && exec >openssl.log 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
             "-out ca.crt -days 2 -subj '/CN=tokentap test CA' && "
             "mk() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key "
             "-out $1.csr -subj \"/CN=$2\" && printf 'subjectAltName=%%s\\n' \"$3\" >$1.ext && "
             "openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $1.crt "
             "-days $4 -extfile $1.ext; } && "
             "mk server 'tokentap test server' 'IP:127.0.0.1,DNS:localhost' 2 && "
             "mk server2 'tokentap test server 2' 'IP:127.0.0.1,DNS:localhost' 2 && "
             "mk wronghost elsewhere.example DNS:elsewhere.example 2 && "
             "mk expired 'tokentap expired' 'IP:127.0.0.1,DNS:localhost' -1",
             tmp);
    int st = system(cmd);
    if (st != 0) {
        fprintf(stderr, "test_tls: the openssl command failed (see %s/openssl.log)\n", tmp);
        exit(99);
    }
    in_tmp(ca, sizeof(ca), "ca.crt");
}

static void start_sim(struct itest_proc *p, const char *cert, const char *decode_tps)
{
    char crt[128], key[128], c[64], k[64];
    snprintf(c, sizeof(c), "%s.crt", cert ? cert : "");
    snprintf(k, sizeof(k), "%s.key", cert ? cert : "");
    const char *args[] = {"sim",
                          "--listen",
                          "127.0.0.1:0",
                          "--decode-tps",
                          decode_tps,
                          "--prefill-tps",
                          "100000",
                          cert ? "--ssl-cert-file" : NULL,
                          in_tmp(crt, sizeof(crt), c),
                          "--ssl-key-file",
                          in_tmp(key, sizeof(key), k),
                          NULL};
    itest_spawn(p, args);
}

/* serve with an HTTPS listener (cert: "server", or NULL for plain HTTP),
 * the upstream (NULL: the config's) and extra arguments (NULL-terminated). */
static void start_serve(struct itest_proc *p, const char *cert, const char *upstream, ...)
{
    static char crt[128], key[128];
    const char *args[40] = {"serve", "--listen", "127.0.0.1:0", "--upstream", upstream};
    size_t n = upstream ? 5 : 3;
    if (cert) {
        char c[64], k[64];
        snprintf(c, sizeof(c), "%s.crt", cert);
        snprintf(k, sizeof(k), "%s.key", cert);
        args[n++] = "--tls-cert";
        args[n++] = in_tmp(crt, sizeof(crt), c);
        args[n++] = "--tls-key";
        args[n++] = in_tmp(key, sizeof(key), k);
    }
    va_list ap;
    va_start(ap, upstream);
    for (const char *a; (a = va_arg(ap, const char *)) && n < 39;)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    itest_spawn(p, args);
}

static const char *url_of(char *buf, size_t len, const char *scheme, const char *host, int port)
{
    snprintf(buf, len, "%s://%s:%d", scheme, host, port);
    return buf;
}

static const char *chat(unsigned max_tokens, const char *model)
{
    static char body[256];
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"tls\"}],"
             "\"stream\":true,\"max_tokens\":%u}",
             model, max_tokens);
    return body;
}

/* A GET on an admin endpoint, over TLS when ca_file is set, as JSON. */
static cJSON *admin_json(int port, const char *ca_file, const char *path)
{
    struct itest_resp r;
    if (ca_file)
        itest_request_tls(port, ca_file, "GET", path, NULL, NULL, 0, &r);
    else
        itest_request(port, "GET", path, NULL, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    CHECK(j != NULL);
    itest_resp_free(&r);
    return j;
}

/* The default upstream's pool counters in /tokentap/health. */
static double pool_count(int port, const char *ca_file, const char *key)
{
    cJSON *h = admin_json(port, ca_file, "/tokentap/health");
    double v = itest_json_num(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(h, "upstreams"), 0), key);
    cJSON_Delete(h);
    return v;
}

/* client → TLS → serve B → TLS → serve A → sim: a streamed completion
 * arrives whole, and both proxies time-stamped every token (their
 * records, read over TLS: the admin endpoints share the listener). */
static void test_chain(void)
{
    struct itest_proc sim, a, b;
    char url[64];
    start_sim(&sim, NULL, "100");
    start_serve(&a, "server", url_of(url, sizeof(url), "http", "127.0.0.1", sim.port), NULL);
    start_serve(&b, "server", url_of(url, sizeof(url), "https", "127.0.0.1", a.port), "--ca-file",
                ca, NULL);

    struct itest_resp r;
    const char *body = chat(20, "m");
    CHECK(itest_request_tls(b.port, ca, "POST", "/v1/chat/completions", NULL, body, strlen(body),
                            &r));
    CHECK_INT(r.status, 200);
    CHECK(r.complete);
    CHECK(strstr(r.body, "data: [DONE]") != NULL);
    /* Role, 20 tokens, the finish event, [DONE]. */
    CHECK_INT(r.n_events, 23);
    itest_resp_free(&r);

    double ttft[2];
    const int ports[2] = {a.port, b.port};
    for (int i = 0; i < 2; i++) {
        cJSON *reqs = admin_json(ports[i], ca, "/tokentap/requests?limit=1&gaps=1");
        const cJSON *rec = cJSON_GetArrayItem(reqs, 0);
        CHECK_STR(itest_json_str(rec, "outcome"), "ok");
        CHECK_INT(itest_json_num(rec, "token_events"), 20);
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rec, "gaps_us")), 19);
        ttft[i] = itest_json_num(rec, "ttft_ms");
        cJSON_Delete(reqs);
    }
    /* B's clock starts before A's and its first token comes after A's. */
    CHECK(ttft[0] > 0 && ttft[1] >= ttft[0]);
    CHECK_INT(pool_count(b.port, ca, "connects"), 1);

    /* A slow client: B's output to it fills and waits in TLS, B stops
     * reading from A, A's output fills in turn; nothing is lost. The sim
     * has a long canned answer, so that max_tokens decides the length. */
    char responses[128];
    FILE *f = fopen(in_tmp(responses, sizeof(responses), "long.yaml"), "w");
    fputs("responses:\n  - match: \"tls\"\n    text: \"", f);
    for (int i = 0; i < 20100; i++)
        fputs(" tok", f);
    fputs("\"\n", f);
    fclose(f);
    itest_read_delay_ms = 1500;
    body = chat(20000, "m");
    struct itest_proc fast;
    const char *fargs[] = {"sim",           "--listen", "127.0.0.1:0", "--decode-tps", "1000000",
                           "--prefill-tps", "1e9",      "--responses", responses,      NULL};
    itest_spawn(&fast, fargs);
    struct itest_proc a2, b2;
    start_serve(&a2, "server", url_of(url, sizeof(url), "http", "127.0.0.1", fast.port), NULL);
    start_serve(&b2, "server", url_of(url, sizeof(url), "https", "localhost", a2.port), "--ca-file",
                ca, NULL);
    CHECK(itest_request_tls(b2.port, ca, "POST", "/v1/chat/completions", NULL, body, strlen(body),
                            &r));
    itest_read_delay_ms = 0;
    CHECK_INT(r.status, 200);
    CHECK(r.complete);
    CHECK_INT(r.n_events, 20003);
    CHECK(strstr(r.body, "data: [DONE]") != NULL);
    itest_resp_free(&r);
    cJSON *reqs = admin_json(a2.port, ca, "/tokentap/requests?limit=1");
    CHECK_INT(itest_json_num(cJSON_GetArrayItem(reqs, 0), "token_events"), 20000);
    cJSON_Delete(reqs);
    reqs = admin_json(b2.port, ca, "/tokentap/requests?limit=1");
    CHECK_STR(itest_json_str(cJSON_GetArrayItem(reqs, 0), "outcome"), "ok");
    CHECK_INT(itest_json_num(cJSON_GetArrayItem(reqs, 0), "token_events"), 20000);
    cJSON_Delete(reqs);

    CHECK_INT(itest_stop(&b2), 0);
    CHECK_INT(itest_stop(&a2), 0);
    itest_stop(&fast);
    CHECK_INT(itest_stop(&b), 0);
    CHECK_INT(itest_stop(&a), 0);
    itest_stop(&sim);
}

/* The listener: TLS 1.2 or later, a plain request gets a plain answer,
 * the handshake has the head's deadline, and the admin endpoints are
 * only over TLS. */
static void test_listener(void)
{
    struct itest_proc sim, s;
    char url[64], why[160];
    start_sim(&sim, NULL, "400");
    start_serve(&s, "server", url_of(url, sizeof(url), "http", "127.0.0.1", sim.port),
                "--header-timeout", "1s", NULL);

    struct itest_tls *t = itest_tls_connect(s.port, ca, "localhost", why, sizeof(why));
    CHECK(t != NULL);
    if (t) {
        CHECK(strcmp(itest_tls_version(t), "TLSv1.2") == 0 ||
              strcmp(itest_tls_version(t), "TLSv1.3") == 0);
        itest_tls_close(t);
    }

    /* Plain HTTP on the TLS port, admin or not: a 400 that says what to do. */
    struct itest_resp r;
    itest_request(s.port, "GET", "/tokentap/health", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body, "this port speaks TLS: use https://") != NULL);
    itest_resp_free(&r);

    /* A client that connects and never starts the handshake is closed at
     * the head's deadline (not the 60 s idle timeout). */
    int fd = itest_connect(s.port);
    usec_t t0 = clock_now();
    char c;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(fd, &c, 1, 0);
    CHECK_INT(n, 0);
    CHECK(clock_now() - t0 < 5 * USEC_PER_SEC);
    close(fd);

    /* The server still serves. */
    const char *body = chat(3, "m");
    CHECK(itest_request_tls(s.port, ca, "POST", "/v1/chat/completions", NULL, body, strlen(body),
                            &r));
    CHECK_INT(r.status, 200);
    itest_resp_free(&r);
    CHECK_INT(itest_stop(&s), 0);

    /* The admin endpoints on a listener of their own speak TLS too. */
    char tokfile[128], addr[64] = "";
    FILE *f = fopen(in_tmp(tokfile, sizeof(tokfile), "token"), "w");
    fputs("s3cret\n", f);
    fclose(f);
    start_serve(&s, "server", url_of(url, sizeof(url), "http", "127.0.0.1", sim.port),
                "--admin-listen", "127.0.0.1:0", "--admin-token-file", tokfile, NULL);
    CHECK(itest_read_line_after(&s, "admin listening on ", addr, sizeof(addr)));
    const char *colon = strrchr(addr, ':');
    int admin_port = colon ? atoi(colon + 1) : 0;
    CHECK(admin_port > 0);
    CHECK(itest_request_tls(admin_port, ca, "GET", "/tokentap/health",
                            "Authorization: Bearer s3cret\r\n", NULL, 0, &r));
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"status\":\"ok\"") != NULL);
    itest_resp_free(&r);
    itest_request(admin_port, "GET", "/tokentap/health", "Authorization: Bearer s3cret\r\n", NULL,
                  0, &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body, "this port speaks TLS: use https://") != NULL);
    itest_resp_free(&r);
    CHECK_INT(itest_stop(&s), 0);
    itest_stop(&sim);
}

/* One upstream per failure, chosen by model: each request's 502 or 504
 * names the cause, and its record has the outcome and the error. */
static void test_certificate_errors(void)
{
    struct itest_proc good, wrong, expired, plain, s;
    start_sim(&good, "server", "400");
    start_sim(&wrong, "wronghost", "400");
    start_sim(&expired, "expired", "400");
    start_sim(&plain, NULL, "400");
    struct itest_peer silent = {.response = "", .response_len = 0};
    itest_peer_start(&silent);

    char cfg[128], yaml[2048];
    snprintf(
        yaml, sizeof(yaml),
        "upstreams:\n"
        "  - {name: good, url: https://127.0.0.1:%d, ca_file: %s, models: [good], default: true}\n"
        "  - {name: untrusted, url: https://127.0.0.1:%d, models: [untrusted]}\n"
        "  - {name: wrong, url: https://localhost:%d, ca_file: %s, models: [wrong]}\n"
        "  - {name: expired, url: https://127.0.0.1:%d, ca_file: %s, models: [expired]}\n"
        "  - {name: plain, url: https://127.0.0.1:%d, ca_file: %s, models: [plain]}\n"
        "  - {name: silent, url: https://127.0.0.1:%d, ca_file: %s, models: [silent]}\n"
        "  - {name: careless, url: https://127.0.0.1:%d, insecure: true, models: [careless]}\n"
        "timeouts: {connect: 1s}\n",
        good.port, ca, good.port, wrong.port, ca, expired.port, ca, plain.port, ca, silent.port, ca,
        wrong.port);
    in_tmp(cfg, sizeof(cfg), "errors.yaml");
    FILE *f = fopen(cfg, "w");
    fputs(yaml, f);
    fclose(f);
    start_serve(&s, NULL, NULL, "-c", cfg, NULL);

    static const struct {
        const char *model;
        int status;
        const char *message, *outcome;
    } cases[] = {
        {"good", 200, NULL, "ok"},
        {"untrusted", 502,
         "TLS: the upstream's certificate is not trusted; give its CA (ca_file, "
         "--ca-file) or turn checks off (insecure)",
         "upstream-error"},
        {"wrong", 502, "TLS: the upstream's certificate is for another host name",
         "upstream-error"},
        {"expired", 502, "TLS: the upstream's certificate has expired or is not valid yet",
         "upstream-error"},
        {"plain", 502, "TLS: the upstream answered without TLS (plain HTTP?); use an http:// URL",
         "upstream-error"},
        {"silent", 504, "TLS handshake timed out (does the upstream speak TLS on that port?)",
         "timeout"},
        {"careless", 200, NULL, "ok"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct itest_resp r;
        const char *body = chat(3, cases[i].model);
        itest_request(s.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
        CHECK_INT(r.status, cases[i].status);
        if (cases[i].message) {
            CHECK(strstr(r.body, cases[i].message) != NULL);
            CHECK(strstr(r.body, "\"type\":\"upstream_error\"") != NULL);
        }
        if (r.status != cases[i].status)
            fprintf(stderr, "  %s: %s\n", cases[i].model, r.body);
        itest_resp_free(&r);
        cJSON *reqs = admin_json(s.port, NULL, "/tokentap/requests?limit=1");
        const cJSON *rec = cJSON_GetArrayItem(reqs, 0);
        CHECK_STR(itest_json_str(rec, "upstream"), cases[i].model);
        CHECK_STR(itest_json_str(rec, "outcome"), cases[i].outcome);
        if (cases[i].message)
            CHECK(strncmp(itest_json_str(rec, "error"), cases[i].message, 30) == 0);
        cJSON_Delete(reqs);
    }
    CHECK_INT(itest_stop(&s), 0);

    /* A CA file that is not one: serve says so and does not start. */
    char out[4096], bad[128];
    in_tmp(bad, sizeof(bad), "server.key");
    CHECK_INT(itest_runf(out, sizeof(out),
                         "serve --listen 127.0.0.1:0 --upstream https://127.0.0.1:1 --ca-file %s",
                         bad),
              1);
    CHECK(strstr(out, "upstream 'default': ca_file '") != NULL);
    CHECK(strstr(out, "no CA certificate read") != NULL);

    itest_peer_stop(&silent);
    itest_stop(&plain);
    itest_stop(&expired);
    itest_stop(&wrong);
    itest_stop(&good);
}

/* Kept-alive TLS connections are reused; a new one resumes the session. */
static void test_pool_and_resumption(void)
{
    struct itest_proc sim, a, b;
    char url[64];
    start_sim(&sim, NULL, "400");
    /* A closes a client connection idle for 1 s. */
    start_serve(&a, "server", url_of(url, sizeof(url), "http", "127.0.0.1", sim.port),
                "--idle-timeout", "1s", NULL);
    start_serve(&b, NULL, url_of(url, sizeof(url), "https", "127.0.0.1", a.port), "--ca-file", ca,
                NULL);
    struct itest_resp r;
    const char *body = chat(3, "m");
    for (int i = 0; i < 2; i++) {
        itest_request(b.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
        CHECK_INT(r.status, 200);
        itest_resp_free(&r);
    }
    CHECK_INT(pool_count(b.port, NULL, "connects"), 1);
    CHECK_INT(pool_count(b.port, NULL, "reuses"), 1);
    CHECK_INT(pool_count(b.port, NULL, "tls_resumed"), 0);
    itest_sleep_ms(2000);
    itest_request(b.port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
    CHECK_INT(r.status, 200);
    itest_resp_free(&r);
    CHECK_INT(pool_count(b.port, NULL, "connects"), 2);
    CHECK_INT(pool_count(b.port, NULL, "tls_resumed"), 1);
    CHECK_INT(itest_stop(&b), 0);
    CHECK_INT(itest_stop(&a), 0);
    itest_stop(&sim);
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *text = itest_read_file(from, &len);
    FILE *f = fopen(to, "w");
    fwrite(text, 1, len, f);
    fclose(f);
    free(text);
}

/* SIGHUP rereads the certificate: new connections get the new one, an
 * open one goes on; a broken file keeps the last good certificate. */
static void test_reload(void)
{
    struct itest_proc sim, s;
    char url[64], crt[128], key[128], live_crt[128], live_key[128], cn[128], why[160];
    start_sim(&sim, NULL, "400");
    in_tmp(live_crt, sizeof(live_crt), "live.crt");
    in_tmp(live_key, sizeof(live_key), "live.key");
    copy_file(in_tmp(crt, sizeof(crt), "server.crt"), live_crt);
    copy_file(in_tmp(key, sizeof(key), "server.key"), live_key);
    start_serve(&s, NULL, url_of(url, sizeof(url), "http", "127.0.0.1", sim.port), "--tls-cert",
                live_crt, "--tls-key", live_key, NULL);

    struct itest_tls *old = itest_tls_connect(s.port, ca, "127.0.0.1", why, sizeof(why));
    CHECK(old != NULL);
    if (!old)
        return;
    CHECK_STR(itest_tls_peer_cn(old, cn, sizeof(cn)), "tokentap test server");

    copy_file(in_tmp(crt, sizeof(crt), "server2.crt"), live_crt);
    copy_file(in_tmp(key, sizeof(key), "server2.key"), live_key);
    kill(s.pid, SIGHUP);
    itest_sleep_ms(300);
    struct itest_tls *t = itest_tls_connect(s.port, ca, "127.0.0.1", why, sizeof(why));
    CHECK(t != NULL);
    if (t) {
        CHECK_STR(itest_tls_peer_cn(t, cn, sizeof(cn)), "tokentap test server 2");
        itest_tls_close(t);
    }
    struct itest_resp r;
    const char *body = chat(3, "m");
    CHECK(itest_tls_request(old, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r));
    CHECK_INT(r.status, 200);
    itest_resp_free(&r);
    itest_tls_close(old);

    FILE *f = fopen(live_crt, "w");
    fputs("not a certificate\n", f);
    fclose(f);
    kill(s.pid, SIGHUP);
    itest_sleep_ms(300);
    t = itest_tls_connect(s.port, ca, "127.0.0.1", why, sizeof(why));
    CHECK(t != NULL);
    if (t) {
        CHECK_STR(itest_tls_peer_cn(t, cn, sizeof(cn)), "tokentap test server 2");
        itest_tls_close(t);
    }
    CHECK_INT(itest_stop(&s), 0);
    itest_stop(&sim);
}

/* replay and bench against the HTTPS listener; their error lines. */
static void test_replay_bench(void)
{
    struct itest_proc sim, s, wrong;
    char url[64], trace[128], out[1 << 16], summary[128], responses[256], dir[128];
    itest_fixture("scenario-tiny.responses.yaml", responses, sizeof(responses));
    const char *sargs[] = {"sim", "--listen",    "127.0.0.1:0", "--decode-tps",
                           "400", "--responses", responses,     NULL};
    itest_spawn(&sim, sargs);
    start_serve(&s, "server", url_of(url, sizeof(url), "http", "127.0.0.1", sim.port), NULL);
    start_sim(&wrong, "wronghost", "400");
    in_tmp(trace, sizeof(trace), "trace.jsonl");
    FILE *f = fopen(trace, "w");
    for (int i = 0; i < 4; i++)
        fprintf(f,
                "{\"messages\":[{\"role\":\"user\",\"content\":\"replay %d\"}],\"stream\":true,"
                "\"max_tokens\":5}\n",
                i);
    fclose(f);
    in_tmp(summary, sizeof(summary), "summary.json");

    CHECK_INT(itest_runf(out, sizeof(out),
                         "replay %s --target https://127.0.0.1:%d --ca-file %s --concurrency 2 -q "
                         "-o %s",
                         trace, s.port, ca, summary),
              0);
    size_t len;
    char *text = itest_read_file(summary, &len);
    cJSON *j = cJSON_Parse(text);
    free(text);
    CHECK_INT(itest_json_num(j, "requests_finished"), 4);
    cJSON_Delete(j);
    cJSON *reqs = admin_json(s.port, ca, "/tokentap/requests?limit=10");
    CHECK_INT(cJSON_GetArraySize(reqs), 5); /* the probe and the four */
    cJSON_Delete(reqs);

    /* The error lines: no CA given (the system's does not know ours), a
     * certificate for another host; --insecure warns and goes on. */
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target https://127.0.0.1:%d -q", trace,
                         s.port) != 0,
              1);
    CHECK(strstr(out, "does not answer: TLS: the upstream's certificate is not trusted") != NULL);
    CHECK_INT(itest_runf(out, sizeof(out),
                         "replay %s --target https://localhost:%d --ca-file %s -q", trace,
                         wrong.port, ca) != 0,
              1);
    CHECK(strstr(out, "does not answer: TLS: the upstream's certificate is for another host") !=
          NULL);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target https://localhost:%d --insecure -q",
                         trace, wrong.port),
              0);
    CHECK(strstr(out, "certificate checks are off (--insecure)") != NULL);
    CHECK_INT(itest_runf(out, sizeof(out), "replay %s --target https://127.0.0.1:%d -q", trace,
                         sim.port) != 0,
              1);
    CHECK(strstr(out, "TLS: the upstream answered without TLS") != NULL);

    /* bench: a scenario's target on the HTTPS listener. */
    char scen[256];
    itest_fixture("scenario-tiny.yaml", scen, sizeof(scen));
    in_tmp(dir, sizeof(dir), "bench");
    CHECK_INT(itest_runf(out, sizeof(out),
                         "bench %s --only fast --levels 1 -n 1 --target fast=https://127.0.0.1:%d "
                         "--ca-file %s --out %s -q",
                         scen, s.port, ca, dir),
              0);
    CHECK_INT(itest_runf(out, sizeof(out),
                         "bench %s --only fast --levels 1 -n 1 --target fast=https://127.0.0.1:%d "
                         "--out %s/x -q",
                         scen, s.port, dir) != 0,
              1);
    CHECK(strstr(out, "does not answer: TLS: the upstream's certificate is not trusted") != NULL);

    itest_stop(&wrong);
    CHECK_INT(itest_stop(&s), 0);
    itest_stop(&sim);
}

int main(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/tokentap-tls-XXXXXX");
    if (!mkdtemp(tmp))
        return 99;
    make_certs();
    ITEST_RUN(test_chain);
    ITEST_RUN(test_listener);
    ITEST_RUN(test_certificate_errors);
    ITEST_RUN(test_pool_and_resumption);
    ITEST_RUN(test_reload);
    ITEST_RUN(test_replay_bench);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "test_tls: could not remove %s\n", tmp);
    return check_done("test_tls");
}
