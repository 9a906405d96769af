/* Unit tests for the rewrite module: loading and its errors (exact
 * file:line), matching, every action, evaluation order, the override
 * header, dialects, skip reasons, byte fidelity, and the Claude Code
 * example config on a Claude-Code-like fixture body. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "fidelity.h"
#include "core/config.h"
#include "wire/http.h"
#include "core/jsonedit.h"
#include "core/jsonscan.h"
#include "rewrite/rewrite.h"

/* --- Helpers --- */

/* Loads the rewrite: section of inline YAML; NULL (and err) on failure. */
static struct rewrite_rules *load(const char *yaml, struct config_err *err, int *ret_r)
{
    struct config_doc *doc = NULL;
    struct rewrite_rules *rr = NULL;
    int r = config_parse("test.yaml", yaml, strlen(yaml), &doc, err);
    if (r == 0) {
        const cJSON *node = cJSON_GetObjectItemCaseSensitive(config_root(doc), "rewrite");
        r = rewrite_rules_load(doc, node, &rr, err);
    }
    config_free(doc); /* the rules keep their own copies */
    if (ret_r)
        *ret_r = r;
    return r == 0 ? rr : NULL;
}

static struct rewrite_rules *load_ok(int line, const char *yaml)
{
    struct config_err err = {""};
    struct rewrite_rules *rr = load(yaml, &err, NULL);
    check_count++;
    if (!rr) {
        check_failures++;
        fprintf(stderr, "line %d: load failed: %s\n", line, err.msg);
    }
    return rr;
}
#define LOAD(yaml) load_ok(__LINE__, yaml)

static void load_err(int line, const char *yaml, const char *want)
{
    struct config_err err = {""};
    int r;
    struct rewrite_rules *rr = load(yaml, &err, &r);
    check_count++;
    if (rr || r != -EINVAL || strcmp(err.msg, want) != 0) {
        check_failures++;
        fprintf(stderr, "line %d: got %d \"%s\"\n        want \"%s\"\n", line, r, err.msg, want);
    }
    rewrite_rules_free(rr);
}
#define LOAD_ERR(yaml, want) load_err(__LINE__, yaml, want)

/* A request head with the given "Name: value" headers (NULL-terminated).
 * Its header views live in a small ring, enough for the heads one test
 * keeps at once. */
static void make_head(struct http_head *h, const char *const *headers)
{
    static struct http_header ring[4][16];
    static unsigned next;
    struct http_header *views = ring[next++ % 4];
    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    h->headers = views;
    for (size_t i = 0; headers && headers[i] && i < 16; i++) {
        const char *colon = strchr(headers[i], ':');
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        views[i].name = (struct http_str){headers[i], (size_t)(colon - headers[i])};
        views[i].value = (struct http_str){v, strlen(v)};
        h->n_headers++;
    }
}

static const char *const json_headers[] = {"Content-Type: application/json", NULL};

static struct rewrite_request request(const char *path, const struct http_head *head)
{
    return (struct rewrite_request){
        .method = "POST",
        .path = path,
        .path_len = strlen(path),
        .dialect = dialect_from_path(path, strlen(path)),
        .head = head,
        .upstream = "local",
        .override = REWRITE_THINKING_UNSET,
    };
}

/* Runs rewrite_apply; checks it returned 0 and that an output is valid JSON. */
static struct rewrite_result apply_q(int line, const struct rewrite_rules *rr,
                                     const struct rewrite_request *q, const char *body)
{
    struct rewrite_result res;
    memset(&res, 0xa5, sizeof(res));
    int r = rewrite_apply(rr, q, body, body ? strlen(body) : 0, &res);
    check_count++;
    if (r != 0) {
        check_failures++;
        fprintf(stderr, "line %d: rewrite_apply returned %d\n", line, r);
        memset(&res, 0, sizeof(res));
        return res;
    }
    check_count++;
    if (res.changed != (res.body != NULL) ||
        (res.body && (jsonedit_validate(res.body, res.body_len) != 0 ||
                      res.body[res.body_len] != '\0' ||
                      (res.body_len == strlen(body) && memcmp(res.body, body, res.body_len) == 0)))) {
        check_failures++;
        fprintf(stderr, "line %d: bad result body\n", line);
    }
    return res;
}

/* POST path with a JSON Content-Type (and extra headers). */
static struct rewrite_result apply_path(int line, const struct rewrite_rules *rr,
                                        const char *path, const char *body)
{
    struct http_head h;
    make_head(&h, json_headers);
    struct rewrite_request q = request(path, &h);
    return apply_q(line, rr, &q, body);
}
#define CHAT(rr, body) apply_path(__LINE__, rr, "/v1/chat/completions", body)

/* The output body, or the input when unchanged. */
static const char *out_of(const struct rewrite_result *res, const char *in)
{
    return res->body ? res->body : in;
}

/* Checks the output bytes exactly and the skip reason. */
static void check_out(int line, struct rewrite_result *res, const char *in, const char *want,
                      enum rewrite_skip skip)
{
    const char *out = out_of(res, in);
    check_count++;
    if (strcmp(out, want) != 0) {
        check_failures++;
        fprintf(stderr, "line %d: got  %s\n         want %s\n", line, out, want);
    }
    check_count++;
    if (res->skip != skip) {
        check_failures++;
        fprintf(stderr, "line %d: skip '%s', want '%s'\n", line, rewrite_skip_name(res->skip),
                rewrite_skip_name(skip));
    }
    rewrite_result_finish(res);
}
#define CHECK_OUT(res, in, want) check_out(__LINE__, &(res), in, want, REWRITE_SKIP_NONE)

static char *read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0, n;
    do {
        if (len + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 131072;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    *ret_len = len;
    return buf;
}

static char *fixture(const char *rel, size_t *ret_len)
{
    const char *dir = getenv("FIXTURES");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/fixtures", rel);
    char *text = read_file(path, ret_len);
    if (!text)
        fprintf(stderr, "cannot read %s\n", path);
    CHECK(text != NULL);
    return text;
}

/* The value text at pointer (via cJSON, compact), for semantic checks. */
static char *value_at(const char *body, size_t len, const char *path)
{
    cJSON *root = cJSON_ParseWithLength(body, len), *n = root;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *tok = strtok(buf, "/"); n && tok; tok = strtok(NULL, "/"))
        n = cJSON_IsArray(n) ? cJSON_GetArrayItem(n, atoi(tok))
                             : cJSON_GetObjectItemCaseSensitive(n, tok);
    char *s = n ? cJSON_PrintUnformatted(n) : NULL;
    cJSON_Delete(root);
    return s;
}

static void check_value(int line, const char *body, size_t len, const char *path, const char *want)
{
    char *got = value_at(body, len, path);
    check_count++;
    if (!got != !want || (got && strcmp(got, want) != 0)) {
        check_failures++;
        fprintf(stderr, "line %d: %s is %s, want %s\n", line, path, got ? got : "(none)",
                want ? want : "(none)");
    }
    free(got);
}
#define CHECK_VALUE(body, len, path, want) check_value(__LINE__, body, len, path, want)

/* --- Loading --- */

static void test_load_errors(void)
{
    struct config_err err;
    struct rewrite_rules *rr;

    /* No section, an empty one: no rules, the default limit. */
    rr = load("listen: x\n", &err, NULL);
    CHECK(rr != NULL);
    CHECK_INT(rewrite_rules_count(rr), 0);
    CHECK_INT(rewrite_max_body(rr), 8 * 1024 * 1024);
    rewrite_rules_free(rr);
    rr = LOAD("rewrite:\n  max_body: 64K\n  rules: []\n");
    CHECK_INT(rewrite_max_body(rr), 65536);
    rewrite_rules_free(rr);
    rewrite_rules_free(NULL);
    /* Without a config file at all. */
    CHECK_INT(rewrite_rules_load(NULL, NULL, &rr, &err), 0);
    CHECK_INT(rewrite_rules_count(rr), 0);
    rewrite_rules_free(rr);

    LOAD_ERR("rewrite:\n  maxbody: 1\n",
             "test.yaml:2: unknown key 'maxbody' (expected one of: max_body, "
             "anthropic_thinking_field, rules)");
    LOAD_ERR("rewrite: [1]\n", "test.yaml:1: expected a mapping");
    LOAD_ERR("rewrite:\n  max_body: 100\n", "test.yaml:2: 'max_body' must be 1K to 256M");
    LOAD_ERR("rewrite:\n  max_body: 1T\n",
             "test.yaml:2: 'max_body' must be a size like 512K, 64M or 1G");
    LOAD_ERR("rewrite:\n  anthropic_thinking_field: yes\n",
             "test.yaml:2: 'anthropic_thinking_field' must be true or false");
    LOAD_ERR("rewrite:\n  rules: {a: 1}\n", "test.yaml:2: 'rules' must be a list of rules");
    LOAD_ERR("rewrite:\n  rules:\n    - thinking: off\n",
             "test.yaml:3: missing required key 'name'");
    LOAD_ERR("rewrite:\n  rules:\n    - off\n",
             "test.yaml:3: a rule must be a mapping with a 'name'");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a b\n      thinking: off\n",
             "test.yaml:3: bad rule name 'a b': 1 to 48 letters, digits, '-', '_' or '.'");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      thinking: off\n    - name: a\n"
             "      thinking: on\n",
             "test.yaml:5: two rules are named 'a'");
    /* An unknown action is an unknown key of the rule. */
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      thinking: off\n      inject: {x: 1}\n",
             "test.yaml:5: unknown key 'inject' (expected one of: name, match, thinking, merge, "
             "set, delete, model, drop_blocks, headers)");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      match:\n        path: /v1/*\n"
             "      thinking: off\n",
             "test.yaml:5: unknown key 'path' (expected one of: route, method, model, headers, "
             "upstream)");
    LOAD_ERR("rewrite:\n  rules:\n    - name: empty\n      match: {route: /v1/*}\n",
             "test.yaml:3: rule 'empty' has no action (thinking, merge, set, delete, model, "
             "drop_blocks or headers)");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      thinking: maybe\n",
             "test.yaml:4: 'thinking' must be off, on or pass");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      thinking: 1\n",
             "test.yaml:4: 'thinking' must be off, on or pass");
    /* Globs. */
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      match: {route: v1/*}\n      thinking: off\n",
             "test.yaml:4: 'route': bad glob 'v1/*': a route starts with '/' (or '*')");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      match:\n        model: \"qwen[0-9]*\"\n"
             "      thinking: off\n",
             "test.yaml:5: 'model': bad glob 'qwen[0-9]*': only * and ? are special; '[' is "
             "reserved");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      match:\n        method: [POST, 1]\n"
             "      thinking: off\n",
             "test.yaml:5: 'method' must be a string (a glob)");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      match:\n        upstream: []\n"
             "      thinking: off\n",
             "test.yaml:5: 'upstream': empty list");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      match:\n        headers:\n"
             "          \"user agent\": x\n      thinking: off\n",
             "test.yaml:6: bad header name 'user agent'");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      match:\n        headers: claude\n"
             "      thinking: off\n",
             "test.yaml:5: 'headers' must map header names to globs, e.g. user-agent: "
             "\"claude-cli/*\"");
    /* JSON pointers. */
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      set:\n        temperature: 0.6\n",
             "test.yaml:5: bad JSON pointer 'temperature': it starts with '/', e.g. "
             "/chat_template_kwargs/enable_thinking");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      delete: [/a~2b]\n",
             "test.yaml:4: bad JSON pointer '/a~2b': '~' must be '~0' or '~1'");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      delete: [\"\"]\n",
             "test.yaml:4: bad JSON pointer '': it starts with '/', e.g. "
             "/chat_template_kwargs/enable_thinking");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      delete: {a: 1}\n",
             "test.yaml:4: 'delete' must be a list of JSON pointers");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      drop_blocks:\n        path: system\n"
             "        text_prefix: x\n",
             "test.yaml:5: bad JSON pointer 'system': it starts with '/', e.g. "
             "/chat_template_kwargs/enable_thinking");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      drop_blocks:\n        path: /system\n",
             "test.yaml:5: missing required key 'text_prefix'");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      drop_blocks:\n        path: /system\n"
             "        text_prefix: \"\"\n",
             "test.yaml:6: 'text_prefix' must be 1 to 255 bytes");
    /* Merge, set values, model. */
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      merge: [1]\n",
             "test.yaml:4: 'merge' must be a mapping (an RFC 7386 merge patch)");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      model: \"\"\n",
             "test.yaml:4: 'model' must be a model name of 1 to 255 bytes");
    /* Header edits. */
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      headers:\n        set:\n"
             "          Content-Length: 5\n",
             "test.yaml:6: header 'Content-Length' is managed by the proxy and cannot be edited");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      headers:\n        remove: [x-tokentap-thinking]\n",
             "test.yaml:5: header 'x-tokentap-thinking' is managed by the proxy and cannot be "
             "edited");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      headers:\n        add: {a: b}\n",
             "test.yaml:5: unknown key 'add' (expected one of: set, remove)");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      headers:\n        set: {X-A: [1]}\n",
             "test.yaml:5: header 'X-A': the value must be a string");
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      headers:\n        set: {X-A: \"a\\r\\nb: c\"}\n",
             "test.yaml:5: header 'X-A': control characters are not allowed");
    /* YAML errors come through config_parse. */
    LOAD_ERR("rewrite:\n  rules:\n    - name: a\n      thinking: off\n      thinking: on\n",
             "test.yaml:5: duplicate key 'thinking'");

    /* A full rule with everything. */
    rr = LOAD("rewrite:\n"
              "  max_body: 1M\n"
              "  anthropic_thinking_field: true\n"
              "  rules:\n"
              "    - name: everything\n"
              "      match:\n"
              "        route: [/v1/*, /completion]\n"
              "        method: POST\n"
              "        model: \"qwen3-*\"\n"
              "        upstream: local\n"
              "        headers: {User-Agent: \"claude-cli/*\", x-app: cli}\n"
              "      drop_blocks: [{path: /system, text_prefix: x-anthropic}]\n"
              "      delete: /logprobs\n"
              "      set: {/temperature: 0.6, /stop: [\"</s>\"], /a~1b: {c: null}}\n"
              "      merge: {chat_template_kwargs: {reasoning_effort: low}, top_k: ~}\n"
              "      thinking: pass\n"
              "      model: qwen3-30b-a3b\n"
              "      headers: {set: {X-Priority: 5, X-Flag: true}, remove: anthropic-beta}\n");
    CHECK_INT(rewrite_rules_count(rr), 1);
    CHECK_STR(rewrite_rule_name(rr, 0), "everything");
    CHECK(rewrite_rule_name(rr, 1) == NULL);
    CHECK_INT(rewrite_max_body(rr), 1024 * 1024);
    rewrite_rules_free(rr);
}

/* --- Matching --- */

static void test_glob(void)
{
    CHECK(rewrite_glob_match("*", "", 0, false));
    CHECK(rewrite_glob_match("", "", 0, false));
    CHECK(!rewrite_glob_match("", "a", 1, false));
    CHECK(rewrite_glob_match("/v1/*", "/v1/chat/completions", 20, false));
    CHECK(!rewrite_glob_match("/v1/*", "/v2/chat", 8, false));
    CHECK(rewrite_glob_match("claude-*", "claude-sonnet-4-5-20250929", 26, false));
    CHECK(!rewrite_glob_match("claude-*", "Claude-sonnet", 13, false));
    CHECK(rewrite_glob_match("claude-*", "Claude-sonnet", 13, true));
    CHECK(rewrite_glob_match("claude-cli/*", "claude-cli/2.0.14 (external, cli)", 33, false));
    CHECK(rewrite_glob_match("*haiku*", "claude-3-5-haiku-20241022", 25, false));
    CHECK(rewrite_glob_match("a?c", "abc", 3, false));
    CHECK(!rewrite_glob_match("a?c", "ac", 2, false));
    CHECK(rewrite_glob_match("a*b*c", "aXbYbZc", 7, false));
    CHECK(!rewrite_glob_match("a*b*c", "aXbYbZ", 6, false));
    CHECK(rewrite_glob_match("*a", "aaaa", 4, false));
    CHECK(!rewrite_glob_match("*a", "aaab", 4, false));
    CHECK(rewrite_glob_match("**", "x", 1, false));
    CHECK(rewrite_glob_match("exact", "exact", 5, false));
    CHECK(!rewrite_glob_match("exact", "exactly", 7, false));
    CHECK(!rewrite_glob_match("exact", "exac", 4, false));
    /* The subject is a length, not a C string. */
    CHECK(rewrite_glob_match("ab", "abc", 2, false));
    /* Worst case stays quick: many stars against a long miss. */
    char s[4096];
    memset(s, 'a', sizeof(s));
    CHECK(!rewrite_glob_match("*a*a*a*a*a*a*a*a*b", s, sizeof(s), false));
}

static void test_override_header(void)
{
    struct http_head h;
    enum rewrite_thinking t = REWRITE_THINKING_ON;
    make_head(&h, NULL);
    CHECK_INT(rewrite_thinking_override(&h, &t), 0);
    CHECK_INT(t, REWRITE_THINKING_UNSET);
    CHECK_INT(rewrite_thinking_override(NULL, &t), 0);
    CHECK_INT(t, REWRITE_THINKING_UNSET);
    const char *const off[] = {"x-tokentap-thinking:  OFF ", NULL};
    make_head(&h, off);
    CHECK_INT(rewrite_thinking_override(&h, &t), 0);
    CHECK_INT(t, REWRITE_THINKING_OFF);
    const char *const on[] = {"X-Tokentap-Thinking: on", "X-TOKENTAP-THINKING: On", NULL};
    make_head(&h, on);
    CHECK_INT(rewrite_thinking_override(&h, &t), 0);
    CHECK_INT(t, REWRITE_THINKING_ON);
    const char *const pass[] = {"X-Tokentap-Thinking: pass", NULL};
    make_head(&h, pass);
    CHECK_INT(rewrite_thinking_override(&h, &t), 0);
    CHECK_INT(t, REWRITE_THINKING_PASS);
    /* Bad values and disagreements leave *ret alone. */
    t = REWRITE_THINKING_PASS;
    const char *const bad[] = {"X-Tokentap-Thinking: false", NULL};
    make_head(&h, bad);
    CHECK_INT(rewrite_thinking_override(&h, &t), -EINVAL);
    const char *const both[] = {"X-Tokentap-Thinking: on", "X-Tokentap-Thinking: off", NULL};
    make_head(&h, both);
    CHECK_INT(rewrite_thinking_override(&h, &t), -EINVAL);
    CHECK_INT(t, REWRITE_THINKING_PASS);
}

static void test_wants_body(void)
{
    struct rewrite_rules *none = LOAD("rewrite: {}\n");
    struct rewrite_rules *rr = LOAD("rewrite:\n"
                                    "  rules:\n"
                                    "    - name: cc\n"
                                    "      match:\n"
                                    "        route: /v1/messages\n"
                                    "        method: POST\n"
                                    "        headers: {user-agent: \"claude-cli/*\"}\n"
                                    "      thinking: off\n"
                                    "    - name: by-model\n"
                                    "      match: {route: /v1/chat/completions, model: \"qwen*\"}\n"
                                    "      thinking: off\n"
                                    "    - name: by-upstream\n"
                                    "      match: {route: /completion, upstream: big}\n"
                                    "      merge: {n_probs: 0}\n");
    struct http_head cc, other;
    const char *const cc_h[] = {"USER-AGENT: claude-cli/2.0.14 (external, cli)", NULL};
    const char *const other_h[] = {"User-Agent: curl/8.1", NULL};
    make_head(&cc, cc_h);
    make_head(&other, other_h);

    struct rewrite_request q = request("/v1/messages?beta=true", &cc);
    CHECK(rewrite_wants_body(rr, &q));
    CHECK(!rewrite_wants_body(none, &q));
    q.override = REWRITE_THINKING_PASS; /* any override needs the body */
    CHECK(rewrite_wants_body(none, &q));
    q = request("/v1/messages", &other); /* header mismatch */
    CHECK(!rewrite_wants_body(rr, &q));
    q = request("/v1/messages", NULL); /* no head: a header match fails */
    CHECK(!rewrite_wants_body(rr, &q));
    q = request("/v1/messages", &cc);
    q.method = "GET";
    CHECK(!rewrite_wants_body(rr, &q));
    q.method = NULL;
    CHECK(!rewrite_wants_body(rr, &q));
    /* A model match is a maybe before the body. */
    q = request("/v1/chat/completions", &other);
    CHECK(rewrite_wants_body(rr, &q));
    /* An upstream match: maybe while unknown, then decided. */
    q = request("/completion", &other);
    q.upstream = NULL;
    CHECK(rewrite_wants_body(rr, &q));
    q.upstream = "big";
    CHECK(rewrite_wants_body(rr, &q));
    q.upstream = "small";
    CHECK(!rewrite_wants_body(rr, &q));
    q = request("/v1/embeddings", &cc);
    CHECK(!rewrite_wants_body(rr, &q));
    rewrite_rules_free(rr);
    rewrite_rules_free(none);
}

/* --- Thinking per dialect --- */

static void test_openai_chat(void)
{
    struct rewrite_rules *off = LOAD("rewrite:\n  rules:\n    - {name: off, thinking: off}\n");
    struct rewrite_rules *on = LOAD("rewrite:\n  rules:\n    - {name: on, thinking: on}\n");
    struct rewrite_result res;
    const char *in;

    /* No kwargs: one member appended, in the body's own style. */
    in = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}";
    res = CHAT(off, in);
    CHECK(res.changed);
    CHECK_STR(res.rules, "off");
    CHECK_INT(res.thinking, 0);
    CHECK(!res.thinking_unsupported);
    CHECK(res.model == NULL);
    CHECK_INT(res.n_headers, 0);
    CHECK(res.failed_rule == NULL);
    CHECK_OUT(res, in,
              "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":"
              "true,\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    in = "{\n  \"model\": \"m\",\n  \"stream\": true\n}";
    res = CHAT(on, in);
    CHECK_INT(res.thinking, 1);
    CHECK_OUT(res, in,
              "{\n  \"model\": \"m\",\n  \"stream\": true,\n  \"chat_template_kwargs\": "
              "{\"enable_thinking\":true}\n}");

    /* Existing kwargs: the other keys stay, byte for byte. */
    in = "{\"model\":\"m\",\"chat_template_kwargs\":{ \"reasoning_effort\" : \"low\",\"x\":[1, 2.50] "
         "},\"n\":1}";
    res = CHAT(off, in);
    CHECK_OUT(res, in,
              "{\"model\":\"m\",\"chat_template_kwargs\":{ \"reasoning_effort\" : \"low\",\"x\":[1, "
              "2.50],\"enable_thinking\" : false },\"n\":1}");
    in = "{\"chat_template_kwargs\":{\"enable_thinking\":true,\"a\":\"\\u00e9\"},\"model\":\"m\"}";
    res = CHAT(off, in);
    CHECK_OUT(res, in,
              "{\"chat_template_kwargs\":{\"enable_thinking\":false,\"a\":\"\\u00e9\"},\"model\":"
              "\"m\"}");
    /* Already as wanted: no new body. */
    in = "{\"chat_template_kwargs\":{\"enable_thinking\":false}}";
    res = CHAT(off, in);
    CHECK(!res.changed && res.body == NULL);
    CHECK_STR(res.rules, "off");
    CHECK_INT(res.thinking, 0);
    CHECK_OUT(res, in, in);
    /* A kwargs that is not an object is replaced (llama-server wants an object). */
    in = "{\"chat_template_kwargs\":null}";
    res = CHAT(off, in);
    CHECK_OUT(res, in, "{\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    /* Repeated kwargs: both get the flag, whichever a reader keeps. */
    in = "{\"chat_template_kwargs\":{\"a\":1},\"chat_template_kwargs\":{\"enable_thinking\":true}}";
    res = CHAT(off, in);
    CHECK_OUT(res, in,
              "{\"chat_template_kwargs\":{\"a\":1,\"enable_thinking\":false},"
              "\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    /* Responses: the same flag. */
    in = "{\"model\":\"m\",\"input\":\"hi\"}";
    res = apply_path(__LINE__, off, "/v1/responses", in);
    CHECK_INT(res.thinking, 0);
    CHECK_OUT(res, in,
              "{\"model\":\"m\",\"input\":\"hi\",\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    rewrite_rules_free(off);
    rewrite_rules_free(on);
}

static void test_anthropic(void)
{
    struct rewrite_rules *off = LOAD("rewrite:\n  rules:\n    - {name: off, thinking: off}\n");
    struct rewrite_rules *off_field = LOAD("rewrite:\n  anthropic_thinking_field: true\n"
                                           "  rules:\n    - {name: off, thinking: off}\n");
    struct rewrite_rules *on_field = LOAD("rewrite:\n  anthropic_thinking_field: true\n"
                                          "  rules:\n    - {name: on, thinking: on}\n");
    struct rewrite_result res;
    const char *in = "{\"model\":\"claude-x\",\"max_tokens\":10,\"thinking\":{\"type\":\"enabled\","
                     "\"budget_tokens\":1024},\"messages\":[]}";

    res = apply_path(__LINE__, off, "/v1/messages", in);
    CHECK_INT(res.thinking, 0); /* the kwargs win over the thinking field */
    CHECK_OUT(res, in,
              "{\"model\":\"claude-x\",\"max_tokens\":10,\"thinking\":{\"type\":\"enabled\","
              "\"budget_tokens\":1024},\"messages\":[],\"chat_template_kwargs\":{"
              "\"enable_thinking\":false}}");
    res = apply_path(__LINE__, off_field, "/v1/messages", in);
    CHECK_INT(res.thinking, 0);
    CHECK_OUT(res, in,
              "{\"model\":\"claude-x\",\"max_tokens\":10,\"thinking\":{\"type\":\"disabled\"},"
              "\"messages\":[],\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    /* On: the kwargs only; Anthropic's field is left as the client sent it. */
    const char *plain = "{\"model\":\"claude-x\",\"messages\":[]}";
    res = apply_path(__LINE__, on_field, "/v1/messages", plain);
    CHECK_INT(res.thinking, 1);
    CHECK_OUT(res, plain,
              "{\"model\":\"claude-x\",\"messages\":[],\"chat_template_kwargs\":{\"enable_thinking\":"
              "true}}");
    /* Off with the field on a body without one: added. */
    res = apply_path(__LINE__, off_field, "/v1/messages", plain);
    CHECK_OUT(res, plain,
              "{\"model\":\"claude-x\",\"messages\":[],\"chat_template_kwargs\":{\"enable_thinking\":"
              "false},\"thinking\":{\"type\":\"disabled\"}}");
    /* The field is Anthropic's only. */
    res = apply_path(__LINE__, off_field, "/v1/chat/completions", plain);
    CHECK_OUT(res, plain,
              "{\"model\":\"claude-x\",\"messages\":[],\"chat_template_kwargs\":{\"enable_thinking\":"
              "false}}");
    rewrite_rules_free(off);
    rewrite_rules_free(off_field);
    rewrite_rules_free(on_field);
}

static void test_completion_routes(void)
{
    struct rewrite_rules *rr = LOAD("rewrite:\n  rules:\n    - {name: off, thinking: off}\n");
    struct rewrite_rules *both = LOAD("rewrite:\n  rules:\n"
                                      "    - {name: off, thinking: off, merge: {n_probs: 0}}\n");
    const char *in = "{\"prompt\":\"<|im_start|>user\\nhi<|im_end|>\",\"n_predict\":8}";
    static const char *const routes[] = {"/v1/completions", "/completion", "/completions",
                                         "/v1/embeddings", "/infill"};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        struct rewrite_result res = apply_path(__LINE__, rr, routes[i], in);
        CHECK(!res.changed);
        CHECK(res.thinking_unsupported);
        CHECK_INT(res.thinking, -1);
        CHECK_STR(res.rules, "off");
        CHECK_OUT(res, in, in);
        /* The override too. */
        struct http_head h;
        make_head(&h, json_headers);
        struct rewrite_request q = request(routes[i], &h);
        q.override = REWRITE_THINKING_ON;
        res = apply_q(__LINE__, rr, &q, in);
        CHECK(res.thinking_unsupported);
        CHECK_OUT(res, in, in);
    }
    /* Other actions still apply there. */
    struct rewrite_result res = apply_path(__LINE__, both, "/completion", in);
    CHECK(res.thinking_unsupported);
    CHECK_OUT(res, in, "{\"prompt\":\"<|im_start|>user\\nhi<|im_end|>\",\"n_predict\":8,\"n_probs\":0}");
    rewrite_rules_free(rr);
    rewrite_rules_free(both);
}

static void test_override(void)
{
    struct rewrite_rules *rr = LOAD("rewrite:\n  rules:\n"
                                    "    - {name: on, thinking: on, merge: {top_k: 20}}\n");
    struct http_head h;
    make_head(&h, json_headers);
    struct rewrite_request q = request("/v1/chat/completions", &h);
    const char *in = "{\"model\":\"m\"}";
    struct rewrite_result res;

    q.override = REWRITE_THINKING_OFF;
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_INT(res.thinking, 0);
    CHECK_STR(res.rules, "on"); /* the rule applied; its thinking gave way */
    CHECK_OUT(res, in, "{\"model\":\"m\",\"top_k\":20,\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    /* pass: the rules' thinking is not applied; the body keeps the client's. */
    q.override = REWRITE_THINKING_PASS;
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_INT(res.thinking, -1);
    CHECK_OUT(res, in, "{\"model\":\"m\",\"top_k\":20}");
    const char *mine = "{\"chat_template_kwargs\":{\"enable_thinking\":false}}";
    res = apply_q(__LINE__, rr, &q, mine);
    CHECK_INT(res.thinking, 0);
    CHECK_OUT(res, mine, "{\"chat_template_kwargs\":{\"enable_thinking\":false},\"top_k\":20}");
    /* The override also beats a merge that sets the flag directly. */
    struct rewrite_rules *merge =
        LOAD("rewrite:\n  rules:\n"
             "    - {name: m, merge: {chat_template_kwargs: {enable_thinking: true}}}\n");
    q.override = REWRITE_THINKING_OFF;
    res = apply_q(__LINE__, merge, &q, in);
    CHECK_INT(res.thinking, 0);
    CHECK_OUT(res, in, "{\"model\":\"m\",\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    /* A rule that only sets thinking did nothing once the header
     * decided: it is not listed as applied. */
    struct rewrite_rules *only = LOAD("rewrite:\n  rules:\n    - {name: off, thinking: off}\n");
    q.override = REWRITE_THINKING_ON;
    res = apply_q(__LINE__, only, &q, in);
    CHECK_STR(res.rules, "");
    CHECK_INT(res.thinking, 1);
    rewrite_result_finish(&res);
    q.override = REWRITE_THINKING_UNSET;
    res = apply_q(__LINE__, only, &q, in);
    CHECK_STR(res.rules, "off");
    CHECK_INT(res.thinking, 0);
    rewrite_result_finish(&res);
    rewrite_rules_free(only);
    /* Without rules, the override alone. */
    struct rewrite_rules *none = LOAD("rewrite: {}\n");
    q.override = REWRITE_THINKING_ON;
    res = apply_q(__LINE__, none, &q, in);
    CHECK_STR(res.rules, "");
    CHECK_INT(res.thinking, 1);
    CHECK_OUT(res, in, "{\"model\":\"m\",\"chat_template_kwargs\":{\"enable_thinking\":true}}");
    rewrite_rules_free(none);
    rewrite_rules_free(merge);
    rewrite_rules_free(rr);

    /* A rule's pass: later rules' thinking actions are skipped, earlier
     * ones stay; their other actions apply. */
    rr = LOAD("rewrite:\n  rules:\n"
              "    - {name: mine, match: {headers: {user-agent: \"my-agent/*\"}}, thinking: pass}\n"
              "    - {name: off, thinking: off, set: {/n: 1}}\n"
              "    - {name: on-later, match: {headers: {user-agent: \"other/*\"}}, thinking: on}\n");
    const char *const mine_h[] = {"Content-Type: application/json", "User-Agent: my-agent/1", NULL};
    const char *const other_h[] = {"Content-Type: application/json", "User-Agent: other/1", NULL};
    make_head(&h, mine_h);
    q = request("/v1/chat/completions", &h);
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_STR(res.rules, "mine,off");
    CHECK_INT(res.thinking, -1);
    CHECK_OUT(res, in, "{\"model\":\"m\",\"n\":1}");
    make_head(&h, other_h);
    q = request("/v1/chat/completions", &h);
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_STR(res.rules, "off,on-later");
    CHECK_INT(res.thinking, 1); /* the later rule's on wins */
    CHECK_OUT(res, in, "{\"model\":\"m\",\"n\":1,\"chat_template_kwargs\":{\"enable_thinking\":true}}");
    rewrite_rules_free(rr);
    rr = LOAD("rewrite:\n  rules:\n"
              "    - {name: off, thinking: off}\n"
              "    - {name: pass, thinking: pass}\n"
              "    - {name: on, thinking: on}\n");
    make_head(&h, json_headers);
    q = request("/v1/chat/completions", &h);
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_STR(res.rules, "off,pass,on");
    CHECK_INT(res.thinking, 0);
    CHECK_OUT(res, in, "{\"model\":\"m\",\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    rewrite_rules_free(rr);
}

/* --- Actions and order --- */

static void test_order(void)
{
    /* Later rules see earlier edits, match included. */
    struct rewrite_rules *rr = LOAD("rewrite:\n  rules:\n"
                                    "    - name: alias\n"
                                    "      match: {model: \"claude-*\"}\n"
                                    "      model: qwen3-30b-a3b\n"
                                    "    - name: claude-preset\n"
                                    "      match: {model: \"claude-*\"}\n"
                                    "      set: {/never: true}\n"
                                    "    - name: qwen-preset\n"
                                    "      match: {model: \"qwen3-*\"}\n"
                                    "      set: {/temperature: 0.6, /sampling/top_k: 20}\n"
                                    "    - name: more\n"
                                    "      set: {/sampling/min_p: 0}\n"
                                    "      delete: [/temperature]\n"
                                    "    - name: actions-in-order\n"
                                    "      delete: [/x]\n"
                                    "      set: {/x: 1}\n"
                                    "      merge: {x: 2}\n");
    const char *in = "{\"model\":\"claude-sonnet-4-5-20250929\",\"temperature\":1,\"x\":0}";
    struct rewrite_result res = CHAT(rr, in);
    CHECK_STR(res.rules, "alias,qwen-preset,more,actions-in-order");
    CHECK_STR(res.model, "qwen3-30b-a3b");
    /* x: deleted, then set (new, so last), then merged in place. */
    CHECK_OUT(res, in,
              "{\"model\":\"qwen3-30b-a3b\",\"sampling\":{\"top_k\":20,\"min_p\":0},\"x\":2}");
    /* A rule's own match sees the name it rewrites from. */
    in = "{\"model\":\"qwen3-8b\"}";
    res = CHAT(rr, in);
    CHECK_STR(res.rules, "qwen-preset,more,actions-in-order");
    CHECK(res.model == NULL);
    CHECK_OUT(res, in,
              "{\"model\":\"qwen3-8b\",\"sampling\":{\"top_k\":20,\"min_p\":0},\"x\":2}");
    /* No model in the body: model matches fail, the rest apply. */
    in = "{\"messages\":[]}";
    res = CHAT(rr, in);
    CHECK_STR(res.rules, "more,actions-in-order");
    CHECK_OUT(res, in, "{\"messages\":[],\"sampling\":{\"min_p\":0},\"x\":2}");
    /* Escaped model names match by meaning. */
    in = "{\"model\":\"claude\\u002dhaiku\"}";
    res = CHAT(rr, in);
    CHECK_STR(res.rules, "alias,qwen-preset,more,actions-in-order");
    CHECK_OUT(res, in,
              "{\"model\":\"qwen3-30b-a3b\",\"sampling\":{\"top_k\":20,\"min_p\":0},\"x\":2}");
    rewrite_rules_free(rr);

    /* Edits that cancel out give no new body. */
    rr = LOAD("rewrite:\n  rules:\n"
              "    - {name: a, set: {/t: 2}}\n"
              "    - {name: b, set: {/t: 1}}\n");
    in = "{\"t\":1}";
    res = CHAT(rr, in);
    CHECK(!res.changed);
    CHECK_STR(res.rules, "a,b");
    CHECK_OUT(res, in, in);
    rewrite_rules_free(rr);

    /* Globs on route, method, upstream, header values (names fold case). */
    rr = LOAD("rewrite:\n  rules:\n"
              "    - name: r\n"
              "      match: {route: \"/v1/*\", method: [PUT, POST], upstream: \"lo*\",\n"
              "              headers: {x-app: cli, USER-agent: [\"curl/*\", \"claude-cli/*\"]}}\n"
              "      set: {/hit: true}\n");
    const char *const hs[] = {"Content-Type: application/json", "User-Agent: claude-cli/2.0 (x)",
                              "X-App: cli", NULL};
    const char *const wrong_case[] = {"Content-Type: application/json",
                                      "User-Agent: Claude-cli/2.0", "X-App: cli", NULL};
    struct http_head h;
    make_head(&h, hs);
    struct rewrite_request q = request("/v1/chat/completions?x=/v2/", &h);
    in = "{}";
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_OUT(res, in, "{\"hit\":true}");
    q.upstream = "remote";
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_OUT(res, in, in);
    q.upstream = NULL; /* unknown at the body: an upstream match fails */
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_OUT(res, in, in);
    make_head(&h, wrong_case); /* values are case-sensitive */
    q = request("/v1/chat/completions", &h);
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_OUT(res, in, in);
    rewrite_rules_free(rr);
}

static void test_rule_failed(void)
{
    struct rewrite_rules *rr = LOAD("rewrite:\n  rules:\n"
                                    "    - {name: first, set: {/a: 1}}\n"
                                    "    - name: broken\n"
                                    "      set: {/b: 2, /model/x: 1}\n"
                                    "      headers: {set: {X-Broken: \"1\"}}\n"
                                    "    - {name: last, thinking: off}\n");
    const char *in = "{\"model\":\"m\"}";
    struct rewrite_result res = CHAT(rr, in);
    CHECK_STR(res.rules, "first,last");
    CHECK_STR(res.failed_rule, "broken");
    CHECK_INT(res.n_headers, 0); /* a failed rule gives no header edits either */
    /* The failed rule left nothing behind (no /b). */
    check_out(__LINE__, &res, in,
              "{\"model\":\"m\",\"a\":1,\"chat_template_kwargs\":{\"enable_thinking\":false}}",
              REWRITE_SKIP_RULE_FAILED);
    /* Arrays: index out of range, non-index. */
    rewrite_rules_free(rr);
    rr = LOAD("rewrite:\n  rules:\n"
              "    - {name: idx, set: {/messages/5/content: x}}\n"
              "    - {name: word, set: {/messages/first: x}}\n"
              "    - {name: append, set: {/messages/-: {role: user, content: go}}}\n");
    in = "{\"messages\":[]}";
    res = CHAT(rr, in);
    CHECK_STR(res.rules, "append");
    CHECK_STR(res.failed_rule, "idx");
    check_out(__LINE__, &res, in, "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}",
              REWRITE_SKIP_RULE_FAILED);
    rewrite_rules_free(rr);
    /* Delete through a scalar or a missing member: nothing to delete, no failure. */
    rr = LOAD("rewrite:\n  rules:\n"
              "    - {name: d, delete: [/model/x, /nope/x, /messages/7, /stream]}\n");
    in = "{\"model\":\"m\",\"messages\":[],\"stream\":true}";
    res = CHAT(rr, in);
    CHECK_STR(res.rules, "d");
    CHECK_OUT(res, in, "{\"model\":\"m\",\"messages\":[]}");
    rewrite_rules_free(rr);
}

static void test_drop_blocks(void)
{
    struct rewrite_rules *rr = LOAD("rewrite:\n  rules:\n"
                                    "    - name: billing\n"
                                    "      drop_blocks: {path: /system, text_prefix: \"x-bill\"}\n");
    struct rewrite_result res;
    const char *in;
#define DROP(in_, want)                                                                            \
    do {                                                                                           \
        in = in_;                                                                                  \
        res = apply_path(__LINE__, rr, "/v1/messages", in);                                        \
        check_out(__LINE__, &res, in, want, REWRITE_SKIP_NONE);                                    \
    } while (0)
    /* First, middle, last, several, all. */
    DROP("{\"system\":[{\"type\":\"text\",\"text\":\"x-bill: 1\"}, {\"text\":\"keep\"}]}",
         "{\"system\":[{\"text\":\"keep\"}]}");
    DROP("{\"system\":[{\"text\":\"a\"}, {\"text\":\"x-bill\"}, {\"text\":\"b\"}]}",
         "{\"system\":[{\"text\":\"a\"}, {\"text\":\"b\"}]}");
    DROP("{\"system\":[{\"text\":\"a\"} , {\"text\":\"x-billing\"} ]}",
         "{\"system\":[{\"text\":\"a\"} ]}");
    DROP("{\"system\":[{\"text\":\"x-bill1\"},{\"text\":\"x-bill2\"},{\"text\":\"k\"},"
         "{\"text\":\"x-bill3\"},{\"text\":\"k2\"},{\"text\":\"x-bill4\"}]}",
         "{\"system\":[{\"text\":\"k\"},{\"text\":\"k2\"}]}");
    DROP("{\"system\":[ {\"text\":\"x-bill1\"},\n {\"text\":\"x-bill2\"} ],\"n\":1}",
         "{\"system\":[  ],\"n\":1}");
    /* Escapes decoded before the prefix test; other shapes left alone. */
    DROP("{\"system\":[{\"text\":\"\\u0078-bi\\u006cl\"},{\"text\":5},\"x-bill\",{\"t\":\"x-bill\"},"
         "{\"text\":\"x-bil\"}]}",
         "{\"system\":[{\"text\":5},\"x-bill\",{\"t\":\"x-bill\"},{\"text\":\"x-bil\"}]}");
    /* Missing path, not an array, empty array: nothing to drop. */
    DROP("{\"system\":\"x-bill\"}", "{\"system\":\"x-bill\"}");
    DROP("{\"messages\":[]}", "{\"messages\":[]}");
    DROP("{\"system\":[]}", "{\"system\":[]}");
    /* The last "text" of a block decides (as a last-wins reader sees it). */
    DROP("{\"system\":[{\"text\":\"x-bill\",\"text\":\"k\"},{\"text\":\"k\",\"text\":\"x-bill\"}]}",
         "{\"system\":[{\"text\":\"x-bill\",\"text\":\"k\"}]}");
#undef DROP
    rewrite_rules_free(rr);

    /* Nested path, and two specs in one rule. */
    rr = LOAD("rewrite:\n  rules:\n"
              "    - name: two\n"
              "      drop_blocks:\n"
              "        - {path: /messages/0/content, text_prefix: \"<system-reminder>\"}\n"
              "        - {path: /system, text_prefix: \"x\"}\n");
    in = "{\"system\":[{\"text\":\"x\"}],\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"text\",\"text\":\"<system-reminder>a\"},{\"type\":\"text\",\"text\":\"q\"}]}]}";
    res = apply_path(__LINE__, rr, "/v1/messages", in);
    CHECK_OUT(res, in,
              "{\"system\":[],\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
              "\"text\":\"q\"}]}]}");
    rewrite_rules_free(rr);
}

static void test_headers(void)
{
    struct rewrite_rules *rr = LOAD("rewrite:\n  rules:\n"
                                    "    - name: h1\n"
                                    "      headers:\n"
                                    "        remove: [anthropic-beta, X-Api-Key]\n"
                                    "        set: {Authorization: \"Bearer local\", X-N: 5}\n"
                                    "    - name: m\n"
                                    "      match: {model: \"q*\"}\n"
                                    "      headers: {set: {X-Model-Rule: \"yes\"}}\n"
                                    "    - name: body-only\n"
                                    "      thinking: off\n");
    const char *in = "{\"model\":\"qwen\"}";
    struct rewrite_result res = CHAT(rr, in);
    CHECK_STR(res.rules, "h1,m,body-only");
    CHECK_INT(res.n_headers, 5);
    if (res.n_headers == 5) {
        CHECK_STR(res.headers[0].name, "anthropic-beta");
        CHECK(res.headers[0].value == NULL);
        CHECK_STR(res.headers[1].name, "X-Api-Key");
        CHECK(res.headers[1].value == NULL);
        CHECK_STR(res.headers[2].name, "Authorization");
        CHECK_STR(res.headers[2].value, "Bearer local");
        CHECK_STR(res.headers[3].name, "X-N");
        CHECK_STR(res.headers[3].value, "5");
        CHECK_STR(res.headers[4].name, "X-Model-Rule");
    }
    rewrite_result_finish(&res);

    /* A body that cannot be read: header edits of rules that match without
     * a model still come; the reason is counted, since rules wanted the body. */
    struct http_head h;
    const char *const text[] = {"Content-Type: text/plain", NULL};
    make_head(&h, text);
    struct rewrite_request q = request("/v1/chat/completions", &h);
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_STR(res.rules, "h1");
    CHECK_INT(res.n_headers, 4);
    CHECK(!res.changed);
    CHECK_INT(res.thinking, -1);
    check_out(__LINE__, &res, in, in, REWRITE_SKIP_NOT_JSON);
    /* No body at all (a GET): header edits, no reason. */
    q = request("/v1/models", NULL);
    q.method = "GET";
    res = apply_q(__LINE__, rr, &q, NULL);
    CHECK_STR(res.rules, "h1");
    CHECK_INT(res.n_headers, 4);
    CHECK(res.body == NULL);
    CHECK_INT(res.skip, REWRITE_SKIP_NONE);
    rewrite_result_finish(&res);
    rewrite_rules_free(rr);
}

/* --- Skip reasons --- */

static void check_skip(int line, const struct rewrite_rules *rr, const char *content_type,
                       const char *path, const char *body, enum rewrite_skip want,
                       bool want_changed)
{
    struct http_head h;
    char ct[128];
    const char *hs[] = {ct, NULL};
    snprintf(ct, sizeof(ct), "Content-Type: %s", content_type ? content_type : "");
    make_head(&h, content_type ? hs : NULL);
    struct rewrite_request q = request(path, &h);
    struct rewrite_result res = apply_q(line, rr, &q, body);
    check_count++;
    if (res.changed != want_changed) {
        check_failures++;
        fprintf(stderr, "line %d: changed %d\n", line, res.changed);
    }
    check_out(line, &res, body, out_of(&res, body), want);
}
#define SKIP(ct, body, want)                                                                       \
    check_skip(__LINE__, rr, ct, "/v1/chat/completions", body, want, want == REWRITE_SKIP_NONE)

static void test_skip_reasons(void)
{
    struct rewrite_rules *rr = LOAD("rewrite:\n  max_body: 1K\n  rules:\n"
                                    "    - {name: off, thinking: off}\n");
    SKIP("application/json", "{}", REWRITE_SKIP_NONE);
    SKIP("Application/JSON; charset=utf-8", "{}", REWRITE_SKIP_NONE);
    SKIP(" application/vnd.api+json ;x=y", "{}", REWRITE_SKIP_NONE);
    SKIP(NULL, " \n{}", REWRITE_SKIP_NONE);
    SKIP(NULL, "[{}]", REWRITE_SKIP_NOT_JSON);
    SKIP("text/plain", "{}", REWRITE_SKIP_NOT_JSON);
    /* curl -d's default type: a JSON object body still counts. */
    SKIP("application/x-www-form-urlencoded", "{}", REWRITE_SKIP_NONE);
    SKIP("application/x-www-form-urlencoded", "a=1&b=2", REWRITE_SKIP_NOT_JSON);
    SKIP("+json", "{}", REWRITE_SKIP_NOT_JSON);
    SKIP("application/json", "{\"a\":1,}", REWRITE_SKIP_INVALID_JSON);
    SKIP("application/json", "{\"a\":NaN}", REWRITE_SKIP_INVALID_JSON);
    SKIP("application/json", "{} {}", REWRITE_SKIP_INVALID_JSON);
    SKIP("application/json", "[1]", REWRITE_SKIP_NOT_OBJECT);
    SKIP("application/json", "\"s\"", REWRITE_SKIP_NOT_OBJECT);
    char deep[2000];
    memset(deep, '[', 600);
    memset(deep + 600, ']', 600);
    deep[1200] = '\0';
    char wrapped[2100];
    snprintf(wrapped, sizeof(wrapped), "{\"a\":%s}", deep);
    struct rewrite_rules *big = LOAD("rewrite:\n  rules:\n    - {name: off, thinking: off}\n");
    check_skip(__LINE__, big, "application/json", "/v1/chat/completions", wrapped,
               REWRITE_SKIP_TOO_DEEP, false);
    rewrite_rules_free(big);
    char large[1100];
    memset(large, ' ', sizeof(large) - 1);
    large[0] = '{';
    large[sizeof(large) - 2] = '}';
    large[sizeof(large) - 1] = '\0';
    SKIP("application/json", large, REWRITE_SKIP_TOO_LARGE);
    /* A body the caller did not keep: NULL with its length. */
    struct rewrite_request q = request("/v1/chat/completions", NULL);
    struct rewrite_result res;
    CHECK_INT(rewrite_apply(rr, &q, NULL, 5000, &res), 0);
    CHECK_INT(res.skip, REWRITE_SKIP_TOO_LARGE);
    CHECK(res.body == NULL);
    rewrite_result_finish(&res);
    CHECK_INT(rewrite_apply(rr, &q, NULL, 10, &res), -EINVAL);
    /* No rule that wanted the body: nothing to count. */
    struct rewrite_rules *other = LOAD("rewrite:\n  rules:\n"
                                       "    - {name: x, match: {route: /other}, thinking: off}\n"
                                       "    - {name: comp, match: {route: /completion}, thinking: off}\n");
    check_skip(__LINE__, other, "text/plain", "/v1/chat/completions", "{}", REWRITE_SKIP_NONE,
               false);
    /* Thinking alone on a completion route would not edit: not counted either. */
    check_skip(__LINE__, other, "text/plain", "/completion", "{}", REWRITE_SKIP_NONE, false);
    rewrite_rules_free(other);
    /* A model match on an unreadable body: it wanted the body. */
    struct rewrite_rules *m = LOAD("rewrite:\n  rules:\n"
                                   "    - {name: x, match: {model: q*}, headers: {set: {a: b}}}\n");
    check_skip(__LINE__, m, "application/json", "/v1/chat/completions", "{",
               REWRITE_SKIP_INVALID_JSON, false);
    rewrite_rules_free(m);
    /* Names. */
    CHECK_STR(rewrite_skip_name(REWRITE_SKIP_NONE), "");
    CHECK_STR(rewrite_skip_name(REWRITE_SKIP_NOT_JSON), "not-json");
    CHECK_STR(rewrite_skip_name(REWRITE_SKIP_INVALID_JSON), "invalid-json");
    CHECK_STR(rewrite_skip_name(REWRITE_SKIP_NOT_OBJECT), "not-object");
    CHECK_STR(rewrite_skip_name(REWRITE_SKIP_TOO_LARGE), "too-large");
    CHECK_STR(rewrite_skip_name(REWRITE_SKIP_TOO_DEEP), "too-deep");
    CHECK_STR(rewrite_skip_name(REWRITE_SKIP_RULE_FAILED), "rule-failed");
    rewrite_rules_free(rr);
}

/* --- Fidelity --- */

static void test_fidelity(void)
{
    static const char in[] =
        "{\"model\" : \"m\",\n  \"temperature\":0.1, \"eps\": 1e-7,\"big\":9007199254740993,"
        "\"negz\":-0,\"e\":1E+2,\n\t\"s\":\"caf\\u00e9 \\/ \\\"q\\\" é😀\",\r\n"
        "  \"messages\":[ {\"role\":\"user\",\"content\":\"\\u65e5\\u672c \\ud83d\\ude00 \\\\n\"} ],"
        "  \"chat_template_kwargs\" : {\"x\" : 1.50, \"y\":[true,null]}, \"last\": -1.0e-0  }";
    static const char *const untouched[] = {
        "\"temperature\":0.1",
        "\"eps\": 1e-7",
        "\"big\":9007199254740993",
        "\"negz\":-0",
        "\"e\":1E+2",
        "\"s\":\"caf\\u00e9 \\/ \\\"q\\\" é😀\"",
        "\"messages\":[ {\"role\":\"user\",\"content\":\"\\u65e5\\u672c \\ud83d\\ude00 \\\\n\"} ]",
        "\"x\" : 1.50, \"y\":[true,null]",
        "\"last\": -1.0e-0  }",
        NULL,
    };
    size_t len = strlen(in);

    /* Thinking alone: one insertion, nothing replaced. */
    struct rewrite_rules *rr = LOAD("rewrite:\n  rules:\n    - {name: off, thinking: off}\n");
    struct rewrite_result res = CHAT(rr, in);
    CHECK(res.changed);
    check_fidelity(__LINE__, in, len, res.body, res.body_len, 0, untouched);
    CHECK(memmem(res.body, res.body_len, "\"y\":[true,null], \"enable_thinking\" : false}", 42) !=
          NULL);
    rewrite_result_finish(&res);
    rewrite_rules_free(rr);

    /* The model's value replaced in place. */
    rr = LOAD("rewrite:\n  rules:\n    - {name: alias, model: \"qwen3\\u00e9/\\\"q\\\"\"}\n");
    res = CHAT(rr, in);
    check_fidelity(__LINE__, in, len, res.body, res.body_len, 3, untouched);
    char model[64];
    CHECK_INT(rewrite_body_model(res.body, res.body_len, model, sizeof(model)), 0);
    CHECK_STR(model, "qwen3\xc3\xa9/\"q\"");
    CHECK_STR(res.model, "qwen3\xc3\xa9/\"q\"");
    rewrite_result_finish(&res);
    rewrite_rules_free(rr);

    /* Several actions: every untouched member still verbatim. */
    rr = LOAD("rewrite:\n  rules:\n"
              "    - name: many\n"
              "      delete: [/e]\n"
              "      set: {/chat_template_kwargs/z: 0.1}\n"
              "      merge: {stream: true}\n"
              "      thinking: off\n");
    res = CHAT(rr, in);
    static const char *const rest[] = {
        "\"temperature\":0.1",
        "\"eps\": 1e-7,\"big\":9007199254740993,\"negz\":-0,",
        "\"s\":\"caf\\u00e9 \\/ \\\"q\\\" é😀\"",
        "\"messages\":[ {\"role\":\"user\",\"content\":\"\\u65e5\\u672c \\ud83d\\ude00 \\\\n\"} ]",
        "\"x\" : 1.50, \"y\":[true,null]",
        NULL,
    };
    /* Edits at "e" and at the end: between them, the fragments decide. */
    check_fidelity(__LINE__, in, len, res.body, res.body_len, 200, rest);
    CHECK_VALUE(res.body, res.body_len, "/chat_template_kwargs", "{\"x\":1.5,\"y\":[true,null],\"z\":0.1,\"enable_thinking\":false}");
    CHECK_VALUE(res.body, res.body_len, "/stream", "true");
    CHECK_VALUE(res.body, res.body_len, "/e", NULL);
    rewrite_result_finish(&res);
    rewrite_rules_free(rr);
}

/* --- Reading bodies --- */

static void test_body_model_and_thinking(void)
{
    char buf[16] = "untouched";
    const char *b;
#define MODEL(body, want_r, want)                                                                  \
    do {                                                                                           \
        b = body;                                                                                  \
        strcpy(buf, "untouched");                                                                  \
        CHECK_INT(rewrite_body_model(b, strlen(b), buf, sizeof(buf)), want_r);                     \
        CHECK_STR(buf, want);                                                                      \
    } while (0)
    MODEL("{\"model\":\"qwen3\"}", 0, "qwen3");
    MODEL(" {\"messages\":[{\"model\":\"no\"}], \"model\" : \"a\\u00e9\\\"\"} ", 0, "a\xc3\xa9\"");
    MODEL("{\"model\":\"a\",\"model\":\"b\"}", 0, "b");
    MODEL("{\"model\":\"\"}", 0, "");
    MODEL("{\"model\":1}", -ENOENT, "untouched");
    MODEL("{\"model\":\"a\",\"model\":null}", -ENOENT, "untouched");
    MODEL("{\"mode\":\"a\"}", -ENOENT, "untouched");
    MODEL("{\"model\":\"a\\u0000b\"}", -ENOENT, "untouched");
    MODEL("{\"model\":\"0123456789abcdef\"}", -ENAMETOOLONG, "untouched");
    MODEL("{\"model\":\"0123456789abcde\"}", 0, "0123456789abcde");
    MODEL("{\"model\":\"a\"", -EBADMSG, "untouched");
    MODEL("[\"model\"]", -EINVAL, "untouched");
#undef MODEL
    struct {
        enum dialect_kind d;
        const char *body;
        int want;
    } cases[] = {
        {DIALECT_OPENAI_CHAT, "{}", -1},
        {DIALECT_OPENAI_CHAT, "{\"chat_template_kwargs\":{\"enable_thinking\":true}}", 1},
        {DIALECT_OPENAI_CHAT, "{\"chat_template_kwargs\":{\"enable_thinking\":false}}", 0},
        {DIALECT_OPENAI_CHAT, "{\"chat_template_kwargs\":{\"enable_thinking\":\"false\"}}", -1},
        {DIALECT_OPENAI_CHAT, "{\"thinking\":{\"type\":\"enabled\"}}", -1},
        {DIALECT_RESPONSES, "{\"chat_template_kwargs\":{\"enable_thinking\":false}}", 0},
        {DIALECT_ANTHROPIC, "{\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":9}}", 1},
        {DIALECT_ANTHROPIC, "{\"thinking\":{\"type\":\"disabled\"}}", -1},
        {DIALECT_ANTHROPIC,
         "{\"thinking\":{\"type\":\"enabled\"},\"chat_template_kwargs\":{\"enable_thinking\":false}}",
         0},
        {DIALECT_ANTHROPIC, "{\"thinking\":{\"type\":\"enabled\"},\"chat_template_kwargs\":{}}", 1},
        {DIALECT_LLAMA_COMPLETION, "{\"chat_template_kwargs\":{\"enable_thinking\":true}}", -1},
        {DIALECT_OPENAI_CHAT, "{\"chat_template_kwargs\":{\"enable_thinking\":true}", -1},
        {DIALECT_OPENAI_CHAT, "[]", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = rewrite_body_thinking(cases[i].d, cases[i].body, strlen(cases[i].body));
        if (got != cases[i].want)
            fprintf(stderr, "thinking case %zu: %s\n", i, cases[i].body);
        CHECK_INT(got, cases[i].want);
    }
}

static void test_rules_list(void)
{
    /* 12 rules of 20-byte names do not fit 128 bytes: the list ends in "...". */
    char yaml[4096] = "rewrite:\n  rules:\n";
    for (int i = 0; i < 12; i++) {
        size_t used = strlen(yaml);
        snprintf(yaml + used, sizeof(yaml) - used,
                 "    - {name: rule-number-%02d-xxxxxx, set: {/r%d: %d}}\n", i, i, i);
    }
    struct rewrite_rules *rr = LOAD(yaml);
    const char *in = "{}";
    struct rewrite_result res = CHAT(rr, in);
    CHECK(strlen(res.rules) < REWRITE_RULES_LEN);
    CHECK_STR(res.rules, "rule-number-00-xxxxxx,rule-number-01-xxxxxx,rule-number-02-xxxxxx,"
                         "rule-number-03-xxxxxx,rule-number-04-xxxxxx,...");
    CHECK_VALUE(res.body, res.body_len, "/r11", "11"); /* all applied */
    rewrite_result_finish(&res);
    rewrite_rules_free(rr);
}

/* --- Claude Code --- */

static void test_claude_code(void)
{
    size_t len = 0, cfg_len = 0;
    char *body = fixture("claude-code-messages.json", &len);
    char *cfg = fixture("../../config/claude-code.yaml", &cfg_len);
    if (!body || !cfg)
        goto done;
    CHECK(len > 80000);

    struct config_doc *doc = NULL;
    struct config_err err = {""};
    struct rewrite_rules *rr = NULL;
    int r = config_parse("claude-code.yaml", cfg, cfg_len, &doc, &err);
    if (r == 0)
        r = rewrite_rules_load(doc, cJSON_GetObjectItemCaseSensitive(config_root(doc), "rewrite"),
                               &rr, &err);
    if (r < 0)
        fprintf(stderr, "config/claude-code.yaml: %s\n", err.msg);
    CHECK_INT(r, 0);
    config_free(doc);
    if (!rr)
        goto done;
    CHECK_INT(rewrite_rules_count(rr), 2);

    const char *const cc_h[] = {"Host: 127.0.0.1:8081", "User-Agent: claude-cli/2.0.14 (external, cli)",
                                "Content-Type: application/json", "anthropic-version: 2023-06-01",
                                "x-app: cli", NULL};
    struct http_head h;
    make_head(&h, cc_h);
    struct rewrite_request q = request("/v1/messages?beta=true", &h);
    CHECK(rewrite_wants_body(rr, &q));
    struct rewrite_result res;
    CHECK_INT(rewrite_apply(rr, &q, body, len, &res), 0);
    CHECK(res.changed);
    CHECK_STR(res.rules, "claude-code-no-thinking,claude-models-to-local");
    CHECK_STR(res.model, "qwen3-30b-a3b");
    CHECK_INT(res.thinking, 0);
    CHECK_INT(res.skip, REWRITE_SKIP_NONE);
    CHECK_INT(res.n_headers, 0);
    if (!res.body)
        goto done_rr;
    CHECK_INT(jsonedit_validate(res.body, res.body_len), 0);

    /* The edits: model renamed, billing block gone, kwargs appended. */
    const char *billing =
        "{\"type\":\"text\",\"text\":\"x-anthropic-billing-header: cc_version=2.0.14.8f2; "
        "cc_entrypoint=cli\"},";
    const char *kwargs = ",\"chat_template_kwargs\":{\"enable_thinking\":false}}";
    CHECK(memmem(body, len, billing, strlen(billing)) != NULL);
    CHECK(memmem(res.body, res.body_len, billing, strlen(billing)) == NULL);
    CHECK_INT(res.body_len, len - strlen(billing) - strlen("claude-sonnet-4-5-20250929") +
                                strlen("qwen3-30b-a3b") + strlen(kwargs) - 1);
    CHECK(res.body_len > strlen(kwargs) &&
          strcmp(res.body + res.body_len - strlen(kwargs), kwargs) == 0);
    CHECK_MEM(res.body, 30, "{\"model\":\"qwen3-30b-a3b\",\"mess", 30);
    CHECK_VALUE(res.body, res.body_len, "/system/0/text",
                "\"You are Claude Code, Anthropic's official CLI for Claude.\"");

    /* Everything else verbatim: each top-level member but model and system
     * (spans from the scanner), and the system blocks that stayed. */
    struct jsonscan_iter it;
    struct jsonscan_member m;
    size_t verbatim = 0, members = 0;
    jsonscan_iter_init(&it, body, len, 0);
    while (jsonscan_iter_next(&it, &m)) {
        members++;
        if (memcmp(body + m.key, "\"model\"", 7) == 0 ||
            memcmp(body + m.key, "\"system\"", 8) == 0)
            continue;
        CHECK(memmem(res.body, res.body_len, body + m.key, m.value_end - m.key) != NULL);
        verbatim += m.value_end - m.key;
    }
    CHECK_INT(members, 8);
    CHECK(verbatim > len * 3 / 4); /* tools and messages are most of it */
    cJSON *orig = cJSON_ParseWithLength(body, len);
    CHECK(orig != NULL);
    cJSON *sys = cJSON_GetObjectItemCaseSensitive(orig, "system");
    for (int i = 1; i < cJSON_GetArraySize(sys); i++) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sys, i), "text");
        char *printed = cJSON_PrintUnformatted(t);
        /* These texts have no characters cJSON would spell differently. */
        CHECK(printed && memmem(res.body, res.body_len, printed, strlen(printed)) != NULL);
        free(printed);
    }
    cJSON_Delete(orig);
    /* Semantically: the original with exactly these three edits. */
    cJSON *want = cJSON_ParseWithLength(body, len), *got = cJSON_ParseWithLength(res.body, res.body_len);
    cJSON_ReplaceItemInObjectCaseSensitive(want, "model", cJSON_CreateString("qwen3-30b-a3b"));
    cJSON_DeleteItemFromArray(cJSON_GetObjectItemCaseSensitive(want, "system"), 0);
    cJSON *kw = cJSON_AddObjectToObject(want, "chat_template_kwargs");
    cJSON_AddFalseToObject(kw, "enable_thinking");
    CHECK(got && cJSON_Compare(want, got, 1));
    cJSON_Delete(want);
    cJSON_Delete(got);
    rewrite_result_finish(&res);

    /* Another client on the same route: untouched. */
    const char *const sdk_h[] = {"User-Agent: Anthropic/Python 0.39.0",
                                 "Content-Type: application/json", NULL};
    make_head(&h, sdk_h);
    q = request("/v1/messages", &h);
    CHECK(!rewrite_wants_body(rr, &q));
    CHECK_INT(rewrite_apply(rr, &q, body, len, &res), 0);
    CHECK(!res.changed && res.body == NULL);
    CHECK_STR(res.rules, "");
    CHECK_INT(res.thinking, -1);
    rewrite_result_finish(&res);

    /* Claude Code asking for thinking on this one request. */
    make_head(&h, cc_h);
    q = request("/v1/messages", &h);
    q.override = REWRITE_THINKING_ON;
    CHECK_INT(rewrite_apply(rr, &q, body, len, &res), 0);
    CHECK_INT(res.thinking, 1);
    CHECK(res.body && res.body_len > 20 &&
          strcmp(res.body + res.body_len - 20, "enable_thinking\":true}}") != 0);
    CHECK(res.body && strstr(res.body, "\"chat_template_kwargs\":{\"enable_thinking\":true}}") != NULL);
    rewrite_result_finish(&res);

    /* count_tokens: the model is mapped; thinking does not apply there. */
    const char *count = "{\"model\":\"claude-haiku-4-5-20251001\",\"messages\":[]}";
    q = request("/v1/messages/count_tokens", &h);
    CHECK_INT(rewrite_apply(rr, &q, count, strlen(count), &res), 0);
    CHECK_STR(res.rules, "claude-models-to-local");
    CHECK(res.body && strcmp(res.body, "{\"model\":\"qwen3-30b-a3b\",\"messages\":[]}") == 0);
    rewrite_result_finish(&res);
done_rr:
    rewrite_rules_free(rr);
done:
    free(body);
    free(cfg);
}

/* The examples of docs/rewrite.md load and do what the text says. */
static void test_doc_examples(void)
{
    const char *const side_h[] = {"Content-Type: application/json",
                                  "User-Agent: claude-cli/2.0.14 (external, cli)", NULL};
    struct http_head h;
    make_head(&h, side_h);
    struct rewrite_request q = request("/v1/messages", &h);
    struct rewrite_result res;
    const char *in;

    struct rewrite_rules *rr = LOAD("rewrite:\n"
                                    "  rules:\n"
                                    "    - name: cc-side-no-thinking\n"
                                    "      match:\n"
                                    "        headers: {user-agent: \"claude-cli/*\"}\n"
                                    "        model: \"claude-*haiku*\"\n"
                                    "      thinking: off\n"
                                    "    - name: cc-main-thinking\n"
                                    "      match:\n"
                                    "        headers: {user-agent: \"claude-cli/*\"}\n"
                                    "        model: [\"claude-sonnet-*\", \"claude-opus-*\"]\n"
                                    "      thinking: on\n");
    in = "{\"model\":\"claude-haiku-4-5-20251001\",\"messages\":[]}";
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_STR(res.rules, "cc-side-no-thinking");
    CHECK_INT(res.thinking, 0);
    rewrite_result_finish(&res);
    in = "{\"model\":\"claude-opus-4-1-20250805\",\"messages\":[]}";
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_STR(res.rules, "cc-main-thinking");
    CHECK_INT(res.thinking, 1);
    rewrite_result_finish(&res);
    rewrite_rules_free(rr);

    rr = LOAD("rewrite:\n"
              "  rules:\n"
              "    - name: my-agent-decides\n"
              "      match: {headers: {user-agent: \"my-agent/*\"}}\n"
              "      thinking: pass\n"
              "    - name: qwen3-sampling\n"
              "      match: {model: \"qwen3-*\"}\n"
              "      merge: {temperature: 0.6, top_p: 0.95, top_k: 20, min_p: 0}\n"
              "    - name: qwen3-no-thinking\n"
              "      match: {model: \"qwen3-*\"}\n"
              "      thinking: off\n");
    const char *const mine_h[] = {"Content-Type: application/json", "User-Agent: my-agent/0.1", NULL};
    make_head(&h, mine_h);
    q = request("/v1/chat/completions", &h);
    in = "{\"model\":\"qwen3-8b\",\"chat_template_kwargs\":{\"enable_thinking\":true}}";
    res = apply_q(__LINE__, rr, &q, in);
    CHECK_STR(res.rules, "my-agent-decides,qwen3-sampling,qwen3-no-thinking");
    CHECK_INT(res.thinking, 1);
    CHECK_OUT(res, in,
              "{\"model\":\"qwen3-8b\",\"chat_template_kwargs\":{\"enable_thinking\":true},"
              "\"temperature\":0.6,\"top_p\":0.95,\"top_k\":20,\"min_p\":0}");
    res = CHAT(rr, in);
    CHECK_INT(res.thinking, 0);
    rewrite_result_finish(&res);
    rewrite_rules_free(rr);

    rr = LOAD("rewrite:\n"
              "  rules:\n"
              "    - name: h\n"
              "      headers:\n"
              "        set: {Authorization: \"Bearer sk-local\"}\n"
              "        remove: [anthropic-beta]\n"
              "    - name: s\n"
              "      set:\n"
              "        /temperature: 0.6\n"
              "        /chat_template_kwargs/enable_thinking: false\n"
              "        /stop/-: \"</answer>\"\n"
              "      delete: [/logit_bias, /messages/0]\n"
              "      merge:\n"
              "        chat_template_kwargs: {reasoning_effort: low}\n"
              "        top_k: 20\n"
              "        logit_bias: ~\n");
    in = "{\"messages\":[1,2],\"stop\":[\"x\"],\"logit_bias\":{}}";
    res = CHAT(rr, in);
    CHECK_INT(res.n_headers, 2);
    CHECK_OUT(res, in,
              "{\"messages\":[2],\"stop\":[\"x\",\"</answer>\"],\"temperature\":0.6,"
              "\"chat_template_kwargs\":{\"enable_thinking\":false,\"reasoning_effort\":\"low\"},"
              "\"top_k\":20}");
    rewrite_rules_free(rr);
}

int main(void)
{
    test_load_errors();
    test_glob();
    test_override_header();
    test_wants_body();
    test_openai_chat();
    test_anthropic();
    test_completion_routes();
    test_override();
    test_order();
    test_rule_failed();
    test_drop_blocks();
    test_headers();
    test_skip_reasons();
    test_fidelity();
    test_body_model_and_thinking();
    test_rules_list();
    test_claude_code();
    test_doc_examples();
    return check_done("test_rewrite");
}
