#include "tap/dialect.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tap/sse.h"

/* One dialect_event() or dialect_body() call. */
struct step {
    struct dialect *d; /* borrowed */
    dialect_token_cb cb;
    void *ctx;         /* borrowed */
    bool stream;       /* token events are counted only in streams */
    int n;             /* token events so far */
};

/* --- small helpers --- */

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static const char *get_str(const cJSON *obj, const char *key)
{
    const cJSON *v = get(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static bool mem_is(const char *s, size_t len, const char *lit)
{
    return s && len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Integers arrive as JSON numbers (doubles); beyond 2^53 they are not
 * exact any more, so refuse them rather than store a wrong count. */
static void read_i64(const cJSON *obj, const char *key, int64_t *field)
{
    const cJSON *v = get(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 9007199254740992.0)
        return;
    *field = (int64_t)v->valuedouble;
}

static void read_ms(const cJSON *obj, const char *key, double *field)
{
    const cJSON *v = get(obj, key);
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0)
        *field = v->valuedouble;
}

/* Copies len bytes of src into dst[cap], cut back to a UTF-8 character
 * boundary when it does not fit. */
static void copy_text(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap) {
        len = cap - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = 0;
}

static void set_finish(struct dialect *d, const cJSON *v)
{
    if (cJSON_IsString(v) && v->valuestring[0])
        copy_text(d->facts.finish_reason, sizeof(d->facts.finish_reason), v->valuestring,
                  strlen(v->valuestring));
}

/* Marks the response failed; the first message is kept, it names the cause. */
static void set_error(struct dialect *d, const char *msg, size_t len)
{
    d->facts.error = true;
    if (!d->facts.error_message[0])
        copy_text(d->facts.error_message, sizeof(d->facts.error_message), msg, len);
}

/* An error object's message: {"error": {"message": ..}}, {"error": ".."},
 * or a bare {"message": ..} (Responses `error` events, llama-server's
 * Anthropic `event: error`). */
static void set_error_json(struct dialect *d, const cJSON *root)
{
    const cJSON *e = get(root, "error");
    const char *msg = cJSON_IsString(e) ? e->valuestring : get_str(e, "message");
    if (!msg)
        msg = get_str(root, "message");
    if (!msg)
        msg = get_str(e, "type");
    if (!msg)
        msg = "error";
    set_error(d, msg, strlen(msg));
}

static void emit_text(struct step *s, enum dialect_token_kind kind, const char *text, size_t len)
{
    struct dialect_facts *f = &s->d->facts;
    f->bytes[kind] += len;
    if (s->stream) {
        f->token_events[kind]++;
        s->d->last_kinds |= 1u << kind;
        s->n++;
    }
    if (s->cb)
        s->cb(s->ctx, kind, text, len);
}

/* Emits v if it is a non-empty string: empty and null deltas are not
 * tokens. */
static void emit(struct step *s, enum dialect_token_kind kind, const cJSON *v)
{
    if (cJSON_IsString(v) && v->valuestring[0])
        emit_text(s, kind, v->valuestring, strlen(v->valuestring));
}

static bool nonempty(const cJSON *v)
{
    return cJSON_IsString(v) && v->valuestring[0];
}

/* OpenAI and Responses usage: either naming scheme. */
static void read_usage(struct dialect *d, const cJSON *u)
{
    struct dialect_facts *f = &d->facts;
    if (!cJSON_IsObject(u))
        return;
    read_i64(u, "prompt_tokens", &f->prompt_tokens);
    read_i64(u, "input_tokens", &f->prompt_tokens);
    read_i64(u, "completion_tokens", &f->completion_tokens);
    read_i64(u, "output_tokens", &f->completion_tokens);
    read_i64(get(u, "prompt_tokens_details"), "cached_tokens", &f->cached_tokens);
    read_i64(get(u, "input_tokens_details"), "cached_tokens", &f->cached_tokens);
    read_i64(get(u, "completion_tokens_details"), "reasoning_tokens", &f->reasoning_tokens);
    read_i64(get(u, "output_tokens_details"), "reasoning_tokens", &f->reasoning_tokens);
}

/* Anthropic counts the prompt in three parts; the sum is what OpenAI calls
 * prompt_tokens. message_start's output_tokens is a placeholder, so output
 * is read only where it is final (with_output). */
static void read_usage_anthropic(struct dialect *d, const cJSON *u, bool with_output)
{
    struct dialect_facts *f = &d->facts;
    if (!cJSON_IsObject(u))
        return;
    read_i64(u, "input_tokens", &d->anth_input);
    read_i64(u, "cache_read_input_tokens", &d->anth_cache_read);
    read_i64(u, "cache_creation_input_tokens", &d->anth_cache_create);
    if (d->anth_input >= 0 || d->anth_cache_read >= 0 || d->anth_cache_create >= 0) {
        f->prompt_tokens = (d->anth_input > 0 ? d->anth_input : 0) +
                           (d->anth_cache_read > 0 ? d->anth_cache_read : 0) +
                           (d->anth_cache_create > 0 ? d->anth_cache_create : 0);
        f->cached_tokens = d->anth_cache_read >= 0 ? d->anth_cache_read : f->cached_tokens;
    }
    if (with_output)
        read_i64(u, "output_tokens", &f->completion_tokens);
}

static void read_timings(struct dialect *d, const cJSON *t)
{
    struct dialect_facts *f = &d->facts;
    if (!cJSON_IsObject(t))
        return;
    read_i64(t, "prompt_n", &f->prompt_n);
    read_i64(t, "predicted_n", &f->predicted_n);
    read_i64(t, "cache_n", &f->cache_n);
    read_i64(t, "draft_n", &f->draft_n);
    read_i64(t, "draft_n_accepted", &f->draft_n_accepted);
    read_ms(t, "prompt_ms", &f->prompt_ms);
    read_ms(t, "predicted_ms", &f->predicted_ms);
}

/* --- per API --- */

/* OpenAI chat chunks (choices[].delta) and completions chunks
 * (choices[].text); non-streamed bodies carry choices[].message. */
static void openai(struct step *s, const cJSON *root)
{
    const cJSON *choices = get(root, "choices"), *choice;
    if (cJSON_IsArray(choices)) {
        cJSON_ArrayForEach(choice, choices)
        {
            const cJSON *delta = get(choice, s->stream ? "delta" : "message");
            emit(s, DIALECT_TOKEN_CONTENT, get(delta, "content"));
            /* Some servers name it `reasoning`; a few send both, once. */
            const cJSON *r = get(delta, "reasoning_content");
            emit(s, DIALECT_TOKEN_REASONING, nonempty(r) ? r : get(delta, "reasoning"));
            const cJSON *calls = get(delta, "tool_calls"), *call;
            if (cJSON_IsArray(calls)) {
                cJSON_ArrayForEach(call, calls)
                {
                    emit(s, DIALECT_TOKEN_TOOL, get(get(call, "function"), "arguments"));
                }
            }
            emit(s, DIALECT_TOKEN_CONTENT, get(choice, "text"));
            set_finish(s->d, get(choice, "finish_reason"));
        }
    }
    read_usage(s->d, get(root, "usage"));
    read_timings(s->d, get(root, "timings"));
}

/* llama-server /completion: one object per token, stop:true on the last,
 * which carries the counters and an empty content. */
static void native(struct step *s, const cJSON *root)
{
    struct dialect_facts *f = &s->d->facts;
    bool stop = cJSON_IsTrue(get(root, "stop"));
    if (!s->stream || !stop)
        emit(s, DIALECT_TOKEN_CONTENT, get(root, "content"));
    read_i64(root, "tokens_predicted", &f->tokens_predicted);
    read_i64(root, "tokens_evaluated", &f->tokens_evaluated);
    read_timings(s->d, get(root, "timings"));
    if (stop) {
        f->ended = true;
        set_finish(s->d, get(root, "stop_type"));
    }
}

static void anthropic_event(struct step *s, const char *type, const cJSON *root)
{
    if (streq(type, "content_block_delta")) {
        const cJSON *delta = get(root, "delta");
        const char *dt = get_str(delta, "type");
        if (streq(dt, "text_delta"))
            emit(s, DIALECT_TOKEN_CONTENT, get(delta, "text"));
        else if (streq(dt, "thinking_delta"))
            emit(s, DIALECT_TOKEN_REASONING, get(delta, "thinking"));
        else if (streq(dt, "input_json_delta"))
            emit(s, DIALECT_TOKEN_TOOL, get(delta, "partial_json"));
        /* signature_delta and unknown deltas carry no output. */
    } else if (streq(type, "message_start")) {
        read_usage_anthropic(s->d, get(get(root, "message"), "usage"), false);
    } else if (streq(type, "message_delta")) {
        set_finish(s->d, get(get(root, "delta"), "stop_reason"));
        read_usage_anthropic(s->d, get(root, "usage"), true);
    } else if (streq(type, "message_stop")) {
        s->d->facts.ended = true;
    }
}

static void anthropic_body(struct step *s, const cJSON *root)
{
    const cJSON *blocks = get(root, "content"), *b;
    if (cJSON_IsArray(blocks)) {
        cJSON_ArrayForEach(b, blocks)
        {
            const char *type = get_str(b, "type");
            if (streq(type, "text")) {
                emit(s, DIALECT_TOKEN_CONTENT, get(b, "text"));
            } else if (streq(type, "thinking")) {
                emit(s, DIALECT_TOKEN_REASONING, get(b, "thinking"));
            } else if (streq(type, "tool_use") && get(b, "input")) {
                /* The arguments arrive as an object here, as JSON text in
                 * a stream: count the text. */
                char *text = cJSON_PrintUnformatted(get(b, "input"));
                if (text && text[0])
                    emit_text(s, DIALECT_TOKEN_TOOL, text, strlen(text));
                cJSON_free(text);
            }
        }
    }
    set_finish(s->d, get(root, "stop_reason"));
    read_usage_anthropic(s->d, get(root, "usage"), true);
}

/* The end of a Responses stream, or a whole non-streamed response. */
static void responses_final(struct step *s, const cJSON *resp)
{
    set_finish(s->d, get(resp, "status"));
    read_usage(s->d, get(resp, "usage"));
    read_timings(s->d, get(resp, "timings"));
    if (streq(get_str(resp, "status"), "failed") || cJSON_IsObject(get(resp, "error")))
        set_error_json(s->d, resp);
}

static void responses_event(struct step *s, const char *type, const cJSON *root)
{
    if (streq(type, "response.output_text.delta")) {
        emit(s, DIALECT_TOKEN_CONTENT, get(root, "delta"));
    } else if (streq(type, "response.reasoning_text.delta") ||
               streq(type, "response.reasoning_summary_text.delta")) {
        emit(s, DIALECT_TOKEN_REASONING, get(root, "delta"));
    } else if (streq(type, "response.function_call_arguments.delta")) {
        emit(s, DIALECT_TOKEN_TOOL, get(root, "delta"));
    } else if (streq(type, "response.completed") || streq(type, "response.incomplete") ||
               streq(type, "response.failed")) {
        responses_final(s, get(root, "response"));
        /* llama-server puts timings beside `response`, not in it. */
        read_timings(s->d, get(root, "timings"));
        s->d->facts.ended = true;
    }
}

static void emit_parts(struct step *s, enum dialect_token_kind kind, const cJSON *parts,
                       const char *want_type)
{
    const cJSON *p;
    if (!cJSON_IsArray(parts))
        return;
    cJSON_ArrayForEach(p, parts)
    {
        if (!want_type || streq(get_str(p, "type"), want_type))
            emit(s, kind, get(p, "text"));
    }
}

static void responses_body(struct step *s, const cJSON *root)
{
    const cJSON *items = get(root, "output"), *it;
    if (cJSON_IsArray(items)) {
        cJSON_ArrayForEach(it, items)
        {
            const char *type = get_str(it, "type");
            if (streq(type, "message")) {
                emit_parts(s, DIALECT_TOKEN_CONTENT, get(it, "content"), "output_text");
            } else if (streq(type, "reasoning")) {
                emit_parts(s, DIALECT_TOKEN_REASONING, get(it, "content"), NULL);
                emit_parts(s, DIALECT_TOKEN_REASONING, get(it, "summary"), NULL);
            } else if (streq(type, "function_call")) {
                emit(s, DIALECT_TOKEN_TOOL, get(it, "arguments"));
            }
        }
    }
    responses_final(s, root);
}

/* For DIALECT_UNKNOWN: which API this JSON looks like. */
static enum dialect_kind sniff(const cJSON *root, const char *type)
{
    if (get(root, "choices"))
        return DIALECT_OPENAI_CHAT; /* handles completions' text too */
    if (cJSON_IsArray(get(root, "output")) || streq(get_str(root, "object"), "response"))
        return DIALECT_RESPONSES;
    if (type && strncmp(type, "response.", 9) == 0)
        return DIALECT_RESPONSES;
    if (type)
        return DIALECT_ANTHROPIC;
    if (get(root, "stop") || cJSON_IsString(get(root, "content")))
        return DIALECT_LLAMA_COMPLETION;
    return DIALECT_UNKNOWN;
}

/* Named events that carry nothing we read. Skipping them before parsing
 * matters for Responses: its *.done events repeat the whole output. */
static const char *const skip_names[] = {
    "ping",
    "content_block_start",
    "content_block_stop",
    "response.created",
    "response.in_progress",
    "response.queued",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.done",
    "response.output_text.annotation.added",
    "response.reasoning_text.done",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.done",
    "response.function_call_arguments.done",
};

static bool skip_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(skip_names) / sizeof(skip_names[0]); i++)
        if (mem_is(name, len, skip_names[i]))
            return true;
    return false;
}

/* Reads one parsed event or body; type is its "type" (or event name).
 * Returns true if it was an error report. */
static bool read_object(struct step *s, const cJSON *root, const char *type, bool error_event)
{
    const cJSON *err = get(root, "error");
    if (error_event || streq(type, "error") || cJSON_IsObject(err) || cJSON_IsString(err)) {
        set_error_json(s->d, root);
        return true;
    }
    if (!s->d->facts.model[0]) {
        /* OpenAI and native: top level; Anthropic: message_start's message;
         * Responses: the response object. */
        const char *model = get_str(root, "model");
        if (!model)
            model = get_str(get(root, "message"), "model");
        if (!model)
            model = get_str(get(root, "response"), "model");
        if (model)
            copy_text(s->d->facts.model, sizeof(s->d->facts.model), model, strlen(model));
    }
    enum dialect_kind kind = s->d->kind != DIALECT_UNKNOWN ? s->d->kind : sniff(root, type);
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
        read_usage(s->d, get(root, "usage"));
        read_timings(s->d, get(root, "timings"));
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

int dialect_event(struct dialect *d, const struct sse_event *ev, dialect_token_cb cb, void *ctx)
{
    struct step s = {.d = d, .cb = cb, .ctx = ctx, .stream = true};
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

    if (mem_is(data, len, "[DONE]")) {
        d->facts.ended = true;
        return 0;
    }
    if (!error_event && ev->event && skip_by_name(ev->event, ev->event_len))
        return 0;

    /* Every event we read is a JSON object: anything else is not worth a
     * parse. */
    cJSON *root = len && *data == '{' ? cJSON_ParseWithLength(data, len) : NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        if (error_event) {
            set_error(d, len ? data : "error", len ? len : 5);
            return 0;
        }
        d->facts.bad_events++;
        return -EINVAL;
    }

    /* The JSON names its own type in both APIs that name events; the event
     * name stands in only when it does not. */
    const char *type = get_str(root, "type");
    char name_buf[64];
    if (!type && ev->event && ev->event_len < sizeof(name_buf)) {
        memcpy(name_buf, ev->event, ev->event_len);
        name_buf[ev->event_len] = 0;
        type = name_buf;
    }

    read_object(&s, root, type, error_event);
    cJSON_Delete(root);
    return s.n;
}

int dialect_body(struct dialect *d, const char *json, size_t len, dialect_token_cb cb, void *ctx)
{
    struct step s = {.d = d, .cb = cb, .ctx = ctx, .stream = false};
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -EINVAL;
    }

    /* A complete body is a complete response, unless it is an error. */
    if (!read_object(&s, root, get_str(root, "type"), false))
        d->facts.ended = true;
    cJSON_Delete(root);
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
