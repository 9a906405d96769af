/* Integration tests for `tokentap sim`: real processes on 127.0.0.1, our
 * own blocking client, llama-server captures as the reference. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "itest.h"

/* --- structure of a stream --- */

/* Appends the shape of a JSON value: keys in order, types instead of values. */
static void shape(const cJSON *v, char *buf, size_t len)
{
    size_t n = strlen(buf);
    if (n + 8 >= len)
        return;
    if (cJSON_IsObject(v)) {
        strcat(buf, "{");
        for (const cJSON *c = v->child; c; c = c->next) {
            n = strlen(buf);
            snprintf(buf + n, len - n, "%s%s:", c == v->child ? "" : ",", c->string);
            shape(c, buf, len);
        }
        strcat(buf, "}");
    } else if (cJSON_IsArray(v)) {
        strcat(buf, "[");
        for (const cJSON *c = v->child; c; c = c->next) {
            if (c != v->child)
                strcat(buf, ",");
            shape(c, buf, len);
        }
        strcat(buf, "]");
    } else if (cJSON_IsString(v)) {
        strcat(buf, "s");
    } else if (cJSON_IsNumber(v)) {
        strcat(buf, "n");
    } else if (cJSON_IsBool(v)) {
        strcat(buf, "b");
    } else {
        strcat(buf, "null");
    }
}

/* One line per run of same-shaped events: "event-name|shape". */
static char *stream_shape(const char *body)
{
    size_t cap = 1 << 20;
    char *out = calloc(1, cap);
    char prev[16384] = "";
    const char *p = body;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        if (!end)
            break;
        char ev[16384] = "", name[128] = "";
        const char *line = p;
        while (line < end) {
            const char *eol = memchr(line, '\n', (size_t)(end - line));
            if (!eol)
                eol = end;
            if (strncmp(line, "event: ", 7) == 0)
                snprintf(name, sizeof(name), "%.*s", (int)(eol - line - 7), line + 7);
            if (strncmp(line, "data: ", 6) == 0) {
                cJSON *j = cJSON_ParseWithLength(line + 6, (size_t)(eol - line - 6));
                char sh[16000] = "";
                if (j)
                    shape(j, sh, sizeof(sh));
                else
                    snprintf(sh, sizeof(sh), "%.*s", (int)(eol - line - 6), line + 6);
                cJSON_Delete(j);
                snprintf(ev, sizeof(ev), "%s|%s", name, sh);
            }
            line = eol + 1;
        }
        if (strcmp(ev, prev) != 0) {
            strncat(out, ev, cap - strlen(out) - 2);
            strcat(out, "\n");
            snprintf(prev, sizeof(prev), "%s", ev);
        }
        p = end + 2;
    }
    return out;
}

/* Header names of a head, in order, without Content-Length/Date values. */
static void header_names(const char *head, size_t len, char *buf, size_t blen)
{
    buf[0] = '\0';
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    while (p && ++p < end) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!colon || !eol || colon > eol)
            break;
        size_t n = strlen(buf);
        snprintf(buf + n, blen - n, "%.*s;", (int)(colon - p), p);
        p = eol;
    }
}

static char *capture_body(const char *name, char *head_names, size_t hlen)
{
    char path[512];
    size_t len;
    char *text = itest_read_file(itest_fixture(name, path, sizeof(path)), &len);
    char *sep = strstr(text, "\r\n\r\n");
    if (head_names)
        header_names(text, (size_t)(sep - text) + 2, head_names, hlen);
    char *body = strdup(sep + 4);
    free(text);
    return body;
}

static char *fixture_request(const char *name, size_t *len)
{
    char path[512];
    return itest_read_file(itest_fixture(name, path, sizeof(path)), len);
}

static void test_stream_shapes(int port)
{
    static const struct {
        const char *path, *capture;
    } cases[] = {
        {"/v1/chat/completions", "10_chat_stream"},
        {"/v1/chat/completions", "11_chat_stream_include_usage"},
        {"/v1/chat/completions", "12_chat_stream_thinking_false"},
        {"/v1/completions", "31_v1_completions_stream"},
        {"/v1/completions", "32_v1_completions_stream_include_usage"},
        {"/completion", "30_completion_stream"},
        {"/v1/messages", "20_messages_stream"},
        {"/v1/responses", "35_v1_responses_stream"},
        {"/v1/chat/completions", "14_chat_nonstream"},
        {"/v1/completions", "34_v1_completions_nonstream"},
        {"/completion", "33_completion_nonstream"},
        {"/v1/messages", "21_messages_nonstream"},
        {"/v1/messages/count_tokens", "22_messages_count_tokens"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[128], want_headers[1024], got_headers[1024];
        size_t len;
        snprintf(name, sizeof(name), "llama-server/%s.request.json", cases[i].capture);
        char *req = fixture_request(name, &len);
        snprintf(name, sizeof(name), "llama-server/%s.txt", cases[i].capture);
        char *want_body = capture_body(name, want_headers, sizeof(want_headers));

        struct itest_resp r;
        itest_request(port, "POST", cases[i].path, NULL, req, len, &r);
        CHECK_INT(r.status, 200);
        CHECK(r.complete);
        header_names(r.head, r.head_len, got_headers, sizeof(got_headers));
        CHECK_STR(got_headers, want_headers);
        bool stream = strstr(req, "\"stream\":true") != NULL;
        if (stream) {
            char *want = stream_shape(want_body), *got = stream_shape(r.body ? r.body : "");
            if (strcmp(want, got) != 0)
                fprintf(stderr, "%s: shape differs\n--- capture\n%s--- sim\n%s", cases[i].capture,
                        want, got);
            CHECK_STR(got, want);
            free(want);
            free(got);
            /* One event per chunk, the first chunk carries the first token
             * too (as in 18_chat_stream_rawwire.txt). */
            CHECK(r.n_events >= 2);
        } else {
            cJSON *w = cJSON_Parse(want_body), *g = cJSON_Parse(r.body ? r.body : "");
            char ws[16000] = "", gs[16000] = "";
            shape(w, ws, sizeof(ws));
            shape(g, gs, sizeof(gs));
            CHECK_STR(gs, ws);
            cJSON_Delete(w);
            cJSON_Delete(g);
        }
        itest_resp_free(&r);
        free(want_body);
        free(req);
    }
}

/* Chunk framing: the first chunk holds the role line and the first token,
 * then one chunk per event. */
static void test_chunks(int port)
{
    const char *req = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,"
                      "\"max_tokens\":5}";
    struct itest_resp r;
    itest_request(port, "POST", "/v1/chat/completions", NULL, req, strlen(req), &r);
    CHECK_INT(r.status, 200);
    /* Chunk sizes: count "\r\n" + hex lines. First chunk: 2 events. */
    const char *p = r.raw;
    size_t chunks = 0, first_events = 0;
    while (p && *p) {
        char *end = NULL;
        unsigned long n = strtoul(p, &end, 16);
        if (!end || end[0] != '\r')
            break;
        const char *data = end + 2;
        if (chunks == 0) {
            for (const char *q = data; q < data + n; q++)
                first_events += (q[0] == '\n' && q + 1 < data + n && q[1] == '\n');
        }
        chunks++;
        if (n == 0)
            break;
        p = data + n + 2;
    }
    CHECK_INT(first_events, 2);
    /* role+token, 4 tokens, finish+timings, [DONE], terminator */
    CHECK_INT(chunks, 1 + 4 + 1 + 1);
    itest_resp_free(&r);
}

/* --- concurrency --- */

struct stream_job {
    int port;
    const char *body;
    const char *fault;
    struct itest_resp r;
};

static void *stream_thread(void *arg)
{
    struct stream_job *j = arg;
    itest_request(j->port, "POST", "/v1/chat/completions", j->fault, j->body, strlen(j->body), &j->r);
    return NULL;
}

static long json_int(const char *body, const char *key)
{
    const char *p = strstr(body, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_queueing(void)
{
    struct itest_proc sim;
    const char *args[] = {"sim", "--listen", "127.0.0.1:0", "--slots", "3", "--decode-tps", "100",
                          NULL};
    itest_spawn(&sim, args);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"queue test\"}],\"stream\":true,"
                       "\"max_tokens\":60}";
    struct stream_job jobs[5];
    pthread_t th[5];
    for (int i = 0; i < 5; i++) {
        jobs[i] = (struct stream_job){.port = sim.port, .body = body};
        pthread_create(&th[i], NULL, stream_thread, &jobs[i]);
        itest_sleep_ms(20); /* a stable arrival order */
    }
    itest_sleep_ms(150);
    struct itest_resp slots, metrics;
    itest_request(sim.port, "GET", "/slots", NULL, NULL, 0, &slots);
    itest_request(sim.port, "GET", "/metrics", NULL, NULL, 0, &metrics);
    CHECK_INT(count(slots.body, "\"is_processing\":true"), 3);
    CHECK_INT(json_int(metrics.body, "\nllamacpp:requests_deferred "), 2);
    CHECK_INT(json_int(metrics.body, "\nllamacpp:requests_processing "), 3);
    itest_resp_free(&slots);
    itest_resp_free(&metrics);

    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    /* The first three start at once; the last two only after one of them
     * ended (60 tokens at 100/s: 0.6 s), with no bytes before. */
    usec_t first_end = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        CHECK(jobs[i].r.complete);
        CHECK(jobs[i].r.t_first_byte - jobs[i].r.t_sent < 300 * USEC_PER_MSEC);
        if (jobs[i].r.t_end < first_end)
            first_end = jobs[i].r.t_end;
    }
    for (int i = 3; i < 5; i++) {
        CHECK(jobs[i].r.complete);
        CHECK(jobs[i].r.t_first_byte + 50 * USEC_PER_MSEC >= first_end);
        CHECK(jobs[i].r.t_first_byte - jobs[i].r.t_sent > 400 * USEC_PER_MSEC);
    }
    for (int i = 0; i < 5; i++)
        itest_resp_free(&jobs[i].r);
    itest_request(sim.port, "GET", "/metrics", NULL, NULL, 0, &metrics);
    CHECK_INT(json_int(metrics.body, "\nllamacpp:requests_deferred "), 0);
    CHECK_INT(json_int(metrics.body, "\nllamacpp:tokens_predicted_total "), 300);
    itest_resp_free(&metrics);
    CHECK_INT(itest_stop(&sim), 0);
}

/* timings agree with what the client saw (wide margins). */
static void test_timings(void)
{
    struct itest_proc sim;
    const char *args[] = {"sim", "--listen", "127.0.0.1:0", "--decode-tps", "50", "--prefill-tps",
                          "1000", NULL};
    itest_spawn(&sim, args);
    char big[8200];
    memset(big, 'a', sizeof(big));
    /* 2000 prompt tokens at 1000/s: 2 s of prefill. */
    int n = snprintf(big, sizeof(big), "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    memset(big + n, 'x', 8000 - (size_t)n);
    snprintf(big + 8000, sizeof(big) - 8000, "\"}],\"stream\":true,\"max_tokens\":26}");
    struct itest_resp r;
    itest_request(sim.port, "POST", "/v1/chat/completions", NULL, big, strlen(big), &r);
    CHECK(r.complete);
    const char *t = strstr(r.body, "\"timings\"");
    CHECK(t != NULL);
    if (t) {
        double prompt_ms = strtod(strstr(t, "\"prompt_ms\":") + 12, NULL);
        double predicted_ms = strtod(strstr(t, "\"predicted_ms\":") + 15, NULL);
        long prompt_n = json_int(t, "\"prompt_n\":");
        long predicted_n = json_int(t, "\"predicted_n\":");
        CHECK_INT(predicted_n, 26);
        CHECK_NEAR(prompt_ms, prompt_n / 1000.0 * 1000.0, 0.01);
        CHECK_NEAR(predicted_ms, 25 * 20.0, 0.01);
        /* The client's view: the head at once (the request got a slot; as
         * llama-server does), the first token after ~prompt_ms, tokens ~20 ms
         * apart. */
        double head_ms = (double)(r.t_first_byte - r.t_sent) / 1000.0;
        double ttft_ms = (double)(r.event_time[0] - r.t_sent) / 1000.0;
        CHECK(head_ms < prompt_ms * 0.5);
        double span_ms = (double)(r.event_time[26] - r.event_time[1]) / 1000.0;
        CHECK(ttft_ms > prompt_ms * 0.9 && ttft_ms < prompt_ms * 1.5 + 50);
        CHECK(span_ms > predicted_ms * 0.8 && span_ms < predicted_ms * 1.5 + 50);
    }
    itest_resp_free(&r);
    CHECK_INT(itest_stop(&sim), 0);
}

/* A client that disconnects mid-stream frees its slot at once. */
static void test_disconnect_frees_slot(void)
{
    struct itest_proc sim;
    const char *args[] = {"sim", "--listen", "127.0.0.1:0", "--slots", "1", "--decode-tps", "50", NULL};
    itest_spawn(&sim, args);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"long\"}],\"stream\":true,"
                       "\"max_tokens\":1000}";
    int fd = itest_connect(sim.port);
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    CHECK(write(fd, req, (size_t)n) == n);
    char buf[4096];
    CHECK(read(fd, buf, sizeof(buf)) > 0); /* streaming has begun */
    struct itest_resp slots;
    itest_request(sim.port, "GET", "/slots", NULL, NULL, 0, &slots);
    CHECK_INT(count(slots.body, "\"is_processing\":true"), 1);
    itest_resp_free(&slots);
    close(fd);
    itest_sleep_ms(100);
    itest_request(sim.port, "GET", "/slots", NULL, NULL, 0, &slots);
    CHECK_INT(count(slots.body, "\"is_processing\":true"), 0);
    itest_resp_free(&slots);
    /* The one slot serves the next request at once. */
    const char *small = "{\"messages\":[{\"role\":\"user\",\"content\":\"next\"}],\"max_tokens\":3}";
    struct itest_resp r;
    itest_request(sim.port, "POST", "/v1/chat/completions", NULL, small, strlen(small), &r);
    CHECK_INT(r.status, 200);
    CHECK(r.t_end - r.t_sent < 1000 * USEC_PER_MSEC);
    itest_resp_free(&r);
    CHECK_INT(itest_stop(&sim), 0);
}

/* --- faults --- */

static void test_faults(int port)
{
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"fault\"}],\"stream\":true,"
                       "\"max_tokens\":8}";
    struct itest_resp r;

    itest_request(port, "POST", "/v1/chat/completions", "X-Sim-Fault: status:503\r\n", body,
                  strlen(body), &r);
    CHECK_INT(r.status, 503);
    CHECK(strstr(r.body, "\"type\":\"unavailable_error\"") != NULL);
    itest_resp_free(&r);

    itest_request(port, "POST", "/v1/chat/completions", "X-Sim-Fault: disconnect:after=3\r\n", body,
                  strlen(body), &r);
    CHECK_INT(r.status, 200);
    CHECK(!r.complete);
    CHECK(r.closed);
    CHECK_INT(count(r.body, "\"content\":\""), 3);
    CHECK(strstr(r.body, "[DONE]") == NULL);
    itest_resp_free(&r);

    itest_request(port, "POST", "/v1/chat/completions", "X-Sim-Fault: stall:ms=400:after=2\r\n",
                  body, strlen(body), &r);
    CHECK(r.complete);
    /* events: role+tok1 arrive together, tok2, then the stall before tok3 */
    CHECK(r.n_events >= 5);
    CHECK(r.event_time[2] - r.event_time[1] < 300 * USEC_PER_MSEC);
    CHECK(r.event_time[3] - r.event_time[2] >= 350 * USEC_PER_MSEC);
    itest_resp_free(&r);

    itest_request(port, "POST", "/v1/chat/completions", "X-Sim-Fault: garbage:after=2\r\n", body,
                  strlen(body), &r);
    CHECK(r.complete);
    CHECK(memmem(r.body, r.body_len, "garbage from a confused upstream", 32) != NULL);
    CHECK(memmem(r.body, r.body_len, "data: [DONE]", 12) != NULL);
    itest_resp_free(&r);

    itest_request(port, "POST", "/v1/chat/completions", "X-Sim-Fault: slow-headers:ms=400\r\n",
                  body, strlen(body), &r);
    CHECK(r.complete);
    CHECK(r.t_first_byte - r.t_sent >= 380 * USEC_PER_MSEC);
    itest_resp_free(&r);

    itest_request(port, "POST", "/v1/chat/completions", "X-Sim-Fault: nonsense\r\n", body,
                  strlen(body), &r);
    CHECK_INT(r.status, 400);
    itest_resp_free(&r);
}

/* --- thinking --- */

static void test_thinking(int port)
{
    const char *on = "{\"messages\":[{\"role\":\"user\",\"content\":\"think\"}],\"stream\":true,"
                     "\"max_tokens\":200,\"chat_template_kwargs\":{\"enable_thinking\":true}}";
    const char *off = "{\"messages\":[{\"role\":\"user\",\"content\":\"think\"}],\"stream\":true,"
                      "\"max_tokens\":200,\"chat_template_kwargs\":{\"enable_thinking\":false}}";
    const char *bad = "{\"messages\":[{\"role\":\"user\",\"content\":\"think\"}],"
                      "\"chat_template_kwargs\":{\"enable_thinking\":\"false\"}}";
    struct itest_resp r;
    itest_request(port, "POST", "/v1/chat/completions", NULL, on, strlen(on), &r);
    const char *first_reasoning = strstr(r.body, "\"reasoning_content\":");
    const char *first_content = strstr(r.body, "\"delta\":{\"content\":");
    CHECK(first_reasoning != NULL);
    CHECK(first_content != NULL);
    CHECK(first_reasoning && first_content && first_reasoning < first_content);
    itest_resp_free(&r);

    itest_request(port, "POST", "/v1/chat/completions", NULL, off, strlen(off), &r);
    CHECK(strstr(r.body, "reasoning_content") == NULL);
    CHECK(strstr(r.body, "\"delta\":{\"content\":") != NULL);
    itest_resp_free(&r);

    itest_request(port, "POST", "/v1/chat/completions", NULL, bad, strlen(bad), &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body, "invalid type for \\\"enable_thinking\\\" (expected boolean, got string)"));
    itest_resp_free(&r);

    const char *a_on = "{\"model\":\"m\",\"max_tokens\":200,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"think\"}],\"stream\":true,\"chat_template_kwargs\":"
                       "{\"enable_thinking\":true}}";
    itest_request(port, "POST", "/v1/messages", NULL, a_on, strlen(a_on), &r);
    char *sh = stream_shape(r.body);
    const char *think_start = strstr(r.body, "\"index\":0,\"content_block\":{\"type\":\"thinking\"");
    const char *text_start = strstr(r.body, "\"index\":1,\"content_block\":{\"type\":\"text\"");
    CHECK(think_start && text_start && think_start < text_start);
    CHECK(strstr(r.body, "\"thinking_delta\"") != NULL);
    CHECK(strstr(r.body, "\"signature_delta\"") != NULL);
    /* Both blocks stop at the end, then message_delta and message_stop. */
    const char *stop0 = strstr(r.body, "{\"type\":\"content_block_stop\",\"index\":0}");
    const char *stop1 = strstr(r.body, "{\"type\":\"content_block_stop\",\"index\":1}");
    const char *last_delta = NULL;
    for (const char *p = strstr(r.body, "text_delta"); p; p = strstr(p + 1, "text_delta"))
        last_delta = p;
    CHECK(stop0 && stop1 && last_delta && last_delta < stop0 && stop0 < stop1);
    free(sh);
    itest_resp_free(&r);

    const char *a_off = "{\"model\":\"m\",\"max_tokens\":50,\"messages\":[{\"role\":\"user\","
                        "\"content\":\"think\"}],\"stream\":true}";
    itest_request(port, "POST", "/v1/messages", NULL, a_off, strlen(a_off), &r);
    CHECK(strstr(r.body, "thinking") == NULL);
    itest_resp_free(&r);
}

/* --- bad input --- */

static void test_bad_input(int port)
{
    size_t len;
    char *raw = itest_raw(port, "BLAH\r\n\r\n", 8, &len);
    CHECK(strncmp(raw, "HTTP/1.1 400 ", 13) == 0);
    CHECK(strstr(raw, "Connection: close") != NULL);
    free(raw);

    const char *huge = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n";
    raw = itest_raw(port, huge, strlen(huge), &len);
    CHECK(strncmp(raw, "HTTP/1.1 413 ", 13) == 0);
    free(raw);

    struct itest_resp r;
    const char *broken = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}";
    itest_request(port, "POST", "/v1/chat/completions", NULL, broken, strlen(broken), &r);
    CHECK_INT(r.status, 500);
    CHECK(strstr(r.body, "\"type\":\"server_error\"") != NULL);
    CHECK(strstr(r.body, "parse error") != NULL);
    itest_resp_free(&r);

    itest_request(port, "GET", "/nope", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 404);
    CHECK_STR(r.body, "{\"error\":{\"message\":\"File Not Found\",\"type\":\"not_found_error\",\"code\":404}}");
    itest_resp_free(&r);

    itest_request(port, "GET", "/v1/chat/completions", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 404);
    itest_resp_free(&r);

    const char *missing = "{\"model\":\"x\",\"stream\":true}";
    itest_request(port, "POST", "/v1/chat/completions", NULL, missing, strlen(missing), &r);
    CHECK_INT(r.status, 400);
    CHECK_STR(r.body, "{\"error\":{\"code\":400,\"message\":\"'messages' is required\",\"type\":\"invalid_request_error\"}}");
    itest_resp_free(&r);

    itest_request(port, "HEAD", "/", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK(r.complete);
    CHECK_INT(r.body_len, 0);
    itest_resp_free(&r);

    itest_request(port, "GET", "/health", NULL, NULL, 0, &r);
    CHECK_STR(r.body, "{\"status\":\"ok\"}");
    itest_resp_free(&r);
}

/* Keep-alive: several requests on one connection, then the server's
 * 100-request cap closes it, as cpp-httplib does. */
static void test_keepalive(int port)
{
    int fd = itest_connect(port);
    struct itest_resp r;
    for (int i = 0; i < 100; i++) {
        CHECK(itest_request_fd(fd, "GET", "/health", NULL, NULL, 0, &r));
        CHECK_INT(r.status, 200);
        char v[64];
        if (i < 99)
            CHECK(itest_header(&r, "keep-alive", v, sizeof(v)) != NULL);
        else
            CHECK(itest_header(&r, "connection", v, sizeof(v)) && strcmp(v, "close") == 0);
        itest_resp_free(&r);
    }
    close(fd);
}

static void test_cli_errors(int port)
{
    char cmd[512];
    const char *bin = getenv("TOKENTAP");
    snprintf(cmd, sizeof(cmd), "%s sim --bogus 2>/dev/null", bin);
    CHECK_INT(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof(cmd), "%s sim --listen 127.0.0.1:%d 2>/dev/null", bin, port);
    CHECK_INT(WEXITSTATUS(system(cmd)), 1);
    snprintf(cmd, sizeof(cmd), "%s sim --help >/dev/null", bin);
    CHECK_INT(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof(cmd), "%s sim --slots 65537 2>/dev/null", bin);
    CHECK_INT(WEXITSTATUS(system(cmd)), 2);
}

/* --stamp and --stamp-log: the comments and the log carry the same send
 * times, one log line per streamed request, keyed by X-Request-Id. */
static void test_stamp_log(void)
{
    char dir[] = "/tmp/tokentap-sim-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof(path), "%s/stamps.jsonl", dir);
    const char *args[] = {"sim", "--listen", "127.0.0.1:0", "--decode-tps", "1000", "--stamp",
                          "--stamp-log", path, NULL};
    struct itest_proc sim;
    itest_spawn(&sim, args);
    const char *stream = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,"
                         "\"max_tokens\":5}";
    const char *plain = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5}";
    struct itest_resp r1, r2, r3;
    itest_request(sim.port, "POST", "/v1/chat/completions", "X-Request-Id: bench-7\r\n", stream,
                  strlen(stream), &r1);
    itest_request(sim.port, "POST", "/v1/chat/completions", "X-Request-Id: plain\r\n", plain,
                  strlen(plain), &r2);
    itest_request(sim.port, "POST", "/v1/chat/completions", NULL, stream, strlen(stream), &r3);
    CHECK_INT(r1.status, 200);
    CHECK_INT(r2.status, 200);
    CHECK_INT(r3.status, 200);
    CHECK_INT(itest_stop(&sim), 0);

    /* The comments of the first stream, in order. */
    unsigned long long want[16];
    size_t n_want = 0;
    for (const char *p = strstr(r1.body, ": t="); p && n_want < 16; p = strstr(p + 1, ": t="))
        want[n_want++] = strtoull(p + 4, NULL, 10);
    CHECK_INT(n_want, 5);

    size_t len = 0;
    char *log = itest_read_file(path, &len);
    char *nl = strchr(log, '\n');
    CHECK(nl != NULL);
    *nl = '\0';
    cJSON *a = cJSON_Parse(log);
    cJSON *b = nl ? cJSON_Parse(nl + 1) : NULL;
    CHECK(a && b);
    CHECK(strchr(nl + 1, '\n') && strchr(nl + 1, '\n')[1] == '\0'); /* two lines: not the plain one */
    if (a && b) {
        const cJSON *id = cJSON_GetObjectItem(a, "request_id");
        CHECK(cJSON_IsString(id) && strcmp(id->valuestring, "bench-7") == 0);
        CHECK(cJSON_IsString(cJSON_GetObjectItem(a, "id")) &&
              strstr(r1.body, cJSON_GetObjectItem(a, "id")->valuestring) != NULL);
        const cJSON *st = cJSON_GetObjectItem(a, "stamps_us");
        CHECK_INT(cJSON_GetArraySize(st), 5);
        for (size_t i = 0; i < n_want && i < (size_t)cJSON_GetArraySize(st); i++)
            CHECK_INT((unsigned long long)cJSON_GetArrayItem(st, (int)i)->valuedouble, want[i]);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(b, "request_id")));
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(b, "stamps_us")), 5);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(log);
    itest_resp_free(&r1);
    itest_resp_free(&r2);
    itest_resp_free(&r3);
    unlink(path);
    rmdir(dir);
}

static unsigned long long mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000ull;
}

/* The first --stamp value of a streamed body, 0 if none. */
static unsigned long long first_stamp(const char *body)
{
    const char *p = body ? strstr(body, ": t=") : NULL;
    return p ? strtoull(p + 4, NULL, 10) : 0;
}

/* X-Sim-First-Token-At: the first token not before T, and on T's grid of
 * decode steps (50 ms here) when the request comes after T. */
static void test_first_token_at(void)
{
    const char *args[] = {"sim", "--listen", "127.0.0.1:0", "--decode-tps", "20", "--stamp", NULL};
    struct itest_proc sim;
    itest_spawn(&sim, args);
    const char *stream = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,"
                         "\"max_tokens\":2}";
    char hdr[96];
    struct itest_resp r;

    /* Ahead: the first token waits for T. */
    unsigned long long t = mono_us() + 300000;
    snprintf(hdr, sizeof(hdr), "X-Sim-First-Token-At: %llu\r\n", t);
    itest_request(sim.port, "POST", "/v1/chat/completions", hdr, stream, strlen(stream), &r);
    CHECK_INT(r.status, 200);
    CHECK(first_stamp(r.body) >= t);
    itest_resp_free(&r);

    /* Behind, by 1,030 ms: a first token at arrival would fall ~30 ms into
     * a step of T's grid, on the grid it falls at its start (plus the
     * loop's delay, far below 25 ms). */
    t = mono_us() - 1030000;
    snprintf(hdr, sizeof(hdr), "X-Sim-First-Token-At: %llu\r\n", t);
    itest_request(sim.port, "POST", "/v1/chat/completions", hdr, stream, strlen(stream), &r);
    CHECK_INT(r.status, 200);
    unsigned long long s0 = first_stamp(r.body);
    CHECK(s0 > t);
    if (s0 > t)
        CHECK((s0 - t) % 50000 < 25000);
    itest_resp_free(&r);

    /* Not a number, and too far ahead: 400, nothing generated. */
    itest_request(sim.port, "POST", "/v1/chat/completions", "X-Sim-First-Token-At: 12ab\r\n", stream,
                  strlen(stream), &r);
    CHECK_INT(r.status, 400);
    CHECK(r.body && strstr(r.body, "X-Sim-First-Token-At") != NULL);
    itest_resp_free(&r);
    snprintf(hdr, sizeof(hdr), "X-Sim-First-Token-At: %llu\r\n", mono_us() + 61000000ull);
    itest_request(sim.port, "POST", "/v1/chat/completions", hdr, stream, strlen(stream), &r);
    CHECK_INT(r.status, 400);
    itest_resp_free(&r);
    CHECK_INT(itest_stop(&sim), 0);
}

/* Thousands of slots, for load-generator benchmarks. */
static void test_many_slots(void)
{
    const char *args[] = {"sim", "--listen", "127.0.0.1:0", "--slots", "5000", NULL};
    struct itest_proc sim;
    itest_spawn(&sim, args);
    struct itest_resp r;
    itest_request(sim.port, "GET", "/props", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "\"total_slots\":5000") != NULL);
    itest_resp_free(&r);
    CHECK_INT(itest_stop(&sim), 0);
}

/* ignore_eos (which replay asks for, as llama-server understands it): the
 * answer runs to max_tokens, past where the made-up answer would end
 * (48..431 tokens), on every API. */
static void test_ignore_eos(int port)
{
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"go on\"}],\"max_tokens\":520,"
                       "\"ignore_eos\":true}";
    const char *anth = "{\"model\":\"m\",\"max_tokens\":470,\"ignore_eos\":true,\"messages\":[{\"role\":"
                       "\"user\",\"content\":\"go on\"}]}";
    const char *plain = "{\"messages\":[{\"role\":\"user\",\"content\":\"go on\"}],\"max_tokens\":520}";
    struct itest_resp r;
    itest_request(port, "POST", "/v1/chat/completions", NULL, chat, strlen(chat), &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(json_int(r.body, "\"completion_tokens\":"), 520);
    CHECK(strstr(r.body, "\"finish_reason\":\"length\"") != NULL);
    itest_resp_free(&r);
    itest_request(port, "POST", "/v1/messages", NULL, anth, strlen(anth), &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(json_int(r.body, "\"output_tokens\":"), 470);
    CHECK(strstr(r.body, "\"stop_reason\":\"max_tokens\"") != NULL);
    itest_resp_free(&r);
    /* Without it the answer ends by itself. */
    itest_request(port, "POST", "/v1/chat/completions", NULL, plain, strlen(plain), &r);
    CHECK(json_int(r.body, "\"completion_tokens\":") < 520);
    CHECK(strstr(r.body, "\"finish_reason\":\"stop\"") != NULL);
    itest_resp_free(&r);
}

/* A chat body of one user message: `words` words seeded by `seed`,
 * then `extra` more seeded by seed + 1 (so A and A+more share A). */
static char *words_body(unsigned seed, size_t words, size_t extra)
{
    static const char *const vocab[] = {"red", "sky", "dog", "cat", "sun", "map", "box", "pen"};
    size_t cap = (words + extra) * 4 + 128;
    char *b = malloc(cap);
    size_t n = (size_t)snprintf(b, cap, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    for (size_t i = 0; i < words + extra; i++) {
        unsigned s = (i < words ? seed : seed + 1) * 2654435761u + (unsigned)i * 40503u;
        n += (size_t)snprintf(b + n, cap - n, " %s", vocab[(s >> 13) % 8]);
    }
    snprintf(b + n, cap - n, "\"}],\"max_tokens\":2}");
    return b;
}

static long cache_n_of(int port, const char *body)
{
    struct itest_resp r;
    itest_request(port, "POST", "/v1/chat/completions", NULL, body, strlen(body), &r);
    CHECK_INT(r.status, 200);
    long n = json_int(r.body, "\"cache_n\":");
    itest_resp_free(&r);
    return n;
}

/* The slot cache as llama-server keeps it: a request goes to the free slot
 * whose cached prompt shares the longest prefix with it, only the rest is
 * prefilled (cache_n tokens come from the cache), and a slot's cache is
 * what it last ran. With two slots, A and B keep theirs and A grown by a
 * turn finds A's; with one, B replaced A and the grown A starts over. */
static void test_slot_cache(void)
{
    char *a = words_body(1, 1000, 0), *b = words_body(2, 1000, 0), *a2 = words_body(1, 1000, 200);
    for (int slots = 1; slots <= 2; slots++) {
        struct itest_proc sim;
        char n[8];
        snprintf(n, sizeof(n), "%d", slots);
        const char *args[] = {"sim", "--listen", "127.0.0.1:0", "--slots", n, "--decode-tps", "2000",
                              "--prefill-tps", "1000000", NULL};
        itest_spawn(&sim, args);
        CHECK_INT(cache_n_of(sim.port, a), 0);
        CHECK(cache_n_of(sim.port, b) < 10); /* at most the template's start */
        long hit = cache_n_of(sim.port, a2);
        if (slots == 2)
            CHECK(hit >= 1000 && hit <= 1010); /* the 1000 words (4 bytes, a token each) and the template's start */
        else
            CHECK(hit < 10);
        CHECK_INT(itest_stop(&sim), 0);
    }
    free(a);
    free(b);
    free(a2);
}

int main(void)
{
    struct itest_proc sim;
    const char *args[] = {"sim", "--listen", "127.0.0.1:0", "--decode-tps", "200", "--max-body",
                          "1M", NULL};
    itest_spawn(&sim, args);
    test_stream_shapes(sim.port);
    test_chunks(sim.port);
    test_faults(sim.port);
    test_thinking(sim.port);
    test_ignore_eos(sim.port);
    test_bad_input(sim.port);
    test_keepalive(sim.port);
    test_cli_errors(sim.port);
    CHECK_INT(itest_stop(&sim), 0);

    test_queueing();
    test_timings();
    test_disconnect_frees_slot();
    test_many_slots();
    test_slot_cache();
    test_stamp_log();
    test_first_token_at();
    return check_done("test_sim");
}
