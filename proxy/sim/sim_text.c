#include "sim/sim_text.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/splitmix.h"

uint64_t sim_text_hash(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint32_t sim_text_count_tokens(size_t len)
{
    size_t n = (len + 3) / 4;
    if (n == 0)
        n = 1;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* A piece: optional leading spaces, then a run of up to 4 word characters,
 * or one punctuation/newline character. Roughly what BPE does to English
 * and code: about 4 bytes per token. */
size_t sim_text_split(const char *text, size_t len, void (*cb)(void *ctx, size_t off, size_t len),
                      void *ctx)
{
    size_t n = 0, i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && text[i] == ' ' && i - start < 8)
            i++;
        if (i < len && (isalnum((unsigned char)text[i]) || (unsigned char)text[i] >= 0x80)) {
            size_t w = 0;
            while (i < len && (isalnum((unsigned char)text[i]) || (unsigned char)text[i] >= 0x80) &&
                   w < 4) {
                /* Keep UTF-8 sequences whole. */
                i++;
                w++;
                while (i < len && ((unsigned char)text[i] & 0xc0) == 0x80)
                    i++;
            }
        } else if (i < len && (i == start || text[i] != ' ')) {
            i++;
        }
        if (cb)
            cb(ctx, start, i - start);
        n++;
    }
    return n;
}

struct builder {
    struct sim_script *s;
    size_t cap;
    size_t limit;
    enum sim_piece_kind kind;
    size_t base;
    int err;
};

static void add_piece(void *ctx, size_t off, size_t len)
{
    struct builder *b = ctx;
    if (b->err)
        return;
    if (b->limit && b->s->n_pieces >= b->limit) {
        b->s->truncated = true;
        return;
    }
    if (b->s->n_pieces == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct sim_piece *p = realloc(b->s->pieces, cap * sizeof(*p));
        if (!p) {
            b->err = -ENOMEM;
            return;
        }
        b->s->pieces = p;
        b->cap = cap;
    }
    b->s->pieces[b->s->n_pieces++] =
        (struct sim_piece){(uint32_t)(b->base + off), (uint32_t)len, b->kind};
}

int sim_script_from_text(struct sim_script *s, const char *reasoning, const char *content,
                         size_t max_tokens)
{
    size_t rlen = reasoning ? strlen(reasoning) : 0;
    size_t clen = content ? strlen(content) : 0;
    memset(s, 0, sizeof(*s));
    s->text = malloc(rlen + clen + 1);
    if (!s->text)
        return -ENOMEM;
    if (rlen)
        memcpy(s->text, reasoning, rlen);
    if (clen)
        memcpy(s->text + rlen, content, clen);
    s->text[rlen + clen] = '\0';
    s->text_len = rlen + clen;

    struct builder b = {.s = s, .limit = max_tokens, .kind = SIM_PIECE_REASONING};
    sim_text_split(s->text, rlen, add_piece, &b);
    s->n_reasoning = s->n_pieces;
    b.kind = SIM_PIECE_CONTENT;
    b.base = rlen;
    sim_text_split(s->text + rlen, clen, add_piece, &b);
    if (b.err) {
        sim_script_finish(s);
        return b.err;
    }
    return 0;
}

static const char *const reasoning_words[] = {
    "Let",   "me",    "think", "about", "the",   "request", "first", "The",  "user",  "wants",
    "a",     "clear", "answer", "so",   "I",     "should",  "check", "each", "case",  "and",
    "keep",  "it",    "short", "Next",  "consider", "edge", "cases", "then", "write", "code",
};

static const char *const content_words[] = {
    "def",      "return",  "the",   "value", "of",     "request", "handler", "with", "a",
    "function", "that",    "takes", "input", "and",    "returns", "result",  "for",  "each",
    "item",     "in",      "list",  "if",    "not",    "None",    "raise",   "error", "class",
    "self",     "data",    "async", "await", "client", "response", "status", "code", "test",
    "assert",   "is",      "to",    "from",  "import", "model",   "token",   "stream", "slot",
};

/* Appends generated words until about `tokens` pieces exist. */
static int generate_words(char **buf, size_t *len, size_t *cap, uint64_t *rng, size_t tokens,
                          const char *const *words, size_t n_words)
{
    size_t produced = 0, sentence = 0;
    while (produced < tokens) {
        const char *w = words[splitmix_next(rng) % n_words];
        size_t wl = strlen(w);
        if (*len + wl + 4 > *cap) {
            size_t c = *cap ? *cap * 2 : 256;
            while (c < *len + wl + 4)
                c *= 2;
            char *nb = realloc(*buf, c);
            if (!nb)
                return -ENOMEM;
            *buf = nb;
            *cap = c;
        }
        if (*len > 0 && (*buf)[*len - 1] != '\n')
            (*buf)[(*len)++] = ' ';
        memcpy(*buf + *len, w, wl);
        *len += wl;
        produced += (wl + 3) / 4;
        if (++sentence >= 8 + splitmix_next(rng) % 8) {
            (*buf)[(*len)++] = '.';
            produced++;
            if (splitmix_next(rng) % 3 == 0) {
                (*buf)[(*len)++] = '\n';
                produced++;
            }
            sentence = 0;
        }
    }
    (*buf)[*len] = '\0';
    return 0;
}

char *sim_text_generate(uint64_t seed, size_t tokens, enum sim_piece_kind kind)
{
    uint64_t rng = seed;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int r;
    if (tokens == 0)
        return strdup("");
    if (kind == SIM_PIECE_REASONING)
        r = generate_words(&buf, &len, &cap, &rng, tokens, reasoning_words,
                           sizeof(reasoning_words) / sizeof(reasoning_words[0]));
    else
        r = generate_words(&buf, &len, &cap, &rng, tokens, content_words,
                           sizeof(content_words) / sizeof(content_words[0]));
    if (r < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

size_t sim_text_natural_length(uint64_t seed)
{
    uint64_t rng = seed ^ 0x5eedull;
    return 48 + (size_t)(splitmix_next(&rng) % 384);
}

void sim_script_finish(struct sim_script *s)
{
    free(s->text);
    free(s->pieces);
    memset(s, 0, sizeof(*s));
}
