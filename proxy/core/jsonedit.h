/* jsonedit: edits a JSON document as splices into its original text, so
 * every byte an edit does not touch keeps its exact spelling (key order,
 * whitespace, numbers like 1e-7 or 9007199254740993, escapes like \u00e9).
 * The document is never parsed into a tree and reprinted. Pure: text in,
 * a new malloc'd text out; the input is never modified.
 *
 * Validation is strict RFC 8259 (one value, no trailing garbage, no BOM,
 * no control characters in strings, only the standard escapes), with one
 * documented leniency: bytes >= 0x80 inside strings are passed through
 * unchecked, as we never decode or re-encode them; the upstream decides.
 *
 * Duplicate keys: a pointer step through an object follows the last
 * occurrence (as llama-server's nlohmann::json reads it), and the edit at
 * the final step (set, delete, merge) applies to every occurrence, so
 * first-wins and last-wins readers agree on the result.
 *
 * Inserted members copy the object's own separators (the text between its
 * first two members, and around the first member's colon), so a pretty-
 * printed body stays pretty; a lone member with ": " gets ", " (Python's
 * json.dumps style); otherwise they are compact. */
#ifndef TOKENTAP_JSONEDIT_H
#define TOKENTAP_JSONEDIT_H

#include <errno.h>
#include <stddef.h>

#define JSONEDIT_MAX_DEPTH 512                  /* nesting of arrays and objects */
#define JSONEDIT_MAX_BYTES (256u * 1024 * 1024) /* document, value, patch and output */
#define JSONEDIT_MAX_PATCH_DEPTH 64             /* merge recurses along the patch */

/* Positive success: the output equals the input byte for byte (nothing to
 * delete, or the value was already spelled that way); *ret_out is still
 * set, to an identical copy. */
#define JSONEDIT_UNCHANGED 1

/* Errors (negative errno values). */
#define JSONEDIT_ERR_INVALID (-EBADMSG)    /* the document is not valid JSON */
#define JSONEDIT_ERR_NOT_OBJECT (-EINVAL)  /* valid, but its root is not an object */
#define JSONEDIT_ERR_TOO_DEEP (-E2BIG)     /* nesting beyond JSONEDIT_MAX_DEPTH */
#define JSONEDIT_ERR_TOO_LARGE (-EMSGSIZE) /* beyond JSONEDIT_MAX_BYTES */
/* The pointer goes through a scalar, or names an array element by a non-index. */
#define JSONEDIT_ERR_NOT_CONTAINER (-ENOTDIR)
#define JSONEDIT_ERR_NO_ELEMENT (-ENOENT) /* set: array index out of range */
#define JSONEDIT_ERR_BAD_ARG (-EDOM)      /* malformed pointer, value or patch */

/* Checks that text is one valid JSON value (any type): 0,
 * JSONEDIT_ERR_INVALID, JSONEDIT_ERR_TOO_DEEP or JSONEDIT_ERR_TOO_LARGE. */
int jsonedit_validate(const char *text, size_t len);

/* Sets the value at RFC 6901 pointer (NUL-terminated, non-empty, "~0" and
 * "~1" escapes) to value_json (any valid JSON; inserted verbatim, trimmed).
 * Existing members are replaced; missing object members, intermediate ones
 * included, are created as new last members; an array element is replaced
 * by index, "-" appends. Returns 0 or JSONEDIT_UNCHANGED with a new
 * malloc'd *ret_out (caller frees) of *ret_out_len bytes plus a NUL, or a
 * negative JSONEDIT_ERR_* / -ENOMEM (nothing written). */
int jsonedit_set(const char *doc, size_t len, const char *pointer, const char *value_json,
                 size_t value_len, char **ret_out, size_t *ret_out_len);

/* Removes the member or array element at pointer, fixing commas. Returns 0,
 * JSONEDIT_UNCHANGED when there was nothing to remove (a missing member,
 * a missing intermediate, an index out of range), or a negative error
 * (a scalar on the path is JSONEDIT_ERR_NOT_CONTAINER); *ret_out as for
 * jsonedit_set. */
int jsonedit_delete(const char *doc, size_t len, const char *pointer, char **ret_out,
                    size_t *ret_out_len);

/* Applies an RFC 7386 merge patch (an object at most
 * JSONEDIT_MAX_PATCH_DEPTH deep; duplicate keys in one patch object are
 * rejected as JSONEDIT_ERR_BAD_ARG) as splices: nested objects merge into
 * existing objects, null deletes, other values replace the member's value
 * (verbatim patch text; nulls dropped from inserted objects), new members
 * go last in patch order. Returns 0, JSONEDIT_UNCHANGED, or a negative
 * error; *ret_out as for jsonedit_set. */
int jsonedit_merge(const char *doc, size_t len, const char *patch_json, size_t patch_len,
                   char **ret_out, size_t *ret_out_len);

#endif
