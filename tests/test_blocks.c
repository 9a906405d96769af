/* Unit tests for the text of replayed agentic prompts (blocks.c) and the
 * ideal prompt cache (ideal.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "check.h"
#include "core/config.h"
#include "load/blocks.h"
#include "load/ideal.h"
#include "sim/sim_text.h"

static char *take(struct evbuffer *b, size_t *len)
{
    *len = evbuffer_get_length(b);
    char *s = malloc(*len + 1);
    evbuffer_remove(b, s, *len);
    s[*len] = '\0';
    return s;
}

/* The probe's text, from its request body. */
static char *probe_text(void)
{
    struct evbuffer *b = evbuffer_new();
    blocks_probe(b);
    size_t len;
    char *body = take(b, &len);
    evbuffer_free(b);
    cJSON *j = cJSON_Parse(body);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "with_pieces")));
    char *text = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(j, "content")));
    cJSON_Delete(j);
    free(body);
    return text;
}

/* A /tokenize answer with pieces, as a tokenizer that splits every word
 * whose index is a multiple of `split` in two would give. */
struct answer {
    struct evbuffer *b;
    const char *text;
    size_t n;
    unsigned split;
};

static void piece(struct answer *a, size_t off, size_t len)
{
    evbuffer_add_printf(a->b, "%s{\"id\":%zu,\"piece\":\"%.*s\"}", a->n++ ? "," : "", off, (int)len,
                        a->text + off);
}

static void sim_piece(void *ctx, size_t off, size_t len)
{
    piece(ctx, off, len);
}

static char *answer_for(const char *text, unsigned split, bool sim, size_t *len)
{
    struct answer a = {.b = evbuffer_new(), .text = text, .split = split};
    evbuffer_add_printf(a.b, "{\"tokens\":[");
    if (sim) {
        sim_text_split(text, strlen(text), sim_piece, &a);
    } else {
        for (size_t off = 0, w = 0; off < strlen(text); off += 4, w++) {
            if (split && w % split == 0) {
                piece(&a, off, 2);
                piece(&a, off + 2, 2);
            } else {
                piece(&a, off, 4);
            }
        }
    }
    evbuffer_add_printf(a.b, "]}");
    char *s = take(a.b, len);
    evbuffer_free(a.b);
    return s;
}

static void test_vocab(void)
{
    struct blocks_vocab v, builtin;
    blocks_vocab_builtin(&builtin);
    CHECK_INT(builtin.n, BLOCKS_MAX_WORDS);
    CHECK(!builtin.exact);
    for (unsigned i = 0; i < builtin.n; i++) {
        CHECK_INT(strlen(builtin.words[i]), 3);
        for (unsigned j = 0; j < i; j++)
            CHECK(strcmp(builtin.words[i], builtin.words[j]) != 0);
    }
    char *text = probe_text();
    CHECK_INT(strlen(text), BLOCKS_MAX_WORDS * BLOCKS_WORD_BYTES);
    struct config_err err;
    size_t len;

    /* The sim's tokenizer keeps every word whole. */
    char *ans = answer_for(text, 0, true, &len);
    v = builtin;
    CHECK_INT(blocks_vocab_from_tokens(&v, ans, len, &err), 0);
    CHECK_INT(v.n, BLOCKS_MAX_WORDS);
    CHECK(v.exact);
    free(ans);

    /* A tokenizer that splits every fifth word: those are left out, and
     * the words after a split one are still found. */
    ans = answer_for(text, 5, false, &len);
    CHECK_INT(blocks_vocab_from_tokens(&v, ans, len, &err), 0);
    CHECK_INT(v.n, BLOCKS_MAX_WORDS - (BLOCKS_MAX_WORDS + 4) / 5);
    CHECK_STR(v.words[0], builtin.words[1]);
    CHECK_STR(v.words[4], builtin.words[6]);
    free(ans);

    /* Too few words, or no pieces: an error, v as it was. */
    ans = answer_for(text, 1, false, &len);
    struct blocks_vocab before = v;
    CHECK_INT(blocks_vocab_from_tokens(&v, ans, len, &err), -EINVAL);
    CHECK_STR(err.msg, "only 0 of 256 words are one token on this tokenizer");
    CHECK_INT(v.n, before.n);
    free(ans);
    const char *ids = "{\"tokens\":[1,2,3]}";
    CHECK_INT(blocks_vocab_from_tokens(&v, ids, strlen(ids), &err), -EINVAL);
    CHECK_STR(err.msg, "the /tokenize answer has no text pieces");
    CHECK_INT(blocks_vocab_from_tokens(&v, "{}", 2, &err), -EINVAL);
    CHECK_STR(err.msg, "the /tokenize answer has no \"tokens\" array");
    CHECK_INT(blocks_count_tokens(ids, strlen(ids)), 3);
    CHECK_INT(blocks_count_tokens("{}", 2), -1);
    free(text);
}

static size_t count_pieces(const char *s, size_t len)
{
    return sim_text_split(s, len, NULL, NULL);
}

static void test_text(void)
{
    struct blocks_vocab v;
    blocks_vocab_builtin(&v);
    struct evbuffer *b = evbuffer_new();
    size_t la, lb, lc;
    blocks_append(&v, blocks_seed(1, 7), 200, b);
    char *a = take(b, &la);
    blocks_append(&v, blocks_seed(1, 7), 200, b);
    char *a2 = take(b, &lb);
    blocks_append(&v, blocks_seed(2, 7), 200, b);
    char *c = take(b, &lc);
    CHECK_INT(la, 800);
    CHECK_MEM(a, la, a2, lb); /* same id, same bytes */
    CHECK(memcmp(a, c, 40) != 0); /* another trace's id 7 is other text */
    CHECK(blocks_seed(1, 7) != blocks_seed(1, 8));
    /* Blocks add up: n words are n tokens, alone or after other blocks. */
    CHECK_INT(count_pieces(a, la), 200);
    blocks_append(&v, blocks_seed(1, 1), 64, b);
    blocks_append(&v, blocks_seed(1, 2), 3, b);
    blocks_append(&v, blocks_seed(1, 3), 0, b);
    blocks_append(&v, blocks_seed(1, 4), 61, b);
    size_t ln;
    char *n = take(b, &ln);
    CHECK_INT(ln, 128 * 4);
    CHECK_INT(count_pieces(n, ln), 128);
    for (size_t i = 0; i < ln; i += 4)
        CHECK(n[i] == ' ' && n[i + 1] >= 'a' && n[i + 1] <= 'z');
    free(a);
    free(a2);
    free(c);
    free(n);
    evbuffer_free(b);
}

static void test_layout(void)
{
    struct blocks_layout l = {.block_size = 64, .scale = 0.05, .overhead = 0};
    CHECK_INT(blocks_before(&l, 0), 0);
    CHECK_INT(blocks_before(&l, 1), 3);  /* 3.2 */
    CHECK_INT(blocks_before(&l, 2), 6);  /* 6.4 */
    CHECK_INT(blocks_before(&l, 3), 10); /* 9.6 */
    CHECK_INT(blocks_before(&l, 305), 976);
    CHECK_INT(blocks_total(&l, 19560), 978);
    /* The template's tokens come off the start. */
    l.overhead = 30;
    CHECK_INT(blocks_before(&l, 5), 0);
    CHECK_INT(blocks_before(&l, 20), 34);
    CHECK_INT(blocks_total(&l, 19560), 948);
    CHECK_INT(blocks_total(&l, 100), 0);
    l = (struct blocks_layout){.block_size = 64, .scale = 1};
    CHECK_INT(blocks_before(&l, 1447), 1447 * 64);
    CHECK_INT(blocks_total(&l, 92614), 92614);
}

static void test_ideal(void)
{
    struct ideal *c;
    CHECK_INT(ideal_new(&c), 0);
    size_t k;
    uint64_t a[] = {1, 2, 3}, b[] = {1, 2, 4}, d[] = {1, 2, 3, 5}, e[] = {9};
    CHECK_INT(ideal_add(c, 0, a, 3, &k), 0);
    CHECK_INT(k, 0);
    ideal_add(c, 0, b, 3, &k);
    CHECK_INT(k, 2);
    ideal_add(c, 0, d, 4, &k);
    CHECK_INT(k, 3);
    ideal_add(c, 0, d, 4, &k);
    CHECK_INT(k, 4);
    ideal_add(c, 0, e, 1, &k);
    CHECK_INT(k, 0);
    ideal_add(c, 1, a, 3, &k); /* another trace's ids */
    CHECK_INT(k, 0);
    ideal_add(c, 0, a, 0, &k);
    CHECK_INT(k, 0);
    /* Growth keeps everything. */
    uint64_t *big = malloc(100000 * sizeof(*big));
    for (size_t i = 0; i < 100000; i++)
        big[i] = i * 7 + 100;
    ideal_add(c, 3, big, 100000, &k);
    CHECK_INT(k, 0);
    ideal_add(c, 3, big, 100000, &k);
    CHECK_INT(k, 100000);
    big[50000] = 1;
    ideal_add(c, 3, big, 100000, &k);
    CHECK_INT(k, 50000);
    CHECK(!ideal_full(c));
    free(big);
    ideal_free(c);
}

int main(void)
{
    test_vocab();
    test_text();
    test_layout();
    test_ideal();
    return check_done("test_blocks");
}
