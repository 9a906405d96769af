#include "sim/sim_format.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/jsonw.h"

void sim_format_id(char *buf, size_t len, const char *prefix, uint64_t seed)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = (size_t)snprintf(buf, len, "%s", prefix);
    uint64_t x = seed;
    for (int i = 0; i < 32 && n + 1 < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[n++] = alnum[x % (sizeof(alnum) - 1)];
    }
    buf[n] = '\0';
}

static void add(struct evbuffer *out, const char *s)
{
    evbuffer_add(out, s, strlen(s));
}

static const char *piece(const struct sim_script *s, size_t i, size_t *ret_len)
{
    *ret_len = s->pieces[i].len;
    return s->text + s->pieces[i].off;
}

/* Concatenated text of pieces [from, to) of one kind. */
static void add_text(struct evbuffer *out, const struct sim_script *s, size_t produced,
                     enum sim_piece_kind kind)
{
    size_t start = 0, end = 0;
    bool have = false;
    for (size_t i = 0; i < produced; i++) {
        if (s->pieces[i].kind != kind)
            continue;
        if (!have)
            start = s->pieces[i].off;
        end = s->pieces[i].off + s->pieces[i].len;
        have = true;
    }
    jsonw_str(out, s->text + start, have ? end - start : 0);
}

static size_t count_kind(const struct sim_script *s, size_t produced, enum sim_piece_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < produced; i++)
        n += s->pieces[i].kind == kind;
    return n;
}

static void add_timings(struct evbuffer *out, const struct sim_timings *t)
{
    double pms = (double)t->prompt_us / 1000.0, gms = (double)t->predicted_us / 1000.0;
    evbuffer_add_printf(out, "\"timings\":{\"cache_n\":%u,\"prompt_n\":%u,\"prompt_ms\":", t->cache_n,
                        t->prompt_n);
    jsonw_double(out, pms);
    add(out, ",\"prompt_per_token_ms\":");
    jsonw_double(out, t->prompt_n ? pms / t->prompt_n : 0);
    add(out, ",\"prompt_per_second\":");
    jsonw_double(out, pms > 0 ? 1e3 / pms * t->prompt_n : 0);
    evbuffer_add_printf(out, ",\"predicted_n\":%u,\"predicted_ms\":", t->predicted_n);
    jsonw_double(out, gms);
    add(out, ",\"predicted_per_token_ms\":");
    jsonw_double(out, t->predicted_n ? gms / t->predicted_n : 0);
    add(out, ",\"predicted_per_second\":");
    jsonw_double(out, gms > 0 ? 1e3 / gms * t->predicted_n : 0);
    add(out, "}");
}

static void add_usage_openai(struct evbuffer *out, const struct sim_timings *t, size_t produced)
{
    evbuffer_add_printf(out,
                        "\"usage\":{\"completion_tokens\":%zu,\"prompt_tokens\":%u,"
                        "\"total_tokens\":%zu,\"prompt_tokens_details\":{\"cached_tokens\":%u}}",
                        produced, t->prompt_tokens, produced + t->prompt_tokens, t->cache_n);
}

/* ,"created":..,"id":..,"model":..,"system_fingerprint":..,"object":.. (chat chunk order) */
static void add_chat_tail(struct evbuffer *out, const struct sim_reply *r, const char *object)
{
    evbuffer_add_printf(out, ",\"created\":%lld,\"id\":", r->created);
    jsonw_cstr(out, r->id);
    add(out, ",\"model\":");
    jsonw_cstr(out, r->model);
    add(out, ",\"system_fingerprint\":");
    jsonw_cstr(out, r->fingerprint);
    evbuffer_add_printf(out, ",\"object\":\"%s\"", object);
}

/* ,"created":..,"model":..,"system_fingerprint":..,"object":.. (completion order, id later) */
static void add_completion_meta(struct evbuffer *out, const struct sim_reply *r, const char *object)
{
    evbuffer_add_printf(out, ",\"created\":%lld,\"model\":", r->created);
    jsonw_cstr(out, r->model);
    add(out, ",\"system_fingerprint\":");
    jsonw_cstr(out, r->fingerprint);
    evbuffer_add_printf(out, ",\"object\":\"%s\"", object);
}

static void sse_event(struct evbuffer *out, const char *name)
{
    evbuffer_add_printf(out, "event: %s\ndata: ", name);
}

/* --- OpenAI chat --- */

static void chat_delta(struct evbuffer *out, const struct sim_reply *r, const char *delta_key,
                       const char *text, size_t len)
{
    add(out, "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"");
    add(out, delta_key);
    add(out, "\":");
    jsonw_str(out, text, len);
    add(out, "}}]");
    add_chat_tail(out, r, "chat.completion.chunk");
    add(out, "}\n\n");
}

/* --- Responses --- */

static void responses_item_added_message(struct evbuffer *out, const struct sim_reply *r)
{
    sse_event(out, "response.output_item.added");
    add(out, "{\"type\":\"response.output_item.added\",\"item\":{\"content\":[],\"id\":");
    jsonw_cstr(out, r->msg_id);
    add(out, ",\"role\":\"assistant\",\"status\":\"in_progress\",\"type\":\"message\"}}\n\n");
    sse_event(out, "response.content_part.added");
    add(out, "{\"type\":\"response.content_part.added\",\"item_id\":");
    jsonw_cstr(out, r->msg_id);
    add(out, ",\"part\":{\"type\":\"output_text\",\"text\":\"\"}}\n\n");
}

static void responses_output(struct evbuffer *out, const struct sim_reply *r,
                             const struct sim_script *s, size_t produced)
{
    add(out, "\"output\":[");
    if (count_kind(s, produced, SIM_PIECE_REASONING)) {
        add(out, "{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":");
        add_text(out, s, produced, SIM_PIECE_REASONING);
        add(out, "}],\"encrypted_content\":\"\",\"id\":");
        jsonw_cstr(out, r->rs_id);
        add(out, "},");
    }
    add(out, "{\"type\":\"message\",\"status\":\"completed\",\"id\":");
    jsonw_cstr(out, r->msg_id);
    add(out, ",\"content\":[{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":");
    add_text(out, s, produced, SIM_PIECE_CONTENT);
    add(out, "}],\"role\":\"assistant\"}]");
}

static void responses_object(struct evbuffer *out, const struct sim_reply *r,
                             const struct sim_script *s, size_t produced,
                             const struct sim_timings *t)
{
    add(out, "{\"id\":");
    jsonw_cstr(out, r->id);
    evbuffer_add_printf(out, ",\"object\":\"response\",\"created_at\":%lld,\"status\":\"completed\",\"model\":",
                        r->created);
    jsonw_cstr(out, r->model);
    add(out, ",");
    responses_output(out, r, s, produced);
    evbuffer_add_printf(out,
                        ",\"usage\":{\"input_tokens\":%u,\"output_tokens\":%zu,\"total_tokens\":%zu,"
                        "\"input_tokens_details\":{\"cached_tokens\":%u}}}",
                        t->prompt_tokens, produced, t->prompt_tokens + produced, t->cache_n);
}

/* --- Anthropic --- */

static void anthropic_block_start(struct evbuffer *out, struct sim_reply *r, bool thinking)
{
    sse_event(out, "content_block_start");
    evbuffer_add_printf(out, "{\"type\":\"content_block_start\",\"index\":%u,\"content_block\":%s}\n\n",
                        r->blocks,
                        thinking ? "{\"type\":\"thinking\",\"thinking\":\"\"}"
                                 : "{\"type\":\"text\",\"text\":\"\"}");
    r->blocks++;
}

static void anthropic_message_start(struct evbuffer *out, const struct sim_reply *r)
{
    sse_event(out, "message_start");
    add(out, "{\"type\":\"message_start\",\"message\":{\"id\":");
    jsonw_cstr(out, r->id);
    add(out, ",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":");
    jsonw_cstr(out, r->model);
    evbuffer_add_printf(out,
                        ",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
                        "\"cache_read_input_tokens\":%u,\"input_tokens\":%u,\"output_tokens\":0}}}\n\n",
                        r->cache_n, r->prompt_n);
}

static const char *anthropic_stop_reason(const struct sim_script *s)
{
    return s->truncated ? "max_tokens" : "end_turn";
}

/* --- public --- */

void sim_format_stream_start(struct evbuffer *out, struct sim_reply *r)
{
    r->started = true;
    switch (r->api) {
    case SIM_API_CHAT:
        add(out, "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":"
                 "\"assistant\",\"content\":null}}]");
        add_chat_tail(out, r, "chat.completion.chunk");
        add(out, "}\n\n");
        break;
    case SIM_API_RESPONSES:
        sse_event(out, "response.created");
        add(out, "{\"type\":\"response.created\",\"response\":{\"id\":");
        jsonw_cstr(out, r->id);
        add(out, ",\"object\":\"response\",\"status\":\"in_progress\"}}\n\n");
        sse_event(out, "response.in_progress");
        add(out, "{\"type\":\"response.in_progress\",\"response\":{\"id\":");
        jsonw_cstr(out, r->id);
        add(out, ",\"object\":\"response\",\"status\":\"in_progress\"}}\n\n");
        break;
    case SIM_API_ANTHROPIC:
        anthropic_message_start(out, r);
        break;
    case SIM_API_COMPLETIONS:
    case SIM_API_NATIVE:
        break;
    }
}

void sim_format_stream_token(struct evbuffer *out, struct sim_reply *r, const struct sim_script *s,
                             size_t index)
{
    size_t len;
    const char *text = piece(s, index, &len);
    bool reasoning = s->pieces[index].kind == SIM_PIECE_REASONING;

    switch (r->api) {
    case SIM_API_CHAT:
        chat_delta(out, r, reasoning ? "reasoning_content" : "content", text, len);
        break;
    case SIM_API_COMPLETIONS:
        add(out, "data: {\"choices\":[{\"text\":");
        jsonw_str(out, text, len);
        add(out, ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]");
        add_completion_meta(out, r, "text_completion");
        add(out, ",\"id\":");
        jsonw_cstr(out, r->id);
        add(out, "}\n\n");
        break;
    case SIM_API_NATIVE:
        add(out, "data: {\"index\":0,\"content\":");
        jsonw_str(out, text, len);
        evbuffer_add_printf(out,
                            ",\"tokens\":[%u],\"stop\":false,\"id_slot\":-1,\"tokens_predicted\":%zu,"
                            "\"tokens_evaluated\":%u}\n\n",
                            (unsigned)(s->pieces[index].off * 2654435761u % 32000u), index + 1,
                            r->prompt_tokens);
        break;
    case SIM_API_ANTHROPIC:
        if (reasoning && r->blocks == 0)
            anthropic_block_start(out, r, true);
        if (!reasoning && !r->in_text) {
            anthropic_block_start(out, r, false);
            r->in_text = true;
        }
        sse_event(out, "content_block_delta");
        evbuffer_add_printf(out, "{\"type\":\"content_block_delta\",\"index\":%u,\"delta\":{\"type\":",
                            r->blocks - 1);
        add(out, reasoning ? "\"thinking_delta\",\"thinking\":" : "\"text_delta\",\"text\":");
        jsonw_str(out, text, len);
        add(out, "}}\n\n");
        break;
    case SIM_API_RESPONSES:
        if (reasoning && index == 0) {
            sse_event(out, "response.output_item.added");
            add(out, "{\"type\":\"response.output_item.added\",\"item\":{\"id\":");
            jsonw_cstr(out, r->rs_id);
            add(out, ",\"summary\":[],\"type\":\"reasoning\",\"content\":[],\"encrypted_content\":\"\","
                     "\"status\":\"in_progress\"}}\n\n");
        }
        if (!reasoning && !r->in_text) {
            responses_item_added_message(out, r);
            r->in_text = true;
        }
        if (reasoning) {
            sse_event(out, "response.reasoning_text.delta");
            add(out, "{\"type\":\"response.reasoning_text.delta\",\"delta\":");
            jsonw_str(out, text, len);
            add(out, ",\"item_id\":");
            jsonw_cstr(out, r->rs_id);
        } else {
            sse_event(out, "response.output_text.delta");
            add(out, "{\"type\":\"response.output_text.delta\",\"item_id\":");
            jsonw_cstr(out, r->msg_id);
            add(out, ",\"delta\":");
            jsonw_str(out, text, len);
        }
        add(out, "}\n\n");
        break;
    }
}

static const char *finish_reason(const struct sim_script *s)
{
    return s->truncated ? "length" : "stop";
}

void sim_format_stream_end(struct evbuffer *out, struct sim_reply *r, const struct sim_script *s,
                           size_t produced, const struct sim_timings *t)
{
    switch (r->api) {
    case SIM_API_CHAT:
        evbuffer_add_printf(out, "data: {\"choices\":[{\"finish_reason\":\"%s\",\"index\":0,\"delta\":{}}]",
                            finish_reason(s));
        add_chat_tail(out, r, "chat.completion.chunk");
        if (r->include_usage) {
            add(out, "}\n\ndata: {\"choices\":[]");
            add_chat_tail(out, r, "chat.completion.chunk");
            add(out, ",");
            add_usage_openai(out, t, produced);
        }
        add(out, ",");
        add_timings(out, t);
        add(out, "}\n\ndata: [DONE]\n\n");
        break;
    case SIM_API_COMPLETIONS:
        evbuffer_add_printf(out, "data: {\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,"
                                 "\"finish_reason\":\"%s\"}]",
                            finish_reason(s));
        add_completion_meta(out, r, "text_completion");
        add(out, ",");
        add_usage_openai(out, t, produced);
        add(out, ",\"id\":");
        jsonw_cstr(out, r->id);
        add(out, ",");
        add_timings(out, t);
        add(out, "}\n\ndata: [DONE]\n\n");
        break;
    case SIM_API_NATIVE:
        add(out, "data: ");
        sim_format_body(out, r, s, produced, t);
        add(out, "\n\n");
        break;
    case SIM_API_ANTHROPIC:
        if (!r->started)
            sim_format_stream_start(out, r);
        if (r->blocks == 0) {
            anthropic_block_start(out, r, false);
            r->in_text = true;
        }
        if (count_kind(s, produced, SIM_PIECE_REASONING)) {
            sse_event(out, "content_block_delta");
            add(out, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                     "\"signature_delta\",\"signature\":\"\"}}\n\n");
        }
        for (unsigned i = 0; i < r->blocks; i++) {
            sse_event(out, "content_block_stop");
            evbuffer_add_printf(out, "{\"type\":\"content_block_stop\",\"index\":%u}\n\n", i);
        }
        sse_event(out, "message_delta");
        evbuffer_add_printf(out,
                            "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\","
                            "\"stop_sequence\":null},\"usage\":{\"output_tokens\":%zu}}\n\n",
                            anthropic_stop_reason(s), produced);
        sse_event(out, "message_stop");
        add(out, "{\"type\":\"message_stop\"}\n\n");
        break;
    case SIM_API_RESPONSES:
        if (!r->started)
            sim_format_stream_start(out, r);
        if (count_kind(s, produced, SIM_PIECE_REASONING)) {
            sse_event(out, "response.output_item.done");
            add(out, "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"reasoning\","
                     "\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":");
            add_text(out, s, produced, SIM_PIECE_REASONING);
            add(out, "}],\"encrypted_content\":\"\",\"id\":");
            jsonw_cstr(out, r->rs_id);
            add(out, "}}\n\n");
        }
        if (!r->in_text) {
            responses_item_added_message(out, r);
            r->in_text = true;
        }
        sse_event(out, "response.output_text.done");
        add(out, "{\"type\":\"response.output_text.done\",\"item_id\":");
        jsonw_cstr(out, r->msg_id);
        add(out, ",\"text\":");
        add_text(out, s, produced, SIM_PIECE_CONTENT);
        add(out, "}\n\n");
        sse_event(out, "response.content_part.done");
        add(out, "{\"type\":\"response.content_part.done\",\"item_id\":");
        jsonw_cstr(out, r->msg_id);
        add(out, ",\"part\":{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":");
        add_text(out, s, produced, SIM_PIECE_CONTENT);
        add(out, "}}\n\n");
        sse_event(out, "response.output_item.done");
        add(out, "{\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\",\"status\":"
                 "\"completed\",\"id\":");
        jsonw_cstr(out, r->msg_id);
        add(out, ",\"content\":[{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":");
        add_text(out, s, produced, SIM_PIECE_CONTENT);
        add(out, "}],\"role\":\"assistant\"}}\n\n");
        sse_event(out, "response.completed");
        add(out, "{\"type\":\"response.completed\",\"response\":");
        responses_object(out, r, s, produced, t);
        add(out, ",");
        add_timings(out, t);
        add(out, "}\n\n");
        break;
    }
}

/* llama-server's full sampling settings, with the request's own values
 * where the simulator uses them. */
static void native_generation_settings(struct evbuffer *out, const struct sim_reply *r)
{
    evbuffer_add_printf(out, "\"generation_settings\":{\"seed\":%lld,\"temperature\":",
                        (long long)r->seed);
    jsonw_double(out, r->temperature);
    add(out, ",\"dynatemp_range\":0.0,\"dynatemp_exponent\":1.0,\"top_k\":40,\"top_p\":"
             "0.949999988079071,\"min_p\":0.05000000074505806,\"top_n_sigma\":-1.0,"
             "\"xtc_probability\":0.0,\"xtc_threshold\":0.10000000149011612,\"typical_p\":1.0,"
             "\"repeat_last_n\":64,\"repeat_penalty\":1.0,\"presence_penalty\":0.0,"
             "\"frequency_penalty\":0.0,\"dry_multiplier\":0.0,\"dry_base\":1.75,"
             "\"dry_allowed_length\":2,\"dry_penalty_last_n\":64,\"dry_sequence_breakers\":"
             "[\"\\n\",\":\",\"\\\"\",\"*\"],\"mirostat\":0,\"mirostat_tau\":5.0,\"mirostat_eta\":"
             "0.10000000149011612,\"adaptive_target\":-1.0,\"adaptive_decay\":0.8999999761581421,"
             "\"stop\":[]");
    evbuffer_add_printf(out,
                        ",\"max_tokens\":%lld,\"n_predict\":%lld,\"n_keep\":0,\"n_discard\":0,"
                        "\"ignore_eos\":false,\"stream\":%s",
                        (long long)r->n_predict, (long long)r->n_predict,
                        r->stream ? "true" : "false");
    add(out, ",\"logit_bias\":[],\"n_probs\":0,\"min_keep\":0,\"grammar\":\"\",\"grammar_lazy\":false,"
             "\"grammar_triggers\":[],\"preserved_tokens\":[],\"chat_format\":\"Content-only\","
             "\"reasoning_format\":\"deepseek\",\"reasoning_in_content\":false,"
             "\"generation_prompt\":\"\",\"samplers\":[\"penalties\",\"dry\",\"top_n_sigma\","
             "\"top_k\",\"typ_p\",\"top_p\",\"min_p\",\"xtc\",\"temperature\"],"
             "\"speculative.types\":\"none\",\"timings_per_token\":false,"
             "\"post_sampling_probs\":false,\"backend_sampling\":false,\"lora\":[]}");
}

void sim_format_body(struct evbuffer *out, struct sim_reply *r, const struct sim_script *s,
                     size_t produced, const struct sim_timings *t)
{
    size_t n_reasoning = count_kind(s, produced, SIM_PIECE_REASONING);
    switch (r->api) {
    case SIM_API_CHAT:
        evbuffer_add_printf(out, "{\"choices\":[{\"finish_reason\":\"%s\",\"index\":0,\"message\":"
                                 "{\"role\":\"assistant\",\"content\":",
                            finish_reason(s));
        add_text(out, s, produced, SIM_PIECE_CONTENT);
        if (n_reasoning) {
            add(out, ",\"reasoning_content\":");
            add_text(out, s, produced, SIM_PIECE_REASONING);
        }
        add(out, "}}]");
        add_completion_meta(out, r, "chat.completion");
        add(out, ",");
        add_usage_openai(out, t, produced);
        add(out, ",\"id\":");
        jsonw_cstr(out, r->id);
        add(out, ",");
        add_timings(out, t);
        add(out, "}");
        break;
    case SIM_API_COMPLETIONS:
        add(out, "{\"choices\":[{\"text\":");
        add_text(out, s, produced, SIM_PIECE_CONTENT);
        evbuffer_add_printf(out, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}]",
                            finish_reason(s));
        add_completion_meta(out, r, "text_completion");
        add(out, ",");
        add_usage_openai(out, t, produced);
        add(out, ",\"id\":");
        jsonw_cstr(out, r->id);
        add(out, ",");
        add_timings(out, t);
        add(out, "}");
        break;
    case SIM_API_NATIVE:
        add(out, "{\"index\":0,\"content\":");
        if (r->stream)
            add(out, "\"\"");
        else
            add_text(out, s, produced, SIM_PIECE_CONTENT);
        evbuffer_add_printf(out, ",\"tokens\":[],\"id_slot\":%d,\"stop\":true,\"model\":", r->slot);
        jsonw_cstr(out, r->model);
        evbuffer_add_printf(out, ",\"tokens_predicted\":%zu,\"tokens_evaluated\":%u,", produced,
                            t->prompt_tokens);
        native_generation_settings(out, r);
        add(out, ",\"prompt\":");
        jsonw_str(out, r->prompt, r->prompt_len);
        evbuffer_add_printf(out,
                            ",\"has_new_line\":false,\"truncated\":false,\"stop_type\":\"%s\","
                            "\"stopping_word\":\"\",\"tokens_cached\":%zu,",
                            s->truncated ? "limit" : "eos", (size_t)t->prompt_tokens + produced);
        add_timings(out, t);
        add(out, "}");
        break;
    case SIM_API_ANTHROPIC:
        add(out, "{\"id\":");
        jsonw_cstr(out, r->id);
        add(out, ",\"type\":\"message\",\"role\":\"assistant\",\"content\":[");
        if (n_reasoning) {
            add(out, "{\"type\":\"thinking\",\"thinking\":");
            add_text(out, s, produced, SIM_PIECE_REASONING);
            add(out, ",\"signature\":\"\"},");
        }
        add(out, "{\"type\":\"text\",\"text\":");
        add_text(out, s, produced, SIM_PIECE_CONTENT);
        add(out, "}],\"model\":");
        jsonw_cstr(out, r->model);
        evbuffer_add_printf(out,
                            ",\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":{"
                            "\"cache_read_input_tokens\":%u,\"input_tokens\":%u,\"output_tokens\":%zu}}",
                            anthropic_stop_reason(s), t->cache_n, t->prompt_n, produced);
        break;
    case SIM_API_RESPONSES:
        responses_object(out, r, s, produced, t);
        break;
    }
}
