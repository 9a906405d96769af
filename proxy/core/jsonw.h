/* jsonw: small helpers to write JSON text into an evbuffer on hot paths
 * (token events, log lines) without building a tree. Pure. */
#ifndef TOKENTAP_JSONW_H
#define TOKENTAP_JSONW_H

#include <stddef.h>

struct evbuffer;

/* Appends a string literal (its length is known at compile time). */
#define EVBUFFER_ADD_LIT(out, lit) evbuffer_add((out), (lit), sizeof(lit) - 1)

/* Appends s (len bytes, may hold NULs) as a quoted JSON string. Invalid
 * UTF-8 is passed through; control characters are escaped. */
void jsonw_str(struct evbuffer *out, const char *s, size_t len);

/* Appends a NUL-terminated string, or null for NULL. */
void jsonw_cstr(struct evbuffer *out, const char *s);

/* Appends a double in the shortest form that reads back the same, whole
 * numbers as "2.0" (0 for NaN/inf, which JSON cannot hold). */
void jsonw_double(struct evbuffer *out, double v);

/* Formats v like jsonw_double into buf; returns buf. */
const char *jsonw_format_double(double v, char *buf, size_t len);

#endif
