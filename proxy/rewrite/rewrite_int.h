/* rewrite's insides, shared by its two halves: rewrite_load.c builds a
 * rule set from the config, rewrite.c applies it. Not for other modules. */
#ifndef TOKENTAP_REWRITE_INT_H
#define TOKENTAP_REWRITE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "rewrite/rewrite.h"

/* Every allocation of a rule set is one block on a list, so a half-loaded
 * set frees as simply as a whole one. */
struct block {
    struct block *next; /* owned */
    max_align_t data[];
};

/* Alternatives: a match list matches when one glob does; n == 0 means the
 * rule does not look at this property. */
struct globs {
    char **v; /* owned (arena) */
    size_t n;
};

struct header_match {
    char *name; /* owned (arena) */
    struct globs values;
};

struct drop {
    char *path;   /* owned (arena): JSON pointer to the array */
    char *prefix; /* owned (arena) */
    size_t prefix_len;
};

struct set_op {
    char *pointer; /* owned (arena) */
    char *value;   /* owned (arena): JSON text */
    size_t value_len;
};

struct rule {
    char *name; /* owned (arena) */
    struct globs route, method, model, upstream;
    struct header_match *headers; /* owned (arena) */
    size_t n_headers;

    /* Actions, applied in this order. */
    struct drop *drops; /* owned (arena) */
    size_t n_drops;
    char **deletes; /* owned (arena) */
    size_t n_deletes;
    struct set_op *sets; /* owned (arena) */
    size_t n_sets;
    char *merge; /* owned (arena): the patch as JSON text, NULL for none */
    size_t merge_len;
    enum rewrite_thinking thinking;
    char *model_name; /* owned (arena), NULL for none */
    char *model_json; /* owned (arena): model_name as a JSON string */
    size_t model_json_len;
    struct rewrite_header_edit *hedits; /* owned (arena); names and values too */
    size_t n_hedits;
};

struct rewrite_rules {
    struct block *blocks; /* owned: everything below */
    struct rule *rules;   /* owned (arena) */
    size_t n_rules;
    size_t max_body;
    bool anthropic_thinking_field;
    size_t n_hedits; /* in all rules: bounds a result's header edits */
};

/* a[0, alen) equals the string b, ASCII case folded (header names). */
static inline bool rewrite_caseeq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* HTTP's optional whitespace (RFC 9110, 5.6.3). */
static inline bool rewrite_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

#endif
