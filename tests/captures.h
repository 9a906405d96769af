/* captures: reading the llama-server captures in fixtures/llama-server
 * ($FIXTURES) for unit tests. Header-only, like check.h. */
#ifndef TOKENTAP_TESTS_CAPTURES_H
#define TOKENTAP_TESTS_CAPTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Directory of the captures; never NULL. */
static inline const char *capture_dir(char *buf, size_t len)
{
    const char *dir = getenv("FIXTURES");
    snprintf(buf, len, "%s/llama-server", dir ? dir : "tests/fixtures");
    return buf;
}

/* A whole file, NUL-terminated (malloc'd, caller frees), or NULL. */
static inline char *capture_read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 65536;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = 0;
    *ret_len = len;
    return buf;
}

/* The body of capture `name` (after the head's blank line), NUL-terminated
 * (malloc'd, caller frees), or NULL. */
static inline char *capture_body(const char *name, size_t *ret_len)
{
    char dir[1024], path[2048];
    capture_dir(dir, sizeof(dir));
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return NULL;
    size_t len = 0;
    char *text = capture_read_file(path, &len);
    if (!text)
        return NULL;
    const char *sep = strstr(text, "\r\n\r\n");
    if (!sep) {
        free(text);
        return NULL;
    }
    sep += 4;
    size_t n = len - (size_t)(sep - text);
    memmove(text, sep, n + 1);
    *ret_len = n;
    return text;
}

#endif
