/* Unit tests for the trace module: entries written by the writer thread
 * into a temporary directory and read back (byte-identical bodies, inline
 * and base64), redaction, rotation, queue overflow accounting, torn and
 * bad lines with path:line errors, and the two import formats (simple
 * request lines, length-only lines checked against the simulator's token
 * count). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "check.h"
#include "sim/sim_prompt.h"
#include "sim/sim_text.h"
#include "tap/trace.h"

/* ---- helpers ---- */

static char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/tokentap-trace-XXXXXX", base && base[0] ? base : "/tmp");
    char *d = mkdtemp(path);
    return d ? strdup(d) : NULL;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files in dir, sorted by name (full paths, malloc'd). */
static size_t list_files(const char *dir, char ***ret)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        struct stat sb;
        if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
            continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        names[n++] = strdup(path);
    }
    if (d)
        closedir(d);
    qsort(names, n, sizeof(*names), cmp_names);
    *ret = names;
    return n;
}

static void free_list(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static char *slurp(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    fclose(f);
    s[got] = '\0';
    *ret_len = got;
    return s;
}

static void spit(const char *path, const char *s, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(s, 1, len, f);
        fclose(f);
    }
}

/* Removes dir and everything under it (flat files and subdirectories). */
static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            rm_rf(path);
        else
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static size_t count_lines(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '\n';
    return n;
}

static bool contains(const char *hay, size_t len, const char *needle)
{
    return memmem(hay, len, needle, strlen(needle)) != NULL;
}

/* A request body shaped like Claude Code's (system blocks, long message
 * history with tool_use/tool_result, tools), about `size` bytes, with
 * numbers and escapes that any parse-and-reprint would change. */
static char *claude_body(size_t size, size_t *ret_len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(
        b, "{\"model\":\"claude-sonnet-4-5-20250929\",\"max_tokens\": 32000,\"temperature\":1e-7,"
           "\"top_p\":0.99999999999999999999,\"seed\":9007199254740993,\"neg_zero\":-0.0,"
           "\"exp\":1E+2,\"huge\":1.7976931348623157e308,\"tiny\":4.9e-324,\"int_float\":1.0,"
           "\t\"system\" : [{\"type\":\"text\",\"text\":\"You are Claude Code, Anthropic's "
           "official CLI \\u00e9\\u00E9 \\ud83d\\ude00 raw: \xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
           "\xf0\x9f\x98\x80 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\\u0000\\u001f\","
           "\"cache_control\":{\"type\":\"ephemeral\"}}],\"messages\":[");
    for (int i = 0; evbuffer_get_length(b) < size; i++) {
        evbuffer_add_printf(
            b,
            "%s{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"step %d: fix the "
            "bug in parse(\\\"a\\\\b\\\") \\u2028 and \\u00fc\"}]},"
            "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_%08d\","
            "\"name\":\"Edit\",\"input\":{\"file_path\":\"/src/a%d.c\",\"old_string\":\"int x = "
            "0;\\n\\tif (x) {\\n\\t\\treturn -1;\\n\\t}\",\"new_string\":\"int x = 1;\","
            "\"replace_all\":false,\"n\":[1,-2,3.25,-4.5e-10,0,1e400]}}]},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
            "\"toolu_%08d\",\"content\":\"The file /src/a%d.c has been updated. Here's the "
            "result of running `cat -n`:\\n     1\\tint x = 1;\\n     2\\t/* \\u00bb */\","
            "\"is_error\":null}]}",
            i ? "," : "", i, i, i, i, i);
    }
    evbuffer_add_printf(b, "],\"tools\":[{\"name\":\"Bash\",\"description\":\"Runs a command\","
                           "\"input_schema\":{\"type\":\"object\",\"properties\":{\"command\":"
                           "{\"type\":\"string\"},\"timeout\":{\"type\":\"number\",\"maximum\":"
                           "600000}},\"required\":[\"command\"],\"additionalProperties\":false,"
                           "\"$schema\":\"http://json-schema.org/draft-07/schema#\"}}],"
                           "\"metadata\":{\"user_id\":\"user_abc_account__session_x\"},"
                           "\"stream\":true}");
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    *ret_len = n;
    return s;
}

static struct trace_writer *open_writer(const char *dir, const char *prefix, uint64_t max_file,
                                        uint64_t queue, bool events)
{
    static const char *const extra[] = {"X-Custom-Secret"};
    struct trace_writer_options o = {
        .dir = dir,
        .prefix = prefix,
        .max_file_bytes = max_file,
        .queue_bytes = queue,
        .redact_headers = extra,
        .n_redact_headers = 1,
        .events = events,
    };
    struct trace_writer *w = NULL;
    CHECK_INT(trace_writer_open(&o, &w), 0);
    return w;
}

/* A small entry with the given id and body (borrowed pointers). */
static struct trace_entry simple_entry(uint64_t id, const char *body, size_t body_len)
{
    struct trace_entry e;
    trace_entry_init(&e);
    e.id = id;
    e.t_wall_us = 1700000000000000ull + id;
    e.t_mono_us = 5000000 + id * 1000;
    e.method = "POST";
    e.path = "/v1/chat/completions";
    e.body = (char *)body;
    e.body_len = body_len;
    e.status = 200;
    return e;
}

/* Reads every entry of path, failing the test on any error. */
static size_t read_all(const char *path, struct trace_entry *out, size_t max)
{
    struct trace_reader *r = NULL;
    struct trace_error err;
    size_t n = 0;
    CHECK_INT(trace_reader_open(path, &r, &err), 0);
    if (!r)
        return 0;
    for (;;) {
        struct trace_entry e;
        int rc = trace_reader_next(r, &e, &err);
        if (rc < 0)
            fprintf(stderr, "unexpected: %s\n", err.msg);
        CHECK(rc >= 0);
        if (rc <= 0)
            break;
        if (n < max)
            out[n] = e;
        else
            trace_entry_finish(&e);
        n++;
    }
    trace_reader_close(r);
    return n;
}

/* ---- tests ---- */

static void test_roundtrip(void)
{
    char *dir = make_tmpdir();
    CHECK(dir != NULL);
    struct trace_writer *w = open_writer(dir, "rt", 0, 0, true);
    if (!w)
        return;

    size_t big_len;
    char *big = claude_body(300 * 1024, &big_len);
    CHECK(big_len >= 300 * 1024);
    char binary[600];
    for (size_t i = 0; i < sizeof(binary); i++)
        binary[i] = (char)(i * 7 + (i >> 8));
    const char pretty[] = "{\n  \"messages\": [],\n  \"stream\": true\n}";
    const char trailing_nl[] = "{\"a\":1}\n";
    const char bad_utf8[] = "{\"a\":\"\xff\xfe\"}";
    const char scalar[] = "42";
    const char spaced[] = " {\"a\":1}";
    /* Valid for RFC 8259's grammar, rejected by some parsers (cJSON). */
    const char lone[] = "{\"s\":\"\\ud800\"}";
    struct {
        const char *body;
        size_t len;
        bool inline_expected;
    } bodies[] = {
        {big, big_len, true},
        {binary, sizeof(binary), false},
        {pretty, sizeof(pretty) - 1, false},
        {trailing_nl, sizeof(trailing_nl) - 1, false},
        {NULL, 0, false},
        {bad_utf8, sizeof(bad_utf8) - 1, false},
        {scalar, 1, true}, /* "4": still JSON */
        {scalar, 2, true},
        {spaced, sizeof(spaced) - 1, false},
        {binary, 1, false},
        {binary, 2, false},
        {binary, 3, false},
        {binary, 4, false},
        {binary, 5, false},
        {lone, sizeof(lone) - 1, true},
    };
    size_t nb = sizeof(bodies) / sizeof(bodies[0]);

    struct trace_header headers[] = {
        {"Host", "127.0.0.1:8080"},
        {"Authorization", "Bearer sk-SECRET-1"},
        {"x-api-key", "SECRET-2"},
        {"Cookie", "a=SECRET-3"},
        {"Proxy-Authorization", "Basic SECRET-4"},
        {"x-custom-secret", "SECRET-5"},
        {"AUTHORIZATION", "SECRET-6"},
        {"User-Agent", "claude-cli/2.0.14 (external, cli)"},
        {"anthropic-version", "2023-06-01"},
        {"X-Quote", "a \"b\" \\ c\x01"},
    };
    size_t nh = sizeof(headers) / sizeof(headers[0]);
    const char content[] = "Hello \"world\"\n\t\x01 \xe6\x97\xa5 \0after-nul";
    struct trace_event events[] = {
        {1500, "{\"choices\":[{\"delta\":{\"content\":\"He\\nllo\"}}]}", 0},
        {2600, "line one\nline two \"q\" \x02", 0},
        {9000, "[DONE]", 0},
    };
    for (size_t i = 0; i < 3; i++)
        events[i].len = strlen(events[i].data);

    for (size_t i = 0; i < nb; i++) {
        struct trace_entry e = simple_entry(i, bodies[i].body, bodies[i].len);
        e.t_mono_us = i == 2 ? 4000000 : 5000000 + i * 1000; /* entry 2 started first */
        e.session = i % 2 ? "sess-1" : NULL;
        e.client = i % 3 ? "claude-cli/2.0.14" : NULL;
        e.path = "/v1/messages?beta=true";
        e.headers = headers;
        e.n_headers = nh;
        e.content = (char *)content;
        e.content_len = sizeof(content) - 1;
        e.reasoning = i % 2 ? "thinking..." : NULL;
        e.reasoning_len = i % 2 ? 11 : 0;
        e.tools = "{\"cmd\":\"ls\"}";
        e.tools_len = 12;
        e.finish_reason = i % 2 ? NULL : "stop";
        e.usage = i % 2 ? NULL : "{\n  \"prompt_tokens\": 10,\n  \"completion_tokens\": 2, \"s\": \"a b\"\n}";
        e.timings = i % 2 ? "{\"prompt_ms\":12.5,\"predicted_n\":2}" : NULL;
        e.events = events;
        e.n_events = 3;
        e.status = i == 4 ? 0 : 200;
        CHECK_INT(trace_writer_add(w, &e), 0);
    }
    struct trace_writer_stats st;
    trace_writer_close(w, &st);
    CHECK_INT(st.lines_added, nb);
    CHECK_INT(st.lines_written, nb);
    CHECK_INT(st.lines_dropped, 0);
    CHECK_INT(st.write_errors, 0);
    CHECK_INT(st.files, 1);
    CHECK_INT(st.queued_lines, 0);
    CHECK_INT(st.queued_bytes, 0);

    char **files;
    size_t nf = list_files(dir, &files);
    CHECK_INT(nf, 1);
    if (nf != 1)
        goto out;
    const char *name = strrchr(files[0], '/') + 1;
    CHECK(strncmp(name, "rt-", 3) == 0 && strlen(name) == strlen("rt-20250101-000000-000.jsonl"));
    size_t flen;
    char *file = slurp(files[0], &flen);
    CHECK_INT(st.bytes_written, flen);
    CHECK_INT(count_lines(file, flen), nb);
    CHECK(!contains(file, flen, "SECRET"));
    CHECK(contains(file, flen, "[\"Authorization\",\"<redacted>\"]"));
    CHECK(contains(file, flen, "[\"x-custom-secret\",\"<redacted>\"]"));
    /* The big body is inline, verbatim; usage is compacted onto the line. */
    CHECK(contains(file, flen, "\"body\":{\"model\":\"claude-sonnet-4-5-20250929\",\"max_tokens\": 32000"));
    CHECK(contains(file, flen, "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,\"s\":\"a b\"}"));
    /* Every line is strict JSON for other tools too. */
    size_t start = 0;
    for (size_t i = 0; i < nb; i++) {
        const char *nl = memchr(file + start, '\n', flen - start);
        size_t end = (size_t)(nl - file);
        cJSON *j = cJSON_ParseWithLength(file + start, end - start);
        if (bodies[i].body == lone) {
            start = end + 1;
            cJSON_Delete(j);
            continue;
        }
        CHECK(cJSON_IsObject(j));
        CHECK_INT(cJSON_GetObjectItem(j, "v") ? cJSON_GetObjectItem(j, "v")->valueint : -1, 1);
        CHECK(cJSON_HasObjectItem(j, "events"));
        CHECK(cJSON_HasObjectItem(j, bodies[i].inline_expected ? "body" : "body_b64"));
        CHECK(!cJSON_HasObjectItem(j, bodies[i].inline_expected ? "body_b64" : "body"));
        cJSON_Delete(j);
        start = end + 1;
    }
    free(file);

    struct trace_entry got[32];
    size_t n = read_all(files[0], got, 32);
    CHECK_INT(n, nb);
    for (size_t i = 0; i < n && i < nb; i++) {
        struct trace_entry *g = &got[i];
        CHECK_INT(g->source, TRACE_SOURCE_V1);
        CHECK_INT(g->line, i + 1);
        CHECK_INT(g->id, i);
        CHECK_INT(g->t_wall_us, 1700000000000000ull + i);
        CHECK_INT(g->offset_us, i == 2 ? -1000000 : (int64_t)i * 1000);
        CHECK_INT(g->max_tokens, -1);
        CHECK_MEM(g->body, g->body_len, bodies[i].body ? bodies[i].body : "", bodies[i].len);
        CHECK_STR(g->method, "POST");
        CHECK_STR(g->path, "/v1/messages?beta=true");
        if (i % 2)
            CHECK_STR(g->session, "sess-1");
        else
            CHECK(g->session == NULL);
        if (i % 3)
            CHECK_STR(g->client, "claude-cli/2.0.14");
        else
            CHECK(g->client == NULL);
        CHECK_INT(g->n_headers, nh);
        for (size_t h = 0; h < nh && h < g->n_headers; h++) {
            CHECK_STR(g->headers[h].name, headers[h].name);
            bool secret = strstr(headers[h].value, "SECRET") != NULL;
            CHECK_STR(g->headers[h].value, secret ? TRACE_REDACTED : headers[h].value);
        }
        CHECK_INT(g->status, i == 4 ? 0 : 200);
        CHECK_MEM(g->content, g->content_len, content, sizeof(content) - 1);
        CHECK_MEM(g->reasoning, g->reasoning_len, i % 2 ? "thinking..." : "", i % 2 ? 11u : 0u);
        CHECK_MEM(g->tools, g->tools_len, "{\"cmd\":\"ls\"}", 12);
        if (i % 2) {
            CHECK(g->finish_reason == NULL);
            CHECK(g->usage == NULL);
            CHECK_STR(g->timings, "{\"prompt_ms\":12.5,\"predicted_n\":2}");
        } else {
            CHECK_STR(g->finish_reason, "stop");
            CHECK_STR(g->usage, "{\"prompt_tokens\":10,\"completion_tokens\":2,\"s\":\"a b\"}");
            CHECK(g->timings == NULL);
        }
        CHECK_INT(g->n_events, 3);
        for (size_t k = 0; k < 3 && k < g->n_events; k++) {
            CHECK_INT(g->events[k].offset_us, events[k].offset_us);
            CHECK_MEM(g->events[k].data, g->events[k].len, events[k].data, events[k].len);
        }
        trace_entry_finish(g);
    }
out:
    free_list(files, nf);
    free(big);
    rm_rf(dir);
    free(dir);
}

/* Without event recording the key is absent, whatever the caller passes. */
static void test_no_events(void)
{
    char *dir = make_tmpdir();
    struct trace_writer *w = open_writer(dir, NULL, 0, 0, false);
    if (!w)
        return;
    struct trace_event ev = {10, "x", 1};
    struct trace_entry e = simple_entry(7, "{}", 2);
    e.events = &ev;
    e.n_events = 1;
    CHECK_INT(trace_writer_add(w, &e), 0);
    char cur[1024];
    trace_writer_current_file(w, cur, sizeof(cur));
    CHECK(strstr(cur, "/trace-") != NULL);
    trace_writer_close(w, NULL);
    size_t len;
    char *file = slurp(cur, &len);
    CHECK(file && !contains(file, len, "\"events\""));
    struct trace_entry got;
    CHECK_INT(read_all(cur, &got, 1), 1);
    CHECK_INT(got.n_events, 0);
    CHECK_MEM(got.body, got.body_len, "{}", 2);
    trace_entry_finish(&got);
    free(file);
    rm_rf(dir);
    free(dir);
}

static void test_rotation(void)
{
    char *dir = make_tmpdir();
    struct trace_writer *w = open_writer(dir, "rot", 4096, 0, false);
    if (!w)
        return;
    char body[600];
    memset(body, 'x', sizeof(body));
    body[0] = '"';
    body[sizeof(body) - 1] = '"';
    for (uint64_t i = 0; i < 60; i++) {
        struct trace_entry e = simple_entry(i, body, sizeof(body));
        CHECK_INT(trace_writer_add(w, &e), 0);
    }
    struct trace_writer_stats st;
    trace_writer_close(w, &st);
    CHECK_INT(st.lines_written, 60);
    CHECK(st.files >= 8);

    char **files;
    size_t nf = list_files(dir, &files);
    CHECK_INT(nf, st.files);
    uint64_t next_id = 0;
    for (size_t f = 0; f < nf; f++) {
        size_t len;
        char *s = slurp(files[f], &len);
        CHECK(strstr(files[f], "/rot-") != NULL);
        CHECK(len > 0 && len <= 4096 && s[len - 1] == '\n');
        free(s);
        /* File names sort in writing order: ids run on across files. */
        struct trace_entry got[16];
        size_t n = read_all(files[f], got, 16);
        CHECK(n > 0 && n <= 16);
        for (size_t i = 0; i < n && i < 16; i++) {
            CHECK_INT(got[i].id, next_id);
            next_id++;
            CHECK_MEM(got[i].body, got[i].body_len, body, sizeof(body));
            trace_entry_finish(&got[i]);
        }
    }
    CHECK_INT(next_id, 60);
    free_list(files, nf);
    rm_rf(dir);
    free(dir);
}

/* When a new file cannot be created (here: the directory is gone), lines
 * go on into the current file and the failure is counted. */
static void test_rotate_error(void)
{
    char *dir = make_tmpdir();
    struct trace_writer *w = open_writer(dir, "gone", 1024, 0, false);
    if (!w)
        return;
    static char body[800];
    memset(body, 'x', sizeof(body));
    body[0] = '"';
    body[sizeof(body) - 1] = '"';
    struct trace_entry e = simple_entry(0, body, sizeof(body));
    CHECK_INT(trace_writer_add(w, &e), 0);
    struct trace_writer_stats st;
    do {
        usleep(1000);
        trace_writer_stats(w, &st);
    } while (st.lines_written == 0);
    char path[1024];
    trace_writer_current_file(w, path, sizeof(path));
    CHECK_INT(unlink(path), 0);
    CHECK_INT(rmdir(dir), 0);
    for (uint64_t i = 1; i < 4; i++) {
        e.id = i;
        CHECK_INT(trace_writer_add(w, &e), 0);
    }
    trace_writer_close(w, &st);
    CHECK_INT(st.lines_written, 4);
    CHECK_INT(st.write_errors, 0);
    CHECK_INT(st.rotate_errors, 3);
    CHECK_INT(st.files, 1);
    free(dir);
}

static void test_overflow(void)
{
    char *dir = make_tmpdir();
    /* A line bigger than the whole queue never fits: dropped, counted. */
    struct trace_writer *w = open_writer(dir, "ovf", 0, 512, false);
    if (!w)
        return;
    static char body[1024];
    memset(body, 'x', sizeof(body));
    body[0] = '"';
    body[sizeof(body) - 1] = '"';
    struct trace_entry e = simple_entry(1, body, sizeof(body));
    CHECK_INT(trace_writer_add(w, &e), -ENOBUFS);
    e.body_len = 2; /* "x" would not be JSON: "\"x" is base64'd, still small */
    CHECK_INT(trace_writer_add(w, &e), 0);
    /* Invalid entries are dropped and counted too. */
    struct trace_entry bad = simple_entry(2, "{}", 2);
    bad.usage = "{not json";
    CHECK_INT(trace_writer_add(w, &bad), -EINVAL);
    bad.usage = NULL;
    bad.method = NULL;
    CHECK_INT(trace_writer_add(w, &bad), -EINVAL);
    struct trace_writer_stats st;
    trace_writer_close(w, &st);
    CHECK_INT(st.lines_added, 4);
    CHECK_INT(st.lines_written, 1);
    CHECK_INT(st.lines_dropped, 3);
    CHECK_INT(st.dropped_queue_full, 1);

    /* A burst into a 16 KiB queue: the caller is never held up, so lines
     * are dropped; everything is accounted for and every written line is
     * whole. */
    w = open_writer(dir, "burst", 0, 16384, false);
    if (!w)
        return;
    const int burst = 20000;
    int queued = 0;
    for (int i = 0; i < burst; i++) {
        struct trace_entry b = simple_entry((uint64_t)i, body, sizeof(body));
        int r = trace_writer_add(w, &b);
        CHECK(r == 0 || r == -ENOBUFS);
        queued += r == 0;
    }
    trace_writer_close(w, &st);
    CHECK_INT(st.lines_added, burst);
    CHECK(st.lines_dropped > 0);
    CHECK_INT(st.lines_dropped, st.dropped_queue_full);
    CHECK_INT(st.lines_written + st.lines_dropped + st.write_errors, burst);
    CHECK_INT(st.lines_written, queued);
    fprintf(stderr, "burst: %d lines, %llu written, %llu dropped\n", burst,
            (unsigned long long)st.lines_written, (unsigned long long)st.lines_dropped);
    char **files;
    size_t nf = list_files(dir, &files);
    size_t lines = 0;
    for (size_t f = 0; f < nf; f++) {
        if (!strstr(files[f], "/burst-"))
            continue;
        struct trace_reader *r;
        struct trace_error err;
        CHECK_INT(trace_reader_open(files[f], &r, &err), 0);
        struct trace_entry g;
        int rc;
        uint64_t last = 0;
        while ((rc = trace_reader_next(r, &g, &err)) == 1) {
            CHECK(lines == 0 || g.id > last); /* order kept, drops leave gaps */
            last = g.id;
            CHECK_INT(g.body_len, sizeof(body));
            trace_entry_finish(&g);
            lines++;
        }
        CHECK_INT(rc, 0);
        trace_reader_close(r);
    }
    CHECK_INT(lines, st.lines_written);
    free_list(files, nf);
    rm_rf(dir);
    free(dir);
}

/* A file size limit makes write() fail part-way (EFBIG, like a full
 * disk): the partial line is cut off again, the failure counted, and the
 * file keeps only whole lines. */
static void test_write_errors(void)
{
    char *dir = make_tmpdir();
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    struct trace_writer *w = open_writer(dir, "full", 0, 0, false);
    if (!w)
        return;
    static char body[2000];
    memset(body, 'x', sizeof(body));
    body[0] = '"';
    body[sizeof(body) - 1] = '"';
    struct trace_entry e = simple_entry(0, body, sizeof(body));
    CHECK_INT(trace_writer_add(w, &e), 0);
    struct trace_writer_stats st;
    do { /* the first line is on disk before the limit goes on */
        usleep(1000);
        trace_writer_stats(w, &st);
    } while (st.lines_written == 0);
    lim = old;
    lim.rlim_cur = (rlim_t)(st.bytes_written * 3 + st.bytes_written / 2);
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (uint64_t i = 1; i < 6; i++) {
        e.id = i;
        CHECK_INT(trace_writer_add(w, &e), 0);
    }
    char path[1024];
    trace_writer_current_file(w, path, sizeof(path));
    trace_writer_close(w, &st);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    CHECK_INT(st.lines_written, 3);
    CHECK_INT(st.write_errors, 3);
    size_t len;
    char *s = slurp(path, &len);
    CHECK_INT(len, st.bytes_written);
    CHECK(len > 0 && s[len - 1] == '\n');
    struct trace_entry got[8];
    CHECK_INT(read_all(path, got, 8), 3);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(got[i].id, i);
        trace_entry_finish(&got[i]);
    }
    free(s);
    rm_rf(dir);
    free(dir);
}

static void test_torn(void)
{
    char *dir = make_tmpdir();
    struct trace_writer *w = open_writer(dir, "torn", 0, 0, false);
    if (!w)
        return;
    for (uint64_t i = 0; i < 5; i++) {
        struct trace_entry e = simple_entry(i, "{\"messages\":[]}", 15);
        CHECK_INT(trace_writer_add(w, &e), 0);
    }
    char path[1024];
    trace_writer_current_file(w, path, sizeof(path));
    trace_writer_close(w, NULL);
    size_t len;
    char *s = slurp(path, &len);

    /* Cut mid-line: four entries, then the torn fifth, then the end. */
    spit(path, s, len - 10);
    struct trace_reader *r;
    struct trace_error err;
    CHECK_INT(trace_reader_open(path, &r, &err), 0);
    struct trace_entry g;
    for (uint64_t i = 0; i < 4; i++) {
        CHECK_INT(trace_reader_next(r, &g, &err), 1);
        CHECK_INT(g.id, i);
        trace_entry_finish(&g);
    }
    CHECK_INT(trace_reader_next(r, &g, &err), -EBADMSG);
    char want[1100];
    snprintf(want, sizeof(want), "%s:5: incomplete last line", path);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0);
    CHECK_INT(trace_reader_next(r, &g, &err), 0);
    CHECK_INT(trace_reader_next(r, &g, &err), 0);
    trace_reader_close(r);

    /* Only the newline lost: the last line is whole, so it is read. */
    spit(path, s, len - 1);
    struct trace_entry all[8];
    CHECK_INT(read_all(path, all, 8), 5);
    for (int i = 0; i < 5; i++)
        trace_entry_finish(&all[i]);
    free(s);
    rm_rf(dir);
    free(dir);
}

/* Expects the next call to fail with "path:line: msg_start...". */
static void expect_error(struct trace_reader *r, const char *path, int line, int code,
                         const char *msg_start)
{
    struct trace_entry g;
    struct trace_error err;
    int rc = trace_reader_next(r, &g, &err);
    CHECK_INT(rc, code);
    if (rc == 1)
        trace_entry_finish(&g);
    char want[1100];
    snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg_start);
    if (rc < 0 && strncmp(err.msg, want, strlen(want)) != 0) {
        check_failures++;
        fprintf(stderr, "error \"%s\" does not start with \"%s\"\n", err.msg, want);
    }
    check_count++;
}

static void test_errors(void)
{
    char *dir = make_tmpdir();
    char path[1024];
    snprintf(path, sizeof(path), "%s/bad.jsonl", dir);
    char longline[400];
    memset(longline, ' ', sizeof(longline));
    memcpy(longline, "{\"prompt\":\"", 11);
    memcpy(longline + sizeof(longline) - 3, "\"}\n", 3);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b,
                        "{\"v\":7,\"id\":1}\n"                                         /* 1 */
                        "{\"v\":1,\"method\":\"GET\",\"path\":\"/health\"}\n"          /* 2 ok */
                        "not json\n"                                                   /* 3 */
                        "[1,2]\n"                                                      /* 4 */
                        "\n"                                                           /* 5 */
                        "   \r\n"                                                      /* 6 */
                        "{\"foo\":1}\n"                                                /* 7 */
                        "{\"v\":1,\"path\":\"/x\"}\n"                                  /* 8 */
                        "{\"v\":1,\"method\":\"GET\",\"path\":\"/\",\"body_b64\":\"@\"}\n" /* 9 */
                        "{\"v\":0}\n"                                                  /* 10 */
                        "{\"v\":\"1\"}\n"                                              /* 11 */
                        "{\"v\":1,\"method\":\"GET\",\"path\":\"/\",\"headers\":[[\"a\"]]}\n" /* 12 */
                        "{\"v\":1,\"method\":\"GET\",\"path\":\"/\",\"status\":-1}\n"  /* 13 */
                        "{\"input_length\":100}\n"                                     /* 14 */
                        "{\"input_length\":99999999,\"output_length\":1}\n"            /* 15 */
                        "{\"messages\":{}}\n"                                          /* 16 */
                        "{\"prompt\":\"x\",\"timestamp\":\"soon\"}\n");                /* 17 */
    evbuffer_add(b, longline, sizeof(longline));                                       /* 18 */
    evbuffer_add_printf(b, "{\"prompt\":\"ok\"}\n"                                   /* 19 ok */
                           "{\"v\":1,\"method\":\"GET\",\"path\":\"\"}\n"             /* 20 */
                           "{\"v\":1,\"method\":\"GET\",\"path\":\"/a b\"}\n"         /* 21 */
                           "{\"v\":1,\"method\":\"\",\"path\":\"/\"}\n");             /* 22 */
    size_t n = evbuffer_get_length(b);
    spit(path, (const char *)evbuffer_pullup(b, -1), n);
    evbuffer_free(b);

    struct trace_reader *r;
    struct trace_error err;
    CHECK_INT(trace_reader_open(path, &r, &err), 0);
    trace_reader_set_max_line(r, 200);
    char want[1100];
    struct trace_entry g;
    CHECK_INT(trace_reader_next(r, &g, &err), -EBADMSG);
    snprintf(want, sizeof(want),
             "%s:1: trace format version 7 is newer than this tokentap understands (1)", path);
    CHECK_STR(err.msg, want);
    CHECK_INT(trace_reader_next(r, &g, &err), 1);
    CHECK_INT(g.line, 2);
    CHECK_STR(g.method, "GET");
    CHECK_INT(g.body_len, 0);
    CHECK(g.body && g.content && g.reasoning && g.tools);
    trace_entry_finish(&g);
    expect_error(r, path, 3, -EBADMSG, "not valid JSON");
    expect_error(r, path, 4, -EBADMSG, "not a JSON object");
    expect_error(r, path, 7, -EBADMSG, "not a trace line");
    expect_error(r, path, 8, -EBADMSG, "a v1 line needs");
    expect_error(r, path, 9, -EBADMSG, "\"body_b64\" is not valid base64");
    expect_error(r, path, 10, -EBADMSG, "bad trace format version 0");
    expect_error(r, path, 11, -EBADMSG, "bad trace format version \"1\"");
    expect_error(r, path, 12, -EBADMSG, "\"headers\" must be");
    expect_error(r, path, 13, -EBADMSG, "\"status\" must be");
    expect_error(r, path, 14, -EBADMSG, "a length-only line needs \"output_length\"");
    expect_error(r, path, 15, -EBADMSG, "\"input_length\" must be an integer");
    expect_error(r, path, 16, -EBADMSG, "\"messages\" must be an array");
    expect_error(r, path, 17, -EBADMSG, "\"timestamp\" must be");
    expect_error(r, path, 18, -EMSGSIZE, "line longer than 200 bytes");
    CHECK_INT(trace_reader_next(r, &g, &err), 1);
    CHECK_INT(g.line, 19);
    trace_entry_finish(&g);
    /* Replay would send "GET  HTTP/1.1" (fuzz_trace_read found line 20). */
    expect_error(r, path, 20, -EBADMSG, "\"path\" must start with /");
    expect_error(r, path, 21, -EBADMSG, "\"path\" must start with /");
    expect_error(r, path, 22, -EBADMSG, "\"method\" must be a word");
    CHECK_INT(trace_reader_next(r, &g, &err), 0);
    trace_reader_close(r);

    /* A too-long last line without a newline: skipped the same way. */
    spit(path, longline, sizeof(longline) - 1);
    CHECK_INT(trace_reader_open(path, &r, &err), 0);
    trace_reader_set_max_line(r, 100);
    expect_error(r, path, 1, -EMSGSIZE, "line longer than 100 bytes");
    CHECK_INT(trace_reader_next(r, &g, &err), 0);
    trace_reader_close(r);

    /* A missing file. */
    snprintf(want, sizeof(want), "%s/nope.jsonl", dir);
    r = NULL;
    CHECK_INT(trace_reader_open(want, &r, &err), -ENOENT);
    CHECK(r == NULL && strstr(err.msg, "nope.jsonl: ") != NULL);
    rm_rf(dir);
    free(dir);
}

static void test_simple_requests(void)
{
    char *dir = make_tmpdir();
    char path[1024];
    snprintf(path, sizeof(path), "%s/simple.jsonl", dir);
    const char text[] =
        "{\"timestamp\":1500,\"session\":\"s1\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"hi \\u00e9\"}],\"max_tokens\":5}\n"
        "\n"
        "{\"prompt\":\"once upon\",\"stream\":false,\"temperature\":1e-7,\"timestamp\":2500.5}\n"
        "{\"messages\":[],\"session\":42}\r\n"
        "{\"prompt\": [\"a\", \"b\"]}\n";
    spit(path, text, sizeof(text) - 1);
    struct trace_entry g[8];
    size_t n = read_all(path, g, 8);
    CHECK_INT(n, 4);
    if (n != 4)
        goto out;
    CHECK_INT(g[0].source, TRACE_SOURCE_REQUEST);
    CHECK_INT(g[0].line, 1);
    CHECK_STR(g[0].method, "POST");
    CHECK_STR(g[0].path, "/v1/chat/completions");
    CHECK_STR(g[0].session, "s1");
    CHECK_INT(g[0].t_mono_us, 1500000);
    CHECK_INT(g[0].offset_us, 0);
    CHECK_INT(g[0].max_tokens, -1);
    CHECK_STR(g[0].body, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi \\u00e9\"}],"
                         "\"max_tokens\":5,\"stream\":true}");
    CHECK_INT(g[0].n_headers, 1);
    CHECK_STR(g[0].headers[0].name, "Content-Type");
    CHECK_STR(g[0].headers[0].value, "application/json");
    CHECK_INT(g[0].status, 0);

    CHECK_INT(g[1].line, 3);
    CHECK_STR(g[1].path, "/v1/completions");
    CHECK(g[1].session == NULL);
    CHECK_STR(g[1].body, "{\"prompt\":\"once upon\",\"stream\":false,\"temperature\":1e-7}");
    CHECK_INT(g[1].offset_us, 1000500);

    CHECK_INT(g[2].line, 4);
    CHECK_STR(g[2].session, "42");
    CHECK_STR(g[2].body, "{\"messages\":[],\"stream\":true}");
    CHECK_INT(g[2].offset_us, 1000500); /* no timestamp: the previous entry's time */

    CHECK_INT(g[3].line, 5);
    CHECK_STR(g[3].path, "/v1/completions");
    CHECK_STR(g[3].body, "{\"prompt\": [\"a\", \"b\"], \"stream\": true}");
    for (size_t i = 0; i < n; i++)
        trace_entry_finish(&g[i]);
out:
    rm_rf(dir);
    free(dir);
}

/* Prompt tokens the simulator charges for a chat body. */
static long long sim_tokens(const char *body, size_t len, bool *thinking_off, int64_t *max_tokens)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!j)
        return -1;
    char *prompt = NULL;
    size_t plen = 0;
    struct sim_request_error err;
    long long t = -1;
    if (sim_request_render(SIM_API_CHAT, j, true, &prompt, &plen, &err) == 0)
        t = sim_text_count_tokens(plen);
    struct sim_request rq;
    if (sim_request_parse(SIM_API_CHAT, j, true, &rq, &err) == 0) {
        *thinking_off = !rq.thinking;
        *max_tokens = rq.max_tokens;
        CHECK(rq.stream);
        sim_request_finish(&rq);
    }
    free(prompt);
    cJSON_Delete(j);
    return t;
}

static void test_lengths(void)
{
    char *dir = make_tmpdir();
    char path[1024];
    snprintf(path, sizeof(path), "%s/mooncake.jsonl", dir);
    static const unsigned inputs[] = {18, 19, 20, 21, 22, 100, 1000, 6755, 12345, 131072};
    size_t ni = sizeof(inputs) / sizeof(inputs[0]);
    struct evbuffer *b = evbuffer_new();
    for (size_t i = 0; i < ni; i++)
        evbuffer_add_printf(b,
                            "{\"timestamp\": %zu, \"input_length\": %u, \"output_length\": %zu, "
                            "\"hash_ids\": [46, 47, 48]}\n",
                            27482 + i * 1000, inputs[i], 10 + i);
    evbuffer_add_printf(b, "{\"timestamp\":99999,\"input_length\":5,\"output_length\":7,\"session\":\"m\"}\n");
    size_t len = evbuffer_get_length(b);
    spit(path, (const char *)evbuffer_pullup(b, -1), len);
    evbuffer_free(b);

    struct trace_entry g[16];
    size_t n = read_all(path, g, 16);
    CHECK_INT(n, ni + 1);
    for (size_t i = 0; i < n && i < 16; i++) {
        bool last = i == ni;
        CHECK_INT(g[i].source, TRACE_SOURCE_LENGTHS);
        CHECK_STR(g[i].method, "POST");
        CHECK_STR(g[i].path, "/v1/chat/completions");
        CHECK_INT(g[i].max_tokens, last ? 7 : (int64_t)(10 + i));
        CHECK_INT(g[i].offset_us, last ? (99999 - 27482) * 1000ll : (long long)i * 1000000);
        bool off = false;
        int64_t mt = -2;
        long long t = sim_tokens(g[i].body, g[i].body_len, &off, &mt);
        /* Exact for the simulator; below the template's 18 tokens, 18. */
        CHECK_INT(t, last ? 18 : (long long)inputs[i]);
        CHECK(off);
        CHECK_INT(mt, g[i].max_tokens);
        cJSON *j = cJSON_ParseWithLength(g[i].body, g[i].body_len);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "ignore_eos")));
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "stream")));
        CHECK(!cJSON_HasObjectItem(j, "hash_ids"));
        cJSON_Delete(j);
        if (last)
            CHECK_STR(g[i].session, "m");
    }
    /* Different lines start with different text: no accidental prefix hits. */
    const char *p6 = strstr(g[6].body, "\"content\":\""), *p7 = strstr(g[7].body, "\"content\":\"");
    CHECK(p6 && p7 && strncmp(p6, p7, 30) != 0);
    CHECK(strstr(g[6].body, "[trace line 7] ") != NULL);
    for (size_t i = 0; i < n && i < 16; i++)
        trace_entry_finish(&g[i]);
    rm_rf(dir);
    free(dir);
}

static void test_open_errors(void)
{
    char *dir = make_tmpdir();
    struct trace_writer *w = NULL;
    struct trace_writer_options o = {.dir = dir, .prefix = "a/b"};
    CHECK_INT(trace_writer_open(&o, &w), -EINVAL);
    o.prefix = "";
    CHECK_INT(trace_writer_open(&o, &w), -EINVAL);
    o.prefix = NULL;
    o.dir = NULL;
    CHECK_INT(trace_writer_open(&o, &w), -EINVAL);
    CHECK(w == NULL);

    /* Parents are created. */
    char nested[1024];
    snprintf(nested, sizeof(nested), "%s/x/y/z", dir);
    o.dir = nested;
    CHECK_INT(trace_writer_open(&o, &w), 0);
    trace_writer_close(w, NULL);
    struct stat sb;
    CHECK(stat(nested, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 077) == 0);

    /* A file in the way. */
    char file[1024];
    snprintf(file, sizeof(file), "%s/plain", dir);
    spit(file, "x", 1);
    o.dir = file;
    w = NULL;
    CHECK(trace_writer_open(&o, &w) < 0);
    CHECK(w == NULL);
    trace_writer_close(NULL, NULL);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    test_roundtrip();
    test_no_events();
    test_rotation();
    test_rotate_error();
    test_overflow();
    test_write_errors();
    test_torn();
    test_errors();
    test_simple_requests();
    test_lengths();
    test_open_errors();
    return check_done("trace");
}
