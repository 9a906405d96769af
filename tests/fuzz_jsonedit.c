/* libFuzzer target for jsonedit. Input: one selector byte, then the
 * document, a NUL, and the argument: for merge the patch; for delete the
 * pointer; for set the pointer, a NUL, and the value. Checks: no crash or
 * leak; a successful edit is valid JSON (to jsonedit and, when the inputs
 * are, to cJSON); when cJSON can stand in for the inputs (jsonref.h), the
 * result and error equal the tree algorithms'; a delete only removes
 * bytes; the members jsonscan notes while validating the document are the
 * ones its walker finds (index_check.h). Built with -Dfuzz=true (clang). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/jsonedit.h"
#include "core/jsonscan.h"
#include "index_check.h"
#include "jsonref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_jsonedit: %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* out must be in with some byte ranges removed. */
static bool only_removed(const char *in, size_t len, const char *out, size_t out_len)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j < out_len; i++)
        if (in[i] == out[j])
            j++;
    return j == out_len;
}

/* The same output and tree must come from the plain algorithm. */
static void compare(const char *out, size_t out_len, const cJSON *want)
{
    cJSON *got = cJSON_ParseWithLength(out, out_len);
    if (!ref_equal(got, want)) {
        char *w = cJSON_PrintUnformatted(want);
        fprintf(stderr, "got  %.*s\nwant %s\n", (int)out_len, out, w ? w : "(null)");
        free(w);
        FUZZ_ASSERT(!"jsonedit and the tree algorithm disagree");
    }
    cJSON_Delete(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* A private NUL-terminated copy: pointers are C strings. */
    char *buf = malloc(size + 1);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    size_t n = size - 1;
    int op = data[0] % 3;

    const char *doc = buf, *arg = buf + strlen(buf), *pointer = NULL;
    size_t doc_len = (size_t)(arg - doc);
    if (arg < buf + n)
        arg++; /* past the NUL */
    size_t arg_len = (size_t)(buf + n - arg);

    /* Validating with an index says the same, and the index is right:
     * with room for every member and with too little (the selector byte
     * picks how little). */
    struct jsonscan_info vi, xi;
    int v = jsonscan_validate(doc, doc_len, JSONSCAN_MAX_DEPTH, &vi);
    for (size_t cap = 1 + data[0] % 8; cap <= 64; cap += 63) {
        struct jsonscan_entry entries[64];
        struct jsonscan_index ix;
        jsonscan_index_init(&ix, entries, cap);
        FUZZ_ASSERT(jsonscan_validate_index(doc, doc_len, JSONSCAN_MAX_DEPTH, &xi, &ix) == v);
        unsigned whole = 0;
        if (v == 0)
            FUZZ_ASSERT(index_matches(doc, doc_len, vi.start, &ix, &whole));
    }

    char *out = NULL;
    size_t out_len = 0;
    int r;
    cJSON *tree = NULL, *patch = NULL;
    if (op == 0) {
        r = jsonedit_merge(doc, doc_len, arg, arg_len, &out, &out_len);
    } else if (op == 1) {
        pointer = arg;
        r = jsonedit_delete(doc, doc_len, pointer, &out, &out_len);
    } else {
        pointer = arg;
        const char *value = arg + strlen(arg);
        if (value < buf + n)
            value++;
        r = jsonedit_set(doc, doc_len, arg, value, (size_t)(buf + n - value), &out, &out_len);
        /* The value is the argument that cJSON must also read. */
        arg = value;
        arg_len = (size_t)(buf + n - value);
    }

    FUZZ_ASSERT(r <= JSONEDIT_UNCHANGED);
    FUZZ_ASSERT((r >= 0) == (out != NULL));
    if (r >= 0) {
        FUZZ_ASSERT(out[out_len] == '\0');
        FUZZ_ASSERT(jsonedit_validate(out, out_len) == 0);
        FUZZ_ASSERT((r == JSONEDIT_UNCHANGED) ==
                    (out_len == doc_len && memcmp(out, doc, doc_len) == 0));
        if (op == 1)
            FUZZ_ASSERT(only_removed(doc, doc_len, out, out_len));
    }
    /* Only inputs jsonedit accepted are compared (cJSON is more lenient). */
    if (r < 0 && r != JSONEDIT_ERR_NOT_CONTAINER && r != JSONEDIT_ERR_NO_ELEMENT)
        goto done;
    tree = ref_parse(doc, doc_len);
    patch = op == 1 ? NULL : ref_parse(arg, arg_len);
    if (!tree || (op != 1 && !patch)) {
        /* cJSON cannot stand in for these inputs; still, when it reads
         * them, it must read the output. */
        cJSON *d = cJSON_ParseWithLength(doc, doc_len);
        cJSON *a = op == 1 ? NULL : cJSON_ParseWithLength(arg, arg_len);
        if (r >= 0 && d && (op == 1 || a)) {
            cJSON *o = cJSON_ParseWithLength(out, out_len);
            FUZZ_ASSERT(o != NULL);
            cJSON_Delete(o);
        }
        cJSON_Delete(d);
        cJSON_Delete(a);
        goto done;
    }
    if (op == 0) {
        tree = ref_merge(tree, patch);
        FUZZ_ASSERT(r >= 0);
        compare(out, out_len, tree);
    } else if (op == 1) {
        int want = ref_delete(tree, pointer);
        FUZZ_ASSERT(r == want);
        if (r >= 0)
            compare(out, out_len, tree);
    } else {
        int want = ref_set(tree, pointer, patch);
        patch = NULL; /* ref_set took it */
        FUZZ_ASSERT(r == want || (r == JSONEDIT_UNCHANGED && want == 0));
        if (r >= 0)
            compare(out, out_len, tree);
    }

done:
    cJSON_Delete(tree);
    cJSON_Delete(patch);
    free(out);
    free(buf);
    return 0;
}
