#include "core/jsonedit.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonscan.h"

/* jsonedit's limits and errors are jsonscan's. */
_Static_assert(JSONEDIT_MAX_DEPTH <= JSONSCAN_MAX_DEPTH, "depth limit beyond the scanner's");
_Static_assert(JSONEDIT_MAX_BYTES == JSONSCAN_MAX_BYTES, "size limits differ");
_Static_assert(JSONEDIT_ERR_INVALID == JSONSCAN_ERR_INVALID &&
                   JSONEDIT_ERR_TOO_DEEP == JSONSCAN_ERR_TOO_DEEP &&
                   JSONEDIT_ERR_TOO_LARGE == JSONSCAN_ERR_TOO_LARGE,
               "error codes differ");

/* Growable text with a sticky error, checked once at the end. */
struct buf {
    char *p; /* owned; NUL-terminated when non-NULL */
    size_t len, cap;
    int err;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (n > JSONEDIT_MAX_BYTES - b->len) {
        b->err = JSONEDIT_ERR_TOO_LARGE;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->err = -ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

struct splice {
    size_t start, end;     /* doc[start, end) is replaced ... */
    size_t text, text_len; /* ... by edit.text[text, text + text_len) */
};

struct edit {
    const char *doc; /* borrowed */
    size_t len;
    struct buf text;        /* owned: the replacement texts */
    struct splice *splices; /* owned; in document order */
    size_t n_splices, cap_splices;
    int err;
};

/* Replaces doc[start, end) by the text appended since text_off. */
static void add_splice(struct edit *e, size_t start, size_t end, size_t text_off)
{
    if (e->err)
        return;
    if (e->n_splices == e->cap_splices) {
        size_t cap = e->cap_splices ? e->cap_splices * 2 : 16;
        struct splice *s = realloc(e->splices, cap * sizeof(*s));
        if (!s) {
            e->err = -ENOMEM;
            return;
        }
        e->splices = s;
        e->cap_splices = cap;
    }
    e->splices[e->n_splices++] = (struct splice){start, end, text_off, e->text.len - text_off};
}

/* How an object or array separates its members, copied from its own text:
 * between the first two members, else "," plus the whitespace after the
 * opening bracket; the colon with its whitespace from the first member. */
struct style {
    const char *sep; /* borrowed */
    size_t sep_len;
    bool sep_comma;    /* emit "," before sep (it holds whitespace only) */
    const char *colon; /* borrowed */
    size_t colon_len;
};

static struct style make_style(const char *d, size_t open, size_t n,
                               const struct jsonscan_member *first,
                               const struct jsonscan_member *second)
{
    struct style st = {.sep = "", .sep_comma = true, .colon = ":", .colon_len = 1};
    if (n >= 2) {
        st.sep = d + first->value_end;
        st.sep_len = second->key - first->value_end;
        st.sep_comma = false;
    } else if (n == 1) {
        st.sep = d + open + 1;
        st.sep_len = first->key - open - 1;
    }
    if (n >= 1 && first->key_end < first->value) {
        st.colon = d + first->key_end;
        st.colon_len = first->value - first->key_end;
    }
    /* One member, nothing after the bracket, ": " as colon: Python's
     * json.dumps default style, whose separator is ", ". */
    if (n == 1 && st.sep_len == 0 && st.colon_len == 2 && memcmp(st.colon, ": ", 2) == 0) {
        st.sep = " ";
        st.sep_len = 1;
    }
    return st;
}

static void emit_sep(struct buf *b, const struct style *st)
{
    if (st->sep_comma)
        buf_add(b, ",", 1);
    buf_add(b, st->sep, st->sep_len);
}

/* Writes a key as a quoted JSON string: JSON keys keep their spelling,
 * pointer tokens are decoded and escaped. */
static void emit_key(struct buf *b, struct jsonscan_key k)
{
    buf_add(b, "\"", 1);
    if (!k.pointer) {
        buf_add(b, k.p, (size_t)(k.end - k.p));
    } else {
        int c;
        while ((c = jsonscan_key_next(&k)) >= 0) {
            char esc[8];
            if (c == '"' || c == '\\') {
                esc[0] = '\\';
                esc[1] = (char)c;
                buf_add(b, esc, 2);
            } else if (c < 0x20) {
                static const char hex[] = "0123456789abcdef";
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                buf_add(b, esc, 6);
            } else {
                esc[0] = (char)c;
                buf_add(b, esc, 1);
            }
        }
    }
    buf_add(b, "\"", 1);
}

/* Writes a patch value as inserted text: verbatim, except that members
 * whose value is null are dropped from objects, recursively (RFC 7386:
 * a patch merged into a non-object). Recursion is bounded by the patch's
 * validated depth. */
static void emit_stripped(struct buf *b, const char *v, size_t len)
{
    if (v[0] != '{') {
        buf_add(b, v, len);
        return;
    }
    struct jsonscan_iter it;
    struct jsonscan_member m;
    bool any = false;
    jsonscan_iter_init(&it, v, len, 0);
    buf_add(b, "{", 1);
    while (jsonscan_iter_next(&it, &m)) {
        if (v[m.value] == 'n')
            continue;
        if (any)
            buf_add(b, ",", 1);
        any = true;
        buf_add(b, v + m.key, m.key_end - m.key);
        buf_add(b, ":", 1);
        emit_stripped(b, v + m.value, m.value_end - m.value);
    }
    buf_add(b, "}", 1);
}

enum op_kind {
    OP_DELETE,
    OP_REPLACE, /* val is the new value text */
    OP_MERGE,   /* val is a patch object */
};

struct op {
    struct jsonscan_key key;
    enum op_kind kind;
    const char *val; /* borrowed */
    size_t val_len;
    bool found;
};

static void merge_into(struct edit *e, size_t open, const char *patch, size_t patch_len);

/* Applies ops to every matching member of the object at doc[open] and
 * appends the ops that matched nothing as new last members. Splices are
 * added in document order: a run of deleted members goes with the comma
 * after it, or before it when it runs to the end of the object. */
static void edit_object(struct edit *e, size_t open, struct op *ops, size_t n_ops)
{
    struct jsonscan_iter it;
    struct jsonscan_member m, first = {0}, second = {0};
    size_t n = 0, last_kept_end = 0, last_end = 0, run_start = SIZE_MAX;
    bool have_kept = false;

    jsonscan_iter_init(&it, e->doc, e->len, open);
    while (!e->err && jsonscan_iter_next(&it, &m)) {
        if (n == 0)
            first = m;
        else if (n == 1)
            second = m;
        n++;
        last_end = m.value_end;
        struct op *op = NULL;
        for (size_t k = 0; k < n_ops; k++) {
            if (jsonscan_key_eq(jsonscan_key_member(e->doc, &m), ops[k].key)) {
                op = &ops[k];
                op->found = true;
                break;
            }
        }
        if (op && op->kind == OP_DELETE) {
            if (run_start == SIZE_MAX)
                run_start = m.key;
            continue;
        }
        if (run_start != SIZE_MAX)
            add_splice(e, run_start, m.key, e->text.len);
        run_start = SIZE_MAX;
        size_t t = e->text.len;
        if (op && op->kind == OP_REPLACE) {
            buf_add(&e->text, op->val, op->val_len);
            add_splice(e, m.value, m.value_end, t);
        } else if (op && op->kind == OP_MERGE && e->doc[m.value] == '{') {
            merge_into(e, m.value, op->val, op->val_len);
        } else if (op && op->kind == OP_MERGE) {
            emit_stripped(&e->text, op->val, op->val_len);
            add_splice(e, m.value, m.value_end, t);
        }
        have_kept = true;
        last_kept_end = m.value_end;
    }
    if (run_start != SIZE_MAX)
        add_splice(e, have_kept ? last_kept_end : run_start, last_end, e->text.len);

    struct style st = make_style(e->doc, open, n, &first, &second);
    size_t t = e->text.len;
    bool any = have_kept;
    for (size_t k = 0; k < n_ops; k++) {
        if (ops[k].found || ops[k].kind == OP_DELETE)
            continue;
        if (any)
            emit_sep(&e->text, &st);
        any = true;
        emit_key(&e->text, ops[k].key);
        buf_add(&e->text, st.colon, st.colon_len);
        if (ops[k].kind == OP_REPLACE)
            buf_add(&e->text, ops[k].val, ops[k].val_len);
        else
            emit_stripped(&e->text, ops[k].val, ops[k].val_len);
    }
    if (e->text.len > t)
        add_splice(e, n ? last_end : open + 1, n ? last_end : open + 1, t);
}

/* Merges the patch object (validated text) into the object at doc[open]. */
static void merge_into(struct edit *e, size_t open, const char *patch, size_t patch_len)
{
    struct jsonscan_iter it;
    struct jsonscan_member m;
    size_t n = 0;
    struct op *ops = NULL;

    jsonscan_iter_init(&it, patch, patch_len, 0);
    while (jsonscan_iter_next(&it, &m))
        n++;
    if (n == 0)
        return;
    ops = calloc(n, sizeof(*ops));
    if (!ops) {
        e->err = -ENOMEM;
        return;
    }
    n = 0;
    jsonscan_iter_init(&it, patch, patch_len, 0);
    while (jsonscan_iter_next(&it, &m)) {
        char c = patch[m.value];
        ops[n].key = jsonscan_key_member(patch, &m);
        ops[n].kind = c == 'n' ? OP_DELETE : c == '{' ? OP_MERGE : OP_REPLACE;
        ops[n].val = patch + m.value;
        ops[n].val_len = m.value_end - m.value;
        n++;
    }
    edit_object(e, open, ops, n);
    free(ops);
}

/* Rejects a patch in which an object (the root or a nested object member)
 * repeats a key: two edits of one member would overlap, and which should
 * win is unclear. Recursion is bounded by the patch's validated depth. */
static int check_patch_keys(const char *patch, size_t len)
{
    struct jsonscan_iter it, it2;
    struct jsonscan_member m, m2;
    jsonscan_iter_init(&it, patch, len, 0);
    while (jsonscan_iter_next(&it, &m)) {
        it2 = it;
        while (jsonscan_iter_next(&it2, &m2))
            if (jsonscan_key_eq(jsonscan_key_member(patch, &m), jsonscan_key_member(patch, &m2)))
                return JSONEDIT_ERR_BAD_ARG;
        if (patch[m.value] == '{') {
            int r = check_patch_keys(patch + m.value, m.value_end - m.value);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* Assembles the output from the splices. */
static int finish(struct edit *e, char **ret_out, size_t *ret_out_len)
{
    struct buf out = {0};
    size_t pos = 0;
    int r = e->err ? e->err : e->text.err;

    if (r < 0)
        goto fail;
    for (size_t i = 0; i < e->n_splices; i++) {
        const struct splice *s = &e->splices[i];
        assert(s->start >= pos && s->end >= s->start);
        if (s->start < pos || s->end < s->start) {
            r = -EFAULT; /* a bug here, never the input's fault */
            goto fail;
        }
        buf_add(&out, e->doc + pos, s->start - pos);
        if (s->text_len) /* text.p is still NULL when only deletions were made */
            buf_add(&out, e->text.p + s->text, s->text_len);
        pos = s->end;
    }
    buf_add(&out, e->doc + pos, e->len - pos);
    if (out.err) {
        r = out.err;
        goto fail;
    }
    r = out.len == e->len && memcmp(out.p, e->doc, e->len) == 0 ? JSONEDIT_UNCHANGED : 0;
    *ret_out = out.p;
    *ret_out_len = out.len;
    return r;
fail:
    free(out.p);
    return r;
}

int jsonedit_validate(const char *text, size_t len)
{
    struct jsonscan_info info;
    return jsonscan_validate(text, len, JSONEDIT_MAX_DEPTH, &info);
}

/* Validates the document (root must be an object) and starts an edit. */
static int edit_begin(struct edit *e, const char *doc, size_t len, size_t *ret_root)
{
    struct jsonscan_info info;
    *e = (struct edit){.doc = doc, .len = len};
    int r = jsonscan_validate(doc, len, JSONEDIT_MAX_DEPTH, &info);
    if (r < 0)
        return r;
    if (doc[info.start] != '{')
        return JSONEDIT_ERR_NOT_OBJECT;
    *ret_root = info.start;
    return 0;
}

/* Checks an RFC 6901 pointer (non-empty, "~" only as "~0" or "~1") and
 * counts its tokens. */
static int check_pointer(const char *p, size_t *ret_tokens)
{
    size_t n = 0;
    if (!p || p[0] != '/')
        return JSONEDIT_ERR_BAD_ARG;
    for (; *p; p++) {
        n += *p == '/';
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return JSONEDIT_ERR_BAD_ARG;
    }
    *ret_tokens = n;
    return 0;
}

/* The token that starts after the '/' at p. */
static struct jsonscan_key pointer_token(const char *p)
{
    const char *end = strchr(p + 1, '/');
    return jsonscan_key_token(p + 1, end ? end : p + 1 + strlen(p + 1));
}

#define INDEX_APPEND SIZE_MAX /* "-" */
#define INDEX_INVALID (SIZE_MAX - 1)

/* An array index token: digits without leading zeros, or "-". */
static size_t parse_index(struct jsonscan_key t)
{
    size_t n = (size_t)(t.end - t.p), v = 0;
    if (n == 1 && t.p[0] == '-')
        return INDEX_APPEND;
    if (n == 0 || n > 15 || (n > 1 && t.p[0] == '0'))
        return INDEX_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (t.p[i] < '0' || t.p[i] > '9')
            return INDEX_INVALID;
        v = v * 10 + (size_t)(t.p[i] - '0');
    }
    return v;
}

/* What an edit of element idx of the array at doc[open] needs to know
 * (idx may be INDEX_APPEND: then only n, first, second and last). */
struct array_info {
    size_t n;
    struct jsonscan_member el, prev, next, first, second, last;
    bool found;
};

static void array_scan(const struct edit *e, size_t open, size_t idx, struct array_info *a)
{
    struct jsonscan_iter it;
    struct jsonscan_member m;
    *a = (struct array_info){0};
    jsonscan_iter_init(&it, e->doc, e->len, open);
    while (jsonscan_iter_next(&it, &m)) {
        if (a->n == 0)
            a->first = m;
        else if (a->n == 1)
            a->second = m;
        if (idx < INDEX_INVALID) {
            if (a->n + 1 == idx)
                a->prev = m;
            else if (a->n == idx)
                a->el = m;
            else if (a->n == idx + 1)
                a->next = m;
            a->found = a->found || a->n == idx;
        }
        a->last = m;
        a->n++;
    }
}

/* Walks pointer to the container holding its last token: returns 0 with
 * *ret_open and *ret_last set, or an error; for set, a missing member
 * stops the walk at its object (*ret_missing). */
static int walk(const struct edit *e, size_t root, const char *pointer, size_t *ret_open,
                const char **ret_last, bool *ret_missing)
{
    size_t cur = root;
    const char *tok = pointer;
    for (;;) {
        struct jsonscan_key t = pointer_token(tok);
        bool last = *t.end == '\0';
        if (last || (e->doc[cur] != '{' && e->doc[cur] != '['))
            break;
        size_t next = SIZE_MAX;
        struct jsonscan_iter it;
        struct jsonscan_member m;
        if (e->doc[cur] == '{') {
            jsonscan_iter_init(&it, e->doc, e->len, cur);
            while (jsonscan_iter_next(&it, &m))
                if (jsonscan_key_eq(jsonscan_key_member(e->doc, &m), t))
                    next = m.value; /* the last occurrence wins */
        } else {
            size_t idx = parse_index(t);
            if (idx == INDEX_INVALID)
                return JSONEDIT_ERR_NOT_CONTAINER;
            struct array_info a;
            array_scan(e, cur, idx, &a);
            if (!a.found)
                return JSONEDIT_ERR_NO_ELEMENT;
            next = a.el.value;
        }
        if (next == SIZE_MAX) {
            *ret_open = cur;
            *ret_last = tok;
            *ret_missing = true;
            return 0;
        }
        cur = next;
        tok = t.end;
    }
    if (e->doc[cur] != '{' && e->doc[cur] != '[')
        return JSONEDIT_ERR_NOT_CONTAINER;
    *ret_open = cur;
    *ret_last = tok;
    *ret_missing = false;
    return 0;
}

int jsonedit_set(const char *doc, size_t len, const char *pointer, const char *value_json,
                 size_t value_len, char **ret_out, size_t *ret_out_len)
{
    struct edit e;
    struct buf nested = {0};
    struct jsonscan_info v;
    size_t tokens, root, open = 0;
    const char *tok = NULL;
    bool missing = false;
    int r;

    if (!doc || !value_json || !ret_out || !ret_out_len)
        return JSONEDIT_ERR_BAD_ARG;
    r = check_pointer(pointer, &tokens);
    if (r < 0)
        return r;
    r = jsonscan_validate(value_json, value_len, JSONEDIT_MAX_DEPTH, &v);
    if (r < 0)
        return r == JSONEDIT_ERR_INVALID ? JSONEDIT_ERR_BAD_ARG : r;
    if (tokens + v.depth > JSONEDIT_MAX_DEPTH)
        return JSONEDIT_ERR_TOO_DEEP;
    r = edit_begin(&e, doc, len, &root);
    if (r < 0)
        return r;
    r = walk(&e, root, pointer, &open, &tok, &missing);
    if (r < 0)
        goto fail;

    struct jsonscan_key t = pointer_token(tok);
    if (doc[open] == '{') {
        struct op op = {
            .key = t, .kind = OP_REPLACE, .val = value_json + v.start, .val_len = v.end - v.start};
        if (missing) {
            /* Create the intermediate objects: {"b":{"c":value}} under "a". */
            struct jsonscan_iter it;
            struct jsonscan_member first = {0};
            jsonscan_iter_init(&it, doc, len, open);
            struct style st =
                make_style(doc, open, jsonscan_iter_next(&it, &first) ? 1 : 0, &first, NULL);
            size_t depth = 0;
            for (const char *p = t.end; *p; p = pointer_token(p).end, depth++) {
                buf_add(&nested, "{", 1);
                emit_key(&nested, pointer_token(p));
                buf_add(&nested, st.colon, st.colon_len);
            }
            buf_add(&nested, op.val, op.val_len);
            while (depth--)
                buf_add(&nested, "}", 1);
            if (nested.err) {
                r = nested.err;
                goto fail;
            }
            op.val = nested.p;
            op.val_len = nested.len;
        }
        edit_object(&e, open, &op, 1);
    } else {
        size_t idx = parse_index(t);
        struct array_info a;
        r = idx == INDEX_INVALID ? JSONEDIT_ERR_NOT_CONTAINER : 0;
        if (r < 0)
            goto fail;
        array_scan(&e, open, idx, &a);
        size_t start, end;
        if (idx == INDEX_APPEND) {
            start = end = a.n ? a.last.value_end : open + 1;
            if (a.n) {
                struct style st = make_style(doc, open, a.n, &a.first, &a.second);
                emit_sep(&e.text, &st);
            }
        } else if (a.found) {
            start = a.el.value;
            end = a.el.value_end;
        } else {
            r = JSONEDIT_ERR_NO_ELEMENT;
            goto fail;
        }
        buf_add(&e.text, value_json + v.start, v.end - v.start);
        add_splice(&e, start, end, 0);
    }
    r = finish(&e, ret_out, ret_out_len);
fail:
    free(nested.p);
    free(e.text.p);
    free(e.splices);
    return r;
}

int jsonedit_delete(const char *doc, size_t len, const char *pointer, char **ret_out,
                    size_t *ret_out_len)
{
    struct edit e;
    size_t tokens, root, open = 0;
    const char *tok = NULL;
    bool missing = false;
    int r;

    if (!doc || !ret_out || !ret_out_len)
        return JSONEDIT_ERR_BAD_ARG;
    r = check_pointer(pointer, &tokens);
    if (r < 0)
        return r;
    r = edit_begin(&e, doc, len, &root);
    if (r < 0)
        return r;
    r = walk(&e, root, pointer, &open, &tok, &missing);
    if (r == JSONEDIT_ERR_NO_ELEMENT) {
        /* An intermediate index out of range: nothing there to delete. */
        r = 0;
        missing = true;
    }
    if (r < 0)
        goto fail;

    if (missing) {
        /* Nothing to remove (open and tok may be unset): the output is a copy. */
    } else if (doc[open] == '{') {
        struct op op = {.key = pointer_token(tok), .kind = OP_DELETE};
        edit_object(&e, open, &op, 1);
    } else {
        size_t idx = parse_index(pointer_token(tok));
        struct array_info a;
        r = idx == INDEX_INVALID ? JSONEDIT_ERR_NOT_CONTAINER : 0;
        if (r < 0)
            goto fail;
        array_scan(&e, open, idx, &a);
        if (a.found && a.n > idx + 1)
            add_splice(&e, a.el.value, a.next.value, 0);
        else if (a.found && idx > 0)
            add_splice(&e, a.prev.value_end, a.el.value_end, 0);
        else if (a.found)
            add_splice(&e, a.el.value, a.el.value_end, 0);
    }
    r = finish(&e, ret_out, ret_out_len);
fail:
    free(e.text.p);
    free(e.splices);
    return r;
}

int jsonedit_merge(const char *doc, size_t len, const char *patch_json, size_t patch_len,
                   char **ret_out, size_t *ret_out_len)
{
    struct edit e;
    struct jsonscan_info p;
    size_t root;
    int r;

    if (!doc || !patch_json || !ret_out || !ret_out_len)
        return JSONEDIT_ERR_BAD_ARG;
    r = jsonscan_validate(patch_json, patch_len, JSONEDIT_MAX_PATCH_DEPTH, &p);
    if (r == JSONEDIT_ERR_INVALID || (r == 0 && patch_json[p.start] != '{'))
        return JSONEDIT_ERR_BAD_ARG;
    if (r < 0)
        return r;
    r = check_patch_keys(patch_json + p.start, p.end - p.start);
    if (r < 0)
        return r;
    r = edit_begin(&e, doc, len, &root);
    if (r < 0)
        return r;
    merge_into(&e, root, patch_json + p.start, p.end - p.start);
    r = finish(&e, ret_out, ret_out_len);
    free(e.text.p);
    free(e.splices);
    return r;
}
