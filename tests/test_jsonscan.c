/* Unit tests for the jsonscan module: validation info, value skipping,
 * member spans, key comparison by meaning. (Validity cases at large are
 * in test_jsonedit.c, through jsonedit_validate.) */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/jsonscan.h"
#include "index_check.h"

static void test_info(void)
{
    struct jsonscan_info info;
    const char *t = " \n {\"a\":[[1],{}]}\t ";
    CHECK_INT(jsonscan_validate(t, strlen(t), JSONSCAN_MAX_DEPTH, &info), 0);
    CHECK_INT(info.start, 3);
    CHECK_INT(info.end, strlen(t) - 2);
    CHECK_INT(info.depth, 3);
    CHECK_INT(jsonscan_validate("42", 2, 0, &info), 0);
    CHECK_INT(info.depth, 0);
    CHECK_INT(jsonscan_validate("[]", 2, 0, &info), JSONSCAN_ERR_TOO_DEEP);
    CHECK_INT(jsonscan_validate("[[]]", 4, 2, &info), 0);
    CHECK_INT(jsonscan_validate("[[]]", 4, 1, &info), JSONSCAN_ERR_TOO_DEEP);
    /* A max_depth beyond the scanner's own is capped. */
    char deep[2 * (JSONSCAN_MAX_DEPTH + 1)];
    memset(deep, '[', JSONSCAN_MAX_DEPTH + 1);
    memset(deep + JSONSCAN_MAX_DEPTH + 1, ']', JSONSCAN_MAX_DEPTH + 1);
    CHECK_INT(jsonscan_validate(deep, sizeof(deep), 100000, &info), JSONSCAN_ERR_TOO_DEEP);
    CHECK_INT(jsonscan_validate(deep + 1, sizeof(deep) - 2, 100000, &info), 0);
    CHECK_INT(info.depth, JSONSCAN_MAX_DEPTH);
    /* The error code of one oversized text, without reading it. */
    CHECK_INT(jsonscan_validate("{}", (size_t)JSONSCAN_MAX_BYTES + 1, 8, &info),
              JSONSCAN_ERR_TOO_LARGE);
}

static void test_skip(void)
{
    const char *t = "{\"s\":\"a]}\\\"b\",\"n\":-1.5e3 ,\"o\":{\"x\":[\"]\",{}]} }";
    size_t len = strlen(t);
    CHECK_INT(jsonscan_skip_value(t, len, 0), len);
    CHECK_INT(jsonscan_skip_value(t, len, 5), 13);  /* the string with ] } and \" */
    CHECK_INT(jsonscan_skip_value(t, len, 18), 24); /* the number stops at the space */
    CHECK_INT(jsonscan_skip_ws(" \t\r\nx", 5, 0), 4);
    CHECK_INT(jsonscan_skip_ws("  ", 2, 0), 2);
}

static void test_members(void)
{
    const char *t = "{ \"a\" : 1 , \"b\":[ 2 , \"x\" ] ,\"c\":{}}";
    size_t len = strlen(t);
    struct jsonscan_iter it;
    struct jsonscan_member m;
    jsonscan_iter_init(&it, t, len, 0);
    CHECK(jsonscan_iter_next(&it, &m));
    CHECK_MEM(t + m.key, m.key_end - m.key, "\"a\"", 3);
    CHECK_MEM(t + m.value, m.value_end - m.value, "1", 1);
    CHECK_MEM(t + m.key_end, m.value - m.key_end, " : ", 3);
    CHECK(jsonscan_iter_next(&it, &m));
    CHECK_MEM(t + m.value, m.value_end - m.value, "[ 2 , \"x\" ]", 11);
    /* The array's elements. */
    struct jsonscan_iter ai;
    struct jsonscan_member e;
    jsonscan_iter_init(&ai, t, len, m.value);
    CHECK(jsonscan_iter_next(&ai, &e));
    CHECK(e.key == e.value && e.key_end == e.value);
    CHECK_MEM(t + e.value, e.value_end - e.value, "2", 1);
    CHECK(jsonscan_iter_next(&ai, &e));
    CHECK_MEM(t + e.value, e.value_end - e.value, "\"x\"", 3);
    CHECK(!jsonscan_iter_next(&ai, &e));
    CHECK(jsonscan_iter_next(&it, &m));
    CHECK_MEM(t + m.value, m.value_end - m.value, "{}", 2);
    jsonscan_iter_init(&ai, t, len, m.value);
    CHECK(!jsonscan_iter_next(&ai, &e));
    CHECK(!jsonscan_iter_next(&it, &m));
    CHECK(!jsonscan_iter_next(&it, &m));
}

/* The members validation notes are the ones the walker finds, for every
 * object at every depth and shape of text; with the entries full, the
 * objects after the first one left out are not claimed whole. */
static void test_index(void)
{
    static const char *const texts[] = {
        "{ \"a\" : 1 , \"b\":[ 2 , {\"x\":\"}\"} ] ,\"c\":{\"d\":{}} ,\"e\":\"q\\\"\" }",
        " {\"s\":\"x\",\"t\":true,\"n\":null,\"f\":-1.5e3} ",
        "{}",
        "[{\"a\":1},{\"b\":2}]",
        "\"{\\\"a\\\":1}\"",
        "{\"1\":1,\"2\":2,\"3\":3,\"4\":[4],\"5\":{\"5\":5}}",
        "{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"hi\"}}],"
        "\"created\":1,\"model\":\"m\",\"timings\":{\"prompt_n\":3,\"predicted_ms\":4.5}}",
        /* q sits 17 deep, past JSONSCAN_INDEX_DEPTH: only {"x":1} is whole. */
        "{\"w\":{\"x\":1},\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\""
        "j\":{\"k\":{\"l\":{\"m\":{\"n\":{\"o\":{\"p\":{\"q\":{}}}}}}}}}}}}}}}}},\"z\":1}",
        /* Keys with escapes (word 0), and of 6, 7, 8 and 18 bytes, some at
         * the end of the text where a word cannot be read in one load. */
        "{\"\\u0063hoices\":1,\"objec\\\"\":2,\"abcdef\":3,\"choices\":4,\"choicesX\":5,"
        "\"system_fingerprint\":6,\"a\":{\"choices\":{\"x\\n\":{\"abcdefg\":7}}}}",
        "{\"abcdefgh\":{\"q\":{\"r\":1}}}",
    };
    static const unsigned whole_big[] = {4, 1, 1, 2, 0, 2, 4, 1, 4, 3};
    for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
        const char *t = texts[k];
        size_t len = strlen(t);
        for (size_t cap = 3; cap <= 64; cap += 61) {
            struct jsonscan_info info;
            struct jsonscan_entry entries[64];
            struct jsonscan_index ix;
            jsonscan_index_init(&ix, entries, cap);
            CHECK_INT(jsonscan_validate_index(t, len, JSONSCAN_MAX_DEPTH, &info, &ix), 0);
            unsigned whole = 0;
            CHECK(index_matches(t, len, info.start, &ix, &whole));
            if (cap == 64)
                CHECK_INT(whole, whole_big[k]);
        }
    }
    struct jsonscan_info info;
    struct jsonscan_entry e[4];
    struct jsonscan_index ix;
    jsonscan_index_init(&ix, e, 4);
    CHECK(jsonscan_validate_index("{\"a\":1,}", 8, 8, &info, &ix) < 0);
}

/* Compares the key of {<json>:0} with pointer token tok. */
static bool key_matches(const char *json_key, const char *tok)
{
    char doc[128];
    snprintf(doc, sizeof(doc), "{%s:0}", json_key);
    struct jsonscan_iter it;
    struct jsonscan_member m;
    jsonscan_iter_init(&it, doc, strlen(doc), 0);
    if (!jsonscan_iter_next(&it, &m))
        return false;
    return jsonscan_key_eq(jsonscan_key_member(doc, &m),
                           jsonscan_key_token(tok, tok + strlen(tok)));
}

static void test_keys(void)
{
    /* Words: length and the first seven bytes; never 0 for a key of a
     * byte or more; keys of 255 bytes or more share the length byte. */
    static char long_key[300];
    memset(long_key, 'k', sizeof(long_key));
    CHECK(jsonscan_word("choices", 7) == jsonscan_word("choices", 7));
    CHECK(jsonscan_word("choices", 7) != jsonscan_word("choicez", 7));
    CHECK(jsonscan_word("finish_reason", 13) == jsonscan_word("finish_reasoX", 13));
    CHECK(jsonscan_word("a", 1) != 0 && jsonscan_word("", 0) == 0);
    CHECK(jsonscan_word(long_key, 254) != jsonscan_word(long_key, 255));
    CHECK(jsonscan_word(long_key, 255) == jsonscan_word(long_key, 300));
    CHECK(key_matches("\"abc\"", "abc"));
    CHECK(!key_matches("\"abc\"", "ab"));
    CHECK(!key_matches("\"ab\"", "abc"));
    CHECK(key_matches("\"\"", ""));
    CHECK(key_matches("\"caf\\u00e9\"", "café"));
    CHECK(key_matches("\"caf\\u00E9\"", "café"));
    CHECK(key_matches("\"\\u20ac\"", "€"));
    CHECK(key_matches("\"\\ud83d\\ude00\"", "😀"));
    CHECK(key_matches("\"\\ud83d\"", "\xed\xa0\xbd")); /* lone surrogate: 3-byte form */
    CHECK(key_matches("\"\\ud83dx\"", "\xed\xa0\xbdx"));
    CHECK(key_matches("\"a\\/b\"", "a~1b"));
    CHECK(key_matches("\"a~b\"", "a~0b"));
    CHECK(key_matches("\"~1\"", "~01"));
    CHECK(key_matches("\"\\\"\\\\\\b\\f\\n\\r\\t\"", "\"\\\b\f\n\r\t"));
    CHECK(key_matches("\"\\u0041\"", "A"));
    CHECK(!key_matches("\"\\u0041\"", "a"));
    CHECK(key_matches("\"\xff\"", "\xff")); /* raw bytes compare as bytes */
    /* \u0000 is a byte like any other. */
    static const char x[] = "x";
    struct jsonscan_key a = jsonscan_key_token(x, x + 1);
    char doc[] = "{\"x\\u0000\":0}";
    struct jsonscan_iter it;
    struct jsonscan_member m;
    jsonscan_iter_init(&it, doc, strlen(doc), 0);
    CHECK(jsonscan_iter_next(&it, &m));
    struct jsonscan_key k = jsonscan_key_member(doc, &m);
    CHECK(!jsonscan_key_eq(k, a));
    CHECK_INT(jsonscan_key_next(&k), 'x');
    CHECK_INT(jsonscan_key_next(&k), 0);
    CHECK_INT(jsonscan_key_next(&k), -1);
}

/* jsonscan_is_string agrees with jsonscan_validate on strings with nothing
 * around them, including the cases a repeated token event can bring. */
static void test_is_string(void)
{
    static const char *yes[] = {"\"\"", "\"a\"", "\"tok tok\"", "\"\\n\\u00e9\\\"\"",
                                "\"\xc3\xa9\"", "\"0123456789abcdef0123\""};
    static const char *no[] = {"", "\"", "a", "\"a", "\"a\" ", " \"a\"", "\"a\"\"", "\"a\"b",
                               "\"\\x\"", "\"\\u12\"", "\"\\\"", "\"a\tb\"", "1", "null",
                               "[\"a\"]", "\"0123456789abcdef0123"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        struct jsonscan_info info;
        CHECK(jsonscan_is_string(yes[i], strlen(yes[i])));
        CHECK(jsonscan_validate(yes[i], strlen(yes[i]), 0, &info) == 0 && info.end == strlen(yes[i]));
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        CHECK(!jsonscan_is_string(no[i], strlen(no[i])));
    /* Only len bytes count: a valid string cut short is not one. */
    CHECK(!jsonscan_is_string("\"abc\"", 4));
    CHECK(jsonscan_is_string("\"ab\"c", 4));
}

int main(void)
{
    test_is_string();
    test_info();
    test_skip();
    test_members();
    test_index();
    test_keys();
    return check_done("test_jsonscan");
}
