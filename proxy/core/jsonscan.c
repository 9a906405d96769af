#include "core/jsonscan.h"

#include <stdint.h>
#include <string.h>

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Inlined here: scanning calls it between every two tokens. */
static inline size_t skip_ws(const char *d, size_t len, size_t i)
{
    while (i < len && is_ws(d[i]))
        i++;
    return i;
}

size_t jsonscan_skip_ws(const char *d, size_t len, size_t i)
{
    return skip_ws(d, len, i);
}

/* Bytes that end a run of plain string bytes: the quote, the backslash
 * and the control bytes, which JSON does not allow raw. One table load
 * per byte instead of three compares. */
static const unsigned char str_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The high bit of each of the eight bytes in v (first byte lowest) that
 * is a quote, a backslash or a control byte (the bytes str_stop marks);
 * above the first such byte there may be false ones. The zero-byte tests
 * of "Bit Twiddling Hacks". */
static inline uint64_t word_stops(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v)) & highs;
}

/* *pos at the opening quote; on success, just past the closing quote.
 * Returns 1 when the string has an escape, 0 when not, or an error. */
static int scan_string(const char *d, size_t len, size_t *pos)
{
    size_t i = *pos + 1;
    int escaped = 0;
    for (;;) {
        /* bytes >= 0x80 pass unchecked: see jsonscan.h */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* Eight bytes at a time up to the first byte that stops the
         * run: keys and values are short, a word or two. */
        uint64_t v, stops = 0;
        while (len - i >= 8 && (memcpy(&v, d + i, 8), !(stops = word_stops(v))))
            i += 8;
        if (stops)
            i += (size_t)__builtin_ctzll(stops) / 8;
        else
#endif
            while (i < len && !str_stop[(unsigned char)d[i]])
                i++;
        if (i >= len)
            break;
        unsigned char c = (unsigned char)d[i];
        if (c == '"') {
            *pos = i + 1;
            return escaped;
        }
        escaped = 1;
        if (c < 0x20)
            return JSONSCAN_ERR_INVALID;
        if (i + 1 >= len)
            return JSONSCAN_ERR_INVALID;
        char e = d[i + 1];
        if (e == 'u') {
            if (len - i < 6)
                return JSONSCAN_ERR_INVALID;
            for (size_t k = 2; k < 6; k++)
                if (hex_digit(d[i + k]) < 0)
                    return JSONSCAN_ERR_INVALID;
            i += 6;
        } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                   e == 'r' || e == 't') {
            i += 2;
        } else {
            return JSONSCAN_ERR_INVALID;
        }
    }
    return JSONSCAN_ERR_INVALID;
}

static size_t skip_digits(const char *d, size_t len, size_t i)
{
    while (i < len && is_digit(d[i]))
        i++;
    return i;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(const char *d, size_t len, size_t *pos)
{
    size_t i = *pos;
    if (i < len && d[i] == '-')
        i++;
    if (i >= len || !is_digit(d[i]))
        return JSONSCAN_ERR_INVALID;
    i = d[i] == '0' ? i + 1 : skip_digits(d, len, i);
    if (i < len && d[i] == '.') {
        if (++i >= len || !is_digit(d[i]))
            return JSONSCAN_ERR_INVALID;
        i = skip_digits(d, len, i);
    }
    if (i < len && (d[i] == 'e' || d[i] == 'E')) {
        i++;
        if (i < len && (d[i] == '+' || d[i] == '-'))
            i++;
        if (i >= len || !is_digit(d[i]))
            return JSONSCAN_ERR_INVALID;
        i = skip_digits(d, len, i);
    }
    *pos = i;
    return 0;
}

static int scan_literal(const char *d, size_t len, size_t *pos)
{
    const char *lit = d[*pos] == 't' ? "true" : d[*pos] == 'f' ? "false" : "null";
    size_t n = d[*pos] == 'f' ? 5 : 4;
    if (len - *pos < n || memcmp(d + *pos, lit, n) != 0)
        return JSONSCAN_ERR_INVALID;
    *pos += n;
    return 0;
}

/* *pos at a member's key; on success, at the start of its value, and
 * *ret_key_end just past the key's closing quote. Returns what
 * scan_string() does: 1 when the key has an escape. */
static int scan_key(const char *d, size_t len, size_t *pos, size_t *ret_key_end)
{
    if (*pos >= len || d[*pos] != '"')
        return JSONSCAN_ERR_INVALID;
    int r = scan_string(d, len, pos);
    if (r < 0)
        return r;
    *ret_key_end = *pos;
    size_t i = skip_ws(d, len, *pos);
    if (i >= len || d[i] != ':')
        return JSONSCAN_ERR_INVALID;
    *pos = skip_ws(d, len, i + 1);
    return r;
}

void jsonscan_index_init(struct jsonscan_index *ix, struct jsonscan_entry *entries, size_t cap)
{
    /* object[] is written as each container opens, before it is read:
     * left as it is (this runs once per token event). */
    ix->entries = entries;
    ix->cap = cap;
    ix->n = 0;
    ix->partial = SIZE_MAX;
    for (size_t d = 0; d <= JSONSCAN_INDEX_DEPTH; d++)
        ix->open[d] = SIZE_MAX;
}

/* The word of the key at d[key, key_end) (quoted, no escape). */
static uint64_t key_word(const char *d, size_t len, size_t key, size_t key_end)
{
    size_t n = key_end - key - 2;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* One load where the text has eight bytes from the key's first. */
    if (len - key > 8) {
        uint64_t v;
        memcpy(&v, d + key + 1, 8);
        if (n < JSONSCAN_WORD_BYTES)
            v &= (1ull << (8 * n)) - 1;
        return (v << 8) | (n < 255 ? n : 255);
    }
#else
    (void)len;
#endif
    return jsonscan_word(d + key + 1, n);
}

/* Notes a member of the object open at depth: its key, and where its
 * value starts. escaped: the key has an escape. */
static void index_key(struct jsonscan_index *ix, unsigned depth, const char *d, size_t len,
                      size_t key, size_t key_end, bool escaped, size_t value)
{
    if (depth > JSONSCAN_INDEX_DEPTH || ix->n == ix->cap) {
        if (ix->partial == SIZE_MAX)
            ix->partial = key;
        return;
    }
    ix->entries[ix->n] = (struct jsonscan_entry){
        ix->object[depth], {key, key_end, value, 0}, escaped ? 0 : key_word(d, len, key, key_end)};
    ix->open[depth] = ix->n++;
}

/* A value inside the container open at depth ended at end. */
static void index_value_end(struct jsonscan_index *ix, unsigned depth, size_t end)
{
    if (depth <= JSONSCAN_INDEX_DEPTH && ix->open[depth] != SIZE_MAX) {
        ix->entries[ix->open[depth]].m.value_end = end;
        ix->open[depth] = SIZE_MAX;
    }
}

bool jsonscan_is_string(const char *d, size_t len)
{
    size_t end = 0;
    return len >= 2 && len <= JSONSCAN_MAX_BYTES && d[0] == '"' && scan_string(d, len, &end) >= 0 &&
           end == len;
}

int jsonscan_validate(const char *d, size_t len, unsigned max_depth, struct jsonscan_info *ret)
{
    return jsonscan_validate_index(d, len, max_depth, ret, NULL);
}

int jsonscan_validate_index(const char *d, size_t len, unsigned max_depth, struct jsonscan_info *ret,
                            struct jsonscan_index *ix)
{
    uint64_t is_obj[JSONSCAN_MAX_DEPTH / 64] = {0}; /* one bit per open container */
    unsigned depth = 0, deepest = 0;
    bool after = false; /* false: a value is expected at i; true: one just ended */
    size_t key, key_end;
    int r;

    if (!d && len)
        return JSONSCAN_ERR_INVALID;
    if (!d)
        d = "";
    if (len > JSONSCAN_MAX_BYTES)
        return JSONSCAN_ERR_TOO_LARGE;
    if (max_depth > JSONSCAN_MAX_DEPTH)
        max_depth = JSONSCAN_MAX_DEPTH;
    size_t i = skip_ws(d, len, 0), start = i;
    for (;;) {
        if (!after) {
            if (i >= len)
                return JSONSCAN_ERR_INVALID;
            char c = d[i];
            if (c == '{' || c == '[') {
                if (depth >= max_depth)
                    return JSONSCAN_ERR_TOO_DEEP;
                uint64_t bit = (uint64_t)1 << (depth % 64);
                is_obj[depth / 64] =
                    c == '{' ? is_obj[depth / 64] | bit : is_obj[depth / 64] & ~bit;
                depth++;
                deepest = depth > deepest ? depth : deepest;
                if (ix && depth <= JSONSCAN_INDEX_DEPTH)
                    ix->object[depth] = i;
                i = skip_ws(d, len, i + 1);
                if (i < len && d[i] == (c == '{' ? '}' : ']')) {
                    depth--;
                    i++;
                    after = true;
                } else if (c == '{') {
                    key = i;
                    r = scan_key(d, len, &i, &key_end);
                    if (r < 0)
                        return r;
                    if (ix)
                        index_key(ix, depth, d, len, key, key_end, r == 1, i);
                }
                continue;
            }
            if (c == '"')
                r = scan_string(d, len, &i);
            else if (c == '-' || is_digit(c))
                r = scan_number(d, len, &i);
            else
                r = scan_literal(d, len, &i);
            if (r < 0)
                return r;
            after = true;
            continue;
        }
        if (depth == 0)
            break;
        if (ix)
            index_value_end(ix, depth, i);
        i = skip_ws(d, len, i);
        if (i >= len)
            return JSONSCAN_ERR_INVALID;
        bool obj = (is_obj[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
        if (d[i] == ',') {
            i = skip_ws(d, len, i + 1);
            key = i;
            r = obj ? scan_key(d, len, &i, &key_end) : 0;
            if (r < 0)
                return r;
            if (ix && obj)
                index_key(ix, depth, d, len, key, key_end, r == 1, i);
            after = false;
        } else if (d[i] == (obj ? '}' : ']')) {
            depth--;
            i++;
        } else {
            return JSONSCAN_ERR_INVALID;
        }
    }
    size_t end = i;
    if (skip_ws(d, len, i) != len)
        return JSONSCAN_ERR_INVALID;
    *ret = (struct jsonscan_info){.start = start, .end = end, .depth = deepest};
    return 0;
}

/* Validated text: the closing quote is the first one after an even run
 * of backslashes. Short strings (keys, names) end within a few bytes;
 * for longer ones memchr finds quotes a word at a time. */
static size_t skip_string(const char *d, size_t len, size_t i)
{
    for (i++; i < len;) {
        const char *q = memchr(d + i, '"', len - i);
        if (!q)
            return len + 1;
        size_t at = (size_t)(q - d), bs = 0;
        while (at - bs > i && d[at - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return at + 1;
        i = at + 1;
    }
    return i + 1;
}

size_t jsonscan_skip_value(const char *d, size_t len, size_t i)
{
    if (d[i] == '"')
        return skip_string(d, len, i);
    if (d[i] != '{' && d[i] != '[') {
        while (i < len && !is_ws(d[i]) && d[i] != ',' && d[i] != '}' && d[i] != ']')
            i++;
        return i;
    }
    size_t depth = 0;
    while (i < len) {
        char c = d[i];
        if (c == '"') {
            i = skip_string(d, len, i);
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return i + 1;
        i++;
    }
    return i;
}

void jsonscan_iter_init(struct jsonscan_iter *it, const char *d, size_t len, size_t open)
{
    *it = (struct jsonscan_iter){.d = d, .len = len, .pos = open + 1, .obj = d[open] == '{'};
}

bool jsonscan_iter_next(struct jsonscan_iter *it, struct jsonscan_member *m)
{
    size_t i = skip_ws(it->d, it->len, it->pos);
    if (i >= it->len || it->d[i] == '}' || it->d[i] == ']')
        return false;
    if (it->started) /* at the comma */
        i = skip_ws(it->d, it->len, i + 1);
    it->started = true;
    m->key = m->key_end = i;
    if (it->obj) {
        m->key_end = skip_string(it->d, it->len, i);
        i = skip_ws(it->d, it->len, m->key_end);
        i = skip_ws(it->d, it->len, i + 1); /* past the colon */
    }
    m->value = i;
    m->value_end = jsonscan_skip_value(it->d, it->len, i);
    it->pos = m->value_end;
    return true;
}

struct jsonscan_key jsonscan_key_member(const char *d, const struct jsonscan_member *m)
{
    return (struct jsonscan_key){.p = d + m->key + 1, .end = d + m->key_end - 1};
}

struct jsonscan_key jsonscan_key_token(const char *p, const char *end)
{
    return (struct jsonscan_key){.p = p, .end = end, .pointer = true};
}

static unsigned hex4(const char *p)
{
    return (unsigned)(hex_digit(p[0]) << 12 | hex_digit(p[1]) << 8 | hex_digit(p[2]) << 4 |
                      hex_digit(p[3]));
}

int jsonscan_key_next(struct jsonscan_key *k)
{
    if (k->ipend < k->npend)
        return k->pend[k->ipend++];
    if (k->p >= k->end)
        return -1;
    unsigned char c = (unsigned char)*k->p++;
    if (k->pointer) {
        if (c == '~' && k->p < k->end)
            c = *k->p++ == '0' ? '~' : '/';
        return c;
    }
    if (c != '\\' || k->p >= k->end)
        return c;
    c = (unsigned char)*k->p++;
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return c;
    }
    unsigned cp = hex4(k->p);
    k->p += 4;
    if (cp >= 0xd800 && cp < 0xdc00 && k->end - k->p >= 6 && k->p[0] == '\\' && k->p[1] == 'u') {
        unsigned lo = hex4(k->p + 2);
        if (lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            k->p += 6;
        }
    }
    /* A lone surrogate becomes its 3-byte form, so it still compares equal to itself. */
    if (cp < 0x80) {
        k->pend[0] = (unsigned char)cp;
        k->npend = 1;
    } else if (cp < 0x800) {
        k->pend[0] = (unsigned char)(0xc0 | cp >> 6);
        k->pend[1] = (unsigned char)(0x80 | (cp & 0x3f));
        k->npend = 2;
    } else if (cp < 0x10000) {
        k->pend[0] = (unsigned char)(0xe0 | cp >> 12);
        k->pend[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        k->pend[2] = (unsigned char)(0x80 | (cp & 0x3f));
        k->npend = 3;
    } else {
        k->pend[0] = (unsigned char)(0xf0 | cp >> 18);
        k->pend[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        k->pend[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        k->pend[3] = (unsigned char)(0x80 | (cp & 0x3f));
        k->npend = 4;
    }
    k->ipend = 1;
    return k->pend[0];
}

bool jsonscan_key_eq(struct jsonscan_key a, struct jsonscan_key b)
{
    for (;;) {
        int x = jsonscan_key_next(&a), y = jsonscan_key_next(&b);
        if (x != y)
            return false;
        if (x < 0)
            return true;
    }
}
