#include "sim/sim_prompt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core/chatml.h"

static int client_error(struct sim_request_error *err, int status, const char *type,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int client_error(struct sim_request_error *err, int status, const char *type,
                        const char *fmt, ...)
{
    err->status = status;
    err->type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static void add(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, s, strlen(s));
}

/* Appends the text of a content value: a string, or an array of parts
 * (OpenAI {"type":"text","text"}, Anthropic text/tool_use/tool_result,
 * Responses input_text/output_text). Other parts (images) add nothing. */
static void add_content(struct evbuffer *b, const cJSON *content)
{
    if (cJSON_IsString(content)) {
        add(b, content->valuestring);
        return;
    }
    if (!cJSON_IsArray(content))
        return;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        if (cJSON_IsString(part)) {
            add(b, part->valuestring);
            continue;
        }
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(text) && strcmp(t, "thinking") != 0) {
            add(b, text->valuestring);
        } else if (strcmp(t, "tool_use") == 0) {
            char *input = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(part, "input"));
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(part, "name");
            add(b, "<tool_call>\n{\"name\": ");
            add(b, cJSON_IsString(name) ? name->valuestring : "");
            add(b, ", \"arguments\": ");
            add(b, input ? input : "{}");
            add(b, "}\n</tool_call>");
            free(input);
        } else if (strcmp(t, "tool_result") == 0) {
            add(b, "<tool_response>\n");
            add_content(b, cJSON_GetObjectItemCaseSensitive(part, "content"));
            add(b, "\n</tool_response>");
        }
    }
}

static void add_message(struct evbuffer *b, const char *role, const cJSON *content)
{
    add(b, CHATML_START);
    add(b, role);
    add(b, "\n");
    add_content(b, content);
    add(b, CHATML_END);
}

static void add_tools(struct evbuffer *b, const cJSON *tools)
{
    if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) == 0)
        return;
    add(b, "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
           "<tools>");
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools)
    {
        char *s = cJSON_PrintUnformatted(tool);
        add(b, "\n");
        add(b, s ? s : "{}");
        free(s);
    }
    add(b, "\n</tools>\n");
}

/* Text of the last message with role "user", for canned answers. */
static char *last_user_text(const cJSON *messages)
{
    const cJSON *last = NULL, *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0)
            last = m;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return NULL;
    if (last)
        add_content(b, cJSON_GetObjectItemCaseSensitive(last, "content"));
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    if (s) {
        evbuffer_remove(b, s, n);
        s[n] = '\0';
    }
    evbuffer_free(b);
    return s;
}

/* chat_template_kwargs.enable_thinking: a boolean, or llama-server's 400. */
static int read_thinking(const cJSON *body, bool *thinking, struct sim_request_error *err)
{
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(body, "chat_template_kwargs");
    const cJSON *et = cJSON_IsObject(kw) ? cJSON_GetObjectItemCaseSensitive(kw, "enable_thinking")
                                         : NULL;
    if (!et)
        return 0;
    if (cJSON_IsBool(et)) {
        *thinking = cJSON_IsTrue(et);
        return 0;
    }
    const char *got = cJSON_IsString(et)   ? "string"
                      : cJSON_IsNumber(et) ? "number"
                      : cJSON_IsNull(et)   ? "null"
                      : cJSON_IsArray(et)  ? "array"
                                           : "object";
    return client_error(err, 400, "invalid_request_error",
                        "invalid type for \"enable_thinking\" (expected boolean, got %s)", got);
}

static int render(enum sim_api api, const cJSON *body, bool thinking, struct evbuffer *b,
                  char **ret_last_user, struct sim_request_error *err)
{
    const cJSON *messages = NULL;
    char *last_user = NULL;

    switch (api) {
    case SIM_API_COMPLETIONS:
    case SIM_API_NATIVE: {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(body, "prompt");
        if (cJSON_IsArray(prompt))
            prompt = cJSON_GetArrayItem(prompt, 0);
        if (!cJSON_IsString(prompt))
            return client_error(err, 400, "invalid_request_error", "%s",
                                "\"prompt\" must be provided");
        add(b, prompt->valuestring);
        last_user = strdup(prompt->valuestring);
        break;
    }
    case SIM_API_CHAT:
        messages = cJSON_GetObjectItemCaseSensitive(body, "messages");
        if (!cJSON_IsArray(messages))
            return client_error(err, 400, "invalid_request_error", "%s", "'messages' is required");
        {
            const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
            const cJSON *first = cJSON_GetArrayItem(messages, 0);
            const cJSON *role0 = cJSON_GetObjectItemCaseSensitive(first, "role");
            bool sys0 = cJSON_IsString(role0) && strcmp(role0->valuestring, "system") == 0;
            if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0) {
                add(b, CHATML_START "system\n");
                if (sys0) {
                    add_content(b, cJSON_GetObjectItemCaseSensitive(first, "content"));
                    add(b, "\n\n");
                }
                add_tools(b, tools);
                add(b, CHATML_END);
            } else if (sys0) {
                add_message(b, "system", cJSON_GetObjectItemCaseSensitive(first, "content"));
            }
            const cJSON *m;
            bool skip_first = sys0;
            cJSON_ArrayForEach(m, messages)
            {
                if (skip_first) {
                    skip_first = false;
                    continue;
                }
                const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
                if (!cJSON_IsString(role))
                    return client_error(err, 400, "invalid_request_error", "%s",
                                        "each message needs a 'role'");
                add_message(b, role->valuestring, cJSON_GetObjectItemCaseSensitive(m, "content"));
            }
        }
        last_user = last_user_text(messages);
        break;
    case SIM_API_ANTHROPIC: {
        messages = cJSON_GetObjectItemCaseSensitive(body, "messages");
        if (!cJSON_IsArray(messages))
            return client_error(err, 400, "invalid_request_error", "%s", "'messages' is required");
        const cJSON *system = cJSON_GetObjectItemCaseSensitive(body, "system");
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
        if (system || (cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0)) {
            add(b, CHATML_START "system\n");
            add_content(b, system);
            if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0) {
                add(b, "\n\n");
                add_tools(b, tools);
            }
            add(b, CHATML_END);
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, messages)
        {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            if (!cJSON_IsString(role))
                return client_error(err, 400, "invalid_request_error", "%s",
                                    "each message needs a 'role'");
            add_message(b, role->valuestring, cJSON_GetObjectItemCaseSensitive(m, "content"));
        }
        last_user = last_user_text(messages);
        break;
    }
    case SIM_API_RESPONSES: {
        const cJSON *instructions = cJSON_GetObjectItemCaseSensitive(body, "instructions");
        const cJSON *input = cJSON_GetObjectItemCaseSensitive(body, "input");
        if (cJSON_IsString(instructions))
            add_message(b, "system", instructions);
        if (cJSON_IsString(input)) {
            add_message(b, "user", input);
            last_user = strdup(input->valuestring);
        } else if (cJSON_IsArray(input)) {
            const cJSON *m;
            cJSON_ArrayForEach(m, input)
            {
                const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
                add_message(b, cJSON_IsString(role) ? role->valuestring : "user",
                            cJSON_GetObjectItemCaseSensitive(m, "content"));
            }
            last_user = last_user_text(input);
        } else {
            return client_error(err, 400, "invalid_request_error", "%s", "'input' is required");
        }
        break;
    }
    }

    if (api != SIM_API_COMPLETIONS && api != SIM_API_NATIVE) {
        add(b, CHATML_ASSISTANT);
        if (!thinking)
            add(b, CHATML_THINK_OFF);
    }
    if (!last_user)
        return -ENOMEM;
    *ret_last_user = last_user;
    return 0;
}

static int take(struct evbuffer *b, char **ret, size_t *ret_len)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    if (!s)
        return -ENOMEM;
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    *ret = s;
    *ret_len = n;
    return 0;
}

static bool thinking_route(enum sim_api api)
{
    return api == SIM_API_CHAT || api == SIM_API_ANTHROPIC || api == SIM_API_RESPONSES;
}

int sim_request_render(enum sim_api api, const cJSON *body, bool thinking, char **ret,
                       size_t *ret_len, struct sim_request_error *err)
{
    char *last_user = NULL;
    int r;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return -ENOMEM;
    if (thinking_route(api)) {
        r = read_thinking(body, &thinking, err);
        if (r < 0)
            goto fail;
    }
    r = render(api, body, thinking, b, &last_user, err);
    if (r < 0)
        goto fail;
    r = take(b, ret, ret_len);
fail:
    free(last_user);
    evbuffer_free(b);
    return r;
}

static int64_t int_field(const cJSON *body, const char *key, int64_t dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    if (!cJSON_IsNumber(v))
        return dflt;
    if (v->valuedouble < 0)
        return -1;
    return (int64_t)v->valuedouble;
}

int sim_request_parse(enum sim_api api, const cJSON *body, bool default_thinking,
                      struct sim_request *ret, struct sim_request_error *err)
{
    struct sim_request r = {.api = api, .cache_prompt = true, .max_tokens = -1,
                            .temperature = 0.8};
    struct evbuffer *b = NULL;
    int rc = -ENOMEM;

    if (!cJSON_IsObject(body)) {
        rc = client_error(err, 400, "invalid_request_error", "%s",
                          "the request body must be a JSON object");
        goto fail;
    }
    r.thinking = thinking_route(api) && default_thinking;
    if (thinking_route(api)) {
        rc = read_thinking(body, &r.thinking, err);
        if (rc < 0)
            goto fail;
    }
    r.stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"));
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    r.include_usage = cJSON_IsObject(so) &&
                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    r.cache_prompt = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(body, "cache_prompt"));
    r.ignore_eos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "ignore_eos"));
    switch (api) {
    case SIM_API_CHAT:
        r.max_tokens = int_field(body, "max_completion_tokens", int_field(body, "max_tokens", -1));
        break;
    case SIM_API_NATIVE:
        r.max_tokens = int_field(body, "n_predict", int_field(body, "max_tokens", -1));
        break;
    case SIM_API_RESPONSES:
        r.max_tokens = int_field(body, "max_output_tokens", -1);
        break;
    case SIM_API_COMPLETIONS:
    case SIM_API_ANTHROPIC:
        r.max_tokens = int_field(body, "max_tokens", -1);
        break;
    }
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(body, "seed");
    if (cJSON_IsNumber(seed)) {
        r.has_seed = true;
        r.seed = (int64_t)seed->valuedouble;
    }
    const cJSON *temp = cJSON_GetObjectItemCaseSensitive(body, "temperature");
    if (cJSON_IsNumber(temp))
        r.temperature = temp->valuedouble;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (cJSON_IsString(model)) {
        r.model = strdup(model->valuestring);
        if (!r.model)
            goto fail;
    }

    b = evbuffer_new();
    if (!b)
        goto fail;
    rc = render(api, body, r.thinking, b, &r.last_user, err);
    if (rc < 0)
        goto fail;
    rc = take(b, &r.prompt, &r.prompt_len);
    if (rc < 0)
        goto fail;
    evbuffer_free(b);
    *ret = r;
    return 0;
fail:
    if (b)
        evbuffer_free(b);
    sim_request_finish(&r);
    return rc;
}

void sim_request_finish(struct sim_request *r)
{
    free(r->model);
    free(r->prompt);
    free(r->last_user);
    memset(r, 0, sizeof(*r));
}
