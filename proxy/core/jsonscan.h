/* jsonscan: a strict JSON scanner over text, without allocation or
 * recursion. It validates (RFC 8259; bytes >= 0x80 inside strings pass
 * unchecked, since they are never decoded or re-encoded), and navigates
 * validated text as byte spans: skip a value, walk an object's members or
 * an array's elements, compare keys by meaning (escapes decoded). Pure;
 * results are offsets into the caller's text. */
#ifndef TOKENTAP_JSONSCAN_H
#define TOKENTAP_JSONSCAN_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONSCAN_MAX_DEPTH 512 /* the deepest max_depth jsonscan_validate accepts */
#define JSONSCAN_MAX_BYTES (256u * 1024 * 1024)

#define JSONSCAN_ERR_INVALID (-EBADMSG)
#define JSONSCAN_ERR_TOO_DEEP (-E2BIG)
#define JSONSCAN_ERR_TOO_LARGE (-EMSGSIZE)

/* What validation learns about the one value in the text. */
struct jsonscan_info {
    size_t start, end; /* the value's span, without surrounding whitespace */
    unsigned depth;    /* nesting of arrays and objects: 0 for a scalar */
};

/* Checks that text[0, len) is exactly one JSON value (whitespace around
 * allowed) nested at most max_depth (capped at JSONSCAN_MAX_DEPTH) deep.
 * Returns 0 and fills *ret, or a JSONSCAN_ERR_*. */
int jsonscan_validate(const char *text, size_t len, unsigned max_depth, struct jsonscan_info *ret);

/* True when text[0, len) is exactly one JSON string, quotes included and
 * nothing around them: jsonscan_validate without its set-up, for a reader
 * that knows where a string must be. */
bool jsonscan_is_string(const char *text, size_t len);

/* A member of an object (key..key_end is the quoted key) or an element of
 * an array (key == key_end == value). Offsets into the scanned text. */
struct jsonscan_member {
    size_t key, key_end, value, value_end;
};

/* A key's word: its length (255 for 255 bytes or more) and first
 * JSONSCAN_WORD_BYTES bytes in one integer (byte i at bits 8i+8..8i+15),
 * never 0 for a key of a byte or more. Two keys without escapes are equal
 * when their words, their lengths and their bytes past the seventh are: a
 * lookup by key is mostly one compare. Inline, and written out, so a
 * literal's word folds at compile time. */
#define JSONSCAN_WORD_BYTES 7
static inline uint64_t jsonscan_word(const char *key, size_t len)
{
#define JSONSCAN_WORD_BYTE(i) (len > (i) ? (uint64_t)(unsigned char)key[i] << (8 * ((i) + 1)) : 0)
    return (len < 255 ? len : 255) | JSONSCAN_WORD_BYTE(0) | JSONSCAN_WORD_BYTE(1) |
           JSONSCAN_WORD_BYTE(2) | JSONSCAN_WORD_BYTE(3) | JSONSCAN_WORD_BYTE(4) |
           JSONSCAN_WORD_BYTE(5) | JSONSCAN_WORD_BYTE(6);
#undef JSONSCAN_WORD_BYTE
}

/* A member of an object, noted while validating. */
struct jsonscan_entry {
    size_t object; /* offset of the '{' of the object it is a member of */
    struct jsonscan_member m;
    uint64_t word; /* jsonscan_word() of its key; 0: the key has an escape */
};

#define JSONSCAN_INDEX_DEPTH 16 /* members of objects nested deeper are not noted */

/* The members of the objects in a text, noted while validating it, in the
 * order of their keys: a reader of a few fields then need not walk the
 * text again. When a member is left out (cap full, or nested too deep),
 * partial is its offset, and an object that ends after it may lack
 * members: jsonscan_index_whole() says which objects are whole. */
struct jsonscan_index {
    struct jsonscan_entry *entries; /* borrowed: cap of them */
    size_t cap;
    size_t n;       /* entries noted */
    size_t partial; /* offset of the first member left out; SIZE_MAX: none */
    /* Internal, per depth: the open object's '{' and the member whose
     * value is being read (SIZE_MAX: none). */
    size_t object[JSONSCAN_INDEX_DEPTH + 1];
    size_t open[JSONSCAN_INDEX_DEPTH + 1];
};

void jsonscan_index_init(struct jsonscan_index *ix, struct jsonscan_entry *entries, size_t cap);

/* jsonscan_validate, noting the members of every object into *ix (made by
 * jsonscan_index_init). On error *ix is partial. */
int jsonscan_validate_index(const char *text, size_t len, unsigned max_depth, struct jsonscan_info *ret,
                            struct jsonscan_index *ix);

/* True when all members of the object that ends at offset end (just past
 * its '}') are in *ix. */
static inline bool jsonscan_index_whole(const struct jsonscan_index *ix, size_t end)
{
    return end <= ix->partial;
}

/* The first index >= i that is not JSON whitespace (or len). */
size_t jsonscan_skip_ws(const char *d, size_t len, size_t i);

/* Validated text only: i at the start of a value; returns its end. */
size_t jsonscan_skip_value(const char *d, size_t len, size_t i);

/* Walks the members of one object or array of validated text. */
struct jsonscan_iter {
    const char *d; /* borrowed: the validated text */
    size_t len, pos;
    bool obj, started;
};

/* Starts at the object or array whose opening bracket is d[open]. */
void jsonscan_iter_init(struct jsonscan_iter *it, const char *d, size_t len, size_t open);

/* Fills *m with the next member and returns true, or returns false at the
 * closing bracket. */
bool jsonscan_iter_next(struct jsonscan_iter *it, struct jsonscan_member *m);

/* Reads the bytes a key stands for, one at a time: the contents of a JSON
 * string (escapes decoded, \u to UTF-8; a lone surrogate to its 3-byte
 * form) or an RFC 6901 pointer token (~0 and ~1 decoded). */
struct jsonscan_key {
    const char *p, *end; /* borrowed: what is left to read */
    bool pointer;
    unsigned char pend[4];
    unsigned npend, ipend;
};

/* The key of object member m of validated text d. */
struct jsonscan_key jsonscan_key_member(const char *d, const struct jsonscan_member *m);

/* A pointer token: the bytes [p, end) between two '/'. */
struct jsonscan_key jsonscan_key_token(const char *p, const char *end);

/* The next byte the key stands for (0..255), or -1 at its end. */
int jsonscan_key_next(struct jsonscan_key *k);

/* True when both keys stand for the same bytes. */
bool jsonscan_key_eq(struct jsonscan_key a, struct jsonscan_key b);

#endif
