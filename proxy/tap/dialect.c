#include "tap/dialect.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonscan.h"
#include "tap/sse.h"

/* A value inside JSON text that jsonscan_validate() accepted: [p, p + len),
 * without surrounding whitespace. p == NULL: absent. Reading an event
 * this way allocates nothing: a token event costs one validation pass and
 * a few member walks, where a cJSON tree cost some 30 allocations. */
struct jv {
    const char *p; /* borrowed: the event's or body's text */
    size_t len;
};

/* The members of an object, found in one walk: an event's dozen lookups
 * in its top object then do not walk the text again. Each key is kept as
 * its word (jsonscan_word), so most key compares are one compare, and the
 * words' bits in a small filter: most lookups are for members an event
 * does not have ("usage", "timings", "reasoning_content" in a token
 * event), and the filter answers those without comparing keys. */
#define MEMO_MEMBERS 16
#define MEMO_OBJECTS 8
struct memo {
    const char *obj; /* borrowed: the object's '{' */
    unsigned n;
    uint64_t filter; /* key_bit() of every member's word; all ones: an escaped key */
    uint64_t word[MEMO_MEMBERS]; /* 0: the key has an escape, compare it by meaning */
    struct {
        struct jv key, val;
    } m[MEMO_MEMBERS];
    struct jsonscan_iter rest; /* the members after the first MEMO_MEMBERS */
};

/* Members noted per event: an OpenAI chunk has about 20, a final one with
 * usage and timings about 40. Objects past the index are walked. */
#define INDEX_ENTRIES 64

/* One dialect_event() or dialect_body() call; on the stack, made by
 * step_init (which leaves the arrays unwritten: a few KiB per event). */
struct step {
    struct dialect *d; /* borrowed */
    dialect_token_cb cb;
    void *ctx;         /* borrowed */
    bool stream;       /* token events are counted only in streams */
    int n;             /* token events so far */
    struct jv emitted; /* the last text counted, when a string read in place */
    enum dialect_token_kind emitted_kind;
    struct memo memo[MEMO_OBJECTS]; /* reused in turn */
    unsigned memo_next;
    struct memo *last; /* borrowed from memo[]: the one get() found last; NULL: none */
    const char *text; /* borrowed: the event's or body's text */
    struct jsonscan_index index; /* its objects' members, noted while validating */
    struct jsonscan_entry entries[INDEX_ENTRIES];
};

static void step_init(struct step *s, struct dialect *d, dialect_token_cb cb, void *ctx, bool stream)
{
    s->d = d;
    s->cb = cb;
    s->ctx = ctx;
    s->stream = stream;
    s->n = 0;
    s->memo_next = 0; /* memo[0, memo_next) are in use */
    s->last = NULL;
    s->text = NULL; /* and s->index unset: parse_object() makes it */
}

/* --- reading validated JSON --- */

static const struct jv none;

static bool is_obj(struct jv v)
{
    return v.p && v.p[0] == '{';
}

static bool is_arr(struct jv v)
{
    return v.p && v.p[0] == '[';
}

static bool is_str(struct jv v)
{
    return v.p && v.p[0] == '"';
}

static bool is_num(struct jv v)
{
    return v.p && (v.p[0] == '-' || (v.p[0] >= '0' && v.p[0] <= '9'));
}

static bool is_true(struct jv v)
{
    return v.p && v.p[0] == 't';
}

/* A non-empty string: an escape is at least one byte ("\u0000" too). */
static bool nonempty(struct jv v)
{
    return is_str(v) && v.len > 2;
}

static bool has_escape(struct jv v)
{
    return memchr(v.p + 1, '\\', v.len - 2) != NULL;
}

/* The bytes string v stands for, one at a time. */
static struct jsonscan_key str_bytes(struct jv v)
{
    return (struct jsonscan_key){.p = v.p + 1, .end = v.p + v.len - 1};
}

static struct jsonscan_key lit_bytes(const char *lit, size_t len)
{
    return (struct jsonscan_key){.p = lit, .end = lit + len};
}

static inline uint64_t key_bit(uint64_t word)
{
    return 1ull << ((word * 0x9e3779b97f4a7c15ull) >> 58);
}

/* Notes member i's word (0: its key has an escape) in memo mo. */
static void memo_word(struct memo *mo, unsigned i, uint64_t word)
{
    mo->word[i] = word;
    mo->filter |= word ? key_bit(word) : ~0ull;
}

/* The word of key k (quoted, escapes in), for a member not in the index. */
static uint64_t word_of(struct jv k)
{
    const char *raw = k.p + 1;
    size_t n = k.len - 2;
    return memchr(raw, '\\', n) ? 0 : jsonscan_word(raw, n);
}

/* True when member i of mo has key key[0, klen), whose word is kw and
 * which has no backslash. An escaped key is compared by meaning. */
static bool memo_key_is(const struct memo *mo, unsigned i, const char *key, size_t klen, uint64_t kw)
{
    const size_t w = JSONSCAN_WORD_BYTES;
    if (mo->word[i] == kw)
        return klen <= w ||
               (mo->m[i].key.len - 2 == klen && memcmp(mo->m[i].key.p + 1 + w, key + w, klen - w) == 0);
    return mo->word[i] == 0 && jsonscan_key_eq(str_bytes(mo->m[i].key), lit_bytes(key, klen));
}

/* The same for a key past the memo's members. */
static bool key_is(struct jv k, const char *key, size_t klen)
{
    const char *raw = k.p + 1;
    size_t n = k.len - 2;
    if (n == klen)
        return memcmp(raw, key, n) == 0;
    if (n < klen || (raw[0] != '\\' && raw[0] != key[0]))
        return false;
    return memchr(raw, '\\', n) && jsonscan_key_eq(str_bytes(k), lit_bytes(key, klen));
}

static void memo_add(struct memo *mo, struct jv key, struct jv val, uint64_t word)
{
    mo->m[mo->n].key = key;
    mo->m[mo->n].val = val;
    memo_word(mo, mo->n, word);
    mo->n++;
}

/* Makes the memo of object obj: from the members noted while validating
 * when they are all there, else by walking the text. Out of line: get()
 * is called a dozen times per event and mostly finds the memo made. */
static __attribute__((noinline)) struct memo *memo_make(struct step *s, struct jv obj)
{
    struct memo *mo = &s->memo[s->memo_next++ % MEMO_OBJECTS];
    struct jsonscan_member m;
    mo->obj = obj.p;
    mo->n = 0;
    mo->filter = 0;
    jsonscan_iter_init(&mo->rest, obj.p, obj.len, 0);
    size_t open = (size_t)(obj.p - s->text);
    const struct jsonscan_index *ix = &s->index;
    if (jsonscan_index_whole(ix, open + obj.len)) {
        /* Entries are in the order of their keys: the object's own are
         * between its '{' and its '}', with those of objects inside it. */
        size_t lo = 0, hi = ix->n, close = open + obj.len;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ix->entries[mid].m.key < open)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t e = lo; e < ix->n && ix->entries[e].m.key < close && mo->n < MEMO_MEMBERS; e++) {
            const struct jsonscan_entry *en = &ix->entries[e];
            if (en->object != open)
                continue;
            memo_add(mo, (struct jv){s->text + en->m.key, en->m.key_end - en->m.key},
                     (struct jv){s->text + en->m.value, en->m.value_end - en->m.value}, en->word);
        }
        /* get() walks on from the last one for members past MEMO_MEMBERS. */
        if (mo->n == MEMO_MEMBERS) {
            const struct jv *last = &mo->m[mo->n - 1].val;
            mo->rest.pos = (size_t)(last->p + last->len - obj.p);
            mo->rest.started = true;
        }
        return mo;
    }
    while (mo->n < MEMO_MEMBERS && jsonscan_iter_next(&mo->rest, &m)) {
        struct jv key = {obj.p + m.key, m.key_end - m.key};
        memo_add(mo, key, (struct jv){obj.p + m.value, m.value_end - m.value}, word_of(key));
    }
    return mo;
}

/* The memo of object obj, made on first use. Lookups come in runs on
 * one object: the last one found is tried first. */
static struct memo *memo_of(struct step *s, struct jv obj)
{
    if (s->last && s->last->obj == obj.p)
        return s->last;
    unsigned used = s->memo_next < MEMO_OBJECTS ? s->memo_next : MEMO_OBJECTS;
    for (unsigned i = 0; i < used; i++)
        if (s->memo[i].obj == obj.p)
            return s->last = &s->memo[i];
    return s->last = memo_make(s, obj);
}

/* Member key of object obj (the first one, if the object repeats it);
 * key has no backslash and kw is its jsonscan_word(). Called through get(). */
static struct jv get_word(struct step *s, struct jv obj, const char *key, size_t klen, uint64_t kw)
{
    if (!is_obj(obj))
        return none;
    struct memo *mo = memo_of(s, obj);
    if (mo->n < MEMO_MEMBERS && !(mo->filter & key_bit(kw)))
        return none;
    for (unsigned i = 0; i < mo->n; i++)
        if (memo_key_is(mo, i, key, klen, kw))
            return mo->m[i].val;
    struct jsonscan_iter it = mo->rest;
    struct jsonscan_member m;
    while (mo->n == MEMO_MEMBERS && jsonscan_iter_next(&it, &m)) {
        struct jv k = {obj.p + m.key, m.key_end - m.key};
        if (key_is(k, key, klen))
            return (struct jv){obj.p + m.value, m.value_end - m.value};
    }
    return none;
}

/* The keys are mostly literals: strlen and jsonscan_word fold at compile time. */
#define get(s, obj, key) get_word((s), (obj), (key), strlen(key), jsonscan_word((key), strlen(key)))

/* Walks the elements of array arr; nothing when arr is not an array. */
static void elems_init(struct jsonscan_iter *it, struct jv arr)
{
    if (is_arr(arr))
        jsonscan_iter_init(it, arr.p, arr.len, 0);
    else
        *it = (struct jsonscan_iter){0};
}

static bool elems_next(struct jsonscan_iter *it, struct jv *ret)
{
    struct jsonscan_member m;
    if (!jsonscan_iter_next(it, &m))
        return false;
    *ret = (struct jv){it->d + m.value, m.value_end - m.value};
    return true;
}

static bool str_eq(struct jv v, const char *lit)
{
    if (!is_str(v))
        return false;
    size_t n = strlen(lit);
    if (!has_escape(v))
        return v.len - 2 == n && memcmp(v.p + 1, lit, n) == 0;
    return jsonscan_key_eq(str_bytes(v), lit_bytes(lit, n));
}

/* Decodes string v into dst[cap] (cap >= 1, NUL-terminated). When it does
 * not fit it is cut, back to a UTF-8 character boundary if whole_chars. */
static void str_copy(char *dst, size_t cap, struct jv v, bool whole_chars)
{
    if (v.len - 2 < cap && !has_escape(v)) {
        memcpy(dst, v.p + 1, v.len - 2);
        dst[v.len - 2] = 0;
        return;
    }
    struct jsonscan_key k = str_bytes(v);
    size_t n = 0;
    int c;
    while ((c = jsonscan_key_next(&k)) >= 0) {
        if (n + 1 == cap) {
            /* c is the first byte left out: if it continues a
             * character, leave out that character's first bytes too. */
            while (whole_chars && n > 0 && (c & 0xc0) == 0x80)
                c = (unsigned char)dst[--n];
            break;
        }
        dst[n++] = (char)c;
    }
    dst[n] = 0;
}

/* A JSON number as a double. strtod reads it in place: validated text
 * ends every number inside an object with a byte no number has. */
static bool num(struct jv v, double *ret)
{
    if (!is_num(v))
        return false;
    *ret = strtod(v.p, NULL);
    return isfinite(*ret);
}

/* --- small helpers --- */

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static bool mem_is(const char *s, size_t len, const char *lit)
{
    return s && len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Counts are exact in a double only up to 2^53: refuse larger ones rather
 * than store a wrong count. */
static void read_i64(struct step *s, struct jv obj, const char *key, int64_t *field)
{
    double v;
    if (num(get(s, obj, key), &v) && fabs(v) <= 9007199254740992.0)
        *field = (int64_t)v;
}

static void read_ms(struct step *s, struct jv obj, const char *key, double *field)
{
    double v;
    if (num(get(s, obj, key), &v) && v >= 0)
        *field = v;
}

static void set_finish(struct dialect *d, struct jv v)
{
    if (nonempty(v))
        str_copy(d->facts.finish_reason, sizeof(d->facts.finish_reason), v, true);
}

/* Marks the response failed; the first message is kept, it names the cause. */
static void set_error(struct dialect *d, const char *msg, size_t len)
{
    d->facts.error = true;
    if (d->facts.error_message[0])
        return;
    if (len >= sizeof(d->facts.error_message)) {
        len = sizeof(d->facts.error_message) - 1;
        while (len > 0 && ((unsigned char)msg[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(d->facts.error_message, msg, len);
    d->facts.error_message[len] = 0;
}

/* An error object's message: {"error": {"message": ..}}, {"error": ".."},
 * or a bare {"message": ..} (Responses `error` events, llama-server's
 * Anthropic `event: error`). */
static void set_error_json(struct step *s, struct jv root)
{
    struct jv e = get(s, root, "error");
    struct jv msg = is_str(e) ? e : get(s, e, "message");
    if (!is_str(msg))
        msg = get(s, root, "message");
    if (!is_str(msg))
        msg = get(s, e, "type");
    if (!is_str(msg))
        set_error(s->d, "error", 5);
    else if (!s->d->facts.error_message[0])
        str_copy(s->d->facts.error_message, sizeof(s->d->facts.error_message), msg, true);
    s->d->facts.error = true;
}

static void count_text(struct step *s, enum dialect_token_kind kind, size_t len)
{
    struct dialect_facts *f = &s->d->facts;
    f->bytes[kind] += len;
    if (s->stream) {
        f->token_events[kind]++;
        s->d->last_kinds |= 1u << kind;
        s->n++;
    }
}

/* Passes decoded text to the callback through a small buffer: pieces of
 * one token may arrive in several calls. */
struct out {
    struct step *s;
    enum dialect_token_kind kind;
    size_t n, total;
    char buf[256];
};

static void out_flush(struct out *o)
{
    if (o->n && o->s->cb)
        o->s->cb(o->s->ctx, o->kind, o->buf, o->n);
    o->total += o->n;
    o->n = 0;
}

static void out_byte(struct out *o, int c)
{
    if (o->n == sizeof(o->buf))
        out_flush(o);
    o->buf[o->n++] = (char)c;
}

/* Emits v if it is a non-empty string: empty and null deltas are not
 * tokens. */
static void emit(struct step *s, enum dialect_token_kind kind, struct jv v)
{
    if (!nonempty(v))
        return;
    s->emitted = v;
    s->emitted_kind = kind;
    if (!has_escape(v)) {
        count_text(s, kind, v.len - 2);
        if (s->cb)
            s->cb(s->ctx, kind, v.p + 1, v.len - 2);
        return;
    }
    struct out o = {.s = s, .kind = kind};
    struct jsonscan_key k = str_bytes(v);
    int c;
    while ((c = jsonscan_key_next(&k)) >= 0)
        out_byte(&o, c);
    out_flush(&o);
    count_text(s, kind, o.total);
}

/* Emits the JSON text of v without the whitespace between tokens, as a
 * stream would have sent it. */
static void emit_json(struct step *s, enum dialect_token_kind kind, struct jv v)
{
    struct out o = {.s = s, .kind = kind};
    s->emitted = none;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.p[i];
        if (in_str) {
            in_str = esc || c != '"';
            esc = !esc && c == '\\';
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        } else {
            in_str = c == '"';
        }
        out_byte(&o, c);
    }
    out_flush(&o);
    count_text(s, kind, o.total);
}

/* OpenAI and Responses usage: either naming scheme. */
static void read_usage(struct step *s, struct jv u)
{
    struct dialect_facts *f = &s->d->facts;
    if (!is_obj(u))
        return;
    read_i64(s, u, "prompt_tokens", &f->prompt_tokens);
    read_i64(s, u, "input_tokens", &f->prompt_tokens);
    read_i64(s, u, "completion_tokens", &f->completion_tokens);
    read_i64(s, u, "output_tokens", &f->completion_tokens);
    read_i64(s, get(s, u, "prompt_tokens_details"), "cached_tokens", &f->cached_tokens);
    read_i64(s, get(s, u, "input_tokens_details"), "cached_tokens", &f->cached_tokens);
    read_i64(s, get(s, u, "completion_tokens_details"), "reasoning_tokens", &f->reasoning_tokens);
    read_i64(s, get(s, u, "output_tokens_details"), "reasoning_tokens", &f->reasoning_tokens);
}

/* Anthropic counts the prompt in three parts; the sum is what OpenAI calls
 * prompt_tokens. message_start's output_tokens is a placeholder, so output
 * is read only where it is final (with_output). */
static void read_usage_anthropic(struct step *s, struct jv u, bool with_output)
{
    struct dialect_facts *f = &s->d->facts;
    if (!is_obj(u))
        return;
    read_i64(s, u, "input_tokens", &s->d->anth_input);
    read_i64(s, u, "cache_read_input_tokens", &s->d->anth_cache_read);
    read_i64(s, u, "cache_creation_input_tokens", &s->d->anth_cache_create);
    if (s->d->anth_input >= 0 || s->d->anth_cache_read >= 0 || s->d->anth_cache_create >= 0) {
        f->prompt_tokens = (s->d->anth_input > 0 ? s->d->anth_input : 0) +
                           (s->d->anth_cache_read > 0 ? s->d->anth_cache_read : 0) +
                           (s->d->anth_cache_create > 0 ? s->d->anth_cache_create : 0);
        f->cached_tokens = s->d->anth_cache_read >= 0 ? s->d->anth_cache_read : f->cached_tokens;
    }
    if (with_output)
        read_i64(s, u, "output_tokens", &f->completion_tokens);
}

static void read_timings(struct step *s, struct jv t)
{
    struct dialect_facts *f = &s->d->facts;
    if (!is_obj(t))
        return;
    read_i64(s, t, "prompt_n", &f->prompt_n);
    read_i64(s, t, "predicted_n", &f->predicted_n);
    read_i64(s, t, "cache_n", &f->cache_n);
    read_i64(s, t, "draft_n", &f->draft_n);
    read_i64(s, t, "draft_n_accepted", &f->draft_n_accepted);
    read_ms(s, t, "prompt_ms", &f->prompt_ms);
    read_ms(s, t, "predicted_ms", &f->predicted_ms);
}

/* --- per API --- */

/* OpenAI chat chunks (choices[].delta) and completions chunks
 * (choices[].text); non-streamed bodies carry choices[].message. */
static void openai(struct step *s, struct jv root)
{
    struct jsonscan_iter choices, calls;
    struct jv choice, call;
    elems_init(&choices, get(s, root, "choices"));
    while (elems_next(&choices, &choice)) {
        struct jv delta = get(s, choice, s->stream ? "delta" : "message");
        emit(s, DIALECT_TOKEN_CONTENT, get(s, delta, "content"));
        /* Some servers name it `reasoning`; a few send both, once. */
        struct jv r = get(s, delta, "reasoning_content");
        emit(s, DIALECT_TOKEN_REASONING, nonempty(r) ? r : get(s, delta, "reasoning"));
        elems_init(&calls, get(s, delta, "tool_calls"));
        while (elems_next(&calls, &call))
            emit(s, DIALECT_TOKEN_TOOL, get(s, get(s, call, "function"), "arguments"));
        emit(s, DIALECT_TOKEN_CONTENT, get(s, choice, "text"));
        set_finish(s->d, get(s, choice, "finish_reason"));
    }
    read_usage(s, get(s, root, "usage"));
    read_timings(s, get(s, root, "timings"));
}

/* llama-server /completion: one object per token, stop:true on the last,
 * which carries the counters and an empty content. */
static void native(struct step *s, struct jv root)
{
    struct dialect_facts *f = &s->d->facts;
    bool stop = is_true(get(s, root, "stop"));
    if (!s->stream || !stop)
        emit(s, DIALECT_TOKEN_CONTENT, get(s, root, "content"));
    read_i64(s, root, "tokens_predicted", &f->tokens_predicted);
    read_i64(s, root, "tokens_evaluated", &f->tokens_evaluated);
    read_timings(s, get(s, root, "timings"));
    if (stop) {
        f->ended = true;
        set_finish(s->d, get(s, root, "stop_type"));
    }
}

static void anthropic_event(struct step *s, const char *type, struct jv root)
{
    if (streq(type, "content_block_delta")) {
        struct jv delta = get(s, root, "delta");
        struct jv dt = get(s, delta, "type");
        if (str_eq(dt, "text_delta"))
            emit(s, DIALECT_TOKEN_CONTENT, get(s, delta, "text"));
        else if (str_eq(dt, "thinking_delta"))
            emit(s, DIALECT_TOKEN_REASONING, get(s, delta, "thinking"));
        else if (str_eq(dt, "input_json_delta"))
            emit(s, DIALECT_TOKEN_TOOL, get(s, delta, "partial_json"));
        /* signature_delta and unknown deltas carry no output. */
    } else if (streq(type, "message_start")) {
        read_usage_anthropic(s, get(s, get(s, root, "message"), "usage"), false);
    } else if (streq(type, "message_delta")) {
        set_finish(s->d, get(s, get(s, root, "delta"), "stop_reason"));
        read_usage_anthropic(s, get(s, root, "usage"), true);
    } else if (streq(type, "message_stop")) {
        s->d->facts.ended = true;
    }
}

static void anthropic_body(struct step *s, struct jv root)
{
    struct jsonscan_iter blocks;
    struct jv b;
    elems_init(&blocks, get(s, root, "content"));
    while (elems_next(&blocks, &b)) {
        struct jv type = get(s, b, "type"), input;
        if (str_eq(type, "text")) {
            emit(s, DIALECT_TOKEN_CONTENT, get(s, b, "text"));
        } else if (str_eq(type, "thinking")) {
            emit(s, DIALECT_TOKEN_REASONING, get(s, b, "thinking"));
        } else if (str_eq(type, "tool_use") && (input = get(s, b, "input")).p) {
            /* The arguments arrive as an object here, as JSON text in a
             * stream: count the text. */
            emit_json(s, DIALECT_TOKEN_TOOL, input);
        }
    }
    set_finish(s->d, get(s, root, "stop_reason"));
    read_usage_anthropic(s, get(s, root, "usage"), true);
}

/* The end of a Responses stream, or a whole non-streamed response. */
static void responses_final(struct step *s, struct jv resp)
{
    struct jv status = get(s, resp, "status");
    set_finish(s->d, status);
    read_usage(s, get(s, resp, "usage"));
    read_timings(s, get(s, resp, "timings"));
    if (str_eq(status, "failed") || is_obj(get(s, resp, "error")))
        set_error_json(s, resp);
}

static void responses_event(struct step *s, const char *type, struct jv root)
{
    if (streq(type, "response.output_text.delta")) {
        emit(s, DIALECT_TOKEN_CONTENT, get(s, root, "delta"));
    } else if (streq(type, "response.reasoning_text.delta") ||
               streq(type, "response.reasoning_summary_text.delta")) {
        emit(s, DIALECT_TOKEN_REASONING, get(s, root, "delta"));
    } else if (streq(type, "response.function_call_arguments.delta")) {
        emit(s, DIALECT_TOKEN_TOOL, get(s, root, "delta"));
    } else if (streq(type, "response.completed") || streq(type, "response.incomplete") ||
               streq(type, "response.failed")) {
        responses_final(s, get(s, root, "response"));
        /* llama-server puts timings beside `response`, not in it. */
        read_timings(s, get(s, root, "timings"));
        s->d->facts.ended = true;
    }
}

static void emit_parts(struct step *s, enum dialect_token_kind kind, struct jv parts,
                       const char *want_type)
{
    struct jsonscan_iter it;
    struct jv p;
    elems_init(&it, parts);
    while (elems_next(&it, &p))
        if (!want_type || str_eq(get(s, p, "type"), want_type))
            emit(s, kind, get(s, p, "text"));
}

static void responses_body(struct step *s, struct jv root)
{
    struct jsonscan_iter items;
    struct jv it;
    elems_init(&items, get(s, root, "output"));
    while (elems_next(&items, &it)) {
        struct jv type = get(s, it, "type");
        if (str_eq(type, "message")) {
            emit_parts(s, DIALECT_TOKEN_CONTENT, get(s, it, "content"), "output_text");
        } else if (str_eq(type, "reasoning")) {
            emit_parts(s, DIALECT_TOKEN_REASONING, get(s, it, "content"), NULL);
            emit_parts(s, DIALECT_TOKEN_REASONING, get(s, it, "summary"), NULL);
        } else if (str_eq(type, "function_call")) {
            emit(s, DIALECT_TOKEN_TOOL, get(s, it, "arguments"));
        }
    }
    responses_final(s, root);
}

/* For DIALECT_UNKNOWN: which API this JSON looks like. */
static enum dialect_kind sniff(struct step *s, struct jv root, const char *type)
{
    if (get(s, root, "choices").p)
        return DIALECT_OPENAI_CHAT; /* handles completions' text too */
    if (is_arr(get(s, root, "output")) || str_eq(get(s, root, "object"), "response"))
        return DIALECT_RESPONSES;
    if (type && strncmp(type, "response.", 9) == 0)
        return DIALECT_RESPONSES;
    if (type)
        return DIALECT_ANTHROPIC;
    if (get(s, root, "stop").p || is_str(get(s, root, "content")))
        return DIALECT_LLAMA_COMPLETION;
    return DIALECT_UNKNOWN;
}

/* Named events that carry nothing we read. Skipping them before parsing
 * matters for Responses: its *.done events repeat the whole output. */
#define NAME(lit) {lit, sizeof(lit) - 1}
static const struct {
    const char *name;
    size_t len;
} skip_names[] = {
    NAME("ping"),
    NAME("content_block_start"),
    NAME("content_block_stop"),
    NAME("response.created"),
    NAME("response.in_progress"),
    NAME("response.queued"),
    NAME("response.output_item.added"),
    NAME("response.output_item.done"),
    NAME("response.content_part.added"),
    NAME("response.content_part.done"),
    NAME("response.output_text.done"),
    NAME("response.output_text.annotation.added"),
    NAME("response.reasoning_text.done"),
    NAME("response.reasoning_summary_part.added"),
    NAME("response.reasoning_summary_part.done"),
    NAME("response.reasoning_summary_text.done"),
    NAME("response.function_call_arguments.done"),
};

static bool skip_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(skip_names) / sizeof(skip_names[0]); i++)
        if (len == skip_names[i].len && memcmp(name, skip_names[i].name, len) == 0)
            return true;
    return false;
}
#undef NAME

/* Reads one parsed event or body; type is its "type" (or event name).
 * Returns true if it was an error report. */
static bool read_object(struct step *s, struct jv root, const char *type, bool error_event)
{
    struct jv err = get(s, root, "error");
    if (error_event || streq(type, "error") || is_obj(err) || is_str(err)) {
        set_error_json(s, root);
        return true;
    }
    if (!s->d->facts.model[0]) {
        /* OpenAI and native: top level; Anthropic: message_start's message;
         * Responses: the response object. */
        struct jv model = get(s, root, "model");
        if (!is_str(model))
            model = get(s, get(s, root, "message"), "model");
        if (!is_str(model))
            model = get(s, get(s, root, "response"), "model");
        if (is_str(model))
            str_copy(s->d->facts.model, sizeof(s->d->facts.model), model, true);
    }
    enum dialect_kind kind = s->d->kind != DIALECT_UNKNOWN ? s->d->kind : sniff(s, root, type);
    switch (kind) {
    case DIALECT_OPENAI_CHAT:
    case DIALECT_OPENAI_COMPLETIONS:
        openai(s, root);
        break;
    case DIALECT_LLAMA_COMPLETION:
        native(s, root);
        break;
    case DIALECT_ANTHROPIC:
        if (s->stream)
            anthropic_event(s, type, root);
        else
            anthropic_body(s, root);
        break;
    case DIALECT_RESPONSES:
        if (s->stream)
            responses_event(s, type, root);
        else
            responses_body(s, root);
        break;
    case DIALECT_UNKNOWN:
        read_usage(s, get(s, root, "usage"));
        read_timings(s, get(s, root, "timings"));
        break;
    }
    return false;
}

/* --- exported --- */

static const struct {
    const char *path;
    enum dialect_kind kind;
} routes[] = {
    {"/v1/chat/completions", DIALECT_OPENAI_CHAT},
    {"/chat/completions", DIALECT_OPENAI_CHAT},
    {"/v1/completions", DIALECT_OPENAI_COMPLETIONS},
    {"/completion", DIALECT_LLAMA_COMPLETION},
    {"/completions", DIALECT_LLAMA_COMPLETION},
    {"/infill", DIALECT_LLAMA_COMPLETION},
    {"/v1/messages", DIALECT_ANTHROPIC},
    {"/v1/responses", DIALECT_RESPONSES},
    {"/responses", DIALECT_RESPONSES},
};

/* llama-server's other routes (tools/server/server.cpp), for labels. */
static const char *const other_routes[] = {
    "/",           "/health",       "/v1/health",     "/metrics",       "/props",
    "/models",     "/v1/models",    "/api/tags",      "/slots",         "/tokenize",
    "/detokenize", "/apply-template", "/embedding",   "/embeddings",    "/v1/embeddings",
    "/rerank",     "/reranking",    "/v1/rerank",     "/v1/reranking",  "/lora-adapters",
    "/v1/messages/count_tokens",
};

static size_t path_len(const char *path, size_t len)
{
    size_t n = 0;
    while (n < len && path[n] != '?' && path[n] != '#')
        n++;
    return n;
}

enum dialect_kind dialect_from_path(const char *path, size_t len)
{
    size_t n = path_len(path, len);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (mem_is(path, n, routes[i].path))
            return routes[i].kind;
    return DIALECT_UNKNOWN;
}

const char *dialect_route_label(const char *path, size_t len)
{
    size_t n = path_len(path, len);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (mem_is(path, n, routes[i].path))
            return routes[i].path;
    for (size_t i = 0; i < sizeof(other_routes) / sizeof(other_routes[0]); i++)
        if (mem_is(path, n, other_routes[i]))
            return other_routes[i];
    return "other";
}

const char *dialect_name(enum dialect_kind k)
{
    switch (k) {
    case DIALECT_OPENAI_CHAT:
        return "openai-chat";
    case DIALECT_OPENAI_COMPLETIONS:
        return "openai-completions";
    case DIALECT_LLAMA_COMPLETION:
        return "llama-completion";
    case DIALECT_ANTHROPIC:
        return "anthropic";
    case DIALECT_RESPONSES:
        return "responses";
    case DIALECT_UNKNOWN:
        break;
    }
    return "unknown";
}

const char *dialect_token_kind_name(enum dialect_token_kind k)
{
    switch (k) {
    case DIALECT_TOKEN_CONTENT:
        return "content";
    case DIALECT_TOKEN_REASONING:
        return "reasoning";
    case DIALECT_TOKEN_TOOL:
        return "tool";
    }
    return "unknown";
}

void dialect_init(struct dialect *d, enum dialect_kind kind)
{
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    struct dialect_facts *f = &d->facts;
    f->prompt_tokens = f->completion_tokens = f->cached_tokens = f->reasoning_tokens = -1;
    f->prompt_n = f->predicted_n = f->cache_n = f->draft_n = f->draft_n_accepted = -1;
    f->prompt_ms = f->predicted_ms = -1.0;
    f->tokens_predicted = f->tokens_evaluated = -1;
    d->anth_input = d->anth_cache_read = d->anth_cache_create = -1;
}

void dialect_finish(struct dialect *d)
{
    d->last_kinds = 0;
}

/* Validates an event's or a body's text; every one we read is an object.
 * The members of its objects are noted on the way, for memo_of(). */
static bool parse_object(struct step *s, const char *text, size_t len, struct jv *ret)
{
    struct jsonscan_info info;
    s->text = text;
    jsonscan_index_init(&s->index, s->entries, INDEX_ENTRIES);
    if (jsonscan_validate_index(text, len, JSONSCAN_MAX_DEPTH, &info, &s->index) < 0 ||
        text[info.start] != '{')
        return false;
    *ret = (struct jv){text + info.start, info.end - info.start};
    return true;
}

/* The object's "type", decoded into buf, or NULL. A long type is cut
 * byte-exact, so it still starts as it did and is longer than any name
 * we compare it with. */
#define TYPE_MAX 64
static const char *type_of(struct step *s, struct jv root, char buf[TYPE_MAX])
{
    struct jv t = get(s, root, "type");
    if (!is_str(t))
        return NULL;
    str_copy(buf, TYPE_MAX, t, false);
    return buf;
}

/* --- repeats ---
 *
 * A stream's token events mostly differ from the one before only in their
 * token's text: llama-server's chunks repeat their id, model and the rest
 * byte for byte. When an event read in full counted exactly one piece of
 * text, a string read in place, its bytes before and after that string
 * are kept. An event that has the same name and the same bytes around a
 * valid JSON string is then the same JSON with another string in that
 * place: validating and reading it in full would find the same members
 * with the same values and take the same branches, and count that string
 * instead. Everything else reading an event does to the facts is
 * idempotent (values are set, not added), so doing it again after the
 * kept event changes nothing: a repeat only counts its string. The string
 * must not be empty: an empty "reasoning_content" makes the reader look at
 * "reasoning" instead. Any event read in full replaces or drops what is
 * kept, so what is kept is always the last event read in full. */

static bool repeat_name_is(const struct dialect *d, const struct sse_event *ev)
{
    if (!ev->event)
        return !d->repeat.named;
    return d->repeat.named && ev->event_len == d->repeat.name_len &&
           memcmp(ev->event, d->repeat.name, ev->event_len) == 0;
}

/* The string in data[0, len) where the kept event had its token, or none;
 * never an empty one. */
static struct jv repeat_string(const struct dialect *d, const struct sse_event *ev, const char *data,
                               size_t len)
{
    size_t head = d->repeat.head, tail = d->repeat.tail;
    if (!d->repeat.valid || len < head + tail + 3 || !repeat_name_is(d, ev) ||
        memcmp(data, d->repeat.text, head) != 0 ||
        memcmp(data + len - tail, d->repeat.text + head, tail) != 0)
        return none;
    struct jv str = {data + head, len - head - tail};
    return jsonscan_is_string(str.p, str.len) ? str : none;
}

/* Keeps event data[0, len) after reading it in full as s, when it did
 * nothing but count one string read in place; else drops what was kept. */
static void repeat_keep(struct dialect *d, const struct sse_event *ev, const char *data, size_t len,
                        const struct step *s)
{
    d->repeat.valid = false;
    if (s->n != 1 || !s->emitted.p)
        return;
    size_t head = (size_t)(s->emitted.p - data);
    size_t tail = len - head - s->emitted.len;
    if (head + tail > DIALECT_REPEAT_MAX || (ev->event && ev->event_len > DIALECT_REPEAT_NAME))
        return;
    memcpy(d->repeat.text, data, head);
    memcpy(d->repeat.text + head, data + len - tail, tail);
    d->repeat.head = (uint16_t)head;
    d->repeat.tail = (uint16_t)tail;
    d->repeat.kind = (unsigned char)s->emitted_kind;
    d->repeat.named = ev->event != NULL;
    d->repeat.name_len = (unsigned char)(ev->event ? ev->event_len : 0);
    if (ev->event)
        memcpy(d->repeat.name, ev->event, ev->event_len);
    d->repeat.valid = true;
}

int dialect_event(struct dialect *d, const struct sse_event *ev, dialect_token_cb cb, void *ctx)
{
    struct step s;
    step_init(&s, d, cb, ctx, true);
    const char *data = ev->data;
    size_t len = ev->data_len;
    bool error_event = mem_is(ev->event, ev->event_len, "error");

    d->last_kinds = 0;
    d->facts.events++;
    while (len && (*data == ' ' || *data == '\t' || *data == '\n' || *data == '\r')) {
        data++;
        len--;
    }
    while (len && (data[len - 1] == ' ' || data[len - 1] == '\t' || data[len - 1] == '\n' ||
                   data[len - 1] == '\r'))
        len--;

    struct jv str = repeat_string(d, ev, data, len);
    if (str.p) {
        d->repeat.hits++;
        emit(&s, (enum dialect_token_kind)d->repeat.kind, str);
        return s.n;
    }
    d->repeat.valid = false;

    if (mem_is(data, len, "[DONE]")) {
        d->facts.ended = true;
        return 0;
    }
    if (!error_event && ev->event && skip_by_name(ev->event, ev->event_len))
        return 0;

    struct jv root;
    if (!len || *data != '{' || !parse_object(&s, data, len, &root)) {
        if (error_event) {
            set_error(d, len ? data : "error", len ? len : 5);
            return 0;
        }
        d->facts.bad_events++;
        return -EINVAL;
    }

    /* The JSON names its own type in both APIs that name events; the event
     * name stands in only when it does not. */
    char name_buf[TYPE_MAX];
    const char *type = type_of(&s, root, name_buf);
    if (!type && ev->event && ev->event_len < sizeof(name_buf)) {
        memcpy(name_buf, ev->event, ev->event_len);
        name_buf[ev->event_len] = 0;
        type = name_buf;
    }

    if (!read_object(&s, root, type, error_event))
        repeat_keep(d, ev, data, len, &s);
    return s.n;
}

int dialect_body(struct dialect *d, const char *json, size_t len, dialect_token_cb cb, void *ctx)
{
    struct step s;
    step_init(&s, d, cb, ctx, false);
    struct jv root;
    if (!json || !parse_object(&s, json, len, &root))
        return -EINVAL;

    char name_buf[TYPE_MAX];
    const char *type = type_of(&s, root, name_buf);
    /* A complete body is a complete response, unless it is an error. */
    if (!read_object(&s, root, type, false))
        d->facts.ended = true;
    return 0;
}

int64_t dialect_output_tokens(const struct dialect_facts *f)
{
    if (f->completion_tokens >= 0)
        return f->completion_tokens;
    if (f->predicted_n >= 0)
        return f->predicted_n;
    return f->tokens_predicted;
}
