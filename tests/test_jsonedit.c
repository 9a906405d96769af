/* Unit tests for the jsonedit module: validation, set, delete, merge; each
 * edit checked for exact output bytes, semantic equality (cJSON), and
 * byte fidelity outside the edited span; plus real request bodies from
 * the llama-server captures and a randomized comparison with a tree merge. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "fidelity.h"
#include "core/jsonedit.h"
#include "jsonref.h"

/* Output must be valid JSON (by us and by cJSON) and equal want_json. */
static void check_semantic(int line, const char *out, size_t out_len, const char *want_json)
{
    check_count++;
    if (jsonedit_validate(out, out_len) != 0) {
        check_failures++;
        fprintf(stderr, "line %d: output is not valid JSON: %.*s\n", line, (int)out_len, out);
        return;
    }
    cJSON *got = cJSON_ParseWithLength(out, out_len), *want = cJSON_Parse(want_json);
    check_count++;
    if (!got || !want || !cJSON_Compare(got, want, 1)) {
        check_failures++;
        fprintf(stderr, "line %d: output %.*s is not %s\n", line, (int)out_len, out, want_json);
    }
    cJSON_Delete(got);
    cJSON_Delete(want);
}

enum op { SET, DEL, MERGE };

/* Runs one edit on doc and checks the result code, then (on success) the
 * exact output bytes when want_bytes is given, and semantics when
 * want_json is given (else want_bytes is used for both). */
static void run(int line, enum op op, const char *doc, const char *arg, const char *value,
                int want_r, const char *want_bytes, const char *want_json)
{
    char *out = NULL;
    size_t out_len = 0, len = strlen(doc);
    int r;
    if (op == SET)
        r = jsonedit_set(doc, len, arg, value, strlen(value), &out, &out_len);
    else if (op == DEL)
        r = jsonedit_delete(doc, len, arg, &out, &out_len);
    else
        r = jsonedit_merge(doc, len, arg, strlen(arg), &out, &out_len);
    check_count++;
    if (r != want_r) {
        check_failures++;
        fprintf(stderr, "line %d: result %d, want %d (%.*s)\n", line, r, want_r,
                out ? (int)out_len : 0, out ? out : "");
    }
    if (r >= 0) {
        check_count++;
        if (!out || out[out_len] != '\0' ||
            (want_r == JSONEDIT_UNCHANGED && (out_len != len || memcmp(out, doc, len)))) {
            check_failures++;
            fprintf(stderr, "line %d: bad output buffer\n", line);
        }
        if (want_bytes) {
            check_count++;
            if (out_len != strlen(want_bytes) || memcmp(out, want_bytes, out_len) != 0) {
                check_failures++;
                fprintf(stderr, "line %d: got  %.*s\n         want %s\n", line, (int)out_len, out,
                        want_bytes);
            }
        }
        /* "" skips the semantic check (cJSON cannot compare duplicate keys). */
        if ((want_json || want_bytes) && !(want_json && !*want_json))
            check_semantic(line, out, out_len, want_json ? want_json : want_bytes);
    } else {
        CHECK(out == NULL);
    }
    free(out);
}

#define SET_OK(doc, ptr, val, want) run(__LINE__, SET, doc, ptr, val, 0, want, NULL)
#define DEL_OK(doc, ptr, want) run(__LINE__, DEL, doc, ptr, NULL, 0, want, NULL)
#define MERGE_OK(doc, patch, want) run(__LINE__, MERGE, doc, patch, NULL, 0, want, NULL)
#define SET_ERR(doc, ptr, val, err) run(__LINE__, SET, doc, ptr, val, err, NULL, NULL)
#define DEL_ERR(doc, ptr, err) run(__LINE__, DEL, doc, ptr, NULL, err, NULL, NULL)
#define MERGE_ERR(doc, patch, err) run(__LINE__, MERGE, doc, patch, NULL, err, NULL, NULL)

static int validate_str(const char *s)
{
    return jsonedit_validate(s, strlen(s));
}

static void test_validate(void)
{
    static const char *const good[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "0.1",
        "1e-7",
        "1E+2",
        "-12.5e10",
        "9007199254740993",
        "true",
        "false",
        "null",
        "\"\"",
        " \t\r\n{ } \n",
        "\"\\u00e9\\/\\\"\\\\\\b\\f\\n\\r\\t\"",
        "\"é😀\"",
        "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}",
        "[[[]]]",
        "\"\\ud800\"",
        "\"\xff\xfe\"", /* bytes >= 0x80 pass through unchecked */
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int r = validate_str(good[i]);
        if (r != 0)
            fprintf(stderr, "should be valid: %s\n", good[i]);
        CHECK_INT(r, 0);
    }
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "{}}",
        "{} x",
        "{}{}",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "{'a':1}",
        "{\"a\":1 \"b\":2}",
        "01",
        "1.",
        ".5",
        "+1",
        "-",
        "1e",
        "1e+",
        "NaN",
        "Infinity",
        "tru",
        "nulls",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"a\nb\"",
        "\"\t\"",
        "\xef\xbb\xbf{}",
        "[1 2]",
        "/* c */ {}",
        "[\"a\",]",
        ",",
        "{,}",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "\"\\",
        "-01",
        "1.5e",
        "[-]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = validate_str(bad[i]);
        if (r != JSONEDIT_ERR_INVALID)
            fprintf(stderr, "should be invalid: %s\n", bad[i]);
        CHECK_INT(r, JSONEDIT_ERR_INVALID);
    }
    /* A raw NUL after the document is trailing garbage. */
    CHECK_INT(jsonedit_validate("{}\0", 3), JSONEDIT_ERR_INVALID);
    CHECK_INT(jsonedit_validate(NULL, 0), JSONEDIT_ERR_INVALID);

    /* Depth: 512 levels pass, 513 fail, a million fail fast (no recursion). */
    size_t big = 1000000;
    char *deep = malloc(2 * big + 1);
    memset(deep, '[', big);
    memset(deep + big, ']', big);
    CHECK_INT(jsonedit_validate(deep + big - 512, 1024), 0);
    CHECK_INT(jsonedit_validate(deep + big - 513, 1026), JSONEDIT_ERR_TOO_DEEP);
    CHECK_INT(jsonedit_validate(deep, 2 * big), JSONEDIT_ERR_TOO_DEEP);
    for (size_t i = 0; i < big; i++)
        deep[i] = i % 2 ? '[' : '{';
    /* "{[" is invalid before it is deep. */
    CHECK_INT(jsonedit_validate(deep, 2 * big), JSONEDIT_ERR_INVALID);
    for (size_t i = 0; i < big; i += 5)
        memcpy(deep + i, "{\"\":[", 5);
    CHECK_INT(jsonedit_validate(deep, big), JSONEDIT_ERR_TOO_DEEP);
    /* The same depth limit for edits. */
    char *doc = malloc(big + 16);
    snprintf(doc, big + 16, "{\"a\":%.*s%.*s}", 600, deep + big, 600, deep + big);
    memset(doc + 5, '[', 600);
    CHECK_INT(jsonedit_validate(doc, strlen(doc)), JSONEDIT_ERR_TOO_DEEP);
    char *out;
    size_t out_len;
    CHECK_INT(jsonedit_merge(doc, strlen(doc), "{}", 2, &out, &out_len), JSONEDIT_ERR_TOO_DEEP);
    free(doc);
    free(deep);
}

/* Request bodies with every kind of spelling that must survive. */
static const char tricky[] =
    "{\"model\" : \"m\",\n  \"temperature\":0.1, \"eps\": 1e-7,\"big\":9007199254740993,"
    "\"negz\":-0,\"e\":1E+2,\n\t\"s\":\"caf\\u00e9 \\/ \\\"q\\\" é😀\",\r\n"
    "  \"messages\":[ {\"role\":\"user\",\"content\":\"hi\"} ]  }";

static void test_set(void)
{
    /* New member at the end of the root, with the root's separator style. */
    SET_OK("{\"a\":1}", "/b", "true", "{\"a\":1,\"b\":true}");
    SET_OK("{\"a\": 1, \"b\": 2}", "/c", "3", "{\"a\": 1, \"b\": 2, \"c\": 3}");
    SET_OK("{\n  \"a\": 1\n}", "/b", "2", "{\n  \"a\": 1,\n  \"b\": 2\n}");
    SET_OK("{\r\n\t\"a\" :1,\r\n\t\"b\" :2\r\n}", "/c", "3",
           "{\r\n\t\"a\" :1,\r\n\t\"b\" :2,\r\n\t\"c\" :3\r\n}");
    SET_OK("{}", "/a", "1", "{\"a\":1}");
    SET_OK("{ }", "/a", "1", "{\"a\":1 }");
    SET_OK("{\"a\": 1}", "/b", "2", "{\"a\": 1, \"b\": 2}");
    /* Missing intermediate objects are created (the headline rule). */
    SET_OK(
        "{\"model\":\"m\",\"messages\":[]}", "/chat_template_kwargs/enable_thinking", "false",
        "{\"model\":\"m\",\"messages\":[],\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    SET_OK("{\"model\": \"m\"}", "/a/b/c", "[1, 2]",
           "{\"model\": \"m\", \"a\": {\"b\": {\"c\": [1, 2]}}}");
    /* An existing intermediate keeps its other members. */
    SET_OK("{\"chat_template_kwargs\":{\"foo\":1},\"x\":2}",
           "/chat_template_kwargs/enable_thinking", "false",
           "{\"chat_template_kwargs\":{\"foo\":1,\"enable_thinking\":false},\"x\":2}");
    /* Replacing a value leaves everything else verbatim. */
    SET_OK("{\"a\":  1 ,\"b\":2}", "/a", " {\"x\": 0.10} ", "{\"a\":  {\"x\": 0.10} ,\"b\":2}");
    SET_OK("{\"chat_template_kwargs\":{\"enable_thinking\":true,\"foo\":1}}",
           "/chat_template_kwargs/enable_thinking", "false",
           "{\"chat_template_kwargs\":{\"enable_thinking\":false,\"foo\":1}}");
    /* Tricky spellings survive an edit next to them. */
    {
        /* The root's separator is the text between its first two members,
         * its colon the one of its first member. */
        char want[512];
        snprintf(want, sizeof(want), "%.*s,\n  \"stream\" : true  }", (int)strlen(tricky) - 3,
                 tricky);
        run(__LINE__, SET, tricky, "/stream", "true", 0, want, NULL);
        char *out;
        size_t out_len;
        CHECK_INT(jsonedit_set(tricky, strlen(tricky), "/temperature", "0.7", 3, &out, &out_len),
                  0);
        const char *t = strstr(tricky, "0.1");
        CHECK_INT(out_len, strlen(tricky));
        CHECK_MEM(out, (size_t)(t - tricky), tricky, (size_t)(t - tricky));
        CHECK_MEM(out + (t - tricky), 3, "0.7", 3);
        CHECK_STR(out + (t - tricky) + 3, t + 3);
        free(out);
    }
    /* Same value, same spelling: UNCHANGED. */
    run(__LINE__, SET, "{\"a\":false}", "/a", "false", JSONEDIT_UNCHANGED, "{\"a\":false}", NULL);
    /* Arrays: replace by index, append with "-". */
    SET_OK("{\"m\":[1, 2, 3]}", "/m/1", "{\"k\":true}", "{\"m\":[1, {\"k\":true}, 3]}");
    SET_OK("{\"m\":[1, 2, 3]}", "/m/-", "4", "{\"m\":[1, 2, 3, 4]}");
    SET_OK("{\"m\":[\n  1\n]}", "/m/-", "2", "{\"m\":[\n  1,\n  2\n]}");
    SET_OK("{\"m\":[]}", "/m/-", "\"x\"", "{\"m\":[\"x\"]}");
    SET_OK("{\"m\":[{\"a\":1},{\"a\":2}]}", "/m/1/b", "0", "{\"m\":[{\"a\":1},{\"a\":2,\"b\":0}]}");
    SET_ERR("{\"m\":[1]}", "/m/1", "0", JSONEDIT_ERR_NO_ELEMENT);
    SET_ERR("{\"m\":[1]}", "/m/5/x", "0", JSONEDIT_ERR_NO_ELEMENT);
    SET_ERR("{\"m\":[1]}", "/m/-/x", "0", JSONEDIT_ERR_NO_ELEMENT);
    SET_ERR("{\"m\":[1]}", "/m/01", "0", JSONEDIT_ERR_NOT_CONTAINER);
    SET_ERR("{\"m\":[1]}", "/m/x", "0", JSONEDIT_ERR_NOT_CONTAINER);
    /* Through a scalar: the rule cannot apply. */
    SET_ERR("{\"chat_template_kwargs\":\"x\"}", "/chat_template_kwargs/enable_thinking", "false",
            JSONEDIT_ERR_NOT_CONTAINER);
    SET_ERR("{\"a\":{\"b\":1}}", "/a/b/c", "0", JSONEDIT_ERR_NOT_CONTAINER);
    SET_ERR("{\"a\":null}", "/a/b", "0", JSONEDIT_ERR_NOT_CONTAINER);
    /* Pointer escapes: ~1 is '/', ~0 is '~'; new keys are JSON-escaped. */
    SET_OK("{\"a/b\":1,\"m~n\":2}", "/a~1b", "3", "{\"a/b\":3,\"m~n\":2}");
    SET_OK("{\"a/b\":1,\"m~n\":2}", "/m~0n", "3", "{\"a/b\":1,\"m~n\":3}");
    SET_OK("{}", "/x~1y~0z", "1", "{\"x/y~z\":1}");
    SET_OK("{}", "/q\"\\\n", "1", "{\"q\\\"\\\\\\u000a\":1}");
    SET_OK("{\"\":1}", "/", "2", "{\"\":2}");
    /* Keys match by meaning, whatever the escape spelling. */
    SET_OK("{\"caf\\u00e9\":1}", "/café", "2", "{\"caf\\u00e9\":2}");
    SET_OK("{\"a\\/b\":1}", "/a~1b", "2", "{\"a\\/b\":2}");
    SET_OK("{\"\\ud83d\\ude00\":1}", "/😀", "2", "{\"\\ud83d\\ude00\":2}");
    SET_OK("{\"caf\\u00e9\":1}", "/cafe", "2", "{\"caf\\u00e9\":1,\"cafe\":2}");
    /* Duplicate keys: the walk follows the last, the final step edits all. */
    run(__LINE__, SET, "{\"a\":1,\"a\":2}", "/a", "3", 0, "{\"a\":3,\"a\":3}", "{\"a\":3}");
    run(__LINE__, SET, "{\"a\":{\"x\":1},\"a\":{\"y\":1}}", "/a/z", "0", 0,
        "{\"a\":{\"x\":1},\"a\":{\"y\":1,\"z\":0}}", "");
    /* Errors. */
    SET_ERR("[1]", "/0", "1", JSONEDIT_ERR_NOT_OBJECT);
    SET_ERR("\"s\"", "/a", "1", JSONEDIT_ERR_NOT_OBJECT);
    SET_ERR("{\"a\":1", "/a", "1", JSONEDIT_ERR_INVALID);
    SET_ERR("{\"a\":1}", "a", "1", JSONEDIT_ERR_BAD_ARG);
    SET_ERR("{\"a\":1}", "", "1", JSONEDIT_ERR_BAD_ARG);
    SET_ERR("{\"a\":1}", "/~2", "1", JSONEDIT_ERR_BAD_ARG);
    SET_ERR("{\"a\":1}", "/a~", "1", JSONEDIT_ERR_BAD_ARG);
    SET_ERR("{\"a\":1}", "/a", "tru", JSONEDIT_ERR_BAD_ARG);
    SET_ERR("{\"a\":1}", "/a", "", JSONEDIT_ERR_BAD_ARG);
    SET_ERR("{\"a\":1}", "/a", "1 2", JSONEDIT_ERR_BAD_ARG);
    char *out = NULL;
    size_t out_len;
    CHECK_INT(jsonedit_set("{}", 2, NULL, "1", 1, &out, &out_len), JSONEDIT_ERR_BAD_ARG);
    CHECK_INT(jsonedit_set(NULL, 0, "/a", "1", 1, &out, &out_len), JSONEDIT_ERR_BAD_ARG);
    /* Depth: the pointer plus the value must fit the limit. */
    char ptr[2 * JSONEDIT_MAX_DEPTH + 8];
    for (size_t i = 0; i < JSONEDIT_MAX_DEPTH; i++)
        memcpy(ptr + 2 * i, "/a", 2);
    ptr[2 * JSONEDIT_MAX_DEPTH] = '\0';
    CHECK_INT(jsonedit_set("{}", 2, ptr, "1", 1, &out, &out_len), 0);
    CHECK_INT(jsonedit_validate(out, out_len), 0);
    free(out);
    CHECK_INT(jsonedit_set("{}", 2, ptr, "[]", 2, &out, &out_len), JSONEDIT_ERR_TOO_DEEP);
}

static void test_delete(void)
{
    DEL_OK("{\"a\":1,\"b\":2,\"c\":3}", "/a", "{\"b\":2,\"c\":3}");
    DEL_OK("{\"a\":1,\"b\":2,\"c\":3}", "/b", "{\"a\":1,\"c\":3}");
    DEL_OK("{\"a\":1,\"b\":2,\"c\":3}", "/c", "{\"a\":1,\"b\":2}");
    DEL_OK("{\"a\":1}", "/a", "{}");
    DEL_OK("{ \"a\" : 1 }", "/a", "{  }");
    DEL_OK("{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3\n}", "/b", "{\n  \"a\": 1,\n  \"c\": 3\n}");
    DEL_OK("{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3\n}", "/c", "{\n  \"a\": 1,\n  \"b\": 2\n}");
    DEL_OK("{\n  \"a\": 1,\n  \"b\": 2\n}", "/a", "{\n  \"b\": 2\n}");
    DEL_OK("{\"x\":{\"a\":[1,{\"b\":2}],\"c\":\"}\"},\"y\":0}", "/x/a",
           "{\"x\":{\"c\":\"}\"},\"y\":0}");
    DEL_OK("{\"x\":{\"a\":1,\"b\":2}}", "/x/b", "{\"x\":{\"a\":1}}");
    /* Anthropic system blocks. */
    DEL_OK("{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"You are Claude Code.\"},"
           "{\"type\":\"text\",\"text\":\"Be brief.\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
           "\"max_tokens\":32}",
           "/system/0",
           "{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\","
           "\"cache_control\":{\"type\":\"ephemeral\"}}],\"max_tokens\":32}");
    DEL_OK("{\"s\":[1, 2, 3]}", "/s/1", "{\"s\":[1, 3]}");
    DEL_OK("{\"s\":[1, 2, 3]}", "/s/2", "{\"s\":[1, 2]}");
    DEL_OK("{\"s\":[ 1 ]}", "/s/0", "{\"s\":[  ]}");
    DEL_OK("{\"s\":[[1,2],[3]]}", "/s/0/1", "{\"s\":[[1],[3]]}");
    /* Keys by meaning; escapes in the pointer. */
    DEL_OK("{\"a\\/b\":1,\"c\":2}", "/a~1b", "{\"c\":2}");
    DEL_OK("{\"c\":2,\"~\":1}", "/~0", "{\"c\":2}");
    /* Duplicates: all go. */
    DEL_OK("{\"a\":1,\"b\":0,\"a\":2}", "/a", "{\"b\":0}");
    DEL_OK("{\"a\":1,\"a\":2}", "/a", "{}");
    /* Nothing to delete. */
    run(__LINE__, DEL, "{\"a\":1}", "/b", NULL, JSONEDIT_UNCHANGED, "{\"a\":1}", NULL);
    run(__LINE__, DEL, "{\"a\":1}", "/b/c", NULL, JSONEDIT_UNCHANGED, "{\"a\":1}", NULL);
    run(__LINE__, DEL, "{\"a\":[1]}", "/a/1", NULL, JSONEDIT_UNCHANGED, "{\"a\":[1]}", NULL);
    run(__LINE__, DEL, "{\"a\":[1]}", "/a/-", NULL, JSONEDIT_UNCHANGED, "{\"a\":[1]}", NULL);
    run(__LINE__, DEL, "{\"a\":[]}", "/a/3/x", NULL, JSONEDIT_UNCHANGED, "{\"a\":[]}", NULL);
    run(__LINE__, DEL, "{}", "/a", NULL, JSONEDIT_UNCHANGED, "{}", NULL);
    /* Errors. */
    DEL_ERR("{\"a\":\"s\"}", "/a/b", JSONEDIT_ERR_NOT_CONTAINER);
    DEL_ERR("{\"a\":[1]}", "/a/b", JSONEDIT_ERR_NOT_CONTAINER);
    DEL_ERR("[]", "/a", JSONEDIT_ERR_NOT_OBJECT);
    DEL_ERR("{\"a\":1}}", "/a", JSONEDIT_ERR_INVALID);
    DEL_ERR("{\"a\":1}", "", JSONEDIT_ERR_BAD_ARG);
    /* Tricky spellings around a deletion. */
    char *out;
    size_t out_len;
    CHECK_INT(jsonedit_delete(tricky, strlen(tricky), "/big", &out, &out_len), 0);
    check_fidelity(__LINE__, tricky, strlen(tricky), out, out_len,
                   strlen("\"big\":9007199254740993,"), NULL);
    CHECK(strstr(out, "\"eps\": 1e-7,\"negz\":-0,\"e\":1E+2") != NULL);
    free(out);
}

static void test_merge(void)
{
    /* The headline rule, with and without an existing object. */
    MERGE_OK("{\"model\":\"m\"}", "{\"chat_template_kwargs\":{\"enable_thinking\":false}}",
             "{\"model\":\"m\",\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    MERGE_OK("{\"chat_template_kwargs\":{\"foo\":1},\"model\":\"m\"}",
             "{\"chat_template_kwargs\":{\"enable_thinking\":false}}",
             "{\"chat_template_kwargs\":{\"foo\":1,\"enable_thinking\":false},\"model\":\"m\"}");
    MERGE_OK("{\"chat_template_kwargs\": {\"enable_thinking\": true}}",
             "{\"chat_template_kwargs\":{\"enable_thinking\":false}}",
             "{\"chat_template_kwargs\": {\"enable_thinking\": false}}");
    run(__LINE__, MERGE, "{\"chat_template_kwargs\":{\"enable_thinking\":false}}",
        "{\"chat_template_kwargs\":{\"enable_thinking\":false}}", NULL, JSONEDIT_UNCHANGED,
        "{\"chat_template_kwargs\":{\"enable_thinking\":false}}", NULL);
    /* Null deletes; deleting a missing member changes nothing. */
    MERGE_OK("{\"a\":1,\"b\":2,\"c\":3}", "{\"b\":null}", "{\"a\":1,\"c\":3}");
    MERGE_OK("{\"a\":1,\"b\":2,\"c\":3}", "{\"a\":null,\"c\":null}", "{\"b\":2}");
    MERGE_OK("{\"a\":1,\"b\":2,\"c\":3}", "{\"b\":null,\"c\":null}", "{\"a\":1}");
    MERGE_OK("{\"a\":1,\"b\":2,\"c\":3}", "{\"a\":null,\"b\":null}", "{\"c\":3}");
    MERGE_OK("{\"a\":1,\"b\":2,\"c\":3}", "{\"a\":null,\"b\":null,\"c\":null}", "{}");
    MERGE_OK("{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3,\n  \"d\": 4\n}", "{\"b\":null,\"c\":null}",
             "{\n  \"a\": 1,\n  \"d\": 4\n}");
    run(__LINE__, MERGE, "{\"a\":1}", "{\"x\":null}", NULL, JSONEDIT_UNCHANGED, "{\"a\":1}", NULL);
    run(__LINE__, MERGE, "{\"a\":1}", "{}", NULL, JSONEDIT_UNCHANGED, "{\"a\":1}", NULL);
    /* Deletions, replacements and additions together. */
    MERGE_OK("{\"a\":1,\"b\":2,\"c\":3}", "{\"c\":null,\"a\":[true],\"d\":\"x\",\"e\":{}}",
             "{\"a\":[true],\"b\":2,\"d\":\"x\",\"e\":{}}");
    MERGE_OK("{\"a\":1,\"b\":2}", "{\"a\":null,\"b\":null,\"c\":3}", "{\"c\":3}");
    MERGE_OK("{ \"a\": 1 }", "{\"a\":null,\"c\":3}", "{ \"c\": 3 }");
    /* Nested merges keep untouched members' bytes. */
    MERGE_OK("{\"o\":{\"x\":0.1,\"y\":{\"z\":1e-7,\"w\":2}},\"p\":9007199254740993}",
             "{\"o\":{\"y\":{\"w\":null,\"v\":-0}}}",
             "{\"o\":{\"x\":0.1,\"y\":{\"z\":1e-7,\"v\":-0}},\"p\":9007199254740993}");
    /* Object patch over a non-object: replaced, nulls dropped (RFC 7386). */
    MERGE_OK("{\"a\":\"s\"}", "{\"a\":{\"b\":null,\"c\":{\"d\":null,\"e\":1}}}",
             "{\"a\":{\"c\":{\"e\":1}}}");
    MERGE_OK("{}", "{\"a\":{\"b\":null}}", "{\"a\":{}}");
    /* Non-object patch values replace objects; arrays are verbatim. */
    MERGE_OK("{\"a\":{\"b\":1}}", "{\"a\":[null, 1.50]}", "{\"a\":[null, 1.50]}");
    /* Patch values keep their own spelling. */
    MERGE_OK("{}", "{\"n\":9007199254740993,\"s\":\"\\u00e9\\/\"}",
             "{\"n\":9007199254740993,\"s\":\"\\u00e9\\/\"}");
    /* Patch keys match document keys by meaning, and are inserted as spelled. */
    MERGE_OK("{\"caf\\u00e9\":1}", "{\"café\":2}", "{\"caf\\u00e9\":2}");
    MERGE_OK("{\"é\":1}", "{\"\\u00e9\":null}", "{}");
    MERGE_OK("{}", "{\"a\\/b\":1}", "{\"a\\/b\":1}");
    /* Duplicates in the document: every occurrence. */
    run(__LINE__, MERGE, "{\"a\":{\"x\":1},\"b\":0,\"a\":{\"y\":2}}", "{\"a\":{\"z\":3}}", NULL, 0,
        "{\"a\":{\"x\":1,\"z\":3},\"b\":0,\"a\":{\"y\":2,\"z\":3}}", "");
    /* Tricky document: only the edited member changes. */
    char *out;
    size_t out_len;
    const char *p2 = "{\"s\":null,\"eps\":0}";
    CHECK_INT(jsonedit_merge(tricky, strlen(tricky), p2, strlen(p2), &out, &out_len), 0);
    CHECK(strstr(out, "\"temperature\":0.1, \"eps\": 0,\"big\":9007199254740993,\"negz\":-0,"
                      "\"e\":1E+2,\n\t\"messages\":[ {\"role\":\"user\",\"content\":\"hi\"} ]  }"));
    free(out);
    /* Errors. */
    MERGE_ERR("{}", "[]", JSONEDIT_ERR_BAD_ARG);
    MERGE_ERR("{}", "null", JSONEDIT_ERR_BAD_ARG);
    MERGE_ERR("{}", "{\"a\":", JSONEDIT_ERR_BAD_ARG);
    MERGE_ERR("{}", "{\"a\":1,\"a\":2}", JSONEDIT_ERR_BAD_ARG);
    MERGE_ERR("{}", "{\"x\":{\"a\":1,\"\\u0061\":2}}", JSONEDIT_ERR_BAD_ARG);
    MERGE_ERR("{\"x\":{}}", "{\"x\":{\"y\":{\"a\":1,\"a\":null}}}", JSONEDIT_ERR_BAD_ARG);
    /* Inside an array a repeated key is data, copied verbatim. */
    run(__LINE__, MERGE, "{}", "{\"x\":[{\"a\":1,\"a\":2}]}", NULL, 0,
        "{\"x\":[{\"a\":1,\"a\":2}]}", "");
    MERGE_ERR("[]", "{}", JSONEDIT_ERR_NOT_OBJECT);
    MERGE_ERR("{} {}", "{}", JSONEDIT_ERR_INVALID);
    char patch[5 * 65 + 66 + 8];
    for (size_t i = 0; i < 65; i++)
        memcpy(patch + 5 * i, "{\"a\":", 5);
    memcpy(patch + 5 * 65, "1", 1);
    memset(patch + 5 * 65 + 1, '}', 65);
    CHECK_INT(jsonedit_merge("{}", 2, patch, 5 * 65 + 66, &out, &out_len), JSONEDIT_ERR_TOO_DEEP);
    CHECK_INT(jsonedit_merge("{}", 2, patch + 5, 5 * 64 + 65, &out, &out_len), 0);
    CHECK_INT(jsonedit_validate(out, out_len), 0);
    free(out);
}

static char *read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *ret_len = n;
    return buf;
}

/* Every captured request body: the headline merge and a set must match
 * the tree algorithm and only insert or replace the one member. */
static void test_fixtures(void)
{
    const char *dir = getenv("FIXTURES");
    char path[1024];
    snprintf(path, sizeof(path), "%s/llama-server", dir ? dir : "tests/fixtures");
    DIR *d = opendir(path);
    CHECK(d != NULL);
    if (!d)
        return;
    const char *patch = "{\"chat_template_kwargs\":{\"enable_thinking\":false}}";
    cJSON *pj = cJSON_Parse(patch);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 13 || strcmp(de->d_name + n - 13, ".request.json") != 0)
            continue;
        char file[1400];
        size_t len;
        snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
        char *doc = read_file(file, &len);
        if (!doc)
            continue;
        cJSON *tree = cJSON_ParseWithLength(doc, len);
        if (!tree || !cJSON_IsObject(tree)) {
            /* The invalid-JSON captures must be rejected. */
            int want = tree ? JSONEDIT_ERR_NOT_OBJECT : JSONEDIT_ERR_INVALID;
            char *out;
            size_t out_len;
            CHECK_INT(jsonedit_merge(doc, len, patch, strlen(patch), &out, &out_len), want);
            cJSON_Delete(tree);
            free(doc);
            continue;
        }
        files++;
        char *out;
        size_t out_len;
        int r = jsonedit_merge(doc, len, patch, strlen(patch), &out, &out_len);
        CHECK(r >= 0);
        if (r >= 0) {
            tree = ref_merge(tree, pj);
            char *want = cJSON_PrintUnformatted(tree);
            check_semantic(__LINE__, out, out_len, want);
            /* Inserted, or "true" replaced by "false". */
            check_fidelity(__LINE__, doc, len, out, out_len, 4, NULL);
            free(want);
            free(out);
        }
        r = jsonedit_set(doc, len, "/max_tokens", "7", 1, &out, &out_len);
        CHECK(r >= 0);
        if (r >= 0) {
            CHECK_INT(jsonedit_validate(out, out_len), 0);
            check_fidelity(__LINE__, doc, len, out, out_len, 20, NULL);
            free(out);
        }
        cJSON_Delete(tree);
        free(doc);
    }
    closedir(d);
    cJSON_Delete(pj);
    CHECK(files >= 20);
}

/* ---- randomized: splices agree with the tree merge ---- */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void rand_ws(char *buf, size_t *len)
{
    static const char *const ws[] = {"", "", "", " ", "\n  ", "\t", "\r\n"};
    const char *w = ws[rnd(7)];
    size_t n = strlen(w);
    memcpy(buf + *len, w, n);
    *len += n;
}

static void put(char *buf, size_t *len, const char *s)
{
    size_t n = strlen(s);
    memcpy(buf + *len, s, n);
    *len += n;
}

/* Writes a random value: objects use distinct keys from a small set so
 * patches often hit them; nulls only where allow_null. */
static void rand_value(char *buf, size_t *len, int depth, bool allow_null)
{
    static const char *const keys[] = {"\"a\"",        "\"b\"",  "\"c\"", "\"d\"",
                                       "\"\\u0061x\"", "\"ax\"", "\"é\"", "\"e\\/\""};
    static const char *const scalars[] = {
        "0.1",   "1e-7",      "9007199254740993", "-0", "1E+2",     "true",
        "false", "\"s\"",     "\"\\u00e9\\n\"",   "[]", "[1, [2]]", "\"}\"",
        "{}",    "\"x\\\"y\""};
    unsigned kind = depth > 3 ? 1 : rnd(allow_null ? 6 : 5);
    if (kind == 0 || kind == 4) {
        bool used[8] = {0};
        put(buf, len, "{");
        unsigned n = rnd(5), written = 0;
        for (unsigned i = 0; i < n; i++) {
            unsigned k = rnd(8);
            /* "\u0061x" and "ax" are the same key. */
            if (used[k] || (k == 4 && used[5]) || (k == 5 && used[4]))
                continue;
            used[k] = true;
            if (written++)
                put(buf, len, ",");
            rand_ws(buf, len);
            put(buf, len, keys[k]);
            rand_ws(buf, len);
            put(buf, len, ":");
            rand_ws(buf, len);
            rand_value(buf, len, depth + 1, allow_null);
        }
        rand_ws(buf, len);
        put(buf, len, "}");
    } else if (kind == 5) {
        put(buf, len, "null");
    } else {
        put(buf, len, scalars[rnd(sizeof(scalars) / sizeof(scalars[0]))]);
    }
}

static void test_random(void)
{
    int compared = 0;
    for (int iter = 0; iter < 20000; iter++) {
        static char doc[65536], patch[65536];
        size_t dl = 0, pl = 0;
        do {
            dl = 0;
            rand_value(doc, &dl, 0, true);
            doc[dl] = '\0';
        } while (doc[0] != '{' || jsonedit_validate(doc, dl) != 0);
        do {
            pl = 0;
            rand_value(patch, &pl, 0, true);
            patch[pl] = '\0';
        } while (patch[0] != '{' || jsonedit_validate(patch, pl) != 0);
        char *out;
        size_t out_len;
        int r = jsonedit_merge(doc, dl, patch, pl, &out, &out_len);
        check_count++;
        if (r < 0) {
            check_failures++;
            fprintf(stderr, "random merge failed %d: %s <- %s\n", r, doc, patch);
            continue;
        }
        cJSON *t = cJSON_Parse(doc), *p = cJSON_Parse(patch);
        t = ref_merge(t, p);
        cJSON *got = cJSON_ParseWithLength(out, out_len);
        check_count++;
        if (jsonedit_validate(out, out_len) != 0 || !got || !cJSON_Compare(got, t, 1)) {
            check_failures++;
            char *want = cJSON_PrintUnformatted(t);
            fprintf(stderr, "random merge: %s <- %s\n  got  %.*s\n  want %s\n", doc, patch,
                    (int)out_len, out, want);
            free(want);
        }
        compared++;
        /* Re-applying the same patch changes nothing more, semantically. */
        char *out2;
        size_t out2_len;
        r = jsonedit_merge(out, out_len, patch, pl, &out2, &out2_len);
        CHECK(r >= 0);
        if (r >= 0) {
            cJSON *again = cJSON_ParseWithLength(out2, out2_len);
            CHECK(again && cJSON_Compare(again, t, 1));
            cJSON_Delete(again);
            free(out2);
        }
        cJSON_Delete(got);
        cJSON_Delete(t);
        cJSON_Delete(p);
        free(out);
    }
    CHECK(compared > 10000);
}

int main(void)
{
    test_validate();
    test_set();
    test_delete();
    test_merge();
    test_fixtures();
    test_random();
    return check_done("test_jsonedit");
}
