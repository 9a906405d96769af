/* sim_routes: the simulator's non-generation routes: health, models, props,
 * slots, metrics, tokenize, apply-template, count_tokens, embeddings (501)
 * and its own /sim/stats, each shaped like llama-server's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core/jsonw.h"
#include "sim/sim_internal.h"

void sim_route_health(struct exchange *x)
{
    sim_add(x->scratch, "{\"status\":\"ok\"}");
    sim_respond_json(x, 200);
}

void sim_route_root(struct exchange *x)
{
    sim_add(x->scratch, "<!doctype html><html><head><meta charset=\"utf-8\"><title>llama.cpp (tokentap sim)"
                    "</title></head><body><p>tokentap sim: a llama-server simulator.</p></body></html>\n");
    sim_respond(x, 200, "text/html; charset=utf-8", NULL);
}

void sim_route_models(struct exchange *x)
{
    struct evbuffer *b = x->scratch;
    const char *m = x->sim->o.model;
    sim_add(b, "{\"models\":[{\"name\":");
    jsonw_cstr(b, m);
    sim_add(b, ",\"model\":");
    jsonw_cstr(b, m);
    sim_add(b, ",\"modified_at\":\"\",\"size\":\"\",\"digest\":\"\",\"type\":\"model\",\"description\":\"\","
           "\"tags\":[\"\"],\"capabilities\":[\"completion\"],\"parameters\":\"\",\"details\":{"
           "\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"\",\"families\":[\"\"],"
           "\"parameter_size\":\"\",\"quantization_level\":\"\"}}],\"object\":\"list\",\"data\":[{\"id\":");
    jsonw_cstr(b, m);
    sim_add(b, ",\"aliases\":[");
    jsonw_cstr(b, m);
    evbuffer_add_printf(b,
                        "],\"tags\":[],\"object\":\"model\",\"created\":%lld,\"owned_by\":\"llamacpp\","
                        "\"meta\":{\"vocab_type\":2,\"n_vocab\":151936,\"n_ctx\":%u,\"n_ctx_train\":%u,"
                        "\"n_embd\":2048,\"n_params\":35000000000,\"size\":20000000000,"
                        "\"ftype\":\"simulated\"}}]}",
                        (long long)(x->sim->start_wall / USEC_PER_SEC), x->sim->o.n_ctx,
                        x->sim->o.n_ctx);
    sim_respond_json(x, 200);
}

static const char chat_template[] =
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
    "'<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' "
    "}}{%- if enable_thinking is defined and enable_thinking is false %}{{- "
    "'<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}";

void sim_route_props(struct exchange *x)
{
    struct evbuffer *b = x->scratch;
    const struct sim_options *o = &x->sim->o;
    evbuffer_add_printf(b,
                        "{\"default_generation_settings\":{\"params\":{\"seed\":%llu,\"temperature\":"
                        "0.800000011920929,\"top_k\":40,\"top_p\":0.949999988079071,\"min_p\":"
                        "0.05000000074505806,\"max_tokens\":-1,\"n_predict\":-1,\"stream\":false,"
                        "\"reasoning_format\":\"deepseek\"},\"n_ctx\":%u},\"total_slots\":%u,"
                        "\"model_alias\":",
                        (unsigned long long)o->seed, o->n_ctx, o->slots);
    jsonw_cstr(b, o->model);
    sim_add(b, ",\"model_ftype\":\"simulated\",\"model_path\":");
    jsonw_cstr(b, o->model);
    sim_add(b, ",\"modalities\":{\"vision\":false,\"video\":false,\"audio\":false},\"endpoint_slots\":true,"
           "\"endpoint_props\":false,\"endpoint_metrics\":true,\"ui\":false,\"ui_settings\":{},"
           "\"chat_template\":");
    jsonw_cstr(b, chat_template);
    evbuffer_add_printf(b,
                        ",\"chat_template_caps\":{\"supports_tools\":true,\"supports_system_role\":true},"
                        "\"bos_token\":\"<s>\",\"eos_token\":\"</s>\",\"build_info\":\"%s\","
                        "\"is_sleeping\":false,\"tokentap_sim\":{\"prefill_tps\":",
                        SIM_FINGERPRINT);
    jsonw_double(b, o->prefill_tps);
    sim_add(b, ",\"decode_tps\":");
    jsonw_double(b, o->decode_tps);
    sim_add(b, ",\"batch_slowdown\":");
    jsonw_double(b, o->batch_slowdown);
    evbuffer_add_printf(b, ",\"thinking\":%s}}", o->thinking ? "true" : "false");
    sim_respond_json(x, 200);
}

void sim_route_slots(struct exchange *x)
{
    struct sim_engine *e = x->sim->engine;
    if (strstr(x->query, "fail_on_no_slot=1") && sim_engine_free_slots(e) == 0) {
        sim_respond_error(x, 503, "unavailable_error", "no slot available");
        return;
    }
    struct evbuffer *b = x->scratch;
    sim_add(b, "[");
    for (unsigned i = 0; i < sim_engine_slots(e); i++) {
        struct sim_slot_info s;
        sim_engine_slot_info(e, i, &s);
        evbuffer_add_printf(b, "%s{\"id\":%u,\"n_ctx\":%u,\"speculative\":false,\"is_processing\":%s",
                            i ? "," : "", i, sim_engine_n_ctx(e), s.processing ? "true" : "false");
        if (s.used)
            evbuffer_add_printf(
                b,
                ",\"id_task\":%llu,\"n_prompt_tokens\":%u,\"n_prompt_tokens_processed\":%u,"
                "\"n_prompt_tokens_cache\":%u,\"params\":{\"seed\":%lld,\"temperature\":"
                "0.800000011920929,\"max_tokens\":%lld,\"n_predict\":%lld,\"stream\":%s},"
                "\"next_token\":[{\"has_next_token\":%s,\"has_new_line\":false,\"n_remain\":%lld,"
                "\"n_decoded\":%u}]",
                (unsigned long long)s.id_task, s.n_prompt_tokens, s.n_prompt_tokens_processed,
                s.n_prompt_tokens_cache, (long long)s.seed, (long long)s.n_predict,
                (long long)s.n_predict, s.stream ? "true" : "false",
                s.processing ? "true" : "false", (long long)s.n_remain, s.n_decoded);
        sim_add(b, "}");
    }
    sim_add(b, "]");
    sim_respond_json(x, 200);
}

static void metric(struct evbuffer *b, const char *name, const char *help, const char *type,
                   double value)
{
    char num[40];
    /* llama-server prints whole values without a fraction here. */
    if (value == (double)(uint64_t)value)
        snprintf(num, sizeof(num), "%llu", (unsigned long long)value);
    else
        jsonw_format_double(value, num, sizeof(num));
    evbuffer_add_printf(b, "# HELP llamacpp:%s %s\n# TYPE llamacpp:%s %s\nllamacpp:%s %s\n", name,
                        help, name, type, name, num);
}

void sim_route_metrics(struct exchange *x)
{
    struct sim_metrics m;
    sim_engine_metrics(x->sim->engine, &m);
    struct evbuffer *b = x->scratch;
    double pps = m.prompt_seconds_total > 0 ? (double)m.prompt_tokens_total / m.prompt_seconds_total : 0;
    double gps = m.tokens_predicted_seconds_total > 0
                     ? (double)m.tokens_predicted_total / m.tokens_predicted_seconds_total
                     : 0;
    double busy = m.n_decode_total ? (double)m.busy_slots_sum / (double)m.n_decode_total : 0;
    metric(b, "prompt_tokens_total", "Number of prompt tokens processed.", "counter",
           (double)m.prompt_tokens_total);
    metric(b, "prompt_seconds_total", "Prompt process time", "counter", m.prompt_seconds_total);
    metric(b, "tokens_predicted_total", "Number of generation tokens processed.", "counter",
           (double)m.tokens_predicted_total);
    metric(b, "tokens_predicted_seconds_total", "Predict process time", "counter",
           m.tokens_predicted_seconds_total);
    metric(b, "n_decode_total", "Total number of llama_decode() calls", "counter",
           (double)m.n_decode_total);
    metric(b, "n_tokens_max", "Largest observed n_tokens.", "counter", (double)m.n_tokens_max);
    metric(b, "spec_decode_num_draft_tokens_total", "Total draft tokens generated", "counter", 0);
    metric(b, "spec_decode_num_accepted_tokens_total",
           "Total draft tokens accepted by the target model", "counter", 0);
    metric(b, "spec_decode_num_drafts_total", "Total speculative decoding verification steps",
           "counter", 0);
    metric(b, "prompt_tokens_seconds", "Average prompt throughput in tokens/s.", "gauge", pps);
    metric(b, "predicted_tokens_seconds", "Average generation throughput in tokens/s.", "gauge", gps);
    metric(b, "requests_processing", "Number of requests processing.", "gauge",
           m.requests_processing);
    metric(b, "requests_deferred", "Number of requests deferred.", "gauge", m.requests_deferred);
    metric(b, "n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call",
           "gauge", busy);
    char extra[64];
    snprintf(extra, sizeof(extra), "Process-Start-Time-Unix: %llu\r\n",
             (unsigned long long)(x->sim->start_wall / USEC_PER_SEC));
    sim_respond(x, 200, "text/plain; version=0.0.4", extra);
}

void sim_route_sim_stats(struct exchange *x)
{
    const struct sim *sim = x->sim;
    evbuffer_add_printf(x->scratch,
                        "{\"connections_open\":%u,\"connections_total\":%llu,\"requests_in_flight\":%u,"
                        "\"generations_total\":%llu}",
                        server_connections(sim->server),
                        (unsigned long long)server_connections_total(sim->server), sim->in_flight,
                        (unsigned long long)sim->n_generations);
    sim_respond_json(x, 200);
}

/* --- bodies --- */

static void route_tokenize_cb(void *ctx, size_t off, size_t len);

struct tokenize_ctx {
    struct evbuffer *b;
    const char *text;
    bool pieces;
    size_t n;
};

static void route_tokenize_cb(void *ctx, size_t off, size_t len)
{
    struct tokenize_ctx *t = ctx;
    unsigned id = (unsigned)(sim_text_hash(t->text + off, len, 0) % 151936u);
    if (t->n++)
        sim_add(t->b, ",");
    if (t->pieces) {
        evbuffer_add_printf(t->b, "{\"id\":%u,\"piece\":", id);
        jsonw_str(t->b, t->text + off, len);
        sim_add(t->b, "}");
    } else {
        evbuffer_add_printf(t->b, "%u", id);
    }
}

void sim_route_tokenize(struct exchange *x)
{
    cJSON *json = sim_parse_body(x);
    if (!json)
        return;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(json, "content");
    if (!cJSON_IsString(content)) {
        cJSON_Delete(json);
        sim_respond_error(x, 400, "invalid_request_error", "\"content\" must be provided");
        return;
    }
    struct tokenize_ctx t = {
        .b = x->scratch,
        .text = content->valuestring,
        .pieces = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(json, "with_pieces")),
    };
    sim_add(x->scratch, "{\"tokens\":[");
    sim_text_split(t.text, strlen(t.text), route_tokenize_cb, &t);
    sim_add(x->scratch, "]}");
    cJSON_Delete(json);
    sim_respond_json(x, 200);
}

/* /v1/messages/count_tokens and /apply-template: render only. */
void sim_route_render(struct exchange *x, bool count)
{
    cJSON *json = sim_parse_body(x);
    if (!json)
        return;
    char *prompt = NULL;
    size_t len = 0;
    struct sim_request_error err;
    int r = sim_request_render(count ? SIM_API_ANTHROPIC : SIM_API_CHAT, json, x->sim->o.thinking,
                               &prompt, &len, &err);
    cJSON_Delete(json);
    if (r == -EINVAL) {
        sim_respond_error(x, err.status, err.type, err.message);
        return;
    }
    if (r < 0) {
        sim_respond_error(x, 500, "server_error", "out of memory");
        return;
    }
    if (count) {
        evbuffer_add_printf(x->scratch, "{\"input_tokens\":%u}", sim_text_count_tokens(len));
    } else {
        sim_add(x->scratch, "{\"prompt\":");
        jsonw_str(x->scratch, prompt, len);
        sim_add(x->scratch, "}");
    }
    free(prompt);
    sim_respond_json(x, 200);
}

void sim_route_embeddings(struct exchange *x)
{
    sim_respond_error(x, 501, "not_supported_error",
                  "This server does not support embeddings. Start it with `--embeddings`");
}

