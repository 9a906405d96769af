/* libFuzzer target for rewrite. The first byte picks a mode:
 *   0-3: rewrite_apply with the "all" rule set (every action, matches on
 *        route, header and model) on the rest as the body; the byte also
 *        picks the route, the override and whether a JSON Content-Type is
 *        sent. Checks: returns 0; a body that is a valid JSON object (and
 *        not too large) is never skipped for its shape, and any output is
 *        valid JSON (to jsonedit, and to cJSON when cJSON reads the input);
 *        an unusable body is never changed; result.thinking equals
 *        rewrite_body_thinking() of the output; the rule list is bounded.
 *   4:   the "drop" rule set (drop_blocks only), checked against a tree
 *        algorithm on cJSON (tests/jsonref.h) when cJSON can stand in.
 *   5:   the rest as YAML for rewrite_rules_load: no crash, no leak.
 * Built with -Dfuzz=true (clang). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "wire/http.h"
#include "core/jsonedit.h"
#include "jsonref.h"
#include "core/jsonscan.h"
#include "rewrite/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_rewrite: %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char all_yaml[] =
    "rewrite:\n"
    "  max_body: 64K\n"
    "  anthropic_thinking_field: true\n"
    "  rules:\n"
    "    - name: cc\n"
    "      match: {headers: {user-agent: \"claude-cli/*\"}}\n"
    "      thinking: off\n"
    "      drop_blocks: {path: /system, text_prefix: \"x-\"}\n"
    "    - name: alias\n"
    "      match: {model: \"claude-*\"}\n"
    "      model: local\n"
    "    - name: preset\n"
    "      match: {model: \"l*\", route: \"/v1/*\"}\n"
    "      set: {/temperature: 0.6, /a/b/c: [1, \"\\u00e9\"], /messages/0/x: 1, /m~1n: null}\n"
    "      delete: [/top_k, /messages/1, /x/y]\n"
    "      merge: {chat_template_kwargs: {z: 1, enable_thinking: null}, stream: true, q: ~}\n"
    "    - name: on\n"
    "      match: {route: /v1/messages}\n"
    "      thinking: on\n"
    "      headers: {set: {X-A: b}, remove: [X-B]}\n"
    "    - name: drop-nested\n"
    "      drop_blocks: [{path: /messages/0/content, text_prefix: \"<\"}, {path: /0, text_prefix: a}]\n";

static const char drop_yaml[] = "rewrite:\n"
                                "  rules:\n"
                                "    - name: d\n"
                                "      drop_blocks: {path: /system, text_prefix: \"x-\"}\n";

static struct rewrite_rules *load(const char *yaml)
{
    struct config_doc *doc = NULL;
    struct config_err err;
    struct rewrite_rules *rr = NULL;
    if (config_parse("fuzz.yaml", yaml, strlen(yaml), &doc, &err) < 0 ||
        rewrite_rules_load(doc, cJSON_GetObjectItemCaseSensitive(config_root(doc), "rewrite"), &rr,
                           &err) < 0) {
        fprintf(stderr, "fuzz_rewrite: %s\n", err.msg);
        abort();
    }
    config_free(doc);
    return rr;
}

/* Routes and their dialects (as dialect_from_path says; dialect.c is not
 * compiled in). */
static const struct {
    const char *path;
    enum dialect_kind dialect;
} routes[] = {
    {"/v1/chat/completions", DIALECT_OPENAI_CHAT},
    {"/v1/messages", DIALECT_ANTHROPIC},
    {"/v1/responses", DIALECT_RESPONSES},
    {"/completion", DIALECT_LLAMA_COMPLETION},
    {"/v1/completions", DIALECT_OPENAI_COMPLETIONS},
    {"/other", DIALECT_UNKNOWN},
};

/* The drop rule on a tree: remove /system's elements whose "text" is a
 * string starting with "x-". */
static void ref_drop(cJSON *root)
{
    cJSON *sys = cJSON_GetObjectItemCaseSensitive(root, "system");
    if (!cJSON_IsArray(sys))
        return;
    int i = 0;
    for (cJSON *el = sys->child; el;) {
        cJSON *next = el->next;
        cJSON *t = cJSON_IsObject(el) ? cJSON_GetObjectItemCaseSensitive(el, "text") : NULL;
        if (cJSON_IsString(t) && strncmp(t->valuestring, "x-", 2) == 0)
            cJSON_DeleteItemFromArray(sys, i);
        else
            i++;
        el = next;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rewrite_rules *all, *drop;
    if (!all) {
        all = load(all_yaml);
        drop = load(drop_yaml);
    }
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    unsigned mode = sel % 6;
    char *body = malloc(size);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    size_t len = size - 1;

    if (mode == 5) {
        struct config_doc *doc = NULL;
        struct config_err err;
        struct rewrite_rules *rr = NULL;
        if (config_parse("fuzz.yaml", body, len, &doc, &err) == 0) {
            const cJSON *root = config_root(doc);
            const cJSON *node = cJSON_GetObjectItemCaseSensitive(root, "rewrite");
            int r = rewrite_rules_load(doc, node ? node : root, &rr, &err);
            FUZZ_ASSERT(r == 0 || r == -EINVAL);
            FUZZ_ASSERT((r == 0) == (rr != NULL));
            rewrite_rules_free(rr);
        }
        config_free(doc);
        free(body);
        return 0;
    }

    const struct rewrite_rules *rr = mode == 4 ? drop : all;
    const char *path = routes[(sel / 6) % 6].path;
    struct http_head h;
    struct http_header views[2];
    memset(&h, 0, sizeof(h));
    h.headers = views;
    const char *hdr[][2] = {{"User-Agent", "claude-cli/2.0.14 (external, cli)"},
                            {"Content-Type", "application/json"}};
    h.n_headers = (sel / 36) % 2 ? 2 : 1; /* without a Content-Type: the body's first byte decides */
    for (size_t i = 0; i < h.n_headers; i++) {
        views[i].name = (struct http_str){hdr[i][0], strlen(hdr[i][0])};
        views[i].value = (struct http_str){hdr[i][1], strlen(hdr[i][1])};
    }
    static const enum rewrite_thinking overrides[] = {
        REWRITE_THINKING_UNSET, REWRITE_THINKING_OFF, REWRITE_THINKING_ON, REWRITE_THINKING_PASS};
    struct rewrite_request q = {
        .method = "POST",
        .path = path,
        .path_len = strlen(path),
        .dialect = routes[(sel / 6) % 6].dialect,
        .head = &h,
        .upstream = "local",
        .override = overrides[(sel / 72) % 4],
    };

    struct rewrite_result res;
    int r = rewrite_apply(rr, &q, body, len, &res);
    FUZZ_ASSERT(r == 0);
    FUZZ_ASSERT(strlen(res.rules) < REWRITE_RULES_LEN);
    FUZZ_ASSERT(res.changed == (res.body != NULL));
    FUZZ_ASSERT(res.n_headers <= REWRITE_MAX_HEADER_EDITS);

    struct jsonscan_info info;
    bool object = len > 0 && len <= rewrite_max_body(rr) &&
                  jsonscan_validate(body, len, JSONEDIT_MAX_DEPTH, &info) == 0 &&
                  body[info.start] == '{';
    if (!object)
        FUZZ_ASSERT(!res.changed);
    if (object)
        FUZZ_ASSERT(res.skip == REWRITE_SKIP_NONE || res.skip == REWRITE_SKIP_RULE_FAILED);
    const char *out = res.body ? res.body : body;
    size_t out_len = res.body ? res.body_len : len;
    if (res.body) {
        FUZZ_ASSERT(res.body[res.body_len] == '\0');
        FUZZ_ASSERT(jsonedit_validate(res.body, res.body_len) == 0);
        FUZZ_ASSERT(res.body_len != len || memcmp(res.body, body, len) != 0);
        cJSON *in_tree = cJSON_ParseWithLength(body, len);
        if (in_tree) {
            cJSON *out_tree = cJSON_ParseWithLength(res.body, res.body_len);
            FUZZ_ASSERT(out_tree != NULL);
            cJSON_Delete(out_tree);
        }
        cJSON_Delete(in_tree);
    }
    if (object)
        FUZZ_ASSERT(res.thinking == rewrite_body_thinking(q.dialect, out, out_len));
    else
        FUZZ_ASSERT(res.thinking == -1);

    /* drop_blocks against the tree algorithm. */
    if (mode == 4 && object && q.override == REWRITE_THINKING_UNSET) {
        cJSON *want = ref_parse(body, len);
        if (want) {
            ref_drop(want);
            cJSON *got = cJSON_ParseWithLength(out, out_len);
            if (!ref_equal(got, want)) {
                char *w = cJSON_PrintUnformatted(want);
                fprintf(stderr, "got  %.*s\nwant %s\n", (int)out_len, out, w ? w : "(null)");
                free(w);
                FUZZ_ASSERT(!"drop_blocks and the tree algorithm disagree");
            }
            cJSON_Delete(got);
            cJSON_Delete(want);
        }
    }
    rewrite_result_finish(&res);
    free(body);
    return 0;
}
